"""Equal-compute race with SPINE 1.4.3's SPICE (issue 17, deliverable 3).

Both sides train SPICE alone on the true classes of the same simulated
events, read by our parsers (no ROOT), then cluster with their own
implementation and are scored by our metrics on the same test events.
Shared: the training events and the batch of every iteration, Adam, the
learning rate and its cosine schedule over ``--iterations``, the batch size,
the seed, the architecture, the classes clustered (all five) and the freeze of
the seediness branch over the first ``train.freeze_seediness_iterations``
(the config's 800 of 3600 scaled to ``--iterations``, as ``mask_race.py`` does;
``--set`` overrides it).

ours    ``chain_configs/spice_stage_train.yaml`` (with ``--set`` overrides),
        trained by ``mlreco-spice train``: our network and loss (Lovász
        mask loss, paper eq. II.4-6); while frozen, the seediness branch runs
        without autograd and its term is left out of the loss. Clustered by
        the paper's seed search alone (``mode: fast``, ``at_least_one_seed``,
        leftovers assigned; refine, merge, connect, bend, absorb, reconnect
        off), ``s0``/``p0`` per class tuned on the validation events by
        ``mlreco_spice.cluster.tuning`` (grid: s0 in [0, 1], p0 in [0, 0.6]).
SPINE   its ``SPICEEmbedder`` with our architecture (same filters, reps, input
        kernel, LeakyReLU slope, batch norm; depth + 1 as SPINE counts levels;
        ``spatial_size`` = our ``image_size`` or ``norm_length``) and its
        ``SPICELoss`` with SPINE's defaults (BCE on mask logits, L1
        seediness, margin smoothing, centroid separation), ``shapes`` = our
        five classes. Trained by ``spine_race.train_spine`` with our
        ``build_optimizer``/``build_scheduler``; the seediness branch is frozen
        the way SPINE's ``seed_freeze`` freezes it (parameters fixed, the
        branch still in train mode, its loss term kept, so it still trains
        the shared encoder); SPINE's flag holds for a whole run, so the
        driver releases it at the same iteration as ours. Clustered by
        SPINE's ``SPICEClusterer`` (its defaults: ``min_size`` 2, ``assign_all``),
        per-shape ``seed_threshold``/``probability_threshold`` picked by a grid
        search with our metrics on the same validation events
        (``spine_tuning.py``; both in [0, 1]: a wider grid than ours, which
        can only help SPINE).

Process layout, the same for both: each side trains in its own process on one
OpenMP thread (ours through ``mlreco-spice train``, SPINE's through this script
with ``--side spine``); ``--jobs 2`` (default) runs the two at once (one core each
on a 2-core machine), ``--jobs 1`` one after the other. Budget: ``--iterations`` x
``--batch`` event passes each. Wall and CPU time are those of the training
processes (start-up, data loading and checkpoints included; summed over resumed
attempts). Scoring: :func:`mlreco_spice.metrics.evaluate_event` (true clusters
under ``analysis.min_true_size`` = 10 voxels masked), both sides on each test
event in turn, in one run.

Resumable: rerun the same command to continue (``settings.json`` refuses a
rerun with other settings into the same ``--out``). Each side checkpoints every
``--checkpoint-every`` iterations in ``<out>/<side>/`` and resumes from its newest
checkpoint; Ctrl-C makes both save one and stop. A finished side
(``done.json``), tuned thresholds (``thresholds.yaml``) and a finished test
(``race.csv``) are skipped.

Outputs in ``--out``: ``race.csv`` (one row per side and class: mean ARI,
purity, efficiency), ``race.md`` (the table for BENCHMARKS.md with the command,
event passes, wall and CPU time of each side; also printed), ``events.csv``
(per side, test event and class); per side ``<side>/``: checkpoints,
``train.out`` (console), ``attempts.json``, ``done.json``, ``thresholds.yaml``.

Usage::

    .venv/bin/python benchmarks/train_vs_spine.py --train train.h5 --val val.h5 \\
        --test test_seed3.h5 --out runs/spine_race --iterations 1300 --batch 2
"""
from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import yaml

