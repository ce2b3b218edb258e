"""The reader interface every file format implements, and file-list expansion.

A reader gives random access by global entry over many files of one format.
Files are opened lazily (on first read, per process), so a reader can be
handed to ``torch.utils.data.DataLoader`` workers.
"""
from __future__ import annotations

import abc
import bisect
import glob
import os
from typing import Iterable, List, Optional, Sequence, Tuple, Union

from mlreco_spice.errors import DataError

from ..event import EventRecord
from .larcv_shapes import ShapeMapping

__all__ = ["Reader", "expand_files"]


def expand_files(patterns: Union[str, Iterable[str]]) -> List[str]:
    """Expand paths, globs and directories into a sorted-within-pattern file list.

    Order follows the patterns; each glob's matches are sorted; a directory
    contributes its ``*.h5``, ``*.hdf5`` and ``*.root`` files. Duplicates are
    removed (first occurrence kept).

    Raises
    ------
    DataError
        If a pattern matches nothing (the message names it).
    """
    if isinstance(patterns, (str, os.PathLike)):
        patterns = [patterns]
    files: List[str] = []
    for pattern in patterns:
        pattern = os.path.expanduser(str(pattern))
        if os.path.isdir(pattern):
            matches = sorted(p for ext in ("h5", "hdf5", "root")
                             for p in glob.glob(os.path.join(pattern, f"*.{ext}")))
        elif glob.has_magic(pattern):
            matches = sorted(glob.glob(pattern))
        else:
            if not os.path.exists(pattern):
                raise DataError(f"input file not found: {pattern}")
            matches = [pattern]
        if not matches:
            raise DataError(f"no input files match '{pattern}'")
        files.extend(os.path.abspath(m) for m in matches)
    seen, unique = set(), []
    for f in files:
        if f not in seen:
            seen.add(f)
            unique.append(f)
    return unique


class Reader(abc.ABC):
    """Random access to events in a list of files of one format.

    Subclasses implement :meth:`count_entries`, :meth:`read_entry` and
    :meth:`list_products`; this base class handles the global entry index.

    Parameters
    ----------
    files : sequence of str
        Files (already expanded, see :func:`expand_files`).
    products : sequence of str, optional
        Product names (``sparse3d_data``, ``cluster3d_pcluster``, ...) to read;
        ``None`` reads all. A product missing from a file is a
        :class:`DataError` listing the products the file has.
    """

    #: Name in the READERS registry and in ``io.dataset.format``.
    format_name: str = ""
    #: What this reader already gives in our classes, whatever ``io.dataset.labels``
    #: says: ``"semantics"`` (sparse3d semantic products), ``"particles"`` (particle
    #: classes). :mod:`parsers.label_schemes` translates the rest.
    native_classes: Tuple[str, ...] = ()
    #: Shape codes -> our classes (``reader_options.semantic_mapping``).
    mapping: ShapeMapping = ShapeMapping()

    def __init__(self, files: Sequence[str], products: Optional[Sequence[str]] = None):
        self.files = [str(f) for f in files]
        if not self.files:
            raise DataError("no input files given")
        self.products = list(products) if products is not None else None
        self._offsets: Optional[List[int]] = None

    # -- to implement -------------------------------------------------------
    @abc.abstractmethod
    def count_entries(self, file: str) -> int:
        """Number of events in ``file`` (raise DataError if unreadable)."""

    @abc.abstractmethod
    def read_entry(self, file: str, entry: int) -> EventRecord:
        """Read one event; ``record.file``/``record.entry`` must be set."""

    @abc.abstractmethod
    def list_products(self, file: str) -> List[str]:
        """Product names present in ``file``."""

    def close(self) -> None:
        """Release open file handles (reopened lazily on the next read)."""

    # -- provided -----------------------------------------------------------
    def _ensure_offsets(self) -> List[int]:
        if self._offsets is None:
            offsets = [0]
            for f in self.files:
                offsets.append(offsets[-1] + self.count_entries(f))
            self._offsets = offsets
        return self._offsets

    def __len__(self) -> int:
        return self._ensure_offsets()[-1]

    def entries_per_file(self) -> List[int]:
        offsets = self._ensure_offsets()
        return [b - a for a, b in zip(offsets[:-1], offsets[1:])]

    def locate(self, index: int) -> Tuple[str, int]:
        """Global entry -> (file, entry within that file)."""
        offsets = self._ensure_offsets()
        if not 0 <= index < offsets[-1]:
            raise IndexError(f"entry {index} out of range (0..{offsets[-1] - 1})")
        k = bisect.bisect_right(offsets, index) - 1
        return self.files[k], index - offsets[k]

    def __getitem__(self, index: int) -> EventRecord:
        file, entry = self.locate(index)
        return self.read_entry(file, entry)

    def __getstate__(self):
        # Open handles do not cross process boundaries (DataLoader workers).
        state = self.__dict__.copy()
        for key in [k for k in state if k.startswith("_handle")]:
            state[key] = None
        return state
