"""Kills with real processes and signals, and a predict run over good and bad files mixed.

A process held at a known point (a wrapper script pauses it inside a
checkpoint write or inside an event) is killed with SIGKILL; nothing under a
final name may be partial, and a re-run must finish the rest without
duplicating anything. (SIGINT during train: tests/test_train.py.)
"""
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from mlreco_spice.checkpoint import list_checkpoints, load_checkpoint
from mlreco_spice.predict import read_provenance
from parsers.readers.larcv3 import Larcv3Reader
from robust_helpers import TINY_ARCH, cli, predict_args, read_rows

#: Runs the CLI with torch.save or InferenceEngine.run patched to stop at a known point.
HOLD_SCRIPT = '''
import io, os, sys, time
from pathlib import Path

def hold():
    Path(os.environ["HOLD_MARKER"]).write_text("holding")
    time.sleep(600)

if os.environ.get("HOLD_AT_SAVE"):
    import torch
    real_save, calls = torch.save, []
    def save(obj, stream, *args, **kwargs):
        calls.append(1)
        if len(calls) < int(os.environ["HOLD_AT_SAVE"]):
            return real_save(obj, stream, *args, **kwargs)
        buffer = io.BytesIO()
        real_save(obj, buffer, *args, **kwargs)
        stream.write(buffer.getvalue()[:buffer.tell() // 2])  # killed half-way through
        stream.flush()
        hold()
    torch.save = save
if os.environ.get("HOLD_AT_EVENT"):
    from mlreco_spice.inference import InferenceEngine
    real_run = InferenceEngine.run
    def run(self, item):
        if Path(item["file"]).name == os.environ["HOLD_AT_EVENT"] and item["entry"] == 1:
            hold()
        return real_run(self, item)
    InferenceEngine.run = run
from mlreco_spice.cli import main
sys.exit(main(sys.argv[1:]))
'''


def _run_until_held(tmp_path, args, **env):
    """Start the CLI under HOLD_SCRIPT, wait until it holds, SIGKILL it."""
    script, marker = tmp_path / "hold.py", tmp_path / "held"
    script.write_text(HOLD_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, HOLD_MARKER=str(marker), **env))
    deadline = time.time() + 400
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    if not marker.exists():
        proc.kill()
        pytest.fail(f"the process never reached the hold point: {proc.communicate()[1][-3000:]}")
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL


def test_sigkill_during_checkpoint_write_then_resume(tiny_files, tmp_path):
    from mlreco_spice.config import dump_config, load_config
    from mlreco_spice.training_log import read_train_log

    out = tmp_path / "run"
    cfg = load_config("full_chain", [*TINY_ARCH, f"io.dataset.files={[str(f) for f in tiny_files]}",
                                     f"train.output_dir={out}", "train.iterations=6",
                                     "train.checkpoint_every=2", "io.loader.batch_size=1"])
    (tmp_path / "cfg.yaml").write_text(dump_config(cfg))
    # Killed while checkpoint-0000004.pt is half written.
    _run_until_held(tmp_path, ["-q", "train", "-c", tmp_path / "cfg.yaml"], HOLD_AT_SAVE="2")
    assert [p.name for p in list_checkpoints(out)] == ["checkpoint-0000002.pt"]
    assert load_checkpoint(out / "checkpoint-0000002.pt")["iteration"] == 2
    partial = list(out.glob(".checkpoint-0000004.pt.*.tmp.pt"))
    assert len(partial) == 1 and partial[0].stat().st_size > 0  # only ever under a temp name
    assert [r["iteration"] for r in read_train_log(out / "train_log.csv")] == ["1", "2", "3", "4"]

    proc = cli("-q", "train", "-c", tmp_path / "cfg.yaml", "--resume")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [load_checkpoint(p)["iteration"] for p in list_checkpoints(out)] == [2, 4, 6]
    assert not list(out.glob(".*.tmp*"))  # the stale temporary file was removed
    assert [r["iteration"] for r in read_train_log(out / "train_log.csv")] == \
        [str(i) for i in range(1, 7)]


def test_sigkill_during_predict_then_rerun_finishes_without_duplicates(corpus, tiny_trained,
                                                                        tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name, source in (("a", "good"), ("b", "nan_energy"), ("c", "good")):
        shutil.copy(corpus[source], inputs / f"{name}.h5")
    out = tmp_path / "out"
    args = predict_args(tiny_trained, [inputs], out)
    _run_until_held(tmp_path, args, HOLD_AT_EVENT="c.h5")  # killed inside c.h5, entry 1
    finals = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert finals == ["a_skipped.csv", "a_spice.h5", "a_timing.csv",
                      "b_skipped.csv", "b_spice.h5", "b_timing.csv"]
    for stem in ("a", "b"):  # complete: provenance, every entry, every timing row
        assert read_provenance(out / f"{stem}_spice.h5") is not None
        assert len(Larcv3Reader([str(out / f"{stem}_spice.h5")])) == 2
    assert list(out.glob(".c_spice.h5.*.tmp.h5"))  # c only under temporary names
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("[ab]_*")}

    proc = cli(*args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("[ab]_*")} == stamps  # not redone
    assert len(Larcv3Reader([str(out / "c_spice.h5")])) == 2
    assert len(read_rows(out / "c_timing.csv")) == 2
    assert not list(out.glob(".*.tmp*"))
    assert read_rows(out / "skipped.csv") == [{"file": str(inputs / "b.h5"), "entry": "1",
                                              "reason": "'sparse3d_data' has 1 NaN/inf values"}]
    assert not (out / "failed_files.csv").exists()


def test_predict_over_good_and_bad_files(corpus, tiny_trained, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    names = ("good", "nan_energy", "empty", "truncated", "not_larcv", "zero_voxels")
    for name in names:
        shutil.copy(corpus[name], inputs / f"{name}.h5")
    out = tmp_path / "out"
    proc = cli(*predict_args(tiny_trained, [inputs], out, "--max-events", "2"))
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    failed = read_rows(out / "failed_files.csv")
    assert [r["file"] for r in failed] == [str(inputs / f"{n}.h5") for n in
                                           ("empty", "not_larcv", "truncated")]
    assert failed[0]["reason"] == f"input file {inputs / 'empty.h5'} is empty (0 bytes)"
    assert "is HDF5 but neither larcv3" in failed[1]["reason"]
    assert "is a corrupt or truncated HDF5 file" in failed[2]["reason"]
    for row in failed:
        assert f"ERROR mlreco_spice.predict: failed {row['file']}: {row['reason']}" in proc.stderr
    done = sorted(p.name for p in out.glob("*_spice.h5"))
    assert done == ["good_spice.h5", "nan_energy_spice.h5", "zero_voxels_spice.h5"]
    row = {"file": str(inputs / "nan_energy.h5"), "entry": "1",
           "reason": "'sparse3d_data' has 1 NaN/inf values"}
    assert read_rows(out / "nan_energy_skipped.csv") == [row]
    assert read_rows(out / "skipped.csv") == [row]

    # Fix one bad file and re-run: it is done, the others still fail, nothing doubles.
    shutil.copy(corpus["good"], inputs / "empty.h5")
    again = cli(*predict_args(tiny_trained, [inputs], out, "--max-events", "2"))
    assert again.returncode == 1
    assert [r["file"] for r in read_rows(out / "failed_files.csv")] == \
        [str(inputs / f"{n}.h5") for n in ("not_larcv", "truncated")]
    assert (out / "empty_spice.h5").exists()
    assert read_rows(out / "skipped.csv") == [row]
