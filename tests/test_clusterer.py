"""SPICEClusterer: known answers, threshold behaviour, a slow reference, SPINE equivalence."""
import math

import numpy as np
import pytest
import spine  # noqa: F401  (test extra: the equivalence test must never be skipped)
import torch

from mlreco_spice.cluster import SPICEClusterer, cluster_events, resolve_thresholds
from mlreco_spice.cluster.kernels import EPS
from mlreco_spice.cluster.spine_compat import SPINE_SHAPE_OF_CLASS, run_spine_clusterer
from mlreco_spice.columns import CLASS_NAMES, NUM_CLASSES
from mlreco_spice.defaults import PAPER_THRESHOLDS, STAGE_DEFAULTS


def blobs(centers, per_blob=40, width=0.01, seed=0):
    """Tight blobs; seediness peaks at each blob's first voxel."""
    rng = np.random.default_rng(seed)
    emb = np.concatenate([c + width * rng.normal(size=(per_blob, 3)) for c in centers])
    instance = np.repeat(np.arange(len(centers)), per_blob)
    seediness = np.tile(np.linspace(0.99, 0.6, per_blob), len(centers))
    margins = np.full(len(emb), 0.05)
    return (torch.tensor(emb, dtype=torch.float32), torch.tensor(margins, dtype=torch.float32),
            torch.tensor(seediness, dtype=torch.float32), instance)


def same_partition(a, b):
    a, b = np.asarray(a), np.asarray(b)
    pairs = set(zip(a.tolist(), b.tolist()))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


def test_separated_blobs_recovered_with_ids_restarting_per_event():
    emb, margins, seed, instance = blobs([(0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1)])
    n = len(emb)
    # Event 0: blobs 0, 1 are HIP, 2, 3 MIP. Event 1: the same voxels, all Shower.
    sem = torch.tensor(np.r_[np.where(instance < 2, 0, 1), np.full(n, 2)])
    batch = torch.tensor(np.r_[np.zeros(n), np.ones(n)])
    args = (torch.cat([emb, emb]), torch.cat([margins, margins]), torch.cat([seed, seed]), sem, batch)
    labels = SPICEClusterer(s0=0.5, p0=0.1)(*args)
    assert labels.dtype == torch.long
    first, second = labels[:n].numpy(), labels[n:].numpy()
    assert same_partition(first, instance) and same_partition(second, instance)
    assert sorted(set(first)) == [0, 1, 2, 3] == sorted(set(second))
    # Ids follow class order then seed order: HIP blobs get 0 and 1.
    assert set(first[instance < 2]) == {0, 1}


def test_seed_threshold_above_all_seediness_leaves_everything_unclustered():
    emb, margins, seed, _ = blobs([(0, 0, 0), (1, 0, 0)])
    sem, batch = torch.zeros(len(emb), dtype=torch.long), torch.zeros(len(emb))
    for leftovers in (True, False):
        labels = cluster_events(emb, margins, seed, sem, batch, s0=1.0, p0=0.1,
                                assign_leftovers=leftovers)
        assert (labels == -1).all()


def test_high_p0_splits_and_leftovers_option():
    rng = np.random.default_rng(1)
    emb = torch.tensor(rng.normal(scale=0.05, size=(200, 3)), dtype=torch.float32)
    margins = torch.full((200,), 0.05)
    seed = torch.tensor(rng.uniform(0.0, 1.0, 200), dtype=torch.float32)
    sem, batch = torch.full((200,), 1), torch.zeros(200)
    low = cluster_events(emb, margins, seed, sem, batch, s0=0.0, p0=0.01)
    high = cluster_events(emb, margins, seed, sem, batch, s0=0.0, p0=0.9)
    assert len(low.unique()) < len(high.unique())
    # Stop seeding early: leftovers either join a candidate or stay -1.
    kept = cluster_events(emb, margins, seed, sem, batch, s0=0.95, p0=0.9, assign_leftovers=True)
    dropped = cluster_events(emb, margins, seed, sem, batch, s0=0.95, p0=0.9, assign_leftovers=False)
    assert (kept >= 0).all() and (dropped == -1).any()
    assert torch.equal(kept[dropped >= 0], dropped[dropped >= 0])


