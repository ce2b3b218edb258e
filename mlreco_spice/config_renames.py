"""Config keys renamed with a change of unit (:data:`mlreco_spice.defaults.RENAMED_KEYS`).

The clusterer's distances moved from voxels to cm (issue 18): ``connect_radius: 3``
meant 3 voxels and would mean 3 cm under the new unit, so a number under an old
name is refused with the new name (:func:`renamed_message`). ``null`` (step off)
has no unit: it still turns the step off (:func:`renamed_off`), so configs and
``--set`` lines that switch a step off keep their meaning.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

from .defaults import RENAMED_KEYS

__all__ = ["renamed_key", "renamed_message", "renamed_off"]


def renamed_key(parent: Tuple[str, ...], key: str) -> Optional[str]:
    """The successor of ``key`` under the key path ``parent``, or None if not renamed."""
    return RENAMED_KEYS.get(tuple(parent), {}).get(key)


def renamed_message(parent: Tuple[str, ...], key: str) -> str:
    """The validation error for a number under the old name ``key``."""
    old, new = ".".join(parent + (key,)), ".".join(parent + (renamed_key(parent, key),))
    return (f"'{old}' was in voxels; it is renamed '{new}', in cm (the voxel pitch comes "
            f"from each event's image meta: 3 voxels of 3 mm = 0.9 cm)")


def renamed_off(tree: Dict[str, Any]) -> Dict[str, Any]:
    """``tree`` with each renamed key set to null replaced by its successor set to null.

    Applied to each config file before it is merged over its includes, and to the
    overrides, so ``connect_radius: null`` still turns the connectivity step off
    over a file that sets ``connect_radius_cm``.
    """
    for parent, names in RENAMED_KEYS.items():
        node: Any = tree
        for key in parent:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            for old, new in names.items():
                if old in node and node[old] is None:
                    del node[old]
                    node[new] = None
    return tree
