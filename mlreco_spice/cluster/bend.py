"""How sharply two touching fragments bend where they meet (the connectivity step's veto).

Two pieces of one track continue each other: near the contact they leave it in
opposite directions. Two particles that touch (tracks from a common vertex, a
track crossing another, a delta ray on a muon) meet at an angle. An
undertrained SPICE model cannot always tell these apart, since its embeddings
are continuous across a contact and a long track's halves may have centroids
further apart than two particles at a vertex (BENCHMARKS.md, "Seed search
refinements"); the local geometry can.

For a pair of fragments, the contact point is the mean position of their
touching voxel pairs. Each fragment's direction is the principal axis of its
voxels within ``window`` of that point (the clusterer's ``bend_window_cm``, by
default 4.5 cm: 15 voxels of 3 mm), oriented away from it.
The *bend* is the angle between one direction and the reverse of the other:
0 degrees for a straight continuation, 90 for a right angle, 180 for two
fragments folding back onto each other. A fragment with fewer than
:data:`MIN_WINDOW_VOXELS` voxels in the window has no direction and the bend
is undefined (NaN): the caller does not veto such pairs. A fragment whose window is
symmetric about the contact along its axis (touched exactly in its middle:
:data:`TIE`) has no "away" side; of the two bends it allows, the sharper (>= 90
degrees) is returned.

Known limit: where a piece touches the *middle* of another (a branch leaving a
track, a shallow crossing), the middle piece's voxels lie on both sides of the
contact and its orientation is decided by a small asymmetry, so a branch at a
shallow angle (about 20 degrees either way) is not vetoed.
"""
from __future__ import annotations

import numba
import numpy as np

__all__ = ["MIN_WINDOW_VOXELS", "TIE", "bend_angles"]

#: Fewest voxels of a fragment in the window for its direction to count.
MIN_WINDOW_VOXELS = 3
#: A fragment whose window's mean lies within this fraction of the window from the plane
#: through the contact normal to its axis has no orientation (a symmetric window).
TIE = 1e-9


@numba.njit(cache=True, nogil=True)
def _window_moments(coords, members, starts, centres, first, second, window2):  # pragma: no cover
    """Per pair ``i`` and side ``s`` (0: ``first[i]``, 1: ``second[i]``): the count, mean
    and scatter matrix, relative to the contact ``centres[i]``, of the side's voxels within
    ``sqrt(window2)`` of it. ``members[starts[f]:starts[f + 1]]`` are fragment ``f``'s voxels."""
    m = first.shape[0]
    count = np.zeros((m, 2), dtype=np.int64)
    mean = np.zeros((m, 2, 3))
    scatter = np.zeros((m, 2, 3, 3))
    for i in range(m):
        for s in range(2):
            frag = first[i] if s == 0 else second[i]
            lo, hi = starts[frag], starts[frag + 1]
            inside = np.zeros(hi - lo, dtype=np.bool_)
            n = 0
            total = np.zeros(3)
            for j in range(lo, hi):
                v = members[j]
                d2 = 0.0
                for d in range(3):
                    x = coords[v, d] - centres[i, d]
                    d2 += x * x
                if d2 <= window2:
                    inside[j - lo] = True
                    n += 1
                    for d in range(3):
                        total[d] += coords[v, d] - centres[i, d]
            count[i, s] = n
            if n == 0:
                continue
            for d in range(3):
                mean[i, s, d] = total[d] / n
            for j in range(lo, hi):
                if inside[j - lo]:
                    v = members[j]
                    for d in range(3):
                        x = coords[v, d] - centres[i, d] - mean[i, s, d]
                        for e in range(3):
                            scatter[i, s, d, e] += x * (coords[v, e] - centres[i, e] - mean[i, s, e])
    return count, mean, scatter


