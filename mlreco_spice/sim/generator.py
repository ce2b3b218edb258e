"""Which primary particles an event holds: vertices, rain and cosmic-like tracks.

The composition follows PILArNet's generators: *multi-particle vertices*
(several particles of random types from one point, so tracks meet, overlap
and may be nearly co-linear) plus *multi-particle rain* (independent
particles anywhere in the volume, so tracks cross and showers overlap),
plus through-going cosmic-like muons entering from the top face. All knobs
are fields of :class:`EventConfig`; the defaults are tuned so that the
pixel counts per event match the paper's Table I (see :mod:`.stats`).

With thin tracks (about 1.5 voxels per voxel of length, as in real data)
Table I's 6,100 MIP and 1,600 HIP voxels per event take about 10 tracks of
each kind in a 512^3 image, not the n̄ of 4-5 of Table I's last column (which
disagrees with its own N_clusters / N_events of 20-30). We keep the pixel
counts and the realistic morphology, and let the instance counts fall between
the two columns: more cosmic-like muons and rain protons than in version 1,
whose fat tracks met n̄ with a third as many tracks.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Tuple

import numpy as np

from .geometry import deflect, isotropic

__all__ = ["EventConfig", "Primary", "generate_primaries", "KINDS"]

#: Primary kinds: name -> (PDG code, is a track).
KINDS: Dict[str, Tuple[int, bool]] = {
    "proton": (2212, True), "muon": (13, True), "pion": (211, True),
    "electron": (11, False), "photon": (22, False),
}


@dataclass(frozen=True)
class EventConfig:
    """Event composition. Energies are kinetic energies in MeV, ranges uniform."""

    extra_vertices_mean: float = 1.0        # vertices = 1 + Poisson(mean)
    vertex_particles: Tuple[int, int] = (2, 5)   # inclusive range per vertex
    vertex_weights: Dict[str, float] = field(default_factory=lambda: {
        "proton": 0.44, "muon": 0.08, "pion": 0.08, "electron": 0.2, "photon": 0.2})
    colinear_probability: float = 0.3       # a vertex particle nearly parallel to another
    colinear_max_deg: float = 12.0
    vertex_margin: float = 0.15             # vertices this fraction away from the walls
    ke_range: Dict[str, Tuple[float, float]] = field(default_factory=lambda: {
        "proton": (60.0, 420.0), "muon": (150.0, 1500.0), "pion": (100.0, 1000.0),
        "electron": (50.0, 1000.0), "photon": (50.0, 1000.0)})
    rain_mean: Dict[str, float] = field(default_factory=lambda: {
        "proton": 7.5, "muon": 0.6, "pion": 0.8, "electron": 5.0, "photon": 7.0})
    rain_ke_range: Dict[str, Tuple[float, float]] = field(default_factory=lambda: {
        "proton": (60.0, 420.0), "muon": (150.0, 1000.0), "pion": (100.0, 800.0),
        "electron": (30.0, 800.0), "photon": (30.0, 800.0)})
    #: Low-energy photons (Compton-only "showers" of a few blobs) per event.
    soft_photon_mean: float = 2.0
    soft_photon_ke: Tuple[float, float] = (2.0, 20.0)
    cosmic_mean: float = 8.0                # through-going muons from the top face
    cosmic_ke: Tuple[float, float] = (1000.0, 10000.0)
    #: Events with stopping muons (hence Michel electrons): probability and count 1 + Poisson.
    stopping_muon_probability: float = 0.55
    stopping_muon_extra_mean: float = 1.3


@dataclass
class Primary:
    """One primary particle: ``kind`` in :data:`KINDS`, start (cm), unit direction, KE (MeV)."""

    kind: str
    start: np.ndarray
    direction: np.ndarray
    ke: float
    interaction_id: int = -1
    #: For stopping muons: the range the particle must not exceed to stop inside.
    stop_inside: bool = False


def _kinds(rng: np.random.Generator, weights: Dict[str, float], n: int) -> List[str]:
    names = list(weights)
    p = np.array([weights[k] for k in names], dtype=np.float64)
    return [names[i] for i in rng.choice(len(names), size=n, p=p / p.sum())]


def generate_primaries(rng: np.random.Generator, low: np.ndarray, high: np.ndarray,
                       config: EventConfig = EventConfig()) -> List[Primary]:
    """Draw the primaries of one event inside the box ``[low, high)`` (cm)."""
    size = high - low
    out: List[Primary] = []
    n_vertices = 1 + rng.poisson(config.extra_vertices_mean)
    for vertex_id in range(n_vertices):
        vertex = low + size * rng.uniform(config.vertex_margin, 1 - config.vertex_margin, 3)
        lo_n, hi_n = config.vertex_particles
        kinds = _kinds(rng, config.vertex_weights, int(rng.integers(lo_n, hi_n + 1)))
        dirs = isotropic(rng, len(kinds))
        if len(kinds) > 1 and rng.random() < config.colinear_probability:
            # Co-linear pair from one vertex: a hard case for clustering.
            angle = np.radians(rng.uniform(2.0, config.colinear_max_deg))
            dirs[1] = deflect(rng, dirs[:1], np.cos(angle))[0]
        for kind, d in zip(kinds, dirs):
            ke = rng.uniform(*config.ke_range[kind])
            out.append(Primary(kind, vertex.copy(), d, float(ke), vertex_id))
    for kind, mean in config.rain_mean.items():
        for _ in range(rng.poisson(mean)):
            start = low + size * rng.random(3)
            out.append(Primary(kind, start, isotropic(rng, 1)[0],
                               float(rng.uniform(*config.rain_ke_range[kind]))))
    for _ in range(rng.poisson(config.soft_photon_mean)):
        out.append(Primary("photon", low + size * rng.random(3), isotropic(rng, 1)[0],
                           float(rng.uniform(*config.soft_photon_ke))))
    for _ in range(rng.poisson(config.cosmic_mean)):
        out.append(_cosmic(rng, low, size, config))
    if rng.random() < config.stopping_muon_probability:
        for _ in range(1 + rng.poisson(config.stopping_muon_extra_mean)):
            out.append(_stopping_muon(rng, low, size))
    return out


def _cosmic(rng: np.random.Generator, low: np.ndarray, size: np.ndarray,
            config: EventConfig) -> Primary:
    """A muon entering through the top face (y = high), zenith angle ~ cos^2."""
    cos_zenith = rng.random() ** (1.0 / 3.0)     # pdf ~ cos^2 on [0, 1]
    phi = rng.random() * 2 * np.pi
    sin_zenith = np.sqrt(1 - cos_zenith ** 2)
    direction = np.array([sin_zenith * np.cos(phi), -cos_zenith, sin_zenith * np.sin(phi)])
    # Entry points away from the side walls: through-going tracks cross most of the volume.
    start = low + size * np.array([rng.uniform(0.1, 0.9), 1.0 - 1e-6, rng.uniform(0.1, 0.9)])
    return Primary("muon", start, direction, float(rng.uniform(*config.cosmic_ke)))


def _stopping_muon(rng: np.random.Generator, low: np.ndarray, size: np.ndarray) -> Primary:
    """A muon whose kinetic energy is set later so that it ranges out inside the volume."""
    start = low + size * rng.uniform(0.1, 0.9, 3)
    return Primary("muon", start, isotropic(rng, 1)[0], 0.0, stop_inside=True)
