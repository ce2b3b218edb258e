"""Clusterer options: per-class thresholds and the settings of the steps beyond the paper.

Parsing and validation shared by :func:`.clusterer.cluster_events`,
:class:`.clusterer.SPICEClusterer` and the tuner, so a bad value gives the same
message wherever it is set.

Distances are set in cm (``connect_radius_cm``, ``absorb_radius_cm``,
``bend_window_cm``) and compared in the units of the coordinates the steps get:
:func:`pitch_frame` picks those units from the event's voxel pitch and
:func:`lengths_in_units` converts the settings to them.
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from ..columns import CLASS_NAMES, NUM_CLASSES, class_index, per_class
from ..config_renames import renamed_message
from ..defaults import BEND_WINDOW_CM, PAPER_THRESHOLDS, RENAMED_KEYS

__all__ = ["ThresholdSpec", "OptionalSpec", "resolve_thresholds", "resolve_optional",
           "step_options", "host_coords", "pitch_frame", "in_units", "lengths_in_units",
           "RENAMED"]


ThresholdSpec = Union[None, float, Sequence[float], Dict[Union[str, int], float]]


def resolve_thresholds(s0: ThresholdSpec = None, p0: ThresholdSpec = None
                       ) -> Tuple[List[float], List[float]]:
    """Per-class ``(s0, p0)`` lists from any accepted form.

    Parameters
    ----------
    s0, p0 : None, float, sequence of 5 floats, or mapping
        ``None`` gives the paper's Table II values; a scalar applies to every
        class; a mapping is keyed by class name or index and classes it omits
        keep the Table II value.

    Returns
    -------
    (list of float, list of float)
        Five values each, in class order.

    Raises
    ------
    ValueError
        Unknown class, wrong length, or a value outside [0, 1].
    """
    out = []
    for name, values in (("s0", s0), ("p0", p0)):
        paper = [PAPER_THRESHOLDS[c][name] for c in CLASS_NAMES]
        if isinstance(values, dict):
            resolved = list(paper)
            for key, value in values.items():
                resolved[class_index(key)] = float(value)
        else:
            resolved = paper if values is None else per_class(values, 0.0)
        for c, value in enumerate(resolved):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} for {CLASS_NAMES[c]} must be in [0, 1], got {value}")
        out.append(resolved)
    return out[0], out[1]


OptionalSpec = Union[None, float, Sequence[Optional[float]], Dict[Union[str, int], Optional[float]]]


def resolve_optional(name: str, values: OptionalSpec, low: float = 0.0,
                     high: float = math.inf) -> List[Optional[float]]:
    """Per-class list of an optional setting (``None``: off for that class).

    Parameters
    ----------
    name : str
        Setting name, for error messages.
    values : None, float, sequence of 5, or mapping by class name or index
        A scalar applies to every class; a mapping leaves omitted classes off.
    low, high : float
        Allowed closed range.

    Raises
    ------
    ValueError
        Unknown class, wrong length, or a value outside ``[low, high]``.
    """
    if values is None or isinstance(values, (int, float)):
        resolved = [values] * NUM_CLASSES
    elif isinstance(values, dict):
        resolved = [None] * NUM_CLASSES
        for key, value in values.items():
            resolved[class_index(key)] = value
    else:
        resolved = list(values)
        if len(resolved) != NUM_CLASSES:
            raise ValueError(f"{name}: expected {NUM_CLASSES} per-class values "
                             f"({', '.join(CLASS_NAMES)}), got {len(resolved)}")
    out: List[Optional[float]] = []
    for c, value in enumerate(resolved):
        if value is not None:
            value = float(value)
            if not low <= value <= high:
                raise ValueError(f"{name} for {CLASS_NAMES[c]} must be in [{low}, {high}], "
                                 f"got {value}")
        out.append(value)
    return out


_CLUSTERER_KEY = ("model", "modules", "spice", "clusterer")
#: Options renamed when the clusterer's distances moved from voxels to cm (issue 18):
#: only None (step off, no unit) is accepted under the old name. One table with the config's.
RENAMED = RENAMED_KEYS[_CLUSTERER_KEY]


def step_options(mode: str, at_least_one_seed: bool, refine_iterations: int,
                 merge_p: OptionalSpec, connect_radius_cm: OptionalSpec,
                 connect_p: OptionalSpec, absorb_radius_cm: Optional[float] = None,
                 absorb_p: Optional[float] = None, connect_max_bend: Optional[float] = None,
                 reconnect_after_absorb: bool = False,
                 bend_window_cm: float = BEND_WINDOW_CM, **renamed: None) -> Dict:
    """Validated options of the steps beyond the paper (``min_seeds``, :mod:`.postprocess`,
    :mod:`.absorb`), per class where they are per class. Distances stay in cm
    (:func:`lengths_in_units` converts them for one event's coordinates).

    ``renamed`` takes the old voxel-unit names of :data:`RENAMED`, which must be None
    (step off, as before).
    """
    for old, value in renamed.items():
        if old not in RENAMED:
            raise TypeError(f"unexpected clusterer option '{old}'")
        if value is not None:
            raise ValueError(renamed_message(_CLUSTERER_KEY, old))
    # An old name given as None still turns its step off, as it did (the config does the same).
    if "connect_radius" in renamed:
        connect_radius_cm = None
    if "absorb_radius" in renamed:
        absorb_radius_cm = None
    if int(refine_iterations) < 0:
        raise ValueError(f"refine_iterations must be >= 0, got {refine_iterations}")
    steps = {"min_seeds": int(bool(at_least_one_seed)),
             "refine_iterations": int(refine_iterations),
             "merge_p": resolve_optional("merge_p", merge_p, 0.0, 1.0),
             "connect_radius_cm": resolve_optional("connect_radius_cm", connect_radius_cm, 0.0),
             "connect_p": resolve_optional("connect_p", connect_p, 0.0, 1.0),
             "absorb_radius_cm": None if absorb_radius_cm is None else float(absorb_radius_cm),
             "absorb_p": None if absorb_p is None else float(absorb_p),
             "connect_max_bend": None if connect_max_bend is None else float(connect_max_bend),
             "reconnect_after_absorb": bool(reconnect_after_absorb),
             "bend_window_cm": float(bend_window_cm)}
    bend = steps["connect_max_bend"]
    if bend is not None and not 0.0 <= bend <= 180.0:
        raise ValueError(f"connect_max_bend is an angle in degrees in [0, 180], got {bend}")
    if not steps["bend_window_cm"] > 0:
        raise ValueError(f"bend_window_cm must be > 0, got {bend_window_cm}")
    if steps["absorb_p"] is not None:
        if not 0.0 <= steps["absorb_p"] <= 1.0:
            raise ValueError(f"absorb_p must be in [0, 1], got {absorb_p}")
        if steps["absorb_radius_cm"] is None or not steps["absorb_radius_cm"] > 0:
            raise ValueError(f"absorb_p needs absorb_radius_cm > 0, got {absorb_radius_cm}")
    if mode != "fast" and (steps["min_seeds"] or steps["refine_iterations"] > 0 or any(
            v is not None for v in steps["merge_p"] + steps["connect_p"] + [steps["absorb_p"]])):
        raise ValueError("at_least_one_seed, refine_iterations, merge_p, connect_p and absorb_p "
                         "apply to mode='fast' only (mode='spine' reproduces SPINE voxel for voxel)")
    for c, radius in enumerate(steps["connect_radius_cm"]):
        if radius is not None and not radius > 0:
            raise ValueError(f"connect_radius_cm for {CLASS_NAMES[c]} must be > 0, got {radius}")
    missing = [CLASS_NAMES[c] for c, v in enumerate(steps["connect_p"])
               if v is not None and steps["connect_radius_cm"][c] is None]
    if missing:
        raise ValueError(f"connect_p is set for {missing} but connect_radius_cm is not")
    return steps


def pitch_frame(coords: np.ndarray, voxel_cm: Optional[Union[float, Sequence[float]]]
                ) -> Tuple[np.ndarray, float]:
    """Coordinates in which distance is isotropic, and the cm one of their units spans.

    Parameters
    ----------
    coords : float array (n, 3)
        Voxel indices.
    voxel_cm : float or sequence of 3 floats
        The voxel pitch (``ImageMeta.voxel_cm``).

    Returns
    -------
    (float array (n, 3), float)
        Isotropic pitch: ``coords`` themselves and the pitch (voxel units keep
        distances between voxels exact). Anisotropic: coordinates scaled to cm
        per axis, and 1.0.

    Raises
    ------
    ValueError
        No pitch (None), or one that is not three positive finite numbers.
    """
    if voxel_cm is None:
        raise ValueError("the connectivity and absorb steps compare distances in cm and need "
                         "the voxel pitch: voxel_cm=... (ImageMeta.voxel_cm of the event)")
    pitch = np.broadcast_to(np.asarray(voxel_cm, dtype=np.float64).reshape(-1), (3,)) \
        if np.size(voxel_cm) in (1, 3) else None
    if pitch is None or not (np.isfinite(pitch).all() and (pitch > 0).all()):
        raise ValueError(f"voxel_cm must be one or three positive numbers (cm), got {voxel_cm}")
    if (pitch == pitch[0]).all():
        return coords, float(pitch[0])
    return np.asarray(coords, dtype=np.float64) * pitch, 1.0


def in_units(length_cm: Optional[float], unit_cm: float) -> Optional[float]:
    """``length_cm`` in coordinate units of ``unit_cm`` cm (None stays None).

    Rounded to 1e-9 of a unit: 0.9 cm at 0.3 cm is then exactly 3 voxels (the
    float quotient is 3.0000000000000004), so cm settings equal to the old voxel
    ones find the same neighbours.
    """
    return None if length_cm is None else round(float(length_cm) / unit_cm, 9)


def lengths_in_units(steps: Dict, unit_cm: Optional[float]) -> Dict:
    """``steps`` plus its distances in coordinate units of ``unit_cm`` cm:
    ``connect_radius`` (per class), ``absorb_radius``, ``bend_window``; all None
    when ``unit_cm`` is (no step compares distances)."""
    if unit_cm is None:
        return dict(steps, connect_radius=[None] * NUM_CLASSES, absorb_radius=None,
                    bend_window=None)
    return dict(steps, connect_radius=[in_units(r, unit_cm) for r in steps["connect_radius_cm"]],
                absorb_radius=in_units(steps["absorb_radius_cm"], unit_cm),
                bend_window=in_units(steps["bend_window_cm"], unit_cm))


def touching_radius(steps: Dict) -> Optional[float]:
    """The largest distance (coordinate units, :func:`lengths_in_units`) at which an
    enabled step looks for touching voxels: each connected class's ``connect_radius``
    and, with the absorb step on, ``absorb_radius``. None when no step does."""
    radii = [r for r, p in zip(steps["connect_radius"], steps["connect_p"])
             if p is not None and r is not None]
    if steps["absorb_p"] is not None and steps["absorb_radius"] is not None:
        radii.append(steps["absorb_radius"])
    return max(radii) if radii else None


def host_coords(coords: Optional[torch.Tensor], steps: Dict, n: int) -> Optional[np.ndarray]:
    """Coordinates as float64 numpy when the connectivity or absorb step runs, else None."""
    connecting = [CLASS_NAMES[c] for c, v in enumerate(steps["connect_p"]) if v is not None]
    if not connecting and steps["absorb_p"] is None:
        return None
    if coords is None:
        what = f"connect_p is set for {connecting}" if connecting else "absorb_p is set"
        raise ValueError(f"{what}: the clusterer needs voxel coordinates (coords=...)")
    if not isinstance(coords, torch.Tensor) or tuple(coords.shape) != (n, 3):
        shape = tuple(coords.shape) if isinstance(coords, torch.Tensor) else type(coords).__name__
        raise ValueError(f"coords must be a torch.Tensor of shape ({n}, 3), got {shape}")
    return coords.detach().cpu().numpy().astype(np.float64)
