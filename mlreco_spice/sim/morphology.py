"""How events look voxel by voxel: thickness, detachment and energy per voxel.

The statistics of the simulator-realism issue, with its definitions:

* **particles**: each cluster3d voxel set with at least
  :data:`MIN_PARTICLE_VOXELS` voxels; its class is the majority of the
  semantics over its voxels (the voxels the semantics product holds);
* **neighbours**: for each voxel of such a particle, the number of other
  voxels of the same particle within 1.75 voxels (the 26-neighbourhood),
  averaged over all voxels of the class, pooled over events;
* **isolated**: the fraction of those voxels with no neighbour;
* **voxels per length**: for track particles (HIP or MIP) with at least
  :data:`MIN_TRACK_VOXELS` voxels, voxels / (max - min + 1) of the voxels'
  projections on their first principal axis; the median over particles;
* **energy per voxel**: the median of the data product over the voxels whose
  semantic class is the class.

:data:`REAL_EVENT` holds the values measured on a real MPV/MPR Geant4 event
of the PILArNet authors (``shared/REALISM.md``).
"""
from __future__ import annotations

from typing import Dict, Iterable, List, Optional

import numpy as np

from mlreco_spice.columns import CLASS_NAMES, HIP, MIP, NUM_CLASSES
from parsers.event import EventRecord, SparseProduct, linear_index

__all__ = ["MIN_PARTICLE_VOXELS", "MIN_TRACK_VOXELS", "REAL_EVENT", "MorphologyAccumulator",
           "neighbour_counts", "voxels_per_length"]

MIN_PARTICLE_VOXELS = 5
MIN_TRACK_VOXELS = 30

#: The real event's values (None: not measured there). "Track" pools HIP and MIP.
REAL_EVENT: Dict[str, Dict[str, Optional[float]]] = {
    "Track": {"neighbours": 4.16, "isolated": None, "voxels_per_length": 1.44,
              "energy_median": None},
    "MIP": {"neighbours": None, "isolated": None, "voxels_per_length": None,
            "energy_median": 0.42},
    "Shower": {"neighbours": 3.8, "isolated": 0.17, "voxels_per_length": None,
               "energy_median": 0.36},
    "Michel": {"neighbours": 3.7, "isolated": None, "voxels_per_length": None,
               "energy_median": 0.31},
}

_OFFSETS = np.array([(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)
                     if (i, j, k) != (0, 0, 0)], dtype=np.int64)


def neighbour_counts(coords: np.ndarray) -> np.ndarray:
    """Number of other voxels of the set in each voxel's 26-neighbourhood.

    Parameters
    ----------
    coords : ndarray (n, 3) of int
        Distinct voxel indices of one particle.
    """
    coords = np.asarray(coords, dtype=np.int64).reshape(-1, 3)
    if coords.shape[0] == 0:
        return np.zeros(0, np.int64)
    # Keys on a grid padded by one voxel, so that offsets never wrap around.
    low = coords.min(axis=0) - 1
    span = coords.max(axis=0) - low + 2
    shifted = coords - low
    keys = (shifted[:, 0] * span[1] + shifted[:, 1]) * span[2] + shifted[:, 2]
    order = np.sort(keys)
    steps = (_OFFSETS[:, 0] * span[1] + _OFFSETS[:, 1]) * span[2] + _OFFSETS[:, 2]
    probe = keys[None, :] + steps[:, None]
    pos = np.minimum(np.searchsorted(order, probe), order.size - 1)
    return (order[pos] == probe).sum(axis=0)


def voxels_per_length(coords: np.ndarray) -> float:
    """Voxels per voxel of length along the set's first principal axis."""
    points = np.asarray(coords, dtype=np.float64).reshape(-1, 3)
    centred = points - points.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    proj = centred @ vt[0]
    return float(points.shape[0] / (proj.max() - proj.min() + 1.0))


def _matched(data: SparseProduct, semantics: SparseProduct) -> tuple:
    """(energy, class) of the voxels both products hold, matched by voxel index
    (files from elsewhere need not list the same voxels in the same order)."""
    size = semantics.meta.size
    sem_key = linear_index(semantics.coords, size)
    order = np.argsort(sem_key, kind="stable")
    sem_key = sem_key[order]
    sem_class = np.asarray(semantics.values)[order].astype(np.int64)
    if not sem_key.size:
        return np.zeros(0), sem_class
    data_key = linear_index(data.coords, size)
    pos = np.minimum(np.searchsorted(sem_key, data_key), sem_key.size - 1)
    hit = sem_key[pos] == data_key
    return np.asarray(data.values, dtype=np.float64)[hit], sem_class[pos[hit]]


class MorphologyAccumulator:
    """Pools the per-voxel and per-particle statistics of many events.

    Call :meth:`add` for each event (with the class of each cluster set,
    computed by the caller), then :meth:`result`.
    """

    def __init__(self) -> None:
        self._neighbours: List[List[np.ndarray]] = [[] for _ in range(NUM_CLASSES)]
        self._energies: List[List[np.ndarray]] = [[] for _ in range(NUM_CLASSES)]
        self._track_vpl: List[float] = []

    def add(self, record: EventRecord, set_classes: np.ndarray, data: str, semantics: str,
            cluster: str) -> None:
        """Add one event; ``set_classes[i]`` is the majority class of cluster set ``i``."""
        sem = record.sparse3d[semantics]
        if data in record.sparse3d:
            energy, classes = _matched(record.sparse3d[data], sem)
            for c in range(NUM_CLASSES):
                self._energies[c].append(energy[classes == c])
        for coords, c in zip(record.cluster3d[cluster].coords, set_classes):
            if not 0 <= c < NUM_CLASSES or len(coords) < MIN_PARTICLE_VOXELS:
                continue
            self._neighbours[c].append(neighbour_counts(coords))
            if c in (HIP, MIP) and len(coords) >= MIN_TRACK_VOXELS:
                self._track_vpl.append(voxels_per_length(coords))

    def result(self) -> Dict[str, Dict[str, float]]:
        """``{group: {neighbours, isolated, voxels_per_length, energy_median}}``.

        Groups are the five classes and ``Track`` (HIP and MIP pooled); a
        statistic with no voxel or particle is NaN.
        """
        def summary(classes: Iterable[int]) -> Dict[str, float]:
            classes = list(classes)
            counts = [a for c in classes for a in self._neighbours[c]]
            counts = np.concatenate(counts) if counts else np.zeros(0)
            energies = [a for c in classes for a in self._energies[c]]
            energies = np.concatenate(energies) if energies else np.zeros(0)
            return {"neighbours": float(counts.mean()) if counts.size else float("nan"),
                    "isolated": float((counts == 0).mean()) if counts.size else float("nan"),
                    "energy_median": float(np.median(energies)) if energies.size
                    else float("nan"),
                    "voxels": int(counts.size)}

        out = {name: summary([c]) for c, name in enumerate(CLASS_NAMES)}
        out["Track"] = summary([HIP, MIP])
        vpl = np.asarray(self._track_vpl)
        out["Track"]["voxels_per_length"] = float(np.median(vpl)) if vpl.size else float("nan")
        out["Track"]["tracks"] = int(vpl.size)
        return out
