"""SPINE 1.4.3's SPICE in the race of ``train_vs_spine.py``: build, train, run, cluster, tune.

Everything the SPINE side does is SPINE's own code: its ``SPICEEmbedder``
network (``spine.model.spice.SPICE`` without clusterer), its ``SPICELoss``
with SPINE's default terms (BCE on the mask logits, L1 seediness, margin
smoothing, centroid separation) and its ``SPICEClusterer``. Only the plumbing
is ours: events come from our parsers (``SpiceDataset``, ``collate_events``,
the same deterministic batches as our trainer through
:class:`~mlreco_spice.sampling.IterationBatchSampler`), the optimiser and
schedule are built by the functions our trainer uses, and checkpoints are
written with :func:`mlreco_spice.checkpoint.save_checkpoint` (SPINE's
parameter names kept under ``model``).

Our semantic classes 0..4 (HIP, MIP, Shower, Delta, Michel) are given to SPINE
as its shape codes ``shapes = [0, 1, 2, 3, 4]``: SPINE treats shapes as opaque
group keys (embedder filter, per-shape loss, per-shape clustering), so all
five classes are embedded, trained and clustered, each apart.
"""
from __future__ import annotations

import logging
import signal
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np
import torch

from mlreco_spice.columns import (COORD_COLS, INSTANCE_COL, NUM_CLASSES,
                                  SEMANTIC_COL, VALUE_COL)

__all__ = ["spine_spice_block", "build_spine", "set_spine_seed_frozen", "spine_batch",
           "train_spine", "load_spine", "spine_event_outputs", "spine_clusterer", "spine_labels"]

log = logging.getLogger(__name__)

#: Our classes are SPINE's shapes, code for code (see the module docstring).
SHAPES = list(range(NUM_CLASSES))


def spine_spice_block(cfg: Mapping[str, Any]) -> Dict[str, Any]:
    """SPINE's ``spice`` model block with our SPICE stage's architecture.

    Same filters, repetitions, input kernel, LeakyReLU slope and batch norm;
    SPINE counts resolution levels (ours + 1) and the coordinate channels in
    ``num_input``; ``spatial_size`` is our ``network.image_size`` (else
    ``norm_length``), which SPINE uses to normalise coordinates to [-1, 1].
    """
    net = cfg["model"]["modules"]["spice"]["network"]
    unet = net["uresnet"]
    size = int(net.get("image_size") or net["norm_length"])
    return {"uresnet": {"filters": int(unet["filters"]), "depth": int(unet["depth"]) + 1,
                        "reps": int(unet["reps"]), "input_kernel": int(unet["input_kernel"]),
                        "num_input": 4, "spatial_size": size,
                        "activation": {"provider": "lrelu",
                                       "negative_slope": float(unet["leaky_slope"])},
                        "norm_layer": {"provider": "batch_norm", "eps": float(unet["norm_eps"]),
                                       "momentum": float(unet["norm_momentum"])}},
            "shapes": SHAPES, "coord_conv": True}


def build_spine(cfg: Mapping[str, Any]) -> Tuple[torch.nn.Module, torch.nn.Module]:
    """SPINE's SPICE network and SPICE loss (SPINE's default loss terms) for ``cfg``."""
    from mlreco_spice.backend import import_minkowski

    import_minkowski()  # SPINE imports MinkowskiEngine; apply our Python >= 3.10 fix first
    from spine.model.spice.model import SPICE, SPICELoss

    block = spine_spice_block(cfg)
    return SPICE(block), SPICELoss(block)


def set_spine_seed_frozen(model: torch.nn.Module, frozen: bool) -> None:
    """What SPINE's ``seed_freeze`` does at construction, switchable mid-run.

    SPINE freezes by ``requires_grad = False`` on the seediness decoder and
    its output head (for a whole run); the branch still runs in train mode
    and its loss term still reaches the shared encoder through it.
    """
    for module in (model.seediness_decoder, model.seediness_output):
        for parameter in module.parameters():
            parameter.requires_grad_(not frozen)


def _counts(batch_col: torch.Tensor, batch_size: int) -> torch.Tensor:
    ids = batch_col.long()
    if ids.numel() and bool((ids[1:] < ids[:-1]).any()):
        raise ValueError("collated events are not contiguous: SPINE batches need sorted rows")
    return torch.bincount(ids, minlength=batch_size)


