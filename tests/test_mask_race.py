"""Mask-loss race driver (benchmarks/mask_race.py) end to end on tiny files, then resumed."""
import csv
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TINY_ARCH = "model.modules.spice.network.uresnet={filters: 4, depth: 2, reps: 1, input_kernel: 3}"
CONTENDERS = ("lovasz", "bce")
METHODS = ("spice_paper_seeds", "spice_truth_centroids")
CLASSES = ("HIP", "MIP", "Shower", "Delta", "Michel")


def _race(*args: str) -> subprocess.CompletedProcess:
    # A subprocess: the driver's pool spawns workers that import it as a script.
    return subprocess.run([sys.executable, str(ROOT / "benchmarks/mask_race.py"), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)


def test_mask_race_end_to_end_and_resume(tiny_files, tmp_path):
    out = tmp_path / "race"
    args = ["--train", str(tiny_files[0]), "--val", str(tiny_files[1]), "--out", str(out),
            "--iterations", "3", "--batch", "2", "--contenders", *CONTENDERS, "--parallel", "2",
            "--val-events", "4", "--norm-length", "96", "--set", TINY_ARCH]
    first = _race(*args)
    assert first.returncode == 0, first.stderr[-3000:]
    with open(out / "race.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    keys = {(r["contender"], r["method"], r["class"]) for r in rows}
    assert keys == {(n, m, c) for n in CONTENDERS for m in METHODS for c in CLASSES}
    assert len(rows) == len(keys)
    scored = [float(r["ari"]) for r in rows if r["ari"] not in ("", "nan")]
    # Every class present in the scoring half has an ARI, and HIP/MIP/Shower are present.
    assert all(math.isfinite(a) and -1.0 <= a <= 1.0 for a in scored)
    assert all(r["ari"] not in ("", "nan") for r in rows if r["class"] in CLASSES[:3])
    for r in rows:
        assert int(r["iterations"]) == 3 and int(r["event_passes"]) == 6
        assert float(r["train_cpu_s"]) > 0 and float(r["train_wall_s"]) > 0
        assert (r["tune_entries"], r["score_entries"]) == ("0-2", "2-4")
    table = (out / "race.md").read_text()
    assert "| `lovasz` |" in table and "| `bce` |" in table and "Winner" in table
    assert table in first.stdout

    checkpoints = {p: p.stat().st_mtime_ns for p in out.glob("*/train/checkpoint-*.pt")}
    assert len(checkpoints) == 2 * len(CONTENDERS)  # keep_checkpoints=2
    csv_before = (out / "race.csv").read_text()
    second = _race(*args)
    assert second.returncode == 0, second.stderr[-3000:]
    assert second.stderr.count("skipped") == 2 * len(CONTENDERS)  # trained, scored
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/train/checkpoint-*.pt")} == checkpoints
    assert (out / "race.csv").read_text() == csv_before

    # Other settings into the same directory, and a missing file: one-line errors.
    changed = _race(*[a if a != "3" else "4" for a in args])
    assert changed.returncode == 2 and "holds a race with other settings" in changed.stderr
    missing = _race("--train", str(tmp_path / "none.h5"), "--val", str(tiny_files[1]),
                    "--out", str(out))
    assert missing.returncode == 2 and "--train: file not found" in missing.stderr
    assert "Traceback" not in changed.stderr + missing.stderr
