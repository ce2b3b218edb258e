"""Loss functions of the chain stages (plain torch; no MinkowskiEngine needed).

lovasz          Lovász hinge, single mask and batched over many masks
masks           mask losses by name: lovasz (2p-1), lovasz_logit, bce, dice, focal
spice_loss      spice_loss_terms (functional core) and SPICELoss
segmentation    cross entropy of the semantic segmentation stage
"""
from __future__ import annotations

from .lovasz import lovasz_grad, lovasz_hinge, lovasz_hinge_segments
from .masks import MASK_LOSSES, get_mask_loss, mask_loss_score
from .segmentation import SegmentationLoss, segmentation_loss_terms
from .spice_loss import TERMS, SPICELoss, kernel_logit, spice_loss_terms
from .stage_config import stage_block

__all__ = ["lovasz_grad", "lovasz_hinge", "lovasz_hinge_segments", "MASK_LOSSES",
           "get_mask_loss", "mask_loss_score", "SegmentationLoss", "segmentation_loss_terms",
           "TERMS", "SPICELoss", "kernel_logit", "spice_loss_terms", "stage_block"]
