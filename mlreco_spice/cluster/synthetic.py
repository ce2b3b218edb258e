"""Synthetic SPICE outputs with known instances, for tests, tuning checks and benchmarks.

Each true instance is a Gaussian blob in embedding space with its own width
``sigma``; a voxel's margin is its instance's ``sigma`` (with a little
noise) and its seediness is the kernel value at its embedding, as a trained
seediness branch would predict (eq. II.9). ``spread`` scales the blobs
relative to ``sigma``: 1 gives a well-trained network, larger values give
diffuse, overlapping embeddings.
"""
from __future__ import annotations

from typing import Dict, Sequence

import numpy as np

from ..columns import NUM_CLASSES

__all__ = ["PILARNET_INSTANCES", "synthetic_event"]

#: Typical instances per class in a PILArNet event (HIP, MIP, Shower, Delta, Michel).
PILARNET_INSTANCES = (4, 5, 8, 4, 2)


def synthetic_event(instances: Sequence[int] = PILARNET_INSTANCES, n_voxels: int = 18000,
                    spread: float = 1.0, sigma: float = 0.05, box: float = 1.0,
                    seed: int = 0) -> Dict[str, np.ndarray]:
    """One event's worth of fake network outputs and truth.

    Parameters
    ----------
    instances : sequence of int
        Instances per class (class order), length 5.
    n_voxels : int
        Total voxels, shared among instances by a Dirichlet draw (at least 2 each).
    spread : float
        Blob standard deviation per axis, in units of the instance's sigma / 2.
    sigma : float
        Typical margin; each instance draws its own in [0.5, 1.5] x sigma.
    box : float
        Centroids are uniform in [-box, box]^3.
    seed : int
        Random seed.

    Returns
    -------
    dict of numpy arrays
        ``embeddings (N, 3)``, ``margins``, ``seediness``, ``semantics`` (the
        true class, used for clustering), ``truth_instance`` (unique per event),
        ``truth_semantic``: the event format of
        :func:`mlreco_spice.cluster.tuning.tune_thresholds`.
    """
    if len(instances) != NUM_CLASSES:
        raise ValueError(f"instances needs {NUM_CLASSES} counts, got {len(instances)}")
    rng = np.random.default_rng(seed)
    total = int(sum(instances))
    if total == 0 or n_voxels < 2 * total:
        raise ValueError(f"need at least 2 voxels per instance ({total} instances, {n_voxels} voxels)")
    sizes = 2 + rng.multinomial(n_voxels - 2 * total, rng.dirichlet(np.ones(total)))
    classes = np.repeat(np.arange(NUM_CLASSES), instances)
    centers = rng.uniform(-box, box, size=(total, 3))
    sigmas = sigma * rng.uniform(0.5, 1.5, size=total)
    instance = np.repeat(np.arange(total), sizes)
    emb = centers[instance] + rng.normal(size=(n_voxels, 3)) * (0.5 * spread * sigmas[instance])[:, None]
    margins = sigmas[instance] * rng.uniform(0.9, 1.1, size=n_voxels)
    d2 = ((emb - centers[instance]) ** 2).sum(axis=1)
    seediness = np.exp(-d2 / (2.0 * sigmas[instance] ** 2))
    seediness = np.clip(seediness + rng.normal(scale=0.02, size=n_voxels), 0.0, 1.0)
    shuffle = rng.permutation(n_voxels)  # voxel order carries no information
    return {
        "embeddings": emb[shuffle].astype(np.float32),
        "margins": margins[shuffle].astype(np.float32),
        "seediness": seediness[shuffle].astype(np.float32),
        "semantics": classes[instance][shuffle],
        "truth_instance": instance[shuffle],
        "truth_semantic": classes[instance][shuffle],
    }
