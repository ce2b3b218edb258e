"""The learning-rate schedule of a training run: built, resumed with another length,
or restarted from exported weights with a warm-up.

The cosine schedule's length is the run's iteration count, fixed when the run
starts: a resumed run of another length re-lays the rest of the cosine from
the checkpoint's rate (it never rises again), and a run restarted from
exported weights (``train --restart-from``) moves the schedule to their
iteration and ramps the rate up again, since Adam's moments are not in them.
"""
from __future__ import annotations

import logging
import warnings
from typing import Any, Dict, Optional

import torch

from .chain import Chain
from .checkpoint import config_hint, load_checkpoint, load_state_into
from .errors import UserError

__all__ = ["build_scheduler", "resumed_cosine", "restart_from_weights", "warmup_factor"]

log = logging.getLogger("mlreco_spice.train")


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: Optional[Dict[str, Any]],
                    iterations: int):
    """Optional LR schedule from ``train.lr_schedule`` (stepped every iteration).

    ``{name: step, step_size: N, gamma: g}``, ``{name: cosine}`` (to
    ``min_lr``, default 0, over the run) or ``{name: exponential, gamma: g}``.
    """
    if not cfg:
        return None
    cfg = dict(cfg)
    name = cfg.pop("name", None)
    try:
        if name == "step":
            return torch.optim.lr_scheduler.StepLR(optimizer, step_size=int(cfg["step_size"]),
                                                   gamma=float(cfg.get("gamma", 0.1)))
        if name == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, iterations),
                                                              eta_min=float(cfg.get("min_lr", 0.0)))
        if name == "exponential":
            return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=float(cfg["gamma"]))
    except KeyError as err:
        raise UserError(f"train.lr_schedule '{name}' needs the key {err}") from None
    raise UserError(f"train.lr_schedule.name '{name}' is not one of step, cosine, exponential")


def resumed_cosine(optimizer: torch.optim.Optimizer, cfg: Dict[str, Any], start: int,
                    planned: int, total: int):
    """A cosine schedule for a run resumed with another length.

    The checkpoint's schedule ends at ``planned``; past its end a cosine rises
    again. The new one starts from the checkpoint's learning rate and anneals
    to ``min_lr`` over the ``total - start`` iterations left, so the rate never
    jumps back up.
    """
    lr = float(optimizer.param_groups[0]["lr"])
    for group in optimizer.param_groups:
        group["initial_lr"] = group["lr"]  # the new schedule's starting point
    log.warning("train.iterations changed from %d (checkpoint) to %d: the cosine schedule now "
                "goes from the checkpoint's learning rate %.3g to min_lr %.3g over the %d "
                "iterations left", planned, total, lr, float(cfg.get("min_lr", 0.0)), total - start)
    return build_scheduler(optimizer, cfg, total - start)


def restart_from_weights(chain: Chain, scheduler, path: str, total: int) -> int:
    """Load exported weights (or a checkpoint's model) and move the schedule to their iteration.

    The optimiser's moments are not in an exported file: the caller warms the
    learning rate up again (``train.restart_warmup``).
    """
    state = load_checkpoint(path, map_location="cpu")
    load_state_into(chain, state["model"], f"--restart-from {path}", hint=config_hint(path, state))
    start = int(state.get("iteration") or 0)
    planned = state.get("total_iterations")
    if planned and int(planned) != total:
        log.warning("--restart-from %s: those weights were trained for a %d-iteration run, this "
                    "run is %d long: the schedule is this run's, at iteration %d", path,
                    int(planned), total, start)
    if scheduler is not None:
        with warnings.catch_warnings():
            # Stepping the schedule with no optimiser step is the point here.
            warnings.simplefilter("ignore", UserWarning)
            for _ in range(min(start, total)):
                scheduler.step()
    log.info("restarting from %s at iteration %d of %d: model weights loaded, learning-rate "
             "schedule and batch order continue from there, Adam's moments start afresh",
             path, start, total)
    return start


def warmup_factor(iteration: int, start: int, warmup: int) -> float:
    """Linear ramp of the learning rate over the first ``warmup`` iterations after a restart."""
    return 1.0 if warmup <= 0 else min(1.0, (iteration - start + 1) / warmup)
