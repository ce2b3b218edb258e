"""Binary mask losses, selectable by name (``loss.mask_loss`` in the config).

Every loss here scores many masks at once. Inputs are flat tensors of
``(instance, voxel)`` pairs: ``logits`` (the logit of the SPICE kernel value
``p_ik``; for the Lovász hinge any score that is positive for "inside", e.g.
``2p - 1``), binary ``labels`` (voxel ``i`` belongs to instance ``k``) and
``segments`` (the instance ``k`` of each pair). The output is one loss value
per instance, so the caller decides how to average (class, event, batch).

Names
-----
``lovasz``
    Lovász hinge (paper default; see :mod:`.lovasz`).
``bce``
    Binary cross entropy (paper eq. II.4), computed from the logit, which is
    exact and stable where ``p`` is close to 0 or 1.
``dice``
    Soft Dice loss ``1 - (2 Σ p y + 1) / (Σ p + Σ y + 1)`` (Milletari et al.);
    the +1 smoothing keeps it defined for empty masks.
``focal``
    Focal loss ``(1 - p_t)^γ · BCE`` (Lin et al.), mean over the pairs of a
    mask; ``γ`` is ``loss.focal_gamma``.
"""
from __future__ import annotations

from typing import Callable, Dict

import torch
import torch.nn.functional as F

from .lovasz import lovasz_hinge_segments

__all__ = ["MASK_LOSSES", "get_mask_loss", "segment_mean", "bce_segments",
           "dice_segments", "focal_segments"]

MaskLoss = Callable[..., torch.Tensor]


def segment_mean(values: torch.Tensor, segments: torch.Tensor, num_segments: int) -> torch.Tensor:
    """Mean of ``values`` within each segment (0 for an empty segment)."""
    total = values.new_zeros(num_segments).index_add(0, segments, values)
    count = torch.bincount(segments, minlength=num_segments).clamp(min=1).to(values.dtype)
    return total / count


def bce_segments(logits: torch.Tensor, labels: torch.Tensor, segments: torch.Tensor,
                 num_segments: int, **_: float) -> torch.Tensor:
    """Per-mask mean binary cross entropy (paper eq. II.4)."""
    losses = F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype), reduction="none")
    return segment_mean(losses, segments, num_segments)


def dice_segments(logits: torch.Tensor, labels: torch.Tensor, segments: torch.Tensor,
                  num_segments: int, **_: float) -> torch.Tensor:
    """Per-mask soft Dice loss on ``p = sigmoid(logit)``."""
    probs = torch.sigmoid(logits)
    target = labels.to(logits.dtype)
    overlap = probs.new_zeros(num_segments).index_add(0, segments, probs * target)
    total = probs.new_zeros(num_segments).index_add(0, segments, probs + target)
    return 1.0 - (2.0 * overlap + 1.0) / (total + 1.0)


def focal_segments(logits: torch.Tensor, labels: torch.Tensor, segments: torch.Tensor,
                   num_segments: int, focal_gamma: float = 2.0, **_: float) -> torch.Tensor:
    """Per-mask mean focal loss with focusing parameter ``focal_gamma``."""
    target = labels.to(logits.dtype)
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    # p_t = exp(-bce) exactly, so (1 - p_t) needs no second sigmoid.
    weight = (-torch.expm1(-bce)).pow(focal_gamma)
    return segment_mean(weight * bce, segments, num_segments)


def _lovasz(logits: torch.Tensor, labels: torch.Tensor, segments: torch.Tensor,
            num_segments: int, **_: float) -> torch.Tensor:
    return lovasz_hinge_segments(logits, labels, segments, num_segments)


#: Mask loss name -> function(logits, labels, segments, num_segments, **options).
MASK_LOSSES: Dict[str, MaskLoss] = {
    "lovasz": _lovasz,
    "bce": bce_segments,
    "dice": dice_segments,
    "focal": focal_segments,
}


def get_mask_loss(name: str) -> MaskLoss:
    """Return the mask loss called ``name``.

    Raises
    ------
    ValueError
        For an unknown name; the message lists the valid ones.
    """
    key = str(name).strip().lower()
    if key not in MASK_LOSSES:
        raise ValueError(f"unknown mask loss '{name}'; valid: {', '.join(sorted(MASK_LOSSES))}")
    return MASK_LOSSES[key]
