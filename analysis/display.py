"""``mlreco-spice display``: one event as an interactive HTML (plotly) and a static PNG.

The HTML holds one 3D scene (positions in cm) with buttons switching between
views: deposited energy, true semantic classes, true instances, predicted
instances and the embedding space coloured by true instance (paper Figs. 4,
12-16). Hover shows the instance id, class, energy, voxel index and position.
To load fast, plotly.js is written once per output directory
(``plotly-<version>.min.js``, which the page loads from beside it; the folder
works offline) instead of 4.6 MB inside every page, and the per-voxel data is
compact: positions rounded to 0.01 cm (voxels are 0.3 cm), embeddings to
0.001, hover data as binary float32 arrays, the voxel index only in the energy
view and a class name per voxel only in traces that mix classes. 3D scatter
traces are WebGL.

Colours are consistent: a true instance has the same colour in every view;
a predicted cluster takes the colour of the true instance it best matches
when it is that instance's best match, otherwise (fragments, clusters of
unlabelled voxels: ``spurious`` in ``pred_clusters.csv``) a colour from a
separate palette; unclustered voxels are grey.

The PNG (matplotlib) shows three 2D projections, true instances above
predicted clusters, with a colour key per row (the largest instances and
clusters by name, plus what light colours and grey mean).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from mlreco_spice.atomic import atomic_path, atomic_write_text, check_output_dir
from mlreco_spice.columns import CLASS_NAMES, NUM_CLASSES, UNLABELED

__all__ = ["display_event", "event_figure", "write_event_html", "write_event_png",
           "instance_colours", "colour_key", "plotlyjs_file", "VIEWS"]

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


def _class_name(values: np.ndarray, class_names: Sequence[str] = CLASS_NAMES) -> np.ndarray:
    names = np.array(list(class_names) + ["none"], dtype=object)
    values = np.asarray(values, dtype=np.int64)
    return names[np.where((values >= 0) & (values < NUM_CLASSES), values, NUM_CLASSES)]


def event_figure(event: Any, class_names: Sequence[str] = CLASS_NAMES):
    """The plotly figure of an event (see module doc); classes named ``class_names``."""
    import plotly.graph_objects as go

    n = event.n_voxels
    positions = event.meta.to_cm(event.coords) if event.meta is not None else event.coords.astype(float)
    energy = event.features[:, 0] if event.features.shape[1] else np.zeros(n)
    true_sem = event.truth_semantic if event.truth_semantic is not None else np.full(n, UNLABELED)
    true_inst = event.truth_instance if event.truth_instance is not None else np.full(n, UNLABELED)
    true_col, pred_col = instance_colours(event)
    positions = np.round(positions, 2).astype(np.float32)
    where = "(%{x:.2f}, %{y:.2f}, %{z:.2f})<extra></extra>"

    def trace(points, mask, colour, name, classes, view, **marker):
        # Hover data as binary float32 (not JSON text); the voxel index only in the energy
        # view, and the class as text only when the trace mixes classes.
        kinds = np.unique(classes[mask])
        # An empty trace (an event with no voxels) has no class to name.
        label = "%{text}" if len(kinds) > 1 else (str(kinds[0]) if len(kinds) else "")
        if view == 0:
            custom = np.column_stack([energy[mask], event.coords[mask]]).astype(np.float32)
            hover = (f"voxel (%{{customdata[1]}}, %{{customdata[2]}}, %{{customdata[3]}})<br>"
                     f"class {label}<br>energy %{{customdata[0]:.3f}} MeV<br>{where}")
        else:
            custom = energy[mask, None].astype(np.float32)
            hover = f"%{{fullData.name}}<br>class {label}<br>energy %{{customdata[0]:.3f}} MeV<br>{where}"
        return view, go.Scatter3d(x=points[mask, 0], y=points[mask, 1], z=points[mask, 2],
                                  mode="markers", name=name, customdata=custom,
                                  text=classes[mask] if len(kinds) > 1 else None,
                                  hovertemplate=hover, marker=dict(size=2, color=colour, **marker))

    traces: List[Tuple[int, Any]] = []
    all_rows = np.ones(n, dtype=bool)
    true_names = _class_name(true_sem, class_names)
    traces.append(trace(positions, all_rows, energy.astype(np.float32), "voxel",
                        true_names, 0, colorscale="Inferno", showscale=False))
    for c, name in enumerate(class_names):
        mask = true_sem == c
        if mask.any():
            traces.append(trace(positions, mask, CLASS_COLOURS[c], name, true_names, 1))
    groups = [(2, positions, true_inst, true_col, "true"),
              (3, positions, np.asarray(event.clusters), pred_col, "pred")]
    embeddings = np.round(np.asarray(event.embeddings, dtype=float), 3).astype(np.float32)
    has_embedding = np.isfinite(embeddings).all(axis=1)
    groups.append((4, embeddings, np.where(has_embedding, true_inst, -2), true_col, "true"))
    pred_classes = _class_name(event.semantics, class_names)
    for view, points, labels, colours, label in groups:
        classes = true_names if label == "true" else pred_classes
        for k in np.unique(labels[labels >= -1]):
            mask = labels == k
            name = f"{label} {k}" if k >= 0 else ("unclustered" if label == "pred" else "no instance")
            traces.append(trace(points, mask, colours[mask][0], name, classes, view))
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


def plotlyjs_file(folder: Path) -> Path:
    """``plotly-<version>.min.js`` in ``folder``, written (atomically) when absent.

    The version is in the name, so pages written by another plotly never load
    a bundle they were not made for.
    """
    import plotly
    from plotly.offline import get_plotlyjs

    path = Path(folder) / f"plotly-{plotly.__version__}.min.js"
    if not path.is_file():
        atomic_write_text(path, get_plotlyjs())
    return path


def write_event_html(event: Any, path: Path, embed_plotlyjs: bool = False,
                     class_names: Sequence[str] = CLASS_NAMES) -> Path:
    """Write the interactive HTML atomically.

    Parameters
    ----------
    embed_plotlyjs : bool
        Put plotly.js (4.6 MB) inside the page, for a single file to send
        around. Default: load the shared :func:`plotlyjs_file` beside it.
    class_names : sequence of str
        Name of each class index (hover text, legend).
    """
    path = Path(path)
    script = True if embed_plotlyjs else plotlyjs_file(path.parent).name
    html = event_figure(event, class_names).to_html(include_plotlyjs=script, full_html=True)
    atomic_write_text(path, html)
    return path


#: Entries of a colour key before the rest are summed up in one line.
KEY_ENTRIES = 12


def colour_key(labels: np.ndarray, colours: np.ndarray, classes: np.ndarray, prefix: str,
               spurious: Optional[np.ndarray] = None) -> List[Tuple[str, str]]:
    """``(colour, text)`` lines of a PNG colour key, largest labels first.

    Parameters
    ----------
    labels, colours, classes : arrays, one row per voxel
        Instance (or cluster) id (-1: none), its colour, its class name.
    prefix : str
        ``"true"`` or ``"pred"``.
    spurious : array of bool, optional
        Per voxel: its cluster is no true instance's best match.
    """
    ids, counts = np.unique(labels[labels >= 0], return_counts=True)
    order = np.argsort(-counts, kind="stable")
    lines = []
    for k in ids[order][:KEY_ENTRIES]:
        rows = labels == k
        note = " (spurious)" if spurious is not None and spurious[rows][0] else ""
        lines.append((colours[rows][0], f"{prefix} {k}: {classes[rows][0]}, "
                                        f"{int(rows.sum())} vox{note}"))
    if len(ids) > KEY_ENTRIES:
        rest = int(np.isin(labels, ids[order][KEY_ENTRIES:]).sum())
        lines.append(("#ffffff", f"{len(ids) - KEY_ENTRIES} more, {rest} vox"))
    if (labels < 0).any():
        lines.append((UNCLUSTERED, f"{'unclustered' if prefix == 'pred' else 'no instance'}: "
                                   f"{int((labels < 0).sum())} vox"))
    return lines


def write_event_png(event: Any, path: Path, class_names: Sequence[str] = CLASS_NAMES) -> Path:
    """Write the static PNG: x-y, x-z, y-z projections, true (top) vs predicted (bottom).

    Each row has a colour key on its right (see :func:`colour_key`): a
    predicted cluster has the colour of the true instance it is the best
    match of; fragments and spurious clusters take light colours. Classes are
    named ``class_names`` in the keys.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    positions = event.meta.to_cm(event.coords) if event.meta is not None else event.coords.astype(float)
    true_col, pred_col = instance_colours(event)
    n = event.n_voxels
    truth = np.asarray(event.truth_instance) if event.truth_instance is not None else \
        np.full(n, UNLABELED)
    true_sem = event.truth_semantic if event.truth_semantic is not None else np.full(n, UNLABELED)
    pred = np.asarray(event.clusters)
    spurious = np.isin(pred_col, SPURIOUS_PALETTE)
    keys = (colour_key(truth, true_col, _class_name(true_sem, class_names), "true"),
            colour_key(pred, pred_col, _class_name(event.semantics, class_names), "pred",
                       spurious))
    fig, axes = plt.subplots(2, 3, figsize=(18, 9.5))
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
        handles = [Patch(facecolor=c, edgecolor="#606060", label=t) for c, t in keys[row]]
        if handles:
            axes[row][2].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.03, 1.0),
                                fontsize=7, title=title, title_fontsize=8, frameon=False)
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
    from parsers.label_schemes import dataset_class_names

    from .sources import engine_factory, load_event

    check_output_dir(outdir)  # before the chain runs
    event = load_event(cfg, file, entry, make_engine or engine_factory(cfg))
    base = Path(outdir) / f"{Path(file).stem}_entry{entry}"
    names = dataset_class_names(cfg["io"]["dataset"])  # Track where tracks are one class
    out = {"html": write_event_html(event, base.with_suffix(".html"), class_names=names),
           "png": write_event_png(event, base.with_suffix(".png"), names)}
    log.info("wrote %s and %s", out["html"], out["png"])
    return out
