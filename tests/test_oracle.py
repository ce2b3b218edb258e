"""Truth-centroid assignment (mlreco_spice.cluster.oracle), the accuracy benchmark's diagnostic."""
import numpy as np
import pytest

from mlreco_spice.cluster.oracle import truth_centroid_clusters
from mlreco_spice.metrics import adjusted_rand_index


def test_each_voxel_goes_to_the_kernel_with_the_highest_p():
    # Class 1 (MIP): instance 7 at x = -1, 0, 1 (centroid 0, sigma 1) and instance 9 at
    # x = 1.6 twice (centroid 1.6, sigma 0.1). The voxel at x = 1 is nearer 9's centroid
    # but has log p = -0.5 under 7's kernel and -0.36 / 0.02 = -18 under 9's: it stays with 7.
    emb = np.array([[-1.0, 0, 0], [0.0, 0, 0], [1.0, 0, 0], [1.6, 0, 0], [1.6, 0, 0]])
    truth = np.array([7, 7, 7, 9, 9])
    semantics = np.ones(5, dtype=int)
    labels = truth_centroid_clusters(emb, np.array([1.0, 1.0, 1.0, 0.1, 0.1]), truth, semantics)
    assert list(labels) == [0, 0, 0, 1, 1]
    # With equal margins (log p -0.5 vs -0.18) it goes to 9.
    wide = truth_centroid_clusters(emb, np.ones(5), truth, semantics)
    assert list(wide) == [0, 0, 1, 1, 1]


def test_classes_are_separate_and_ids_unique_per_event():
    rng = np.random.default_rng(0)
    centres = {(0, 1): 0.0, (0, 2): 5.0, (2, 3): 0.0, (2, 4): 5.0}  # (class, instance) -> x
    rows = [(c, i, x + rng.normal(0, 0.1)) for (c, i), x in centres.items() for _ in range(20)]
    semantics = np.array([r[0] for r in rows])
    truth = np.array([r[1] for r in rows])
    emb = np.array([[r[2], 0.0, 0.0] for r in rows])
    # Unlabelled voxels and classes outside 0-4 are handled; NaN embeddings stay -1.
    semantics = np.append(semantics, [5, 0])
    truth = np.append(truth, [-1, -1])
    emb = np.vstack([emb, [[0.0, 0, 0], [np.nan, 0, 0]]])
    labels = truth_centroid_clusters(emb, np.full(len(emb), 0.5), truth, semantics)
    assert labels[-2] == -1 and labels[-1] == -1
    assert set(labels[semantics == 0][:-1]) == {0, 1} and set(labels[semantics == 2]) == {2, 3}
    assert adjusted_rand_index(truth[:-2], labels[:-2], min_true_size=1) == pytest.approx(1.0)


def test_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="one row per voxel"):
        truth_centroid_clusters(np.zeros((3, 3)), np.ones(2), np.zeros(3), np.zeros(3))
