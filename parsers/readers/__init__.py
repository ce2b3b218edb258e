"""File-format readers, registered in ``READERS`` by ``io.dataset.format`` name.

:func:`open_reader` picks the format from the config or detects it from the
first file's content.
"""
from __future__ import annotations

import importlib
from typing import Iterable, Optional, Sequence, Union

from mlreco_spice.errors import DataError
from mlreco_spice.registry import READERS

from .base import Reader, expand_files

__all__ = ["Reader", "expand_files", "open_reader", "detect_format", "reader_class"]

# Modules defining readers; imported lazily so that h5py/uproot load only when used.
_FORMAT_MODULES = {
    "larcv3": "parsers.readers.larcv3",
    "larcv2": "parsers.readers.larcv2_root",
    "pilarnet_m": "parsers.readers.pilarnet_m",
}


def detect_format(file: str) -> str:
    """Guess a file's format from its content.

    ROOT files start with ``root``; HDF5 files with the HDF5 signature, then
    larcv3 files have ``Data``/``Events`` groups while PILArNet-M files have
    ``point`` and ``cluster`` datasets.
    """
    try:
        with open(file, "rb") as stream:
            head = stream.read(8)
    except OSError as err:
        raise DataError(f"cannot open input file {file}: {err.strerror}") from None
    if not head:
        raise DataError(f"input file {file} is empty (0 bytes)")
    if head[:4] == b"root":
        return "larcv2"
    if head == b"\x89HDF\r\n\x1a\n":
        import h5py

        try:
            with h5py.File(file, "r") as h5:
                keys = set(h5.keys())
        except (OSError, RuntimeError) as err:  # h5py raises RuntimeError for damaged B-trees
            raise DataError(f"input file {file} is a corrupt or truncated HDF5 file: {err}") from None
        if {"point", "cluster"} <= keys:
            return "pilarnet_m"
        if "Data" in keys or "Events" in keys:
            return "larcv3"
        raise DataError(f"input file {file} is HDF5 but neither larcv3 (no Data/Events groups) "
                        f"nor PILArNet-M (no point/cluster datasets); top-level keys: "
                        f"{', '.join(sorted(keys)) or '(none)'}")
    raise DataError(f"input file {file} is neither HDF5 nor ROOT (first bytes {head!r})")


def reader_class(fmt: str) -> type:
    """The reader class of format ``fmt`` (a READERS name), importing only its module."""
    if fmt in _FORMAT_MODULES:
        importlib.import_module(_FORMAT_MODULES[fmt])
    return READERS.get(fmt)


def open_reader(files: Union[str, Iterable[str]], fmt: str = "auto",
                products: Optional[Sequence[str]] = None, **options) -> Reader:
    """Open a reader over files, paths, globs or directories.

    Parameters
    ----------
    files : str or iterable of str
        Inputs, expanded by :func:`expand_files`.
    fmt : str
        ``auto`` (detect from the first file), ``larcv3``, ``larcv2`` or ``pilarnet_m``.
    products : sequence of str, optional
        Products to read (all when ``None``).
    **options
        Format-specific reader options (``io.dataset.reader_options``).
    """
    paths = expand_files(files)
    if fmt == "auto":
        fmt = detect_format(paths[0])
    reader_cls = reader_class(fmt)
    try:
        return reader_cls(paths, products=products, **options)
    except TypeError as err:
        raise DataError(f"io.dataset.reader_options {sorted(options)} do not fit the {fmt} "
                        f"reader: {err}") from None
