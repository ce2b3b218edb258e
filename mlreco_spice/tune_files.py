"""``mlreco-spice tune`` on files: run the network once per event, tune, write the YAML.

The grid search itself (:func:`mlreco_spice.cluster.tuning.tune_thresholds`)
takes any iterable of event arrays and knows nothing of files or networks;
this module, one layer above both, feeds it the outputs of
:func:`mlreco_spice.inference.iter_event_outputs`.
"""
from __future__ import annotations

import logging
from typing import Any, Dict, Mapping, Optional, Sequence

from .cluster.tuning import tune_thresholds, write_thresholds
from .defaults import BEND_WINDOW_CM
from .metrics import DEFAULT_MIN_TRUE_SIZE

__all__ = ["tune_from_files"]

log = logging.getLogger(__name__)


def tune_from_files(cfg: Mapping[str, Any], inputs: Sequence[str], output: str,
                    n_events: int = 100, step: float = 0.05, metric: str = "ari",
                    engine: Optional[Any] = None, progress: bool = True) -> Dict[str, Any]:
    """Run the network on ``inputs``, tune the thresholds, write them to ``output``.

    Parameters
    ----------
    cfg : mapping
        Complete config. The clusterer options (``min_cluster_size``,
        ``assign_leftovers``, ``at_least_one_seed``, ``refine_iterations``,
        ``merge_p``, ``connect_radius_cm``, ``absorb_radius_cm``,
        ``connect_max_bend``, ``bend_window_cm``, ``reconnect_after_absorb``; distances
        in cm, converted with each event's voxel pitch) and
        ``analysis.min_true_size`` are read from it; the classes are named as
        :func:`parsers.label_schemes.dataset_class_names` of ``io.dataset``
        (``Track`` where tracks are one class, then no HIP entry).
    inputs : sequence of str
        Labelled larcv files or globs.
    output : str
        Thresholds YAML, written atomically (usable as ``predict.thresholds``).
    n_events : int
        Events to run the network on.
    step : float
        Grid step of ``s0`` and ``p0``.
    metric : str
        ``ari``, ``purity`` or ``efficiency``.
    engine : InferenceEngine, optional
        Built from ``cfg`` when not given (callers that run the same weights on
        other events afterwards pass theirs).
    progress : bool
        Progress bars (off where several tunings share a terminal).

    Returns
    -------
    dict
        The :func:`~mlreco_spice.cluster.tuning.tune_thresholds` result.
    """
    from parsers.label_schemes import dataset_class_names

    from .inference import iter_event_outputs

    clusterer = cfg.get("model", {}).get("modules", {}).get("spice", {}).get("clusterer", {}) or {}
    result = tune_thresholds(
        iter_event_outputs(cfg, inputs, n_events, engine=engine, progress=progress),
        step=step, metric=metric, progress=progress,
        min_true_size=int(cfg.get("analysis", {}).get("min_true_size", DEFAULT_MIN_TRUE_SIZE)),
        min_cluster_size=int(clusterer.get("min_cluster_size", 1)),
        assign_leftovers=bool(clusterer.get("assign_leftovers", True)),
        at_least_one_seed=bool(clusterer.get("at_least_one_seed", False)),
        refine_iterations=int(clusterer.get("refine_iterations", 0)),
        merge_p=clusterer.get("merge_p"), connect_radius_cm=clusterer.get("connect_radius_cm"),
        absorb_radius_cm=clusterer.get("absorb_radius_cm"),
        connect_max_bend=clusterer.get("connect_max_bend"),
        bend_window_cm=clusterer.get("bend_window_cm", BEND_WINDOW_CM),
        reconnect_after_absorb=bool(clusterer.get("reconnect_after_absorb", False)),
        class_names=dataset_class_names(cfg.get("io", {}).get("dataset", {})))
    write_thresholds(output, result)
    log.info("wrote %s (%.0f s)", output, result["seconds"])
    return result
