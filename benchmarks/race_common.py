"""What the two training races share (``mask_race.py``, ``train_vs_spine.py``).

* :data:`SEED_SEARCH`: the paper's seed search alone (issue 17, "Definitions");
* :data:`RACE_SCHEDULE`: the learning-rate schedule the races were run with;
* :func:`resolve_files`: input files resolved, one-line errors when missing;
* :func:`lock_settings`: a rerun into the same output folder continues the race
  only with the same settings (``settings.json``);
* :func:`scaled_freeze`: the paper's two-stage schedule keeps its share of the run;
* :func:`run_measured`: a trainer run with one OpenMP thread, its own wall and CPU time.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Dict, Mapping, Sequence, Tuple

from mlreco_spice.atomic import atomic_write_text
from mlreco_spice.errors import UserError

__all__ = ["SEED_SEARCH", "RACE_SCHEDULE", "resolve_files", "lock_settings", "scaled_freeze",
           "run_measured"]

ROOT = Path(__file__).resolve().parent.parent
#: The paper's seed search alone, as clusterer keywords: at least one seed per present
#: class and leftover assignment allowed; refine, merge, connect, bend, absorb and
#: reconnect off.
SEED_SEARCH = {"mode": "fast", "at_least_one_seed": True, "assign_leftovers": True,
               "refine_iterations": 0, "merge_p": None, "connect_radius_cm": None,
               "connect_p": None, "connect_max_bend": None, "absorb_radius_cm": None,
               "absorb_p": None, "reconnect_after_absorb": False}


#: The races' learning-rate schedule, pinned so that their commands reproduce their tables
#: whatever the configs' schedule is now (``spice_stage_train.yaml`` moved to a constant rate
#: after the schedule race; ``schedule_race.py``'s contenders override it).
RACE_SCHEDULE = "train.lr_schedule={name: cosine, min_lr: 1.0e-5}"


def resolve_files(args: Any, names: Sequence[str]) -> None:
    """Replace each ``args.<name>`` by its absolute path; UserError naming the option
    when a file is missing."""
    for name in names:
        path = Path(getattr(args, name)).resolve()
        if not path.is_file():
            raise UserError(f"--{name}: file not found: {path}")
        setattr(args, name, str(path))


def lock_settings(out: Path, settings: Mapping[str, Any]) -> None:
    """Record ``settings`` in ``out/settings.json``, or refuse a rerun with others."""
    path = Path(out) / "settings.json"
    if path.is_file():
        held = json.loads(path.read_text())
        changed = [k for k in settings if held.get(k) != settings[k]]
        if changed:
            raise UserError(f"{out} holds a race with other settings (" + "; ".join(
                f"{k} {held.get(k)!r}, now {settings[k]!r}" for k in changed)
                + "): use another --out")
        return
    Path(out).mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(dict(settings), indent=1) + "\n")


def scaled_freeze(train_cfg: Dict[str, Any], iterations: int) -> int:
    """Iterations with the seediness branch frozen: the config's share (800 of 3600)
    of a run of ``iterations``."""
    return round(iterations * train_cfg["freeze_seediness_iterations"] / train_cfg["iterations"])


def run_measured(cmd: Sequence[str], console: Path) -> Tuple[int, float, float, bool]:
    """Run ``cmd`` with one OpenMP thread; exit code, wall and CPU seconds of the process,
    and whether Ctrl-C stopped it (it is then waited for, so its time is still counted)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    tick = time.perf_counter()
    interrupted = False
    with open(console, "ab") as out:
        proc = subprocess.Popen(list(cmd), stdout=out, stderr=subprocess.STDOUT, env=env,
                                cwd=ROOT)
        try:
            # wait4: the CPU time of this child alone (several run at once).
            _, status, usage = os.wait4(proc.pid, 0)
        except KeyboardInterrupt:
            interrupted = True
            proc.send_signal(signal.SIGINT)  # the trainer saves a checkpoint and exits
            _, status, usage = os.wait4(proc.pid, 0)
    return os.waitstatus_to_exitcode(status), time.perf_counter() - tick, \
        usage.ru_utime + usage.ru_stime, interrupted
