"""One function per CLI subcommand: turn parsed arguments into library calls.

Nothing here holds logic a Python user could not reach: each ``run_*`` only
loads the config, resolves arguments, and calls the library function named
in its docstring.
"""
from __future__ import annotations

import argparse
import logging
import os
from typing import List, Optional, Tuple

from .atomic import check_output_file
from .config import load_config
from .errors import UserError

log = logging.getLogger(__name__)


def parse_shard(text: Optional[str]) -> Optional[Tuple[int, int]]:
    """``"i/n"`` -> ``(i, n)`` with 0 <= i < n (shards count from 0)."""
    if text is None:
        return None
    try:
        index, count = (int(v) for v in text.split("/"))
    except ValueError:
        raise UserError(f"--shard expects i/n with integers, e.g. 0/4, got '{text}'") from None
    if count < 1 or not 0 <= index < count:
        raise UserError(f"--shard {text}: need 0 <= i < n (shards count from 0)")
    return index, count


def _run_overrides(args: argparse.Namespace) -> List[str]:
    sets = list(args.set or [])
    if getattr(args, "weights", None):
        sets.append(f"predict.weights={args.weights}")
    return sets


def run_simulate(args: argparse.Namespace) -> int:
    """:func:`mlreco_spice.sim.simulate_file` or :func:`mlreco_spice.sim.stats.print_file_stats`."""
    if args.stats:
        from .sim.stats import print_file_stats

        print_file_stats(args.stats)
        return 0
    if not args.output or args.events is None:
        raise UserError("simulate needs -o FILE and -n N (or --stats FILE)")
    if args.events < 1:
        raise UserError(f"-n must be at least 1, got {args.events}")
    if args.size < 8:
        raise UserError(f"--size must be at least 8 voxels, got {args.size}")
    if args.voxel_mm <= 0:
        raise UserError(f"--voxel-mm must be positive, got {args.voxel_mm}")
    check_output_file(args.output, overwrite=args.overwrite)
    from .sim import simulate_file

    simulate_file(args.output, n_events=args.events, seed=args.seed, size=args.size,
                  voxel_mm=args.voxel_mm, first_event=args.first_event, labels=args.labels,
                  progress=False if args.quiet else None)
    return 0


def run_train(args: argparse.Namespace) -> int:
    """:func:`mlreco_spice.train.train`."""
    cfg = load_config(args.config, args.set, require=["io.dataset.files"])
    if cfg["train"]["deterministic"]:
        # Must happen before torch and MinkowskiEngine start their thread pools.
        os.environ["OMP_NUM_THREADS"] = "1"
    from .train import train

    train(cfg, resume=args.resume, overwrite=args.overwrite,
          restart_from=getattr(args, "restart_from", None), progress=not args.quiet)
    return 0


def run_average(args: argparse.Namespace) -> int:
    """:func:`mlreco_spice.weight_average.average_run`."""
    check_output_file(args.output, overwrite=args.overwrite)
    from .weight_average import average_run

    average_run(args.run_dir, args.output, first=args.first, last=args.last, every=args.every,
                bn_events=args.bn_events, bn_files=args.bn_files, seed=args.seed,
                progress=not args.quiet)
    return 0


def run_predict(args: argparse.Namespace) -> int:
    """:func:`mlreco_spice.predict.predict_files`."""
    cfg = load_config(args.config, _run_overrides(args))
    from .predict import predict_files

    report = predict_files(cfg, args.input, args.output, shard=parse_shard(args.shard),
                           max_events=args.max_events, overwrite=args.overwrite)
    return 1 if report.failed_files else 0


def run_evaluate(args: argparse.Namespace) -> int:
    """:func:`analysis.evaluate.evaluate`."""
    cfg = load_config(args.config, _run_overrides(args))
    from analysis.evaluate import evaluate

    report = evaluate(cfg, args.input, args.output, shard=parse_shard(args.shard),
                      max_events=args.max_events, overwrite=args.overwrite,
                      plots=args.plots, append=args.append)
    return 1 if report.failed_files else 0


def run_tune(args: argparse.Namespace) -> int:
    """:func:`mlreco_spice.tune_files.tune_from_files`."""
    if args.step <= 0 or args.step > 0.5:
        raise UserError(f"--step must be in (0, 0.5], got {args.step}")
    if args.events < 1:
        raise UserError(f"--events must be at least 1, got {args.events}")
    cfg = load_config(args.config, _run_overrides(args))
    check_output_file(args.output)  # before minutes of network and grid search
    from .cluster.tuning import format_threshold_table
    from .tune_files import tune_from_files

    result = tune_from_files(cfg, args.input, args.output, n_events=args.events, step=args.step,
                             metric=args.metric, progress=not args.quiet)
    print(format_threshold_table(result))
    return 0


def run_display(args: argparse.Namespace) -> int:
    """:func:`analysis.display.display_event`."""
    if args.entry < 0:
        raise UserError(f"--entry must be >= 0, got {args.entry}")
    cfg = load_config(args.config, _run_overrides(args))
    from analysis.display import display_event

    display_event(cfg, args.input, args.entry, args.output)
    return 0


def run_import_config(args: argparse.Namespace) -> int:
    """:func:`mlreco_spice.interop.import_config.import_config_file`; prints the mapping."""
    from .interop.import_config import import_config_file

    translation = import_config_file(args.peer, args.output, overwrite=args.overwrite)
    print(translation.report())  # the mapping is this command's output
    print(f"# written: {args.output}")
    return 0


__all__ = ["parse_shard"] + [n for n in dir() if n.startswith("run_")]
