"""lartpc_mlreco3d (MinkowskiEngine era) SPICE config -> our chain config.

Its SPICE is SPINE's predecessor with the same network: ``depth`` counts
levels, ``num_input`` counts the ``coordConv`` channels, coordinates are
normalised by ``spatial_size``, the heads are batch norm then a linear map
without bias. Thresholds (``fragment_clustering.s_thresholds`` /
``p_thresholds``) are lists indexed by shape code. The translation reuses
:mod:`.spine_config`'s pieces with lartpc_mlreco3d's key names.
"""
from __future__ import annotations

import posixpath
from typing import Any, Dict, List

from ..errors import UserError
from .peer_blocks import (join, map_clusterer, map_loader_notes, map_loss_names,
                          map_loss_weights, map_owned_shapes, map_unet, start_spice_block)
from .translation import MISSING, Translation

__all__ = ["translate_mlreco3d", "looks_like_mlreco3d"]

_NET = "model.modules.spice.network"
_HINT = "not read here; see README 'Coming from SPINE or lartpc_mlreco3d'"
#: Keys that only lartpc_mlreco3d's SPICE block has.
_OWN_KEYS = ("uresnet_encoder", "coordConv", "num_filters", "sigma_dim")


def looks_like_mlreco3d(peer: Dict[str, Any], modules: Dict[str, Any]) -> bool:
    """Whether a config (top level and its modules mapping) is lartpc_mlreco3d's."""
    spice = modules.get("spice") or {}
    return ("iotool" in peer or "trainval" in peer or "fragment_clustering" in modules
            or "uresnet_encoder" in modules or any(k in spice for k in _OWN_KEYS))


def _map_network(t: Translation, modules: str) -> List[int]:
    block = join(modules, "spice")
    coord = t.take(f"{block}.coordConv")
    coord_conv = True if coord is MISSING else bool(coord)
    if coord is MISSING:
        t.default(f"{_NET}.coord_conv", True, "lartpc_mlreco3d default coordConv")
    else:
        t.map(f"{block}.coordConv", coord, f"{_NET}.coord_conv", coord_conv)
    codes = map_owned_shapes(t, block, MISSING, t.take(f"{block}.skip_classes"), [0, 1])
    for key, what in (("sigma_dim", "margin"), ("seediness_dim", "seediness")):
        value = t.take(f"{block}.{key}")
        if value is not MISSING and int(value) != 1:
            raise UserError(f"{block}.{key} = {value}: SPICE has exactly one {what} per voxel")
        if value is not MISSING:
            t.builtin(f"{block}.{key}", value, "always 1 here")
    freeze = t.take(f"{block}.seed_freeze")
    if freeze is not MISSING:
        t.map(f"{block}.seed_freeze", freeze, "train.freeze_seediness_iterations",
              10**9 if freeze else 0, "frozen for the whole run" if freeze else "")
    # The encoder block: nested in spice, or beside it; spatial_size may sit in spice.
    encoder = f"{block}.uresnet_encoder" if t.get(f"{block}.uresnet_encoder") is not MISSING \
        else join(modules, "uresnet_encoder")
    size_key = next((k for k in (f"{encoder}.spatial_size", f"{block}.spatial_size",
                                 join(modules, "network_base.spatial_size"))
                     if t.get(k) is not MISSING), f"{encoder}.spatial_size")
    leak = t.take(f"{encoder}.leakiness")
    map_unet(t, encoder, coord_conv, size_key, None if leak is not MISSING else 0.33,
             default_size=512)
    if leak is not MISSING:
        t.map(f"{encoder}.leakiness", leak, f"{_NET}.uresnet.leaky_slope", float(leak))
    filters = t.config["model"]["modules"]["spice"]["network"]["uresnet"].get("filters", 16)
    heads = t.take(f"{block}.num_filters")
    if heads is not MISSING:
        if int(heads) != int(filters):
            raise UserError(f"{block}.num_filters = {heads} but the encoder has {filters} filters; "
                            "the heads read the decoder's first level, so they must agree")
        t.builtin(f"{block}.num_filters", heads, "the heads take the encoder's filters")
    for name in ("embedding_decoder", "seediness_decoder"):
        for where in (f"{block}.{name}", join(modules, name)):
            value = t.take(where)
            if value is not MISSING:
                t.unmapped(where, value, "both decoders share network.uresnet here")
    return codes


def _map_loss(t: Translation, modules: str) -> None:
    block = join(modules, "spice_loss")
    name = t.take(f"{block}.name")
    if name is not MISSING:
        text = str(name).lower()
        mask = next((m for m in ("lovasz", "bce", "focal", "dice") if m in text), None)
        if mask is None:
            t.unmapped(f"{block}.name", name, "mask losses here: lovasz, bce, focal, dice")
        else:
            t.map(f"{block}.name", name, "model.modules.spice.loss.mask_loss", mask,
                  "the smoothing and inter-cluster terms are always on (their weights)")
    map_loss_names(t, block, t.take(f"{block}.mask_loss"), t.take(f"{block}.seed_loss"))
    map_loss_weights(t, block)


