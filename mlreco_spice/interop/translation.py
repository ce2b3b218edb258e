"""Bookkeeping of a config translation: every peer key is mapped or named.

A :class:`Translation` walks a peer config as a tree of leaves. Translators
``take`` the keys they understand and record where each went; whatever is
left untaken at the end is reported as having no equivalent, so no peer key
is ever dropped silently.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional

__all__ = ["MISSING", "MappedKey", "Translation", "set_key"]


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


#: Returned by :meth:`Translation.take` for a key the peer config does not set.
MISSING: Any = _Missing()
#: The "peer key" of a line written for a key the peer config leaves to its default.
PEER_DEFAULT = "(not set: peer default)"


@dataclass
class MappedKey:
    """One line of the mapping report.

    Attributes
    ----------
    peer : str
        Dotted key in the peer config.
    value : Any
        Its value there.
    ours : str or None
        Dotted key in our config, ``None`` when there is no equivalent.
    new_value : Any
        The value written under ``ours``.
    note : str
        Why the value changed, or what to use instead.
    """

    peer: str
    value: Any
    ours: Optional[str]
    new_value: Any = None
    note: str = ""
    builtin: bool = False

    def format(self) -> str:
        """``peer = value  ->  ours = new  (note)``, or ``->  (no equivalent): note``."""
        left = self.peer if self.peer == PEER_DEFAULT else f"{self.peer} = {_short(self.value)}"
        if self.builtin:
            return f"{left}  ->  (built in): {self.note}"
        if self.ours is None:
            return f"{left}  ->  (no equivalent): {self.note}"
        right = f"{self.ours} = {_short(self.new_value)}"
        return f"{left}  ->  {right}" + (f"  ({self.note})" if self.note else "")


def _short(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def set_key(tree: Dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``tree[a][b][c] = value`` for ``dotted = "a.b.c"``, creating mappings."""
    keys = dotted.split(".")
    for key in keys[:-1]:
        tree = tree.setdefault(key, {})
    tree[keys[-1]] = value


def _leaves(node: Any, prefix: str) -> Dict[str, Any]:
    if isinstance(node, Mapping) and node:
        out: Dict[str, Any] = {}
        for key, value in node.items():
            out.update(_leaves(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: node}


class Translation:
    """A peer config being translated into ours.

    Parameters
    ----------
    peer : mapping
        The peer config as read from YAML.
    flavour : str
        ``SPINE`` or ``lartpc_mlreco3d`` (for the report header).
    """

    def __init__(self, peer: Mapping[str, Any], flavour: str):
        self.peer = peer
        self.flavour = flavour
        self.config: Dict[str, Any] = {}
        self.lines: List[MappedKey] = []
        self._untaken = _leaves(peer, "")

    # ------------------------------------------------------------ reading --
    def get(self, dotted: str, default: Any = MISSING) -> Any:
        """The peer value at ``dotted`` without taking it (``default`` when absent)."""
        node: Any = self.peer
        for key in dotted.split("."):
            if not isinstance(node, Mapping) or key not in node:
                return default
            node = node[key]
        return node

    def take(self, dotted: str, default: Any = MISSING) -> Any:
        """The peer value at ``dotted``; it and every key below it count as handled.

        The caller must then :meth:`map` or :meth:`unmapped` it.
        """
        value = self.get(dotted, MISSING)
        if value is MISSING:
            return default
        for key in [k for k in self._untaken if k == dotted or k.startswith(dotted + ".")]:
            del self._untaken[key]
        return value

    # ------------------------------------------------------------ writing --
    def map(self, peer_key: str, value: Any, ours: str, new_value: Any, note: str = "") -> None:
        """Record ``peer_key`` as ``ours`` and write ``new_value`` there."""
        set_key(self.config, ours, new_value)
        self.lines.append(MappedKey(peer_key, value, ours, new_value, note))

    def carry(self, peer_key: str, ours: str, convert: Callable[[Any], Any] = lambda v: v,
              note: str = "") -> Any:
        """:meth:`take` ``peer_key`` and, when the peer sets it, :meth:`map` it to ``ours``
        as ``convert(value)``; returns the peer value (:data:`MISSING` when absent)."""
        value = self.take(peer_key)
        if value is not MISSING:
            self.map(peer_key, value, ours, convert(value), note)
        return value

    def unmapped(self, peer_key: str, value: Any, instead: str) -> None:
        """Record ``peer_key`` as having no equivalent; ``instead`` says what to use."""
        self.lines.append(MappedKey(peer_key, value, None, None, instead))

    def unmapped_keys(self, notes: Mapping[str, str]) -> None:
        """:meth:`take` and record as unmapped each key of ``notes`` the peer sets."""
        for key, instead in notes.items():
            value = self.take(key)
            if value is not MISSING:
                self.unmapped(key, value, instead)

    def builtin(self, peer_key: str, value: Any, note: str) -> None:
        """Record ``peer_key`` as what this package always does (no key to write)."""
        self.lines.append(MappedKey(peer_key, value, None, None, note, builtin=True))

    def default(self, ours: str, new_value: Any, note: str) -> None:
        """Write a key the peer config leaves to its own default (recorded as such)."""
        set_key(self.config, ours, new_value)
        self.lines.append(MappedKey(PEER_DEFAULT, None, ours, new_value, note))

    def finish(self, hint: str) -> None:
        """Report every key no translator took as having no equivalent."""
        for key, value in list(self._untaken.items()):
            self.unmapped(key, value, hint)
        self._untaken.clear()

    def report(self) -> str:
        """The key-by-key mapping, one line per key."""
        header = f"# {self.flavour} -> mlreco_spice, key by key"
        return "\n".join([header] + [line.format() for line in self.lines])
