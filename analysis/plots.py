"""Evaluation plots (matplotlib, Agg), one per figure of the paper, drawn from the merged CSVs.

Each ``plot_*`` function takes the rows of one CSV (dicts of strings, as
:func:`analysis.csv_parts.read_table` returns), writes one PNG, and returns
``{"rows": rows read, "entries": entries drawn, ...}``. Rows whose value is
empty (NaN: e.g. margins not saved, wall time unknown) cannot be drawn and are
the only difference between the two counts; no bin range drops a value.
:func:`make_plots` leaves out a figure with nothing to draw (Fig. 6 without
saved margins) and says why in its result and the log. Classes are drawn
under the names the CSVs give them (``Track`` where tracks are one class).
"""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Dict, List, Mapping, Sequence

import numpy as np

from mlreco_spice.atomic import atomic_path
from mlreco_spice.columns import class_index

from .display import CLASS_COLOURS, UNCLUSTERED

from .csv_parts import read_table

__all__ = ["make_plots", "plot_metric_distributions", "plot_margin_vs_extent",
           "plot_cluster_count_confusion", "plot_metrics_vs_multiplicity", "plot_timing",
           "PLOT_FILES"]

log = logging.getLogger(__name__)

Rows = Sequence[Mapping[str, str]]
METRICS = ("purity", "efficiency", "ari")
#: Cluster counts above this share the last row/column of the Fig. 7 matrix.
MAX_COUNT = 15

#: PNG name of each plot.
PLOT_FILES = {"metric_distributions": "metric_distributions.png",
              "margin_vs_extent": "margin_vs_extent.png",
              "cluster_count_confusion": "cluster_count_confusion.png",
              "metrics_vs_multiplicity": "metrics_vs_multiplicity.png",
              "timing": "timing.png"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _column(rows: Rows, column: str) -> np.ndarray:
    return np.array([float(r[column]) if r[column] != "" else math.nan for r in rows], dtype=float)


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    _pyplot().close(fig)


#: Panel title of a figure with no row to draw (whatever the class names).
NO_ROWS = "no class"


def _classes_present(rows: Rows, column: str = "class") -> List[str]:
    """Class names of the rows as the CSV gives them (``Track`` included), in class order."""
    return sorted({r[column] for r in rows}, key=class_index)


def _colour(name: str) -> str:
    return UNCLUSTERED if name == NO_ROWS else CLASS_COLOURS[class_index(name)]


def plot_metric_distributions(rows: Rows, path: Path) -> Dict[str, Any]:
    """Fig. 5: ARI, purity and efficiency distributions, one panel per (metric, class).

    ``rows``: ``cluster_metrics.csv``. ``entries`` maps each metric to the
    number of values drawn (summed over classes). Filled bars on a log y axis
    starting at 0.5, so that a bin holding one row has a visible height and
    no class hides another.
    """
    plt = _pyplot()
    from matplotlib.ticker import FuncFormatter, NullFormatter

    classes = _classes_present(rows) or [NO_ROWS]
    fig, axes = plt.subplots(len(METRICS), len(classes), figsize=(3.2 * len(classes) + 1, 8.4),
                             squeeze=False, sharey="row")
    entries = {}
    for axes_row, metric in zip(axes, METRICS):
        values = _column(rows, metric)
        low = min(0.0, float(np.nanmin(values))) if np.isfinite(values).any() else 0.0
        bins = np.linspace(low, 1.0, 41)
        entries[metric] = 0
        label = metric if metric != "ari" else "ARI"
        for ax, name in zip(axes_row, classes):
            chosen = values[[r["class"] == name for r in rows]]
            chosen = np.clip(chosen[np.isfinite(chosen)], low, 1.0)
            colour = _colour(name)
            ax.hist(chosen, bins=bins, color=colour, edgecolor=colour)
            if len(chosen):
                ax.set_yscale("log")
                ax.set_ylim(bottom=0.5)  # a count of 1 stands half a decade tall
                ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}" if v >= 1 else ""))
                ax.yaxis.set_minor_formatter(NullFormatter())
            mean = f", mean {chosen.mean():.3f}" if len(chosen) else ""
            ax.set_title(f"{name}: {len(chosen)} rows{mean}", fontsize=9)
            ax.set_xlabel(label)
            entries[metric] += len(chosen)
        axes_row[0].set_ylabel("(event, class) rows")
    fig.suptitle("Clustering metrics per class (paper Fig. 5; log scale, bins of 0.025)")
    fig.tight_layout()
    _save(fig, path)
    return {"rows": len(rows), "entries": entries}


