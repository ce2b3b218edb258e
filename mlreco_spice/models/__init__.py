"""Networks of the chain stages (sparse CNNs on MinkowskiEngine).

Importing this package registers the stages in
:data:`mlreco_spice.registry.MODELS` (``uresnet``, ``spice``); MinkowskiEngine
itself is imported only when a network is built.

blocks      norm + activation, residual block, batch-norm folding
coords      input validation, sparse tensor construction, coordinate normalisation
uresnet     encoder, decoder, UResNetSegmentation (stage ``uresnet``)
spice       SPICE (stage ``spice``)
"""
from __future__ import annotations

from .blocks import fold_batchnorm
from .coords import InputShapeError
from .spice import SPICE
from .uresnet import UResNetDecoder, UResNetEncoder, UResNetSegmentation

__all__ = ["SPICE", "UResNetSegmentation", "UResNetEncoder", "UResNetDecoder",
           "fold_batchnorm", "InputShapeError"]
