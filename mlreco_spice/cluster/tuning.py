"""Grid search of the per-class thresholds ``s0``, ``p0`` (paper sec. III.C, Table II).

The network runs once per event (the caller passes its outputs); only the
clustering repeats. Per class and event the seed order is computed once, and
for each ``p0`` one greedy pass serves every ``s0`` on the grid (lowering
``s0`` only extends the same seed sequence: see
:func:`mlreco_spice.cluster.kernels.greedy_levels`).

Attribution follows :func:`mlreco_spice.metrics.evaluate_event`: class ``c``
is scored on voxels whose TRUE class is ``c``. Their predicted labels come
from clustering the voxels the ``semantics`` array puts in class ``c``; true-c
voxels placed in another class count as unclustered (they cost the same at
every grid point, so they do not move the optimum). The ``fast`` procedure is
tuned; ``mode="spine"`` thresholds are not tuned here.

The clusterer's steps beyond the paper (``at_least_one_seed``,
``refine_iterations``, ``merge_p``: :mod:`.postprocess`) are applied at every
grid point with the values given. When ``connect_radius_cm`` is given, a second
pass tunes ``connect_p`` per class at the chosen ``(s0, p0)``, with "off"
(``None``) as one of the candidates; events then need ``coords`` and
``voxel_cm`` (their pitch: distances are in cm). When
``absorb_radius_cm`` is given, a last pass picks ``absorb_p`` (cross-class,
:mod:`.absorb`) from :data:`ABSORB_P_GRID` by the mean over classes of the
mean ARI, clustering whole events with everything else fixed.
"""
from __future__ import annotations

import logging
import math
import time
from typing import Dict, Iterable, List, Mapping, Optional, Sequence

import numpy as np

from ..atomic import atomic_write_text
from ..columns import CLASS_NAMES, NUM_CLASSES, class_indices, shown_classes
from ..defaults import BEND_WINDOW_CM, PAPER_THRESHOLDS
from ..metrics import DEFAULT_MIN_TRUE_SIZE, prepare_truth, scores_from_codes, with_singletons
from .kernels import drop_small, greedy_levels, log_threshold
from .options import in_units, pitch_frame, step_options
from .postprocess import connect_fragments, postprocess_segment
from .touching import touching_pairs

__all__ = ["tune_thresholds", "write_thresholds", "format_threshold_table", "threshold_grid",
           "EVENT_KEYS", "METRICS", "CONNECT_P_GRID", "ABSORB_P_GRID"]

log = logging.getLogger(__name__)

#: Arrays each tuning event must provide (numpy, one row per voxel).
EVENT_KEYS = ("embeddings", "margins", "seediness", "semantics", "truth_instance", "truth_semantic")
METRICS = ("ari", "purity", "efficiency")
#: ``connect_p`` candidates of the second pass (None: connectivity step off).
CONNECT_P_GRID = (None, 0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.7)
#: ``absorb_p`` candidates of the last pass (None: absorb step off).
ABSORB_P_GRID = (None, 0.05, 0.1, 0.2, 0.3, 0.5)
S0_RANGE = (0.0, 1.0)
P0_RANGE = (0.0, 0.6)


def threshold_grid(step: float) -> Dict[str, np.ndarray]:
    """The ``s0`` grid over [0, 1] and ``p0`` grid over [0, 0.6] for ``step``."""
    if not 0.0 < step <= 0.5:
        raise ValueError(f"step must be in (0, 0.5], got {step}")
    grids = {}
    for name, (low, high) in (("s0", S0_RANGE), ("p0", P0_RANGE)):
        # Rounded so 0.05 * 3 prints and compares as 0.15.
        grids[name] = np.round(np.arange(low, high + step / 2, step), 10)
        grids[name] = grids[name][grids[name] <= high]
    return grids


def _check_event(index: int, event: Mapping) -> int:
    missing = [k for k in EVENT_KEYS if k not in event]
    if missing:
        raise ValueError(f"tuning event {index} lacks {missing}; needs {EVENT_KEYS}")
    n = len(event["seediness"])
    for key in EVENT_KEYS:
        if len(event[key]) != n:
            raise ValueError(f"tuning event {index}: '{key}' has {len(event[key])} rows, "
                             f"'seediness' has {n}")
    return n


