"""Non-learned clustering baselines: DBSCAN on voxel coordinates.

The reference points SPICE has to beat, with DBSCAN labels identical to
``sklearn.cluster.DBSCAN`` (neighbours found with scikit-learn):

* :func:`dbscan_by_class`: the voxels of each semantic class clustered on
  their coordinates, ``eps`` (voxels) and ``min_samples`` chosen per class on
  a validation set (:func:`tune_dbscan`, per-class ARI);
* :func:`dbscan_coordinates`: all voxels of an event at once, no semantics,
  one ``eps`` and ``min_samples`` chosen on validation by the particle-level
  ARI (:func:`tune_dbscan_coordinates`).

Label convention as in :mod:`mlreco_spice.cluster`: ids restart at 0 in each
event and are unique within it (classes in class order); ``-1`` is
unclustered (DBSCAN noise, or a voxel outside the five classes), which the
metrics score as a singleton.

scikit-learn is imported inside the functions (an optional dependency).
"""
from __future__ import annotations

import logging
import math
import time
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .columns import CLASS_NAMES, UNLABELED, class_indices
from .metrics import DEFAULT_MIN_TRUE_SIZE, evaluate_event, evaluate_particles, prepare_truth

__all__ = ["dbscan_by_class", "dbscan_coordinates", "tune_dbscan", "tune_dbscan_coordinates",
           "DEFAULT_EPS_GRID", "DEFAULT_MIN_SAMPLES_GRID", "DBSCAN_EVENT_KEYS"]

log = logging.getLogger(__name__)

