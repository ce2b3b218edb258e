"""PILArNet-M HDF5 files (DeepLearnPhysics, 2025; ~1.2 M events), read with h5py.

Each file holds variable-length float datasets with one row per event:

``point`` reshaped ``(-1, 8)``
    column 0-2: x, y, z voxel coordinates on a 768^3 grid (loaders centre
    them on 384 and scale by 768); column 3: energy deposit. Columns 4-7 are
    not used here (DATASET.md lists absolute time, number of electrons and dx
    after the energy; PoLAr-MAE reads column 5 as time).
``cluster`` reshaped ``(-1, 6)`` (v2/v3) or ``(-1, 5)`` (v1)
    column 0: number of points; 1: fragment id; 2: group id; 3: interaction
    id; 4: semantic type (0 shower, 1 track, 2 michel, 3 delta, 4 low-energy
    deposit); 5 (v2/v3 only): PID (0 photon, 1 electron, 2 muon, 3 pion,
    4 proton, -1 none).
``cluster_extra`` reshaped ``(n_clusters, 5)`` (v2) or ``(n_clusters, 6)`` (v3)
    not used here (column 1 momentum, 2-4 vertex, v3 column 5 is_primary).

Points are sorted by cluster (row ``k`` of ``cluster`` owns the next
``n_points`` points) and cluster 0 holds the low-energy scatters (ids -1).

Sources: PoLAr-MAE ``DATASET.md`` and ``polarmae/datasets/PILArNet.py``
(DeepLearnPhysics/PoLAr-MAE: ``point`` (N, 8) with ``[:, [0,1,2,3,5]]`` =
x, y, z, e, t; v1 ``cluster`` (N, 5) = size, fragment, group, interaction,
semantic; "remove low energy scatters (always first particle)"; semantic
names); the Panda/pimm loader ``PILArNetH5Dataset`` (seanxia8/pimm-data
``src/pimm_data/pilarnet.py``: v2 ``cluster`` (N, 6) ``[:, [0, 2, -3, -2, -1]]``
= size, group, interaction, semantic, pid; ``cluster_extra`` (N, 5)
``[:, [1,2,3,4]]`` = momentum, vertex; PID names; v3's 6-wide
``cluster_extra``; coordinates normalised around 384 with scale 768).
The voxel pitch (3 mm) is PILArNet's (arXiv:2006.01993).

Mapping to our products (producer names configurable):
``sparse3d_data`` summed energy per unique voxel; ``sparse3d_semantics`` our
class per voxel (:mod:`.larcv_shapes`; a voxel in several clusters takes the
class first in :data:`~mlreco_spice.columns.CLASS_PRECEDENCE`, then the larger
deposit; low-energy deposits -1 unless configured); ``cluster3d_pcluster``
one voxel set per group id (or fragment id) >= 0; ``particle_pcluster`` one
particle per set, from its primary fragment (fragment id == group id, else
the largest): PDG from PID, class, interaction id, deposited energy.
The format carries no initial energy, parent or start point we rely on:
``energy_init`` is 0, ``parent_id`` -1, ``start_cm`` NaN.
"""
from __future__ import annotations

import logging
from typing import List, Mapping, Optional, Sequence

import numpy as np

from mlreco_spice.columns import CLASS_PRECEDENCE, UNLABELED
from mlreco_spice.errors import BadEventError, DataError, UserError
from mlreco_spice.registry import READERS

from ..event import ClusterProduct, EventRecord, ImageMeta, Particle, SparseProduct, linear_index
from .base import Reader
from .handles import CachedHandles
from .larcv_shapes import DROP, ShapeMapping

__all__ = ["PilarnetMReader", "PID_TO_PDG", "POINT_COLUMNS", "CLUSTER_COLUMNS", "pid_of_pdg"]

log = logging.getLogger(__name__)

POINT_COLUMNS = 8
#: Column of each field in ``cluster`` rows (v1 has no ``pid``).
CLUSTER_COLUMNS = {"n_points": 0, "fragment": 1, "group": 2, "interaction": 3, "semantic": 4,
                   "pid": 5}
