"""Cross-class step: undo the segmentation stage's errors with the embeddings.

SPICE clusters each predicted class on its own (paper sec. II.C), so a stretch
of a muon that the segmentation calls HIP or Shower becomes a cluster of that
class, cut out of the muon. SPICE's network never sees the classes: that
stretch's embeddings still sit near the muon's centroid. This step joins such
pieces back:

1. clusters of different classes *touch* when two of their voxels are within
   ``radius`` (in the units of the coordinates given: the clusterer converts its
   ``absorb_radius_cm``);
2. of two touching clusters, the smaller (fewer voxels; ties: the later id)
   is absorbed by the larger when its centroid has ``p > absorb_p`` under the
   larger one's kernel (mean embedding and mean margin of its voxels); a
   cluster touching several goes to the one with the highest ``p``;
3. absorbed voxels take the absorbing cluster's id. Their per-voxel class
   is left as the segmentation gave it; a cluster's class is the majority of
   its voxels' (as everywhere in the analysis), i.e. the absorbing one's.

Chains (a piece absorbed by a cluster that is itself absorbed) end at the
largest cluster. Ids are renumbered 0..K-1 keeping their order.

:func:`reconnect_tracks` (option ``reconnect_after_absorb``) then runs the
connectivity step of :mod:`.postprocess` again on the clusters of each class
that has one, the class of a cluster being its majority. Why: a stretch of
track the segmentation gave to another class leaves a gap that cut the track
in two before absorption; once the stretch is absorbed, the two pieces touch
through it and can be joined. Absorbed material (voxels of other classes)
stays with its absorbed unit and goes where most of that unit is: it leaves
the track when most of it does not touch it, and is never shattered into its
disconnected bits.
"""
from __future__ import annotations

from typing import Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

from .kernels import EPS, drop_small
from .options import touching_radius
from .postprocess import connect_fragments
from .touching import Pairs, given_or_found, pairs_within, touching_pairs

__all__ = ["absorb_across_classes", "reconnect_tracks", "absorb_events", "event_pairs"]


def absorb_across_classes(coords: np.ndarray, emb: np.ndarray, margins: np.ndarray,
                          labels: np.ndarray, semantics: np.ndarray, radius: float,
                          absorb_p: float, return_units: bool = False,
                          touching: Optional[Tuple[np.ndarray, np.ndarray]] = None):
    """Absorb small clusters into touching clusters of another class (one event).

    Parameters
    ----------
    coords : array (n, 3)
        Voxel coordinates, in units where distance is isotropic (voxels, or cm:
        :func:`.options.pitch_frame`).
    emb : array (n, d)
    margins : array (n,)
    labels : int array (n,)
        Cluster id per voxel, unique within the event; ``-1`` unclustered.
    semantics : int array (n,)
        Class each voxel was clustered in.
    radius : float
        Voxels at distance ``<= radius`` (units of ``coords``) touch.
    absorb_p : float
        Kernel value the smaller cluster's centroid needs under the larger's.
    return_units : bool
        Also return each voxel's absorbed unit (for :func:`reconnect_tracks`).
    touching : (int array, int array), optional
        Every pair of rows within ``radius``, if the caller has them
        (:func:`.touching.pairs_within`); found here otherwise.

    Returns
    -------
    int64 array (n,)
        New ids (0..K-1, order kept); unclustered voxels stay -1.
    int64 array (n,), only with ``return_units``
        The unit: for a voxel of an absorbed cluster, the cluster (input id)
        that joined the final cluster directly, i.e. the absorbed cluster
        together with whatever it had absorbed itself; for the absorbing
        cluster's own voxels, its own id. -1 where unclustered.
    """
    labels = np.asarray(labels, dtype=np.int64)
    semantics = np.asarray(semantics, dtype=np.int64)
    clustered = labels >= 0
    if clustered.sum() < 2:
        return (labels.copy(), labels.copy()) if return_units else labels.copy()
    ids, inverse = np.unique(labels[clustered], return_inverse=True)
    k = ids.size
    local = np.full(labels.size, -1, dtype=np.int64)
    local[clustered] = inverse
    emb = np.asarray(emb, dtype=np.float64)
    count = np.bincount(inverse, minlength=k).astype(np.float64)
    centres = np.stack([np.bincount(inverse, weights=emb[clustered, j], minlength=k)
                        for j in range(emb.shape[1])], axis=1) / count[:, None]
    sigma = np.bincount(inverse, weights=np.asarray(margins, np.float64)[clustered],
                        minlength=k) / count
    cluster_class = np.zeros(k, dtype=np.int64)
    cluster_class[inverse] = semantics[clustered]

    touching = given_or_found(touching, coords, radius)
    if len(touching[0]) == 0:
        return (labels.copy(), labels.copy()) if return_units else labels.copy()
    a, b = local[touching[0]], local[touching[1]]
    cross = (a >= 0) & (b >= 0) & (a != b)
    a, b = a[cross], b[cross]
    cross = cluster_class[a] != cluster_class[b]
    key = np.unique(np.minimum(a[cross], b[cross]) * k + np.maximum(a[cross], b[cross]))
    a, b = key // k, key % k
    # Total order on clusters: size, then the earlier id counts as larger.
    a_smaller = (count[a] < count[b]) | ((count[a] == count[b]) & (a > b))
    small, big = np.where(a_smaller, a, b), np.where(a_smaller, b, a)
    log_p = -((centres[small] - centres[big]) ** 2).sum(axis=1) / (2.0 * sigma[big] ** 2 + EPS)
    passed = log_p > (np.log(absorb_p) if absorb_p > 0 else -np.inf)
    small, big, log_p = small[passed], big[passed], log_p[passed]
    parent = np.arange(k)
    if small.size:
        # Best target per small cluster: sorted by (small, log p), the last of each run.
        order = np.lexsort((log_p, small))
        last = np.r_[small[order][1:] != small[order][:-1], True]
        parent[small[order][last]] = big[order][last]
    direct = parent.copy()
    # Parents are strictly larger, so following them ends; k steps bound any chain.
    for _ in range(k):
        nxt = parent[parent]
        if np.array_equal(nxt, parent):
            break
        parent = nxt
    root = parent[inverse]
    out = np.full(labels.size, -1, dtype=np.int64)
    out[clustered] = np.unique(ids[root], return_inverse=True)[1]
    if not return_units:
        return out
    # Unit: the root's direct child on each cluster's chain (the root for itself).
    unit = np.arange(k)
    for _ in range(k):
        nxt = np.where(direct[unit] != parent[unit], direct[unit], unit)
        if np.array_equal(nxt, unit):
            break
        unit = nxt
    units = np.full(labels.size, -1, dtype=np.int64)
    units[clustered] = ids[unit[inverse]]
    return out, units


