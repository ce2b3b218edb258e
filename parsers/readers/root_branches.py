"""Per-entry access to split ROOT branches through uproot, cached by basket.

A larcv2 product branch is split by ROOT into one leaf per data member, with
base classes as intermediate groups (``sparse3d_data_branch/
larcv::SparseTensor3D/larcv::VoxelSet/_voxel_v/_voxel_v._id``). The group
names depend on the larcv2 version's inheritance, so leaves are found by
their member path (the last component, e.g. ``_voxel_v._id``), not by the
full key.

Reading one entry through ``branch.array(entry_start=e, entry_stop=e + 1)``
costs a basket decompression per call; :class:`LeafCache` reads a whole
basket's entries once and serves the following entries from memory, which
is what sequential and nearby random access need.
"""
from __future__ import annotations

import bisect
from typing import Dict, List, Optional, Sequence

import numpy as np

__all__ = ["leaf_index", "find_member", "LeafCache", "RawEntryCache"]


def leaf_index(tree) -> Dict[str, str]:
    """Map each leaf's member path (last key component) to its full key.

    A member path that occurs twice (it should not in larcv2 products) maps to
    the first key in tree order.
    """
    index: Dict[str, str] = {}
    for key in tree.keys(recursive=True):
        member = key.rsplit("/", 1)[-1]
        index.setdefault(member, key)
    return index


def find_member(index: Dict[str, str], member: str) -> Optional[str]:
    """Full key of ``member`` (``_meta._xnum``), also matching ``<branch>.<member>`` names."""
    if member in index:
        return index[member]
    suffix = "." + member
    for name, key in index.items():
        if name.endswith(suffix):
            return key
    return None



class _BasketRange:
    """Entry boundaries of a branch's baskets."""

    def __init__(self, branch):
        self.starts: List[int] = [int(x) for x in branch.entry_offsets]

    def locate(self, entry: int) -> int:
        k = bisect.bisect_right(self.starts, entry) - 1
        if k < 0 or k >= len(self.starts) - 1:
            raise IndexError(f"entry {entry} outside the branch (0..{self.starts[-1] - 1})")
        return k


class LeafCache:
    """Values of one leaf by entry, read a basket at a time.

    Parameters
    ----------
    branch : uproot TBranch
        A leaf uproot can interpret (numbers, jagged numbers, strings).
    """

    def __init__(self, branch):
        self.branch = branch
        self._ranges = _BasketRange(branch)
        self._start = self._stop = -1
        self._values: Sequence = ()

    def get(self, entry: int):
        """The leaf's value at ``entry`` (a number or a 1-D ndarray)."""
        if not self._start <= entry < self._stop:
            k = self._ranges.locate(entry)
            start, stop = self._ranges.starts[k], self._ranges.starts[k + 1]
            self._values = self.branch.array(entry_start=start, entry_stop=stop, library="np")
            self._start, self._stop = start, stop
        return self._values[entry - self._start]


class RawEntryCache:
    """Raw (decompressed) bytes of one entry of a branch uproot cannot interpret."""

    def __init__(self, branch):
        self.branch = branch
        self._ranges = _BasketRange(branch)
        self._basket_index = -1
        self._data: Optional[np.ndarray] = None
        self._offsets: Optional[np.ndarray] = None

    def get(self, entry: int) -> bytes:
        """Bytes of ``entry`` inside its basket (headers of the basket stripped)."""
        k = self._ranges.locate(entry)
        if k != self._basket_index:
            basket = self.branch.basket(k)
            self._data, self._offsets = basket.data, basket.byte_offsets
            self._basket_index = k
            if self._offsets is None:
                raise ValueError("basket has no entry offsets (not a variable-size branch)")
        local = entry - self._ranges.starts[k]
        return self._data[self._offsets[local]:self._offsets[local + 1]].tobytes()
