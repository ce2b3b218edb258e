"""larcv3 HDF5 reader, reading larcv3's table layout directly with h5py.

Going through h5py instead of ``larcv.IOManager`` reads only the rows of the
requested entry, opens lazily per process (safe in forked DataLoader
workers) and needs no compiled larcv at read time; ``tests/test_io_larcv3.py``
checks that it returns the same arrays as the IOManager route.

Layout (larcv 3.5), per product group ``Data/<type>_<producer>_group``:

* ``sparse3d``: ``extents[entry]`` -> rows of ``voxel_extents`` (one per
  projection) -> rows of ``voxels`` (``id``, ``value``); ``image_meta`` is
  parallel to ``voxel_extents``.
* ``cluster3d``: ``extents[entry]`` -> rows of ``projection_extents`` -> rows
  of ``cluster_extents`` (one per voxel set) -> rows of ``voxels``;
  ``image_meta`` is parallel to ``projection_extents``.
* ``particle``: ``extents[entry]`` -> rows of ``particles``.

``Events/event_id`` holds (run, subrun, event) per entry. Projection 0 is
read; a sparse3d/cluster3d product with no projection in an entry, or first
written at a later entry, is absent from that entry's record. Voxel ids beyond the image are returned as
coordinates outside it (for :mod:`parsers.validate` to report). Voxel ids are C-order linear indices (x slowest); arrays are returned
in canonical order. The particle mapping (``shape`` = our semantic class) is
the one documented in :mod:`parsers.writer`.
"""
from __future__ import annotations

import os
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np

from mlreco_spice.errors import DataError
from mlreco_spice.registry import READERS

from ..event import ClusterProduct, EventRecord, ImageMeta, Particle, SparseProduct
from .base import Reader
from .larcv_shapes import ShapeMapping

__all__ = ["Larcv3Reader"]

_TYPES = ("sparse3d", "cluster3d", "particle")
_GROUP_SUFFIX = "_group"


def _meta_from_row(row) -> ImageMeta:
    size = tuple(int(n) for n in row["number_of_voxels"])
    lengths = np.asarray(row["image_sizes"], dtype=np.float64)
    voxel = tuple(float(v) for v in lengths / np.maximum(np.asarray(size), 1))
    return ImageMeta(size, voxel, tuple(float(v) for v in row["origin"]))


