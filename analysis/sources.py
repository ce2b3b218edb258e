"""Events with truth and prediction, from ``predict`` outputs or by running the chain.

:func:`iter_events` turns one input file into :class:`~mlreco_spice.inference.EventPrediction`
objects carrying truth (``truth_instance``, ``truth_semantic``) and, in
``extra["true_particles"]``, the truth particle table when the file has one.
Which path applies is detected per file (:func:`is_prediction_output`):

* a ``predict`` output (it has ``cluster3d_spice``): truth is parsed from the
  copied input products with the schema's ``clust_label`` entry, the
  prediction is read from ``cluster3d_spice``, ``particle_spice`` (class per
  cluster), ``sparse3d_semantics_pred`` and, when saved,
  ``sparse3d_spice_margin`` / ``_seediness`` / ``_embedding_{x,y,z}``; wall
  times come from ``<stem>_timing.csv`` next to the file;
* a raw input: the chain runs (:class:`~mlreco_spice.inference.InferenceEngine`).

Rows are the data voxels (the schema's network input) in both cases.
"""
from __future__ import annotations

import csv
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from mlreco_spice.columns import (NUM_CLASSES, PARSER_COORD_COLS, PARSER_FEATURE_START,
                                  PARSER_INSTANCE_COL, PARSER_SEMANTIC_COL, UNLABELED)
from mlreco_spice.errors import BadEventError, UserError
from mlreco_spice.inference import EventPrediction

__all__ = ["SkippedEntry", "iter_events", "load_event", "is_prediction_output",
           "require_labels", "SPICE_PRODUCER", "LABEL_ENTRY"]

log = logging.getLogger(__name__)

#: Producer name of the predicted clusters in predict outputs (``cluster3d_spice``).
SPICE_PRODUCER = "spice"
#: Schema entry giving the truth.
LABEL_ENTRY = "clust_label"


@dataclass(frozen=True)
class SkippedEntry:
    """An event that could not be evaluated, and why."""

    file: str
    entry: int
    run: int
    subrun: int
    event: int
    reason: str


def require_labels(cfg: Dict[str, Any]) -> Dict[str, Any]:
    """The schema's ``clust_label`` entry (UserError when the schema has none)."""
    entry = cfg["io"]["dataset"]["schema"].get(LABEL_ENTRY)
    if not entry:
        raise UserError(f"evaluation needs truth: io.dataset.schema must have a '{LABEL_ENTRY}' "
                        f"entry, e.g. '{LABEL_ENTRY}: {{parser: cluster3d, cluster_product: "
                        f"cluster3d_pcluster, semantics_product: sparse3d_semantics}}'")
    return entry


def _data_entry(cfg: Dict[str, Any]) -> str:
    """Schema entry the network reads (the first stage input that names a schema entry)."""
    schema = cfg["io"]["dataset"]["schema"]
    for stage in cfg["model"]["stages"]:
        for source in (cfg["model"]["modules"][stage].get("network_input") or {}).values():
            if "." not in source and source in schema:
                return source
    if "data" in schema:
        return "data"
    raise UserError("cannot tell which io.dataset.schema entry holds the voxels: no stage's "
                    "network_input names one and there is no 'data' entry")


def is_prediction_output(file: str, fmt: str = "auto", options: Optional[dict] = None) -> bool:
    """True when ``file`` was written by ``predict`` (provenance or ``cluster3d_spice`` present).

    ``fmt`` and ``options`` (``io.dataset.format``/``reader_options``) say how to
    read a file that is not a predict output (those are always larcv3).
    """
    from mlreco_spice.predict import read_provenance
    from parsers.readers import open_reader

    if str(file).endswith((".h5", ".hdf5")) and read_provenance(Path(file)) is not None:
        return True
    reader = open_reader([file], fmt, None, **(options or {}))
    return len(reader) > 0 and SPICE_PRODUCER in reader[0].cluster3d


def _rows_in(lin_sorted_order: Tuple[np.ndarray, np.ndarray], coords: np.ndarray,
             size: Sequence[int]) -> Tuple[np.ndarray, np.ndarray]:
    """Rows of ``coords`` among the data voxels, and which of them were found."""
    from parsers.event import linear_index

    order, sorted_lin = lin_sorted_order
    coords = np.asarray(coords, dtype=np.int64).reshape(-1, 3)
    if not len(coords) or not len(sorted_lin):
        return np.zeros(0, np.int64), np.zeros(len(coords), bool)
    query = linear_index(coords, size)
    pos = np.minimum(np.searchsorted(sorted_lin, query), len(sorted_lin) - 1)
    found = sorted_lin[pos] == query
    return order[pos[found]], found


