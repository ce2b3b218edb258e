"""What the semantic codes of a file mean (``io.dataset.labels``), turned into our classes.

Schemes:

``pilarnet2020``
    PILArNet 2020's five classes, ours: 0 HIP, 1 MIP, 2 shower, 3 delta,
    4 Michel. Nothing to translate.
``spine``
    larcv shapes, as SPINE and PILArNet-M use them: 0 shower, 1 track,
    2 Michel, 3 delta, 4 low-energy. Codes become classes through the
    reader's :class:`~parsers.readers.larcv_shapes.ShapeMapping`
    (``io.dataset.reader_options.semantic_mapping``): a track voxel is HIP when
    the particle whose cluster holds it has a heavy PDG code (protons by
    default), MIP otherwise; where the event carries no particle table (no
    ``particle_product`` in the schema, or none in the file) every track is
    MIP, the single track class (named ``Track`` in every output:
    :func:`dataset_class_names`). Low-energy deposits are ignored (-1: kept in
    the input, out of losses and metrics), dropped from the event (``drop``:
    training and inference then see the same voxels) or folded into a class.

Readers already give our classes for what they map themselves
(:attr:`~parsers.readers.base.Reader.native_classes`): PILArNet-M's
semantics and particles, larcv2's particles. :func:`relabel_event`
translates the rest after the event's checks, so a code the scheme cannot
have (5 ghost, 6 unknown) is reported by :mod:`parsers.validate` with the
file, the entry and the value.

:func:`record_in_scheme` goes the other way for writing (``simulate --labels spine``).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, Iterable, Iterator, Optional, Sequence, Tuple

import numpy as np

from mlreco_spice.columns import HIP, MIP, UNLABELED, class_names
from mlreco_spice.errors import DataError

from .event import ClusterProduct, EventRecord, Particle, SparseProduct, linear_index
from .readers.larcv_shapes import DROP, SHAPE_TRACK, ShapeMapping, class_to_shape
from .sparse import producer_name

__all__ = ["LABEL_SCHEMES", "relabel_event", "record_in_scheme", "records_in_scheme"]

LABEL_SCHEMES = ("pilarnet2020", "spine")


def _check_scheme(scheme: str) -> None:
    if scheme not in LABEL_SCHEMES:
        raise ValueError(f"unknown label scheme '{scheme}'; known: {', '.join(LABEL_SCHEMES)}")


def _track_pdg(record: EventRecord, cluster: str, particles: str, sem_coords: np.ndarray,
               size: Sequence[int], native_particles: bool,
               hip_pdg: Sequence[int]) -> Optional[np.ndarray]:
    """PDG code of the track particle holding each semantics voxel (0 where none), or None.

    A voxel shared by several track particles takes a heavy one (HIP before MIP,
    as :data:`~mlreco_spice.columns.CLASS_PRECEDENCE`), then the one depositing most.
    ``native_particles``: the table's classes are ours already (HIP, MIP are tracks).
    """
    table = record.particles.get(particles)
    product = record.cluster3d.get(cluster)
    if table is None or product is None:
        return None
    lin, pdg, energy = [], [], []
    for particle in table:
        track = particle.semantic in (HIP, MIP) if native_particles else \
            particle.semantic == SHAPE_TRACK
        if not track or not 0 <= particle.id < len(product):
            continue
        coords = np.asarray(product.coords[particle.id], dtype=np.int64).reshape(-1, 3)
        lin.append(linear_index(coords, size))
        pdg.append(np.full(len(coords), particle.pdg, dtype=np.int64))
        energy.append(np.asarray(product.values[particle.id], dtype=np.float64).ravel())
    out = np.zeros(len(sem_coords), dtype=np.int64)
    if not lin:
        return out
    lin, pdg, energy = np.concatenate(lin), np.concatenate(pdg), np.concatenate(energy)
    heavy = np.isin(np.abs(pdg), np.asarray(hip_pdg, dtype=np.int64))
    order = np.lexsort((-energy, ~heavy, lin))  # per voxel: heavy first, then largest deposit
    lin, pdg = lin[order], pdg[order]
    first = np.r_[True, lin[1:] != lin[:-1]]
    lin, pdg = lin[first], pdg[first]
    query = linear_index(sem_coords, size)
    pos = np.minimum(np.searchsorted(lin, query), max(len(lin) - 1, 0))
    found = lin[pos] == query
    out[found] = pdg[pos[found]]
    return out


def relabel_event(record: EventRecord, scheme: str, mapping: ShapeMapping,
                  semantic_links: Dict[str, Tuple[Optional[str], Optional[str]]],
                  native: Iterable[str] = ()) -> EventRecord:
    """``record`` with its semantic codes in our classes (a new record; ``record`` is kept).

    Parameters
    ----------
    record : EventRecord
        As read, codes in ``scheme``.
    scheme : str
        One of :data:`LABEL_SCHEMES`.
    mapping : ShapeMapping
        Shape codes -> our classes (the reader's).
    semantic_links : dict
        Semantic sparse3d producer -> (cluster3d producer, particle producer)
        giving each track voxel its particle's PDG code; ``(None, None)``
        without a particle table.
    native : iterable of str
        ``"semantics"``, ``"particles"``: what the reader already gave in our classes.

    Returns
    -------
    EventRecord
    """
    _check_scheme(scheme)
    native = set(native)
    if scheme == "pilarnet2020" or native >= {"semantics", "particles"}:
        return record
    out = dataclasses.replace(record, sparse3d=dict(record.sparse3d),
                              cluster3d=dict(record.cluster3d), particles=dict(record.particles))
    if "semantics" not in native:
        for name, (cluster, particles) in semantic_links.items():
            product = record.sparse3d.get(name)
            if product is None:
                continue
            codes = np.rint(np.asarray(product.values, dtype=np.float64)).astype(np.int64)
            pdg = None
            if cluster and particles:
                pdg = _track_pdg(record, cluster, particles, product.coords, product.meta.size,
                                 "particles" in native, mapping.hip_pdg)
            classes = mapping.classes(codes, np.zeros_like(codes) if pdg is None else pdg)
            out.sparse3d[name] = SparseProduct(product.coords,
                                               classes.astype(np.float32), product.meta)
            if np.any(classes == DROP):
                _drop_voxels(out, product.coords[classes == DROP], product.meta.size)
    if "particles" not in native:
        for name, table in record.particles.items():
            classes = mapping.classes([p.semantic for p in table], [p.pdg for p in table])
            out.particles[name] = [dataclasses.replace(p, semantic=int(c))
                                   for p, c in zip(table, classes)]
    return out


def _drop_voxels(record: EventRecord, coords: np.ndarray, size: Sequence[int]) -> None:
    """Remove the voxels at ``coords`` from every sparse3d and cluster3d product (in place)."""
    gone = np.unique(linear_index(coords, size))

    def kept(voxels: np.ndarray) -> np.ndarray:
        return ~np.isin(linear_index(np.asarray(voxels).reshape(-1, 3), size), gone)

    for name, product in list(record.sparse3d.items()):
        keep = kept(product.coords)
        record.sparse3d[name] = SparseProduct(product.coords[keep],
                                              np.asarray(product.values)[keep], product.meta)
    for name, product in list(record.cluster3d.items()):
        masks = [kept(c) for c in product.coords]
        record.cluster3d[name] = ClusterProduct(
            [np.asarray(c).reshape(-1, 3)[m] for c, m in zip(product.coords, masks)],
            [np.asarray(v).ravel()[m] for v, m in zip(product.values, masks)], product.meta)


def record_in_scheme(record: EventRecord, scheme: str,
                     semantic_products: Sequence[str] = ("semantics",)) -> EventRecord:
    """Our classes -> ``scheme``'s codes, for writing (a new record).

    HIP and MIP become track; ignored voxels (-1) become low-energy (4).
    """
    _check_scheme(scheme)
    if scheme == "pilarnet2020":
        return record
    out = dataclasses.replace(record, sparse3d=dict(record.sparse3d),
                              particles={k: list(v) for k, v in record.particles.items()})
    to_shape = np.vectorize(class_to_shape, otypes=[np.int64])
    for name in semantic_products:
        product = record.sparse3d.get(name)
        if product is not None:
            values = np.rint(np.asarray(product.values)).astype(np.int64)
            shapes = to_shape(values) if len(values) else values
            out.sparse3d[name] = SparseProduct(product.coords, shapes.astype(np.float32),
                                               product.meta)
    for name, table in record.particles.items():
        out.particles[name] = [_particle_shape(p) for p in table]
    return out


def _particle_shape(particle: Particle) -> Particle:
    return dataclasses.replace(particle, semantic=class_to_shape(particle.semantic)
                               if particle.semantic != UNLABELED else particle.semantic)


def records_in_scheme(records: Iterable[EventRecord], scheme: str) -> Iterator[EventRecord]:
    """:func:`record_in_scheme` over a stream of records (e.g. the simulator's)."""
    for record in records:
        yield record_in_scheme(record, scheme)


def semantic_links(schema: Dict[str, dict]) -> Dict[str, Tuple[Optional[str], Optional[str]]]:
    """Semantic producers of a dataset schema and the cluster/particle producers beside them.

    The ``semantics_product`` of every ``cluster3d`` entry, and every semantic
    product a ``sparse3d`` entry reads (its name holds ``sem``, the rule of
    :func:`parsers.validate.default_semantic_products`; e.g. uresnet's
    ``seg_label`` when no cluster3d entry is there), the latter with no
    cluster/particle producer (no PDG split of tracks unless a cluster3d entry
    names the particle table).
    """
    links: Dict[str, Tuple[Optional[str], Optional[str]]] = {}
    for entry in schema.values():
        if entry.get("parser") == "cluster3d" and entry.get("semantics_product"):
            name = producer_name(entry["semantics_product"], "sparse3d")
            particles = entry.get("particle_product")
            links[name] = (producer_name(entry["cluster_product"], "cluster3d"),
                           producer_name(particles, "particle") if particles else None)
    for entry in schema.values():
        if entry.get("parser") == "sparse3d":
            for product in entry.get("products") or ():
                name = producer_name(product, "sparse3d")
                if "sem" in name.lower():
                    links.setdefault(name, (None, None))
    return links


def dropping_links(dataset_cfg: Dict[str, Any]) -> Optional[Dict[str, Tuple[Optional[str],
                                                                           Optional[str]]]]:
    """The label products an input-only reader must still read, or None.

    When the label scheme drops deposits from the event (``low_energy: drop``),
    the labels decide which voxels the network sees: a run that reads only the
    network's inputs (``predict``) must read them too, so that inference sees
    the voxels training saw. These are the semantic links of the full schema.
    """
    options = (dataset_cfg.get("reader_options") or {}).get("semantic_mapping")
    if dataset_cfg.get("labels", "pilarnet2020") == "pilarnet2020" or \
            ShapeMapping.from_options(options).low_energy != DROP:
        return None
    return semantic_links(dataset_cfg["schema"])


def _reader_native(dataset_cfg: Dict[str, Any]) -> Tuple[str, ...]:
    """``native_classes`` of the configured reader (format ``auto``: of the first file's)."""
    from .readers import detect_format, expand_files, reader_class

    fmt = dataset_cfg.get("format", "auto")
    if fmt == "auto":
        files = dataset_cfg.get("files") or ()
        try:
            fmt = detect_format(expand_files(files)[0]) if files else None
        except DataError:
            fmt = None  # the command reading the files reports it
    return tuple(reader_class(fmt).native_classes) if fmt else ()


def single_track(dataset_cfg: Dict[str, Any], native: Optional[Iterable[str]] = None) -> bool:
    """Whether tracks are one class (no PDG codes split them into HIP and MIP).

    True when the files are read in SPINE's scheme (``labels: spine``), the
    reader does not give our classes itself (PILArNet-M's semantics carry the
    split) and no ``cluster3d`` entry of the schema names a particle table
    (``particle_product``): every track voxel is then MIP, HIP never occurs.
    The rule reads the config, not the events: a schema naming a particle
    table that a file lacks keeps both names (its tracks are all MIP).

    Parameters
    ----------
    dataset_cfg : dict
        ``io.dataset``.
    native : iterable of str, optional
        The reader's ``native_classes``. Default: those of ``format``'s reader;
        with ``format: auto`` those of the first file's format when
        ``files`` names one that can be read, none otherwise.
    """
    if dataset_cfg.get("labels", "pilarnet2020") != "spine":
        return False
    native = _reader_native(dataset_cfg) if native is None else tuple(native)
    if "semantics" in native:
        return False
    links = semantic_links(dataset_cfg.get("schema") or {})
    return not any(particles for _, particles in links.values())


def dataset_class_names(dataset_cfg: Dict[str, Any],
                        native: Optional[Iterable[str]] = None) -> Tuple[str, ...]:
    """Display names of the classes for a dataset: ``Track`` for MIP under :func:`single_track`.

    Parameters
    ----------
    dataset_cfg : dict
        ``io.dataset``.
    native : iterable of str, optional
        As in :func:`single_track`.

    Returns
    -------
    tuple of str
        :func:`mlreco_spice.columns.class_names` for this dataset.
    """
    return class_names(single_track(dataset_cfg, native))


__all__ += ["semantic_links", "dropping_links", "single_track", "dataset_class_names"]
