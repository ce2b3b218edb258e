"""Clustering metrics: adjusted Rand index, purity, efficiency (paper sec. III.B).

Conventions shared by every function here:

* Arguments are ``(truth, pred)``, in that order, everywhere.
* Voxels whose truth label is ``-1`` (:data:`~mlreco_spice.columns.UNLABELED`)
  are excluded before anything else.
* Voxels predicted ``-1`` (left unclustered) count as **singletons**: each is
  its own predicted cluster. They therefore cost efficiency and ARI. Note that
  a singleton is pure by construction, so under eq. III.1 (mean over
  predicted clusters) unclustered voxels *raise* purity rather than lower it;
  read purity together with efficiency and ``n_pred``.
* True clusters with fewer than ``min_true_size`` voxels (default 10, paper
  sec. III.C) are masked out: their voxels are removed before computing.
* When nothing is left to evaluate (empty input, or everything masked) the
  result is ``NaN``, meaning "undefined: no voxel to score"; never an
  exception. Aggregate with ``numpy.nanmean``.

Two views of an event: :func:`evaluate_event` scores each true class on its
own voxels (paper Table III; blind to a cluster that spans classes), and
:func:`evaluate_particles` scores all voxels at once against the particle ids
(a muon that swallowed its Michel electron shows up there).

The counting core is one numba kernel over the sorted contingency codes, so a
call costs O(N log N) with no N_true x N_pred matrix.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numba
import numpy as np

from .columns import CLASS_NAMES, UNLABELED, class_indices

__all__ = ["adjusted_rand_index", "purity", "efficiency", "cluster_scores",
           "evaluate_event", "evaluate_particles", "unique_across_classes", "EVENT_ROW_FIELDS",
           "PARTICLE_FIELDS", "DEFAULT_MIN_TRUE_SIZE", "prepare_truth", "with_singletons",
           "scores_from_codes"]

DEFAULT_MIN_TRUE_SIZE = 10

#: Field names of one :func:`evaluate_event` row, in CSV column order.
#:
#: class           class name (``columns.CLASS_NAMES``, or the ``class_names`` given)
#: n_true          true clusters evaluated (after the ``min_true_size`` mask)
#: n_pred          predicted clusters (ids >= 0) among the evaluated voxels
#: ari, purity, efficiency   the metrics on those voxels
#: n_voxels_true   evaluated voxels (true class c, valid instance, not masked)
#: n_voxels_pred   voxels of the n_pred clusters, counted over the whole event (they may
#:                 hold other classes' or masked voxels too; unclustered ones are not)
EVENT_ROW_FIELDS: Tuple[str, ...] = ("class", "n_true", "n_pred", "ari", "purity", "efficiency",
                                     "n_voxels_true", "n_voxels_pred")

#: Keys of :func:`evaluate_particles`: the fields of an event row without the class.
PARTICLE_FIELDS: Tuple[str, ...] = EVENT_ROW_FIELDS[1:]


@numba.njit(cache=True)
def _contingency_stats(t, p, n_true, n_pred):  # pragma: no cover - compiled
    """Pair counts and max overlaps from compact labels ``t`` (0..n_true-1), ``p``.

    Returns ``(sum_sq, row_dot, col_dot, row_max, col_max, row_size, col_size)``
    where ``sum_sq = sum c_ij^2``, ``row_dot = sum_ij c_ij * |pred_j|`` and
    ``col_dot = sum_ij c_ij * |true_i|`` (the terms of sklearn's pair
    confusion matrix), and ``row_max[i] = max_j c_ij``, ``col_max[j] = max_i c_ij``.
    """
    n = t.shape[0]
    codes = np.empty(n, dtype=np.int64)
    row_size = np.zeros(n_true, dtype=np.int64)
    col_size = np.zeros(n_pred, dtype=np.int64)
    for k in range(n):
        codes[k] = t[k] * n_pred + p[k]
        row_size[t[k]] += 1
        col_size[p[k]] += 1
    codes.sort()
    row_max = np.zeros(n_true, dtype=np.int64)
    col_max = np.zeros(n_pred, dtype=np.int64)
    sum_sq = 0
    row_dot = 0
    col_dot = 0
    k = 0
    while k < n:
        code = codes[k]
        run = k
        while run < n and codes[run] == code:
            run += 1
        c = run - k
        i = code // n_pred
        j = code - i * n_pred
        sum_sq += c * c
        row_dot += c * col_size[j]
        col_dot += c * row_size[i]
        if c > row_max[i]:
            row_max[i] = c
        if c > col_max[j]:
            col_max[j] = c
        k = run
    return sum_sq, row_dot, col_dot, row_max, col_max, row_size, col_size


def prepare_truth(truth, min_true_size: int = DEFAULT_MIN_TRUE_SIZE
                  ) -> Tuple[np.ndarray, np.ndarray, int]:
    """Drop truth -1 and true clusters below ``min_true_size``; compact the rest.

    Returns
    -------
    (keep, t, n_true)
        Boolean mask of kept voxels and their compact true labels (0..n_true-1).
    """
    truth = np.asarray(truth).reshape(-1)
    if int(min_true_size) < 0:
        raise ValueError(f"min_true_size must be >= 0, got {min_true_size}")
    keep = truth != UNLABELED
    _, t, sizes = np.unique(truth[keep], return_inverse=True, return_counts=True)
    t = t.reshape(-1)
    if min_true_size > 1 and t.size:
        keep[keep] = sizes[t] >= min_true_size
        _, t = np.unique(truth[keep], return_inverse=True)
        t = t.reshape(-1)
    t = t.astype(np.int64)
    return keep, t, (int(t.max()) + 1 if t.size else 0)


def with_singletons(pred) -> Tuple[np.ndarray, int]:
    """Give every ``-1`` prediction its own id above the others.

    ``pred`` must hold small non-negative ids (gaps allowed) or -1.
    Returns ``(labels, bound)`` with every label in ``[0, bound)``.
    """
    pred = np.asarray(pred, dtype=np.int64).reshape(-1)
    bound = max(int(pred.max()) + 1, 0) if pred.size else 0
    unclustered = pred == UNLABELED
    n_unclustered = int(unclustered.sum())
    if n_unclustered:
        pred = pred.copy()
        pred[unclustered] = bound + np.arange(n_unclustered)
        bound += n_unclustered
    return pred, bound


def scores_from_codes(t: np.ndarray, n_true: int, p: np.ndarray, n_pred: int) -> Dict[str, float]:
    """ARI, purity and efficiency from codes ``t`` in [0, n_true) and ``p`` in [0, n_pred).

    Ids without voxels are allowed and ignored, so callers with small ids can
    skip compaction. Returns the dict of :func:`cluster_scores`.
    """
    n = int(t.size)
    if n == 0:
        nan = float("nan")
        return {"ari": nan, "purity": nan, "efficiency": nan, "n_true": 0, "n_pred": 0, "n_voxels": 0}
    sum_sq, row_dot, col_dot, row_max, col_max, row_size, col_size = _contingency_stats(
        t, p, n_true, n_pred)
    # sklearn's pair confusion matrix (ordered pairs), exact integers.
    tp = int(sum_sq) - n
    fp = int(row_dot) - int(sum_sq)
    fn = int(col_dot) - int(sum_sq)
    tn = n * n - fp - fn - int(sum_sq)
    if fp == 0 and fn == 0:
        ari = 1.0  # identical partitions (includes all-in-one and all-singletons)
    else:
        # Python ints: tp * tn reaches ~N^4, beyond int64 for large events.
        ari = 2.0 * (tp * tn - fn * fp) / ((tp + fn) * (fn + tn) + (tp + fp) * (fp + tn))
    rows, cols = row_size > 0, col_size > 0
    return {
        "ari": float(ari),
        "purity": float(np.mean(col_max[cols] / col_size[cols])),
        "efficiency": float(np.mean(row_max[rows] / row_size[rows])),
        "n_true": int(rows.sum()), "n_pred": int(cols.sum()), "n_voxels": n,
    }


def cluster_scores(truth, pred, min_true_size: int = DEFAULT_MIN_TRUE_SIZE) -> Dict[str, float]:
    """ARI, purity and efficiency in one pass over the contingency codes.

    Parameters
    ----------
    truth, pred : array_like of int, shape (N,)
        True and predicted instance labels (see the module conventions).
    min_true_size : int
        True clusters smaller than this are removed first.

    Returns
    -------
    dict
        ``ari``, ``purity``, ``efficiency`` (floats, NaN when nothing is left),
        ``n_true``, ``n_pred`` (clusters evaluated; ``n_pred`` counts each
        unclustered voxel as one) and ``n_voxels``.
    """
    truth = np.asarray(truth).reshape(-1)
    pred = np.asarray(pred).reshape(-1)
    if truth.shape != pred.shape:
        raise ValueError(f"truth and pred must have the same length, got {truth.size} and {pred.size}")
    keep, t, n_true = prepare_truth(truth, min_true_size)
    return scores_from_codes(t, n_true, *_pred_codes(pred[keep]))


def _pred_codes(pred: np.ndarray) -> Tuple[np.ndarray, int]:
    """Compact arbitrary predicted ids to 0..K-1, then -1 to singletons above them."""
    pred = pred.astype(np.int64)  # a copy: filled in below
    clustered = pred != UNLABELED
    _, compact = np.unique(pred[clustered], return_inverse=True)
    pred[clustered] = compact.reshape(-1)
    return with_singletons(pred)


def adjusted_rand_index(truth, pred, min_true_size: int = DEFAULT_MIN_TRUE_SIZE) -> float:
    """Adjusted Rand index (Hubert & Arabie), equal to sklearn's ``adjusted_rand_score``.

    Equal to scikit-learn to 1e-9 whenever no voxel is dropped (no truth -1, no
    true cluster below ``min_true_size``, no prediction -1). An empty input
    gives NaN where sklearn gives 1.0: nothing was scored.

    Parameters
    ----------
    truth, pred : array_like of int, shape (N,)
    min_true_size : int
        True clusters smaller than this are removed first (0 or 1 keeps all).

    Returns
    -------
    float
    """
    return cluster_scores(truth, pred, min_true_size)["ari"]


def purity(truth, pred, min_true_size: int = DEFAULT_MIN_TRUE_SIZE) -> float:
    """Purity, eq. III.1: mean over predicted clusters of max overlap / cluster size.

    Returns
    -------
    float
        In (0, 1]; NaN when nothing is left to score.
    """
    return cluster_scores(truth, pred, min_true_size)["purity"]


def efficiency(truth, pred, min_true_size: int = DEFAULT_MIN_TRUE_SIZE) -> float:
    """Efficiency, eq. III.2: mean over true clusters of max overlap / cluster size.

    Returns
    -------
    float
        In (0, 1]; NaN when nothing is left to score.
    """
    return cluster_scores(truth, pred, min_true_size)["efficiency"]


def evaluate_event(truth_instance, pred_instance, truth_semantic,
                   min_true_size: int = DEFAULT_MIN_TRUE_SIZE,
                   classes: Optional[Sequence] = None,
                   class_names: Sequence[str] = CLASS_NAMES) -> List[Dict[str, object]]:
    """Per-class clustering metrics of one event.

    Attribution: class ``c`` is scored on the voxels whose TRUE class is ``c``
    (truth = true instances there, pred = predicted instances of those same
    voxels, whatever class the network predicted for them). A voxel put in
    the wrong semantic class therefore shows up as a clustering error of its
    true class, and predicted clusters are never matched across classes.

    Parameters
    ----------
    truth_instance, pred_instance, truth_semantic : array_like of int, shape (N,)
        True instance id, predicted instance id (-1 unclustered) and true
        class per voxel. Voxels with true instance or true class -1 are ignored.
    min_true_size : int
        True clusters (within the class) smaller than this are masked out.
    classes : sequence of str or int, optional
        Restrict to these classes (names or indices). Default: all.
    class_names : sequence of str
        Name of each class index in the rows' ``class``
        (:func:`mlreco_spice.columns.class_names`).

    Returns
    -------
    list of dict
        One row per class that still has voxels after masking, keys
        :data:`EVENT_ROW_FIELDS`. A class absent from the event (or whose true
        clusters are all below ``min_true_size``) gives no row.
    """
    truth_instance = np.asarray(truth_instance).reshape(-1)
    pred_instance = np.asarray(pred_instance).reshape(-1)
    truth_semantic = np.asarray(truth_semantic).reshape(-1)
    if not truth_instance.size == pred_instance.size == truth_semantic.size:
        raise ValueError("truth_instance, pred_instance and truth_semantic must have the same "
                         f"length, got {truth_instance.size}, {pred_instance.size}, "
                         f"{truth_semantic.size}")
    wanted = class_indices(classes) if classes is not None else range(len(CLASS_NAMES))
    rows: List[Dict[str, object]] = []
    for c in wanted:
        in_class = truth_semantic == c
        if not in_class.any():
            continue
        row = _scored(truth_instance[in_class], pred_instance[in_class], min_true_size,
                      pred_instance)
        if row["n_voxels_true"]:
            rows.append({"class": class_names[c], **row})
    return rows


def _scored(truth: np.ndarray, pred: np.ndarray, min_true_size: int,
            event_pred: Optional[np.ndarray] = None) -> Dict[str, object]:
    """:data:`PARTICLE_FIELDS` of one set of voxels (NaN scores when none is left).

    ``event_pred``: the predicted ids of the whole event (default ``pred``),
    where ``n_voxels_pred`` counts the voxels of the clusters found.
    """
    keep, t, n_true = prepare_truth(truth, min_true_size)
    pred_kept = pred[keep]
    scores = scores_from_codes(t, n_true, *_pred_codes(pred_kept))
    found = np.unique(pred_kept[pred_kept != UNLABELED])
    everywhere = pred if event_pred is None else event_pred
    return {"n_true": n_true, "n_pred": int(found.size), "ari": scores["ari"],
            "purity": scores["purity"], "efficiency": scores["efficiency"],
            "n_voxels_true": int(t.size), "n_voxels_pred": int(np.isin(everywhere, found).sum())}


def unique_across_classes(pred_instance, pred_semantic) -> np.ndarray:
    """Predicted ids that restart in every class, made unique within the event.

    Id ``k`` of class ``c`` and id ``k`` of class ``c'`` become two clusters;
    ``-1`` (unclustered) stays ``-1``. Only for predictions whose ids restart
    per class (e.g. a per-class clusterer of another package): the
    :class:`~mlreco_spice.cluster.SPICEClusterer` and the DBSCAN baselines give
    ids unique within the event already, and their cross-class clusters (the
    absorb step's) must stay one cluster.
    """
    pred = np.asarray(pred_instance, dtype=np.int64).reshape(-1)
    sem = np.asarray(pred_semantic, dtype=np.int64).reshape(-1)
    if pred.shape != sem.shape:
        raise ValueError(f"pred_instance and pred_semantic must have the same length, got "
                         f"{pred.size} and {sem.size}")
    out = np.full(pred.shape, UNLABELED, dtype=np.int64)
    clustered = pred != UNLABELED
    if clustered.any():
        pairs = np.stack([sem[clustered], pred[clustered]], axis=1)
        out[clustered] = np.unique(pairs, axis=0, return_inverse=True)[1].reshape(-1)
    return out


def evaluate_particles(truth_instance, pred_instance,
                       min_true_size: int = DEFAULT_MIN_TRUE_SIZE,
                       pred_semantic=None) -> Dict[str, object]:
    """Particle-level metrics of one event: every voxel, whatever its class.

    The truth is the particle id (the cluster3d parser's instance: a voxel
    shared by two particles already belongs to one of them), the prediction
    the instance ids over the whole event. Unlike :func:`evaluate_event`, a
    cluster spanning two classes counts: a muon that absorbed its Michel
    electron is one predicted cluster for two particles, which lowers the ARI
    here while both per-class rows stay perfect.

    Parameters
    ----------
    truth_instance, pred_instance : array_like of int, shape (N,)
        True particle id (-1: unlabelled, ignored) and predicted instance id
        (-1: unclustered, a singleton), unique within the event.
    min_true_size : int
        True particles smaller than this are masked out.
    pred_semantic : array_like of int, optional
        Class of each voxel's prediction, when ids restart per class: they are
        made unique first (:func:`unique_across_classes`).

    Returns
    -------
    dict
        :data:`PARTICLE_FIELDS`: ``n_true``, ``n_pred`` (predicted clusters
        among the scored voxels, unclustered voxels not counted), ``ari``,
        ``purity``, ``efficiency`` (NaN when nothing is scored),
        ``n_voxels_true``, ``n_voxels_pred``.
    """
    truth = np.asarray(truth_instance).reshape(-1)
    pred = np.asarray(pred_instance, dtype=np.int64).reshape(-1)
    if truth.shape != pred.shape:
        raise ValueError(f"truth and pred must have the same length, got {truth.size} and "
                         f"{pred.size}")
    if pred_semantic is not None:
        pred = unique_across_classes(pred, pred_semantic)
    return _scored(truth, pred, min_true_size)
