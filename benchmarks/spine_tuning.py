"""Grid search of SPINE's ``SPICEClusterer`` thresholds with our metrics (``train_vs_spine.py``).

SPINE clusters each shape on its own, and class ``c`` is scored on its true
voxels (:func:`mlreco_spice.metrics.evaluate_event`), which with true classes
are exactly shape ``c``'s: each class is tuned alone.

Cost. SPINE's clusterer loops in Python over candidate seeds; running it at
every (seed, probability) point of a 0.05 grid took about a minute per 512^3
event. One run per probability threshold serves every seed threshold, by
the same argument as our tuner's (:func:`mlreco_spice.cluster.kernels.greedy_levels`):
SPINE visits seeds in non-increasing seediness and stops at the first one
below ``seed_threshold``, so a lower threshold only extends the same sequence.
From one SPINE run at the grid's lowest seed threshold, without leftover
assignment, the clusters accepted at a threshold ``s`` are those whose seed
(the most seedy member, lowest index on ties: SPINE's ``argmax``) has
seediness >= ``s``; the voxels SPINE retired as seeds of undersized
candidates are the unclustered ones with seediness >= ``s``; leftovers then
go, as SPINE's ``assign_all`` sends them, to the first most probable accepted
cluster, with SPINE's own expressions. At the optimum of each class, SPINE's
clusterer is run as is on every validation event and must give the same
partition (checked: a mismatch raises).
"""
from __future__ import annotations

import logging
from typing import Any, Dict, Iterable, List, Mapping, Tuple

import numpy as np
import torch

from mlreco_spice.columns import CLASS_NAMES

__all__ = ["tune_spine_thresholds", "prefix_levels"]

log = logging.getLogger(__name__)
METRICS = ("ari", "purity", "efficiency")
EPS = 1e-6  # SPINE's SPICEClusterer default eps


def _segments(events: Iterable[Mapping[str, Any]], min_true_size: int) -> Dict[int, List[Tuple]]:
    """Per class: ``(embeddings, margins, seediness, truth)`` of each event scoring it."""
    from mlreco_spice.metrics import evaluate_event

    segments: Dict[int, List[Tuple]] = {c: [] for c in range(len(CLASS_NAMES))}
    for event in events:
        out = event["outputs"]
        shapes = event["shapes"].torch_tensor().reshape(-1).long()
        for c in segments:
            local = torch.where(shapes == c)[0]
            truth = event["truth_instance"][event["rows"][local.numpy()]]
            if len(truth) and evaluate_event(truth, truth, np.full(len(truth), c), min_true_size,
                                             classes=[c]):
                segments[c].append((out["embeddings"].torch_tensor()[local],
                                    out["margins"].torch_tensor()[local].reshape(-1),
                                    out["seediness"].torch_tensor()[local].reshape(-1), truth))
    return segments


def _spine_run(segment: Tuple, c: int, s0: float, p0: float, assign_all: bool) -> List[np.ndarray]:
    """SPINE's clusterer on one segment: its clusters, as member index arrays, in order."""
    from spine.data import TensorBatch
    from spine_race import spine_clusterer

    emb, margins, seediness, _ = segment
    counts = [len(emb)]
    clusts, _ = spine_clusterer({c: s0}, {c: p0}, [c], assign_all)(
        TensorBatch(emb, counts), TensorBatch(margins[:, None], counts),
        TensorBatch(seediness[:, None], counts), TensorBatch(torch.full((len(emb), 1), c), counts))
    return [np.asarray(members) for members in clusts.index_list]


