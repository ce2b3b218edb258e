"""Mask-loss race (issue 17, deliverable 2): which mask loss gives SPICE the best embeddings.

Each contender trains SPICE alone on the true classes with
``chain_configs/spice_stage_train.yaml``, changing only
``model.modules.spice.loss.mask_loss``: ``lovasz`` (Lovász hinge on 2p-1),
``lovasz_logit`` (on the logit), ``bce`` (BCE on logits, SPINE's default),
``focal`` and ``dice`` (``mlreco_spice/losses/masks.py``). Everything else is the
same for all: architecture, optimiser, learning rate, cosine schedule over
``--iterations`` (``race_common.RACE_SCHEDULE``, whatever the config's),
``train.freeze_seediness_iterations`` scaled from the config's
800 of 3600 to the run length, ``--batch`` events per step, seed (hence the same
training events in the same order), and the process layout (one process with one
OpenMP thread per contender, ``--parallel`` of them at a time).

Scoring, on the same validation events for all: the first half of the first
``--val-events`` events (entries [0, n/2)) tunes s0/p0 per class (the
``mlreco-spice tune`` grid search, ARI, step 0.05) for the paper's seed search
alone (issue 17, "Definitions": greedy s0/p0 search with ``at_least_one_seed``
and leftover assignment; refine, merge, connect, bend, absorb and reconnect off);
the second half (entries [n/2, n)) is scored with

``spice_paper_seeds``      the seed search alone with the tuned thresholds
``spice_truth_centroids``  each voxel to the best true-instance kernel (the diagnostic
                           of embedding quality, ``mlreco_spice/cluster/oracle.py``)

per class with :func:`mlreco_spice.metrics.evaluate_event` (true clusters under
``analysis.min_true_size`` = 10 voxels masked), as ``benchmarks/accuracy.py`` does.

Resumable: rerun the same command to continue. Per contender, in ``--out/<name>/``:
``train/`` (the training run: checkpoints, train_log.csv; resumed with ``--resume``),
``train.out`` (its console), ``attempts.json`` (wall and CPU seconds of each training
process), ``train.json`` (training finished), ``thresholds.yaml`` (tuned),
``scores.csv`` (per event and class) and ``summary.json`` (scored). A step whose output
exists is skipped. ``settings.json`` holds the race's settings; a rerun with other
settings (files, iterations, batch, ...) into the same ``--out`` is refused.

Outputs: ``race.csv`` (one row per contender x method x class, with the contender's
training figures: iterations, event passes = iterations x batch, summed step time of
train_log.csv, wall and CPU seconds of its training processes) and ``race.md`` (the
table for BENCHMARKS.md, also printed, with the winner: the best mean over HIP, MIP
and Shower of the seed-search ARI).

The image size is the files' own (simulate smaller events for a cheaper race, with
``--norm-length`` equal to their side). Wall and CPU time are those of the training
processes (start-up, data loading and checkpoints included; summed over resumed
attempts); ``train_step_s`` in race.csv sums train_log.csv's per-step times. Stop a
run with Ctrl-C (or SIGINT to its process group): trainers save a checkpoint.

Usage::

    .venv/bin/python benchmarks/mask_race.py --train train.h5 --val val.h5 --out runs/race \\
        [--iterations 1700] [--batch 2] [--parallel 5] [--val-events 200]
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shlex
import sys
from itertools import islice
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from mlreco_spice.atomic import atomic_write_text
from mlreco_spice.columns import CLASS_NAMES, NUM_CLASSES
from mlreco_spice.errors import UserError, run_script

# A script beside its helper modules: importable both as a script and from tests.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from accuracy_methods import run_networks  # noqa: E402
from accuracy_report import ORACLE, PAPER_SEEDS, json_safe, summarize_methods, write_csv  # noqa: E402
from race_common import (RACE_SCHEDULE, SEED_SEARCH, lock_settings,  # noqa: E402
                         resolve_files, run_measured, scaled_freeze)

log = logging.getLogger("mask_race")

ROOT = Path(__file__).resolve().parent.parent
CONFIG = "spice_stage_train"
CONTENDERS = ("lovasz", "lovasz_logit", "bce", "focal", "dice")
METHODS = {PAPER_SEEDS: "seed search", ORACLE: "truth centroids"}
WINNER_CLASSES = ("HIP", "MIP", "Shower")
#: Settings that must match for a rerun to continue the race in the same --out.
SETTINGS = ("train", "val", "iterations", "batch", "val_events", "norm_length", "device",
            "overrides")


def race_parser(description: str, contenders: Sequence[str], what: str) -> argparse.ArgumentParser:
    """The options every training race shares; ``--contenders`` of ``contenders``."""
    p = argparse.ArgumentParser(description=description,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train", required=True, help="labelled training file (larcv3 .h5)")
    p.add_argument("--val", required=True, help="labelled validation file: its first half "
                   "tunes, its second half scores")
    p.add_argument("--out", required=True, help="race directory (created; rerun to resume)")
    p.add_argument("--iterations", type=int, default=1700,
                   help="training iterations per contender (default: %(default)s)")
    p.add_argument("--batch", type=int, default=2, help="events per iteration (one process: "
                   "io.loader.batch_size) (default: %(default)s)")
    p.add_argument("--contenders", nargs="+", default=list(contenders), choices=contenders,
                   metavar="NAME", help=f"{what} to race, of %(choices)s (default: all)")
    p.add_argument("--parallel", type=int, default=1, help="contenders trained and scored at "
                   "once, each one process with one OpenMP thread (default: %(default)s)")
    p.add_argument("--val-events", type=int, default=200, help="validation events used (first "
                   "N; half tune, half score) (default: %(default)s)")
    p.add_argument("--norm-length", type=int, help="model.modules.spice.network.norm_length: "
                   "set it to the files' image side (default: the config's, 512)")
    p.add_argument("--device", help="train.device for training and scoring (default: the "
                   "config's, auto)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help=f"further override of {CONFIG}.yaml for every contender, repeatable")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (always off "
                   "with --parallel > 1: log lines instead)")
    return p


def check_race_args(p: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.Namespace:
    """Refuse values no race can run with (``p.error``: usage and exit code 2)."""
    for name in ("iterations", "batch", "parallel"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be >= 1")
    if args.val_events < 2:
        p.error("--val-events must be >= 2 (half tune, half score)")
    if len(set(args.contenders)) != len(args.contenders):
        p.error("--contenders: each one once")
    return args


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Command-line options (see ``--help``)."""
    p = race_parser(__doc__.split("Usage::")[0], CONTENDERS, "mask losses")
    return check_race_args(p, p.parse_args(argv))


