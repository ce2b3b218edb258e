"""PILArNet-like LArTPC event simulator.

Events hold interaction vertices with several particles each, independent
particles anywhere in the volume ("rain") and through-going cosmic-like
muons. Tracks (protons: HIP; muons, pions: MIP) follow the Bethe energy loss
with Landau-like fluctuations and Highland multiple scattering, emit delta
rays and, for stopping muons, a Michel electron; electrons and photons
develop electromagnetic cascades (:mod:`.showers`). Each event becomes an
:class:`~parsers.event.EventRecord` with

* ``sparse3d[data]``: deposited energy per voxel (MeV);
* ``sparse3d[semantics]``: class per voxel (0 HIP, 1 MIP, 2 Shower, 3 Delta,
  4 Michel; overlaps resolved as in :mod:`.products`);
* ``cluster3d[pcluster]``: one voxel set per instance (set index = instance id);
* ``particles[pcluster]``: one :class:`~parsers.event.Particle` per instance.

Deposits are straight step segments voxelised by exact traversal, with no
transverse spread (:mod:`.traversal`), as PILArNet voxelises Geant4's true
deposits: tracks are thin 26-connected lines, showers thin branches with
detached Compton pieces (``shared/REALISM.md``; :mod:`.morphology` measures it).

Reproducibility: event ``i`` of seed ``s`` uses its own generator seeded by
``SeedSequence([s, i])``, so it is the same whatever the number of events,
their order or the process that makes them, for one simulator version
(:data:`.version.SIM_VERSION`, recorded in every file written).

Example::

    from mlreco_spice.sim import simulate_file
    simulate_file("train.h5", n_events=100, seed=1)
"""
from __future__ import annotations

import logging
import os
from typing import Iterator, List, Optional, Tuple, Union

import numpy as np

from parsers.event import EventRecord, ImageMeta

from .assemble import InstanceTruth, SimSettings, build_event, make_particles
from .version import SIM_VERSION, simulation_attrs

__all__ = ["simulate_event", "simulate_event_with_truth", "simulate_events", "simulate_file",
           "event_rng", "SimSettings", "InstanceTruth", "SIM_VERSION"]

log = logging.getLogger(__name__)


def event_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of event ``index`` for ``seed`` (independent of other events)."""
    if seed < 0 or index < 0:
        raise ValueError(f"seed and event index must be >= 0, got seed={seed}, index={index}")
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))


def simulate_event_with_truth(rng_or_seed: Union[int, np.random.Generator], index: int = 0,
                              meta: Optional[ImageMeta] = None, *,
                              settings: SimSettings = SimSettings(),
                              data_name: str = "data", semantics_name: str = "semantics",
                              cluster_name: str = "pcluster", particle_name: str = "pcluster",
                              first_event: int = 0) -> Tuple[EventRecord, List[InstanceTruth]]:
    """Simulate one event; also return the generator truth of its instances.

    Parameters
    ----------
    rng_or_seed : int or numpy.random.Generator
        A seed (the event's generator is then :func:`event_rng` ``(seed, index)``)
        or a generator used as is.
    index : int
        Event index within the run (sets the seed stream and the event number).
    meta : ImageMeta, optional
        The image grid; default a 512^3 cube of 3 mm voxels.
    settings : SimSettings
        Composition, transport and threshold settings.
    data_name, semantics_name, cluster_name, particle_name : str
        Producer names of the four products.
    first_event : int
        Event number of index 0.

    Returns
    -------
    EventRecord
        The products, every array in canonical voxel order.
    list of InstanceTruth
        Truth per instance, index = instance id (path lengths, conversion
        distances, ...), for tests and studies.
    """
    meta = meta if meta is not None else ImageMeta.cube()
    if isinstance(rng_or_seed, np.random.Generator):
        rng = rng_or_seed
    else:
        rng = event_rng(int(rng_or_seed), index)
    event, truth = build_event(rng, meta, settings)
    record = EventRecord(run=0, subrun=0, event=first_event + index)
    record.sparse3d[data_name] = event.data
    record.sparse3d[semantics_name] = event.semantics
    record.cluster3d[cluster_name] = event.clusters
    record.particles[particle_name] = make_particles(event, truth)
    return record, truth


def simulate_event(rng_or_seed: Union[int, np.random.Generator], index: int = 0,
                   meta: Optional[ImageMeta] = None, **kwargs) -> EventRecord:
    """:func:`simulate_event_with_truth` without the truth."""
    return simulate_event_with_truth(rng_or_seed, index, meta, **kwargs)[0]


def simulate_events(n: int, seed: int = 0, size: int = 512, voxel_mm: float = 3.0,
                    first_event: int = 0, **kwargs) -> Iterator[EventRecord]:
    """Yield ``n`` events of a ``size``^3 cube of ``voxel_mm`` voxels.

    Event ``i`` is seeded by ``(seed, first_event + i)``, so a run split in
    pieces with ``first_event`` gives the same events as one run.
    """
    _check(n, size, voxel_mm)
    meta = ImageMeta.cube(size, voxel_mm)
    for i in range(n):
        yield simulate_event(seed, first_event + i, meta, **kwargs)


def simulate_file(path: Union[str, os.PathLike], n_events: int, seed: int = 0, size: int = 512,
                  voxel_mm: float = 3.0, first_event: int = 0, progress: Optional[bool] = None,
                  **kwargs) -> str:
    """Simulate ``n_events`` events into a larcv3 file (written atomically).

    The file records the simulator version, seed, size, pitch and event range
    (:func:`.version.simulation_attrs`).

    Parameters
    ----------
    path : str or PathLike
        Output ``.h5`` file.
    n_events, seed, size, voxel_mm, first_event
        As in :func:`simulate_events`.
    progress : bool, optional
        Show a progress bar (default: when more than 50 events and tqdm is installed).
    **kwargs
        Product names and ``settings``, as in :func:`simulate_event_with_truth`, and
        ``labels``: the semantic codes written, ``pilarnet2020`` (ours, default) or
        ``spine`` (shape codes; the particle table keeps the PDG codes).

    Returns
    -------
    str
        The path written.
    """
    from parsers.writer import write_events

    _check(n_events, size, voxel_mm)
    labels = kwargs.pop("labels", "pilarnet2020")
    events = simulate_events(n_events, seed, size, voxel_mm, first_event, **kwargs)
    if labels != "pilarnet2020":  # e.g. SPINE's shape codes (parsers/label_schemes.py)
        from parsers.label_schemes import records_in_scheme

        events = records_in_scheme(events, labels)
    if progress is None:
        progress = n_events > 50
    if progress:
        try:
            from tqdm import tqdm
        except ImportError:  # progress bar is optional
            log.info("tqdm not installed: no progress bar")
        else:
            events = tqdm(events, total=n_events, desc="simulate", unit="ev")
    write_events(str(path), events,
                 attrs=simulation_attrs(seed, size, voxel_mm, n_events, first_event, labels))
    log.info("wrote %d simulated events to %s (simulator version %d, seed %d, %d^3 voxels "
             "of %g mm)", n_events, path, SIM_VERSION, seed, size, voxel_mm)
    return str(path)


def _check(n: int, size: int, voxel_mm: float) -> None:
    if int(n) < 1:
        raise ValueError(f"number of events must be at least 1, got {n}")
    if int(size) < 8:
        raise ValueError(f"image size must be at least 8 voxels, got {size}")
    if not voxel_mm > 0:
        raise ValueError(f"voxel size must be positive, got {voxel_mm} mm")
