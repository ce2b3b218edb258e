"""Training-step cost of the default chain (uresnet + SPICE) on this machine.

Question answered: how to spend a fixed CPU budget on training. Each layout
runs the same chain (``chain_configs/spice_train.yaml`` with the depth given)
on the same simulated 512 px training events, one full step each
(forward, loss, backward, Adam step), in a fresh Python process so that
``OMP_NUM_THREADS`` is set before torch loads OpenMP.

``--stages`` answers instead: how much faster SPICE trains as its own stage.
It times today's joint step (``spice_train.yaml``: uresnet + SPICE, SPICE on
true classes) against the SPICE-only stage (``spice_stage_train.yaml``), one
process with one thread each, on the same events, with the seediness branch
frozen (the first stage of the paper's schedule) and trained. The two configs
alternate, ``--rounds`` times each, so that load from other work on the
machine hits both alike; reported are the medians over rounds of each run's
median step, the SPICE-training events per hour, and their ratio.

Layouts (without ``--stages``):

* ``1proc-1thread``: one process, one OpenMP thread, ``--batch`` events a step;
* ``1proc-2threads``: the same with two OpenMP threads;
* ``2proc-1thread``: two such processes at once, each with half the batch
  (the work of one data-parallel step on two cores, without the gradient
  all-reduce, which the real DDP run's log measures).

Reported per layout: median step time, median share of the step spent in
the forward pass, loss and backward, and events per hour. ``--depths`` repeats
the 1-process layout for other U-ResNet depths of both stages.

Usage::

    .venv/bin/python benchmarks/train_step.py [--steps 6] [--batch 2] [--depths 5 6 7]
    .venv/bin/python benchmarks/train_step.py --stages [--steps 3] [--rounds 2] [--data FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Sequence

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT / "runs" / "default_data" / "train.h5"
#: ``--stages``: the configs compared, by the name the table gives them.
STAGE_CONFIGS = {"joint uresnet + SPICE (spice_train.yaml)": "spice_train",
                 "SPICE only (spice_stage_train.yaml)": "spice_stage_train"}


def measure(data: str, depth: int, batch: int, steps: int, offset: int,
            config: str = "spice_train", frozen: bool = False) -> dict:
    """Time ``steps`` training steps (after one warm-up) in this process.

    ``config`` names the chain config; every stage gets U-ResNet depth
    ``depth``; ``frozen`` freezes the seediness branch as the training's first
    stage does.
    """
    import torch

    from mlreco_spice.chain import Chain
    from mlreco_spice.config import load_config
    from parsers.collate import collate_events
    from parsers.dataset import SpiceDataset

    cfg = load_config(config, overrides=[f"io.dataset.files=[{data}]"])
    for stage in cfg["model"]["stages"]:
        cfg["model"]["modules"][stage]["network"]["uresnet"]["depth"] = depth
    torch.manual_seed(0)
    chain = Chain(cfg["model"]).train()
    if frozen:
        chain.set_seediness_frozen(True)
    optimizer = torch.optim.Adam(chain.parameters(), lr=1e-3)
    dataset = SpiceDataset(cfg["io"])
    items = [dataset[offset + i] for i in range((steps + 1) * batch)]
    rows = []
    for step in range(steps + 1):
        batch_data = collate_events(items[step * batch:(step + 1) * batch])
        ticks = [time.perf_counter()]
        outputs = chain(batch_data)
        ticks.append(time.perf_counter())
        terms = chain.compute_loss(batch_data, outputs)
        ticks.append(time.perf_counter())
        terms["loss"].backward()
        ticks.append(time.perf_counter())
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        ticks.append(time.perf_counter())
        if step:  # the first step is a warm-up
            rows.append([b - a for a, b in zip(ticks, ticks[1:])])
    total = [sum(r) for r in rows]
    return {"step_s": statistics.median(total),
            "forward": statistics.median(r[0] / t for r, t in zip(rows, total)),
            "loss": statistics.median(r[1] / t for r, t in zip(rows, total)),
            "backward": statistics.median(r[2] / t for r, t in zip(rows, total))}


def run_workers(threads: int, workers: int, depth: int, batch: int, steps: int,
                data: str, config: str = "spice_train", frozen: bool = False,
                offsets: Sequence[int] = ()) -> list:
    """Start ``workers`` measuring processes at once; their JSON results.

    Worker ``w`` reads events from ``offsets[w]`` on (default ``100 w``).
    """
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OMP_WAIT_POLICY="PASSIVE")
    offsets = list(offsets) or [w * 100 for w in range(workers)]
    procs = [subprocess.Popen(
        [sys.executable, __file__, "--worker", "--data", data, "--depths", str(depth),
         "--batch", str(batch), "--steps", str(steps), "--offset", str(offsets[w]),
         "--config", config] + (["--frozen"] if frozen else []),
        env=env, stdout=subprocess.PIPE, text=True) for w in range(workers)]
    results = []
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode:
            raise SystemExit(f"worker failed with exit code {proc.returncode}")
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def compare_stages(data: str, depth: int, batch: int, steps: int, rounds: int) -> None:
    """``--stages``: joint step against the SPICE-only stage (see the module doc)."""
    print(f"| seediness branch | config | step ({batch} events) | forward | loss | backward | "
          "SPICE-training events per hour |")
    print("|---|---|---|---|---|---|---|")
    for frozen in (True, False):
        runs: Dict[str, List[dict]] = {name: [] for name in STAGE_CONFIGS}
        for _ in range(rounds):
            for name, config in STAGE_CONFIGS.items():
                runs[name] += run_workers(1, 1, depth, batch, steps, data, config, frozen, [0])
        rates = {}
        for name, results in runs.items():
            step = statistics.median(r["step_s"] for r in results)
            shares = {k: statistics.median(r[k] for r in results)
                      for k in ("forward", "loss", "backward")}
            rates[name] = 3600 * batch / step
            print(f"| {'frozen' if frozen else 'trained'} | {name} | {step:.2f} s | "
                  f"{shares['forward']:.0%} | {shares['loss']:.0%} | {shares['backward']:.0%} | "
                  f"{rates[name]:.0f} |", flush=True)
        joint, alone = rates.values()
        print(f"| {'frozen' if frozen else 'trained'} | **ratio SPICE only / joint** | | | | | "
              f"**{alone / joint:.2f}x** |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="larcv training file")
    parser.add_argument("--steps", type=int, default=6, help="timed steps per layout")
    parser.add_argument("--batch", type=int, default=2, help="events per step (even)")
    parser.add_argument("--depths", type=int, nargs="+", default=[6])
    parser.add_argument("--stages", action="store_true",
                        help="joint step against the SPICE-only stage (see above)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="--stages: runs of each config, alternating (default: %(default)s)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--offset", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--config", default="spice_train", help=argparse.SUPPRESS)
    parser.add_argument("--frozen", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(measure(args.data, args.depths[0], args.batch, args.steps, args.offset,
                                 args.config, args.frozen)))
        return
    if not Path(args.data).is_file():
        raise SystemExit(f"{args.data} not found: run `make train-default` or "
                         f"`mlreco-spice simulate -o {args.data} -n 200 --seed 1` first")
    if args.stages:
        compare_stages(args.data, args.depths[0], args.batch, args.steps, args.rounds)
        return
    layouts = [(f"1proc-1thread depth {d}", 1, 1, d, args.batch) for d in args.depths]
    layouts += [("1proc-2threads depth %d" % args.depths[0], 2, 1, args.depths[0], args.batch),
                ("2proc-1thread depth %d" % args.depths[0], 1, 2, args.depths[0], args.batch // 2)]
    print(f"| layout | step ({args.batch} events) | forward | loss | backward | events per hour |")
    print("|---|---|---|---|---|---|")
    for name, threads, workers, depth, batch in layouts:
        results = run_workers(threads, workers, depth, batch, args.steps, args.data)
        step = max(r["step_s"] for r in results)  # a data-parallel step waits for the slower
        shares = {k: statistics.mean(r[k] for r in results) for k in ("forward", "loss", "backward")}
        print(f"| {name} | {step:.2f} s | {shares['forward']:.0%} | {shares['loss']:.0%} | "
              f"{shares['backward']:.0%} | {3600 * args.batch / step:.0f} |", flush=True)


if __name__ == "__main__":
    main()
