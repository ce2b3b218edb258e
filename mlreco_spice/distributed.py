"""Process-group set-up for ``torchrun`` runs, and the device choice.

``torchrun --nproc_per_node N -m mlreco_spice train -c CONFIG`` sets
``RANK``/``WORLD_SIZE``/``LOCAL_RANK``; we then join a process group (gloo on
CPU, nccl on CUDA). Without those variables everything runs in one process.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence

import torch

from .errors import UserError

log = logging.getLogger(__name__)

__all__ = ["DistContext", "init_distributed", "pick_device", "mean_of_dicts"]


@dataclass
class DistContext:
    """Rank information; ``world_size == 1`` when not distributed."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            torch.distributed.barrier()

    def mean_over_ranks(self, values: Mapping[str, float]) -> Dict[str, float]:
        """Each value averaged over the ranks (collective: every rank must call it)."""
        if not self.enabled:
            return dict(values)
        gathered: List[Optional[Dict[str, float]]] = [None] * self.world_size
        torch.distributed.all_gather_object(gathered, dict(values))
        return mean_of_dicts(gathered)

    def close(self) -> None:
        if self.enabled and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def mean_of_dicts(dicts: Sequence[Mapping[str, float]]) -> Dict[str, float]:
    """Per key, the mean over the dicts that have it.

    Why not a plain all-reduce: per-class loss terms exist only on ranks whose
    event has that class, so the ranks' key sets differ.
    """
    keys = sorted(set().union(*dicts))
    return {k: sum(d[k] for d in dicts if k in d) / sum(1 for d in dicts if k in d) for k in keys}


def pick_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """``auto`` -> ``cuda:<local_rank>`` when CUDA is available, else ``cpu``."""
    if name == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"train.device is '{name}' but CUDA is not available here; use auto or cpu")
    return device


def init_distributed(device_name: str = "auto") -> DistContext:
    """Join the torchrun process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_name, local_rank)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend=backend)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    log.info("distributed: rank %d/%d (%s)", rank, world, backend)
    return DistContext(rank, world, local_rank)
