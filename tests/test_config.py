"""Config loader: include, overrides, validation with suggestions, defaults, paths."""
import os
import textwrap

import pytest

from mlreco_spice.config import (ConfigError, apply_overrides, find_config, get_key,
                                 load_config, parse_overrides)
from mlreco_spice.defaults import PAPER_THRESHOLDS


def write(path, text):
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_defaults_are_filled(tmp_path):
    cfg = load_config(write(tmp_path / "c.yaml", "train: {iterations: 7}\n"))
    assert cfg["train"]["iterations"] == 7
    assert cfg["train"]["checkpoint_every"] == 100
    assert cfg["io"]["on_bad_event"] == "skip"
    assert cfg["train"]["optimizer"]["lr"] == 0.005


def test_stage_defaults_filled_per_stage(tmp_path):
    cfg = load_config(write(tmp_path / "c.yaml", """
        model:
          stages: [spice]
          modules:
            spice:
              network: {uresnet: {filters: 8}}
        """))
    spice = cfg["model"]["modules"]["spice"]
    assert spice["network"]["uresnet"]["filters"] == 8
    assert spice["network"]["uresnet"]["depth"] == 5          # default kept
    assert spice["loss"]["delta_d"] == 0.2
    assert spice["clusterer"]["enabled"] is True
    assert spice["freeze"] is False


def test_include_merges_and_including_file_wins(tmp_path):
    write(tmp_path / "base.yaml", "train: {iterations: 5, seed: 3}\nio: {loader: {batch_size: 2}}\n")
    sub = tmp_path / "sub"
    sub.mkdir()
    path = write(sub / "top.yaml", "include: ../base.yaml\ntrain: {iterations: 9}\n")
    cfg = load_config(path)
    assert cfg["train"]["iterations"] == 9   # own value wins
    assert cfg["train"]["seed"] == 3         # included value kept
    assert cfg["io"]["loader"]["batch_size"] == 2


def test_circular_include_is_reported(tmp_path):
    write(tmp_path / "a.yaml", "include: b.yaml\n")
    write(tmp_path / "b.yaml", "include: a.yaml\n")
    with pytest.raises(ConfigError, match="circular include"):
        load_config(str(tmp_path / "a.yaml"))


def test_override_parses_yaml_values(tmp_path):
    path = write(tmp_path / "c.yaml", "train: {iterations: 5}\n")
    cfg = load_config(path, ["train.iterations=50", "model.modules.spice.network.uresnet.filters=16",
                             "io.dataset.schema={}", "train.optimizer.lr=1e-3"])
    assert cfg["train"]["iterations"] == 50
    assert cfg["model"]["modules"]["spice"]["network"]["uresnet"]["filters"] == 16
    assert cfg["train"]["optimizer"]["lr"] == pytest.approx(1e-3)


def test_override_needs_equals():
    with pytest.raises(ConfigError, match="key.path=value"):
        parse_overrides(["train.iterations"])


def test_misspelled_key_suggests_the_right_one(tmp_path):
    path = write(tmp_path / "c.yaml", "train: {itertions: 5}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "unknown key 'itertions' at 'train.itertions'" in message
    assert "Did you mean 'train.iterations'?" in message


def test_misspelled_key_inside_stage_block(tmp_path):
    path = write(tmp_path / "c.yaml", "model: {modules: {spice: {clusterer: {min_cluster_sise: 3}}}}\n")
    with pytest.raises(ConfigError, match=r"model\.modules\.spice\.clusterer\.min_cluster_size"):
        load_config(path)


def test_wrong_type_names_the_path(tmp_path):
    path = write(tmp_path / "c.yaml", "io: {loader: {batch_size: four}}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "'io.loader.batch_size' must be int, got str 'four'" in str(info.value)


def test_bool_is_not_an_int(tmp_path):
    with pytest.raises(ConfigError, match="train.iterations"):
        load_config(None, ["train.iterations=true"])


def test_int_accepted_where_float_expected():
    cfg = load_config(None, ["train.optimizer.lr=1"])
    assert cfg["train"]["optimizer"]["lr"] == 1


def test_bad_choice_suggests(tmp_path):
    with pytest.raises(ConfigError, match="Did you mean 'skip'"):
        load_config(None, ["io.on_bad_event=skp"])


def test_missing_required_key():
    with pytest.raises(ConfigError, match="missing required key 'io.dataset.files'"):
        load_config(None, require=["io.dataset.files"])


def test_paths_resolve_relative_to_config_file(tmp_path):
    sub = tmp_path / "configs"
    sub.mkdir()
    path = write(sub / "c.yaml", "io: {dataset: {files: [data/a.h5, /abs/b.h5]}}\n"
                                 "predict: {weights: ../w.pt}\ntrain: {output_dir: out}\n")
    cfg = load_config(path)
    assert cfg["io"]["dataset"]["files"] == [str(sub / "data/a.h5"), "/abs/b.h5"]
    assert os.path.normpath(cfg["predict"]["weights"]) == str(tmp_path / "w.pt")
    assert cfg["train"]["output_dir"] == str(sub / "out")


def test_override_paths_resolve_relative_to_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = apply_overrides({}, ["predict.weights=w.pt"])
    assert cfg["predict"]["weights"] == str(tmp_path / "w.pt")


def test_invalid_yaml_names_the_file(tmp_path):
    path = write(tmp_path / "c.yaml", "train: [unclosed\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_config(path)


def test_get_key():
    cfg = load_config(None)
    assert get_key(cfg, "analysis.min_true_size") == 10
    assert get_key(cfg, "no.such", default=None) is None
    with pytest.raises(ConfigError, match="missing required key 'no.such'"):
        get_key(cfg, "no.such")


def test_shipped_configs_are_found_and_valid(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # from any working directory
    for name in ("spice_train", "spice_paper", "full_chain", "predict", "predict_all_steps",
                 "uresnet_train", "spice_stage_train"):
        path = find_config(name)
        assert path.name == f"{name}.yaml"
        load_config(str(path))
    with pytest.raises(ConfigError, match="Shipped configs: .*predict.yaml"):
        find_config("no_such_config")


def test_stage_configs_share_the_joint_architecture(tmp_path, monkeypatch):
    """Stage-wise training joins uresnet_train and spice_stage_train by their weights,
    which must fit the joint chain (spice_train, predict)."""
    monkeypatch.chdir(tmp_path)
    joint = load_config("spice_train")["model"]["modules"]
    for name, stage in (("uresnet_train", "uresnet"), ("spice_stage_train", "spice")):
        cfg = load_config(name)
        assert cfg["model"]["stages"] == [stage]
        assert cfg["model"]["modules"][stage]["network"] == joint[stage]["network"], name
    # uresnet keeps the joint config's cosine; SPICE trains at a constant rate (the
    # schedule race's result, BENCHMARKS.md).
    assert load_config("uresnet_train")["train"]["lr_schedule"] == \
        load_config("spice_train")["train"]["lr_schedule"]
    assert load_config("spice_stage_train")["train"]["lr_schedule"] is None
    spice = load_config("spice_stage_train")["model"]["modules"]["spice"]
    assert spice["use_true_semantics"] is True and "semantics" not in spice["network_input"]


def test_paper_thresholds_are_table_two():
    assert PAPER_THRESHOLDS["Shower"] == {"s0": 0.25, "p0": 0.036}
    assert PAPER_THRESHOLDS["Michel"]["s0"] == 0.0
