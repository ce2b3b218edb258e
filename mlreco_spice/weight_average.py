"""Weight averaging of a run's checkpoints, with batch-norm statistics recomputed.

At a constant learning rate the weights wander around a minimum from one
checkpoint to the next; their mean sits nearer its centre (stochastic weight
averaging, Izmailov et al. 2018, arXiv:1803.05407). The batch-norm running
statistics of averaged weights are not those of any checkpoint, and a
checkpoint's own are an exponential average over its last few one-event
batches; so they are recomputed over training events with the averaged
weights: each event's batch statistics averaged with equal weight (precise
batch norm, as detectron2's ``update_bn_stats``).

The result is a checkpoint without optimiser state (like
:func:`mlreco_spice.checkpoint.export_weights`): it loads wherever weights do,
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
    the missing iterations (``train.keep_checkpoints`` prunes old ones unless ``train.keep_grid_from`` spares
    them).
    """
    if every < 1:
        raise UserError(f"checkpoint spacing must be >= 1 iteration, got {every}")
    if first < 0 or first % every:
        raise UserError(f"first iteration {first} is not on the grid of every {every} "
                        "iterations")
    found = {checkpoint_iteration(p): p for p in list_checkpoints(Path(directory))
             if checkpoint_iteration(p) % every == 0 and checkpoint_iteration(p) >= first}
    if last is None:
        last = max(found, default=-1)
    if last < first:
        raise UserError(f"no checkpoint at or after iteration {first} on the grid of every "
                        f"{every} in {directory}")
    wanted = range(first, last + 1, every)
    missing = [i for i in wanted if i not in found]
    if missing:
        shown = ", ".join(str(i) for i in missing[:8]) + (" ..." if len(missing) > 8 else "")
        raise UserError(f"{directory} lacks the checkpoints of iterations {shown} (pruned by "
                        "train.keep_checkpoints? train.keep_grid_from spares them): the mean would weight the stretches "
                        "unequally; choose --first after them")
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
    """Reset every batch norm of ``module`` and set its running statistics to the
    equal-weight mean of the statistics of ``batches`` (each a collated batch).

    Returns the number of batches used (batches without events are passed
    over). The module is left in eval mode with its momenta restored.
    """
    from tqdm import tqdm

    norms = [m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return 0
    momenta = [m.momentum for m in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # None: cumulative average, every batch the same weight
    used = 0
    module.train()
    try:
        with torch.no_grad():
            for batch in tqdm(batches, total=total, disable=not progress, desc="batch norm",
                              dynamic_ncols=True):
                if batch["batch_size"] == 0:
                    continue
                module(batch)
                used += 1
    finally:
        for norm, momentum in zip(norms, momenta):
            norm.momentum = momentum
        module.eval()
    if used == 0:
        raise UserError("no event to recompute the batch-norm statistics on (all skipped)")
    return used


def _bn_batches(cfg: Dict[str, Any], files: Sequence[str], events: int, seed: int
                ) -> Iterator[Dict[str, Any]]:
    """One-event batches of ``events`` events drawn without replacement from ``files``
    (all of them when they hold fewer)."""
    from parsers.collate import collate_events
    from parsers.dataset import SpiceDataset

    io = copy.deepcopy(cfg["io"])
    io["dataset"]["files"] = list(files)
    dataset = SpiceDataset(io)
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(dataset), generator=generator)[:events].tolist()
    for index in order:
        yield collate_events([dataset[index]])


def average_run(directory: Path, output: Path, first: int, last: Optional[int] = None,
                every: int = 400, bn_events: int = 200, bn_files: Optional[Sequence[str]] = None,
                seed: int = 0, progress: bool = True) -> Dict[str, Any]:
    """Average a run's checkpoints (:func:`regular_checkpoints`), recompute the batch-norm
    statistics over ``bn_events`` events of ``bn_files`` (default: the run's training
    files), and write the weights to ``output`` atomically. Returns the ``averaged``
    record written with them.
    """
    from .chain import Chain

    if bn_events < 1:
        raise UserError(f"batch-norm events must be >= 1, got {bn_events}")
    paths = regular_checkpoints(directory, first, last, every)
    log.info("averaging %d checkpoints, iterations %d to %d", len(paths),
             checkpoint_iteration(paths[0]), checkpoint_iteration(paths[-1]))
    payload = average_states(paths)
    cfg = payload.get("config")
    if not cfg:
        raise CheckpointError(f"{paths[-1]} records no config: cannot build its network")
    files = list(bn_files or cfg["io"]["dataset"]["files"])
    chain = Chain(cfg["model"])
    chain.load_state_dict(payload["model"])
    used = recompute_batchnorm(chain, _bn_batches(cfg, files, bn_events, seed),
                               progress=progress, total=bn_events)
    record = {"iterations": [checkpoint_iteration(p) for p in paths], "every": every,
              "bn_events": used, "bn_files": [str(f) for f in files], "bn_seed": seed}
    slim = {key: payload[key] for key in ("config", "iteration", "total_iterations", "version")
            if key in payload}
    slim.update({"format": FORMAT, "model": chain.state_dict(), "averaged": record})
    atomic_write(Path(output), lambda stream: torch.save(slim, stream))
    log.info("wrote the mean of %d checkpoints (batch norm over %d events) to %s", len(paths),
             used, output)
    return record
