"""Session-wide fixtures: small simulated files shared by the chain tests."""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: see mlreco_spice/__init__.py

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_files(tmp_path_factory):
    """Two small simulated larcv3 files (96 px, 4 events each)."""
    from mlreco_spice.sim import simulate_file

    folder = tmp_path_factory.mktemp("tiny")
    files = []
    for k in range(2):
        path = folder / f"tiny_{k}.h5"
        simulate_file(str(path), n_events=4, seed=100 + k, size=96, voxel_mm=3.0)
        files.append(path)
    return files


@pytest.fixture(scope="session")
def tiny_trained(tiny_files, tmp_path_factory):
    """A briefly trained full chain (uresnet + spice) checkpoint on the tiny files."""
    from mlreco_spice.config import load_config
    from mlreco_spice.train import train

    out = tmp_path_factory.mktemp("tiny_run")
    arch = "{filters: 4, depth: 2, reps: 1, input_kernel: 3}"
    cfg = load_config("full_chain", [
        f"io.dataset.files={[str(f) for f in tiny_files]}", f"train.output_dir={out}",
        "train.iterations=12", "train.checkpoint_every=12", "train.freeze_seediness_iterations=4",
        "io.loader.batch_size=2", f"model.modules.spice.network.uresnet={arch}",
        f"model.modules.uresnet.network.uresnet={arch}", "train.optimizer.lr=0.01"])
    result = train(cfg, progress=False)
    return result.last_checkpoint
