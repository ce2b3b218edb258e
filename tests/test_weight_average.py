"""Weight averaging of a run's checkpoints and batch-norm statistics recomputed (SWA)."""
import pytest
import torch

from mlreco_spice.checkpoint import load_checkpoint, save_checkpoint
from mlreco_spice.errors import UserError
from mlreco_spice.weight_average import (average_run, average_states, recompute_batchnorm,
                                         regular_checkpoints)


def _write(directory, iteration, weight, count=0):
    state = {"model": {"w": torch.full((2,), float(weight)), "n": torch.tensor(count)},
             "config": {"name": "x"}}
    return save_checkpoint(directory, iteration, state, keep=0)


def test_regular_checkpoints_take_the_grid_and_refuse_gaps(tmp_path):
    for it in (200, 400, 600, 650, 800):  # 650: a wall-clock checkpoint, off the grid
        _write(tmp_path, it, it)
    assert [p.name for p in regular_checkpoints(tmp_path, 400, every=200)] == [
        "checkpoint-0000400.pt", "checkpoint-0000600.pt", "checkpoint-0000800.pt"]
    assert len(regular_checkpoints(tmp_path, 200, 600, every=200)) == 3
    with pytest.raises(UserError, match="not on the grid"):
        regular_checkpoints(tmp_path, 300, every=200)
    (tmp_path / "checkpoint-0000600.pt").unlink()
    with pytest.raises(UserError, match="lacks the checkpoints of iterations 600"):
        regular_checkpoints(tmp_path, 200, every=200)
    with pytest.raises(UserError, match="no checkpoint at or after iteration 1000"):
        regular_checkpoints(tmp_path, 1000, every=200)
    with pytest.raises(UserError, match="last iteration 700 is not on the grid"):
        regular_checkpoints(tmp_path, 200, 700, every=200)
    with pytest.raises(UserError, match="newest checkpoint .* is iteration 800, before the last "
                                        "asked for, 1200"):
        regular_checkpoints(tmp_path, 800, 1200, every=200)
    with pytest.raises(UserError, match="last iteration 200 is before the first, 400"):
        regular_checkpoints(tmp_path, 400, 200, every=200)


def test_pruning_spares_grid_checkpoints_from_an_iteration(tmp_path):
    for it in range(1, 11):
        save_checkpoint(tmp_path, it, {"model": {}}, keep=2, spare=(6, 2))
    assert sorted(int(p.stem[-7:]) for p in tmp_path.glob("checkpoint-*.pt")) == [6, 7, 8, 9, 10]


def test_average_states_is_the_mean_with_integer_buffers_from_the_last(tmp_path):
    paths = [_write(tmp_path, it, w, count=it) for it, w in ((1, 1.0), (2, 2.0), (3, 6.0))]
    payload = average_states(paths)
    assert torch.equal(payload["model"]["w"], torch.full((2,), 3.0))
    assert payload["model"]["w"].dtype == torch.float32
    assert int(payload["model"]["n"]) == 3 and payload["iteration"] == 3
    other = save_checkpoint(tmp_path, 4, {"model": {"v": torch.zeros(2)}}, keep=0)
    with pytest.raises(UserError, match="other parameters"):
        average_states(paths + [other])
    wide = save_checkpoint(tmp_path, 5, {"model": {"w": torch.zeros(1, 2), "n": torch.tensor(0)}},
                           keep=0)
    with pytest.raises(UserError, match=r"w has shape \(1, 2\), \(2,\)"):
        average_states(paths + [wide])


class _Norm(torch.nn.Module):
    """A trained norm and a frozen one (kept in eval mode by ``train``, as Chain does)."""

    def __init__(self):
        super().__init__()
        self.norm = torch.nn.BatchNorm1d(3, momentum=0.1)
        self.frozen = torch.nn.BatchNorm1d(3)
        self.frozen.running_mean.fill_(5.0)

    def train(self, mode=True):
        super().train(mode)
        self.frozen.eval()
        return self

    def forward(self, batch):
        return self.frozen(self.norm(batch["x"]))


def test_recompute_batchnorm_gives_each_batch_equal_weight():
    module = _Norm()
    generator = torch.Generator().manual_seed(0)
    batches = [{"batch_size": 1, "x": torch.randn(n, 3, generator=generator) * (k + 1) + k}
               for k, n in enumerate((5, 50, 7))]
    batches.insert(1, {"batch_size": 0})  # every event skipped: passed over
    assert recompute_batchnorm(module, batches) == 3  # events
    xs = [b["x"] for b in batches if b["batch_size"]]
    mean = torch.stack([x.mean(0) for x in xs]).mean(0)
    var = torch.stack([x.var(0, unbiased=True) for x in xs]).mean(0)
    assert torch.allclose(module.norm.running_mean, mean, atol=1e-5)
    assert torch.allclose(module.norm.running_var, var, atol=1e-4)
    assert module.norm.momentum == 0.1 and not module.training
    assert int(module.norm.num_batches_tracked) == 3
    assert torch.equal(module.frozen.running_mean, torch.full((3,), 5.0))  # frozen: untouched
    with pytest.raises(UserError, match="no event"):
        recompute_batchnorm(module, [{"batch_size": 0}])


def test_average_run_of_a_trained_run_writes_loadable_averaged_weights(tiny_files, tmp_path):
    from mlreco_spice.cli import main
    from mlreco_spice.config import load_config
    from mlreco_spice.inference import InferenceEngine
    from mlreco_spice.train import train

    run = tmp_path / "run"
    cfg = load_config("spice_stage_train", [
        f"io.dataset.files={[str(f) for f in tiny_files]}", f"train.output_dir={run}",
        "train.iterations=6", "train.checkpoint_every=2", "train.keep_checkpoints=1",
        "train.keep_grid_from=2",
        "train.freeze_seediness_iterations=2", "io.loader.batch_size=1",
        "model.modules.spice.network.uresnet={filters: 4, depth: 2, reps: 1, input_kernel: 3}",
        "train.optimizer.lr=0.01"])
    train(cfg, progress=False)
    out = tmp_path / "avg.pt"
    record = average_run(run, out, first=2, every=2, bn_events=3, progress=False)
    assert record["iterations"] == [2, 4, 6] and record["bn_events"] == 3
    averaged = load_checkpoint(out)
    assert averaged["iteration"] == 6 and "optimizer" not in averaged
    assert averaged["averaged"]["bn_files"] == [str(f) for f in tiny_files]
    states = [load_checkpoint(run / f"checkpoint-000000{i}.pt")["model"] for i in (2, 4, 6)]
    conv = next(k for k in averaged["model"] if k.endswith("kernel"))
    assert torch.allclose(averaged["model"][conv], sum(s[conv] for s in states) / 3, atol=1e-6)
    # Statistics recomputed over the 3 one-event batches, not averaged from the checkpoints.
    stat = next(k for k in averaged["model"] if k.endswith("running_mean"))
    assert int(averaged["model"][stat.replace("running_mean", "num_batches_tracked")]) == 3
    assert not torch.allclose(averaged["model"][stat], sum(s[stat] for s in states) / 3)
    # The file is weights like any other: the inference engine builds and loads it.
    predict_cfg = load_config(run / "config.yaml", [f"predict.weights={out}"])
    InferenceEngine(predict_cfg)
    # The command refuses to replace its output unless told to.
    args = ["average", str(run), "-o", str(out), "--first", "2", "--bn-events", "2", "-q"]
    assert main(args) != 0
    assert main(args + ["--overwrite"]) == 0
    assert load_checkpoint(out)["averaged"]["bn_events"] == 2
