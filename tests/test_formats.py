"""larcv2 ROOT and PILArNet-M readers: byte decoding, round trips, mapping, bad files.

The committed fixtures (``tests/fixtures``) hold the same simulated events in
larcv3, larcv2 ROOT (written by real ROOT) and PILArNet-M layouts; reading
them must give the same voxels, energies, classes and instances. Only uproot
and h5py are needed here, never ROOT.
"""
from __future__ import annotations

import pickle
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures"
sys.path.insert(0, str(FIXTURES))

from fixture_events import (FIXTURE_EVENTS, LARCV2_FIXTURE, LARCV3_FIXTURE,  # noqa: E402
                            PILARNET_M_FIXTURE, fixture_records)
from mlreco_spice.columns import HIP, MICHEL, MIP, SHOWER, UNLABELED  # noqa: E402
from mlreco_spice.errors import BadEventError, DataError  # noqa: E402
from parsers.event import linear_index  # noqa: E402
from parsers.readers import detect_format, open_reader  # noqa: E402
from parsers.readers.root_cluster import ClusterDecodeError, decode_voxel_sets  # noqa: E402

import h5py  # noqa: E402  (install requirements, like uproot: never skipped)
import uproot  # noqa: E402

#: Our role -> product name in each fixture.
NAMES = {
    "larcv2": {"data": "data", "semantics": "fivetypes", "cluster": "mcst"},
    "pilarnet_m": {"data": "data", "semantics": "semantics", "cluster": "pcluster"},
    "records": {"data": "data", "semantics": "semantics", "cluster": "pcluster"},
}


def pilarnet_reader(path, **options):
    from parsers.readers.pilarnet_m import PilarnetMReader

    return PilarnetMReader([str(path)], grid_size=FIXTURE_EVENTS["size"],
                           voxel_cm=FIXTURE_EVENTS["voxel_mm"] / 10, **options)


@pytest.fixture(scope="module", autouse=True)
def committed_fixtures():
    """Fail (never skip) when a committed fixture file is missing."""
    missing = [p.name for p in (LARCV3_FIXTURE, LARCV2_FIXTURE, PILARNET_M_FIXTURE)
               if not p.exists()]
    if missing:
        pytest.fail(f"fixture file(s) {', '.join(missing)} missing in {FIXTURES}: regenerate all "
                    f"three with `python tests/fixtures/make_larcv2_fixture.py` (needs the "
                    f"PyPI root wheel and larcv)", pytrace=False)


@pytest.fixture(scope="module")
def reference():
    """The fixture events as the simulator's larcv3 file holds them."""
    reader = open_reader(str(LARCV3_FIXTURE), "larcv3")
    return [reader[i] for i in range(len(reader))], NAMES["records"]


def _in_data(record, names, coords, values):
    """Cluster voxels that are data voxels (PILArNet-M has points only there)."""
    data = record.sparse3d[names["data"]]
    size = data.meta.size
    keep = np.isin(linear_index(np.asarray(coords).reshape(-1, 3), size),
                   linear_index(data.coords, size))
    return np.asarray(coords).reshape(-1, 3)[keep], np.asarray(values)[keep]


def assert_same_event(ref, ref_names, got, got_names, particle_fields=("semantic",),
                      data_voxels_only=False):
    """Same data, semantics, instances (and particle fields) in two records.

    With ``data_voxels_only``, instance voxels absent from the reference's
    data are ignored (the PILArNet-M layout has none).
    """
    for role in ("data", "semantics"):
        a, b = ref.sparse3d[ref_names[role]], got.sparse3d[got_names[role]]
        assert a.meta.same_grid(b.meta)
        np.testing.assert_array_equal(a.coords, b.coords)
        np.testing.assert_allclose(a.values, b.values, rtol=1e-5, atol=1e-6)
    ca, cb = ref.cluster3d[ref_names["cluster"]], got.cluster3d[got_names["cluster"]]
    assert len(ca) == len(cb)
    for xa, va, xb, vb in zip(ca.coords, ca.values, cb.coords, cb.values):
        if data_voxels_only:
            xa, va = _in_data(ref, ref_names, xa, va)
        oa, ob = (np.argsort(linear_index(x, ca.meta.size)) for x in (xa, xb))
        np.testing.assert_array_equal(np.asarray(xa)[oa], np.asarray(xb)[ob])
        np.testing.assert_allclose(np.asarray(va)[oa], np.asarray(vb)[ob], rtol=1e-5, atol=1e-6)
    pa, pb = ref.particles[ref_names["cluster"]], got.particles[got_names["cluster"]]
    assert len(pa) == len(pb)
    for p, q in zip(pa, pb):
        for field in particle_fields:
            assert getattr(p, field) == pytest.approx(getattr(q, field)), (field, p, q)


