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
"""
from __future__ import annotations

import logging
import math
import time
from typing import Dict, Iterable, List, Mapping, Optional, Sequence

import numpy as np

from ..atomic import atomic_write_text
from ..columns import CLASS_NAMES, class_indices
from ..defaults import PAPER_THRESHOLDS
from ..metrics import DEFAULT_MIN_TRUE_SIZE, prepare_truth, scores_from_codes, with_singletons
from .kernels import drop_small, greedy_levels, log_threshold

__all__ = ["tune_thresholds", "write_thresholds", "format_threshold_table", "tune_from_files",
           "threshold_grid", "EVENT_KEYS", "METRICS"]

log = logging.getLogger(__name__)

#: Arrays each tuning event must provide (numpy, one row per voxel).
EVENT_KEYS = ("embeddings", "margins", "seediness", "semantics", "truth_instance", "truth_semantic")
METRICS = ("ari", "purity", "efficiency")
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


def _event_class_scores(event: Mapping, c: int, grids: Dict[str, np.ndarray],
                        min_true_size: int, min_cluster_size: int,
                        assign_leftovers: bool) -> Optional[np.ndarray]:
    """Scores (3 metrics, n_p0, n_s0) of class ``c`` in one event; None if not scored."""
    truth_semantic = np.asarray(event["truth_semantic"]).reshape(-1)
    keep, t, n_true = prepare_truth(
        np.where(truth_semantic == c, np.asarray(event["truth_instance"]).reshape(-1), -1),
        min_true_size)
    if not keep.any():
        return None
    semantics = np.asarray(event["semantics"]).reshape(-1)
    members = np.flatnonzero(semantics == c)
    seediness = np.asarray(event["seediness"], dtype=np.float64).reshape(-1)
    order = members[np.argsort(-seediness[members], kind="stable")]
    # Position of each scored voxel in the sorted segment (-1: other class).
    position = np.full(semantics.size, -1, dtype=np.int64)
    position[order] = np.arange(order.size)
    position = position[keep]
    in_segment = position >= 0
    emb = np.asarray(event["embeddings"], dtype=np.float64)[order]
    margins = np.asarray(event["margins"], dtype=np.float64).reshape(-1)[order]
    seeds = seediness[order]
    s0_desc = grids["s0"][::-1].copy()
    out = np.empty((len(METRICS), grids["p0"].size, grids["s0"].size))
    pred = np.full(t.size, -1, dtype=np.int64)
    for i, p0 in enumerate(grids["p0"]):
        levels = greedy_levels(emb, margins, seeds, s0_desc, log_threshold(float(p0)),
                               assign_leftovers) if order.size else \
            np.full((s0_desc.size, 0), -1, dtype=np.int64)
        for j_desc, labels in enumerate(levels):
            labels, _ = drop_small(labels, min_cluster_size)
            pred[in_segment] = labels[position[in_segment]]
            scores = scores_from_codes(t, n_true, *with_singletons(pred))
            j = s0_desc.size - 1 - j_desc
            for m, name in enumerate(METRICS):
                out[m, i, j] = scores[name]
    return out


def tune_thresholds(events: Iterable[Mapping], step: float = 0.05, metric: str = "ari",
                    classes: Optional[Sequence] = None, progress: bool = True, *,
                    min_true_size: int = DEFAULT_MIN_TRUE_SIZE, min_cluster_size: int = 1,
                    assign_leftovers: bool = True) -> Dict:
    """Grid-search ``s0`` in [0, 1] and ``p0`` in [0, 0.6] per class.

    Parameters
    ----------
    events : iterable of dict
        Per-event network outputs and truth, numpy arrays with keys
        :data:`EVENT_KEYS`: ``embeddings (N, D)``, ``margins (N,)``,
        ``seediness (N,)``, ``semantics (N,)`` (class used for clustering),
        ``truth_instance (N,)``, ``truth_semantic (N,)``.
    step : float
        Grid step for both thresholds.
    metric : {"ari", "purity", "efficiency"}
        Mean over events (where the class is scored) to maximise; ties go to
        the larger mean purity + efficiency, then to the smaller ``p0``, then
        the smaller ``s0``.
    classes : sequence of str or int, optional
        Classes to tune (default all); the others keep the paper's values.
    progress : bool
        Show a progress bar over events.
    min_true_size, min_cluster_size, assign_leftovers
        As in the metrics and the clusterer.

    Returns
    -------
    dict
        ``s0`` and ``p0`` (class name -> value, every class), ``scores`` (class
        name -> ``{ari, purity, efficiency, n_events}`` at the optimum; NaN and 0
        for classes left at the paper value), ``tuned`` (class names tuned),
        ``metric``, ``step``, ``n_events``, ``seconds``.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got '{metric}'")
    grids = threshold_grid(step)
    wanted = class_indices(classes) if classes is not None else list(range(len(CLASS_NAMES)))
    from tqdm import tqdm

    start = time.perf_counter()
    per_class: Dict[int, List[np.ndarray]] = {c: [] for c in wanted}
    n_events = 0
    for index, event in enumerate(tqdm(events, desc="tune", unit="event", disable=not progress)):
        _check_event(index, event)
        n_events += 1
        for c in wanted:
            scores = _event_class_scores(event, c, grids, min_true_size, min_cluster_size,
                                         assign_leftovers)
            if scores is not None:
                per_class[c].append(scores)
    if n_events == 0:
        raise ValueError("tune_thresholds needs at least one event")
    result: Dict = {"s0": {}, "p0": {}, "scores": {}, "tuned": [], "metric": metric,
                    "step": float(step), "n_events": n_events}
    for c, name in enumerate(CLASS_NAMES):
        stack = per_class.get(c, [])
        if not stack:
            result["s0"][name] = PAPER_THRESHOLDS[name]["s0"]
            result["p0"][name] = PAPER_THRESHOLDS[name]["p0"]
            result["scores"][name] = {**{m: math.nan for m in METRICS}, "n_events": 0}
            continue
        mean = np.nanmean(np.stack(stack), axis=0)  # (metrics, p0, s0)
        mean = np.where(np.isnan(mean), -np.inf, mean)
        target = mean[METRICS.index(metric)]
        tie = mean[METRICS.index("purity")] + mean[METRICS.index("efficiency")]
        # lexsort: last key is primary; flat index order is (p0, s0) ascending.
        flat = np.lexsort((-np.arange(target.size), tie.ravel(), target.ravel()))[-1]
        i, j = np.unravel_index(flat, target.shape)
        result["s0"][name] = float(grids["s0"][j])
        result["p0"][name] = float(grids["p0"][i])
        result["scores"][name] = {**{m: float(mean[k, i, j]) for k, m in enumerate(METRICS)},
                                  "n_events": len(stack)}
        result["tuned"].append(name)
    result["seconds"] = time.perf_counter() - start
    return result