def _read_skipped(file: str) -> set:
    """Entries predict skipped as bad, from ``<stem>_skipped.csv`` next to a predict output."""
    import csv

    path = Path(file)
    table = path.with_name(f"{path.stem.removesuffix('_spice')}_skipped.csv")
    if not table.is_file():
        return set()
    with open(table, newline="") as stream:
        return {int(row["entry"]) for row in csv.DictReader(stream)}


def _read_timing(file: str) -> Dict[int, Tuple[float, float]]:
    """Entry -> (forward, cluster) seconds from ``<stem>_timing.csv`` next to a predict output."""
    path = Path(file)
    timing = path.with_name(f"{path.stem.removesuffix('_spice')}_timing.csv")
    if not timing.is_file():
        log.warning("%s not found: wall times of %s are unknown", timing.name, path.name)
        return {}
    with open(timing, newline="") as stream:
        return {int(r["entry"]): (float(r["forward_time_s"]), float(r["cluster_time_s"]))
                for r in csv.DictReader(stream)}


def _truth_particles(record, label_cfg: Dict[str, Any]) -> Optional[list]:
    """Truth particle table: the label entry's ``particle_product``, else the cluster producer's."""
    from parsers.sparse import producer_name

    name = label_cfg.get("particle_product") or producer_name(label_cfg["cluster_product"], "cluster3d")
    return record.particles.get(producer_name(name, "particle"))


def _from_output(record, item: Dict[str, Any], data_key: str,
                 timing: Dict[int, Tuple[float, float]]) -> EventPrediction:
    """EventPrediction of one predict-output entry, on its data voxels."""
    from parsers.event import linear_index

    data = np.asarray(item[data_key])
    meta = item["meta"]
    coords = data[:, list(PARSER_COORD_COLS)].astype(np.int64)
    n = len(coords)
    lin = linear_index(coords, meta.size) if n else np.zeros(0, np.int64)
    order = np.argsort(lin, kind="stable")
    index = (order, lin[order])

    def per_voxel(coords_values: Sequence[Tuple[np.ndarray, np.ndarray]], fill, dtype):
        out = np.full(n, fill, dtype=dtype)
        for c, v in coords_values:
            rows, found = _rows_in(index, c, meta.size)
            out[rows] = np.broadcast_to(v, found.shape)[found]
        return out

    label = np.asarray(item[LABEL_ENTRY])
    label_coords = label[:, list(PARSER_COORD_COLS)]
    truth_instance = per_voxel([(label_coords, label[:, PARSER_INSTANCE_COL])], UNLABELED, np.int64)
    truth_semantic = per_voxel([(label_coords, label[:, PARSER_SEMANTIC_COL])], UNLABELED, np.int64)
    spice = record.cluster3d[SPICE_PRODUCER]
    clusters = per_voxel([(c, k) for k, c in enumerate(spice.coords)], UNLABELED, np.int64)
    cluster_class = np.full(len(spice) + 1, UNLABELED, np.int64)  # last slot: unclustered
    for particle in record.particles.get(SPICE_PRODUCER, ()):
        if 0 <= particle.id < len(spice) and 0 <= particle.semantic < NUM_CLASSES:
            cluster_class[particle.id] = particle.semantic

    def sparse(name: str, fill: float = math.nan) -> Optional[np.ndarray]:
        product = record.sparse3d.get(name)
        return None if product is None else per_voxel([(product.coords, product.values)], fill, np.float64)

    semantics_pred = sparse("semantics_pred", UNLABELED)
    nan = np.full(n, np.nan)
    embeddings = [sparse(f"spice_embedding_{a}") for a in "xyz"]
    forward, cluster = timing.get(record.entry, (math.nan, math.nan))
    return EventPrediction(
        file=record.file, entry=record.entry, run=record.run, subrun=record.subrun,
        event=record.event, meta=meta, coords=coords, features=data[:, PARSER_FEATURE_START:],
        semantics=cluster_class[clusters], clusters=clusters,
        embeddings=np.stack([e if e is not None else nan for e in embeddings], axis=1),
        margins=_or(sparse("spice_margin"), nan), seediness=_or(sparse("spice_seediness"), nan),
        semantics_pred=None if semantics_pred is None else semantics_pred.astype(np.int64),
        truth_instance=truth_instance, truth_semantic=truth_semantic,
        forward_time_s=forward, cluster_time_s=cluster)