# -- basket bytes ---------------------------------------------------------------
def _entry(clusters, checksum=0x7A384FDA, version=0x400A, flag=0x40000000):
    body = struct.pack(">HHI", version, 0, checksum)
    for ids, values in clusters:
        body += struct.pack(">I", len(ids)) + np.asarray(ids, ">u8").tobytes() \
            + np.asarray(values, ">f4").tobytes()
    return struct.pack(">I", flag | len(body)) + body


def _overrun():
    """A cluster claiming 9 voxels followed by the bytes of only 2."""
    body = struct.pack(">HHI", 0x400A, 0, 0x7A384FDA) + struct.pack(">I", 9) + bytes(24)
    return struct.pack(">I", 0x40000000 | len(body)) + body


def test_decode_voxel_sets_reads_each_cluster():
    data = _entry([([3, 7], [0.5, 1.5]), ([], []), ([2**40], [2.0])])
    sets = decode_voxel_sets(data, 3, checksum=0x7A384FDA)
    assert [s[0].tolist() for s in sets] == [[3, 7], [], [2**40]]
    assert [s[1].tolist() for s in sets] == [[0.5, 1.5], [], [2.0]]
    assert decode_voxel_sets(_entry([]), 0) == []


@pytest.mark.parametrize("data, n_sets, match", [
    (_entry([([1], [1.0])], flag=0), 1, "flag"),
    (_entry([([1], [1.0])], version=0x000A), 1, "member-wise"),
    (_entry([([1], [1.0])], checksum=1), 1, "checksum"),
    (_entry([([1], [1.0])]), 2, "says 2"),
    (_entry([([1], [1.0])])[:-2], 1, "byte count"),
    (_overrun(), None, "need"),
], ids=["no-flag", "not-memberwise", "checksum", "count", "truncated", "overrun"])
def test_decode_voxel_sets_rejects_bad_bytes(data, n_sets, match):
    with pytest.raises(ClusterDecodeError, match=match):
        decode_voxel_sets(data, n_sets, checksum=0x7A384FDA)