def spine_batch(batch: Mapping[str, Any]):
    """A collated batch of ours -> SPINE's ``(data, seg_label, clust_label)``.

    ``data`` is ``[batch, x, y, z, energy]``; ``seg_label`` our class per
    voxel (SPINE's shape); ``clust_label`` a ``ClusterLabelBatch`` whose
    cluster id is our instance and whose particles are the (instance, class)
    pairs of each event, so ``clust_label.shapes`` is our class voxel for
    voxel, exactly what our loss sees.
    """
    from spine.data import ClusterLabelBatch, TensorBatch

    data, label = batch["data"], batch["clust_label"]
    counts = _counts(data[:, 0], int(batch["batch_size"]))
    coords = [0, *COORD_COLS]
    semantic = label[:, SEMANTIC_COL].long()
    instance = label[:, INSTANCE_COL].long()
    particle = torch.full_like(instance, -1)
    shapes, particle_counts, first = [], [], 0
    for n in counts.tolist():
        sem, inst = semantic[first:first + n], instance[first:first + n]
        valid = (sem >= 0) & (inst >= 0)
        pairs, inverse = torch.unique(torch.stack([inst[valid], sem[valid]], 1), dim=0,
                                      return_inverse=True)
        local = torch.full_like(inst, -1)
        local[valid] = inverse
        particle[first:first + n] = local
        shapes.append(pairs[:, 1])
        particle_counts.append(len(pairs))
        first += n
    spine_data = TensorBatch(data[:, coords + [VALUE_COL]], counts, has_batch_col=True,
                             coord_cols=[1, 2, 3])
    seg = TensorBatch(semantic[:, None].to(data.dtype), counts)
    table = torch.cat([label[:, coords], data[:, VALUE_COL:VALUE_COL + 1],
                       instance[:, None].to(data.dtype), particle[:, None].to(data.dtype)], 1)
    clust = ClusterLabelBatch(
        TensorBatch(table, counts, has_batch_col=True, coord_cols=[1, 2, 3]),
        particles={"shape": TensorBatch(torch.cat(shapes).to(data.dtype), particle_counts)})
    return spine_data, seg, clust


def load_spine(cfg: Mapping[str, Any], checkpoint: Path) -> torch.nn.Module:
    """SPINE's network with the weights of a checkpoint of :func:`train_spine`, in eval mode."""
    from mlreco_spice.checkpoint import load_checkpoint

    model, _ = build_spine(cfg)
    model.load_state_dict(load_checkpoint(checkpoint)["model"])
    return model.eval()


def train_spine(cfg: Mapping[str, Any], run_dir: Path, checkpoint_every: int) -> Dict[str, Any]:
    """Train SPINE's SPICE as our trainer trains ours; resumes from ``run_dir``'s newest checkpoint.

    Shared with :func:`mlreco_spice.train.train`: events and batch of every
    iteration (``train.seed``, ``io.loader``), the optimiser
    (:func:`~mlreco_spice.train.build_optimizer` over all parameters), the
    schedule (:func:`~mlreco_spice.train.build_scheduler`, stepped every
    iteration), the seed of the initial weights and the first
    ``train.freeze_seediness_iterations`` iterations with the seediness branch
    frozen (SPINE's way: :func:`set_spine_seed_frozen`).

    Returns
    -------
    dict
        ``start`` and ``last`` iteration, ``checkpoint`` (path).
    """
    from mlreco_spice.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
    from mlreco_spice.sampling import IterationBatchSampler
    from mlreco_spice.train import build_optimizer, build_scheduler, seed_everything
    from parsers.collate import collate_events
    from parsers.dataset import SpiceDataset

    tcfg, loader_cfg = cfg["train"], cfg["io"]["loader"]
    total, freeze_until = int(tcfg["iterations"]), int(tcfg["freeze_seediness_iterations"])
    run_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(int(tcfg["seed"]))
    dataset = SpiceDataset(cfg["io"])
    model, loss_fn = build_spine(cfg)
    optimizer = build_optimizer(list(model.parameters()), tcfg["optimizer"])
    scheduler = build_scheduler(optimizer, tcfg.get("lr_schedule"), total)
    start, path = 0, latest_checkpoint(run_dir)
    if path is not None:
        state = load_checkpoint(path)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"]["torch"])
        start = int(state["iteration"])
        log.info("SPINE: resuming from %s (iteration %d)", path, start)

    def save(iteration: int) -> Path:
        return save_checkpoint(run_dir, iteration, {
            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "rng": {"torch": torch.get_rng_state()}, "total_iterations": total,
            "spine_block": spine_spice_block(cfg)}, keep=int(tcfg["keep_checkpoints"]))

    set_spine_seed_frozen(model, start < freeze_until)
    sampler = IterationBatchSampler(len(dataset), int(loader_cfg["batch_size"]), int(tcfg["seed"]),
                                    start, total, shuffle=bool(loader_cfg["shuffle"]))
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler, collate_fn=collate_events,
                                         num_workers=int(loader_cfg["num_workers"]))
    interrupted = []
    # As our trainer: Ctrl-C (SIGINT) finishes the iteration, saves a checkpoint and stops.
    previous = signal.signal(signal.SIGINT, lambda *_: interrupted.append(True))
    model.train()
    iteration, loss = start, float("nan")
    try:
        for batch in loader:
            if iteration == freeze_until and freeze_until > 0:
                set_spine_seed_frozen(model, False)
                log.info("SPINE: iteration %d: seediness branch unfrozen", iteration)
            if batch["batch_size"]:
                data, seg, clust = spine_batch(batch)
                optimizer.zero_grad(set_to_none=True)
                terms = loss_fn(clust_label=clust, **model(data, seg))
                terms["loss"].backward()
                optimizer.step()
                loss = float(terms["loss"].detach())
                # As our trainer: a batch whose events were all skipped steps nothing.
                if scheduler is not None:
                    scheduler.step()
            iteration += 1
            if iteration % checkpoint_every == 0 or iteration == total or interrupted:
                path = save(iteration)
                log.info("SPINE: iteration %d, loss %.4f", iteration, loss)
            if interrupted:
                log.warning("SPINE: stopped by SIGINT at iteration %d", iteration)
                break
    finally:
        signal.signal(signal.SIGINT, previous)
    return {"start": start, "last": iteration, "checkpoint": path}


