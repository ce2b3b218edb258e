"""larcv ``ShapeType_t`` codes (and PILArNet-M semantics) -> our five classes.

larcv2's ``DataFormatTypes.h`` enumerates particle shapes as
``kShapeShower=0, kShapeTrack=1, kShapeMichel=2, kShapeDelta=3,
kShapeLEScatter=4, kShapeGhost=5, kShapeUnknown=6``. PILArNet-M's per-cluster
semantic column uses the same first five codes (0 shower, 1 track, 2 michel,
3 delta, 4 low-energy deposit; PoLAr-MAE ``polarmae/datasets/PILArNet.py``).

Ours (:mod:`mlreco_spice.columns`) are 0 HIP, 1 MIP, 2 Shower, 3 Delta,
4 Michel. A track is a HIP when its particle is heavy (protons by default,
PDG 2212), else a MIP. Low-energy deposits are ignored (class -1) by default,
or folded into any class by configuration.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from mlreco_spice.columns import DELTA, HIP, MICHEL, MIP, SHOWER, UNLABELED, class_index
from mlreco_spice.errors import UserError

__all__ = ["SHAPE_SHOWER", "SHAPE_TRACK", "SHAPE_MICHEL", "SHAPE_DELTA", "SHAPE_LESCATTER",
           "SHAPE_NAMES", "ShapeMapping", "class_to_shape", "DROP"]

SHAPE_SHOWER, SHAPE_TRACK, SHAPE_MICHEL, SHAPE_DELTA, SHAPE_LESCATTER = range(5)
SHAPE_NAMES = ("shower", "track", "michel", "delta", "low_energy")

#: "Class" of deposits removed from the event, input included (``low_energy: drop``):
#: training and inference then see the same voxels, with or without labels.
DROP = -2

_CLASS_TO_SHAPE = {HIP: SHAPE_TRACK, MIP: SHAPE_TRACK, SHOWER: SHAPE_SHOWER,
                   DELTA: SHAPE_DELTA, MICHEL: SHAPE_MICHEL}


def class_to_shape(semantic: int) -> int:
    """Our class -> larcv shape code (HIP and MIP are both tracks); -1 -> low-energy."""
    return _CLASS_TO_SHAPE.get(int(semantic), SHAPE_LESCATTER)


def _class_or_ignore(value: Union[str, int, None]) -> int:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("ignore", "none")):
        return UNLABELED
    if isinstance(value, str) and value.strip().lower() == "drop":
        return DROP
    if isinstance(value, int) and value == UNLABELED:
        return UNLABELED
    return class_index(value)


@dataclass(frozen=True)
class ShapeMapping:
    """How larcv shape codes become our semantic classes.

    Attributes
    ----------
    shower, michel, delta : int
        Our class for those shapes (default Shower, Michel, Delta).
    low_energy : int
        Our class for low-energy deposits; -1 (ignored: kept in the input, left out
        of losses and metrics) by default; :data:`DROP` removes them from the event.
    hip_pdg : tuple of int
        PDG codes (absolute value) whose tracks are HIP; other tracks are MIP.
    """

    shower: int = SHOWER
    michel: int = MICHEL
    delta: int = DELTA
    low_energy: int = UNLABELED
    hip_pdg: Tuple[int, ...] = (2212,)

    @classmethod
    def from_options(cls, options: Optional[Mapping] = None) -> "ShapeMapping":
        """Build from a config mapping.

        Keys (all optional): ``shower``, ``michel``, ``delta`` (class names),
        ``low_energy`` (``ignore``, ``drop`` or a class name), ``hip_pdg`` (list of
        PDG codes).

        Raises
        ------
        UserError
            Unknown keys or class names.
        """
        options = dict(options or {})
        known = {"shower", "michel", "delta", "low_energy", "hip_pdg"}
        unknown = set(options) - known
        if unknown:
            raise UserError(f"unknown semantic mapping option(s) {sorted(unknown)}; "
                            f"valid: {sorted(known)}")
        try:
            kwargs = {k: _class_or_ignore(options[k]) for k in ("shower", "michel", "delta",
                                                                 "low_energy") if k in options}
        except ValueError as err:
            raise UserError(f"semantic mapping: {err}") from None
        if "hip_pdg" in options:
            kwargs["hip_pdg"] = tuple(abs(int(p)) for p in options["hip_pdg"])
        return cls(**kwargs)

    def classes(self, shapes: Sequence[int], pdgs: Sequence[int]) -> np.ndarray:
        """Our class for each (shape, pdg) pair; unknown shapes give -1.

        Parameters
        ----------
        shapes : array of int
            larcv shape codes (or PILArNet-M semantic codes).
        pdgs : array of int
            PDG code of each particle (only used for tracks).

        Returns
        -------
        ndarray of int64
        """
        shapes = np.asarray(shapes, dtype=np.int64)
        pdgs = np.abs(np.asarray(pdgs, dtype=np.int64))
        out = np.full(shapes.shape, UNLABELED, dtype=np.int64)
        out[shapes == SHAPE_SHOWER] = self.shower
        out[shapes == SHAPE_MICHEL] = self.michel
        out[shapes == SHAPE_DELTA] = self.delta
        out[shapes == SHAPE_LESCATTER] = self.low_energy
        track = shapes == SHAPE_TRACK
        heavy = np.isin(pdgs, np.asarray(self.hip_pdg, dtype=np.int64))
        out[track & heavy] = HIP
        out[track & ~heavy] = MIP
        return out
