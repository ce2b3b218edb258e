"""Seed-search steps beyond the paper: refinement, merging, connectivity, one seed per class."""
import math

import numpy as np
import pytest
import torch

from mlreco_spice.baselines import dbscan_by_class
from mlreco_spice.cluster import SPICEClusterer, cluster_events
from mlreco_spice.cluster.postprocess import (connect_fragments, merge_overlapping,
                                              postprocess_segment, refine_labels)
from mlreco_spice.cluster.synthetic import synthetic_event
from mlreco_spice.cluster.tuning import CONNECT_P_GRID, tune_thresholds, write_thresholds
from mlreco_spice.columns import CLASS_NAMES
from mlreco_spice.metrics import evaluate_event


def same_partition(a, b):
    pairs = set(zip(np.asarray(a).tolist(), np.asarray(b).tolist()))
    return len(pairs) == len(set(np.asarray(a).tolist())) == len(set(np.asarray(b).tolist()))


def line(start, step, n):
    return np.asarray(start, float) + np.outer(np.arange(n), np.asarray(step, float))


def test_refine_moves_voxels_to_the_recentred_kernel():
    # Two blobs at x = 0 and x = 1; candidate 1's seed sat at x = 0.4, so it took
    # the right half of blob 0. Re-centring on members fixes that in a few passes.
    rng = np.random.default_rng(0)
    emb = np.concatenate([rng.normal(0.0, 0.05, (50, 3)), rng.normal(0.0, 0.05, (50, 3))])
    emb[50:, 0] += 1.0
    truth = np.repeat([0, 1], 50)
    labels = np.where(emb[:, 0] > 0.0, 1, 0)
    margins = np.full(100, 0.2)
    assert not same_partition(labels, truth)
    assert np.array_equal(refine_labels(emb, margins, labels, 0), labels)
    refined = refine_labels(emb, margins, labels, 5)
    assert same_partition(refined, truth)
    # Voxels left out stay out, and the input is not modified.
    labels[:3] = -1
    kept = labels.copy()
    out = refine_labels(emb, margins, labels, 5)
    assert (out[:3] == -1).all() and np.array_equal(labels, kept)


