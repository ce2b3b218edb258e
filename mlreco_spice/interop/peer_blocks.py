"""Pieces both peers' SPICE configs share: network, shapes, clusterer, loss, loader.

SPINE grew out of lartpc_mlreco3d and kept its SPICE network, so the two
translators (:mod:`.spine_config`, :mod:`.mlreco3d_config`) differ mostly in
key names. What differs from ours, and is translated rather than copied:

* ``depth`` counts resolution *levels*; ours counts down-samplings (ours = peer - 1).
* ``num_input`` counts the coordinate channels ``coord_conv`` adds; ours does not.
* Coordinates are normalised as ``(x - S/2) / (S/2)`` with ``S = spatial_size``:
  written as ``norm_length = image_size = S``.
* The heads are batch norm then a linear map, no bias, no activation:
  ``network.head_activation: false`` (missing head biases load as zeros).
* Thresholds are per *shape* (track covers our HIP and MIP), and the seed
  search is SPINE's: ``clusterer.mode: spine``, SPINE's defaults for keys left out.
* Semantic labels are in the shape scheme: ``io.dataset.labels: spine``.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

from ..errors import UserError
from .shapes import (SHAPE_LABELS, UNCLUSTERED_SHAPES, classes_of_shapes, per_class_thresholds,
                     shape_codes)
from .translation import MISSING, Translation, set_key

__all__ = ["SPINE_CLUSTERER", "join", "start_spice_block", "map_owned_shapes", "map_unet",
           "map_loss_names", "map_loss_weights", "map_clusterer", "map_loader_notes"]

#: SPINE 1.4.3 ``SPICEClusterer`` defaults.
SPINE_CLUSTERER = {"seed_threshold": 0.0, "probability_threshold": 0.5, "min_size": 2,
                   "assign_all": True}
_NET = "model.modules.spice.network"
_MASK_LOSSES = {"bce_logits": "bce", "bce": "bce", "lovasz": "lovasz", "lovasz_hinge": "lovasz",
                "dice": "dice", "focal": "focal"}
_SEED_LOSSES = {"l1": "l1", "l2": "l2", "mse": "l2"}


def _name(value: Any) -> Any:
    """A factory config (``"lrelu"`` or ``{name: lrelu, ...}``) -> its name."""
    return value.get("name") if isinstance(value, dict) else value


def map_owned_shapes(t: Translation, where: str, shapes: Any, skip: Any,
                     default: List[int]) -> List[int]:
    """``shapes`` (positive list) or legacy ``skip_classes`` -> owned codes, and our classes."""
    if shapes is not MISSING and skip is not MISSING:
        raise UserError(f"{where}: set either shapes or skip_classes, not both (SPINE refuses it)")
    if shapes is not MISSING:
        codes, key, value = shape_codes(shapes), "shapes", shapes
    elif skip is not MISSING:
        skipped = set(shape_codes(skip))
        codes, key, value = [c for c in range(4) if c not in skipped], "skip_classes", skip
    else:
        codes, key, value = list(default), None, None
    classes = classes_of_shapes(codes)
    if not classes:
        raise UserError(f"{where}: owns no shape SPICE clusters here ({codes})")
    note = ("shapes " + ", ".join(SHAPE_LABELS[c] for c in codes)
            + " -> our classes (track is HIP and MIP)")
    if key is None:
        t.default(f"{_NET}.classes", classes, "peer default: " + note)
    else:
        t.map(f"{where}.{key}", value, f"{_NET}.classes", classes, note)
    for code in codes:
        if code in UNCLUSTERED_SHAPES:
            t.unmapped(f"{where}.{key}[{SHAPE_LABELS[code]}]", code, UNCLUSTERED_SHAPES[code])
    return codes


def map_unet(t: Translation, where: str, coord_conv: bool, size_key: Optional[str] = None,
             default_slope: Optional[float] = 0.01, default_size: Optional[int] = None) -> int:
    """A peer U-ResNet block at ``where`` -> ``network.uresnet`` (+ norm_length); returns S.

    ``size_key`` is where ``spatial_size`` is (default ``where.spatial_size``);
    ``default_slope`` is the peer's LeakyReLU slope when ``activation`` is
    absent (``None``: the caller maps it); ``default_size`` the peer's
    ``spatial_size`` default (``None``: it must be set).
    """
    unet = f"{_NET}.uresnet"
    for key in ("filters", "reps", "input_kernel"):
        value = t.take(f"{where}.{key}")
        if value is not MISSING:
            t.map(f"{where}.{key}", value, f"{unet}.{key}", int(value))
    depth = t.take(f"{where}.depth")
    if depth is not MISSING:
        t.map(f"{where}.depth", depth, f"{unet}.depth", int(depth) - 1,
              "the peer counts resolution levels, ours down-samplings")
    num_input = t.take(f"{where}.num_input")
    if num_input is not MISSING:
        ours = int(num_input) - (3 if coord_conv else 0)
        t.map(f"{where}.num_input", num_input, f"{_NET}.num_input", ours,
              "the peer counts the 3 coordinate channels of coord_conv; ours does not"
              if coord_conv else "")
    size_key = size_key or f"{where}.spatial_size"
    size = t.take(size_key)
    note = "coordinates (x - S/2) / (S/2): norm_length and image_size both S"
    if size is MISSING and default_size is None:
        raise UserError(f"{size_key} is missing; SPICE normalises coordinates by it")
    if size is MISSING:
        size = default_size
        t.default(f"{_NET}.norm_length", int(size), f"peer default spatial_size; {note}")
    else:
        t.map(size_key, size, f"{_NET}.norm_length", int(size), note)
    set_key(t.config, f"{_NET}.image_size", int(size))
    bias = t.take(f"{where}.allow_bias")
    if bias is not MISSING:
        if bias:
            t.unmapped(f"{where}.allow_bias", bias, "our convolutions have no bias (each feeds a "
                       "batch norm); a checkpoint trained with allow_bias: true will not load")
        else:
            t.builtin(f"{where}.allow_bias", bias, "convolutions never have biases here")
    _map_activation(t, f"{where}.activation", default_slope)
    _map_norm(t, f"{where}.norm_layer")
    dim = t.take(f"{where}.data_dim")
    if dim is not MISSING and int(dim) != 3:
        raise UserError(f"{where}.data_dim = {dim}: only 3-D images are supported")
    if dim is not MISSING:
        t.builtin(f"{where}.data_dim", dim, "always 3-D here")
    return int(size)


def _args(value: Any) -> Dict[str, Any]:
    """A factory config's arguments: beside ``name`` (SPINE) or under ``args`` (lartpc_mlreco3d)."""
    if not isinstance(value, dict):
        return {}
    return dict(value.get("args") or {}) or {k: v for k, v in value.items() if k != "name"}