def reconnect_tracks(coords: np.ndarray, emb: np.ndarray, margins: np.ndarray,
                     labels: np.ndarray, semantics: np.ndarray, units: np.ndarray,
                     connect_radius: Sequence[Optional[float]],
                     connect_p: Sequence[Optional[float]],
                     max_bend: Optional[float] = None,
                     bend_window: Optional[float] = None,
                     pairs: Optional[Pairs] = None) -> np.ndarray:
    """The connectivity step again, per class, on one event's clusters after absorption.

    Each cluster whose majority class ``c`` has a connectivity step is split
    into pieces connected within ``connect_radius`` and touching pieces are
    re-joined as in :func:`.postprocess.connect_fragments`. Voxels of other
    classes (what absorbed clusters brought) then go, unit by unit, to the
    piece holding most of their unit: a Michel absorbed by its muon is not cut
    at its own gaps, and a unit that mostly does not touch the track leaves it
    whole.

    Parameters
    ----------
    coords, emb, margins, labels, semantics
        As in :func:`absorb_across_classes` (``labels`` after it).
    units : int array (n,)
        The absorbed unit of each voxel (``absorb_across_classes(...,
        return_units=True)``).
    connect_radius, connect_p : sequences of 5 optional floats
        The per-class connectivity settings (radii in the units of ``coords``);
        classes with ``connect_p`` None are left alone.
    max_bend, bend_window : float, optional
        See :func:`.postprocess.connect_fragments`.
    pairs : Pairs, optional
        The event's touching pairs (:func:`.touching.touching_pairs`) within at
        least every ``connect_radius`` used; found per class otherwise.

    Returns
    -------
    int64 array (n,)
        New ids 0..K-1; unclustered voxels stay -1.
    """
    labels = np.asarray(labels, dtype=np.int64)
    out = labels.copy()
    clustered = labels >= 0
    if not clustered.any():
        return out
    ids, inverse = np.unique(labels[clustered], return_inverse=True)
    votes = _table(inverse, np.asarray(semantics)[clustered], ids.size, int(semantics.max()) + 1)
    majority = np.full(labels.size, -1, dtype=np.int64)
    majority[clustered] = votes.argmax(axis=1)[inverse]
    next_id = int(labels.max()) + 1
    for c, (radius, p) in enumerate(zip(connect_radius, connect_p)):
        members = np.flatnonzero(majority == c)
        if p is None or members.size < 2:
            continue
        found = connect_fragments(coords[members], emb[members], margins[members],
                                  labels[members], radius, p, max_bend, bend_window,
                                  None if pairs is None else pairs_within(pairs, radius, members))
        n_pieces = int(found.max()) + 1
        _, unit = np.unique(units[members], return_inverse=True)
        unit = unit.reshape(-1)
        share = _table(unit, found, int(unit.max()) + 1, n_pieces)
        found = np.where(semantics[members] == c, found, share.argmax(axis=1)[unit])
        out[members] = found + next_id  # fresh ids: no clash with other classes' clusters
        next_id += n_pieces
    return np.unique(out, return_inverse=True)[1].reshape(-1) - int((out < 0).any())


