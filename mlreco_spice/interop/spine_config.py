"""SPINE (DeepLearnPhysics/spine 1.4.3) SPICE config -> our chain config.

SPINE's keys: ``model.{name, weight_path, network_input, loss_input}``,
``model.modules.spice`` (``shapes`` or legacy ``skip_classes``,
``make_clusters``, ``coord_conv``, ``margin_dim``, ``seediness_dim``,
``seed_freeze``, ``clusterer``, ``uresnet``), ``model.modules.spice_loss``,
the ``io.loader`` block with its parser schema, and ``base``. The semantics
that differ from ours are listed in :mod:`.peer_blocks`.
"""
from __future__ import annotations

import posixpath

from ..errors import UserError
from .peer_blocks import (join, map_clusterer, map_loader_notes, map_loss_names,
                          map_loss_weights, map_owned_shapes, map_unet, start_spice_block)
from .translation import MISSING, Translation

__all__ = ["translate_spine", "map_schema"]

_NET = "model.modules.spice.network"


_HINT = ("not read here; see README 'Coming from SPINE or lartpc_mlreco3d' "
         "and mlreco_spice/defaults.py for the keys that exist")


def _map_spice(t: Translation, block: str) -> None:
    spice = "model.modules.spice"
    start_spice_block(t)
    coord_conv = t.take(f"{block}.coord_conv", MISSING)
    if coord_conv is not MISSING:
        t.map(f"{block}.coord_conv", coord_conv, f"{_NET}.coord_conv", bool(coord_conv))
    else:
        t.default(f"{_NET}.coord_conv", True, "peer default")
    codes = map_owned_shapes(t, block, t.take(f"{block}.shapes"), t.take(f"{block}.skip_classes"),
                             [0, 1])
    for key in ("margin_dim", "seediness_dim"):
        value = t.take(f"{block}.{key}")
        if value is not MISSING and int(value) != 1:
            raise UserError(f"{block}.{key} = {value}: SPICE has exactly one {key[:-4]} per voxel")
        if value is not MISSING:
            t.builtin(f"{block}.{key}", value, "always 1 here")
    freeze = t.take(f"{block}.seed_freeze")
    if freeze is not MISSING:
        if freeze:
            t.map(f"{block}.seed_freeze", freeze, "train.freeze_seediness_iterations", 10**9,
                  "frozen for the whole run (our freeze lasts N iterations)")
        else:
            t.map(f"{block}.seed_freeze", freeze, "train.freeze_seediness_iterations", 0)
    map_unet(t, f"{block}.uresnet", bool(coord_conv if coord_conv is not MISSING else True))
    make = t.take(f"{block}.make_clusters")
    if make is not MISSING:
        t.map(f"{block}.make_clusters", make, f"{spice}.clusterer.enabled", True,
              "inference here always clusters" if not make else "")
    map_clusterer(t, f"{block}.clusterer", codes, "seed_threshold", "probability_threshold",
                  "min_size", False)


def _map_loss(t: Translation, block: str) -> None:
    map_loss_names(t, block, t.take(f"{block}.mask_loss"), t.take(f"{block}.seed_loss"))
    map_loss_weights(t, block)


def map_schema(t: Translation, where: str) -> None:
    """SPINE parser schema (``parser`` + ``*_event`` keys) -> ``io.dataset.schema``."""
    schema = t.get(where, {}) or {}
    for entry, spec in schema.items():
        key = f"{where}.{entry}"
        parser = spec.get("parser") if isinstance(spec, dict) else None
        t.take(f"{key}.parser")
        ours = f"io.dataset.schema.{entry}"
        if parser == "sparse3d":
            t.map(f"{key}.parser", parser, f"{ours}.parser", parser)
            products = t.take(f"{key}.sparse_event")
            which = "sparse_event"
            if products is MISSING:
                products, which = t.take(f"{key}.sparse_event_list", []), "sparse_event_list"
            products = [products] if isinstance(products, str) else list(products)
            t.map(f"{key}.{which}", products, f"{ours}.products", products)
        elif parser == "cluster3d":
            t.map(f"{key}.parser", parser, f"{ours}.parser", parser)
            for peer, mine in (("cluster_event", "cluster_product"),
                               ("sparse_semantics_event", "semantics_product"),
                               ("particle_event", "particle_product")):
                t.carry(f"{key}.{peer}", f"{ours}.{mine}")
            _cluster_flags(t, key)
        else:
            t.take(key)
            t.unmapped(key, spec, "parsers here: sparse3d, cluster3d")


