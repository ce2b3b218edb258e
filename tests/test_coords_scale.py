"""Images larger than the weights' norm_length: coordinates leave ±1, and a warning says so."""
import logging

import torch

from mlreco_spice.models import coords


def test_larger_image_than_norm_length_warns_once_naming_both_sizes(caplog):
    coords._WARNED.clear()
    voxels = torch.tensor([[0.0, 0.0, 0.0], [767.0, 383.0, 384.0]])
    caplog.set_level(logging.WARNING)
    out = coords.normalized_coordinates(voxels, 768, torch.tensor(512.0))
    # (x - 384) / 256: the 768³ image spans [-1.5, 1.496] with 512 weights
    assert torch.allclose(out[0], torch.tensor([-1.5, -1.5, -1.5]))
    assert torch.allclose(out[1], torch.tensor([383 / 256, -1 / 256, 0.0]))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "768" in warnings[0] and "512" in warnings[0] and "1.5" in warnings[0]
    coords.normalized_coordinates(voxels, 768, torch.tensor(512.0))   # same sizes: once only
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1


def test_image_within_norm_length_is_silent(caplog):
    coords._WARNED.clear()
    caplog.set_level(logging.WARNING)
    voxels = torch.tensor([[0.0, 95.0, 50.0]])
    out = coords.normalized_coordinates(voxels, 96, torch.tensor(512.0))
    assert out.abs().max() <= 1.0
    coords.normalized_coordinates(voxels, 512, torch.tensor(512.0))
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]