def test_min_cluster_size_dissolves_small_clusters():
    emb, margins, seed, instance = blobs([(0, 0, 0), (1, 0, 0)])
    emb = torch.cat([emb, torch.tensor([[5.0, 5.0, 5.0]])])  # a lone voxel far away
    margins, seed = torch.cat([margins, torch.tensor([0.05])]), torch.cat([seed, torch.tensor([0.9])])
    sem, batch = torch.zeros(len(emb), dtype=torch.long), torch.zeros(len(emb))
    assert len(cluster_events(emb, margins, seed, sem, batch, s0=0.5, p0=0.1).unique()) == 3
    labels = cluster_events(emb, margins, seed, sem, batch, s0=0.5, p0=0.1, min_cluster_size=2)
    assert labels[-1] == -1 and sorted(labels[:-1].unique().tolist()) == [0, 1]


# --- the fast clusterer against a plain reference ------------------------------------

def reference(emb, margins, seediness, semantics, batch, s0, p0, min_size, leftovers):
    """Obvious loops over the documented procedure (log-domain kernel, float64)."""
    emb, margins, seediness = emb.double().tolist(), margins.double().tolist(), seediness.double().tolist()
    semantics, batch = semantics.tolist(), batch.long().tolist()
    labels = [-1] * len(emb)
    for event in sorted(set(batch)):
        next_id = 0
        for c in range(NUM_CLASSES):
            members = [i for i in range(len(emb)) if batch[i] == event and semantics[i] == c]
            log_p0 = math.log(p0[c]) if p0[c] > 0 else -math.inf
            covered, candidates, log_p = set(), [], {}
            while len(covered) < len(members):
                free = [i for i in members if i not in covered]
                seed = max(free, key=lambda i: (seediness[i], -i))  # ties: lowest index
                if not seediness[seed] >= s0[c]:
                    break
                inv = 1.0 / (2.0 * margins[seed] * margins[seed] + EPS)
                for i in members:
                    d2 = 0.0
                    for j in range(len(emb[i])):
                        d2 += (emb[i][j] - emb[seed][j]) * (emb[i][j] - emb[seed][j])
                    log_p[len(candidates), i] = -d2 * inv
                    if log_p[len(candidates), i] > log_p0:
                        covered.add(i)
                covered.add(seed)
                candidates.append(seed)
            choice = {}
            for i in members:
                if candidates and (leftovers or i in covered):
                    scores = [log_p[k, i] for k in range(len(candidates))]
                    choice[i] = scores.index(max(scores))  # ties: earlier candidate
            sizes = [list(choice.values()).count(k) for k in range(len(candidates))]
            new_id, count = {}, 0
            for k in range(len(candidates)):
                if sizes[k] >= min_size:
                    new_id[k], count = next_id + count, count + 1
            for i, k in choice.items():
                labels[i] = new_id.get(k, -1)
            next_id += count
    return torch.tensor(labels)