def _bin_edges(values: np.ndarray, n: int = 30) -> np.ndarray:
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
    if high <= low:
        high = low + 1.0
    return np.linspace(low, high + 1e-9 * max(1.0, abs(high)), n + 1)


def has_margins(rows: Rows) -> bool:
    """True when some ``clusters.csv`` row has a mean margin (Fig. 6 has something to draw)."""
    return any(r["mean_margin"] not in ("", "nan") for r in rows)


def plot_margin_vs_extent(rows: Rows, path: Path) -> Dict[str, Any]:
    """Fig. 6: learned margin sigma vs true spatial extent (voxels), a 2D histogram per class.

    ``rows``: ``clusters.csv``; rows without a margin (not saved) are not
    drawn, nor classes without any (:func:`make_plots` skips the figure when
    no row has one).
    """
    plt = _pyplot()
    extent, margin = _column(rows, "extent_vox"), _column(rows, "mean_margin")
    drawn = np.isfinite(extent) & np.isfinite(margin)
    classes = [c for c in _classes_present(rows)
               if (drawn & np.array([r["class"] == c for r in rows], dtype=bool)).any()]
    classes = classes or [NO_ROWS]
    fig, axes = plt.subplots(1, len(classes), figsize=(4.2 * len(classes), 3.8), squeeze=False)
    per_class = {}
    for ax, name in zip(axes[0], classes):
        mask = drawn & np.array([r["class"] == name for r in rows], dtype=bool)
        x, y = extent[mask], margin[mask]
        counts, xe, ye = np.histogram2d(x, y, bins=(_bin_edges(x), _bin_edges(y)))
        image = ax.pcolormesh(xe, ye, np.ma.masked_equal(counts.T, 0), cmap="viridis")
        fig.colorbar(image, ax=ax, label="instances")
        ax.set_title(f"{name} ({int(counts.sum())})")
        ax.set_xlabel("true spatial extent (voxels)")
        ax.set_ylabel("mean margin sigma")
        per_class[name] = int(counts.sum())
    fig.suptitle("Learned margin vs true instance extent (paper Fig. 6)")
    fig.tight_layout()
    _save(fig, path)
    return {"rows": len(rows), "entries": int(sum(per_class.values())), "per_class": per_class}


def plot_cluster_count_confusion(rows: Rows, path: Path) -> Dict[str, Any]:
    """Fig. 7: predicted vs true number of clusters, row-normalised, per class.

    ``rows``: ``cluster_metrics.csv``; counts above :data:`MAX_COUNT` share the last bin.
    """
    plt = _pyplot()
    classes = _classes_present(rows) or [NO_ROWS]
    n_true = np.array([int(r["n_true"]) for r in rows], dtype=np.int64)
    n_pred = np.array([int(r["n_pred"]) for r in rows], dtype=np.int64)
    largest = int(max(n_true.max(initial=1), n_pred.max(initial=1)))
    top = min(MAX_COUNT, largest)
    overflow = f" (last bin: >= {top})" if largest > top else ""
    fig, axes = plt.subplots(1, len(classes), figsize=(4.4 * len(classes), 4.2), squeeze=False)
    entries = 0
    for ax, name in zip(axes[0], classes):
        mask = np.array([r["class"] == name for r in rows], dtype=bool)
        matrix = np.zeros((top + 1, top + 1))
        np.add.at(matrix, (np.minimum(n_true[mask], top), np.minimum(n_pred[mask], top)), 1)
        entries += int(matrix.sum())
        totals = matrix.sum(axis=1, keepdims=True)
        norm = np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)
        image = ax.imshow(norm, origin="lower", cmap="Blues", vmin=0, vmax=1)
        fig.colorbar(image, ax=ax, label="fraction of events with that true count")
        ax.set_title(f"{name} ({int(matrix.sum())})")
        ax.set_xticks(range(top + 1))
        ax.set_yticks(range(top + 1))
        ax.set_xlabel(f"predicted clusters{overflow}")
        ax.set_ylabel(f"true clusters{overflow}")
    fig.suptitle("Number of clusters, normalised per true count (paper Fig. 7)")
    fig.tight_layout()
    _save(fig, path)
    return {"rows": len(rows), "entries": entries}


