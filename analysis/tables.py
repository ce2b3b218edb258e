"""Rows of every analysis table for one event (a pure function of an EventPrediction).

Truth: per-voxel true instance and true class; prediction: predicted cluster
per voxel (-1 unclustered). The per-class metrics come from
:func:`mlreco_spice.metrics.evaluate_event`; the per-instance and per
predicted-cluster matches are voxel overlaps (contingency counts) computed here.
"""
from __future__ import annotations

import math
import warnings
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from mlreco_spice.columns import CLASS_NAMES, NUM_CLASSES, UNLABELED
from mlreco_spice.metrics import PARTICLE_FIELDS, evaluate_event, evaluate_particles

from .columns import EVENT_KEY, PARTICLE_METRICS
from .sources import SkippedEntry

__all__ = ["event_tables", "skipped_tables", "identity", "geometry"]


def identity(event: Any) -> Dict[str, Any]:
    """The :data:`~analysis.columns.EVENT_KEY` fields of an event (or skipped entry)."""
    return {key: getattr(event, key) for key in EVENT_KEY}


def _class_name(index: int, names: Sequence[str] = CLASS_NAMES) -> str:
    return names[index] if 0 <= index < NUM_CLASSES else ""


def _mean(values: np.ndarray) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN: NaN is the answer
        return float(np.nanmean(values)) if len(values) else math.nan


def geometry(coords: np.ndarray, meta: Any) -> Dict[str, float]:
    """Centre (voxel index and cm) and spatial extent of a voxel set.

    The extent (paper Fig. 6) is the root-mean-square distance of the voxels
    from their centre (radius of gyration), in voxels and in cm (NaN in cm
    without a meta): L/sqrt(12) = 0.29 L for a straight track of length L,
    0.77 R for a uniform ball of radius R. (Not the spread of the distances,
    which is 0 for a ring and halves a track's.)
    """
    coords = np.asarray(coords, dtype=np.float64).reshape(-1, 3)
    out: Dict[str, float] = {}
    spaces = [("vox", coords)]
    positions = meta.to_cm(coords) if meta is not None else np.full_like(coords, np.nan)
    spaces.append(("cm", positions))
    for unit, points in spaces:
        centre = points.mean(axis=0)
        for axis, value in zip("xyz", centre):
            out[f"centre_{axis}_{unit}"] = float(value)
        out[f"extent_{unit}"] = float(np.sqrt(((points - centre) ** 2).sum(axis=1).mean()))
    return out


def _majority(values: np.ndarray) -> int:
    values = values[values >= 0]
    return int(np.bincount(values).argmax()) if values.size else UNLABELED


