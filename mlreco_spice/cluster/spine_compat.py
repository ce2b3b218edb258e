"""Compatibility with SPINE's SPICE clusterer (``spine.model.spice.cluster``, spine 1.4.3).

Two things live here:

* :func:`spine_segment`, our re-implementation of SPINE's per-shape loop,
  used by ``SPICEClusterer(mode="spine")``. It differs from the paper's
  procedure (our ``mode="fast"``) in three ways, all reproduced exactly:
  a candidate takes only still-available voxels with ``p >= p0`` and keeps
  them (first come, not best ``p``); a candidate with fewer than ``min_size``
  members is rejected and only its seed retired; leftovers go to the most
  probable accepted candidate. Widths are clamped at ``eps = 1e-6`` and the
  arithmetic is SPINE's own torch expressions in the input dtype.
* :func:`run_spine_clusterer`, which calls the real SPINE package on our
  tensors (for the equivalence test and the benchmark).

Class mapping: SPINE's shape codes are 0 shower, 1 track, 2 Michel, 3 delta,
4 low-energy. SPINE has a single track shape for HIP and MIP, but our network
separates instances only within a class, so HIP and MIP must stay two groups
when SPINE clusters our outputs. SPINE's clusterer treats codes as opaque
group keys, so HIP borrows code 4 (low-energy deposits are never clustered by
SPICE). The mapping is :data:`SPINE_SHAPE_OF_CLASS`, defined only here.
"""
from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np
import torch

from ..columns import DELTA, HIP, MICHEL, MIP, NUM_CLASSES, SHOWER

__all__ = ["SPINE_SHAPE_OF_CLASS", "SPINE_EPS", "spine_segment", "make_spine_clusterer",
           "spine_inputs", "spine_labels", "run_spine_clusterer"]

#: SPINE shape code used for each of our classes (index = our class).
SPINE_SHAPE_OF_CLASS = tuple({
    SHOWER: 0,   # SPINE SHOWER
    MIP: 1,      # SPINE TRACK
    MICHEL: 2,   # SPINE MICHEL
    DELTA: 3,    # SPINE DELTA
    HIP: 4,      # SPINE has no HIP shape: the free code 4 keeps HIPs apart from MIPs
}[c] for c in range(NUM_CLASSES))

#: SPINE's default minimum Gaussian width.
SPINE_EPS = 1e-6


def spine_segment(emb: torch.Tensor, margins: torch.Tensor, seediness: torch.Tensor,
                  s0: float, p0: float, min_size: int, assign_all: bool,
                  eps: float = SPINE_EPS) -> torch.Tensor:
    """SPINE's clustering of one (event, class) segment.

    Parameters
    ----------
    emb : torch.Tensor (n, d)
        Embeddings sorted by decreasing seediness (stable). SPINE picks the
        seed with ``argmax`` (first maximum, i.e. lowest voxel index on ties);
        walking the stable order visits seeds in exactly that sequence.
    margins, seediness : torch.Tensor (n,)
    s0, p0 : float
        Seed and probability thresholds.
    min_size : int
        Minimum accepted candidate size (SPINE ``min_size``).
    assign_all : bool
        SPINE ``assign_all``: leftovers to the most probable accepted candidate.
    eps : float
        Minimum width.

    Returns
    -------
    torch.Tensor (n,) int64
        Candidate index in acceptance order, -1 if unclustered.
    """
    n = emb.shape[0]
    label = torch.full((n,), -1, dtype=torch.long, device=emb.device)
    if n < min_size:
        return label
    available = torch.ones(n, dtype=torch.bool, device=emb.device)
    best = torch.full((n,), -1.0, dtype=emb.dtype, device=emb.device)
    best_label = label.clone()
    ptr, k = 0, 0
    while True:
        free = torch.nonzero(available[ptr:])
        if free.numel() == 0:
            break
        ptr += int(free[0, 0])
        if float(seediness[ptr]) < s0:
            break
        # SPINE's expressions verbatim in spirit, so float rounding matches.
        width = torch.clamp(margins[ptr], min=eps)
        squared_distance = torch.sum((emb - emb[ptr]) ** 2, dim=1)
        probability = torch.exp(-squared_distance / (2.0 * width**2))
        members = available & (probability >= p0)
        if int(torch.count_nonzero(members)) < min_size:
            available[ptr] = False
            continue
        label[members] = k
        if assign_all:
            better = probability > best  # strict: ties stay with the earlier candidate (argmax)
            best = torch.where(better, probability, best)
            best_label[better] = k
        available &= ~members
        k += 1
    if assign_all and k > 0:
        label = torch.where(available, best_label, label)
    return label


