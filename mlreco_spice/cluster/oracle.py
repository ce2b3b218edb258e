"""Truth-centroid assignment: how well SPICE's embeddings could cluster at best.

A diagnostic, not a clustering method (it needs the true instances). Each
voxel goes to the true instance of its class whose Gaussian kernel (eq. II.3
with the instance's centroid ``μ_k`` and mean margin ``σ_k``, exactly as the
loss defines them) gives it the highest ``p``. It separates the two ways
SPICE can fail: if this assignment scores well and the greedy seed search
does not, the seeds or thresholds are at fault; if this also scores badly,
the embeddings themselves do not separate the instances.
"""
from __future__ import annotations

import numpy as np

from ..columns import NUM_CLASSES, UNLABELED
from .kernels import EPS

__all__ = ["truth_centroid_clusters"]


def truth_centroid_clusters(embeddings: np.ndarray, margins: np.ndarray,
                            truth_instance: np.ndarray, semantics: np.ndarray) -> np.ndarray:
    """Assign every voxel to the best true-instance kernel of its class.

    Parameters
    ----------
    embeddings : np.ndarray
        (N, D) SPICE embeddings (NaN rows: voxels SPICE did not process).
    margins : np.ndarray
        (N,) SPICE margins σ_i.
    truth_instance : np.ndarray
        (N,) true instance per voxel, -1 for none.
    semantics : np.ndarray
        (N,) class each voxel was clustered in (0-4; others are left out).

    Returns
    -------
    np.ndarray
        (N,) int64 labels, unique within the event (-1 where nothing was
        assigned: classes outside 0-4, NaN embeddings, or a class segment
        with no labelled voxel).
    """
    embeddings = np.asarray(embeddings, dtype=np.float64)
    margins = np.asarray(margins, dtype=np.float64).reshape(-1)
    truth_instance = np.asarray(truth_instance).reshape(-1)
    semantics = np.asarray(semantics).reshape(-1)
    n = len(embeddings)
    if not len(margins) == len(truth_instance) == len(semantics) == n:
        raise ValueError("embeddings, margins, truth_instance and semantics must have one row "
                         f"per voxel, got {n}, {len(margins)}, {len(truth_instance)}, "
                         f"{len(semantics)}")
    labels = np.full(n, UNLABELED, dtype=np.int64)
    usable = np.isfinite(embeddings).all(axis=1) & np.isfinite(margins)
    next_id = 0
    for c in range(NUM_CLASSES):
        segment = np.flatnonzero(usable & (semantics == c))
        owners = truth_instance[segment]
        ids = np.unique(owners[owners >= 0])
        if len(ids) == 0:
            continue
        emb = embeddings[segment]
        code = np.searchsorted(ids, owners)
        labelled = owners >= 0
        counts = np.bincount(code[labelled], minlength=len(ids)).astype(np.float64)
        centroids = np.stack([np.bincount(code[labelled], weights=emb[labelled, d],
                                          minlength=len(ids)) for d in range(emb.shape[1])],
                             axis=1) / counts[:, None]
        sigma = np.bincount(code[labelled], weights=margins[segment][labelled],
                            minlength=len(ids)) / counts
        # log p, as the greedy kernels use: the argmax of p without underflow.
        d2 = ((emb[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=2)
        log_p = -d2 / (2.0 * sigma[None, :] ** 2 + EPS)
        labels[segment] = next_id + np.argmax(log_p, axis=1)
        next_id += len(ids)
    return labels
