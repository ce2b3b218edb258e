"""Tables, checks and plots of the accuracy benchmark (``benchmarks/accuracy.py``).

Pure functions over the per-(method, event, class) rows of
:func:`mlreco_spice.metrics.evaluate_event` and the per-(method, event) rows of
:func:`mlreco_spice.metrics.evaluate_particles` (``accuracy_methods.score_rows``
makes both): Table III and particle-level aggregates per method (via
:func:`analysis.summary.summarize`), the floor checks, the markdown report,
the failure-event choice and the accuracy-vs-training plot; plus the two small
file helpers the benchmark writes and reads with (``write_csv``,
``training_seconds``).
"""
from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from mlreco_spice.atomic import atomic_path, atomic_write_text
from mlreco_spice.columns import CLASS_NAMES, NUM_CLASSES

__all__ = ["PAPER_TABLE_III", "PAPER_FRAC_ARI_ABOVE", "FLOOR_CLASSES", "ARI_TOLERANCE", "METHODS",
           "ORACLE", "PAPER_SEEDS", "DBSCAN_COORDS", "NO_ABSORB", "SPINE_CLUSTERER",
           "CURVE_STYLES", "summarize_methods", "floor_checks", "paired_difference",
           "clusterer_timing", "report_markdown", "json_safe", "pick_failures", "write_csv",
           "training_seconds", "plot_curve"]

#: Paper Table III (purity, efficiency, ARI) and the abstract's 90 % of rows with ARI > 0.92.
PAPER_TABLE_III = {"HIP": (0.9824, 0.9843, 0.9743), "MIP": (0.9783, 0.9809, 0.9612),
                   "Shower": (0.9317, 0.9275, 0.8408), "Delta": (0.9832, 0.9873, 0.9567),
                   "Michel": (0.9906, 0.9941, 0.9746)}
PAPER_FRAC_ARI_ABOVE = 0.90
FLOOR_CLASSES = ("HIP", "MIP", "Shower")
ARI_TOLERANCE = 0.05
ORACLE = "spice_truth_centroids"
PAPER_SEEDS = "spice_paper_seeds"
DBSCAN_COORDS = "dbscan_coordinates"
NO_ABSORB = "full_chain_no_absorb"
SPINE_CLUSTERER = "full_chain_spine_clusterer"
METHODS = (DBSCAN_COORDS, "dbscan", PAPER_SEEDS, "spice_true_semantics", NO_ABSORB, "full_chain",
           SPINE_CLUSTERER, ORACLE)
TITLES = {"dbscan": "DBSCAN per true class (tuned on validation)",
          DBSCAN_COORDS: "DBSCAN on coordinates alone, no semantics (one eps and min_samples "
                         "tuned on validation for the particle-level ARI)",
          NO_ABSORB: "Full chain without the absorb and reconnect steps (same network outputs, "
                     "the shipped clusterer's other steps and thresholds)",
          PAPER_SEEDS: "SPICE, true semantics, the paper's seed search alone (no refinement, "
                       "merging or connectivity; thresholds tuned for it)",
          "spice_true_semantics": "SPICE, true semantics (clustering stage alone)",
          "full_chain": "Full chain, predicted semantics (uresnet + SPICE)",
          SPINE_CLUSTERER: "Full chain's network outputs clustered by SPINE 1.4.3's "
                           "SPICEClusterer (shipped s0/p0, none of the extra steps)",
          ORACLE: "Diagnostic: SPICE embeddings assigned to the true centroids (needs truth; "
                  "the best any kernel clustering of these embeddings could do)"}
#: The methods on the accuracy-vs-training curve: line style and legend label.
CURVE_STYLES = {"spice_true_semantics": ("--", "true sem."), "full_chain": ("-", "full chain"),
                ORACLE: (":", "truth centroids")}