def _voxels(rows: np.ndarray, size: Sequence[int], presorted: bool = False) -> tuple:
    """Voxel table rows -> (coords int64 (N, 3), values float32 (N,)) in canonical order."""
    ids = rows["id"].astype(np.int64)
    values = rows["value"].astype(np.float32)
    if not presorted and np.any(np.diff(ids) < 0):  # other writers may not sort
        order = np.argsort(ids, kind="stable")
        ids, values = ids[order], values[order]
    # Not np.unravel_index: it rejects ids beyond the image, which would make the
    # whole file unreadable; here they become x >= size[0] (an id above int64's
    # range wraps negative), which parsers.validate reports as a bad event.
    ny, nz = int(size[1]), int(size[2])
    coords = np.stack([ids // (ny * nz), (ids // nz) % ny, ids % nz], axis=1) \
        if len(ids) else np.zeros((0, 3), np.int64)
    return coords, values


@READERS.register("larcv3")
class Larcv3Reader(Reader):
    """Random access to larcv3 HDF5 files (see the module docstring for the layout)."""

    format_name = "larcv3"

    def __init__(self, files: Sequence[str], products: Optional[Sequence[str]] = None,
                 semantic_mapping: Optional[Mapping] = None):
        super().__init__(files, products)
        # Used by parsers.label_schemes when io.dataset.labels is spine.
        self.mapping = ShapeMapping.from_options(semantic_mapping)
        self._handles: Optional[Dict[str, object]] = None
        self._handles_pid: Optional[int] = None
        self._tables: Dict[tuple, object] = {}

    # -- file handles ---------------------------------------------------------
    def _open(self, file: str):
        """The open h5py.File of ``file`` in this process (DataError when unusable)."""
        if self._handles is None or self._handles_pid != os.getpid():
            # New process (fork): inherited HDF5 handles must not be reused.
            self._handles, self._handles_pid, self._tables = {}, os.getpid(), {}
        handle = self._handles.get(file)
        if handle is not None:
            return handle
        import h5py

        if not os.path.exists(file):
            raise DataError(f"input file not found: {file}")
        if os.path.getsize(file) == 0:
            raise DataError(f"input file {file} is empty (0 bytes)")
        try:
            handle = h5py.File(file, "r")
        except OSError as err:
            raise DataError(f"input file {file} is not a readable HDF5 file (corrupt or "
                            f"truncated?): {err}") from None
        try:
            is_larcv = ("Events" in handle and "Data" in handle
                        and "event_id" in handle["Events"])
            keys = ", ".join(sorted(handle.keys())) or "(none)"
        except (OSError, RuntimeError, KeyError) as err:
            # h5py raises RuntimeError for damaged group headers / B-trees.
            handle.close()
            raise DataError(f"input file {file} is a corrupt HDF5 file (its group structure "
                            f"cannot be read): {err}") from None
        if not is_larcv:
            handle.close()
            raise DataError(f"input file {file} is HDF5 but not larcv3 (no Events/event_id and "
                            f"Data groups); top-level keys: {keys}")
        self._handles[file] = handle
        return handle

    def _table(self, file: str, path: str):
        """A whole index table (extents, meta, ids), read once per file and process.

        These tables have a few rows per entry; reading one row at a time
        would decompress a chunk per row, so they are cached in memory.
        """
        key = (file, path)
        if key not in self._tables:
            self._tables[key] = self._open(file)[path][:]
        return self._tables[key]

    def close(self) -> None:
        if self._handles and self._handles_pid == os.getpid():
            for handle in self._handles.values():
                handle.close()
        self._handles, self._tables = None, {}

    # -- Reader interface -----------------------------------------------------
    def count_entries(self, file: str) -> int:
        try:
            return len(self._table(file, "Events/event_id"))
        except (OSError, RuntimeError, KeyError) as err:
            raise DataError(f"input file {file}: cannot read Events/event_id (corrupt or "
                            f"truncated?): {err}") from None

    def list_products(self, file: str) -> List[str]:
        key = (file, "<products>")
        if key not in self._tables:
            try:
                names = list(self._open(file)["Data"])
            except (OSError, RuntimeError, KeyError) as err:
                raise DataError(f"input file {file}: cannot list the Data group (corrupt or "
                                f"truncated?): {err}") from None
            # An older larcv3 writes a group without tables for a producer that
            # never had an entry: it holds no product, so it is not listed (and
            # asking for it says "not found", not "corrupt").
            data = self._open(file)["Data"]
            self._tables[key] = sorted(
                name[:-len(_GROUP_SUFFIX)] for name in names
                if name.endswith(_GROUP_SUFFIX) and name.split("_", 1)[0] in _TYPES
                and "extents" in data[name])
        return list(self._tables[key])

    def read_entry(self, file: str, entry: int) -> EventRecord:
        h5 = self._open(file)
        n_entries = self.count_entries(file)
        if not 0 <= entry < n_entries:
            raise DataError(f"{file} entry {entry}: out of range (file has {n_entries} entries)")
        available = self.list_products(file)
        wanted = self.products if self.products is not None else available
        missing = [name for name in wanted if name not in available]
        if missing:
            raise DataError(f"{file}: product(s) {', '.join(missing)} not found; the file has "
                            f"{', '.join(available) or '(no products)'}")
        try:
            run, subrun, event = (int(v) for v in self._table(file, "Events/event_id")[entry])
            record = EventRecord(run=run, subrun=subrun, event=event, file=file, entry=entry)
            for name in wanted:
                kind, producer = name.split("_", 1)
                group = f"Data/{name}{_GROUP_SUFFIX}"
                extents = self._table(file, f"{group}/extents")
                # larcv adds a product's extents rows from the entry that first
                # sets it on, so a product first written at entry k has no rows
                # for entries 0..k-1: it is absent from them.
                late = n_entries - len(extents)
                if late < 0:
                    raise ValueError(f"'{group}' has {len(extents)} entries, the file {n_entries}")
                if entry < late:
                    continue
                extent = extents[entry - late]
                first, count = int(extent["first"]), int(extent["N"])
                if count < 1 and kind != "particle":
                    # No projection: the product is absent from this entry (e.g. a
                    # predict output's entry for a skipped event holds only its ids).
                    continue
                if kind == "sparse3d":
                    record.sparse3d[producer] = self._read_sparse(file, group, first, count)
                elif kind == "cluster3d":
                    record.cluster3d[producer] = self._read_cluster(file, group, first, count)
                else:
                    record.particles[producer] = self._read_particles(h5[group], first, count)
        except (OSError, RuntimeError, KeyError, ValueError, IndexError) as err:
            raise DataError(f"{file} entry {entry}: cannot read (corrupt or truncated?): "
                            f"{err}") from None
        return record

    # -- products -------------------------------------------------------------
    def _projection(self, file: str, group: str, table: str, first: int, count: int) -> tuple:
        """Projection 0 of an entry (``count >= 1``): its row in ``table`` and its ImageMeta."""
        row = self._table(file, f"{group}/{table}")[first]
        return int(row["first"]), int(row["N"]), \
            _meta_from_row(self._table(file, f"{group}/image_meta")[first])

    def _read_sparse(self, file: str, group: str, first: int, count: int) -> SparseProduct:
        start, n, meta = self._projection(file, group, "voxel_extents", first, count)
        coords, values = _voxels(self._open(file)[f"{group}/voxels"][start:start + n], meta.size)
        return SparseProduct(coords, values, meta)

    def _read_cluster(self, file: str, group: str, first: int, count: int) -> ClusterProduct:
        start, n, meta = self._projection(file, group, "projection_extents", first, count)
        clusters = self._table(file, f"{group}/cluster_extents")[start:start + n]
        if not len(clusters):
            return ClusterProduct([], [], meta)
        # One read for all voxel sets of the event, split in memory.
        lo = int(clusters["first"].min())
        hi = int((clusters["first"] + clusters["N"]).max())
        rows = self._open(file)[f"{group}/voxels"][lo:hi]
        begins = clusters["first"].astype(np.int64) - lo
        ends = begins + clusters["N"].astype(np.int64)
        step = np.diff(rows["id"].astype(np.int64))
        joins = ends[:-1] - 1  # steps from one set into the next need not increase
        step[joins[(joins >= 0) & (joins < len(step))]] = 1
        contiguous = begins[0] == 0 and np.array_equal(begins[1:], ends[:-1])
        if contiguous and np.all(step > 0):
            # The usual case (sets stored back to back, each sorted): convert once, split.
            coords, values = _voxels(rows, meta.size, presorted=True)
            return ClusterProduct(np.split(coords, ends[:-1]), np.split(values, ends[:-1]), meta)
        pairs = [_voxels(rows[b:e], meta.size) for b, e in zip(begins, ends)]
        return ClusterProduct([c for c, _ in pairs], [v for _, v in pairs], meta)

    @staticmethod
    def _read_particles(group, first: int, count: int) -> List[Particle]:
        rows = group["particles"][first:first + count]
        if not len(rows):
            return []

        def ids(field: str) -> List[int]:
            # larcv marks unset unsigned ids with the type's maximum; ours use -1.
            column = rows[field].astype(np.int64)
            invalid = np.iinfo(rows.dtype[field]).max
            return np.where(column == invalid, -1, column).tolist()

        vtx = rows["vtx"]
        starts = np.stack([vtx["x"], vtx["y"], vtx["z"]], axis=1).tolist()
        return [Particle(id=int(i), pdg=int(pdg), semantic=int(shape), start_cm=tuple(start),
                         energy_init=float(e_init), parent_id=parent, group_id=group_id,
                         energy_deposit=float(e_dep), interaction_id=inter)
                for i, pdg, shape, start, e_init, parent, group_id, e_dep, inter in zip(
                    rows["id"].tolist(), rows["pdg"].tolist(), rows["shape"].tolist(), starts,
                    rows["energy_init"].tolist(), ids("parent_trackid"),
                    ids("ancestor_trackid"), rows["energy_deposit"].tolist(),
                    ids("mct_index"))]
