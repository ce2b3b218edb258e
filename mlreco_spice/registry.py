"""Name -> implementation registries (the factory interface).

A :class:`Registry` maps a config ``name`` to a Python object. Registration
is by decorator, in the style of detectron2 and PyTorch Geometric::

    @MODELS.register("spice", loss=SPICELoss)
    class SPICE(nn.Module): ...

    network_cls, loss_cls = MODELS.get("spice")

Registries are filled when the module defining an entry is imported.
:func:`load_builtins` imports every built-in module so that lookups by name
work without the caller knowing where things live; it imports heavy optional
dependencies (MinkowskiEngine) only when a model is actually looked up.
"""
from __future__ import annotations

import difflib
import importlib
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

__all__ = ["Registry", "RegistryError", "MODELS", "PARSERS", "READERS"]


class RegistryError(KeyError):
    """Unknown or duplicate registry name. The message lists valid names."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0]) if self.args else ""


class Registry:
    """A named mapping from config names to objects.

    Parameters
    ----------
    kind : str
        What the registry holds ("model", "parser", ...), used in messages.
    builtin_modules : list of str, optional
        Modules imported lazily on the first lookup so that their
        ``@register`` decorators run.
    """

    def __init__(self, kind: str, builtin_modules: Optional[List[str]] = None):
        self.kind = kind
        self._entries: Dict[str, Any] = {}
        self._builtin_modules = list(builtin_modules or [])
        self._builtins_loaded = False

    def register(self, name: Optional[str] = None, **extra: Any) -> Callable:
        """Decorator registering an object under ``name`` (default: its ``__name__``).

        Keyword arguments are stored with it; for models, ``loss=LossClass``
        makes :meth:`get` return the ``(network, loss)`` pair.
        """

        def decorator(obj: Any) -> Any:
            key = name or obj.__name__
            if key in self._entries and self._entries[key][0] is not obj:
                raise RegistryError(f"{self.kind} '{key}' is already registered "
                                    f"(by {self._entries[key][0]!r})")
            self._entries[key] = (obj, extra)
            return obj

        return decorator

    def _load_builtins(self) -> None:
        if self._builtins_loaded:
            return
        self._builtins_loaded = True
        for module in self._builtin_modules:
            importlib.import_module(module)

    def get(self, name: str) -> Any:
        """Return the object registered as ``name``.

        For entries registered with extra keywords (models), returns a tuple
        ``(obj, *extra values)`` in registration order, e.g. ``(network, loss)``.

        Raises
        ------
        RegistryError
            If ``name`` is unknown; the message lists registered names and the
            closest match.
        """
        if name not in self._entries:
            self._load_builtins()
        if name not in self._entries:
            known = sorted(self._entries)
            close = difflib.get_close_matches(str(name), known, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise RegistryError(f"unknown {self.kind} '{name}'.{hint} "
                                f"Registered: {', '.join(known) or '(none)'}")
        obj, extra = self._entries[name]
        return (obj, *extra.values()) if extra else obj

    def names(self) -> List[str]:
        """All registered names, built-ins included, sorted."""
        self._load_builtins()
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        self._load_builtins()
        return name in self._entries

    def __iter__(self) -> Iterator[Tuple[str, Any]]:
        self._load_builtins()
        return iter((k, v[0]) for k, v in sorted(self._entries.items()))

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {sorted(self._entries)})"


#: Chain stages: name -> (network class, loss class).
MODELS = Registry("model", ["mlreco_spice.models"])
#: Parsers: schema ``parser`` name -> function(event products, **config).
PARSERS = Registry("parser", ["parsers.sparse", "parsers.cluster"])
#: File formats: ``io.dataset.format`` name -> reader class.
READERS = Registry("reader", ["parsers.readers.larcv3", "parsers.readers.larcv2_root",
                                       "parsers.readers.pilarnet_m"])
