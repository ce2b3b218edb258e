"""Charged tracks (muons, pions, protons): stepping, energy loss, scattering, delta rays.

All tracks of an event are generated together, in vectorised passes over
their concatenated steps (per-track calls cost more in overhead than in
arithmetic at ~20 tracks per event). Each track's path is cut into steps of
``step_cm``; the kinetic energy at each step comes from the residual range
through the Bethe range table (so a stopping track deposits its whole
kinetic energy, with the Bragg peak at the end); each step gets a Highland
multiple-scattering kick; deposits are the restricted energy loss times a
Landau-like fluctuation. Delta rays above ``delta_cut_mev`` are drawn per
step from the ``1/T^2`` knock-on spectrum and returned for the caller to
propagate as electrons.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List

import numpy as np

from . import physics
from .geometry import deflect, distance_to_wall, inside_box, walk

__all__ = ["TrackResult", "propagate_track", "propagate_tracks", "DELTA_CUT_MEV", "LANDAU_WIDTH"]

#: Delta rays above this energy are explicit instances (Bethe restricted below it).
DELTA_CUT_MEV = 12.0
#: Moyal width of the per-step deposit: thin (0.1 cm) steps of argon have a wide,
#: skewed energy-loss distribution, which sets the median energy per voxel.
LANDAU_WIDTH = 0.3

# (K/2) (Z/A) rho: delta-ray yield constant, dN/dT/dx = C / (beta^2 T^2), MeV/cm.
_DELTA_YIELD = 0.5 * 0.307075 * physics.LAR_Z_OVER_A * physics.LAR_DENSITY


@dataclass
class TrackResult:
    """Deposits and truth of one charged track, clipped to the volume.

    Attributes
    ----------
    points : ndarray (n, 3)
        Step centres (cm).
    vectors : ndarray (n, 3)
        Step spans (cm): step ``i`` is the straight segment
        ``points[i] -/+ vectors[i] / 2``, voxelised by exact traversal.
    energies : ndarray (n,)
        Deposited energy per step (MeV).
    length_cm : float
        True path length inside the volume.
    end_cm, end_direction : ndarray (3,)
        Last position and direction inside the volume.
    stopped : bool
        The particle ranged out inside the volume.
    delta_start, delta_direction : ndarray (k, 3)
        Delta-ray origins and directions.
    delta_energy : ndarray (k,)
        Delta-ray kinetic energies (MeV).
    """

    points: np.ndarray
    vectors: np.ndarray
    energies: np.ndarray
    length_cm: float
    end_cm: np.ndarray
    end_direction: np.ndarray
    stopped: bool
    delta_start: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    delta_direction: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    delta_energy: np.ndarray = field(default_factory=lambda: np.zeros(0))


def propagate_track(rng: np.random.Generator, start: np.ndarray, direction: np.ndarray,
                    ke: float, mass: float, box_low: np.ndarray, box_high: np.ndarray, *,
                    step_cm: float = 0.1, delta_cut_mev: float = DELTA_CUT_MEV,
                    landau_width: float = LANDAU_WIDTH) -> TrackResult:
    """One track: :func:`propagate_tracks` with a single particle."""
    return propagate_tracks(rng, np.asarray(start, dtype=np.float64)[None],
                            np.asarray(direction, dtype=np.float64)[None], np.array([ke]),
                            np.array([mass]), box_low, box_high, step_cm=step_cm,
                            delta_cut_mev=delta_cut_mev, landau_width=landau_width)[0]


def propagate_tracks(rng: np.random.Generator, starts: np.ndarray, directions: np.ndarray,
                     kes: np.ndarray, masses: np.ndarray, box_low: np.ndarray,
                     box_high: np.ndarray, *, step_cm: float = 0.1, delta_cut_mev: float = DELTA_CUT_MEV,
                     landau_width: float = LANDAU_WIDTH) -> List[TrackResult]:
    """Propagate charged particles from their starts until they stop or leave the box.

    Parameters
    ----------
    rng : numpy.random.Generator
        Random source.
    starts, directions : array_like (m, 3)
        Start points (cm, inside the box) and unit directions.
    kes, masses : array_like (m,)
        Kinetic energies and masses (MeV).
    box_low, box_high : ndarray (3,)
        Active volume (cm).
    step_cm : float
        Step length; a fraction of a voxel so that tracks are connected.
    delta_cut_mev : float
        Delta rays above this kinetic energy are produced explicitly; below it
        their energy is part of the continuous (restricted) loss.
    landau_width : float
        Scale of the per-step Moyal fluctuation of the deposit.

    Returns
    -------
    list of TrackResult
        One per particle, in input order.
    """
    position = np.asarray(starts, dtype=np.float64).reshape(-1, 3).copy()
    heading = np.asarray(directions, dtype=np.float64).reshape(-1, 3).copy()
    ke = np.asarray(kes, dtype=np.float64).reshape(-1).copy()
    mass = np.asarray(masses, dtype=np.float64).reshape(-1)
    if np.any(ke <= 0) or np.any(mass <= 0):
        raise ValueError(f"tracks need positive kinetic energies and masses, got ke={ke}, "
                         f"mass={mass}")
    low, high = np.asarray(box_low, dtype=np.float64), np.asarray(box_high, dtype=np.float64)
    m = ke.size
    stopped = np.zeros(m, dtype=bool)
    parts: List[Dict[str, np.ndarray]] = []
    active = np.arange(m)
    # Generate in chunks a little longer than the straight-line distance to the
    # wall: a GeV muon is metres long but leaves the box after ~1 m, and
    # stepping the part outside would waste most of the time.
    while active.size:
        chunk = _chunks(rng, position, heading, ke, mass[active], low, high, step_cm)
        chunk["track"] = active[chunk["of"]]
        parts.append(chunk)
        stopped[active] = ~chunk["exited"] & (chunk["ke_end"] <= 0)
        more = ~chunk["exited"] & (chunk["ke_end"] > 0) & (chunk["last"] >= 0)
        last = chunk["last"][more]
        # Continue from the end of the last step, so the steps stay contiguous.
        position = chunk["mid"][last] + 0.5 * chunk["dirs"][last] * chunk["steps"][last, None]
        heading, ke = chunk["dirs"][last], chunk["ke_end"][more]
        active = active[more]
    columns = ("track", "mid", "dirs", "steps", "ke_mid", "loss")
    track, mid, dirs, steps, ke_mid, loss = (np.concatenate([c[k] for c in parts]) for k in columns)
    order = np.argsort(track, kind="stable")   # chunk order is kept within a track
    track, mid, dirs, steps, ke_mid, loss = (a[order] for a in (track, mid, dirs, steps, ke_mid,
                                                                  loss))
    step_mass = mass[track]
    restricted = (physics.bethe_dedx(ke_mid, step_mass, delta_cut_mev)
                  / physics.bethe_dedx(ke_mid, step_mass))
    energies = loss * restricted * physics.landau_factors(rng, track.size, landau_width)
    delta_at, delta_dir, delta_energy = _delta_rays(rng, mid, dirs, steps, ke_mid, step_mass,
                                                    delta_cut_mev)
    bounds = np.searchsorted(track, np.arange(m + 1))
    delta_bounds = np.searchsorted(track[delta_at], np.arange(m + 1))
    results = []
    for i in range(m):
        a, b = bounds[i], bounds[i + 1]
        da, db = delta_bounds[i], delta_bounds[i + 1]
        keep = b > a
        results.append(TrackResult(
            points=mid[a:b], vectors=dirs[a:b] * steps[a:b, None], energies=energies[a:b],
            length_cm=float(steps[a:b].sum()),
            end_cm=mid[b - 1] if keep else np.asarray(starts, dtype=np.float64).reshape(-1, 3)[i],
            end_direction=dirs[b - 1] if keep else
            np.asarray(directions, dtype=np.float64).reshape(-1, 3)[i],
            stopped=bool(stopped[i]), delta_start=mid[delta_at[da:db]],
            delta_direction=delta_dir[da:db], delta_energy=delta_energy[da:db]))
    return results


def _per_mass(fn, values: np.ndarray, mass: np.ndarray) -> np.ndarray:
    """``fn(range_table(m), values)`` applied to each group of equal mass."""
    out = np.empty_like(values)
    for m in np.unique(mass):
        sel = mass == m
        out[sel] = fn(physics.range_table(float(m)), values[sel])
    return out


def _chunks(rng: np.random.Generator, position: np.ndarray, heading: np.ndarray,
            ke: np.ndarray, mass: np.ndarray, low: np.ndarray, high: np.ndarray,
            step_cm: float) -> Dict[str, np.ndarray]:
    """Step one stretch of each track; each stops at the wall, its end of range or the
    chunk length. Arrays are per kept step (``of``: the track's row) or per track."""
    full_range = _per_mass(lambda t, v: t.range_cm(v), ke, mass)
    length = np.minimum(full_range, 1.25 * distance_to_wall(position, heading, low, high) + 10.0)
    n = np.maximum(1, np.ceil(length / step_cm)).astype(np.int64)
    first = np.concatenate([[0], np.cumsum(n)[:-1]])
    of = np.repeat(np.arange(ke.size), n)
    index = np.arange(of.size) - first[of]
    lo = index * step_cm
    hi = np.minimum(lo + step_cm, length[of])
    steps = hi - lo
    step_mass = mass[of]
    ke_lo = _per_mass(lambda t, v: t.kinetic_energy(v), full_range[of] - lo, step_mass)
    ke_hi = _per_mass(lambda t, v: t.kinetic_energy(v), full_range[of] - hi, step_mass)
    ke_mid = _per_mass(lambda t, v: t.kinetic_energy(v), full_range[of] - 0.5 * (lo + hi),
                       step_mass)
    last_step = first + n - 1
    ranged_out = length >= full_range
    ke_hi[last_step[ranged_out]] = 0.0
    theta0 = physics.highland_theta0(ke_mid, step_mass, step_cm) * np.sqrt(steps / step_cm)
    mid, dirs = walk(rng, position, heading, steps, theta0, first)
    # Index of each track's first step outside the box (n when none).
    exit_at = n.copy()
    outside = ~inside_box(mid, low, high)
    np.minimum.at(exit_at, of[outside], index[outside])
    kept = index < exit_at[of]
    exited = exit_at < n
    ke_end = np.where(exited, ke_lo[first + np.minimum(exit_at, n - 1)], ke_hi[last_step])
    # Row (in the kept arrays) of each track's last kept step; -1 when none.
    kept_rows = np.cumsum(kept) - 1
    last = np.where(exit_at > 0, kept_rows[first + np.maximum(exit_at, 1) - 1], -1)
    return {"of": of[kept], "mid": mid[kept], "dirs": dirs[kept], "steps": steps[kept],
            "ke_mid": ke_mid[kept], "loss": (ke_lo - ke_hi)[kept], "exited": exited,
            "ke_end": ke_end, "last": last}


def _delta_rays(rng: np.random.Generator, mid: np.ndarray, dirs: np.ndarray, steps: np.ndarray,
                ke_mid: np.ndarray, mass: np.ndarray, t_cut: float) -> tuple:
    """Knock-on electrons above ``t_cut`` along the steps (1/T^2 spectrum).

    Returns the step index, direction and kinetic energy of each delta ray.
    """
    w_max = physics.max_delta_energy(ke_mid, mass)
    _, beta = physics.momentum_beta(ke_mid, mass)
    open_ = w_max > t_cut
    with np.errstate(divide="ignore"):
        expected = np.where(open_, _DELTA_YIELD / beta ** 2 * (1.0 / t_cut - 1.0 / w_max),
                            0.0) * steps
    counts = rng.poisson(expected)
    at = np.repeat(np.arange(counts.size), counts)
    if not at.size:
        return at, np.zeros((0, 3)), np.zeros(0)
    w = w_max[at]
    u = rng.random(at.size)
    energy = 1.0 / (1.0 / t_cut - u * (1.0 / t_cut - 1.0 / w))
    me = physics.ELECTRON_MASS
    # Knock-on kinematics: cos(theta) = (T/p_e) (p_max/T_max) in units c = 1.
    cos_theta = np.sqrt(energy / (energy + 2 * me) * (w + 2 * me) / w)
    return at, deflect(rng, dirs[at], cos_theta), energy
