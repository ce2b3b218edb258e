"""Parsers (sparse3d, cluster3d), event checks and collate on hand-made records."""
import numpy as np
import pytest

from mlreco_spice.columns import (BATCH_COL, COORD_COLS, HIP, INSTANCE_COL, MICHEL, MIP,
                                  PARSER_COORD_COLS, PARSER_FEATURE_START, PARSER_INSTANCE_COL,
                                  PARSER_SEMANTIC_COL, SEMANTIC_COL, SHOWER, UNLABELED)
from mlreco_spice.errors import BadEventError, DataError
from mlreco_spice.registry import PARSERS
from parsers.collate import SkippedEvent, batch_stat, collate_events
from parsers.event import ClusterProduct, EventRecord, ImageMeta, Particle, SparseProduct
from parsers.validate import check_event, event_problems

META = ImageMeta.cube(8)


def _sparse(coords, values, meta=META):
    return SparseProduct(np.asarray(coords, np.int64).reshape(-1, 3),
                         np.asarray(values, np.float32), meta)


def _two_track_record():
    """Two instances sharing voxel (1, 1, 1); instance 1 deposits more there.

    Instance 0 is a MIP track (3 voxels, all MIP). Instance 1 has one MIP
    voxel (the shared one) and two HIP voxels, so its majority class is HIP;
    one of its voxels (5, 5, 5) is not in the data.
    """
    coords = [[2, 2, 2], [1, 1, 1], [1, 1, 2], [1, 1, 3], [0, 0, 0], [3, 3, 3]]
    sem = _sparse(coords, [HIP, MIP, MIP, MIP, SHOWER, HIP])
    data = _sparse(coords, [1, 2, 3, 4, 5, 6])
    cluster = ClusterProduct(
        [np.array([[1, 1, 1], [1, 1, 2], [1, 1, 3]]),
         np.array([[1, 1, 1], [2, 2, 2], [3, 3, 3], [5, 5, 5]])],
        [np.array([0.5, 1.0, 1.0]), np.array([5.0, 1.0, 1.0, 1.0])], META)
    return EventRecord(run=1, subrun=2, event=3, sparse3d={"data": data, "semantics": sem},
                       cluster3d={"pcluster": cluster}, file="hand.h5", entry=7)


def _row(out, xyz):
    match = np.all(out[:, list(PARSER_COORD_COLS)] == xyz, axis=1)
    assert match.sum() == 1
    return out[match][0]


def test_sparse3d_union_alignment_and_order():
    a = _sparse([[3, 0, 0], [0, 0, 1], [0, 1, 0]], [1.0, 2.0, 3.0])
    b = _sparse([[0, 1, 0], [7, 7, 7]], [10.0, 20.0])
    record = EventRecord(sparse3d={"a": a, "b": b})
    out = PARSERS.get("sparse3d")(record, products=["sparse3d_a", "b"])
    expected = np.array([[0, 0, 1, 2, 0], [0, 1, 0, 3, 10], [3, 0, 0, 1, 0], [7, 7, 7, 0, 20]],
                        dtype=np.float32)
    np.testing.assert_array_equal(out, expected)
    assert out.dtype == np.float32


def test_sparse3d_single_product_sorts_hand_made_input():
    record = EventRecord(sparse3d={"a": _sparse([[1, 0, 0], [0, 0, 5]], [1.0, 2.0])})
    out = PARSERS.get("sparse3d")(record, products="a")
    np.testing.assert_array_equal(out[:, PARSER_FEATURE_START], [2.0, 1.0])


def test_sparse3d_missing_product_lists_available():
    record = _two_track_record()
    with pytest.raises(DataError, match="sparse3d_nope.*sparse3d_data, sparse3d_semantics"):
        PARSERS.get("sparse3d")(record, products=["sparse3d_nope"])


def test_sparse3d_meta_mismatch_is_bad_event():
    other = ImageMeta((8, 8, 8), (0.3, 0.3, 0.3), (1.0, 0.0, 0.0))
    record = EventRecord(sparse3d={"a": _sparse([[0, 0, 0]], [1]),
                                   "b": _sparse([[0, 0, 0]], [1], other)}, file="f", entry=2)
    with pytest.raises(BadEventError, match="meta mismatch"):
        PARSERS.get("sparse3d")(record, products=["a", "b"])


def test_cluster3d_overlap_prefers_matching_class_then_energy():
    record = _two_track_record()
    stats = {}
    out = PARSERS.get("cluster3d")(record, cluster_product="cluster3d_pcluster",
                                   semantics_product="sparse3d_semantics", stats=stats)
    assert out.shape == (6, PARSER_SEMANTIC_COL + 1)
    # Shared MIP voxel: instance 0 (MIP) wins over instance 1 (HIP) despite less energy.
    assert _row(out, [1, 1, 1])[PARSER_INSTANCE_COL] == 0
    assert _row(out, [2, 2, 2])[PARSER_INSTANCE_COL] == 1
    assert _row(out, [3, 3, 3])[PARSER_INSTANCE_COL] == 1
    assert _row(out, [0, 0, 0])[PARSER_INSTANCE_COL] == UNLABELED
    assert _row(out, [0, 0, 0])[PARSER_SEMANTIC_COL] == SHOWER
    np.testing.assert_array_equal(out[:, PARSER_SEMANTIC_COL], [SHOWER, MIP, MIP, MIP, HIP, HIP])
    assert stats == {"dropped_cluster_voxels": 1, "n_instances": 2}


