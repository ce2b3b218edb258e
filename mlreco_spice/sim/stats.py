"""Per-class statistics of events: the paper's Table I and the morphology of real data.

Counting rules:

* an instance counts for the class holding most of its voxels in the
  semantics product (only its voxels present in the data count; ties go to
  the class first in :data:`~mlreco_spice.columns.CLASS_PRECEDENCE`);
  instances with no data voxel are not counted;
* mean instances per event are over the events that contain the class;
* mean voxels per event (voxels of the semantics product with that class)
  are over all events;
* morphology (neighbours, isolated fraction, voxels per length, energy per
  voxel): :mod:`.morphology`.

Table I disagrees with itself: its N_clusters / N_events (HIP 20, MIP 30,
Shower 78, Delta 24, Michel 6 instances per event with the class) is not its
n̄ column (4, 5, 8, 4, 2). Both are kept: the simulator aims for the pixel
counts, and for instance counts between n̄ / 1.5 and 1.5 N_clusters / N_events.
"""
from __future__ import annotations

import logging
from typing import Dict, Iterable, Sequence

import numpy as np

from mlreco_spice.columns import CLASS_NAMES, NUM_CLASSES, UNLABELED
from parsers.cluster import instance_classes
from parsers.event import EventRecord, linear_index

from .morphology import REAL_EVENT, MorphologyAccumulator

__all__ = ["PAPER_TABLE1", "event_statistics", "format_stats_table", "print_file_stats"]

log = logging.getLogger(__name__)

_TEST_EVENTS = 19_900
#: Koh et al. 2020, Table I (test set of 19,900 events): ``instances`` is the n̄ column,
#: ``clusters`` N_clusters / N_events (instances per event containing the class), and
#: ``voxels`` the pixel count per event (total / events).
PAPER_TABLE1: Dict[str, Dict[str, float]] = {
    "HIP": {"instances": 4, "clusters": 353_555 / 17_460, "voxels": 32.1e6 / _TEST_EVENTS},
    "MIP": {"instances": 5, "clusters": 572_794 / 19_278, "voxels": 122e6 / _TEST_EVENTS},
    "Shower": {"instances": 8, "clusters": 1_528_505 / 19_476, "voxels": 193e6 / _TEST_EVENTS},
    "Delta": {"instances": 4, "clusters": 329_689 / 13_861, "voxels": 3.94e6 / _TEST_EVENTS},
    "Michel": {"instances": 2, "clusters": 38_957 / 6_122, "voxels": 2.29e6 / _TEST_EVENTS},
}


def _set_classes(record: EventRecord, semantics: str, cluster: str) -> tuple:
    """(class of each cluster set, voxels per class) of one event.

    A set's class is the majority semantic class over its voxels present in
    the semantics product; :data:`UNLABELED` when it has none.
    """
    sem = record.sparse3d[semantics]
    size = sem.meta.size
    vox_linear = linear_index(sem.coords, size)
    order = np.argsort(vox_linear, kind="stable")
    vox_linear, vox_class = vox_linear[order], sem.values[order].astype(np.int64)
    voxels = np.bincount(vox_class[(vox_class >= 0) & (vox_class < NUM_CLASSES)],
                         minlength=NUM_CLASSES)
    sets = record.cluster3d[cluster]
    if len(sets) == 0 or vox_linear.size == 0:
        return np.full(len(sets), UNLABELED, np.int64), voxels
    lengths = np.array([len(c) for c in sets.coords], dtype=np.int64)
    inst = np.repeat(np.arange(len(sets), dtype=np.int64), lengths)
    member = linear_index(np.concatenate(sets.coords), size)
    pos = np.clip(np.searchsorted(vox_linear, member), 0, vox_linear.size - 1)
    present = vox_linear[pos] == member
    return instance_classes(inst[present], vox_class[pos[present]], len(sets)), voxels


def event_statistics(records: Iterable[EventRecord], semantics: str = "semantics",
                     cluster: str = "pcluster", data: str = "data") -> Dict:
    """Table I statistics of events (see module docstring for the counting rules).

    Parameters
    ----------
    records : iterable of EventRecord
        Events with a semantics sparse3d product and a cluster3d product.
    semantics, cluster, data : str
        Producer names of those products (``data``, the energy per voxel, is
        optional: without it the energy medians are NaN).

    Returns
    -------
    dict
        ``{"events": N, "classes": {name: {"events_with", "instances_mean",
        "instances_std", "voxels_mean"}}, "morphology": {group: {...}}}``
        (morphology: :meth:`.morphology.MorphologyAccumulator.result`).
    """
    inst_rows, vox_rows = [], []
    morphology = MorphologyAccumulator()
    for record in records:
        for name, kind in ((semantics, record.sparse3d), (cluster, record.cluster3d)):
            if name not in kind:
                raise KeyError(f"event {record.where()} has no product '{name}'; "
                               f"it has {', '.join(record.products())}")
        set_classes, voxels = _set_classes(record, semantics, cluster)
        counted = set_classes[set_classes != UNLABELED]
        inst_rows.append(np.bincount(counted, minlength=NUM_CLASSES))
        vox_rows.append(voxels)
        morphology.add(record, set_classes, data, semantics, cluster)
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
    return {"events": int(len(inst_rows)), "classes": classes, "morphology": morphology.result()}