class _Segment:
    """One (event, class): the sorted segment to cluster and the truth it is scored on."""

    def __init__(self, event: Mapping, c: int, min_true_size: int):
        truth_semantic = np.asarray(event["truth_semantic"]).reshape(-1)
        keep, self.t, self.n_true = prepare_truth(
            np.where(truth_semantic == c, np.asarray(event["truth_instance"]).reshape(-1), -1),
            min_true_size)
        self.scored = bool(keep.any())
        if not self.scored:
            return
        semantics = np.asarray(event["semantics"]).reshape(-1)
        members = np.flatnonzero(semantics == c)
        seediness = np.asarray(event["seediness"], dtype=np.float64).reshape(-1)
        order = members[np.argsort(-seediness[members], kind="stable")]
        # Position of each scored voxel in the sorted segment (-1: other class).
        position = np.full(semantics.size, -1, dtype=np.int64)
        position[order] = np.arange(order.size)
        self.position = position[keep]
        self.in_segment = self.position >= 0
        self.emb = np.asarray(event["embeddings"], dtype=np.float64)[order]
        self.margins = np.asarray(event["margins"], dtype=np.float64).reshape(-1)[order]
        self.seeds = seediness[order]
        self.coords, self.unit_cm = None, None
        if "coords" in event and event.get("voxel_cm") is not None:
            # In isotropic units of unit_cm cm (distances are set in cm).
            self.coords, self.unit_cm = pitch_frame(
                np.asarray(event["coords"], dtype=np.float64)[order], event.get("voxel_cm"))

    def levels(self, s0_desc: np.ndarray, p0: float, options: Mapping) -> np.ndarray:
        """Greedy labels (one row per ``s0`` in ``s0_desc``), post-steps 1-2 applied."""
        if not self.seeds.size:
            return np.full((s0_desc.size, 0), -1, dtype=np.int64)
        levels = greedy_levels(self.emb, self.margins, self.seeds, s0_desc,
                               log_threshold(float(p0)), options["assign_leftovers"],
                               options["min_seeds"])
        return np.stack([postprocess_segment(self.emb, self.margins, labels,
                                             options["refine_iterations"], options["merge_p"])
                         for labels in levels])

    def scores(self, labels: np.ndarray, min_cluster_size: int) -> np.ndarray:
        """(purity, ...) in :data:`METRICS` order for segment labels."""
        labels, _ = drop_small(labels, min_cluster_size)
        pred = np.full(self.t.size, -1, dtype=np.int64)
        pred[self.in_segment] = labels[self.position[self.in_segment]]
        scores = scores_from_codes(self.t, self.n_true, *with_singletons(pred))
        return np.array([scores[name] for name in METRICS])


def _grid_scores(segment: _Segment, grids: Dict[str, np.ndarray], options: Mapping
                 ) -> np.ndarray:
    """Scores (3 metrics, n_p0, n_s0) of one segment over the grid."""
    s0_desc = grids["s0"][::-1].copy()
    out = np.empty((len(METRICS), grids["p0"].size, grids["s0"].size))
    for i, p0 in enumerate(grids["p0"]):
        for j_desc, labels in enumerate(segment.levels(s0_desc, p0, options)):
            out[:, i, s0_desc.size - 1 - j_desc] = segment.scores(labels,
                                                                  options["min_cluster_size"])
    return out


def _connect_scores(segment: _Segment, s0: float, p0: float, radius_cm: float,
                    options: Mapping) -> np.ndarray:
    """Scores (3 metrics, len(CONNECT_P_GRID)) at fixed thresholds."""
    labels = segment.levels(np.array([s0]), p0, options)[0]
    radius = in_units(radius_cm, segment.unit_cm)
    window = in_units(options["bend_window_cm"], segment.unit_cm)
    out = np.empty((len(METRICS), len(CONNECT_P_GRID)))
    pairs = touching_pairs(segment.coords, radius)  # the same voxels at every grid point
    for k, connect_p in enumerate(CONNECT_P_GRID):
        found = labels if connect_p is None or not labels.size else \
            connect_fragments(segment.coords, segment.emb, segment.margins, labels, radius,
                              connect_p, options["max_bend"], window, (pairs.a, pairs.b))
        out[:, k] = segment.scores(found, options["min_cluster_size"])
    return out


