"""SPINE 1.4.3 SPICE checkpoints: detection and parameter names mapped to ours.

A SPINE checkpoint is ``torch.save({"state_dict": ..., "optimizer": ...,
"global_step": ..., "config": ...})`` of ``spine.model.spice.SPICE``. Its
network is ours layer for layer when built from an imported config
(``mlreco-spice import-config``): same encoder/decoder blocks, the same
MinkowskiEngine kernels, input features ``[normalised x, y, z, charge]`` in
the same order. Only names differ, and three things a renaming cannot carry:

* the heads have no bias: ours are set to zero;
* the coordinate scale ``S = spatial_size`` is not in the state dict: our
  ``norm_length`` buffer keeps the value the config gives (``import-config``
  writes ``S``);
* batch norm ``eps`` is not in the state dict either: the config's
  ``network.uresnet.norm_eps`` (``import-config`` copies SPINE's).

Parameters that fit no rule keep a ``spine:`` name, so a checkpoint of
another architecture fails with every such layer named
(:func:`mlreco_spice.checkpoint.load_state_into`).
"""
from __future__ import annotations

import re
from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch

__all__ = ["SPINE_FORMAT", "spine_state_dict", "spine_to_ours", "complete_spine_state"]

#: ``format`` of a :func:`mlreco_spice.checkpoint.load_checkpoint` result holding SPINE weights.
SPINE_FORMAT = "spine-spice"
_MARKER = "encoder.input_layer.kernel"

# Residual block members: SPINE (norm1/norm2 ME batch norms, residual) -> ours (act1/act2, shortcut).
_BLOCK = [(r"norm(\d)\.bn\.", r"act\1.norm."), (r"residual\.linear\.", "shortcut.linear."),
          (r"conv(\d)\.kernel$", r"conv\1.kernel")]
# Whole-name rules, applied in order; \g<rest> is a block member.
_RULES: List[Tuple[str, str]] = [
    (r"^encoder\.input_layer\.kernel$", "encoder.input_conv.kernel"),
    (r"^encoder\.encoding_block\.(\d+)\.(\d+)\.(?P<rest>.+)$", r"encoder.blocks.\1.\2."),
    (r"^encoder\.encoding_conv\.(\d+)\.0\.bn\.(\w+)$", r"encoder.downsample.\1.0.norm.\2"),
    (r"^encoder\.encoding_conv\.(\d+)\.2\.kernel$", r"encoder.downsample.\1.1.kernel"),
    (r"^(\w+_decoder)\.decoding_conv\.(\d+)\.0\.bn\.(\w+)$", r"\1.upsample.\2.0.norm.\3"),
    (r"^(\w+_decoder)\.decoding_conv\.(\d+)\.2\.kernel$", r"\1.upsample.\2.1.kernel"),
    (r"^(\w+_decoder)\.decoding_block\.(\d+)\.(\d+)\.(?P<rest>.+)$", r"\1.blocks.\2.\3."),
    (r"^(embedding|seediness)_output\.0\.bn\.(\w+)$", r"\1_head.0.norm.\2"),
    (r"^(embedding|seediness)_output\.1\.linear\.weight$", r"\1_head.1.linear.weight"),
]


def _spine_prefix(state: Mapping[str, Any]) -> Optional[str]:
    """The prefix before SPINE's SPICE names (``""``, ``module.``...), None if not SPINE's."""
    for key in state:
        if isinstance(key, str) and key.endswith(_MARKER):
            return key[:-len(_MARKER)]
    return None


def spine_state_dict(payload: Any) -> Optional[Dict[str, torch.Tensor]]:
    """The SPICE state dict of a SPINE checkpoint payload, or None when it is not one.

    Accepts SPINE's ``{"state_dict": ...}`` checkpoints and bare SPINE state
    dicts, with a ``module.`` (DDP) or any other prefix before the SPICE names.
    """
    if not isinstance(payload, Mapping):
        return None
    state = payload.get("state_dict", payload)
    if not isinstance(state, Mapping):
        return None
    prefix = _spine_prefix(state)
    if prefix is None:
        return None
    return {k[len(prefix):]: v for k, v in state.items()
            if k.startswith(prefix) and isinstance(v, torch.Tensor)}


def _rename(name: str) -> str:
    for pattern, target in _RULES:
        match = re.match(pattern, name)
        if not match:
            continue
        head = match.expand(target)
        rest = match.groupdict().get("rest")
        if rest is None:
            return head
        for member, ours in _BLOCK:
            if re.match(member, rest):
                return head + re.sub(member, ours, rest, count=1)
    return "spine:" + name


def spine_to_ours(state: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """SPINE SPICE parameter names -> our SPICE network's, with zero head biases.

    Parameters
    ----------
    state : mapping
        SPINE's SPICE state dict (:func:`spine_state_dict`).

    Returns
    -------
    dict
        Our names (relative to the SPICE stage network). Unmatched names are
        kept as ``spine:<name>``; ``norm_length`` is absent (see
        :func:`complete_spine_state`).
    """
    out = {_rename(k): v for k, v in state.items()}
    for head in ("embedding_head", "seediness_head"):
        weight = out.get(f"{head}.1.linear.weight")
        if weight is not None and f"{head}.1.linear.bias" not in out:
            # SPINE's heads have no bias: a zero bias is the same map.
            out[f"{head}.1.linear.bias"] = weight.new_zeros(weight.shape[0])
    return out


def complete_spine_state(module: torch.nn.Module,
                         state: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Add what a SPINE state dict cannot hold: the module's own ``norm_length``."""
    out = dict(state)
    own = module.state_dict()
    if "norm_length" in own and "norm_length" not in out:
        out["norm_length"] = own["norm_length"]
    return out


def spine_chain_state(chain: Any, state: Mapping[str, torch.Tensor],
                      source: str) -> Dict[str, torch.Tensor]:
    """A whole-chain state dict: SPINE's weights in the SPICE stage, the rest as it is.

    ``predict.weights`` loads a whole chain; a SPINE checkpoint holds only
    SPICE. The other stages (e.g. uresnet) keep the weights they already
    have, from their own ``model.modules.<stage>.weights``.

    Raises
    ------
    CheckpointError
        The chain has no SPICE stage.
    """
    from ..checkpoint import CheckpointError

    name, net = chain.find_stage("set_seediness_frozen")
    if name is None:
        raise CheckpointError(f"{source} is a SPINE SPICE checkpoint but the chain has no "
                              f"spice stage (stages: {', '.join(chain.stage_names)})")
    prefix = f"networks.{name}."
    out = {k: v for k, v in chain.state_dict().items() if not k.startswith(prefix)}
    out.update({prefix + k: v for k, v in complete_spine_state(net, state).items()})
    return out


__all__.append("spine_chain_state")
