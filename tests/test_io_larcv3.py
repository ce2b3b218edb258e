"""larcv3 writer and reader: round trip, IOManager compatibility, atomicity, bad files."""
import os

import h5py
import numpy as np
import pytest

from mlreco_spice.errors import DataError
from parsers.event import ClusterProduct, EventRecord, ImageMeta, Particle, SparseProduct, \
    linear_index
from parsers.readers import open_reader
from parsers.readers.larcv3 import Larcv3Reader
from parsers.writer import LarcvWriter, write_events

larcv = pytest.importorskip("larcv")

META = ImageMeta((16, 20, 24), (0.3, 0.3, 0.3), (1.0, -2.0, 3.0))


def make_record(event: int, seed: int = 0) -> EventRecord:
    """A random event with unsorted voxels, two instances and a particle table."""
    rng = np.random.default_rng(seed * 1000 + event)
    coords = np.unique(rng.integers(0, META.size, size=(60, 3)), axis=0)
    rng.shuffle(coords)
    energy = rng.random(len(coords)).astype(np.float32) + 0.1
    semantic = rng.integers(0, 5, len(coords)).astype(np.float32)
    clusters = ClusterProduct([coords[:10], coords[10:35]], [energy[:10], energy[10:35]], META)
    particles = [Particle(0, 13, 1, (1.5, 2.0, 3.0), 100.0, -1, 0, 5.0, 0),
                 Particle(1, 11, 4, (4.0, 5.0, 6.25), 30.0, 0, 1, 2.0, -1)]
    return EventRecord(run=7, subrun=3, event=100 + event,
                       sparse3d={"data": SparseProduct(coords, energy, META),
                                 "semantics": SparseProduct(coords, semantic, META)},
                       cluster3d={"pcluster": clusters}, particles={"pcluster": particles})


def _sorted(coords, values, meta=META):
    order = np.argsort(linear_index(coords, meta.size))
    return np.asarray(coords)[order], np.asarray(values)[order]


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    path = tmp_path_factory.mktemp("io") / "events.h5"
    records = [make_record(i) for i in range(3)]
    n = write_events(str(path), (r for r in records))  # a generator: streamed
    assert n == 3
    return str(path), records


def test_round_trip_arrays_meta_and_ids(written):
    path, records = written
    reader = open_reader(path)
    assert isinstance(reader, Larcv3Reader) and len(reader) == 3
    assert reader.list_products(reader.files[0]) == ["cluster3d_pcluster", "particle_pcluster",
                                                      "sparse3d_data", "sparse3d_semantics"]
    for entry, original in enumerate(records):
        record = reader[entry]
        assert (record.run, record.subrun, record.event) == (7, 3, 100 + entry)
        assert record.file == os.path.abspath(path) and record.entry == entry
        for name, product in original.sparse3d.items():
            got = record.sparse3d[name]
            coords, values = _sorted(product.coords, product.values)
            assert got.coords.dtype == np.int64 and got.values.dtype == np.float32
            np.testing.assert_array_equal(got.coords, coords)
            np.testing.assert_array_equal(got.values, values)
            assert got.meta.same_grid(META)
            np.testing.assert_allclose(got.meta.origin_cm, META.origin_cm)
        got = record.cluster3d["pcluster"]
        assert len(got) == 2
        for k in range(2):
            coords, values = _sorted(original.cluster3d["pcluster"].coords[k],
                                     original.cluster3d["pcluster"].values[k])
            np.testing.assert_array_equal(got.coords[k], coords)
            np.testing.assert_array_equal(got.values[k], values)
        assert record.particles["pcluster"] == original.particles["pcluster"]


def test_plain_iomanager_reads_file_and_matches_h5py_route(written):
    path, _ = written
    io = larcv.IOManager(larcv.IOManager.kREAD)
    io.add_in_file(path)
    io.initialize()
    reader = Larcv3Reader([path])
    assert io.get_n_entries() == len(reader) == 3
    for entry in range(3):
        io.read_entry(entry)
        record = reader[entry]
        event_id = io.event_id()
        assert (event_id.run(), event_id.subrun(), event_id.event()) == \
            (record.run, record.subrun, record.event)
        tensor = io.get_data("sparse3d", "data").sparse_tensor(0)
        size = [tensor.meta().number_of_voxels(axis) for axis in range(3)]
        assert tuple(size) == META.size
        np.testing.assert_allclose([tensor.meta().origin(a) for a in range(3)], META.origin_cm)
        np.testing.assert_array_equal(linear_index(record.sparse3d["data"].coords, size),
                                      tensor.indexes())
        np.testing.assert_array_equal(record.sparse3d["data"].values, tensor.values())
        clusters = io.get_data("cluster3d", "pcluster").sparse_cluster(0)
        assert clusters.size() == 2
        for k in range(2):
            voxels = clusters.voxel_set(k)
            assert voxels.id() == k
            np.testing.assert_array_equal(
                linear_index(record.cluster3d["pcluster"].coords[k], size), voxels.indexes())
            np.testing.assert_array_equal(record.cluster3d["pcluster"].values[k], voxels.values())
        particles = io.get_data("particle", "pcluster")
        assert [p.pdg_code() for p in particles.as_vector()] == [13, 11]
        assert [p.energy_init() for p in particles.as_vector()] == [100.0, 30.0]
    io.finalize()


