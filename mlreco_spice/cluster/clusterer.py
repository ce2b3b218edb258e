"""Inference clustering: SPICE outputs -> one instance label per voxel.

:func:`cluster_events` is the plain function; :class:`SPICEClusterer` only
holds its options (the ``clusterer`` config block). The per-segment greedy
loops are in :mod:`.kernels` (``mode="fast"``, the paper's procedure) and
:mod:`.spine_compat` (``mode="spine"``, SPINE's variant voxel for voxel).

Label convention
----------------
* ``-1``: unclustered (class outside 0-4, no seed passed ``s0``, a leftover
  with ``assign_leftovers=False``, or a dissolved small cluster).
* Ids **restart at 0 in every event** and are unique within it: classes in
  class order (HIP, MIP, Shower, Delta, Michel), within a class in seed order
  (after the merge or connectivity steps: in the seediness order of each
  cluster's first voxel; the absorb step keeps the order and closes gaps).
  ``(batch_id, label)`` identifies an instance across a batch.
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from ..columns import CLASS_NAMES, NUM_CLASSES, shown_classes
from ..defaults import BEND_WINDOW_CM
from .absorb import absorb_events, event_pairs
from .kernels import drop_small, greedy_levels, greedy_torch, log_threshold
from .options import (OptionalSpec, ThresholdSpec, host_coords, lengths_in_units,  # noqa: F401
                      pitch_frame, resolve_optional, resolve_thresholds, step_options)
from .postprocess import postprocess_segment
from .spine_compat import spine_segment
from .touching import pairs_within

__all__ = ["SPICEClusterer", "cluster_events", "cluster_event_arrays", "resolve_thresholds",
           "resolve_optional", "MODES"]

MODES = ("fast", "spine")
BACKENDS = ("auto", "numba", "torch")

def _check_inputs(embeddings, margins, seediness, semantics, batch_ids) -> None:
    """Validate types and shapes (finiteness is checked where the data is converted)."""
    if not isinstance(embeddings, torch.Tensor) or embeddings.dim() != 2:
        raise ValueError("embeddings must be a 2-D torch.Tensor (N, D)")
    n = embeddings.shape[0]
    for name, value in (("margins", margins), ("seediness", seediness),
                        ("semantics", semantics), ("batch_ids", batch_ids)):
        if not isinstance(value, torch.Tensor) or value.numel() != n or \
                (value.dim() == 2 and value.shape[1] != 1) or value.dim() > 2:
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise ValueError(f"{name} must be a torch.Tensor of shape ({n},) or ({n}, 1) "
                             f"to match embeddings; got {shape}")


def _check_finite(**arrays) -> None:
    """Raise ValueError naming the first array with NaN or inf (numpy or torch)."""
    for name, value in arrays.items():
        finite = torch.isfinite(value).all() if isinstance(value, torch.Tensor) \
            else np.isfinite(value).all()
        if not bool(finite):
            raise ValueError(f"{name} contains NaN or infinite values")


def _segments(semantics: np.ndarray, batch: np.ndarray, seediness: np.ndarray):
    """Order voxels by (event, class, -seediness, index) and cut into segments.

    Returns ``order`` and a list of ``(start, stop, event, class)`` over it;
    voxels whose class is outside 0-4 are left out.
    """
    valid = np.flatnonzero((semantics >= 0) & (semantics < NUM_CLASSES))
    # Stable sorts, minor key first: ties in seediness keep voxel order.
    order = valid[np.argsort(-seediness[valid], kind="stable")]
    key = batch[order] * NUM_CLASSES + semantics[order]
    # numpy's stable sort is a radix sort for 16-bit integers: 6x faster here.
    small = key.astype(np.int16) if key.size and key.max() < np.iinfo(np.int16).max else key
    by_key = np.argsort(small, kind="stable")
    order, key = order[by_key], key[by_key]
    cuts = np.flatnonzero(np.diff(key)) + 1
    starts = np.concatenate(([0], cuts)) if key.size else np.zeros(0, dtype=np.int64)
    stops = np.concatenate((cuts, [key.size])) if key.size else np.zeros(0, dtype=np.int64)
    segments = [(int(a), int(b), int(key[a] // NUM_CLASSES), int(key[a] % NUM_CLASSES))
                for a, b in zip(starts, stops)]
    return order, segments


def cluster_events(embeddings: torch.Tensor, margins: torch.Tensor, seediness: torch.Tensor,
                   semantics: torch.Tensor, batch_ids: torch.Tensor,
                   s0: ThresholdSpec = None, p0: ThresholdSpec = None,
                   min_cluster_size: int = 1, assign_leftovers: bool = True,
                   mode: str = "fast", backend: str = "auto", *,
                   at_least_one_seed: bool = False,
                   refine_iterations: int = 0, merge_p: OptionalSpec = None,
                   connect_radius_cm: OptionalSpec = None, connect_p: OptionalSpec = None,
                   absorb_radius_cm: Optional[float] = None, absorb_p: Optional[float] = None,
                   connect_max_bend: Optional[float] = None,
                   reconnect_after_absorb: bool = False, bend_window_cm: float = BEND_WINDOW_CM,
                   coords: Optional[torch.Tensor] = None,
                   voxel_cm: Optional[Union[float, Sequence[float]]] = None,
                   **renamed: None) -> torch.Tensor:
    """Cluster every (event, class) of a batch with greedy seeds (paper sec. II.C).

    Parameters
    ----------
    embeddings : torch.Tensor (N, D)
        Embedding per voxel.
    margins, seediness : torch.Tensor (N,) or (N, 1)
        Margin (sigma) and seediness per voxel.
    semantics : torch.Tensor (N,)
        Class per voxel used for clustering (predicted or true); values outside
        0-4 give -1.
    batch_ids : torch.Tensor (N,)
        Event per voxel (any integer-valued dtype; need not be sorted).
    s0, p0 : per-class thresholds
        See :func:`resolve_thresholds` (default: paper Table II).
    min_cluster_size : int
        ``fast``: clusters with fewer voxels after the final assignment are
        dissolved (their voxels become -1). ``spine``: SPINE's ``min_size``
        (candidates smaller than this are rejected while growing).
    assign_leftovers : bool
        Voxels covered by no candidate (loop stopped by ``s0``) go to their
        most probable candidate; if False they stay -1.
    mode : {"fast", "spine"}
        ``fast``: the paper's procedure (each voxel to its highest-p candidate),
        numba on CPU, torch on CUDA. ``spine``: SPINE 1.4.3's clusterer, voxel
        for voxel (first candidate with ``p >= p0`` keeps a voxel).
    backend : {"auto", "numba", "torch"}
        ``fast`` mode kernel: ``auto`` is numba for CPU tensors (measured
        faster, see ``benchmarks/cluster_speed.py``) and torch on the tensors'
        device otherwise. Both give identical labels.
    at_least_one_seed : bool
        ``fast`` only: the most seedy voxel of every (event, class) seeds a
        cluster even below ``s0`` (default False: the paper, where such a class
        stays unclustered).
    refine_iterations : int
        ``fast`` only: re-centre kernels on their members and reassign, at
        most this many times (0: the paper's procedure). See :mod:`.postprocess`.
    merge_p : per-class optional float
        ``fast`` only: merge clusters whose centroid has ``p > merge_p``
        under the other's kernel. ``None`` (or a class left out): off.
    connect_radius_cm, connect_p : per-class optional float
        ``fast`` only, needs ``coords`` and ``voxel_cm``: split clusters into
        fragments connected within ``connect_radius_cm`` (cm), re-join touching
        fragments whose centroids pass ``p > connect_p``. Off where ``connect_p`` is None.
    absorb_radius_cm, absorb_p : float, optional
        ``fast`` only, needs ``coords`` and ``voxel_cm``: per event, a cluster touching
        (within ``absorb_radius_cm``) a larger cluster of another class joins it when its
        centroid has ``p > absorb_p`` under the larger's kernel: undoes
        segmentation errors (:mod:`.absorb`). Off when ``absorb_p`` is None.
    connect_max_bend, bend_window_cm : float, optional
        Degrees: touching fragments that bend by more than this where they
        meet are not joined by the connectivity step (:mod:`.bend`; directions
        fitted within ``bend_window_cm`` of the contact). None: no veto.
    reconnect_after_absorb : bool
        After the absorb step, run the connectivity step again on each
        connected class's clusters (:func:`.absorb.reconnect_tracks`). Does
        nothing while the absorb step is off.
    coords : torch.Tensor (N, 3), optional
        Voxel coordinates (voxel indices), for the connectivity and absorb steps.
    voxel_cm : float or sequence of 3 floats, optional
        The voxel pitch of these events (``ImageMeta.voxel_cm``), which the
        steps' cm distances are converted with; needed with ``coords``. An
        anisotropic pitch scales the coordinates per axis.
    **renamed
        ``connect_radius``, ``absorb_radius``: the old names, in voxels; only
        None is accepted (a number raises, naming the cm option).

    Returns
    -------
    torch.LongTensor (N,)
        Instance label per voxel on ``embeddings.device``; ids restart per event
        (see the module docstring), -1 for unclustered.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got '{mode}'")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got '{backend}'")
    if int(min_cluster_size) < 1:
        raise ValueError(f"min_cluster_size must be >= 1, got {min_cluster_size}")
    s0_values, p0_values = resolve_thresholds(s0, p0)
    _check_inputs(embeddings, margins, seediness, semantics, batch_ids)
    steps = step_options(mode, at_least_one_seed, refine_iterations, merge_p, connect_radius_cm,
                          connect_p, absorb_radius_cm, absorb_p, connect_max_bend,
                          reconnect_after_absorb, bend_window_cm, **renamed)
    coords_np = host_coords(coords, steps, embeddings.shape[0])
    unit_cm = None
    if coords_np is not None:  # distances are compared in the coordinates' units
        coords_np, unit_cm = pitch_frame(coords_np, voxel_cm)
    steps = lengths_in_units(steps, unit_cm)
    device = embeddings.device
    n = embeddings.shape[0]
    embeddings = embeddings.detach()
    margins, seediness = margins.detach().reshape(-1), seediness.detach().reshape(-1)
    # Ordering needs only three vectors on the host; on CUDA the embeddings stay
    # on the device. Host work is numpy: small torch CPU ops cost more than the kernel.
    sem_np = semantics.detach().reshape(-1).cpu().numpy().astype(np.int64)
    batch_np = batch_ids.detach().reshape(-1).cpu().numpy().astype(np.int64)
    seed_np = seediness.cpu().numpy().astype(np.float64)
    if batch_np.size and batch_np.min() < 0:
        raise ValueError(f"batch_ids must be >= 0, got {batch_np.min()}")
    numba_path = mode == "fast" and (backend == "numba" or
                                     (backend == "auto" and device.type == "cpu"))
    if numba_path:
        emb_np = embeddings.cpu().numpy().astype(np.float64)
        margin_np = margins.cpu().numpy().astype(np.float64)
        _check_finite(embeddings=emb_np, margins=margin_np, seediness=seed_np)
    else:
        _check_finite(embeddings=embeddings, margins=margins, seediness=seed_np)
    order, segments = _segments(sem_np, batch_np, seed_np)
    sorted_labels = np.full(order.size, -1, dtype=np.int64)
    if numba_path:
        emb_sorted, margin_sorted, seed_sorted = emb_np[order], margin_np[order], seed_np[order]
    elif segments:
        order_t = torch.as_tensor(order, device=device)
        emb_sorted, margin_sorted = embeddings[order_t], margins[order_t]
        seed_sorted = seediness[order_t]
    coords_sorted = None if coords_np is None else coords_np[order]
    pairs = event_pairs(coords_sorted, segments, steps)  # with the absorb step: shared
    next_id: Dict[int, int] = {}
    for start, stop, event, c in segments:
        part = slice(start, stop)
        if mode == "spine":
            local = spine_segment(emb_sorted[part], margin_sorted[part], seed_sorted[part],
                                  s0_values[c], p0_values[c], int(min_cluster_size),
                                  bool(assign_leftovers)).cpu().numpy()
            count = int(local.max()) + 1
        else:
            if numba_path:
                local = greedy_levels(emb_sorted[part], margin_sorted[part], seed_sorted[part],
                                      np.array([s0_values[c]]), log_threshold(p0_values[c]),
                                      bool(assign_leftovers), steps["min_seeds"])[0]
            else:
                local = greedy_torch(emb_sorted[part], margin_sorted[part], seed_sorted[part],
                                     s0_values[c], log_threshold(p0_values[c]),
                                     bool(assign_leftovers), steps["min_seeds"]).cpu().numpy()
            touching = None if event not in pairs or steps["connect_p"][c] is None else \
                pairs_within(pairs[event], steps["connect_radius"][c], start=start, stop=stop)
            local = _postprocess(local, emb_sorted[part], margin_sorted[part],
                                 None if coords_sorted is None else coords_sorted[part],
                                 steps, c, touching)
            local, count = drop_small(local, int(min_cluster_size))
        offset = next_id.get(event, 0)
        sorted_labels[part] = np.where(local >= 0, local + offset, -1)
        next_id[event] = offset + count
    if steps["absorb_p"] is not None and segments:
        if isinstance(emb_sorted, torch.Tensor):
            emb_sorted = emb_sorted.detach().double().cpu().numpy()
            margin_sorted = margin_sorted.detach().double().cpu().numpy()
        sorted_labels = absorb_events(sorted_labels, segments, coords_sorted, emb_sorted,
                                      margin_sorted, sem_np[order], steps, int(min_cluster_size),
                                      pairs)
    labels = np.full(n, -1, dtype=np.int64)
    labels[order] = sorted_labels
    return torch.from_numpy(labels).to(device)


