"""Batch prediction: larcv files in, one ``<stem>_spice.h5`` per file out.

Per input file, :func:`predict_files` writes, atomically:

* ``<stem>_spice.h5`` — one entry per input entry (same order and
  run/subrun/event) holding a copy of the input's products plus
  ``sparse3d_semantics_pred``, ``cluster3d_spice`` (one voxel set per
  predicted instance, set id = instance id), ``particle_spice`` (one particle
  per instance, its ``shape`` = predicted class) and, with
  ``predict.save_embeddings``, ``sparse3d_spice_embedding_{x,y,z}``,
  ``sparse3d_spice_margin``, ``sparse3d_spice_seediness``. Provenance
  (package version, full config, weights SHA-256, and the events it covers:
  ``max_events`` asked and ``entries`` written) is stored as HDF5 attributes
  of the file's root group;
* ``<stem>_timing.csv`` — per-event forward and clustering wall time;
* ``<stem>_skipped.csv`` — bad events (their output entry is empty).

and, in ``OUTDIR``, after every run:

* ``skipped.csv`` — the ``<stem>_skipped.csv`` rows of every complete output
  in ``OUTDIR`` (this run's and earlier runs' or other shards'), merged;
* ``failed_files.csv`` — inputs that have no output and why (files that
  failed earlier and are complete now are dropped; removed when empty).

A complete output whose provenance matches is skipped on re-run; one made
with another config or weights stops the run unless ``overwrite``. Complete
means it covers what this run asks for: an output of a ``max_events`` trial
holding fewer events than this run wants is redone. A killed run leaves no
output under a final name, only hidden temporary files, which the next run
removes before redoing that input.
"""
from __future__ import annotations

import contextlib
import csv
import fcntl
import hashlib
import io
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .atomic import atomic_path, atomic_write_text, check_output_dir
from .columns import UNLABELED
from .config import dump_config
from .errors import BadEventError, DataError, UserError
from .predict_products import empty_record, output_record

log = logging.getLogger(__name__)

__all__ = ["predict_files", "PredictReport", "output_name", "select_shard", "provenance_of",
           "read_provenance", "covers", "PROVENANCE_ATTR"]

PROVENANCE_ATTR = "mlreco_spice_provenance"
TIMING_COLUMNS = ("entry", "run", "subrun", "event", "n_voxels", "n_clusters",
                  "forward_time_s", "cluster_time_s")
SKIP_COLUMNS = ("file", "entry", "reason")
FAILED_COLUMNS = ("file", "reason")
SKIPPED_FILE = "skipped.csv"
FAILED_FILE = "failed_files.csv"


@dataclass
class PredictReport:
    """Outcome of a prediction run."""

    written: List[Path] = field(default_factory=list)
    skipped_complete: List[Path] = field(default_factory=list)
    failed_files: List[Tuple[str, str]] = field(default_factory=list)
    bad_events: List[Tuple[str, int, str]] = field(default_factory=list)


def output_name(input_file: str) -> str:
    """``<input stem>_spice.h5``."""
    return f"{Path(input_file).stem}_spice.h5"


def select_shard(files: Sequence[str], shard: Optional[Tuple[int, int]]) -> List[str]:
    """Files of shard ``(i, n)``: every n-th file starting at i (no overlap, full cover)."""
    if shard is None:
        return list(files)
    index, count = shard
    chosen = list(files)[index::count]
    if files and not chosen:
        # Legitimate in an array job with more shards than files, but say so:
        # a job that did nothing must not look like one that did its part.
        log.warning("shard %d/%d has no files (%d input file(s) for %d shards): nothing to do",
                    index, count, len(files), count)
    return chosen


def _check_stems(files: Sequence[str]) -> None:
    seen: Dict[str, str] = {}
    for f in files:
        stem = Path(f).stem
        if stem in seen:
            raise UserError(f"two inputs share the stem '{stem}' and would write the same output "
                            f"{output_name(f)}: {seen[stem]} and {f}. Rename one or predict them "
                            f"into different output directories.")
        seen[stem] = f


def provenance_of(cfg: Dict[str, Any]) -> Dict[str, Any]:
    """What made an output: version, config, weights digest; ``id`` hashes what matters."""
    from . import __version__
    from .checkpoint import weights_digest
    from .inference import load_thresholds

    weights = cfg["predict"].get("weights")
    digest = weights_digest(Path(weights)) if weights and Path(weights).is_file() else None
    relevant = {"model": cfg["model"], "schema": cfg["io"]["dataset"]["schema"],
                "thresholds": load_thresholds(cfg["predict"].get("thresholds")),
                "save_embeddings": cfg["predict"]["save_embeddings"], "weights_sha256": digest}
    ident = hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()
    return {"id": ident, "version": __version__, "weights": weights, "weights_sha256": digest,
            "config": dump_config(cfg)}


