"""Checkpoint helpers: keep-last-K pruning, slim (half-precision) export that loads back."""
import torch

from mlreco_spice.checkpoint import (export_weights, list_checkpoints, load_checkpoint,
                                     load_state_into, save_checkpoint)


def test_save_prunes_to_last_k_and_export_half_loads(tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    for iteration in (10, 20, 30):
        save_checkpoint(tmp_path, iteration, {"model": model.state_dict(), "optimizer": {}}, keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["checkpoint-0000020.pt",
                                                             "checkpoint-0000030.pt"]
    target = export_weights(list_checkpoints(tmp_path)[-1], tmp_path / "w.pt", half=True)
    payload = load_checkpoint(target)
    assert "optimizer" not in payload and payload["iteration"] == 30
    assert payload["model"]["0.weight"].dtype == torch.float16
    assert payload["model"]["1.num_batches_tracked"].dtype == torch.int64  # integers untouched
    fresh = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    load_state_into(fresh, payload["model"], "w.pt")
    assert fresh[0].weight.dtype == torch.float32
    assert torch.allclose(fresh[0].weight, model[0].weight, rtol=1e-3, atol=1e-4)


def test_saved_non_persistent_buffer_is_dropped_and_other_mismatches_still_raise():
    import pytest

    from mlreco_spice.checkpoint import CheckpointError

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(2, 2)
            self.register_buffer("weights", torch.ones(3), persistent=False)

    net = Net()
    state = {k: torch.zeros_like(v) for k, v in net.state_dict().items()}
    # An older checkpoint saved the buffer: the model's (config) value is kept.
    load_state_into(net, {**state, "weights": torch.full((3,), 7.0)}, "old.pt")
    assert torch.equal(net.weights, torch.ones(3)) and torch.equal(net.layer.bias, torch.zeros(2))
    with pytest.raises(CheckpointError, match="not in model: extra"):
        load_state_into(net, {**state, "extra": torch.ones(1)}, "bad.pt")
