"""SPICE losses (paper section II.B-C): mask, smoothing, inter-cluster, seediness.

:func:`spice_loss_terms` is the functional core: plain tensors in, a dict of
scalar tensors out. :class:`SPICELoss` is the thin ``nn.Module`` shell the
chain calls with the network outputs and the cluster label tensor.

Definitions (``k`` an instance, ``C_k`` its voxels, ``e_i`` the embedding and
``σ_i`` the margin of voxel ``i``, ``s_i`` its seediness):

* centroid ``μ_k = mean_{i∈C_k} e_i`` (II.2) and margin ``σ_k = mean_{i∈C_k} σ_i``;
* kernel ``p_ik = exp(-|e_i - μ_k|² / (2σ_k²))`` (II.3); μ_k and σ_k are *not*
  detached here, so the mask loss trains them;
* **mask**: for each instance, a binary loss of ``p_ik`` against ``[i ∈ C_k]``
  over every voxel of the same class in the same event (II.4-5). Names: see
  :mod:`.masks`. BCE and focal take the *logit* of ``p``,
  ``log p - log(1 - p) = -q - log(-expm1(-q))`` with
  ``q = |e_i - μ_k|²/(2σ_k²)`` clamped at 1e-6 (so ``|logit| <= 13.8`` near
  the centre); working in ``q`` keeps it exact for far voxels. The Lovász
  hinge takes ``2p - 1`` by default (``mask_loss: lovasz``, SPINE's
  choice) or the logit (``mask_loss: lovasz_logit``, or ``lovasz`` with
  ``lovasz_score: logit``). Why linear: with the logit
  the hinge is satisfied, and stops pulling, once ``p > 0.73`` inside and
  ``p < 0.27`` outside; ``2p - 1`` never reaches the margin, so embeddings
  keep collapsing onto their centroid. The greedy clustering seeds a kernel at
  one voxel's embedding, not at the true centroid, and needs that collapse:
  on the overfitting test event the logit variant reaches mask IoU 0.999 yet
  clusters showers with ARI 0.13-0.35 at any threshold, the linear one gives
  ARI 1.0 (``tests/test_overfit.py``);
* **smoothing**: ``mean_{i∈C_k} |σ_i - sg(σ_k)|`` (II.6, ``sg`` = detached);
* **inter**: for the instances of one class in one event,
  ``mean_{pairs} max(0, 2δ_d - |μ_a - μ_b|)²`` (II.7). The paper writes
  ``1/(K(K-1)) Σ_{a<b}``; following its source (De Brabandere et al.,
  ``Σ_{a≠b}``) and mlreco3d we use the mean over unordered pairs, which equals
  ``1/(K(K-1)) Σ_{a≠b}``. Zero when the class has a single instance;
* **seed**: ``mean_{i∈C_k} (s_i - sg(p_ik))²`` (II.9), or ``|·|`` with
  ``seed_loss: l1``;
* **total**: ``γ1·seed + γ2·(w_mask·mask + w_smooth·smoothing + w_inter·inter)``
  (II.8, II.11).

Averaging (paper II.C): per-instance values are averaged over the instances of
a class in an event, then over the classes of an event, then over the events
of the minibatch. Voxels labelled -1 (instance or class) and instances with
fewer than ``min_voxels`` voxels are removed before anything else: they are
neither masks nor background. ``accuracy`` is the mean IoU of the masks
``p_ik > 0.5`` with the true instances, averaged the same way.
"""
from __future__ import annotations

import math
from typing import Any, Dict, Iterable, Mapping, Optional

import torch
from torch import nn

from ..columns import (BATCH_COL, CLASS_NAMES, INSTANCE_COL, NUM_CLASSES, SEMANTIC_COL,
                       class_indices)
from .masks import get_mask_loss, mask_loss_score, segment_mean
from .stage_config import stage_block

__all__ = ["spice_loss_terms", "kernel_logit", "SPICELoss", "TERMS"]

#: Loss terms in the order they are reported.
TERMS = ("mask", "smoothing", "inter", "seed")
_PER_CLASS = TERMS + ("accuracy",)
_Q_MIN = 1e-6


