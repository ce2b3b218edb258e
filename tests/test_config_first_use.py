"""A new user's configs: shipped includes by name, errors that name the file, output dir."""
import textwrap
from pathlib import Path

import pytest

from mlreco_spice.config import ConfigError, load_config


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_readme_example_includes_a_shipped_config_by_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path / "rc" / "my.yaml", """\
        include: spice_train.yaml           # start from another config; this file wins
        train: {iterations: 30}
        """)
    cfg = load_config(path)
    assert cfg["train"]["iterations"] == 30
    assert cfg["model"]["stages"] == ["uresnet", "spice"]       # from full_chain, via spice_train
    assert cfg["train"]["keep_checkpoints"] == load_config("spice_train")["train"]["keep_checkpoints"]


def test_a_file_beside_the_config_wins_over_a_shipped_one(tmp_path):
    write(tmp_path / "spice_train.yaml", "train: {iterations: 7}\n")
    cfg = load_config(write(tmp_path / "my.yaml", "include: spice_train.yaml\n"))
    assert cfg["train"]["iterations"] == 7


def test_missing_include_lists_where_it_looked(tmp_path):
    path = write(tmp_path / "my.yaml", "include: no_such.yaml\n")
    with pytest.raises(ConfigError, match=r"include 'no_such.yaml' not found.*Shipped configs: .*predict"):
        load_config(path)


def test_default_output_dir_is_in_the_working_directory(tmp_path, monkeypatch):
    from mlreco_spice.config import default_output_dir

    monkeypatch.chdir(tmp_path)
    cfg = load_config("spice_train")
    assert Path(cfg["train"]["output_dir"]) == tmp_path / "runs" / "spice_train"
    assert default_output_dir(None) == str(tmp_path / "runs" / "spice")
    # An explicit output_dir is still relative to the file that sets it.
    path = write(tmp_path / "rc" / "my.yaml", "include: spice_train.yaml\ntrain: {output_dir: out}\n")
    assert Path(load_config(path)["train"]["output_dir"]) == tmp_path / "rc" / "out"


def test_config_error_names_the_file_and_reports_every_typo(tmp_path):
    base = write(tmp_path / "base.yaml", "train: {itertions: 3}\n")
    path = write(tmp_path / "top.yaml", f"include: {base}\nio: {{loader: {{batch_sise: 2}}}}\n"
                                        "model: {modules: {spice: {clusterer: {s00: 1}}}}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert f"config file '{tmp_path / 'top.yaml'}'" in message
    assert "io.loader.batch_sise" in message and "Did you mean 'io.loader.batch_size'" in message
    assert "model.modules.spice.clusterer.s00" in message
    # the typo in the included file is reported with that file's name
    with pytest.raises(ConfigError) as info:
        load_config(base)
    assert f"config file '{tmp_path / 'base.yaml'}'" in str(info.value)
    assert "Did you mean 'train.iterations'" in str(info.value)


def test_typo_in_included_file_names_the_included_file(tmp_path):
    write(tmp_path / "base.yaml", "train: {itertions: 3}\n")
    path = write(tmp_path / "top.yaml", "include: base.yaml\n")
    with pytest.raises(ConfigError, match=r"base\.yaml'.*train\.itertions"):
        load_config(path)


def test_override_errors_name_the_override(tmp_path):
    path = write(tmp_path / "c.yaml", "train: {iterations: 3}\n")
    with pytest.raises(ConfigError, match=r"--set.*train\.iteratons.*Did you mean"):
        load_config(path, ["train.iteratons=4"])


def test_empty_config_says_so(tmp_path):
    path = write(tmp_path / "empty.yaml", "# nothing yet\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "empty.yaml" in message and "is empty" in message
    assert "include: spice_train.yaml" in message


def test_no_shipped_config_writes_into_the_installation():
    # Given by name (-c spice_train), a shipped config must not put runs beside itself.
    from mlreco_spice.config import _shipped_dir

    for path in sorted(_shipped_dir().glob("*.yaml")):
        assert "output_dir" not in path.read_text(), path.name


def test_a_config_without_model_blocks_points_to_a_shipped_one(tmp_path):
    from mlreco_spice.chain import Chain, ChainError

    cfg = load_config(write(tmp_path / "c.yaml", "train: {iterations: 3}\n"))
    with pytest.raises(ChainError, match="include: spice_train.yaml"):
        Chain(cfg["model"])


def test_the_readme_config_example_loads_when_copied(tmp_path, monkeypatch):
    import re

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    example = next(block for block in re.findall(r"```yaml\n(.*?)```", readme, re.S)
                   if block.startswith("include:"))
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "rc" / "my.yaml"
    path.parent.mkdir()
    path.write_text(example)
    cfg = load_config(str(path))
    assert cfg["model"]["stages"] == ["uresnet", "spice"]
    assert cfg["io"]["dataset"]["files"] == ["/data/pilarnet/*.h5"]
    assert Path(cfg["train"]["output_dir"]) == tmp_path / "runs" / "my"
