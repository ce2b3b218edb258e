"""Where training writes: runs/<config name> in the working directory, logged at start."""
import logging

from mlreco_spice.config import load_config

TINY = "{filters: 4, depth: 2, reps: 1, input_kernel: 3}"


def test_training_writes_under_the_working_directory_and_says_where(tiny_files, tmp_path,
                                                                       monkeypatch, caplog):
    from mlreco_spice.train import train

    monkeypatch.chdir(tmp_path)
    cfg = load_config("full_chain", [
        f"io.dataset.files={[str(f) for f in tiny_files]}", "train.iterations=1",
        "train.checkpoint_every=1", "train.deterministic=false",
        f"model.modules.spice.network.uresnet={TINY}", f"model.modules.uresnet.network.uresnet={TINY}"])
    caplog.set_level(logging.INFO)
    result = train(cfg, progress=False)
    expected = tmp_path / "runs" / "full_chain"
    assert result.output_dir == expected and result.last_checkpoint.parent == expected
    messages = [r.getMessage() for r in caplog.records]
    assert any(str(expected) in m and "writing" in m for m in messages), messages


def test_shipped_training_config_keeps_few_checkpoints():
    # ~131 MB each for spice_train's model with its Adam state (README, "Training").
    assert load_config("spice_train")["train"]["keep_checkpoints"] <= 3
