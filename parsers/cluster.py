"""The ``cluster3d`` parser: instance and semantic label per data voxel.

Schema example::

    clust_label: {parser: cluster3d, cluster_product: cluster3d_pcluster,
                  semantics_product: sparse3d_semantics}

Rows are the voxels of ``semantics_product`` (which the data product shares)
in canonical order. A voxel covered by several instances (overlapping
particles) gets one instance, chosen with the same precedence as the
simulator:

1. instances whose class equals the voxel's semantic class win; an
   instance's class is its particle's ``semantic`` when a particle table is
   given, else the majority class of its voxels in the semantics product
   (ties: the class that comes first in :data:`~mlreco_spice.columns.CLASS_PRECEDENCE`);
2. then the instance depositing more energy in that voxel;
3. then the lower instance id (determinism).

Cluster voxels absent from the semantics product cannot be labelled; they are
dropped and counted (``stats["dropped_cluster_voxels"]``).
"""
from __future__ import annotations

import logging
from typing import List, Optional

import numpy as np

from mlreco_spice.columns import (CLASS_PRECEDENCE, NUM_CLASSES, PARSER_COORD_COLS,
                                  PARSER_INSTANCE_COL, PARSER_SEMANTIC_COL, UNLABELED)
from mlreco_spice.registry import PARSERS

from .event import ClusterProduct, EventRecord, Particle, linear_index
from .sparse import check_same_grid, get_cluster, get_particles, get_sparse

__all__ = ["parse_cluster3d", "assign_instances", "instance_classes"]

log = logging.getLogger(__name__)

_N_LABEL_COLS = max(PARSER_INSTANCE_COL, PARSER_SEMANTIC_COL) + 1


def instance_classes(inst: np.ndarray, vox_class: np.ndarray, n_instances: int,
                     particles: Optional[List[Particle]] = None) -> np.ndarray:
    """Class of each instance: its particle's semantic, else the majority voxel class.

    Parameters
    ----------
    inst, vox_class : ndarray of int64, shape (M,)
        Instance id and semantic class of each (instance, voxel) membership.
    n_instances : int
        Number of instances.
    particles : list of Particle, optional
        Particle table; a particle's ``id`` is its instance id.

    Returns
    -------
    ndarray of int64, shape (n_instances,)
        Class per instance, :data:`UNLABELED` when unknown.
    """
    valid = (vox_class >= 0) & (vox_class < NUM_CLASSES)
    counts = np.bincount(inst[valid] * NUM_CLASSES + vox_class[valid],
                         minlength=n_instances * NUM_CLASSES).reshape(n_instances, NUM_CLASSES)
    # argmax over the classes listed in precedence order breaks ties by precedence.
    precedence = np.asarray(CLASS_PRECEDENCE, dtype=np.int64)
    majority = precedence[np.argmax(counts[:, precedence], axis=1)] if n_instances else \
        np.zeros(0, np.int64)
    classes = np.where(counts.sum(axis=1) > 0, majority, UNLABELED).astype(np.int64)
    for particle in particles or ():
        if 0 <= particle.id < n_instances and 0 <= particle.semantic < NUM_CLASSES:
            classes[particle.id] = particle.semantic
    return classes


