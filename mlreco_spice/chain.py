"""The reconstruction chain: registered stages run in config order.

``model.stages`` gives the order; ``model.modules.<stage>`` configures each
stage (see :mod:`mlreco_spice.defaults`). A stage's network is looked up in
:data:`~mlreco_spice.registry.MODELS` by ``network.name`` (default: the stage
name) and receives keyword arguments mapped by ``network_input``::

    network_input: {data: data, semantics: uresnet.semantics}

A source is either a name of the dataset schema (``data``, ``clust_label``)
or ``<stage>.<output>`` of an earlier stage. ``loss_input`` maps the loss's
arguments the same way.

Semantics for a clustering stage (one with ``use_true_semantics``): true
classes come from the semantic column of its ``loss_input`` label tensor;
predicted classes from its ``network_input.semantics``. ``null`` uses true
classes while training and predicted ones at inference.
"""
from __future__ import annotations

import logging
from typing import Any, Dict, Mapping, Optional, Tuple

import torch
from torch import nn

from .checkpoint import config_hint, load_checkpoint, load_state_into
from .columns import SEMANTIC_COL
from .interop.spine_checkpoint import SPINE_FORMAT, complete_spine_state
from .errors import UserError
from .registry import MODELS

log = logging.getLogger(__name__)

__all__ = ["Chain", "ChainError"]


class ChainError(UserError):
    """The chain config does not hold together (unknown source, missing stage...)."""


