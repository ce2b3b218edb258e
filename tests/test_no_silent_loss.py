"""Batch jobs and training runs never silently lose, skip or mix work (issue 20).

Each test is one way a run used to end "successfully" with less or other work
than asked: partial predict outputs taken as complete, two training runs mixed
in one directory, a resumed schedule re-raising the learning rate, outputs
that cannot be written found out only after the work, loss terms missing from
the log, silent no-ops and overwrites, and misleading messages.
"""
import logging
import os
import shutil
from pathlib import Path

import pytest

from mlreco_spice.cli import main
from mlreco_spice.config import load_config
from mlreco_spice.errors import DataError, UserError
from mlreco_spice.training_log import TrainLog, read_train_log
from test_predict import TINY_ARCH
from test_train import tiny_cfg


@pytest.fixture(scope="module")
def predict_cfg(tiny_trained):
    return load_config("predict", [f"predict.weights={tiny_trained}", "predict.thresholds=null",
                                   *TINY_ARCH])


def _cli_run_args(tiny_trained):
    """Arguments that make predict/evaluate/display/tune use the tiny trained chain."""
    args = ["--weights", str(tiny_trained), "--set", "predict.thresholds=null"]
    for item in TINY_ARCH:
        args += ["--set", item]
    return args


@pytest.fixture
def unwritable(tmp_path, monkeypatch):
    """A directory this process may not write in.

    Mode 0555 stops an ordinary user. Root writes anyway (and then nothing
    fails), so as root the permission answer is simulated: ``os.access``, which
    the output check asks first, says no for this directory.
    """
    folder = tmp_path / "readonly"
    folder.mkdir()
    folder.chmod(0o555)
    if os.geteuid() == 0:
        real_access = os.access

        def access(path, mode, *args, **kwargs):
            if mode & os.W_OK and Path(path).resolve() == folder.resolve():
                return False
            return real_access(path, mode, *args, **kwargs)

        monkeypatch.setattr(os, "access", access)
    yield folder
    folder.chmod(0o755)


def _entries(path):
    from parsers.readers import open_reader

    reader = open_reader(str(path))
    try:
        return len(reader)
    finally:
        reader.close()


def _larcv_copy(source, target, keep_entries=True, drop=()):
    """Copy a larcv3 file with h5py: optionally with no entries, or without some datasets."""
    import h5py

    shutil.copy(source, target)
    with h5py.File(target, "r+") as h5:
        for name in drop:
            del h5[name]
        if not keep_entries:
            tables = ["Events/event_id"] + [f"Data/{g}/extents" for g in h5["Data"]
                                            if "extents" in h5["Data"][g]]
            for name in tables:
                dtype = h5[name].dtype
                del h5[name]
                h5.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dtype, chunks=True)
    return target


# -- 1. a --max-events trial must not make the real run skip --------------------------------
def test_max_events_trial_output_is_redone_by_a_full_run(predict_cfg, tiny_files, tmp_path):
    from mlreco_spice.predict import output_name, predict_files

    file = str(tiny_files[0])
    target = tmp_path / output_name(file)
    predict_files(predict_cfg, [file], str(tmp_path), max_events=2)
    assert _entries(target) == 2
    full = predict_files(predict_cfg, [file], str(tmp_path))
    assert full.written == [target] and not full.skipped_complete
    assert _entries(target) == 4
    # An output holding every event covers a later, smaller request: skipped.
    again = predict_files(predict_cfg, [file], str(tmp_path), max_events=2)
    assert again.skipped_complete == [target] and _entries(target) == 4
    # 6. no lock file left behind by a successful run
    assert not (tmp_path / ".predict.lock").exists()


# -- 2. training into a directory that holds a run -------------------------------------------
def test_train_refuses_a_directory_holding_a_run_unless_resume_or_overwrite(tiny_files, tmp_path):
    from mlreco_spice.checkpoint import list_checkpoints
    from mlreco_spice.train import train

    out = tmp_path / "run"
    train(tiny_cfg(tiny_files, out, iterations=4, extra=["train.checkpoint_every=2"]), progress=False)
    (out / "skipped.csv").write_text("file,entry,reason\nold.h5,0,old run\n")
    before = sorted(p.name for p in out.iterdir())
    with pytest.raises(UserError, match=r"--resume.*--overwrite"):
        train(tiny_cfg(tiny_files, out, iterations=2), progress=False)
    assert sorted(p.name for p in out.iterdir()) == before  # nothing touched
    with pytest.raises(UserError, match="not both"):
        train(tiny_cfg(tiny_files, out, iterations=2), resume=True, overwrite=True, progress=False)
    train(tiny_cfg(tiny_files, out, iterations=2, extra=["train.checkpoint_every=2"]),
          overwrite=True, progress=False)
    assert [p.name for p in list_checkpoints(out)] == ["checkpoint-0000002.pt"]
    assert [int(r["iteration"]) for r in read_train_log(out / "train_log.csv")] == [1, 2]
    assert not (out / "skipped.csv").exists()