def _map_activation(t: Translation, key: str, default_slope: Optional[float]) -> None:
    act = t.take(key)
    if act is MISSING:
        if default_slope is not None:
            t.default(f"{_NET}.uresnet.leaky_slope", default_slope,
                      f"peer default activation lrelu, slope {default_slope}")
        return
    name = str(_name(act)).lower()
    if name == "lrelu":
        slope = _args(act).get("negative_slope", 0.01)
        t.map(key, act, f"{_NET}.uresnet.leaky_slope", float(slope))
    elif name == "relu":
        t.map(key, act, f"{_NET}.uresnet.leaky_slope", 0.0, "ReLU is a leaky ReLU of slope 0")
    else:
        t.unmapped(key, act, "only lrelu and relu exist here (uresnet.leaky_slope)")


def _map_norm(t: Translation, key: str) -> None:
    norm = t.take(key)
    if norm is MISSING:
        return
    if str(_name(norm)).lower() != "batch_norm":
        t.unmapped(key, norm, "only batch_norm exists here")
        return
    args = _args(norm)
    t.map(key, norm, f"{_NET}.uresnet.norm_eps", float(args.get("eps", 1e-5)),
          "batch norm eps and momentum kept (eps changes eval outputs)")
    set_key(t.config, f"{_NET}.uresnet.norm_momentum", float(args.get("momentum", 0.1)))


def map_loss_names(t: Translation, where: str, mask: Any, seed: Any) -> None:
    """Mask and seed loss names -> ``loss.mask_loss`` / ``loss.seed_loss``."""
    loss = "model.modules.spice.loss"
    if mask is not MISSING:
        name = str(_name(mask)).lower()
        if name in _MASK_LOSSES:
            t.map(f"{where}.mask_loss", mask, f"{loss}.mask_loss", _MASK_LOSSES[name])
        else:
            t.unmapped(f"{where}.mask_loss", mask,
                       f"mask losses here: {', '.join(sorted(set(_MASK_LOSSES.values())))}")
    if seed is not MISSING:
        name = str(_name(seed)).lower()
        if name in _SEED_LOSSES:
            t.map(f"{where}.seed_loss", seed, f"{loss}.seed_loss", _SEED_LOSSES[name])
        else:
            t.unmapped(f"{where}.seed_loss", seed, "seed losses here: l1, l2")


