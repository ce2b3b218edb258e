"""benchmarks/step_rule.py: issue 18's rule for keeping a clusterer step, on paired scores."""
import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import step_rule  # noqa: E402
from step_rule import Change, judge_steps, paired_change, verdict  # noqa: E402

BLOCK = {"refine_iterations": 3, "merge_p": 0.5, "connect_radius_cm": 0.9,
         "connect_max_bend": 25, "bend_window_cm": 4.5, "absorb_radius_cm": 0.9}
THRESHOLDS = {"s0": 0.5, "p0": 0.3, "connect_p": {"HIP": 0.3}, "absorb_p": 0.1}


def test_paired_change_uses_the_events_scored_in_both():
    change = paired_change({0: 0.9, 1: 0.8, 2: math.nan, 3: 0.5}, {0: 0.7, 1: 0.7, 2: 0.1})
    assert change.n == 2
    assert change.mean == pytest.approx(0.15)
    assert change.se == pytest.approx(np.std([0.2, 0.1], ddof=1) / math.sqrt(2))
    assert paired_change({}, {0: 1.0}).n == 0 and str(paired_change({}, {})) == "n/a"
    # A change too small for four decimals is printed as the rule sees it.
    assert str(Change(-3.6e-5, 7.1e-6, 200)) == "-3.6e-05 ± 7.1e-06"
    assert str(Change(0.0231, 0.0066, 200)) == "+0.0231 ± 0.0066"


@pytest.mark.parametrize("per_class, particle, keep", [
    ({"HIP": Change(0.05, 0.02, 200), "MIP": Change(0.0, 0.01, 200)}, Change(0.0, 0.01, 200),
     True),                                                     # +2.5 SE, nothing lower
    ({"HIP": Change(0.03, 0.02, 200)}, Change(0.0, 0.01, 200), False),   # +1.5 SE only
    ({"HIP": Change(0.05, 0.02, 200), "MIP": Change(-0.02, 0.01, 200)},
     Change(0.0, 0.01, 200), False),                            # MIP -2 SE
    ({"HIP": Change(0.05, 0.02, 200), "MIP": Change(-0.005, 0.01, 200)},
     Change(-0.005, 0.01, 200), True),                          # -0.5 SE is allowed
    ({"HIP": Change(0.05, 0.02, 200)}, Change(-0.02, 0.01, 200), False),  # particle -2 SE
])
def test_verdict_follows_the_rule(per_class, particle, keep):
    got, why = verdict(per_class, particle)
    assert got is keep
    assert ("lowers" in why) or ("raises no class" in why) or keep


def scores(gain):
    """Fake per-event scores: 200 events, each class and the particle ARI at 0.5 plus
    ``gain[class]`` with a little per-event noise (fixed, so differences are paired)."""
    rng = np.random.default_rng(0)
    noise = rng.normal(0.0, 0.01, 200)
    per_class = {c: {i: 0.5 + gain.get(c, 0.0) + noise[i] for i in range(200)}
                 for c in ("HIP", "MIP")}
    return per_class, {i: 0.5 + gain.get("particle", 0.0) + noise[i] for i in range(200)}


def test_steps_are_judged_in_order_each_against_the_steps_kept_before_it():
    seen = []

    def score(kwargs):
        seen.append(dict(kwargs))
        gain = {}
        if kwargs.get("refine_iterations"):
            gain["HIP"] = 0.05                  # refinement helps
        if kwargs.get("merge_p") is not None:
            gain["MIP"] = -0.05                 # merging hurts: dropped
        if kwargs.get("connect_p") is not None:
            gain["HIP"] = gain.get("HIP", 0) + 0.05
        if kwargs.get("connect_max_bend") is not None:
            gain["particle"] = -0.05            # bend veto lowers the particle ARI
        return scores(gain)

    judged = judge_steps({"s0": 0.5, "p0": 0.3}, BLOCK, THRESHOLDS, score)
    verdicts = {row["step"]: row["keep"] for row in judged}
    assert [row["step"] for row in judged] == [name for name, _, _ in step_rule.STEPS]
    assert verdicts == {"one seed per present class": False, "refinement passes": True,
                        "merge of overlapping clusters": False, "connectivity": True,
                        "bend veto": False, "absorb across classes": False,
                        "reconnect after absorb": None}
    # Each trial builds on the kept steps only (merge dropped, refinement kept).
    connect_trial = [k for k in seen if k.get("connect_p") is not None][0]
    assert connect_trial["refine_iterations"] == 3 and "merge_p" not in connect_trial
    assert judged[1]["per_class"]["HIP"].mean == pytest.approx(0.05)
    assert "needs absorb across classes" in judged[-1]["why"]
