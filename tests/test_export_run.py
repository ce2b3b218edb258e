"""scripts/export_run.py: a long run's stretches exported with their event passes and CPU time."""
import sys
from pathlib import Path

import pytest
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from export_run import export_stage, stretch_cpu_hours  # noqa: E402

from mlreco_spice.checkpoint import load_checkpoint  # noqa: E402
from mlreco_spice.train import train  # noqa: E402
from mlreco_spice.training_log import read_train_log  # noqa: E402
from test_train import tiny_cfg  # noqa: E402


def test_cpu_hours_use_process_time_and_fall_back_to_wall_time_per_process():
    rows = [{"time_s": "2.0", "cpu_s": ""},        # logged before cpu_s existed: 2 s x 2 ranks
            {"time_s": "2.0", "cpu_s": "1.5"},     # shared machine: less CPU than wall x ranks
            {"time_s": "1.0", "cpu_s": "3.0"}]     # data loading between steps counts too
    assert stretch_cpu_hours(rows, world=2) == pytest.approx((4.0 + 1.5 + 3.0) / 3600)
    assert stretch_cpu_hours([], world=2) == 0.0


def test_two_stretches_are_exported_and_logged(tiny_files, tmp_path):
    run, out = tmp_path / "run", tmp_path / "weights_run"
    train(tiny_cfg(tiny_files, run, iterations=10), progress=False)
    rows = read_train_log(run / "train_log.csv")
    assert all(float(r["cpu_s"]) > 0 for r in rows)
    # The CPU-hours come from the log's cpu_s: 6 minutes a row, to be seen at the rounding.
    log_text = (run / "train_log.csv").read_text().splitlines()
    cpu = log_text[0].split(",").index("cpu_s")
    (run / "train_log.csv").write_text("\n".join([log_text[0]] + [
        ",".join(v if i != cpu else "360" for i, v in enumerate(line.split(",")))
        for line in log_text[1:]]) + "\n")
    first = export_stage(run, "spice", out, world=1)
    assert first["iteration"] == 10 and first["total_iterations"] == 10
    assert first["event_passes"] == 20  # batch 2 x 1 process
    assert first["cpu_hours"] == pytest.approx(len(rows) * 0.1)
    weights = load_checkpoint(out / "spice.pt")
    assert all(v.dtype == torch.float16 for v in weights["model"].values()
               if v.is_floating_point())
    assert weights["iteration"] == 10
    # A second stretch: the run resumed to 16 iterations, exported over the same paths.
    train(tiny_cfg(tiny_files, run, iterations=16), resume=True, progress=False)
    second = export_stage(run, "spice", out, world=1, cpu_hours=0.25)  # measured, e.g. ps
    assert second["iteration"] == 16 and second["event_passes"] == 32
    assert second["cpu_hours"] == pytest.approx(first["cpu_hours"] + 0.25)
    record = yaml.safe_load((out / "spice.yaml").read_text())
    assert record["iteration"] == 16 and record["config"]["train"]["iterations"] == 16
    log_rows = [line for line in (out / "README.md").read_text().splitlines()
                if line.startswith("| 20")]
    assert [row.rstrip(" |").split(" | ")[2:5] for row in log_rows] == [
        ["0–10", "20", "1.00"], ["10–16", "12", "0.25"]]


def test_combine_takes_a_stage_name_before_the_path(tmp_path):
    """A fine-tuning stage's export (its own file name) joins as the stage it continues."""
    from export_run import combine

    from mlreco_spice.errors import UserError

    root = Path(__file__).resolve().parent.parent / "weights" / "run"
    # The stage's weights under another name, with zeroed tensors so that the file used is seen.
    state = load_checkpoint(root / "uresnet.pt")
    state["model"] = {k: torch.zeros_like(v) if v.is_floating_point() else v
                      for k, v in state["model"].items()}
    renamed = tmp_path / "uresnet_balance.pt"
    torch.save(state, renamed)
    out = combine([f"uresnet={renamed}", str(root / "spice.pt")], "predict", tmp_path / "c.pt")
    model = load_checkpoint(out)["model"]
    uresnet = [k for k in model if k.startswith("networks.uresnet.") and model[k].is_floating_point()]
    spice = [k for k in model if k.startswith("networks.spice.") and model[k].is_floating_point()]
    assert uresnet and spice
    assert all(not model[k].any() for k in uresnet)
    assert any(model[k].any() for k in spice)
    with pytest.raises(UserError, match="two files for stage uresnet"):
        combine([f"uresnet={renamed}", str(root / "uresnet.pt")], "predict", tmp_path / "d.pt")
    # Without "uresnet=" the file's stem names a stage the chain does not run: refused, not
    # joined with a randomly initialised uresnet.
    with pytest.raises(UserError, match=r"no such stage \['uresnet_balance'\].*no file for \['uresnet'\]"):
        combine([str(renamed), str(root / "spice.pt")], "predict", tmp_path / "e.pt")
    assert not (tmp_path / "e.pt").exists()