def test_duplicates_summed_and_empty_products(tmp_path):
    record = EventRecord(sparse3d={"data": SparseProduct(np.array([[1, 2, 3], [0, 0, 0], [1, 2, 3]]),
                                                         np.array([1.0, 2.0, 3.0]), META),
                                   "empty": SparseProduct(np.zeros((0, 3)), np.zeros(0), META)},
                         cluster3d={"c": ClusterProduct([], [], META)})
    path = str(tmp_path / "dup.h5")
    write_events(path, [record])
    got = open_reader(path)[0]
    np.testing.assert_array_equal(got.sparse3d["data"].coords, [[0, 0, 0], [1, 2, 3]])
    np.testing.assert_array_equal(got.sparse3d["data"].values, [2.0, 4.0])
    assert got.sparse3d["empty"].coords.shape == (0, 3) and len(got.cluster3d["c"]) == 0


def test_failed_write_leaves_no_file(tmp_path):
    def records():
        yield make_record(0)
        raise RuntimeError("simulation crashed")

    path = tmp_path / "partial.h5"
    with pytest.raises(RuntimeError, match="crashed"):
        write_events(str(path), records())
    assert not path.exists() and os.listdir(tmp_path) == []


def test_writer_rejects_particle_ids_that_are_not_rows(tmp_path):
    record = make_record(0)
    record.particles["pcluster"][0].id = 5
    with pytest.raises(ValueError, match="ids must be 0..n-1"):
        with LarcvWriter(str(tmp_path / "bad.h5")) as writer:
            writer.write(record)
    assert os.listdir(tmp_path) == []


# --- bad files -----------------------------------------------------------------
def test_missing_file():
    with pytest.raises(DataError, match="not found: /nonexistent/x.h5"):
        open_reader("/nonexistent/x.h5", fmt="larcv3")
    with pytest.raises(DataError, match="not found"):
        len(Larcv3Reader(["/nonexistent/x.h5"]))


def test_empty_file(tmp_path):
    path = tmp_path / "empty.h5"
    path.write_bytes(b"")
    with pytest.raises(DataError, match=f"{path} is empty"):
        len(Larcv3Reader([str(path)]))
    with pytest.raises(DataError, match="empty"):
        open_reader(str(path))


def test_truncated_file(written, tmp_path):
    source, _ = written
    data = open(source, "rb").read()
    for cut in (len(data) // 2, 600):
        path = tmp_path / f"truncated_{cut}.h5"
        path.write_bytes(data[:cut])
        reader = Larcv3Reader([str(path)])
        with pytest.raises(DataError, match=str(path)):
            for entry in range(len(reader)):
                reader[entry]


def test_not_hdf5_and_not_larcv(tmp_path):
    text = tmp_path / "notes.h5"
    text.write_text("hello, this is not HDF5")
    with pytest.raises(DataError, match="not a readable HDF5"):
        len(Larcv3Reader([str(text)]))
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as h5:
        h5["weights"] = np.arange(3)
    with pytest.raises(DataError, match="not larcv3.*weights"):
        len(Larcv3Reader([str(other)]))


def test_missing_product_lists_available(written):
    path, _ = written
    reader = Larcv3Reader([path], products=["sparse3d_data", "sparse3d_charge"])
    with pytest.raises(DataError, match="sparse3d_charge not found; the file has "
                                        "cluster3d_pcluster, particle_pcluster, sparse3d_data"):
        reader[0]


def test_entry_out_of_range(written):
    path, _ = written
    reader = Larcv3Reader([path])
    with pytest.raises(DataError, match="entry 3: out of range"):
        reader.read_entry(reader.files[0], 3)
    with pytest.raises(IndexError):
        reader[3]


def test_products_subset_only(written):
    path, _ = written
    record = Larcv3Reader([path], products=["sparse3d_data"])[1]
    assert record.products() == ["sparse3d_data"]


def test_product_absent_from_a_later_entry_is_written_empty(tmp_path):
    """larcv3 would repeat the previous entry's voxels; the writer writes it empty."""
    import numpy as np

    from parsers.event import EventRecord, ImageMeta, SparseProduct
    from parsers.readers import open_reader
    from parsers.writer import write_events

    meta = ImageMeta.cube(16, 3.0)
    first = EventRecord(0, 0, 0, sparse3d={
        "data": SparseProduct(np.array([[1, 2, 3]]), np.array([1.0], np.float32), meta),
        "extra": SparseProduct(np.array([[4, 4, 4]]), np.array([2.0], np.float32), meta)})
    second = EventRecord(0, 0, 1, sparse3d={
        "data": SparseProduct(np.array([[5, 5, 5]]), np.array([3.0], np.float32), meta)})
    write_events(str(tmp_path / "w.h5"), [first, second])
    record = open_reader(str(tmp_path / "w.h5"))[1]
    assert record.sparse3d["data"].coords.tolist() == [[5, 5, 5]]
    assert len(record.sparse3d["extra"].coords) == 0
