"""SpiceDataset and make_loader on written larcv3 files."""
import logging

import numpy as np
import pytest

from mlreco_spice.columns import (BATCH_COL, COORD_COLS, INSTANCE_COL, NUM_CLASSES,
                                  PARSER_FEATURE_START, PARSER_INSTANCE_COL, SEMANTIC_COL,
                                  UNLABELED, VALUE_COL)
from mlreco_spice.errors import BadEventError, UserError
from parsers.dataset import SpiceDataset, make_loader
from parsers.writer import write_events

pytest.importorskip("larcv")
from test_io_larcv3 import make_record  # noqa: E402  (same hand-made events)

SCHEMA = {
    "data": {"parser": "sparse3d", "products": ["sparse3d_data"]},
    "seg_label": {"parser": "sparse3d", "products": ["sparse3d_semantics"]},
    "clust_label": {"parser": "cluster3d", "cluster_product": "cluster3d_pcluster",
                    "semantics_product": "sparse3d_semantics",
                    "particle_product": "particle_pcluster"},
}


def _io(files, **loader):
    return {"dataset": {"files": [str(f) for f in files], "schema": SCHEMA},
            "loader": {"batch_size": 2, "num_workers": 0, "shuffle": False, **loader}}


@pytest.fixture(scope="module")
def three_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dataset")
    files = []
    for k, n in enumerate((3, 2, 4)):
        path = folder / f"part_{k}.h5"
        write_events(str(path), (make_record(i, seed=k) for i in range(n)))
        files.append(path)
    return files


def test_every_entry_exactly_once_with_two_workers(three_files):
    loader = make_loader(_io(three_files, num_workers=2), shuffle=True, seed=3)
    seen = []
    for batch in loader:
        assert batch["skipped"] == []
        for b, (file, entry) in enumerate(zip(batch["file"], batch["entry"])):
            seen.append((file, entry))
            rows = batch["data"][:, BATCH_COL] == b
            labels = batch["clust_label"][batch["clust_label"][:, BATCH_COL] == b]
            # Labels are aligned row by row with the data of the same event.
            np.testing.assert_array_equal(batch["data"][rows][:, list(COORD_COLS)].numpy(),
                                          labels[:, list(COORD_COLS)].numpy())
    expected = [(str(f), e) for f, n in zip(three_files, (3, 2, 4)) for e in range(n)]
    assert sorted(seen) == sorted(expected) and len(seen) == 9


def test_item_content_and_identity(three_files):
    dataset = SpiceDataset(_io(three_files))
    assert len(dataset) == 9
    item = dataset[4]  # second file, entry 1
    assert (item["file"], item["entry"], item["run"], item["subrun"], item["event"]) == \
        (str(three_files[1]), 1, 7, 3, 101)
    record = make_record(1, seed=1)
    assert item["meta"].same_grid(record.sparse3d["data"].meta)
    data, seg, clust = item["data"], item["seg_label"], item["clust_label"]
    assert data.shape == (len(record.sparse3d["data"].coords), PARSER_FEATURE_START + 1)
    assert np.isclose(data[:, PARSER_FEATURE_START].sum(), record.sparse3d["data"].values.sum())
    assert set(np.unique(seg[:, -1])) <= set(range(NUM_CLASSES))
    instances = clust[:, PARSER_INSTANCE_COL]
    assert set(np.unique(instances)) == {UNLABELED, 0, 1}
    # 10 + 25 cluster voxels, none shared, all in the data.
    assert np.count_nonzero(instances >= 0) == 35
    assert item["parse_stats"]["clust_label"]["dropped_cluster_voxels"] == 0


def test_max_events(three_files):
    io = _io(three_files)
    io["dataset"]["max_events"] = 4
    assert len(SpiceDataset(io)) == 4


@pytest.fixture()
def file_with_bad_event(tmp_path):
    records = [make_record(i) for i in range(3)]
    records[1].sparse3d["semantics"].values[0] = 7  # not a class
    path = tmp_path / "bad.h5"
    write_events(str(path), records)
    return path


def test_bad_event_skipped_and_recorded(file_with_bad_event, caplog):
    io = _io([file_with_bad_event], batch_size=3)
    with caplog.at_level(logging.WARNING, logger="parsers.collate"):
        batch = next(iter(make_loader(io, shuffle=False)))
    assert batch["batch_size"] == 2 and batch["entry"] == [0, 2]
    assert len(batch["skipped"]) == 1
    skipped = batch["skipped"][0]
    assert skipped["entry"] == 1 and skipped["file"] == str(file_with_bad_event)
    assert "semantic values outside 0-4" in skipped["reason"]
    assert "skipped bad event" in caplog.text
    assert int(batch["data"][:, BATCH_COL].max()) == 1


def test_bad_event_raises_when_configured(file_with_bad_event):
    io = _io([file_with_bad_event])
    io["on_bad_event"] = "raise"
    dataset = SpiceDataset(io)
    dataset[0]
    with pytest.raises(BadEventError, match="entry 1: .*semantic values outside"):
        dataset[1]


def test_max_voxels_bad_event(three_files):
    io = _io(three_files[:1])
    io["max_voxels"] = 10
    io["on_bad_event"] = "raise"
    with pytest.raises(BadEventError, match="more than io.max_voxels=10"):
        SpiceDataset(io)[0]


def test_schema_errors(three_files):
    io = _io(three_files)
    io["dataset"]["schema"] = {"data": {"parser": "sparse4d", "products": ["sparse3d_data"]}}
    with pytest.raises(UserError, match="unknown parser 'sparse4d'.*sparse3d"):
        SpiceDataset(io)
    io["dataset"]["schema"] = {"data": {"parser": "sparse3d", "product": ["sparse3d_data"]}}
    with pytest.raises(UserError, match="schema.data.*options are products"):
        SpiceDataset(io)


def test_simulated_events(tmp_path):
    sim = pytest.importorskip("mlreco_spice.sim")
    path = tmp_path / "sim.h5"
    sim.simulate_file(str(path), n_events=2, seed=5, size=64, voxel_mm=3.0)
    from parsers.readers import open_reader

    products = open_reader(str(path)).list_products(str(path))
    cluster = next(p for p in products if p.startswith("cluster3d_"))
    semantics = next(p for p in products if p.startswith("sparse3d_") and "sem" in p)
    data = next(p for p in products if p.startswith("sparse3d_") and p != semantics)
    io = {"dataset": {"files": [str(path)], "schema": {
        "data": {"parser": "sparse3d", "products": [data]},
        "clust_label": {"parser": "cluster3d", "cluster_product": cluster,
                        "semantics_product": semantics}}},
        "loader": {"batch_size": 2, "num_workers": 0}}
    batch = next(iter(make_loader(io, shuffle=False)))
    assert batch["batch_size"] == 2
    labels = batch["clust_label"]
    np.testing.assert_array_equal(batch["data"][:, :VALUE_COL].numpy(),
                                  labels[:, :VALUE_COL].numpy())
    assert labels[:, INSTANCE_COL].min() >= UNLABELED
    assert np.count_nonzero(labels[:, INSTANCE_COL].numpy() >= 0) > 0.5 * len(labels)
    assert set(np.unique(labels[:, SEMANTIC_COL].numpy())) <= set(range(NUM_CLASSES))
