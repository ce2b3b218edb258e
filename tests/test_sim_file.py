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


def test_file_records_the_simulator_version_seed_and_size(sim_file, capsys):
    from mlreco_spice.sim.version import SIM_VERSION, check_simulated_file

    info = check_simulated_file(sim_file, seed=5, size=128)
    assert info == {"version": SIM_VERSION, "seed": 5, "size": 128, "voxel_mm": 3.0,
                    "n_events": 3, "first_event": 0, "labels": "pilarnet2020"}
    assert main(["simulate", "--stats", str(sim_file)]) == 0
    assert f"simulator version {SIM_VERSION}, seed 5, 128^3" in capsys.readouterr().out


def _older(sim_file, tmp_path, version=None):
    """A copy of the file as an older simulator left it (version 1 recorded nothing)."""
    import shutil

    import h5py

    from mlreco_spice.sim.version import SIM_ATTR

    path = tmp_path / "old.h5"
    shutil.copy(sim_file, path)
    with h5py.File(path, "r+") as h5:
        if version is None:
            del h5.attrs[SIM_ATTR]
        else:
            h5.attrs[SIM_ATTR] = f'{{"version": {version}}}'
    return path


def test_a_file_of_another_version_is_refused_naming_both(sim_file, tmp_path):
    import subprocess
    import sys

    from mlreco_spice.errors import DataError
    from mlreco_spice.sim.version import SIM_VERSION, check_simulated_file

    for version, named in ((None, "version 1"), (SIM_VERSION + 1, f"version {SIM_VERSION + 1}")):
        old = _older(sim_file, tmp_path, version)
        with pytest.raises(DataError, match=f"{named}.*version {SIM_VERSION}"):
            check_simulated_file(old)
    with pytest.raises(DataError, match="seed 5 \\(wanted 6\\)"):
        check_simulated_file(sim_file, seed=6)
    # A file in SPINE's shape codes is not read as ours.
    with pytest.raises(DataError, match="labels pilarnet2020 \\(wanted spine\\)"):
        check_simulated_file(sim_file, labels="spine")
    # The shell form used by scripts/train_default.sh.
    done = subprocess.run([sys.executable, "-m", "mlreco_spice.sim.check_files", str(sim_file),
                           str(old)], capture_output=True, text=True)
    assert done.returncode == 1
    assert f"version {SIM_VERSION + 1}" in done.stderr and "Traceback" not in done.stderr
    assert "seed 5" in done.stdout
    # make train-default also checks the seed, size and length of the files it reuses.
    other = subprocess.run([sys.executable, "-m", "mlreco_spice.sim.check_files", str(sim_file),
                            "--seed", "1", "--size", "128"], capture_output=True, text=True)
    assert other.returncode == 1 and "seed 5 (wanted 1)" in other.stderr
    same = subprocess.run([sys.executable, "-m", "mlreco_spice.sim.check_files", str(sim_file),
                           "--seed", "5", "--size", "128", "--events", "3"],
                          capture_output=True, text=True)
    assert same.returncode == 0, same.stderr


def test_demo_and_accuracy_benchmark_refuse_an_older_file(sim_file, tmp_path):
    import argparse
    import shutil
    import sys
    from pathlib import Path

    from mlreco_spice import demo
    from mlreco_spice.errors import DataError

    old = _older(sim_file, tmp_path)
    with pytest.raises(DataError, match="version 1"):
        demo._reusable_events(old, 3, 128)
    # A current file with other events is simulated again, not reused.
    assert not demo._reusable_events(Path(sim_file), 3, 128)

    benchmarks = Path(__file__).resolve().parent.parent / "benchmarks"
    sys.path.insert(0, str(benchmarks))
    try:
        import accuracy
    finally:
        sys.path.remove(str(benchmarks))
    root = tmp_path / "root"
    (root / "runs/default_data").mkdir(parents=True)
    shutil.copy(old, root / "runs/default_data/test_seed3.h5")
    args = argparse.Namespace(test_file=None, seed=3, size=128, events=3, no_progress=True,
                              val_file=str(root / "runs/default_data/val.h5"))
    saved, accuracy.ROOT = accuracy.ROOT, root
    try:
        with pytest.raises(DataError, match="version 1.*version"):
            accuracy.ensure_test_files(args)
    finally:
        accuracy.ROOT = saved


def test_demo_warns_when_the_weights_learnt_from_another_simulator_version(tmp_path):
    import torch

    from mlreco_spice import demo
    from mlreco_spice.checkpoint import FORMAT
    from mlreco_spice.sim.version import SIM_VERSION

    old, new = tmp_path / "old.pt", tmp_path / "new.pt"
    torch.save({"model": {}, "format": FORMAT}, old)   # the version-1 default records nothing
    torch.save({"model": {}, "format": FORMAT, "simulator": {"version": SIM_VERSION}}, new)
    assert "version 1 (not recorded)" in demo._weights_mismatch(old)
    assert demo._weights_mismatch(new) is None
