"""Clustering metrics: sklearn agreement, hand-made cases, masking, empty input."""
import math

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from mlreco_spice.columns import HIP, MIP, SHOWER
from mlreco_spice.metrics import (EVENT_ROW_FIELDS, adjusted_rand_index, cluster_scores,
                                  efficiency, evaluate_event, purity)


def comb2(n):
    return n * (n - 1) / 2


def hand_ari(contingency):
    """Hubert-Arabie ARI from a contingency table (the textbook formula)."""
    c = np.asarray(contingency)
    index = sum(comb2(x) for x in c.ravel())
    a = sum(comb2(x) for x in c.sum(axis=1))
    b = sum(comb2(x) for x in c.sum(axis=0))
    expected = a * b / comb2(c.sum())
    return (index - expected) / ((a + b) / 2 - expected)


@pytest.mark.parametrize("seed", range(12))
def test_ari_matches_sklearn_on_random_partitions(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 3000))
    truth = rng.integers(0, int(rng.integers(1, 40)), n)
    pred = rng.integers(0, int(rng.integers(1, 40)), n) * 7 + 3  # arbitrary ids
    assert adjusted_rand_index(truth, pred, min_true_size=0) == \
        pytest.approx(adjusted_rand_score(truth, pred), abs=1e-9)


def test_ari_matches_sklearn_with_default_mask_when_nothing_is_masked():
    rng = np.random.default_rng(7)
    truth = np.repeat(np.arange(6), rng.integers(10, 400, 6))
    pred = np.where(rng.random(truth.size) < 0.8, truth, rng.integers(0, 9, truth.size))
    assert adjusted_rand_index(truth, pred) == pytest.approx(adjusted_rand_score(truth, pred), abs=1e-9)


def test_ari_large_event_no_overflow():
    rng = np.random.default_rng(3)
    truth = rng.integers(0, 5, 200_000)
    pred = np.where(rng.random(truth.size) < 0.9, truth, rng.integers(0, 50, truth.size))
    assert adjusted_rand_index(truth, pred, 0) == pytest.approx(adjusted_rand_score(truth, pred), abs=1e-9)


def test_perfect_partition_with_renamed_ids():
    truth = np.repeat([0, 1, 2], [30, 20, 50])
    pred = np.repeat([9, 4, 7], [30, 20, 50])
    scores = cluster_scores(truth, pred)
    assert (scores["ari"], scores["purity"], scores["efficiency"]) == (1.0, 1.0, 1.0)
    assert (scores["n_true"], scores["n_pred"], scores["n_voxels"]) == (3, 3, 100)


def test_one_split():
    truth = np.repeat([0, 1], [50, 50])
    pred = np.repeat([0, 1, 2], [25, 25, 50])
    assert purity(truth, pred) == 1.0
    assert efficiency(truth, pred) == pytest.approx((25 / 50 + 1.0) / 2)
    assert adjusted_rand_index(truth, pred) == pytest.approx(hand_ari([[25, 25, 0], [0, 0, 50]]), abs=1e-12)
    assert adjusted_rand_index(truth, pred) == pytest.approx(0.7468030690537084, abs=1e-12)


def test_one_merge():
    truth = np.repeat([0, 1], [50, 50])
    pred = np.zeros(100, dtype=int)
    assert purity(truth, pred) == 0.5
    assert efficiency(truth, pred) == 1.0
    assert adjusted_rand_index(truth, pred) == 0.0  # n_pred = 1 != n_true


def test_paper_99_plus_1_split():
    truth = np.zeros(100, dtype=int)
    pred = np.r_[np.zeros(99, dtype=int), 1]
    assert purity(truth, pred) == 1.0
    assert efficiency(truth, pred) == pytest.approx(0.99)
    # Hand: index = C(99,2) = 4851 = expected (a * b / C(100,2) with a = C(100,2)), so ARI = 0.
    assert hand_ari([[99, 1]]) == 0.0
    assert adjusted_rand_index(truth, pred) == 0.0


def test_truth_minus_one_is_excluded():
    truth = np.repeat([0, 1], [40, 40])
    pred = truth.copy()
    noisy_truth = np.r_[truth, -np.ones(30, dtype=int)]
    noisy_pred = np.r_[pred, np.arange(30) % 2]
    assert cluster_scores(noisy_truth, noisy_pred) == cluster_scores(truth, pred)


def test_pred_minus_one_are_singletons():
    truth = np.r_[np.zeros(20, dtype=int), np.ones(30, dtype=int)]
    pred = np.r_[np.zeros(18, dtype=int), -1, -1, np.ones(30, dtype=int)]
    explicit = np.r_[np.zeros(18, dtype=int), 5, 6, np.ones(30, dtype=int)]
    scores = cluster_scores(truth, pred)
    assert scores["ari"] == pytest.approx(adjusted_rand_score(truth, explicit), abs=1e-12)
    assert scores["ari"] < 1.0
    assert scores["efficiency"] == pytest.approx((18 / 20 + 1.0) / 2)
    assert scores["purity"] == 1.0  # singletons are pure (see the module docstring)
    assert scores["n_pred"] == 4


