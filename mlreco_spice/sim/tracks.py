"""Charged tracks (muons, pions, protons): stepping, energy loss, scattering, delta rays.

A track is generated in one vectorised pass: the path is cut into steps of
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

import numpy as np

from . import physics
from .geometry import deflect, distance_to_wall, first_exit, walk

__all__ = ["TrackResult", "propagate_track"]

# (K/2) (Z/A) rho: delta-ray yield constant, dN/dT/dx = C / (beta^2 T^2), MeV/cm.
_DELTA_YIELD = 0.5 * 0.307075 * physics.LAR_Z_OVER_A * physics.LAR_DENSITY


@dataclass
class TrackResult:
    """Deposits and truth of one charged track, clipped to the volume.

    Attributes
    ----------
    points : ndarray (n, 3)
        Deposit positions (cm).
    energies : ndarray (n,)
        Deposited energy per point (MeV).
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
                    step_cm: float = 0.1, delta_cut_mev: float = 6.0,
                    landau_width: float = 0.15, smear_cm: float = 0.15,
                    points_per_step: int = 1) -> TrackResult:
    """Propagate one charged particle from ``start`` until it stops or leaves the box.

    Parameters
    ----------
    rng : numpy.random.Generator
        Random source.
    start, direction : array_like (3,)
        Start point (cm, inside the box) and unit direction.
    ke, mass : float
        Kinetic energy and mass (MeV).
    box_low, box_high : ndarray (3,)
        Active volume (cm).
    step_cm : float
        Step length; a fraction of a voxel so that tracks are connected.
    delta_cut_mev : float
        Delta rays above this kinetic energy are produced explicitly; below it
        their energy is part of the continuous (restricted) loss.
    landau_width : float
        Scale of the per-step Moyal fluctuation of the deposit.
    smear_cm : float
        Gaussian spread of deposits (secondary electrons, diffusion).
    points_per_step : int
        Each step's deposit is split over this many independently smeared
        points (a wider, denser charge cloud for no extra stepping).
    """
    if ke <= 0 or mass <= 0:
        raise ValueError(f"track needs positive kinetic energy and mass, got ke={ke}, mass={mass}")
    position = np.asarray(start, dtype=np.float64)
    heading = np.asarray(direction, dtype=np.float64)
    parts = []
    # Generate in chunks a little longer than the straight-line distance to the
    # wall: a GeV muon is metres long but leaves the box after ~1 m, and
    # stepping the part outside would waste most of the time.
    while True:
        chunk = _chunk(rng, position, heading, ke, mass, box_low, box_high, step_cm,
                       landau_width)
        parts.append(chunk)
        if chunk["exited"] or chunk["ke_end"] <= 0 or not len(chunk["steps"]):
            break
        position, heading, ke = chunk["mid"][-1], chunk["dirs"][-1], chunk["ke_end"]
    mid = np.concatenate([c["mid"] for c in parts])
    dirs = np.concatenate([c["dirs"] for c in parts])
    steps = np.concatenate([c["steps"] for c in parts])
    ke_mid = np.concatenate([c["ke_mid"] for c in parts])
    loss = np.concatenate([c["loss"] for c in parts])
    keep = len(steps)
    restricted = physics.bethe_dedx(ke_mid, mass, delta_cut_mev) / physics.bethe_dedx(ke_mid, mass)
    energies = loss * restricted * physics.landau_factors(rng, keep, landau_width)
    if points_per_step > 1:
        points = np.repeat(mid, points_per_step, axis=0)
        energies = np.repeat(energies / points_per_step, points_per_step)
    else:
        points = mid
    if smear_cm > 0:
        points = points + rng.normal(0.0, smear_cm, points.shape)
    result = TrackResult(points=points, energies=energies, length_cm=float(steps.sum()),
                         end_cm=mid[-1] if keep else np.asarray(start, dtype=np.float64),
                         end_direction=dirs[-1] if keep else np.asarray(direction, dtype=np.float64),
                         stopped=not parts[-1]["exited"] and parts[-1]["ke_end"] <= 0)
    if keep:
        _add_delta_rays(rng, result, mid, dirs, steps, ke_mid, mass, delta_cut_mev)
    return result


def _chunk(rng: np.random.Generator, position: np.ndarray, heading: np.ndarray, ke: float,
           mass: float, low: np.ndarray, high: np.ndarray, step_cm: float,
           landau_width: float) -> dict:
    """Step one stretch of a track; stops at the wall, the end of range or the chunk length."""
    table = physics.range_table(mass)
    full_range = float(table.range_cm(ke))
    length = min(full_range, 1.25 * distance_to_wall(position, heading, low, high) + 10.0)
    n = max(1, int(np.ceil(length / step_cm)))
    bounds = np.minimum(np.arange(n + 1) * step_cm, length)
    steps = np.diff(bounds)
    ke_bounds = table.kinetic_energy(full_range - bounds)
    if length >= full_range:
        ke_bounds[-1] = 0.0
    ke_mid = table.kinetic_energy(full_range - 0.5 * (bounds[1:] + bounds[:-1]))
    theta0 = physics.highland_theta0(ke_mid, mass, step_cm) * np.sqrt(steps / step_cm)
    mid, dirs = walk(rng, position[None], heading[None], steps, theta0, np.zeros(1, np.int64))
    keep = first_exit(mid, low, high)
    return {"mid": mid[:keep], "dirs": dirs[:keep], "steps": steps[:keep], "ke_mid": ke_mid[:keep],
            "loss": (ke_bounds[:-1] - ke_bounds[1:])[:keep], "exited": keep < n,
            "ke_end": float(ke_bounds[keep])}


def _add_delta_rays(rng: np.random.Generator, result: TrackResult, mid: np.ndarray,
                    dirs: np.ndarray, steps: np.ndarray, ke_mid: np.ndarray, mass: float,
                    t_cut: float) -> None:
    """Sample knock-on electrons above ``t_cut`` along the steps (1/T^2 spectrum)."""
    w_max = physics.max_delta_energy(ke_mid, mass)
    _, beta = physics.momentum_beta(ke_mid, mass)
    open_ = w_max > t_cut
    expected = np.where(open_, _DELTA_YIELD / beta ** 2 * (1.0 / t_cut - 1.0 / w_max), 0.0) * steps
    counts = rng.poisson(expected)
    if not counts.any():
        return
    at = np.repeat(np.arange(counts.size), counts)
    w = w_max[at]
    u = rng.random(at.size)
    energy = 1.0 / (1.0 / t_cut - u * (1.0 / t_cut - 1.0 / w))
    me = physics.ELECTRON_MASS
    # Knock-on kinematics: cos(theta) = (T/p_e) (p_max/T_max) in units c = 1.
    cos_theta = np.sqrt(energy / (energy + 2 * me) * (w + 2 * me) / w)
    result.delta_start = mid[at]
    result.delta_direction = deflect(rng, dirs[at], cos_theta)
    result.delta_energy = energy
