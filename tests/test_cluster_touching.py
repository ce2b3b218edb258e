"""Touching voxel pairs, found once per event and shared by the clusterer's steps."""
import numpy as np
import pytest

from mlreco_spice.cluster.absorb import (absorb_across_classes, absorb_events, event_pairs,
                                         reconnect_tracks)
from mlreco_spice.cluster.options import lengths_in_units, step_options, touching_radius
from mlreco_spice.cluster.postprocess import connect_fragments
from mlreco_spice.cluster.touching import pairs_within, touching_pairs


def brute_force(coords, radius):
    d2 = ((coords[:, None, :] - coords[None, :, :]) ** 2).sum(axis=-1)
    a, b = np.nonzero(np.triu(d2 <= radius * radius, k=1))
    return set(zip(a.tolist(), b.tolist()))


def as_set(a, b):
    assert (np.asarray(a) < np.asarray(b)).all()
    return set(zip(np.asarray(a).tolist(), np.asarray(b).tolist()))


@pytest.mark.parametrize("radius", [1.0, 1.5, 3.0])
def test_pairs_are_every_pair_within_the_radius_boundary_included(radius):
    rng = np.random.default_rng(4)
    coords = np.unique(rng.integers(0, 8, size=(150, 3)), axis=0).astype(float)
    found = touching_pairs(coords, radius)
    assert as_set(found.a, found.b) == brute_force(coords, radius)
    # Exactly the radius apart on the grid (3, 4, 5 triangle scaled) counts as touching.
    assert as_set(*touching_pairs(np.array([[0.0, 0, 0], [0, 3, 4]]), 5.0)[:2]) == {(0, 1)}


def test_subsets_match_a_search_of_their_own():
    rng = np.random.default_rng(5)
    coords = rng.uniform(0, 10, size=(200, 3))
    found = touching_pairs(coords, 2.0)
    assert as_set(*pairs_within(found, 1.2)) == brute_force(coords, 1.2)
    rows = np.sort(rng.choice(200, size=80, replace=False))
    assert as_set(*pairs_within(found, 2.0, rows=rows)) == brute_force(coords[rows], 2.0)
    assert as_set(*pairs_within(found, 1.5, start=30, stop=120)) == \
        brute_force(coords[30:120], 1.5)
    with pytest.raises(ValueError, match="found within 2.0"):
        pairs_within(found, 2.5)
    empty = touching_pairs(coords[:1], 2.0)
    assert empty.a.size == 0 and pairs_within(empty, 1.0)[0].size == 0


def steps_for(connect_radius_cm=0.9, absorb_radius_cm=0.9):
    steps = step_options("fast", True, 0, None, {"HIP": connect_radius_cm, "MIP": 0.6},
                         {"HIP": 0.0, "MIP": 0.0}, absorb_radius_cm, 0.1, None, True, 4.5)
    return lengths_in_units(steps, 0.3)


def test_event_radius_is_the_largest_a_step_uses():
    assert touching_radius(steps_for(0.9, 0.6)) == pytest.approx(3.0)
    assert touching_radius(steps_for(0.3, 1.2)) == pytest.approx(4.0)


def two_events():
    """Two events on one grid, each a track of two classes plus a blob; the second
    event's voxels overlap the first's positions (events must not touch each other)."""
    rng = np.random.default_rng(6)
    track = np.stack([np.arange(30), np.zeros(30), np.zeros(30)], axis=1)
    blob = rng.integers(0, 6, size=(40, 3)) + np.array([12, 2, 0])
    coords = np.unique(np.concatenate([track, blob]), axis=0).astype(float)
    n = len(coords)
    semantics = np.where(coords[:, 1] > 0, 2, np.where(coords[:, 0] < 15, 1, 0))
    labels = np.where(semantics == 2, 5, np.where(coords[:, 0] < 8, 0, 1 + semantics))
    emb = np.stack([coords[:, 0] / 30.0, semantics / 4.0, np.zeros(n)], axis=1)
    return coords, semantics, labels, emb, n


def test_shared_pairs_give_the_labels_of_each_step_searching_alone():
    coords, semantics, labels, emb, n = two_events()
    order = np.lexsort((semantics,))
    coords, semantics, labels, emb = coords[order], semantics[order], labels[order], emb[order]
    margins = np.full(n, 0.2)
    segments = []
    for event in (0, 1):
        for c in np.unique(semantics):
            rows = np.flatnonzero(semantics == c)
            segments.append((event * n + rows[0], event * n + rows[-1] + 1, event, int(c)))
    stacked = [np.concatenate([x, x]) for x in (labels, coords, emb, margins, semantics)]
    stacked[0][n:] = np.where(labels >= 0, labels + 10, -1)
    steps = steps_for()
    shared = event_pairs(stacked[1], segments, steps)
    assert set(shared) == {0, 1} and shared[0].a.size == shared[1].a.size > 0
    with_shared = absorb_events(*stacked[:1], segments, *stacked[1:], steps, 1, shared)
    # Each step searching its own voxels, event by event (no pairs passed).
    for event in (0, 1):
        part = slice(event * n, (event + 1) * n)
        absorbed, units = absorb_across_classes(
            coords, emb, margins, stacked[0][part], semantics, steps["absorb_radius"],
            steps["absorb_p"], return_units=True)
        alone = reconnect_tracks(coords, emb, margins, absorbed, semantics, units,
                                 steps["connect_radius"], steps["connect_p"])
        assert np.array_equal(with_shared[part], alone)
    assert len(np.unique(with_shared[:n])) > 1
    # The connectivity step with the caller's pairs (found at a larger radius, cut down,
    # in another order) equals its own search.
    wide = touching_pairs(coords, 4.5)
    shuffle = np.random.default_rng(8).permutation(wide.a.size)
    a, b = pairs_within(wide._replace(a=wide.a[shuffle], b=wide.b[shuffle]), 3.0)
    assert a.size < wide.a.size
    assert np.array_equal(
        connect_fragments(coords, emb, margins, labels, 3.0, 0.0, 25.0, 15.0, (a, b)),
        connect_fragments(coords, emb, margins, labels, 3.0, 0.0, 25.0, 15.0))


def test_a_batch_clusters_each_event_as_it_would_alone():
    """Events share a batch (and their voxel positions) but never a touching pair."""
    import torch

    from mlreco_spice.cluster import cluster_events

    coords, semantics, _, emb, n = two_events()
    rng = np.random.default_rng(7)
    seediness = rng.uniform(0.5, 1.0, n)
    options = dict(s0=0.5, p0=0.3, at_least_one_seed=True, refine_iterations=2, merge_p=0.5,
                   connect_radius_cm=0.9, connect_p={"HIP": 0.3, "MIP": 0.0},
                   absorb_radius_cm=0.9, absorb_p=0.1, connect_max_bend=25,
                   reconnect_after_absorb=True, voxel_cm=0.3)

    def run(*events):
        cat = [torch.as_tensor(np.concatenate([x] * len(events))) for x in
               (emb, np.full(n, 0.2), seediness, semantics, coords)]
        batch = torch.as_tensor(np.repeat(events, n))
        return cluster_events(*cat[:4], batch, coords=cat[4], **options).numpy()

    alone = run(0)
    both = run(0, 1)
    assert len(np.unique(alone)) > 1
    assert np.array_equal(both[:n], alone) and np.array_equal(both[n:], alone)
