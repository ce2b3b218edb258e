"""Per-class instance and voxel statistics of events, compared with the paper's Table I.

Counting rules:

* an instance counts for the class holding most of its voxels in the
  semantics product (only its voxels present in the data count; ties go to
  the class first in :data:`~mlreco_spice.columns.CLASS_PRECEDENCE`);
  instances with no data voxel are not counted;
* mean instances per event are over the events that contain the class;
* mean voxels per event (voxels of the semantics product with that class)
  are over all events.
"""
from __future__ import annotations

import logging
from typing import Dict, Iterable, Sequence

import numpy as np

from mlreco_spice.columns import CLASS_NAMES, NUM_CLASSES, UNLABELED
from parsers.cluster import instance_classes
from parsers.event import EventRecord, linear_index

__all__ = ["PAPER_TABLE1", "event_statistics", "format_stats_table", "print_file_stats"]

log = logging.getLogger(__name__)

_TEST_EVENTS = 19_900
#: Koh et al. 2020, Table I (test set of 19,900 events): mean instances per event
#: in events containing the class, and pixel count per event (total / events).
PAPER_TABLE1: Dict[str, Dict[str, float]] = {
    "HIP": {"instances": 4, "voxels": 32.1e6 / _TEST_EVENTS},
    "MIP": {"instances": 5, "voxels": 122e6 / _TEST_EVENTS},
    "Shower": {"instances": 8, "voxels": 193e6 / _TEST_EVENTS},
    "Delta": {"instances": 4, "voxels": 3.94e6 / _TEST_EVENTS},
    "Michel": {"instances": 2, "voxels": 2.29e6 / _TEST_EVENTS},
}


def _event_counts(record: EventRecord, semantics: str, cluster: str) -> tuple:
    """(instances per class, voxels per class) of one event."""
    sem = record.sparse3d[semantics]
    size = sem.meta.size
    vox_linear = linear_index(sem.coords, size)
    order = np.argsort(vox_linear, kind="stable")
    vox_linear, vox_class = vox_linear[order], sem.values[order].astype(np.int64)
    voxels = np.bincount(vox_class[(vox_class >= 0) & (vox_class < NUM_CLASSES)],
                         minlength=NUM_CLASSES)
    sets = record.cluster3d[cluster]
    if len(sets) == 0 or vox_linear.size == 0:
        return np.zeros(NUM_CLASSES, np.int64), voxels
    lengths = np.array([len(c) for c in sets.coords], dtype=np.int64)
    inst = np.repeat(np.arange(len(sets), dtype=np.int64), lengths)
    member = linear_index(np.concatenate(sets.coords), size)
    pos = np.clip(np.searchsorted(vox_linear, member), 0, vox_linear.size - 1)
    present = vox_linear[pos] == member
    classes = instance_classes(inst[present], vox_class[pos[present]], len(sets))
    counted = classes[classes != UNLABELED]
    return np.bincount(counted, minlength=NUM_CLASSES), voxels


def event_statistics(records: Iterable[EventRecord], semantics: str = "semantics",
                     cluster: str = "pcluster") -> Dict:
    """Table I statistics of events (see module docstring for the counting rules).

    Parameters
    ----------
    records : iterable of EventRecord
        Events with a semantics sparse3d product and a cluster3d product.
    semantics, cluster : str
        Producer names of those products.

    Returns
    -------
    dict
        ``{"events": N, "classes": {name: {"events_with", "instances_mean",
        "instances_std", "voxels_mean"}}}``.
    """
    inst_rows, vox_rows = [], []
    for record in records:
        for name, kind in ((semantics, record.sparse3d), (cluster, record.cluster3d)):
            if name not in kind:
                raise KeyError(f"event {record.where()} has no product '{name}'; "
                               f"it has {', '.join(record.products())}")
        instances, voxels = _event_counts(record, semantics, cluster)
        inst_rows.append(instances)
        vox_rows.append(voxels)
    if not inst_rows:
        raise ValueError("no events to compute statistics on")
    inst, vox = np.array(inst_rows), np.array(vox_rows)
    classes = {}
    for c, name in enumerate(CLASS_NAMES):
        with_class = inst[:, c] > 0
        values = inst[with_class, c]
        classes[name] = {
            "events_with": int(with_class.sum()),
            "instances_mean": float(values.mean()) if values.size else 0.0,
            "instances_std": float(values.std()) if values.size else 0.0,
            "voxels_mean": float(vox[:, c].mean()),
        }
    return {"events": int(len(inst_rows)), "classes": classes}


def format_stats_table(stats: Dict) -> str:
    """Text table of :func:`event_statistics` next to the paper's Table I and the ratios."""
    lines = [f"{stats['events']} events",
             f"{'class':<8}{'events':>8}{'inst/ev':>9}{'paper':>7}{'ratio':>7}"
             f"{'voxels/ev':>11}{'paper':>8}{'ratio':>7}"]
    for name in CLASS_NAMES:
        row, ref = stats["classes"][name], PAPER_TABLE1[name]
        inst_ratio = row["instances_mean"] / ref["instances"]
        vox_ratio = row["voxels_mean"] / ref["voxels"]
        lines.append(f"{name:<8}{row['events_with']:>8}{row['instances_mean']:>9.2f}"
                     f"{ref['instances']:>7.0f}{inst_ratio:>7.2f}{row['voxels_mean']:>11.0f}"
                     f"{ref['voxels']:>8.0f}{vox_ratio:>7.2f}")
    lines.append("inst/ev: mean instances per event containing the class; voxels/ev: mean over "
                 "all events; paper: Koh et al. 2020 Table I")
    return "\n".join(lines)


def print_file_stats(path: str, products: Sequence[str] = ("sparse3d_semantics",
                                                            "cluster3d_pcluster")) -> None:
    """Print the Table I statistics of a larcv file (any format the readers know)."""
    from parsers.readers import open_reader

    semantics, cluster = (p.split("_", 1)[1] for p in products)
    reader = open_reader(path, products=list(products))
    try:
        stats = event_statistics((reader[i] for i in range(len(reader))), semantics, cluster)
    finally:
        reader.close()
    print(format_stats_table(stats))