def plot_metrics_vs_multiplicity(rows: Rows, path: Path) -> Dict[str, Any]:
    """Fig. 8: ARI, purity, efficiency vs true number of particles (box plots, whiskers 1.5 IQR).

    ``rows``: ``cluster_metrics.csv`` (the x axis is the row's ``n_true``).
    """
    plt = _pyplot()
    n_true = np.array([int(r["n_true"]) for r in rows], dtype=np.int64)
    counts = np.unique(n_true)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    entries = {}
    for ax, metric in zip(axes, METRICS):
        values = _column(rows, metric)
        groups = [values[(n_true == k) & np.isfinite(values)] for k in counts]
        entries[metric] = int(sum(len(g) for g in groups))
        if len(groups):
            ax.boxplot(groups, whis=1.5)
            ax.set_xticks(range(1, len(counts) + 1), [str(k) for k in counts])
        ax.set_xlabel("true number of particles (per event and class)")
        ax.set_ylabel(metric if metric != "ari" else "ARI")
    fig.suptitle("Metrics vs true number of particles (paper Fig. 8)")
    fig.tight_layout()
    _save(fig, path)
    return {"rows": len(rows), "entries": entries}


def plot_timing(rows: Rows, path: Path) -> Dict[str, Any]:
    """Fig. 10: per-event forward and clustering wall time. ``rows``: ``events.csv``."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    entries = {}
    for ax, column, label in zip(axes, ("forward_time_s", "cluster_time_s"),
                                 ("network forward", "clustering (post-processing)")):
        values = _column(rows, column)
        values = values[np.isfinite(values)]
        ax.hist(values, bins=_bin_edges(values, 30))
        ax.set_xlabel(f"{label} wall time per event (s)")
        ax.set_ylabel("events")
        ax.set_title(f"{label}: mean {values.mean():.3g} s ({len(values)} events)"
                     if len(values) else f"{label}: unknown")
        entries[column] = len(values)
    fig.suptitle("Inference wall time per event (paper Fig. 10)")
    fig.tight_layout()
    _save(fig, path)
    return {"rows": len(rows), "entries": entries}


def make_plots(outdir: Path) -> Dict[str, Dict[str, Any]]:
    """Draw every plot from the merged CSVs of an evaluation directory.

    Returns
    -------
    dict
        Plot name (:data:`PLOT_FILES` key) -> the counts its function returned,
        plus ``path``.
    """
    outdir = Path(outdir)
    metrics = read_table(outdir / "cluster_metrics.csv")
    instances = read_table(outdir / "clusters.csv")
    jobs = {"metric_distributions": (plot_metric_distributions, metrics),
            "margin_vs_extent": (plot_margin_vs_extent, instances),
            "cluster_count_confusion": (plot_cluster_count_confusion, metrics),
            "metrics_vs_multiplicity": (plot_metrics_vs_multiplicity, metrics),
            "timing": (plot_timing, read_table(outdir / "events.csv"))}
    out = {}
    for name, (function, rows) in jobs.items():
        path = outdir / PLOT_FILES[name]
        if name == "margin_vs_extent" and rows and not has_margins(rows):
            path.unlink(missing_ok=True)  # a stale figure would contradict the CSVs
            reason = ("no margins in clusters.csv: predict wrote none (set "
                      "predict.save_embeddings: true), or evaluate the raw files")
            log.info("%s not drawn: %s", PLOT_FILES[name], reason)
            out[name] = {"rows": len(rows), "entries": 0, "skipped": reason, "path": None}
            continue
        out[name] = {**function(rows, path), "path": path}
    return out