def cluster_event_arrays(embeddings: np.ndarray, margins: np.ndarray, seediness: np.ndarray,
                         semantics: np.ndarray, coords: Optional[np.ndarray] = None,
                         **options) -> np.ndarray:
    """:func:`cluster_events` on one event's numpy outputs (an ``EventPrediction``'s arrays).

    Rows SPICE did not process (NaN margin or class < 0) stay ``-1``, as in
    inference; ``options`` are :func:`cluster_events` keywords. Used where stored
    outputs are clustered again with other settings (tuning, benchmarks).
    """
    margins = np.asarray(margins, dtype=np.float64).reshape(-1)
    semantics = np.asarray(semantics).reshape(-1)
    ran = np.isfinite(margins) & (semantics >= 0)
    labels = np.full(margins.size, -1, dtype=np.int64)
    if ran.any():
        labels[ran] = cluster_events(
            torch.as_tensor(np.asarray(embeddings)[ran]), torch.as_tensor(margins[ran]),
            torch.as_tensor(np.asarray(seediness).reshape(-1)[ran]),
            torch.as_tensor(semantics[ran]), torch.zeros(int(ran.sum())),
            coords=None if coords is None else torch.as_tensor(
                np.asarray(coords, dtype=np.float64)[ran]), **options).numpy()
    return labels


