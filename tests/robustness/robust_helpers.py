"""Helpers shared by the robustness tests (a plain module: test files import it by name)."""
import csv
import os
import subprocess
import sys
from pathlib import Path

#: Architecture of the ``tiny_trained`` checkpoint (tests/conftest.py).
TINY_ARCH = ["model.modules.spice.network.uresnet={filters: 4, depth: 2, reps: 1, input_kernel: 3}",
             "model.modules.uresnet.network.uresnet={filters: 4, depth: 2, reps: 1, input_kernel: 3}"]


def cli(*args, timeout=300):
    """Run ``python -m mlreco_spice ARGS`` in a subprocess; return the CompletedProcess."""
    return subprocess.run([sys.executable, "-m", "mlreco_spice", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=dict(os.environ))


def predict_args(weights, inputs, outdir, *extra):
    """Arguments of a quiet ``predict`` run with the tiny model and no tuned thresholds."""
    sets = [a for s in ["predict.thresholds=null", *TINY_ARCH] for a in ("--set", s)]
    return ["-q", "predict", "-i", *map(str, inputs), "-o", str(outdir), "--weights", str(weights),
            *sets, *extra]


def read_rows(path: Path):
    """Rows of a CSV file as dicts."""
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


def io_for(cfg, files, **changes):
    """``cfg["io"]`` reading ``files``, with top-level io keys changed (e.g. max_voxels)."""
    io = dict(cfg["io"], **changes)
    io["dataset"] = dict(io["dataset"], files=[str(f) for f in files])
    return io
