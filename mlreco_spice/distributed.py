"""Process-group set-up for ``torchrun`` runs, and the device choice.

``torchrun --nproc_per_node N -m mlreco_spice train -c CONFIG`` sets
``RANK``/``WORLD_SIZE``/``LOCAL_RANK``; we then join a process group (gloo on
CPU, nccl on CUDA). Without those variables everything runs in one process.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch

from .errors import UserError

log = logging.getLogger(__name__)

__all__ = ["DistContext", "init_distributed", "pick_device"]


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

    def close(self) -> None:
        if self.enabled and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


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
