"""Schedule race driver (benchmarks/schedule_race.py): the contenders' schedules, reuse of a
mask-race contender as the cosine one, and its refusal when that race ran otherwise."""
import csv
import subprocess
import sys
from pathlib import Path

import pytest

from mlreco_spice.training_log import read_train_log

ROOT = Path(__file__).resolve().parent.parent
TINY_ARCH = "model.modules.spice.network.uresnet={filters: 4, depth: 2, reps: 1, input_kernel: 3}"
LR = 0.002  # spice_stage_train.yaml's


def _run(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)


def test_schedule_race_reuses_the_mask_race_cosine_and_trains_the_others(tiny_files, tmp_path):
    common = ["--train", str(tiny_files[0]), "--val", str(tiny_files[1]), "--iterations", "3",
              "--batch", "2", "--val-events", "4", "--norm-length", "96", "--set", TINY_ARCH]
    masks = tmp_path / "masks"
    done = _run("mask_race.py", *common, "--out", str(masks), "--contenders", "bce")
    assert done.returncode == 0, done.stderr[-3000:]

    out = tmp_path / "schedules"
    race = _run("schedule_race.py", *common, "--out", str(out), "--mask-loss", "bce",
                "--contenders", "cosine", "constant", "step", "--reuse",
                f"cosine={masks / 'bce'}")
    assert race.returncode == 0, race.stderr[-3000:]
    assert "cosine: trained" in race.stderr  # copied, not trained again
    assert (out / "cosine" / "summary.json").read_text() == \
        (masks / "bce" / "summary.json").read_text()
    rates = {name: [float(r["lr"]) for r in read_train_log(out / name / "train" / "train_log.csv")]
             for name in ("constant", "step")}
    assert rates["constant"] == pytest.approx([LR] * 3)
    assert rates["step"] == pytest.approx([LR, LR, LR * 0.1])  # step_size round(2 * 3 / 3) = 2
    for name in ("constant", "step"):  # the fixed mask loss reached the trainer
        assert "mask_loss=bce" in (out / name / "attempts.json").read_text()
    with open(out / "race.csv", newline="") as f:
        assert {r["contender"] for r in csv.DictReader(f)} == {"cosine", "constant", "step"}
    assert "| learning-rate schedule |" in (out / "race.md").read_text()

    # The mask race's contender of another loss is not this race's cosine.
    other = _run("schedule_race.py", *common, "--out", str(tmp_path / "s2"), "--mask-loss",
                 "lovasz", "--contenders", "cosine", "--reuse", f"cosine={masks / 'bce'}")
    assert other.returncode == 2 and "only cosine=MASK_RACE/lovasz" in other.stderr
    assert "Traceback" not in other.stderr
