"""benchmarks/class_offsets.py: logit offsets that balance the per-class accuracies."""
import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import class_offsets  # noqa: E402


def _two_gaussians(n_common: int, n_rare: int, seed: int):
    """One score per voxel, N(0, 1) for class 0 and N(2, 1) for class 1; the logits are the
    class log-likelihoods plus the log-prior, so the argmax favours the common class. The
    balanced threshold is x = 1, where each class's accuracy is Phi(1) = 0.8413."""
    rng = np.random.default_rng(seed)
    truth = np.r_[np.zeros(n_common, int), np.ones(n_rare, int)]
    x = np.r_[rng.normal(0, 1, n_common), rng.normal(2, 1, n_rare)]
    prior = np.log([n_common, n_rare])
    logits = np.stack([-x ** 2 / 2, -(x - 2) ** 2 / 2], axis=1) + prior
    return logits, truth


PHI_1 = 0.5 * (1 + math.erf(1 / math.sqrt(2)))


def test_balance_offsets_reaches_the_balanced_threshold():
    logits, truth = _two_gaussians(200_000, 2_000, seed=0)
    plain = class_offsets.class_recall(logits, truth, np.zeros(2))
    assert plain[1] < 0.2 and plain[0] > 0.99  # the prior buries the rare class
    offsets = class_offsets.balance_offsets(logits, truth)
    recall = class_offsets.class_recall(logits, truth, offsets)
    assert recall.min() == pytest.approx(PHI_1, abs=0.01)
    assert offsets.sum() == pytest.approx(0.0, abs=1e-9)
    # The offset undoes the log-prior ratio (log 100 = 4.6) between the two classes.
    assert offsets[1] - offsets[0] == pytest.approx(np.log(100), abs=0.15)


def test_class_recall_reads_an_absent_class_as_nan_and_is_skipped():
    logits = np.array([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 2.0, 0.0]])
    truth = np.array([0, 1, 0])
    recall = class_offsets.class_recall(logits, truth, np.zeros(3))
    assert recall[0] == 0.5 and recall[1] == 1.0 and math.isnan(recall[2])
    offsets = class_offsets.balance_offsets(logits, truth, steps=50)
    # Class 0's second voxel shares class 1's scores: no offset lifts the smallest class
    # above 0.5, so the best point met, the start, is kept (not where the steps ended).
    assert np.array_equal(offsets, np.zeros(3))


def test_a_class_absent_from_one_half_keeps_its_place_in_the_other():
    """Cross-fitting: offsets fit on events without class 2 must not bury class 2 in the
    events that have it."""
    rng = np.random.default_rng(1)
    def event(classes, n=3000):
        truth = rng.choice(classes, n)
        logits = rng.normal(0, 1, (n, 3))
        logits[np.arange(n), truth] += 2.5          # each class fairly separable
        logits[:, 0] += 1.0                         # with a tilt the offsets can remove
        return logits, truth
    events = [event([0, 1]), event([0, 1]), event([0, 1, 2]), event([0, 1, 2])]
    confusion, offsets = class_offsets.cross_fitted_confusion(events, 3)
    assert offsets[1][2] == 0.0     # fit on the first half (no class 2), scores the second
    recall = np.diag(confusion) / confusion.sum(axis=1)
    assert recall[2] > 0.8


def test_cross_fitted_confusion_scores_every_voxel_with_the_other_halfs_offsets():
    events = [_two_gaussians(20_000, 200, seed=s) for s in range(4)]
    confusion, offsets = class_offsets.cross_fitted_confusion(events, 2)
    assert confusion.sum() == sum(len(t) for _, t in events)
    assert np.array_equal(confusion.sum(axis=1), [80_000, 800])
    assert len(offsets) == 2
    for fold in offsets:  # each fold finds the prior's ratio again
        assert fold[1] - fold[0] == pytest.approx(np.log(100), abs=0.3)
    recall = np.diag(confusion) / confusion.sum(axis=1)
    assert recall.min() == pytest.approx(PHI_1, abs=0.03)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="do not match"):
        class_offsets.balance_offsets(np.zeros((3, 2)), np.zeros(2, int))
    with pytest.raises(ValueError, match="at least 2 events"):
        class_offsets.cross_fitted_confusion([(np.zeros((1, 2)), np.zeros(1, int))], 2)
