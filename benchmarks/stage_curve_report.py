"""The tables and plots of ``stage_curve.py``: the curve as markdown and as a PNG."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Sequence

from mlreco_spice.atomic import atomic_path
from mlreco_spice.columns import CLASS_NAMES

__all__ = ["markdown", "plot", "fmt"]


def markdown(rows: Sequence[Dict[str, Any]], stage: str, command: str) -> str:
    """The curve as a table: one line per checkpoint, the methods side by side."""
    methods = list(dict.fromkeys(r["method"] for r in rows))
    classes = list(CLASS_NAMES)
    head = ["checkpoint iteration", "event passes"] + [
        f"{m}: {' / '.join(classes)} (all)" for m in methods]
    lines = [f"Command: `{command}`", "", "| " + " | ".join(head) + " |",
             "|" + "---|" * len(head)]
    for iteration in sorted({int(r["iteration"]) for r in rows}):
        mine = {r["method"]: r for r in rows if int(r["iteration"]) == iteration}
        cells = [f"{iteration:,}", f"{int(next(iter(mine.values()))['event_passes']):,}"]
        for m in methods:
            r = mine.get(m)
            cells.append("–" if r is None else " / ".join(fmt(r[c]) for c in classes)
                         + f" ({fmt(r['all'])})")
        lines.append("| " + " | ".join(cells) + " |")
    what = ("mean ARI per true class" if stage == "spice" else "voxel accuracy per true class")
    return "\n".join(lines) + f"\n\n({what}; {rows[0]['scored']} test events of " \
                              f"{Path(rows[0]['test_file']).name})\n"


def fmt(value: Any) -> str:
    """A value of the table: 3 decimals, a dash for NaN."""
    v = float(value)
    return "–" if v != v else f"{v:.3f}"


def plot(rows: Sequence[Dict[str, Any]], path: Path, stage: str,
         reference: Optional[Dict[str, Any]] = None) -> None:
    """One line per (method, class) against event passes; ``reference`` (a DBSCAN row) as
    horizontal dash-dotted lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.2))
    # One style per method (uresnet has four); dash-dot is the reference's.
    styles = ("-", ":", "--", (0, (5, 1, 1, 1)))
    for m, method in enumerate(dict.fromkeys(r["method"] for r in rows)):
        mine = sorted((r for r in rows if r["method"] == method), key=lambda r: int(r["iteration"]))
        x = [int(r["event_passes"]) for r in mine]
        for c, name in enumerate(CLASS_NAMES):
            ax.plot(x, [float(r[name]) for r in mine], ls=styles[m % len(styles)],
                    color=f"C{c}", marker="o", ms=3, label=f"{name} ({method})")
    if reference is not None:
        for c, name in enumerate(CLASS_NAMES):
            ax.axhline(float(reference[name]), color=f"C{c}", ls="-.", lw=0.8,
                       label=f"{name} ({reference['method']})")
    ax.set_xlabel("event passes")
    ax.set_ylabel("mean ARI" if stage == "spice" else "voxel accuracy")
    ax.set_title(f"{stage} stage: accuracy against training")
    ax.grid(alpha=0.3)
    # A long handle so that the dotted and dashed methods read apart in the legend.
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), handlelength=4)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
