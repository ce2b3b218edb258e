"""The ``sparse3d`` parser: one or more sparse3d products -> ``[x, y, z, f0, f1, ...]``.

Also holds product lookup by schema name (``sparse3d_data`` or bare ``data``),
shared with :mod:`parsers.cluster`.

Schema example::

    data:      {parser: sparse3d, products: [sparse3d_data]}
    seg_label: {parser: sparse3d, products: [sparse3d_semantics]}
"""
from __future__ import annotations

import logging
from typing import Dict, List, Optional, Sequence, Union

import numpy as np

from mlreco_spice.columns import PARSER_COORD_COLS, PARSER_FEATURE_START
from mlreco_spice.errors import BadEventError, DataError
from mlreco_spice.registry import PARSERS

from .event import ClusterProduct, EventRecord, ImageMeta, Particle, SparseProduct, linear_index

__all__ = ["parse_sparse3d", "get_sparse", "get_cluster", "get_particles", "producer_name",
           "union_voxels"]

log = logging.getLogger(__name__)


def producer_name(name: str, kind: str) -> str:
    """``sparse3d_data`` -> ``data`` for ``kind="sparse3d"``; a bare ``data`` stays ``data``."""
    prefix = f"{kind}_"
    return name[len(prefix):] if name.startswith(prefix) else name


def _lookup(record: EventRecord, table: Dict, name: str, kind: str):
    key = producer_name(str(name), kind)
    if key not in table:
        raise DataError(f"{record.where()}: product '{name}' not found; the event has "
                        f"{', '.join(record.products()) or '(no products)'}")
    return table[key]


def get_sparse(record: EventRecord, name: str) -> SparseProduct:
    """The sparse3d product ``name`` of ``record`` (DataError listing products if absent)."""
    return _lookup(record, record.sparse3d, name, "sparse3d")


def get_cluster(record: EventRecord, name: str) -> ClusterProduct:
    """The cluster3d product ``name`` of ``record`` (DataError listing products if absent)."""
    return _lookup(record, record.cluster3d, name, "cluster3d")


def get_particles(record: EventRecord, name: str) -> List[Particle]:
    """The particle table ``name`` of ``record`` (DataError listing products if absent)."""
    return _lookup(record, record.particles, name, "particle")


def check_same_grid(record: EventRecord, metas: Sequence[ImageMeta], names: Sequence[str]) -> None:
    """Raise :class:`BadEventError` unless every meta describes the same grid as the first."""
    for meta, name in zip(metas[1:], names[1:]):
        if not metas[0].same_grid(meta):
            raise BadEventError(record.file, record.entry,
                                f"meta mismatch: '{names[0]}' has {metas[0]} but '{name}' "
                                f"has {meta}")


def union_voxels(coords_list: Sequence[np.ndarray], size: Sequence[int]) -> tuple:
    """Sorted unique linear indices of the union of voxel sets, and each set's rows in it.

    Returns
    -------
    union : ndarray of int64
        Canonical-order linear indices of every voxel in any set.
    positions : list of ndarray of int64
        For each input set, the row of each of its voxels in ``union``.
    """
    linear = [linear_index(c, size) if len(c) else np.zeros(0, np.int64) for c in coords_list]
    union = np.unique(np.concatenate(linear)) if linear else np.zeros(0, np.int64)
    return union, [np.searchsorted(union, lin) for lin in linear]


def unravel(linear: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """C-order linear indices -> voxel coordinates (N, 3) int64 (inverse of linear_index)."""
    return np.stack(np.unravel_index(linear, tuple(int(s) for s in size)), axis=1).astype(np.int64)


@PARSERS.register("sparse3d")
def parse_sparse3d(record: EventRecord, products: Union[str, Sequence[str]],
                   stats: Optional[dict] = None) -> np.ndarray:
    """Sparse3d products -> one array ``(N, 3 + C)`` on the union of their voxels.

    Parameters
    ----------
    record : EventRecord
        The event.
    products : str or list of str
        Product names (``sparse3d_data`` or ``data``); one feature column each,
        in this order.
    stats : dict, optional
        Receives ``n_voxels`` (rows of the output).

    Returns
    -------
    ndarray of float32, shape (N, 3 + C)
        ``[x, y, z, f0, f1, ...]`` in canonical voxel order. A voxel absent
        from one product has 0 in that product's column.

    Raises
    ------
    DataError
        A product is missing (the message lists the event's products).
    BadEventError
        The products do not share one grid.
    """
    names = [products] if isinstance(products, str) else list(products)
    if not names:
        raise DataError("sparse3d parser: 'products' must name at least one sparse3d product")
    prods = [get_sparse(record, n) for n in names]
    check_same_grid(record, [p.meta for p in prods], names)
    size = prods[0].meta.size
    if len(prods) == 1:
        # Fast path: readers already deliver canonical order without duplicates.
        coords = np.asarray(prods[0].coords, dtype=np.int64).reshape(-1, 3)
        out = np.empty((len(coords), PARSER_FEATURE_START + 1), dtype=np.float32)
        out[:, list(PARSER_COORD_COLS)] = coords
        out[:, PARSER_FEATURE_START] = prods[0].values
        lin = linear_index(coords, size)
        if np.any(np.diff(lin) < 0):  # hand-built records may be unsorted
            out = out[np.argsort(lin, kind="stable")]
    else:
        union, positions = union_voxels([np.asarray(p.coords).reshape(-1, 3) for p in prods], size)
        out = np.zeros((len(union), PARSER_FEATURE_START + len(prods)), dtype=np.float32)
        out[:, list(PARSER_COORD_COLS)] = unravel(union, size)
        for k, (prod, pos) in enumerate(zip(prods, positions)):
            out[pos, PARSER_FEATURE_START + k] = prod.values
    if stats is not None:
        stats["n_voxels"] = len(out)
    return out
