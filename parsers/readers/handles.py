"""A small least-recently-used cache of open file handles, shared by the readers.

Datasets span hundreds of files; keeping every one open exhausts descriptors,
reopening per event is slow. Readers keep the last few open.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Optional

__all__ = ["HandleCache", "CachedHandles"]


class HandleCache:
    """Open handles by path, at most ``max_open`` at once (least recently used closed first).

    Parameters
    ----------
    opener : callable
        ``opener(path)`` returns a handle with a ``close()`` method (or raises).
    max_open : int
        Handles kept open.
    """

    def __init__(self, opener: Callable[[str], Any], max_open: int = 8):
        self._opener = opener
        self._max_open = max(1, int(max_open))
        self._open: "OrderedDict[str, Any]" = OrderedDict()

    def get(self, path: str) -> Any:
        """The handle of ``path``, opened on first use."""
        if path in self._open:
            self._open.move_to_end(path)
            return self._open[path]
        handle = self._opener(path)
        if len(self._open) >= self._max_open:
            self._open.popitem(last=False)[1].close()
        self._open[path] = handle
        return handle

    def close(self) -> None:
        """Close every open handle."""
        while self._open:
            self._open.popitem(last=False)[1].close()


class CachedHandles:
    """Mixin for readers: ``self._open(file)`` through a lazily made :class:`HandleCache`.

    Subclasses set ``_opener`` (a callable ``path -> handle``). The cache is
    created on first use, which also covers a reader unpickled in a
    DataLoader worker (the base Reader drops ``_handle*`` attributes).
    """

    _opener: Callable[[str], Any]
    _max_open_files = 8
    _handles: Optional[HandleCache] = None

    def _open(self, file: str) -> Any:
        if self._handles is None:
            self._handles = HandleCache(type(self)._opener, self._max_open_files)
        return self._handles.get(file)

    def close(self) -> None:
        if self._handles is not None:
            self._handles.close()
        self._handles = None
