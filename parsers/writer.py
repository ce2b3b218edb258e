"""Write :class:`~parsers.event.EventRecord` objects to larcv3 HDF5 through ``larcv.IOManager``.

Products, by larcv3 type and producer name (the record's dict keys):

* ``sparse3d_<name>``  (EventSparseTensor3D): one VoxelSet, projection 0;
* ``cluster3d_<name>`` (EventSparseCluster3D): one VoxelSet per instance,
  VoxelSet id = instance index;
* ``particle_<name>``  (EventParticle): one larcv ``Particle`` per row.

Particle fields (larcv3 3.5's ``Particle`` has no group/interaction/parent
id fields, so the closest ones carry them):

=====================  ==========================================
our ``Particle``       larcv3 ``Particle`` field
=====================  ==========================================
``id``                 ``id`` (larcv sets it to the row index, so
                       ids must be 0..n-1 in order; checked)
``pdg``                ``pdg_code``
``semantic``           ``shape`` (see below)
``parent_id``          ``parent_track_id``
``group_id``           ``ancestor_track_id``
``interaction_id``     ``mct_index``
``energy_init``        ``energy_init`` (MeV)
``energy_deposit``     ``energy_deposit`` (MeV)
``start_cm``           ``position`` (x, y, z in cm, t = 0)
=====================  ==========================================

Unset ids (-1) are stored as larcv's invalid value of the field's type.
**``shape`` stores our semantic class index** (order of
:data:`mlreco_spice.columns.CLASS_NAMES`: HIP, MIP, Shower, Delta, Michel),
not larcv's ShapeType meaning (which has no HIP/MIP split). larcv 3.5.1's
Python bindings cannot set ``shape`` (its enum type is not exported), so the
column is filled with h5py right after ``IOManager.finalize()``, before the
atomic rename.

Voxel sets are written sorted by C-order linear index without duplicates
(larcv's ``VoxelSet`` neither sorts nor de-duplicates; duplicates are summed
here, as larcv's ``add`` would). Output is atomic
(:func:`mlreco_spice.atomic.atomic_path`): a temporary file in the target
directory, renamed on :meth:`LarcvWriter.close`.
"""
from __future__ import annotations

import logging
import os
import sys
from contextlib import ExitStack
from typing import Dict, Iterable, List, Mapping, Optional, Sequence

import numpy as np

from mlreco_spice.atomic import atomic_path
from mlreco_spice.errors import DataError

from .event import ClusterProduct, EventRecord, ImageMeta, Particle, SparseProduct, linear_index

__all__ = ["LarcvWriter", "write_events", "import_larcv", "canonical_voxels"]

log = logging.getLogger(__name__)

#: larcv message level: warnings and errors only (3 = kWARNING).
_LARCV_QUIET = 3
#: Rows per read-modify-write block when filling the particle ``shape`` column.
_SHAPE_BLOCK = 65536


def import_larcv():
    """Import ``larcv`` (larcv3) or raise a DataError saying how to install it."""
    try:
        import larcv
    except ImportError as err:
        raise DataError(f"writing larcv3 files needs the larcv package (pip install "
                        f"larcv==3.5.1): {err}") from None
    return larcv


def canonical_voxels(coords: np.ndarray, values: np.ndarray,
                     size: Sequence[int]) -> tuple:
    """Sorted unique linear indices and their values (duplicates summed).

    Parameters
    ----------
    coords : ndarray (N, 3)
        Voxel indices.
    values : ndarray (N,)
        Values.
    size : (int, int, int)
        Grid size.

    Returns
    -------
    linear : ndarray of uint64, values : ndarray of float32
    """
    coords = np.asarray(coords, dtype=np.int64).reshape(-1, 3)
    values = np.asarray(values, dtype=np.float64).ravel()
    if len(coords) != len(values):
        raise ValueError(f"{len(coords)} voxels but {len(values)} values")
    linear = linear_index(coords, size)
    unique, inverse = np.unique(linear, return_inverse=True)
    if len(unique) == len(linear):
        order = np.argsort(linear, kind="stable")
        return unique.astype(np.uint64), values[order].astype(np.float32)
    summed = np.bincount(inverse.ravel(), weights=values, minlength=len(unique))
    return unique.astype(np.uint64), summed.astype(np.float32)


