"""evaluate and display end to end on tiny simulated files with a briefly trained chain."""
import csv
from pathlib import Path

import numpy as np
import pytest

from analysis.columns import TABLES
from analysis.csv_parts import read_table
from analysis.evaluate import evaluate
from analysis.plots import PLOT_FILES
from mlreco_spice.config import load_config
from mlreco_spice.errors import UserError
from mlreco_spice.metrics import evaluate_event
from test_predict import TINY_ARCH

pytest.importorskip("matplotlib")


@pytest.fixture(scope="module")
def cfg(tiny_trained):
    return load_config("predict", [f"predict.weights={tiny_trained}", "predict.thresholds=null",
                                   "predict.save_embeddings=true", *TINY_ARCH])


@pytest.fixture(scope="module")
def raw_eval(cfg, tiny_files, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval_raw")
    report = evaluate(cfg, [str(f) for f in tiny_files], str(out), plots=True, quiet=True)
    return out, report


@pytest.fixture(scope="module")
def predicted(cfg, tiny_files, tmp_path_factory):
    from mlreco_spice.predict import predict_files

    out = tmp_path_factory.mktemp("predicted")
    report = predict_files(cfg, [str(f) for f in tiny_files], str(out))
    return sorted(str(p) for p in report.written)


def header(path):
    with open(path, newline="") as stream:
        return tuple(next(csv.reader(stream)))


@pytest.mark.slow
def test_raw_inputs_write_tables_summary_and_plots(raw_eval):
    out, report = raw_eval
    assert not report.failed_files and len(report.evaluated) == 2
    for table, columns in TABLES.items():
        assert header(out / f"{table}.csv") == columns
    events = read_table(out / "events.csv")
    assert len(events) == 8 and {(r["file"], r["entry"]) for r in events} == {
        (r["file"], r["entry"]) for r in read_table(out / "cluster_metrics.csv")}
    assert all(float(r["forward_time_s"]) > 0 for r in events)
    metrics = read_table(out / "cluster_metrics.csv")
    assert report.rows["cluster_metrics"] == len(metrics) > 8
    for name in ("summary.csv", "summary.md", "confusion_matrix.csv"):
        assert (out / name).is_file()
    assert report.summary.row("all")["n_rows"] == len(metrics)
    above = np.mean([float(r["ari"]) > 0.92 for r in metrics])
    assert report.summary.row("all")["frac_ari_above"] == pytest.approx(above)
    assert set(report.plots) == set(PLOT_FILES)
    for name, counts in report.plots.items():
        assert counts["path"].is_file(), name
        entries = counts["entries"]
        if name == "timing":  # an empty time (unknown) is the only row not drawn
            for column, n in entries.items():
                assert n == sum(r[column] != "" for r in events), column
            assert entries["forward_time_s"] == len(events)
            continue
        values = entries.values() if isinstance(entries, dict) else [entries]
        assert all(v == counts["rows"] for v in values), (name, counts)  # margins are known
    instances = read_table(out / "clusters.csv")
    assert {r["pdg"] for r in instances} - {""}, "the simulator's particle table gives PDG codes"


def _truth_and_pred(path, entry):
    """Independent per-voxel truth and prediction from a predict output (dict lookups)."""
    from mlreco_spice.columns import PARSER_COORD_COLS, PARSER_INSTANCE_COL, PARSER_SEMANTIC_COL
    from parsers.cluster import parse_cluster3d
    from parsers.readers import open_reader

    record = open_reader([path], "auto")[entry]
    labels = load_config("predict")["io"]["dataset"]["schema"]["clust_label"]
    parsed = parse_cluster3d(record, labels["cluster_product"], labels["semantics_product"])
    keys = [tuple(int(x) for x in row[list(PARSER_COORD_COLS)]) for row in parsed]
    pred = {}
    for k, coords in enumerate(record.cluster3d["spice"].coords):
        pred.update({tuple(int(x) for x in c): k for c in coords})
    return (parsed[:, PARSER_INSTANCE_COL].astype(int), np.array([pred.get(k, -1) for k in keys]),
            parsed[:, PARSER_SEMANTIC_COL].astype(int))


@pytest.mark.slow
def test_predict_outputs_metrics_equal_metrics_module(cfg, predicted, raw_eval, tmp_path):
    report = evaluate(cfg, predicted, str(tmp_path), quiet=True)
    assert not report.failed_files
    rows = read_table(tmp_path / "cluster_metrics.csv")
    by_event = {}
    for r in rows:
        by_event.setdefault((r["file"], int(r["entry"])), []).append(r)
    assert len(by_event) == 8
    for (file, entry), event_rows in by_event.items():
        expected = evaluate_event(*_truth_and_pred(file, entry), min_true_size=10)
        assert [r["class"] for r in event_rows] == [e["class"] for e in expected]
        for got, want in zip(event_rows, expected):
            for key in ("ari", "purity", "efficiency"):
                assert float(got[key]) == pytest.approx(want[key], abs=1e-5)
            assert int(got["n_true"]) == want["n_true"] and int(got["n_pred"]) == want["n_pred"]
        assert all(r["forward_time_s"] != "" for r in event_rows)  # from <stem>_timing.csv
    # Same weights on the raw files give the same metrics.
    raw = read_table(raw_eval[0] / "cluster_metrics.csv")
    assert [(r["class"], r["n_true"], r["ari"]) for r in raw] == \
        [(r["class"], r["n_true"], r["ari"]) for r in rows]
    margins = [r["mean_margin"] for r in read_table(tmp_path / "clusters.csv")]
    assert all(m != "" for m in margins)  # sparse3d_spice_margin was saved


@pytest.mark.slow
def test_rerun_shards_and_append_never_duplicate(cfg, predicted, tmp_path):
    full = tmp_path / "full"
    first = evaluate(cfg, predicted, str(full), quiet=True)
    again = evaluate(cfg, predicted, str(full), quiet=True)
    assert again.evaluated == [] and sorted(again.skipped_complete) == sorted(predicted)
    assert again.rows == first.rows
    sharded = tmp_path / "sharded"
    for index in (1, 0):
        evaluate(cfg, predicted, str(sharded), shard=(index, 2), quiet=True)
    for table in TABLES:
        assert (sharded / f"{table}.csv").read_text() == (full / f"{table}.csv").read_text()
    alone = tmp_path / "alone"
    evaluate(cfg, predicted[:1], str(alone), quiet=True)
    with pytest.raises(UserError, match="--append"):
        evaluate(cfg, predicted[1:], str(alone), quiet=True)
    appended = evaluate(cfg, predicted[1:], str(alone), append=True, quiet=True)
    assert appended.rows == first.rows
    with pytest.raises(UserError, match="--overwrite"):
        evaluate(cfg, predicted, str(alone), max_events=1, quiet=True)


@pytest.mark.slow
def test_display_raw_and_predicted(cfg, tiny_files, predicted, tmp_path):
    from analysis.display import display_event

    for source in (str(tiny_files[0]), predicted[0]):
        out = display_event(cfg, source, 1, str(tmp_path))
        assert out["html"].stat().st_size > 10_000 and out["png"].stat().st_size > 10_000
        assert out["html"].name == f"{Path(source).stem}_entry1.html"
        # plotly.js once per folder, loaded from beside the page
        (bundle,) = Path(tmp_path).glob("plotly-*.min.js")
        assert f'src="{bundle.name}"' in out["html"].read_text()
    with pytest.raises(UserError, match="out of range"):
        display_event(cfg, predicted[0], 99, str(tmp_path))


def test_refusals_before_any_work(tmp_path):
    cfg = load_config("predict")
    first, second = tmp_path / "a" / "x.h5", tmp_path / "b" / "x.h5"
    for path in (first, second):
        path.parent.mkdir()
        path.write_bytes(b"")
    with pytest.raises(UserError, match="share the stem 'x'"):
        evaluate(cfg, [str(first), str(second)], str(tmp_path / "out"), quiet=True)
    with pytest.raises(UserError, match="--max-events"):
        evaluate(cfg, [str(first)], str(tmp_path / "out"), max_events=0, quiet=True)
    del cfg["io"]["dataset"]["schema"]["clust_label"]
    with pytest.raises(UserError, match="clust_label"):
        evaluate(cfg, [str(first)], str(tmp_path / "out"), quiet=True)
    assert not (tmp_path / "out").exists()
