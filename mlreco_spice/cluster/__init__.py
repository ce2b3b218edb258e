"""Inference clustering of SPICE outputs and threshold tuning.

cluster_events     plain function: embeddings, margins, seediness -> instance per voxel
cluster_event_arrays  the same on one event's stored numpy outputs (rows SPICE skipped stay -1)
SPICEClusterer     holds the ``clusterer`` config block and calls cluster_events
resolve_thresholds per-class s0/p0 from any accepted form (default: paper Table II)
tuning             grid search of s0/p0 (imported on demand: ``from mlreco_spice.cluster import tuning``)
"""
from __future__ import annotations

from .clusterer import (MODES, SPICEClusterer, cluster_event_arrays, cluster_events,
                        resolve_thresholds)
from .spine_compat import SPINE_SHAPE_OF_CLASS

__all__ = ["SPICEClusterer", "cluster_events", "cluster_event_arrays", "resolve_thresholds", "MODES",
           "SPINE_SHAPE_OF_CLASS"]
