"""In-memory event records shared by the simulator, the readers and the writer.

Readers of every format (larcv3, larcv2 ROOT, PILArNet-M) return
:class:`EventRecord` objects; the writer takes them; the simulator makes
them. Coordinates are integer voxel indices (x, y, z) inside an
:class:`ImageMeta`; positions in cm come from :meth:`ImageMeta.to_cm`.

Canonical voxel order: ascending C-order linear index
``(x * ny + y) * nz + z`` (x slowest), the larcv3 convention. Every product
array in an :class:`EventRecord` built by a reader is in that order, so
arrays of the same voxel set line up row for row.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Sequence, Tuple

import numpy as np

__all__ = ["ImageMeta", "SparseProduct", "ClusterProduct", "Particle", "EventRecord",
           "linear_index", "sort_voxels"]


@dataclass(frozen=True)
class ImageMeta:
    """A 3D voxel grid.

    Attributes
    ----------
    size : (int, int, int)
        Number of voxels along x, y, z.
    voxel_cm : (float, float, float)
        Voxel pitch in cm along x, y, z.
    origin_cm : (float, float, float)
        Position of the grid's lower corner in cm.
    """

    size: Tuple[int, int, int]
    voxel_cm: Tuple[float, float, float]
    origin_cm: Tuple[float, float, float] = (0.0, 0.0, 0.0)

    @classmethod
    def cube(cls, size: int = 512, voxel_mm: float = 3.0) -> "ImageMeta":
        """A cubic image of ``size`` voxels of ``voxel_mm`` mm, origin at 0."""
        return cls((size, size, size), (voxel_mm / 10,) * 3, (0.0, 0.0, 0.0))

    @property
    def length_cm(self) -> Tuple[float, float, float]:
        return tuple(n * d for n, d in zip(self.size, self.voxel_cm))  # type: ignore[return-value]

    def to_cm(self, coords: np.ndarray) -> np.ndarray:
        """Voxel indices (N, 3) -> voxel-centre positions in cm (N, 3)."""
        coords = np.asarray(coords, dtype=np.float64)
        return np.asarray(self.origin_cm) + (coords + 0.5) * np.asarray(self.voxel_cm)

    def to_voxel(self, positions_cm: np.ndarray) -> np.ndarray:
        """Positions in cm (N, 3) -> integer voxel indices (N, 3) (not bounds-checked)."""
        rel = (np.asarray(positions_cm, dtype=np.float64) - np.asarray(self.origin_cm))
        return np.floor(rel / np.asarray(self.voxel_cm)).astype(np.int64)

    def contains(self, coords: np.ndarray) -> np.ndarray:
        """Boolean mask of voxel indices (N, 3) inside the grid."""
        coords = np.asarray(coords)
        return np.all((coords >= 0) & (coords < np.asarray(self.size)), axis=1)

    def same_grid(self, other: "ImageMeta", tol: float = 1e-6) -> bool:
        return (tuple(self.size) == tuple(other.size)
                and np.allclose(self.voxel_cm, other.voxel_cm, atol=tol)
                and np.allclose(self.origin_cm, other.origin_cm, atol=tol))


def linear_index(coords: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """C-order linear voxel index (x slowest), int64."""
    c = np.asarray(coords, dtype=np.int64)
    ny, nz = int(size[1]), int(size[2])
    return (c[:, 0] * ny + c[:, 1]) * nz + c[:, 2]


def sort_voxels(coords: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Permutation putting voxels in canonical order (stable)."""
    return np.argsort(linear_index(coords, size), kind="stable")


@dataclass
class SparseProduct:
    """One sparse3d product: voxel indices (N, 3) int64 and values (N,) float32."""

    coords: np.ndarray
    values: np.ndarray
    meta: ImageMeta


@dataclass
class ClusterProduct:
    """One cluster3d product: one voxel set per instance, the list index is the set id."""

    coords: List[np.ndarray]
    values: List[np.ndarray]
    meta: ImageMeta

    def __len__(self) -> int:
        return len(self.coords)


@dataclass
class Particle:
    """One row of a particle table (larcv ``Particle``); ``id`` equals its cluster set id."""

    id: int
    pdg: int
    semantic: int
    start_cm: Tuple[float, float, float]
    energy_init: float          # MeV (kinetic energy of the primary)
    parent_id: int = -1
    group_id: int = -1
    energy_deposit: float = 0.0  # MeV
    interaction_id: int = -1


@dataclass
class EventRecord:
    """All products of one event, by product name, plus its identity."""

    run: int = 0
    subrun: int = 0
    event: int = 0
    sparse3d: Dict[str, SparseProduct] = field(default_factory=dict)
    cluster3d: Dict[str, ClusterProduct] = field(default_factory=dict)
    particles: Dict[str, List[Particle]] = field(default_factory=dict)
    #: Where it was read from (empty for simulated events not yet written).
    file: str = ""
    entry: int = -1

    def products(self) -> List[str]:
        """Product names as ``<type>_<producer>`` (larcv convention)."""
        names = [f"sparse3d_{k}" for k in self.sparse3d]
        names += [f"cluster3d_{k}" for k in self.cluster3d]
        names += [f"particle_{k}" for k in self.particles]
        return sorted(names)

    def where(self) -> str:
        """``file entry N`` for messages."""
        return f"{self.file or '<memory>'} entry {self.entry}"