def _table(rows: np.ndarray, cols: np.ndarray, n_rows: int, n_cols: int) -> np.ndarray:
    """Count of each (row, col) pair, as an (n_rows, n_cols) table (np.add.at's result,
    with one bincount: np.add.at took 1.4 ms per event here)."""
    flat = np.asarray(rows, dtype=np.int64) * n_cols + np.asarray(cols, dtype=np.int64)
    return np.bincount(flat, minlength=n_rows * n_cols).reshape(n_rows, n_cols)


def absorb_events(sorted_labels: np.ndarray, segments: Sequence, coords: np.ndarray,
                  emb: np.ndarray, margins: np.ndarray, semantics: np.ndarray,
                  steps: Mapping, min_cluster_size: int,
                  pairs: Optional[Mapping[int, Pairs]] = None) -> np.ndarray:
    """:func:`absorb_across_classes` on each event of a batch, then
    :func:`reconnect_tracks` if enabled (its pieces below ``min_cluster_size``
    are dissolved, as everywhere).

    Parameters
    ----------
    sorted_labels, coords, emb, margins, semantics : arrays over the sorted voxels
        As :func:`.clusterer.cluster_events` orders them (``coords`` in isotropic units).
    segments : sequence of (start, stop, event, class)
        The sorted segments; each event's are contiguous.
    steps : mapping
        The clusterer's options with lengths in the units of ``coords``
        (:func:`.options.lengths_in_units`).
    min_cluster_size : int
    pairs : mapping event -> Pairs, optional
        Each event's touching pairs (:func:`event_pairs`: rows of the sorted voxels)
        within at least the absorb and connect radii; found here otherwise.

    Returns
    -------
    int64 array
        New labels over the sorted voxels.
    """
    out = sorted_labels.copy()
    if pairs is None:
        pairs = event_pairs(coords, segments, steps)
    for event, (start, stop) in _event_ranges(segments).items():
        part = slice(start, stop)
        found = pairs.get(event)
        if found is None:  # a caller's map without this event
            found = touching_pairs(coords[part], touching_radius(steps))
        else:  # the event's rows from here on
            found = Pairs(*pairs_within(found, found.radius, start=start, stop=stop),
                          found.coords[part], found.radius)
        out[part], units = absorb_across_classes(
            coords[part], emb[part], margins[part], sorted_labels[part], semantics[part],
            steps["absorb_radius"], steps["absorb_p"], return_units=True,
            touching=pairs_within(found, steps["absorb_radius"]))
        if steps["reconnect_after_absorb"]:
            out[part] = drop_small(
                reconnect_tracks(coords[part], emb[part], margins[part], out[part],
                                 semantics[part], units, steps["connect_radius"],
                                 steps["connect_p"], steps["connect_max_bend"],
                                 steps["bend_window"], found),
                min_cluster_size)[0]
    return out


def _event_ranges(segments: Sequence) -> Dict[int, Tuple[int, int]]:
    """Sorted-row range (start, stop) of each event of ``segments`` (contiguous per event)."""
    ranges: Dict[int, Tuple[int, int]] = {}
    for start, stop, event, _ in segments:
        ranges[event] = (ranges.get(event, (start, stop))[0], stop)
    return ranges


def event_pairs(coords: np.ndarray, segments: Sequence, steps: Mapping) -> Dict[int, Pairs]:
    """Each event's touching pairs (:func:`.touching.touching_pairs`; rows of the sorted
    ``coords``, never across events) within :func:`.options.touching_radius` of ``steps``,
    when the absorb step is on; empty otherwise.

    The absorb step needs every pair of an event, and the connectivity steps before and
    after it need subsets of them: one search per event serves all three. Without the absorb
    step each connectivity step searches its own class's voxels, far fewer than the event's.
    """
    radius = touching_radius(steps)
    if steps["absorb_p"] is None or radius is None or coords is None:
        return {}
    coords = np.asarray(coords, dtype=np.float64)
    out = {}
    for event, (start, stop) in _event_ranges(segments).items():
        found = touching_pairs(coords[start:stop], radius)
        out[event] = Pairs(found.a + start, found.b + start, coords, radius)
    return out
