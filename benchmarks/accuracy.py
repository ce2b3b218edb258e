"""Clustering accuracy against the paper's Table III, with DBSCAN baselines on the same events.

The methods are scored on the same test events in one run, per class with
:func:`mlreco_spice.metrics.evaluate_event` (true clusters below
``analysis.min_true_size`` voxels masked; class ``c`` scored on voxels whose
TRUE class is ``c``) and per event at particle level with
:func:`mlreco_spice.metrics.evaluate_particles` (all voxels, particle id as
truth: clusters spanning classes count):

``dbscan``                DBSCAN on voxel coordinates per TRUE class, ``eps`` and
                          ``min_samples`` tuned per class on the validation set
``dbscan_coordinates``    DBSCAN on the coordinates of all voxels, no semantics, one
                          ``eps`` and ``min_samples`` tuned for the particle-level ARI
``spice_true_semantics``  SPICE clustering on true classes (the clustering stage alone)
``full_chain``            uresnet + SPICE on predicted classes (semantic errors count)
``full_chain_no_absorb``  the full chain's outputs clustered without the absorb and
                          reconnect steps: what the cross-class steps add or cost
                          (left out when the config has no absorb step: it would
                          repeat ``full_chain``)
``full_chain_spine_clusterer``  the full chain's outputs clustered by SPINE 1.4.3's
                          ``SPICEClusterer`` (shipped s0/p0, no extra steps; skipped when
                          ``spine`` is not installed): its time per event is reported
                          beside the shipped clusterer's (``clusterer_timing``)

``spice_paper_seeds``     the true-semantics outputs clustered with the paper's seed search
                          alone (``--paper-thresholds``): what the clusterer's extra steps add

plus a diagnostic from the true-semantics pass, not a usable method:
``spice_truth_centroids`` each voxel to the true instance whose kernel (centroid and mean
                          margin of its voxels' embeddings) gives it the highest p: the
                          best any kernel clustering of these embeddings could do, which
                          separates embedding errors from seed-search errors.

The network runs once per event per configuration. Floor checks: (a) with
true semantics SPICE's mean ARI >= DBSCAN's on HIP, MIP, Shower; (b) the full
chain is within 0.05 ARI of true-semantics SPICE on HIP, MIP, Shower.

Outputs in ``--out`` (default ``runs/accuracy``): ``report.md`` (also
printed), ``summary.json``, ``events.csv`` (one row per method, event, class),
``particles.csv`` (one row per method and event, particle-level metrics),
and with the options ``curve.csv``/``curve.png`` (accuracy vs training time)
and ``failures.csv`` + ``failures/*.png|html`` (event displays).

The default test set is ``runs/default_data/test_seed3.h5``: ``--events``
simulated 512 px events with seed 3, which training (seed 1) and threshold
tuning (seed 2) never use; it is simulated when absent or shorter than ``--events``.

Usage::

    .venv/bin/python benchmarks/accuracy.py [--events 500] [--failures 3] \\
        [--curve runs/curve --train-log runs/spice_train/train_log.csv]
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import re
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence

import numpy as np

from mlreco_spice.atomic import atomic_write_text
from mlreco_spice.columns import CLASS_NAMES
from mlreco_spice.errors import UserError
from mlreco_spice.sim.version import check_simulated_file

# A script beside its helper module: importable both as a script and from tests.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from accuracy_methods import no_absorb_options, run_networks, spine_clusterer  # noqa: E402
from race_common import SEED_SEARCH  # noqa: E402
from accuracy_report import (CURVE_STYLES, PAPER_SEEDS, PAPER_TABLE_III,  # noqa: E402
                             clusterer_timing, floor_checks, training_seconds, write_csv,
                             json_safe, pick_failures, plot_curve, report_markdown,
                             summarize_methods)

log = logging.getLogger("accuracy")

ROOT = Path(__file__).resolve().parent.parent
NETWORK_METHODS = {"spice_true_semantics": True, "full_chain": False}  # -> use_true_semantics


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Command-line options (see ``--help``)."""
    p = argparse.ArgumentParser(
        description=__doc__.split("Usage::")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-c", "--config", default="predict", help="chain config (name or YAML path) (default: %(default)s)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config override, repeatable (as mlreco-spice --set)")
    p.add_argument("--weights", help="chain weights/checkpoint (default: the config's predict.weights)")
    p.add_argument("--thresholds", help="thresholds YAML from `mlreco-spice tune`, or 'paper' for "
                   "Table II s0/p0 (the config's clusterer steps still apply) (default: the "
                   "config's predict.thresholds)")
    p.add_argument("--paper-thresholds", default=str(ROOT / "weights/thresholds_paper.yaml"),
                   help="s0/p0 YAML tuned for the paper's seed search alone, for the "
                   f"{PAPER_SEEDS} row; 'none' skips it (default: %(default)s)")
    p.add_argument("--test-file", nargs="+", help="test file(s) (default: "
                   "runs/default_data/test_seed<SEED>.h5, simulated when absent or short)")
    p.add_argument("--events", type=int, default=500, help="test events (first N) (default: %(default)s)")
    p.add_argument("--size", type=int, default=512, help="image size when simulating the test file (default: %(default)s)")
    p.add_argument("--seed", type=int, default=3, help="seed when simulating the test file "
                   "(never 1 = training or 2 = validation) (default: %(default)s)")
    p.add_argument("--val-file", default=str(ROOT / "runs/default_data/val.h5"),
                   help="validation file for tuning DBSCAN (default: %(default)s)")
    p.add_argument("--val-events", type=int, default=100, help="validation events for DBSCAN tuning (default: %(default)s)")
    p.add_argument("--eps", type=float, nargs="+", default=[1, 1.5, 2, 3, 4, 6],
                   help="DBSCAN eps grid (voxels) (default: %(default)s)")
    p.add_argument("--min-samples", type=int, nargs="+", default=[1, 2, 3, 5],
                   help="DBSCAN min_samples grid (default: %(default)s)")
    p.add_argument("--out", default=str(ROOT / "runs/accuracy"), help="output directory (default: %(default)s)")
    p.add_argument("--curve", metavar="CKPT_DIR", help="also evaluate every checkpoint-*.pt here "
                   "(full chain and true-semantics SPICE) -> curve.csv, curve.png")
    p.add_argument("--curve-events", type=int, default=100, help="test events per checkpoint (default: %(default)s)")
    p.add_argument("--train-log", help="train_log.csv giving training time per iteration "
                   "(default: CKPT_DIR/train_log.csv when present)")
    p.add_argument("--curve-only", action="store_true", help="only the curve (needs --curve)")
    p.add_argument("--failures", type=int, default=0, metavar="N",
                   help="display the N worst full-chain events (lowest mean ARI among events "
                   "with HIP, MIP and Shower scored) -> failures.csv, failures/ (default: none)")
    p.add_argument("--device", help="torch device (default: the config's train.device)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    for name in ("events", "val_events", "curve_events", "size"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.failures < 0:
        p.error("--failures must be >= 0")
    if args.curve_only and not args.curve:
        p.error("--curve-only needs --curve CKPT_DIR")
    if args.seed in (1, 2):
        p.error("--seed 1 and 2 are the training and validation sets")
    return args


def make_config(args: argparse.Namespace, use_true_semantics: bool,
                weights: Optional[str] = None) -> Dict[str, Any]:
    """The chain config of one network configuration."""
    from analysis.sources import require_labels
    from mlreco_spice.config import load_config

    overrides = list(args.overrides) + [f"model.modules.spice.use_true_semantics={use_true_semantics}"]
    if weights or args.weights:
        overrides.append(f"predict.weights={weights or args.weights}")
    if args.thresholds:
        overrides.append("predict.thresholds=null" if args.thresholds == "paper"
                         else f"predict.thresholds={args.thresholds}")
    cfg = load_config(args.config, overrides)
    require_labels(cfg)
    return cfg


def ensure_test_files(args: argparse.Namespace) -> List[str]:
    """The test files. Default: ``runs/default_data/test_seed<seed>.h5``, (re)simulated
    when absent or holding fewer than ``--events`` events."""
    if args.test_file is None:
        from parsers.readers import open_reader
        from mlreco_spice.sim import simulate_file

        default = ROOT / f"runs/default_data/test_seed{args.seed}.h5"
        held = 0
        if default.is_file():
            # A test file of an older simulator would score a detector that no longer exists.
            check_simulated_file(default, seed=args.seed, size=args.size)
            held = len(open_reader([str(default)]))
        if held < args.events:
            log.info("simulating %d test events (seed %d, %d px) into %s", args.events, args.seed,
                     args.size, default)
            default.parent.mkdir(parents=True, exist_ok=True)
            simulate_file(str(default), n_events=args.events, seed=args.seed, size=args.size,
                          progress=not args.no_progress)
        args.test_file = [str(default)]
    files = [str(Path(f).resolve()) for f in args.test_file]
    missing = [f for f in files if not Path(f).is_file()]
    if missing:
        raise UserError(f"test file(s) not found: {', '.join(missing)}")
    if str(Path(args.val_file).resolve()) in files:
        raise UserError("the test file is the validation file: use an independent test set")
    val = Path(args.val_file).resolve()
    if val == (ROOT / "runs/default_data/val.h5").resolve() and val.is_file():
        check_simulated_file(val)
    return files


def iter_items(cfg: Dict[str, Any], files: Sequence[str], n_events: int) -> Iterator[Dict[str, Any]]:
    """Parsed events (skipped bad events logged), at most ``n_events``."""
    from parsers.dataset import SpiceDataset

    yield from SpiceDataset(cfg["io"], files=list(files)).good_items(n_events)


def validation_events(cfg: Dict[str, Any], file: str, n_events: int) -> Iterator[Dict[str, np.ndarray]]:
    """Coordinates and truth of validation events (no network) for DBSCAN tuning."""
    from mlreco_spice.columns import PARSER_COORD_COLS, PARSER_INSTANCE_COL, PARSER_SEMANTIC_COL

    for item in iter_items(cfg, [file], n_events):
        label = np.asarray(item["clust_label"])
        yield {"coords": label[:, list(PARSER_COORD_COLS)], "truth_instance":
               label[:, PARSER_INSTANCE_COL].astype(np.int64),
               "truth_semantic": label[:, PARSER_SEMANTIC_COL].astype(np.int64)}


# ------------------------------------------------------------------- curve --
def run_curve(args: argparse.Namespace, files: Sequence[str], out: Path, min_true_size: int,
              threshold: float) -> List[Dict[str, Any]]:
    """Mean ARI per class of every checkpoint in ``args.curve``; writes curve.csv and curve.png."""
    from mlreco_spice.checkpoint import list_checkpoints
    from mlreco_spice.inference import InferenceEngine

    checkpoints = list_checkpoints(Path(args.curve))
    if not checkpoints:
        raise UserError(f"--curve: no checkpoint-*.pt in {args.curve}")
    train_log = Path(args.train_log) if args.train_log else Path(args.curve) / "train_log.csv"
    seconds = training_seconds(train_log)
    if not seconds:
        log.warning("no train log at %s: curve.csv has no training times", train_log)
    curve = []
    for path in checkpoints:
        iteration = int(re.search(r"(\d+)", path.name).group(1))
        engines = {m: InferenceEngine(make_config(args, t, str(path)), args.device)
                   for m, t in NETWORK_METHODS.items()}
        items = iter_items(engines["full_chain"].cfg, files, args.curve_events)
        result = run_networks(engines, items, args.curve_events, min_true_size,
                              progress=not args.no_progress, desc=path.name)
        summaries = summarize_methods(result["rows"], result["confusion"], result["n_events"],
                                      threshold)
        for method in CURVE_STYLES:
            s = summaries.get(method, {})
            curve.append({"checkpoint": path.name, "iteration": iteration,
                          "train_time_s": seconds.get(iteration, math.nan), "method": method,
                          "n_events": result["n_events"],
                          **{f"ari_{n}": s.get(n, {}).get("ari", math.nan)
                             for n in CLASS_NAMES + ("all",)}})
    write_csv(out / "curve.csv", tuple(curve[0]), curve)
    plot_curve(curve, out / "curve.png")
    return curve


def run_failures(cfg: Dict[str, Any], engine: Any, rows: Sequence[Dict[str, Any]], n: int,
                 out: Path) -> List[Dict[str, Any]]:
    """Write failures.csv and an HTML + PNG display of each picked event into out/failures.

    The displays are those of ``mlreco-spice display`` (:mod:`analysis.display`,
    ``<stem>_entry<N>.html|png``), drawn from the full chain's prediction.
    """
    from analysis.display import write_event_html, write_event_png
    from parsers.dataset import SpiceDataset

    picked = pick_failures(rows, n)
    for row in picked:
        # Why not display_event(): it re-detects the file type, which fails on raw
        # larcv3 inputs in analysis/sources.py (see the report); the engine is at hand.
        item = SpiceDataset(cfg["io"], files=[row["file"]])[int(row["entry"])]
        event = engine.run(item)
        base = out / "failures" / f"{Path(row['file']).stem}_entry{row['entry']}"
        row["html"] = str(write_event_html(event, base.with_suffix(".html")))
        row["png"] = str(write_event_png(event, base.with_suffix(".png")))
    if picked:
        write_csv(out / "failures.csv", tuple(picked[0]), picked)
    return picked


# -------------------------------------------------------------------- main --
def write_report(out: Path, report: Dict[str, Any]) -> str:
    """Write report.md and summary.json; returns the markdown."""
    text = report_markdown(report)
    atomic_write_text(out / "report.md", text)
    atomic_write_text(out / "summary.json", json.dumps(json_safe(report), indent=1) + "\n")
    return text


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the benchmark; returns the process exit code."""
    from analysis.columns import CLUSTER_METRICS, EVENT_KEY, PARTICLE_METRICS, TIMING
    from mlreco_spice.baselines import tune_dbscan, tune_dbscan_coordinates
    from mlreco_spice.inference import InferenceEngine

    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    command = shlex.join([sys.executable, "benchmarks/accuracy.py", *argv])
    out = Path(args.out)
    start, timings = time.perf_counter(), {}
    tick = start

    def lap(name: str) -> None:
        nonlocal tick
        now = time.perf_counter()
        timings[name], tick = now - tick, now

    files = ensure_test_files(args)
    lap("test_file")
    cfgs = {m: make_config(args, t) for m, t in NETWORK_METHODS.items()}
    analysis = cfgs["full_chain"]["analysis"]
    min_true_size, threshold = int(analysis["min_true_size"]), float(analysis["ari_threshold"])
    progress = not args.no_progress
    out.mkdir(parents=True, exist_ok=True)  # only once the inputs are known to be usable
    report: Dict[str, Any] = {}
    if not args.curve_only:
        dbscan = tune_dbscan(validation_events(cfgs["full_chain"], args.val_file, args.val_events),
                             args.eps, args.min_samples, progress=progress,
                             min_true_size=min_true_size)
        coords = tune_dbscan_coordinates(
            validation_events(cfgs["full_chain"], args.val_file, args.val_events), args.eps,
            args.min_samples, progress=progress, min_true_size=min_true_size)
        lap("dbscan_tuning")
        engines = {m: InferenceEngine(cfg, args.device) for m, cfg in cfgs.items()}
        paper = None
        if args.paper_thresholds.lower() != "none":
            from mlreco_spice.inference import load_thresholds

            values = load_thresholds(args.paper_thresholds)
            # The paper's seed search alone, as the races score it (issue 17's definition).
            paper = dict(SEED_SEARCH, s0=values.get("s0"), p0=values.get("p0"))
        spine = spine_clusterer(engines["full_chain"].cfg)
        if spine is None:
            log.warning("spine is not installed: no SPINE clusterer rows or timing")
        result = run_networks(engines, iter_items(cfgs["full_chain"], files, args.events),
                              args.events, min_true_size, dbscan["params"], progress,
                              paper_thresholds=paper, dbscan_coords=coords["params"],
                              no_absorb=no_absorb_options(engines["full_chain"].cfg), spine=spine)
        lap("evaluation")
        if result["n_events"] < args.events:
            log.warning("only %d test events available (asked for %d)", result["n_events"],
                        args.events)
        write_csv(out / "events.csv", ("method",) + CLUSTER_METRICS, result["rows"])
        write_csv(out / "particles.csv", ("method",) + EVENT_KEY + PARTICLE_METRICS + TIMING,
                  result["particles"])
        summaries = summarize_methods(result["rows"], result["confusion"], result["n_events"],
                                      threshold, result["particles"])
        report = {"command": command, "test_files": files, "n_events": result["n_events"],
                  "weights": cfgs["full_chain"]["predict"]["weights"],
                  "thresholds": cfgs["full_chain"]["predict"]["thresholds"] or "paper Table II",
                  "min_true_size": min_true_size, "ari_threshold": threshold,
                  "dbscan": dbscan, "dbscan_coordinates": coords, "summaries": summaries,
                  "checks": floor_checks(summaries, result["rows"]),
                  "clusterer_timing": clusterer_timing(result["particles"]),
                  "paper_table_iii": PAPER_TABLE_III, "failures": [], "timings": timings}
        write_report(out, report)  # kept if a later step (displays, curve) fails
        if args.failures:
            report["failures"] = run_failures(cfgs["full_chain"], engines["full_chain"],
                                              result["rows"], args.failures, out)
            lap("failures")
    curve: List[Dict[str, Any]] = []
    if args.curve:
        curve = run_curve(args, files, out, min_true_size, threshold)
        lap("curve")
    timings["total"] = time.perf_counter() - start
    if report:
        report["curve_rows"] = len(curve)
        text = write_report(out, report)
    else:
        text = (f"Command: `{command}`\n\ncurve: {len(curve)} rows in {out / 'curve.csv'}; "
                "timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()) + "\n")
    print(text, end="")
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        sys.exit(main())
    except UserError as err:
        log.error("%s", err)
        sys.exit(2)
