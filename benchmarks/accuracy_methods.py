"""The methods of the accuracy benchmark (``benchmarks/accuracy.py``), run on each event.

The networks run once per event per configuration; every other method
re-clusters their outputs or the coordinates (see the list in
``accuracy.py``). Each method on each event gives its per-class rows
(:func:`mlreco_spice.metrics.evaluate_event`) and one particle-level row
(:func:`mlreco_spice.metrics.evaluate_particles`).
"""
from __future__ import annotations

import math
import time
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np

from accuracy_report import DBSCAN_COORDS, NO_ABSORB, ORACLE, PAPER_SEEDS, SPINE_CLUSTERER
from mlreco_spice.columns import NUM_CLASSES
from mlreco_spice.errors import UserError

__all__ = ["score_rows", "no_absorb_options", "spine_clusterer", "spine_cluster", "run_networks"]


def score_rows(method: str, pred: Any, clusters: np.ndarray, forward_s: float, cluster_s: float,
               min_true_size: int) -> Tuple[List[Dict[str, Any]], Dict[str, Any]]:
    """One method on one event: its events.csv rows (per true class) and particles.csv row."""
    from analysis.columns import PARTICLE_METRICS
    from mlreco_spice.metrics import PARTICLE_FIELDS, evaluate_event, evaluate_particles

    key = {"method": method, "file": pred.file, "entry": pred.entry, "run": pred.run,
           "subrun": pred.subrun, "event": pred.event}
    times = {"forward_time_s": forward_s, "cluster_time_s": cluster_s}
    per_class = [{**key, **row, **times}
                 for row in evaluate_event(pred.truth_instance, clusters, pred.truth_semantic,
                                           min_true_size)]
    particle = evaluate_particles(pred.truth_instance, clusters, min_true_size)
    return per_class, {**key, **{c: particle[f] for c, f in zip(PARTICLE_METRICS, PARTICLE_FIELDS)},
                       **times}


