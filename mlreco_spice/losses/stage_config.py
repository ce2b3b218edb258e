"""Complete a stage block with its defaults (used by the networks and losses).

The networks and losses take the whole ``model.modules.<stage>`` block as
produced by :func:`mlreco_spice.config.fill_defaults`. Tests and notebooks
often pass a partial block; :func:`stage_block` fills the rest from the same
defaults, so both paths see identical settings.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

from ..config import fill_defaults

__all__ = ["stage_block"]


def stage_block(stage: str, stage_cfg: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Return ``stage_cfg`` merged over the defaults of ``stage`` (a new dict).

    Parameters
    ----------
    stage : str
        Stage name in :data:`mlreco_spice.defaults.STAGE_DEFAULTS` ("spice", "uresnet").
    stage_cfg : dict, optional
        The (possibly partial) ``model.modules.<stage>`` block.
    """
    if stage_cfg is not None and not isinstance(stage_cfg, dict):
        raise TypeError(f"stage config for '{stage}' must be a mapping, "
                        f"not {type(stage_cfg).__name__}")
    full = fill_defaults({"model": {"modules": {stage: dict(stage_cfg or {})}}})
    return full["model"]["modules"][stage]
