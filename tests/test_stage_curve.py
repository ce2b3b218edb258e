"""benchmarks/stage_curve.py: each stage's checkpoints scored once, the curve extended on rerun."""
import csv
import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import stage_curve  # noqa: E402

from mlreco_spice.config import load_config  # noqa: E402
from mlreco_spice.train import train  # noqa: E402
from test_train import tiny_cfg  # noqa: E402

TINY_NET = "{filters: 4, depth: 2, reps: 1, input_kernel: 3}"


def _rows(path):
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


@pytest.fixture(scope="module")
def spice_run(tiny_files, tmp_path_factory):
    out = tmp_path_factory.mktemp("spice_run")
    train(tiny_cfg(tiny_files, out, iterations=20), progress=False)  # checkpoints 10, 20
    return out


def test_spice_checkpoints_scored_once_then_skipped(spice_run, tiny_files, tmp_path, monkeypatch):
    argv = [str(spice_run), "--stage", "spice", "--test-file", str(tiny_files[0]),
            "--val-file", str(tiny_files[1]), "--events", "3", "--tune-events", "2",
            "--world", "1", "--out", str(tmp_path), "--no-progress"]
    assert stage_curve.main(argv) == 0
    rows = _rows(tmp_path / "curve_spice.csv")
    assert [(r["iteration"], r["method"]) for r in rows] == [
        ("10", "seed search"), ("10", "truth centroids"),
        ("20", "seed search"), ("20", "truth centroids")]
    for r in rows:
        assert int(r["event_passes"]) == 2 * int(r["iteration"])  # batch 2 x 1 process
        assert int(r["events"]) == 3
        values = [float(r[c]) for c in ("HIP", "MIP", "Shower", "Delta", "Michel", "all")]
        assert all(math.isnan(v) or -1.0 <= v <= 1.0 for v in values)
        assert not math.isnan(float(r["all"]))
    assert sorted(p.name for p in (tmp_path / "thresholds").iterdir()) == [
        "spice-0000010.yaml", "spice-0000020.yaml"]
    table = (tmp_path / "curve_spice.md").read_text()
    assert "| 20 | 40 |" in table and "seed search: HIP / MIP" in table
    assert (tmp_path / "curve_spice.png").stat().st_size > 0

    # A rerun scores nothing already scored on the same events.
    def must_not_score(*args, **kwargs):
        raise AssertionError("scored again")

    monkeypatch.setattr(stage_curve, "score_spice", must_not_score)
    assert stage_curve.main(argv) == 0
    assert _rows(tmp_path / "curve_spice.csv") == rows


def test_min_gap_thins_the_checkpoints(spice_run, tiny_files, tmp_path):
    argv = [str(spice_run), "--stage", "spice", "--test-file", str(tiny_files[0]),
            "--val-file", str(tiny_files[1]), "--events", "2", "--tune-events", "2",
            "--world", "1", "--min-gap", "30", "--dbscan", "--dbscan-val-events", "2",
            "--out", str(tmp_path), "--no-progress"]
    assert stage_curve.main(argv) == 0
    assert {r["iteration"] for r in _rows(tmp_path / "curve_spice.csv")} == {"10"}  # 40 - 20 < 30
    # The DBSCAN reference: scored once on the same test events, named in the table.
    (ref,) = _rows(tmp_path / "reference_dbscan.csv")
    assert ref["method"] == "DBSCAN per true class" and int(ref["events"]) == 2
    assert 0.0 <= float(ref["all"]) <= 1.0 and "MIP:" in ref["params"]
    assert "Reference, DBSCAN per true class" in (tmp_path / "curve_spice.md").read_text()
    assert stage_curve.main(argv) == 0
    assert len(_rows(tmp_path / "reference_dbscan.csv")) == 1


@pytest.fixture(scope="module")
def uresnet_run(tiny_files, tmp_path_factory):
    run = tmp_path_factory.mktemp("uresnet_run")
    cfg = load_config("uresnet_train", [
        f"io.dataset.files={list(map(str, tiny_files))}", f"train.output_dir={run}",
        "train.iterations=4", "train.checkpoint_every=4", "io.loader.batch_size=2",
        f"model.modules.uresnet.network.uresnet={TINY_NET}"])
    train(cfg, progress=False)
    return run


