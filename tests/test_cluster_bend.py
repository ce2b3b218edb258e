"""The connectivity step's bend veto and the connectivity step repeated after absorption."""
from pathlib import Path

import numpy as np
import pytest
import torch

from mlreco_spice.cluster import SPICEClusterer, cluster_events
from mlreco_spice.cluster.absorb import absorb_across_classes, reconnect_tracks
from mlreco_spice.cluster.bend import bend_angles
from mlreco_spice.cluster.postprocess import connect_fragments
from mlreco_spice.config import load_config

WINDOW = 15.0    # the bend window in voxels (4.5 cm at 3 mm)
VOXEL_CM = 0.3   # 1.5 voxels = 0.45 cm


def line(start, direction, n):
    direction = np.asarray(direction, float) / np.linalg.norm(direction)
    return np.asarray(start, float) + np.outer(np.arange(n), direction)


def two_fragments(angle_deg, n=20):
    """Fragment 0 along +x ending at the origin region; fragment 1 leaving it at ``angle_deg``
    from the straight continuation."""
    first = line((-n, 0, 0), (1, 0, 0), n)                     # x = -n .. -1
    a = np.radians(angle_deg)
    second = line((0, 0, 0), (np.cos(a), np.sin(a), 0), n)   # starts at the origin
    coords = np.concatenate([first, second])
    labels = np.repeat([0, 1], n)
    return coords, labels


@pytest.mark.parametrize("angle", [0.0, 20.0, 45.0, 90.0, 150.0])
def test_bend_angle_is_the_deviation_from_a_straight_continuation(angle):
    coords, labels = two_fragments(angle)
    touching = [(i, j) for i in range(40) for j in range(40)
                if labels[i] == 0 and labels[j] == 1
                and np.linalg.norm(coords[i] - coords[j]) <= 1.5]
    a, b = np.array(touching).T
    bend = bend_angles(coords, labels, np.array([0]), np.array([1]), a, b, WINDOW)
    assert bend[0] == pytest.approx(angle, abs=3.0)


def test_too_few_voxels_near_the_contact_give_no_direction():
    coords, labels = two_fragments(90.0)
    coords, labels = coords[:22], labels[:22]                  # fragment 1 keeps 2 voxels
    bend = bend_angles(coords, labels, np.array([0]), np.array([1]),
                       np.array([19]), np.array([20]), WINDOW)
    assert np.isnan(bend[0])


def _reference_bend_angles(coords, fragment, first, second, contact_a, contact_b, window):
    """The veto's definition written plainly (one ball query and np.cov per side)."""
    from scipy.spatial import cKDTree

    tree = cKDTree(coords)
    out = np.full(len(first), np.nan)
    for i, (f, g) in enumerate(zip(first, second)):
        touching = np.isin(fragment[contact_a], (f, g)) & np.isin(fragment[contact_b], (f, g)) \
            & (fragment[contact_a] != fragment[contact_b])
        centre = (coords[contact_a[touching]] + coords[contact_b[touching]]).mean(axis=0) / 2.0
        near = np.asarray(tree.query_ball_point(centre, window), dtype=np.int64)
        directions = []
        for frag in (f, g):
            points = coords[near[fragment[near] == frag]] - centre
            if len(points) < 3:
                break
            axis = np.linalg.eigh(np.cov(points.T))[1][:, -1]
            directions.append(axis if (points @ axis).mean() >= 0 else -axis)
        if len(directions) == 2:
            out[i] = np.degrees(np.arccos(np.clip(-directions[0] @ directions[1], -1, 1)))
    return out


