"""Do the dots' own cues label them better than their nearest main piece?

:mod:`segmentation_ceiling` read the segmentation floor of issue 18 with one judgement of
the detached dots of showers, deltas and Michels: each takes the class of the nearest
electromagnetic main piece. Its last line names the further cues a network has: the dot's
energy, and what lies around it. This benchmark measures how far those cues go, on the
truth alone (no network), with main pieces perfect as there:

1. Per dot (a voxel of a ruled class outside its particle's main piece), the features of
   :data:`FEATURE_GROUPS`, distances in cm from the image's voxel pitch:

   * ``distances``: to the nearest main-piece voxel of each ruled class;
   * ``pieces``: size (voxels) and energy (MeV) of that nearest piece, per class;
   * ``tracks``: to the nearest HIP or MIP voxel;
   * ``dot``: the dot's own energy, and the size and energy of its detached fragment
     (the dots touching it).

2. A small classifier (an MLP) learns the dot's class from them on training events
   (``--train-file``, truth only), its class offsets are then set on held-out training
   events to make the smallest implied class accuracy as large as possible, and it is
   scored on test events never seen before.

3. Implied accuracy per class, as in :mod:`segmentation_ceiling`: (voxels - dots + dots
   judged right) / voxels, with a bootstrap standard error over test events. It is
   reported for the nearest-piece rule and for each cumulative set of feature groups, so
   the table reads what each cue adds.

It reads how far these cues carry a judge of the dots; a network sees more of the image,
so it is not a bound on every network.

Usage::

    .venv/bin/python benchmarks/dot_cues.py --train-file DATA/train.h5 --train-events 1000 \\
        --test-file DATA/test_seed3.h5 --test-events 500 --out RUN/dot_cues
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dot_judge import DotJudge  # noqa: E402
from segmentation_ceiling import (COUNTS, DETACHED, EM_CLASSES, RULE_CORRECT,  # noqa: E402
                                  VOXELS, cli, implied_accuracy, publish, split_dots)
from mlreco_spice.pieces import TOUCH  # noqa: E402

from mlreco_spice.columns import (CLASS_NAMES, HIP, MIP, NUM_CLASSES,  # noqa: E402
                                  PARSER_COORD_COLS, PARSER_FEATURE_START, PARSER_INSTANCE_COL,
                                  PARSER_SEMANTIC_COL, class_indices)
from mlreco_spice.errors import UserError  # noqa: E402

log = logging.getLogger("dot_cues")

ROOT = Path(__file__).resolve().parent.parent
#: Distance (cm) standing for "no such voxel in the event"; images whose diagonal reaches it
#: are refused (:func:`read_events`), so it never stands for a real distance.
FAR_CM = 500.0
#: Feature groups, in the order they are added; each maps to its columns' names, where
#: ``{c}`` runs over the ruled classes.
FEATURE_GROUPS = {
    "distances": ("distance_{c}",),
    "pieces": ("piece_voxels_{c}", "piece_energy_{c}"),
    "tracks": ("distance_track",),
    "dot": ("dot_energy", "fragment_voxels", "fragment_energy"),
}
#: Share of the ruled classes' dots kept for fitting, per class name (the Shower's dots
#: outnumber the Delta's 70 to 1; the class offsets correct the priors afterwards).
FIT_SHARE = {"Shower": 0.1}


def feature_names(em: Sequence[int]) -> List[str]:
    """Every feature column's name, group after group."""
    names = []
    for group in FEATURE_GROUPS.values():
        for name in group:
            names += [name.format(c=CLASS_NAMES[c]) for c in em] if "{c}" in name else [name]
    return names


def group_columns(em: Sequence[int], groups: Sequence[str]) -> List[int]:
    """Columns of :func:`feature_names` that belong to ``groups``."""
    columns, start = [], 0
    for group, names in FEATURE_GROUPS.items():
        width = sum(len(em) if "{c}" in n else 1 for n in names)
        if group in groups:
            columns += range(start, start + width)
        start += width
    return columns


