"""One test per event-level corpus case: what the dataset (train, evaluate, predict) does with it.

Entry 0 of every event-level file is good, entry 1 carries the defect. Bad
events are skipped and recorded (``io.on_bad_event: skip``, the default) or
raise :class:`BadEventError` naming file, entry and defect (``raise``).
"""
import re

import numpy as np
import pytest

from mlreco_spice.errors import BadEventError
from parsers.collate import SkippedEvent
from parsers.dataset import SpiceDataset
from robust_helpers import io_for

BAD = {
    "out_of_meta": r"'sparse3d_data' has voxels outside the image \(96, 96, 96\), e\.g\. \(96, 0, 7\)",
    "nan_energy": r"'sparse3d_data' has 1 NaN/inf values",
    "inf_energy": r"'sparse3d_data' has 1 NaN/inf values",
    "negative_energy": r"'sparse3d_data' has 1 negative energies \(min -1\.5\)",
    "duplicate_voxels": r"'sparse3d_data' has 1 duplicated voxels",
    "cluster_out_of_meta": r"'cluster3d_pcluster' has voxels outside the image \(96, 96, 96\), e\.g\. \(96, 0, 7\)",
    "semantic_out_of_range": r"'sparse3d_semantics' has semantic values outside 0-4, e\.g\. 7\.0",
    "meta_mismatch": re.escape("meta mismatch: 'sparse3d_data' is ImageMeta(size=(96, 96, 96), "
                               "voxel_cm=(0.3, 0.3, 0.3), origin_cm=(0.0, 0.0, 0.0)) but "
                               "'cluster3d_pcluster' is ImageMeta(size=(96, 96, 96), voxel_cm="
                               "(0.3, 0.3, 0.3), origin_cm=(10.0, 0.0, 0.0))"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_event_is_skipped_with_reason_or_raises(case, corpus, train_cfg):
    file = str(corpus[case])
    dataset = SpiceDataset(io_for(train_cfg, [file]))
    good, bad = dataset[0], dataset[1]
    assert isinstance(good, dict) and len(good["data"]) > 100
    assert isinstance(bad, SkippedEvent)
    assert (bad.file, bad.entry, bad.index) == (file, 1, 1)
    assert re.fullmatch(BAD[case], bad.reason), bad.reason

    strict = SpiceDataset(io_for(train_cfg, [file], on_bad_event="raise"))
    assert isinstance(strict[0], dict)
    with pytest.raises(BadEventError) as err:
        strict[1]
    assert str(err.value).startswith(f"{file} entry 1: ")
    assert re.fullmatch(BAD[case], err.value.reason)


def test_zero_voxels_is_a_valid_empty_event(corpus, train_cfg):
    item = SpiceDataset(io_for(train_cfg, [corpus["zero_voxels"]], on_bad_event="raise"))[1]
    for name in ("data", "seg_label", "clust_label"):
        assert item[name].shape[0] == 0
    assert item["parse_stats"]["clust_label"] == {"dropped_cluster_voxels": 0, "n_instances": 0}


def test_one_voxel_event_parses(corpus, train_cfg):
    item = SpiceDataset(io_for(train_cfg, [corpus["one_voxel"]], on_bad_event="raise"))[1]
    np.testing.assert_array_equal(item["data"], [[40, 50, 60, np.float32(1.2)]])
    assert item["parse_stats"]["clust_label"]["n_instances"] == 1


def test_cluster_voxels_absent_from_data_are_dropped_and_counted(corpus, train_cfg):
    dataset = SpiceDataset(io_for(train_cfg, [corpus["cluster_not_in_data"]], on_bad_event="raise"))
    reference = SpiceDataset(io_for(train_cfg, [corpus["good"]]))[1]  # the unmodified event
    item = dataset[1]
    dropped = reference["parse_stats"]["clust_label"]["dropped_cluster_voxels"]
    assert item["parse_stats"]["clust_label"]["dropped_cluster_voxels"] == dropped + 1
    # The extra voxel changes nothing else: same rows and labels as the original event.
    np.testing.assert_array_equal(item["clust_label"], reference["clust_label"])


def test_max_voxels_refuses_above_and_accepts_at_the_limit(corpus, train_cfg):
    from make_corpus import LARGE_VOXELS

    limited = SpiceDataset(io_for(train_cfg, [corpus["large"]], max_voxels=1000))
    assert len(limited[0]["data"]) == 40
    refused = limited[1]
    assert isinstance(refused, SkippedEvent)
    assert refused.reason == (f"'sparse3d_data' has {LARGE_VOXELS} voxels, more than "
                              f"io.max_voxels=1000; 'sparse3d_semantics' has {LARGE_VOXELS} "
                              f"voxels, more than io.max_voxels=1000")
    at_limit = SpiceDataset(io_for(train_cfg, [corpus["large"]], max_voxels=LARGE_VOXELS,
                                   on_bad_event="raise"))
    assert len(at_limit[1]["data"]) == LARGE_VOXELS