def spine_event_outputs(model: torch.nn.Module, item: Mapping[str, Any]) -> Dict[str, Any]:
    """SPINE's network on one parsed event (``no_grad``, as SPINE's inference loop runs it).

    Returns the SPINE batch pieces the clusterer needs (``outputs``,
    ``shapes``: the filtered rows' shapes), ``rows`` (data row of each
    filtered voxel), ``forward_s``, and the truth aligned with the data rows.
    """
    from parsers.collate import collate_events
    from spine.data import TensorBatch

    batch = collate_events([item])
    data, seg, _ = spine_batch(batch)
    tick = time.perf_counter()
    with torch.no_grad():
        out = model(data, seg)
    forward = time.perf_counter() - tick
    rows = out["filter_index"].index
    label = batch["clust_label"]
    return {"outputs": out, "rows": rows.cpu().numpy(), "forward_s": forward,
            "shapes": TensorBatch(seg.torch_tensor()[rows], out["embeddings"].counts),
            "n": len(label), "truth_instance": label[:, INSTANCE_COL].long().numpy(),
            "truth_semantic": label[:, SEMANTIC_COL].long().numpy()}


def spine_clusterer(seed: Mapping[int, float], probability: Mapping[int, float],
                    shapes: Optional[List[int]] = None, assign_all: bool = True):
    """SPINE's ``SPICEClusterer`` for ``shapes`` (default all five), thresholds per shape."""
    from spine.model.spice.cluster import SPICEClusterer

    shapes = SHAPES if shapes is None else shapes
    return SPICEClusterer(shapes, seed_threshold={s: float(seed[s]) for s in shapes},
                          probability_threshold={s: float(probability[s]) for s in shapes},
                          assign_all=assign_all)


def spine_labels(event: Mapping[str, Any], seed: Mapping[int, float],
                 probability: Mapping[int, float]) -> np.ndarray:
    """SPINE's ``SPICEClusterer`` (its defaults ``min_size`` 2, ``assign_all``) on one event.

    ``seed``, ``probability``: threshold per shape (= our class index).
    Returns one cluster id per data row (-1 unclustered).
    """
    out = event["outputs"]
    clusts, _ = spine_clusterer(seed, probability)(out["embeddings"], out["margins"],
                                              out["seediness"], event["shapes"])
    labels = np.full(event["n"], -1, dtype=np.int64)
    for k, members in enumerate(clusts.index_list):
        labels[event["rows"][np.asarray(members.cpu())]] = k
    return labels
