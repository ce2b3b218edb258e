"""Where the paper's seed search loses a class: merged, split and unseeded true instances.

The network runs once per event with true classes (the clustering stage alone, shipped
weights); the outputs are clustered by the paper's seed search alone
(``race_common.SEED_SEARCH``, thresholds ``weights/thresholds_paper.yaml``). For each true
instance of the class with at least ``--min-voxels`` voxels:

* **unseeded**: its seediness never reaches the class's s0, so it cannot seed a cluster;
* **split**: under 90 % of its voxels lie in its main predicted cluster;
* **merged**: its main predicted cluster holds more than 10 % voxels of other counted true
  instances of the class; ``merged with an unseeded`` counts those where the instance or
  one of the others is unseeded (the rest are between instances that both reach s0,
  where one kernel covers the other at p > p0).

Only the instances the metrics score are counted (id >= 0, at least ``--min-voxels``
voxels), on either side of a merge. Also printed: quantiles of the instances' highest
seediness.

Usage::

    .venv/bin/python benchmarks/seed_search_errors.py --file VAL.h5 --events 60 --cls MIP
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from clusterer_steps import LABELS  # noqa: E402
from race_common import SEED_SEARCH  # noqa: E402

from mlreco_spice.columns import CLASS_NAMES

ROOT = Path(__file__).resolve().parent.parent
SPLIT_FRACTION = 0.9
MERGE_FRACTION = 0.1


def instance_errors(instances: np.ndarray, labels: np.ndarray, seediness: np.ndarray,
                    s0: float, min_voxels: int) -> Dict[str, Any]:
    """Counts of one event's true instances (of one class: the arrays hold its voxels only).

    Only instances the metrics score count, on either side of a merge: id >= 0 and at
    least ``min_voxels`` voxels. Voxels left unclustered (label -1) are no cluster.
    Also returns ``peaks``: each counted instance's highest seediness.
    """
    out: Dict[str, Any] = {"instances": 0, "unseeded": 0, "split": 0, "merged": 0,
                           "merged_with_unseeded": 0}
    ids, sizes = np.unique(instances, return_counts=True)
    counted = {int(i) for i, n in zip(ids, sizes) if i >= 0 and n >= min_voxels}
    peak = {i: float(seediness[instances == i].max()) for i in counted}
    scored = np.isin(instances, list(counted))
    for i in sorted(counted):
        mine = instances == i
        out["instances"] += 1
        out["unseeded"] += peak[i] < s0
        values, counts = np.unique(labels[mine], return_counts=True)
        main = values[counts.argmax()]
        out["split"] += main < 0 or counts.max() / mine.sum() < SPLIT_FRACTION
        if main < 0:
            continue
        in_main = (labels == main) & scored
        others = in_main & ~mine
        if others.sum() > MERGE_FRACTION * in_main.sum():
            out["merged"] += 1
            out["merged_with_unseeded"] += peak[i] < s0 or any(
                peak[int(o)] < s0 for o in np.unique(instances[others]))
    out["peaks"] = [peak[i] for i in sorted(counted)]
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("Usage::")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--file", default=str(ROOT / "runs/default_data/val.h5"),
                   help="labelled events (default: %(default)s)")
    p.add_argument("--events", type=int, default=60, help="events (default: %(default)s)")
    p.add_argument("--cls", default="MIP", choices=CLASS_NAMES, help="class (default: MIP)")
    p.add_argument("--thresholds", default=str(ROOT / "weights/thresholds_paper.yaml"),
                   help="the seed search's s0/p0 (default: %(default)s)")
    p.add_argument("--min-voxels", type=int, default=10,
                   help="smallest true instance counted (default: %(default)s, the metrics' mask)")
    args = p.parse_args(argv)
    if not Path(args.file).is_file():
        p.error(f"--file {args.file} not found (make train-default simulates it)")

    from mlreco_spice.cluster import cluster_event_arrays
    from mlreco_spice.config import load_config
    from mlreco_spice.inference import iter_event_outputs, load_thresholds
    from mlreco_spice.metrics import evaluate_event

    cfg = load_config("predict", [LABELS, "predict.thresholds=null",
                                  "model.modules.spice.use_true_semantics=true"])
    thresholds = load_thresholds(args.thresholds)
    code = CLASS_NAMES.index(args.cls)
    s0 = float(thresholds["s0"][args.cls])
    totals: Dict[str, int] = {}
    aris: List[float] = []
    peaks: List[float] = []
    for ev in iter_event_outputs(cfg, [args.file], args.events, progress=False):
        semantics = ev["truth_semantic"]
        labels = cluster_event_arrays(ev["embeddings"], ev["margins"], ev["seediness"],
                                      semantics, ev["coords"], voxel_cm=ev["voxel_cm"],
                                      s0=thresholds["s0"], p0=thresholds["p0"], **SEED_SEARCH)
        mine = semantics == code
        counts = instance_errors(ev["truth_instance"][mine], labels[mine],
                                 np.asarray(ev["seediness"]).reshape(-1)[mine], s0,
                                 args.min_voxels)
        peaks += counts.pop("peaks")
        for key, value in counts.items():
            totals[key] = totals.get(key, 0) + int(value)
        aris += [row["ari"] for row in evaluate_event(ev["truth_instance"], labels, semantics)
                 if row["class"] == args.cls]
    n = max(totals.get("instances", 0), 1)
    print(f"{args.cls}: s0 {s0:g}, p0 {thresholds['p0'][args.cls]:g}; mean ARI "
          f"{np.mean(aris):.3f} over {len(aris)} events")
    for key, value in totals.items():
        print(f"  {key:22s} {value:5d}  ({100.0 * value / n:.0f} % of instances)")
    if peaks:
        q = np.quantile(peaks, [0.05, 0.1, 0.25, 0.5])
        print("  highest seediness per instance, quantiles 5 / 10 / 25 / 50 %: "
              + " / ".join(f"{v:.3f}" for v in q))
    return 0


if __name__ == "__main__":
    sys.exit(main())
