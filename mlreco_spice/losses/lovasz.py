"""Lovász hinge loss (Berman, Triki & Blaschko, CVPR 2018).

The Lovász hinge is the Lovász extension of the Jaccard loss
``Δ_J(M) = |M| / |Y ∪ M|`` (``M`` the set of mispredicted voxels, ``Y`` the
true foreground), evaluated at the vector of hinge errors
``m_i = max(0, 1 - s_i y_i)`` with ``s_i`` the logit and ``y_i = ±1``. It is a
convex surrogate that directly optimises the intersection-over-union of a
binary mask, which is why SPICE (following Neven et al.) uses it as the
default mask loss.

Two entry points:

* :func:`lovasz_hinge` -- one binary mask (the textbook form);
* :func:`lovasz_hinge_segments` -- many masks at once, each a *segment* of a
  flat tensor, sorted and reduced without a Python loop over masks.
"""
from __future__ import annotations

import torch

__all__ = ["lovasz_grad", "lovasz_hinge", "lovasz_hinge_segments"]


def lovasz_grad(gt_sorted: torch.Tensor) -> torch.Tensor:
    """Gradient of the Lovász extension of the Jaccard loss w.r.t. sorted errors.

    Parameters
    ----------
    gt_sorted : torch.Tensor
        (P,) binary foreground labels, ordered by decreasing hinge error.

    Returns
    -------
    torch.Tensor
        (P,) float weights ``Δ_J(A_i) - Δ_J(A_{i-1})`` where ``A_i`` holds the
        ``i`` largest errors.
    """
    gt_sorted = gt_sorted.to(torch.float64)
    gts = gt_sorted.sum()
    intersection = gts - gt_sorted.cumsum(0)
    union = gts + (1.0 - gt_sorted).cumsum(0)
    jaccard = 1.0 - intersection / union
    if len(gt_sorted) > 1:
        jaccard[1:] = jaccard[1:] - jaccard[:-1].clone()
    return jaccard


def lovasz_hinge(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Lovász hinge loss of one binary mask.

    Parameters
    ----------
    logits : torch.Tensor
        (P,) real-valued scores (positive means foreground).
    labels : torch.Tensor
        (P,) binary labels (bool, or 0/1 numbers).

    Returns
    -------
    torch.Tensor
        Scalar loss; 0 for an empty input.
    """
    if logits.numel() == 0:
        return logits.sum() * 0.0
    labels = labels.reshape(-1).to(logits.dtype)
    logits = logits.reshape(-1)
    signs = 2.0 * labels - 1.0
    errors = 1.0 - logits * signs
    errors_sorted, perm = torch.sort(errors, descending=True)
    grad = lovasz_grad(labels[perm]).to(logits.dtype)
    return torch.dot(torch.relu(errors_sorted), grad)


def lovasz_hinge_segments(logits: torch.Tensor, labels: torch.Tensor,
                          segments: torch.Tensor, num_segments: int) -> torch.Tensor:
    """Lovász hinge loss of many binary masks stored back to back.

    Equivalent to ``[lovasz_hinge(logits[segments == s], labels[segments == s])
    for s in range(num_segments)]`` but vectorised: one stable sort by error
    then one stable sort by segment give every segment's decreasing-error
    order, and the Jaccard gradient uses segment-wise cumulative sums.

    Parameters
    ----------
    logits : torch.Tensor
        (P,) scores.
    labels : torch.Tensor
        (P,) binary labels.
    segments : torch.Tensor
        (P,) long segment index of every entry, in ``[0, num_segments)``.
    num_segments : int
        Number of masks.

    Returns
    -------
    torch.Tensor
        (num_segments,) loss per mask (0 for an empty segment).
    """
    out = logits.new_zeros(num_segments)
    if logits.numel() == 0:
        return out + logits.sum() * 0.0
    labels = labels.reshape(-1).to(torch.bool)
    segments = segments.reshape(-1).long()
    signs = labels.to(logits.dtype) * 2.0 - 1.0
    errors = 1.0 - logits.reshape(-1) * signs

    # Segment-major, error-descending order (both sorts stable).
    order = torch.sort(errors.detach(), descending=True, stable=True).indices
    order = order[torch.sort(segments[order], stable=True).indices]
    err_sorted = errors[order]
    gt_sorted = labels[order].long()
    seg_sorted = segments[order]

    counts = torch.bincount(segments, minlength=num_segments)
    starts = torch.cumsum(counts, 0) - counts
    position = torch.arange(len(order), device=logits.device) - starts[seg_sorted]

    # Integer cumulative sums are exact for any size; subtract each segment's
    # running total at its start to make them segment-local.
    cum_pos = torch.cumsum(gt_sorted, 0)
    cum_neg = torch.cumsum(1 - gt_sorted, 0)
    base_pos = (cum_pos - gt_sorted)[starts.clamp(max=len(order) - 1)]
    base_neg = (cum_neg - (1 - gt_sorted))[starts.clamp(max=len(order) - 1)]
    cum_pos = (cum_pos - base_pos[seg_sorted]).double()
    cum_neg = (cum_neg - base_neg[seg_sorted]).double()
    gts = torch.zeros(num_segments, dtype=torch.float64, device=logits.device)
    gts.index_add_(0, seg_sorted, gt_sorted.double())
    gts = gts[seg_sorted]

    jaccard = 1.0 - (gts - cum_pos) / (gts + cum_neg)
    previous = torch.cat([jaccard.new_zeros(1), jaccard[:-1]])
    grad = torch.where(position == 0, jaccard, jaccard - previous).to(logits.dtype)
    return out.index_add(0, seg_sorted, torch.relu(err_sorted) * grad)