def test_train_cli_has_overwrite(tiny_files, tmp_path):
    from mlreco_spice.cli import build_parser

    args = build_parser().parse_args(["train", "-c", "spice_train", "--overwrite"])
    assert args.overwrite and not args.resume


# -- 3. resuming with a longer train.iterations ----------------------------------------------
def test_resume_with_more_iterations_never_raises_the_learning_rate(tiny_files, tmp_path, caplog):
    from mlreco_spice.train import train

    out = tmp_path / "cos"
    schedule = ["train.lr_schedule={name: cosine, min_lr: 0.001}", "train.checkpoint_every=5"]
    train(tiny_cfg(tiny_files, out, iterations=5, extra=schedule), progress=False)
    with caplog.at_level(logging.WARNING, logger="mlreco_spice.train"):
        train(tiny_cfg(tiny_files, out, iterations=10, extra=schedule), resume=True, progress=False)
    lrs = [float(r["lr"]) for r in read_train_log(out / "train_log.csv")]
    assert len(lrs) == 10
    assert all(b <= a * (1 + 1e-6) for a, b in zip(lrs, lrs[1:])), lrs
    assert "train.iterations" in caplog.text and "5" in caplog.text and "10" in caplog.text


# -- 4. unwritable or wrong output locations fail before any work ----------------------------
def test_predict_into_unwritable_directory_fails_before_work(predict_cfg, tiny_files, unwritable,
                                                            monkeypatch):
    import mlreco_spice.inference as inference
    from mlreco_spice.predict import predict_files

    def no_engine(*args, **kwargs):
        raise AssertionError("the network was built before the output was checked")

    monkeypatch.setattr(inference, "InferenceEngine", no_engine)
    with pytest.raises(UserError, match="write"):
        predict_files(predict_cfg, [str(tiny_files[0])], str(unwritable / "out"))


def test_predict_into_an_existing_file_is_one_clear_error(tiny_trained, tiny_files, tmp_path, caplog):
    target = tmp_path / "test.h5"
    target.write_bytes(b"keep")
    code = main(["predict", "-i", str(tiny_files[0]), "-o", str(target), *_cli_run_args(tiny_trained)])
    assert code == 2 and "is an existing file" in caplog.text and "Traceback" not in caplog.text
    assert target.read_bytes() == b"keep"


@pytest.mark.parametrize("command", ["evaluate", "display", "tune", "simulate", "train"])
def test_unwritable_output_is_one_clear_line(command, tiny_trained, tiny_files, unwritable, caplog,
                                             tmp_path):
    from mlreco_spice.config import dump_config

    inputs = ["-i", str(tiny_files[0])]
    argv = {"evaluate": ["evaluate", *inputs, "-o", str(unwritable / "eval")],
            "display": ["display", "-i", str(tiny_files[0]), "--entry", "0", "-o", str(unwritable)],
            "tune": ["tune", *inputs, "-o", str(unwritable / "t.yaml"), "--events", "2",
                     "--step", "0.5"],
            "simulate": ["simulate", "-o", str(unwritable / "sim.h5"), "-n", "1", "--size", "16"],
            }.get(command)
    if command in ("evaluate", "display", "tune"):
        argv += _cli_run_args(tiny_trained)
    if command == "train":
        cfg_path = tmp_path / "cfg.yaml"
        cfg_path.write_text(dump_config(tiny_cfg(tiny_files, unwritable / "run", iterations=1)))
        argv = ["train", "-c", str(cfg_path)]
    code = main(argv)
    assert code == 2, caplog.text
    assert "cannot write" in caplog.text and "Traceback" not in caplog.text
    assert list(unwritable.iterdir()) == []


