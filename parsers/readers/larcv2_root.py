"""larcv2 ROOT files (the PILArNet dataset), read with uproot: no compiled ROOT needed.

Layout (larcv2 ``IOManager::register_producer``): each product is a TTree
``<type>_<producer>_tree`` with one branch ``<type>_<producer>_branch`` holding
an ``EventBase``-derived object, split by ROOT into one leaf per member.
Product ``sparse3d_fivetypes`` is tree ``sparse3d_fivetypes_tree``.

Members read, by leaf member path, and their source (DeepLearnPhysics/larcv2,
``larcv/core/DataFormat/``):

===========================  ============================  ==================================
leaf                         C++ member                    header
===========================  ============================  ==================================
``_run _subrun _event``      ``size_t`` each               ``EventBase.h`` (base of all)
``_voxel_v._id``             ``VoxelID_t`` (u8)            ``Voxel.h`` ``Voxel::_id`` in
                                                           ``VoxelSet::_voxel_v``
``_voxel_v._value``          ``float``                     ``Voxel.h`` ``Voxel::_value``
``_voxel_vv._id``            ``InstanceID_t``              ``Voxel.h`` ``VoxelSet::_id`` in
                                                           ``VoxelSetArray::_voxel_vv``
``_voxel_vv._voxel_v``       ``vector<Voxel>``, member-    decoded by :mod:`.root_cluster`
                             wise: uproot cannot
``_meta._xnum _ynum _znum``  ``size_t``                    ``Voxel3DMeta.h``
``_meta._xlen _ylen _zlen``  ``double`` voxel size [cm]    ``Voxel3DMeta.h``
``_meta._p1.x .y .z``        ``double`` lower corner       ``BBox.h`` ``BBox3D::_p1``
                                                           (base of ``Voxel3DMeta``)
``_meta._p2.x .y .z``        ``double`` upper corner       ``BBox.h`` ``BBox3D::_p2``
``_meta._xmin _xmax ...``    ``double``, older layout      ``Voxel3DMeta.h`` before the
                             (no BBox3D base)              BBox3D base (commit 1133f63)
``_part_v._pdg``             ``int``                       ``Particle.h``
``_part_v._shape``           ``ShapeType_t`` (int)         ``Particle.h``, ``DataFormatTypes.h``
``_part_v._vtx._x _y _z``    ``double`` start [cm]         ``Particle.h`` / ``Vertex.h``
``_part_v._energy_init``     ``double`` [MeV]              ``Particle.h``
``_part_v._energy_deposit``  ``double`` [MeV]              ``Particle.h``
``_part_v._trackid``         ``unsigned int``              ``Particle.h``
``_part_v._parent_trackid``  ``unsigned int``              ``Particle.h``
===========================  ============================  ==================================

Meta members are looked up by name, defensively: the BBox3D layout
(``_p1``/``_p2``) or the older ``_xmin``/``_xmax`` one; voxel sizes fall back
to extent / count. Voxel ids are ``z * Nx * Ny + y * Nx + x``
(``Voxel3DMeta::ID``), converted to our (x, y, z) and canonical order.

A particle's ``id`` is its index, which is its cluster's index in the
``cluster3d`` product of the same producer (PILArNet: ``cluster3d_mcst`` and
``particle_mcst``). ``group_id`` equals ``id`` (larcv2's ``Particle`` of the
sources consulted has no group member; PILArNet's ``mcst`` clusters are whole
MCShower/MCTrack objects); ``interaction_id`` is -1; ``parent_id`` is the index
of the particle whose ``_trackid`` equals this one's ``_parent_trackid``.
The semantic class comes from ``_shape`` and ``_pdg`` (:mod:`.larcv_shapes`).
"""
from __future__ import annotations

import logging
import re
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np

from mlreco_spice.errors import BadEventError, DataError
from mlreco_spice.registry import READERS

from ..event import ClusterProduct, EventRecord, ImageMeta, Particle, SparseProduct, sort_voxels
from .base import Reader
from .handles import CachedHandles
from .larcv_shapes import ShapeMapping
from .root_branches import LeafCache, RawEntryCache, find_member, leaf_index
from .root_cluster import decode_voxel_sets, voxel_member_dtypes

