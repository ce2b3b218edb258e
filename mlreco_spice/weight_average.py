"""Weight averaging of a run's checkpoints, with batch-norm statistics recomputed.

At a constant learning rate the weights wander around a minimum from one
checkpoint to the next; their mean sits nearer its centre (stochastic weight
averaging, Izmailov et al. 2018, arXiv:1803.05407). The batch-norm running
statistics of averaged weights are not those of any checkpoint, and a
checkpoint's own are an exponential average over its last few one-event
batches; so they are recomputed over training events with the averaged
weights: each training batch's statistics averaged with equal weight (precise
batch norm, as detectron2's ``update_bn_stats``). Batch norms the chain keeps
in eval mode (a ``freeze: true`` stage) keep the averaged statistics.

The result is a float32 checkpoint without optimiser state (like
:func:`mlreco_spice.checkpoint.export_weights` without ``half``): it loads
wherever weights do (``scripts/export_run.py --combine`` stores it in float16),
and records which checkpoints it averages and over which events its
statistics were taken (``averaged``).
"""
from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence

import torch

from .atomic import atomic_write
from .checkpoint import (FORMAT, CheckpointError, checkpoint_iteration, list_checkpoints,
                         load_checkpoint)
from .errors import UserError

log = logging.getLogger(__name__)

__all__ = ["regular_checkpoints", "average_states", "recompute_batchnorm", "average_run"]


def regular_checkpoints(directory: Path, first: int, last: Optional[int] = None,
                        every: int = 400) -> List[Path]:
    """Checkpoints of ``directory`` at iterations ``first``, ``first + every``, ... ``last``.

    Only iterations on that grid count, so that each stretch of training has
    the same weight in the mean (a run also saves on the wall clock, off the
    grid). ``last`` defaults to the newest one on the grid. Every grid point
    between ``first`` and ``last`` must be present: a gap is an error naming
    the missing iterations (``train.keep_checkpoints`` prunes old ones unless
    ``train.keep_grid_from`` spares them).
    """
    if every < 1:
        raise UserError(f"checkpoint spacing must be >= 1 iteration, got {every}")
    for name, value in (("first", first), ("last", last)):
        if value is not None and (value < 0 or value % every):
            raise UserError(f"{name} iteration {value} is not on the grid of every {every} "
                            "iterations (a multiple of train.checkpoint_every)")
    found = {checkpoint_iteration(p): p for p in list_checkpoints(Path(directory))
             if checkpoint_iteration(p) % every == 0 and checkpoint_iteration(p) >= first}
    newest = max(found, default=None)
    if newest is None:
        raise UserError(f"no checkpoint at or after iteration {first} on the grid of every "
                        f"{every} in {directory}")
    if last is None:
        last = newest
    if last < first:
        raise UserError(f"last iteration {last} is before the first, {first}")
    if last > newest:
        raise UserError(f"the newest checkpoint on the grid of every {every} in {directory} is "
                        f"iteration {newest}, before the last asked for, {last}")
    wanted = range(first, last + 1, every)
    missing = [i for i in wanted if i not in found]
    if missing:
        shown = ", ".join(str(i) for i in missing[:8]) + (" ..." if len(missing) > 8 else "")
        raise UserError(f"{directory} lacks the checkpoints of iterations {shown} (pruned by "
                        "train.keep_checkpoints? train.keep_grid_from spares them): the mean "
                        "would weight the stretches unequally; choose --first after them")
    return [found[i] for i in wanted]


def average_states(paths: Sequence[Path]) -> Dict[str, Any]:
    """The checkpoint of ``paths[-1]`` with its model weights replaced by the mean of all.

    Floating-point tensors are averaged in float64; integer buffers (batch
    norm's ``num_batches_tracked``) are taken from the last checkpoint.
    """
    if not paths:
        raise UserError("no checkpoints to average")
    total: Dict[str, torch.Tensor] = {}
    payload: Dict[str, Any] = {}
    for path in paths:
        payload = load_checkpoint(path)
        model = payload["model"]
        if total and set(model) != set(total):
            raise CheckpointError(f"{path} holds other parameters than {paths[0]}: "
                                  "checkpoints of different architectures")
        for key, value in model.items():
            if key in total and total[key].shape != value.shape:
                raise CheckpointError(f"{path}: {key} has shape {tuple(value.shape)}, "
                                      f"{tuple(total[key].shape)} in {paths[0]}")
            if not value.is_floating_point():
                total[key] = value.clone()
            elif key in total:
                total[key] += value.double()
            else:
                total[key] = value.double()
    model = {key: (value / len(paths)).to(payload["model"][key].dtype)
             if value.is_floating_point() else value for key, value in total.items()}
    return {**payload, "model": model}