def _groups(labels: np.ndarray) -> Dict[int, np.ndarray]:
    """Rows of each label >= 0."""
    valid = np.flatnonzero(labels >= 0)
    keys, inverse = np.unique(labels[valid], return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.cumsum(np.bincount(inverse, minlength=len(keys)))[:-1]
    return {int(k): rows for k, rows in zip(keys, np.split(valid[order], bounds))}


def _best(labels: np.ndarray) -> tuple:
    """Most frequent label >= 0 and its count (-1, 0 when none); ties: lowest label."""
    labels = labels[labels >= 0]
    if not labels.size:
        return UNLABELED, 0
    keys, counts = np.unique(labels, return_counts=True)
    k = int(np.argmax(counts))
    return int(keys[k]), int(counts[k])


def event_tables(event: Any, min_true_size: int,
                 class_names: Sequence[str] = CLASS_NAMES) -> Dict[str, List[Dict[str, Any]]]:
    """Rows of every table of :data:`analysis.columns.TABLES` for one event.

    Parameters
    ----------
    event : EventPrediction
        With ``truth_instance`` and ``truth_semantic`` set; optional
        ``extra["true_particles"]`` (list of Particle, ``id`` = true instance id).
    min_true_size : int
        ``analysis.min_true_size``: true instances below it are not scored.
    class_names : sequence of str
        Name of each class index in the rows
        (:func:`parsers.label_schemes.dataset_class_names`).

    Returns
    -------
    dict
        Table name -> list of row dicts.
    """
    if event.truth_instance is None or event.truth_semantic is None:
        raise ValueError(f"{event.file} entry {event.entry}: no truth labels to evaluate against")
    key = identity(event)
    timing = {"forward_time_s": float(event.forward_time_s), "cluster_time_s": float(event.cluster_time_s)}
    t_inst = np.asarray(event.truth_instance, dtype=np.int64)
    t_sem = np.asarray(event.truth_semantic, dtype=np.int64)
    pred = np.asarray(event.clusters, dtype=np.int64)
    metrics = [{**key, **row, **timing}
               for row in evaluate_event(t_inst, pred, t_sem, min_true_size=min_true_size,
                                         class_names=class_names)]
    # A true instance is scored per class (as evaluate_event does): group by (class, id).
    stride = int(t_inst.max(initial=0)) + 1
    true_key = np.where((t_inst >= 0) & (t_sem >= 0), t_sem * stride + t_inst, UNLABELED)
    true_groups, pred_groups = _groups(true_key), _groups(pred)
    best_pred = {k: _best(pred[rows]) for k, rows in true_groups.items()}
    energy = event.features[:, 0] if event.features.shape[1] else np.zeros(len(pred))
    particles = {p.id: p for p in (event.extra.get("true_particles") or ())}
    instances = []
    for k, rows in true_groups.items():
        pred_id, overlap = best_pred[k]
        particle = particles.get(k % stride)
        instances.append({
            **key, "true_id": k % stride, "class": _class_name(k // stride, class_names),
            "size": len(rows),
            "evaluated": int(len(rows) >= min_true_size), "energy_sum": float(energy[rows].sum()),
            **geometry(event.coords[rows], event.meta), "mean_margin": _mean(event.margins[rows]),
            "best_pred_id": pred_id, "overlap": overlap,
            "match_purity": overlap / len(pred_groups[pred_id]) if pred_id >= 0 else math.nan,
            "match_efficiency": overlap / len(rows),
            "pdg": particle.pdg if particle else None,
            "energy_init_mev": particle.energy_init if particle else None,
            "energy_deposit_mev": particle.energy_deposit if particle else None})
    clusters = []
    for k, rows in pred_groups.items():
        true_id, overlap = _best(true_key[rows])
        geo = geometry(event.coords[rows], event.meta)
        clusters.append({
            **key, "pred_id": k,
            "pred_class": _class_name(_majority(event.semantics[rows]), class_names),
            "size": len(rows), "energy_sum": float(energy[rows].sum()),
            **{c: v for c, v in geo.items() if c.startswith("centre")},
            "mean_margin": _mean(event.margins[rows]),
            "best_true_id": true_id % stride if true_id >= 0 else UNLABELED,
            "best_true_class": _class_name(true_id // stride, class_names) if true_id >= 0 else "",
            "overlap": overlap, "match_purity": overlap / len(rows),
            "match_efficiency": overlap / len(true_groups[true_id]) if true_id >= 0 else math.nan,
            "spurious": int(true_id < 0 or best_pred[true_id][0] != k)})
    n_true = len(np.unique(t_inst[t_inst >= 0]))
    particle = evaluate_particles(t_inst, pred, min_true_size)
    events = [{**key, "n_voxels": len(pred), "n_true": n_true, "n_pred": len(pred_groups),
               "n_unclustered": int(np.count_nonzero(pred == UNLABELED)),
               **{c: particle[f] for c, f in zip(PARTICLE_METRICS, PARTICLE_FIELDS)}, **timing}]
    return {"cluster_metrics": metrics, "clusters": instances, "pred_clusters": clusters,
            "segmentation": _segmentation_rows(key, t_sem, event.semantics_pred, class_names),
            "events": events, "skipped_events": []}


def _segmentation_rows(key: Dict[str, Any], truth: np.ndarray, pred: Optional[np.ndarray],
                       names: Sequence[str]) -> List[Dict[str, Any]]:
    """Non-empty confusion-matrix cells (true class, predicted class) of one event."""
    if pred is None:
        return []
    pred = np.asarray(pred, dtype=np.int64)
    valid = (truth >= 0) & (truth < NUM_CLASSES) & (pred >= 0) & (pred < NUM_CLASSES)
    cells = np.bincount(truth[valid] * NUM_CLASSES + pred[valid], minlength=NUM_CLASSES ** 2)
    return [{**key, "true_class": names[c // NUM_CLASSES],
             "pred_class": names[c % NUM_CLASSES], "n_voxels": int(cells[c])}
            for c in np.flatnonzero(cells)]


def skipped_tables(skipped: Sequence[SkippedEntry]) -> List[Dict[str, Any]]:
    """``skipped_events`` rows."""
    return [{**identity(s), "reason": s.reason} for s in skipped]
