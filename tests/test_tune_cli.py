"""`mlreco-spice tune` end to end: network once per event, grid search, YAML predict reads."""
import yaml

from mlreco_spice.cli import main
from mlreco_spice.config import load_config
from mlreco_spice.inference import InferenceEngine, load_thresholds

TINY = "{filters: 4, depth: 2, reps: 1, input_kernel: 3}"
SETS = ["predict.thresholds=null", f"model.modules.spice.network.uresnet={TINY}",
        f"model.modules.uresnet.network.uresnet={TINY}"]


def test_tune_cli_writes_thresholds_predict_accepts(tiny_files, tiny_trained, tmp_path, capsys):
    out = tmp_path / "thresholds.yaml"
    args = ["tune", "-c", "predict_all_steps", "-i", str(tiny_files[1]), "-o", str(out),
            "--weights", str(tiny_trained), "--events", "3", "--step", "0.25"]
    for item in SETS:
        args += ["--set", item]
    assert main(args) == 0
    table = capsys.readouterr().out
    for name in ("HIP", "MIP", "Shower", "Delta", "Michel"):
        assert name in table
    written = yaml.safe_load(out.read_text())
    # predict_all_steps.yaml sets connect_radius_cm, so connect_p is tuned too (null: off
    # for a class).
    assert {"s0", "p0", "connect_p"} <= set(written) <= {"s0", "p0", "connect_p", "absorb_p"}
    assert all(v is None or 0.0 <= v <= 1.0 for v in written["connect_p"].values())
    grid = {round(0.25 * k, 2) for k in range(5)}
    for cls, value in written["s0"].items():
        assert 0.0 <= value <= 1.0
    assert all(0.0 <= v <= 0.6 for v in written["p0"].values())
    # predict reads it: the clusterer gets exactly these thresholds
    cfg = load_config("predict_all_steps", [f"predict.weights={tiny_trained}",
                                            f"predict.thresholds={out}",
                                  *SETS[1:]])
    engine = InferenceEngine(cfg)
    clusterer_cfg = engine.chain.stage_cfgs["spice"]["clusterer"]
    assert clusterer_cfg["s0"] == written["s0"] and clusterer_cfg["p0"] == written["p0"]
    assert clusterer_cfg["connect_p"] == written["connect_p"]
    assert clusterer_cfg["absorb_p"] == written.get("absorb_p")
    # With true semantics there are no segmentation errors to undo: absorb is off.
    truth = InferenceEngine(load_config("predict_all_steps", [
        f"predict.weights={tiny_trained}", f"predict.thresholds={out}", *SETS[1:],
        "model.modules.spice.use_true_semantics=true",
        "model.modules.spice.clusterer.absorb_p=0.2"]))
    assert truth.chain.stage_cfgs["spice"]["clusterer"]["absorb_p"] is None
    assert load_thresholds(str(out)) == written
    assert any(v in grid for v in written["s0"].values())


def test_thresholds_tuned_with_steps_need_their_clusterer_block(tiny_trained, tmp_path):
    import pytest

    from mlreco_spice.config import ConfigError

    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump({"s0": 0.5, "p0": 0.2, "absorb_p": 0.1}))
    # spice_train.yaml has no absorb_radius_cm: a clear error when the chain is built.
    cfg = load_config("spice_train", [f"predict.weights={tiny_trained}",
                                      f"predict.thresholds={path}", *SETS[1:]])
    with pytest.raises(ConfigError, match="absorb_p needs absorb_radius_cm.*predict_all_steps.yaml"):
        InferenceEngine(cfg)


def test_quiet_tune_draws_no_progress_bar(tiny_files, tiny_trained, tmp_path, capsys):
    """-q is for batch logs: no tqdm bars on stderr (the table still goes to stdout)."""
    out = tmp_path / "thresholds.yaml"
    args = ["tune", "-q", "-i", str(tiny_files[1]), "-o", str(out),
            "--weights", str(tiny_trained), "--events", "2", "--step", "0.5"]
    for item in SETS:
        args += ["--set", item]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "HIP" in captured.out
    assert "network:" not in captured.err and "tune:" not in captured.err
    assert out.is_file()