def _postprocess(local: np.ndarray, emb, margins, coords: Optional[np.ndarray], steps: Dict,
                 c: int, touching: Optional[Tuple[np.ndarray, np.ndarray]] = None) -> np.ndarray:
    """The enabled :mod:`.postprocess` steps for class ``c`` on one segment (``touching``:
    its voxel pairs within the connect radius, when the caller has them)."""
    if steps["refine_iterations"] == 0 and steps["merge_p"][c] is None \
            and steps["connect_p"][c] is None:
        return local
    if isinstance(emb, torch.Tensor):
        # Small per-segment host copy: the steps are numba/scipy (see postprocess.py).
        emb = emb.detach().double().cpu().numpy()
        margins = margins.detach().double().cpu().numpy()
    return postprocess_segment(emb, margins, local, steps["refine_iterations"],
                               steps["merge_p"][c], coords, steps["connect_radius"][c],
                               steps["connect_p"][c], steps["connect_max_bend"],
                               steps["bend_window"], touching)


class SPICEClusterer:
    """Options of :func:`cluster_events`; accepts the ``clusterer`` config block as kwargs.

    Parameters
    ----------
    s0, p0 : per-class thresholds, optional
        Mapping by class name or index, list of 5, or scalar (default: paper
        Table II, ``defaults.PAPER_THRESHOLDS``).
    min_cluster_size : int
    assign_leftovers : bool
    mode : {"fast", "spine"}
    at_least_one_seed : bool
    refine_iterations : int
    merge_p, connect_radius_cm, connect_p : per-class optional floats
        The post-steps of :mod:`.postprocess` (see :func:`cluster_events`; cm).
    absorb_radius_cm, absorb_p : float, optional
        The cross-class step of :mod:`.absorb` (cm).
    connect_max_bend, bend_window_cm : float, optional
    reconnect_after_absorb : bool
    **renamed
        See :func:`cluster_events`.
    enabled : bool
        When False, calling returns all -1 (the chain may keep the stage but
        skip clustering).

    Examples
    --------
    >>> clusterer = SPICEClusterer(s0={"Shower": 0.3}, p0=0.1)
    >>> labels = clusterer(embeddings, margins, seediness, semantics, batch_ids)
    """

    def __init__(self, s0: ThresholdSpec = None, p0: ThresholdSpec = None,
                 min_cluster_size: int = 1, assign_leftovers: bool = True,
                 mode: str = "fast", enabled: bool = True, at_least_one_seed: bool = False,
                 refine_iterations: int = 0,
                 merge_p: OptionalSpec = None, connect_radius_cm: OptionalSpec = None,
                 connect_p: OptionalSpec = None, absorb_radius_cm: Optional[float] = None,
                 absorb_p: Optional[float] = None, connect_max_bend: Optional[float] = None,
                 reconnect_after_absorb: bool = False, bend_window_cm: float = BEND_WINDOW_CM,
                 **renamed: None):
        if mode not in MODES:
            raise ValueError(f"clusterer mode must be one of {MODES}, got '{mode}'")
        if int(min_cluster_size) < 1:
            raise ValueError(f"min_cluster_size must be >= 1, got {min_cluster_size}")
        self.s0, self.p0 = resolve_thresholds(s0, p0)
        self.min_cluster_size = int(min_cluster_size)
        self.assign_leftovers = bool(assign_leftovers)
        self.mode = mode
        self.enabled = bool(enabled)
        # Validated here; the SPICE stage builds its clusterer with the chain, so a bad
        # block fails before the first event.
        self.steps = step_options(mode, at_least_one_seed, refine_iterations, merge_p,
                                   connect_radius_cm, connect_p, absorb_radius_cm, absorb_p,
                                   connect_max_bend, reconnect_after_absorb, bend_window_cm,
                                   **renamed)

    @property
    def needs_coords(self) -> bool:
        """True when the connectivity or absorb step runs."""
        return any(v is not None for v in self.steps["connect_p"] + [self.steps["absorb_p"]])

    def __call__(self, embeddings: torch.Tensor, margins: torch.Tensor, seediness: torch.Tensor,
                 semantics: torch.Tensor, batch_ids: torch.Tensor,
                 coords: Optional[torch.Tensor] = None,
                 voxel_cm: Optional[Union[float, Sequence[float]]] = None) -> torch.Tensor:
        """Instance label per voxel; see :func:`cluster_events` (``voxel_cm``: the
        events' ``ImageMeta.voxel_cm``, needed when :attr:`needs_coords`)."""
        if not self.enabled:
            _check_inputs(embeddings, margins, seediness, semantics, batch_ids)
            return torch.full((embeddings.shape[0],), -1, dtype=torch.long,
                              device=embeddings.device)
        return cluster_events(embeddings, margins, seediness, semantics, batch_ids,
                              s0=self.s0, p0=self.p0, min_cluster_size=self.min_cluster_size,
                              assign_leftovers=self.assign_leftovers, mode=self.mode,
                              coords=coords if self.needs_coords else None, voxel_cm=voxel_cm,
                              at_least_one_seed=bool(self.steps["min_seeds"]),
                              **{k: v for k, v in self.steps.items() if k != "min_seeds"})

    def thresholds(self, class_names: Sequence[str] = CLASS_NAMES
                   ) -> Dict[str, Dict[str, Optional[float]]]:
        """``{"s0": {class: value}, "p0": ..., "connect_p": ..., "absorb_p": value}``:
        what a thresholds file sets, classes named ``class_names`` (HIP left out
        where tracks are one class: :func:`~mlreco_spice.columns.shown_classes`)."""
        shown = shown_classes(class_names)

        def named(values: Sequence[Optional[float]]) -> Dict[str, Optional[float]]:
            return {class_names[c]: values[c] for c in shown}

        return {"s0": named(self.s0), "p0": named(self.p0),
                "connect_p": named(self.steps["connect_p"]), "absorb_p": self.steps["absorb_p"]}

    def __repr__(self) -> str:
        return (f"SPICEClusterer(mode={self.mode!r}, min_cluster_size={self.min_cluster_size}, "
                f"assign_leftovers={self.assign_leftovers}, enabled={self.enabled}, "
                f"s0={self.s0}, p0={self.p0}, at_least_one_seed={bool(self.steps['min_seeds'])}, "
                f"refine_iterations={self.steps['refine_iterations']}, "
                f"merge_p={self.steps['merge_p']}, "
                f"connect_radius_cm={self.steps['connect_radius_cm']}, "
                f"connect_p={self.steps['connect_p']}, "
                f"absorb_radius_cm={self.steps['absorb_radius_cm']}, "
                f"absorb_p={self.steps['absorb_p']}, "
                f"connect_max_bend={self.steps['connect_max_bend']}, "
                f"bend_window_cm={self.steps['bend_window_cm']}, "
                f"reconnect_after_absorb={self.steps['reconnect_after_absorb']})")
