"""Accuracy against event passes for a stage-wise training run (issue 18's curve).

A long run trains its two stages apart (``make train-default``): uresnet on the
true classes' voxels, SPICE on the true classes. Each stage's checkpoints are
scored on their own, on test events never used in training or tuning:

``spice``    per checkpoint: the paper's seed search alone (``race_common.SEED_SEARCH``)
             with its ``s0``/``p0`` tuned on the first ``--tune-events`` validation
             events, and the truth-centroid diagnostic (the best any kernel
             clustering of these embeddings could do); mean ARI per class, true
             classes clustered, true clusters under ``analysis.min_true_size`` masked.
             With ``--dbscan``, DBSCAN per true class (tuned on validation) is scored
             once on the same test events: the floor the seed search must reach.
``uresnet``  per checkpoint: segmentation accuracy per true class (the fraction of the
             class's voxels given that class) and over all voxels. With ``--balanced``,
             also with per-class logit offsets that make the smallest class accuracy
             as large as possible, each half of the events scored with the offsets
             chosen on the other half (:mod:`class_offsets`): how well the network
             separates the classes once the trade that offsets can move is out.

The CSV in ``--out`` grows: a checkpoint already scored on the same events is skipped,
so rerunning after every stretch of training extends the curve (``train``'s
``keep_checkpoints`` rotates old checkpoints away; keep hard links to them, e.g. in
``RUN/kept/<stage>/``). Outputs: ``curve_<stage>.csv``, ``curve_<stage>.md`` (the table
for BENCHMARKS.md) and ``curve_<stage>.png``; ``thresholds/`` the tuned s0/p0;
``confusion/`` (uresnet) the fraction of each true class's voxels given each class.

Usage::

    .venv/bin/python benchmarks/stage_curve.py RUN/kept/spice --stage spice \\
        --test-file DATA/test_seed3.h5 --val-file DATA/val.h5 --out RUN/curve
"""
from __future__ import annotations

import argparse
import csv
import logging
import re
import shlex
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from mlreco_spice.atomic import atomic_write_text
from mlreco_spice.columns import CLASS_NAMES, NUM_CLASSES
from mlreco_spice.errors import UserError
from mlreco_spice.pieces import main_piece

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accuracy_report import ORACLE, PAPER_SEEDS, summarize_methods, write_csv  # noqa: E402
from class_offsets import cross_fitted_confusion  # noqa: E402
from race_common import SEED_SEARCH  # noqa: E402
from stage_curve_report import fmt, markdown, plot  # noqa: E402

log = logging.getLogger("stage_curve")