__all__ = ["Larcv2RootReader", "larcv2_ids_to_coords"]

log = logging.getLogger(__name__)

SUPPORTED_TYPES = ("sparse3d", "cluster3d", "particle")
_TREE_RE = re.compile(r"^([A-Za-z0-9]+)_(.+)_tree$")
_PARTICLE_FIELDS = ("_pdg", "_shape", "_vtx._x", "_vtx._y", "_vtx._z", "_energy_init",
                    "_energy_deposit", "_trackid", "_parent_trackid")


def larcv2_ids_to_coords(ids: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """larcv2 voxel ids (``z*Nx*Ny + y*Nx + x``) -> (N, 3) int64 (x, y, z).

    Raises
    ------
    ValueError
        An id is outside the grid.
    """
    nx, ny, nz = (int(s) for s in size)
    ids = np.asarray(ids, dtype=np.uint64)
    if ids.size and int(ids.max()) >= nx * ny * nz:
        raise ValueError(f"voxel id {int(ids.max())} outside the {nx}x{ny}x{nz} grid")
    ids = ids.astype(np.int64)
    plane = nx * ny
    return np.stack([ids % nx, (ids % plane) // nx, ids // plane], axis=1)


def _meta_from(values: Mapping[str, float]) -> ImageMeta:
    """ImageMeta from meta members by name (either larcv2 layout)."""
    size = tuple(int(values[f"_{a}num"]) for a in "xyz")
    if all(f"_p1.{a}" in values for a in "xyz"):
        lower = [float(values[f"_p1.{a}"]) for a in "xyz"]
        upper = [float(values.get(f"_p2.{a}", np.nan)) for a in "xyz"]
    else:
        lower = [float(values[f"_{a}min"]) for a in "xyz"]
        upper = [float(values.get(f"_{a}max", np.nan)) for a in "xyz"]
    lengths = [float(values[f"_{a}len"]) if f"_{a}len" in values else (hi - lo) / n
               for a, lo, hi, n in zip("xyz", lower, upper, size)]
    return ImageMeta(size, tuple(lengths), tuple(lower))


class _Product:
    """One product tree of one file: leaves by member path, cached per basket."""

    _META_MEMBERS = ("_xnum", "_ynum", "_znum", "_xlen", "_ylen", "_zlen", "_p1.x", "_p1.y",
                     "_p1.z", "_p2.x", "_p2.y", "_p2.z", "_xmin", "_ymin", "_zmin", "_xmax",
                     "_ymax", "_zmax")

    def __init__(self, file: str, name: str, tree):
        self.file, self.name, self.tree = file, name, tree
        self.kind = name.split("_", 1)[0]
        self.index = leaf_index(tree)
        self._leaves: Dict[str, LeafCache] = {}
        self._raw: Dict[str, RawEntryCache] = {}
        self._meta: Optional[Dict[str, np.ndarray]] = None

    def has(self, member: str) -> bool:
        return find_member(self.index, member) is not None

    def leaf(self, member: str) -> LeafCache:
        if member not in self._leaves:
            key = find_member(self.index, member)
            if key is None:
                raise DataError(f"{self.file}: product '{self.name}' has no member '{member}' "
                                f"(its leaves: {', '.join(sorted(self.index))})")
            self._leaves[member] = LeafCache(self.tree[key])
        return self._leaves[member]

    def raw(self, member: str) -> RawEntryCache:
        """Raw entry bytes of a leaf uproot cannot interpret."""
        if member not in self._raw:
            key = find_member(self.index, member)
            if key is None:
                raise DataError(f"{self.file}: product '{self.name}' has no member '{member}'")
            self._raw[member] = RawEntryCache(self.tree[key])
        return self._raw[member]

    def meta(self, entry: int) -> ImageMeta:
        if self._meta is None:
            # Meta leaves are one scalar per entry: read the whole file once.
            self._meta = {}
            for member in self._META_MEMBERS:
                key = find_member(self.index, "_meta." + member)
                if key is not None:
                    self._meta[member] = self.tree[key].array(library="np")
        try:
            return _meta_from({k: v[entry] for k, v in self._meta.items()})
        except KeyError as err:
            raise DataError(f"{self.file}: product '{self.name}' lacks meta member {err}; "
                            f"meta members found: {', '.join(sorted(self._meta)) or '(none)'}"
                            ) from None


class _Larcv2File:
    """An open larcv2 file: its product trees, opened lazily."""

    def __init__(self, path: str):
        import uproot

        self.path = path
        try:
            self.root = uproot.open(path)
            tree_names = self.root.keys(filter_classname="TTree", cycle=False)
        except Exception as err:  # uproot raises many types for a bad file
            raise DataError(f"input file {path} is not a readable ROOT file "
                            f"({type(err).__name__}: {err})") from None
        self.trees = {f"{m.group(1)}_{m.group(2)}": name for name in tree_names
                      if (m := _TREE_RE.match(name))}
        if not self.trees:
            raise DataError(f"input file {path} holds no larcv2 product trees "
                            f"(<type>_<producer>_tree); its keys: "
                            f"{', '.join(self.root.keys(cycle=False)) or '(none)'}")
        self._products: Dict[str, _Product] = {}
        self._voxel_types = None

    def product(self, name: str) -> _Product:
        if name not in self._products:
            if name not in self.trees:
                raise DataError(f"{self.path}: product '{name}' not found; the file has "
                                f"{', '.join(sorted(self.trees))}")
            self._products[name] = _Product(self.path, name, self.root[self.trees[name]])
        return self._products[name]

    def voxel_types(self):
        """(dtypes, checksum) of ``larcv::Voxel`` from the file's streamers."""
        if self._voxel_types is None:
            try:
                streamer = self.root.file.streamer_named("larcv::Voxel")
            except Exception:  # no streamer record: fall back to larcv2's header
                streamer = None
            self._voxel_types = voxel_member_dtypes(streamer)
        return self._voxel_types

    def close(self) -> None:
        self.root.close()


@READERS.register("larcv2")
class Larcv2RootReader(CachedHandles, Reader):
    """Random access to larcv2 ROOT files (see the module docstring for the layout).

    Parameters
    ----------
    files : sequence of str
        Expanded file list.
    products : sequence of str, optional
        Products to read (``sparse3d_data``, ``cluster3d_mcst``, ...); all
        ``sparse3d``/``cluster3d``/``particle`` products when None.
    semantic_mapping : mapping, optional
        :meth:`ShapeMapping.from_options` keys, for particle classes.
    """

    format_name = "larcv2"
    native_classes = ("particles",)  # particle shapes are mapped here (PDG known)

    _opener = staticmethod(_Larcv2File)

    def __init__(self, files: Sequence[str], products: Optional[Sequence[str]] = None,
                 semantic_mapping: Optional[Mapping] = None):
        super().__init__(files, products)
        self.mapping = ShapeMapping.from_options(semantic_mapping)
        self._warned_ids: set = set()

    # -- files --------------------------------------------------------------
    def list_products(self, file: str) -> List[str]:
        return sorted(self._open(file).trees)

    def _wanted(self, handle: _Larcv2File) -> List[str]:
        if self.products is not None:
            return list(self.products)
        return sorted(n for n in handle.trees if n.split("_", 1)[0] in SUPPORTED_TYPES)

    def count_entries(self, file: str) -> int:
        handle = self._open(file)
        wanted = self._wanted(handle)
        if not wanted:
            raise DataError(f"{file}: no sparse3d/cluster3d/particle products; the file has "
                            f"{', '.join(sorted(handle.trees))}")
        counts = {}
        for name in wanted:
            kind = name.split("_", 1)[0]
            if kind not in SUPPORTED_TYPES:
                raise DataError(f"{file}: product '{name}' has type '{kind}', which this reader "
                                f"does not read (supported: {', '.join(SUPPORTED_TYPES)})")
            counts[name] = int(handle.product(name).tree.num_entries)
        if len(set(counts.values())) > 1:
            raise DataError(f"{file}: product trees have different entry counts: "
                            + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
        return next(iter(counts.values()))

    # -- events -------------------------------------------------------------
    def read_entry(self, file: str, entry: int) -> EventRecord:
        handle = self._open(file)
        record = EventRecord(file=file, entry=int(entry))
        for i, name in enumerate(self._wanted(handle)):
            product = handle.product(name)
            if not 0 <= entry < product.tree.num_entries:
                raise IndexError(f"{file}: entry {entry} out of range "
                                 f"(0..{product.tree.num_entries - 1})")
            producer = name.split("_", 1)[1]
            try:
                if product.kind == "sparse3d":
                    record.sparse3d[producer] = self._sparse(product, entry)
                elif product.kind == "cluster3d":
                    record.cluster3d[producer] = self._cluster(handle, product, entry)
                else:
                    record.particles[producer] = self._particles(product, entry)
                if i == 0:
                    record.run, record.subrun, record.event = (
                        int(product.leaf(m).get(entry)) for m in ("_run", "_subrun", "_event"))
            except DataError:
                raise
            except Exception as err:  # uproot/zlib raise many types on corrupt baskets
                raise BadEventError(file, entry, f"product '{name}': "
                                    f"{type(err).__name__}: {err}") from None
        return record

    @staticmethod
    def _voxels(ids: np.ndarray, values: np.ndarray, meta: ImageMeta):
        coords = larcv2_ids_to_coords(ids, meta.size)
        order = sort_voxels(coords, meta.size)
        return coords[order], np.asarray(values, dtype=np.float32)[order]

    def _sparse(self, product: _Product, entry: int) -> SparseProduct:
        meta = product.meta(entry)
        ids = product.leaf("_voxel_v._id").get(entry)
        values = product.leaf("_voxel_v._value").get(entry)
        if len(ids) != len(values):
            raise ValueError(f"{len(ids)} voxel ids but {len(values)} values")
        coords, values = self._voxels(ids, values, meta)
        return SparseProduct(coords, values, meta)

    def _cluster(self, handle: _Larcv2File, product: _Product, entry: int) -> ClusterProduct:
        meta = product.meta(entry)
        set_ids = np.asarray(product.leaf("_voxel_vv._id").get(entry))
        dtypes, checksum = handle.voxel_types()
        sets = decode_voxel_sets(product.raw("_voxel_vv._voxel_v").get(entry), len(set_ids),
                                 dtypes, checksum)
        if np.any(set_ids != np.arange(len(set_ids))) and handle.path not in self._warned_ids:
            # larcv2 VoxelSetArray indexes sets by position; ids should equal it.
            self._warned_ids.add(handle.path)
            log.warning("%s: cluster product '%s' has VoxelSet ids that differ from their "
                        "positions; using positions as instance ids", handle.path, product.name)
        coords, values = [], []
        for ids, vals in sets:
            c, v = self._voxels(ids, vals, meta)
            coords.append(c)
            values.append(v)
        return ClusterProduct(coords, values, meta)

    def _particles(self, product: _Product, entry: int) -> List[Particle]:
        columns = {m: (np.asarray(product.leaf("_part_v." + m).get(entry))
                       if product.has("_part_v." + m) else None) for m in _PARTICLE_FIELDS}
        if columns["_pdg"] is None:
            raise DataError(f"{product.file}: particle product '{product.name}' has no "
                            f"_part_v._pdg leaf")
        n = len(columns["_pdg"])
        # larcv2 defaults for absent members: kShapeUnknown, no track ids, zeros.
        defaults = {"_shape": 6, "_trackid": -1, "_parent_trackid": -2}
        cols = {m: (v if v is not None else np.full(n, defaults.get(m, 0)))
                for m, v in columns.items()}
        classes = self.mapping.classes(cols["_shape"], cols["_pdg"])
        index_of = {int(t): i for i, t in enumerate(cols["_trackid"].astype(np.int64))}
        parents = [index_of.get(int(t), -1) for t in cols["_parent_trackid"].astype(np.int64)]
        start = np.stack([cols["_vtx._x"], cols["_vtx._y"], cols["_vtx._z"]], axis=1)
        out = [Particle(id=i, pdg=int(cols["_pdg"][i]), semantic=int(classes[i]),
                        start_cm=tuple(float(v) for v in start[i]),
                        energy_init=float(cols["_energy_init"][i]), parent_id=parents[i],
                        group_id=i, energy_deposit=float(cols["_energy_deposit"][i]),
                        interaction_id=-1)
               for i in range(n)]
        return out