def summarize_methods(rows: Sequence[Dict[str, Any]], confusion: np.ndarray, n_events: int,
                      threshold: float, particle_rows: Sequence[Dict[str, Any]] = ()
                      ) -> Dict[str, Dict[str, Any]]:
    """Per method: Table III aggregates per class and ``all``, and the ``particles`` row
    from ``particle_rows`` (analysis.summary.summarize)."""
    from analysis.summary import summarize

    segmentation = [{"true_class": CLASS_NAMES[t], "pred_class": CLASS_NAMES[p],
                     "n_voxels": int(confusion[t, p])}
                    for t in range(NUM_CLASSES) for p in range(NUM_CLASSES)] if confusion.sum() else []
    out = {}
    for method in METHODS:
        mine = [r for r in rows if r["method"] == method]
        if not mine:
            continue
        summary = summarize(mine, segmentation if method == "full_chain" else [], threshold, n_events,
                            [r for r in particle_rows if r["method"] == method])
        out[method] = {r["class"]: {k: v for k, v in r.items() if k != "class"} for r in summary.rows}
        per_event = {(r["file"], r["entry"]): r for r in mine}.values()  # times repeat per class
        for stat in ("forward_time_s", "cluster_time_s"):
            values = np.array([r[stat] for r in per_event], dtype=float)
            out[method]["all"][f"mean_{stat}"] = (float(np.nanmean(values))
                                                  if np.isfinite(values).any() else math.nan)
    return out


def paired_difference(rows: Sequence[Dict[str, Any]], candidate: str, reference: str,
                      name: str) -> Tuple[float, float, int]:
    """Mean and standard error of ``ARI(candidate) - ARI(reference)`` over the events where
    both score class ``name`` (paired by file and entry: the same events, so the event-to-event
    spread cancels). ``(nan, nan, 0)`` without pairs."""
    by_method: Dict[str, Dict[Tuple, float]] = {candidate: {}, reference: {}}
    for r in rows:
        if r["class"] == name and r["method"] in by_method:
            by_method[r["method"]][(r["file"], r["entry"])] = float(r["ari"])
    keys = sorted(set(by_method[candidate]) & set(by_method[reference]))
    diff = np.array([by_method[candidate][k] - by_method[reference][k] for k in keys])
    if diff.size == 0:
        return math.nan, math.nan, 0
    stderr = float(diff.std(ddof=1) / math.sqrt(diff.size)) if diff.size > 1 else math.nan
    return float(diff.mean()), stderr, int(diff.size)