def no_absorb_options(cfg: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """Clusterer keywords of ``cfg``'s SPICE stage (thresholds applied, as an
    InferenceEngine's config has them) with the absorb and reconnect steps off; None when
    the absorb step is off already (no ``absorb_p``): the rows would repeat the full chain's."""
    block = dict(cfg["model"]["modules"]["spice"]["clusterer"])
    if block.get("absorb_p") is None:
        return None
    block.pop("enabled", None)
    return dict(block, absorb_p=None, reconnect_after_absorb=False)


def spine_clusterer(cfg: Dict[str, Any]) -> Optional[Any]:
    """SPINE 1.4.3's ``SPICEClusterer`` with the shipped clusterer's ``s0``/``p0``,
    ``min_cluster_size`` and ``assign_leftovers`` (``cfg`` with its thresholds applied, as an
    InferenceEngine's); None when the ``spine`` package is not installed."""
    from mlreco_spice.cluster import resolve_thresholds
    from mlreco_spice.cluster.spine_compat import make_spine_clusterer

    block = cfg["model"]["modules"]["spice"]["clusterer"]
    s0, p0 = resolve_thresholds(block.get("s0"), block.get("p0"))
    try:
        return make_spine_clusterer(s0, p0, int(block["min_cluster_size"]),
                                    bool(block["assign_leftovers"]))
    except ImportError:
        return None


def spine_cluster(clusterer: Any, pred: Any) -> Tuple[np.ndarray, float]:
    """SPINE's clusterer on one event's network outputs: labels (-1 on rows SPICE did
    not process) and the seconds of its call alone.

    Its inputs are converted to SPINE's ``TensorBatch`` before the clock starts (as in
    ``benchmarks/cluster_speed.py``), so the time favours SPINE, if anything, against
    the shipped clusterer's (which includes its own conversions).
    """
    import torch

    from mlreco_spice.cluster.spine_compat import spine_inputs, spine_labels

    ran = np.isfinite(pred.margins) & (pred.semantics >= 0) & (pred.semantics < NUM_CLASSES)
    labels = np.full(len(pred.margins), -1, dtype=np.int64)
    if not ran.any():
        return labels, 0.0
    args, order = spine_inputs(*(torch.as_tensor(np.ascontiguousarray(a[ran])) for a in (
        pred.embeddings, pred.margins, pred.seediness, pred.semantics)),
        torch.zeros(int(ran.sum()), dtype=torch.long))
    tick = time.perf_counter()
    clusts, _ = clusterer(*args)
    seconds = time.perf_counter() - tick
    labels[ran] = spine_labels(clusts, order).numpy()
    return labels, seconds


def run_networks(engines: Dict[str, Any], items: Iterator[Dict[str, Any]], total: int,
                 min_true_size: int, dbscan_params: Optional[Dict[str, Dict]] = None,
                 progress: bool = True, desc: str = "events",
                 paper_thresholds: Optional[Dict[str, Any]] = None,
                 dbscan_coords: Optional[Dict[str, Any]] = None,
                 no_absorb: Optional[Dict[str, Any]] = None,
                 spine: Optional[Any] = None) -> Dict[str, Any]:
    """Run every engine (and DBSCAN) once per event; rows, particle rows, confusion matrix,
    event count.

    ``paper_thresholds`` (``s0``, ``p0``) re-cluster the true-semantics outputs with
    the paper's procedure for the :data:`PAPER_SEEDS` rows; ``dbscan_coords``
    (``eps``, ``min_samples``) gives the :data:`DBSCAN_COORDS` rows; ``no_absorb``
    (clusterer keywords) re-clusters the full chain's outputs for the :data:`NO_ABSORB` rows;
    ``spine`` (:func:`spine_clusterer`) clusters them again for the :data:`SPINE_CLUSTERER`
    rows, timed beside the shipped clusterer on the same events.
    """
    from tqdm import tqdm

    from mlreco_spice.baselines import dbscan_by_class, dbscan_coordinates
    from mlreco_spice.cluster import cluster_event_arrays
    from mlreco_spice.cluster.oracle import truth_centroid_clusters

    rows: List[Dict[str, Any]] = []
    particles: List[Dict[str, Any]] = []
    confusion = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    n_events = 0

    def score(method: str, pred: Any, labels: np.ndarray, forward_s: float,
              cluster_s: float) -> None:
        # Callers pass perf_counter() - tick after the labels: arguments are evaluated
        # in order, so cluster_s times the clustering alone.
        per_class, particle = score_rows(method, pred, labels, forward_s, cluster_s,
                                         min_true_size)
        rows.extend(per_class)
        particles.append(particle)

    for item in tqdm(items, total=total, desc=desc, unit="event", disable=not progress):
        n_events += 1
        for method, engine in engines.items():
            pred = engine.run(item)
            if pred.truth_instance is None:
                raise UserError("the events have no labels (clust_label)")
            score(method, pred, pred.clusters, pred.forward_time_s, pred.cluster_time_s)
            if method == "spice_true_semantics":
                tick = time.perf_counter()
                score(ORACLE, pred, truth_centroid_clusters(
                    pred.embeddings, pred.margins, pred.truth_instance, pred.semantics),
                    math.nan, time.perf_counter() - tick)
                if paper_thresholds is not None:
                    tick = time.perf_counter()
                    score(PAPER_SEEDS, pred, cluster_event_arrays(
                        pred.embeddings, pred.margins, pred.seediness, pred.semantics,
                        **paper_thresholds), pred.forward_time_s, time.perf_counter() - tick)
            if method == "full_chain" and no_absorb is not None:
                tick = time.perf_counter()
                score(NO_ABSORB, pred, cluster_event_arrays(
                    pred.embeddings, pred.margins, pred.seediness, pred.semantics, pred.coords,
                    voxel_cm=pred.voxel_cm, **no_absorb), pred.forward_time_s,
                    time.perf_counter() - tick)
            if method == "full_chain" and spine is not None:
                labels, seconds = spine_cluster(spine, pred)
                score(SPINE_CLUSTERER, pred, labels, pred.forward_time_s, seconds)
            if method == "full_chain" and pred.semantics_pred is not None:
                ok = (pred.truth_semantic >= 0) & (pred.truth_semantic < NUM_CLASSES)
                np.add.at(confusion, (pred.truth_semantic[ok], pred.semantics_pred[ok]), 1)
        if dbscan_params is not None:
            tick = time.perf_counter()
            score("dbscan", pred, dbscan_by_class(pred.coords, pred.truth_semantic,
                                                  dbscan_params), math.nan,
                  time.perf_counter() - tick)
        if dbscan_coords is not None:
            tick = time.perf_counter()
            score(DBSCAN_COORDS, pred, dbscan_coordinates(pred.coords, **dbscan_coords),
                  math.nan, time.perf_counter() - tick)
    return {"rows": rows, "particles": particles, "confusion": confusion, "n_events": n_events}
