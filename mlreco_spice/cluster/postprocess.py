"""Optional steps after the greedy seed search, on one (event, class) segment.

The paper's procedure (:mod:`.kernels`) keeps each candidate's kernel where
its seed put it. Two weaknesses show on an undertrained model (see
BENCHMARKS.md, "Seed search refinements"): a seed off its cluster's centre
cuts the cluster in two, and two seeds in one cluster split it. The steps
here fix that with the same Gaussian kernels, in this order:

1. :func:`refine_labels` (``refine_iterations``): re-centre each candidate's
   kernel on its members' mean embedding and mean margin, then give every
   voxel the most probable kernel again; repeat (k-means with the SPICE
   kernel). Stops early when nothing moves.
2. :func:`merge_overlapping` (``merge_p``): merge two clusters when either
   one's centroid has ``p > merge_p`` under the other's kernel.
3. :func:`connect_fragments` (``connect_radius``, ``connect_p``): needs voxel
   coordinates. Split every cluster into spatially connected fragments
   (voxels closer than ``connect_radius`` linked), then merge touching
   fragments whose centroids pass ``p > connect_p`` either way. Tracks are
   continuous, so a cluster spanning two disjoint tracks is wrong, and
   touching fragments are joined only if the embeddings agree. With
   ``connect_p = 0`` this is DBSCAN (``eps = connect_radius``,
   ``min_samples = 1``): a tuned ``connect_p`` says how much the embeddings
   add to connectivity. With ``max_bend`` set, fragments that meet at an
   angle (:mod:`.bend`) stay apart even when the embeddings agree: two
   particles touching at a vertex or a crossing.

Distances here are in the units of the coordinates given (voxels; cm for an
anisotropic pitch): the clusterer converts its cm settings
(:func:`.options.lengths_in_units`).

:func:`refine_labels` keeps the candidates' seed-order ids (a candidate that
loses every voxel leaves a gap the caller closes); :func:`merge_overlapping`
and :func:`connect_fragments` renumber 0..K-1 by the segment position (the
seediness order) of each cluster's first voxel. ``-1`` stays ``-1``.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import numba
import numpy as np

from .bend import bend_angles
from .kernels import EPS
from .touching import given_or_found

__all__ = ["refine_labels", "merge_overlapping", "connect_fragments", "postprocess_segment"]


@numba.njit(cache=True, nogil=True)
def _centroids(emb, margins, labels, k):  # pragma: no cover - compiled
    """Mean embedding, mean margin and size of each label 0..k-1."""
    n, d = emb.shape
    centres = np.zeros((k, d))
    sigma = np.zeros(k)
    count = np.zeros(k)
    for i in range(n):
        c = labels[i]
        if c < 0:
            continue
        count[c] += 1.0
        sigma[c] += margins[i]
        for j in range(d):
            centres[c, j] += emb[i, j]
    for c in range(k):
        if count[c] > 0:
            sigma[c] /= count[c]
            for j in range(d):
                centres[c, j] /= count[c]
    return centres, sigma, count


@numba.njit(cache=True, nogil=True, inline="always")
def _sq_dist(x, i, y, j):  # pragma: no cover - compiled
    """Squared distance between rows ``x[i]`` and ``y[j]``."""
    d2 = 0.0
    for m in range(x.shape[1]):
        diff = x[i, m] - y[j, m]
        d2 += diff * diff
    return d2


#: Relative slack on the pruning bound of :func:`_refine`: a candidate is skipped only when
#: its bound exceeds the best cost by more than rounding could explain.
BOUND_SLACK = 1e-9
#: Most live candidates for which :func:`_refine` keeps the (m, m) table of centre gaps;
#: beyond it (an early model seeding thousands) every voxel scores every candidate.
MAX_PRUNED_CANDIDATES = 2000


@numba.njit(cache=True, nogil=True, inline="always")
def _wins(log_p, c, best, arg):  # pragma: no cover - compiled
    """Candidate ``c`` beats the best so far (ties: the lower id, the old scan's order)."""
    return log_p > best or (log_p == best and c < arg)


@numba.njit(cache=True, nogil=True)
def _refine(emb, margins, labels, n_iter):  # pragma: no cover - compiled
    n = emb.shape[0]
    k = labels.max() + 1
    for _ in range(n_iter):
        centres, sigma, count = _centroids(emb, margins, labels, k)
        inv = 1.0 / (2.0 * sigma * sigma + EPS)
        # Pruning, exact: by the triangle inequality a voxel at distance d from its own
        # centre L is at least max(0, |c - L| - d) from centre c, so its cost there,
        # |e - c|^2 inv[c], is at least max(0, |c - L| - d)^2 min(inv). Candidates are tried
        # by distance from L and the search stops once that bound passes the best cost:
        # about a tenth of them on simulator-v2 Shower segments (50-100 candidates).
        live = np.flatnonzero(count > 0)
        m = live.size
        slot = np.full(k, -1, dtype=np.int64)
        slot[live] = np.arange(m)
        prune = m <= MAX_PRUNED_CANDIDATES
        size = m if prune else 0
        gap = np.zeros((size, size))
        near = np.empty((size, size), dtype=np.int64)
        for s in range(size):
            for t in range(m):
                gap[s, t] = np.sqrt(_sq_dist(centres, live[s], centres, live[t]))
            near[s] = np.argsort(gap[s])
        inv_min = inv[live].min()
        moved = False
        for i in range(n):
            own = labels[i]
            if own < 0:
                continue
            d2 = _sq_dist(emb, i, centres, own)
            best = -d2 * inv[own]
            arg = own
            if prune:
                d = np.sqrt(d2)
                s = slot[own]
                for j in range(m):
                    t = near[s, j]
                    reach = gap[s, t] - d
                    if reach > 0.0 and reach * reach * inv_min > -best * (1.0 + BOUND_SLACK):
                        break  # this and every later candidate cost more than the best
                    c = live[t]
                    if c != own:
                        log_p = -_sq_dist(emb, i, centres, c) * inv[c]
                        if _wins(log_p, c, best, arg):
                            best, arg = log_p, c
            else:
                for t in range(m):
                    c = live[t]
                    if c != own:
                        log_p = -_sq_dist(emb, i, centres, c) * inv[c]
                        if _wins(log_p, c, best, arg):
                            best, arg = log_p, c
            if arg != own:
                labels[i] = arg
                moved = True
        if not moved:
            break
    return labels


def refine_labels(emb: np.ndarray, margins: np.ndarray, labels: np.ndarray,
                  n_iter: int) -> np.ndarray:
    """Re-centre kernels on their members and reassign, ``n_iter`` times at most.

    Parameters
    ----------
    emb : float64 array (n, d)
    margins : float64 array (n,)
    labels : int64 array (n,)
        Candidate per voxel, ``-1`` for voxels left out (kept out).
    n_iter : int

    Returns
    -------
    int64 array (n,)
        New candidate per voxel (a candidate that loses all voxels disappears).
    """
    labels = np.array(labels, dtype=np.int64)
    if n_iter <= 0 or labels.size == 0 or labels.max() < 0:
        return labels
    return _refine(emb, margins, labels, int(n_iter))


def _union_labels(n_nodes: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Connected component of each node given undirected links ``a[i]-b[i]`` (ids in
    order of each component's lowest node)."""
    return _components(int(n_nodes), np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64))


@numba.njit(cache=True, nogil=True)
def _components(n, a, b):  # pragma: no cover - compiled
    # Union-find, each root the lowest node of its set: scipy's sparse graph build cost
    # more than the search itself on a segment's few thousand links.
    parent = np.arange(n)
    for i in range(a.shape[0]):
        ra = a[i]
        while parent[ra] != ra:
            parent[ra] = parent[parent[ra]]
            ra = parent[ra]
        rb = b[i]
        while parent[rb] != rb:
            parent[rb] = parent[parent[rb]]
            rb = parent[rb]
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    # parent[v] <= v always (links point to the lower node, halving keeps that), so in
    # ascending order a node's parent is labelled before it: one pass, O(n), however
    # long the chains the link order built.
    out = np.empty(n, dtype=np.int64)
    nxt = 0
    for v in range(n):
        if parent[v] == v:
            out[v] = nxt
            nxt += 1
        else:
            out[v] = out[parent[v]]
    return out


def _first_position_order(labels: np.ndarray) -> np.ndarray:
    """Renumber labels 0..K-1 by their first voxel's position; -1 stays."""
    labels = np.asarray(labels, dtype=np.int64)
    return _renumber_first(labels) if labels.size else labels.copy()


def _kernel_overlap(centres: np.ndarray, sigma: np.ndarray, a: np.ndarray,
                    b: np.ndarray) -> np.ndarray:
    """``log p`` of each pair's centroids, the larger of the two directions."""
    d2 = ((centres[a] - centres[b]) ** 2).sum(axis=1)
    return np.maximum(-d2 / (2.0 * sigma[a] ** 2 + EPS), -d2 / (2.0 * sigma[b] ** 2 + EPS))


@numba.njit(cache=True, nogil=True)
def _renumber_first(labels):  # pragma: no cover - compiled
    """Labels 0..K-1 in order of first appearance; -1 stays."""
    n = labels.shape[0]
    k = labels.max() + 1
    new = np.full(max(k, 0), -1, dtype=np.int64)
    out = np.full(n, -1, dtype=np.int64)
    nxt = 0
    for i in range(n):
        c = labels[i]
        if c < 0:
            continue
        if new[c] < 0:
            new[c] = nxt
            nxt += 1
        out[i] = new[c]
    return out


@numba.njit(cache=True, nogil=True)
def _merge(emb, margins, labels, log_merge_p):  # pragma: no cover - compiled
    n = emb.shape[0]
    k = labels.max() + 1
    centres, sigma, count = _centroids(emb, margins, labels, k)
    inv = 1.0 / (2.0 * sigma * sigma + EPS)
    parent = np.arange(k)
    for a in range(k):
        if count[a] == 0:
            continue
        for b in range(a + 1, k):
            if count[b] == 0:
                continue
            d2 = _sq_dist(centres, a, centres, b)
            if max(-d2 * inv[a], -d2 * inv[b]) > log_merge_p:
                ra = a
                while parent[ra] != ra:
                    ra = parent[ra]
                rb = b
                while parent[rb] != rb:
                    rb = parent[rb]
                parent[max(ra, rb)] = min(ra, rb)
    out = np.full(n, -1, dtype=np.int64)
    for i in range(n):
        c = labels[i]
        if c >= 0:
            while parent[c] != c:
                c = parent[c]
            out[i] = c
    return _renumber_first(out)


def merge_overlapping(emb: np.ndarray, margins: np.ndarray, labels: np.ndarray,
                      merge_p: float) -> np.ndarray:
    """Merge clusters whose centroid has ``p > merge_p`` under the other's kernel.

    Merges are transitive (connected components of the "overlaps" relation).
    Returns labels renumbered by first voxel position.
    """
    labels = np.asarray(labels, dtype=np.int64)
    if labels.size == 0 or labels.max() < 0:
        return labels.copy()
    return _merge(emb, margins, labels, _log(merge_p))


def _log(p: float) -> float:
    return math.log(p) if p > 0.0 else -math.inf


def connect_fragments(coords: np.ndarray, emb: np.ndarray, margins: np.ndarray,
                      labels: np.ndarray, radius: float, connect_p: float,
                      max_bend: Optional[float] = None,
                      bend_window: Optional[float] = None,
                      touching: Optional[Tuple[np.ndarray, np.ndarray]] = None) -> np.ndarray:
    """Split clusters into spatially connected fragments, re-join those that agree.

    Parameters
    ----------
    coords : array (n, 3)
        Voxel coordinates, in units where distance is isotropic (voxels, or cm:
        :func:`.options.pitch_frame`).
    emb, margins, labels
        As in :func:`refine_labels`.
    radius : float
        Voxels at distance ``<= radius`` (units of ``coords``) touch.
    connect_p : float
        Touching fragments merge when either centroid has ``p > connect_p``
        under the other's kernel (0: every touching pair merges).
    max_bend : float, optional
        Degrees. Touching fragments that bend by more than this where they
        meet stay apart whatever ``connect_p`` says (:mod:`.bend`); None: no veto.
    bend_window : float, optional
        The veto's window (units of ``coords``); needed with ``max_bend``.
    touching : (int array, int array), optional
        Every pair of rows within ``radius``, if the caller has them
        (:func:`.touching.pairs_within` of the event's pairs); found here otherwise.

    Returns
    -------
    int64 array (n,)
        Labels renumbered by first voxel position; ``-1`` stays ``-1``.
    """
    if max_bend is not None and bend_window is None:
        raise ValueError("max_bend needs bend_window (the veto's window, units of coords)")
    labels = np.asarray(labels, dtype=np.int64)
    n = labels.size
    if n == 0 or labels.max() < 0:
        return labels.copy()
    coords = np.asarray(coords, dtype=np.float64)
    touching = given_or_found(touching, coords, radius)
    a, b = touching
    both = (labels[a] >= 0) & (labels[b] >= 0)
    a, b = a[both], b[both]
    same = labels[a] == labels[b]
    fragment = _union_labels(n, a[same], b[same])
    fragment = _first_position_order(np.where(labels >= 0, fragment, -1))
    k = int(fragment.max()) + 1
    fa, fb = fragment[a[~same]], fragment[b[~same]]
    if fa.size:
        key = np.unique(np.minimum(fa, fb) * k + np.maximum(fa, fb))
        fa, fb = key // k, key % k
        centres, sigma, _ = _centroids(emb, margins, fragment, k)
        linked = _kernel_overlap(centres, sigma, fa, fb) > _log(connect_p)
        fa, fb = fa[linked], fb[linked]
        if max_bend is not None and fa.size:
            bend = bend_angles(coords, fragment, fa, fb, a[~same], b[~same], bend_window)
            straight = ~(bend > max_bend)  # NaN (no direction): no veto
            fa, fb = fa[straight], fb[straight]
    component = _union_labels(k, fa, fb)
    return _first_position_order(np.where(fragment >= 0, component[np.maximum(fragment, 0)], -1))


def postprocess_segment(emb: np.ndarray, margins: np.ndarray, labels: np.ndarray,
                        refine_iterations: int = 0, merge_p: Optional[float] = None,
                        coords: Optional[np.ndarray] = None,
                        connect_radius: Optional[float] = None,
                        connect_p: Optional[float] = None,
                        max_bend: Optional[float] = None,
                        bend_window: Optional[float] = None,
                        touching: Optional[Tuple[np.ndarray, np.ndarray]] = None) -> np.ndarray:
    """Apply the enabled steps (module docstring) to one sorted segment's labels.

    ``merge_p`` None skips step 2; ``connect_p`` None skips step 3 (which
    then needs ``coords`` and ``connect_radius``, and ``bend_window`` with
    ``max_bend``; lengths in the units of ``coords``; ``touching`` as in
    :func:`connect_fragments`).
    """
    labels = refine_labels(emb, margins, labels, refine_iterations)
    if merge_p is not None:
        labels = merge_overlapping(emb, margins, labels, merge_p)
    if connect_p is not None:
        if coords is None or connect_radius is None:
            raise ValueError("connect_p needs voxel coordinates and connect_radius")
        labels = connect_fragments(coords, emb, margins, labels, connect_radius, connect_p,
                                   max_bend, bend_window, touching)
    return labels