def kernel_logit(q: torch.Tensor) -> torch.Tensor:
    """Logit of ``p = exp(-q)``: ``-q - log(1 - exp(-q))``, stable for all ``q >= 0``."""
    q = q.clamp(min=_Q_MIN)
    return -q - torch.log(-torch.expm1(-q))


def _settings(config: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    return stage_block("spice", {"loss": dict(config or {})})["loss"]


def _check_inputs(embeddings: torch.Tensor, tensors: Dict[str, torch.Tensor]) -> None:
    if embeddings.dim() != 2:
        raise ValueError(f"embeddings must be (N, D), got shape {tuple(embeddings.shape)}")
    n = embeddings.shape[0]
    for name, tensor in tensors.items():
        if tensor.numel() != n:
            raise ValueError(f"{name} has {tensor.numel()} values for {n} embeddings")


def _zero_terms(*outputs: torch.Tensor) -> Dict[str, torch.Tensor]:
    # Nothing to score: a zero still attached to the outputs that carry a graph,
    # so backward() works and, under DDP, every trained parameter gets its
    # (zero) gradient. A frozen branch's output has no graph and is left out.
    live = [t.sum() for t in outputs if t.requires_grad]
    zero = sum(live) * 0.0 if live else outputs[0].new_zeros(())
    out = {name: zero for name in TERMS}
    out["total"] = zero
    out["accuracy"] = torch.full_like(zero, float("nan")).detach()
    out["num_instances"] = torch.zeros((), device=zero.device)
    return out


def spice_loss_terms(embeddings: torch.Tensor, margins: torch.Tensor, seediness: torch.Tensor,
                     instance_ids: torch.Tensor, semantics: torch.Tensor, batch_ids: torch.Tensor,
                     config: Optional[Mapping[str, Any]] = None, *,
                     classes: Optional[Iterable[Any]] = None,
                     include_seed: bool = True) -> Dict[str, torch.Tensor]:
    """Compute every SPICE loss term for a minibatch.

    Parameters
    ----------
    embeddings : torch.Tensor
        (N, D) embeddings ``f_emb(x_i)``.
    margins, seediness : torch.Tensor
        (N,) or (N, 1) margins σ_i and seediness s_i.
    instance_ids, semantics, batch_ids : torch.Tensor
        (N,) true instance label, true class and event index per voxel
        (-1 marks an unlabelled voxel).
    config : mapping, optional
        The stage's ``loss`` block; missing keys take their defaults.
    classes : iterable of str or int, optional
        Classes to score (default: all); voxels of other classes are ignored.
    include_seed : bool
        False leaves the seediness term out of ``total`` (it is still
        reported); used while the seediness branch is frozen.

    Returns
    -------
    dict of str to torch.Tensor
        Scalars ``mask``, ``smoothing``, ``inter``, ``seed``, ``total``,
        ``accuracy`` (NaN when there is no instance), ``num_instances``, and
        ``<term>_<Class>`` for each term and accuracy, for the classes present.
    """
    cfg = _settings(config)
    _check_inputs(embeddings, {"margins": margins, "seediness": seediness,
                               "instance_ids": instance_ids, "semantics": semantics,
                               "batch_ids": batch_ids})
    device, dtype = embeddings.device, embeddings.dtype
    margins, seediness = margins.reshape(-1), seediness.reshape(-1)
    inst, sem, bat = (t.reshape(-1).long() for t in (instance_ids, semantics, batch_ids))
    if (sem >= NUM_CLASSES).any():
        raise ValueError(f"semantic labels must be in -1..{NUM_CLASSES - 1}, "
                         f"got {int(sem.max())}")

    valid = (inst >= 0) & (sem >= 0) & (bat >= 0)
    if classes is not None:
        owned = torch.tensor(class_indices(classes), device=device)
        valid &= torch.isin(sem, owned)
    rows = torch.nonzero(valid).flatten()
    if len(rows) == 0:
        return _zero_terms(embeddings, margins, seediness)

    # Instance = (event, class, label). Sorted unique keys put the instances
    # of one (event, class) next to each other, which the pair code uses.
    span = int(inst[rows].max()) + 1
    key = (bat[rows] * NUM_CLASSES + sem[rows]) * span + inst[rows]
    group_keys, group, counts = torch.unique(key, return_inverse=True, return_counts=True)
    large = counts >= int(cfg["min_voxels"])
    if not bool(large.all()):
        keep = large[group]
        remap = torch.cumsum(large.long(), 0) - 1
        rows, group = rows[keep], remap[group[keep]]
        group_keys, counts = group_keys[large], counts[large]
    num_groups = len(group_keys)
    if num_groups == 0:
        return _zero_terms(embeddings, margins, seediness)

    emb, mar, see = embeddings[rows], margins[rows], seediness[rows]
    ce_keys, ce_of_group = torch.unique(group_keys // span, return_inverse=True)
    num_ce = len(ce_keys)
    ce_of_voxel = ce_of_group[group]
    event_of_ce = torch.unique(ce_keys // NUM_CLASSES, return_inverse=True)[1]
    class_of_ce = ce_keys % NUM_CLASSES

    size = counts.to(dtype)
    centroid = emb.new_zeros(num_groups, emb.shape[1]).index_add(0, group, emb) / size[:, None]
    sigma = mar.new_zeros(num_groups).index_add(0, group, mar) / size

    # --- mask loss: every instance against all voxels of its (event, class)
    ce_size = torch.bincount(ce_of_voxel, minlength=num_ce)
    ce_start = torch.cumsum(ce_size, 0) - ce_size
    voxels_by_ce = torch.sort(ce_of_voxel, stable=True).indices
    pairs_per_group = ce_size[ce_of_group]
    pair_group = torch.repeat_interleave(torch.arange(num_groups, device=device), pairs_per_group)
    pair_offset = torch.cumsum(pairs_per_group, 0) - pairs_per_group
    local = torch.arange(len(pair_group), device=device) - pair_offset[pair_group]
    pair_voxel = voxels_by_ce[ce_start[ce_of_group[pair_group]] + local]
    pair_label = group[pair_voxel] == pair_group
    dist2 = (emb[pair_voxel] - centroid[pair_group]).pow(2).sum(1)
    q = dist2 / (2.0 * sigma[pair_group].pow(2))
    mask_fn = get_mask_loss(cfg["mask_loss"])
    linear = mask_loss_score(cfg["mask_loss"], cfg["lovasz_score"]) == "linear"
    scores = 2.0 * torch.exp(-q) - 1.0 if linear else kernel_logit(q)
    per_group = {"mask": mask_fn(scores, pair_label, pair_group, num_groups,
                                 focal_gamma=float(cfg["focal_gamma"]))}

    with torch.no_grad():
        predicted = q < math.log(2.0)  # p > 0.5
        overlap = torch.zeros(num_groups, device=device, dtype=dtype).index_add(
            0, pair_group, (predicted & pair_label).to(dtype))
        union = torch.zeros_like(overlap).index_add(0, pair_group, (predicted | pair_label).to(dtype))
        per_group["accuracy"] = overlap / union.clamp(min=1.0)
        own_p = torch.exp(-(emb - centroid[group]).pow(2).sum(1) / (2.0 * sigma[group].pow(2)))

    per_group["smoothing"] = segment_mean((mar - sigma.detach()[group]).abs(), group, num_groups)
    seed_error = see - own_p
    seed_error = seed_error.abs() if cfg["seed_loss"] == "l1" else seed_error.pow(2)
    per_group["seed"] = segment_mean(seed_error, group, num_groups)

    groups_per_ce = torch.bincount(ce_of_group, minlength=num_ce).to(dtype)
    per_ce = {name: emb.new_zeros(num_ce).index_add(0, ce_of_group, value) / groups_per_ce
              for name, value in per_group.items()}
    per_ce["inter"] = _inter_per_ce(centroid, ce_of_group, num_ce, float(cfg["delta_d"]))

    # --- class -> event -> minibatch averaging
    num_events = int(event_of_ce.max()) + 1
    ce_per_event = torch.bincount(event_of_ce, minlength=num_events).to(dtype)
    out: Dict[str, torch.Tensor] = {}
    for name, value in per_ce.items():
        per_event = value.new_zeros(num_events).index_add(0, event_of_ce, value) / ce_per_event
        out[name] = per_event.mean()
    for cls in torch.unique(class_of_ce).tolist():
        chosen = class_of_ce == cls
        for name in _PER_CLASS:
            out[f"{name}_{CLASS_NAMES[cls]}"] = per_ce[name][chosen].mean().detach()

    embedding_loss = (float(cfg["mask_weight"]) * out["mask"]
                      + float(cfg["smoothing_weight"]) * out["smoothing"]
                      + float(cfg["inter_weight"]) * out["inter"])
    total = float(cfg["gamma2"]) * embedding_loss
    if include_seed:
        total = total + float(cfg["gamma1"]) * out["seed"]
    out["total"] = total
    out["accuracy"] = out["accuracy"].detach()
    out["num_instances"] = torch.tensor(float(num_groups), device=device)
    return out


def _inter_per_ce(centroid: torch.Tensor, ce_of_group: torch.Tensor, num_ce: int,
                  delta_d: float) -> torch.Tensor:
    """Mean hinge ``max(0, 2δ_d - |μ_a - μ_b|)²`` over instance pairs of each (event, class).

    Relies on the instances of one (event, class) being contiguous.
    """
    num_groups = len(ce_of_group)
    device = centroid.device
    ce_count = torch.bincount(ce_of_group, minlength=num_ce)
    ce_end = torch.cumsum(ce_count, 0)
    first = torch.arange(num_groups, device=device)
    partners = ce_end[ce_of_group] - first - 1  # later instances in the same (event, class)
    a = torch.repeat_interleave(first, partners)
    offset = torch.cumsum(partners, 0) - partners
    b = a + 1 + torch.arange(len(a), device=device) - offset[a]
    dist = (centroid[a] - centroid[b]).pow(2).sum(1).clamp(min=1e-12).sqrt()
    hinge = torch.clamp(2.0 * delta_d - dist, min=0.0).pow(2)
    pair_count = (ce_count * (ce_count - 1) // 2).clamp(min=1).to(centroid.dtype)
    return centroid.new_zeros(num_ce).index_add(0, ce_of_group[a], hinge) / pair_count


class SPICELoss(nn.Module):
    """SPICE loss for the chain: network outputs + cluster labels -> loss dict.

    Parameters
    ----------
    stage_cfg : dict, optional
        The ``model.modules.spice`` block (defaults filled in for missing
        keys). Reads ``loss`` and the owned classes ``network.classes``.
    """

    def __init__(self, stage_cfg: Optional[Dict[str, Any]] = None):
        super().__init__()
        block = stage_block("spice", stage_cfg)
        self.config = dict(block["loss"])
        # Fail at construction on a bad name.
        mask_loss_score(self.config["mask_loss"], self.config["lovasz_score"])
        self.classes = class_indices(block["network"]["classes"])
        self.seed_frozen = False

    def set_seediness_frozen(self, frozen: bool) -> None:
        """Leave the seediness term out of ``loss`` while the branch is frozen."""
        self.seed_frozen = bool(frozen)

    def forward(self, outputs: Dict[str, torch.Tensor],
                clust_label: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Compute the loss.

        Parameters
        ----------
        outputs : dict
            :class:`~mlreco_spice.models.spice.SPICE` outputs: ``embeddings``,
            ``margins``, ``seediness`` and ``index`` (rows of the input kept).
        clust_label : torch.Tensor
            (N, 6) ``[batch, x, y, z, instance, semantic]``, row-aligned with
            the network input.

        Returns
        -------
        dict
            ``loss`` (total) plus the terms of :func:`spice_loss_terms`.
        """
        missing = [k for k in ("embeddings", "margins", "seediness", "index") if k not in outputs]
        if missing:
            raise KeyError(f"SPICELoss needs network outputs {missing}")
        if clust_label.dim() != 2 or clust_label.shape[1] <= SEMANTIC_COL:
            raise ValueError(f"cluster labels must be (N, >{SEMANTIC_COL}) "
                             f"[batch, x, y, z, instance, semantic], got {tuple(clust_label.shape)}")
        labels = clust_label[outputs["index"].to(clust_label.device)]
        labels = labels.to(outputs["embeddings"].device)
        terms = spice_loss_terms(outputs["embeddings"], outputs["margins"], outputs["seediness"],
                                 labels[:, INSTANCE_COL], labels[:, SEMANTIC_COL],
                                 labels[:, BATCH_COL], self.config, classes=self.classes,
                                 include_seed=not self.seed_frozen)
        terms["loss"] = terms.pop("total")
        return terms
