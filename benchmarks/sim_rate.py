"""Simulation rate of :mod:`mlreco_spice.sim` in events per second on one core.

Usage::

    python benchmarks/sim_rate.py --events 40 --runs 5 --size 512

Prints the median rate over the runs, wall-clock and process CPU time (the
latter is less sensitive to other processes sharing the machine). Events are
simulated in memory (no file writing).
"""
from __future__ import annotations

import argparse
import statistics
import time

from mlreco_spice.sim import simulate_event
from parsers.event import ImageMeta


def measure(n_events: int, runs: int, size: int, voxel_mm: float, seed: int) -> dict:
    """Median events/s (wall and CPU) over ``runs`` runs of ``n_events`` events."""
    meta = ImageMeta.cube(size, voxel_mm)
    simulate_event(seed, 0, meta)  # warm-up: range tables, imports
    wall, cpu = [], []
    for run in range(runs):
        t_wall, t_cpu = time.perf_counter(), time.process_time()
        for i in range(n_events):
            simulate_event(seed, run * n_events + i, meta)
        wall.append(n_events / (time.perf_counter() - t_wall))
        cpu.append(n_events / (time.process_time() - t_cpu))
    return {"wall": statistics.median(wall), "cpu": statistics.median(cpu),
            "wall_runs": wall, "cpu_runs": cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=40, help="events per run")
    parser.add_argument("--runs", type=int, default=5, help="number of runs (median reported)")
    parser.add_argument("--size", type=int, default=512, help="image side in voxels")
    parser.add_argument("--voxel-mm", type=float, default=3.0, help="voxel pitch in mm")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    result = measure(args.events, args.runs, args.size, args.voxel_mm, args.seed)
    print(f"simulation rate at {args.size}^3 x {args.voxel_mm} mm, {args.runs} runs of "
          f"{args.events} events: median {result['wall']:.1f} events/s wall, "
          f"{result['cpu']:.1f} events/s CPU")


if __name__ == "__main__":
    main()
