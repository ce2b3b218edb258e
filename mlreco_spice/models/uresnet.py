"""Sparse U-ResNet: encoder, decoder, and the semantic segmentation stage.

Architecture knobs (one ``network.uresnet`` block, shared by every encoder and
decoder of a stage):

``filters`` F
    channels of the first level; level ``i`` has ``(i + 1) F`` channels
    (linear growth, paper III.A);
``depth`` D
    number of 2x2x2 stride-2 down-samplings (paper convention), so there are
    ``D + 1`` resolution levels. SPINE's ``depth`` counts *levels*: an equal
    architecture there has ``depth = D + 1``;
``reps``
    residual blocks per level in the encoder and in every decoder;
``input_kernel``
    kernel size of the first convolution;
``leaky_slope``
    LeakyReLU negative slope;
``norm_eps``, ``norm_momentum``
    batch norm settings (set on every batch norm of the stage, heads included).
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Mapping, Optional

import torch
from torch import nn

from ..backend import import_minkowski
from ..columns import CLASS_NAMES, FEATURE_START, NUM_CLASSES, per_class
from ..losses.segmentation import SegmentationLoss
from ..losses.stage_config import stage_block
from ..registry import MODELS
from .blocks import NormAct, ResidualBlock, configure_batchnorm
from .coords import check_input, to_sparse

__all__ = ["UResNetEncoder", "UResNetDecoder", "UResNetSegmentation", "planes"]


def planes(filters: int, depth: int) -> List[int]:
    """Channels per level: ``[F, 2F, ..., (depth+1) F]``."""
    if filters < 1 or depth < 0:
        raise ValueError(f"uresnet needs filters >= 1 and depth >= 0, got {filters}, {depth}")
    return [filters * (level + 1) for level in range(depth + 1)]


class UResNetEncoder(nn.Module):
    """Input convolution, then per level ``reps`` residual blocks and a down-sampling.

    Parameters
    ----------
    in_channels : int
        Input feature channels.
    filters, depth, reps, input_kernel, leaky_slope
        See the module docstring.
    """

    def __init__(self, in_channels: int, filters: int, depth: int, reps: int,
                 input_kernel: int, leaky_slope: float):
        super().__init__()
        ME = import_minkowski()
        self.planes = planes(filters, depth)
        self.input_conv = ME.MinkowskiConvolution(in_channels, filters, kernel_size=input_kernel,
                                                  dimension=3, bias=False)
        self.blocks = nn.ModuleList(
            nn.Sequential(*[ResidualBlock(f, f, leaky_slope) for _ in range(reps)])
            for f in self.planes)
        self.downsample = nn.ModuleList(
            nn.Sequential(NormAct(self.planes[i], leaky_slope),
                          ME.MinkowskiConvolution(self.planes[i], self.planes[i + 1], kernel_size=2,
                                                  stride=2, dimension=3, bias=False))
            for i in range(depth))

    def forward(self, x: Any) -> List[Any]:
        """Return the feature tensor of every level, finest first (the last is the deepest)."""
        x = self.input_conv(x)
        levels = []
        for level, block in enumerate(self.blocks):
            x = block(x)
            levels.append(x)
            if level < len(self.downsample):
                x = self.downsample[level](x)
        return levels


class UResNetDecoder(nn.Module):
    """Transposed-convolution up-sampling with concatenated skip connections.

    Parameters
    ----------
    filters, depth, reps, leaky_slope
        See the module docstring (same values as the encoder's).
    """

    def __init__(self, filters: int, depth: int, reps: int, leaky_slope: float):
        super().__init__()
        ME = import_minkowski()
        self.planes = planes(filters, depth)
        self.upsample = nn.ModuleList()
        self.blocks = nn.ModuleList()
        for level in range(depth - 1, -1, -1):
            coarse, fine = self.planes[level + 1], self.planes[level]
            self.upsample.append(nn.Sequential(
                NormAct(coarse, leaky_slope),
                ME.MinkowskiConvolutionTranspose(coarse, fine, kernel_size=2, stride=2,
                                                 dimension=3, bias=False)))
            blocks = [ResidualBlock(2 * fine if rep == 0 else fine, fine, leaky_slope)
                      for rep in range(max(reps, 1))]
            self.blocks.append(nn.Sequential(*blocks))

    def forward(self, levels: List[Any]) -> Any:
        """Decode from the deepest level of ``levels`` (encoder output) to full resolution."""
        ME = import_minkowski()
        x = levels[-1]
        for step, (up, block) in enumerate(zip(self.upsample, self.blocks)):
            x = block(ME.cat(levels[-step - 2], up(x)))
        return x


def build_unet_parts(unet_cfg: Mapping[str, Any], in_channels: int,
                     num_decoders: int) -> nn.ModuleDict:
    """Encoder plus ``num_decoders`` decoders from one ``network.uresnet`` block."""
    args = dict(filters=int(unet_cfg["filters"]), depth=int(unet_cfg["depth"]),
                reps=int(unet_cfg["reps"]), leaky_slope=float(unet_cfg["leaky_slope"]))
    if args["reps"] < 1:
        raise ValueError(f"network.uresnet.reps must be >= 1, got {args['reps']}")
    parts = nn.ModuleDict({"encoder": UResNetEncoder(in_channels,
                                                     input_kernel=int(unet_cfg["input_kernel"]),
                                                     **args)})
    for index in range(num_decoders):
        parts[f"decoder{index}"] = UResNetDecoder(**args)
    return parts


@MODELS.register("uresnet", loss=SegmentationLoss)
class UResNetSegmentation(nn.Module):
    """Semantic segmentation stage: encoder, decoder, per-voxel class scores.

    Parameters
    ----------
    stage_cfg : dict, optional
        The ``model.modules.uresnet`` block (missing keys take defaults);
        reads ``network.uresnet``, ``network.num_input``, ``network.num_classes``.

    Forward returns ``{"logits": (N, num_classes), "semantics": (N,) argmax}``,
    aligned with the input rows. ``network.logit_offsets`` (per class, as
    ``loss.class_weights``) is added to the logits before the argmax only: it moves
    the trade between classes after training, the logits and the loss are unchanged.
    """

    def __init__(self, stage_cfg: Optional[Dict[str, Any]] = None):
        super().__init__()
        ME = import_minkowski()
        net = stage_block("uresnet", stage_cfg)["network"]
        self.num_input = int(net["num_input"])
        unet = net["uresnet"]
        parts = build_unet_parts(unet, self.num_input, 1)
        self.encoder, self.decoder = parts["encoder"], parts["decoder0"]
        filters = int(unet["filters"])
        self.head = nn.Sequential(NormAct(filters, float(unet["leaky_slope"])),
                                  ME.MinkowskiLinear(filters, int(net["num_classes"]), bias=True))
        configure_batchnorm(self, unet["norm_eps"], unet["norm_momentum"])
        offsets = net.get("logit_offsets")
        if offsets is not None and int(net["num_classes"]) != NUM_CLASSES:
            raise ValueError(f"network.logit_offsets are given per class name ({NUM_CLASSES}) "
                             f"but the network has {net['num_classes']} classes")
        values = per_class(offsets, 0.0)
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"network.logit_offsets must be finite, got "
                             f"{dict(zip(CLASS_NAMES, values))}")
        # Config, not weights: not persistent, so any checkpoint loads with any offsets.
        self.register_buffer("logit_offsets", None if offsets is None
                             else torch.tensor(values, dtype=torch.float32), persistent=False)

    def forward(self, data: torch.Tensor) -> Dict[str, torch.Tensor]:
        check_input(data, self.num_input, "uresnet")
        if len(data) == 0:
            logits = data.new_zeros(0, self.head[1].linear.out_features)
            return {"logits": logits + 0.0 * self.head[1].linear.weight.sum(),
                    "semantics": torch.zeros(0, dtype=torch.long, device=data.device)}
        x, inverse = to_sparse(data, data[:, FEATURE_START:].float())
        logits = self.head(self.decoder(self.encoder(x))).F[inverse]
        shifted = logits if self.logit_offsets is None else logits + self.logit_offsets
        return {"logits": logits, "semantics": shifted.argmax(1)}