def bend_angles(coords: np.ndarray, fragment: np.ndarray, first: np.ndarray,
                second: np.ndarray, contact_a: np.ndarray, contact_b: np.ndarray,
                window: float) -> np.ndarray:
    """Bend angle (degrees) where fragments ``first[i]`` and ``second[i]`` touch.

    Parameters
    ----------
    coords : array (n, 3)
        Voxel coordinates, in units where distance is isotropic (voxels, or cm
        for an anisotropic pitch: :func:`.options.pitch_frame`).
    fragment : int array (n,)
        Fragment id per voxel (-1: none).
    first, second : int arrays (m,)
        Fragment ids of each pair.
    contact_a, contact_b : int arrays (k,)
        Touching voxel pairs between different fragments (indices into
        ``coords``); those of pair ``i`` are where ``{fragment[a], fragment[b]}``
        is ``{first[i], second[i]}``. Every pair must have at least one.
    window : float
        Radius, in the units of ``coords``, around the contact in which each
        fragment's direction is fitted.

    Returns
    -------
    float array (m,)
        Angles in [0, 180]; NaN where a fragment has too few voxels near the contact.
    """
    coords = np.asarray(coords, dtype=np.float64)
    first = np.asarray(first, dtype=np.int64)
    second = np.asarray(second, dtype=np.int64)
    out = np.full(len(first), np.nan)
    if not len(first):
        return out
    fragment = np.asarray(fragment, dtype=np.int64)
    k = int(fragment.max()) + 1
    pair_key = np.minimum(first, second) * k + np.maximum(first, second)
    # Contacts in voxel order: the contact points' last bits (non-integer coordinates) must
    # not depend on the order the caller's search found the pairs in.
    low = np.minimum(contact_a, contact_b)
    high = np.maximum(contact_a, contact_b)
    order = np.lexsort((high, low))
    contact_a, contact_b = low[order], high[order]
    fa, fb = fragment[contact_a], fragment[contact_b]
    # Contact point of each fragment pair in one pass: mean of its touching voxels.
    keys, which = np.unique(np.minimum(fa, fb) * k + np.maximum(fa, fb), return_inverse=True)
    which = which.reshape(-1)
    sums = np.stack([np.bincount(which, weights=coords[contact_a, j] + coords[contact_b, j],
                                 minlength=keys.size) for j in range(3)], axis=1)
    centres = (sums / (2.0 * np.bincount(which, minlength=keys.size))[:, None])[
        np.searchsorted(keys, pair_key)]
    # Each fragment's voxels (CSR by fragment): a side scans only its own fragment's voxels,
    # cheaper than a ball query in a tree over the segment (a contact has two fragments).
    kept = np.flatnonzero(fragment >= 0)
    members = kept[np.argsort(fragment[kept], kind="stable")]
    starts = np.concatenate(([0], np.cumsum(np.bincount(fragment[kept], minlength=k))))
    count, mean, scatter = _window_moments(coords, members, starts, centres, first, second,
                                           float(window) * float(window))
    # Each side's direction: the principal axis of its window (largest eigenvalue; the
    # scale of the scatter matrix does not move it), pointing away from the contact.
    _, vectors = np.linalg.eigh(scatter)
    axis = vectors[..., -1]
    side = np.einsum("msd,msd->ms", mean, axis)
    axis = np.where((side >= 0)[..., None], axis, -axis)
    ok = (count >= MIN_WINDOW_VOXELS).all(axis=1)
    cosine = -np.einsum("md,md->m", axis[:, 0], axis[:, 1])
    # A window symmetric about the contact along its axis (a piece touched in its middle,
    # exactly, on the voxel grid) has no "away" side, and the sign above would be rounding
    # noise: of the two bends it allows, take the sharper. A piece touched in its middle
    # is not a continuation, so the veto should hold.
    tied = (np.abs(side) <= TIE * window).any(axis=1)
    cosine[tied] = -np.abs(cosine[tied])
    cosine = np.clip(cosine, -1.0, 1.0)
    out[ok] = np.degrees(np.arccos(cosine[ok]))
    return out
