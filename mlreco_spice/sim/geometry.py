"""Direction sampling, rotations and random walks shared by tracks and showers."""
from __future__ import annotations

from typing import Tuple, Union

import numpy as np

__all__ = ["isotropic", "deflect", "inside_box", "distance_to_wall", "walk"]


def isotropic(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` unit vectors uniform on the sphere, shape (n, 3)."""
    v = rng.standard_normal((n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _basis(d: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Two unit vectors perpendicular to each row of ``d`` and to each other."""
    # u = d x e_x (or d x e_y when d is close to e_x), written out: np.cross is slow on small arrays.
    x, y, z = d[:, 0], d[:, 1], d[:, 2]
    use_x = np.abs(x) < 0.9
    u = np.empty_like(d)
    u[:, 0] = np.where(use_x, 0.0, -z)
    u[:, 1] = np.where(use_x, z, 0.0)
    u[:, 2] = np.where(use_x, -y, x)
    u /= np.sqrt(np.einsum("ij,ij->i", u, u))[:, None]
    v = np.empty_like(d)
    v[:, 0] = y * u[:, 2] - z * u[:, 1]
    v[:, 1] = z * u[:, 0] - x * u[:, 2]
    v[:, 2] = x * u[:, 1] - y * u[:, 0]
    return u, v


def deflect(rng: np.random.Generator, d: np.ndarray, cos_theta: np.ndarray) -> np.ndarray:
    """Rotate unit vectors ``d`` (n, 3) by polar angles ``arccos(cos_theta)``, random azimuth."""
    d = np.atleast_2d(np.asarray(d, dtype=np.float64))
    cos_theta = np.clip(np.broadcast_to(np.asarray(cos_theta, dtype=np.float64), (d.shape[0],)),
                        -1.0, 1.0)
    sin_theta = np.sqrt(1.0 - cos_theta ** 2)
    phi = rng.random(d.shape[0]) * 2.0 * np.pi
    u, v = _basis(d)
    out = (cos_theta[:, None] * d
           + sin_theta[:, None] * (np.cos(phi)[:, None] * u + np.sin(phi)[:, None] * v))
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def inside_box(points: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Boolean mask of points (n, 3) inside the box [low, high)."""
    return np.all((points >= low) & (points < high), axis=1)


def distance_to_wall(position: np.ndarray, heading: np.ndarray, low: np.ndarray,
                     high: np.ndarray) -> Union[float, np.ndarray]:
    """Straight-line distance from inside points to the box wall along their headings.

    ``position`` and ``heading`` are (3,) (returns a float) or (n, 3) (returns (n,)).
    """
    position = np.asarray(position, dtype=np.float64)
    heading = np.asarray(heading, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(heading > 0, (high - position) / heading,
                     np.where(heading < 0, (low - position) / heading, np.inf))
    distance = np.maximum(t.min(axis=-1), 0.0)
    return float(distance) if distance.ndim == 0 else distance


def walk(rng: np.random.Generator, start: np.ndarray, direction: np.ndarray,
         step_lengths: np.ndarray, theta0: np.ndarray,
         segment_starts: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Random walks with multiple scattering, several independent walks at once.

    Each step adds a Gaussian kick (rms ``theta0`` per plane) to the walk's
    direction; the kicks accumulate, so the direction diffuses along the
    walk. Vectorised across steps and walks with segmented cumulative sums.

    Parameters
    ----------
    start, direction : ndarray (m, 3)
        First point and initial unit direction of each walk.
    step_lengths, theta0 : ndarray (n,)
        Length and rms deflection of every step, walks concatenated.
    segment_starts : ndarray (m,)
        Index of each walk's first step in the concatenated arrays.

    Returns
    -------
    midpoints : ndarray (n, 3)
        Centre of each step (where its energy is deposited).
    directions : ndarray (n, 3)
        Unit direction of each step.
    """
    n = step_lengths.size
    seg = np.zeros(n, dtype=np.int64)
    if segment_starts.size > 1:
        seg[segment_starts[1:]] = 1
    seg = np.cumsum(seg)
    kicks = rng.standard_normal((n, 3)) * theta0[:, None]
    acc = _segmented_cumsum(kicks, segment_starts, seg)
    dirs = direction[seg] + acc
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    moves = dirs * step_lengths[:, None]
    ends = _segmented_cumsum(moves, segment_starts, seg)
    mid = start[seg] + ends - 0.5 * moves
    return mid, dirs


def _segmented_cumsum(values: np.ndarray, starts: np.ndarray, seg: np.ndarray) -> np.ndarray:
    """Cumulative sum of ``values`` restarting at each segment start."""
    total = np.cumsum(values, axis=0)
    offset = np.zeros((starts.size,) + values.shape[1:])
    offset[1:] = total[starts[1:] - 1]
    return total - offset[seg]