def _input_view(record, products: Sequence[str]):
    """The record restricted to the named input products.

    Validation (:func:`parsers.validate.check_event`) checks every product of
    a record; the prediction products of a predict output (signed embeddings)
    are no inputs and must not make the event "bad".
    """
    from parsers.event import EventRecord
    from parsers.sparse import producer_name

    def keep(table, kind):
        wanted = {producer_name(p, kind) for p in products}
        return {k: v for k, v in table.items() if k in wanted}

    return EventRecord(run=record.run, subrun=record.subrun, event=record.event,
                       sparse3d=keep(record.sparse3d, "sparse3d"),
                       cluster3d=keep(record.cluster3d, "cluster3d"),
                       particles=keep(record.particles, "particle"),
                       file=record.file, entry=record.entry)


def _or(value: Optional[np.ndarray], default: np.ndarray) -> np.ndarray:
    return default if value is None else value


def iter_events(cfg: Dict[str, Any], file: str, engine_factory: Callable[[], Any],
                max_events: Optional[int] = None, entries: Optional[Sequence[int]] = None
                ) -> Iterator[Union[EventPrediction, SkippedEntry]]:
    """Events of one file with truth and prediction, in entry order.

    Parameters
    ----------
    cfg : dict
        Complete config; its schema must have ``clust_label``.
    file : str
        A predict output or a raw input (detected).
    engine_factory : callable
        Returns the :class:`~mlreco_spice.inference.InferenceEngine` to use on
        raw inputs; called only when one is needed.
    max_events : int, optional
        At most this many entries (from the first).
    entries : sequence of int, optional
        Only these entries (overrides ``max_events``).

    Yields
    ------
    EventPrediction or SkippedEntry
        A bad event (or an empty predict-output entry) gives a SkippedEntry,
        unless ``io.on_bad_event`` is ``raise``.
    """
    from parsers.dataset import SpiceDataset, schema_products
    from parsers.readers import open_reader

    label_cfg = require_labels(cfg)
    fmt = cfg["io"]["dataset"]["format"]
    options = cfg["io"]["dataset"]["reader_options"]
    from_output = is_prediction_output(file, fmt, options)
    data_key = _data_entry(cfg)
    io_cfg = dict(cfg["io"])
    if from_output:
        # Predict outputs are larcv3 whatever the input format was. Only the
        # voxels and the truth: the other entries (seg_label) may not be copied.
        fmt, options = "larcv3", {}
        schema = {k: cfg["io"]["dataset"]["schema"][k] for k in (data_key, LABEL_ENTRY)}
        io_cfg["dataset"] = dict(cfg["io"]["dataset"], schema=schema, format=fmt,
                                 reader_options=options)
    dataset = SpiceDataset(io_cfg, files=[file])
    inputs = schema_products(io_cfg["dataset"]["schema"])
    reader = open_reader([file], fmt, None, **options)
    if entries is None:
        entries = range(len(reader) if max_events is None else min(len(reader), max_events))
    timing = _read_timing(file) if from_output else {}
    skipped = _read_skipped(file) if from_output else set()
    engine = None if from_output else engine_factory()
    for entry in entries:
        if not 0 <= entry < len(reader):
            raise UserError(f"entry {entry} out of range: {file} has {len(reader)} entries")
        record = reader[entry]
        identity = (record.file or file, entry, record.run, record.subrun, record.event)
        # The writer keeps a skipped event's entry (empty products): the skip record says which.
        if from_output and (entry in skipped or SPICE_PRODUCER not in record.cluster3d):
            yield SkippedEntry(*identity, reason="no prediction (skipped by predict)")
            continue
        try:
            item = dataset.parse(_input_view(record, inputs) if from_output else record)
            pred = _from_output(record, item, data_key, timing) if from_output else engine.run(item)
        except BadEventError as err:
            if cfg["io"]["on_bad_event"] == "raise":
                raise
            log.warning("skipping bad event: %s", err)
            yield SkippedEntry(*identity, reason=err.reason)
            continue
        pred.extra["true_particles"] = _truth_particles(record, label_cfg)
        pred.extra["from_output"] = from_output
        yield pred


def load_event(cfg: Dict[str, Any], file: str, entry: int,
               engine_factory: Callable[[], Any]) -> EventPrediction:
    """One event (see :func:`iter_events`); a skipped event is a :class:`UserError`."""
    event = next(iter_events(cfg, file, engine_factory, entries=[entry]))
    if isinstance(event, SkippedEntry):
        raise UserError(f"{file} entry {entry} cannot be shown: {event.reason}")
    return event


def engine_factory(cfg: Dict[str, Any]) -> Callable[[], Any]:
    """A factory building one InferenceEngine on first call and reusing it."""
    holder: List[Any] = []

    def make():
        if not holder:
            from mlreco_spice.inference import InferenceEngine

            holder.append(InferenceEngine(cfg))
        return holder[0]

    return make


__all__.append("engine_factory")