def format_threshold_table(result: Mapping) -> str:
    """The tuned thresholds as text in the form of the paper's Table II."""
    lines = [f"Optimal thresholds ({result.get('metric', 'ari')}, step {result.get('step')}, "
             f"{result.get('n_events')} events)",
             f"{'':8s} {'s0':>6s} {'p0':>6s} {'ARI':>7s} {'purity':>7s} {'effic.':>7s} {'events':>7s}"]
    for name in CLASS_NAMES:
        sc = result["scores"][name]
        lines.append(f"{name:8s} {result['s0'][name]:6.3g} {result['p0'][name]:6.3g} "
                     f"{sc['ari']:7.3f} {sc['purity']:7.3f} {sc['efficiency']:7.3f} "
                     f"{sc['n_events']:7d}" + ("" if name in result.get("tuned", ()) else "  (paper)"))
    return "\n".join(lines)


def write_thresholds(path: str, result: Mapping) -> None:
    """Write ``{s0: {...}, p0: {...}}`` as YAML, atomically, with commented metadata.

    The file is usable as ``predict.thresholds`` and as
    ``SPICEClusterer(**yaml.safe_load(open(path)))``.
    """
    import yaml

    header = ["# SPICE clustering thresholds written by mlreco_spice.cluster.tuning",
              *("# " + line for line in format_threshold_table(result).splitlines())]
    body = {key: {name: float(result[key][name]) for name in CLASS_NAMES} for key in ("s0", "p0")}
    text = "\n".join(header) + "\n" + yaml.safe_dump(body, sort_keys=False)
    atomic_write_text(path, text)


def tune_from_files(cfg: Mapping, inputs: Sequence[str], output: str, n_events: int = 100,
                    step: float = 0.05, metric: str = "ari") -> Dict:
    """CLI entry (``mlreco-spice tune``): run the network on files, tune, write YAML.

    Network outputs come from ``mlreco_spice.inference.iter_event_outputs(cfg,
    files, max_events)``, which yields dicts with :data:`EVENT_KEYS`. The
    clusterer options (``min_cluster_size``, ``assign_leftovers``) and
    ``analysis.min_true_size`` are read from ``cfg``.

    Returns
    -------
    dict
        The :func:`tune_thresholds` result (also logged as a table).
    """
    from ..inference import iter_event_outputs

    clusterer = cfg.get("model", {}).get("modules", {}).get("spice", {}).get("clusterer", {}) or {}
    result = tune_thresholds(
        iter_event_outputs(cfg, inputs, n_events), step=step, metric=metric,
        min_true_size=int(cfg.get("analysis", {}).get("min_true_size", DEFAULT_MIN_TRUE_SIZE)),
        min_cluster_size=int(clusterer.get("min_cluster_size", 1)),
        assign_leftovers=bool(clusterer.get("assign_leftovers", True)))
    write_thresholds(output, result)
    log.info("wrote %s (%.0f s)", output, result["seconds"])
    return result