def _fmt(value: float, ref, digits: int = 2, scale: float = 1.0) -> str:
    """``value (ref)`` with NaN and missing references shown as '-'."""
    ours = "-" if not np.isfinite(value) else f"{value * scale:.{digits}f}"
    return ours if ref is None else f"{ours} ({ref * scale:.{digits}f})"


def format_stats_table(stats: Dict) -> str:
    """Text tables of :func:`event_statistics`: Table I counts, then morphology.

    The first table sets the counts beside the paper's Table I (n̄, and
    N_clusters / N_events); the second the morphology beside the real event
    of :data:`.morphology.REAL_EVENT` (in parentheses).
    """
    lines = [f"{stats['events']} events",
             f"{'class':<8}{'events':>8}{'inst/ev':>9}{'paper n':>9}{'N_cl/N_ev':>11}"
             f"{'voxels/ev':>11}{'paper':>8}{'ratio':>7}"]
    for name in CLASS_NAMES:
        row, ref = stats["classes"][name], PAPER_TABLE1[name]
        vox_ratio = row["voxels_mean"] / ref["voxels"]
        lines.append(f"{name:<8}{row['events_with']:>8}{row['instances_mean']:>9.2f}"
                     f"{ref['instances']:>9.0f}{ref['clusters']:>11.1f}{row['voxels_mean']:>11.0f}"
                     f"{ref['voxels']:>8.0f}{vox_ratio:>7.2f}")
    lines.append("inst/ev: mean instances per event containing the class; voxels/ev: mean over "
                 "all events; paper: Koh et al. 2020 Table I (n and N_clusters/N_events)")
    morph = stats.get("morphology")
    if morph:
        lines += ["", f"{'class':<8}{'voxels':>9}{'neighbours':>14}{'isolated %':>15}"
                      f"{'vox/length':>14}{'MeV/voxel':>15}"]
        for name in CLASS_NAMES + ("Track",):
            row, ref = morph[name], REAL_EVENT.get(name, {})
            vpl = _fmt(row["voxels_per_length"], ref.get("voxels_per_length")) \
                if "voxels_per_length" in row else ""
            lines.append(f"{name:<8}{row['voxels']:>9}"
                         f"{_fmt(row['neighbours'], ref.get('neighbours')):>14}"
                         f"{_fmt(row['isolated'], ref.get('isolated'), 1, 100.0):>15}"
                         f"{vpl:>14}{_fmt(row['energy_median'], ref.get('energy_median')):>15}")
        lines.append("particles: cluster sets of >= 5 voxels; neighbours: mean 26-neighbours in "
                     "the same particle; isolated: no neighbour; vox/length: median over HIP/MIP "
                     "sets of >= 30 voxels; MeV/voxel: median data value per semantic class; "
                     "Track = HIP + MIP; (real MPV/MPR Geant4 event, shared/REALISM.md)")
    return "\n".join(lines)


def print_file_stats(path: str, products: Sequence[str] = ("sparse3d_semantics",
                                                            "cluster3d_pcluster",
                                                            "sparse3d_data")) -> None:
    """Print the Table I and morphology statistics of a larcv file (any readable format)."""
    from mlreco_spice.errors import DataError
    from parsers.readers import open_reader

    semantics, cluster, data = (p.split("_", 1)[1] for p in products)
    reader = open_reader(path, products=list(products))
    try:
        if len(reader) == 0:
            raise DataError(f"{path} holds no events: no statistics to compute")
        stats = event_statistics((reader[i] for i in range(len(reader))), semantics, cluster,
                                 data)
    finally:
        reader.close()
    if str(path).endswith((".h5", ".hdf5")):
        from .version import describe, read_simulation_info

        try:
            print(describe(read_simulation_info(path)))
        except DataError:  # a file the reader opened but h5py cannot: say nothing
            pass
    print(format_stats_table(stats))