#: PILArNet-M PID code -> PDG code (pimm-data ``PILArNetH5Dataset`` PID names).
PID_TO_PDG = {0: 22, 1: 11, 2: 13, 3: 211, 4: 2212}
DEFAULT_PRODUCERS = {"data": "data", "semantics": "semantics", "cluster": "pcluster"}
# Rank of each class when several clusters share a voxel (lower wins; -1 last).
_RANK = np.full(8, len(CLASS_PRECEDENCE), dtype=np.int64)
_RANK[list(CLASS_PRECEDENCE)] = np.arange(len(CLASS_PRECEDENCE))


def _open_pilarnet_m(file: str):
    """Open a PILArNet-M file, checking it has ``point`` and ``cluster``."""
    import h5py

    try:
        handle = h5py.File(file, "r")
    except OSError as err:
        raise DataError(f"input file {file} is not a readable HDF5 file: {err}") from None
    missing = [k for k in ("point", "cluster") if k not in handle]
    if missing:
        keys = ", ".join(sorted(handle.keys())) or "(none)"
        handle.close()
        raise DataError(f"input file {file} is not PILArNet-M: no {'/'.join(missing)} "
                        f"dataset(s); it has {keys}")
    return handle


def _rank(classes: np.ndarray) -> np.ndarray:
    return np.where(classes >= 0, _RANK[np.clip(classes, 0, 7)], len(CLASS_PRECEDENCE))