def _best(mean: np.ndarray, metric: str) -> int:
    """Flat index of the best grid point of ``mean`` (metrics, ...).

    Ties go to the larger purity + efficiency, then the lower flat index.
    """
    mean = np.where(np.isnan(mean), -np.inf, mean)
    target = mean[METRICS.index(metric)].ravel()
    tie = (mean[METRICS.index("purity")] + mean[METRICS.index("efficiency")]).ravel()
    # lexsort: last key is primary.
    return int(np.lexsort((-np.arange(target.size), tie, target))[-1])


def tune_thresholds(events: Iterable[Mapping], step: float = 0.05, metric: str = "ari",
                    classes: Optional[Sequence] = None, progress: bool = True, *,
                    min_true_size: int = DEFAULT_MIN_TRUE_SIZE, min_cluster_size: int = 1,
                    assign_leftovers: bool = True, at_least_one_seed: bool = False,
                    refine_iterations: int = 0, merge_p=None, connect_radius_cm=None,
                    absorb_radius_cm: Optional[float] = None,
                    connect_max_bend: Optional[float] = None,
                    reconnect_after_absorb: bool = False,
                    bend_window_cm: float = BEND_WINDOW_CM,
                    class_names: Sequence[str] = CLASS_NAMES) -> Dict:
    """Grid-search ``s0`` in [0, 1] and ``p0`` in [0, 0.6] per class (then ``connect_p``).

    Parameters
    ----------
    events : iterable of dict
        Per-event network outputs and truth, numpy arrays with keys
        :data:`EVENT_KEYS`: ``embeddings (N, D)``, ``margins (N,)``,
        ``seediness (N,)``, ``semantics (N,)`` (class used for clustering),
        ``truth_instance (N,)``, ``truth_semantic (N,)``; plus ``coords (N, 3)``
        (voxel indices) and ``voxel_cm`` (the event's pitch, ``ImageMeta.voxel_cm``)
        when ``connect_radius_cm`` or ``absorb_radius_cm`` is set.
    step : float
        Grid step for both thresholds.
    metric : {"ari", "purity", "efficiency"}
        Mean over events (where the class is scored) to maximise; ties go to
        the larger mean purity + efficiency, then to the smaller ``p0``, then
        the smaller ``s0`` (then "off", then the smaller ``connect_p``).
    classes : sequence of str or int, optional
        Classes to tune (default all); the others keep the paper's values.
    progress : bool
        Show a progress bar over events.
    min_true_size, min_cluster_size, assign_leftovers
        As in the metrics and the clusterer.
    at_least_one_seed, refine_iterations, merge_p, connect_radius_cm
        The clusterer's options (:func:`mlreco_spice.cluster.cluster_events`),
        held fixed; ``connect_radius_cm`` (per class, cm) turns on the ``connect_p`` pass.
    absorb_radius_cm : float, optional
        cm; turns on the ``absorb_p`` pass (events are then kept in memory).
    connect_max_bend, reconnect_after_absorb, bend_window_cm
        Held fixed: the bend veto (and its window, cm) in the ``connect_p`` and
        ``absorb_p`` passes, the reconnect step in the ``absorb_p`` pass.
    class_names : sequence of str
        Name of each class index in the result
        (:func:`~mlreco_spice.columns.class_names`); where tracks are one class
        (``Track``) HIP, which no voxel can be, is left out of it.

    Returns
    -------
    dict
        ``s0``, ``p0`` and ``connect_p`` (class name -> value, every class
        of :func:`~mlreco_spice.columns.shown_classes`;
        ``connect_p`` None where off), ``absorb_p`` (None: off), ``scores`` (class name -> ``{ari,
        purity, efficiency, n_events}`` at the optimum; NaN and 0 for classes
        left at the paper value), ``tuned`` (class names tuned), ``metric``,
        ``step``, ``n_events``, ``seconds``.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got '{metric}'")
    grids = threshold_grid(step)
    shown = shown_classes(class_names)
    wanted = class_indices(classes) if classes is not None else list(shown)
    # Same parsing and checks as the clusterer, before the grid search rather than after it.
    steps = step_options("fast", at_least_one_seed, refine_iterations, merge_p, connect_radius_cm,
                         None, absorb_radius_cm, None, connect_max_bend, reconnect_after_absorb,
                         bend_window_cm)
    merge, radius = steps["merge_p"], steps["connect_radius_cm"]
    options = [{"assign_leftovers": bool(assign_leftovers), "min_seeds": int(bool(at_least_one_seed)),
                "refine_iterations": int(refine_iterations), "merge_p": merge[c],
                "min_cluster_size": int(min_cluster_size), "max_bend": steps["connect_max_bend"],
                "bend_window_cm": steps["bend_window_cm"]}
               for c in range(NUM_CLASSES)]
    from tqdm import tqdm

    start = time.perf_counter()
    per_class: Dict[int, List[np.ndarray]] = {c: [] for c in wanted}
    segments: Dict[int, List[_Segment]] = {c: [] for c in wanted}
    kept: List[Mapping] = []
    n_events = 0
    for index, event in enumerate(tqdm(events, desc="tune", unit="event", disable=not progress)):
        _check_event(index, event)
        if (absorb_radius_cm is not None or any(radius[c] is not None for c in wanted)) \
                and ("coords" not in event or event.get("voxel_cm") is None):
            raise ValueError(f"tuning event {index} lacks 'coords' or 'voxel_cm' (needed with "
                             "connect_radius_cm or absorb_radius_cm)")
        n_events += 1
        if absorb_radius_cm is not None:
            kept.append(event)
        for c in wanted:
            segment = _Segment(event, c, min_true_size)
            if segment.scored:
                per_class[c].append(_grid_scores(segment, grids, options[c]))
                if radius[c] is not None:
                    segments[c].append(segment)
    if n_events == 0:
        raise ValueError("tune_thresholds needs at least one event")
    result: Dict = {"s0": {}, "p0": {}, "connect_p": {}, "scores": {}, "tuned": [],
                    "metric": metric, "step": float(step), "n_events": n_events}
    for c in sorted(set(shown) | set(wanted)):
        name = class_names[c]
        stack = per_class.get(c, [])
        result["connect_p"][name] = None
        if not stack:
            result["s0"][name] = PAPER_THRESHOLDS[CLASS_NAMES[c]]["s0"]
            result["p0"][name] = PAPER_THRESHOLDS[CLASS_NAMES[c]]["p0"]
            result["scores"][name] = {**{m: math.nan for m in METRICS}, "n_events": 0}
            continue
        mean = np.nanmean(np.stack(stack), axis=0)  # (metrics, p0, s0)
        i, j = np.unravel_index(_best(mean, metric), mean.shape[1:])
        s0, p0 = float(grids["s0"][j]), float(grids["p0"][i])
        best = mean[:, i, j]
        if segments.get(c):
            connect = np.nanmean(np.stack([_connect_scores(seg, s0, p0, radius[c], options[c])
                                           for seg in segments[c]]), axis=0)
            k = _best(connect, metric)
            result["connect_p"][name] = CONNECT_P_GRID[k]
            best = connect[:, k]
        result["s0"][name], result["p0"][name] = s0, p0
        result["scores"][name] = {**{m: float(best[k]) for k, m in enumerate(METRICS)},
                                  "n_events": len(stack)}
        result["tuned"].append(name)
    result["absorb_p"] = None
    if absorb_radius_cm is not None:
        clusterer = dict(s0=result["s0"], p0=result["p0"], connect_p=result["connect_p"],
                         connect_radius_cm=connect_radius_cm, merge_p=merge_p,
                         refine_iterations=refine_iterations, at_least_one_seed=at_least_one_seed,
                         min_cluster_size=min_cluster_size, assign_leftovers=assign_leftovers,
                         connect_max_bend=connect_max_bend,
                         reconnect_after_absorb=reconnect_after_absorb,
                         bend_window_cm=bend_window_cm)
        result["absorb_p"], scores = _tune_absorb(kept, clusterer, float(absorb_radius_cm),
                                                  min_true_size, wanted, class_names)
        for name, value in scores.items():
            result["scores"][name] = value
    result["seconds"] = time.perf_counter() - start
    return result


def _tune_absorb(events: Sequence[Mapping], clusterer: Mapping, radius_cm: float,
                 min_true_size: int, wanted: Sequence[int],
                 class_names: Sequence[str] = CLASS_NAMES):
    """``absorb_p`` from :data:`ABSORB_P_GRID` maximising the mean over classes of mean ARI."""

    from ..metrics import evaluate_event
    from .clusterer import cluster_event_arrays

    names = [class_names[c] for c in wanted]
    best = (-math.inf, None, {})
    for absorb_p in ABSORB_P_GRID:
        rows: Dict[str, List[Dict]] = {name: [] for name in names}
        for event in events:
            labels = cluster_event_arrays(event["embeddings"], event["margins"],
                                          event["seediness"], event["semantics"],
                                          event["coords"], voxel_cm=event["voxel_cm"],
                                          absorb_radius_cm=radius_cm, absorb_p=absorb_p,
                                          **clusterer)
            for row in evaluate_event(event["truth_instance"], labels, event["truth_semantic"],
                                      min_true_size, classes=wanted,
                                      class_names=class_names):
                rows[row["class"]].append(row)
        means = {name: {m: float(np.mean([r[m] for r in rs])) for m in METRICS}
                 for name, rs in rows.items() if rs}
        target = float(np.mean([v["ari"] for v in means.values()])) if means else -math.inf
        log.info("absorb_p %s: mean ARI over classes %.4f", absorb_p, target)
        if target > best[0]:
            best = (target, absorb_p, {name: {**v, "n_events": len(rows[name])}
                                       for name, v in means.items()})
    return best[1], best[2]


def format_threshold_table(result: Mapping) -> str:
    """The tuned thresholds as text in the form of the paper's Table II (plus ``connect_p``)."""
    lines = [f"Optimal thresholds ({result.get('metric', 'ari')}, step {result.get('step')}, "
             f"{result.get('n_events')} events)",
             f"{'':8s} {'s0':>6s} {'p0':>6s} {'connect':>7s} {'ARI':>7s} {'purity':>7s} "
             f"{'effic.':>7s} {'events':>7s}"]
    for name in result["s0"]:
        sc = result["scores"][name]
        connect = result.get("connect_p", {}).get(name)
        lines.append(f"{name:8s} {result['s0'][name]:6.3g} {result['p0'][name]:6.3g} "
                     f"{'off' if connect is None else format(connect, '.3g'):>7s} "
                     f"{sc['ari']:7.3f} {sc['purity']:7.3f} {sc['efficiency']:7.3f} "
                     f"{sc['n_events']:7d}" + ("" if name in result.get("tuned", ()) else "  (paper)"))
    if result.get("absorb_p") is not None:
        lines.append(f"absorb_p {result['absorb_p']:.3g} (all classes)")
    return "\n".join(lines)


def write_thresholds(path: str, result: Mapping) -> None:
    """Write ``{s0: {...}, p0: {...}, connect_p: {...}}`` as YAML, atomically, with comments.

    ``connect_p`` is written only when some class uses it (``null``: off). The
    file is usable as ``predict.thresholds``; :class:`SPICEClusterer` takes it
    as keyword arguments (with ``connect_radius_cm`` from the config).
    """
    import yaml

    header = ["# SPICE clustering thresholds written by mlreco_spice.cluster.tuning",
              *("# " + line for line in format_threshold_table(result).splitlines())]
    names = list(result["s0"])  # the result's classes, under its names (Track...)
    body = {key: {name: float(result[key][name]) for name in names} for key in ("s0", "p0")}
    connect = result.get("connect_p", {})
    if any(v is not None for v in connect.values()):
        body["connect_p"] = {name: None if connect.get(name) is None else float(connect[name])
                             for name in names}
    if result.get("absorb_p") is not None:
        body["absorb_p"] = float(result["absorb_p"])
    text = "\n".join(header) + "\n" + yaml.safe_dump(body, sort_keys=False)
    atomic_write_text(path, text)
