"""Binary mask losses, selectable by name (``loss.mask_loss`` in the config).

Every loss here scores many masks at once. Inputs are flat tensors of
``(instance, voxel)`` pairs: ``logits`` (the score the entry names: the logit
of the SPICE kernel value ``p_ik``, or ``2p - 1`` for the Lovász hinge's
default), binary ``labels`` (voxel ``i`` belongs to instance ``k``) and
``segments`` (the instance ``k`` of each pair). The output is one loss value
per instance, so the caller decides how to average (class, event, batch).

Names (:data:`MASK_LOSSES`; :func:`mask_loss_score` says which score each takes)
-------------------------------------------------------------------------------
``lovasz``
    Lovász hinge on ``2p - 1`` (paper default, SPINE's input; see
    :mod:`.lovasz`). ``loss.lovasz_score: logit`` gives it the logit instead,
    the same as ``lovasz_logit``.
``lovasz_logit``
    Lovász hinge on the logit ``log(p / (1 - p))``.
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

from typing import Callable, Dict, NamedTuple

import torch
import torch.nn.functional as F

from .lovasz import lovasz_hinge_segments

__all__ = ["MASK_LOSSES", "MaskLossEntry", "SCORES", "get_mask_loss", "mask_loss_score",
           "segment_mean", "bce_segments", "dice_segments", "focal_segments"]

MaskLoss = Callable[..., torch.Tensor]

#: Scores a mask loss can be given: ``linear`` is ``2p - 1``, ``logit`` is ``log(p / (1 - p))``.
SCORES = ("linear", "logit")


class MaskLossEntry(NamedTuple):
    """A registered mask loss: its function and the score it is given."""

    fn: MaskLoss
    score: str


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


#: Mask loss name -> (function(logits, labels, segments, num_segments, **options), score).
#: ``defaults.py`` lists the same names as the choices of ``loss.mask_loss``.
MASK_LOSSES: Dict[str, MaskLossEntry] = {
    "lovasz": MaskLossEntry(_lovasz, "linear"),
    "lovasz_logit": MaskLossEntry(_lovasz, "logit"),
    "bce": MaskLossEntry(bce_segments, "logit"),
    "dice": MaskLossEntry(dice_segments, "logit"),
    "focal": MaskLossEntry(focal_segments, "logit"),
}


def _entry(name: str) -> MaskLossEntry:
    key = str(name).strip().lower()
    if key not in MASK_LOSSES:
        raise ValueError(f"unknown mask loss '{name}'; valid: {', '.join(sorted(MASK_LOSSES))}")
    return MASK_LOSSES[key]


def get_mask_loss(name: str) -> MaskLoss:
    """Return the function of the mask loss called ``name``.

    Raises
    ------
    ValueError
        For an unknown name; the message lists the valid ones.
    """
    return _entry(name).fn


def mask_loss_score(name: str, lovasz_score: str = "linear") -> str:
    """The score (``linear``: ``2p - 1``, or ``logit``) the mask loss ``name`` is given.

    ``lovasz_score`` (the ``loss.lovasz_score`` key) applies to ``lovasz`` only.
    """
    entry = _entry(name)
    if str(name).strip().lower() != "lovasz":
        return entry.score
    if lovasz_score not in SCORES:
        raise ValueError(f"lovasz_score must be one of {SCORES}, got '{lovasz_score}'")
    return lovasz_score