def make_spine_clusterer(s0: Sequence[float], p0: Sequence[float], min_size: int = 1,
                         assign_all: bool = True):
    """SPINE's own ``SPICEClusterer`` configured with our per-class thresholds.

    Requires the ``spine`` package (test extra).

    Parameters
    ----------
    s0, p0 : sequence of float
        One value per class, in our class order.
    min_size : int
    assign_all : bool

    Returns
    -------
    spine.model.spice.cluster.SPICEClusterer
    """
    from ..backend import import_minkowski

    import_minkowski()  # spine.model imports MinkowskiEngine; this applies our py3.10 fix first
    from spine.model.spice.cluster import SPICEClusterer as SpineClusterer

    shapes = list(SPINE_SHAPE_OF_CLASS)
    return SpineClusterer(
        shapes, seed_threshold={shapes[c]: float(s0[c]) for c in range(NUM_CLASSES)},
        probability_threshold={shapes[c]: float(p0[c]) for c in range(NUM_CLASSES)},
        min_size=min_size, assign_all=assign_all)


def spine_inputs(embeddings: torch.Tensor, margins: torch.Tensor, seediness: torch.Tensor,
                 semantics: torch.Tensor, batch_ids: torch.Tensor) -> Tuple[tuple, np.ndarray]:
    """Our tensors as SPINE ``TensorBatch`` arguments, events made contiguous.

    Returns
    -------
    (tuple of TensorBatch, numpy.ndarray)
        The four clusterer arguments and the row order used (``order[i]`` is
        the original row of SPINE row ``i``).
    """
    from spine.data import TensorBatch

    batch = batch_ids.detach().reshape(-1).cpu().long().numpy()
    order = np.argsort(batch, kind="stable")
    _, counts = np.unique(batch, return_counts=True)
    index = torch.as_tensor(order, device=embeddings.device)
    lookup = torch.as_tensor(SPINE_SHAPE_OF_CLASS + (-1,), device=embeddings.device)
    sem = semantics.reshape(-1).long()[index]
    shape_codes = lookup[torch.where((sem >= 0) & (sem < NUM_CLASSES), sem, -1)]
    counts_t = torch.as_tensor(counts)
    args = (TensorBatch(embeddings[index], counts_t),
            TensorBatch(margins.reshape(-1, 1)[index], counts_t),
            TensorBatch(seediness.reshape(-1, 1)[index], counts_t),
            TensorBatch(shape_codes.reshape(-1, 1), counts_t))
    return args, order


def spine_labels(clusts, order: np.ndarray, device=None) -> torch.Tensor:
    """SPINE's cluster ``IndexBatch`` as our per-voxel labels (ids restart per event)."""
    labels_sorted = np.full(len(order), -1, dtype=np.int64)
    first = 0
    for n_clusters in clusts.counts.tolist():
        for local_id, rows in enumerate(clusts.index_list[first:first + n_clusters]):
            labels_sorted[np.asarray(rows.cpu())] = local_id
        first += n_clusters
    labels = np.empty_like(labels_sorted)
    labels[order] = labels_sorted
    return torch.as_tensor(labels, device=device)


def run_spine_clusterer(embeddings: torch.Tensor, margins: torch.Tensor,
                        seediness: torch.Tensor, semantics: torch.Tensor,
                        batch_ids: torch.Tensor, s0: Sequence[float], p0: Sequence[float],
                        min_size: int = 1, assign_all: bool = True) -> torch.Tensor:
    """Run SPINE's own ``SPICEClusterer`` and return our per-voxel labels.

    Labels follow our convention (ids restart per event, classes in our class
    order, -1 unclustered), so the result compares voxel for voxel with
    ``SPICEClusterer(mode="spine")``.

    Parameters
    ----------
    embeddings, margins, seediness, semantics, batch_ids : torch.Tensor
        As for :func:`mlreco_spice.cluster.cluster_events`.
    s0, p0 : sequence of float
        One value per class, in our class order.
    min_size : int
    assign_all : bool

    Returns
    -------
    torch.Tensor (N,) int64
    """
    clusterer = make_spine_clusterer(s0, p0, min_size, assign_all)
    args, order = spine_inputs(embeddings, margins, seediness, semantics, batch_ids)
    clusts, _ = clusterer(*args)
    return spine_labels(clusts, order, embeddings.device)
