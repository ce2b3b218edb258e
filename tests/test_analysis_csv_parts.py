"""Part-file CSV writer: kill/re-run behaviour, no duplicates, no loss, atomic files."""
import json
import os

import pytest

from analysis.csv_parts import PartWriter, csv_text, read_table

TABLES = {"a": ("file", "entry", "value"), "b": ("file", "n")}


def rows_of(stem, n):
    return {"a": [{"file": stem, "entry": k, "value": k * 0.5} for k in range(n)],
            "b": [{"file": stem, "n": n}]}


def test_merge_concatenates_complete_parts_in_sorted_order(tmp_path):
    writer = PartWriter(tmp_path, TABLES)
    writer.write("zz", rows_of("zz", 2), {"source": "zz.h5"})
    writer.write("aa", rows_of("aa", 3), {"source": "aa.h5"})
    counts = writer.merge()
    assert counts == {"a": 5, "b": 2}
    merged = read_table(tmp_path / "a.csv")
    assert [r["file"] for r in merged] == ["aa"] * 3 + ["zz"] * 2
    assert [r["value"] for r in merged[:3]] == ["0", "0.5", "1"]
    assert writer.marker("aa")["rows"] == {"a": 3, "b": 1}


def test_crash_between_part_and_marker_neither_duplicates_nor_loses(tmp_path, monkeypatch):
    writer = PartWriter(tmp_path, TABLES)
    writer.write("one", rows_of("one", 2), {"source": "one.h5"})
    # Simulated kill: the parts of "two" are written, then the process dies before the marker.
    import analysis.csv_parts as module

    real = module.atomic_write_text

    def dying(path, text):
        if str(path).endswith(".done") and "two" in str(path):
            raise KeyboardInterrupt("killed")
        real(path, text)

    monkeypatch.setattr(module, "atomic_write_text", dying)
    with pytest.raises(KeyboardInterrupt):
        writer.write("two", rows_of("two", 4), {"source": "two.h5"})
    monkeypatch.setattr(module, "atomic_write_text", real)
    assert (tmp_path / "parts" / "two.a.csv").exists() and writer.marker("two") is None
    assert writer.merge()["a"] == 2  # the incomplete input is not merged
    # The re-run redoes "two" only; merging again gives every row exactly once.
    assert writer.marker("one") is not None
    writer.write("two", rows_of("two", 4), {"source": "two.h5"})
    writer.merge()
    entries = [(r["file"], r["entry"]) for r in read_table(tmp_path / "a.csv")]
    assert len(entries) == len(set(entries)) == 6
    writer.merge()  # merging twice changes nothing
    assert len(read_table(tmp_path / "a.csv")) == 6


def test_rewrite_replaces_rows_and_no_temp_files_remain(tmp_path):
    writer = PartWriter(tmp_path, TABLES)
    writer.write("one", rows_of("one", 5), {"source": "one.h5"})
    writer.write("one", rows_of("one", 1), {"source": "one.h5"})
    writer.merge()
    assert len(read_table(tmp_path / "a.csv")) == 1
    leftovers = [p for p in os.listdir(tmp_path / "parts") if p.endswith(".tmp") or ".tmp." in p]
    assert leftovers == []
    assert json.loads((tmp_path / "parts" / "one.done").read_text())["source"] == "one.h5"


def test_empty_tables_get_header_only_parts(tmp_path):
    writer = PartWriter(tmp_path, TABLES)
    writer.write("one", {"a": []}, {"source": "one.h5"})
    assert writer.merge() == {"a": 0, "b": 0}
    assert (tmp_path / "b.csv").read_text() == "file,n\n"


def test_csv_text_formats_nan_and_rejects_missing_columns(tmp_path):
    assert csv_text(("x", "y"), [{"x": float("nan"), "y": None}]) == "x,y\n,\n"
    with pytest.raises(KeyError, match="lacks columns"):
        csv_text(("x", "y"), [{"x": 1}])
    with pytest.raises(KeyError, match="unknown tables"):
        PartWriter(tmp_path, TABLES).write("x", {"c": []}, {})
