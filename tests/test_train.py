"""Training: log and checkpoints, exact resume, SIGINT, two-stage freeze, DDP with torchrun."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from mlreco_spice.checkpoint import list_checkpoints, load_checkpoint
from mlreco_spice.config import load_config
from mlreco_spice.train import train
from mlreco_spice.training_log import read_train_log

LOSS_COLUMNS = ("loss", "spice.mask", "spice.smoothing", "spice.inter", "spice.seed")


def tiny_cfg(files, out, iterations=30, extra=()):
    return load_config("spice_train", [
        f"io.dataset.files={list(map(str, files))}",
        f"train.output_dir={out}",
        f"train.iterations={iterations}",
        "train.checkpoint_every=10",
        "train.keep_checkpoints=2",
        "train.freeze_seediness_iterations=5",
        "io.loader.batch_size=2",
        "model.stages=[spice]",
        "model.modules.spice.use_true_semantics=true",
        "model.modules.spice.network_input={data: data}",
        "model.modules.spice.network.uresnet={filters: 4, depth: 2, reps: 1, input_kernel: 3}",
        "train.optimizer.lr=0.01",
        "train.lr_schedule=null",  # a cosine horizon would differ between 10 and 20 iterations
        *extra])


def test_training_writes_log_and_checkpoints(tiny_files, tmp_path):
    cpu_before = time.process_time()
    result = train(tiny_cfg(tiny_files, tmp_path / "run"), progress=False)
    cpu_used = time.process_time() - cpu_before
    assert result.last_iteration == 30
    rows = read_train_log(tmp_path / "run" / "train_log.csv")
    assert [int(r["iteration"]) for r in rows] == list(range(1, 31))
    # cpu_s: this process's CPU time between rows (one rank), within what the call used.
    cpu = [float(r["cpu_s"]) for r in rows]
    assert all(c > 0 for c in cpu) and sum(cpu) <= cpu_used
    for column in LOSS_COLUMNS:
        assert column in rows[0]
    assert all(float(r["loss"]) > 0 for r in rows)
    # seediness frozen for 5 iterations: its term is logged but left out of the total
    emb = ("spice.mask", "spice.smoothing", "spice.inter")
    first, late = rows[0], rows[10]
    assert float(first["loss"]) == pytest.approx(sum(float(first[k]) for k in emb), rel=1e-4)
    assert float(late["loss"]) == pytest.approx(sum(float(late[k]) for k in emb + ("spice.seed",)),
                                                rel=1e-4)
    ckpts = list_checkpoints(tmp_path / "run")
    assert [p.name for p in ckpts] == ["checkpoint-0000020.pt", "checkpoint-0000030.pt"]  # keep 2
    state = load_checkpoint(ckpts[-1])
    assert state["iteration"] == 30 and "optimizer" in state and state["config"]["train"]["iterations"] == 30
    assert (tmp_path / "run" / "config.yaml").exists()


def test_checkpoint_minutes_saves_on_wall_time_between_iteration_checkpoints(tiny_files,
                                                                                 tmp_path):
    # 0 minutes: every iteration is due, not only every checkpoint_every (10) iterations.
    cfg = tiny_cfg(tiny_files, tmp_path / "run", iterations=4,
                   extra=("train.checkpoint_minutes=0", "train.keep_checkpoints=10"))
    train(cfg, progress=False)
    assert [p.name for p in list_checkpoints(tmp_path / "run")] == \
        [f"checkpoint-{i:07d}.pt" for i in range(1, 5)]
    # Unset (the default): iterations only.
    train(tiny_cfg(tiny_files, tmp_path / "plain", iterations=4), progress=False)
    assert [p.name for p in list_checkpoints(tmp_path / "plain")] == ["checkpoint-0000004.pt"]


def _cli_train(cfg_path, *sets, resume=False):
    cmd = [sys.executable, "-m", "mlreco_spice", "-q", "train", "-c", str(cfg_path)]
    cmd += [a for s in sets for a in ("--set", s)] + (["--resume"] if resume else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_resume_matches_uninterrupted_run(tiny_files, tmp_path):
    """Through the CLI, which makes CPU training bit-reproducible (train.deterministic)."""
    from mlreco_spice.config import dump_config

    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(dump_config(tiny_cfg(tiny_files, tmp_path / "unused", iterations=20)))
    full, part = tmp_path / "full", tmp_path / "part"
    _cli_train(cfg_path, f"train.output_dir={full}")
    _cli_train(cfg_path, f"train.output_dir={part}", "train.iterations=10")
    _cli_train(cfg_path, f"train.output_dir={part}", resume=True)
    a = read_train_log(full / "train_log.csv")
    b = read_train_log(part / "train_log.csv")
    assert [r["iteration"] for r in a] == [str(i) for i in range(1, 21)]
    assert [r["iteration"] for r in a] == [r["iteration"] for r in b]
    for ra, rb in zip(a, b):
        for column in LOSS_COLUMNS:
            assert ra[column] == rb[column], (ra["iteration"], column)
    assert load_checkpoint(list_checkpoints(part)[-1])["iteration"] == 20


def test_resume_without_checkpoint_is_a_clear_error(tiny_files, tmp_path):
    from mlreco_spice.errors import UserError

    with pytest.raises(UserError, match="no readable checkpoint"):
        train(tiny_cfg(tiny_files, tmp_path / "empty"), resume=True, progress=False)


def _ddp_script(tmp_path):
    script = tmp_path / "ddp_train.py"
    script.write_text(
        "import os, sys, torch\n"
        "from mlreco_spice.config import load_config\n"
        "from mlreco_spice.train import train\n"
        "import mlreco_spice.distributed as D\n"
        "mean, calls = D.DistContext.mean_over_ranks, [0]\n"
        "def spy(self, values):  # the k-th logged row is iteration k (log_every 1)\n"
        "    calls[0] += 1\n"
        "    with open(os.path.join(sys.argv[2], f'loss{self.rank}.txt'), 'a') as f:\n"
        "        f.write(f'{calls[0]} {values[\"loss\"]!r}\\n')\n"
        "    return mean(self, values)\n"
        "D.DistContext.mean_over_ranks = spy\n"
        "cfg = load_config(sys.argv[1], sys.argv[3:])\n"
        "result = train(cfg, progress=False)\n"
        "torch.save(result.model.state_dict(), os.path.join(sys.argv[2], f\"rank{os.environ['RANK']}.pt\"))\n")
    return script


def test_torchrun_two_processes_gloo_identical_parameters(tiny_files, tmp_path):
    out = tmp_path / "ddp"
    out.mkdir()
    cfg = tiny_cfg(tiny_files, out, iterations=8)  # freeze for 5, unfreeze at 5: re-wrap path
    from mlreco_spice.config import dump_config

    (tmp_path / "cfg.yaml").write_text(dump_config(cfg))
    torchrun = Path(sys.executable).parent / "torchrun"
    env = dict(os.environ, OMP_NUM_THREADS="1")  # DDP ranks must not fight over 2 cores
    proc = subprocess.run([str(torchrun), "--nproc_per_node", "2", "--master_port", "29533",
                           str(_ddp_script(tmp_path)), str(tmp_path / "cfg.yaml"), str(out)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = torch.load(out / "rank0.pt"), torch.load(out / "rank1.pt")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    rows = read_train_log(out / "train_log.csv")  # rank 0 only writes
    assert [int(r["iteration"]) for r in rows] == list(range(1, 9))
    # cpu_s sums the two ranks' CPU time: positive, and at most two cores' worth of the run.
    wall = float(rows[-1]["wall_time"]) - float(rows[0]["wall_time"]) + float(rows[0]["time_s"])
    assert all(float(r["cpu_s"]) > 0 for r in rows)
    assert sum(float(r["cpu_s"]) for r in rows[1:]) <= 2 * wall + 1.0
    # The logged terms are the ranks' means: each rank wrote its own (script above).
    per_rank = {}
    for rank in (0, 1):
        for line in (out / f"loss{rank}.txt").read_text().splitlines():
            iteration, value = line.split()
            per_rank.setdefault(int(iteration), {})[rank] = float(value)
    assert sorted(per_rank) == list(range(1, 9))
    for row in rows:
        losses = per_rank[int(row["iteration"])]
        assert len(losses) == 2 and losses[0] != losses[1]
        assert float(row["loss"]) == pytest.approx((losses[0] + losses[1]) / 2, rel=1e-5)
    seed_keys = [k for k in a if "seed" in k]
    assert seed_keys, "the seediness branch should exist"


def test_sigint_saves_checkpoint_and_exits_cleanly(tiny_files, tmp_path):
    from mlreco_spice.config import dump_config

    out = tmp_path / "sig"
    cfg = tiny_cfg(tiny_files, out, iterations=100000, extra=["train.checkpoint_every=100000"])
    (tmp_path / "cfg.yaml").write_text(dump_config(cfg))
    proc = subprocess.Popen([sys.executable, "-m", "mlreco_spice", "train", "-c", str(tmp_path / "cfg.yaml")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(read_train_log(out / "train_log.csv")) < 3:
        time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    ckpts = list_checkpoints(out)
    assert len(ckpts) == 1
    done = load_checkpoint(ckpts[0])["iteration"]
    assert done >= 3
    assert "resume with --resume" in err


def test_mean_of_dicts_averages_each_key_over_the_ranks_that_have_it():
    from mlreco_spice.distributed import DistContext, mean_of_dicts

    merged = mean_of_dicts([{"loss": 1.0, "mask_Michel": 0.5}, {"loss": 3.0}])
    assert merged == {"loss": 2.0, "mask_Michel": 0.5}
    assert DistContext().mean_over_ranks({"loss": 1.5}) == {"loss": 1.5}  # one process


def test_restart_from_exported_weights_continues_schedule_with_warmup(tiny_files, tmp_path):
    """A lost run directory: its exported (float16) weights restart the run at their iteration."""
    from mlreco_spice.checkpoint import export_weights
    from mlreco_spice.errors import UserError

    cosine = ["train.lr_schedule={name: cosine, min_lr: 0.0}", "train.restart_warmup=4"]
    full = train(tiny_cfg(tiny_files, tmp_path / "full", iterations=20, extra=cosine),
                 progress=False)
    part = train(tiny_cfg(tiny_files, tmp_path / "part", iterations=20, extra=cosine
                          + ["train.checkpoint_every=5"]), progress=False)
    ten = [p for p in list_checkpoints(tmp_path / "part") if p.name.endswith("0010.pt")]
    weights = export_weights(ten[0] if ten else list_checkpoints(tmp_path / "part")[0],
                             tmp_path / "w.pt", half=True)
    state = load_checkpoint(weights)
    assert "optimizer" not in state and state["total_iterations"] == 20
    start = state["iteration"]
    again = train(tiny_cfg(tiny_files, tmp_path / "again", iterations=20, extra=cosine),
                  progress=False, restart_from=str(weights))
    assert (again.start_iteration, again.last_iteration) == (start, 20)
    a = {int(r["iteration"]): float(r["lr"]) for r in read_train_log(tmp_path / "full" /
                                                                         "train_log.csv")}
    b = {int(r["iteration"]): float(r["lr"]) for r in read_train_log(tmp_path / "again" /
                                                                         "train_log.csv")}
    # The rows start after the restart point and the schedule continues where it was,
    # ramped up linearly over the first 4 iterations (Adam restarts without its moments).
    assert min(b) == start + 1
    for it in b:
        ramp = min(1.0, (it - start) / 4)
        assert b[it] == pytest.approx(a[it] * ramp, rel=1e-5)  # the log keeps 7 digits
    assert b[start + 1] < 0.3 * a[start + 1]
    assert full.last_iteration == part.last_iteration == 20
    with pytest.raises(UserError, match="give one of them"):
        train(tiny_cfg(tiny_files, tmp_path / "again", iterations=20), resume=True,
              restart_from=str(weights), progress=False)


def test_resume_mid_schedule_with_more_iterations_anneals_from_the_checkpoint_rate(tiny_files,
                                                                                   tmp_path):
    """Resumed from the middle of a cosine (not its end), a longer run never raises the rate."""
    cosine = ["train.lr_schedule={name: cosine, min_lr: 0.0}", "train.checkpoint_every=5"]
    out = tmp_path / "run"
    train(tiny_cfg(tiny_files, out, iterations=10, extra=cosine), progress=False)
    for late in list_checkpoints(out):
        if late.name.endswith("0010.pt"):
            late.unlink()   # as if stopped at iteration 5 of 10
    at_five = load_checkpoint(list_checkpoints(out)[-1])
    assert at_five["iteration"] == 5
    first = {int(r["iteration"]): float(r["lr"]) for r in read_train_log(out / "train_log.csv")}
    train(tiny_cfg(tiny_files, out, iterations=20, extra=cosine), resume=True, progress=False)
    rows = [(int(r["iteration"]), float(r["lr"])) for r in read_train_log(out / "train_log.csv")]
    resumed = [lr for it, lr in rows if it > 5]
    assert len(resumed) == 15
    # Starts where the 10-iteration cosine was at iteration 6, then only goes down.
    assert resumed[0] == pytest.approx(first[6], rel=1e-5)
    assert all(b <= a for a, b in zip(resumed, resumed[1:]))
    assert resumed[-1] < 0.05 * resumed[0]
