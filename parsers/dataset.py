"""``SpiceDataset``: events from files, parsed by the ``io.dataset.schema``, and its loader.

Config (``io`` section, defaults in :mod:`mlreco_spice.defaults`)::

    io:
      dataset:
        files: [train/*.h5]
        format: auto
        schema:
          data:        {parser: sparse3d,  products: [sparse3d_data]}
          seg_label:   {parser: sparse3d,  products: [sparse3d_semantics]}
          clust_label: {parser: cluster3d, cluster_product: cluster3d_pcluster,
                        semantics_product: sparse3d_semantics}
        max_events: null
      loader: {batch_size: 4, num_workers: 0, shuffle: true}
      on_bad_event: skip      # or raise
      max_voxels: 2000000

Files are opened lazily in each process, so ``num_workers > 0`` works.
"""
from __future__ import annotations

import inspect
import logging
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from torch.utils.data import Dataset

from mlreco_spice.errors import BadEventError, UserError
from mlreco_spice.registry import PARSERS, RegistryError

from .collate import SkippedEvent, collate_events
from .event import EventRecord
from .label_schemes import relabel_event, semantic_links
from .readers import Reader, open_reader
from .sparse import producer_name
from .validate import check_event, default_semantic_products

__all__ = ["SpiceDataset", "make_loader", "schema_products"]

log = logging.getLogger(__name__)

_PRODUCT_TYPES = ("sparse3d", "cluster3d", "particle")


def _complete_io(io_cfg: Dict[str, Any]) -> Dict[str, Any]:
    from mlreco_spice.config import fill_defaults

    if not isinstance(io_cfg, dict):
        raise UserError(f"io config must be a mapping, got {type(io_cfg).__name__}")
    return fill_defaults({"io": io_cfg})["io"]


def schema_products(schema: Dict[str, Dict[str, Any]]) -> List[str]:
    """Product names a schema reads: values of every ``*product``/``*products`` key, in order."""
    names: List[str] = []
    for entry in schema.values():
        for key, value in entry.items():
            if key.endswith("product") or key.endswith("products"):
                for name in ([value] if isinstance(value, str) else list(value or [])):
                    if name not in names:
                        names.append(str(name))
    return names


def _build_parsers(schema: Dict[str, Dict[str, Any]]) -> Dict[str, Tuple[Callable, dict, bool]]:
    """Look up and check every schema entry: name -> (function, config, accepts ``stats``)."""
    if not schema:
        raise UserError("io.dataset.schema is empty; add e.g. "
                        "'data: {parser: sparse3d, products: [sparse3d_data]}'")
    parsers = {}
    for name, entry in schema.items():
        if not isinstance(entry, dict) or "parser" not in entry:
            raise UserError(f"io.dataset.schema.{name} must be a mapping with a 'parser' key, "
                            f"got {entry!r}")
        cfg = {k: v for k, v in entry.items() if k != "parser"}
        try:
            fn = PARSERS.get(entry["parser"])
        except RegistryError as err:
            raise UserError(f"io.dataset.schema.{name}: {err}") from None
        signature = inspect.signature(fn)
        try:
            signature.bind(None, **cfg)
        except TypeError as err:
            params = [p for p in signature.parameters if p not in ("record", "stats")]
            raise UserError(f"io.dataset.schema.{name} (parser '{entry['parser']}'): {err}; "
                            f"its options are {', '.join(params)}") from None
        parsers[name] = (fn, cfg, "stats" in signature.parameters)
    return parsers


def _link_products(links: Dict[str, Tuple[Optional[str], Optional[str]]]) -> List[str]:
    """The typed product names a relabelling reads (semantics, clusters, particles)."""
    names = []
    for semantics, (cluster, particles) in links.items():
        names.append(f"sparse3d_{semantics}")
        names += [f"cluster3d_{cluster}"] if cluster else []
        names += [f"particle_{particles}"] if particles else []
    return names


