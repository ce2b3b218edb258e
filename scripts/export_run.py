"""Export a long training run's latest weights for the repository (``weights/run/``).

A run longer than one sitting lives in a run directory outside the work tree;
a fresh machine may not have it. Before a session stops, this script writes

* ``<out>/<stage>.pt``: the newest checkpoint's model weights in float16 (no
  optimiser state; ``train --restart-from`` continues from it);
* ``<out>/<stage>.yaml``: where the run stands: iteration and planned length
  (the position in the schedule), event passes, the learning rate, the
  simulator version of its training file and the run's config;
* one row per stretch in ``<out>/README.md``'s log: the iterations, event
  passes and CPU-hours this stretch added (:func:`stretch_cpu_hours`).

It overwrites the same paths each time. ``--combine`` instead joins exported stage
weights into one chain file (the shipped default's format); ``STAGE=PATH`` names the
stage a file stands for (a fine-tuning's export for the stage it continues).

Usage::

    python scripts/export_run.py RUN_DIR --stage spice --out weights/run --world 2
    python scripts/export_run.py --combine uresnet=weights/run/uresnet_balance.pt \\
        weights/run/spice.pt \\
        -c chain_configs/predict.yaml -o weights/spice_default.pt
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mlreco_spice.atomic import atomic_write_text  # noqa: E402
from mlreco_spice.errors import UserError  # noqa: E402

log = logging.getLogger("export_run")

_LOG_HEADER = ("| exported (UTC) | stage | iterations | event passes | CPU-hours |\n"
               "|---|---|---|---|---|\n")
_LOG_TITLE = "## Stretches"


def _stretch_rows(rows: List[Dict[str, str]], after: int, upto: int) -> List[Dict[str, str]]:
    return [r for r in rows if after < int(r["iteration"]) <= upto]


def stretch_cpu_hours(rows: List[Dict[str, str]], world: int) -> float:
    """CPU-hours of logged training rows: their process CPU time summed over the ranks
    (``cpu_s``); rows logged before that column existed count their step's wall time
    (``time_s``) times the processes, which is the CPU time only on an idle machine and
    with ``train.log_every: 1`` (the default: one row per step)."""
    seconds = 0.0
    for row in rows:
        cpu = row.get("cpu_s") or ""
        seconds += float(cpu) if cpu else float(row["time_s"]) * world
    return seconds / 3600.0


def export_stage(run_dir: Path, stage: str, out: Path, world: int,
                 cpu_hours: Optional[float] = None) -> Dict[str, Any]:
    """Export ``run_dir``'s newest checkpoint as ``<out>/<stage>.pt`` and record its state.

    ``cpu_hours`` replaces the stretch's CPU-hours from the log (:func:`stretch_cpu_hours`),
    e.g. the trainer processes' CPU time read with ``ps`` for a stretch logged without
    ``cpu_s`` on a shared machine.
    """
    import yaml

    from mlreco_spice.checkpoint import export_weights, latest_checkpoint, load_checkpoint
    from mlreco_spice.sim.version import read_simulation_info
    from mlreco_spice.training_log import read_train_log

    checkpoint = latest_checkpoint(run_dir)
    record_path = out / f"{stage}.yaml"
    if checkpoint is None and record_path.is_file() and (out / f"{stage}.pt").is_file():
        # A restart from the exported weights that had nothing left to train.
        log.info("no checkpoint in %s: %s stays as exported", run_dir, out / f"{stage}.pt")
        return yaml.safe_load(record_path.read_text())
    if checkpoint is None:
        raise UserError(f"no readable checkpoint in {run_dir}: nothing to export")
    state = load_checkpoint(checkpoint)
    cfg = state["config"]
    iteration, total = int(state["iteration"]), int(state.get("total_iterations") or 0)
    batch = int(cfg["io"]["loader"]["batch_size"]) * world
    out.mkdir(parents=True, exist_ok=True)
    export_weights(checkpoint, out / f"{stage}.pt", half=True)
    previous = yaml.safe_load(record_path.read_text()) if record_path.is_file() else {}
    before = int((previous or {}).get("iteration", 0))
    rows = read_train_log(run_dir / "train_log.csv") if (run_dir / "train_log.csv").is_file() \
        else []
    stretch = _stretch_rows(rows, before, iteration)
    if cpu_hours is None:
        cpu_hours = stretch_cpu_hours(stretch, world)
    files = cfg["io"]["dataset"]["files"]
    try:
        sim = read_simulation_info(files[0]) if files else None
    except (UserError, OSError) as err:  # a glob or a file h5py cannot open: say so, go on
        log.warning("simulator version of %s not recorded: %s", files[0], err)
        sim = None
    record = {
        "stage": stage,
        "iteration": iteration,
        "total_iterations": total,
        "schedule": dict(cfg["train"].get("lr_schedule") or {}),  # a copy: no YAML alias
        "lr": float(rows[-1]["lr"]) if rows else None,
        "events_per_iteration": batch,
        "event_passes": iteration * batch,
        "cpu_hours": round(float((previous or {}).get("cpu_hours", (previous or {}).get(
            "core_hours", 0.0))) + cpu_hours, 3),  # core_hours: its name before session 24
        "simulator": sim,
        "checkpoint": str(checkpoint),
        "config": cfg,
    }
    atomic_write_text(record_path, yaml.safe_dump(record, sort_keys=False))
    _log_stretch(out / "README.md", stage, before, iteration, (iteration - before) * batch,
                 cpu_hours)
    log.info("exported %s (iteration %d of %d, %d event passes) to %s", checkpoint, iteration,
             total, iteration * batch, out / f"{stage}.pt")
    return record


def _log_stretch(readme: Path, stage: str, before: int, iteration: int, passes: int,
                 cpu_hours: float) -> None:
    """Append this stretch to the README's log (the table is created when absent)."""
    text = readme.read_text() if readme.is_file() else "# Long training run\n"
    if _LOG_TITLE not in text:
        text = text.rstrip("\n") + f"\n\n{_LOG_TITLE}\n\n{_LOG_HEADER}"
    if iteration == before:
        return atomic_write_text(readme, text)
    stamp = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    row = f"| {stamp} | {stage} | {before}–{iteration} | {passes:,} | {cpu_hours:.2f} |\n"
    atomic_write_text(readme, text.rstrip("\n") + "\n" + row)


