"""Semantic segmentation loss: cross entropy, optionally class weighted."""
from __future__ import annotations

from typing import Any, Dict, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..columns import CLASS_NAMES, NUM_CLASSES, SEG_LABEL_COL, UNLABELED, per_class
from .stage_config import stage_block

__all__ = ["SegmentationLoss", "segmentation_loss_terms"]


def segmentation_loss_terms(logits: torch.Tensor, labels: torch.Tensor,
                            class_weights: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
    """Cross entropy and accuracies of per-voxel class scores.

    Parameters
    ----------
    logits : torch.Tensor
        (N, C) unnormalised class scores.
    labels : torch.Tensor
        (N,) true class; ``UNLABELED`` (-1) voxels are ignored.
    class_weights : torch.Tensor, optional
        (C,) weights of the cross entropy (mean is weight-normalised, as in
        :func:`torch.nn.functional.cross_entropy`).

    Returns
    -------
    dict
        ``loss``, ``accuracy`` (fraction of labelled voxels right; NaN if none)
        and ``accuracy_<Class>`` (recall of each class present).
    """
    if logits.dim() != 2 or logits.shape[0] != labels.numel():
        raise ValueError(f"logits {tuple(logits.shape)} do not match {labels.numel()} labels")
    labels = labels.reshape(-1).long().to(logits.device)
    labelled = labels != UNLABELED
    if not bool(labelled.any()):
        nan = torch.full((), float("nan"), device=logits.device)
        return {"loss": logits.sum() * 0.0, "accuracy": nan}
    weight = class_weights.to(logits.device, logits.dtype) if class_weights is not None else None
    loss = F.cross_entropy(logits[labelled], labels[labelled], weight=weight)
    with torch.no_grad():
        correct = logits[labelled].argmax(1) == labels[labelled]
        out = {"loss": loss, "accuracy": correct.float().mean()}
        truth = labels[labelled]
        for cls in torch.unique(truth).tolist():
            out[f"accuracy_{CLASS_NAMES[cls]}"] = correct[truth == cls].float().mean()
    return out


class SegmentationLoss(nn.Module):
    """Loss of the ``uresnet`` stage.

    Parameters
    ----------
    stage_cfg : dict, optional
        The ``model.modules.uresnet`` block; reads ``loss.class_weights``
        (a list of five values or a mapping by class name, missing -> 1).
    """

    def __init__(self, stage_cfg: Optional[Dict[str, Any]] = None):
        super().__init__()
        block = stage_block("uresnet", stage_cfg)
        weights = block["loss"].get("class_weights")
        if weights is None:
            self.class_weights: Optional[torch.Tensor] = None
        else:
            # Not persistent: the weights are config, so a checkpoint trained with
            # other (or no) class weights still loads into this chain.
            self.register_buffer("class_weights",
                                 torch.tensor(per_class(weights, 1.0), dtype=torch.float32),
                                 persistent=False)
        num_classes = int(block["network"]["num_classes"])
        if num_classes != NUM_CLASSES and weights is not None:
            raise ValueError(f"class_weights are given per class name ({NUM_CLASSES}) but the "
                             f"network has {num_classes} classes")

    def forward(self, outputs: Dict[str, torch.Tensor], seg_label: torch.Tensor) -> Dict[str, Any]:
        """``outputs["logits"]`` (N, C) against ``seg_label`` (N, 5) ``[batch, x, y, z, class]``."""
        if seg_label.dim() != 2 or seg_label.shape[1] <= SEG_LABEL_COL:
            raise ValueError(f"segmentation labels must be (N, >{SEG_LABEL_COL}) "
                             f"[batch, x, y, z, class], got {tuple(seg_label.shape)}")
        return segmentation_loss_terms(outputs["logits"], seg_label[:, SEG_LABEL_COL],
                                       self.class_weights)
