"""Sparse building blocks: normalisation + activation, residual block, BN folding.

Every convolution is preceded by batch normalisation and a LeakyReLU (paper
II.B, "pre-activation" residual blocks). Norm and activation are applied
together on the feature matrix, producing one new sparse tensor instead of
two: on CPU the per-op Python overhead of MinkowskiEngine is a visible part of
the run time for small events.

MinkowskiEngine is imported inside constructors (see :mod:`mlreco_spice.backend`).
"""
from __future__ import annotations

from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..backend import import_minkowski

__all__ = ["with_features", "NormAct", "ResidualBlock", "fold_batchnorm", "configure_batchnorm"]


def with_features(x: Any, features: torch.Tensor) -> Any:
    """A sparse tensor on the coordinates of ``x`` carrying ``features``."""
    ME = import_minkowski()
    return ME.SparseTensor(features, coordinate_map_key=x.coordinate_map_key,
                           coordinate_manager=x.coordinate_manager)


class NormAct(nn.Module):
    """Batch normalisation then LeakyReLU on a sparse tensor's features.

    Parameters
    ----------
    channels : int
        Feature channels.
    slope : float
        LeakyReLU negative slope.
    """

    def __init__(self, channels: int, slope: float):
        super().__init__()
        self.norm: nn.Module = nn.BatchNorm1d(channels)
        self.slope = float(slope)

    def forward(self, x: Any) -> Any:
        features = x.F
        norm = self.norm
        if self.training and len(features) == 1 and isinstance(norm, nn.BatchNorm1d):
            # Batch statistics of a single voxel are undefined (torch raises):
            # normalise it with the running statistics and leave them unchanged.
            features = F.batch_norm(features, norm.running_mean, norm.running_var, norm.weight,
                                    norm.bias, False, 0.0, norm.eps)
        else:
            features = norm(features)
        # In place is safe: batch norm's backward needs its input, not its output.
        return with_features(x, F.leaky_relu(features, self.slope, inplace=True))


class ResidualBlock(nn.Module):
    """Pre-activation residual block: ``x + conv(act(bn(conv(act(bn(x))))))``.

    Parameters
    ----------
    in_channels, out_channels : int
        Channel counts; a 1x1 (linear) projection is used on the shortcut
        when they differ.
    slope : float
        LeakyReLU negative slope.
    dimension : int
        Spatial dimension.
    """

    def __init__(self, in_channels: int, out_channels: int, slope: float, dimension: int = 3):
        super().__init__()
        ME = import_minkowski()
        self.shortcut: Optional[nn.Module] = None
        if in_channels != out_channels:
            self.shortcut = ME.MinkowskiLinear(in_channels, out_channels, bias=False)
        self.act1 = NormAct(in_channels, slope)
        # No conv bias: each conv output is followed by a batch norm (directly,
        # or after the residual sum), which would cancel it.
        self.conv1 = ME.MinkowskiConvolution(in_channels, out_channels, kernel_size=3,
                                             dimension=dimension, bias=False)
        self.act2 = NormAct(out_channels, slope)
        self.conv2 = ME.MinkowskiConvolution(out_channels, out_channels, kernel_size=3,
                                             dimension=dimension, bias=False)

    def forward(self, x: Any) -> Any:
        residual = x if self.shortcut is None else self.shortcut(x)
        out = self.conv2(self.act2(self.conv1(self.act1(x))))
        # In place is safe: a convolution's backward does not read its output.
        return with_features(out, out.F.add_(residual.F))

    @torch.no_grad()
    def fold_batchnorm(self) -> None:
        """Fold the batch norm after ``conv1`` into ``conv1`` (inference only).

        ``bn(W x) = (γ/√(v+ε)) W x + (β - γ m/√(v+ε))``: the scale goes into
        the kernel's output channels and the shift becomes a bias. The first
        norm cannot be folded: the shortcut also reads its input.
        """
        norm = self.act2.norm
        if not isinstance(norm, nn.BatchNorm1d):
            return  # already folded
        scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
        shift = norm.bias - norm.running_mean * scale
        self.conv1.kernel.mul_(scale)  # kernel: (volume, in, out); scale broadcasts on out
        # ME stores a missing bias as a plain ``None`` attribute: remove it first.
        delattr(self.conv1, "bias")
        self.conv1.register_parameter("bias", nn.Parameter(shift.reshape(1, -1).clone()))
        self.act2.norm = nn.Identity()


def configure_batchnorm(module: nn.Module, eps: float, momentum: float) -> nn.Module:
    """Set ``eps`` and ``momentum`` of every batch norm in ``module`` (in place).

    Neither is a parameter, so a checkpoint does not carry them: a model
    imported from SPINE (eps 1e-4) needs them from its config to give the
    same outputs.
    """
    for child in module.modules():
        if isinstance(child, nn.BatchNorm1d):
            child.eps, child.momentum = float(eps), float(momentum)
    return module


def fold_batchnorm(module: nn.Module) -> nn.Module:
    """Fold foldable batch norms of every :class:`ResidualBlock` in ``module``.

    In place; only valid in eval mode (running statistics are baked in), so
    the module is put in eval mode. Use on an inference copy (MinkowskiEngine
    modules do not deep-copy: build a new instance and load the state dict),
    never on a model that will train again.
    """
    module.eval()
    for child in module.modules():
        if isinstance(child, ResidualBlock):
            child.fold_batchnorm()
    return module
