"""Detached voxels: the voxels of a true instance outside its largest touching piece.

A shower's, delta's or Michel electron's separated dots carry no class of their own:
a network can only judge them by what lies around them (BENCHMARKS.md, "Reading the
floor"). The benchmarks score them apart from the main pieces, and the segmentation
loss can weigh them (``loss.detached_weight``); both use :func:`main_piece`. Numpy and
scipy only (the benchmarks import it without torch).
"""
from __future__ import annotations

import numpy as np

__all__ = ["TOUCH", "main_piece"]

#: Voxels closer than this (voxel units) touch: the 26 neighbours of a voxel.
TOUCH = 1.75


def main_piece(coords: np.ndarray, instance: np.ndarray) -> np.ndarray:
    """True on the voxels of each true instance's largest touching piece.

    Parameters
    ----------
    coords : array (n, 3)
        Voxel coordinates (voxel units).
    instance : array (n,)
        True instance per voxel; negative: unassigned.

    Returns
    -------
    array (n,) of bool
        False on detached pieces (a shower's or electron's separated dots) and on
        unassigned voxels. Ties between equal pieces go to the first found.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    instance = np.asarray(instance)
    n = len(instance)
    if n == 0:
        return np.zeros(0, dtype=bool)
    pairs = cKDTree(np.asarray(coords, dtype=np.float64)).query_pairs(TOUCH, output_type="ndarray")
    pairs = pairs[instance[pairs[:, 0]] == instance[pairs[:, 1]]]
    piece = connected_components(coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])),
                                            shape=(n, n)), directed=False)[1]
    main = np.zeros(n, dtype=bool)
    for inst in np.unique(instance[instance >= 0]):
        members = np.flatnonzero(instance == inst)
        sizes = np.bincount(piece[members])
        main[members[piece[members] == sizes.argmax()]] = True
    return main
