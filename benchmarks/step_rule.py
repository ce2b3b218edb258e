"""Issue 18's rule for keeping a clusterer step in the shipped config.

On validation events (at least :data:`MIN_EVENTS`, each scored with and without the step,
so the differences are paired per event) a step stays on only if it

- raises some class's mean ARI by more than :data:`RAISE_SE` standard errors of the
  paired difference, and
- lowers no class's mean ARI, nor the particle-level ARI, by more than
  :data:`LOWER_SE` standard error.

Steps are judged one at a time in the clusterer's order (:data:`STEPS`), each against
the configuration of the steps kept before it; a step whose prerequisite was dropped
is not judged (it cannot run). Pure functions: ``benchmarks/clusterer_steps.py`` feeds
them the scores.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

import numpy as np

RAISE_SE = 2.0
LOWER_SE = 1.0
MIN_EVENTS = 200

#: (name, prerequisite step or None, the clusterer keywords it adds: a function of the
#: shipped config's clusterer block and the shipped thresholds file).
STEPS: List[Tuple[str, Optional[str], Callable[[Mapping, Mapping], Dict[str, Any]]]] = [
    ("one seed per present class", None, lambda b, t: {"at_least_one_seed": True}),
    ("refinement passes", None, lambda b, t: {"refine_iterations": b["refine_iterations"]}),
    ("merge of overlapping clusters", None, lambda b, t: {"merge_p": b["merge_p"]}),
    ("connectivity", None, lambda b, t: {"connect_radius_cm": b["connect_radius_cm"],
                                         "connect_p": t.get("connect_p")}),
    ("bend veto", "connectivity", lambda b, t: {"connect_max_bend": b["connect_max_bend"],
                                                "bend_window_cm": b["bend_window_cm"]}),
    ("absorb across classes", None, lambda b, t: {"absorb_radius_cm": b["absorb_radius_cm"],
                                                  "absorb_p": t.get("absorb_p")}),
    ("reconnect after absorb", "absorb across classes",
     lambda b, t: {"reconnect_after_absorb": True}),
]

#: Per-event scores of one configuration: ({class: {event: ari}}, {event: particle ari}).
Scores = Tuple[Dict[str, Dict[int, float]], Dict[int, float]]


@dataclass(frozen=True)
class Change:
    """Mean and standard error of a paired per-event difference (with - without)."""

    mean: float
    se: float
    n: int

    def __str__(self) -> str:
        if self.n == 0:
            return "n/a"
        if self.mean != 0.0 and abs(self.mean) < 5e-5:
            # Four decimals would print -0.0000 ± 0.0000 for a change the rule still weighs.
            return f"{self.mean:+.1e} ± {self.se:.1e}"
        return f"{self.mean:+.4f} ± {self.se:.4f}"


def paired_change(with_step: Mapping[int, float], without: Mapping[int, float]) -> Change:
    """The change over the events scored (non-NaN) in both."""
    keys = [k for k in with_step if k in without
            and not (math.isnan(with_step[k]) or math.isnan(without[k]))]
    if not keys:
        return Change(math.nan, math.nan, 0)
    diff = np.array([with_step[k] - without[k] for k in keys])
    se = float(diff.std(ddof=1) / math.sqrt(diff.size)) if diff.size > 1 else math.nan
    return Change(float(diff.mean()), se, int(diff.size))


def verdict(per_class: Mapping[str, Change], particle: Change) -> Tuple[bool, str]:
    """(keep, why) under the rule (module docstring)."""
    raised = [c for c, ch in per_class.items() if ch.n > 1 and ch.mean > RAISE_SE * ch.se]
    lowered = [c for c, ch in per_class.items() if ch.n > 1 and ch.mean < -LOWER_SE * ch.se]
    particle_lowered = particle.n > 1 and particle.mean < -LOWER_SE * particle.se
    if not raised:
        return False, f"raises no class by > {RAISE_SE:g} SE"
    if lowered or particle_lowered:
        what = lowered + (["particle-level"] if particle_lowered else [])
        return False, f"raises {', '.join(raised)} but lowers {', '.join(what)} by > " \
                      f"{LOWER_SE:g} SE"
    return True, f"raises {', '.join(raised)} by > {RAISE_SE:g} SE, lowers nothing by > " \
                 f"{LOWER_SE:g} SE"


def judge_steps(base: Dict[str, Any], block: Mapping, thresholds: Mapping,
                score: Callable[[Dict[str, Any]], Scores]) -> List[Dict[str, Any]]:
    """Each step of :data:`STEPS` judged against the steps kept before it.

    Parameters
    ----------
    base : dict
        Clusterer keywords without any step (the shipped s0/p0).
    block, thresholds
        The shipped config's clusterer block and thresholds file.
    score : callable
        Clusterer keywords -> :data:`Scores` on the validation events.

    Returns
    -------
    list of dict
        Per step: ``step``, ``keep`` (None: not judged), ``why``, ``per_class``
        (class -> :class:`Change`), ``particle`` (:class:`Change`), ``kwargs`` (the
        configuration with the step).
    """
    current, kept, out = dict(base), set(), []
    current_scores = score(current)
    for name, needs, adds in STEPS:
        if needs is not None and needs not in kept:
            out.append({"step": name, "keep": None, "why": f"needs {needs}, which was dropped",
                        "per_class": {}, "particle": Change(math.nan, math.nan, 0),
                        "kwargs": None})
            continue
        trial = dict(current, **adds(block, thresholds))
        trial_scores = score(trial)
        per_class = {c: paired_change(trial_scores[0].get(c, {}), current_scores[0].get(c, {}))
                     for c in dict.fromkeys([*current_scores[0], *trial_scores[0]])}
        particle = paired_change(trial_scores[1], current_scores[1])
        keep, why = verdict(per_class, particle)
        out.append({"step": name, "keep": keep, "why": why, "per_class": per_class,
                    "particle": particle, "kwargs": trial})
        if keep:
            current, current_scores = trial, trial_scores
            kept.add(name)
    return out