class SpiceDataset(Dataset):
    """Random access to parsed events.

    Parameters
    ----------
    io_cfg : dict
        The ``io`` config section (missing keys take their defaults).
    files : str or list of str, optional
        Overrides ``io.dataset.files``.

    Items are dicts: one numpy array per schema entry, plus ``index``,
    ``file``, ``entry``, ``run``, ``subrun``, ``event``, ``meta`` (the
    :class:`~parsers.event.ImageMeta` of the first product) and
    ``parse_stats`` (per schema entry, e.g. ``dropped_cluster_voxels``). A bad
    event raises :class:`BadEventError` (``io.on_bad_event: raise``) or comes
    back as a :class:`~parsers.collate.SkippedEvent` (``skip``).
    """

    def __init__(self, io_cfg: Dict[str, Any], files: Union[str, Sequence[str], None] = None,
                 relabel_links: Optional[Dict[str, Tuple[Optional[str], Optional[str]]]] = None):
        io = _complete_io(io_cfg)
        dataset_cfg = io["dataset"]
        files = dataset_cfg["files"] if files is None else files
        if not files:
            raise UserError("io.dataset.files is empty: give input files, globs or directories")
        self.schema = dict(dataset_cfg["schema"])
        self.parsers = _build_parsers(self.schema)
        # relabel_links: semantic products read only to relabel the event, never parsed
        # (predict, whose schema holds the network's inputs alone, reads them when the
        # label scheme drops deposits: inference must see the voxels training saw).
        self._links = semantic_links(self.schema) if relabel_links is None \
            else dict(relabel_links)
        products = schema_products(self.schema)
        products += [n for n in _link_products(self._links) if n not in products]
        # Restrict reading to the schema's products when all are fully named.
        typed = all(n.split("_", 1)[0] in _PRODUCT_TYPES for n in products)
        self._used = products if typed and products else None
        self.reader: Reader = open_reader(files, dataset_cfg["format"], self._used,
                                          **(dataset_cfg.get("reader_options") or {}))
        self.max_events = dataset_cfg["max_events"]
        if self.max_events is not None and self.max_events < 1:
            raise UserError(f"io.dataset.max_events must be >= 1, got {self.max_events}")
        self.max_voxels = io["max_voxels"]
        self.on_bad_event = io["on_bad_event"]
        self._semantic = [producer_name(entry["semantics_product"], "sparse3d")
                          for entry in self.schema.values() if "semantics_product" in entry]
        # What the file's semantic codes mean (parsers/label_schemes.py).
        self.labels = dataset_cfg["labels"]
        self._meta_product = next((producer_name(n, "sparse3d") for n in products
                                   if not n.startswith(("cluster3d_", "particle_"))), None)

    def __len__(self) -> int:
        total = len(self.reader)
        return total if self.max_events is None else min(total, self.max_events)

    def _used_products(self, record: EventRecord) -> EventRecord:
        """``record`` restricted to the products the schema reads (all when not all named).

        Why: a defect in a product nobody reads (e.g. labels during ``predict``,
        whose reader copies every product) must not cost the event.
        """
        if self._used is None:
            return record
        used = set(self._used)
        return EventRecord(
            run=record.run, subrun=record.subrun, event=record.event, file=record.file,
            entry=record.entry,
            sparse3d={k: v for k, v in record.sparse3d.items() if f"sparse3d_{k}" in used},
            cluster3d={k: v for k, v in record.cluster3d.items() if f"cluster3d_{k}" in used},
            particles={k: v for k, v in record.particles.items() if f"particle_{k}" in used})

    def parse(self, record: EventRecord) -> Dict[str, Any]:
        """Check and parse one record (raises BadEventError when it is unusable).

        Only the products the schema reads are checked (see :func:`check_event`).
        """
        checked = self._used_products(record)
        semantic = set(self._semantic) | set(default_semantic_products(checked))
        check_event(checked, self.max_voxels, semantic)
        record = relabel_event(record, self.labels, self.reader.mapping, self._links,
                               self.reader.native_classes)
        item: Dict[str, Any] = {"file": record.file, "entry": record.entry, "run": record.run,
                                "subrun": record.subrun, "event": record.event}
        stats: Dict[str, dict] = {}
        for name, (fn, cfg, takes_stats) in self.parsers.items():
            stats[name] = {}
            item[name] = fn(record, **cfg, stats=stats[name]) if takes_stats else fn(record, **cfg)
        item["parse_stats"] = stats
        product = record.sparse3d.get(self._meta_product) if self._meta_product else None
        if product is None:
            product = next(iter(record.sparse3d.values()), None) or \
                next(iter(record.cluster3d.values()), None)
        item["meta"] = product.meta if product is not None else None
        return item

    def good_items(self, limit: Optional[int] = None):
        """Yield parsed events in order, at most ``limit``, skipping bad ones with a warning.

        For sequential passes outside a DataLoader (tuning, benchmarks). With
        ``io.on_bad_event: raise`` a bad event raises as in ``__getitem__``.
        """
        done = 0
        for index in range(len(self)):
            if limit is not None and done >= limit:
                return
            item = self[index]
            if isinstance(item, SkippedEvent):
                log.warning("skipping bad event %s entry %d: %s", item.file, item.entry, item.reason)
                continue
            done += 1
            yield item

    def __getitem__(self, index: int) -> Union[Dict[str, Any], SkippedEvent]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range (dataset has {len(self)} events)")
        record = self.reader[index]
        try:
            item = self.parse(record)
        except BadEventError as err:
            if self.on_bad_event == "raise":
                raise
            return SkippedEvent(index, err.file, err.entry, err.reason)
        item["index"] = index
        return item


def make_loader(io_cfg: Dict[str, Any], shuffle: Optional[bool] = None, distributed: bool = False,
                seed: int = 0, files: Union[str, Sequence[str], None] = None):
    """A ``DataLoader`` over :class:`SpiceDataset` batching with :func:`collate_events`.

    Parameters
    ----------
    io_cfg : dict
        The ``io`` config section (``io.loader.batch_size``, ``num_workers``).
    shuffle : bool, optional
        Shuffle each epoch; default ``io.loader.shuffle``.
    distributed : bool
        Use a ``DistributedSampler`` (needs an initialised process group); call
        ``loader.sampler.set_epoch(epoch)`` each epoch for a new order.
    seed : int
        Shuffling seed (identical on every rank when distributed).
    files : str or list of str, optional
        Overrides ``io.dataset.files``.
    """
    import torch
    from torch.utils.data import DataLoader, DistributedSampler

    io = _complete_io(io_cfg)
    loader_cfg = io["loader"]
    shuffle = loader_cfg["shuffle"] if shuffle is None else bool(shuffle)
    batch_size, num_workers = int(loader_cfg["batch_size"]), int(loader_cfg["num_workers"])
    if batch_size < 1 or num_workers < 0:
        raise UserError(f"io.loader: batch_size must be >= 1 and num_workers >= 0, "
                        f"got {batch_size} and {num_workers}")
    dataset = SpiceDataset(io, files=files)
    sampler, generator = None, None
    if distributed:
        sampler = DistributedSampler(dataset, shuffle=shuffle, seed=seed)
        shuffle = False  # the sampler shuffles
    elif shuffle:
        generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, sampler=sampler,
                      num_workers=num_workers, collate_fn=collate_events, generator=generator)
