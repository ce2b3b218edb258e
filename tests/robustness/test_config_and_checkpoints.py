"""Config mistakes and unusable checkpoints: exit code, message, no traceback."""
import logging
import re
import shutil

import pytest

from mlreco_spice.checkpoint import list_checkpoints, load_checkpoint, save_checkpoint
from robust_helpers import TINY_ARCH, cli, predict_args


@pytest.mark.parametrize("yaml_text, message", [
    ("include: full_chain.yaml\ntrain: {iteratons: 5}\n",
     "unknown key 'iteratons' at 'train.iteratons'. Did you mean 'train.iterations'?"),
    ("include: full_chain.yaml\ntrain: {iterations: many}\n",
     "'train.iterations' must be int, got str 'many'"),
    ("include: full_chain.yaml\ntrain: {iterations: 5}\n",
     "missing required key 'io.dataset.files'"),
], ids=["misspelled", "wrong_type", "missing_required"])
def test_config_mistake_exits_2_with_message(yaml_text, message, tmp_path):
    import chain_configs
    from pathlib import Path

    shutil.copy(Path(chain_configs.__file__).parent / "full_chain.yaml", tmp_path)
    (tmp_path / "cfg.yaml").write_text(yaml_text)
    proc = cli("train", "-c", tmp_path / "cfg.yaml")
    assert proc.returncode == 2
    assert message in proc.stderr and proc.stderr.startswith("ERROR mlreco_spice: ")
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert not (tmp_path / "runs").exists()


def test_checkpoint_of_another_architecture_names_the_layers(corpus, tmp_path):
    from mlreco_spice.chain import Chain
    from mlreco_spice.config import load_config

    other = load_config("full_chain", [s.replace("filters: 4", "filters: 6") for s in TINY_ARCH])
    path = save_checkpoint(tmp_path, 1, {"model": Chain(other["model"]).state_dict()})
    proc = cli(*predict_args(path, [corpus["good"]], tmp_path / "out"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[0] == (f"ERROR mlreco_spice: predict.weights ({path}) does not fit this model "
                        f"(another architecture or config?)")
    assert lines[1].startswith("  shape mismatch: networks.")
    assert re.search(r"networks\.\S+ checkpoint \(\d+(, \d+)*,?\) vs model \(\d+(, \d+)*,?\)", lines[1])
    assert lines[1].endswith(" more)")
    assert not list((tmp_path / "out").glob("*.h5"))


def test_truncated_weights_file_is_a_clear_error(corpus, tiny_trained, tmp_path):
    data = tiny_trained.read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[:len(data) // 2])
    proc = cli(*predict_args(cut, [corpus["good"]], tmp_path / "out"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"ERROR mlreco_spice: cannot read checkpoint {cut} "
                                  f"({len(data) // 2} bytes): it is truncated or not a torch "
                                  f"checkpoint")


def test_resume_skips_a_truncated_latest_checkpoint(tiny_files, tmp_path, caplog):
    from mlreco_spice.config import load_config
    from mlreco_spice.train import train

    def cfg(iterations):
        return load_config("full_chain", [
            *TINY_ARCH, f"io.dataset.files={[str(f) for f in tiny_files]}",
            f"train.output_dir={tmp_path}", f"train.iterations={iterations}",
            "train.checkpoint_every=1", "train.deterministic=false"])

    train(cfg(2), progress=False)
    first, latest = list_checkpoints(tmp_path)
    assert first.name == "checkpoint-0000001.pt" and latest.name == "checkpoint-0000002.pt"
    data = latest.read_bytes()
    latest.write_bytes(data[:len(data) // 3])
    caplog.set_level(logging.INFO)
    result = train(cfg(3), resume=True, progress=False)
    assert result.start_iteration == 1 and result.last_iteration == 3
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith(f"skipping unreadable checkpoint: cannot read checkpoint {latest}")
               for m in messages)
    assert f"resuming from {first} (iteration 1)" in messages
    assert [load_checkpoint(p)["iteration"] for p in list_checkpoints(tmp_path)] == [1, 2, 3]