def overlapping_inputs(seed, n=240):
    """Random overlapping embeddings; even seeds use an integer grid (exact ties between candidates)."""
    rng = np.random.default_rng(seed)
    if seed % 2 == 0:
        emb = rng.integers(-3, 4, size=(n, 3)).astype(float)
        margins = rng.choice([1.0, 1.5, 2.0], n)
    else:
        emb = rng.normal(scale=0.3, size=(n, 3))
        margins = rng.uniform(0.05, 0.3, n)
    dup = min(20, n // 4)
    emb[n // 2:n // 2 + dup] = emb[:dup]  # duplicated embeddings: exact ties in p
    seediness = np.round(rng.uniform(0, 1, n), 1)  # many seediness ties
    semantics = rng.integers(-1, NUM_CLASSES, n)
    batch = rng.integers(0, 3, n)  # unsorted events
    return (torch.tensor(emb, dtype=torch.float32), torch.tensor(margins, dtype=torch.float32),
            torch.tensor(seediness, dtype=torch.float32), torch.tensor(semantics), torch.tensor(batch))


@pytest.mark.parametrize("seed,s0,p0,min_size,leftovers", [
    (0, 0.0, 0.3, 1, True), (1, 0.5, 0.6, 1, False), (2, 0.3, 0.0, 1, True),
    (3, None, None, 3, True), (4, 0.7, 0.9, 2, False), (5, 0.2, 0.1, 1, True)])
def test_fast_equals_reference(seed, s0, p0, min_size, leftovers):
    args = overlapping_inputs(seed)
    s0_list, p0_list = resolve_thresholds(s0, p0)
    expected = reference(*args, s0_list, p0_list, min_size, leftovers)
    for backend in ("numba", "torch"):
        got = cluster_events(*args, s0=s0, p0=p0, min_cluster_size=min_size,
                             assign_leftovers=leftovers, backend=backend)
        assert torch.equal(got, expected), backend


# --- SPINE equivalence ------------------------------------------------------------------

def test_spine_shape_mapping_is_explicit_and_injective():
    assert SPINE_SHAPE_OF_CLASS == (4, 1, 0, 3, 2)  # HIP, MIP, Shower, Delta, Michel
    assert len(set(SPINE_SHAPE_OF_CLASS)) == NUM_CLASSES


@pytest.mark.parametrize("seed,s0,p0,min_size,leftovers", [
    (0, None, None, 1, True), (1, 0.2, 0.3, 2, True), (2, 0.5, 0.05, 1, False),
    (3, 0.0, 0.6, 3, True)])
def test_spine_mode_equals_spine(seed, s0, p0, min_size, leftovers):
    args = overlapping_inputs(seed, n=600)
    s0_list, p0_list = resolve_thresholds(s0, p0)
    expected = run_spine_clusterer(*args, s0_list, p0_list, min_size=min_size, assign_all=leftovers)
    got = SPICEClusterer(s0=s0, p0=p0, min_cluster_size=min_size, assign_leftovers=leftovers,
                         mode="spine")(*args)
    assert (got >= 0).sum() > 0
    assert torch.equal(got, expected)


# --- options and validation ---------------------------------------------------------

def test_accepts_config_block_and_disabled():
    block = {k: (v.default if hasattr(v, "default") else v)
             for k, v in STAGE_DEFAULTS["spice"]["clusterer"].items()}
    clusterer = SPICEClusterer(**block)
    assert clusterer.s0 == [PAPER_THRESHOLDS[c]["s0"] for c in CLASS_NAMES]
    assert clusterer.p0 == [PAPER_THRESHOLDS[c]["p0"] for c in CLASS_NAMES]
    args = overlapping_inputs(0, n=50)
    assert (SPICEClusterer(**{**block, "enabled": False})(*args) == -1).all()


def test_thresholds_by_name_index_and_scalar():
    s0, p0 = resolve_thresholds({"shower": 0.3, 0: 0.9}, 0.2)
    assert s0 == [0.9, 0.5, 0.3, 0.85, 0.0] and p0 == [0.2] * NUM_CLASSES
    with pytest.raises(ValueError, match="unknown semantic class"):
        resolve_thresholds({"muon": 0.1})
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        resolve_thresholds(1.5)


def test_bad_inputs_raise():
    emb, margins, seed, sem, batch = overlapping_inputs(0, n=30)
    with pytest.raises(ValueError, match="margins"):
        cluster_events(emb, margins[:5], seed, sem, batch)
    bad = emb.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        cluster_events(bad, margins, seed, sem, batch)
    with pytest.raises(ValueError, match="mode"):
        SPICEClusterer(mode="dbscan")
