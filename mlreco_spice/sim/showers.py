"""Electromagnetic cascades: electrons, photons, pair conversion, Compton scattering.

The cascade alternates two stages until nothing is left to propagate:

1. every *hard* electron (above ``soft_mev``) is stepped along its path. It
   loses energy by ionisation (:data:`~.physics.ELECTRON_DEDX_MEV_CM`) and by
   bremsstrahlung: photons above ``kmin_mev`` are emitted as a Poisson
   process with the complete-screening Bethe-Heitler spectrum
   ``dN/dy = (4/3 - 4/3 y + y^2) / (X0 y)`` (sampled by thinning a ``1/y``
   majorant), so an electron radiates on average ``E/X0`` per cm;
2. every photon interacts once, all photons at a time. Above ``pair_min_mev``
   it converts to an e+e- pair after an exponential gap of mean ``9/7 X0``;
   below it Compton-scatters after a Klein-Nishina mean free path (the
   scattered photon continues; the electron joins the cascade); below
   ``photo_max_mev`` it is absorbed.

All cascades of an event run together: every pending particle carries the
index of the cascade (instance) it belongs to, so each stage is one set of
array operations whatever the number of showers.

Soft electrons (below ``soft_mev``: Compton electrons, the tails of the
cascade) are propagated together in one vectorised batch at the end, as
short random walks with Highland scattering; their deposits are the
"low-energy Compton deposits scattered around" a shower, and the photons
flying between them are what detaches fragments from the trunk. The
cascade stops branching naturally near the critical energy, where ionisation
outpaces radiation. Energy is conserved up to photons leaving the volume and
brems photons below ``kmin_mev`` (neglected).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List

import numpy as np

from . import physics
from .geometry import deflect, inside_box, isotropic, walk

__all__ = ["CascadeSettings", "CascadeResult", "simulate_cascades", "simulate_cascade"]

_ME = physics.ELECTRON_MASS


@dataclass(frozen=True)
class CascadeSettings:
    """Cut-offs and step of the cascade (see module docstring)."""

    step_cm: float = 0.1
    kmin_mev: float = 0.3
    soft_mev: float = 5.0
    pair_min_mev: float = 10.0
    #: Photons below this energy are absorbed where they interact. In argon the
    #: photoelectric and Compton cross sections cross near 0.07-0.1 MeV; 0.08
    #: reproduces the real event's detached shower voxels (17 %; 0.15 gave 11 %).
    photo_max_mev: float = 0.08
    #: Moyal width of the per-step deposit: thin (0.1 cm) steps of argon have a
    #: wide, skewed energy-loss distribution, which sets the median energy per voxel.
    landau_width: float = 0.3


@dataclass
class CascadeResult:
    """Deposits and truth of several cascades simulated together.

    Attributes
    ----------
    points : ndarray (n, 3)
        Step centres of the electrons (cm); photons leaving the volume are
        dropped, but an electron's walk may end slightly outside it.
    vectors : ndarray (n, 3)
        Step spans (cm): each deposit is a straight segment, voxelised by
        exact traversal.
    energies : ndarray (n,)
        Deposited energy per step (MeV).
    owner : ndarray (n,) int64
        Index of the cascade (primary) each deposit belongs to.
    first_interaction_cm : ndarray (m,)
        Distance from each primary photon's start to its first interaction
        (the conversion point when it pair-converts); NaN for electrons and
        for photons leaving the volume first.
    primary_pair : ndarray (m,) bool
        The primary photon pair-converted (rather than Compton scattered).
    """

    points: np.ndarray
    vectors: np.ndarray
    energies: np.ndarray
    owner: np.ndarray
    first_interaction_cm: np.ndarray
    primary_pair: np.ndarray


def _concat(parts: List[tuple], width: int) -> List[np.ndarray]:
    return [np.concatenate([p[i] for p in parts]) for i in range(width)]


def _steps(lengths: np.ndarray, step_cm: float) -> tuple:
    """Cut paths of ``lengths`` into steps, all paths concatenated.

    Returns the number of steps and first step of each path, the path of
    each step, the step index within its path and the step lengths.
    """
    n_steps = np.maximum(1, np.ceil(lengths / step_cm).astype(np.int64))
    starts = np.concatenate([[0], np.cumsum(n_steps)[:-1]])
    of = np.repeat(np.arange(lengths.size), n_steps)
    index = np.arange(of.size) - starts[of]
    steps = np.clip(lengths[of] - index * step_cm, 1e-4, step_cm)
    return n_steps, starts, of, index, steps


class _Cascades:
    """Pending particles and deposits of all cascades; particles carry their owner."""

    def __init__(self, rng: np.random.Generator, low: np.ndarray, high: np.ndarray,
                 settings: CascadeSettings, n_primaries: int):
        self.rng, self.low, self.high, self.cfg = rng, low, high, settings
        self.deposits: List[tuple] = []          # (points, vectors, energies, owner)
        self.hard: List[tuple] = []              # (pos, dir, energy, owner)
        self.soft: List[tuple] = []
        self.photons: List[tuple] = []           # (pos, dir, energy, owner, primary?)
        self.first = np.full(n_primaries, np.nan)
        self.pair = np.zeros(n_primaries, dtype=bool)

    def add_electrons(self, pos, dirs, energy, owner) -> None:
        hard = energy >= self.cfg.soft_mev
        if hard.any():
            self.hard.append((pos[hard], dirs[hard], energy[hard], owner[hard]))
        if (~hard).any():
            self.soft.append((pos[~hard], dirs[~hard], energy[~hard], owner[~hard]))

    # -- hard electrons -------------------------------------------------------
    def _emissions(self, energy: float) -> tuple:
        """Bremsstrahlung emission points and energies of one electron, and its path length."""
        dedx, kmin = physics.ELECTRON_DEDX_MEV_CM, self.cfg.kmin_mev
        s, e = 0.0, energy
        emit_s, emit_k = [], []
        buf, j = self.rng.random(96), 0
        while e > 2.0 * kmin:
            if j + 3 > buf.size:
                buf, j = self.rng.random(96), 0
            majorant = 4.0 / 3.0 * math.log(e / kmin) / physics.RADIATION_LENGTH_CM
            d = -math.log(1.0 - buf[j]) / majorant
            if d * dedx >= e:
                break
            s += d
            e -= d * dedx
            y = math.exp(-buf[j + 1] * math.log(e / kmin)) if e > kmin else 1.0
            if e > kmin and buf[j + 2] < 1.0 - y + 0.75 * y * y:   # thinning of the 1/y majorant
                emit_s.append(s)
                emit_k.append(y * e)
                e -= y * e
            j += 3
        return emit_s, emit_k, s + e / dedx

    def run_hard(self) -> None:
        if not self.hard:
            return
        pos, dirs, energy, owner = _concat(self.hard, 4)
        self.hard = []
        cfg, rng, dedx = self.cfg, self.rng, physics.ELECTRON_DEDX_MEV_CM
        emissions = [self._emissions(float(e)) for e in energy]
        total = np.array([em[2] for em in emissions])
        n_emit = np.array([len(em[0]) for em in emissions], dtype=np.int64)
        emit_s = np.array([x for em in emissions for x in em[0]], dtype=np.float64)
        emit_k = np.array([x for em in emissions for x in em[1]], dtype=np.float64)
        emit_of = np.repeat(np.arange(energy.size), n_emit)

        n_steps, starts, of, index, steps = _steps(total, cfg.step_cm)
        centre = index * cfg.step_cm + 0.5 * steps
        # Energy radiated before each step centre, within the same electron:
        # one searchsorted over keys (electron, path position).
        span = float(total.max()) + 1.0
        emit_key = emit_of * span + emit_s
        cum_k = np.concatenate([[0.0], np.cumsum(emit_k)])
        emit_start = np.concatenate([[0], np.cumsum(n_emit)])
        before = np.searchsorted(emit_key, of * span + centre)
        radiated = cum_k[before] - cum_k[emit_start[of]]
        e_mid = np.maximum(energy[of] - dedx * centre - radiated, 0.05)
        theta0 = physics.highland_theta0(e_mid, _ME, cfg.step_cm) * np.sqrt(steps / cfg.step_cm)
        mid, step_dirs = walk(rng, pos, dirs, steps, np.minimum(theta0, 1.0), starts)
        dep = steps * physics.landau_factors(rng, of.size, cfg.landau_width)
        ionisation = energy - (cum_k[emit_start[1:]] - cum_k[emit_start[:-1]])
        dep *= (ionisation / np.bincount(of, dep, minlength=energy.size))[of]
        self.deposits.append((mid, step_dirs * steps[:, None], dep, owner[of]))
        if emit_k.size:
            at = starts[emit_of] + np.minimum((emit_s / cfg.step_cm).astype(np.int64),
                                              n_steps[emit_of] - 1)
            # Brems photons go forward within ~m_e/E of the electron.
            angle = np.minimum(_ME / np.maximum(e_mid[at], _ME)
                               * np.abs(rng.standard_normal(at.size)), 1.0)
            self.photons.append((mid[at], deflect(rng, step_dirs[at], np.cos(angle)), emit_k,
                                 owner[of[at]], np.zeros(at.size, dtype=bool)))

    # -- photons --------------------------------------------------------------
    def run_photons(self) -> None:
        """Interact every pending photon once."""
        if not self.photons:
            return
        pos, dirs, energy, owner, primary = _concat(self.photons, 5)
        self.photons = []
        cfg, rng = self.cfg, self.rng
        pair = energy >= cfg.pair_min_mev
        photo = energy < cfg.photo_max_mev
        mfp = np.where(pair, physics.PHOTON_CONVERSION_LENGTH_CM,
                       physics.compton_attenuation_length(energy))
        dist = rng.exponential(mfp)
        pos = pos + dirs * dist[:, None]
        alive = inside_box(pos, self.low, self.high)
        first = primary & alive
        self.first[owner[first]] = dist[first]
        self.pair[owner[first]] = pair[first]

        sel = alive & pair
        if sel.any():
            e, d, p, o = energy[sel], dirs[sel], pos[sel], owner[sel]
            share = rng.uniform(0.05, 0.95, e.size)
            kinetic = np.maximum(e - 2 * _ME, 0.0)
            angle = np.minimum(_ME / e * np.abs(rng.standard_normal((2, e.size))), 1.0)
            self.add_electrons(np.concatenate([p, p]),
                               np.concatenate([deflect(rng, d, np.cos(angle[0])),
                                               deflect(rng, d, np.cos(angle[1]))]),
                               np.concatenate([share * kinetic, (1 - share) * kinetic]),
                               np.concatenate([o, o]))
        sel = alive & photo
        if sel.any():
            self.soft.append((pos[sel], isotropic(rng, int(sel.sum())), energy[sel], owner[sel]))
        sel = alive & ~pair & ~photo
        if sel.any():
            e, d, p, o = energy[sel], dirs[sel], pos[sel], owner[sel]
            eps = physics.sample_compton_epsilon(rng, e)
            cos_theta = 1.0 - (1.0 / eps - 1.0) * _ME / e
            new_dir = deflect(rng, d, cos_theta)
            electron = d * e[:, None] - new_dir * (eps * e)[:, None]
            electron /= np.maximum(np.linalg.norm(electron, axis=1, keepdims=True), 1e-12)
            self.add_electrons(p, electron, e * (1.0 - eps), o)
            self.photons.append((p, new_dir, e * eps, o, np.zeros(e.size, dtype=bool)))

    # -- soft electrons -------------------------------------------------------
    def run_soft(self) -> None:
        if not self.soft:
            return
        pos, dirs, energy, owner = _concat(self.soft, 4)
        self.soft = []
        cfg, dedx = self.cfg, physics.ELECTRON_DEDX_MEV_CM
        _, starts, of, index, steps = _steps(energy / dedx, cfg.step_cm)
        e_mid = np.maximum(energy[of] - dedx * (index * cfg.step_cm + 0.5 * steps), 0.02)
        theta0 = physics.highland_theta0(e_mid, _ME, cfg.step_cm) * np.sqrt(steps / cfg.step_cm)
        mid, step_dirs = walk(self.rng, pos, dirs, steps, np.minimum(theta0, 1.0), starts)
        dep = steps * physics.landau_factors(self.rng, of.size, cfg.landau_width)
        dep *= (energy / np.bincount(of, dep, minlength=energy.size))[of]
        self.deposits.append((mid, step_dirs * steps[:, None], dep, owner[of]))


def simulate_cascades(rng: np.random.Generator, starts: np.ndarray, directions: np.ndarray,
                      energies: np.ndarray, photon: np.ndarray, box_low: np.ndarray,
                      box_high: np.ndarray,
                      settings: CascadeSettings = CascadeSettings()) -> CascadeResult:
    """Simulate the cascades of several electrons and photons together.

    Parameters
    ----------
    rng : numpy.random.Generator
        Random source.
    starts, directions : array_like (m, 3)
        Start points (cm) and unit directions of the primaries.
    energies : array_like (m,)
        Kinetic energy of electrons, energy of photons (MeV), all positive.
    photon : array_like (m,) of bool
        Which primaries are photons (they travel before their first interaction).
    box_low, box_high : ndarray (3,)
        Active volume (cm); photons leaving it are dropped.
    settings : CascadeSettings
        Cut-offs and step size.
    """
    starts = np.asarray(starts, dtype=np.float64).reshape(-1, 3)
    directions = np.asarray(directions, dtype=np.float64).reshape(-1, 3)
    energies = np.asarray(energies, dtype=np.float64).reshape(-1)
    photon = np.asarray(photon, dtype=bool).reshape(-1)
    if np.any(energies <= 0):
        raise ValueError("cascade energies must be positive")
    m = energies.size
    cascades = _Cascades(rng, np.asarray(box_low, float), np.asarray(box_high, float), settings, m)
    owner = np.arange(m, dtype=np.int64)
    if photon.any():
        cascades.photons.append((starts[photon], directions[photon], energies[photon],
                                 owner[photon], np.ones(int(photon.sum()), dtype=bool)))
    cascades.add_electrons(starts[~photon], directions[~photon], energies[~photon], owner[~photon])
    while cascades.hard or cascades.photons:
        cascades.run_photons()
        cascades.run_hard()
    cascades.run_soft()
    if cascades.deposits:
        points, vectors, deposits, owners = _concat(cascades.deposits, 4)
    else:
        points, vectors = np.zeros((0, 3)), np.zeros((0, 3))
        deposits, owners = np.zeros(0), np.zeros(0, np.int64)
    return CascadeResult(points, vectors, deposits, owners, cascades.first, cascades.pair)


def simulate_cascade(rng: np.random.Generator, start: np.ndarray, direction: np.ndarray,
                     energy: float, photon: bool, box_low: np.ndarray, box_high: np.ndarray,
                     settings: CascadeSettings = CascadeSettings()) -> CascadeResult:
    """One cascade: :func:`simulate_cascades` with a single primary."""
    return simulate_cascades(rng, np.asarray(start)[None], np.asarray(direction)[None],
                             np.array([energy]), np.array([photon]), box_low, box_high, settings)
