"""What each clusterer step beyond the paper adds: ARI per class on validation events.

The network runs once per event (shipped weights); then the same outputs are clustered
with one configuration per row, adding the candidate steps of
``chain_configs/predict_all_steps.yaml`` (thresholds tuned with all of them on,
``weights/thresholds_all_steps.yaml``), those of
:mod:`mlreco_spice.cluster.postprocess` and :mod:`mlreco_spice.cluster.absorb` one at a
time, on true and on predicted semantics. Scores: mean ARI per class over events
(:func:`mlreco_spice.metrics.evaluate_event`, true clusters < 10 voxels masked).

Then issue 18's keep-step rule (:mod:`step_rule`) on the full chain's outputs: each step,
in the clusterer's order, against the steps kept before it, paired per event; a step stays
in ``chain_configs/predict.yaml`` only if it raises some class's mean ARI by more than 2
standard errors and lowers no class's, nor the particle-level ARI, by more than 1. The
rows and the rule use the candidates' s0/p0 (``thresholds_all_steps.yaml``); a config
that changes the kept steps is tuned again (``make train-default`` tunes both).

The default events are the validation set the thresholds were tuned on (seed 2), so the
rows measure what each step contributes there; the accuracy benchmark
(``benchmarks/accuracy.py``) is the check on unseen events.

Usage::

    .venv/bin/python benchmarks/clusterer_steps.py [--events 200] [--weights W] \
        [--out runs/clusterer_steps.md]
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import step_rule  # noqa: E402

from mlreco_spice.atomic import atomic_write_text
from mlreco_spice.columns import CLASS_NAMES

ROOT = Path(__file__).resolve().parent.parent
LABELS = ("io.dataset.schema.clust_label={parser: cluster3d, cluster_product: cluster3d_pcluster, "
          "semantics_product: sparse3d_semantics}")


def rows_to_run(block: Dict[str, Any], shipped: Dict[str, Any], paper: Dict[str, Any]
                ) -> List[Dict[str, Any]]:
    """(name, semantics source, clusterer kwargs) of each row, steps added one at a time.

    ``block`` is the candidates' clusterer block (``predict_all_steps.yaml``: refinement,
    merge and radii), ``shipped`` its thresholds file and ``paper`` the paper's.
    """
    thresholds = {"s0": shipped["s0"], "p0": shipped["p0"]}
    paper = {"s0": paper["s0"], "p0": paper["p0"]}
    seed = dict(thresholds, at_least_one_seed=True)
    refine = dict(seed, refine_iterations=block["refine_iterations"], merge_p=block["merge_p"])
    plain_connect = dict(refine, connect_radius_cm=block["connect_radius_cm"],
                         connect_p=shipped.get("connect_p"))
    connect = dict(plain_connect, connect_max_bend=block.get("connect_max_bend"),
                   bend_window_cm=block["bend_window_cm"])
    dbscan_like = dict(plain_connect, connect_p={"HIP": 0.0, "MIP": 0.0})
    absorb = dict(connect, absorb_radius_cm=block["absorb_radius_cm"],
                  absorb_p=shipped.get("absorb_p"))
    reconnect = dict(absorb, reconnect_after_absorb=block.get("reconnect_after_absorb", False))
    return [
        {"name": "paper's seed search (its own thresholds)", "truth": True, "kwargs": paper},
        {"name": "all-steps s0/p0, paper's seed search", "truth": True, "kwargs": thresholds},
        {"name": "+ one seed per present class", "truth": True, "kwargs": seed},
        {"name": f"+ {block['refine_iterations']} refinement passes, merge at p > "
                 f"{block['merge_p']}", "truth": True, "kwargs": refine},
        {"name": "+ connectivity (tuned connect_p), no bend veto", "truth": True,
         "kwargs": plain_connect},
        {"name": f"+ bend veto ({block.get('connect_max_bend')} degrees)", "truth": True,
         "kwargs": connect},
        {"name": "connectivity with connect_p = 0, no veto (DBSCAN on pieces)", "truth": True,
         "kwargs": dbscan_like},
        {"name": "absorb step on top, true semantics", "truth": True, "kwargs": absorb},
        {"name": "full chain: paper's seed search (its own thresholds)", "truth": False,
         "kwargs": paper},
        {"name": "full chain: steps up to the bend veto, no absorb", "truth": False,
         "kwargs": connect},
        {"name": "full chain: + absorb", "truth": False, "kwargs": absorb},
        {"name": "full chain: + reconnect after absorb (every step)", "truth": False,
         "kwargs": reconnect},
    ]


def per_event_scores(events: Sequence[Dict[str, np.ndarray]], truth: bool,
                     kwargs: Dict[str, Any]):
    """ARI per class and event, and particle-level ARI per event, of one configuration
    (:data:`step_rule.Scores`)."""
    from mlreco_spice.cluster import cluster_event_arrays
    from mlreco_spice.metrics import evaluate_event, evaluate_particles

    per_class: Dict[str, Dict[int, float]] = {name: {} for name in CLASS_NAMES}
    particle: Dict[int, float] = {}
    for index, ev in enumerate(events):
        semantics = ev["truth_semantic"] if truth else ev["semantics"]
        labels = cluster_event_arrays(ev["embeddings"], ev["margins"], ev["seediness"],
                                      semantics, ev["coords"], voxel_cm=ev["voxel_cm"],
                                      **kwargs)
        for row in evaluate_event(ev["truth_instance"], labels, ev["truth_semantic"]):
            per_class[row["class"]][index] = row["ari"]
        particle[index] = float(evaluate_particles(ev["truth_instance"], labels)["ari"])
    return per_class, particle


def score(events: Sequence[Dict[str, np.ndarray]], truth: bool, kwargs: Dict[str, Any]
          ) -> Dict[str, float]:
    """Mean ARI per class of one clusterer configuration."""
    per_class, _ = per_event_scores(events, truth, kwargs)
    return {name: float(np.mean(list(v.values()))) if v else float("nan")
            for name, v in per_class.items()}


def rule_lines(judged: Sequence[Dict[str, Any]], n_events: int) -> List[str]:
    """Markdown of the keep-step rule's verdicts (:func:`step_rule.judge_steps`)."""
    lines = ["", f"Keep-step rule (issue 18) on the full chain's outputs, {n_events} events, paired "
             f"per event: a step stays on if it raises some class's mean ARI by > "
             f"{step_rule.RAISE_SE:g} SE and lowers no class's, nor the particle-level ARI, "
             f"by > {step_rule.LOWER_SE:g} SE; each step against the steps kept before it.", "",
             "| step | " + " | ".join(f"Δ {c}" for c in CLASS_NAMES) + " | Δ particle ARI | "
             "verdict |", "|---|" + "---|" * (len(CLASS_NAMES) + 2)]
    for row in judged:
        verdict = {True: "**keep**", False: "off", None: "not judged"}[row["keep"]]
        lines.append(f"| {row['step']} | " + " | ".join(
            str(row["per_class"].get(c, step_rule.Change(np.nan, np.nan, 0)))
            for c in CLASS_NAMES) + f" | {row['particle']} | {verdict}: {row['why']} |")
    kept = [r["step"] for r in judged if r["keep"]]
    lines += ["", f"Steps kept: {', '.join(kept) if kept else 'none'}."]
    if n_events < step_rule.MIN_EVENTS:
        lines.append(f"(Only {n_events} events: the rule asks for at least "
                     f"{step_rule.MIN_EVENTS}.)")
    return lines


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("Usage::")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--val-file", default=str(ROOT / "runs/default_data/val.h5"),
                   help="labelled events (default: %(default)s)")
    p.add_argument("--events", type=int, default=step_rule.MIN_EVENTS,
                   help="events (default: %(default)s, the keep-step rule's minimum)")
    p.add_argument("--weights", help="chain weights (default: predict.yaml's predict.weights)")
    p.add_argument("--thresholds", default=str(ROOT / "weights/thresholds_all_steps.yaml"),
                   help="thresholds tuned with every step on (default: %(default)s)")
    p.add_argument("--paper-thresholds", default=str(ROOT / "weights/thresholds_paper.yaml"),
                   help="thresholds tuned for the paper's seed search (default: %(default)s)")
    p.add_argument("--out", default=str(ROOT / "runs/clusterer_steps.md"),
                   help="markdown table written here (default: %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    if args.events < 1:
        p.error("--events must be >= 1")
    if not Path(args.val_file).is_file():
        p.error(f"--val-file {args.val_file} not found (make train-default simulates it)")

    from mlreco_spice.config import load_config
    from mlreco_spice.inference import iter_event_outputs, load_thresholds

    cfg = load_config("predict_all_steps", [LABELS, "predict.thresholds=null"]
                      + ([f"predict.weights={args.weights}"] if args.weights else []))
    events = list(iter_event_outputs(cfg, [args.val_file], args.events,
                                     progress=not args.no_progress))
    rows = rows_to_run(cfg["model"]["modules"]["spice"]["clusterer"],
                       load_thresholds(args.thresholds), load_thresholds(args.paper_thresholds))
    lines = [f"Command: `{' '.join([Path(sys.executable).name, *sys.argv])}`", "",
             f"{len(events)} events from {args.val_file}; mean ARI per class.", "",
             "| clusterer | semantics | " + " | ".join(CLASS_NAMES) + " |",
             "|---|---|" + "---|" * len(CLASS_NAMES)]
    for row in rows:
        aris = score(events, row["truth"], row["kwargs"])
        lines.append(f"| {row['name']} | {'true' if row['truth'] else 'predicted'} | "
                     + " | ".join(f"{aris[n]:.3f}" for n in CLASS_NAMES) + " |")
        print(lines[-1], flush=True)
    shipped = load_thresholds(args.thresholds)
    judged = step_rule.judge_steps(
        {"s0": shipped["s0"], "p0": shipped["p0"]}, cfg["model"]["modules"]["spice"]["clusterer"],
        shipped, lambda kwargs: per_event_scores(events, False, kwargs))
    lines += rule_lines(judged, len(events))
    print("\n".join(lines[-len(judged) - 4:]), flush=True)
    atomic_write_text(args.out, "\n".join(lines) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    sys.exit(main())
