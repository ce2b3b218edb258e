"""larcv3 read-plus-parse rate (events/s) through ``SpiceDataset``, at 512 px.

Simulates ``--events`` events of a ``--size``^3 image (3 mm voxels) into a
temporary larcv3 file (or uses ``--file``), then times ``dataset[i]`` over
every event: h5py read of all schema products, event checks, and the
``sparse3d`` (data, semantic labels) and ``cluster3d`` (instance labels)
parsers, i.e. what one DataLoader worker does per event. Reports the median
events/s (and voxels/s) over ``--repeats`` passes after one warm-up pass.

Usage::

    .venv/bin/python benchmarks/io_rate.py [--events 20] [--size 512] [--repeats 5]
    .venv/bin/python benchmarks/io_rate.py --file data/train_0.h5
"""
from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

ROOT_DIR = Path(__file__).resolve().parents[1]
if str(ROOT_DIR) not in sys.path:
    sys.path.insert(0, str(ROOT_DIR))

SCHEMA = {
    "data": {"parser": "sparse3d", "products": ["sparse3d_data"]},
    "seg_label": {"parser": "sparse3d", "products": ["sparse3d_semantics"]},
    "clust_label": {"parser": "cluster3d", "cluster_product": "cluster3d_pcluster",
                    "semantics_product": "sparse3d_semantics"},
}


def measure(path: str, repeats: int, max_events: Optional[int] = None) -> Dict[str, float]:
    """Median read-plus-parse rate over ``repeats`` passes of every event of ``path``."""
    from parsers.dataset import SpiceDataset

    io = {"dataset": {"files": [path], "schema": SCHEMA, "max_events": max_events}}
    dataset = SpiceDataset(io)
    n_events = len(dataset)
    voxels = sum(len(dataset[i]["data"]) for i in range(n_events))  # also the warm-up pass
    rates: List[float] = []
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(n_events):
            dataset[i]
        rates.append(n_events / (time.perf_counter() - start))
    rate = statistics.median(rates)
    return {"events": n_events, "voxels_per_event": voxels / n_events, "events_per_s": rate,
            "voxels_per_s": rate * voxels / n_events, "min_events_per_s": min(rates),
            "max_events_per_s": max(rates)}


def report(result: Dict[str, float], label: str) -> str:
    """The result as a short text table."""
    return (f"larcv3 read+parse ({label}): {result['events']:.0f} events, "
            f"{result['voxels_per_event']:.0f} voxels/event\n"
            f"  median {result['events_per_s']:.1f} events/s "
            f"(range {result['min_events_per_s']:.1f}-{result['max_events_per_s']:.1f}), "
            f"{result['voxels_per_s'] / 1e6:.2f} M voxels/s")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", help="existing larcv3 file with the products of SCHEMA")
    parser.add_argument("--events", type=int, default=20, help="events to simulate")
    parser.add_argument("--size", type=int, default=512, help="image side in voxels")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=5, help="timed passes (median reported)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.file:
        result = measure(args.file, args.repeats)
        print(report(result, args.file))
        return 0
    from mlreco_spice.sim import simulate_file

    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "io_rate.h5")
        simulate_file(path, n_events=args.events, seed=args.seed, size=args.size, progress=False)
        result = measure(path, args.repeats)
    print(report(result, f"simulated, {args.size}^3 voxels of 3 mm, seed {args.seed}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
