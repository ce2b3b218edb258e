"""Bad and edge-case events inside whole runs: predict keeps entries aligned, train records skips."""
import pytest

from mlreco_spice.errors import BadEventError
from mlreco_spice.predict import predict_files
from parsers.readers.larcv3 import Larcv3Reader
from robust_helpers import read_rows


def _products(path, entry):
    record = Larcv3Reader([str(path)])[entry]
    return record, {k: len(v.coords) for k, v in record.sparse3d.items()}


def test_zero_and_one_voxel_events_run_through_predict(corpus, predict_cfg, tmp_path):
    report = predict_files(predict_cfg, [str(corpus["zero_voxels"]), str(corpus["one_voxel"])],
                           str(tmp_path))
    assert len(report.written) == 2 and not report.failed_files and not report.bad_events
    empty, sizes = _products(tmp_path / "zero_voxels_spice.h5", 1)
    assert sizes == {"data": 0, "semantics": 0, "semantics_pred": 0}  # empty, not skipped
    assert len(empty.cluster3d["spice"]) == 0 and empty.particles["spice"] == []
    single, sizes = _products(tmp_path / "one_voxel_spice.h5", 1)
    assert sizes == {"data": 1, "semantics": 1, "semantics_pred": 1}
    assert 0 <= int(single.sparse3d["semantics_pred"].values[0]) <= 4
    assert len(single.cluster3d["spice"]) <= 1
    timing = {name: read_rows(tmp_path / f"{name}_timing.csv") for name in ("zero_voxels", "one_voxel")}
    assert [r["n_voxels"] for r in timing["zero_voxels"]][1:] == ["0"]
    assert [(r["n_voxels"], r["n_clusters"]) for r in timing["zero_voxels"]][1] == ("0", "0")
    assert timing["one_voxel"][1]["n_voxels"] == "1"
    assert read_rows(tmp_path / "skipped.csv") == []


def test_bad_event_gets_an_empty_entry_and_skipped_rows(corpus, predict_cfg, tmp_path):
    file = str(corpus["nan_energy"])
    report = predict_files(predict_cfg, [file, str(corpus["good"])], str(tmp_path))
    reason = "'sparse3d_data' has 1 NaN/inf values"
    assert report.bad_events == [(file, 1, reason)]
    good, sizes = _products(tmp_path / "nan_energy_spice.h5", 0)
    assert sizes["data"] == sizes["semantics_pred"] > 100 and len(good.cluster3d["spice"]) > 0
    bad, sizes = _products(tmp_path / "nan_energy_spice.h5", 1)
    # Empty products (no voxels, no clusters): "no prediction", entries stay aligned.
    assert sizes == {"data": 0, "semantics": 0, "semantics_pred": 0}
    assert all(len(product) == 0 for product in bad.cluster3d.values())
    assert (bad.run, bad.subrun, bad.event) == (good.run, good.subrun, good.event + 1)
    row = {"file": file, "entry": "1", "reason": reason}
    assert read_rows(tmp_path / "nan_energy_skipped.csv") == [row]
    assert read_rows(tmp_path / "good_skipped.csv") == []
    assert read_rows(tmp_path / "skipped.csv") == [row]
    assert [r["entry"] for r in read_rows(tmp_path / "nan_energy_timing.csv")] == ["0"]


def test_bad_first_entry_keeps_later_entries_aligned(corpus, predict_cfg, tmp_path):
    # larcv3 adds a product's rows from the first entry that sets it: the
    # prediction products start at entry 1 here, and must still read back there.
    file = str(corpus["nan_first_entry"])
    report = predict_files(predict_cfg, [file], str(tmp_path))
    assert report.bad_events == [(file, 0, "'sparse3d_data' has 1 NaN/inf values")]
    first, sizes = _products(tmp_path / "nan_first_entry_spice.h5", 0)
    assert sizes == {"data": 0, "semantics": 0} and first.cluster3d == {}
    second, sizes = _products(tmp_path / "nan_first_entry_spice.h5", 1)
    original = Larcv3Reader([file])[1]
    assert sizes["data"] == sizes["semantics_pred"] == len(original.sparse3d["data"].coords)
    assert (second.run, second.subrun, second.event) == (original.run, original.subrun,
                                                         original.event)
    assert len(second.cluster3d["spice"]) == len(second.particles["spice"]) > 0


