"""A checkpoint of another architecture: the error says which config it was trained with."""
import shutil

import pytest
import yaml

from mlreco_spice.checkpoint import CheckpointError
from mlreco_spice.config import load_config

OTHER = "{filters: 8, depth: 2, reps: 1, input_kernel: 3}"   # tiny_trained has filters 4


def _engine(weights):
    from mlreco_spice.inference import InferenceEngine

    cfg = load_config("predict", [f"predict.weights={weights}", "predict.thresholds=null",
                                  f"model.modules.spice.network.uresnet={OTHER}",
                                  f"model.modules.uresnet.network.uresnet={OTHER}"])
    return InferenceEngine(cfg, device="cpu")


def test_mismatch_suggests_the_runs_config(tiny_trained):
    run_config = tiny_trained.parent / "config.yaml"
    assert run_config.is_file()
    with pytest.raises(CheckpointError) as info:
        _engine(tiny_trained)
    message = str(info.value)
    assert "shape mismatch" in message
    assert f"-c {run_config}" in message


def test_mismatch_without_a_run_dir_gives_the_stored_networks(tiny_trained, tmp_path):
    alone = tmp_path / "weights.pt"
    shutil.copy(tiny_trained, alone)
    with pytest.raises(CheckpointError) as info:
        _engine(alone)
    message = str(info.value)
    assert "trained with" in message
    sets = [part for part in message.split("--set ")[1:]]
    assert any(s.startswith("'model.modules.spice.network=") for s in sets)
    spice = next(s for s in sets if s.startswith("'model.modules.spice.network="))
    network = yaml.safe_load(spice.split("=", 1)[1].split("'")[0])
    assert network["uresnet"]["filters"] == 4


def test_stage_weights_of_another_architecture_suggest_the_runs_config(tiny_trained):
    from mlreco_spice.chain import Chain

    cfg = load_config("full_chain", [f"model.modules.spice.network.uresnet={OTHER}",
                                     f"model.modules.uresnet.network.uresnet={OTHER}"])
    chain = Chain(cfg["model"])
    with pytest.raises(CheckpointError) as info:
        chain.load_stage_weights("spice", str(tiny_trained))
    assert f"-c {tiny_trained.parent / 'config.yaml'}" in str(info.value)


def test_resume_with_another_architecture_suggests_the_runs_config(tiny_files, tmp_path):
    from mlreco_spice.train import train

    def cfg(arch, iterations):
        return load_config("full_chain", [
            f"io.dataset.files={[str(f) for f in tiny_files]}", f"train.output_dir={tmp_path}",
            f"train.iterations={iterations}", "train.checkpoint_every=1",
            "train.deterministic=false", f"model.modules.spice.network.uresnet={arch}",
            f"model.modules.uresnet.network.uresnet={arch}"])

    train(cfg("{filters: 4, depth: 2, reps: 1, input_kernel: 3}", 1), progress=False)
    with pytest.raises(CheckpointError) as info:
        train(cfg(OTHER, 2), resume=True, progress=False)
    assert f"-c {tmp_path / 'config.yaml'}" in str(info.value)
