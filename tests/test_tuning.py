"""Threshold grid search on a tiny synthetic fixture, and the YAML it writes."""
import math
import os

import numpy as np
import pytest
import torch
import yaml

from mlreco_spice.cluster import SPICEClusterer
from mlreco_spice.cluster.synthetic import synthetic_event
from mlreco_spice.cluster.tuning import (format_threshold_table, threshold_grid, tune_thresholds,
                                         write_thresholds)
from mlreco_spice.columns import CLASS_NAMES
from mlreco_spice.defaults import PAPER_THRESHOLDS
from mlreco_spice.metrics import evaluate_event


@pytest.fixture(scope="module")
def events():
    # Three instances per class; spread 2 makes the blobs touch, so thresholds matter.
    return [synthetic_event((3, 3, 3, 3, 3), n_voxels=900, spread=2.0, seed=s) for s in range(4)]


@pytest.fixture(scope="module")
def tuned(events):
    return tune_thresholds(events, step=0.1, progress=False)


def mean_scores(events, s0, p0):
    """Cluster with the public clusterer and score with the public metrics."""
    rows = {name: [] for name in CLASS_NAMES}
    clusterer = SPICEClusterer(s0=s0, p0=p0)
    for ev in events:
        t = {k: torch.as_tensor(v) for k, v in ev.items()}
        labels = clusterer(t["embeddings"], t["margins"], t["seediness"], t["semantics"],
                           torch.zeros(len(ev["seediness"])))
        for row in evaluate_event(ev["truth_instance"], labels.numpy(), ev["truth_semantic"]):
            rows[row["class"]].append(row)
    return {name: {m: float(np.mean([r[m] for r in rs])) for m in ("ari", "purity", "efficiency")}
            for name, rs in rows.items()}


def test_grid():
    grid = threshold_grid(0.05)
    assert grid["s0"].size == 21 and grid["s0"][-1] == 1.0 and grid["s0"][3] == 0.15
    assert grid["p0"].size == 13 and grid["p0"][-1] == 0.6
    with pytest.raises(ValueError, match="step"):
        threshold_grid(0.0)


def test_tuning_finds_good_thresholds_consistent_with_clusterer(events, tuned):
    assert tuned["tuned"] == list(CLASS_NAMES) and tuned["n_events"] == 4
    for name in CLASS_NAMES:
        # p0 = 0 merges a class into one cluster (ARI 0 with 3 instances); s0 = 1 clusters nothing.
        assert tuned["p0"][name] > 0.0 and tuned["s0"][name] < 1.0
        assert tuned["scores"][name]["ari"] > 0.9
        assert tuned["scores"][name]["n_events"] == 4
    # The tuner's incremental grid gives the same scores as clustering from scratch.
    check = mean_scores(events, tuned["s0"], tuned["p0"])
    for name in CLASS_NAMES:
        for metric in ("ari", "purity", "efficiency"):
            assert check[name][metric] == pytest.approx(tuned["scores"][name][metric], abs=1e-12)
    # And it beats the paper's values on this data (they were tuned for another network).
    paper = mean_scores(events, None, None)
    assert sum(tuned["scores"][n]["ari"] for n in CLASS_NAMES) >= sum(paper[n]["ari"] for n in CLASS_NAMES)


def test_restricted_classes_keep_paper_values(events):
    result = tune_thresholds(events[:2], step=0.2, classes=["MIP"], metric="purity", progress=False)
    assert result["tuned"] == ["MIP"]
    assert result["s0"]["HIP"] == PAPER_THRESHOLDS["HIP"]["s0"]
    assert math.isnan(result["scores"]["HIP"]["ari"]) and result["scores"]["HIP"]["n_events"] == 0
    assert result["scores"]["MIP"]["purity"] > 0.9


def test_write_thresholds_yaml_is_accepted_by_clusterer(tmp_path, tuned):
    path = tmp_path / "sub" / "thresholds.yaml"
    write_thresholds(str(path), tuned)
    assert os.listdir(path.parent) == ["thresholds.yaml"]  # no temp file left behind
    text = path.read_text()
    assert text.startswith("#") and "Shower" in text
    data = yaml.safe_load(text)
    assert set(data) == {"s0", "p0"} and list(data["s0"]) == list(CLASS_NAMES)
    clusterer = SPICEClusterer(**data)
    assert clusterer.s0 == [tuned["s0"][n] for n in CLASS_NAMES]
    assert clusterer.p0 == [tuned["p0"][n] for n in CLASS_NAMES]


def test_table_lists_every_class(tuned):
    table = format_threshold_table(tuned)
    lines = table.splitlines()
    assert len(lines) == 2 + len(CLASS_NAMES)
    for name, line in zip(CLASS_NAMES, lines[2:]):
        assert line.split()[:3] == [name, f"{tuned['s0'][name]:.3g}", f"{tuned['p0'][name]:.3g}"]


def test_bad_arguments():
    with pytest.raises(ValueError, match="metric"):
        tune_thresholds([], metric="f1")
    with pytest.raises(ValueError, match="at least one event"):
        tune_thresholds([], progress=False)
    with pytest.raises(ValueError, match="lacks"):
        tune_thresholds([{"seediness": np.zeros(3)}], progress=False)
