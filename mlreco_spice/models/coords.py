"""Network input handling: validation, sparse tensor construction, coordinate normalisation.

Coordinate normalisation (a documented deviation from the paper)
----------------------------------------------------------------
Eq. II.1 maps voxel ``x`` in an image of side ``L`` to ``(x - L/2) / (L/2)``,
so the embedding scale would depend on the image size. Here the length is a
hyper-parameter ``norm_length`` (voxels, default 512, the paper's image size)
stored with the weights, and the centre is the centre of the image:

    x̃ = (x - image_size / 2) / (norm_length / 2)

With ``image_size == norm_length == 512`` this is exactly eq. II.1. A model
trained on 512-voxel images keeps the same voxel-to-embedding scale on any
image; voxels of a larger image get coordinates beyond ±1, which is fine
(the offsets, not the coordinates, are bounded by tanh).
"""
from __future__ import annotations

from typing import Any, Tuple

import torch

from ..backend import import_minkowski
from ..columns import BATCH_COL, COORD_COLS, FEATURE_START
from ..errors import UserError

__all__ = ["InputShapeError", "check_input", "normalized_coordinates", "to_sparse"]


class InputShapeError(UserError, ValueError):
    """The network input tensor does not have the configured layout."""


def check_input(data: torch.Tensor, num_input: int, stage: str) -> None:
    """Check that ``data`` is ``(N, 4 + num_input)`` ``[batch, x, y, z, features...]``.

    Raises
    ------
    InputShapeError
        With the expected and actual layout.
    """
    if not isinstance(data, torch.Tensor) or data.dim() != 2:
        shape = tuple(data.shape) if isinstance(data, torch.Tensor) else type(data).__name__
        raise InputShapeError(f"{stage}: input must be a 2-D tensor [batch, x, y, z, features...], "
                              f"got {shape}")
    features = data.shape[1] - FEATURE_START
    if features != num_input:
        raise InputShapeError(
            f"{stage}: the input has {features} feature column(s) after [batch, x, y, z] but "
            f"network.num_input is {num_input}. Set network.num_input to {max(features, 0)} or "
            f"change the input products (coordinate features for coord_conv are added by the "
            f"network and are not counted).")


def normalized_coordinates(coords: torch.Tensor, image_size: float,
                           norm_length: torch.Tensor) -> torch.Tensor:
    """``(x - image_size/2) / (norm_length/2)`` per coordinate (see module docstring)."""
    half = norm_length.to(coords.dtype) / 2.0
    return (coords - float(image_size) / 2.0) / half


def to_sparse(data: torch.Tensor, features: torch.Tensor) -> Tuple[Any, torch.Tensor]:
    """Build a MinkowskiEngine sparse tensor from ``data``'s batch and coordinate columns.

    Returns
    -------
    tensor : ME.SparseTensor
        The sparse tensor (duplicate voxels of one event are merged by ME).
    inverse : torch.Tensor
        (N,) row of the sparse tensor's features for each row of ``data``:
        ``output.F[inverse]`` is aligned with ``data`` row for row.
    """
    ME = import_minkowski()
    coords = data[:, [BATCH_COL, *COORD_COLS]].floor().int()
    tensor = ME.SparseTensor(features, coordinates=coords)
    return tensor, tensor.inverse_mapping.long()