def test_bend_angles_match_the_plain_definition_on_random_fragments():
    rng = np.random.default_rng(5)
    for _ in range(5):
        coords = np.unique(rng.integers(0, 25, size=(600, 3)), axis=0).astype(float)
        fragment = rng.integers(-1, 12, size=len(coords))
        a, b = np.array([(i, j) for i in range(len(coords)) for j in range(i + 1, len(coords))
                         if np.abs(coords[i] - coords[j]).max() <= 1]).T
        keep = (fragment[a] >= 0) & (fragment[b] >= 0) & (fragment[a] != fragment[b])
        a, b = a[keep], b[keep]
        pairs = np.unique(np.sort(np.stack([fragment[a], fragment[b]], 1), axis=1), axis=0)
        first, second = pairs[:, 0], pairs[:, 1]
        got = bend_angles(coords, fragment, first, second, a, b, 6.0)
        want = _reference_bend_angles(coords, fragment, first, second, a, b, 6.0)
        assert (~np.isnan(want)).sum() > 10  # defined angles to compare
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_allclose(got[~np.isnan(got)], want[~np.isnan(want)], atol=1e-6)


def test_a_window_symmetric_about_the_contact_gives_the_sharper_bend():
    # A line touched exactly in its middle by a branch at 45 degrees: within the window the
    # line extends equally both ways, so either end could point "away" (bend 45 or 135).
    # It is not a continuation: the sharper bend is returned, whatever the rounding.
    across = np.array([[x, 0.0, 0.0] for x in range(-6, 7)])
    branch = np.array([[y - 1.0, y, 0.0] for y in range(1, 8)])
    coords = np.concatenate([across, branch])
    fragment = np.repeat([0, 1], [len(across), len(branch)])
    a = np.array([i for i in range(len(across)) if np.abs(across[i] - branch[0]).max() <= 1])
    b = np.full(len(a), len(across))          # all touching the branch's first voxel (0, 1, 0)
    for shift in (0.0, 1e-13, -1e-13):        # rounding either way: the same answer
        moved = coords.copy()
        moved[:len(across), 0] += shift       # the line's mean moves off the contact by shift/2
        bend = bend_angles(moved, fragment, np.array([0]), np.array([1]), a, b, 30.0)
        assert bend[0] == pytest.approx(135.0, abs=1.0)
    # Off centre, the line has a side pointing away from the contact: the bend is measured.
    off = coords.copy()
    off[:len(across), 0] -= 4                 # the line now ends near the contact
    a2 = np.array([i for i in range(len(across)) if np.abs(off[i] - branch[0]).max() <= 1])
    bend = bend_angles(off, fragment, np.array([0]), np.array([1]), a2,
                       np.full(len(a2), len(across)), 30.0)
    assert bend[0] == pytest.approx(45.0, abs=8.0)


def test_connect_joins_a_straight_track_and_keeps_a_kink_apart():
    emb, margins = np.zeros((40, 3)), np.full(40, 0.5)         # embeddings agree everywhere
    for angle, joined in ((10.0, True), (60.0, False)):
        coords, labels = two_fragments(angle)
        plain = connect_fragments(coords, emb, margins, labels, 1.5, 0.1)
        assert np.unique(plain).size == 1                    # without the veto: one cluster
        veto = connect_fragments(coords, emb, margins, labels, 1.5, 0.1, max_bend=30.0,
                                 bend_window=WINDOW)
        assert (np.unique(veto).size == 1) == joined
        # The veto only ever keeps apart what the embeddings would join.
        strict = connect_fragments(coords, emb + labels[:, None], margins, labels, 1.5, 0.9,
                                   max_bend=30.0, bend_window=WINDOW)
        assert np.unique(strict).size == 2


def broken_muon():
    """A straight MIP track whose middle stretch the segmentation called Shower."""
    coords = line((0, 0, 0), (1, 0, 0), 60)
    semantics = np.ones(60, dtype=np.int64)
    semantics[25:32] = 2
    # The MIP class cut the track at the gap: two MIP clusters, one Shower cluster.
    labels = np.where(np.arange(60) < 25, 0, 1)
    labels[25:32] = 2
    return coords, semantics, labels


