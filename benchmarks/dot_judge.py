"""The judge of :mod:`dot_cues`: a small MLP on a dot's cues, with per-class offsets.

Features span decades (distances in cm, sizes in voxels, energies in MeV), so each is
taken as log(1 + x) and standardised on the fitting set; the fit is class-balanced cross
entropy. The offsets, added to the log-probabilities, are set afterwards on held-out
events (:func:`dot_cues.choose_offsets`).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def transform(features: np.ndarray) -> np.ndarray:
    """log(1 + x) of every (non-negative) feature: distances, sizes and energies span decades."""
    return np.log1p(np.maximum(features, 0.0)).astype(np.float32)


class DotJudge:
    """An MLP on transformed features, with per-class offsets added to its log-probabilities.

    Parameters
    ----------
    columns : feature columns it reads; classes : number of ruled classes;
    hidden : width of its two hidden layers; seed : for the weights and the batches.
    """

    def __init__(self, columns: Sequence[int], classes: int, hidden: int = 64, seed: int = 0):
        import torch

        torch.manual_seed(seed)
        self.columns = list(columns)
        self.seed = seed
        self.net = torch.nn.Sequential(
            torch.nn.Linear(len(self.columns), hidden), torch.nn.ReLU(),
            torch.nn.Linear(hidden, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, classes))
        self.offsets = np.zeros(classes)
        self.mean = self.scale = None

    def fit(self, features: np.ndarray, target: np.ndarray, epochs: int = 8,
            batch: int = 2048, lr: float = 2e-3) -> "DotJudge":
        """Class-balanced cross-entropy, Adam, ``epochs`` passes."""
        import torch

        x = transform(features[:, self.columns])
        self.mean, self.scale = x.mean(axis=0), x.std(axis=0) + 1e-6
        x = torch.from_numpy((x - self.mean) / self.scale)
        y = torch.from_numpy(target.astype(np.int64))
        freq = np.bincount(target, minlength=self.net[-1].out_features).astype(np.float64)
        weight = torch.tensor(np.where(freq > 0, len(target) / np.maximum(freq, 1) / len(freq), 0),
                              dtype=torch.float32)
        loss_fn = torch.nn.CrossEntropyLoss(weight=weight)
        optimizer = torch.optim.Adam(self.net.parameters(), lr=lr)
        generator = torch.Generator().manual_seed(self.seed)
        for _ in range(epochs):
            for idx in torch.randperm(len(y), generator=generator).split(batch):
                optimizer.zero_grad()
                loss_fn(self.net(x[idx]), y[idx]).backward()
                optimizer.step()
        return self

    def log_proba(self, features: np.ndarray) -> np.ndarray:
        """Log-probabilities per ruled class, before the offsets."""
        import torch

        x = (transform(features[:, self.columns]) - self.mean) / self.scale
        with torch.no_grad():
            return torch.log_softmax(self.net(torch.from_numpy(x)), dim=1).numpy()

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Index of the ruled class judged for each dot."""
        return (self.log_proba(features) + self.offsets).argmax(axis=1)
