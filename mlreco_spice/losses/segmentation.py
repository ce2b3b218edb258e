"""Semantic segmentation loss: cross entropy, optionally class weighted and with the
detached voxels (:mod:`mlreco_spice.pieces`) weighed apart."""
from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..columns import (BATCH_COL, CLASS_NAMES, COORD_COLS, INSTANCE_COL, NUM_CLASSES,
                       SEG_LABEL_COL, SEMANTIC_COL, UNLABELED, per_class)
from ..pieces import main_piece
from .stage_config import stage_block

__all__ = ["SegmentationLoss", "segmentation_loss_terms", "detached_voxels"]


def detached_voxels(clust_label: torch.Tensor) -> torch.Tensor:
    """Per row of a batch's ``clust_label`` ``[batch, x, y, z, instance, class, ...]``: True
    where a voxel of one of the five classes, assigned to an instance, lies outside that
    instance's main piece (per batch entry). Mostly the separated dots of showers, deltas
    and Michel electrons; also track pieces cut off where another particle's voxels take
    precedence. The benchmarks' dots are the same voxels of the electromagnetic classes."""
    label = clust_label.detach().cpu().numpy()
    detached = np.zeros(len(label), dtype=bool)
    batch = label[:, BATCH_COL].astype(np.int64)
    for entry in np.unique(batch):
        rows = np.flatnonzero(batch == entry)
        semantic = label[rows, SEMANTIC_COL]
        instance = label[rows, INSTANCE_COL].astype(np.int64)
        instance = np.where((semantic >= 0) & (semantic < NUM_CLASSES), instance, -1)
        detached[rows] = (instance >= 0) & ~main_piece(label[rows][:, list(COORD_COLS)], instance)
    return torch.from_numpy(detached).to(clust_label.device)


def segmentation_loss_terms(logits: torch.Tensor, labels: torch.Tensor,
                            class_weights: Optional[torch.Tensor] = None,
                            voxel_weights: Optional[torch.Tensor] = None
                            ) -> Dict[str, torch.Tensor]:
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
    voxel_weights : torch.Tensor, optional
        (N,) further weight per voxel, multiplying its class weight; the mean is
        normalised by the product of both.

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
    if voxel_weights is None:
        loss = F.cross_entropy(logits[labelled], labels[labelled], weight=weight)
    else:
        per_voxel = voxel_weights.reshape(-1).to(logits.device, logits.dtype)[labelled]
        ce = F.cross_entropy(logits[labelled], labels[labelled], weight=weight, reduction="none")
        norm = per_voxel * (weight[labels[labelled]] if weight is not None else 1.0)
        loss = (ce * per_voxel).sum() / norm.sum().clamp_min(1e-12)
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
        (a list of five values or a mapping by class name, missing -> 1) and
        ``loss.detached_weight`` (the cross-entropy weight of voxels outside their true
        instance's largest touching piece, multiplying the class weight: one number for
        every class, or per class as ``class_weights``, missing -> 1; all 1: none, and
        then the stage needs no ``clust_label``).
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
        detached = per_class(block["loss"].get("detached_weight", 1.0), 1.0)
        if not all(w > 0 and np.isfinite(w) for w in detached):
            raise ValueError(f"loss.detached_weight must be finite and > 0 for every class, "
                             f"got {dict(zip(CLASS_NAMES, detached))}")
        # Per true class; None when every weight is 1 (no clust_label needed).
        self.detached_weight: Optional[torch.Tensor] = (
            None if all(w == 1.0 for w in detached) else torch.tensor(detached))
        num_classes = int(block["network"]["num_classes"])
        if num_classes != NUM_CLASSES and (weights is not None or self.detached_weight is not None):
            raise ValueError(f"class_weights and detached_weight are given per class name "
                             f"({NUM_CLASSES}) but the network has {num_classes} classes")

    def forward(self, outputs: Dict[str, torch.Tensor], seg_label: torch.Tensor,
                clust_label: Optional[torch.Tensor] = None) -> Dict[str, Any]:
        """``outputs["logits"]`` (N, C) against ``seg_label`` (N, 5) ``[batch, x, y, z, class]``;
        ``clust_label`` (same voxels, same order) only with ``loss.detached_weight``."""
        if seg_label.dim() != 2 or seg_label.shape[1] <= SEG_LABEL_COL:
            raise ValueError(f"segmentation labels must be (N, >{SEG_LABEL_COL}) "
                             f"[batch, x, y, z, class], got {tuple(seg_label.shape)}")
        voxel_weights = None
        if self.detached_weight is not None:
            if clust_label is None:
                raise ValueError("loss.detached_weight needs the true instances: add a "
                                 "clust_label (cluster3d) parser to io.dataset.schema and "
                                 "clust_label: clust_label to the stage's loss_input")
            coords = list(COORD_COLS)
            if clust_label.shape[0] != seg_label.shape[0] or not torch.equal(
                    clust_label[:, [BATCH_COL] + coords].to(seg_label.dtype),
                    seg_label[:, [BATCH_COL] + coords]):
                raise ValueError("clust_label and seg_label do not list the same voxels in the "
                                 "same order: the detached weight cannot be placed")
            labels = seg_label[:, SEG_LABEL_COL].long()
            weight = self.detached_weight.to(seg_label.device)[labels.clamp(0, NUM_CLASSES - 1)]
            voxel_weights = torch.where(detached_voxels(clust_label), weight, 1.0)
        return segmentation_loss_terms(outputs["logits"], seg_label[:, SEG_LABEL_COL],
                                       self.class_weights, voxel_weights)
