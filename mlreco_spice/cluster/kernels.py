"""Greedy seed clustering of one (event, class) segment: numba and torch kernels.

Both kernels take a segment already sorted by decreasing seediness (stable,
so ties keep voxel order) and implement the paper's procedure (sec. II.C):

1. the next seed is the first voxel in that order not yet covered by any
   candidate; the loop stops when it has seediness below ``s0`` (seeds need
   ``s >= s0``, as in SPINE) or when every voxel is covered. With
   ``min_seeds = 1`` the first seed is taken whatever its seediness: a class
   present in an event holds at least one instance, and leaving all of it
   unclustered (singletons) scores worse than one cluster;
2. the seed's embedding and margin define the Gaussian kernel
   ``p = exp(-||e - e_seed||^2 / (2 sigma_seed^2 + EPS))``;
3. voxels with ``p > p0`` are covered (the seed always covers itself, so the
   loop ends even for ``p0 >= 1``);
4. each voxel goes to the candidate with the highest ``p`` (ties: the earlier
   candidate). Leftovers (never covered) get that too, or ``-1``.

The kernels work with ``log p = -d^2 / (2 sigma^2 + EPS)`` in float64: it is
monotone in ``p``, so decisions are the same, but voxels far from every
candidate still go to the nearest one instead of all tying at ``p = 0``
(underflow) and landing in the first candidate.

Labels returned are the candidate's rank in seed order (0, 1, ...); the caller
applies the minimum cluster size and makes ids unique per event.
"""
from __future__ import annotations

import math
from typing import Tuple

import numba
import numpy as np
import torch

__all__ = ["EPS", "log_threshold", "greedy_levels", "greedy_torch", "drop_small"]

#: Added to 2 sigma^2 so a zero margin gives a finite (very narrow) kernel.
EPS = 1e-8


def log_threshold(p0: float) -> float:
    """``log(p0)``, with ``p0 <= 0`` giving ``-inf`` (every voxel passes ``p > p0``)."""
    return math.log(p0) if p0 > 0.0 else -math.inf


@numba.njit(cache=True, nogil=True)
def greedy_levels(emb, margins, seediness, s0_levels, log_p0, assign_leftovers,
                  min_seeds=0):  # pragma: no cover
    """Cluster one sorted segment for several ``s0`` values at once (numba).

    Lowering ``s0`` only lets the same greedy sequence run longer, so one pass
    serves every level: a snapshot of the labels is taken each time the next
    seed's seediness falls below the current level.

    Parameters
    ----------
    emb : float64 array (n, d)
        Embeddings, sorted by decreasing seediness (stable).
    margins, seediness : float64 arrays (n,)
        In the same order.
    s0_levels : float64 array (L,)
        Seediness thresholds in DECREASING order.
    log_p0 : float
        ``log(p0)`` (see :func:`log_threshold`).
    assign_leftovers : bool
        Give never-covered voxels their most probable candidate (else -1).
    min_seeds : int
        Seeds taken before ``s0`` applies (0: the paper; 1: at least one).

    Returns
    -------
    int64 array (L, n)
        Row ``l``: candidate rank per voxel with ``s0 = s0_levels[l]``, -1 if none.
    """
    n, d = emb.shape
    n_levels = s0_levels.shape[0]
    out = np.full((n_levels, n), -1, dtype=np.int64)
    best = np.full(n, -np.inf)
    label = np.full(n, -1, dtype=np.int64)
    covered = np.zeros(n, dtype=np.bool_)
    ptr = 0
    k = 0
    level = 0
    while level < n_levels:
        while ptr < n and covered[ptr]:
            ptr += 1
        # `not >=` also stops on NaN seediness.
        if ptr == n or (k >= min_seeds and not seediness[ptr] >= s0_levels[level]):
            if k > 0:
                for i in range(n):
                    if assign_leftovers or covered[i]:
                        out[level, i] = label[i]
            level += 1
            continue
        inv = 1.0 / (2.0 * margins[ptr] * margins[ptr] + EPS)
        for i in range(n):
            d2 = 0.0
            for j in range(d):
                diff = emb[i, j] - emb[ptr, j]
                d2 += diff * diff
            log_p = -d2 * inv
            if log_p > best[i]:
                best[i] = log_p
                label[i] = k
            if log_p > log_p0:
                covered[i] = True
        covered[ptr] = True
        k += 1
    return out


def greedy_torch(emb: torch.Tensor, margins: torch.Tensor, seediness: torch.Tensor,
                 s0: float, log_p0: float, assign_leftovers: bool,
                 min_seeds: int = 0) -> torch.Tensor:
    """Same as one level of :func:`greedy_levels`, vectorised torch on the tensors' device.

    Used for CUDA tensors (no host round trip of the embeddings). Float64 and
    the same operation order as the numba kernel, so labels are identical.

    Parameters
    ----------
    emb : torch.Tensor (n, d)
        Sorted by decreasing seediness (stable); any float dtype.
    margins, seediness : torch.Tensor (n,)
    s0, log_p0 : float
    assign_leftovers : bool
    min_seeds : int

    Returns
    -------
    torch.Tensor (n,) int64
        Candidate rank per voxel, -1 if none.
    """
    emb = emb.double()
    margins = margins.double()
    n, dim = emb.shape
    device = emb.device
    best = torch.full((n,), -math.inf, dtype=torch.float64, device=device)
    label = torch.full((n,), -1, dtype=torch.long, device=device)
    covered = torch.zeros(n, dtype=torch.bool, device=device)
    # Sorted descending: the seeds allowed by s0 are a prefix.
    n_seedable = max(int((seediness >= s0).sum()), min(int(min_seeds), n))
    ptr, k = 0, 0
    while ptr < n_seedable:
        free = torch.nonzero(~covered[ptr:n_seedable])
        if free.numel() == 0:
            break
        ptr += int(free[0, 0])
        # Column by column, like the numba loop, for bitwise-equal distances.
        diff = emb[:, 0] - emb[ptr, 0]
        d2 = diff * diff
        for j in range(1, dim):
            diff = emb[:, j] - emb[ptr, j]
            d2 = d2 + diff * diff
        log_p = -d2 * (1.0 / (2.0 * margins[ptr] * margins[ptr] + EPS))
        better = log_p > best
        best = torch.where(better, log_p, best)
        label = torch.where(better, torch.full_like(label, k), label)
        covered |= log_p > log_p0
        covered[ptr] = True
        k += 1
    if k == 0:
        return label
    if not assign_leftovers:
        label = torch.where(covered, label, torch.full_like(label, -1))
    return label


def drop_small(labels: np.ndarray, min_size: int) -> Tuple[np.ndarray, int]:
    """Dissolve candidates smaller than ``min_size`` and renumber 0..K-1 in seed order."""
    assigned = labels >= 0
    if not assigned.any():
        return labels, 0
    sizes = np.bincount(labels[assigned])
    keep = sizes >= min_size
    new_id = np.cumsum(keep) - 1
    safe = np.maximum(labels, 0)
    return np.where(assigned & keep[safe], new_id[safe], -1), int(keep.sum())
