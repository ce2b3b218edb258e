"""The shipped clusterer's time per event beside SPINE's ``SPICEClusterer`` on the same
network outputs (issue 18's goal: ours no slower).

The chain (uresnet + SPICE, predicted semantics, as ``mlreco-spice predict``) runs once
per event; its outputs are then clustered by

``shipped``  our clusterer with every step the config turns on (thresholds applied);
``spine``    SPINE 1.4.3's ``SPICEClusterer`` with the same ``s0``/``p0``,
             ``min_cluster_size`` and ``assign_leftovers`` and none of the extra steps; its
             ``TensorBatch`` inputs are built before its clock starts.

The two take turns on each event, each timed as the median of ``--repeats`` calls after
a warm-up (numba compilation excluded). ``--clock cpu`` (default) counts this process's
CPU time, which other processes on a shared machine do not inflate; ``--clock wall``
counts wall time (run on an idle machine). Reported: the median and mean over events
of each, and the median of the per-event ratios.

Usage::

    .venv/bin/python benchmarks/clusterer_time.py --weights weights/spice_default.pt \\
        --test-file runs/default_data/test_seed3.h5 --events 50
"""
from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from accuracy_methods import spine_clusterer  # noqa: E402
from cluster_speed import median_times  # noqa: E402

log = logging.getLogger("clusterer_time")
CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Command-line options (see ``--help``)."""
    p = argparse.ArgumentParser(description=__doc__.split("Usage::")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-c", "--config", default="predict", help="chain config (default: %(default)s)")
    p.add_argument("--weights", help="chain weights (default: the config's predict.weights)")
    p.add_argument("--thresholds", help="thresholds YAML (default: the config's predict.thresholds)")
    p.add_argument("--test-file", default=str(ROOT / "runs/default_data/test_seed3.h5"),
                   help="events to run (default: %(default)s; make it with `mlreco-spice "
                   "simulate -o FILE -n 500 --seed 3`)")
    p.add_argument("--events", type=int, default=50, help="events (first N) (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=3, help="timed calls per event and "
                   "clusterer (default: %(default)s)")
    p.add_argument("--clock", choices=sorted(CLOCKS), default="cpu", help="default: %(default)s")
    p.add_argument("--out", help="also write the result as JSON here")
    return p.parse_args(argv)


def time_events(engine, items, clock, repeats: int, spine) -> Dict[str, List[float]]:
    """Per-event median seconds of each clusterer on the chain's outputs."""
    import torch
    from tqdm import tqdm

    from mlreco_spice.cluster import cluster_event_arrays
    from mlreco_spice.cluster.spine_compat import spine_inputs

    block = dict(engine.cfg["model"]["modules"]["spice"]["clusterer"])
    block.pop("enabled", None)
    times: Dict[str, List[float]] = {"shipped": [], "spine": [], "voxels": []}
    for item in tqdm(items, desc="events", unit="event"):
        pred = engine.run(item)
        ran = np.isfinite(pred.margins) & (pred.semantics >= 0) & (pred.semantics < 5)
        args, _ = spine_inputs(*(torch.as_tensor(np.ascontiguousarray(a[ran])) for a in (
            pred.embeddings, pred.margins, pred.seediness, pred.semantics)),
            torch.zeros(int(ran.sum()), dtype=torch.long))
        got = median_times({
            "shipped": lambda: cluster_event_arrays(
                pred.embeddings, pred.margins, pred.seediness, pred.semantics, pred.coords,
                voxel_cm=pred.voxel_cm, **block),
            "spine": lambda: spine(*args)}, repeats, clock)
        for name, seconds in got.items():
            times[name].append(seconds)
        times["voxels"].append(float(ran.sum()))
    return times


def summary(times: Dict[str, List[float]]) -> Dict[str, float]:
    """Medians and means (ms) and the median per-event ratio shipped / SPINE."""
    out = {}
    for name in ("shipped", "spine"):
        out[f"{name}_median_ms"] = 1e3 * statistics.median(times[name])
        out[f"{name}_mean_ms"] = 1e3 * statistics.fmean(times[name])
    out["ratio_median"] = statistics.median(a / b for a, b in zip(times["shipped"], times["spine"]))
    out["voxels_median"] = statistics.median(times["voxels"])
    out["events"] = len(times["shipped"])
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the benchmark; returns the process exit code."""
    from mlreco_spice.config import load_config
    from mlreco_spice.inference import InferenceEngine
    from parsers.dataset import SpiceDataset

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    if not Path(args.test_file).is_file():
        log.error("no test file %s: make it with `mlreco-spice simulate -o %s -n 500 --seed 3`",
                  args.test_file, args.test_file)
        return 2
    overrides = ["model.modules.spice.use_true_semantics=False"]
    overrides += [f"predict.weights={args.weights}"] if args.weights else []
    overrides += [f"predict.thresholds={args.thresholds}"] if args.thresholds else []
    engine = InferenceEngine(load_config(args.config, overrides), "cpu")
    spine = spine_clusterer(engine.cfg)
    if spine is None:
        log.error("SPINE is not installed (pip install spine==1.4.3): nothing to compare with")
        return 2
    items = SpiceDataset(engine.cfg["io"], files=[args.test_file]).good_items(args.events)
    result = summary(time_events(engine, items, CLOCKS[args.clock], args.repeats, spine))
    result.update(clock=args.clock, repeats=args.repeats, test_file=args.test_file,
                  weights=engine.cfg["predict"]["weights"])
    print(f"| clusterer | median ms/event | mean ms/event |\n|---|---|---|\n"
          f"| shipped (all steps) | {result['shipped_median_ms']:.1f} | "
          f"{result['shipped_mean_ms']:.1f} |\n| SPINE 1.4.3 SPICEClusterer | "
          f"{result['spine_median_ms']:.1f} | {result['spine_mean_ms']:.1f} |\n\n"
          f"{result['events']} events (median {result['voxels_median']:.0f} voxels), "
          f"{args.clock} time, median of {args.repeats} calls each; median per-event ratio "
          f"shipped / SPINE: {result['ratio_median']:.2f}")
    if args.out:
        from mlreco_spice.atomic import atomic_write_text

        atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
