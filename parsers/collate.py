"""Batching: parsed events -> torch tensors with a batch column, plus batch metadata.

Each event is a dict from :class:`parsers.dataset.SpiceDataset`: schema
outputs (numpy arrays ``[x, y, z, ...]``) and identity keys. The batch has,
per schema output, one tensor ``[batch_id, x, y, z, ...]`` (float32, batch
column at :data:`~mlreco_spice.columns.BATCH_COL`), and lists of the identity
keys in batch order. Skipped events are dropped and listed in
``batch["skipped"]``.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from mlreco_spice.columns import BATCH_COL

__all__ = ["SkippedEvent", "collate_events", "IDENTITY_KEYS"]

log = logging.getLogger(__name__)

#: Per-event keys that are metadata, not tensors; collated into lists.
IDENTITY_KEYS = ("index", "file", "entry", "run", "subrun", "event", "meta", "parse_stats")


@dataclass(frozen=True)
class SkippedEvent:
    """Marker a dataset returns instead of an event skipped by ``io.on_bad_event: skip``.

    It carries what a bare ``None`` cannot: where the event is and why it was
    skipped, so that the batch can record it (DataLoader workers cannot share
    state with the main process).
    """

    index: int
    file: str
    entry: int
    reason: str


def _with_batch_column(arrays: Sequence[np.ndarray]):
    import torch

    if BATCH_COL != 0:
        raise RuntimeError("collate assumes the batch column comes first")
    width = arrays[0].shape[1]
    for array in arrays:
        if array.ndim != 2 or array.shape[1] != width:
            raise ValueError(f"cannot batch arrays of shapes {[a.shape for a in arrays]}")
    total = sum(len(a) for a in arrays)
    out = np.empty((total, width + 1), dtype=np.float32)
    start = 0
    for batch_id, array in enumerate(arrays):
        out[start:start + len(array), BATCH_COL] = batch_id
        out[start:start + len(array), BATCH_COL + 1:] = array
        start += len(array)
    return torch.from_numpy(out)


def collate_events(events: Sequence[Union[Dict[str, Any], SkippedEvent, None]]) -> Dict[str, Any]:
    """Batch parsed events.

    Parameters
    ----------
    events : sequence of dict, SkippedEvent or None
        Dataset items. ``SkippedEvent`` and ``None`` items are dropped; the
        former are listed in ``batch["skipped"]`` and logged as warnings.

    Returns
    -------
    dict
        ``<schema name>``: float32 tensor ``(sum N_i, 1 + C)`` whose first
        column is the event's position in the batch; ``file``, ``entry``,
        ``run``, ``subrun``, ``event``, ``meta``, ``index``, ``parse_stats``:
        lists in batch order; ``skipped``: list of ``{index, file, entry,
        reason}``; ``batch_size``: number of events kept (0 when all were
        skipped, then no tensors are present).
    """
    kept: List[Dict[str, Any]] = []
    skipped: List[Dict[str, Any]] = []
    for item in events:
        if isinstance(item, SkippedEvent):
            log.warning("skipped bad event %s entry %d: %s", item.file, item.entry, item.reason)
            skipped.append(asdict(item))
        elif item is not None:
            kept.append(item)
    batch: Dict[str, Any] = {"batch_size": len(kept), "skipped": skipped}
    if not kept:
        return batch
    for key in IDENTITY_KEYS:
        batch[key] = [event.get(key) for event in kept]
    for key in kept[0]:
        if key not in IDENTITY_KEYS:
            batch[key] = _with_batch_column([event[key] for event in kept])
    return batch


def batch_stat(batch: Dict[str, Any], schema_name: str, stat: str) -> Optional[int]:
    """Sum of one parse statistic over a batch (e.g. ``dropped_cluster_voxels``), None if absent."""
    values = [s.get(schema_name, {}).get(stat) for s in batch.get("parse_stats", [])]
    values = [v for v in values if v is not None]
    return int(sum(values)) if values else None


__all__.append("batch_stat")
