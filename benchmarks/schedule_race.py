"""Learning-rate schedule race (issue 17, deliverable 1): which schedule SPICE trains with.

The mask-loss race's driver (``mask_race.py``) with contenders that vary
``train.lr_schedule`` instead of the mask loss, which is fixed (``--mask-loss``,
the mask race's winner). Everything else is the same for all and the same as in
the mask race: ``chain_configs/spice_stage_train.yaml``, Adam at its learning rate,
``--iterations`` of ``--batch`` events, the same events in the same order, the
seediness branch frozen for the config's share of the run, one process with one
OpenMP thread per contender, and the same scoring (the paper's seed search alone,
tuned on validation entries [0, n/2), scored on [n/2, n); the truth-centroid
diagnostic).

Contenders:

``cosine``    cosine from the learning rate to ``min_lr`` 1e-5 over the run (the mask race's,
              ``race_common.RACE_SCHEDULE``)
``constant``  no schedule
``step``      the rate times 0.1 after two thirds of the run

The cosine's length is the run's, fixed when it starts; ``constant`` and ``step``
would let a run go on without planning its length. The race says what that costs.

``--reuse cosine=MASK_RACE/<loss>`` takes the cosine contender from a finished mask
race run with the same files, iterations, batch, validation events and image size
(its contender ``<loss>`` is exactly this race's ``cosine`` with ``--mask-loss <loss>``)
instead of training it again; it is copied into ``--out``.

Outputs as the mask race's (``race.csv``, ``race.md``, per contender folders);
rerun the same command to resume.

Usage::

    .venv/bin/python benchmarks/schedule_race.py --train train.h5 --val val.h5 --out runs/sched \\
        --mask-loss lovasz [--iterations 1700] [--batch 2] [--parallel 2] \\
        [--reuse cosine=runs/mask_race/lovasz]
"""
from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from mlreco_spice.errors import UserError, run_script

sys.path.insert(0, str(Path(__file__).resolve().parent))
import mask_race  # noqa: E402

log = mask_race.log
SCHEDULES = ("cosine", "constant", "step")
#: Settings a reused mask-race contender must share with this race.
SHARED = ("train", "val", "iterations", "batch", "val_events", "norm_length", "device")


def schedule_sets(iterations: int) -> Dict[str, List[str]]:
    """Each contender's ``--set`` overrides for a run of ``iterations``."""
    return {"cosine": [],  # the races' pinned cosine (race_common.RACE_SCHEDULE)
            "constant": ["train.lr_schedule=null"],
            "step": ["train.lr_schedule={name: step, step_size: %d, gamma: 0.1}"
                     % max(1, round(2 * iterations / 3))]}


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Command-line options (see ``--help``)."""
    p = mask_race.race_parser(__doc__.split("Usage::")[0], SCHEDULES, "schedules")
    p.add_argument("--mask-loss", required=True, choices=mask_race.CONTENDERS,
                   help="the mask loss every contender trains with (the mask race's winner)")
    p.add_argument("--reuse", action="append", default=[], metavar="NAME=DIR",
                   help="take contender NAME from a finished mask-race contender folder "
                   "(only cosine = MASK_RACE/<mask loss> qualifies)")
    args = mask_race.check_race_args(p, p.parse_args(argv))
    args.contender_sets = schedule_sets(args.iterations)
    args.overrides = [f"model.modules.spice.loss.mask_loss={args.mask_loss}", *args.overrides]
    reuse = {}
    for item in args.reuse:
        name, sep, folder = item.partition("=")
        if not sep or name not in args.contenders:
            p.error(f"--reuse {item!r}: expected NAME=DIR with NAME one of {args.contenders}")
        reuse[name] = folder
    args.reuse = reuse
    return args


def reuse_contender(args: argparse.Namespace, name: str, folder: str) -> None:
    """Copy a finished mask-race contender into ``--out/<name>``, after checking it trained
    exactly as this race's ``name`` would."""
    source = Path(folder).resolve()
    target = Path(args.out) / name
    if target.exists():
        return
    if name != "cosine" or source.name != args.mask_loss:
        raise UserError(f"--reuse {name}={folder}: only cosine=MASK_RACE/{args.mask_loss} is "
                        "the same training run")
    settings = source.parent / "settings.json"
    for needed in (settings, source / "train.json", source / "summary.json"):
        if not needed.is_file():
            raise UserError(f"--reuse {name}={folder}: {needed} is missing (an unfinished race?)")
    held = json.loads(settings.read_text())
    differ = [k for k in SHARED if held.get(k) != getattr(args, k)]
    if differ or held.get("overrides") != args.overrides[1:]:
        raise UserError(f"--reuse {name}={folder}: that race ran with other settings ("
                        + ", ".join(differ or ["overrides"]) + ")")
    log.info("%s: reusing %s", name, source)
    shutil.copytree(source, target)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the race; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    mask_race.check_inputs(args, extra=("mask_loss",))
    for name, folder in args.reuse.items():
        reuse_contender(args, name, folder)
    command = shlex.join([sys.executable, "benchmarks/schedule_race.py", *argv])
    return mask_race.run_race(args, command, label="learning-rate schedule")


if __name__ == "__main__":
    run_script(main, log.name)
