"""``mlreco-spice display``: one event as an interactive HTML (plotly) and a static PNG.

The HTML holds one 3D scene (positions in cm) with buttons switching between
views: deposited energy, true semantic classes, true instances, predicted
instances and the embedding space coloured by true instance (paper Figs. 4,
12-16). plotly.js is embedded, so the file works offline. Hover shows the
instance id, class, energy, voxel index and position.

Colours are consistent: a true instance has the same colour in every view;
a predicted cluster takes the colour of the true instance it best matches
when it is that instance's best match, otherwise (fragments, clusters of
unlabelled voxels: ``spurious`` in ``pred_clusters.csv``) a colour from a
separate palette; unclustered voxels are grey.

The PNG (matplotlib) shows three 2D projections, true instances above
predicted clusters.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from mlreco_spice.atomic import atomic_path, atomic_write_text, check_output_dir
from mlreco_spice.columns import CLASS_NAMES, NUM_CLASSES, UNLABELED

__all__ = ["display_event", "event_figure", "write_event_html", "write_event_png",
           "instance_colours", "VIEWS"]

log = logging.getLogger(__name__)

#: Instance colours (no greys: grey means unclustered).
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173",
           "#3182bd", "#e6550d", "#31a354", "#756bb1")
#: Colours of predicted clusters that are no true instance's best match.
SPURIOUS_PALETTE = ("#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94",
                    "#f7b6d2", "#dbdb8d", "#9edae5")
CLASS_COLOURS = ("#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd")  # HIP MIP Shower Delta Michel
UNCLUSTERED = "#b0b0b0"
#: View names, in button order.
VIEWS = ("Energy", "True classes", "True instances", "Predicted instances", "Embedding (true instances)")


def instance_colours(event: Any) -> Tuple[np.ndarray, np.ndarray]:
    """Per-voxel colours of true instances and of predicted clusters (hex strings)."""
    from .tables import event_tables

    truth = np.asarray(event.truth_instance) if event.truth_instance is not None else \
        np.full(event.n_voxels, UNLABELED)
    palette = np.array(PALETTE + (UNCLUSTERED,), dtype=object)
    true_col = palette[np.where(truth >= 0, truth % len(PALETTE), len(PALETTE))]
    pred = np.asarray(event.clusters)
    pred_col = np.full(len(pred), UNCLUSTERED, dtype=object)
    matches = {}
    if event.truth_instance is not None:
        matches = {r["pred_id"]: r for r in event_tables(event, 0)["pred_clusters"]}
    for k in np.unique(pred[pred >= 0]):
        row = matches.get(int(k))
        good = row is not None and not row["spurious"]
        pred_col[pred == k] = PALETTE[row["best_true_id"] % len(PALETTE)] if good else \
            SPURIOUS_PALETTE[int(k) % len(SPURIOUS_PALETTE)]
    return true_col, pred_col


def _class_name(values: np.ndarray) -> np.ndarray:
    names = np.array(list(CLASS_NAMES) + ["none"], dtype=object)
    values = np.asarray(values, dtype=np.int64)
    return names[np.where((values >= 0) & (values < NUM_CLASSES), values, NUM_CLASSES)]


def event_figure(event: Any):
    """The plotly figure of an event (see module doc)."""
    import plotly.graph_objects as go

    n = event.n_voxels
    positions = event.meta.to_cm(event.coords) if event.meta is not None else event.coords.astype(float)
    energy = event.features[:, 0] if event.features.shape[1] else np.zeros(n)
    true_sem = event.truth_semantic if event.truth_semantic is not None else np.full(n, UNLABELED)
    true_inst = event.truth_instance if event.truth_instance is not None else np.full(n, UNLABELED)
    true_col, pred_col = instance_colours(event)
    hover = ("%{customdata[0]} %{customdata[1]}<br>class %{customdata[2]}<br>"
             "energy %{customdata[3]:.3f} MeV<br>voxel (%{customdata[4]}, %{customdata[5]}, "
             "%{customdata[6]})<br>(%{x:.1f}, %{y:.1f}, %{z:.1f})<extra></extra>")

    def trace(points, mask, colour, name, label, ids, classes, view, **marker):
        custom = np.stack([np.full(mask.sum(), label, dtype=object), ids[mask], classes[mask],
                           energy[mask], *event.coords[mask].T], axis=1)
        return view, go.Scatter3d(x=points[mask, 0], y=points[mask, 1], z=points[mask, 2],
                                  mode="markers", name=name, customdata=custom,
                                  hovertemplate=hover,
                                  marker=dict(size=2, color=colour, **marker))

    traces: List[Tuple[int, Any]] = []
    all_rows = np.ones(n, dtype=bool)
    traces.append(trace(positions, all_rows, energy, "energy", "voxel", np.arange(n),
                        _class_name(true_sem), 0, colorscale="Inferno", showscale=False))
    for c, name in enumerate(CLASS_NAMES):
        mask = true_sem == c
        if mask.any():
            traces.append(trace(positions, mask, CLASS_COLOURS[c], name, "class", true_sem,
                                _class_name(true_sem), 1))
    groups = [(2, positions, true_inst, true_col, "true"),
              (3, positions, np.asarray(event.clusters), pred_col, "pred")]
    embeddings = np.asarray(event.embeddings, dtype=float)
    has_embedding = np.isfinite(embeddings).all(axis=1)
    groups.append((4, embeddings, np.where(has_embedding, true_inst, -2), true_col, "true"))
    pred_classes = _class_name(event.semantics)
    for view, points, labels, colours, label in groups:
        classes = _class_name(true_sem) if label == "true" else pred_classes
        for k in np.unique(labels[labels >= -1]):
            mask = labels == k
            name = f"{label} {k}" if k >= 0 else ("unclustered" if label == "pred" else "no instance")
            traces.append(trace(points, mask, colours[mask][0], name, label, labels, classes, view))
    fig = go.Figure([t for _, t in traces])
    views = [t[0] for t in traces]
    buttons = []
    for v, title in enumerate(VIEWS):
        axis = "embedding" if v == 4 else "cm"
        buttons.append(dict(label=title, method="update",
                            args=[{"visible": [w == v for w in views]},
                                  {"scene": dict(xaxis_title=f"x ({axis})", yaxis_title=f"y ({axis})",
                                                 zaxis_title=f"z ({axis})", aspectmode="data")}]))
    for k, t in enumerate(fig.data):
        t.visible = views[k] == 2
    fig.update_layout(
        title=f"{Path(event.file).name} entry {event.entry} (run {event.run}, subrun {event.subrun}, "
              f"event {event.event})",
        updatemenus=[dict(type="buttons", direction="down", buttons=buttons, x=0.0, y=1.0,
                          xanchor="left", active=2)],
        scene=dict(xaxis_title="x (cm)", yaxis_title="y (cm)", zaxis_title="z (cm)",
                   aspectmode="data"),
        margin=dict(l=0, r=0, t=40, b=0), legend=dict(itemsizing="constant"))
    return fig


def write_event_html(event: Any, path: Path) -> Path:
    """Write the interactive HTML (plotly.js embedded) atomically."""
    html = event_figure(event).to_html(include_plotlyjs=True, full_html=True)
    atomic_write_text(path, html)
    return Path(path)


def write_event_png(event: Any, path: Path) -> Path:
    """Write the static PNG: x-y, x-z, y-z projections, true (top) vs predicted (bottom)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    positions = event.meta.to_cm(event.coords) if event.meta is not None else event.coords.astype(float)
    true_col, pred_col = instance_colours(event)
    fig, axes = plt.subplots(2, 3, figsize=(15, 9.5))
    size = float(np.clip(3000.0 / max(event.n_voxels, 1), 0.5, 12.0))  # visible, yet not a blot
    for row, (colours, title) in enumerate(((true_col, "true instances"),
                                            (pred_col, "predicted clusters"))):
        for col, (a, b) in enumerate(((0, 1), (0, 2), (1, 2))):
            ax = axes[row][col]
            ax.scatter(positions[:, a], positions[:, b], c=list(colours), s=size, linewidths=0)
            ax.set_xlabel(f"{'xyz'[a]} (cm)")
            ax.set_ylabel(f"{'xyz'[b]} (cm)")
            ax.set_aspect("equal", adjustable="datalim")
            ax.set_title(f"{title}: {'xyz'[a]}-{'xyz'[b]}")
    fig.suptitle(f"{Path(event.file).name} entry {event.entry} (event {event.event})")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return Path(path)


def display_event(cfg: Dict[str, Any], file: str, entry: int, outdir: str,
                  make_engine: Optional[Any] = None) -> Dict[str, Path]:
    """Draw one event of a raw file (the chain runs) or of a predict output.

    Parameters
    ----------
    cfg : dict
        Complete config (schema with ``clust_label`` for the truth views).
    file : str
        Input file.
    entry : int
        Entry in the file.
    outdir : str
        Directory receiving ``<stem>_entry<N>.html`` and ``.png``.
    make_engine : callable, optional
        Returns the InferenceEngine for raw files (default: built from ``cfg``).

    Returns
    -------
    dict
        ``{"html": path, "png": path}``.
    """
    from .sources import engine_factory, load_event

    check_output_dir(outdir)  # before the chain runs
    event = load_event(cfg, file, entry, make_engine or engine_factory(cfg))
    base = Path(outdir) / f"{Path(file).stem}_entry{entry}"
    out = {"html": write_event_html(event, base.with_suffix(".html")),
           "png": write_event_png(event, base.with_suffix(".png"))}
    log.info("wrote %s and %s", out["html"], out["png"])
    return out
