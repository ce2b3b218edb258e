"""Column names of every CSV the analysis writes, defined once.

Every writer, reader, summary and plot refers to these tuples; none spells a
column name of its own. Positions are given twice: as voxel indices
(``*_vox``, the image grid) and in cm (``*_cm``, from the image meta).
"""
from __future__ import annotations

from typing import Dict, Tuple

from mlreco_spice.metrics import EVENT_ROW_FIELDS, PARTICLE_FIELDS

__all__ = ["EVENT_KEY", "CLUSTER_METRICS", "TRUE_INSTANCES", "PRED_CLUSTERS", "SEGMENTATION",
           "EVENTS", "PARTICLE_METRICS", "SKIPPED_EVENTS", "TABLES", "SUMMARY", "TIMING"]

#: Identity of an event, first in every table.
EVENT_KEY: Tuple[str, ...] = ("file", "entry", "run", "subrun", "event")

#: Wall time of one event, seconds (NaN when unknown).
TIMING: Tuple[str, ...] = ("forward_time_s", "cluster_time_s")

_CENTRE = ("centre_x_vox", "centre_y_vox", "centre_z_vox",
           "centre_x_cm", "centre_y_cm", "centre_z_cm")

#: ``cluster_metrics.csv``: one row per (event, true class); metrics of
#: :func:`mlreco_spice.metrics.evaluate_event`.
CLUSTER_METRICS: Tuple[str, ...] = EVENT_KEY + EVENT_ROW_FIELDS + TIMING

#: ``clusters.csv``: one row per true instance (and true class), all sizes.
#:
#: evaluated          1 when the instance passes ``analysis.min_true_size``
#: extent_vox/_cm     RMS distance of the voxels from their centre (tables.geometry)
#: mean_margin        mean learned margin sigma over its voxels (NaN: not saved)
#: best_pred_id       predicted cluster sharing most voxels with it (-1: none)
#: overlap            voxels shared with best_pred_id
#: match_purity       overlap / size of best_pred_id (NaN when none)
#: match_efficiency   overlap / size
#: pdg, energy_init_mev, energy_deposit_mev   from the particle table (empty if absent)
TRUE_INSTANCES: Tuple[str, ...] = EVENT_KEY + (
    "true_id", "class", "size", "evaluated", "energy_sum") + _CENTRE + (
    "extent_vox", "extent_cm", "mean_margin", "best_pred_id", "overlap",
    "match_purity", "match_efficiency", "pdg", "energy_init_mev", "energy_deposit_mev")

#: ``pred_clusters.csv``: one row per predicted cluster, spurious ones included.
#:
#: pred_class         majority class SPICE clustered its voxels as
#: best_true_id       true instance sharing most voxels (-1: only unlabelled voxels)
#: spurious           1 when it is not the best match of its best true instance
#:                    (a fragment or a cluster of unlabelled voxels)
PRED_CLUSTERS: Tuple[str, ...] = EVENT_KEY + (
    "pred_id", "pred_class", "size", "energy_sum") + _CENTRE + (
    "mean_margin", "best_true_id", "best_true_class", "overlap", "match_purity",
    "match_efficiency", "spurious")

#: ``segmentation.csv``: confusion-matrix cells of the semantic stage per event
#: (only non-empty cells; no rows when the chain has no segmentation stage).
SEGMENTATION: Tuple[str, ...] = EVENT_KEY + ("true_class", "pred_class", "n_voxels")

#: Particle-level metrics of an event (:func:`mlreco_spice.metrics.evaluate_particles`:
#: all voxels, particle id as truth, so clusters spanning classes count), prefixed
#: ``particle_`` in ``events.csv``.
PARTICLE_METRICS: Tuple[str, ...] = tuple(f"particle_{f}" for f in PARTICLE_FIELDS)

#: ``events.csv``: one row per evaluated event.
EVENTS: Tuple[str, ...] = EVENT_KEY + (
    "n_voxels", "n_true", "n_pred", "n_unclustered") + PARTICLE_METRICS + TIMING

#: ``skipped_events.csv``: events that could not be evaluated.
SKIPPED_EVENTS: Tuple[str, ...] = EVENT_KEY + ("reason",)

#: Every table ``evaluate`` writes: file name stem -> columns.
TABLES: Dict[str, Tuple[str, ...]] = {
    "cluster_metrics": CLUSTER_METRICS,
    "clusters": TRUE_INSTANCES,
    "pred_clusters": PRED_CLUSTERS,
    "segmentation": SEGMENTATION,
    "events": EVENTS,
    "skipped_events": SKIPPED_EVENTS,
}

#: ``summary.csv`` (paper Table III, plus the ARI threshold fraction and the
#: semantic stage's voxel accuracy per class; the row ``particles`` holds the
#: means of the particle-level metrics over events, ``n_rows`` counting events).
SUMMARY: Tuple[str, ...] = ("class", "n_rows", "purity", "efficiency", "ari",
                            "frac_ari_above", "voxel_accuracy")