def dot_features(coords: np.ndarray, energy: np.ndarray, instance: np.ndarray,
                 semantic: np.ndarray, voxel_cm: Sequence[float], em: Sequence[int]
                 ) -> Dict[str, np.ndarray]:
    """One event's dots: their features (raw units: cm, voxels, MeV; :func:`feature_names`),
    true classes, and the event's voxel and dot counts per class (``counts``, columns
    :data:`segmentation_ceiling.COUNTS`, only voxels and detached filled)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    semantic = np.asarray(semantic, dtype=np.int64)
    instance = np.asarray(instance, dtype=np.int64)
    energy = np.asarray(energy, dtype=np.float64)
    scored, main, dots, anchors = split_dots(coords, instance, semantic, em)
    counts = np.zeros((NUM_CLASSES, len(COUNTS)), dtype=np.int64)
    np.add.at(counts[:, VOXELS], semantic[scored], 1)
    np.add.at(counts[:, DETACHED], semantic[scored & ~main], 1)
    features = np.zeros((len(dots), len(feature_names(em))))
    if len(dots) == 0:
        return {"features": features, "dot_class": semantic[dots], "counts": counts}
    cm = np.asarray(coords, dtype=np.float64) * np.asarray(voxel_cm, dtype=np.float64)
    column = 0
    nearest_piece = []
    for c in em:
        members = anchors[semantic[anchors] == c]
        if len(members):
            d, k = cKDTree(cm[members]).query(cm[dots])
            nearest_piece.append(instance[members[k]])
        else:
            d = np.full(len(dots), FAR_CM)
            nearest_piece.append(None)
        features[:, column] = d
        column += 1
    in_main = main & (instance >= 0)
    piece_voxels = np.bincount(instance[in_main], minlength=instance.max() + 1)
    piece_energy = np.bincount(instance[in_main], weights=energy[in_main],
                               minlength=instance.max() + 1)
    for table in (piece_voxels, piece_energy):
        for piece in nearest_piece:
            features[:, column] = 0.0 if piece is None else table[piece]
            column += 1
    tracks = np.flatnonzero(np.isin(semantic, (HIP, MIP)))
    features[:, column] = cKDTree(cm[tracks]).query(cm[dots])[0] if len(tracks) else FAR_CM
    column += 1
    # Fragments: dots touching each other, whatever their particle (a judge cannot see it).
    pairs = cKDTree(np.asarray(coords, dtype=np.float64)[dots]).query_pairs(
        TOUCH, output_type="ndarray")
    fragment = connected_components(coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])),
                                               shape=(len(dots),) * 2), directed=False)[1]
    features[:, column] = energy[dots]
    features[:, column + 1] = np.bincount(fragment)[fragment]
    features[:, column + 2] = np.bincount(fragment, weights=energy[dots])[fragment]
    return {"features": features, "dot_class": semantic[dots], "counts": counts}


def read_events(files: Sequence[str], limit: int, em: Sequence[int], progress: bool
                ) -> List[Dict[str, np.ndarray]]:
    """:func:`dot_features` of the first ``limit`` readable events of ``files``."""
    from tqdm import tqdm

    from mlreco_spice.config import load_config
    from parsers.dataset import SpiceDataset

    files = [str(Path(f).resolve()) for f in files]
    missing = [f for f in files if not Path(f).is_file()]
    if missing:
        raise UserError(f"file(s) not found: {', '.join(missing)}")
    cfg = load_config(ROOT / "chain_configs/spice_stage_train.yaml")
    events = []
    for item in tqdm(SpiceDataset(cfg["io"], files=files).good_items(limit), total=limit,
                     unit="event", disable=not progress, desc=Path(files[0]).name):
        diagonal = float(np.linalg.norm(item["meta"].length_cm))
        if diagonal >= FAR_CM:
            raise UserError(f"{item['file']}: the image's diagonal ({diagonal:.0f} cm) reaches "
                            f"FAR_CM ({FAR_CM:.0f} cm), which stands for a missing piece")
        label, data = np.asarray(item["clust_label"]), np.asarray(item["data"])
        coords = label[:, list(PARSER_COORD_COLS)]
        if not np.array_equal(coords, data[:, list(PARSER_COORD_COLS)]):
            raise UserError(f"{item['file']} entry {item['entry']}: data and labels are not "
                            "aligned voxel for voxel")
        events.append(dot_features(coords, data[:, PARSER_FEATURE_START],
                                   label[:, PARSER_INSTANCE_COL], label[:, PARSER_SEMANTIC_COL],
                                   item["meta"].voxel_cm, em))
    if not events:
        raise UserError(f"no readable event in {', '.join(files)}")
    return events


def correct_counts(events: Sequence[Dict[str, np.ndarray]], judged: np.ndarray,
                   em: Sequence[int]) -> np.ndarray:
    """Per event and class, the dots judged right (``judged``: ruled-class index of every
    dot of the events, in order; -1: not judged, counted wrong)."""
    sizes = [len(e["dot_class"]) for e in events]
    event = np.repeat(np.arange(len(events)), sizes)
    truth = np.concatenate([e["dot_class"] for e in events]) if events else np.zeros(0, int)
    right = (judged >= 0) & (np.asarray(em)[np.maximum(judged, 0)] == truth)
    return np.bincount(event * NUM_CLASSES + truth, weights=right,
                       minlength=len(events) * NUM_CLASSES).reshape(len(events), NUM_CLASSES)


def implied(events: Sequence[Dict[str, np.ndarray]], correct: np.ndarray) -> np.ndarray:
    """Per event and class: counts (:data:`segmentation_ceiling.COUNTS`) with the dots judged
    right filled in, for :func:`segmentation_ceiling.implied_accuracy`."""
    counts = np.stack([e["counts"] for e in events]).copy()
    counts[:, :, RULE_CORRECT] = correct
    return counts


def choose_offsets(log_proba: np.ndarray, events: Sequence[Dict[str, np.ndarray]],
                   em: Sequence[int], grid: Sequence[float] = tuple(np.linspace(-6, 6, 49))
                   ) -> np.ndarray:
    """Offsets (the first class's 0) maximising the smallest implied accuracy of the ruled
    classes summed over ``events`` (their dots are ``log_proba``'s rows; a class without
    voxels there does not count)."""
    total = np.stack([e["counts"] for e in events]).sum(axis=0)
    truth = np.concatenate([e["dot_class"] for e in events])

    def score(offsets: np.ndarray) -> float:
        right = np.asarray(em)[(log_proba + offsets).argmax(axis=1)] == truth
        total[:, RULE_CORRECT] = np.bincount(truth, weights=right, minlength=NUM_CLASSES)
        with np.errstate(invalid="ignore"):
            smallest = np.nanmin(implied_accuracy(total)[list(em)])
        return float(smallest) if np.isfinite(smallest) else -1.0

    # Ties (a flat objective, no dots) keep the offsets nearest zero: no bias unasked for.
    best = np.zeros(len(em))
    best_score = score(best)
    grids = np.meshgrid(*[np.asarray(grid)] * (len(em) - 1), indexing="ij")
    for combo in zip(*(g.ravel() for g in grids)):
        offsets = np.array((0.0,) + tuple(combo))
        value = score(offsets)
        if value > best_score or (value == best_score
                                  and np.abs(offsets).sum() < np.abs(best).sum()):
            best, best_score = offsets, value
    return best


def stacked(events: Sequence[Dict[str, np.ndarray]], em: Sequence[int]):
    """All events' features and ruled-class indices of their true classes."""
    features = np.concatenate([e["features"] for e in events])
    target = np.searchsorted(np.asarray(em), np.concatenate([e["dot_class"] for e in events]))
    return features, target


def fit_sample(target: np.ndarray, em: Sequence[int], seed: int) -> np.ndarray:
    """Row mask keeping :data:`FIT_SHARE` of each named class's dots, all of the others'."""
    rng = np.random.default_rng(seed)
    keep = np.ones(len(target), dtype=bool)
    for name, share in FIT_SHARE.items():
        if name in [CLASS_NAMES[c] for c in em]:
            rows = target == list(em).index(CLASS_NAMES.index(name))
            keep[rows] = rng.random(int(rows.sum())) < share
    return keep


def bootstrap_rows(name: str, counts: np.ndarray, em: Sequence[int], n_boot: int,
                   seed: int = 0) -> Dict[str, Any]:
    """One table row: dot and implied accuracy per ruled class, with bootstrap SEs."""
    total = counts.sum(axis=0)
    acc = implied_accuracy(total)
    rng = np.random.default_rng(seed)
    boots = np.array([implied_accuracy(counts[rng.integers(0, len(counts), len(counts))]
                                       .sum(axis=0)) for _ in range(n_boot)])
    row: Dict[str, Any] = {"judge": name}
    for c in em:
        cls = CLASS_NAMES[c]
        dots = total[c, DETACHED]
        row[f"dots_right_{cls}"] = total[c, RULE_CORRECT] / dots if dots else float("nan")
        row[f"implied_{cls}"] = float(acc[c])
        finite = boots[:, c][np.isfinite(boots[:, c])] if n_boot else np.zeros(0)
        row[f"implied_se_{cls}"] = float(finite.std()) if len(finite) > 1 else float("nan")
    row["smallest_implied"] = float(np.nanmin(acc[list(em)])) if np.isfinite(acc[list(em)]).any() \
        else float("nan")
    return row


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Command-line options (see ``--help``)."""
    p = argparse.ArgumentParser(description=__doc__.split("Usage::")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train-file", nargs="+", required=True, help="larcv3 file(s) of training "
                   "events (the judge learns and sets its offsets on them)")
    p.add_argument("--train-events", type=int, default=1000, help="training events read "
                   "(first N; default: %(default)s)")
    p.add_argument("--holdout", type=float, default=0.2, help="share of the training events "
                   "kept out of fitting to set the class offsets (default: %(default)s)")
    p.add_argument("--test-file", nargs="+", required=True, help="larcv3 file(s) of test "
                   "events, never used for fitting (e.g. test_seed3.h5)")
    p.add_argument("--test-events", type=int, default=500, help="test events read (first N; "
                   "default: %(default)s)")
    p.add_argument("--em-classes", nargs="+", default=list(EM_CLASSES), metavar="CLASS",
                   help="classes whose dots are judged (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=8, help="passes of the judge's fit "
                   "(default: %(default)s)")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples of the "
                   "test events for the standard errors (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="for the fit (default: %(default)s)")
    p.add_argument("--out", help="folder for dot_cues.csv and dot_cues.md (optional)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    if args.train_events < 2 or args.test_events < 1:
        p.error("--train-events must be >= 2 and --test-events >= 1")
    if not 0.0 < args.holdout < 1.0:
        p.error(f"--holdout must lie between 0 and 1, got {args.holdout}")
    args.em = sorted(class_indices(args.em_classes))
    return args


def markdown(rows: Sequence[Dict[str, Any]], em: Sequence[int], n_train: int, n_test: int,
             test_files: Sequence[str]) -> str:
    """The table for BENCHMARKS.md."""
    names = [CLASS_NAMES[c] for c in em]
    lines = [f"{n_test} test events of {', '.join(Path(f).name for f in test_files)} (judge fit "
             f"on {n_train} training events); main pieces perfect; per class: dots judged "
             "right, implied accuracy ± SE.", "",
             "| judge | " + " | ".join(f"{n} dots right | {n} implied" for n in names)
             + " | smallest |", "|---|" + "---|---|" * len(names) + "---|"]
    for r in rows:
        cells = [f"{r[f'dots_right_{n}']:.3f} | **{r[f'implied_{n}']:.3f}** ± "
                 f"{r[f'implied_se_{n}']:.3f}" for n in names]
        lines.append(f"| {r['judge']} | " + " | ".join(cells) + f" | {r['smallest_implied']:.3f} |")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> List[Dict[str, Any]]:
    """Read, fit each cumulative feature set, set offsets, score; write ``--out`` if given."""
    em = args.em
    progress = not args.no_progress
    train = read_events(args.train_file, args.train_events, em, progress)
    test = read_events(args.test_file, args.test_events, em, progress)
    n_hold = max(1, int(round(len(train) * args.holdout)))
    fit_events, hold_events = train[:-n_hold], train[-n_hold:]
    if not fit_events:
        raise UserError(f"{len(train)} readable training event(s): too few to fit the judge "
                        f"and keep {n_hold} for its offsets")
    x_fit, y_fit = stacked(fit_events, em)
    if len(np.unique(y_fit)) < 2:
        raise UserError(f"the {len(fit_events)} fitting events hold dots of fewer than two of "
                        "the judged classes: read more --train-events")
    x_hold, _ = stacked(hold_events, em)
    x_test, _ = stacked(test, em)
    keep = fit_sample(y_fit, em, args.seed)
    # The nearest-piece rule of segmentation_ceiling, from the same features.
    distances = x_test[:, group_columns(em, ["distances"])]
    nearest = np.where(distances.min(axis=1) < FAR_CM, distances.argmin(axis=1), -1)
    rows = [bootstrap_rows("nearest main piece (rule)",
                           implied(test, correct_counts(test, nearest, em)), em, args.bootstrap)]
    groups: List[str] = []
    for group in FEATURE_GROUPS:
        groups.append(group)
        judge = DotJudge(group_columns(em, groups), len(em), seed=args.seed)
        judge.fit(x_fit[keep], y_fit[keep], epochs=args.epochs)
        judge.offsets = choose_offsets(judge.log_proba(x_hold), hold_events, em)
        rows.append(bootstrap_rows("MLP: " + " + ".join(groups),
                                   implied(test, correct_counts(test, judge.predict(x_test), em)),
                                   em, args.bootstrap))
        log.info("%s: smallest implied accuracy %.3f (offsets %s)", rows[-1]["judge"],
                 rows[-1]["smallest_implied"], np.round(judge.offsets, 2).tolist())
    publish(rows, markdown(rows, em, len(train), len(test), args.test_file), args.out, "dot_cues")
    return rows


def main(argv: Optional[Sequence[str]] = None) -> int:
    return cli(run, parse_args, argv, log)


if __name__ == "__main__":
    sys.exit(main())
