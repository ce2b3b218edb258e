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