def _plain_refine(emb, margins, labels, n_iter):
    """The refinement written plainly: every voxel scores every candidate, ties to the
    lower id (the pruned search in postprocess._refine must agree exactly)."""
    labels = labels.copy()
    k = labels.max() + 1
    for _ in range(n_iter):
        kept = labels >= 0
        count = np.bincount(labels[kept], minlength=k)
        centres = np.zeros((k, 3))
        sigma = np.zeros(k)
        for c in np.flatnonzero(count):
            centres[c] = emb[labels == c].mean(axis=0)
            sigma[c] = margins[labels == c].mean()
        inv = 1.0 / (2.0 * sigma ** 2 + 1e-8)
        new = np.full(len(labels), -1)
        for rows in np.array_split(np.arange(len(labels)), max(1, len(labels) // 200)):
            cost = ((emb[rows, None, :] - centres[None]) ** 2).sum(-1) * inv[None]
            cost[:, count == 0] = np.inf
            new[rows] = np.where(kept[rows], cost.argmin(axis=1), -1)
        if np.array_equal(new, labels):
            break
        labels = new
    return labels


@pytest.mark.parametrize("seed", range(4))
def test_refine_with_pruning_equals_scoring_every_candidate(seed):
    # Many candidates of unequal widths; and (grid embeddings) exact ties between them.
    rng = np.random.default_rng(seed)
    labels = rng.integers(-1, 60, 400)
    if seed % 2:
        # Grid embeddings, one margin, two voxels per candidate: the centres sit on the
        # half-grid and a voxel is often exactly as far from two of them.
        emb = rng.integers(0, 4, size=(400, 3)).astype(float)
        margins = np.full(400, 0.5)
        labels = np.arange(400) // 2
        centres = np.array([emb[labels == c].mean(axis=0) for c in range(200)])
        cost = ((emb[:, None, :] - centres[None]) ** 2).sum(-1)
        assert ((cost == cost.min(axis=1, keepdims=True)).sum(axis=1) > 1).any()  # ties
    else:
        emb = rng.normal(0.0, 1.0, (400, 3)) + rng.integers(0, 6, size=(400, 1))
        margins = rng.uniform(0.05, 1.5, 400)
    got = refine_labels(emb, margins, labels, 4)
    assert np.array_equal(got, _plain_refine(emb, margins, labels, 4))


def test_refine_with_more_candidates_than_the_pruning_table_scores_them_all():
    from mlreco_spice.cluster.postprocess import MAX_PRUNED_CANDIDATES

    rng = np.random.default_rng(9)
    n = MAX_PRUNED_CANDIDATES + 300
    emb = rng.normal(0.0, 1.0, (n, 3))
    margins = rng.uniform(0.05, 1.5, n)
    labels = np.arange(n) % (MAX_PRUNED_CANDIDATES + 100)
    assert np.unique(labels).size > MAX_PRUNED_CANDIDATES
    assert np.array_equal(refine_labels(emb, margins, labels, 1),
                          _plain_refine(emb, margins, labels, 1))


def test_merge_threshold_is_the_kernel_value_at_the_other_centroid():
    emb = np.zeros((4, 3))
    emb[2:, 0] = 0.1                      # centroids 0.1 apart, margin 0.1
    margins = np.full(4, 0.1)
    labels = np.array([0, 0, 1, 1])
    p = math.exp(-0.1 ** 2 / (2 * 0.1 ** 2 + 1e-8))  # 0.6065
    assert merge_overlapping(emb, margins, labels, p - 1e-3).tolist() == [0, 0, 0, 0]
    assert merge_overlapping(emb, margins, labels, p + 1e-3).tolist() == [0, 0, 1, 1]
    # Either direction: a wide kernel reaches a narrow one's centroid.
    margins[:2] = 1.0
    margins[2:] = 0.01
    assert merge_overlapping(emb, margins, labels, 0.99).tolist() == [0, 0, 0, 0]


def test_connect_splits_disjoint_tracks_and_rejoins_by_embedding():
    a, b = line((0, 0, 0), (1, 0, 0), 20), line((0, 10, 0), (1, 0, 0), 20)
    coords = np.concatenate([a, b])
    emb = np.zeros((40, 3))
    margins = np.full(40, 0.1)
    # One cluster over two tracks 10 voxels apart: split at radius 3, whatever connect_p.
    one = np.zeros(40, dtype=np.int64)
    for connect_p in (0.0, 0.5):
        assert connect_fragments(coords, emb, margins, one, 3.0, connect_p).tolist() == \
            [0] * 20 + [1] * 20
    # One track labelled as two clusters: rejoined when the centroids agree.
    track = line((0, 0, 0), (1, 0, 0), 40)
    halves = np.repeat([0, 1], 20)
    emb[20:, 0] = 0.1                       # p = 0.6065 between the halves
    assert connect_fragments(track, emb, margins, halves, 1.5, 0.5).tolist() == [0] * 40
    assert connect_fragments(track, emb, margins, halves, 1.5, 0.7).tolist() == halves.tolist()
    # Untouched voxels (-1) stay -1 and do not bridge fragments.
    holes = halves.copy()
    holes[18:22] = -1
    out = connect_fragments(track, emb, margins, holes, 1.5, 0.0)
    assert (out[18:22] == -1).all() and out[:18].tolist() == [0] * 18 and \
        out[22:].tolist() == [1] * 18


def test_connect_p_zero_is_dbscan_with_min_samples_one():
    rng = np.random.default_rng(3)
    coords = rng.integers(0, 25, size=(400, 3)).astype(float)
    emb = rng.normal(size=(400, 3))
    labels = rng.integers(0, 7, size=400)
    found = connect_fragments(coords, emb, np.full(400, 0.1), labels, 2.0, 0.0)
    reference = dbscan_by_class(coords, np.zeros(400, dtype=int),
                                {"HIP": {"eps": 2.0, "min_samples": 1}})
    assert same_partition(found, reference)
    # Labels follow the first voxel's position.
    assert found[0] == 0 and set(found.tolist()) == set(range(found.max() + 1))


def test_postprocess_segment_needs_coords_for_connect():
    emb, margins = np.zeros((3, 3)), np.full(3, 0.1)
    with pytest.raises(ValueError, match="coordinates"):
        postprocess_segment(emb, margins, np.zeros(3, dtype=np.int64), connect_p=0.1)


def make_event(seed=0):
    ev = synthetic_event((2, 3, 3, 1, 1), n_voxels=700, spread=2.5, seed=seed)
    # Voxel positions follow the embeddings, so instances are spatial blobs too.
    ev["coords"] = np.round(ev["embeddings"] * 15.0)
    ev["voxel_cm"] = VOXEL_CM
    return ev


VOXEL_CM = 0.3   # radii below: 0.6 cm = 2 voxels


def as_tensors(ev):
    n = len(ev["seediness"])
    return (torch.as_tensor(ev["embeddings"]), torch.as_tensor(ev["margins"]),
            torch.as_tensor(ev["seediness"]), torch.as_tensor(ev["semantics"]), torch.zeros(n))


OPTIONS = dict(s0=0.5, p0=0.3, at_least_one_seed=True, refine_iterations=3, merge_p=0.5,
               connect_radius_cm=0.6, connect_p={"HIP": 0.0, "MIP": 0.1})


def test_backends_agree_with_every_step_on():
    ev = make_event(1)
    coords = torch.as_tensor(ev["coords"]).float()
    numba = cluster_events(*as_tensors(ev), backend="numba", coords=coords, voxel_cm=VOXEL_CM,
                           **OPTIONS)
    torch_ = cluster_events(*as_tensors(ev), backend="torch", coords=coords, voxel_cm=VOXEL_CM,
                            **OPTIONS)
    assert torch.equal(numba, torch_)
    plain = cluster_events(*as_tensors(ev), s0=0.5, p0=0.3)
    assert not torch.equal(numba, plain)


def test_at_least_one_seed_clusters_a_class_below_s0():
    ev = make_event(2)
    ev["seediness"] = ev["seediness"] * 0.9   # every voxel below s0 = 1
    for backend in ("numba", "torch"):
        off = cluster_events(*as_tensors(ev), s0=1.0, p0=0.1, backend=backend)
        on = cluster_events(*as_tensors(ev), s0=1.0, p0=0.1, backend=backend,
                            at_least_one_seed=True).numpy()
        assert (off == -1).all()
        # One seed per class: 5 clusters, each within one class.
        assert sorted(set(on.tolist())) == [0, 1, 2, 3, 4]
        for label in range(5):
            assert len(set(ev["semantics"][on == label].tolist())) == 1


def test_clusterer_block_and_errors():
    ev = make_event(3)
    clusterer = SPICEClusterer(**OPTIONS)
    assert clusterer.needs_coords
    assert clusterer.thresholds()["connect_p"] == {"HIP": 0.0, "MIP": 0.1, "Shower": None,
                                                   "Delta": None, "Michel": None}
    labels = clusterer(*as_tensors(ev), coords=torch.as_tensor(ev["coords"]), voxel_cm=VOXEL_CM)
    direct = cluster_events(*as_tensors(ev), coords=torch.as_tensor(ev["coords"]),
                            voxel_cm=VOXEL_CM, **OPTIONS)
    assert torch.equal(labels, direct)
    with pytest.raises(ValueError, match="needs voxel coordinates"):
        clusterer(*as_tensors(ev))
    with pytest.raises(ValueError, match="need the voxel pitch"):
        clusterer(*as_tensors(ev), coords=torch.as_tensor(ev["coords"]))
    with pytest.raises(ValueError, match=r"connect_radius_cm is not"):
        SPICEClusterer(connect_p=0.1)
    with pytest.raises(ValueError, match="mode='fast' only"):
        SPICEClusterer(mode="spine", refine_iterations=2)
    with pytest.raises(ValueError, match="merge_p for Shower"):
        SPICEClusterer(merge_p={"Shower": 1.5})
    with pytest.raises(ValueError, match="refine_iterations must be >= 0"):
        SPICEClusterer(refine_iterations=-1)
    with pytest.raises(ValueError, match="connect_radius_cm for MIP must be > 0"):
        SPICEClusterer(connect_radius_cm={"MIP": 0.0}, connect_p=0.1)
    with pytest.raises(ValueError, match=r"shape \(700, 3\)"):
        cluster_events(*as_tensors(ev), coords=torch.zeros(5, 3), voxel_cm=VOXEL_CM, **OPTIONS)


@pytest.mark.parametrize("bend", [None, 30.0])
def test_tuning_with_steps_matches_the_clusterer(tmp_path, bend):
    events = [make_event(s) for s in range(3)]
    steps = dict(at_least_one_seed=True, refine_iterations=3, merge_p=0.5, connect_radius_cm=0.6,
                 connect_max_bend=bend)
    result = tune_thresholds(events, step=0.25, progress=False, **steps)
    assert set(result["connect_p"]) == set(CLASS_NAMES)
    assert all(v in CONNECT_P_GRID for v in result["connect_p"].values())
    clusterer = SPICEClusterer(s0=result["s0"], p0=result["p0"],
                               connect_p=result["connect_p"], **steps)
    rows = {name: [] for name in CLASS_NAMES}
    for ev in events:
        labels = clusterer(*as_tensors(ev), coords=torch.as_tensor(ev["coords"]),
                           voxel_cm=VOXEL_CM)
        for row in evaluate_event(ev["truth_instance"], labels.numpy(), ev["truth_semantic"]):
            rows[row["class"]].append(row["ari"])
    for name in CLASS_NAMES:
        assert np.mean(rows[name]) == pytest.approx(result["scores"][name]["ari"], abs=1e-12)
    path = tmp_path / "t.yaml"
    write_thresholds(str(path), result)
    import yaml

    data = yaml.safe_load(path.read_text())
    if any(v is not None for v in result["connect_p"].values()):
        assert data["connect_p"] == result["connect_p"]
    with pytest.raises(ValueError, match="coords"):
        tune_thresholds([{k: v for k, v in events[0].items() if k != "coords"}],
                        progress=False, **steps)


def test_absorb_joins_a_mislabelled_stretch_back_into_its_track():
    from mlreco_spice.cluster.absorb import absorb_across_classes

    coords = line((0, 0, 0), (1, 0, 0), 30)
    semantics = np.ones(30, dtype=np.int64)          # a MIP track...
    semantics[12:16] = 0                             # ...with 4 voxels called HIP
    labels = np.where(semantics == 0, 1, 0)          # so the HIP class made its own cluster
    labels[20:] = 2                                  # and the track's end is a third cluster (MIP)
    emb, margins = np.zeros((30, 3)), np.full(30, 0.1)
    out = absorb_across_classes(coords, emb, margins, labels, semantics, 1.5, 0.5)
    # The HIP piece joins the larger touching MIP cluster; MIP-MIP pairs are left alone.
    assert out.tolist() == [0] * 20 + [1] * 10
    # Embeddings that disagree (p = exp(-0.5) = 0.61 < 0.7) keep the piece apart.
    emb[12:16, 0] = 0.1
    kept = absorb_across_classes(coords, emb, margins, labels, semantics, 1.5, 0.7)
    assert kept.tolist() == labels.tolist()
    # A gap wider than the radius keeps it apart too; unclustered voxels stay -1.
    holes = labels.copy()
    holes[10:12] = -1
    holes[16:18] = -1
    out = absorb_across_classes(coords, np.zeros((30, 3)), margins, holes, semantics, 1.5, 0.0)
    assert out.tolist() == holes.tolist()


def with_segmentation_errors(ev):
    """A fifth of the MIP voxels called HIP."""
    wrong = (ev["truth_semantic"] == 1) & (np.arange(len(ev["semantics"])) % 5 == 0)
    ev["semantics"] = np.where(wrong, 0, ev["truth_semantic"])
    return ev


def test_absorb_in_cluster_events_and_its_errors():
    ev = with_segmentation_errors(make_event(4))
    coords = torch.as_tensor(ev["coords"]).float()
    options = dict(OPTIONS, absorb_radius_cm=0.6, absorb_p=0.05, voxel_cm=VOXEL_CM)
    numba = cluster_events(*as_tensors(ev), backend="numba", coords=coords, **options)
    torch_ = cluster_events(*as_tensors(ev), backend="torch", coords=coords, **options)
    assert torch.equal(numba, torch_)
    without = cluster_events(*as_tensors(ev), coords=coords, voxel_cm=VOXEL_CM, **OPTIONS)
    # Absorbing only merges: every cluster without it lies inside one cluster with it.
    for label in np.unique(without.numpy()):
        assert np.unique(numba.numpy()[without.numpy() == label]).size == 1
    assert np.unique(numba.numpy()).size < np.unique(without.numpy()).size
    assert sorted(set(numba.tolist())) == list(range(int(numba.max()) + 1))
    with pytest.raises(ValueError, match="absorb_p needs absorb_radius_cm"):
        SPICEClusterer(absorb_p=0.1)
    with pytest.raises(ValueError, match="absorb_p is set"):
        cluster_events(*as_tensors(ev), absorb_radius_cm=0.6, absorb_p=0.1)


def test_tuning_picks_absorb_p_consistent_with_the_clusterer():
    from mlreco_spice.cluster.tuning import ABSORB_P_GRID

    events = [with_segmentation_errors(make_event(s)) for s in range(2)]
    steps = dict(at_least_one_seed=True, refine_iterations=3, merge_p=0.5, connect_radius_cm=0.6)
    result = tune_thresholds(events, step=0.25, progress=False, absorb_radius_cm=0.6, **steps)
    # Rows SPICE did not process (NaN outputs, class -1) are left out, as in inference.
    for ev in events:
        for key in ("embeddings", "margins", "seediness"):
            ev[key] = np.concatenate([ev[key], np.full((1,) + ev[key].shape[1:], np.nan,
                                                        dtype=ev[key].dtype)])
        for key, value in (("semantics", -1), ("truth_semantic", -1), ("truth_instance", -1)):
            ev[key] = np.append(ev[key], value)
        ev["coords"] = np.concatenate([ev["coords"], [[1e3, 1e3, 1e3]]])
    result = tune_thresholds(events, step=0.25, progress=False, absorb_radius_cm=0.6, **steps)
    # With segmentation errors to undo, absorbing beats leaving it off.
    assert result["absorb_p"] in ABSORB_P_GRID and result["absorb_p"] is not None
    clusterer = SPICEClusterer(s0=result["s0"], p0=result["p0"], connect_p=result["connect_p"],
                               absorb_radius_cm=0.6, absorb_p=result["absorb_p"], **steps)
    for name in CLASS_NAMES:
        aris = []
        for ev in events:
            # The clusterer sees SPICE's rows only.
            ev = {k: v[:-1] for k, v in ev.items() if k != "voxel_cm"}
            labels = clusterer(*as_tensors(ev), coords=torch.as_tensor(ev["coords"]),
                               voxel_cm=VOXEL_CM)
            aris += [r["ari"] for r in evaluate_event(ev["truth_instance"], labels.numpy(),
                                                      ev["truth_semantic"], classes=[name])]
        assert np.mean(aris) == pytest.approx(result["scores"][name]["ari"], abs=1e-12)


def test_absorb_pass_scores_the_bend_veto_and_reconnect_as_the_clusterer_does():
    from mlreco_spice.cluster.tuning import _tune_absorb

    events = [with_segmentation_errors(make_event(s)) for s in range(2)]
    clusterer = dict(s0=0.5, p0=0.3, at_least_one_seed=True, refine_iterations=3, merge_p=0.5,
                     connect_radius_cm=0.6, connect_p={"HIP": 0.0, "MIP": 0.0},
                     connect_max_bend=30.0, reconnect_after_absorb=True)
    absorb_p, scores = _tune_absorb(events, clusterer, 0.6, 10, range(len(CLASS_NAMES)))
    full = SPICEClusterer(absorb_radius_cm=0.6, absorb_p=absorb_p, **clusterer)
    plain = SPICEClusterer(absorb_radius_cm=0.6, absorb_p=absorb_p,
                           **dict(clusterer, connect_max_bend=None, reconnect_after_absorb=False))
    changed = 0
    for name in CLASS_NAMES:
        aris = []
        for ev in events:
            coords = torch.as_tensor(ev["coords"])
            labels = full(*as_tensors(ev), coords=coords, voxel_cm=VOXEL_CM).numpy()
            changed += not np.array_equal(
                labels, plain(*as_tensors(ev), coords=coords, voxel_cm=VOXEL_CM).numpy())
            aris += [r["ari"] for r in evaluate_event(ev["truth_instance"], labels,
                                                      ev["truth_semantic"], classes=[name])]
        assert np.mean(aris) == pytest.approx(scores[name]["ari"], abs=1e-12)
    assert changed  # the two steps matter on these events, so the check above can fail


def test_union_labels_gives_scipys_connected_components():
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    from mlreco_spice.cluster.postprocess import _union_labels

    rng = np.random.default_rng(2)
    for n, m in ((1, 0), (50, 30), (400, 350), (400, 2000)):
        a, b = rng.integers(0, n, size=(2, m))
        got = _union_labels(n, a, b)
        want = connected_components(coo_matrix((np.ones(m), (a, b)), shape=(n, n)),
                                    directed=False)[1]
        # The same partition, numbered by each component's lowest node.
        assert np.array_equal(got, want)
    # Links from the top of a long chain down (the order that made a labelling pass
    # without path compression quadratic: minutes at this size): one component.
    n = 200_000
    down = np.arange(n - 1, 0, -1)
    assert np.array_equal(_union_labels(n, down, down - 1), np.zeros(n, dtype=np.int64))