ROOT = Path(__file__).resolve().parent.parent
STAGES = ("spice", "uresnet")
#: Scored methods of the SPICE stage and their names in the table.
SPICE_METHODS = {PAPER_SEEDS: "seed search", ORACLE: "truth centroids"}


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Command-line options (see ``--help``)."""
    p = argparse.ArgumentParser(description=__doc__.split("Usage::")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoints", help="folder of one stage's checkpoint-*.pt")
    p.add_argument("--stage", choices=STAGES, required=True, help="the stage they train")
    p.add_argument("--test-file", required=True, help="scored events (a seed never used in "
                   "training or tuning, e.g. test_seed3.h5)")
    p.add_argument("--events", type=int, default=100, help="test events scored per checkpoint "
                   "(first N) (default: %(default)s)")
    p.add_argument("--val-file", help="validation file for tuning s0/p0 (stage spice)")
    p.add_argument("--tune-events", type=int, default=50, help="validation events tuning "
                   "s0/p0 per checkpoint (default: %(default)s)")
    p.add_argument("--dbscan", action="store_true", help="stage spice: also score DBSCAN per "
                   "true class (eps, min_samples tuned on --dbscan-val-events validation events) "
                   "on the same test events, once: the acceptance floor's reference")
    p.add_argument("--dbscan-val-events", type=int, default=100, help="validation events "
                   "tuning DBSCAN (default: %(default)s)")
    p.add_argument("--world", type=int, default=2, help="processes the run trains with: "
                   "event passes = iteration x io.loader.batch_size x world (default: %(default)s)")
    p.add_argument("--min-gap", type=int, default=0, metavar="PASSES", help="skip a checkpoint "
                   "within this many event passes of one already scored (default: %(default)s)")
    p.add_argument("--out", default=str(ROOT / "runs/stage_curve"), help="output folder "
                   "(default: %(default)s)")
    p.add_argument("--balanced", action="store_true", help="stage uresnet: also score "
                   "per-class logit offsets maximising the smallest class accuracy, chosen on "
                   "the other half of the scored events (method 'balanced offsets')")
    p.add_argument("--device", help="torch device (default: the config's train.device)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    for name in ("events", "tune_events", "world"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.stage == "spice" and not args.val_file:
        p.error("--stage spice needs --val-file (s0/p0 are tuned per checkpoint)")
    for name in ("test_file", "val_file"):
        path = getattr(args, name)
        if path and not Path(path).is_file():
            p.error(f"--{name.replace('_', '-')}: {path} not found")
    if args.balanced and args.stage != "uresnet":
        p.error("--balanced reads a segmentation network (--stage uresnet)")
    if args.dbscan and args.stage != "spice":
        p.error("--dbscan is the SPICE stage's reference (--stage spice)")
    if args.val_file and Path(args.val_file).resolve() == Path(args.test_file).resolve():
        p.error("--val-file is --test-file: use an independent test set")
    return args


def read_rows(path: Path) -> List[Dict[str, str]]:
    """The curve so far (empty when the CSV is absent). ``events`` is the count asked for
    (the key of a rerun), ``scored`` the count scored (fewer when the file is shorter)."""
    if not path.is_file():
        return []
    with open(path, newline="") as stream:
        rows = list(csv.DictReader(stream))
    for row in rows:  # written before the scored column existed: both were the same
        row.setdefault("scored", row["events"])
    return rows


def stage_config(stage: str, weights: Path, config: Optional[Dict[str, Any]] = None
                 ) -> Dict[str, Any]:
    """Inference config of one stage's checkpoint: the checkpoint's own config (its
    architecture), events in file order, labels read (``clust_label``)."""
    import copy

    from analysis.sources import LABEL_ENTRY, require_labels
    from mlreco_spice.checkpoint import load_checkpoint
    from mlreco_spice.config import load_config

    # The caller's copy of the checkpoint's config when it has read it already.
    cfg = copy.deepcopy(config if config is not None else load_checkpoint(weights)["config"])
    cfg["predict"].update(weights=str(weights), thresholds=None)
    # The checkpoint holds the stage's weights; where its training started (a run
    # directory that may be gone, as in an export's config) is not read again.
    for block in cfg["model"]["modules"].values():
        block["weights"] = None
    cfg["io"]["loader"].update(batch_size=1, shuffle=False)
    schema = cfg["io"]["dataset"]["schema"]
    if LABEL_ENTRY not in schema:
        # uresnet trains on seg_label alone; the truth is read as the SPICE stage reads it.
        schema[LABEL_ENTRY] = load_config("spice_stage_train")["io"]["dataset"]["schema"][LABEL_ENTRY]
    if stage == "spice":
        # The engine's own clustering is not scored: the methods re-cluster its outputs.
        cfg["model"]["modules"]["spice"]["clusterer"].update(SEED_SEARCH, enabled=False)
        cfg["model"]["modules"]["spice"]["use_true_semantics"] = True
    require_labels(cfg)
    return cfg


def score_spice(args: argparse.Namespace, weights: Path, iteration: int,
                config: Optional[Dict[str, Any]] = None
                ) -> Tuple[Dict[str, Dict[str, float]], int]:
    """Seed search (s0/p0 tuned on validation) and truth centroids: ``{method: {class: ari}}``
    and the events scored."""
    from accuracy_methods import run_networks
    from mlreco_spice.inference import InferenceEngine, load_thresholds
    from mlreco_spice.tune_files import tune_from_files
    from parsers.dataset import SpiceDataset

    cfg = stage_config("spice", weights, config)
    engine = InferenceEngine(cfg, args.device)
    thresholds = Path(args.out) / "thresholds" / f"spice-{iteration:07d}.yaml"
    thresholds.parent.mkdir(parents=True, exist_ok=True)
    tune_from_files(engine.cfg, [args.val_file], str(thresholds), n_events=args.tune_events,
                    engine=engine, progress=not args.no_progress)
    options = {k: v for k, v in engine.cfg["model"]["modules"]["spice"]["clusterer"].items()
               if k != "enabled"}
    options.update({k: load_thresholds(str(thresholds))[k] for k in ("s0", "p0")})
    items = SpiceDataset(engine.cfg["io"], files=[args.test_file]).good_items(args.events)
    result = run_networks({"spice_true_semantics": engine}, items, args.events,
                          int(cfg["analysis"]["min_true_size"]), progress=not args.no_progress,
                          desc=weights.name, paper_thresholds=options)
    rows = [r for r in result["rows"] if r["method"] in SPICE_METHODS]
    summaries = summarize_methods(rows, np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64),
                                  result["n_events"], float(cfg["analysis"]["ari_threshold"]))
    return {SPICE_METHODS[m]: {c: s.get(c, {}).get("ari", float("nan"))
                               for c in CLASS_NAMES + ("all",)}
            for m, s in summaries.items()}, result["n_events"]


def _accuracy(confusion: np.ndarray) -> Dict[str, float]:
    totals = confusion.sum(axis=1)
    accuracy = {c: (confusion[i, i] / totals[i] if totals[i] else float("nan"))
                for i, c in enumerate(CLASS_NAMES)}
    accuracy["all"] = (np.trace(confusion) / confusion.sum() if confusion.sum()
                       else float("nan"))
    return accuracy


def score_uresnet(args: argparse.Namespace, weights: Path, config: Optional[Dict[str, Any]] = None
                  ) -> Tuple[Dict[str, Dict[str, float]], int]:
    """Segmentation accuracy per true class and over all voxels (``segmentation``), also
    on each instance's main piece and on its detached pieces (:func:`main_piece`), and the
    events scored."""
    from tqdm import tqdm

    from mlreco_spice.inference import InferenceEngine
    from parsers.dataset import SpiceDataset

    engine = InferenceEngine(stage_config("uresnet", weights, config), args.device)
    # [all voxels, main pieces, detached pieces]
    confusion = np.zeros((3, NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    n_events = 0
    scored: List[Tuple[np.ndarray, np.ndarray]] = []  # (logits, truth) per event, --balanced
    items = SpiceDataset(engine.cfg["io"], files=[args.test_file]).good_items(args.events)
    for item in tqdm(items, total=args.events, desc=weights.name, unit="event",
                     disable=args.no_progress):
        pred = engine.run(item)
        ok = (pred.truth_semantic >= 0) & (pred.truth_semantic < NUM_CLASSES)
        assigned = ok & (pred.truth_instance >= 0)  # voxels of no instance are in neither split
        main = main_piece(pred.coords, np.where(assigned, pred.truth_instance, -1))
        for k, mask in enumerate((ok, assigned & main, assigned & ~main)):
            np.add.at(confusion[k], (pred.truth_semantic[mask], pred.semantics_pred[mask]), 1)
        if args.balanced:
            scored.append((pred.semantics_logits[ok], pred.truth_semantic[ok]))
        n_events += 1
    totals = confusion[0].sum(axis=1)
    # Where each class's voxels go: which confusions an accuracy below 1 comes from.
    path = Path(args.out) / "confusion" / f"uresnet-{weights.stem.split('-')[-1]}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_csv(path, ("true_class", "voxels") + CLASS_NAMES,
              [{"true_class": c, "voxels": int(totals[i]),
                **{p: f"{confusion[0, i, j] / max(int(totals[i]), 1):.4f}"
                   for j, p in enumerate(CLASS_NAMES)}} for i, c in enumerate(CLASS_NAMES)])
    scores = {"segmentation": _accuracy(confusion[0]), "main piece": _accuracy(confusion[1]),
              "detached pieces": _accuracy(confusion[2])}
    if args.balanced:
        balanced, offsets = cross_fitted_confusion(scored, NUM_CLASSES)
        # The two halves' offsets, and their mean as a network.logit_offsets value.
        log.info("%s: balanced offsets %s; mean [%s]", weights.name,
                 " and ".join("/".join(f"{o:+.2f}" for o in fold) for fold in offsets),
                 ", ".join(f"{o:.2f}" for o in np.mean(offsets, axis=0)))
        scores["balanced offsets"] = _accuracy(balanced)
    return scores, n_events


def dbscan_reference(args: argparse.Namespace, cfg: Dict[str, Any]) -> Dict[str, Any]:
    """DBSCAN per true class on the test events (tuned on validation): one curve-like row."""
    from accuracy import validation_events
    from accuracy_methods import score_rows
    from mlreco_spice.baselines import dbscan_by_class, tune_dbscan

    min_true_size = int(cfg["analysis"]["min_true_size"])
    params = tune_dbscan(validation_events(cfg, args.val_file, args.dbscan_val_events),
                         progress=not args.no_progress, min_true_size=min_true_size)["params"]
    rows, n_events = [], 0

    class _Event:  # what score_rows reads of a prediction
        def __init__(self, item: Dict[str, Any], entry: int):
            self.__dict__.update(item, file=args.test_file, entry=entry, run=0, subrun=0, event=entry)

    for entry, event in enumerate(validation_events(cfg, args.test_file, args.events)):
        labels = dbscan_by_class(event["coords"], event["truth_semantic"], params)
        rows += score_rows("dbscan", _Event(event, entry), labels, float("nan"), float("nan"),
                           min_true_size)[0]
        n_events += 1
    summary = summarize_methods(rows, np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64), n_events,
                                float(cfg["analysis"]["ari_threshold"]))["dbscan"]
    return {"test_file": str(Path(args.test_file).resolve()), "events": args.events,
            "scored": n_events,
            "method": "DBSCAN per true class",
            "params": " ".join(f"{c}:{v['eps']}/{v['min_samples']}" for c, v in params.items()),
            **{c: f"{summary.get(c, {}).get('ari', float('nan')):.4f}"
               for c in CLASS_NAMES + ("all",)}}


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from mlreco_spice.checkpoint import list_checkpoints, load_checkpoint

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / f"curve_{args.stage}.csv"
    rows: List[Dict[str, Any]] = read_rows(csv_path)
    test_file = str(Path(args.test_file).resolve())

    def same_events(row: Dict[str, Any]) -> bool:
        return row["test_file"] == test_file and int(row["events"]) == args.events

    # A checkpoint scored without --balanced is scored again with it.
    done = {int(r["iteration"]) for r in rows if same_events(r)
            and (not args.balanced or r["method"] == "balanced offsets")}

    checkpoints = list_checkpoints(Path(args.checkpoints))
    if not checkpoints:
        log.error("no checkpoint-*.pt in %s", args.checkpoints)
        return 1
    try:
        for path in checkpoints:
            iteration = int(re.search(r"(\d+)", path.name).group(1))
            if iteration in done:
                continue
            state = load_checkpoint(path)
            stages = list(state["config"]["model"]["stages"])
            if stages != [args.stage]:
                raise UserError(f"{path} trains {stages}, not [{args.stage}]")
            passes = iteration * int(state["config"]["io"]["loader"]["batch_size"]) * args.world
            config = state["config"]
            del state  # the weights: the engine loads them again, the config is enough here
            if any(abs(passes - int(r["event_passes"])) < args.min_gap
                   for r in rows if same_events(r) and int(r["iteration"]) != iteration):
                continue
            log.info("scoring %s (%d event passes)", path.name, passes)
            scores, n_events = (score_spice(args, path, iteration, config)
                                if args.stage == "spice" else score_uresnet(args, path, config))
            if n_events < args.events:
                log.warning("%s: %d good events, not %d", args.test_file, n_events, args.events)
            rows = [r for r in rows if not (same_events(r) and int(r["iteration"]) == iteration)]
            for method, values in scores.items():
                rows.append({"iteration": iteration, "event_passes": passes,
                             "test_file": test_file, "events": args.events, "scored": n_events,
                             "method": method,
                             **{c: f"{values[c]:.4f}" for c in CLASS_NAMES + ("all",)}})
            rows.sort(key=lambda r: (int(r["iteration"]), r["method"]))
            # After each checkpoint: a stop loses at most the one being scored.
            write_csv(csv_path, ("iteration", "event_passes", "test_file", "events", "scored",
                                 "method") + CLASS_NAMES + ("all",), rows)
    except UserError as err:
        log.error("%s", err)
        return 1
    # The table and plot show the curve on these test events only (a folder may hold others).
    rows = [r for r in rows if same_events(r)]
    if not rows:
        log.error("nothing scored")
        return 1
    reference = out / "reference_dbscan.csv"
    if args.dbscan:
        held = read_rows(reference)
        if not any(same_events(r) for r in held):
            log.info("DBSCAN reference: tuning on %d validation events, scoring %d test events",
                     args.dbscan_val_events, args.events)
            row = dbscan_reference(args, stage_config("spice", checkpoints[-1]))
            write_csv(reference, tuple(row), held + [row])
    command = "benchmarks/stage_curve.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    text = markdown(rows, args.stage, command)
    shown = None
    if args.stage == "spice":
        for r in read_rows(reference):
            if same_events(r):
                shown = r
                text += (f"\nReference, {r['method']} ({r['params']}; eps in voxels / "
                         f"min_samples), {r['scored']} test events: "
                         + " / ".join(fmt(r[c]) for c in CLASS_NAMES) + f" ({fmt(r['all'])})\n")
    atomic_write_text(out / f"curve_{args.stage}.md", text)
    plot(rows, out / f"curve_{args.stage}.png", args.stage, shown)
    print((out / f"curve_{args.stage}.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
