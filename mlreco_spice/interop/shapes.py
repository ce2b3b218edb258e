"""larcv/SPINE shape codes and names, and what they become among our classes.

SPINE (and lartpc_mlreco3d) cluster per *shape*: 0 shower, 1 track, 2 Michel,
3 delta, 4 low-energy, 5 ghost (``spine.constants.ParticleShape``; the codes
are larcv's ``kShape*``). We cluster per *class*: HIP and MIP are two classes
that share the track shape, so a per-shape setting for ``track`` applies to
both. Low-energy deposits and ghosts are never clustered here.
"""
from __future__ import annotations

from numbers import Real
from typing import Any, Dict, List, Mapping, Sequence, Tuple, Union

from ..columns import CLASS_NAMES, DELTA, HIP, MICHEL, MIP, SHOWER
from ..errors import UserError

__all__ = ["SHAPE_CODES", "SHAPE_LABELS", "shape_code", "shape_codes", "classes_of_shapes",
           "per_class_thresholds", "UNCLUSTERED_SHAPES"]

#: Shape name (lower case, with the aliases the peers accept) -> code.
SHAPE_CODES: Dict[str, int] = {
    "shower": 0, "track": 1, "michel": 2, "delta": 3,
    "lowe": 4, "low_energy": 4, "le": 4, "lescatter": 4, "le_scatter": 4,
    "ghost": 5,
}
#: Canonical name of each code.
SHAPE_LABELS: Dict[int, str] = {0: "shower", 1: "track", 2: "michel", 3: "delta", 4: "lowe",
                                5: "ghost"}
#: Our classes for each clusterable shape.
_CLASSES_OF_SHAPE: Dict[int, Tuple[int, ...]] = {0: (SHOWER,), 1: (HIP, MIP), 2: (MICHEL,),
                                                 3: (DELTA,)}
#: Shapes SPICE here never clusters, with the reason given in reports.
UNCLUSTERED_SHAPES: Dict[int, str] = {
    4: "low-energy deposits are not clustered here; io.dataset.reader_options."
       "semantic_mapping.low_energy folds them into a class (e.g. Shower) or ignores them",
    5: "ghost voxels are not modelled here; remove them before clustering",
}


def shape_code(shape: Union[int, str]) -> int:
    """A shape name (``track``, ``lowe``...) or code -> code.

    Raises
    ------
    UserError
        Unknown name or code.
    """
    if isinstance(shape, str):
        key = shape.strip().lower()
        if key.lstrip("-").isdigit():
            return shape_code(int(key))
        if key not in SHAPE_CODES:
            raise UserError(f"unknown shape '{shape}'; known: {', '.join(SHAPE_LABELS.values())}")
        return SHAPE_CODES[key]
    code = int(shape)
    if code not in SHAPE_LABELS:
        raise UserError(f"unknown shape code {code}; known: "
                        + ", ".join(f"{c} {n}" for c, n in SHAPE_LABELS.items()))
    return code


def shape_codes(shapes: Sequence[Union[int, str]]) -> List[int]:
    """:func:`shape_code` of each, order kept."""
    return [shape_code(s) for s in shapes]


def classes_of_shapes(codes: Sequence[int]) -> List[str]:
    """Our class names for the clusterable shapes among ``codes`` (others are skipped)."""
    out: List[str] = []
    for code in codes:
        for cls in _CLASSES_OF_SHAPE.get(code, ()):
            if CLASS_NAMES[cls] not in out:
                out.append(CLASS_NAMES[cls])
    return out


def per_class_thresholds(values: Any, shapes: Sequence[int], what: str,
                         list_by_code: bool = False) -> Dict[str, float]:
    """Per-shape thresholds -> ``{class name: value}`` for the owned clusterable shapes.

    Parameters
    ----------
    values : float, sequence or mapping
        A scalar (every shape), a sequence (SPINE: one per entry of
        ``shapes``; lartpc_mlreco3d: indexed by shape code, see
        ``list_by_code``) or a mapping keyed by shape name or code.
    shapes : sequence of int
        Shape codes the model owns.
    what : str
        Peer key name, for error messages.
    list_by_code : bool
        A sequence is indexed by shape code rather than by ``shapes`` order.

    Raises
    ------
    UserError
        A sequence of the wrong length, or an unknown shape key.
    """
    if isinstance(values, Real):
        by_shape = {code: float(values) for code in shapes}
    elif isinstance(values, Mapping):
        by_shape = {shape_code(k): float(v) for k, v in values.items()}
    else:
        values = list(values)
        if list_by_code:
            by_shape = {code: float(values[code]) for code in shapes if code < len(values)}
        elif len(values) != len(shapes):
            raise UserError(f"{what} has {len(values)} values but {len(shapes)} shapes are owned "
                            f"({', '.join(SHAPE_LABELS[c] for c in shapes)})")
        else:
            by_shape = dict(zip(shapes, (float(v) for v in values)))
    out: Dict[str, float] = {}
    for code, value in by_shape.items():
        for cls in _CLASSES_OF_SHAPE.get(code, ()):
            out[CLASS_NAMES[cls]] = value
    return out