def _cluster_flags(t: Translation, key: str) -> None:
    notes = {
        "add_particle_info": "instance classes come from particle_product when it is given",
        "clean_data": "always on here: a voxel shared by particles gets one instance "
                      "(class match, then energy; parsers/cluster.py)",
        "break_clusters": "instances are kept whole here; clusterer.connect_radius_cm splits "
                          "predicted clusters into connected pieces instead",
    }
    t.unmapped_keys({f"{key}.{flag}": note for flag, note in notes.items()})


def _map_io(t: Translation) -> None:
    loader = "io.loader"
    map_loader_notes(t, loader)
    for key in ("batch_size", "shuffle", "num_workers"):
        t.carry(f"{loader}.{key}", f"io.loader.{key}",
                note="per process" if key == "batch_size" else "")
    files = t.take(f"{loader}.dataset.file_keys")
    if files:
        t.map(f"{loader}.dataset.file_keys", files, "io.dataset.files",
              [files] if isinstance(files, str) else list(files))
    elif files is not MISSING:
        t.unmapped(f"{loader}.dataset.file_keys", files, "set io.dataset.files (or --set)")
    t.carry(f"{loader}.dataset.name", "io.dataset.format", lambda _: "auto",
            "larcv3, larcv2 ROOT and PILArNet-M are detected")
    map_schema(t, f"{loader}.dataset.schema")


def _map_base(t: Translation) -> None:
    for peer, ours in (("base.seed", "train.seed"), ("base.log_step", "train.log_every")):
        t.carry(peer, ours, int)
    for peer in ("base.epochs", "base.iterations"):
        value = t.take(peer)
        if value is not MISSING:
            ours = "train." + peer.split(".")[1]
            rounded = max(1, int(round(float(value))))
            t.map(peer, value, ours, rounded, "" if float(value) == rounded else "whole units here")
    t.carry("base.train.weight_prefix", "train.output_dir",
            lambda prefix: posixpath.dirname(str(prefix)) or ".",
            "checkpoint-<iteration>.pt files go there")
    t.carry("base.train.optimizer.name", "train.optimizer.name", lambda name: str(name).lower())
    t.carry("base.train.optimizer.lr", "train.optimizer.lr", float)
    notes = {"base.world_size": "run `torchrun --nproc_per_node N -m mlreco_spice train`",
             "base.log_dir": "train_log.csv is written to train.output_dir",
             "base.train.save_epoch": "checkpoints every train.checkpoint_every iterations",
             "base.unwrap": "outputs are always per event here"}
    t.unmapped_keys(notes)


def _map_model(t: Translation) -> None:
    name = t.take("model.name")
    if name is not MISSING and name != "spice":
        raise UserError(f"model.name is '{name}', not spice: only SPICE configs can be imported")
    if name is not MISSING:
        t.map("model.name", name, "model.stages", ["spice"])
    weights = t.take("model.weight_path")
    if weights:
        t.map("model.weight_path", weights, "model.modules.spice.weights", weights,
              "SPINE checkpoints load directly")
    elif weights is not MISSING:
        t.unmapped("model.weight_path", weights, "no weights: training starts from random ones")
    net_in = t.take("model.network_input")
    if net_in is not MISSING:
        data = net_in.get("data", "data") if isinstance(net_in, dict) else "data"
        t.map("model.network_input", net_in, "model.modules.spice.network_input", {"data": data},
              "semantics: the true classes of loss_input's clust_label (use_true_semantics: true); "
              "with a uresnet stage set network_input.semantics: uresnet.semantics")
    loss_in = t.take("model.loss_input")
    if loss_in is not MISSING:
        label = loss_in.get("clust_label", "clust_label") if isinstance(loss_in, dict) \
            else "clust_label"
        t.map("model.loss_input", loss_in, "model.modules.spice.loss_input",
              {"clust_label": label})


def translate_spine(t: Translation, modules: str) -> None:
    """Fill ``t.config`` from a SPINE config whose ``spice`` block is under ``modules``."""
    _map_spice(t, join(modules, "spice"))
    if t.get(join(modules, "spice_loss")) is not MISSING:
        _map_loss(t, join(modules, "spice_loss"))
    _map_model(t)
    _map_io(t)
    _map_base(t)
    t.finish(_HINT)