def test_cluster3d_energy_decides_between_same_class_instances():
    record = _two_track_record()
    # Relabel everything MIP: both instances now match the shared voxel's class.
    sem = record.sparse3d["semantics"]
    record.sparse3d["semantics"] = _sparse(sem.coords, np.full(len(sem.values), MIP))
    out = PARSERS.get("cluster3d")(record, cluster_product="pcluster",
                                   semantics_product="semantics")
    assert _row(out, [1, 1, 1])[PARSER_INSTANCE_COL] == 1  # 5.0 > 0.5


def test_cluster3d_particle_semantic_overrides_majority():
    record = _two_track_record()
    record.particles["pcluster"] = [Particle(id=0, pdg=11, semantic=MICHEL, start_cm=(0, 0, 0),
                                             energy_init=30.0),
                                    Particle(id=1, pdg=13, semantic=MIP, start_cm=(0, 0, 0),
                                             energy_init=100.0)]
    out = PARSERS.get("cluster3d")(record, cluster_product="cluster3d_pcluster",
                                   semantics_product="sparse3d_semantics",
                                   particle_product="particle_pcluster")
    # Now instance 1 is the MIP and matches the MIP voxel; instance 0 (Michel) does not.
    assert _row(out, [1, 1, 1])[PARSER_INSTANCE_COL] == 1


def test_check_event_accepts_good_and_names_problems():
    record = _two_track_record()
    check_event(record)
    bad = _two_track_record()
    bad.sparse3d["data"].values[0] = np.nan
    bad.sparse3d["semantics"].values[1] = 7
    bad.cluster3d["pcluster"].values[0][0] = -1.0
    problems = " | ".join(event_problems(bad))
    assert "NaN/inf" in problems and "semantic values outside 0-4" in problems
    assert "negative energies" in problems
    with pytest.raises(BadEventError) as info:
        check_event(bad)
    assert info.value.file == "hand.h5" and info.value.entry == 7


@pytest.mark.parametrize("mutate, reason", [
    (lambda r: r.sparse3d.__setitem__("data", _sparse([[0, 0, 0], [0, 0, 0]], [1, 2])),
     "duplicated voxels"),
    (lambda r: r.sparse3d.__setitem__("data", _sparse([[0, 0, 8]], [1])), "outside the image"),
    (lambda r: r.sparse3d.__setitem__("data", _sparse([[0, 0, 1]], [-2])), "negative energies"),
    (lambda r: setattr(r.cluster3d["pcluster"], "meta", ImageMeta.cube(16)), "meta mismatch"),
])
def test_check_event_detects(mutate, reason):
    record = _two_track_record()
    mutate(record)
    with pytest.raises(BadEventError, match=reason):
        check_event(record)


def test_check_event_max_voxels():
    with pytest.raises(BadEventError, match="more than io.max_voxels=5"):
        check_event(_two_track_record(), max_voxels=5)


def test_collate_prepends_batch_column_and_records_skips():
    record = _two_track_record()
    parse = PARSERS.get("cluster3d")
    events = []
    for index in range(2):
        stats = {}
        events.append({"clust_label": parse(record, cluster_product="pcluster",
                                            semantics_product="semantics", stats=stats),
                       "index": index, "file": record.file, "entry": index, "run": 1,
                       "subrun": 2, "event": 3 + index, "meta": META,
                       "parse_stats": {"clust_label": stats}})
    skipped = SkippedEvent(9, "bad.h5", 4, "NaN")
    batch = collate_events([events[0], skipped, None, events[1]])
    tensor = batch["clust_label"]
    assert batch["batch_size"] == 2 and tensor.shape == (12, 6)
    np.testing.assert_array_equal(tensor[:, BATCH_COL].numpy(), [0] * 6 + [1] * 6)
    np.testing.assert_array_equal(tensor[6:, list(COORD_COLS)].numpy(),
                                  events[1]["clust_label"][:, list(PARSER_COORD_COLS)])
    np.testing.assert_array_equal(tensor[:, INSTANCE_COL].numpy()[:6],
                                  events[0]["clust_label"][:, PARSER_INSTANCE_COL])
    np.testing.assert_array_equal(tensor[:, SEMANTIC_COL].numpy()[:6],
                                  events[0]["clust_label"][:, PARSER_SEMANTIC_COL])
    assert batch["event"] == [3, 4] and batch["meta"] == [META, META]
    assert batch["skipped"] == [{"index": 9, "file": "bad.h5", "entry": 4, "reason": "NaN"}]
    assert batch_stat(batch, "clust_label", "dropped_cluster_voxels") == 2
    assert collate_events([skipped]) == {"batch_size": 0, "skipped": [batch["skipped"][0]]}


def test_check_event_cluster_overlap_ok_but_repeat_within_instance_not():
    record = _two_track_record()
    check_event(record)  # instances 0 and 1 share (1, 1, 1): allowed
    cluster = record.cluster3d["pcluster"]
    cluster.coords[1] = np.vstack([cluster.coords[1], [[2, 2, 2]]])
    cluster.values[1] = np.append(cluster.values[1], 1.0)
    with pytest.raises(BadEventError, match="'cluster3d_pcluster' has 1 duplicated voxels"):
        check_event(record)
