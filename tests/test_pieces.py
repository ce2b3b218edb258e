"""Main pieces and detached voxels (mlreco_spice.pieces), and the segmentation loss's
weight on the detached voxels (loss.detached_weight)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mlreco_spice.losses import SegmentationLoss
from mlreco_spice.losses.segmentation import detached_voxels
from mlreco_spice.pieces import main_piece


def test_main_piece_is_each_instances_largest_touching_piece():
    coords = np.array([[0, 0, 0], [1, 1, 1], [2, 2, 2],      # instance 0: a piece of 3 ...
                       [9, 9, 9],                            # ... and a detached dot
                       [3, 3, 3], [4, 4, 4],                 # instance 1 touches 0: own piece
                       [20, 0, 0], [22, 0, 0],               # instance 2: two single dots
                       [5, 5, 5]])                           # unassigned
    instance = np.array([0, 0, 0, 0, 1, 1, 2, 2, -1])
    main = main_piece(coords, instance)
    assert main.tolist() == [True, True, True, False, True, True, True, False, False]
    assert main_piece(np.zeros((0, 3)), np.zeros(0, int)).size == 0


def _clust_label():
    """Two batch entries. Entry 0: instance 0 is a piece of 3 at x = 0..2 and a dot at
    x = 10; entry 1: instance 0 is only a piece of 2 at x = 10..11, which, merged with
    entry 0 (no split per entry), would make x = 10 part of a piece of 3 tied with the
    first. Then an unassigned voxel and, in entry 1, a voxel of no class (-1).
    Columns [batch, x, y, z, instance, class]."""
    rows = [(0, x, 0, 0, 0, 2) for x in range(3)] + [(0, 10, 0, 0, 0, 2), (0, 9, 9, 9, -1, 1)]
    rows += [(1, 10, 0, 0, 0, 3), (1, 11, 0, 0, 0, 3), (1, 30, 0, 0, 0, -1)]
    return torch.tensor(rows, dtype=torch.float64)


def test_detached_voxels_per_batch_entry():
    assert detached_voxels(_clust_label()).tolist() == [False] * 3 + [True, False] + [False] * 3
    # Without the split per entry the merged instance 0 would be read as one event.
    merged = _clust_label()
    merged[:, 0] = 0
    assert detached_voxels(merged).tolist() != detached_voxels(_clust_label()).tolist()


def test_detached_weight_counts_a_detached_voxel_as_copies():
    clust = _clust_label()
    seg = clust[:, :5].clone()
    seg[:, 4] = clust[:, 5]
    logits = torch.randn(len(seg), 5, generator=torch.Generator().manual_seed(0))
    weights = [1.0, 2.0, 0.5, 1.0, 1.0]
    loss = SegmentationLoss({"loss": {"class_weights": weights, "detached_weight": 3.0},
                             "loss_input": {}})
    got = loss({"logits": logits}, seg, clust)["loss"]
    # A weight of 3 on row 3 is the plain class-weighted mean with row 3 three times.
    rows = list(range(len(seg) - 1)) + [3, 3]  # the last row has no class: ignored
    expected = F.cross_entropy(logits[rows], seg[rows, 4].long(), weight=torch.tensor(weights))
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)
    plain = SegmentationLoss({"loss": {"class_weights": weights}})({"logits": logits}, seg)
    assert not np.isclose(plain["loss"].item(), got.item())
    labelled = list(range(len(seg) - 1))
    assert plain["loss"].item() == pytest.approx(F.cross_entropy(
        logits[labelled], seg[labelled, 4].long(), weight=torch.tensor(weights)).item(), rel=1e-6)
    # Per class: the detached Shower voxel (row 3) takes the Shower's weight; a weight on
    # another class changes nothing here.
    by_class = SegmentationLoss({"loss": {"class_weights": weights,
                                          "detached_weight": {"Shower": 3.0, "Delta": 7.0}}})
    assert by_class({"logits": logits}, seg, clust)["loss"].item() == pytest.approx(got.item())
    other = SegmentationLoss({"loss": {"class_weights": weights, "detached_weight": {"Delta": 7.0}}})
    assert other({"logits": logits}, seg, clust)["loss"].item() == pytest.approx(
        plain["loss"].item(), rel=1e-6)


def test_detached_weight_errors():
    clust = _clust_label()
    seg = clust[:, :5].clone()
    seg[:, 4] = clust[:, 5]
    loss = SegmentationLoss({"loss": {"detached_weight": 2.0}})
    with pytest.raises(ValueError, match="needs the true instances"):
        loss({"logits": torch.zeros(len(seg), 5)}, seg)
    with pytest.raises(ValueError, match="same voxels in the same order"):
        loss({"logits": torch.zeros(len(seg), 5)}, seg, clust.flip(0))
    for bad in (0, float("inf"), {"Delta": -1.0}):
        with pytest.raises(ValueError, match="detached_weight must be finite and > 0"):
            SegmentationLoss({"loss": {"detached_weight": bad}})
    # All ones is no weighting: no clust_label needed.
    assert SegmentationLoss({"loss": {"detached_weight": {"Delta": 1.0}}})(
        {"logits": torch.zeros(len(seg), 5)}, seg)["loss"].item() > 0