from mlreco_spice.atomic import atomic_write_text, check_output_dir
from mlreco_spice.columns import CLASS_NAMES
from mlreco_spice.errors import UserError, run_script

# A script beside its helper modules: importable both as a script and from tests.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from accuracy_report import write_csv  # noqa: E402
from race_common import (RACE_SCHEDULE, SEED_SEARCH, lock_settings,  # noqa: E402
                         resolve_files, run_measured,
                         scaled_freeze)
from race_report import RACE_COLUMNS, SIDES, race_markdown, race_rows  # noqa: E402

log = logging.getLogger("train_vs_spine")

CONFIG = "spice_stage_train"
EVENT_COLUMNS = ("side", "file", "entry", "class", "n_true", "n_pred", "ari", "purity",
                 "efficiency", "n_voxels_true", "n_voxels_pred")
#: Settings that must match for a rerun to continue the race in the same --out.
SETTINGS = ("train", "val", "test", "iterations", "batch", "val_events", "test_events",
            "checkpoint_every", "jobs", "grid_step", "overrides")


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Command-line options (see ``--help``)."""
    p = argparse.ArgumentParser(description=__doc__.split("Usage::")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train", required=True, help="labelled training file (larcv3 .h5)")
    p.add_argument("--val", required=True, help="labelled validation file: both sides' "
                   "thresholds are tuned on its first --val-events events")
    p.add_argument("--test", required=True, help="labelled test file: both sides are scored on "
                   "its first --test-events events")
    p.add_argument("--out", required=True, help="race directory (created; rerun to resume)")
    p.add_argument("--iterations", type=int, required=True,
                   help="training iterations of each side (the cosine's length, fixed at the start)")
    p.add_argument("--batch", type=int, default=2, help="events per iteration (default: %(default)s)")
    p.add_argument("--val-events", type=int, default=100, help="validation events (default: %(default)s)")
    p.add_argument("--test-events", type=int, default=200, help="test events (default: %(default)s)")
    p.add_argument("--checkpoint-every", type=int, default=100,
                   help="iterations between checkpoints of each side (default: %(default)s)")
    p.add_argument("--jobs", type=int, choices=(1, 2), default=2, help="sides training at once, "
                   "each one process with one OpenMP thread (default: %(default)s)")
    p.add_argument("--grid-step", type=float, default=0.05,
                   help="step of both sides' threshold grids (default: %(default)s)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help=f"override of our config ({CONFIG}.yaml), repeatable; io, train.optimizer, "
                   "lr_schedule, seed, freeze_seediness_iterations and the network's architecture "
                   "(model.modules.spice.network) apply to SPINE too")
    p.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)  # internal: train SPINE
    args = p.parse_args(argv)
    for name in ("iterations", "batch", "val_events", "test_events", "checkpoint_every"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    return args


def check_inputs(args: argparse.Namespace) -> None:
    """Resolve the files (one-line errors when missing), check --out and ``settings.json``."""
    resolve_files(args, ("train", "val", "test"))
    if args.test in (args.train, args.val):
        raise UserError("--test must differ from --train and --val: use an independent test set")
    check_output_dir(args.out, "--out")
    args.out = str(Path(args.out).resolve())
    if args.side:
        return
    lock_settings(Path(args.out), {k: getattr(args, k) for k in SETTINGS})


def race_overrides(args: argparse.Namespace) -> List[str]:
    """Our config's ``--set`` list for the race (then the user's ``--set``)."""
    from mlreco_spice.config import load_config

    freeze = scaled_freeze(load_config(CONFIG, [])["train"], args.iterations)
    return [f"io.dataset.files=[{args.train}]", f"train.iterations={args.iterations}",
            f"train.freeze_seediness_iterations={freeze}",
            f"io.loader.batch_size={args.batch}", f"train.output_dir={Path(args.out) / 'ours'}",
            f"train.checkpoint_every={args.checkpoint_every}", "train.keep_checkpoints=3",
            "train.device=cpu", RACE_SCHEDULE, *args.overrides]


def make_config(args: argparse.Namespace, extra: Sequence[str] = ()) -> Dict[str, Any]:
    """Our config of the race (SPINE's side reads its shared settings from it too)."""
    from mlreco_spice.config import load_config

    return load_config(CONFIG, race_overrides(args) + list(extra))


# ------------------------------------------------------------------ training --
def side_command(args: argparse.Namespace, side: str) -> List[str]:
    """The training process of ``side`` (resumes from its newest checkpoint)."""
    from mlreco_spice.checkpoint import latest_checkpoint

    if side == "spine":
        cmd = [sys.executable, str(Path(__file__).resolve()), "--train", args.train, "--val",
               args.val, "--test", args.test, "--out", args.out, "--iterations",
               str(args.iterations), "--batch", str(args.batch), "--checkpoint-every",
               str(args.checkpoint_every), "--side", "spine"]
        return cmd + [x for item in args.overrides for x in ("--set", item)]
    run_dir = Path(args.out) / "ours"
    cmd = [sys.executable, "-m", "mlreco_spice", "train", "-c", CONFIG]
    cmd += [x for item in race_overrides(args) for x in ("--set", item)]
    if latest_checkpoint(run_dir) is not None:
        return cmd + ["--resume"]
    return cmd + ["--overwrite"]  # nothing to continue (a run that died before its first checkpoint)


def train_spine_side(args: argparse.Namespace) -> None:
    """The SPINE training process (``--side spine``): one OpenMP thread, as ours."""
    import torch
    from spine_race import train_spine

    torch.set_num_threads(1)
    train_spine(make_config(args), Path(args.out) / "spine", args.checkpoint_every)


def _record_attempt(args: argparse.Namespace, side: str, attempt: Dict[str, Any]) -> List[Dict]:
    """Append one training process's figures to ``<side>/attempts.json``; all attempts."""
    path = Path(args.out) / side / "attempts.json"
    attempts = (json.loads(path.read_text()) if path.is_file() else []) + [attempt]
    atomic_write_text(path, json.dumps(attempts, indent=1) + "\n")
    return attempts


def _finish_side(args: argparse.Namespace, side: str, attempts: List[Dict[str, Any]]) -> None:
    """``done.json`` of ``side`` once its newest checkpoint is the last iteration."""
    from mlreco_spice.checkpoint import latest_checkpoint, load_checkpoint

    home = Path(args.out) / side
    checkpoint = latest_checkpoint(home)
    last = int(load_checkpoint(checkpoint)["iteration"]) if checkpoint else 0
    if last < args.iterations:
        raise UserError(f"{side}: training stopped at iteration {last} of {args.iterations} "
                        f"(exit code {attempts[-1]['exit_code']}); see {home / 'train.out'}, "
                        "rerun to resume")
    done = {"iterations": last, "batch": args.batch, "event_passes": last * args.batch,
            "wall_s": sum(a["wall_s"] for a in attempts), "cpu_s": sum(a["cpu_s"] for a in attempts),
            "processes": len(attempts), "checkpoint": str(checkpoint)}
    atomic_write_text(home / "done.json", json.dumps(done, indent=1) + "\n")
    log.info("%s: trained, %d event passes, %.1f min wall, %.1f min CPU", side,
             done["event_passes"], done["wall_s"] / 60, done["cpu_s"] / 60)


def train_sides(args: argparse.Namespace) -> Dict[str, Dict[str, Any]]:
    """Train each unfinished side, ``--jobs`` at a time; every side's ``done.json``."""
    todo = [s for s in SIDES if not (Path(args.out) / s / "done.json").is_file()]
    for side in set(SIDES) - set(todo):
        log.info("%s: trained (done.json), skipped", side)
    for first in range(0, len(todo), args.jobs):
        group = todo[first:first + args.jobs]
        cmds = {s: side_command(args, s) for s in group}
        for side in group:
            (Path(args.out) / side).mkdir(parents=True, exist_ok=True)
            log.info("%s: training (console: %s)", side, Path(args.out) / side / "train.out")
        interrupted = False
        with ThreadPoolExecutor(len(group)) as pool:
            futures = {s: pool.submit(run_measured, cmds[s], Path(args.out) / s / "train.out")
                       for s in group}
            try:
                results = {s: f.result() for s, f in futures.items()}
            except KeyboardInterrupt:
                # The trainers got the SIGINT too (same process group): they save a
                # checkpoint and exit; their time is recorded before stopping.
                interrupted = True
                results = {s: f.result() for s, f in futures.items()}
        attempts = {s: _record_attempt(args, s, {"command": shlex.join(cmds[s]), "exit_code": rc,
                                                 "wall_s": wall, "cpu_s": cpu})
                    for s, (rc, wall, cpu, _) in results.items()}
        if interrupted:
            raise KeyboardInterrupt
        errors = []
        for side in group:
            try:
                _finish_side(args, side, attempts[side])
            except UserError as err:
                errors.append(str(err))
        if errors:
            raise UserError("; ".join(errors))
    return {s: json.loads((Path(args.out) / s / "done.json").read_text()) for s in SIDES}


# ----------------------------------------------------------- thresholds, test --
def our_engine(args: argparse.Namespace, done: Dict[str, Dict[str, Any]]):
    """Our trained network (clustering left to :func:`our_labels`) and its config."""
    from mlreco_spice.inference import InferenceEngine

    cfg = make_config(args, [f"predict.weights={done['ours']['checkpoint']}"])
    block = cfg["model"]["modules"]["spice"]["clusterer"]
    block.update({k: v for k, v in SEED_SEARCH.items() if k in block}, enabled=False)
    steps_on = [k for k, v in block.items() if "radius" in k and v is not None]
    if steps_on:
        raise UserError(f"the race clusters with the paper's seed search alone: leave "
                        f"model.modules.spice.clusterer.{steps_on[0]} unset")
    return InferenceEngine(cfg, device="cpu"), cfg


def tune_sides(args: argparse.Namespace, done: Dict[str, Dict[str, Any]]) -> Dict[str, Path]:
    """Each side's thresholds, tuned on the same validation events (skipped when written)."""
    from mlreco_spice.cluster.tuning import threshold_grid
    from mlreco_spice.tune_files import tune_from_files
    from spine_race import load_spine
    from spine_tuning import tune_spine_thresholds

    files = {s: Path(args.out) / s / "thresholds.yaml" for s in SIDES}
    engine, cfg = our_engine(args, done)
    if not files["ours"].is_file():
        log.info("ours: tuning s0/p0 on %d validation events", args.val_events)
        tune_from_files(cfg, [args.val], str(files["ours"]), args.val_events, args.grid_step,
                        engine=engine, progress=False)
    if not files["spine"].is_file():
        log.info("SPINE: tuning its thresholds on %d validation events", args.val_events)
        grid = threshold_grid(args.grid_step)["s0"]  # [0, 1]: SPINE's range of both thresholds
        model = load_spine(cfg, Path(done["spine"]["checkpoint"]))
        result = tune_spine_thresholds(spine_events(model, cfg, args.val, args.val_events), grid,
                                       grid, int(cfg["analysis"]["min_true_size"]))
        atomic_write_text(files["spine"], "# SPINE SPICEClusterer thresholds (train_vs_spine.py)\n"
                          + yaml.safe_dump(result, sort_keys=False))
    return files


def spine_events(model: Any, cfg: Dict[str, Any], file: str, n: int):
    """SPINE's network outputs on the first ``n`` good events of ``file``."""
    from parsers.dataset import SpiceDataset
    from spine_race import spine_event_outputs

    for item in SpiceDataset(cfg["io"], files=[file]).good_items(n):
        yield spine_event_outputs(model, item)


def test_sides(args: argparse.Namespace, done: Dict[str, Dict[str, Any]],
               thresholds: Dict[str, Path]) -> List[Dict[str, Any]]:
    """Both sides on each test event in turn: our metrics' rows, with ``side``."""
    from mlreco_spice.cluster import cluster_event_arrays
    from mlreco_spice.inference import load_thresholds
    from mlreco_spice.metrics import evaluate_event
    from parsers.dataset import SpiceDataset
    from spine_race import load_spine, spine_event_outputs, spine_labels

    engine, cfg = our_engine(args, done)
    options = {k: v for k, v in engine.cfg["model"]["modules"]["spice"]["clusterer"].items()
               if k != "enabled"}
    options.update({k: load_thresholds(str(thresholds["ours"]))[k] for k in ("s0", "p0")})
    model = load_spine(cfg, Path(done["spine"]["checkpoint"]))
    spine = yaml.safe_load(thresholds["spine"].read_text())
    seed, prob = ({c: spine[key][name] for c, name in enumerate(CLASS_NAMES)}
                  for key in ("seed_threshold", "probability_threshold"))
    min_true_size = int(cfg["analysis"]["min_true_size"])
    rows: List[Dict[str, Any]] = []
    for item in SpiceDataset(cfg["io"], files=[args.test]).good_items(args.test_events):
        pred = engine.run(item)
        labels = {"ours": cluster_event_arrays(pred.embeddings, pred.margins, pred.seediness,
                                               pred.semantics, **options),
                  "spine": spine_labels(spine_event_outputs(model, item), seed, prob)}
        for side in SIDES:
            rows += [{"side": side, "file": item["file"], "entry": item["entry"], **row}
                     for row in evaluate_event(pred.truth_instance, labels[side],
                                               pred.truth_semantic, min_true_size)]
    return rows


def thresholds_text(files: Dict[str, Path]) -> Dict[str, str]:
    """One line per side: the tuned thresholds per class."""
    ours, spine = (yaml.safe_load(files[s].read_text()) for s in SIDES)
    return {"ours": ", ".join(f"{n} s0 {ours['s0'][n]:g} p0 {ours['p0'][n]:g}" for n in CLASS_NAMES),
            "spine": ", ".join(f"{n} seed {spine['seed_threshold'][n]:g} probability "
                               f"{spine['probability_threshold'][n]:g}" for n in CLASS_NAMES)}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run (or resume) the race; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    check_inputs(args)
    if args.side:
        train_spine_side(args)
        return 0
    out = Path(args.out)
    if (out / "race.csv").is_file() and (out / "race.md").is_file():
        log.info("the race is finished (%s): its table", out / "race.md")
        print((out / "race.md").read_text(), end="")
        return 0
    done = train_sides(args)
    thresholds = tune_sides(args, done)
    log.info("scoring both sides on %d test events", args.test_events)
    rows = test_sides(args, done, thresholds)
    if not rows:
        raise UserError(f"--test: no event of {args.test} could be scored")
    table = race_rows(rows)
    write_csv(out / "events.csv", EVENT_COLUMNS, rows)
    info = {"command": shlex.join([sys.executable, "benchmarks/train_vs_spine.py", *argv]),
            "sides": done, "test_events": len({(r["file"], r["entry"]) for r in rows}),
            "val_events": args.val_events, "thresholds": thresholds_text(thresholds),
            "min_true_size": int(make_config(args)["analysis"]["min_true_size"]),
            "layout": "each side one process with one OpenMP thread, "
                      + ("both at once" if args.jobs == 2 else "one after the other")}
    text = race_markdown(table, info)
    atomic_write_text(out / "race.md", text)
    write_csv(out / "race.csv", RACE_COLUMNS, table)  # last: it marks the race finished
    print(text, end="")
    return 0


if __name__ == "__main__":
    run_script(main, log.name)