def combine(stage_weights: List[str], config: str, output: Path,
            overrides: Optional[List[str]] = None) -> Path:
    """Join exported stage weights into one chain file with ``config``'s architecture.

    Each item is ``PATH`` (the file stem names the stage: ``weights/run/spice.pt``) or
    ``STAGE=PATH`` (``uresnet=weights/run/uresnet_balance.pt``: a fine-tuning stage's
    export standing in for the stage it continues).
    """
    import torch

    from mlreco_spice.atomic import atomic_write
    from mlreco_spice.chain import Chain
    from mlreco_spice.checkpoint import FORMAT, load_checkpoint
    from mlreco_spice.config import load_config

    import yaml

    sets = list(overrides or [])
    iterations, simulator = {}, None
    for item in stage_weights:
        stage, sep, path = item.partition("=")
        if not sep or not stage or "/" in stage:  # a path, perhaps with "=" in it
            stage, path = Path(item).stem, item
        if stage in iterations:
            raise UserError(f"--combine: two files for stage {stage}")
        sets.append(f"model.modules.{stage}.weights={Path(path).resolve()}")
        iterations[stage] = int(load_checkpoint(path).get("iteration") or 0)
        record = Path(path).with_suffix(".yaml")
        if record.is_file():
            # The events the weights learnt from: make demo warns when they differ.
            simulator = (yaml.safe_load(record.read_text()) or {}).get("simulator") or simulator
    cfg = load_config(config, sets)
    # A stage the config does not run would be ignored, and the chain would ship that
    # stage's random initial weights (e.g. uresnet_balance.pt given without "uresnet=").
    stages = list(cfg["model"]["stages"])
    unknown = sorted(set(iterations) - set(stages))
    missing = [s for s in stages if s not in iterations]
    if unknown or missing:
        raise UserError(f"--combine: {config} runs the stages {stages}; "
                        + (f"no such stage {unknown} (name it: STAGE=PATH)" if unknown else "")
                        + ("; " if unknown and missing else "")
                        + (f"no file for {missing}" if missing else ""))
    chain = Chain(cfg["model"])   # loads each stage's weights, naming any mismatch
    model = {k: (v.half() if v.is_floating_point() else v) for k, v in chain.state_dict().items()}
    payload = {"model": model, "config": cfg, "iteration": max(iterations.values()),
               "stage_iterations": iterations, "simulator": simulator, "format": FORMAT}
    atomic_write(output, lambda stream: torch.save(payload, stream))
    log.info("joined %s into %s", ", ".join(stage_weights), output)
    return output


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n".join(__doc__.splitlines()[2:]))
    p.add_argument("run_dir", nargs="?", help="the stage's run directory (train.output_dir)")
    p.add_argument("--stage", help="stage name (uresnet, uresnet_balance, uresnet_dots or spice): the "
                   "exported file's name")
    p.add_argument("--out", default=str(ROOT / "weights/run"), help="where to export "
                   "(default: %(default)s)")
    p.add_argument("--world", type=int, default=1, help="processes the run trains with "
                   "(events per iteration = io.loader.batch_size x world) (default: 1)")
    p.add_argument("--cpu-hours", type=float, metavar="H", help="this stretch's CPU-hours, "
                   "measured (e.g. ps): replaces the log's figure (default: from train_log.csv)")
    p.add_argument("--combine", nargs="+", metavar="[STAGE=]STAGE.pt",
                   help="join exported stage weights into one file (the file stem is the "
                   "stage name unless STAGE= gives it)")
    p.add_argument("-c", "--config", default="predict", help="chain config for --combine "
                   "(default: %(default)s)")
    p.add_argument("-o", "--output", help="output of --combine")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.combine:
            if not args.output:
                p.error("--combine needs -o OUTPUT")
            combine(args.combine, args.config, Path(args.output))
            return 0
        if not args.run_dir or not args.stage:
            p.error("give RUN_DIR and --stage (or --combine)")
        if args.world < 1:
            p.error("--world must be >= 1")
        if args.cpu_hours is not None and args.cpu_hours < 0:
            p.error("--cpu-hours must be >= 0")
        export_stage(Path(args.run_dir), args.stage, Path(args.out), args.world, args.cpu_hours)
    except UserError as err:
        log.error("%s", err)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
