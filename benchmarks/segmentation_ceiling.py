"""How well can any segmentation label the detached dots of showers, deltas and Michels?

Issue 18 asks for segmentation accuracy >= 0.90 in every class. A Delta or
Michel electron, like a shower, leaves part of its energy as dots detached
from its main touching piece (:func:`mlreco_spice.pieces.main_piece`). A dot carries
no class of its own: the network can only judge it by what lies around it.
This benchmark measures, on the truth alone (no network), what the most
natural such judgement gives:

*rule*  every voxel of an electromagnetic class (``--em-classes``) outside the
        main pieces takes the class of the nearest voxel of an
        electromagnetic main piece (distance in cm, from the image's voxel
        pitch); every main-piece voxel, and every track voxel, keeps its
        true class (a perfect network on them).

Per class it reports the share of voxels outside the main pieces, the rule's
accuracy on them, how often the nearest main piece is the dot's own particle,
the median distance to it, and the class accuracy this implies (main pieces
perfect, dots by the rule), with a bootstrap standard error over events. An
implied accuracy under 0.90 says that a network must do better than the
nearest-piece judgement on dots to reach the floor: it reads the floor, it is
not a bound on every possible segmentation.

Usage::

    .venv/bin/python benchmarks/segmentation_ceiling.py DATA/test_seed3.h5 --events 500 \\
        --out RUN/ceiling
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accuracy_report import write_csv  # noqa: E402
from mlreco_spice.pieces import main_piece  # noqa: E402

from mlreco_spice.atomic import atomic_write_text  # noqa: E402
from mlreco_spice.columns import (CLASS_NAMES, NUM_CLASSES, PARSER_COORD_COLS,  # noqa: E402
                                  PARSER_INSTANCE_COL, PARSER_SEMANTIC_COL, class_indices)
from mlreco_spice.errors import UserError  # noqa: E402

log = logging.getLogger("segmentation_ceiling")

ROOT = Path(__file__).resolve().parent.parent
#: The classes whose particles leave detached dots (and whose main pieces claim them).
EM_CLASSES = ("Shower", "Delta", "Michel")
#: Per-event counts kept per class (columns of :func:`event_counts`' array).
COUNTS = ("voxels", "detached", "rule_correct", "own_particle")
VOXELS, DETACHED, RULE_CORRECT, OWN_PARTICLE = range(len(COUNTS))


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Command-line options (see ``--help``)."""
    p = argparse.ArgumentParser(description=__doc__.split("Usage::")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", nargs="+", help="larcv3 file(s) with cluster3d_pcluster and "
                   "sparse3d_semantics (e.g. the simulator's test_seed3.h5)")
    p.add_argument("--events", type=int, default=500, help="events read (first N) "
                   "(default: %(default)s)")
    p.add_argument("--em-classes", nargs="+", default=list(EM_CLASSES), metavar="CLASS",
                   help="classes whose dots the rule labels (default: %(default)s)")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples of the "
                   "events for the standard errors (default: %(default)s)")
    p.add_argument("--out", help="folder for ceiling.csv and ceiling.md (optional)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    if args.events < 1:
        p.error(f"--events must be >= 1, got {args.events}")
    args.em = class_indices(args.em_classes)
    return args


def split_dots(coords: np.ndarray, instance: np.ndarray, semantic: np.ndarray,
               em: Iterable[int]) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The scored voxels (mask), the main pieces (mask), and the indices of the dots (ruled
    classes outside a main piece) and of the anchors (ruled classes inside one)."""
    semantic = np.asarray(semantic, dtype=np.int64)
    instance = np.asarray(instance, dtype=np.int64)
    scored = (semantic >= 0) & (semantic < NUM_CLASSES)
    main = main_piece(coords, np.where(scored & (instance >= 0), instance, -1))
    is_em = np.isin(semantic, list(em))
    return scored, main, np.flatnonzero(is_em & ~main), np.flatnonzero(is_em & main)


def event_counts(coords: np.ndarray, instance: np.ndarray, semantic: np.ndarray,
                 voxel_cm: Sequence[float], em: Iterable[int]) -> Dict[str, Any]:
    """One event's counts per class (rows: classes; columns: :data:`COUNTS`) and the
    distances (cm) from each ruled dot to its nearest electromagnetic main-piece voxel.

    Parameters
    ----------
    coords : (N, 3) voxel indices; instance : (N,) true particle (-1: none);
    semantic : (N,) true class (-1 or >= NUM_CLASSES: not scored);
    voxel_cm : voxel pitch (cm) along x, y, z; em : classes the rule labels.
    """
    from scipy.spatial import cKDTree

    semantic = np.asarray(semantic, dtype=np.int64)
    instance = np.asarray(instance, dtype=np.int64)
    scored, main, dots, anchors = split_dots(coords, instance, semantic, em)
    counts = np.zeros((NUM_CLASSES, len(COUNTS)), dtype=np.int64)
    np.add.at(counts[:, VOXELS], semantic[scored], 1)
    np.add.at(counts[:, DETACHED], semantic[scored & ~main], 1)
    distances = np.zeros(0)
    if len(dots) and len(anchors):
        cm = np.asarray(coords, dtype=np.float64) * np.asarray(voxel_cm, dtype=np.float64)
        distances, nearest = cKDTree(cm[anchors]).query(cm[dots])
        nearest = anchors[nearest]
        np.add.at(counts[:, RULE_CORRECT], semantic[dots], semantic[nearest] == semantic[dots])
        own = (instance[nearest] == instance[dots]) & (instance[dots] >= 0)
        np.add.at(counts[:, OWN_PARTICLE], semantic[dots], own)
    # An event without an electromagnetic main piece leaves its dots unlabelled (wrong).
    return {"counts": counts, "distances": distances,
            "dot_class": semantic[dots] if len(distances) else np.zeros(0, dtype=np.int64)}


def implied_accuracy(counts: np.ndarray) -> np.ndarray:
    """Per class: (voxels - detached + rule_correct) / voxels of summed event counts
    (meaningful for the ruled classes; the others are taken as perfect)."""
    voxels, detached, correct = (counts[..., i] for i in (VOXELS, DETACHED, RULE_CORRECT))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (voxels - detached + correct) / voxels


def summarize(per_event: np.ndarray, distances: List[np.ndarray], dot_classes: List[np.ndarray],
              em: Sequence[int], n_boot: int, seed: int = 0) -> List[Dict[str, Any]]:
    """One row per class: shares, the rule's accuracy, implied accuracy and its bootstrap SE."""
    total = per_event.sum(axis=0)
    implied = implied_accuracy(total)
    rng = np.random.default_rng(seed)
    boots = np.array([implied_accuracy(per_event[rng.integers(0, len(per_event), len(per_event))]
                                       .sum(axis=0)) for _ in range(n_boot)]) if n_boot else None
    all_d = np.concatenate(distances) if distances else np.zeros(0)
    all_c = np.concatenate(dot_classes) if dot_classes else np.zeros(0, dtype=np.int64)
    rows = []
    for c, name in enumerate(CLASS_NAMES):
        voxels, detached, correct, own = (int(total[c, i]) for i in
                                          (VOXELS, DETACHED, RULE_CORRECT, OWN_PARTICLE))
        ruled = c in em
        d = all_d[all_c == c]
        rows.append({
            "class": name, "voxels": voxels, "ruled": ruled,
            "detached_fraction": detached / voxels if voxels else float("nan"),
            "rule_accuracy": correct / detached if ruled and detached else float("nan"),
            "own_particle": own / detached if ruled and detached else float("nan"),
            "median_distance_cm": float(np.median(d)) if len(d) else float("nan"),
            "implied_accuracy": float(implied[c]) if ruled else 1.0,
            "implied_se": float(np.nanstd(boots[:, c])) if ruled and boots is not None
            else float("nan"),
        })
    return rows


def markdown(rows: Sequence[Dict[str, Any]], n_events: int, files: Sequence[str]) -> str:
    """The table for BENCHMARKS.md."""
    def f(v: float, digits: int = 3) -> str:
        return "–" if v != v else f"{v:.{digits}f}"

    lines = [f"{n_events} events of {', '.join(Path(x).name for x in files)}; main pieces "
             "perfect, dots of the ruled classes take the class of the nearest "
             "electromagnetic main piece.", "",
             "| class | voxels | outside main piece | rule right on them | nearest piece is "
             "its own particle | median distance (cm) | implied accuracy ± SE |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        if not r["ruled"]:
            lines.append(f"| {r['class']} | {r['voxels']:,} | {f(r['detached_fraction'])} | "
                         "not ruled | – | – | (1) |")
            continue
        lines.append(f"| {r['class']} | {r['voxels']:,} | {f(r['detached_fraction'])} | "
                     f"{f(r['rule_accuracy'])} | {f(r['own_particle'])} | "
                     f"{f(r['median_distance_cm'], 1)} | **{f(r['implied_accuracy'])}** ± "
                     f"{f(r['implied_se'])} |")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> List[Dict[str, Any]]:
    """Read the events, count, summarise; write ``--out`` when given."""
    from tqdm import tqdm

    from mlreco_spice.config import load_config
    from parsers.dataset import SpiceDataset

    files = [str(Path(f).resolve()) for f in args.file]
    missing = [f for f in files if not Path(f).is_file()]
    if missing:
        raise UserError(f"file(s) not found: {', '.join(missing)}")
    cfg = load_config(ROOT / "chain_configs/spice_stage_train.yaml")
    per_event, distances, dot_classes = [], [], []
    items = SpiceDataset(cfg["io"], files=files).good_items(args.events)
    for item in tqdm(items, total=args.events, unit="event", disable=args.no_progress):
        label = np.asarray(item["clust_label"])
        result = event_counts(label[:, list(PARSER_COORD_COLS)], label[:, PARSER_INSTANCE_COL],
                              label[:, PARSER_SEMANTIC_COL], item["meta"].voxel_cm, args.em)
        per_event.append(result["counts"])
        distances.append(result["distances"])
        dot_classes.append(result["dot_class"])
    if not per_event:
        raise UserError(f"no readable event in {', '.join(files)}")
    rows = summarize(np.stack(per_event), distances, dot_classes, args.em, args.bootstrap)
    publish(rows, markdown(rows, len(per_event), files), args.out, "ceiling")
    return rows


def publish(rows: Sequence[Dict[str, Any]], table: str, out: Optional[str], stem: str) -> None:
    """Print the table; with ``out``, write ``<stem>.csv`` and ``<stem>.md`` there atomically."""
    print(table)
    if out:
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        write_csv(folder / f"{stem}.csv", list(rows[0]), rows)
        atomic_write_text(folder / f"{stem}.md", table)


def cli(run_args: Callable[[argparse.Namespace], Any],
        parse: Callable[[Optional[Sequence[str]]], argparse.Namespace],
        argv: Optional[Sequence[str]], logger: logging.Logger) -> int:
    """A benchmark's ``main``: parse, run, and a user error logged as one line (exit 2)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        run_args(parse(argv))
    except UserError as err:
        logger.error("%s", err)
        return 2
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    return cli(run, parse_args, argv, log)


if __name__ == "__main__":
    sys.exit(main())
