"""The simulator's version, recorded in every simulated file and checked on reuse.

Events of a given seed change whenever the simulator's physics or defaults
change. A machine that still holds files made by an older version would
otherwise silently train and test on old events, so every file that
:func:`mlreco_spice.sim.simulate_file` writes carries an HDF5 attribute
(:data:`SIM_ATTR`, JSON) with the version, seed, image size, voxel pitch and
event range, and scripts that reuse simulated files call
:func:`check_simulated_file` first.

Versions:

1. (not recorded in files) Gaussian-smeared deposits: tracks 3.8 voxels per
   voxel of length, 0.14 MeV per MIP voxel.
2. Exact traversal of thin deposit segments (no spread), event composition
   re-tuned to Table I's pixel counts with thin tracks.

From a shell: ``python -m mlreco_spice.sim.check_files`` (:mod:`.check_files`).
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, Optional, Union

from mlreco_spice.errors import DataError

__all__ = ["SIM_VERSION", "SIM_ATTR", "simulation_attrs", "read_simulation_info",
           "check_simulated_file", "describe"]

#: Bump whenever the events of a seed change.
SIM_VERSION = 2
#: HDF5 file attribute holding the simulation record (JSON).
SIM_ATTR = "mlreco_spice_simulation"

PathLike = Union[str, "os.PathLike[str]"]


def simulation_attrs(seed: int, size: int, voxel_mm: float, n_events: int,
                     first_event: int = 0, labels: str = "pilarnet2020") -> Dict[str, str]:
    """File attributes recording how a simulated file was made (``labels``: the
    label scheme of its semantic codes, parsers/label_schemes.py)."""
    record = {"version": SIM_VERSION, "seed": int(seed), "size": int(size),
              "voxel_mm": float(voxel_mm), "n_events": int(n_events),
              "first_event": int(first_event), "labels": str(labels)}
    return {SIM_ATTR: json.dumps(record, sort_keys=True)}


def read_simulation_info(path: PathLike) -> Optional[Dict[str, Any]]:
    """The simulation record of a file, or None when it has none (not simulated
    here, or made by version 1, which recorded nothing)."""
    import h5py

    try:
        with h5py.File(path, "r") as h5:
            raw = h5.attrs.get(SIM_ATTR)
    except OSError as err:
        raise DataError(f"cannot read {path} as an HDF5 file: {err}") from None
    if raw is None:
        return None
    info = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    info.setdefault("labels", "pilarnet2020")  # files stamped before the scheme was recorded
    return info


def check_simulated_file(path: PathLike, labels: Optional[str] = "pilarnet2020",
                         **expected: Any) -> Dict[str, Any]:
    """Refuse a simulated file of another simulator version (or other settings).

    Parameters
    ----------
    path : str or PathLike
        A file written by :func:`mlreco_spice.sim.simulate_file`.
    labels : str or None
        The label scheme its semantic codes must be in (None: any); our own
        scheme by default, since a file in SPINE's shape codes read as ours
        would turn showers into HIPs.
    **expected
        Other record fields that must match (e.g. ``seed=3, size=512``).

    Returns
    -------
    dict
        The file's simulation record.

    Raises
    ------
    DataError
        When the file is missing its record or differs, naming both versions.
    """
    if not os.path.isfile(path):
        raise DataError(f"simulated file {path} not found")
    info = read_simulation_info(path)
    found = "1 (or not made by mlreco-spice simulate)" if info is None else info.get("version")
    if info is None or info.get("version") != SIM_VERSION:
        raise DataError(f"{path} was made by simulator version {found}, but this checkout "
                        f"simulates version {SIM_VERSION}: its events differ. Delete the file "
                        f"(or re-simulate it with `mlreco-spice simulate -o {path} --overwrite`)")
    if labels is not None:
        expected = dict(expected, labels=labels)
    wrong = {k: (info.get(k), v) for k, v in expected.items() if info.get(k) != v}
    if wrong:
        detail = ", ".join(f"{k} {have} (wanted {want})" for k, (have, want) in wrong.items())
        raise DataError(f"{path} was simulated with other settings: {detail}. Delete it or "
                        f"re-simulate it with --overwrite")
    return info


def describe(info: Optional[Dict[str, Any]]) -> str:
    """One line saying how a file was simulated."""
    if info is None:
        return "simulator version: not recorded (version 1, or not made by mlreco-spice simulate)"
    return (f"simulator version {info['version']}, seed {info['seed']}, {info['size']}^3 voxels "
            f"of {info['voxel_mm']:g} mm, events {info['first_event']}.."
            f"{info['first_event'] + info['n_events'] - 1}")