def test_reconnect_joins_track_pieces_through_an_absorbed_stretch():
    coords, semantics, labels = broken_muon()
    emb, margins = np.zeros((60, 3)), np.full(60, 0.5)
    absorbed, units = absorb_across_classes(coords, emb, margins, labels, semantics, 1.5, 0.1,
                                            return_units=True)
    # The Shower stretch joins one MIP piece; the other piece is still apart.
    assert np.unique(absorbed).size == 2
    assert np.array_equal(units, labels)       # each cluster joined its root directly
    assert np.array_equal(absorb_across_classes(coords, emb, margins, labels, semantics, 1.5,
                                                0.1), absorbed)
    connect_p = [None, 0.1, None, None, None]
    radius = [None, 1.5, None, None, None]
    out = reconnect_tracks(coords, emb, margins, absorbed, semantics, units, radius, connect_p,
                           30.0, WINDOW)
    assert np.unique(out).tolist() == [0]
    # Classes without a connectivity step are left alone.
    untouched = reconnect_tracks(coords, emb, margins, absorbed, semantics, units, radius,
                                 [None] * 5, 30.0, WINDOW)
    assert untouched.tolist() == absorbed.tolist()
    # Unclustered voxels stay -1.
    absorbed[:3] = -1
    out = reconnect_tracks(coords, emb, margins, absorbed, semantics, units, radius, connect_p,
                           30.0, WINDOW)
    assert (out[:3] == -1).all() and np.unique(out[3:]).size == 1


def test_reconnect_keeps_an_absorbed_unit_whole():
    # A muon along x; at its end a Michel (class 4) with a bit 5 voxels off it, and two
    # Shower voxels clustered apart that the Michel absorbed before the muon absorbed it.
    muon = line((0, 0, 0), (1, 0, 0), 40)
    michel = line((40, 1, 0), (0, 1, 0), 8)                  # touches the muon's end
    bit = line((40, 14, 0), (0, 1, 0), 3)                    # 6 voxels past the Michel
    shower = np.array([[40.0, 9.0, 0.0], [40.0, 10.0, 0.0]])  # touches the Michel
    coords = np.concatenate([muon, michel, bit, shower])
    semantics = np.array([1] * 40 + [4] * 11 + [2] * 2)
    labels = np.array([0] * 40 + [1] * 11 + [2] * 2)
    emb, margins = np.zeros((len(coords), 3)), np.full(len(coords), 0.5)
    absorbed, units = absorb_across_classes(coords, emb, margins, labels, semantics, 1.5, 0.1,
                                            return_units=True)
    assert np.unique(absorbed).size == 1     # shower -> Michel -> muon
    assert units[-2:].tolist() == [1, 1]     # the shower voxels belong to the Michel's unit
    args = (coords, emb, margins, absorbed, semantics, units, [None, 1.5, None, None, None],
            [None, 0.0, None, None, None])
    # The muon and the Michel touch: one piece. The Michel's bit does not touch it, yet
    # goes where most of its unit is instead of becoming a cluster of its own.
    for bend in (30.0, None):
        assert np.unique(reconnect_tracks(*args, bend, WINDOW)).size == 1
    # A unit mostly apart from the track leaves it: move the Michel itself away too.
    far = coords.copy()
    far[40:48, 1] += 3.0
    out = reconnect_tracks(far, *args[1:], 30.0, WINDOW)
    assert np.unique(out[:40]).size == 1 and np.unique(out[40:]).size == 1
    assert out[0] != out[40]


def test_cluster_events_with_bend_and_reconnect():
    coords, semantics, _ = broken_muon()
    emb = np.zeros((60, 3))
    emb[:, 0] = np.where(np.arange(60) < 28, 0.0, 0.5)       # two seeds' worth of embeddings
    margins = np.full(60, 0.2)
    seediness = np.full(60, 0.9)
    args = [torch.as_tensor(x) for x in (emb, margins, seediness, semantics, np.zeros(60))]
    options = dict(s0=0.5, p0=0.5, connect_radius_cm=0.45, connect_p={"MIP": 0.0},
                   connect_max_bend=30.0, absorb_radius_cm=0.45, absorb_p=0.0,
                   coords=torch.as_tensor(coords), voxel_cm=VOXEL_CM)
    without = cluster_events(*args, **options).numpy()
    with_ = cluster_events(*args, reconnect_after_absorb=True, **options).numpy()
    assert np.unique(without).size == 2 and np.unique(with_).size == 1
    backends = [cluster_events(*args, reconnect_after_absorb=True, backend=b, **options)
                for b in ("numba", "torch")]
    assert torch.equal(*backends)