def check_inputs(args: argparse.Namespace, extra: Sequence[str] = ()) -> None:
    """Resolve the files (one-line errors when missing) and check ``settings.json``
    (:data:`SETTINGS` and the ``extra`` options)."""
    resolve_files(args, ("train", "val"))
    out = Path(args.out).resolve()
    if out.exists() and not out.is_dir():
        raise UserError(f"--out: {out} exists and is not a directory")
    args.out = str(out)
    lock_settings(out, {k: getattr(args, k) for k in (*SETTINGS, *extra)})


def train_overrides(args: argparse.Namespace, name: str) -> List[str]:
    """The ``--set`` overrides of contender ``name``'s training run."""
    from mlreco_spice.config import load_config

    freeze = scaled_freeze(load_config(CONFIG, [])["train"], args.iterations)
    sets = [f"io.dataset.files=[{args.train}]", f"io.loader.batch_size={args.batch}",
            f"train.iterations={args.iterations}", f"train.freeze_seediness_iterations={freeze}",
            f"train.checkpoint_every={max(1, math.ceil(args.iterations / 10))}",
            "train.keep_checkpoints=2", f"train.output_dir={Path(args.out) / name / 'train'}",
            RACE_SCHEDULE, *contender_sets(args, name)]
    if args.norm_length:
        sets.append(f"model.modules.spice.network.norm_length={args.norm_length}")
    if args.device:
        sets.append(f"train.device={args.device}")
    return sets + list(args.overrides)


def contender_sets(args: argparse.Namespace, name: str) -> List[str]:
    """What contender ``name`` changes: ``args.contender_sets[name]`` when the race defines
    its contenders that way (``schedule_race.py``), else the mask loss ``name``."""
    sets = getattr(args, "contender_sets", None)
    return list(sets[name]) if sets else [f"model.modules.spice.loss.mask_loss={name}"]