def clusterer_timing(particle_rows: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """The shipped clusterer's time per event (``full_chain``) beside SPINE's
    (:data:`SPINE_CLUSTERER`), over the events both clustered: ``n_events``,
    ``{shipped,spine}_{mean,median}_s`` and ``ratio`` (shipped mean / SPINE mean; goal of
    issue 18: <= 1). Empty without SPINE rows."""
    times: Dict[str, Dict[Tuple, float]] = {"full_chain": {}, SPINE_CLUSTERER: {}}
    for r in particle_rows:
        if r["method"] in times and math.isfinite(float(r["cluster_time_s"])):
            times[r["method"]][(r["file"], r["entry"])] = float(r["cluster_time_s"])
    keys = sorted(set(times["full_chain"]) & set(times[SPINE_CLUSTERER]))
    if not keys:
        return {}
    out: Dict[str, Any] = {"n_events": len(keys)}
    for name, method in (("shipped", "full_chain"), ("spine", SPINE_CLUSTERER)):
        values = np.array([times[method][k] for k in keys])
        out[f"{name}_mean_s"], out[f"{name}_median_s"] = float(values.mean()), float(np.median(values))
    out["ratio"] = out["shipped_mean_s"] / out["spine_mean_s"] if out["spine_mean_s"] > 0 \
        else math.nan
    return out


def floor_checks(summaries: Dict[str, Dict[str, Any]],
                 rows: Sequence[Dict[str, Any]] = ()) -> Dict[str, Dict[str, Any]]:
    """(a) SPICE(true) ARI >= DBSCAN ARI and (b) full chain >= SPICE(true) - 0.05, per floor class.

    With the per-event ``rows``, each class also gets the paired difference and its
    standard error (``difference``, ``stderr``), to tell a miss from noise.
    """

    def ari(method: str, name: str) -> float:
        return float(summaries.get(method, {}).get(name, {}).get("ari", math.nan))

    checks = {}
    for key, ref, cand, margin, text in (
            ("a", "dbscan", "spice_true_semantics", 0.0, "true-semantics SPICE ARI >= DBSCAN ARI"),
            ("b", "spice_true_semantics", "full_chain", ARI_TOLERANCE,
             f"full chain ARI within {ARI_TOLERANCE} of true-semantics SPICE")):
        per_class = {}
        for name in FLOOR_CLASSES:
            r, c = ari(ref, name), ari(cand, name)
            diff, stderr, _ = paired_difference(rows, cand, ref, name)
            per_class[name] = {"reference": r, "candidate": c, "difference": diff,
                               "stderr": stderr,
                               "pass": bool(c >= r - margin) if math.isfinite(r + c) else None}
        verdicts = [v["pass"] for v in per_class.values()]
        checks[key] = {"text": text, "classes": per_class,
                       "pass": None if None in verdicts else all(verdicts)}
    return checks


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if math.isfinite(value) else "-"
    return str(value)


def _verdict(value: Optional[bool]) -> str:
    return "N/A" if value is None else ("PASS" if value else "FAIL")


def report_markdown(result: Dict[str, Any]) -> str:
    """The benchmark report (printed and written to report.md)."""
    threshold = result["ari_threshold"]
    lines = ["# SPICE clustering accuracy (paper Table III)", "",
             f"Command: `{result['command']}`", "",
             f"{result['n_events']} test events from {', '.join(result['test_files'])}; weights "
             f"{result['weights']}; thresholds {result['thresholds']}; true clusters < "
             f"{result['min_true_size']} voxels masked.", "",
             "DBSCAN parameters (tuned on "
             f"{result['dbscan']['n_events']} validation events, max mean ARI):", "",
             "| class | eps | min_samples | validation ARI |", "|---|---|---|---|"]
    for name, p in result["dbscan"]["params"].items():
        lines.append(f"| {name} | {p['eps']:g} | {p['min_samples']} | "
                     f"{_fmt(result['dbscan']['scores'][name]['ari'])} |")
    coords = result.get("dbscan_coordinates")
    if coords:
        lines += ["", f"DBSCAN on coordinates alone: eps {coords['params']['eps']:g}, min_samples "
                      f"{coords['params']['min_samples']} (validation particle-level ARI "
                      f"{_fmt(coords['scores']['ari'])})."]
    particles = [(m, s["particles"]) for m, s in result["summaries"].items() if "particles" in s]
    if particles:
        lines += ["", "## Particle level: all voxels of an event, particle id as truth", "",
                  "Clusters spanning classes count here (a muon that absorbed its Michel "
                  "electron is one cluster for two particles); the per-class tables below "
                  "cannot see them.", "",
                  f"| method | events | purity | efficiency | ARI | ARI > {threshold:g} |",
                  "|---|---|---|---|---|---|"]
        lines += ["| " + " | ".join(_fmt(v) for v in (m, r["n_rows"], r["purity"],
                                                        r["efficiency"], r["ari"],
                                                        r["frac_ari_above"])) + " |"
                  for m, r in particles]
    for method, summary in result["summaries"].items():
        seg = method == "full_chain"
        lines += ["", f"## {TITLES[method]}", "",
                  "| class | rows | purity | efficiency | ARI | ARI > " + f"{threshold:g} | "
                  "paper purity | paper efficiency | paper ARI |" + (" voxel accuracy |" if seg else ""),
                  "|---" * (10 if seg else 9) + "|"]
        for name in CLASS_NAMES + ("all",):
            if name not in summary:
                continue
            r, goal = summary[name], PAPER_TABLE_III.get(name, (math.nan,) * 3)
            cells = [name, r["n_rows"], r["purity"], r["efficiency"], r["ari"], r["frac_ari_above"],
                     *goal] + ([r["voxel_accuracy"]] if seg else [])
            lines.append("| " + " | ".join(_fmt(v) for v in cells) + " |")
        frac = summary["all"]["frac_ari_above"]
        lines += ["", f"Fraction of (event, class) rows with ARI > {threshold:g}: {_fmt(frac)} "
                      f"(paper: {PAPER_FRAC_ARI_ABOVE:.2f}). Mean per event: network "
                      f"{_fmt(summary['all']['mean_forward_time_s'])} s, clustering "
                      f"{_fmt(summary['all']['mean_cluster_time_s'])} s."]
    timing = result.get("clusterer_timing")
    if timing:
        lines += ["", "## Clusterer time per event: shipped vs SPINE 1.4.3", "",
                  f"The full chain's network outputs on the same {timing['n_events']} events, "
                  "clustered by the config's clusterer (the shipped one: all its steps) "
                  "and by SPINE's `SPICEClusterer` with the same s0/p0 (its inputs converted "
                  "before its clock starts). Goal (issue 18): shipped no slower.", "",
                  "| clusterer | mean (ms) | median (ms) |", "|---|---|---|",
                  f"| shipped | {timing['shipped_mean_s'] * 1e3:.1f} | "
                  f"{timing['shipped_median_s'] * 1e3:.1f} |",
                  f"| SPINE 1.4.3 | {timing['spine_mean_s'] * 1e3:.1f} | "
                  f"{timing['spine_median_s'] * 1e3:.1f} |", "",
                  f"Shipped / SPINE (means): {timing['ratio']:.2f}x."]
    lines += ["", "## Floor checks (HIP, MIP, Shower)", ""]
    for key, check in result["checks"].items():
        detail = "; ".join(f"{n} {_fmt(v['candidate'])} vs {_fmt(v['reference'])}"
                           + (f" (paired difference {v['difference']:+.4f} ± {v['stderr']:.4f})"
                              if math.isfinite(v.get("stderr", math.nan)) else "")
                           for n, v in check["classes"].items())
        lines.append(f"- ({key}) {check['text']}: **{_verdict(check['pass'])}** ({detail})")
    if result.get("failures"):
        lines += ["", "## Failure displays (full chain, lowest event-mean ARI)", ""]
        lines += [f"- {Path(f['file']).name} entry {f['entry']} (event {f['event']}): mean ARI "
                  f"{_fmt(f['mean_ari'])}; {f.get('png', '')}" for f in result["failures"]]
    lines += ["", "## Timings (s)", ""] + [f"- {k}: {v:.1f}" for k, v in result["timings"].items()]
    return "\n".join(lines) + "\n"


def json_safe(value: Any) -> Any:
    """``value`` with NaN/inf as None and numpy scalars as Python numbers (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value if isinstance(value, (str, int, bool, type(None))) else str(value)


def plot_curve(curve: Sequence[Dict[str, Any]], path: Path) -> None:
    """Mean ARI per class vs training time (or iteration), one line style per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    use_time = all(math.isfinite(r["train_time_s"]) for r in curve)
    fig, ax = plt.subplots(figsize=(8, 5))
    for c, name in enumerate(CLASS_NAMES):
        for method, (style, label) in CURVE_STYLES.items():
            mine = [r for r in curve if r["method"] == method]
            if not mine:
                continue
            x = [r["train_time_s"] / 60 if use_time else r["iteration"] for r in mine]
            ax.plot(x, [r[f"ari_{name}"] for r in mine], style, marker="o", color=f"C{c}",
                    label=f"{name} ({label})")
    ax.set_xlabel("training time (min)" if use_time else "iteration")
    ax.set_ylabel("mean ARI")
    ax.set_title("Clustering accuracy vs training")
    ax.legend(fontsize=6, ncol=3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def pick_failures(rows: Sequence[Dict[str, Any]], n: int) -> List[Dict[str, Any]]:
    """The ``n`` full-chain events of lowest mean ARI among those with all FLOOR_CLASSES scored.

    When fewer events have all of them, the others follow (also by mean ARI).
    """
    events: Dict[tuple, Dict[str, Any]] = defaultdict(dict)
    for r in rows:
        if r["method"] == "full_chain":
            events[(r["file"], r["entry"], r["event"])][r["class"]] = r["ari"]
    ranked = sorted(events.items(), key=lambda kv: (not set(FLOOR_CLASSES) <= set(kv[1]),
                                                    float(np.mean(list(kv[1].values())))))
    return [{"file": f, "entry": e, "event": ev, "mean_ari": float(np.mean(list(aris.values()))),
             **{f"ari_{name}": aris.get(name, math.nan) for name in CLASS_NAMES}}
            for (f, e, ev), aris in ranked[:n]]


def write_csv(path: Path, columns: Sequence[str], rows: Sequence[Dict[str, Any]]) -> None:
    """Write dict rows as CSV, atomically."""
    from analysis.csv_parts import csv_text

    atomic_write_text(path, csv_text(columns, rows))


def training_seconds(train_log: Optional[Path]) -> Dict[int, float]:
    """Iteration -> cumulative training time (sum of ``time_s``) from a train_log.csv."""
    from mlreco_spice.training_log import read_train_log

    if train_log is None or not Path(train_log).is_file():
        return {}
    rows = sorted(read_train_log(Path(train_log)), key=lambda r: int(r["iteration"]))
    times = np.cumsum([float(r["time_s"]) for r in rows])
    return {int(r["iteration"]): float(t) for r, t in zip(rows, times)}
