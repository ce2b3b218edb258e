"""Network speed: our SPICE against SPINE 1.4.3's SPICE on the same simulated events.

Claim under test: our inference is at least as fast as SPINE's for the same
architecture. Both spend ~75-85 % of their time in MinkowskiEngine's
convolutions, which are identical, so expect parity up to the non-conv overhead.
Both networks are built with the same filters, reps, input kernel, LeakyReLU
slope and number of down-samplings (SPINE's ``depth`` counts levels, so it is
ours + 1; the parameter counts are printed and differ only by our two head
biases). Timed per event (batch of one, 512^3 simulated events, every class
owned, clustering off):

* ``inference``: eval mode. Ours under ``torch.inference_mode`` with batch
  norms folded into the preceding convolutions (:func:`fold_batchnorm`);
  SPINE under ``torch.no_grad`` (as its inference loop runs) and, to separate
  the effect of the grad mode, also under ``torch.inference_mode``;
* ``train step``: train mode, forward + backward of the sum of the outputs
  (the network alone; the losses differ and are benchmarked elsewhere).

Times are medians over events of the median of ``--repeats`` calls after one
warm-up; the implementations alternate within each repeat, so load changes on
a shared machine hit all of them alike. ``OMP_WAIT_POLICY=PASSIVE`` is set
before torch is imported: MinkowskiEngine resets the OpenMP thread count on
every call and, on a shared machine, spinning OpenMP threads slow every torch
op by an order of magnitude; both networks run under the same setting.

Usage::

    .venv/bin/python benchmarks/model_speed.py [--events 2] [--repeats 3] [--configs paper small]
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402
from typing import Callable, Dict, List, Tuple  # noqa: E402

import torch  # noqa: E402

from mlreco_spice.columns import SEMANTIC_COL  # noqa: E402

#: name -> (filters, depth (our convention), reps)
CONFIGS = {"paper": (32, 6, 2), "small": (16, 5, 2)}
SLOPE = 0.33


def interleaved_medians(calls: Dict[str, Callable[[], object]],
                        repeats: int) -> Dict[str, Tuple[float, float]]:
    """Median (wall, process CPU) seconds of each call, after one warm-up each.

    The calls alternate within every repeat, so a load change on a shared
    machine affects all of them alike instead of biasing the ratio. Process
    CPU time (all threads) is also reported: other processes inflate wall
    time but hardly this process's CPU time.
    """
    for call in calls.values():
        call()
    times: Dict[str, List[Tuple[float, float]]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            wall, cpu = time.perf_counter(), time.process_time()
            call()
            times[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    return {name: (statistics.median(v[0] for v in values), statistics.median(v[1] for v in values))
            for name, values in times.items()}


def simulated_events(n: int, size: int, seed: int = 0) -> List[Tuple[torch.Tensor, torch.Tensor]]:
    """``(data, seg_label)`` tensors of ``n`` simulated events (batch column 0)."""
    from mlreco_spice.sim import simulate_event
    from parsers.cluster import parse_cluster3d
    from parsers.collate import collate_events
    from parsers.event import ImageMeta
    from parsers.sparse import parse_sparse3d

    events = []
    for index in range(n):
        record = simulate_event(seed, index, ImageMeta.cube(size, 3.0))
        batch = collate_events([{"data": parse_sparse3d(record, "data"),
                                 "clust_label": parse_cluster3d(record, "pcluster", "semantics",
                                                                "pcluster")}])
        label = batch["clust_label"]
        seg = torch.cat([label[:, :4], label[:, SEMANTIC_COL:SEMANTIC_COL + 1]], 1)
        events.append((batch["data"], seg))
    return events


def build_ours(filters: int, depth: int, reps: int, size: int):
    from mlreco_spice.models import SPICE

    cfg = {"network": {"uresnet": {"filters": filters, "depth": depth, "reps": reps,
                                   "input_kernel": 3, "leaky_slope": SLOPE},
                       "image_size": size},
           "clusterer": {"enabled": False}}
    return lambda: SPICE(cfg)


def build_spine(filters: int, depth: int, reps: int, size: int):
    from mlreco_spice.backend import import_minkowski

    import_minkowski()  # SPINE imports ME itself; apply the Python >= 3.10 fix first
    from spine.model.spice.embedder import SPICEEmbedder

    unet = {"filters": filters, "depth": depth + 1, "reps": reps, "input_kernel": 3,
            "num_input": 4, "spatial_size": size,
            "activation": {"name": "lrelu", "negative_slope": SLOPE}}
    return lambda: SPICEEmbedder(uresnet=unet, shapes=[0, 1, 2, 3, 4])


def bench_config(name: str, events, repeats: int, size: int, with_spine: bool) -> Dict[str, float]:
    """Median seconds per event of each implementation and mode."""
    from mlreco_spice.models import fold_batchnorm

    filters, depth, reps = CONFIGS[name]
    ours_factory = build_ours(filters, depth, reps, size)
    ours_train = ours_factory().train()
    ours_eval = ours_factory()
    ours_eval.load_state_dict(ours_train.state_dict())
    fold_batchnorm(ours_eval)
    results: Dict[str, List[float]] = defaultdict(list)
    params = {"ours": sum(p.numel() for p in ours_train.parameters())}
    if with_spine:
        spine_train = build_spine(filters, depth, reps, size)().train()
        spine_eval = build_spine(filters, depth, reps, size)().eval()
        params["spine"] = sum(p.numel() for p in spine_train.parameters())

    def step(model, *args):
        out = model(*args)
        total = sum(out[k].sum() if isinstance(out[k], torch.Tensor) else out[k].tensor.sum()
                    for k in ("embeddings", "margins", "seediness"))
        total.backward()

    def infer(model, mode, *args):
        with mode():
            model(*args)

    voxels = []
    for data, seg in events:
        voxels.append(len(data))
        calls = {"ours_inference": lambda: infer(ours_eval, torch.inference_mode, data),
                 "ours_train": lambda: step(ours_train, data)}
        if with_spine:
            from spine.data import TensorBatch

            tb, sb = TensorBatch(data, counts=[len(data)]), TensorBatch(seg, counts=[len(seg)])
            calls.update({
                "spine_inference": lambda: infer(spine_eval, torch.no_grad, tb, sb),
                "spine_inference_mode": lambda: infer(spine_eval, torch.inference_mode, tb, sb),
                "spine_train": lambda: step(spine_train, tb, sb)})
        for key, (wall, cpu) in interleaved_medians(calls, repeats).items():
            results[key].append(wall)
            results[key + "_cpu"].append(cpu)
    summary = {key: statistics.median(values) for key, values in results.items()}
    summary["voxels"] = statistics.median(voxels)
    summary.update({f"params_{k}": v for k, v in params.items()})
    return summary


def format_report(rows: Dict[str, Dict[str, float]]) -> str:
    """The benchmark table as text: seconds per event, wall (process CPU); ratio = SPINE / ours."""
    def cell(r: Dict[str, float], key: str) -> str:
        return f"{r[key]:.3f} s ({r[key + '_cpu']:.3f} s cpu)"

    def ratio(r: Dict[str, float], peer: str, ours: str) -> str:
        return (f"-> {r[peer] / r[ours]:.2f}x wall, "
                f"{r[peer + '_cpu'] / r[ours + '_cpu']:.2f}x cpu")

    lines = []
    for name, r in rows.items():
        filters, depth, reps = CONFIGS[name]
        lines.append(f"{name}: filters {filters}, depth {depth} (SPINE depth {depth + 1}), "
                     f"reps {reps}; median {r['voxels']:.0f} voxels; parameters ours "
                     f"{r['params_ours']:,}" + (f", SPINE {r['params_spine']:,}"
                                                  if "params_spine" in r else ""))
        lines.append(f"  inference  ours {cell(r, 'ours_inference')}")
        if "spine_inference" in r:
            lines.append(f"             SPINE no_grad {cell(r, 'spine_inference')} "
                         f"{ratio(r, 'spine_inference', 'ours_inference')}")
            lines.append(f"             SPINE inference_mode {cell(r, 'spine_inference_mode')} "
                         f"{ratio(r, 'spine_inference_mode', 'ours_inference')}")
        lines.append(f"  train step ours {cell(r, 'ours_train')}")
        if "spine_train" in r:
            lines.append(f"             SPINE {cell(r, 'spine_train')} "
                         f"{ratio(r, 'spine_train', 'ours_train')}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--no-spine", action="store_true", help="time our network only")
    args = parser.parse_args()
    torch.manual_seed(0)
    events = simulated_events(args.events, args.size)
    rows = {name: bench_config(name, events, args.repeats, args.size, not args.no_spine)
            for name in args.configs}
    print(format_report(rows))


if __name__ == "__main__":
    main()
