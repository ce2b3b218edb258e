"""Event sanity checks run before parsing; a failed check is a :class:`BadEventError`.

The dataset calls :func:`check_event` on every record and, per
``io.on_bad_event``, raises or skips (and records) the event.
"""
from __future__ import annotations

from typing import Iterable, List, Optional

import numpy as np

from mlreco_spice.columns import NUM_CLASSES
from mlreco_spice.errors import BadEventError

from .event import EventRecord, ImageMeta, linear_index
from .sparse import producer_name

__all__ = ["check_event", "event_problems", "default_semantic_products"]


def default_semantic_products(record: EventRecord) -> List[str]:
    """Sparse3d producers holding semantic classes: those whose name contains ``sem``."""
    return [name for name in record.sparse3d if "sem" in name.lower()]


def _voxel_problems(name: str, coords: np.ndarray, meta: ImageMeta,
                    groups: Optional[np.ndarray] = None) -> List[str]:
    """Voxels outside the image, or repeated (within one group, e.g. one instance)."""
    coords = np.asarray(coords).reshape(-1, 3)
    if not len(coords):
        return []
    # min/max first: much cheaper than a per-voxel mask when everything is inside.
    if coords.min() < 0 or np.any(coords.max(axis=0) >= np.asarray(meta.size)):
        bad = coords[~meta.contains(coords)][0]
        return [f"'{name}' has voxels outside the image {tuple(meta.size)}, "
                f"e.g. {tuple(int(v) for v in bad)}"]
    key = linear_index(coords, meta.size)
    if groups is not None:
        key = groups * int(np.prod(meta.size, dtype=np.int64)) + key
    if np.all(np.diff(key) > 0):  # canonical order (what readers deliver): no sort needed
        return []
    key = np.sort(key)
    n_dup = int(np.count_nonzero(key[1:] == key[:-1]))
    return [f"'{name}' has {n_dup} duplicated voxels"] if n_dup else []


def _value_problems(name: str, values: np.ndarray, semantic: bool) -> List[str]:
    values = np.asarray(values).ravel()
    if not len(values):
        return []
    if not np.all(np.isfinite(values)):
        return [f"'{name}' has {int(np.count_nonzero(~np.isfinite(values)))} NaN/inf values"]
    if semantic:
        bad = (values < 0) | (values >= NUM_CLASSES) | (values != np.rint(values))
        if np.any(bad):
            return [f"'{name}' has semantic values outside 0-{NUM_CLASSES - 1}, "
                    f"e.g. {float(values[bad][0])}"]
    elif np.any(values < 0):
        return [f"'{name}' has {int(np.count_nonzero(values < 0))} negative energies "
                f"(min {float(values.min())})"]
    return []


def event_problems(record: EventRecord, max_voxels: Optional[int] = None,
                   semantic_products: Optional[Iterable[str]] = None) -> List[str]:
    """Everything wrong with ``record``, in words (empty when it is fine).

    Parameters
    ----------
    record : EventRecord
        The event.
    max_voxels : int, optional
        Largest accepted number of voxels in one sparse3d product.
    semantic_products : iterable of str, optional
        Sparse3d products holding semantic classes (values must be integers
        0-4); others hold energies (must be >= 0). Default:
        :func:`default_semantic_products`.
    """
    if semantic_products is None:
        semantic = set(default_semantic_products(record))
    else:
        semantic = {producer_name(n, "sparse3d") for n in semantic_products}
    problems: List[str] = []
    for key, prod in record.sparse3d.items():
        name = f"sparse3d_{key}"
        if len(prod.coords) != len(prod.values):
            problems.append(f"'{name}' has {len(prod.coords)} voxels but {len(prod.values)} values")
            continue
        if max_voxels is not None and len(prod.coords) > max_voxels:
            problems.append(f"'{name}' has {len(prod.coords)} voxels, more than "
                            f"io.max_voxels={max_voxels}")
        problems += _voxel_problems(name, prod.coords, prod.meta)
        problems += _value_problems(name, prod.values, key in semantic)
    for key, prod in record.cluster3d.items():
        name = f"cluster3d_{key}"
        if not len(prod):
            continue
        sizes = [len(c) for c in prod.coords]
        if sizes != [len(v) for v in prod.values]:
            problems.append(f"'{name}' voxel sets and value sets differ in length")
            continue
        # All instances at once; duplicates only count within one instance.
        groups = np.repeat(np.arange(len(sizes), dtype=np.int64), sizes)
        coords = np.concatenate([np.asarray(c).reshape(-1, 3) for c in prod.coords])
        problems += _voxel_problems(name, coords, prod.meta, groups)
        problems += _value_problems(name, np.concatenate([np.ravel(v) for v in prod.values]),
                                    semantic=False)
    metas = [(f"sparse3d_{k}", p.meta) for k, p in record.sparse3d.items()]
    metas += [(f"cluster3d_{k}", p.meta) for k, p in record.cluster3d.items()]
    for name, meta in metas[1:]:
        if not metas[0][1].same_grid(meta):
            problems.append(f"meta mismatch: '{metas[0][0]}' is {metas[0][1]} but "
                            f"'{name}' is {meta}")
    return problems


def check_event(record: EventRecord, max_voxels: Optional[int] = None,
                semantic_products: Optional[Iterable[str]] = None) -> None:
    """Raise :class:`BadEventError` naming the file, entry and problems if ``record`` is unusable.

    Detects NaN/inf values, negative energies, duplicated voxels, voxels
    outside the image, semantic values outside 0-4, products on different
    grids (e.g. cluster vs data) and events above ``max_voxels``. See
    :func:`event_problems` for the parameters.
    """
    problems = event_problems(record, max_voxels, semantic_products)
    if problems:
        raise BadEventError(record.file or "<memory>", record.entry, "; ".join(problems))
