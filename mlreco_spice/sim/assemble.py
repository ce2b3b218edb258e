"""Event assembly: primaries -> tracks, delta rays, Michel electrons, cascades -> products.

One instance per particle: each track (proton, muon, pion), each delta ray,
each Michel electron, and each electromagnetic shower including all its
detached fragments. All cascades of an event (showers, delta rays, Michel
electrons) are simulated in one batched call.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Tuple

import numpy as np

from mlreco_spice.columns import DELTA, HIP, MICHEL, MIP, SHOWER
from parsers.event import ImageMeta, Particle

from . import physics
from .generator import KINDS, EventConfig, Primary, generate_primaries
from .geometry import distance_to_wall, isotropic
from .products import VoxelisedEvent, voxelise
from .showers import CascadeSettings, simulate_cascades
from .tracks import DELTA_CUT_MEV, LANDAU_WIDTH, propagate_tracks

__all__ = ["SimSettings", "InstanceTruth", "build_event", "make_particles"]

_TRACK_MASS = {"proton": physics.PROTON_MASS, "muon": physics.MUON_MASS, "pion": physics.PION_MASS}
_TRACK_CLASS = {"proton": HIP, "muon": MIP, "pion": MIP}


@dataclass(frozen=True)
class SimSettings:
    """Every tunable of the simulation (composition, transport, voxelisation)."""

    event: EventConfig = field(default_factory=EventConfig)
    cascade: CascadeSettings = field(default_factory=CascadeSettings)
    track_step_cm: float = 0.1
    #: Gaussian spread (cm) of each deposit segment, as drift diffusion would give.
    #: Off: PILArNet voxelises Geant4's true deposits, with no spread.
    smear_cm: float = 0.0
    #: Moyal width of the per-step deposit (see :data:`.tracks.LANDAU_WIDTH`).
    landau_width: float = LANDAU_WIDTH
    #: Delta rays above this energy are explicit instances (Bethe restricted below it).
    delta_cut_mev: float = DELTA_CUT_MEV
    #: Knock-on electrons above this energy (the critical energy) shower and are
    #: labelled Shower, below it Delta.
    delta_max_mev: float = physics.CRITICAL_ENERGY_MEV
    energy_threshold_mev: float = 0.02


@dataclass
class InstanceTruth:
    """Generator-level truth of one instance (not written to files).

    ``parent`` is the index of the parent in the same truth list (-1: none).
    ``length_cm`` is the true path length inside the volume (tracks),
    ``first_interaction_cm`` the distance a primary photon travelled before
    its first interaction (pair conversion when ``primary_pair``).
    """

    kind: str
    pdg: int
    semantic: int
    start_cm: np.ndarray
    energy_init: float
    parent: int = -1
    interaction_id: int = -1
    length_cm: float = float("nan")
    stopped: bool = False
    first_interaction_cm: float = float("nan")
    primary_pair: bool = False


class _Builder:
    """Collects instances (truth + deposits) and pending cascades of one event."""

    def __init__(self) -> None:
        self.truth: List[InstanceTruth] = []
        self.points: List[np.ndarray] = []
        self.vectors: List[np.ndarray] = []
        self.energies: List[np.ndarray] = []
        self.cascades: List[Tuple[int, np.ndarray, np.ndarray, float, bool]] = []

    def add(self, truth: InstanceTruth, points: np.ndarray, vectors: np.ndarray,
            energies: np.ndarray) -> int:
        self.truth.append(truth)
        self.points.append(points)
        self.vectors.append(vectors)
        self.energies.append(energies)
        return len(self.truth) - 1

    def add_cascade(self, truth: InstanceTruth, direction: np.ndarray, photon: bool) -> int:
        index = self.add(truth, np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0))
        self.cascades.append((index, truth.start_cm, direction, truth.energy_init, photon))
        return index


def _tracks(rng: np.random.Generator, builder: _Builder, primaries: List[Primary],
            low: np.ndarray, high: np.ndarray, settings: SimSettings) -> None:
    """All tracks of an event in one batch, then their delta rays and Michel electrons."""
    if not primaries:
        return
    masses = np.array([_TRACK_MASS[p.kind] for p in primaries])
    kes = np.array([p.ke for p in primaries], dtype=np.float64)
    for i, primary in enumerate(primaries):
        if primary.stop_inside:
            # Pick the range first so the muon stops inside: a Michel source.
            wall = distance_to_wall(primary.start, primary.direction, low, high)
            target = rng.uniform(15.0, max(20.0, 0.9 * wall))
            kes[i] = float(physics.range_table(masses[i]).kinetic_energy(target))
    results = propagate_tracks(rng, np.array([p.start for p in primaries]),
                               np.array([p.direction for p in primaries]), kes, masses, low, high,
                               step_cm=settings.track_step_cm,
                               delta_cut_mev=settings.delta_cut_mev,
                               landau_width=settings.landau_width)
    for primary, ke, result in zip(primaries, kes, results):
        pdg = KINDS[primary.kind][0]
        parent = builder.add(InstanceTruth(primary.kind, pdg, _TRACK_CLASS[primary.kind],
                                           np.asarray(primary.start, float), float(ke),
                                           interaction_id=primary.interaction_id,
                                           length_cm=result.length_cm, stopped=result.stopped),
                             result.points, result.vectors, result.energies)
        for start, direction, energy in zip(result.delta_start, result.delta_direction,
                                            result.delta_energy):
            showers = energy > settings.delta_max_mev
            builder.add_cascade(InstanceTruth("delta", 11, SHOWER if showers else DELTA, start,
                                              float(energy), parent, primary.interaction_id),
                                direction, photon=False)
        if primary.kind == "muon" and result.stopped:
            energy = float(physics.sample_michel_energy(rng, 1)[0])
            builder.add_cascade(InstanceTruth("michel", 11, MICHEL, result.end_cm.copy(), energy,
                                              parent, primary.interaction_id),
                                isotropic(rng, 1)[0], photon=False)


def build_event(rng: np.random.Generator, meta: ImageMeta,
                settings: SimSettings = SimSettings()) -> Tuple[VoxelisedEvent, List[InstanceTruth]]:
    """Simulate one event on ``meta``'s grid.

    Returns
    -------
    VoxelisedEvent
        The products; ``kept`` maps kept instances back to the truth list.
    list of InstanceTruth
        Truth of the kept instances, in instance-id order, with ``parent``
        re-indexed to kept ids (-1 when the parent left no voxel).
    """
    low = np.asarray(meta.origin_cm, dtype=np.float64)
    high = low + np.asarray(meta.length_cm, dtype=np.float64)
    builder = _Builder()
    primaries = generate_primaries(rng, low, high, settings.event)
    _tracks(rng, builder, [p for p in primaries if KINDS[p.kind][1]], low, high, settings)
    for primary in primaries:
        if not KINDS[primary.kind][1]:
            builder.add_cascade(InstanceTruth(primary.kind, KINDS[primary.kind][0], SHOWER,
                                              np.asarray(primary.start, float), primary.ke,
                                              interaction_id=primary.interaction_id),
                                primary.direction, photon=primary.kind == "photon")
    if builder.cascades:
        index, starts, dirs, energies, photon = zip(*builder.cascades)
        result = simulate_cascades(rng, np.array(starts), np.array(dirs), np.array(energies),
                                   np.array(photon), low, high, settings.cascade)
        order = np.argsort(result.owner, kind="stable")
        splits = np.cumsum(np.bincount(result.owner, minlength=len(index)))[:-1]
        for k, (pts, vec, dep) in enumerate(zip(np.split(result.points[order], splits),
                                                np.split(result.vectors[order], splits),
                                                np.split(result.energies[order], splits))):
            builder.points[index[k]], builder.vectors[index[k]] = pts, vec
            builder.energies[index[k]] = dep
            builder.truth[index[k]].first_interaction_cm = float(result.first_interaction_cm[k])
            builder.truth[index[k]].primary_pair = bool(result.primary_pair[k])
    points = builder.points
    if settings.smear_cm > 0:
        points = [p + rng.normal(0.0, settings.smear_cm, p.shape) for p in points]
    event = voxelise(meta, points, builder.vectors, builder.energies,
                     [t.semantic for t in builder.truth], settings.energy_threshold_mev)
    new_id = np.full(len(builder.truth), -1, dtype=np.int64)
    new_id[event.kept] = np.arange(event.kept.size)
    truth = []
    for k in event.kept:
        item = builder.truth[k]
        item.parent = int(new_id[item.parent]) if item.parent >= 0 else -1
        truth.append(item)
    return event, truth


def make_particles(event: VoxelisedEvent, truth: List[InstanceTruth]) -> List[Particle]:
    """Particle table rows (id == cluster set index) for the kept instances."""
    particles = []
    for i, item in enumerate(truth):
        particles.append(Particle(
            id=i, pdg=item.pdg, semantic=item.semantic,
            start_cm=tuple(float(v) for v in item.start_cm), energy_init=float(item.energy_init),
            parent_id=item.parent, group_id=i,
            energy_deposit=float(event.clusters.values[i].sum()),
            interaction_id=item.interaction_id))
    return particles