def test_options_are_validated_and_read_from_the_clusterer_block():
    with pytest.raises(ValueError, match="connect_max_bend"):
        SPICEClusterer(connect_max_bend=200.0)
    clusterer = SPICEClusterer(connect_radius_cm=0.9, connect_p=0.1, connect_max_bend=25,
                               absorb_radius_cm=0.9, absorb_p=0.1, reconnect_after_absorb=True)
    assert clusterer.steps["connect_max_bend"] == 25.0
    assert clusterer.steps["reconnect_after_absorb"] is True
    assert "reconnect_after_absorb=True" in repr(clusterer)
    cfg = load_config(str(Path(__file__).resolve().parents[1] / "chain_configs"
                          / "predict_all_steps.yaml"))
    block = cfg["model"]["modules"]["spice"]["clusterer"]
    assert block["connect_max_bend"] > 0 and block["reconnect_after_absorb"] is True


def michel_beyond_a_gap():
    """A muon; a Michel with 2 voxels at its end and 4 more past a 4-voxel gap."""
    muon = line((0, 0, 0), (1, 0, 0), 40)
    near = line((40, 0, 0), (1, 0, 0), 2)
    far = line((46, 0, 0), (1, 0, 0), 4)
    coords = np.concatenate([muon, near, far])
    semantics = np.array([1] * 40 + [4] * 6)
    return coords, semantics


def test_reconnect_moves_a_unit_whole_to_where_most_of_it_is():
    coords, semantics = michel_beyond_a_gap()
    labels = np.array([0] * 40 + [1] * 6)
    emb, margins = np.zeros((46, 3)), np.full(46, 0.5)
    absorbed, units = absorb_across_classes(coords, emb, margins, labels, semantics, 1.5, 0.0,
                                            return_units=True)
    assert np.unique(absorbed).size == 1
    out = reconnect_tracks(coords, emb, margins, absorbed, semantics, units,
                           [None, 1.5, None, None, None], [None, 0.0, None, None, None], 25.0,
                           WINDOW)
    # Most of the Michel does not touch the muon: all of it leaves, none of it is cut.
    assert np.unique(out[40:]).size == 1 and out[40] != out[0]
    assert np.unique(out[:40]).size == 1


def test_min_cluster_size_holds_after_reconnect():
    coords, semantics = michel_beyond_a_gap()
    n = len(coords)
    seeds = np.where(np.arange(n) < 40, 0.9, 0.8)
    args = [torch.as_tensor(x) for x in (np.zeros((n, 3)), np.full(n, 0.5), seeds, semantics,
                                         np.zeros(n))]
    options = dict(s0=0.5, p0=0.5, connect_radius_cm=0.45, connect_p={"MIP": 0.0},
                   connect_max_bend=25.0, absorb_radius_cm=0.45, absorb_p=0.0,
                   reconnect_after_absorb=True, coords=torch.as_tensor(coords),
                   voxel_cm=VOXEL_CM)
    found = cluster_events(*args, **options).numpy()
    assert sorted(np.bincount(found[found >= 0]).tolist()) == [6, 40]
    small = cluster_events(*args, min_cluster_size=7, **options).numpy()
    assert (small[40:] == -1).all() and np.unique(small[:40]).tolist() == [0]


def test_tuning_rejects_a_bad_bend_before_the_grid_search():
    from mlreco_spice.cluster.tuning import tune_thresholds

    with pytest.raises(ValueError, match="connect_max_bend"):
        tune_thresholds([], connect_radius_cm=0.6, connect_max_bend=-10.0, progress=False)
