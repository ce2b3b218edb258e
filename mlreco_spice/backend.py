"""The one place that imports MinkowskiEngine.

MinkowskiEngine 0.5.4 does ``from collections import Sequence`` which fails on
Python >= 3.10 (the ABCs moved to :mod:`collections.abc`). We restore the old
aliases before importing it. Nothing else in the package imports
MinkowskiEngine at import time, so metrics, analysis and the simulator work on
machines without a compiled backend.

Usage::

    from mlreco_spice.backend import import_minkowski
    ME = import_minkowski()
"""
from __future__ import annotations

import collections
import collections.abc
import importlib
import warnings
from types import ModuleType
from typing import Optional

from .errors import UserError

__all__ = ["BackendMissingError", "import_minkowski", "minkowski_available", "INSTALL_HINT",
           "set_sparse_threads"]

INSTALL_HINT = (
    "MinkowskiEngine 0.5.4 is required for the networks but is not importable.\n"
    "Install it with `make install` in the repository, or by hand:\n"
    "  apt-get install -y libopenblas-dev\n"
    "  pip install torch==2.13.0 'numpy<2' 'setuptools<60' wheel ninja\n"
    "  MAX_JOBS=2 pip install --no-build-isolation minkowskiengine==0.5.4\n"
    "For CUDA builds see the README's GPU section."
)

_ME: Optional[ModuleType] = None


class BackendMissingError(UserError, ImportError):
    """MinkowskiEngine is absent or broken; the message says how to install it."""


def _apply_python310_aliases() -> None:
    # Why: ME 0.5.4 imports Sequence & co. from `collections` (removed in 3.10).
    for name in ("Sequence", "Mapping", "MutableMapping", "Iterable", "Callable"):
        if not hasattr(collections, name):
            setattr(collections, name, getattr(collections.abc, name))


def import_minkowski(module_name: str = "MinkowskiEngine") -> ModuleType:
    """Import and return MinkowskiEngine, with the Python >= 3.10 fix applied.

    Parameters
    ----------
    module_name : str
        Module to import; only tests change it (to exercise the error path).

    Raises
    ------
    BackendMissingError
        If the module cannot be imported. The message includes the original
        error and the install commands.
    """
    global _ME
    if _ME is not None and module_name == "MinkowskiEngine":
        return _ME
    _apply_python310_aliases()
    try:
        with warnings.catch_warnings():
            # A CPU-only build warns on import; that is the expected build here.
            warnings.filterwarnings("ignore", message=".*compiled with CPU_ONLY.*")
            module = importlib.import_module(module_name)
    except Exception as err:  # ImportError, or OSError from a broken .so
        raise BackendMissingError(f"cannot import {module_name}: {err}\n{INSTALL_HINT}") from err
    if module_name == "MinkowskiEngine":
        _ME = module
    return module


def minkowski_available() -> bool:
    """True if MinkowskiEngine imports (never raises)."""
    try:
        import_minkowski()
        return True
    except BackendMissingError:
        return False


def set_sparse_threads(count: int) -> bool:
    """Set the BLAS thread count of MinkowskiEngine's CPU kernels.

    ME's CPU convolutions call OpenBLAS (linked from the system, separate
    from torch's own threading), whose multi-threaded GEMM sums in a
    thread-dependent order: results then differ in the last digits between
    runs. One thread makes training bit-reproducible on CPU
    (``train.deterministic``), at some speed cost; torch.set_num_threads does
    not reach this library.

    Returns
    -------
    bool
        False when no OpenBLAS with ``openblas_set_num_threads`` is loaded.
    """
    import ctypes

    import_minkowski()
    for name in ("libopenblas.so.0", "libopenblas.so", "libopenblasp-r0.so"):
        try:
            blas = ctypes.CDLL(name)
            blas.openblas_set_num_threads(int(count))
            return True
        except (OSError, AttributeError):
            continue
    return False
