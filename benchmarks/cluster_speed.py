"""Clustering speed: our SPICEClusterer against SPINE's on the same embeddings.

Claim: ``mode="fast"`` is at least 2x faster than SPINE 1.4.3's
``spine.model.spice.cluster.SPICEClusterer`` on (a) PILArNet-scale events
(~18k voxels; 4/5/8/4/2 HIP/MIP/Shower/Delta/Michel instances) and (b) a hard
case with diffuse embeddings and ~300 instances. Also reported: our torch
kernel on CPU, our ``mode="spine"`` (checked equal to SPINE's labels), and
optionally the threshold tuning time for N events (``--tune-events 100``).

Inputs are synthetic network outputs (:mod:`mlreco_spice.cluster.synthetic`),
paper thresholds, one event per call. Times are the median of ``--repeats``
calls after one warm-up (numba compilation excluded), implementations taking
turns; the table shows the median over ``--events`` events.

Usage::

    .venv/bin/python benchmarks/cluster_speed.py [--repeats 5] [--events 2] [--tune-events 100]
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable, Dict, List

import torch

from mlreco_spice.cluster import cluster_events, resolve_thresholds
from mlreco_spice.cluster.spine_compat import make_spine_clusterer, spine_inputs, spine_labels
from mlreco_spice.cluster.synthetic import PILARNET_INSTANCES, synthetic_event

CASES = {
    "pilarnet": {"instances": PILARNET_INSTANCES, "spread": 1.0},
    "hard_300": {"instances": (60, 60, 60, 60, 60), "spread": 3.0},
}


def median_times(calls: Dict[str, Callable[[], object]], repeats: int,
                 clock: Callable[[], float] = time.perf_counter) -> Dict[str, float]:
    """Median time in seconds of each call by ``clock`` (default wall time; pass
    ``time.process_time`` for CPU time), after one warm-up call each.

    The calls take turns within each repeat, so load from other processes on
    a shared machine hits every implementation alike.
    """
    times: Dict[str, List[float]] = {name: [] for name in calls}
    for call in calls.values():
        call()
    for _ in range(repeats):
        for name, call in calls.items():
            start = clock()
            call()
            times[name].append(clock() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def bench_case(name: str, n_events: int, repeats: int, n_voxels: int) -> Dict[str, float]:
    """Median seconds per event of each implementation, over ``n_events`` events."""
    case = CASES[name]
    s0, p0 = resolve_thresholds()
    spine = make_spine_clusterer(s0, p0, min_size=1, assign_all=True)
    results: Dict[str, List[float]] = {"fast_numba": [], "fast_torch": [], "ours_spine_mode": [],
                                       "spine": []}
    n_clusters, equal = [], True
    for seed in range(n_events):
        event = synthetic_event(case["instances"], n_voxels, spread=case["spread"], seed=seed)
        t = {k: torch.as_tensor(v) for k, v in event.items()}
        args = (t["embeddings"], t["margins"], t["seediness"], t["semantics"],
                torch.zeros(n_voxels, dtype=torch.long))
        spine_args, order = spine_inputs(*args)
        timed = median_times({
            "fast_numba": lambda: cluster_events(*args, backend="numba"),
            "fast_torch": lambda: cluster_events(*args, backend="torch"),
            "ours_spine_mode": lambda: cluster_events(*args, mode="spine"),
            "spine": lambda: spine(*spine_args),
        }, repeats)
        for key, value in timed.items():
            results[key].append(value)
        reference = spine_labels(spine(*spine_args)[0], order)
        equal &= bool(torch.equal(cluster_events(*args, mode="spine"), reference))
        n_clusters.append(int(cluster_events(*args).max()) + 1)
    summary = {key: statistics.median(values) for key, values in results.items()}
    summary["clusters_fast"] = statistics.median(n_clusters)
    summary["spine_mode_equal"] = equal
    return summary


def bench_tuning(n_events: int, n_voxels: int) -> float:
    """Seconds to tune thresholds on ``n_events`` PILArNet-scale events (step 0.05)."""
    from mlreco_spice.cluster.tuning import tune_thresholds

    events = [synthetic_event(PILARNET_INSTANCES, n_voxels, spread=1.5, seed=1000 + s)
              for s in range(n_events)]
    tune_thresholds(events[:1], progress=False)  # compile
    start = time.perf_counter()
    tune_thresholds(events, progress=False)
    return time.perf_counter() - start


def format_report(rows: Dict[str, Dict[str, float]], tuning: Dict[str, float]) -> str:
    """The benchmark table as text."""
    lines = [f"{'case':10s} {'fast numba':>11s} {'fast torch':>11s} {'our spine':>11s} "
             f"{'SPINE':>10s} {'SPINE/fast':>11s} {'clusters':>9s} {'spine equal':>12s}"]
    for name, r in rows.items():
        lines.append(f"{name:10s} {r['fast_numba'] * 1e3:9.2f}ms {r['fast_torch'] * 1e3:9.2f}ms "
                     f"{r['ours_spine_mode'] * 1e3:9.2f}ms {r['spine'] * 1e3:8.2f}ms "
                     f"{r['spine'] / r['fast_numba']:10.1f}x {r['clusters_fast']:9.0f} "
                     f"{str(r['spine_mode_equal']):>12s}")
    for n_events, seconds in tuning.items():
        lines.append(f"tuning {n_events} events (step 0.05): {seconds:.1f} s")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--events", type=int, default=2, help="events per case")
    parser.add_argument("--voxels", type=int, default=18000)
    parser.add_argument("--tune-events", type=int, default=0, help="also time tuning on N events")
    args = parser.parse_args()
    rows = {name: bench_case(name, args.events, args.repeats, args.voxels) for name in CASES}
    tuning = {args.tune_events: bench_tuning(args.tune_events, args.voxels)} if args.tune_events else {}
    print(format_report(rows, tuning))


if __name__ == "__main__":
    main()
