"""Training loop: two-stage seediness freeze, checkpoints, resume, DDP (schedule: schedule.py).

:func:`train` is what ``mlreco-spice train`` calls. Outputs in
``train.output_dir``:

* ``checkpoint-<iteration>.pt``: model, optimiser, scheduler, RNG and the
  config, written atomically every ``train.checkpoint_every`` iterations (and every
  ``train.checkpoint_minutes`` of wall time, when set) and
  at the end (the last ``train.keep_checkpoints`` are kept);
* ``train_log.csv``: one row per logged iteration with every loss term
  (under torchrun, each term averaged over the ranks that have it);
* ``config.yaml``: the complete config of the run;
* ``skipped.csv``: events skipped as bad, with file, entry and reason.

Ctrl-C (SIGINT) saves a checkpoint at the current iteration and exits cleanly.

A directory already holding a run (checkpoints or ``train_log.csv``) is
refused unless ``resume`` (continue it) or ``overwrite`` (remove it first):
two runs must not mix. Resuming with another total length keeps a cosine
schedule from rising again: it goes from the checkpoint's learning rate to
``min_lr`` over the iterations left (logged as a warning).
"""
from __future__ import annotations

import logging
import math
import os
import random
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch

from .atomic import atomic_write_text, check_output_dir
from .chain import Chain
from .checkpoint import (config_hint, latest_checkpoint, list_checkpoints, load_checkpoint,
                         load_state_into, remove_stale_temps, save_checkpoint)
from .config import default_output_dir, dump_config
from .distributed import DistContext, init_distributed, pick_device
from .errors import UserError
from .sampling import IterationBatchSampler
from .schedule import build_scheduler, restart_from_weights, resumed_cosine, warmup_factor
from .training_log import CPU_KEY, NO_ROW_KEY, SkipRecorder, TrainLog, scalar_terms

log = logging.getLogger(__name__)

__all__ = ["train", "TrainResult", "build_optimizer", "build_scheduler", "seed_everything"]


@dataclass
class TrainResult:
    """What a training run did."""

    output_dir: Path
    start_iteration: int
    last_iteration: int
    last_checkpoint: Optional[Path]
    interrupted: bool = False
    model: Optional[torch.nn.Module] = None


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


def build_optimizer(params, cfg: Dict[str, Any]) -> torch.optim.Optimizer:
    """Adam / AdamW / SGD from ``train.optimizer``."""
    name, lr, wd = cfg["name"], float(cfg["lr"]), float(cfg.get("weight_decay", 0.0))
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    return torch.optim.SGD(params, lr=lr, weight_decay=wd, momentum=0.9)


def _to_device(batch: Dict[str, Any], device: torch.device) -> Dict[str, Any]:
    return {k: (v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v)
            for k, v in batch.items()}


def _total_iterations(cfg: Dict[str, Any], n_events: int, world: int) -> int:
    tcfg = cfg["train"]
    if tcfg.get("epochs"):
        per_epoch = math.ceil(n_events / (cfg["io"]["loader"]["batch_size"] * world))
        return int(tcfg["epochs"]) * per_epoch
    return int(tcfg["iterations"])


class _Wrapped:
    """The chain, possibly inside DistributedDataParallel (re-wrapped when freezing changes)."""

    def __init__(self, chain: Chain, dist: DistContext, device: torch.device):
        self.chain, self.dist, self.device = chain, dist, device
        self.module: torch.nn.Module = chain
        self.wrap()

    def wrap(self) -> None:
        if not self.dist.enabled:
            return
        from torch.nn.parallel import DistributedDataParallel as DDP

        # Why re-wrap: DDP fixes the set of parameters it reduces at
        # construction, so unfreezing the seediness branch needs a new wrapper.
        # Buffers (batch-norm statistics) are synced from rank 0 at every
        # forward: DDP's default, whose keyword changed name in torch 2.13.
        self.module = DDP(self.chain, device_ids=[self.device] if self.device.type == "cuda" else None)


_LOG_FILES = ("train_log.csv", "skipped.csv", "config.yaml")


