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
image (the clustering works on distances, so a smaller image is fine).

A larger image than ``norm_length`` puts coordinates beyond ±1: the reach is
``image_size / norm_length``, ±1.5 for a 768³ PILArNet-M image with the
shipped 512 weights, and the CoordConv input features, which the network never
saw beyond ±1 in training, go there too. Measured with the shipped weights on
10 simulated events (seed 4242) placed in the corner of a 768³ image
(``network.image_size: 768``, coordinates -1.5 to 0.5) against the same
events as 512³ images (true semantics): 47 % of the voxels have a coordinate
beyond ±1; the learned offsets (embedding minus coordinate) move by 0.15
(median; 0.25 at the 90th percentile), 40 % of the median margin 0.36; the
per-class ARI moved by -0.05 to +0.06 (HIP 0.870 -> 0.930, MIP 0.894 -> 0.874,
Shower 0.698 -> 0.712, Delta 0.818 -> 0.825, Michel 0.784 -> 0.734): no
collapse, but outputs the weights were not trained to give. Behaviour chosen:
run anyway (rescaling would change the voxel-to-embedding scale the margins
and thresholds were learned at), and warn once per pair of sizes, naming
both, so that the user can retrain with ``norm_length`` equal to the image
side (``chain_configs/pilarnet_m.yaml`` does).
"""
from __future__ import annotations

import logging
from typing import Any, Set, Tuple

import torch

from ..backend import import_minkowski
from ..columns import BATCH_COL, COORD_COLS, FEATURE_START
from ..errors import UserError

__all__ = ["InputShapeError", "check_input", "normalized_coordinates", "to_sparse"]

log = logging.getLogger(__name__)

#: (image_size, norm_length) pairs already warned about in this process.
_WARNED: Set[Tuple[float, float]] = set()


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
    """``(x - image_size/2) / (norm_length/2)`` per coordinate (see module docstring).

    Warns once per pair of sizes when ``image_size > norm_length``: the
    coordinates then leave the ±1 the weights were trained on.
    """
    length = float(norm_length)
    if float(image_size) > length and (float(image_size), length) not in _WARNED:
        _WARNED.add((float(image_size), length))
        log.warning("image side %g voxels is larger than the weights' norm_length %g: "
                    "coordinates and CoordConv features reach ±%.2f, beyond the ±1 of training; "
                    "the network runs anyway, but retrain with norm_length %g for such images "
                    "(README, 'Image size')", float(image_size), length,
                    float(image_size) / length, float(image_size))
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
