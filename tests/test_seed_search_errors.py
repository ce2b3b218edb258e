"""benchmarks/seed_search_errors.py: merged, split and unseeded true instances, counted."""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from seed_search_errors import instance_errors  # noqa: E402


def test_counts_merges_splits_and_unseeded_instances():
    # Instance 0 (20 voxels) shares cluster 7 with all of instance 1 (10 voxels, never
    # above s0); instance 2 (20 voxels) is cut 12 / 8; instance 3 (5 voxels) is too small.
    instances = np.repeat([0, 1, 2, 3], [20, 10, 20, 5])
    labels = np.concatenate([np.full(30, 7), np.full(12, 8), np.full(8, 9), np.full(5, 10)])
    seediness = np.concatenate([np.full(20, 0.95), np.full(10, 0.5), np.full(20, 0.95),
                                np.full(5, 0.99)])
    counts = instance_errors(instances, labels, seediness, s0=0.9, min_voxels=10)
    # 0 and 1 are both merged (their main cluster holds the other's voxels); 1 is the
    # unseeded one, so both merges involve an unseeded instance.
    peaks = counts.pop("peaks")
    assert counts == {"instances": 3, "unseeded": 1, "split": 1, "merged": 2,
                      "merged_with_unseeded": 2}
    assert peaks == [0.95, 0.5, 0.95]


def test_uncounted_voxels_neither_merge_nor_count():
    # Instance 0 (20 voxels) shares its cluster with a 5-voxel unseeded piece and 8 voxels
    # of no instance (-1): neither is scored, so 0 is not merged. Instance 1 (12 voxels)
    # is mostly unclustered (-1): split, and no merge is looked for.
    instances = np.repeat([0, 2, -1, 1], [20, 5, 8, 12])
    labels = np.concatenate([np.full(33, 4), np.full(10, -1), np.full(2, 5)])
    seediness = np.concatenate([np.full(20, 0.95), np.full(5, 0.1), np.full(8, 0.1),
                                np.full(12, 0.95)])
    counts = instance_errors(instances, labels, seediness, s0=0.9, min_voxels=10)
    assert counts["instances"] == 2 and counts["unseeded"] == 0
    assert counts["merged"] == 0 and counts["merged_with_unseeded"] == 0
    assert counts["split"] == 1


def test_a_small_share_of_other_voxels_is_not_a_merge():
    instances = np.repeat([0, 1], [95, 30])
    labels = np.concatenate([np.full(95, 1), np.full(5, 1), np.full(25, 2)])  # 5 of 1 in 0's
    seediness = np.full(125, 0.95)
    counts = instance_errors(instances, labels, seediness, s0=0.9, min_voxels=10)
    assert counts["merged"] == 0 and counts["split"] == 1 and counts["unseeded"] == 0
