"""Deposits per instance -> larcv-like products: voxelisation and overlap resolution.

Deposits are straight segments voxelised by exact traversal (no spread).

* ``sparse3d[data]``: summed energy (MeV) per voxel, voxels at or above the
  energy threshold.
* ``cluster3d[pcluster]``: one voxel set per instance with that instance's
  own energy in each voxel. A voxel hit by two particles is in both sets (as
  in PILArNet). Instance voxels below the threshold stay in the set though
  they are absent from the data (also as in PILArNet).
* ``sparse3d[semantics]``: one class per data voxel. Where instances of
  different classes overlap, the class that comes first in
  :data:`mlreco_spice.columns.CLASS_PRECEDENCE` (Michel, Delta, HIP, MIP,
  Shower) wins; between instances of the same class, the one depositing more
  energy in the voxel wins (ties: the lower instance id).

Instances with no voxel in the data are dropped and the rest renumbered in
order, so every particle id equals its cluster set index.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence, Tuple

import numpy as np

from mlreco_spice.columns import CLASS_PRECEDENCE, NUM_CLASSES
from parsers.event import ClusterProduct, ImageMeta, SparseProduct

from .traversal import deposit_segments

__all__ = ["VoxelisedEvent", "voxelise", "resolve_semantics", "coords_from_linear"]

_RANK = np.empty(NUM_CLASSES, dtype=np.int64)
_RANK[np.asarray(CLASS_PRECEDENCE)] = np.arange(NUM_CLASSES)


@dataclass
class VoxelisedEvent:
    """Products of one event and the map from input instances to kept ones.

    Attributes
    ----------
    data, semantics : SparseProduct
        Energy and class per data voxel (canonical order).
    clusters : ClusterProduct
        One voxel set per kept instance.
    kept : ndarray of int64
        Input instance index of each kept instance (its new id is its position).
    """

    data: SparseProduct
    semantics: SparseProduct
    clusters: ClusterProduct
    kept: np.ndarray


def coords_from_linear(linear: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Inverse of :func:`parsers.event.linear_index`: (N,) -> (N, 3) int64."""
    ny, nz = int(size[1]), int(size[2])
    linear = np.asarray(linear, dtype=np.int64)
    return np.stack([linear // (ny * nz), (linear // nz) % ny, linear % nz], axis=1)


def resolve_semantics(linear: np.ndarray, classes: np.ndarray, energies: np.ndarray,
                      instances: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Class of each voxel from overlapping (instance, voxel) memberships.

    Parameters
    ----------
    linear : ndarray (M,)
        Voxel linear index of each membership.
    classes, energies, instances : ndarray (M,)
        Class, energy and instance id of each membership.

    Returns
    -------
    voxels : ndarray (V,)
        Unique voxel linear indices, ascending.
    voxel_class : ndarray (V,)
        Winning class per voxel (see module docstring).
    """
    # Most voxels have one member: only the shared ones need sorting.
    voxels, inverse, counts = np.unique(linear, return_inverse=True, return_counts=True)
    voxel_class = np.empty(voxels.size, dtype=np.int64)
    voxel_class[inverse] = classes
    shared = np.flatnonzero(counts[inverse] > 1)
    if shared.size:
        lin, cls = linear[shared], classes[shared]
        order = np.lexsort((instances[shared], -energies[shared], _RANK[cls], lin))
        lin, cls = lin[order], cls[order]
        first = np.ones(lin.size, dtype=bool)
        first[1:] = lin[1:] != lin[:-1]
        voxel_class[np.searchsorted(voxels, lin[first])] = cls[first]
    return voxels, voxel_class


def voxelise(meta: ImageMeta, points: List[np.ndarray], vectors: List[np.ndarray],
             energies: List[np.ndarray], classes: Sequence[int],
             threshold_mev: float = 0.0) -> VoxelisedEvent:
    """Turn per-instance deposit segments into the three voxel products.

    Each deposit is a straight segment centred at ``points[i][j]`` and
    spanning ``vectors[i][j]`` (zero: a point deposit); its energy is shared
    among the voxels it crosses in proportion to the length inside each
    (:func:`.traversal.deposit_segments`).

    Parameters
    ----------
    meta : ImageMeta
        The image grid; deposits outside it are dropped.
    points, vectors : list of ndarray
        Segment centres and spans (n_i, 3) in cm, per instance.
    energies : list of ndarray
        Energy (n_i,) in MeV of each segment, per instance.
    classes : sequence of int
        Semantic class per instance.
    threshold_mev : float
        Data voxels need at least this summed energy.
    """
    size = tuple(int(s) for s in meta.size)
    n_voxels = int(np.prod(size, dtype=np.int64))
    counts = np.array([len(e) for e in energies], dtype=np.int64)
    segment_owner = np.repeat(np.arange(len(energies), dtype=np.int64), counts)
    pts = np.concatenate(points) if len(points) else np.zeros((0, 3))
    span = np.concatenate(vectors) if len(vectors) else np.zeros((0, 3))
    seg_energy = np.concatenate(energies) if len(energies) else np.zeros(0)
    origin, pitch = np.asarray(meta.origin_cm), np.asarray(meta.voxel_cm)
    start = (pts - 0.5 * span - origin) / pitch
    owner, vox, dep = deposit_segments(start, start + span / pitch, seg_energy, segment_owner)
    inside = meta.contains(vox)
    owner, vox, dep = owner[inside], vox[inside], dep[inside]
    linear = (vox[:, 0] * size[1] + vox[:, 1]) * size[2] + vox[:, 2]
    # One key per (instance, voxel): sorted by instance, then canonical voxel order.
    keys, inverse = np.unique(owner * n_voxels + linear, return_inverse=True)
    member_energy = np.bincount(inverse, dep, minlength=keys.size)
    member_owner, member_linear = keys // n_voxels, keys % n_voxels

    voxels, voxel_inverse = np.unique(member_linear, return_inverse=True)
    voxel_energy = np.bincount(voxel_inverse, member_energy, minlength=voxels.size)
    in_data = voxel_energy >= threshold_mev
    member_in_data = in_data[voxel_inverse]

    # Keep instances with at least one data voxel; renumber them in order.
    has_data = np.zeros(len(energies), dtype=bool)
    has_data[member_owner[member_in_data]] = True
    kept = np.flatnonzero(has_data)
    new_id = np.full(len(energies), -1, dtype=np.int64)
    new_id[kept] = np.arange(kept.size)

    classes_arr = np.asarray(classes, dtype=np.int64)
    sel = member_in_data
    data_voxels, data_class = resolve_semantics(member_linear[sel], classes_arr[member_owner[sel]],
                                                member_energy[sel], member_owner[sel])
    coords = coords_from_linear(data_voxels, size)
    data = SparseProduct(coords, voxel_energy[in_data].astype(np.float32), meta)
    semantics = SparseProduct(coords.copy(), data_class.astype(np.float32), meta)

    keep_member = has_data[member_owner]
    owner_kept = member_owner[keep_member]
    starts = np.searchsorted(owner_kept, kept, side="left")
    ends = np.searchsorted(owner_kept, kept, side="right")
    lin_kept, e_kept = member_linear[keep_member], member_energy[keep_member]
    cluster_coords, cluster_values = [], []
    for a, b in zip(starts, ends):
        cluster_coords.append(coords_from_linear(lin_kept[a:b], size))
        cluster_values.append(e_kept[a:b].astype(np.float32))
    return VoxelisedEvent(data, semantics, ClusterProduct(cluster_coords, cluster_values, meta), kept)