@READERS.register("pilarnet_m")
class PilarnetMReader(CachedHandles, Reader):
    """Random access to PILArNet-M HDF5 files (layout in the module docstring).

    Parameters
    ----------
    files : sequence of str
        Expanded file list.
    products : sequence of str, optional
        Subset of the four products this reader makes (all when None).
    revision : {"auto", "v1", "v2", "v3"}
        ``auto``: v2/v3 when the file has ``cluster_extra``, else v1.
    instance : {"group", "fragment"}
        Which id defines an instance (``group`` merges shower fragments).
    grid_size : int
        Voxels per side (768).
    voxel_cm : float
        Voxel pitch in cm (0.3).
    producers : mapping, optional
        Producer names for ``data``, ``semantics``, ``cluster`` (defaults
        ``data``, ``semantics``, ``pcluster``; the particle table shares the
        cluster's).
    semantic_mapping : mapping, optional
        :meth:`ShapeMapping.from_options` keys (``low_energy: shower`` keeps
        low-energy deposits as Shower instead of ignoring them).
    """

    format_name = "pilarnet_m"
    native_classes = ("semantics", "particles")  # both made here from the shape codes

    _opener = staticmethod(_open_pilarnet_m)

    def __init__(self, files: Sequence[str], products: Optional[Sequence[str]] = None,
                 revision: str = "auto", instance: str = "group", grid_size: int = 768,
                 voxel_cm: float = 0.3, producers: Optional[Mapping[str, str]] = None,
                 semantic_mapping: Optional[Mapping] = None):
        super().__init__(files, products)
        if revision not in ("auto", "v1", "v2", "v3"):
            raise UserError(f"pilarnet_m revision '{revision}' unknown; use auto, v1, v2 or v3")
        if instance not in ("group", "fragment"):
            raise UserError(f"pilarnet_m instance '{instance}' unknown; use group or fragment")
        unknown = set(producers or {}) - set(DEFAULT_PRODUCERS)
        if unknown:
            raise UserError(f"pilarnet_m producers: unknown key(s) {sorted(unknown)}; "
                            f"valid: {sorted(DEFAULT_PRODUCERS)}")
        self.revision, self.instance = revision, instance
        self.meta = ImageMeta.cube(int(grid_size), float(voxel_cm) * 10.0)
        self.producers = {**DEFAULT_PRODUCERS, **dict(producers or {})}
        self.mapping = ShapeMapping.from_options(semantic_mapping)

    # -- files --------------------------------------------------------------
    def list_products(self, file: str) -> List[str]:
        self._open(file)
        return self._all_products()

    def _all_products(self) -> List[str]:
        p = self.producers
        return [f"sparse3d_{p['data']}", f"sparse3d_{p['semantics']}",
                f"cluster3d_{p['cluster']}", f"particle_{p['cluster']}"]

    def count_entries(self, file: str) -> int:
        handle = self._open(file)
        have = self._all_products()
        missing = [p for p in (self.products or []) if p not in have]
        if missing:
            raise DataError(f"{file}: product(s) {', '.join(missing)} not found; this "
                            f"PILArNet-M file gives {', '.join(have)}")
        counts = {k: len(handle[k]) for k in ("point", "cluster", "cluster_extra") if k in handle}
        if len(set(counts.values())) > 1:
            raise DataError(f"{file}: datasets have different event counts: "
                            + ", ".join(f"{k}={v}" for k, v in counts.items()))
        return counts["point"]

    def _cluster_width(self, handle) -> int:
        revision = self.revision
        if revision == "auto":
            revision = "v2" if "cluster_extra" in handle else "v1"
        return 5 if revision == "v1" else 6

    # -- events -------------------------------------------------------------
    def read_entry(self, file: str, entry: int) -> EventRecord:
        handle = self._open(file)
        if not 0 <= entry < len(handle["point"]):
            raise IndexError(f"{file}: entry {entry} out of range (0..{len(handle['point']) - 1})")
        try:
            point = np.asarray(handle["point"][entry], dtype=np.float64)
            cluster = np.asarray(handle["cluster"][entry], dtype=np.float64)
        except (OSError, ValueError) as err:
            raise BadEventError(file, entry, f"cannot read point/cluster: {err}") from None
        width = self._cluster_width(handle)
        try:
            return self._event(file, int(entry), point, cluster, width)
        except ValueError as err:
            raise BadEventError(file, entry, str(err)) from None

    def _event(self, file: str, entry: int, point: np.ndarray, cluster: np.ndarray,
               width: int) -> EventRecord:
        if point.size % POINT_COLUMNS or cluster.size % width:
            raise ValueError(f"point has {point.size} values and cluster {cluster.size}, not "
                             f"multiples of {POINT_COLUMNS} and {width} (wrong revision?)")
        point = point.reshape(-1, POINT_COLUMNS)
        cluster = cluster.reshape(-1, width)
        sizes = cluster[:, CLUSTER_COLUMNS["n_points"]].astype(np.int64)
        if np.any(sizes < 0) or sizes.sum() != len(point):
            raise ValueError(f"cluster sizes sum to {sizes.sum()} but there are {len(point)} "
                             f"points (wrong revision?)")
        size = self.meta.size
        coords = np.floor(point[:, :3]).astype(np.int64)
        if not np.all(self.meta.contains(coords)):
            raise ValueError(f"points outside the {size[0]}^3 grid")
        energy = point[:, 3]
        owner = np.repeat(np.arange(len(cluster)), sizes)
        pid = (cluster[:, CLUSTER_COLUMNS["pid"]].astype(np.int64) if width > 5
               else np.full(len(cluster), -1, np.int64))
        pdg = np.array([PID_TO_PDG.get(int(p), 0) for p in pid], dtype=np.int64)
        classes = self.mapping.classes(cluster[:, CLUSTER_COLUMNS["semantic"]], pdg)
        if self.mapping.low_energy == DROP:
            # Out of the input too, so training and inference see the same voxels.
            kept = classes[owner] != DROP
            coords, energy, owner = coords[kept], energy[kept], owner[kept]

        lin = linear_index(coords, size)
        voxels, inverse = np.unique(lin, return_inverse=True)
        vox_coords = np.stack(np.unravel_index(voxels, size), axis=1).astype(np.int64)
        data = np.bincount(inverse, weights=energy, minlength=len(voxels)).astype(np.float32)
        # Per voxel, the point with the best class rank, then the largest deposit.
        point_class = classes[owner]
        order = np.lexsort((-energy, _rank(point_class), inverse))
        first = np.ones(len(order), dtype=bool)
        first[1:] = inverse[order][1:] != inverse[order][:-1]
        semantics = np.empty(len(voxels), dtype=np.float32)
        semantics[inverse[order][first]] = point_class[order][first]

        record = EventRecord(event=entry, file=file, entry=entry)
        p = self.producers
        record.sparse3d[p["data"]] = SparseProduct(vox_coords, data, self.meta)
        record.sparse3d[p["semantics"]] = SparseProduct(vox_coords.copy(), semantics, self.meta)
        clusters, particles = self._instances(cluster, classes, pdg, owner, inverse, energy,
                                              vox_coords)
        record.cluster3d[p["cluster"]] = clusters
        record.particles[p["cluster"]] = particles
        if self.products is not None:
            self._drop_unrequested(record)
        return record

    def _instances(self, cluster: np.ndarray, classes: np.ndarray, pdg: np.ndarray,
                   owner: np.ndarray, inverse: np.ndarray, energy: np.ndarray,
                   vox_coords: np.ndarray):
        key = cluster[:, CLUSTER_COLUMNS[self.instance]].astype(np.int64)
        keys = np.unique(key[key >= 0])
        inst_of_cluster = np.full(len(cluster), -1, dtype=np.int64)
        inst_of_cluster[key >= 0] = np.searchsorted(keys, key[key >= 0])
        point_inst = inst_of_cluster[owner]
        keep = point_inst >= 0
        n_vox = max(len(vox_coords), 1)
        # One (instance, voxel) pair per row, summed; sorted by instance then voxel.
        pair, pair_inv = np.unique(point_inst[keep] * n_vox + inverse[keep], return_inverse=True)
        pair_energy = np.bincount(pair_inv, weights=energy[keep], minlength=len(pair))
        pair_inst, pair_vox = pair // n_vox, pair % n_vox
        bounds = np.searchsorted(pair_inst, np.arange(len(keys) + 1))
        meta = self.meta
        coords = [vox_coords[pair_vox[a:b]] for a, b in zip(bounds[:-1], bounds[1:])]
        values = [pair_energy[a:b].astype(np.float32) for a, b in zip(bounds[:-1], bounds[1:])]
        fragment = cluster[:, CLUSTER_COLUMNS["fragment"]].astype(np.int64)
        group = cluster[:, CLUSTER_COLUMNS["group"]].astype(np.int64)
        sizes = cluster[:, CLUSTER_COLUMNS["n_points"]]
        particles = []
        for i, k in enumerate(keys):
            members = np.flatnonzero(key == k)
            primary = members[fragment[members] == group[members]]
            rep = int(primary[0]) if len(primary) else int(members[np.argmax(sizes[members])])
            particles.append(Particle(
                id=i, pdg=int(pdg[rep]), semantic=int(classes[rep]),
                start_cm=(float("nan"),) * 3, energy_init=0.0, parent_id=-1,
                group_id=self._group_index(group[rep], keys, fragment, key),
                energy_deposit=float(values[i].sum()),
                interaction_id=int(cluster[rep, CLUSTER_COLUMNS["interaction"]])))
        return ClusterProduct(coords, values, meta), particles

    def _group_index(self, group_id: int, keys: np.ndarray, fragment: np.ndarray,
                     key: np.ndarray) -> int:
        """Instance index of a group's primary fragment (itself when instances are groups)."""
        if self.instance == "group":
            return int(np.searchsorted(keys, group_id))
        hit = np.flatnonzero((fragment == group_id) & (key >= 0))
        return int(np.searchsorted(keys, key[hit[0]])) if len(hit) else UNLABELED

    def _drop_unrequested(self, record: EventRecord) -> None:
        wanted = set(self.products or ())
        for kind, table in (("sparse3d", record.sparse3d), ("cluster3d", record.cluster3d),
                            ("particle", record.particles)):
            for producer in [k for k in table if f"{kind}_{k}" not in wanted]:
                del table[producer]


def pid_of_pdg(pdg: int) -> int:
    """Inverse of :data:`PID_TO_PDG` (-1 for particles outside the five species)."""
    for pid, code in PID_TO_PDG.items():
        if abs(int(pdg)) == code:
            return pid
    return -1