class Chain(nn.Module):
    """All stages of a chain, their losses, and the wiring between them.

    Parameters
    ----------
    model_cfg : dict
        The ``model`` section of a complete config (defaults filled in).
    """

    def __init__(self, model_cfg: Mapping[str, Any]):
        super().__init__()
        self.stage_names = list(model_cfg["stages"])
        modules = model_cfg["modules"]
        if not self.stage_names:
            raise ChainError("model.stages is empty: list at least one stage, e.g. [spice]")
        self.stage_cfgs: Dict[str, Dict[str, Any]] = {}
        self.networks = nn.ModuleDict()
        self.losses = nn.ModuleDict()
        for name in self.stage_names:
            if name not in modules:
                hint = "" if modules else (" Start from a shipped config that has them, e.g. "
                                           "`include: spice_train.yaml` as the first line")
                raise ChainError(f"stage '{name}' is in model.stages but has no block under "
                                 f"model.modules (blocks: {', '.join(modules) or 'none'}).{hint}")
            cfg = modules[name]
            network_cls, loss_cls = MODELS.get(cfg["network"].get("name", name))
            self.stage_cfgs[name] = cfg
            self.networks[name] = network_cls(cfg)
            self.losses[name] = loss_cls(cfg)
        self._check_sources()
        for name in self.stage_names:
            cfg = self.stage_cfgs[name]
            if cfg.get("weights"):
                self.load_stage_weights(name, cfg["weights"])
            if cfg.get("freeze"):
                self.freeze_stage(name)

    # ------------------------------------------------------------- wiring --
    def _check_sources(self) -> None:
        for position, name in enumerate(self.stage_names):
            cfg = self.stage_cfgs[name]
            for kind in ("network_input", "loss_input"):
                for arg, source in (cfg.get(kind) or {}).items():
                    if "." in source:
                        stage = source.split(".", 1)[0]
                        if stage not in self.stage_names[:position + (kind == "loss_input")]:
                            raise ChainError(
                                f"model.modules.{name}.{kind}.{arg}: source '{source}' names "
                                f"stage '{stage}', which does not run before '{name}' "
                                f"(stages: {', '.join(self.stage_names)})")

    @staticmethod
    def _resolve(source: str, batch: Mapping[str, Any], outputs: Mapping[str, Dict[str, Any]],
                 where: str) -> Any:
        if "." in source:
            stage, key = source.split(".", 1)
            if key not in outputs.get(stage, {}):
                raise ChainError(f"{where}: stage '{stage}' produced no '{key}' "
                                 f"(it has: {', '.join(outputs.get(stage, {}))})")
            return outputs[stage][key]
        if source not in batch:
            raise ChainError(f"{where}: '{source}' is not in the data (schema entries: "
                             f"{', '.join(k for k in batch if not k.startswith('_'))}). "
                             f"Add it to io.dataset.schema or change the mapping.")
        return batch[source]

    def semantics_for(self, name: str, batch: Mapping[str, Any],
                   outputs: Mapping[str, Dict[str, Any]]) -> Optional[torch.Tensor]:
        """Classes a clustering stage works on (true or predicted, see module doc)."""
        cfg = self.stage_cfgs[name]
        use_true = cfg["use_true_semantics"]
        if use_true is None:
            use_true = self.training
        where = f"model.modules.{name}"
        if use_true:
            label_source = (cfg.get("loss_input") or {}).get("clust_label")
            if not label_source or label_source not in batch:
                raise ChainError(f"{where}: true semantics requested but no label tensor "
                                 f"'{label_source or 'clust_label'}' in the data; predict on "
                                 f"data without labels with use_true_semantics: false")
            return batch[label_source][:, SEMANTIC_COL].long()
        source = (cfg.get("network_input") or {}).get("semantics")
        if source is None:
            raise ChainError(f"{where}: predicted semantics needed at inference but "
                             f"network_input.semantics is not set (e.g. uresnet.semantics); "
                             f"or set use_true_semantics: true to cluster on true classes")
        value = self._resolve(source, batch, outputs, f"{where}.network_input.semantics")
        return value.long() if value.dim() == 1 else value[:, SEMANTIC_COL].long()

    # ------------------------------------------------------------ running --
    def forward(self, batch: Mapping[str, Any]) -> Dict[str, Dict[str, Any]]:
        """Run every stage; returns ``{stage: {output name: tensor}}``."""
        outputs: Dict[str, Dict[str, Any]] = {}
        for name in self.stage_names:
            cfg = self.stage_cfgs[name]
            kwargs = {}
            for arg, source in (cfg.get("network_input") or {}).items():
                if arg == "semantics" and "use_true_semantics" in cfg:
                    continue
                kwargs[arg] = self._resolve(source, batch, outputs,
                                            f"model.modules.{name}.network_input.{arg}")
            if "use_true_semantics" in cfg:
                kwargs["semantics"] = self.semantics_for(name, batch, outputs)
            self._sync_image_size(name, batch)
            # A frozen stage records no autograd graph: nothing flows back through it.
            with torch.set_grad_enabled(torch.is_grad_enabled() and not cfg.get("freeze")):
                outputs[name] = self.networks[name](**kwargs)
        return outputs

    def _sync_image_size(self, name: str, batch: Mapping[str, Any]) -> None:
        """Tell a network the image side and voxel pitch of this batch.

        The side (for networks that centre coordinates) only when the config
        leaves ``network.image_size`` unset; the pitch (for the clusterer's
        distances in cm) always, None without metas. Both come from the events'
        ImageMeta; all events of a batch must agree.
        """
        net = self.networks[name]
        metas = [m for m in batch.get("meta") or [] if m is not None]
        if hasattr(net, "set_voxel_cm"):
            pitches = {tuple(m.voxel_cm) for m in metas}
            if len(pitches) > 1:
                raise ChainError(f"stage '{name}': events of one batch have different voxel "
                                 f"pitches {sorted(pitches)} (cm); cluster them in separate "
                                 f"batches")
            net.set_voxel_cm(pitches.pop() if pitches else None)
        if not hasattr(net, "set_image_size") or self.stage_cfgs[name]["network"].get("image_size"):
            return
        sizes = {tuple(m.size) for m in metas}
        if not sizes:
            return
        if len(sizes) > 1:
            raise ChainError(f"stage '{name}': events of one batch have different image sizes "
                             f"{sorted(sizes)}; set model.modules.{name}.network.image_size")
        net.set_image_size(max(sizes.pop()))

    def compute_loss(self, batch: Mapping[str, Any],
                     outputs: Mapping[str, Dict[str, Any]]) -> Dict[str, torch.Tensor]:
        """Sum of stage losses as ``loss``, plus every term as ``<stage>.<term>``."""
        total = None
        terms: Dict[str, torch.Tensor] = {}
        for name in self.stage_names:
            if self.stage_cfgs[name].get("freeze"):
                continue
            kwargs = {arg: self._resolve(src, batch, outputs, f"model.modules.{name}.loss_input.{arg}")
                      for arg, src in (self.stage_cfgs[name].get("loss_input") or {}).items()}
            result = self.losses[name](outputs[name], **kwargs)
            for key, value in result.items():
                terms[f"{name}.{key}"] = value
            total = result["loss"] if total is None else total + result["loss"]
        if total is None:
            raise ChainError("every stage is frozen: nothing to train")
        terms["loss"] = total
        return terms

    # ------------------------------------------------- weights & freezing --
    def load_stage_weights(self, name: str, path: str) -> None:
        """Load one stage's pretrained weights from a stage or full-chain checkpoint."""
        payload = load_checkpoint(path)
        state = payload["model"]
        if payload["format"] == SPINE_FORMAT:
            state = complete_spine_state(self.networks[name], state)
        prefix = f"networks.{name}."
        if not any(k.startswith(prefix) for k in state):
            prefix = ""
        load_state_into(self.networks[name], state, f"weights of stage '{name}' ({path})", prefix,
                        hint=config_hint(path, payload))
        log.info("stage %s: loaded weights from %s", name, path)

    def freeze_stage(self, name: str) -> None:
        """Stop training a stage: no gradients, batch norm statistics fixed."""
        for param in self.networks[name].parameters():
            param.requires_grad_(False)
        self.networks[name].eval()

    def set_seediness_frozen(self, frozen: bool) -> bool:
        """Freeze (or release) the seediness branch of the SPICE stage and leave its
        term out of (or put it back into) the loss: the paper's two-stage training.

        Returns False when no stage has a seediness branch.
        """
        _, net = self.find_stage("set_seediness_frozen")
        if net is None:
            return False
        net.set_seediness_frozen(frozen)
        for loss in self.losses.values():
            if hasattr(loss, "set_seediness_frozen"):
                loss.set_seediness_frozen(frozen)
        return True

    def train(self, mode: bool = True) -> "Chain":
        super().train(mode)
        for name in self.stage_names:  # frozen stages stay in eval mode
            if self.stage_cfgs[name].get("freeze"):
                self.networks[name].eval()
        return self

    def stage(self, name: str) -> nn.Module:
        """The network of a stage (``KeyError`` message lists stages)."""
        if name not in self.networks:
            raise ChainError(f"no stage '{name}' in this chain ({', '.join(self.stage_names)})")
        return self.networks[name]

    def find_stage(self, attribute: str) -> Tuple[Optional[str], Optional[nn.Module]]:
        """First stage whose network has ``attribute`` (e.g. ``set_seediness_frozen``)."""
        for name in self.stage_names:
            if hasattr(self.networks[name], attribute):
                return name, self.networks[name]
        return None, None