def read_provenance(path: Path) -> Optional[Dict[str, Any]]:
    """Provenance stored in an output file, or None when absent/unreadable."""
    import h5py

    try:
        with h5py.File(path, "r") as h5:
            raw = h5.attrs.get(PROVENANCE_ATTR)
    except OSError:
        return None
    return json.loads(raw) if raw is not None else None


def covers(found: Dict[str, Any], max_events: Optional[int]) -> bool:
    """Whether an output with provenance ``found`` holds every event a run asking
    for ``max_events`` (None: all) would write."""
    entries, asked = found.get("entries"), found.get("max_events")
    if entries is None:
        return False  # made before outputs recorded what they cover: unknown
    if asked is None or entries < asked:
        return True  # it holds every event of its input
    return max_events is not None and max_events <= entries


def _csv_text(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    writer.writerows(rows)
    return buffer.getvalue()


def _read_csv(path: Path) -> List[Dict[str, str]]:
    try:
        with open(path, newline="") as stream:
            return list(csv.DictReader(stream))
    except FileNotFoundError:
        return []


def _sidecar(target: Path, kind: str) -> Path:
    """``<stem>_<kind>.csv`` next to the output ``<stem>_spice.h5``."""
    stem = target.with_suffix("").name.removesuffix("_spice")
    return target.parent / f"{stem}_{kind}.csv"


def _remove_stale_temps(target: Path) -> None:
    """Delete temporary files a killed run left for ``target`` and its CSVs.

    :func:`mlreco_spice.atomic.atomic_path` names them ``.<name>.<random>.tmp<ext>``
    (the larcv writer nests one more level). Only this input's names are
    touched, so shard jobs sharing ``OUTDIR`` do not disturb each other.
    """
    for final in (target, _sidecar(target, "timing"), _sidecar(target, "skipped")):
        for stale in final.parent.glob(f"*.{final.name}.*.tmp*"):
            log.info("removing %s left by an interrupted run", stale.name)
            stale.unlink(missing_ok=True)


@contextlib.contextmanager
def _locked(outdir: Path):
    """Exclusive lock on ``OUTDIR``'s summary files (shard jobs may share it)."""
    path = outdir / ".predict.lock"
    while True:
        handle = open(path, "a")
        fcntl.flock(handle, fcntl.LOCK_EX)
        # The holder before us may have removed the file after we opened it:
        # then our lock is on a dead inode, and a newcomer could lock a new one.
        try:
            if os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino:
                break
        except FileNotFoundError:
            pass
        handle.close()
    try:
        yield
    finally:
        path.unlink(missing_ok=True)  # removed while held: nobody can lock it afterwards
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def _update_summaries(out: Path, attempted: Sequence[str], report: PredictReport) -> None:
    """Rewrite ``skipped.csv`` and ``failed_files.csv`` of ``out`` (see module doc)."""
    with _locked(out):
        skipped = []
        for target in sorted(out.glob("*_spice.h5")):
            skipped += [tuple(r[c] for c in SKIP_COLUMNS)
                        for r in _read_csv(_sidecar(target, "skipped"))]
        atomic_write_text(out / SKIPPED_FILE, _csv_text(SKIP_COLUMNS, skipped))
        # Earlier failures stay listed until their input is retried or has an output.
        failed = [(r["file"], r["reason"]) for r in _read_csv(out / FAILED_FILE)
                  if r["file"] not in attempted and not (out / output_name(r["file"])).exists()]
        failed += report.failed_files
        if failed:
            atomic_write_text(out / FAILED_FILE, _csv_text(FAILED_COLUMNS, failed))
        else:
            (out / FAILED_FILE).unlink(missing_ok=True)


def _predict_one(engine, cfg: Dict[str, Any], file: str, target: Path, provenance: Dict[str, Any],
                 max_events: Optional[int], report: PredictReport) -> None:
    import h5py
    from tqdm import tqdm

    from parsers.dataset import SpiceDataset
    from parsers.label_schemes import dropping_links
    from parsers.readers import open_reader
    from parsers.writer import LarcvWriter

    io_cfg = dict(cfg["io"])
    network_sources = set()
    for stage_cfg in cfg["model"]["modules"].values():
        network_sources |= {s for s in (stage_cfg.get("network_input") or {}).values() if "." not in s}
        if stage_cfg.get("use_true_semantics") is True:  # clusters the true classes: reads labels
            network_sources |= {s for s in (stage_cfg.get("loss_input") or {}).values() if "." not in s}
    schema = {k: v for k, v in cfg["io"]["dataset"]["schema"].items() if k in network_sources}
    io_cfg["dataset"] = dict(cfg["io"]["dataset"], schema=schema, files=[file])
    dataset = SpiceDataset(io_cfg, relabel_links=dropping_links(cfg["io"]["dataset"]))
    reader = open_reader([file], cfg["io"]["dataset"]["format"], None,
                         **cfg["io"]["dataset"]["reader_options"])
    n = len(reader) if max_events is None else min(len(reader), max_events)
    timing, skipped = [], []
    sparse_metas: Dict[str, Any] = {}  # sparse3d products written so far -> meta
    with atomic_path(target) as tmp:
        with LarcvWriter(str(tmp)) as writer:
            for entry in tqdm(range(n), desc=Path(file).name, leave=False, disable=n < 2):
                record = reader[entry]
                try:
                    item = dataset.parse(record)
                    pred = engine.run(item)
                except BadEventError as err:
                    if cfg["io"]["on_bad_event"] == "raise":
                        raise
                    log.warning("skipping bad event: %s", err)
                    skipped.append((file, entry, err.reason))
                    writer.write(empty_record(record, sparse_metas))
                    continue
                output = output_record(record, pred, cfg["predict"]["save_embeddings"])
                writer.write(output)
                sparse_metas.update({k: v.meta for k, v in output.sparse3d.items()})
                n_clusters = len(np.unique(pred.clusters[pred.clusters != UNLABELED]))
                timing.append((entry, record.run, record.subrun, record.event, pred.n_voxels,
                               n_clusters, f"{pred.forward_time_s:.6f}", f"{pred.cluster_time_s:.6f}"))
        with h5py.File(tmp, "a") as h5:
            h5.attrs[PROVENANCE_ATTR] = json.dumps(dict(provenance, max_events=max_events, entries=n))
        # The CSVs are complete before the output gets its final name: an
        # output under its final name always has its timing and skipped rows.
        atomic_write_text(_sidecar(target, "timing"), _csv_text(TIMING_COLUMNS, timing))
        atomic_write_text(_sidecar(target, "skipped"), _csv_text(SKIP_COLUMNS, skipped))
    report.bad_events.extend(skipped)
    report.written.append(target)


def predict_files(cfg: Dict[str, Any], inputs: Sequence[str], outdir: str,
                  shard: Optional[Tuple[int, int]] = None, max_events: Optional[int] = None,
                  overwrite: bool = False) -> PredictReport:
    """Run the chain over files and write one output per file (see module doc).

    Parameters
    ----------
    cfg : dict
        Complete config (``predict.weights``, ``predict.thresholds``, ``io``).
    inputs : sequence of str
        Files, globs or directories.
    outdir : str
        Output directory (created).
    shard : (int, int), optional
        Process only shard ``i`` of ``n`` of the (sorted) input files.
    max_events : int, optional
        At most this many events per file.
    overwrite : bool
        Redo outputs that exist, whatever made them.

    Returns
    -------
    PredictReport
        Files written, skipped as complete, failed (with reasons), bad events.
    """
    from parsers.readers import expand_files

    from .inference import InferenceEngine

    if max_events is not None and max_events < 1:
        raise UserError(f"--max-events must be >= 1, got {max_events}")
    files = expand_files(inputs)
    _check_stems(files)
    files = select_shard(files, shard)
    out = Path(outdir)
    check_output_dir(out)
    out.mkdir(parents=True, exist_ok=True)
    provenance = provenance_of(cfg)
    report = PredictReport()
    todo = []
    for file in files:
        target = out / output_name(file)
        if target.exists() and not overwrite:
            found = read_provenance(target)
            if found is not None and found.get("id") == provenance["id"]:
                if covers(found, max_events):
                    log.info("%s is complete: skipping", target)
                    report.skipped_complete.append(target)
                    continue
                log.info("%s holds %s event(s) (made with --max-events %s), fewer than this run "
                         "asks for: redoing it", target, found.get("entries", "an unknown number of"),
                         found.get("max_events"))
                todo.append((file, target))
                continue
            raise UserError(f"{target} exists but was made with another config or weights "
                            f"(or is not a prediction output). Use --overwrite to redo it, or "
                            f"another output directory.")
        todo.append((file, target))
    if not todo:
        _update_summaries(out, [], report)
        return report
    engine = InferenceEngine(cfg)
    for file, target in todo:
        _remove_stale_temps(target)
        try:
            _predict_one(engine, cfg, file, target, provenance, max_events, report)
            log.info("wrote %s", target)
        except BadEventError:
            raise
        except DataError as err:
            log.error("failed %s: %s", file, err)
            report.failed_files.append((file, str(err)))
    _update_summaries(out, [file for file, _ in todo], report)
    return report