def join(prefix: str, key: str) -> str:
    """Dotted ``prefix.key`` (``key`` alone for an empty prefix)."""
    return f"{prefix}.{key}" if prefix else key


def start_spice_block(t: Translation) -> None:
    """The skeleton of our one-stage SPICE chain, heads as SPINE's and lartpc_mlreco3d's."""
    t.config.setdefault("model", {})["stages"] = ["spice"]
    t.config["model"].setdefault("modules", {})["spice"] = {
        "network": {"name": "spice", "head_activation": False, "uresnet": {}},
        "use_true_semantics": True}
    t.default(f"{_NET}.head_activation", False,
              "the peer's heads: batch norm, then linear, no bias")
    t.default("model.modules.spice.use_true_semantics", True,
              "the peer clusters on the true semantics it is given")
    t.config.setdefault("io", {}).setdefault("dataset", {})
    t.default("io.dataset.labels", "spine",
              "the peer's shape scheme: 0 shower, 1 track, 2 Michel, 3 delta, 4 low-energy")


def map_clusterer(t: Translation, block: str, codes: List[int], s_key: str, p_key: str,
                   size_key: str, list_by_code: bool) -> None:
    """Per-shape thresholds and sizes -> our clusterer block in ``mode: spine``."""
    clus = "model.modules.spice.clusterer"
    t.default(f"{clus}.mode", "spine", "SPINE's seed search, voxel for voxel")
    for peer_key, ours, default in ((s_key, "s0", SPINE_CLUSTERER["seed_threshold"]),
                                    (p_key, "p0", SPINE_CLUSTERER["probability_threshold"])):
        value = t.take(f"{block}.{peer_key}")
        if value is MISSING:
            t.default(f"{clus}.{ours}", per_class_thresholds(default, codes, peer_key),
                      f"SPINE default {peer_key} {default}")
        else:
            t.map(f"{block}.{peer_key}", value, f"{clus}.{ours}",
                  per_class_thresholds(value, codes, f"{block}.{peer_key}", list_by_code),
                  "per shape -> per class (track -> HIP and MIP)")
    size = t.take(f"{block}.{size_key}")
    if size is MISSING:
        t.default(f"{clus}.min_cluster_size", SPINE_CLUSTERER["min_size"], "SPINE default min_size")
    else:
        t.map(f"{block}.{size_key}", size, f"{clus}.min_cluster_size", int(size))
    assign = t.take(f"{block}.assign_all")
    if assign is MISSING:
        t.default(f"{clus}.assign_leftovers", True, "SPINE default assign_all")
    else:
        t.map(f"{block}.assign_all", assign, f"{clus}.assign_leftovers", bool(assign))
    eps = t.take(f"{block}.eps")
    if eps is not MISSING and float(eps) != 1e-6:
        t.unmapped(f"{block}.eps", eps, "the spine mode's minimum width is fixed at 1e-6")
    elif eps is not MISSING:
        t.builtin(f"{block}.eps", eps, "the spine mode's minimum width is 1e-6")


def map_loss_weights(t: Translation, block: str) -> None:
    """SPINE-named loss weights and margins under ``block`` -> ``loss``."""
    loss = "model.modules.spice.loss"
    for peer, ours, note in (("embedding_weight", "gamma2", "eq. II.11's embedding weight"),
                             ("seediness_weight", "gamma1", "eq. II.11's seediness weight"),
                             ("smoothing_weight", "smoothing_weight", ""),
                             ("inter_weight", "inter_weight", ""),
                             ("inter_margin", "delta_d", "inter-cluster margin (eq. II.7)"),
                             ("min_voxels", "min_voxels", "")):
        value = t.take(f"{block}.{peer}")
        if value is not MISSING:
            t.map(f"{block}.{peer}", value, f"{loss}.{peer if ours == peer else ours}",
                  int(value) if peer == "min_voxels" else float(value), note)


#: Loader keys with no counterpart, and why none is needed.
LOADER_NOTES = {
    "collate_fn": "events are always collated into [batch, x, y, z, features...] tensors",
    "sampler": "batches depend only on (train.seed, iteration): exact resume, DDP slices",
}


def map_loader_notes(t: Translation, loader: str) -> None:
    """Record the loader keys that have no counterpart (see :data:`LOADER_NOTES`)."""
    t.unmapped_keys({f"{loader}.{key}": note for key, note in LOADER_NOTES.items()})
