"""Touching voxel pairs: every pair of voxels within a radius, found once per event.

The connectivity step (per class), the absorb step (across classes) and the
connectivity step after absorbing all ask the same question of one event's
voxels: which pairs lie within a radius of each other. Each used to build its
own k-d tree; :func:`touching_pairs` answers once per event at the largest
radius any step needs, and :func:`pairs_within` hands each step its subset
(a class's contiguous rows, a set of members, a smaller radius).

One scipy k-d tree per event: a compiled search of the integer grid (a hash of
the voxel keys probed with each offset of the ball) measured no faster on
simulator-v2 events (8 ms against 8-10 ms for 12-15k voxels), so it was not kept.
"""
from __future__ import annotations

from typing import NamedTuple, Optional, Tuple

import numpy as np

__all__ = ["Pairs", "touching_pairs", "pairs_within", "given_or_found"]


class Pairs(NamedTuple):
    """Voxel pairs ``a[i] < b[i]`` (rows of ``coords``) at distance ``<= radius``."""

    a: np.ndarray
    b: np.ndarray
    coords: np.ndarray
    radius: float


def touching_pairs(coords: np.ndarray, radius: float) -> Pairs:
    """Every pair of rows of ``coords`` at distance ``<= radius``.

    Parameters
    ----------
    coords : array (n, 3)
        Coordinates in units where distance is isotropic (:func:`.options.pitch_frame`).
    radius : float
        In the units of ``coords``.

    Returns
    -------
    Pairs
        ``a < b`` row indices, the coordinates (float64) and ``radius``.
    """
    coords = np.asarray(coords, dtype=np.float64).reshape(-1, 3)
    radius = float(radius)
    if not radius >= 0.0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    empty = np.zeros(0, dtype=np.int64)
    if len(coords) < 2:
        return Pairs(empty, empty, coords, radius)
    from scipy.spatial import cKDTree

    # An unbalanced tree without shrunk node boxes builds faster and finds the same pairs:
    # 10.3 against 11.8 ms per simulator-v2 event (median of 6 runs of 30 events).
    tree = cKDTree(coords, balanced_tree=False, compact_nodes=False)
    pairs = tree.query_pairs(radius, output_type="ndarray")
    a, b = (pairs[:, 0].astype(np.int64), pairs[:, 1].astype(np.int64)) if len(pairs) \
        else (empty, empty)
    return Pairs(a, b, coords, radius)


def given_or_found(touching: Optional[Tuple[np.ndarray, np.ndarray]], coords: np.ndarray,
                   radius: float) -> Tuple[np.ndarray, np.ndarray]:
    """``touching`` (a caller's pairs at ``radius``) when given, else the pairs
    :func:`touching_pairs` finds: the steps take the event's shared pairs from the
    clusterer and search themselves when called alone."""
    if touching is not None:
        return touching
    found = touching_pairs(coords, radius)
    return found.a, found.b


def pairs_within(pairs: Pairs, radius: float, rows: Optional[np.ndarray] = None,
                 start: int = 0, stop: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
    """The pairs at distance ``<= radius`` among some rows, renumbered to those rows.

    Parameters
    ----------
    pairs : Pairs
        From :func:`touching_pairs` at a radius of at least ``radius``.
    radius : float
    rows : int array, optional
        Row indices kept (ascending); pair ends become positions in ``rows``.
    start, stop : int
        Without ``rows``: the contiguous rows ``start:stop`` (positions relative
        to ``start``).

    Returns
    -------
    (int64 array, int64 array)
        ``a < b`` positions of each kept pair.
    """
    if radius > pairs.radius:
        raise ValueError(f"pairs were found within {pairs.radius}, asked for {radius}")
    a, b = pairs.a, pairs.b
    shift = 0
    if rows is not None:
        rows = np.asarray(rows, dtype=np.int64)
        position = np.full(len(pairs.coords), -1, dtype=np.int64)
        position[rows] = np.arange(rows.size)
        keep = (position[a] >= 0) & (position[b] >= 0)
        a, b = a[keep], b[keep]
    elif start > 0 or (stop is not None and stop < len(pairs.coords)):
        # a < b: both ends lie in start:stop when a does not start before it and b
        # does not end after it.
        keep = a >= start
        if stop is not None:
            keep &= b < stop
        a, b, shift = a[keep], b[keep], start
    if radius < pairs.radius:  # the same squared distance the tree compares
        near = ((pairs.coords[a] - pairs.coords[b]) ** 2).sum(axis=1) <= radius * radius
        a, b = a[near], b[near]
    if rows is not None:
        return position[a], position[b]
    return a - shift, b - shift