def _map_schema(t: Translation) -> None:
    schema = t.get("iotool.dataset.schema", {}) or {}
    for entry, spec in schema.items():
        key = f"iotool.dataset.schema.{entry}"
        t.take(key)
        if isinstance(spec, dict):
            parser, args = spec.get("parser", ""), spec.get("args", {}) or {}
            products = list(args.get("sparse_event_list") or [args.get("sparse_event")] or [])
            products += [args[k] for k in ("cluster_event", "particle_event",
                                           "sparse_semantics_event") if k in args]
        else:
            parser, products = (spec[0] if spec else ""), list(spec[1:])
        products = [p for p in products if p]
        ours = f"io.dataset.schema.{entry}"
        if "sparse3d" in parser:
            t.map(key, spec, ours, {"parser": "sparse3d", "products": products})
        elif "cluster3d" in parser:
            block: Dict[str, Any] = {"parser": "cluster3d"}
            for product in products:
                kind = product.split("_", 1)[0]
                slot = {"cluster3d": "cluster_product", "sparse3d": "semantics_product",
                        "particle": "particle_product"}.get(kind)
                if slot and slot not in block:
                    block[slot] = product
            t.map(key, spec, ours, block, "overlaps always resolved (clean); instances kept whole")
        else:
            t.unmapped(key, spec, "parsers here: sparse3d, cluster3d")


def _map_io(t: Translation) -> None:
    map_loader_notes(t, "iotool")
    t.carry("iotool.dataset.name", "io.dataset.format", lambda _: "auto",
            "larcv3, larcv2 ROOT and PILArNet-M are detected")
    for key in ("batch_size", "shuffle", "num_workers"):
        t.carry(f"iotool.{key}", f"io.loader.{key}")
    files = t.take("iotool.dataset.data_keys")
    if files:
        t.map("iotool.dataset.data_keys", files, "io.dataset.files",
              [files] if isinstance(files, str) else list(files))
    limit = t.take("iotool.dataset.limit_num_files")
    if limit is not MISSING:
        t.unmapped("iotool.dataset.limit_num_files", limit, "list the files (or a glob) instead")
    _map_schema(t)


def _map_trainval(t: Translation) -> None:
    for peer, ours in (("seed", "train.seed"), ("iterations", "train.iterations"),
                       ("checkpoint_step", "train.checkpoint_every"),
                       ("report_step", "train.log_every")):
        t.carry(f"trainval.{peer}", ours, int)
    t.carry("trainval.learning_rate", "train.optimizer.lr", float)
    t.carry("trainval.weight_prefix", "train.output_dir",
            lambda prefix: posixpath.dirname(str(prefix)) or ".")
    notes = {"trainval.model_path": "lartpc_mlreco3d checkpoints are not read; SPINE 1.4.3 "
                                    "ones are (model.modules.spice.weights)",
             "trainval.gpus": "CUDA is used when present; train.device picks one",
             "trainval.log_dir": "train_log.csv is written to train.output_dir",
             "trainval.train": "`mlreco-spice train` trains, `predict` infers",
             "trainval.debug": "-vv for debug logging"}
    t.unmapped_keys(notes)


def _map_wiring(t: Translation) -> None:
    net_in = t.take("model.network_input")
    if net_in is not MISSING:
        data = net_in[0] if isinstance(net_in, list) and net_in else "input_data"
        t.map("model.network_input", net_in, "model.modules.spice.network_input", {"data": data},
              "semantics: the true classes of the label tensor (use_true_semantics: true)")
    loss_in = t.take("model.loss_input")
    if loss_in is not MISSING:
        label = loss_in[0] if isinstance(loss_in, list) and loss_in else "cluster_label"
        t.map("model.loss_input", loss_in, "model.modules.spice.loss_input", {"clust_label": label})
    name = t.take("model.name")
    if name is not MISSING:
        t.map("model.name", name, "model.stages", ["spice"])


def translate_mlreco3d(t: Translation, modules: str) -> None:
    """Fill ``t.config`` from a lartpc_mlreco3d config whose blocks are under ``modules``."""
    start_spice_block(t)
    codes = _map_network(t, modules)
    if t.get(join(modules, "spice_loss")) is not MISSING:
        _map_loss(t, modules)
    clustering = join(modules, "fragment_clustering")
    map_clusterer(t, clustering, codes, "s_thresholds", "p_thresholds", "min_voxels", True)
    _map_wiring(t)
    _map_io(t)
    _map_trainval(t)
    t.finish(_HINT)
