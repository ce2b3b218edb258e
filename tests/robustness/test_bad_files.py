"""One test per file-level corpus case: a clear error naming the file and what is wrong.

``predict`` records an unusable file in ``failed_files.csv`` and goes on with
the others (exit code 1); a run that cannot proceed at all (a missing input,
a missing product in training) stops with exit code 1 and no traceback.
"""
import logging
import re

import pytest

from mlreco_spice.cli import main
from mlreco_spice.errors import DataError
from mlreco_spice.predict import predict_files
from parsers.dataset import SpiceDataset
from robust_helpers import TINY_ARCH, cli, io_for, predict_args, read_rows

FILE_ERRORS = {
    "empty": "input file {file} is empty (0 bytes)",
    "truncated": "input file {file} is a corrupt or truncated HDF5 file: Unable to synchronously "
                 "open file (truncated file: eof = ",
    "not_larcv": "input file {file} is HDF5 but neither larcv3 (no Data/Events groups) nor "
                 "PILArNet-M (no point/cluster datasets); top-level keys: weights",
    "corrupt": "input file {file} is a corrupt HDF5 file (its group structure cannot be read): ",
}


def _predict_fails(cfg, file, outdir, reason_start):
    report = predict_files(cfg, [str(file)], str(outdir))
    assert report.written == [] and len(report.failed_files) == 1
    failed, reason = report.failed_files[0]
    assert failed == str(file) and reason.startswith(reason_start), reason
    assert read_rows(outdir / "failed_files.csv") == [{"file": str(file), "reason": reason}]
    assert read_rows(outdir / "skipped.csv") == []
    assert sorted(p.name for p in outdir.iterdir()) == ["failed_files.csv", "skipped.csv"]


@pytest.mark.parametrize("case", ["empty", "truncated", "not_larcv"])
def test_unusable_file_is_listed_in_failed_files(case, corpus, predict_cfg, tmp_path):
    file = corpus[case]
    _predict_fails(predict_cfg, file, tmp_path, FILE_ERRORS[case].format(file=file))


def test_corrupt_hdf5_is_a_data_error_in_the_larcv3_reader(corpus, predict_cfg, tmp_path):
    file = corpus["corrupt"]
    cfg = dict(predict_cfg, io=dict(predict_cfg["io"], dataset=dict(predict_cfg["io"]["dataset"],
                                                                    format="larcv3")))
    _predict_fails(cfg, file, tmp_path, FILE_ERRORS["corrupt"].format(file=file))


def test_corrupt_hdf5_with_format_auto(corpus, predict_cfg, tmp_path):
    file = corpus["corrupt"]
    _predict_fails(predict_cfg, file, tmp_path, f"input file {file} is a corrupt")


def test_missing_input_stops_the_run_with_exit_1(corpus, tiny_trained, tmp_path):
    missing = corpus["missing"]
    proc = cli(*predict_args(tiny_trained, [corpus["good"], missing], tmp_path / "out"))
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"ERROR mlreco_spice: input file not found: {missing}"
    assert not (tmp_path / "out").exists()  # refused before any work


def test_product_missing_from_file_lists_the_ones_it_has(corpus, train_cfg, tmp_path, caplog):
    file = corpus["no_semantics"]
    expected = (f"{file}: product(s) sparse3d_semantics not found; the file has "
                f"cluster3d_pcluster, particle_pcluster, sparse3d_data")
    with pytest.raises(DataError, match=re.escape(expected)):
        SpiceDataset(io_for(train_cfg, [file]))[0]
    # Training cannot proceed: the CLI exits with 1 and the message, no traceback.
    caplog.set_level(logging.ERROR)
    code = main(["train", "-c", "full_chain", "--set", f"io.dataset.files=[{file}]",
                 "--set", f"train.output_dir={tmp_path / 'run'}", "--set", "train.iterations=2",
                 "--set", "train.deterministic=false",
                 *[a for s in TINY_ARCH for a in ("--set", s)]])
    assert code == 1
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == [expected]
    assert not list((tmp_path / "run").glob("checkpoint-*.pt"))
