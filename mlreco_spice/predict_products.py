"""What ``predict`` writes for one event: the input record plus the prediction's products.

* ``sparse3d_semantics_pred``: uresnet's class per voxel (when the chain has it);
* ``cluster3d_spice``: one voxel set per predicted cluster (energy per voxel);
* ``particle_spice``: one row per cluster (majority class, seed position, energy);
* with ``predict.save_embeddings``: the embeddings, margins and seediness.

An event skipped as bad is written with every sparse3d product seen so far
empty, so that entry numbers stay aligned with the input file.
"""
from __future__ import annotations

from typing import Any, Dict

import numpy as np

from .columns import NUM_CLASSES, UNLABELED

__all__ = ["output_record", "empty_record"]


def output_record(record: Any, pred: Any, save_embeddings: bool) -> Any:
    """Input record (an EventRecord) + the products of its prediction (an
    :class:`~mlreco_spice.inference.EventPrediction`), as a new EventRecord."""
    from parsers.event import ClusterProduct, EventRecord, Particle, SparseProduct

    out = EventRecord(run=record.run, subrun=record.subrun, event=record.event,
                      sparse3d=dict(record.sparse3d), cluster3d=dict(record.cluster3d),
                      particles=dict(record.particles))
    meta = pred.meta
    coords = pred.coords
    energy = pred.features[:, 0] if pred.features.shape[1] else np.zeros(len(coords), np.float32)
    if pred.semantics_pred is not None:
        out.sparse3d["semantics_pred"] = SparseProduct(coords, pred.semantics_pred.astype(np.float32), meta)
    labels = pred.clusters
    ids = np.unique(labels[labels != UNLABELED])
    sets_c, sets_v, particles = [], [], []
    positions = meta.to_cm(coords) if len(coords) else np.zeros((0, 3))
    for new_id, old_id in enumerate(ids):
        rows = np.flatnonzero(labels == old_id)
        sets_c.append(coords[rows])
        sets_v.append(energy[rows].astype(np.float32))
        classes = pred.semantics[rows]
        semantic = int(np.bincount(classes[classes >= 0], minlength=NUM_CLASSES).argmax()) \
            if np.any(classes >= 0) else UNLABELED
        seed_row = rows[np.nanargmax(pred.seediness[rows])] if np.isfinite(pred.seediness[rows]).any() else rows[0]
        particles.append(Particle(id=new_id, pdg=0, semantic=semantic,
                                  start_cm=tuple(float(x) for x in positions[seed_row]),
                                  energy_init=0.0, energy_deposit=float(energy[rows].sum())))
    out.cluster3d["spice"] = ClusterProduct(sets_c, sets_v, meta)
    out.particles["spice"] = particles
    if save_embeddings:
        for axis, name in enumerate("xyz"):
            out.sparse3d[f"spice_embedding_{name}"] = SparseProduct(coords, pred.embeddings[:, axis], meta)
        out.sparse3d["spice_margin"] = SparseProduct(coords, pred.margins, meta)
        out.sparse3d["spice_seediness"] = SparseProduct(coords, pred.seediness, meta)
    return out


def empty_record(record: Any, sparse_metas: Dict[str, Any]) -> Any:
    """Output entry for a bad event: its identity and empty sparse3d products.

    Why the empty products: larcv3's IOManager keeps a sparse3d product's
    voxels from the previous entry when an entry does not set it, so an
    identity-only entry would silently repeat the previous event. Cluster3d
    and particle products are cleared by larcv and stay absent, which tells
    readers (``analysis.sources``) that the event has no prediction.
    """
    from parsers.event import EventRecord, SparseProduct

    metas = dict(sparse_metas)
    metas.update({name: product.meta for name, product in record.sparse3d.items()})
    empty = {name: SparseProduct(np.zeros((0, 3), np.int64), np.zeros(0, np.float32), meta)
             for name, meta in metas.items()}
    return EventRecord(run=record.run, subrun=record.subrun, event=record.event, sparse3d=empty)