def test_larcv2_ids_follow_z_major_order():
    from parsers.readers.larcv2_root import larcv2_ids_to_coords

    size = (4, 5, 6)
    ids = np.array([0, 1, 4, 4 * 5, 4 * 5 * 6 - 1], dtype=np.uint64)
    expected = [[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [3, 4, 5]]
    assert larcv2_ids_to_coords(ids, size).tolist() == expected
    with pytest.raises(ValueError, match="outside"):
        larcv2_ids_to_coords(np.array([120], dtype=np.uint64), size)


# -- fixtures agree with the reference events --------------------------------------
def test_formats_are_detected():
    assert detect_format(str(LARCV2_FIXTURE)) == "larcv2"
    assert detect_format(str(PILARNET_M_FIXTURE)) == "pilarnet_m"


def test_larcv2_fixture_matches_reference(reference):
    records, names = reference
    reader = open_reader(str(LARCV2_FIXTURE))
    assert reader.format_name == "larcv2" and len(reader) == len(records)
    assert reader.list_products(reader.files[0]) == [
        "cluster3d_mcst", "particle_mcst", "sparse3d_data", "sparse3d_fivetypes"]
    for i, ref in enumerate(records):
        got = reader[i]
        assert (got.run, got.subrun, got.event) == (ref.run, ref.subrun, ref.event)
        assert_same_event(ref, names, got, NAMES["larcv2"],
                          ("semantic", "pdg", "parent_id", "energy_init", "start_cm"))


def test_pilarnet_m_fixture_matches_reference(reference):
    records, names = reference
    reader = pilarnet_reader(PILARNET_M_FIXTURE)
    assert len(reader) == len(records)
    for i, ref in enumerate(records):
        assert_same_event(ref, names, reader[i], NAMES["pilarnet_m"], ("semantic",),
                          data_voxels_only=True)


def test_pilarnet_m_round_trip_from_simulator(tmp_path):
    from make_pilarnet_m_fixture import write_pilarnet_m

    records = fixture_records()[:2]
    write_pilarnet_m(records, tmp_path / "sim.h5")
    reader = pilarnet_reader(tmp_path / "sim.h5")
    for i, ref in enumerate(records):
        assert_same_event(ref, NAMES["records"], reader[i], NAMES["pilarnet_m"],
                          ("semantic", "interaction_id"), data_voxels_only=True)


def test_larcv2_and_pilarnet_m_fixtures_agree():
    larcv2 = open_reader(str(LARCV2_FIXTURE))
    pilarnet = pilarnet_reader(PILARNET_M_FIXTURE)
    assert len(larcv2) == len(pilarnet) == FIXTURE_EVENTS["n"]
    for i in range(len(larcv2)):
        assert_same_event(larcv2[i], NAMES["larcv2"], pilarnet[i], NAMES["pilarnet_m"],
                          ("semantic",), data_voxels_only=True)


def test_readers_feed_the_same_parsers():
    from parsers.cluster import parse_cluster3d
    from parsers.sparse import parse_sparse3d

    outputs = []
    for reader, fmt in ((open_reader(str(LARCV2_FIXTURE)), "larcv2"),
                        (pilarnet_reader(PILARNET_M_FIXTURE), "pilarnet_m")):
        record, n = reader[3], NAMES[fmt]
        outputs.append((parse_sparse3d(record, f"sparse3d_{n['data']}"),
                        parse_sparse3d(record, f"sparse3d_{n['semantics']}"),
                        parse_cluster3d(record, f"cluster3d_{n['cluster']}",
                                        f"sparse3d_{n['semantics']}",
                                        particle_product=f"particle_{n['cluster']}")))
    for a, b in zip(*outputs):
        assert len(a) > 100
        np.testing.assert_allclose(a, b, rtol=1e-5)


def test_readers_survive_pickling():
    for reader in (open_reader(str(LARCV2_FIXTURE)), pilarnet_reader(PILARNET_M_FIXTURE)):
        first = reader[1]
        clone = pickle.loads(pickle.dumps(reader))
        again = clone[1]
        np.testing.assert_array_equal(first.sparse3d["data"].coords, again.sparse3d["data"].coords)


# -- PILArNet-M conventions ------------------------------------------------------------
def _write_one_event(path, points, clusters):
    with h5py.File(path, "w") as h5:
        for name, rows, width in (("point", points, 8), ("cluster", clusters, 6)):
            dset = h5.create_dataset(name, (1,), dtype=h5py.vlen_dtype(np.float32))
            dset[0] = np.asarray(rows, np.float32).reshape(-1, width).ravel()
        dset = h5.create_dataset("cluster_extra", (1,), dtype=h5py.vlen_dtype(np.float32))
        dset[0] = np.full(5 * len(clusters), -1, np.float32)


@pytest.fixture
def mapping_event(tmp_path):
    """LED voxel, a proton track, a muon track and a two-fragment shower sharing a voxel."""
    p = lambda x, y, z, e: [x, y, z, e, e, 0, 0, 0]  # noqa: E731
    points = [p(0, 0, 0, 0.1),                       # cluster 0: low-energy deposit
              p(1, 1, 1, 2.0), p(1, 1, 2, 2.0),      # proton track (group 3)
              p(5, 5, 5, 1.0),                       # muon track (group 4)
              p(1, 1, 2, 0.5), p(9, 9, 9, 0.3),      # shower fragment 5 (group 5)
              p(9, 9, 8, 0.2)]                       # shower fragment 6 (group 5)
    clusters = [[1, -1, -1, -1, 4, -1], [2, 3, 3, 0, 1, 4], [1, 4, 4, 0, 1, 2],
                [2, 5, 5, 0, 0, 0], [1, 6, 5, 0, 0, 0]]
    path = tmp_path / "one.h5"
    _write_one_event(path, points, clusters)
    return path


def _class_at(record, xyz, producer="semantics"):
    prod = record.sparse3d[producer]
    row = np.flatnonzero((prod.coords == xyz).all(axis=1))
    return int(prod.values[row[0]])


def test_pilarnet_m_semantics_and_groups(mapping_event):
    ev = pilarnet_reader(mapping_event)[0]
    assert _class_at(ev, [0, 0, 0]) == UNLABELED
    assert _class_at(ev, [1, 1, 1]) == HIP
    assert _class_at(ev, [5, 5, 5]) == MIP
    assert _class_at(ev, [1, 1, 2]) == HIP       # HIP outranks Shower on a shared voxel
    data = ev.sparse3d["data"]
    shared = np.flatnonzero((data.coords == [1, 1, 2]).all(axis=1))[0]
    assert data.values[shared] == pytest.approx(2.5)
    clusters, parts = ev.cluster3d["pcluster"], ev.particles["pcluster"]
    assert [len(c) for c in clusters.coords] == [2, 1, 3]  # groups 3, 4, 5 (5 = two fragments)
    assert [(q.semantic, q.pdg) for q in parts] == [(HIP, 2212), (MIP, 13), (SHOWER, 22)]


def test_pilarnet_m_options(mapping_event):
    ev = pilarnet_reader(mapping_event, instance="fragment",
                         semantic_mapping={"low_energy": "Shower", "michel": "Michel"})[0]
    assert _class_at(ev, [0, 0, 0]) == SHOWER
    assert len(ev.cluster3d["pcluster"]) == 4
    assert [q.group_id for q in ev.particles["pcluster"]] == [0, 1, 2, 2]
    assert MICHEL not in [q.semantic for q in ev.particles["pcluster"]]
    only = pilarnet_reader(mapping_event, products=["sparse3d_data"])[0]
    assert only.products() == ["sparse3d_data"]


# -- bad files ---------------------------------------------------------------------------
def test_missing_and_empty_files(tmp_path):
    with pytest.raises(DataError, match="not found"):
        open_reader(str(tmp_path / "nope.root"))
    empty = tmp_path / "empty.root"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match="empty"):
        open_reader(str(empty))
    with pytest.raises(DataError, match="empty.root"):
        len(open_reader(str(empty), "larcv2"))