def train_contender(args: argparse.Namespace, name: str) -> Dict[str, Any]:
    """Train (or resume, or skip) one contender; its ``train.json`` figures."""
    from mlreco_spice.checkpoint import latest_checkpoint
    from mlreco_spice.training_log import read_train_log

    home = Path(args.out) / name
    done = home / "train.json"
    if done.is_file():
        log.info("%s: trained (%s), skipped", name, done)
        return json.loads(done.read_text())
    run_dir = home / "train"
    cmd = [sys.executable, "-m", "mlreco_spice", "train", "-c", CONFIG]
    for item in train_overrides(args, name):
        cmd += ["--set", item]
    if latest_checkpoint(run_dir) is not None:
        cmd.append("--resume")
    elif (run_dir / "train_log.csv").is_file():
        cmd.append("--overwrite")  # died before its first checkpoint: nothing to continue
    attempts_path = home / "attempts.json"
    attempts = json.loads(attempts_path.read_text()) if attempts_path.is_file() else []
    log.info("%s: training %d iterations of %d events%s (console: %s)", name, args.iterations,
             args.batch, " (resumed)" if "--resume" in cmd else "", home / "train.out")
    home.mkdir(parents=True, exist_ok=True)
    rc, wall, cpu, interrupted = run_measured(cmd, home / "train.out")
    rows = read_train_log(run_dir / "train_log.csv") if (run_dir / "train_log.csv").is_file() else []
    last = max((int(r["iteration"]) for r in rows), default=0)
    attempts.append({"command": shlex.join(cmd), "exit_code": rc, "wall_s": wall, "cpu_s": cpu,
                     "last_iteration": last})
    atomic_write_text(attempts_path, json.dumps(attempts, indent=1) + "\n")
    if interrupted:
        raise KeyboardInterrupt
    if rc != 0 or last < args.iterations:
        raise UserError(f"{name}: training stopped at iteration {last} of {args.iterations} "
                        f"(exit code {rc}); see {home / 'train.out'}, rerun to resume")
    figures = {"iterations": last, "batch": args.batch, "event_passes": last * args.batch,
               "train_step_s": float(sum(float(r["time_s"]) for r in rows)),
               "train_wall_s": float(sum(a["wall_s"] for a in attempts)),
               "train_cpu_s": float(sum(a["cpu_s"] for a in attempts)),
               "train_processes": len(attempts)}
    atomic_write_text(done, json.dumps(figures, indent=1) + "\n")
    log.info("%s: trained, %d event passes, %.1f min wall, %.1f min CPU", name,
             figures["event_passes"], wall / 60, cpu / 60)
    return figures


def validation_split(args: argparse.Namespace) -> Tuple[int, int]:
    """``(h, n)``: entries [0, h) of the validation file tune, [h, n) score."""
    from parsers.readers import open_reader

    n = min(args.val_events, len(open_reader([args.val])))
    if n < 2:
        raise UserError(f"--val: {args.val} has {n} event(s); need >= 2 (half tune, half score)")
    return n // 2, n


def score_contender(args: argparse.Namespace, name: str, progress: bool) -> Dict[str, Any]:
    """Tune the seed search on the tuning half, score the scoring half; ``summary.json``."""
    from mlreco_spice.checkpoint import latest_checkpoint
    from mlreco_spice.config import load_config
    from mlreco_spice.inference import InferenceEngine, load_thresholds
    from mlreco_spice.tune_files import tune_from_files
    from parsers.dataset import SpiceDataset

    home = Path(args.out) / name
    done = home / "summary.json"
    if done.is_file():
        log.info("%s: scored (%s), skipped", name, done)
        return json.loads(done.read_text())
    weights = latest_checkpoint(home / "train")
    cfg = load_config(CONFIG, train_overrides(args, name) + [f"predict.weights={weights}"])
    clusterer = cfg["model"]["modules"]["spice"]["clusterer"]
    # The engine's own clustering is not scored: the two methods re-cluster its outputs.
    clusterer.update(SEED_SEARCH, enabled=False)
    engine = InferenceEngine(cfg)
    tune, n = validation_split(args)
    thresholds = home / "thresholds.yaml"
    if not thresholds.is_file():
        log.info("%s: tuning s0/p0 on validation entries [0, %d)", name, tune)
        tune_from_files(cfg, [args.val], str(thresholds), n_events=tune, engine=engine,
                        progress=progress)
    options = {k: v for k, v in clusterer.items() if k != "enabled"}
    options.update({k: load_thresholds(str(thresholds))[k] for k in ("s0", "p0")})
    log.info("%s: scoring validation entries [%d, %d)", name, tune, n)
    items = islice(SpiceDataset(cfg["io"], files=[args.val]).good_items(n), tune, None)
    min_true_size = int(cfg["analysis"]["min_true_size"])
    result = run_networks({"spice_true_semantics": engine}, items, n - tune, min_true_size,
                          progress=progress, desc=name, paper_thresholds=options)
    rows = [r for r in result["rows"] if r["method"] in METHODS]
    from analysis.columns import CLUSTER_METRICS

    write_csv(home / "scores.csv", ("method",) + CLUSTER_METRICS, rows)
    summaries = summarize_methods(rows, np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64),
                                  result["n_events"], float(cfg["analysis"]["ari_threshold"]))
    summary = json_safe({"tune_entries": [0, tune], "score_entries": [tune, n],
                         "n_events": result["n_events"], "weights": str(weights),
                         "methods": summaries})
    atomic_write_text(done, json.dumps(summary, indent=1) + "\n")
    return summary


