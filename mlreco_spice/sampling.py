"""Deterministic batch order: the batch of iteration *i* is a pure function of (seed, i).

That makes ``--resume`` exact (a resumed run sees the same batches as an
uninterrupted one) and shards the data across DDP ranks without overlap
(each rank takes its slice of the global batch).
"""
from __future__ import annotations

from typing import Iterator, List

import numpy as np
from torch.utils.data import Sampler

__all__ = ["IterationBatchSampler"]


class IterationBatchSampler(Sampler[List[int]]):
    """Yield index lists for iterations ``start .. stop - 1``.

    Parameters
    ----------
    n_items : int
        Dataset length.
    batch_size : int
        Events per rank per iteration.
    seed : int
        Shuffling seed; epoch ``e`` uses the permutation of ``(seed, e)``.
    start, stop : int
        Iteration range.
    rank, world_size : int
        This process's slice of each global batch.
    shuffle : bool
        Without it, epochs walk the data in order.
    """

    def __init__(self, n_items: int, batch_size: int, seed: int, start: int, stop: int,
                 rank: int = 0, world_size: int = 1, shuffle: bool = True):
        if n_items < 1:
            raise ValueError("the dataset is empty: no events to train on")
        self.n_items, self.batch_size, self.seed = n_items, batch_size, seed
        self.start, self.stop = start, stop
        self.rank, self.world_size, self.shuffle = rank, world_size, shuffle
        self.global_batch = batch_size * world_size
        self._cache: dict = {}

    def _order(self, epoch: int) -> np.ndarray:
        if epoch not in self._cache:
            if len(self._cache) > 2:
                self._cache.clear()
            self._cache[epoch] = (np.random.default_rng([self.seed, epoch]).permutation(self.n_items)
                                  if self.shuffle else np.arange(self.n_items))
        return self._cache[epoch]

    def batch_for(self, iteration: int) -> List[int]:
        """Indices this rank reads at ``iteration`` (wraps across epoch boundaries)."""
        first = iteration * self.global_batch + self.rank * self.batch_size
        out = []
        for position in range(first, first + self.batch_size):
            epoch, offset = divmod(position, self.n_items)
            out.append(int(self._order(epoch)[offset]))
        return out

    def __iter__(self) -> Iterator[List[int]]:
        for iteration in range(self.start, self.stop):
            yield self.batch_for(iteration)

    def __len__(self) -> int:
        return max(0, self.stop - self.start)