# -- 5. every loss term gets a column, whenever it first appears ------------------------------
def test_train_log_keeps_a_term_first_seen_in_a_later_batch(tmp_path):
    path = tmp_path / "train_log.csv"
    log = TrainLog(path)
    log.write(1, {"loss": 1.0, "mask_HIP": 0.5}, 0.01, 0.1)
    log.write(2, {"loss": 0.9, "mask_HIP": 0.4, "mask_Michel": 0.3}, 0.01, 0.1)
    log.write(3, {"loss": 0.8, "mask_HIP": 0.3}, 0.01, 0.1)
    log.close()
    rows = read_train_log(path)
    assert [r["mask_Michel"] for r in rows] == ["", "0.3", ""]
    assert [r["mask_HIP"] for r in rows] == ["0.5", "0.4", "0.3"]
    # A resumed log that meets a new term keeps its earlier rows too.
    resumed = TrainLog(path, start_iteration=2)
    resumed.write(3, {"loss": 0.7, "mask_HIP": 0.2, "mask_Delta": 0.1}, 0.01, 0.1)
    resumed.close()
    rows = read_train_log(path)
    assert [r["iteration"] for r in rows] == ["1", "2", "3"]
    assert rows[1]["mask_Michel"] == "0.3" and rows[2]["mask_Delta"] == "0.1"


def test_train_log_from_before_cpu_column_gains_it_on_resume(tmp_path):
    path = tmp_path / "train_log.csv"
    path.write_text("iteration,lr,time_s,wall_time,loss\n1,0.01,0.5,100.0,1.0\n"
                    "2,0.01,0.5,101.0,0.9\n3,0.01,0.5,102.0,0.8\n")
    resumed = TrainLog(path, start_iteration=2)
    resumed.write(3, {"loss": 0.7}, 0.01, 0.4, cpu_seconds=0.75)
    resumed.close()
    rows = read_train_log(path)
    assert [r["iteration"] for r in rows] == ["1", "2", "3"]
    assert [r["cpu_s"] for r in rows] == ["", "", "0.7500"]
    assert [r["loss"] for r in rows] == ["1.0", "0.9", "0.7"]


# -- 6. silent no-ops and overwrites ------------------------------------------------------------
def test_empty_shard_says_so(predict_cfg, tiny_files, tmp_path, caplog):
    from mlreco_spice.predict import predict_files

    with caplog.at_level(logging.WARNING):
        report = predict_files(predict_cfg, [str(tiny_files[0])], str(tmp_path), shard=(1, 2))
    assert report.written == [] and "shard 1/2 has no files" in caplog.text
    assert not (tmp_path / ".predict.lock").exists()


def test_simulate_refuses_to_overwrite_without_flag(tmp_path, caplog):
    target = tmp_path / "sim.h5"
    target.write_bytes(b"precious")
    assert main(["simulate", "-o", str(target), "-n", "1", "--size", "16"]) == 2
    assert target.read_bytes() == b"precious" and "--overwrite" in caplog.text
    assert main(["simulate", "-o", str(target), "-n", "1", "--size", "16", "--overwrite"]) == 0
    assert _entries(target) == 1


# -- 7. messages that point the right way -------------------------------------------------------
def test_stats_of_a_file_without_entries_is_one_clear_line(tiny_files, tmp_path, caplog):
    empty = _larcv_copy(tiny_files[0], tmp_path / "empty.h5", keep_entries=False)
    assert main(["simulate", "--stats", str(empty)]) == 1
    assert "no events" in caplog.text and "Traceback" not in caplog.text


def test_larcv3_group_without_extents_is_reported_missing_not_corrupt(tiny_files, tmp_path):
    from parsers.readers import open_reader

    path = _larcv_copy(tiny_files[0], tmp_path / "nodata.h5",
                       drop=["Data/sparse3d_data_group/extents",
                             "Data/sparse3d_data_group/voxel_extents",
                             "Data/sparse3d_data_group/voxels", "Data/sparse3d_data_group/image_meta"])
    reader = open_reader(str(path), products=["sparse3d_data", "cluster3d_pcluster"])
    with pytest.raises(DataError) as err:
        reader[0]
    message = str(err.value)
    assert "corrupt" not in message and "sparse3d_data" in message
    assert "cluster3d_pcluster" in message and "particle_pcluster" in message  # what it holds


def test_evaluating_a_file_without_events_says_so(predict_cfg, tiny_files, tmp_path):
    from analysis.evaluate import evaluate

    empty = _larcv_copy(tiny_files[0], tmp_path / "empty.h5", keep_entries=False)
    report = evaluate(predict_cfg, [str(empty)], str(tmp_path / "eval"), quiet=True)
    assert "no semantic stage output" not in report.summary_text
    assert "no events" in report.summary_text