def test_uresnet_segmentation_accuracy_and_stage_check(uresnet_run, tiny_files, tmp_path,
                                                       caplog):
    run, out = uresnet_run, tmp_path / "curve"
    assert stage_curve.main([str(run), "--stage", "uresnet", "--test-file", str(tiny_files[0]),
                             "--events", "2", "--world", "2", "--out", str(out),
                             "--no-progress"]) == 0
    rows = {r["method"]: r for r in _rows(out / "curve_uresnet.csv")}
    assert sorted(rows) == ["detached pieces", "main piece", "segmentation"]
    row = rows["segmentation"]
    assert int(row["event_passes"]) == 4 * 2 * 2
    assert 0.0 <= float(row["all"]) <= 1.0
    confusion = _rows(out / "confusion" / "uresnet-0000004.csv")
    assert [r["true_class"] for r in confusion] == ["HIP", "MIP", "Shower", "Delta", "Michel"]
    for r in confusion:  # each true class's voxels are shared out over the predicted classes
        shares = [float(r[c]) for c in ("HIP", "MIP", "Shower", "Delta", "Michel")]
        assert sum(shares) == pytest.approx(1.0, abs=1e-3) if int(r["voxels"]) else sum(shares) == 0
    acc = {r["true_class"]: float(r[r["true_class"]]) for r in confusion if int(r["voxels"])}
    assert acc == pytest.approx({c: float(row[c]) for c in acc}, abs=1e-4)
    # A uresnet run scored as SPICE: named, not scored.
    assert stage_curve.main([str(run), "--stage", "spice", "--test-file", str(tiny_files[0]),
                             "--val-file", str(tiny_files[1]), "--out", str(out),
                             "--no-progress"]) == 1
    assert "trains ['uresnet'], not [spice]" in caplog.text


def test_a_short_test_file_is_scored_once_and_its_table_keeps_to_its_events(
        uresnet_run, tiny_files, tmp_path, monkeypatch):
    out = tmp_path / "curve"
    argv = [str(uresnet_run), "--stage", "uresnet", "--test-file", str(tiny_files[0]),
            "--events", "10", "--out", str(out), "--no-progress"]   # the file holds 4
    assert stage_curve.main(argv) == 0
    rows = _rows(out / "curve_uresnet.csv")
    assert {(r["events"], r["scored"]) for r in rows} == {("10", "4")}
    assert "4 test events" in (out / "curve_uresnet.md").read_text()
    # The same request again: nothing scored twice.
    monkeypatch.setattr(stage_curve, "score_uresnet",
                        lambda *a, **k: (_ for _ in ()).throw(AssertionError("scored again")))
    assert stage_curve.main(argv) == 0
    assert _rows(out / "curve_uresnet.csv") == rows
    # Another request into the same folder: its own rows, and its table shows only them.
    monkeypatch.undo()
    assert stage_curve.main(argv[:5] + ["--events", "2"] + argv[7:]) == 0
    assert {r["events"] for r in _rows(out / "curve_uresnet.csv")} == {"10", "2"}
    assert "(voxel accuracy per true class; 2 test events" in (out / "curve_uresnet.md").read_text()


def test_balanced_offsets_rescore_a_checkpoint_once_without_doubling_its_rows(
        uresnet_run, tiny_files, tmp_path, monkeypatch):
    out = tmp_path / "curve"
    argv = [str(uresnet_run), "--stage", "uresnet", "--test-file", str(tiny_files[0]),
            "--events", "4", "--out", str(out), "--no-progress"]
    assert stage_curve.main(argv) == 0
    plain = {r["method"]: r for r in _rows(out / "curve_uresnet.csv")}
    assert "balanced offsets" not in plain
    # Asked for the balanced reading, the checkpoint is scored again, its rows replaced.
    assert stage_curve.main(argv + ["--balanced"]) == 0
    rows = _rows(out / "curve_uresnet.csv")
    assert sorted(r["method"] for r in rows) == ["balanced offsets", "detached pieces",
                                                  "main piece", "segmentation"]
    again = {r["method"]: r for r in rows}
    assert again["segmentation"] == plain["segmentation"]   # the same weights, the same events
    balanced = [float(again["balanced offsets"][c]) for c in stage_curve.CLASS_NAMES]
    assert all(0.0 <= v <= 1.0 for v in balanced if not math.isnan(v))
    # Scored with --balanced, it is not scored again, with or without it.
    monkeypatch.setattr(stage_curve, "score_uresnet",
                        lambda *a, **k: (_ for _ in ()).throw(AssertionError("scored again")))
    assert stage_curve.main(argv + ["--balanced"]) == 0
    assert stage_curve.main(argv) == 0
    assert _rows(out / "curve_uresnet.csv") == rows


def test_balanced_is_a_segmentation_reading(tiny_files, tmp_path, capsys):
    with pytest.raises(SystemExit):
        stage_curve.parse_args([str(tmp_path), "--stage", "spice", "--test-file",
                                str(tiny_files[0]), "--val-file", str(tiny_files[1]),
                                "--balanced"])
    assert "--balanced reads a segmentation network" in capsys.readouterr().err