def run_contender(args: argparse.Namespace, name: str, progress: bool) -> Tuple[Dict, Dict]:
    """Train then score one contender (each step skipped when done)."""
    return train_contender(args, name), score_contender(args, name, progress)


def _worker_init() -> None:
    """A pool process: one OpenMP thread (the race's process layout), INFO logging."""
    os.environ["OMP_NUM_THREADS"] = "1"
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    import torch

    torch.set_num_threads(1)


def run_all(args: argparse.Namespace) -> Dict[str, Tuple[Dict, Dict]]:
    """Every contender in a pool of ``--parallel`` processes (spawned: torch is not fork-safe)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    progress = args.parallel == 1 and not args.no_progress
    with ProcessPoolExecutor(max_workers=args.parallel, initializer=_worker_init,
                             mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {name: pool.submit(run_contender, args, name, progress)
                   for name in args.contenders}
        return {name: future.result() for name, future in futures.items()}


def race_rows(results: Dict[str, Tuple[Dict, Dict]]) -> List[Dict[str, Any]]:
    """race.csv rows: contender x method x class, each with the training figures."""
    rows = []
    for name, (figures, summary) in results.items():
        for method in METHODS:
            for cls in CLASS_NAMES:
                stats = summary["methods"].get(method, {}).get(cls, {})
                rows.append({"contender": name, "method": method, "class": cls,
                             **{k: stats.get(k) for k in ("n_rows", "ari", "purity", "efficiency")},
                             **figures, "tune_entries": "{}-{}".format(*summary["tune_entries"]),
                             "score_entries": "{}-{}".format(*summary["score_entries"])})
    return rows


def _mean(values: Sequence[Optional[float]]) -> float:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if len(finite) == len(values) else math.nan


def race_markdown(rows: Sequence[Dict[str, Any]], command: str,
                  label: str = "mask loss") -> Tuple[str, str]:
    """The race.md text and the winner's name (``label``: what the contenders vary)."""
    ari = {(r["contender"], r["method"], r["class"]): r["ari"] for r in rows}
    figures = {r["contender"]: r for r in rows}
    first = rows[0]
    fmt = lambda v: "-" if v is None or not math.isfinite(v) else f"{v:.3f}"  # noqa: E731
    head = [label]
    for method in METHODS:
        head += [f"{METHODS[method]} {c}" for c in CLASS_NAMES] + ["mean HIP/MIP/Shower"]
    head += ["event passes", "train wall (min)", "train CPU (min)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    means = {}
    for name, fig in figures.items():
        cells = [f"`{name}`"]
        for method in METHODS:
            cells += [fmt(ari[name, method, c]) for c in CLASS_NAMES]
            mean = _mean([ari[name, method, c] for c in WINNER_CLASSES])
            cells.append(fmt(mean))
            means.setdefault(method, {})[name] = mean
        cells += [str(fig["event_passes"]), f"{fig['train_wall_s'] / 60:.1f}",
                  f"{fig['train_cpu_s'] / 60:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    seed = means[PAPER_SEEDS]
    winner = max(seed, key=lambda k: seed[k] if math.isfinite(seed[k]) else -math.inf)
    text = "\n".join([
        "```bash", command, "```", "",
        f"Each contender: {first['iterations']} iterations of {first['batch']} events "
        f"({first['event_passes']} event passes) of `{CONFIG}.yaml`, one process with one "
        "OpenMP thread. Mean ARI per class on validation entries "
        f"{first['score_entries']} (end excluded; true clusters under 10 voxels masked); "
        f"s0/p0 tuned per class on entries {first['tune_entries']}. Seed search: the paper's "
        "greedy s0/p0 search alone (at_least_one_seed and leftover assignment on; refine, "
        "merge, connect, bend, absorb, reconnect off). Truth centroids: each voxel to the "
        "best true-instance kernel (diagnostic).", "", *lines, "",
        f"Winner (mean seed-search ARI over HIP, MIP, Shower): `{winner}` ({fmt(seed[winner])})."])
    return text + "\n", winner


def run_race(args: argparse.Namespace, command: str, label: str = "mask loss") -> int:
    """Train and score every contender of ``args`` (checked), write race.csv and race.md."""
    validation_split(args)  # a too-short validation file fails before any training
    results = run_all(args)
    rows = race_rows(results)
    out = Path(args.out)
    write_csv(out / "race.csv", tuple(rows[0]), rows)
    text, winner = race_markdown(rows, command, label)
    atomic_write_text(out / "race.md", text)
    log.info("wrote %s and %s; winner: %s", out / "race.csv", out / "race.md", winner)
    print(text, end="")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the race; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    check_inputs(args)
    return run_race(args, shlex.join([sys.executable, "benchmarks/mask_race.py", *argv]))


if __name__ == "__main__":
    run_script(main, log.name)