def assign_instances(data_linear: np.ndarray, data_class: np.ndarray, cluster: ClusterProduct,
                     particles: Optional[List[Particle]] = None) -> tuple:
    """Instance id of each data voxel, resolving overlaps (see module docstring).

    Parameters
    ----------
    data_linear : ndarray of int64, shape (N,)
        Sorted linear indices of the data voxels.
    data_class : ndarray of int64, shape (N,)
        Semantic class of each data voxel.
    cluster : ClusterProduct
        One voxel set per instance, on the same grid.
    particles : list of Particle, optional
        Particle table giving instance classes.

    Returns
    -------
    instance : ndarray of int64, shape (N,)
        Instance id per data voxel, :data:`UNLABELED` for voxels in no instance.
    dropped : int
        Cluster voxels not among the data voxels.
    """
    size = cluster.meta.size
    n_inst = len(cluster)
    sizes = [len(c) for c in cluster.coords]
    inst = np.repeat(np.arange(n_inst, dtype=np.int64), sizes)
    if inst.size:
        lin = np.concatenate([linear_index(np.asarray(c).reshape(-1, 3), size)
                              for c in cluster.coords])
        energy = np.concatenate([np.asarray(v, dtype=np.float64).ravel() for v in cluster.values])
    else:
        lin, energy = np.zeros(0, np.int64), np.zeros(0)
    n_data = len(data_linear)
    pos = np.searchsorted(data_linear, lin)
    found = np.zeros(len(lin), dtype=bool)
    if n_data:
        found = data_linear[np.minimum(pos, n_data - 1)] == lin
    dropped = int(len(lin) - np.count_nonzero(found))
    inst, pos, energy = inst[found], pos[found], energy[found]
    vox_class = data_class[pos]
    classes = instance_classes(inst, vox_class, n_inst, particles)
    instance = np.full(n_data, UNLABELED, dtype=np.int64)
    # Most voxels belong to one instance: assign those directly, rank only the shared ones.
    shared = np.bincount(pos, minlength=n_data)[pos] > 1
    instance[pos[~shared]] = inst[~shared]
    pos, inst, energy, vox_class = pos[shared], inst[shared], energy[shared], vox_class[shared]
    matches = classes[inst] == vox_class
    # lexsort: last key is primary. Per voxel: class match first, then energy, then lower id.
    order = np.lexsort((inst, -energy, ~matches, pos))
    pos, inst = pos[order], inst[order]
    first = np.ones(len(pos), dtype=bool)
    first[1:] = pos[1:] != pos[:-1]
    instance[pos[first]] = inst[first]
    return instance, dropped


@PARSERS.register("cluster3d")
def parse_cluster3d(record: EventRecord, cluster_product: str, semantics_product: str,
                    particle_product: Optional[str] = None,
                    stats: Optional[dict] = None) -> np.ndarray:
    """Per-voxel ``[x, y, z, instance, semantic]`` on the voxels of ``semantics_product``.

    Parameters
    ----------
    record : EventRecord
        The event.
    cluster_product : str
        cluster3d product (``cluster3d_pcluster``), one voxel set per instance.
    semantics_product : str
        sparse3d product of semantic classes; its voxels are the output rows.
    particle_product : str, optional
        Particle table (``particle_pcluster``) whose ``semantic`` gives each
        instance's class for overlap resolution.
    stats : dict, optional
        Receives ``dropped_cluster_voxels`` and ``n_instances``.

    Returns
    -------
    ndarray of float32, shape (N, 5)
        Columns named by ``PARSER_COORD_COLS``, ``PARSER_INSTANCE_COL``,
        ``PARSER_SEMANTIC_COL``; instance :data:`UNLABELED` (-1) where no
        instance covers the voxel.

    Raises
    ------
    DataError
        A product is missing.
    BadEventError
        The two products are on different grids.
    """
    sem = get_sparse(record, semantics_product)
    cluster = get_cluster(record, cluster_product)
    particles = get_particles(record, particle_product) if particle_product else None
    check_same_grid(record, [sem.meta, cluster.meta], [semantics_product, cluster_product])
    coords = np.asarray(sem.coords, dtype=np.int64).reshape(-1, 3)
    values = np.asarray(sem.values, dtype=np.float32).ravel()
    data_linear = linear_index(coords, sem.meta.size)
    if np.any(np.diff(data_linear) < 0):  # hand-built records may be unsorted
        order = np.argsort(data_linear, kind="stable")
        coords, values, data_linear = coords[order], values[order], data_linear[order]
    data_class = np.rint(values).astype(np.int64)
    instance, dropped = assign_instances(data_linear, data_class, cluster, particles)

    out = np.empty((len(coords), _N_LABEL_COLS), dtype=np.float32)
    out[:, list(PARSER_COORD_COLS)] = coords
    out[:, PARSER_INSTANCE_COL] = instance
    out[:, PARSER_SEMANTIC_COL] = values
    if dropped:
        log.debug("%s: %d cluster voxels of '%s' are not in '%s' (dropped)", record.where(),
                  dropped, cluster_product, semantics_product)
    if stats is not None:
        stats["dropped_cluster_voxels"] = dropped
        stats["n_instances"] = len(cluster)
    return out