def recompute_batchnorm(module: torch.nn.Module, batches: Iterable[Dict[str, Any]],
                        progress: bool = False, total: Optional[int] = None) -> int:
    """Set the running statistics of ``module``'s batch norms to the equal-weight mean of
    the statistics of ``batches`` (each a collated batch, as in training).

    Only the batch norms that ``module.train()`` puts in training mode change: a stage the
    chain keeps in eval mode (``freeze: true``) keeps its statistics. Returns the number
    of events used (``batch_size`` summed; batches without events are passed over). The module is left in eval
    mode with its momenta restored.
    """
    from tqdm import tqdm

    module.train()
    norms = [m for m in module.modules()
             if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.training]
    momenta = [m.momentum for m in norms]
    for norm in norms:
        # momentum None: a cumulative average, every batch the same weight; the first
        # batch replaces the old statistics, which until then remain the fallback of a
        # layer that meets a single voxel (models.blocks.NormAct).
        norm.num_batches_tracked.zero_()
        norm.momentum = None
    used = 0
    try:
        with torch.no_grad():
            for batch in tqdm(batches, total=total, disable=not progress, desc="batch norm",
                              dynamic_ncols=True):
                if batch["batch_size"] == 0:
                    continue
                module(batch)
                used += int(batch["batch_size"])
    finally:
        for norm, momentum in zip(norms, momenta):
            norm.momentum = momentum
        module.eval()
    if used == 0 and norms:
        raise UserError("no event to recompute the batch-norm statistics on (all skipped)")
    return used


def _bn_batches(cfg: Dict[str, Any], files: Sequence[str], events: int, seed: int
                ) -> Iterator[Dict[str, Any]]:
    """Batches of ``io.loader.batch_size`` events (the training batch, whose statistics the
    network was trained with), ``events`` events in all drawn without replacement from
    ``files`` (all of them when they hold fewer)."""
    from parsers.collate import collate_events
    from parsers.dataset import SpiceDataset

    io = copy.deepcopy(cfg["io"])
    io["dataset"]["files"] = list(files)
    dataset = SpiceDataset(io)
    size = max(1, int(io["loader"]["batch_size"]))
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(dataset), generator=generator)[:events].tolist()
    for start in range(0, len(order), size):
        yield collate_events([dataset[index] for index in order[start:start + size]])


def _run_every(directory: Path) -> int:
    """``train.checkpoint_every`` of the run in ``directory`` (its newest checkpoint's config)."""
    paths = list_checkpoints(Path(directory))
    if not paths:
        raise UserError(f"no checkpoint in {directory}")
    cfg = load_checkpoint(paths[-1]).get("config") or {}
    every = (cfg.get("train") or {}).get("checkpoint_every")
    if not every:
        raise UserError(f"{paths[-1]} records no train.checkpoint_every: give --every")
    return int(every)


def average_run(directory: Path, output: Path, first: int, last: Optional[int] = None,
                every: Optional[int] = None, bn_events: int = 200,
                bn_files: Optional[Sequence[str]] = None, seed: int = 0,
                progress: bool = True) -> Dict[str, Any]:
    """Average a run's checkpoints (:func:`regular_checkpoints`; ``every`` defaults to the
    run's ``train.checkpoint_every``), recompute the batch-norm statistics over
    ``bn_events`` events of ``bn_files`` (default: the run's training files), and write the
    weights to ``output`` atomically. Returns the ``averaged`` record written with them.
    """
    from .chain import Chain

    if bn_events < 1:
        raise UserError(f"batch-norm events must be >= 1, got {bn_events}")
    every = _run_every(directory) if every is None else every
    paths = regular_checkpoints(directory, first, last, every)
    log.info("averaging %d checkpoints, iterations %d to %d", len(paths),
             checkpoint_iteration(paths[0]), checkpoint_iteration(paths[-1]))
    payload = average_states(paths)
    cfg = payload.get("config")
    if not cfg:
        raise CheckpointError(f"{paths[-1]} records no config: cannot build its network")
    files = list(bn_files or cfg["io"]["dataset"]["files"])
    # The stages' own weights files (a run started from given weights) are not needed:
    # the averaged state replaces them, and they may have moved since.
    model_cfg = copy.deepcopy(cfg["model"])
    for block in (model_cfg.get("modules") or {}).values():
        if isinstance(block, dict) and "weights" in block:
            block["weights"] = None
    chain = Chain(model_cfg)
    chain.load_state_dict(payload["model"])
    size = max(1, int(cfg["io"]["loader"]["batch_size"]))
    used = recompute_batchnorm(chain, _bn_batches(cfg, files, bn_events, seed),
                               progress=progress, total=-(-bn_events // size))
    record = {"iterations": [checkpoint_iteration(p) for p in paths], "every": every,
              "bn_events": used, "bn_batch_size": size, "bn_files": [str(f) for f in files],
              "bn_seed": seed}
    slim = {key: payload[key] for key in ("config", "iteration", "total_iterations", "version")
            if key in payload}
    slim.update({"format": FORMAT, "model": chain.state_dict(), "averaged": record})
    atomic_write(Path(output), lambda stream: torch.save(slim, stream))
    log.info("wrote the mean of %d checkpoints (batch norm over %d events) to %s", len(paths),
             used, output)
    return record