def test_evaluate_reports_the_event_predict_skipped(corpus, predict_cfg, train_cfg, tmp_path):
    from analysis.evaluate import evaluate

    predict_files(predict_cfg, [str(corpus["nan_energy"])], str(tmp_path / "pred"))
    output = str(tmp_path / "pred" / "nan_energy_spice.h5")
    cfg = dict(predict_cfg, io=dict(predict_cfg["io"], dataset=train_cfg["io"]["dataset"]))
    report = evaluate(cfg, [output], str(tmp_path / "eval"), quiet=True)
    assert not report.failed_files and report.evaluated == [output]
    assert report.bad_events == [(output, 1, "no prediction (skipped by predict)")]
    assert [r["entry"] for r in read_rows(tmp_path / "eval" / "events.csv")] == ["0"]


def test_predict_ignores_defects_in_products_it_does_not_read(corpus, predict_cfg, tmp_path):
    # predict reads sparse3d_data only: bad labels must not cost the event.
    report = predict_files(predict_cfg, [str(corpus["semantic_out_of_range"])], str(tmp_path))
    assert report.bad_events == [] and len(report.written) == 1
    record, sizes = _products(tmp_path / "semantic_out_of_range_spice.h5", 1)
    assert sizes["data"] == sizes["semantics_pred"] > 100
    assert float(record.sparse3d["semantics"].values.max()) == 7.0  # copied unchanged


def test_on_bad_event_raise_stops_predict_and_leaves_no_output(corpus, predict_cfg, tmp_path):
    cfg = dict(predict_cfg, io=dict(predict_cfg["io"], on_bad_event="raise"))
    file = str(corpus["duplicate_voxels"])
    with pytest.raises(BadEventError) as err:
        predict_files(cfg, [file], str(tmp_path))
    assert str(err.value) == f"{file} entry 1: 'sparse3d_data' has 1 duplicated voxels"
    assert not [p for p in tmp_path.iterdir() if not p.name.startswith(".")]
    assert not list(tmp_path.glob(".*.tmp*"))


def test_training_skips_bad_events_into_skipped_csv(corpus, train_cfg, tmp_path):
    from mlreco_spice.config import load_config
    from mlreco_spice.train import train

    from robust_helpers import TINY_ARCH
    from test_bad_events import BAD

    import re

    files = [str(corpus[name]) for name in sorted(BAD)] + [str(corpus[n]) for n in
                                                          ("zero_voxels", "one_voxel")]
    cfg = load_config("full_chain", [*TINY_ARCH, f"io.dataset.files={files}",
                                     f"train.output_dir={tmp_path}", "train.iterations=1",
                                     f"io.loader.batch_size={2 * len(files)}",
                                     "io.loader.shuffle=false", "train.deterministic=false"])
    result = train(cfg, progress=False)
    assert result.last_iteration == 1 and result.last_checkpoint.exists()
    rows = read_rows(tmp_path / "skipped.csv")
    assert [(r["file"], r["entry"]) for r in rows] == [(str(corpus[n]), "1") for n in sorted(BAD)]
    for row, name in zip(rows, sorted(BAD)):
        assert re.fullmatch(BAD[name], row["reason"]), row


def test_cpu_time_of_a_skipped_batch_goes_to_the_next_row(corpus, tmp_path, monkeypatch):
    # Entry 0 is bad (the whole first batch is skipped: no row), entry 1 is good.
    import time
    import types

    import mlreco_spice.train as train_module
    from mlreco_spice.config import load_config
    from mlreco_spice.training_log import read_train_log

    from robust_helpers import TINY_ARCH

    ticks = iter(range(100))  # a CPU clock that advances 1 s per reading
    clock = types.SimpleNamespace(**{n: getattr(time, n) for n in dir(time) if not n.startswith("_")})
    clock.process_time = lambda: float(next(ticks))
    monkeypatch.setattr(train_module, "time", clock)
    cfg = load_config("full_chain", [*TINY_ARCH, f"io.dataset.files=[{corpus['nan_first_entry']}]",
                                     f"train.output_dir={tmp_path}", "train.iterations=2",
                                     "io.loader.batch_size=1", "io.loader.shuffle=false",
                                     "train.deterministic=false"])
    train_module.train(cfg, progress=False)
    rows = read_train_log(tmp_path / "train_log.csv")
    assert [r["iteration"] for r in rows] == ["2"]
    # Readings: the start (0), the skipped iteration (1), the written row (2): the row
    # counts both iterations' 2 s, not only its own 1 s.
    assert float(rows[0]["cpu_s"]) == 2.0
