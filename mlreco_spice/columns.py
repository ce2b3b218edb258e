"""Tensor column names and class names, defined once.

Every other module indexes columns through these names, never through bare
numbers. Layouts:

* **Voxel tensor** (``collate`` output, network input)::

      [batch_id, x, y, z, feature_0, feature_1, ...]

* **Cluster label tensor** (``cluster3d`` parser output, aligned with the
  voxel tensor row for row)::

      [batch_id, x, y, z, instance_id, semantic_class]

* **Segmentation label tensor**: ``[batch_id, x, y, z, semantic_class]``.
"""
from __future__ import annotations

from typing import Dict, Iterable, List, Sequence, Tuple, Union

__all__ = [
    "BATCH_COL", "COORD_COLS", "VALUE_COL", "FEATURE_START",
    "INSTANCE_COL", "SEMANTIC_COL", "SEG_LABEL_COL",
    "INSTANCE_LABEL", "SEMANTIC_LABEL", "LABEL_NAMES",
    "CLASS_NAMES", "NUM_CLASSES", "HIP", "MIP", "SHOWER", "DELTA", "MICHEL",
    "CLASS_PRECEDENCE", "UNLABELED", "class_index", "class_indices",
    "TRACK_NAME", "class_names", "shown_classes",
    "PARSER_COORD_COLS", "PARSER_FEATURE_START", "PARSER_INSTANCE_COL", "PARSER_SEMANTIC_COL",
]

# --- voxel tensor -----------------------------------------------------------
BATCH_COL = 0
COORD_COLS: Tuple[int, int, int] = (1, 2, 3)
#: First feature column (energy when the schema's first product is energy).
FEATURE_START = 4
VALUE_COL = FEATURE_START

# --- label tensors (same leading columns as the voxel tensor) ---------------
INSTANCE_COL = 4
SEMANTIC_COL = 5
SEG_LABEL_COL = 4

# --- per-voxel label arrays as returned by the cluster3d parser (N x 2) -----
INSTANCE_LABEL = 0
SEMANTIC_LABEL = 1
LABEL_NAMES = ("instance", "semantic")

# --- parser outputs: the same layouts without the batch column ---------------
# Parsers return one event; collate prepends the batch column at BATCH_COL, so
# a parser-output column is its tensor column shifted down by one.
PARSER_COORD_COLS: Tuple[int, ...] = tuple(c - 1 for c in COORD_COLS)
PARSER_FEATURE_START = FEATURE_START - 1
PARSER_INSTANCE_COL = INSTANCE_COL - 1
PARSER_SEMANTIC_COL = SEMANTIC_COL - 1

#: Label of voxels that belong to no instance / carry no class.
UNLABELED = -1

# --- semantic classes (PILArNet five-type convention) -----------------------
HIP, MIP, SHOWER, DELTA, MICHEL = range(5)
CLASS_NAMES: Tuple[str, ...] = ("HIP", "MIP", "Shower", "Delta", "Michel")
NUM_CLASSES = len(CLASS_NAMES)

#: When one voxel is shared by particles of different classes, the semantic
#: label goes to the class that comes first here. Rationale: the rarer and
#: smaller classes would otherwise vanish under the large ones (a Michel or
#: delta voxel on a MIP track is the physics of interest; a HIP Bragg peak
#: sits on top of everything at a vertex). Within one class the particle with
#: the larger energy deposit in that voxel wins.
CLASS_PRECEDENCE: Tuple[int, ...] = (MICHEL, DELTA, HIP, MIP, SHOWER)

#: Name of class MIP where tracks are one class (files in SPINE's label scheme
#: without PDG codes: :func:`parsers.label_schemes.dataset_class_names`).
TRACK_NAME = "Track"

_LOWER = {name.lower(): i for i, name in enumerate(CLASS_NAMES)}
_LOWER[TRACK_NAME.lower()] = MIP  # thresholds and options written under either name read back


def class_names(single_track: bool = False) -> Tuple[str, ...]:
    """Display names of the classes, by class index, for CSVs, plots, thresholds and tables.

    Parameters
    ----------
    single_track : bool
        Tracks are one class (no PDG codes split them into HIP and MIP):
        class MIP is named :data:`TRACK_NAME`; HIP keeps its name, though it
        then has no true voxel.

    Returns
    -------
    tuple of str
        :data:`NUM_CLASSES` names; :data:`CLASS_NAMES` unless ``single_track``.
    """
    if not single_track:
        return CLASS_NAMES
    return tuple(TRACK_NAME if c == MIP else name for c, name in enumerate(CLASS_NAMES))


def shown_classes(names: Sequence[str] = CLASS_NAMES) -> Tuple[int, ...]:
    """Class indices that can hold true voxels under ``names`` (a :func:`class_names` result).

    Every class, but HIP where tracks are one class (``names[MIP]`` is
    :data:`TRACK_NAME`).
    """
    single = names[MIP] == TRACK_NAME
    return tuple(c for c in range(NUM_CLASSES) if not (single and c == HIP))


def class_index(name_or_index: Union[str, int]) -> int:
    """Return the class index for a class name (case-insensitive) or index.

    :data:`TRACK_NAME` (the single track class of :func:`class_names`) is MIP.

    Raises
    ------
    ValueError
        For an unknown name or an index outside 0..4.
    """
    if isinstance(name_or_index, str):
        key = name_or_index.strip().lower()
        if key.isdigit():
            return class_index(int(key))
        if key not in _LOWER:
            raise ValueError(f"unknown semantic class '{name_or_index}'; "
                             f"valid: {', '.join(CLASS_NAMES)}, {TRACK_NAME} (= MIP) "
                             f"(or 0-{NUM_CLASSES - 1})")
        return _LOWER[key]
    index = int(name_or_index)
    if not 0 <= index < NUM_CLASSES:
        raise ValueError(f"semantic class index {index} outside 0-{NUM_CLASSES - 1} "
                         f"({', '.join(CLASS_NAMES)})")
    return index


def class_indices(names: Iterable[Union[str, int]]) -> List[int]:
    """Vectorised :func:`class_index`, preserving order, without duplicates."""
    out: List[int] = []
    for name in names:
        index = class_index(name)
        if index not in out:
            out.append(index)
    return out


def per_class(values: Union[Dict, Sequence, float, None], default: float) -> List[float]:
    """Expand a per-class setting to a list of NUM_CLASSES floats.

    ``values`` may be a scalar (same for all), a list of NUM_CLASSES values, or
    a mapping keyed by class name or index (missing classes take ``default``).
    """
    if values is None:
        return [float(default)] * NUM_CLASSES
    if isinstance(values, (int, float)):
        return [float(values)] * NUM_CLASSES
    if isinstance(values, dict):
        out = [float(default)] * NUM_CLASSES
        for key, value in values.items():
            out[class_index(key)] = float(value)
        return out
    values = list(values)
    if len(values) != NUM_CLASSES:
        raise ValueError(f"expected {NUM_CLASSES} per-class values "
                         f"({', '.join(CLASS_NAMES)}), got {len(values)}")
    return [float(v) for v in values]


__all__.append("per_class")
