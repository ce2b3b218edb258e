"""How far a segmentation network's scores separate the classes, once the movable trade is out.

Class weights (and issue 18's ``detached_weight``) move a network along one trade-off:
voxels of a heavy class gain, the others lose. A per-class offset added to the logits
before the argmax moves the same trade-off after training, so the highest smallest-class
accuracy any offsets reach reads how well the network *separates* the classes once the
trade that can still be moved after training is taken out (the weighting it was trained
with still shapes the scores themselves). :func:`balance_offsets` finds those offsets and
:func:`cross_fitted_confusion` scores them on events they were not chosen on.

A reading for the benchmarks, not the shipped offsets: ``network.logit_offsets`` of the
uresnet stage applies chosen offsets (``chain_configs/predict.yaml`` ships one hand-picked
offset, ``{Michel: 0.3}``, not the maximin).
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

import numpy as np


def class_recall(logits: np.ndarray, truth: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Fraction of each class's voxels given that class by ``argmax(logits + offsets)``.

    Classes with no voxel read NaN.
    """
    pred = np.argmax(logits + offsets, axis=1)
    n_cls = logits.shape[1]
    totals = np.bincount(truth, minlength=n_cls)
    right = np.bincount(truth[pred == truth], minlength=n_cls)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, right / np.maximum(totals, 1), np.nan)


def balance_offsets(logits: np.ndarray, truth: np.ndarray, steps: int = 400,
                    step: float = 0.5, decay: float = 0.99) -> np.ndarray:
    """Per-class logit offsets making the smallest class accuracy as large as possible.

    The maximin over offsets is not smooth, so a coordinate search stalls where two classes
    are equal; instead the class with the lowest accuracy is raised by a decaying step
    (a subgradient ascent on the minimum), and the best offsets met are returned. Offsets
    are relative: their mean over the classes present is kept at zero, and a class with no
    voxel here keeps offset 0.

    Parameters
    ----------
    logits : np.ndarray
        (N, C) network scores (any monotone per-voxel scale: logits or log-probabilities).
    truth : np.ndarray
        (N,) true class in ``[0, C)``.
    steps, step, decay : int, float, float
        Iterations, first step (logit units) and its factor per iteration.

    Returns
    -------
    np.ndarray
        (C,) offsets; zeros when no class is present.
    """
    if logits.ndim != 2 or len(logits) != len(truth):
        raise ValueError(f"logits {logits.shape} and truth {truth.shape} do not match")
    offsets = np.zeros(logits.shape[1])
    present = np.bincount(truth, minlength=logits.shape[1]) > 0
    if not present.any():
        return offsets
    best, best_min = offsets.copy(), -np.inf
    for index in range(steps + 1):
        recall = class_recall(logits, truth, offsets)
        lowest = float(np.nanmin(recall))
        if lowest > best_min:
            best, best_min = offsets.copy(), lowest
        if index == steps:
            break
        offsets[int(np.nanargmin(recall))] += step
        # Centred over the classes present only: a class absent here keeps offset 0, so
        # events that have it are not scored with it pushed away.
        offsets[present] -= offsets[present].mean()
        step *= decay
    return best


def cross_fitted_confusion(events: Sequence[Tuple[np.ndarray, np.ndarray]], n_cls: int
                           ) -> Tuple[np.ndarray, List[np.ndarray]]:
    """Confusion (true x predicted) of balanced offsets, each event scored with offsets
    chosen on the other half of the events (two folds: first half, second half).

    Parameters
    ----------
    events : sequence of (logits, truth)
        Per event, (N, C) scores and (N,) true classes in ``[0, C)``.

    Returns
    -------
    confusion, offsets
        (C, C) counts summed over both folds, and the two folds' offsets.
    """
    if len(events) < 2:
        raise ValueError("cross-fitted offsets need at least 2 events")
    half = len(events) // 2
    folds = [list(events[:half]), list(events[half:])]
    confusion = np.zeros((n_cls, n_cls), dtype=np.int64)
    chosen = []
    for fit, scored in ((folds[1], folds[0]), (folds[0], folds[1])):
        offsets = balance_offsets(np.concatenate([e[0] for e in fit]),
                                  np.concatenate([e[1] for e in fit]))
        chosen.append(offsets)
        for logits, truth in scored:
            pred = np.argmax(logits + offsets, axis=1)
            np.add.at(confusion, (truth, pred), 1)
    return confusion, chosen