class LarcvWriter:
    """Stream events into one larcv3 file.

    Parameters
    ----------
    path : str
        Output file; written as a temporary file next to it and renamed on
        :meth:`close`, so a crash never leaves a half-written ``path``.
    compression : int
        HDF5 deflate level (larcv's default is 1).

    Examples
    --------
    >>> with LarcvWriter("out.h5") as writer:   # doctest: +SKIP
    ...     for record in records:
    ...         writer.write(record)
    """

    def __init__(self, path: str, compression: int = 1,
                 attrs: Optional[Mapping[str, str]] = None):
        self.path = os.path.abspath(os.fspath(path))
        # File-level HDF5 attributes (e.g. the simulator's version), set at close.
        self._attrs = dict(attrs or {})
        self._larcv = import_larcv()
        # atomic_path renames the temporary file on a clean exit, deletes it otherwise.
        self._atomic = ExitStack()
        self._tmp = str(self._atomic.enter_context(atomic_path(self.path)))
        os.unlink(self._tmp)  # larcv creates the file itself
        config = self._larcv.IOManager.default_config()
        config["IOMode"] = int(self._larcv.IOManager.kWRITE)
        config["Output"]["OutFileName"] = self._tmp
        config["Output"]["Compression"] = int(compression)
        config["Verbosity"] = _LARCV_QUIET
        config["Name"] = "IOManager"  # required by the json constructor, absent from the default
        try:
            self._io = self._larcv.IOManager(config)
            self._io.initialize()
        except BaseException:
            self._atomic.__exit__(*sys.exc_info())
            raise
        # Semantic class per particle row, per product: written into `shape` at close.
        self._shapes: Dict[str, List[int]] = {}
        # Products written so far, with their last meta: larcv3 repeats the previous
        # entry's voxels in a sparse3d product an entry does not set, so absent
        # products are written empty instead.
        self._seen_sparse: Dict[str, ImageMeta] = {}
        self._seen_cluster: Dict[str, ImageMeta] = {}
        self.n_written = 0
        self._closed = False

    # -- larcv objects ------------------------------------------------------
    def _meta(self, meta: ImageMeta):
        larcv_meta = self._larcv.ImageMeta3D()
        for axis in range(3):
            larcv_meta.set_dimension(axis, float(meta.length_cm[axis]), int(meta.size[axis]),
                                     float(meta.origin_cm[axis]))
        larcv_meta.set_projection_id(0)
        return larcv_meta

    def _voxel_set(self, coords: np.ndarray, values: np.ndarray, size: Sequence[int]):
        voxels = self._larcv.VoxelSet()
        voxels.set(*canonical_voxels(coords, values, size))
        return voxels

    def _write_sparse(self, name: str, product: SparseProduct) -> None:
        event = self._io.get_data("sparse3d", name)
        event.set(self._voxel_set(product.coords, product.values, product.meta.size),
                  self._meta(product.meta))

    def _write_cluster(self, name: str, product: ClusterProduct) -> None:
        event = self._io.get_data("cluster3d", name)
        clusters = self._larcv.SparseCluster3D()
        for index, (coords, values) in enumerate(zip(product.coords, product.values)):
            voxels = self._voxel_set(coords, values, product.meta.size)
            voxels.id(index)
            clusters.insert(voxels)
        clusters.meta(self._meta(product.meta))
        event.set(clusters)

    def _write_particles(self, name: str, particles: Sequence[Particle], where: str) -> None:
        larcv = self._larcv
        event = self._io.get_data("particle", name)
        shapes = self._shapes.setdefault(name, [])
        for row, p in enumerate(particles):
            if int(p.id) != row:
                raise ValueError(f"{where}: particle_{name} row {row} has id {p.id}; larcv3 "
                                 f"stores a particle's id as its row, so ids must be 0..n-1 "
                                 f"in order")
            particle = larcv.Particle()
            particle.pdg_code(int(p.pdg))
            particle.parent_track_id(_or_invalid(p.parent_id, larcv.kINVALID_UINT))
            particle.ancestor_track_id(_or_invalid(p.group_id, larcv.kINVALID_UINT))
            particle.mct_index(_or_invalid(p.interaction_id, larcv.kINVALID_USHORT))
            particle.energy_init(float(p.energy_init))
            particle.energy_deposit(float(p.energy_deposit))
            x, y, z = (float(v) for v in p.start_cm)
            particle.position(x, y, z, 0.0)
            event.append(particle)
            shapes.append(int(p.semantic))

    def _fill_file(self) -> None:
        """Write the file attributes, and the semantic classes into the particle
        tables' ``shape`` column."""
        import h5py

        with h5py.File(self._tmp, "r+") as h5:
            for key, value in self._attrs.items():
                h5.attrs[key] = value
            for name, shapes in self._shapes.items():
                table = h5[f"Data/particle_{name}_group/particles"]
                if table.shape[0] != len(shapes):
                    raise RuntimeError(f"particle_{name}: {table.shape[0]} rows written but "
                                       f"{len(shapes)} semantic classes recorded")
                values = np.asarray(shapes, dtype=table.dtype["shape"])
                for start in range(0, len(values), _SHAPE_BLOCK):
                    block = table[start:start + _SHAPE_BLOCK]
                    block["shape"] = values[start:start + _SHAPE_BLOCK]
                    table[start:start + _SHAPE_BLOCK] = block

    # -- public -------------------------------------------------------------
    def write(self, record: EventRecord) -> None:
        """Append one event (its run/subrun/event ids and every product)."""
        if self._closed:
            raise ValueError(f"writer for {self.path} is closed")
        self._io.set_id(int(record.run), int(record.subrun), int(record.event))
        empty = np.zeros((0, 3), np.int64), np.zeros(0, np.float32)
        for name, meta in self._seen_sparse.items():
            if name not in record.sparse3d:
                self._write_sparse(name, SparseProduct(*empty, meta))
        for name, meta in self._seen_cluster.items():
            if name not in record.cluster3d:
                self._write_cluster(name, ClusterProduct([], [], meta))
        for name, product in record.sparse3d.items():
            self._write_sparse(name, product)
            self._seen_sparse[name] = product.meta
        for name, product in record.cluster3d.items():
            self._write_cluster(name, product)
            self._seen_cluster[name] = product.meta
        for name, particles in record.particles.items():
            self._write_particles(name, particles, record.where())
        self._io.save_entry()
        self.n_written += 1

    def close(self) -> None:
        """Finish the file and move it to :attr:`path` (atomic replace)."""
        self._finish(keep=True)
        log.debug("wrote %d events to %s", self.n_written, self.path)

    def abort(self) -> None:
        """Drop the temporary file without touching :attr:`path`."""
        self._finish(keep=False)

    def _finish(self, keep: bool) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._io.finalize()
            if keep and (self._shapes or self._attrs):
                self._fill_file()
        except BaseException:
            self._atomic.__exit__(*sys.exc_info())
            raise
        if keep:
            self._atomic.close()
        else:
            # atomic_path deletes the temporary file when its block ends with an error.
            error = RuntimeError(f"writing {self.path} aborted")
            self._atomic.__exit__(type(error), error, None)

    def __enter__(self) -> "LarcvWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _or_invalid(value: int, invalid: int) -> int:
    return invalid if int(value) < 0 else int(value)


def write_events(path: str, records: Iterable[EventRecord], compression: int = 1,
                 attrs: Optional[Mapping[str, str]] = None) -> int:
    """Write events (any iterable, e.g. a generator: streamed, one in memory at a time).

    Parameters
    ----------
    path : str
        Output larcv3 file (replaced atomically when complete).
    records : iterable of EventRecord
        Events in output order.
    compression : int
        HDF5 deflate level.
    attrs : mapping of str to str, optional
        HDF5 attributes of the file (provenance).

    Returns
    -------
    int
        Number of events written.
    """
    with LarcvWriter(path, compression=compression, attrs=attrs) as writer:
        for record in records:
            writer.write(record)
    return writer.n_written
