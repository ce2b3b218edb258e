"""Physics constants and formulas for liquid argon, vectorised with numpy.

Sources:

* Material constants (density, Z/A, mean excitation energy, Sternheimer
  density-effect parameters, radiation length, critical energy): PDG "Atomic
  and nuclear properties of materials", liquid argon.
* Stopping power: the Bethe formula with density effect (PDG review
  "Passage of particles through matter", eq. 34.5), optionally restricted to
  delta-ray energies below a cut (eq. 34.12) when delta rays are simulated
  explicitly.
* Multiple Coulomb scattering: the Highland formula (PDG eq. 34.15).
* Proton CSDA ranges: NIST PSTAR, argon (:data:`PSTAR_ARGON_KE_MEV`,
  :data:`PSTAR_ARGON_RANGE_G_CM2`); used to check the Bethe range table.
* Michel spectrum: tree-level V-A, ``dN/dx = 2 x^2 (3 - 2 x)``, ``x = E / E_max``.
* Compton scattering: Klein-Nishina total cross section and the Geant4
  "standard" sampling of the scattered photon energy.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Tuple, Union

import numpy as np

#: A scalar, or one value per element of the energy array (tracks of several masses).
ArrayOrFloat = Union[float, np.ndarray]

__all__ = [
    "LAR_DENSITY", "LAR_Z_OVER_A", "LAR_MEAN_EXCITATION_MEV", "RADIATION_LENGTH_CM",
    "CRITICAL_ENERGY_MEV", "PHOTON_CONVERSION_LENGTH_CM", "ELECTRON_MASS", "MUON_MASS",
    "PION_MASS", "PROTON_MASS", "MICHEL_MAX_MEV", "ELECTRON_DEDX_MEV_CM",
    "PSTAR_ARGON_KE_MEV", "PSTAR_ARGON_RANGE_G_CM2", "pstar_range_cm",
    "bethe_dedx", "max_delta_energy", "RangeTable", "range_table", "highland_theta0",
    "landau_factors", "sample_michel_energy", "compton_attenuation_length",
    "sample_compton_epsilon", "momentum_beta",
]

# --- liquid argon (PDG) --------------------------------------------------------
LAR_DENSITY = 1.396                 # g/cm^3
LAR_Z_OVER_A = 18.0 / 39.948
LAR_MEAN_EXCITATION_MEV = 188.0e-6  # I
_STERNHEIMER = dict(c_bar=5.2146, x0=0.2, x1=3.0, a=0.19559, k=3.0)
RADIATION_LENGTH_CM = 14.0          # X0
CRITICAL_ENERGY_MEV = 32.84         # electrons
#: Mean free path of a high-energy photon before pair conversion: 9/7 X0.
PHOTON_CONVERSION_LENGTH_CM = 9.0 / 7.0 * RADIATION_LENGTH_CM
#: Collision stopping power of few-MeV to 100 MeV electrons (ESTAR argon, ~1.65 MeV cm2/g).
ELECTRON_DEDX_MEV_CM = 2.3

_K_BETHE = 0.307075                 # MeV cm^2 / mol
_ELECTRON_DENSITY_CM3 = LAR_DENSITY * 6.02214076e23 * LAR_Z_OVER_A
_CLASSICAL_RADIUS_CM = 2.8179403262e-13

# --- particles (MeV) -------------------------------------------------------------
ELECTRON_MASS = 0.51099895
MUON_MASS = 105.6583755
PION_MASS = 139.57039
PROTON_MASS = 938.27208816
#: Michel endpoint (m_mu / 2 less the electron mass correction, rounded down).
MICHEL_MAX_MEV = 52.8

# --- NIST PSTAR, argon: proton CSDA range (g/cm^2) vs kinetic energy (MeV) -----
PSTAR_ARGON_KE_MEV = np.array([10, 15, 20, 30, 40, 80, 100, 150, 200, 250, 300, 350, 400,
                               450, 500, 600, 800, 1000], dtype=np.float64)
PSTAR_ARGON_RANGE_G_CM2 = np.array([0.1887, 0.3823, 0.6335, 1.296, 2.159, 7.375, 10.92, 22.15,
                                    36.27, 52.82, 71.44, 91.84, 113.8, 137.0, 161.4, 213.2,
                                    325.4, 445.4], dtype=np.float64)


def pstar_range_cm(ke_mev: float) -> float:
    """PSTAR proton CSDA range in liquid argon (cm), log-log interpolated."""
    if not PSTAR_ARGON_KE_MEV[0] <= ke_mev <= PSTAR_ARGON_KE_MEV[-1]:
        raise ValueError(f"PSTAR table covers {PSTAR_ARGON_KE_MEV[0]}-{PSTAR_ARGON_KE_MEV[-1]} MeV, "
                         f"got {ke_mev}")
    log_r = np.interp(np.log(ke_mev), np.log(PSTAR_ARGON_KE_MEV), np.log(PSTAR_ARGON_RANGE_G_CM2))
    return float(np.exp(log_r) / LAR_DENSITY)


def momentum_beta(ke: np.ndarray, mass: ArrayOrFloat) -> Tuple[np.ndarray, np.ndarray]:
    """Momentum (MeV/c) and velocity beta of particles of kinetic energy ``ke``."""
    ke = np.maximum(np.asarray(ke, dtype=np.float64), 1e-6)
    energy = ke + mass
    p = np.sqrt(ke * (ke + 2.0 * mass))
    return p, p / energy


def max_delta_energy(ke: np.ndarray, mass: ArrayOrFloat) -> np.ndarray:
    """Largest kinetic energy transferable to a free electron, W_max (MeV)."""
    gamma = 1.0 + np.asarray(ke, dtype=np.float64) / mass
    bg2 = gamma ** 2 - 1.0
    ratio = ELECTRON_MASS / mass
    return 2.0 * ELECTRON_MASS * bg2 / (1.0 + 2.0 * gamma * ratio + ratio ** 2)


def _density_effect(bg: np.ndarray) -> np.ndarray:
    """Sternheimer density-effect correction delta(beta gamma) for liquid argon."""
    s = _STERNHEIMER
    x = np.log10(np.maximum(bg, 1e-12))
    two_ln10 = 2.0 * np.log(10.0)
    mid = two_ln10 * x - s["c_bar"] + s["a"] * np.clip(s["x1"] - x, 0.0, None) ** s["k"]
    return np.where(x >= s["x1"], two_ln10 * x - s["c_bar"], np.where(x >= s["x0"], mid, 0.0))


def bethe_dedx(ke: np.ndarray, mass: ArrayOrFloat, t_cut: float = np.inf) -> np.ndarray:
    """Mean energy loss (MeV/cm) of a singly charged particle in liquid argon.

    Parameters
    ----------
    ke : array_like
        Kinetic energy (MeV).
    mass : float
        Particle mass (MeV).
    t_cut : float
        Restrict to delta rays below this energy (MeV); ``inf`` gives the full
        Bethe formula. Use the cut when delta rays above it are simulated
        explicitly, so energy is not counted twice.
    """
    p, beta = momentum_beta(ke, mass)
    bg = p / mass
    w_max = max_delta_energy(ke, mass)
    t_up = np.minimum(w_max, t_cut)
    arg = 2.0 * ELECTRON_MASS * bg ** 2 * t_up / LAR_MEAN_EXCITATION_MEV ** 2
    bracket = (0.5 * np.log(arg) - 0.5 * beta ** 2 * (1.0 + t_up / w_max)
               - 0.5 * _density_effect(bg))
    # Below ~1 MeV/u the formula fails (bracket -> 0); the floor keeps the
    # stopping power finite, and the range table never goes that low.
    bracket = np.maximum(bracket, 0.5)
    return _K_BETHE * LAR_Z_OVER_A * LAR_DENSITY / beta ** 2 * bracket


class RangeTable:
    """CSDA range <-> kinetic energy for one particle mass, from the Bethe formula.

    The table starts at the kinetic energy where beta*gamma equals that of a
    1 MeV proton; below it the range follows the power law R ~ T^1.75.
    """

    _POWER = 1.75

    def __init__(self, mass: float, ke_max: float = 1e5, n_points: int = 600):
        self.mass = float(mass)
        t0 = mass / PROTON_MASS
        ke = np.geomspace(t0, ke_max, n_points)
        inv = 1.0 / bethe_dedx(ke, mass)
        r0 = t0 * inv[0] / self._POWER
        ranges = r0 + np.concatenate([[0.0], np.cumsum(0.5 * (inv[1:] + inv[:-1]) * np.diff(ke))])
        self._log_ke, self._log_range = np.log(ke), np.log(ranges)
        self._t0, self._r0 = t0, r0

    def range_cm(self, ke: np.ndarray) -> np.ndarray:
        """CSDA range (cm) for kinetic energies (MeV)."""
        ke = np.asarray(ke, dtype=np.float64)
        low = self._r0 * (np.maximum(ke, 0.0) / self._t0) ** self._POWER
        high = np.exp(np.interp(np.log(np.maximum(ke, self._t0)), self._log_ke, self._log_range))
        return np.where(ke < self._t0, low, high)

    def kinetic_energy(self, range_cm: np.ndarray) -> np.ndarray:
        """Kinetic energy (MeV) with residual range ``range_cm`` (0 at the end)."""
        r = np.maximum(np.asarray(range_cm, dtype=np.float64), 0.0)
        low = self._t0 * (r / self._r0) ** (1.0 / self._POWER)
        high = np.exp(np.interp(np.log(np.maximum(r, self._r0)), self._log_range, self._log_ke))
        return np.where(r < self._r0, low, high)


@lru_cache(maxsize=8)
def range_table(mass: float) -> RangeTable:
    """Cached :class:`RangeTable` for ``mass``."""
    return RangeTable(mass)


def highland_theta0(ke: np.ndarray, mass: ArrayOrFloat, step_cm: float,
                    reference_cm: float = 1.0) -> np.ndarray:
    """RMS plane scattering angle (rad) over a step, from the Highland formula.

    The formula's logarithmic term is evaluated at ``reference_cm`` and the
    variance scaled linearly to ``step_cm``: applied step by step at a tiny
    step, the log term would understate the scattering over a track.
    """
    p, beta = momentum_beta(ke, mass)
    ref = max(reference_cm, step_cm)
    x = ref / RADIATION_LENGTH_CM
    log_term = np.maximum(1.0 + 0.038 * np.log(x / beta ** 2), 0.3)
    theta_ref = 13.6 / (beta * p) * np.sqrt(x) * log_term
    return theta_ref * np.sqrt(step_cm / ref)


_MOYAL_MEAN = float(np.euler_gamma + np.log(2.0))


def landau_factors(rng: np.random.Generator, n: int, width: float) -> np.ndarray:
    """Mean-one multiplicative fluctuations with a Landau-like (Moyal) tail.

    ``x = -ln(Z^2)`` with ``Z ~ N(0, 1)`` is Moyal distributed; the factor is
    ``1 + width * (x - E[x])``, clipped to stay positive and bounded.
    """
    z = rng.standard_normal(n)
    x = -np.log(np.maximum(z * z, 1e-12))
    return np.clip(1.0 + width * (x - _MOYAL_MEAN), 0.05, 1.0 + 12.0 * width)


def sample_michel_energy(rng: np.random.Generator, n: int) -> np.ndarray:
    """Michel electron energies (MeV) from ``2 x^2 (3 - 2 x)``, never above :data:`MICHEL_MAX_MEV`."""
    out = np.empty(0)
    while out.size < n:
        x = rng.random(2 * n + 8)
        keep = rng.random(x.size) < x * x * (3.0 - 2.0 * x)  # f(x) / max f
        out = np.concatenate([out, x[keep]])
    return out[:n] * MICHEL_MAX_MEV


def compton_attenuation_length(energy: np.ndarray) -> np.ndarray:
    """Mean free path (cm) of photons for Compton scattering (Klein-Nishina)."""
    k = np.maximum(np.asarray(energy, dtype=np.float64), 1e-3) / ELECTRON_MASS
    l2k = np.log1p(2.0 * k)
    sigma = 2.0 * np.pi * _CLASSICAL_RADIUS_CM ** 2 * (
        (1.0 + k) / k ** 2 * (2.0 * (1.0 + k) / (1.0 + 2.0 * k) - l2k / k)
        + l2k / (2.0 * k) - (1.0 + 3.0 * k) / (1.0 + 2.0 * k) ** 2)
    return 1.0 / (_ELECTRON_DENSITY_CM3 * sigma)


def sample_compton_epsilon(rng: np.random.Generator, energy: np.ndarray) -> np.ndarray:
    """Scattered-photon energy fraction E'/E from Klein-Nishina (Geant4 standard sampling)."""
    k = np.asarray(energy, dtype=np.float64) / ELECTRON_MASS
    eps0 = 1.0 / (1.0 + 2.0 * k)
    alpha1, alpha2 = -np.log(eps0), 0.5 * (1.0 - eps0 ** 2)
    out = np.empty_like(k)
    todo = np.arange(k.size)
    while todo.size:
        r1, r2, r3 = rng.random((3, todo.size))
        a1, a2, e0, kk = alpha1[todo], alpha2[todo], eps0[todo], k[todo]
        first = r1 * (a1 + a2) < a1
        eps = np.where(first, np.exp(-r2 * a1), np.sqrt(e0 ** 2 + (1.0 - e0 ** 2) * r2))
        one_cos = (1.0 - eps) / (eps * kk)
        sin2 = one_cos * (2.0 - one_cos)
        accept = 1.0 - eps * sin2 / (1.0 + eps ** 2) >= r3
        out[todo[accept]] = eps[accept]
        todo = todo[~accept]
    return out
