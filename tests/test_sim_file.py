"""simulate_file writes a larcv3 file that plain larcv reads; --stats reads it back."""
import numpy as np
import pytest

pytest.importorskip("larcv")
pytest.importorskip("parsers.writer")

from mlreco_spice.cli import main  # noqa: E402
from mlreco_spice.sim import simulate_events, simulate_file  # noqa: E402


@pytest.fixture(scope="module")
def sim_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("sim") / "sim.h5"
    simulate_file(path, n_events=3, seed=5, size=128, voxel_mm=3.0, progress=False)
    return path


def test_plain_larcv_iomanager_reads_the_file(sim_file):
    import larcv

    expected = list(simulate_events(3, seed=5, size=128))
    io = larcv.IOManager(larcv.IOManager.kREAD)
    io.add_in_file(str(sim_file))
    io.initialize()
    assert io.get_n_entries() == 3
    for entry, record in enumerate(expected):
        io.read_entry(entry)
        data = io.get_data("sparse3d", "data").as_vector()[0]
        assert data.size() == len(record.sparse3d["data"].values)
        clusters = io.get_data("cluster3d", "pcluster").as_vector()[0]
        assert clusters.size() == len(record.cluster3d["pcluster"])
        particles = io.get_data("particle", "pcluster")
        assert particles.size() == len(record.particles["pcluster"])
    io.finalize()


def test_round_trip_through_reader_keeps_arrays(sim_file):
    from parsers.readers import open_reader

    reader = open_reader(str(sim_file))
    for i, record in enumerate(simulate_events(3, seed=5, size=128)):
        back = reader[i]
        for name in ("data", "semantics"):
            assert np.array_equal(back.sparse3d[name].coords, record.sparse3d[name].coords)
            assert np.allclose(back.sparse3d[name].values, record.sparse3d[name].values)
        assert len(back.cluster3d["pcluster"]) == len(record.cluster3d["pcluster"])
        assert [p.pdg for p in back.particles["pcluster"]] == \
            [p.pdg for p in record.particles["pcluster"]]


def test_stats_command_prints_the_five_classes(sim_file, capsys):
    assert main(["simulate", "--stats", str(sim_file)]) == 0
    out = capsys.readouterr().out
    for name in ("HIP", "MIP", "Shower", "Delta", "Michel"):
        assert name in out
    assert "3 events" in out
