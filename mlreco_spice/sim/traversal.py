"""Exact voxel traversal of straight deposit segments.

PILArNet voxelises Geant4's true energy deposits: each step of a charged
particle is a short straight segment, and every voxel it passes through gets
the step's energy times the fraction of the segment inside that voxel. There
is no transverse spread, so a minimum-ionising track is a thin 26-connected
line (about 1.5 voxels per voxel of length over random directions) holding
dE/dx times its path length in each voxel.

The walk is Amanatides & Woo's (1987) grid traversal, compiled with numba:
a segment from ``a`` to ``b`` (voxel units) visits at most
``1 + sum(|floor(b) - floor(a)|)`` voxels, so the output is sized in one
counting pass and filled in a second.
"""
from __future__ import annotations

import math
from typing import Tuple

import numpy as np
from numba import njit

__all__ = ["traverse_segments", "deposit_segments"]


@njit(cache=True)
def _bound(a: np.ndarray, b: np.ndarray) -> int:
    total = 0
    for i in range(a.shape[0]):
        total += 1
        for ax in range(3):
            total += abs(int(math.floor(b[i, ax])) - int(math.floor(a[i, ax])))
    return total


@njit(cache=True)
def _walk(a: np.ndarray, b: np.ndarray, out_seg: np.ndarray, out_vox: np.ndarray,
          out_frac: np.ndarray) -> int:
    k = 0
    voxel = np.empty(3, np.int64)
    step = np.empty(3, np.int64)
    t_max = np.empty(3)
    t_delta = np.empty(3)
    for i in range(a.shape[0]):
        same = True
        for ax in range(3):
            voxel[ax] = int(math.floor(a[i, ax]))
            if int(math.floor(b[i, ax])) != voxel[ax]:
                same = False
        if same:
            # The whole segment (or a point deposit) lies in one voxel.
            out_seg[k] = i
            out_vox[k, 0], out_vox[k, 1], out_vox[k, 2] = voxel[0], voxel[1], voxel[2]
            out_frac[k] = 1.0
            k += 1
            continue
        for ax in range(3):
            d = b[i, ax] - a[i, ax]
            if d > 0:
                step[ax] = 1
                t_max[ax] = (voxel[ax] + 1 - a[i, ax]) / d
                t_delta[ax] = 1.0 / d
            elif d < 0:
                step[ax] = -1
                t_max[ax] = (voxel[ax] - a[i, ax]) / d
                t_delta[ax] = -1.0 / d
            else:
                step[ax] = 0
                t_max[ax] = np.inf
                t_delta[ax] = np.inf
        t = 0.0
        while True:
            ax = 0
            if t_max[1] < t_max[ax]:
                ax = 1
            if t_max[2] < t_max[ax]:
                ax = 2
            t_next = min(t_max[ax], 1.0)
            if t_next > t:
                out_seg[k] = i
                out_vox[k, 0], out_vox[k, 1], out_vox[k, 2] = voxel[0], voxel[1], voxel[2]
                out_frac[k] = t_next - t
                k += 1
            if t_max[ax] >= 1.0:
                break
            t = t_max[ax]
            voxel[ax] += step[ax]
            t_max[ax] += t_delta[ax]
    return k


def traverse_segments(starts: np.ndarray, ends: np.ndarray) -> Tuple[np.ndarray, np.ndarray,
                                                                       np.ndarray]:
    """Voxels crossed by straight segments and the fraction of each segment in each.

    Parameters
    ----------
    starts, ends : ndarray (n, 3)
        Segment end points in voxel units (voxel ``v`` spans ``[v, v + 1)``
        along each axis). A zero-length segment is a point deposit.

    Returns
    -------
    segment : ndarray (m,) int64
        Index of the segment of each crossing.
    voxel : ndarray (m, 3) int64
        The voxel crossed (not bounds-checked).
    fraction : ndarray (m,) float64
        Fraction of the segment's length inside that voxel; the fractions of
        each segment sum to 1.
    """
    a = np.ascontiguousarray(starts, dtype=np.float64).reshape(-1, 3)
    b = np.ascontiguousarray(ends, dtype=np.float64).reshape(-1, 3)
    if a.shape != b.shape:
        raise ValueError(f"starts and ends differ in shape: {a.shape} vs {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("segment end points must be finite")
    n = _bound(a, b)
    seg = np.empty(n, np.int64)
    vox = np.empty((n, 3), np.int64)
    frac = np.empty(n, np.float64)
    k = _walk(a, b, seg, vox, frac)
    return seg[:k], vox[:k], frac[:k]


@njit(cache=True)
def _merge_runs(owner: np.ndarray, seg: np.ndarray, vox: np.ndarray, value: np.ndarray) -> int:
    """Sum consecutive crossings of the same voxel by the same owner, in place."""
    k = -1
    last_owner = -1
    for j in range(seg.size):
        o = owner[seg[j]]
        if (k >= 0 and o == last_owner and vox[j, 0] == vox[k, 0] and vox[j, 1] == vox[k, 1]
                and vox[j, 2] == vox[k, 2]):
            value[k] += value[j]
            continue
        k += 1
        seg[k] = seg[j]
        vox[k, 0], vox[k, 1], vox[k, 2] = vox[j, 0], vox[j, 1], vox[j, 2]
        value[k] = value[j]
        last_owner = o
    return k + 1


def deposit_segments(starts: np.ndarray, ends: np.ndarray, energies: np.ndarray,
                     owners: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Energy per (owner, voxel) of segment deposits, by exact traversal.

    Consecutive crossings of one voxel by the same owner (the steps of one
    walk are contiguous) are summed here, which shrinks the arrays the caller
    sorts several times; the same (owner, voxel) may still appear more than once.

    Parameters
    ----------
    starts, ends : ndarray (n, 3)
        Segment end points in voxel units.
    energies : ndarray (n,)
        Energy of each segment, shared by length among the voxels it crosses.
    owners : ndarray (n,) int64
        Owner (instance) of each segment.

    Returns
    -------
    owner : ndarray (m,) int64
    voxel : ndarray (m, 3) int64
    energy : ndarray (m,) float64
    """
    owners = np.ascontiguousarray(owners, dtype=np.int64).reshape(-1)
    segment, voxel, fraction = traverse_segments(starts, ends)
    value = fraction * np.asarray(energies, dtype=np.float64).reshape(-1)[segment]
    k = _merge_runs(owners, segment, voxel, value)
    return owners[segment[:k]], voxel[:k], value[:k]