def test_min_true_size_masks_small_true_clusters():
    truth = np.r_[np.zeros(50, dtype=int), np.ones(5, dtype=int)]
    pred = np.zeros(55, dtype=int)  # the 5-voxel cluster merged into the big one
    assert cluster_scores(truth, pred)["ari"] == 1.0
    assert cluster_scores(truth, pred)["n_voxels"] == 50
    unmasked = cluster_scores(truth, pred, min_true_size=0)
    assert unmasked["purity"] == pytest.approx(50 / 55)
    assert unmasked["ari"] == 0.0


@pytest.mark.parametrize("truth,pred", [([], []), ([-1, -1], [0, 1]), ([0, 0, 1], [0, 0, 0])])
def test_empty_gives_nan(truth, pred):
    scores = cluster_scores(np.array(truth, dtype=int), np.array(pred, dtype=int))
    assert all(math.isnan(scores[k]) for k in ("ari", "purity", "efficiency"))
    assert scores["n_voxels"] == 0
    assert math.isnan(adjusted_rand_index(truth, pred))


def test_length_mismatch_raises():
    with pytest.raises(ValueError, match="same length"):
        adjusted_rand_index([0, 1], [0])


def test_evaluate_event_rows_per_true_class():
    # HIP: two 20-voxel tracks, perfectly found. MIP: one 30-voxel track split 25 + 5.
    # Shower: absent. A 4-voxel Michel-less class stays under the mask.
    truth_sem = np.r_[np.full(40, HIP), np.full(30, MIP), np.full(4, SHOWER)]
    truth_inst = np.r_[np.repeat([0, 1], 20), np.full(30, 2), np.full(4, 3)]
    pred = np.r_[np.repeat([5, 6], 20), np.full(25, 7), np.full(3, 8), -1, -1, np.full(4, 9)]
    rows = evaluate_event(truth_inst, pred, truth_sem)
    assert [r["class"] for r in rows] == ["HIP", "MIP"]
    assert all(tuple(r) == EVENT_ROW_FIELDS for r in rows)
    hip, mip = rows
    assert (hip["n_true"], hip["n_pred"], hip["ari"], hip["purity"], hip["efficiency"]) == (2, 2, 1.0, 1.0, 1.0)
    assert (hip["n_voxels_true"], hip["n_voxels_pred"]) == (40, 40)
    assert (mip["n_true"], mip["n_pred"], mip["n_voxels_true"], mip["n_voxels_pred"]) == (1, 2, 30, 28)
    assert mip["efficiency"] == pytest.approx(25 / 30)
    assert mip["ari"] == 0.0
    assert evaluate_event(truth_inst, pred, truth_sem, classes=["MIP"]) == [mip]
    assert len(evaluate_event(truth_inst, pred, truth_sem, min_true_size=0)) == 3


# ------------------------------------------------------- particle level ---
def muon_and_michel():
    """A 60-voxel muon (particle 0) and its 20-voxel Michel electron (particle 1),
    plus an unrelated 30-voxel shower (particle 2)."""
    from mlreco_spice.columns import MICHEL

    truth = np.repeat([0, 1, 2], [60, 20, 30])
    semantic = np.repeat([MIP, MICHEL, SHOWER], [60, 20, 30])
    return truth, semantic


def test_muon_absorbing_its_michel_lowers_particle_ari_only():
    from mlreco_spice.metrics import evaluate_particles

    truth, semantic = muon_and_michel()
    separate = np.repeat([7, 3, 5], [60, 20, 30])
    absorbed = np.repeat([7, 7, 5], [60, 20, 30])  # the muon's cluster took the Michel
    for pred in (separate, absorbed):
        assert all(row["ari"] == 1.0 for row in evaluate_event(truth, pred, semantic))
    good = evaluate_particles(truth, separate)
    bad = evaluate_particles(truth, absorbed)
    assert good["ari"] == 1.0 and good["n_true"] == 3 and good["n_pred"] == 3
    assert bad["ari"] < 0.9 and bad["n_pred"] == 2
    assert bad["ari"] == pytest.approx(adjusted_rand_score(truth, absorbed))
    assert bad["purity"] == pytest.approx((60 / 80 + 1) / 2)
    assert bad["efficiency"] == 1.0  # every particle lies whole inside one cluster
    assert set(bad) == set(EVENT_ROW_FIELDS[1:])


def test_particle_metrics_ids_restarting_per_class_and_masks():
    from mlreco_spice.metrics import evaluate_particles, unique_across_classes

    truth, semantic = muon_and_michel()
    per_class = np.repeat([0, 0, 0], [60, 20, 30])  # id 0 in each of three classes
    assert evaluate_particles(truth, per_class)["ari"] == 0.0
    assert evaluate_particles(truth, per_class, pred_semantic=semantic)["ari"] == 1.0
    assert list(unique_across_classes([0, 0, -1, 1], [1, 4, 4, 1])) == [0, 2, -1, 1]
    truth = truth.copy()
    truth[:5] = -1                     # unlabelled voxels are ignored
    truth[-30:-25] = 9                 # a 5-voxel particle is masked (min_true_size 10)
    row = evaluate_particles(truth, np.repeat([7, 3, 5], [60, 20, 30]))
    assert row["ari"] == 1.0 and row["n_true"] == 3 and row["n_voxels_true"] == 100
    empty = evaluate_particles([-1, -1], [0, 1])
    assert math.isnan(empty["ari"]) and empty["n_true"] == 0
