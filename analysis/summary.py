"""The summary of an evaluation: paper Table III plus segmentation accuracy.

Built from the merged ``cluster_metrics.csv`` and ``segmentation.csv``:

* per class, the mean purity, efficiency and ARI over the (event, class) rows
  (Table III), and the fraction of those rows with ARI above
  ``analysis.ari_threshold`` (the abstract's headline figure), also over all rows;
* the semantic stage's confusion matrix (voxels, true class x predicted
  class) and per-class voxel accuracy (diagonal / true-class total);
* from ``events.csv``, the particle-level row (class ``particles``): mean
  purity, efficiency and ARI over events of all voxels against the particle
  ids (:func:`mlreco_spice.metrics.evaluate_particles`), which sees the
  clusters that span classes the per-class rows cannot.

Written as ``summary.csv``, ``summary.md`` and ``confusion_matrix.csv``.
Classes go by the names the evaluation gave them (``Track`` where tracks
are one class, :func:`parsers.label_schemes.dataset_class_names`); the
confusion tables then leave out HIP's row (no true voxel can be HIP) and its
column unless the network predicted HIP somewhere (weights trained with HIP
labels), so that no voxel goes uncounted.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from mlreco_spice.atomic import atomic_write_text
from mlreco_spice.columns import CLASS_NAMES, NUM_CLASSES, TRACK_NAME, class_index, shown_classes
from mlreco_spice.columns import class_names as names_for
from mlreco_spice.metrics import PARTICLE_FIELDS

from .columns import PARTICLE_METRICS, SUMMARY
from .csv_parts import csv_text, format_value, read_table

__all__ = ["Summary", "summarize", "summary_markdown", "write_summary", "summarize_outdir",
           "ALL_CLASSES", "PARTICLES"]

#: Class label of the row aggregating every class.
ALL_CLASSES = "all"
#: Class label of the particle-level row (one value per event, all voxels).
PARTICLES = "particles"
#: Why a class with one instance per event (Michel) has a low mean ARI: ARI's definition.
ARI_NOTE = ("A row with a single true instance has ARI 0 as soon as that instance is split at "
            "all, even by one voxel (the index then equals its chance expectation), and 1 only "
            "when it is whole: such rows (most Michel rows) score 0 or 1, so their mean ARI is "
            "the fraction left whole, below their purity and efficiency.")


@dataclass
class Summary:
    """Aggregates of one evaluation (see module doc)."""

    rows: List[Dict[str, Any]]            # SUMMARY columns: per class present, "all", "particles"
    ari_threshold: float
    n_events: int
    confusion: Optional[np.ndarray]       # (NUM_CLASSES, NUM_CLASSES) voxels; None: no seg stage
    class_names: Tuple[str, ...] = CLASS_NAMES  # name of each class index

    def row(self, name: str) -> Dict[str, Any]:
        """The row of class ``name`` (or ``all``)."""
        return next(r for r in self.rows if r["class"] == name)

    def confusion_axes(self) -> Tuple[List[int], List[int]]:
        """Class indices of the confusion tables' rows (true) and columns (predicted).

        Those of :func:`~mlreco_spice.columns.shown_classes`, plus any column
        with predicted voxels.
        """
        rows = list(shown_classes(self.class_names))
        predicted = self.confusion.sum(axis=0) if self.confusion is not None else \
            np.zeros(NUM_CLASSES)
        return rows, [c for c in range(NUM_CLASSES) if c in rows or predicted[c]]


def _floats(rows: Sequence[Mapping[str, str]], column: str) -> np.ndarray:
    return np.array([float(r[column]) if r[column] != "" else math.nan for r in rows], dtype=float)


def _nanmean(values: np.ndarray) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(np.nanmean(values)) if values.size else math.nan


def _aggregate(name: str, rows: Sequence[Mapping[str, str]], threshold: float,
               accuracy: float) -> Dict[str, Any]:
    ari = _floats(rows, "ari")
    finite = np.isfinite(ari)
    return {"class": name, "n_rows": len(rows), "purity": _nanmean(_floats(rows, "purity")),
            "efficiency": _nanmean(_floats(rows, "efficiency")), "ari": _nanmean(ari),
            "frac_ari_above": float(np.mean(ari[finite] > threshold)) if finite.any() else math.nan,
            "voxel_accuracy": accuracy}


def summarize(metric_rows: Sequence[Mapping[str, str]], segmentation_rows: Sequence[Mapping[str, str]],
              ari_threshold: float, n_events: int,
              event_rows: Sequence[Mapping[str, str]] = (),
              class_names: Sequence[str] = CLASS_NAMES) -> Summary:
    """Aggregate CSV rows (dicts of strings, as read back) into a :class:`Summary`.

    Parameters
    ----------
    metric_rows : rows of ``cluster_metrics.csv``
    segmentation_rows : rows of ``segmentation.csv`` (may be empty)
    ari_threshold : float
        ``analysis.ari_threshold``; a row counts when ``ari > threshold``.
    n_events : int
        Events evaluated (rows of ``events.csv``).
    event_rows : rows of ``events.csv``, optional
        Their ``particle_*`` columns give the :data:`PARTICLES` row (none
        without them, e.g. files written before these columns existed).
    class_names : sequence of str
        The names the rows give each class index (read back through
        :func:`~mlreco_spice.columns.class_index`).
    """
    confusion = None
    if segmentation_rows:
        confusion = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
        for r in segmentation_rows:
            confusion[class_index(r["true_class"]), class_index(r["pred_class"])] += int(r["n_voxels"])
    totals = confusion.sum(axis=1) if confusion is not None else np.zeros(NUM_CLASSES)
    rows = []
    for c, name in enumerate(class_names):
        in_class = [r for r in metric_rows if r["class"] == name]
        accuracy = confusion[c, c] / totals[c] if totals[c] else math.nan
        if in_class or totals[c]:
            rows.append(_aggregate(name, in_class, ari_threshold, float(accuracy)))
    overall = float(np.trace(confusion) / confusion.sum()) if confusion is not None and confusion.sum() \
        else math.nan
    rows.append(_aggregate(ALL_CLASSES, metric_rows, ari_threshold, overall))
    # The particle_* columns read as the metric columns of a cluster_metrics row;
    # events with nothing scored (every particle below min_true_size) are left out.
    columns = {k: c for k, c in zip(PARTICLE_FIELDS, PARTICLE_METRICS)
               if k in ("ari", "purity", "efficiency")}
    particle_rows = [{k: r[c] for k, c in columns.items()} for r in event_rows
                     if r.get(columns["ari"], "") not in ("", None)
                     and math.isfinite(float(r[columns["ari"]]))]
    if particle_rows:
        rows.append(_aggregate(PARTICLES, particle_rows, ari_threshold, math.nan))
    return Summary(rows=rows, ari_threshold=float(ari_threshold), n_events=n_events,
                   confusion=confusion, class_names=tuple(class_names))


def _markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> List[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(format_value(v) if not isinstance(v, float) else
                                (f"{v:.4f}" if math.isfinite(v) else "-") for v in row) + " |"
              for row in rows]
    return lines


def _cells(row: Mapping[str, Any]) -> tuple:
    return (row["class"], row["n_rows"], row["purity"], row["efficiency"], row["ari"],
            row["frac_ari_above"])


def summary_markdown(summary: Summary) -> str:
    """The summary as Markdown (what ``evaluate`` prints and writes to ``summary.md``)."""
    lines = [f"## Clustering (paper Table III): {summary.n_events} events, "
             f"{summary.row(ALL_CLASSES)['n_rows']} (event, class) rows", ""]
    header = ("class", "rows", "purity", "efficiency", "ARI", f"ARI > {summary.ari_threshold:g}")
    lines += _markdown_table(header, [_cells(r) for r in summary.rows if r["class"] != PARTICLES])
    frac = summary.row(ALL_CLASSES)["frac_ari_above"]
    lines += ["", f"Fraction of (event, class) rows with ARI > {summary.ari_threshold:g}: "
                  + (f"{frac:.4f}" if math.isfinite(frac) else "-"), "", ARI_NOTE, ""]
    particles = [r for r in summary.rows if r["class"] == PARTICLES]
    if particles:
        lines += ["## Particles: all voxels of an event, particle id as truth "
                  "(clusters spanning classes count)", ""]
        lines += _markdown_table(("",) + header[1:], [("events",) + _cells(particles[0])[1:]])
        lines.append("")
    if summary.n_events == 0:
        lines.append("## Segmentation: no events were evaluated (the inputs hold none, or all "
                     "were skipped)")
    elif summary.confusion is None:
        lines.append("## Segmentation: no semantic stage output (the chain has no segmentation stage)")
    else:
        lines += ["## Segmentation: voxel accuracy per true class", ""]
        lines += _markdown_table(("class", "voxel accuracy"),
                                 [(r["class"], r["voxel_accuracy"]) for r in summary.rows
                                  if r["class"] != PARTICLES])
        lines += ["", "Confusion matrix (voxels; rows: true class, columns: predicted class)", ""]
        header, rows = _confusion_rows(summary)
        lines += _markdown_table(("true \\ pred",) + header[1:],
                                 [tuple(row.values()) for row in rows])
    return "\n".join(lines) + "\n"


def _confusion_rows(summary: Summary) -> Tuple[Tuple[str, ...], List[Dict[str, Any]]]:
    """Header and rows of the confusion table (``true_class``, then one column per class)."""
    true, pred = summary.confusion_axes()
    names = summary.class_names
    header = ("true_class",) + tuple(names[p] for p in pred)
    rows = [{"true_class": names[t], **{names[p]: int(summary.confusion[t, p]) for p in pred}}
            for t in true]
    return header, rows


def write_summary(outdir: Path, summary: Summary) -> List[Path]:
    """Write ``summary.csv``, ``summary.md`` and (with a seg stage) ``confusion_matrix.csv``."""
    outdir = Path(outdir)
    paths = [outdir / "summary.csv", outdir / "summary.md"]
    atomic_write_text(paths[0], csv_text(SUMMARY, summary.rows))
    atomic_write_text(paths[1], summary_markdown(summary))
    confusion_path = outdir / "confusion_matrix.csv"
    if summary.confusion is not None:
        header, rows = _confusion_rows(summary)
        atomic_write_text(confusion_path, csv_text(header, rows))
        paths.append(confusion_path)
    else:
        confusion_path.unlink(missing_ok=True)  # a stale one would contradict summary.md
    return paths


def summarize_outdir(outdir: Path, ari_threshold: float,
                     class_names: Optional[Sequence[str]] = None) -> Summary:
    """:func:`summarize` the merged CSVs of an evaluation directory.

    ``class_names``: the names its rows use; by default read from the rows
    themselves (a ``Track`` row: tracks are one class), so no row is left out.
    """
    outdir = Path(outdir)
    events = read_table(outdir / "events.csv")
    metrics = read_table(outdir / "cluster_metrics.csv")
    segmentation = read_table(outdir / "segmentation.csv")
    if class_names is None:
        seen = {r["class"] for r in metrics} | {r["true_class"] for r in segmentation}
        class_names = names_for(single_track=TRACK_NAME in seen)
    return summarize(metrics, segmentation, ari_threshold, len(events), events, class_names)