def prefix_levels(segment: Tuple, c: int, s0_grid: np.ndarray, p0: float) -> np.ndarray:
    """Labels of SPINE's clusterer (``assign_all``) at every ``s0`` of the grid, from one run.

    Returns
    -------
    numpy.ndarray (len(s0_grid), n)
        Cluster index per voxel (acceptance order), -1 unclustered.
    """
    emb, margins, seediness, _ = segment
    n = len(emb)
    clusters = _spine_run(segment, c, float(np.min(s0_grid)), p0, assign_all=False)
    seeds = []
    for members in clusters:
        values = seediness[members]
        seeds.append(int(members[values == values.max()].min()))
    sigma = seediness[seeds].numpy() if seeds else np.zeros(0)
    if np.any(np.diff(sigma) > 0):
        raise RuntimeError("SPINE's seeds are not in non-increasing seediness")
    clustered = np.zeros(n, dtype=bool)
    base = np.full(n, -1, dtype=np.int64)
    for k, members in enumerate(clusters):
        clustered[members], base[members] = True, k
    seedy = seediness.numpy()
    out = np.full((len(s0_grid), n), -1, dtype=np.int64)
    # Clusters accepted at each s0: a prefix of the sequence; leftovers by a running argmax.
    order = np.argsort(-np.asarray(s0_grid), kind="stable")  # high s0 first: short prefixes
    best = torch.full((n,), -1.0, dtype=emb.dtype)
    best_label = torch.full((n,), -1, dtype=torch.long)
    k = 0
    for i in order:
        s0 = float(s0_grid[i])
        while k < len(clusters) and sigma[k] >= s0:
            seed = seeds[k]
            width = torch.clamp(margins[seed], min=EPS)  # SPINE's expressions, same dtype
            probability = torch.exp(-torch.sum((emb - emb[seed]) ** 2, dim=1) / (2.0 * width**2))
            better = probability > best  # strict: ties stay with the earlier cluster (argmax)
            best = torch.where(better, probability, best)
            best_label[better] = k
            k += 1
        labels = np.where(base < k, base, -1)
        available = (labels < 0) & ~(~clustered & (seedy >= s0))
        if k > 0:
            labels[available] = best_label.numpy()[available]
        out[i] = labels
    return out


def _scores(truth: np.ndarray, labels: np.ndarray, c: int, min_true_size: int) -> np.ndarray:
    from mlreco_spice.metrics import evaluate_event

    row = evaluate_event(truth, labels, np.full(len(truth), c), min_true_size, classes=[c])[0]
    return np.array([row[m] for m in METRICS], dtype=float)


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    def canon(labels):
        _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
        return np.where(labels < 0, -1, np.argsort(np.argsort(first))[inverse])
    return np.array_equal(canon(a), canon(b))


def tune_spine_thresholds(events: Iterable[Mapping[str, Any]], s0_grid: np.ndarray,
                          p0_grid: np.ndarray, min_true_size: int) -> Dict[str, Any]:
    """Per-class ``seed_threshold`` and ``probability_threshold`` of SPINE's clusterer.

    Parameters
    ----------
    events : iterable of dict
        :func:`spine_race.spine_event_outputs` of the validation events.
    s0_grid, p0_grid : numpy.ndarray
        Seed and probability thresholds tried.
    min_true_size : int
        True clusters under this size are masked (as in the metrics).

    Returns
    -------
    dict
        ``seed_threshold`` and ``probability_threshold`` (class name -> value),
        ``scores`` (class name -> mean ``ari``, ``purity``, ``efficiency`` and
        ``n_events`` at the optimum). The mean ARI over events is maximised;
        ties go to the larger mean purity + efficiency, then to the smaller
        ``p0``, then the smaller ``s0``. A class never scored keeps SPINE's
        defaults (0 and 0.5).
    """
    segments = _segments(events, min_true_size)
    result: Dict[str, Any] = {"seed_threshold": {}, "probability_threshold": {}, "scores": {}}
    for c, name in enumerate(CLASS_NAMES):
        best = (-np.inf, -np.inf, 0.0, 0.5, np.full(len(METRICS), np.nan))
        for p0 in p0_grid:
            grid = np.stack([[_scores(seg[3], labels, c, min_true_size)
                              for labels in prefix_levels(seg, c, s0_grid, float(p0))]
                             for seg in segments[c]]) if segments[c] else None
            if grid is None:
                break
            mean = np.nanmean(grid, axis=0)  # (s0, metrics)
            for j, s0 in enumerate(s0_grid):
                key = (mean[j, 0], mean[j, 1] + mean[j, 2])
                if key > best[:2]:
                    best = (*key, float(s0), float(p0), mean[j])
        s0, p0 = best[2], best[3]
        for seg in segments[c]:  # the optimum is SPINE's own clusterer's result
            direct = np.full(len(seg[0]), -1, dtype=np.int64)
            for k, members in enumerate(_spine_run(seg, c, s0, p0, assign_all=True)):
                direct[members] = k
            derived = prefix_levels(seg, c, np.array([s0]), p0)[0]
            if not _same_partition(direct, derived):
                raise RuntimeError(f"SPINE {name}: derived clusters differ from SPINE's at "
                                   f"seed {s0}, probability {p0}")
        result["seed_threshold"][name], result["probability_threshold"][name] = s0, p0
        result["scores"][name] = {**{m: float(v) for m, v in zip(METRICS, best[4])},
                                  "n_events": len(segments[c])}
        if segments[c] and p0 >= float(np.max(p0_grid)):
            log.warning("SPINE %s: probability_threshold at the grid's upper end (%.2f)", name, p0)
    return result
