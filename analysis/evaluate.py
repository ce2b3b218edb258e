"""``mlreco-spice evaluate``: metrics CSVs, summary and plots for a set of files.

Inputs are ``predict`` outputs or raw files (the chain runs first); see
:mod:`analysis.sources`. Outputs in ``OUTDIR`` (columns in :mod:`analysis.columns`):

* ``cluster_metrics.csv`` (event x class), ``clusters.csv`` (true instances),
  ``pred_clusters.csv`` (predicted clusters), ``segmentation.csv``
  (semantic confusion cells), ``events.csv`` (one row per event, wall times),
  ``skipped_events.csv``;
* ``summary.csv``, ``summary.md``, ``confusion_matrix.csv`` (:mod:`analysis.summary`);
* classes named by :func:`parsers.label_schemes.dataset_class_names` of the
  config (``Track``, not HIP and MIP, where tracks are one class);
* with ``plots``, the PNGs of :mod:`analysis.plots`.

Re-runs, kills and shards (:mod:`analysis.csv_parts`): each input writes its
part files and then a done marker. A re-run skips inputs whose marker exists
(``overwrite`` redoes them); several ``--shard`` jobs may share one OUTDIR.
The marker records the run identity (config, weights, ``max_events``): an
input done under another identity is refused unless ``overwrite``.

``OUTDIR`` already holding results of inputs that are NOT in this run's input
list (before sharding) is refused unless ``append``: the merged tables would
otherwise silently mix two evaluations. With ``append`` those results are kept
and merged with the new ones, but only when made with the same run identity.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from mlreco_spice.atomic import check_output_dir
from mlreco_spice.errors import BadEventError, DataError, UserError

from .columns import TABLES
from .csv_parts import PartWriter
from .sources import SkippedEntry, engine_factory, iter_events, require_labels
from .tables import event_tables, skipped_tables

log = logging.getLogger(__name__)

__all__ = ["evaluate", "EvaluateReport", "run_identity", "evaluate_file"]


@dataclass
class EvaluateReport:
    """Outcome of :func:`evaluate`."""

    outdir: Path
    evaluated: List[str] = field(default_factory=list)
    skipped_complete: List[str] = field(default_factory=list)
    failed_files: List[Tuple[str, str]] = field(default_factory=list)
    bad_events: List[Tuple[str, int, str]] = field(default_factory=list)
    rows: Dict[str, int] = field(default_factory=dict)       # merged rows per table
    summary: Any = None                                       # analysis.summary.Summary
    summary_text: str = ""
    plots: Dict[str, Dict[str, Any]] = field(default_factory=dict)


def run_identity(cfg: Dict[str, Any], max_events: Optional[int]) -> str:
    """Hash of what determines the rows: model, weights, thresholds, schema, analysis, max_events."""
    from mlreco_spice.predict import provenance_of

    relevant = {"provenance": provenance_of(cfg)["id"], "analysis": cfg["analysis"],
                "max_events": max_events}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()


def _part_stems(files: Sequence[str]) -> Dict[str, str]:
    """Part name (file stem) -> input; two inputs with one stem would share part files."""
    stems = {Path(f).stem: f for f in files}
    if len(stems) < len(files):
        twin = next(f for f in files if stems[Path(f).stem] != f)
        raise UserError(f"two inputs share the stem '{Path(twin).stem}' and would write the same "
                        f"part files: {twin} and {stems[Path(twin).stem]}. Rename one or evaluate "
                        f"them into different output directories.")
    return stems


def _check_existing(writer: PartWriter, stems: Dict[str, str], ident: str, overwrite: bool,
                    append: bool) -> None:
    """Refuse mixing evaluations in one OUTDIR (see module doc)."""
    foreign, stale = [], []
    for stem, marker in writer.markers().items():
        ours = stems.get(stem) == marker.get("source")
        if stem in stems and not ours:
            if overwrite:
                continue  # replaced by this run's input of the same stem
            raise UserError(f"{writer.outdir} holds results of {marker.get('source')}, which has "
                            f"the same stem as the input {stems[stem]}. Use --overwrite to "
                            f"replace them, or another output directory.")
        if not ours:
            foreign.append(marker.get("source", stem))
            if append and marker.get("identity") != ident:
                stale.append(marker.get("source", stem))
        elif marker.get("identity") != ident and not overwrite:
            stale.append(marker.get("source", stem))
    if foreign and not append:
        raise UserError(f"{writer.outdir} already holds results of {len(foreign)} input(s) not in "
                        f"this run (e.g. {foreign[0]}). Use --append to add to them, or another "
                        f"output directory.")
    if stale:
        raise UserError(f"{writer.outdir} holds results made with another config, weights or "
                        f"--max-events (e.g. {stale[0]}). Use --overwrite to redo this run's "
                        f"inputs, or another output directory.")


def evaluate_file(cfg: Dict[str, Any], file: str, max_events: Optional[int] = None,
                  make_engine=None, class_names: Optional[Sequence[str]] = None
                  ) -> Dict[str, List[Dict[str, Any]]]:
    """Rows of every table for one input file (nothing written).

    Parameters
    ----------
    cfg : dict
        Complete config (schema with ``clust_label``, ``analysis``).
    file : str
        A predict output or a raw input.
    max_events : int, optional
        At most this many entries.
    make_engine : callable, optional
        Returns the InferenceEngine for raw inputs (default: build one from ``cfg``).
    class_names : sequence of str, optional
        Name of each class index in the rows. Default:
        :func:`parsers.label_schemes.dataset_class_names` of ``cfg``.
    """
    from parsers.label_schemes import dataset_class_names

    if class_names is None:
        class_names = dataset_class_names(cfg["io"]["dataset"])
    min_true_size = int(cfg["analysis"]["min_true_size"])
    rows: Dict[str, List[Dict[str, Any]]] = {table: [] for table in TABLES}
    skipped: List[SkippedEntry] = []
    for event in iter_events(cfg, file, make_engine or engine_factory(cfg), max_events=max_events):
        if isinstance(event, SkippedEntry):
            skipped.append(event)
            continue
        for table, table_rows in event_tables(event, min_true_size, class_names).items():
            rows[table].extend(table_rows)
    rows["skipped_events"] = skipped_tables(skipped)
    return rows


def evaluate(cfg: Dict[str, Any], inputs: Sequence[str], outdir: str,
             shard: Optional[Tuple[int, int]] = None, max_events: Optional[int] = None,
             overwrite: bool = False, plots: bool = False, append: bool = False,
             quiet: bool = False) -> EvaluateReport:
    """Evaluate files into ``outdir`` (see module doc for outputs and re-run rules).

    Parameters
    ----------
    cfg : dict
        Complete config; ``io.dataset.schema`` must have ``clust_label``.
    inputs : sequence of str
        Files, globs or directories (predict outputs and/or raw files).
    outdir : str
        Output directory (created).
    shard : (int, int), optional
        Evaluate only shard ``i`` of ``n`` of the inputs; every shard job merges
        whatever is complete when it ends.
    max_events : int, optional
        At most this many events per file.
    overwrite : bool
        Redo inputs already evaluated.
    plots : bool
        Also draw the PNGs (from the merged CSVs).
    append : bool
        Allow ``outdir`` to hold results of other inputs, merged with these.
    quiet : bool
        Do not print the summary table.

    Returns
    -------
    EvaluateReport
    """
    from mlreco_spice.predict import select_shard
    from parsers.label_schemes import dataset_class_names
    from parsers.readers import expand_files

    from .summary import summarize_outdir, summary_markdown, write_summary

    if max_events is not None and max_events < 1:
        raise UserError(f"--max-events must be >= 1, got {max_events}")
    require_labels(cfg)
    files = expand_files(inputs)
    stems = _part_stems(files)
    ident = run_identity(cfg, max_events)
    check_output_dir(outdir)
    writer = PartWriter(Path(outdir), TABLES)
    _check_existing(writer, stems, ident, overwrite, append)
    report = EvaluateReport(outdir=Path(outdir))
    make_engine = engine_factory(cfg)
    names = dataset_class_names(cfg["io"]["dataset"])
    for file in select_shard(files, shard):
        stem = Path(file).stem
        marker = writer.marker(stem)
        if (marker is not None and not overwrite and marker.get("identity") == ident
                and marker.get("source") == file):
            log.info("%s already evaluated: skipping", file)
            report.skipped_complete.append(file)
            continue
        try:
            rows = evaluate_file(cfg, file, max_events, make_engine, names)
        except BadEventError:
            raise
        except DataError as err:
            log.error("failed %s: %s", file, err)
            report.failed_files.append((file, str(err)))
            continue
        writer.write(stem, rows, {"source": file, "identity": ident})
        report.evaluated.append(file)
        report.bad_events.extend((r["file"], r["entry"], r["reason"]) for r in rows["skipped_events"])
        log.info("evaluated %s: %d events", file, len(rows["events"]))
    with writer.lock():
        report.rows = writer.merge()
        report.summary = summarize_outdir(writer.outdir, float(cfg["analysis"]["ari_threshold"]),
                                          names)
        write_summary(writer.outdir, report.summary)
        if plots:
            from .plots import make_plots

            report.plots = make_plots(writer.outdir)
    report.summary_text = summary_markdown(report.summary)
    if not quiet:
        print(report.summary_text)  # the table is the command's product
    return report
