"""Tables of ``train_vs_spine.py``: per-class means of each side, their ratios, the markdown.

Rows are :func:`mlreco_spice.metrics.evaluate_event` rows (one per test event
and class scored) with a ``side`` key; means are over the events where the
class is scored (NaN-free: ``evaluate_event`` gives no row for a class with
nothing left to score).
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Mapping, Sequence

import numpy as np

from mlreco_spice.columns import CLASS_NAMES

__all__ = ["SIDES", "SIDE_LABELS", "METRICS", "RACE_COLUMNS", "race_rows", "race_markdown"]

SIDES = ("ours", "spine")
SIDE_LABELS = {"ours": "ours (mlreco_spice)", "spine": "SPINE 1.4.3"}
METRICS = ("ari", "purity", "efficiency")
#: Columns of race.csv: one row per side and class.
RACE_COLUMNS = ("side", "class", "n_events", *METRICS)


def race_rows(rows: Sequence[Mapping[str, Any]]) -> List[Dict[str, Any]]:
    """Mean ARI, purity and efficiency per side and class (race.csv rows)."""
    out = []
    for side in SIDES:
        for name in CLASS_NAMES:
            picked = [r for r in rows if r["side"] == side and r["class"] == name]
            out.append({"side": side, "class": name, "n_events": len(picked),
                        **{m: float(np.mean([float(r[m]) for r in picked])) if picked else math.nan
                           for m in METRICS}})
    return out


def _ratio(ours: float, spine: float) -> float:
    return ours / spine if spine > 0 else math.nan


def _fmt(value: float, digits: int = 3) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:.{digits}f}"


def race_markdown(table: Sequence[Mapping[str, Any]], info: Mapping[str, Any]) -> str:
    """The report: command, training budget of each side, the per-class table, the goal.

    ``info`` holds ``command``, ``sides`` (side -> ``iterations``, ``batch``,
    ``event_passes``, ``wall_s``, ``cpu_s``), ``layout`` (text), ``test_events``,
    ``val_events``, ``min_true_size``, ``thresholds`` (side -> text).
    """
    by = {(r["side"], r["class"]): r for r in table}
    lines = ["Command:", "", "```bash", info["command"], "```", "",
             "| side | iterations | batch | event passes | training wall | training CPU |",
             "|---|---|---|---|---|---|"]
    for side in SIDES:
        s = info["sides"][side]
        lines.append(f"| {SIDE_LABELS[side]} | {s['iterations']} | {s['batch']} | "
                     f"{s['event_passes']} | {s['wall_s'] / 60:.1f} min | {s['cpu_s'] / 60:.1f} min |")
    lines += ["", f"Layout: {info['layout']}. Test: {info['test_events']} events; thresholds "
              f"tuned on {info['val_events']} validation events, each side for its own "
              f"clusterer (ours: the paper's seed search alone; SPINE: its SPICEClusterer); "
              f"true clusters under {info['min_true_size']} voxels masked; ratio = ours / SPINE.",
              "",
              "| class | events | ours ARI | SPINE ARI | ARI ratio | ours purity | SPINE purity "
              "| purity ratio | ours efficiency | SPINE efficiency | efficiency ratio |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    behind = []
    for name in CLASS_NAMES:
        ours, spine = by[("ours", name)], by[("spine", name)]
        cells = []
        for m in METRICS:
            ratio = _ratio(ours[m], spine[m])
            cells += [_fmt(ours[m]), _fmt(spine[m]), _fmt(ratio, 2) + "×"]
        if not ours["ari"] >= spine["ari"]:
            behind.append(name)
        lines.append(f"| {name} | {ours['n_events']} | " + " | ".join(cells) + " |")
    lines += ["", "Goal: ours ≥ SPINE in mean ARI in every class: "
              + ("**met**." if not behind else f"**not met** ({', '.join(behind)} behind)."), ""]
    for side in SIDES:
        lines.append(f"Thresholds, {SIDE_LABELS[side]}: {info['thresholds'][side]}")
    return "\n".join(lines) + "\n"