def _claim_output_dir(out: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to start a new run over an old one (the two would mix), before any work.

    A directory holds a run when it has checkpoints or a ``train_log.csv``;
    a new run there needs ``resume`` (continue it) or ``overwrite`` (replace it).
    """
    if resume and overwrite:
        raise UserError(f"--resume continues the run in {out} and --overwrite replaces it: "
                        f"give one, not both")
    check_output_dir(out, "train.output_dir")
    if resume or overwrite:
        return
    held = list_checkpoints(out)
    if (out / "train_log.csv").exists():
        held.append(out / "train_log.csv")
    if held:
        raise UserError(f"train.output_dir {out} already holds a run ({held[-1].name}): use "
                        f"--resume to continue it, --overwrite to replace it, or another "
                        f"train.output_dir")


def _clear_old_run(out: Path) -> None:
    """Remove what an earlier run left in ``out`` (a fresh run starts empty)."""
    for path in list_checkpoints(out) + [out / name for name in _LOG_FILES]:
        if path.exists():
            log.info("removing %s of the previous run", path)
            path.unlink()


def train(cfg: Dict[str, Any], resume: bool = False, progress: bool = True,
          overwrite: bool = False, restart_from: Optional[str] = None) -> TrainResult:
    """Train the chain described by a complete config (see :func:`load_config`).

    Parameters
    ----------
    cfg : dict
        Complete config; ``io.dataset.files`` must be set.
    resume : bool
        Continue from the newest readable checkpoint in ``train.output_dir``.
    progress : bool
        Show a tqdm bar (rank 0 only).
    overwrite : bool
        Replace a run already in ``train.output_dir`` (its checkpoints and logs
        are removed). Without it, or ``resume``, such a directory is refused.
    restart_from : str, optional
        Start a new run from exported weights (or a checkpoint) at the
        iteration they record: the schedule and batch order continue from
        there; Adam's moments restart, with a linear warm-up of
        ``train.restart_warmup`` iterations. For a long run whose run
        directory is lost but whose weights were committed.
    """
    from parsers.collate import collate_events
    from parsers.dataset import SpiceDataset
    from tqdm import tqdm

    tcfg = cfg["train"]
    if tcfg["deterministic"] and os.environ.get("OMP_NUM_THREADS") != "1":
        log.warning("train.deterministic: bit-exact CPU runs need OMP_NUM_THREADS=1 before torch "
                    "is imported (`mlreco-spice train` sets it); this process uses %d threads",
                    torch.get_num_threads())
    out = Path(tcfg["output_dir"] or default_output_dir(None)).resolve()
    # Before the process group forms: no rank has written anything yet, so all
    # ranks see the same directory and agree.
    if resume and restart_from:
        raise UserError("--resume continues the run in train.output_dir and --restart-from "
                        "starts a new one from exported weights: give one of them")
    _claim_output_dir(out, resume, overwrite)
    dist = init_distributed(tcfg["device"])
    device = pick_device(tcfg["device"], dist.local_rank)
    if dist.is_main:
        out.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(out)
        if not resume:
            _clear_old_run(out)
        log.info("writing checkpoints, train_log.csv and config.yaml to %s", out)
    seed_everything(int(tcfg["seed"]))

    dataset = SpiceDataset(cfg["io"])
    chain = Chain(cfg["model"]).to(device)
    optimizer = build_optimizer([p for p in chain.parameters()], tcfg["optimizer"])
    total = _total_iterations(cfg, len(dataset), dist.world_size)
    scheduler = build_scheduler(optimizer, tcfg.get("lr_schedule"), total)

    start = 0
    if resume:
        path = latest_checkpoint(out)
        if path is None:
            raise UserError(f"--resume: no readable checkpoint in {out}")
        state = load_checkpoint(path, map_location=device)
        # Names the mismatching layers when the config's architecture changed.
        load_state_into(chain, state["model"], f"--resume checkpoint {path}",
                        hint=config_hint(path, state))
        optimizer.load_state_dict(state["optimizer"])
        start = int(state["iteration"])
        planned = state.get("total_iterations") or _total_iterations(
            state.get("config") or cfg, len(dataset), dist.world_size)
        if scheduler is not None and state.get("scheduler"):
            if planned != total and (tcfg.get("lr_schedule") or {}).get("name") == "cosine":
                scheduler = resumed_cosine(optimizer, tcfg["lr_schedule"], start, planned, total)
            else:
                scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"]["torch"])
        log.info("resuming from %s (iteration %d)", path, start)
    elif restart_from:
        start = restart_from_weights(chain, scheduler, restart_from, total)
    warmup_until = start + int(tcfg["restart_warmup"]) if restart_from else start
    if start >= total:
        log.info("nothing to do: already at iteration %d of %d", start, total)
        dist.close()
        return TrainResult(out, start, start, latest_checkpoint(out) if dist.is_main else None,
                           model=chain)

    freeze_until = int(tcfg["freeze_seediness_iterations"])
    seed_frozen = start < freeze_until and chain.set_seediness_frozen(True)
    wrapped = _Wrapped(chain, dist, device)
    sampler = IterationBatchSampler(len(dataset), cfg["io"]["loader"]["batch_size"], int(tcfg["seed"]),
                                    start, total, dist.rank, dist.world_size,
                                    shuffle=cfg["io"]["loader"]["shuffle"])
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler, collate_fn=collate_events,
                                         num_workers=cfg["io"]["loader"]["num_workers"])
    train_log = TrainLog(out / "train_log.csv", start, enabled=dist.is_main)
    skips = SkipRecorder(out / "skipped.csv", enabled=dist.is_main)
    if dist.is_main:
        atomic_write_text(out / "config.yaml", dump_config(cfg))

    spare = None if tcfg["keep_grid_from"] is None else (int(tcfg["keep_grid_from"]),
                                                          int(tcfg["checkpoint_every"]))

    def checkpoint(iteration: int) -> Optional[Path]:
        if not dist.is_main:
            return None
        return save_checkpoint(out, iteration, {
            "model": chain.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "config": cfg, "rng": {"torch": torch.get_rng_state()}, "total_iterations": total,
            "version": __import__("mlreco_spice").__version__,
        }, keep=int(tcfg["keep_checkpoints"]), spare=spare)

    minutes = tcfg.get("checkpoint_minutes")
    saved_at = time.monotonic()
    # Process CPU time between logged rows, summed over the ranks: the CPU a run really
    # used (a step's wall time overstates it when the machine is shared).
    cpu_mark = time.process_time()

    def gather_cpu(values: Dict[str, float], no_row: bool
                   ) -> Tuple[Dict[str, float], Optional[float], float]:
        """The ranks' mean terms, their summed CPU time since the last row (None when rank 0
        writes no row: its whole batch was skipped) and the new CPU mark (unchanged then,
        so the time goes to the next row). A collective: every rank calls it."""
        now = time.process_time()
        means = dist.mean_over_ranks({**values, CPU_KEY: now - cpu_mark,
                                      **({NO_ROW_KEY: 1.0} if no_row else {})})
        cpu_seconds = means.pop(CPU_KEY) * dist.world_size
        if means.pop(NO_ROW_KEY, None) is not None:
            return means, None, cpu_mark
        return means, cpu_seconds, now

    def checkpoint_due(iteration: int) -> bool:
        # Wall-clock checkpoints too: a long run on a busy machine loses at most
        # `checkpoint_minutes` to a hard stop, however slow its iterations are.
        return (iteration % int(tcfg["checkpoint_every"]) == 0 or iteration == total
                or (minutes is not None and time.monotonic() - saved_at >= 60 * float(minutes)))

    interrupted = {"flag": False}
    previous_handler = signal.getsignal(signal.SIGINT)

    def on_sigint(signum, frame):  # finish the current iteration, then save
        interrupted["flag"] = True
        log.warning("SIGINT: saving a checkpoint after this iteration and stopping")

    signal.signal(signal.SIGINT, on_sigint)
    chain.train()
    iteration, last_ckpt = start, None
    dropped = 0  # cluster3d voxels absent from the data voxels (normal; counted, not fatal)
    bar = tqdm(total=total, initial=start, disable=not (progress and dist.is_main),
               dynamic_ncols=True, desc="train")
    try:
        for batch in loader:
            if seed_frozen and iteration >= freeze_until:
                chain.set_seediness_frozen(False)
                seed_frozen = False
                wrapped.wrap()
                log.info("iteration %d: seediness branch unfrozen (stage 2)", iteration)
            skips.record(batch.get("skipped", []))
            dropped += sum(int(stats.get("dropped_cluster_voxels", 0))
                           for event in batch.get("parse_stats", []) for stats in event.values())
            tick = time.perf_counter()
            batch = _to_device(batch, device)
            if batch["batch_size"] == 0:
                log.warning("iteration %d: every event of the batch was skipped", iteration)
                iteration += 1
                if iteration % int(tcfg["log_every"]) == 0 or iteration == total:
                    # The other ranks wait for this rank's terms (none) and CPU time.
                    cpu_mark = gather_cpu({}, no_row=dist.is_main)[2]
                bar.update(1)
                continue
            optimizer.zero_grad(set_to_none=True)
            outputs = wrapped.module(batch)
            terms = chain.compute_loss(batch, outputs)
            terms["loss"].backward()
            warm = warmup_factor(iteration, start, warmup_until - start) \
                if iteration < warmup_until else 1.0
            for group in optimizer.param_groups:
                group["lr"] *= warm
            used_lr = optimizer.param_groups[0]["lr"]  # logged: the rate this step used
            optimizer.step()
            for group in optimizer.param_groups:
                # The schedule computes the next rate from this one: give it back unscaled.
                group["lr"] /= warm
            if scheduler is not None:
                scheduler.step()
            iteration += 1
            elapsed = time.perf_counter() - tick
            if iteration % int(tcfg["log_every"]) == 0 or iteration == total:
                # Every rank takes part (a collective); rank 0 writes the means.
                means, cpu_seconds, cpu_mark = gather_cpu(scalar_terms(terms), no_row=False)
                if cpu_seconds is not None:
                    train_log.write(iteration, means, used_lr, elapsed, cpu_seconds=cpu_seconds)
            bar.set_postfix(loss=f"{float(terms['loss'].detach()):.4f}", refresh=False)
            bar.update(1)
            if checkpoint_due(iteration) or interrupted["flag"]:
                last_ckpt = checkpoint(iteration) or last_ckpt
                saved_at = time.monotonic()
            if interrupted["flag"]:
                break
    finally:
        bar.close()
        train_log.close()
        skips.close()
        signal.signal(signal.SIGINT, previous_handler)
        if dist.enabled and not interrupted["flag"]:
            # DDP syncs buffers at the start of each forward, so after the last
            # one every rank holds its own batch-norm statistics: end on rank 0's.
            for buffer in chain.buffers():
                torch.distributed.broadcast(buffer, src=0)
        dist.close()
    if dropped:
        log.info("%d cluster3d voxels absent from the data voxels were dropped from the labels",
                 dropped)
    if interrupted["flag"]:
        log.warning("stopped by SIGINT at iteration %d; resume with --resume", iteration)
    return TrainResult(out, start, iteration, last_ckpt, interrupted["flag"], chain)
