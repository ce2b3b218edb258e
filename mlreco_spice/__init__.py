"""mlreco_spice: SPICE particle clustering as a LArTPC reconstruction-chain stage.

The package imports without MinkowskiEngine: networks pull it in through
:mod:`mlreco_spice.backend` only when built.

Public API
----------
columns      tensor column names and the five class names
registry     MODELS / PARSERS / READERS factories
config       load_config and friends
metrics      adjusted_rand_index, purity, efficiency, evaluate_event
cluster      SPICEClusterer, cluster_events
"""
from __future__ import annotations

import os as _os

# MinkowskiEngine resets the OpenMP thread count on every call; with the
# default (active) wait policy idle OpenMP threads then spin and slow every
# torch op on a busy machine by up to ~40x. Effective only if set before torch
# is first imported, so it is set here, on our package's import.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

from . import columns  # noqa: E402
from .config import ConfigError, load_config  # noqa: E402
from .errors import BadEventError, DataError, UserError  # noqa: E402
from .registry import MODELS, PARSERS, READERS, Registry, RegistryError  # noqa: E402

__all__ = ["__version__", "columns", "load_config", "ConfigError", "UserError", "DataError",
           "BadEventError", "MODELS", "PARSERS", "READERS", "Registry", "RegistryError"]
