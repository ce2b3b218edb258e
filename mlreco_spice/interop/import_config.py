"""``mlreco-spice import-config``: a peer's SPICE config -> our chain config, key by key.

:func:`import_peer_config` detects the peer (SPINE or lartpc_mlreco3d) and
translates; :func:`import_config_file` also validates the result against our
schema and writes it (atomically) with the mapping as a comment header.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, Mapping, Tuple, Union

import yaml

from ..atomic import atomic_write_text
from ..config import ConfigError, fill_defaults, validate_config, yaml_load
from ..errors import UserError
from .mlreco3d_config import looks_like_mlreco3d, translate_mlreco3d
from .spine_config import translate_spine
from .translation import Translation

log = logging.getLogger(__name__)

__all__ = ["import_peer_config", "import_config_file", "find_modules"]


def find_modules(peer: Mapping[str, Any]) -> Tuple[str, Dict[str, Any]]:
    """Where the SPICE blocks are: ``model.modules``, ``modules`` or the top level.

    Returns
    -------
    (str, dict)
        Dotted prefix (``""`` for the top level) and that mapping.

    Raises
    ------
    UserError
        No ``spice`` block anywhere.
    """
    for prefix in ("model.modules", "modules", ""):
        node: Any = peer
        for key in filter(None, prefix.split(".")):
            node = node.get(key) if isinstance(node, Mapping) else None
        if isinstance(node, Mapping) and isinstance(node.get("spice"), Mapping):
            return prefix, dict(node)
    raise UserError("no SPICE block found: expected model.modules.spice (SPINE, "
                    "lartpc_mlreco3d), modules.spice or a top-level spice block")


def import_peer_config(peer: Mapping[str, Any]) -> Translation:
    """Translate a SPINE or lartpc_mlreco3d SPICE config.

    Parameters
    ----------
    peer : mapping
        The peer config as read from YAML.

    Returns
    -------
    Translation
        ``.config`` (our chain config, not yet defaulted), ``.report()`` (the
        key-by-key mapping) and ``.flavour``.
    """
    if not isinstance(peer, Mapping):
        raise UserError("the peer config is not a YAML mapping")
    prefix, modules = find_modules(peer)
    if looks_like_mlreco3d(dict(peer), modules):
        translation = Translation(peer, "lartpc_mlreco3d")
        translate_mlreco3d(translation, prefix)
    else:
        translation = Translation(peer, "SPINE")
        translate_spine(translation, prefix)
    return translation


def import_config_file(source: Union[str, Path], target: Union[str, Path],
                       overwrite: bool = False) -> Translation:
    """Read ``source``, translate it, validate the result and write ``target``.

    Parameters
    ----------
    source : path
        SPINE or lartpc_mlreco3d YAML.
    target : path
        Our chain config to write.
    overwrite : bool
        Replace an existing ``target``.

    Returns
    -------
    Translation

    Raises
    ------
    UserError
        Unreadable source, existing target, or a translation that does not
        validate (a bug here, reported with the key).
    """
    source, target = Path(source), Path(target)
    if not source.is_file():
        raise UserError(f"peer config not found: {source}")
    if target.exists() and not overwrite:
        raise UserError(f"{target} exists; choose another -o or pass --overwrite")
    try:
        peer = yaml_load(source.read_text())
    except yaml.YAMLError as err:
        raise UserError(f"{source} is not valid YAML: {err}") from None
    translation = import_peer_config(peer)
    try:
        validate_config(translation.config)
        fill_defaults(translation.config)
    except ConfigError as err:
        raise UserError(f"the translated config does not validate ({err}); please report "
                        f"this with {source}") from None
    header = [f"# Imported from {source.name} ({translation.flavour}) by `mlreco-spice "
              f"import-config`.", "#"] + ["# " + line for line in translation.report().splitlines()]
    body = yaml.safe_dump(translation.config, sort_keys=False, default_flow_style=None)
    atomic_write_text(target, "\n".join(header) + "\n\n" + body)
    log.info("wrote %s (%d peer keys mapped)", target, len(translation.lines))
    return translation