DEFAULT_EPS_GRID = (1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
DEFAULT_MIN_SAMPLES_GRID = (1, 2, 3, 5)
#: Arrays each tuning event must provide (one row per voxel).
DBSCAN_EVENT_KEYS = ("coords", "truth_instance", "truth_semantic")


def _radius_graph(coords: np.ndarray, radius: float) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Neighbour pairs within ``radius`` (self excluded): ``(rows, cols, distances)``.

    Why: one graph at the largest ``eps`` serves every grid point of the tuning.
    """
    from sklearn.neighbors import NearestNeighbors

    graph = NearestNeighbors(radius=radius).fit(coords).radius_neighbors_graph(mode="distance")
    graph = graph.tocoo()
    return graph.row.astype(np.int64), graph.col.astype(np.int64), graph.data


def _dbscan_labels(n: int, graph: Tuple[np.ndarray, np.ndarray, np.ndarray], eps: float,
                   min_samples: int) -> np.ndarray:
    """DBSCAN labels from a neighbour graph; identical to ``sklearn.cluster.DBSCAN``.

    sklearn's loop visits points in index order and grows each cluster fully
    from its first core point, so clusters are the connected components of
    the core-core graph numbered by their smallest core index, and a border
    point joins the lowest-numbered cluster among its core neighbours. Done
    here with array operations (sklearn re-sorts the graph on every call,
    which dominated the grid search).
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    rows, cols, dist = graph
    within = dist <= eps
    rows, cols = rows[within], cols[within]
    core = np.bincount(rows, minlength=n) + 1 >= min_samples  # a point is its own neighbour
    edge = core[rows] & core[cols]
    adjacency = coo_matrix((np.ones(int(edge.sum()), dtype=np.int8), (rows[edge], cols[edge])),
                           shape=(n, n))
    _, component = connected_components(adjacency, directed=False)
    labels = np.full(n, UNLABELED, dtype=np.int64)
    core_index = np.flatnonzero(core)
    if not core_index.size:
        return labels
    # Components are discovered in index order: rank them by their first core point.
    first = np.full(component.max() + 1, n, dtype=np.int64)
    np.minimum.at(first, component[core_index], core_index)
    rank = np.argsort(np.argsort(first, kind="stable"), kind="stable")
    labels[core_index] = rank[component[core_index]]
    border = ~core[rows] & core[cols]
    best = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(best, rows[border], labels[cols[border]])
    reached = ~core & (best < np.iinfo(np.int64).max)
    labels[reached] = best[reached]
    return labels


def _check_params(params: Mapping[str, Mapping[str, float]]) -> Dict[int, tuple]:
    """``{class name: {eps, min_samples}}`` -> ``{class index: (eps, min_samples)}``, validated."""
    return {class_indices([name])[0]: _check_point(name, entry["eps"], entry["min_samples"])
            for name, entry in params.items()}


def _check_point(name: str, eps: float, min_samples: int) -> Tuple[float, int]:
    eps, min_samples = float(eps), int(min_samples)
    if not eps > 0 or min_samples < 1:
        raise ValueError(f"DBSCAN {name}: eps must be > 0 and min_samples >= 1, "
                         f"got {eps} and {min_samples}")
    return eps, min_samples


def dbscan_by_class(coords, semantics, params: Mapping[str, Mapping[str, float]]) -> np.ndarray:
    """Cluster each class's voxels with DBSCAN on their coordinates.

    Parameters
    ----------
    coords : array_like, shape (N, 3)
        Voxel coordinates (voxel units).
    semantics : array_like of int, shape (N,)
        Class per voxel (true or predicted); voxels of classes absent from
        ``params`` (or -1) stay unclustered.
    params : mapping
        Class name -> ``{"eps": float, "min_samples": int}``, e.g. the
        ``params`` of :func:`tune_dbscan`.

    Returns
    -------
    numpy.ndarray of int64, shape (N,)
        Cluster id per voxel, unique within the event; -1 unclustered (noise).
    """
    coords = np.asarray(coords, dtype=np.float64)
    semantics = np.asarray(semantics).reshape(-1)
    if coords.ndim != 2 or len(coords) != semantics.size:
        raise ValueError(f"coords must be (N, D) with N = len(semantics) = {semantics.size}, "
                         f"got shape {coords.shape}")
    labels = np.full(semantics.size, UNLABELED, dtype=np.int64)
    offset = 0
    for c, (eps, min_samples) in sorted(_check_params(params).items()):
        members = np.flatnonzero(semantics == c)
        if not members.size:
            continue
        found = _dbscan_labels(members.size, _radius_graph(coords[members], eps), eps, min_samples)
        clustered = found >= 0
        labels[members[clustered]] = found[clustered] + offset
        offset += int(found.max()) + 1 if clustered.any() else 0
    return labels


def tune_dbscan(events: Iterable[Mapping[str, np.ndarray]],
                eps_grid: Sequence[float] = DEFAULT_EPS_GRID,
                min_samples_grid: Sequence[int] = DEFAULT_MIN_SAMPLES_GRID,
                classes: Optional[Sequence] = None, progress: bool = True,
                min_true_size: int = DEFAULT_MIN_TRUE_SIZE) -> Dict:
    """Grid-search DBSCAN's ``eps`` and ``min_samples`` per class, maximising mean ARI.

    Each class is clustered on the voxels whose TRUE class it is (the baseline
    gets perfect semantics) and scored as :func:`~mlreco_spice.metrics.evaluate_event`
    does. Ties in mean ARI go to the larger mean purity + efficiency, then to
    the earlier grid point (smaller ``eps``, then smaller ``min_samples``).

    Parameters
    ----------
    events : iterable of dict
        Numpy arrays :data:`DBSCAN_EVENT_KEYS`: ``coords (N, 3)``,
        ``truth_instance (N,)``, ``truth_semantic (N,)``.
    eps_grid, min_samples_grid : sequences
        Grid values (``eps`` in voxels).
    classes : sequence of str or int, optional
        Classes to tune (default all).
    progress : bool
        Progress bar over events.
    min_true_size : int
        True clusters below this size are masked, as in the metrics.

    Returns
    -------
    dict
        ``params`` (class -> ``{eps, min_samples}``; classes never seen get
        the grid's first point), ``scores`` (class -> ``{ari, purity,
        efficiency, n_events}`` at the optimum), ``eps_grid``,
        ``min_samples_grid``, ``n_events``, ``seconds``.
    """
    from tqdm import tqdm

    eps_grid, min_samples_grid = _check_grids(eps_grid, min_samples_grid)
    wanted = class_indices(classes) if classes is not None else list(range(len(CLASS_NAMES)))
    per_class: Dict[int, List[np.ndarray]] = {c: [] for c in wanted}
    start, n_events = time.perf_counter(), 0
    for index, event in enumerate(tqdm(events, desc="dbscan tune", unit="event",
                                       disable=not progress)):
        missing = [k for k in DBSCAN_EVENT_KEYS if k not in event]
        if missing:
            raise ValueError(f"DBSCAN tuning event {index} lacks {missing}")
        n_events += 1
        coords = np.asarray(event["coords"], dtype=np.float64)
        truth = np.asarray(event["truth_instance"]).reshape(-1)
        semantic = np.asarray(event["truth_semantic"]).reshape(-1)
        for c in wanted:
            members = np.flatnonzero(semantic == c)
            # Skip classes with nothing to score (absent, or all true clusters masked).
            if not members.size or not prepare_truth(truth[members], min_true_size)[0].any():
                continue
            per_class[c].append(_grid_scores(
                coords[members], eps_grid, min_samples_grid,
                lambda pred: evaluate_event(truth[members], pred, semantic[members],
                                            min_true_size, [c])[0]))
    if n_events == 0:
        raise ValueError("tune_dbscan needs at least one event")
    result: Dict = {"params": {}, "scores": {}, "eps_grid": eps_grid,
                    "min_samples_grid": min_samples_grid, "n_events": n_events}
    for c in wanted:
        name = CLASS_NAMES[c]
        if not per_class[c]:
            result["params"][name] = {"eps": eps_grid[0], "min_samples": min_samples_grid[0]}
            result["scores"][name] = {"ari": math.nan, "purity": math.nan,
                                      "efficiency": math.nan, "n_events": 0}
            log.warning("DBSCAN tuning: no %s cluster in the validation events; using the "
                        "first grid point", name)
            continue
        result["params"][name], result["scores"][name] = _best_point(
            per_class[c], eps_grid, min_samples_grid)
    result["seconds"] = time.perf_counter() - start
    return result


def _grid_scores(coords: np.ndarray, eps_grid: Sequence[float], min_samples_grid: Sequence[int],
                 score: Callable[[np.ndarray], Mapping[str, float]]) -> np.ndarray:
    """(ari, purity, efficiency) of ``score(labels)`` at every grid point: (3, E, M)."""
    graph = _radius_graph(coords, max(eps_grid))
    out = np.empty((3, len(eps_grid), len(min_samples_grid)))
    for i, eps in enumerate(eps_grid):
        for j, min_samples in enumerate(min_samples_grid):
            row = score(_dbscan_labels(len(coords), graph, eps, min_samples))
            out[:, i, j] = row["ari"], row["purity"], row["efficiency"]
    return out


def _best_point(per_event: List[np.ndarray], eps_grid: Sequence[float],
                min_samples_grid: Sequence[int]) -> Tuple[Dict, Dict]:
    """Grid point of the highest mean ARI (ties: purity + efficiency, then the earliest)."""
    mean = np.nanmean(np.stack(per_event), axis=0)
    mean = np.where(np.isnan(mean), -np.inf, mean)
    # lexsort: last key primary; -flat index so ties pick the earliest grid point.
    flat = np.lexsort((-np.arange(mean[0].size), (mean[1] + mean[2]).ravel(),
                       mean[0].ravel()))[-1]
    i, j = np.unravel_index(flat, mean[0].shape)
    return ({"eps": eps_grid[i], "min_samples": min_samples_grid[j]},
            {"ari": float(mean[0, i, j]), "purity": float(mean[1, i, j]),
             "efficiency": float(mean[2, i, j]), "n_events": len(per_event)})


def _check_grids(eps_grid: Sequence[float], min_samples_grid: Sequence[int]) -> Tuple[list, list]:
    eps_grid = [float(e) for e in eps_grid]
    min_samples_grid = [int(m) for m in min_samples_grid]
    if not eps_grid or not min_samples_grid or min(eps_grid) <= 0 or min(min_samples_grid) < 1:
        raise ValueError("eps_grid needs values > 0 and min_samples_grid values >= 1, got "
                         f"{eps_grid} and {min_samples_grid}")
    return eps_grid, min_samples_grid


def dbscan_coordinates(coords, eps: float, min_samples: int) -> np.ndarray:
    """DBSCAN on all voxels of one event, no semantics: ids 0..K-1, -1 noise.

    Parameters
    ----------
    coords : array_like, shape (N, 3)
        Voxel coordinates (voxel units).
    eps : float
        Neighbourhood radius in voxels (> 0).
    min_samples : int
        Core point threshold, the point itself included (>= 1).
    """
    coords = np.asarray(coords, dtype=np.float64)
    eps, min_samples = _check_point("on coordinates", eps, min_samples)
    if not len(coords):
        return np.zeros(0, dtype=np.int64)
    return _dbscan_labels(len(coords), _radius_graph(coords, eps), eps, min_samples)


def tune_dbscan_coordinates(events: Iterable[Mapping[str, np.ndarray]],
                            eps_grid: Sequence[float] = DEFAULT_EPS_GRID,
                            min_samples_grid: Sequence[int] = DEFAULT_MIN_SAMPLES_GRID,
                            progress: bool = True,
                            min_true_size: int = DEFAULT_MIN_TRUE_SIZE) -> Dict:
    """Grid-search :func:`dbscan_coordinates`, maximising the mean particle-level ARI.

    Scored with :func:`~mlreco_spice.metrics.evaluate_particles` (all voxels,
    particle id as truth); ties as in :func:`tune_dbscan`. ``events`` as
    there (``truth_semantic`` is not used).

    Returns
    -------
    dict
        ``params`` (``{eps, min_samples}``), ``scores`` (``{ari, purity,
        efficiency, n_events}`` at the optimum), ``eps_grid``,
        ``min_samples_grid``, ``n_events``, ``seconds``.
    """
    from tqdm import tqdm

    eps_grid, min_samples_grid = _check_grids(eps_grid, min_samples_grid)
    start, per_event, n_events = time.perf_counter(), [], 0
    for event in tqdm(events, desc="dbscan (coordinates) tune", unit="event",
                      disable=not progress):
        n_events += 1
        truth = np.asarray(event["truth_instance"]).reshape(-1)
        if not prepare_truth(truth, min_true_size)[0].any():
            continue
        per_event.append(_grid_scores(
            np.asarray(event["coords"], dtype=np.float64), eps_grid, min_samples_grid,
            lambda pred: evaluate_particles(truth, pred, min_true_size)))
    if not per_event:
        raise ValueError("tune_dbscan_coordinates needs at least one event with a particle "
                         "to score")
    params, scores = _best_point(per_event, eps_grid, min_samples_grid)
    return {"params": params, "scores": scores, "eps_grid": eps_grid,
            "min_samples_grid": min_samples_grid, "n_events": n_events,
            "seconds": time.perf_counter() - start}