def test_corrupt_files_name_the_file(tmp_path):
    for source, fmt in ((LARCV2_FIXTURE, "larcv2"), (PILARNET_M_FIXTURE, "pilarnet_m")):
        bad = tmp_path / f"bad_{source.name}"
        bad.write_bytes(source.read_bytes()[:2000])
        with pytest.raises(DataError, match=bad.name):
            reader = open_reader(str(bad), fmt)
            [reader[i] for i in range(len(reader))]


def _cluster_basket_span(path):
    """(start, stop) bytes of the first compressed basket of cluster3d_mcst's voxel sets."""
    from parsers.readers.root_branches import find_member, leaf_index

    with uproot.open(path) as root:
        tree = root["cluster3d_mcst_tree"]
        branch = tree[find_member(leaf_index(tree), "_voxel_vv._voxel_v")]
        seek = int(branch.member("fBasketSeek")[0])
        key = branch.basket_key(0)
        return seek + key.fKeylen, seek + key.fNbytes


def test_corrupt_basket_is_a_bad_event(tmp_path):
    bad = tmp_path / "flipped.root"
    raw = bytearray(LARCV2_FIXTURE.read_bytes())
    start, stop = _cluster_basket_span(LARCV2_FIXTURE)
    assert stop - start > 200  # a compressed payload to damage
    middle = (start + stop) // 2  # past the compression header, inside the zlib stream
    raw[middle: middle + 64] = bytes(64)
    bad.write_bytes(bytes(raw))
    reader = open_reader(str(bad), "larcv2")
    with pytest.raises(BadEventError, match=r"flipped.root entry \d+: product 'cluster3d_mcst'"):
        [reader[i] for i in range(len(reader))]


def test_missing_product_lists_what_the_file_has(tmp_path):
    reader = open_reader(str(LARCV2_FIXTURE), products=["sparse3d_pcluster"])
    with pytest.raises(DataError, match="sparse3d_fivetypes"):
        len(reader)
    reader = open_reader(str(PILARNET_M_FIXTURE), products=["cluster3d_mcst"])
    with pytest.raises(DataError, match="cluster3d_pcluster"):
        len(reader)
    plain = tmp_path / "plain.h5"
    with h5py.File(plain, "w") as h5:
        h5["point"] = np.zeros(3)
    with pytest.raises(DataError, match="point"):
        len(open_reader(str(plain), "pilarnet_m"))

