"""Accuracy benchmark (benchmarks/accuracy.py) end to end on tiny files, and the DBSCAN baseline."""
import csv
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from mlreco_spice.baselines import dbscan_by_class, tune_dbscan
from mlreco_spice.metrics import evaluate_event

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
TINY_ARCH = ["model.modules.spice.network.uresnet={filters: 4, depth: 2, reps: 1, input_kernel: 3}",
             "model.modules.uresnet.network.uresnet={filters: 4, depth: 2, reps: 1, input_kernel: 3}"]


@pytest.fixture(scope="module")
def accuracy():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import accuracy
        import accuracy_report
    finally:
        sys.path.remove(str(BENCHMARKS))
    return accuracy, accuracy_report


def _lines_event(gap: int, length: int = 20):
    """Two parallel straight MIP tracks ``gap`` voxels apart, plus one isolated HIP blob."""
    a = np.stack([np.arange(length), np.zeros(length), np.zeros(length)], 1)
    b = a + [0, gap, 0]
    blob = np.array([[x, y, z] for x in range(40, 43) for y in range(40, 43) for z in range(40, 42)])
    coords = np.concatenate([a, b, blob]).astype(float)
    truth = np.repeat([0, 1, 2], [length, length, len(blob)])
    semantic = np.repeat([1, 1, 0], [length, length, len(blob)])
    return {"coords": coords, "truth_instance": truth, "truth_semantic": semantic}


def test_dbscan_by_class_ids_noise_and_classes():
    event = _lines_event(gap=4)
    coords = np.concatenate([event["coords"], [[80.0, 80.0, 80.0]]])
    semantic = np.append(event["truth_semantic"], 1)  # an isolated MIP voxel: noise
    labels = dbscan_by_class(coords, semantic, {"HIP": {"eps": 1.5, "min_samples": 1},
                                                "MIP": {"eps": 1.5, "min_samples": 2}})
    assert labels[-1] == -1
    # HIP (class 0) first: id 0; MIP lines then 1 and 2.
    assert set(labels[semantic == 0]) == {0}
    assert set(labels[:20]) == {1} and set(labels[20:40]) == {2}
    # A class without parameters stays unclustered.
    only_hip = dbscan_by_class(coords, semantic, {"HIP": {"eps": 1.5, "min_samples": 1}})
    assert (only_hip[semantic == 1] == -1).all()
    with pytest.raises(ValueError, match="eps must be > 0"):
        dbscan_by_class(coords, semantic, {"MIP": {"eps": 0, "min_samples": 1}})


def test_dbscan_labels_equal_sklearn():
    from sklearn.cluster import DBSCAN

    from mlreco_spice.baselines import _dbscan_labels, _radius_graph

    rng = np.random.default_rng(1)
    for side, n in ((8, 120), (20, 500)):
        points = np.unique(rng.integers(0, side, (n, 3)), axis=0).astype(float)
        points = points[rng.permutation(len(points))]
        graph = _radius_graph(points, 6.0)
        for eps in (1.0, 1.5, 3.0, 6.0):
            for min_samples in (1, 3, 9):
                ours = _dbscan_labels(len(points), graph, eps, min_samples)
                ref = DBSCAN(eps=eps, min_samples=min_samples).fit(points).labels_
                np.testing.assert_array_equal(ours, ref)


def test_tune_dbscan_picks_eps_that_separates_close_tracks():
    events = [_lines_event(gap=3), _lines_event(gap=3, length=25)]
    result = tune_dbscan(events, eps_grid=(1.0, 2.0, 4.0), min_samples_grid=(1, 3),
                         classes=["MIP", "HIP"], progress=False)
    # eps 4 merges the tracks (ARI 0); eps 1 and 2 separate them; ties -> smallest eps.
    assert result["params"]["MIP"] == {"eps": 1.0, "min_samples": 1}
    assert result["scores"]["MIP"]["ari"] == pytest.approx(1.0)
    assert result["scores"]["MIP"]["n_events"] == 2 and result["n_events"] == 2
    assert result["scores"]["HIP"]["n_events"] == 2  # the 18-voxel blob is scored
    wide = tune_dbscan(events, eps_grid=(4.0,), min_samples_grid=(1,), classes=["MIP"],
                       progress=False)
    assert wide["scores"]["MIP"]["ari"] == pytest.approx(0.0)


def test_dbscan_on_coordinates_ignores_classes_and_tunes_for_particles():
    from mlreco_spice.baselines import dbscan_coordinates, tune_dbscan_coordinates

    event = _lines_event(gap=3)
    labels = dbscan_coordinates(event["coords"], eps=1.5, min_samples=1)
    assert [len(set(labels[s])) for s in (slice(0, 20), slice(20, 40), slice(40, None))] == [1] * 3
    assert len(set(labels)) == 3
    assert len(set(dbscan_coordinates(event["coords"], eps=4.0, min_samples=1))) == 2
    events = [event, _lines_event(gap=3, length=25)]
    result = tune_dbscan_coordinates(events, eps_grid=(1.0, 4.0), min_samples_grid=(1, 3),
                                     progress=False)
    assert result["params"] == {"eps": 1.0, "min_samples": 1}
    assert result["scores"]["ari"] == pytest.approx(1.0) and result["n_events"] == 2
    with pytest.raises(ValueError, match="eps must be > 0"):
        dbscan_coordinates(event["coords"], eps=0, min_samples=1)


def test_floor_checks_and_failure_choice(accuracy):
    _, report = accuracy
    summaries = {"dbscan": {"HIP": {"ari": 0.8}, "MIP": {"ari": 0.9}, "Shower": {"ari": 0.5}},
                 "spice_true_semantics": {"HIP": {"ari": 0.9}, "MIP": {"ari": 0.9},
                                          "Shower": {"ari": 0.7}},
                 "full_chain": {"HIP": {"ari": 0.86}, "MIP": {"ari": 0.84}, "Shower": {"ari": 0.7}}}
    checks = report.floor_checks(summaries)
    assert checks["a"]["pass"] is True
    assert checks["b"]["classes"]["HIP"]["pass"] is True          # 0.86 >= 0.9 - 0.05
    assert checks["b"]["classes"]["MIP"]["pass"] is False         # 0.84 <  0.85
    assert checks["b"]["pass"] is False
    del summaries["dbscan"]["Shower"]
    assert report.floor_checks(summaries)["a"]["pass"] is None    # undefined, not a pass
    rows = [{"method": "full_chain", "file": "f", "entry": e, "event": e, "class": c, "ari": a}
            for e, c, a in [(0, "HIP", 0.1), (1, "HIP", 0.5), (1, "MIP", 0.5), (1, "Shower", 0.5),
                            (2, "HIP", 0.9), (2, "MIP", 0.9), (2, "Shower", 0.2),
                            (3, "HIP", 0.0), (3, "MIP", 0.0), (3, "Shower", 0.0)]]
    picked = report.pick_failures(rows + [dict(rows[0], method="dbscan", ari=-1.0)], 3)
    # Events with HIP, MIP, Shower first (lowest mean ARI), then event 0 (HIP only).
    assert [p["entry"] for p in picked] == [3, 1, 2]
    assert [p["entry"] for p in report.pick_failures(rows, 5)] == [3, 1, 2, 0]
    # Paired over the events both scored: differences 0.2 - 0.1 and 0.2 - 0.5.
    paired = rows + [dict(r, method="dbscan", ari=r["ari"] - d)
                     for r, d in zip(rows[:2], (-0.1, 0.3))]
    diff, stderr, n = report.paired_difference(paired, "dbscan", "full_chain", "HIP")
    assert n == 2 and diff == pytest.approx(-0.1) and stderr == pytest.approx(0.2)
    assert math.isnan(report.paired_difference(paired, "dbscan", "full_chain", "Michel")[0])


def test_accuracy_benchmark_end_to_end(accuracy, tiny_files, tiny_trained, tmp_path, capsys):
    bench, _ = accuracy
    ckpt_dir = Path(tiny_trained).parent
    out = tmp_path / "acc"
    argv = ["--test-file", str(tiny_files[0]), "--val-file", str(tiny_files[1]), "--events", "3",
            "--val-events", "2", "--eps", "1.5", "3", "--min-samples", "1", "3",
            "--weights", str(tiny_trained), "--thresholds", "paper", "--out", str(out),
            "--curve", str(ckpt_dir), "--curve-events", "2", "--failures", "2", "--no-progress",
            # The connectivity step in the chain (coords reach the clusterer).
            "-c", "predict_all_steps",
            "--set", "model.modules.spice.clusterer.connect_p={HIP: 0.1, MIP: 0.0}",
            # An absorb step (the paper thresholds carry none): the no-absorb rows are scored.
            "--set", "model.modules.spice.clusterer.absorb_p=0.3",
            *[a for item in TINY_ARCH for a in ("--set", item)]]
    assert bench.main(argv) == 0
    printed = capsys.readouterr().out
    assert "benchmarks/accuracy.py --test-file" in printed and "0.9743" in printed
    assert printed.count("PASS") + printed.count("FAIL") + printed.count("N/A") >= 2
    assert printed == (out / "report.md").read_text()

    rows = list(csv.DictReader(open(out / "events.csv")))
    by_method = {}
    for r in rows:
        by_method.setdefault(r["method"], set()).add((r["entry"], r["class"]))
    methods = {"dbscan", "dbscan_coordinates", "spice_paper_seeds", "spice_true_semantics",
               "full_chain", "full_chain_no_absorb", "full_chain_spine_clusterer",
               "spice_truth_centroids"}
    assert set(by_method) == methods
    # Same events, same truth: every method is scored on the same (event, class) rows.
    assert len({frozenset(v) for v in by_method.values()}) == 1
    particles = list(csv.DictReader(open(out / "particles.csv")))
    assert sorted((r["method"], r["entry"]) for r in particles) == \
        sorted((m, e) for m in methods for e in {e for e, _ in by_method["dbscan"]})
    assert "## Particle level" in printed
    assert len({e for e, _ in by_method["dbscan"]}) == 3
    assert all(-1.0 <= float(r["ari"]) <= 1.0 for r in rows)
    assert all(r["forward_time_s"] == "" for r in rows if r["method"] == "dbscan")

    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_events"] == 3 and summary["dbscan"]["n_events"] == 2
    # The shipped clusterer's time per event beside SPINE's, on the same events.
    timing = summary["clusterer_timing"]
    assert timing["n_events"] == 3
    for name in ("shipped", "spine"):
        times = [float(r["cluster_time_s"]) for r in particles
                 if r["method"] == {"shipped": "full_chain",
                                    "spine": "full_chain_spine_clusterer"}[name]]
        assert timing[f"{name}_mean_s"] == pytest.approx(np.mean(times), rel=1e-4)  # CSV digits
        assert timing[f"{name}_median_s"] > 0
    assert timing["ratio"] == pytest.approx(timing["shipped_mean_s"] / timing["spine_mean_s"])
    assert "## Clusterer time per event: shipped vs SPINE 1.4.3" in printed
    assert summary["dbscan_coordinates"]["params"]["eps"] in (1.5, 3.0)
    for method in methods:
        mine = [float(r["particle_ari"]) for r in particles
                if r["method"] == method and r["particle_ari"] != ""]
        assert summary["summaries"][method]["particles"]["ari"] == pytest.approx(
            np.mean(mine), abs=1e-5)
    for method in by_method:
        for name, stats in summary["summaries"][method].items():
            if name == "particles":
                continue
            mine = [float(r["ari"]) for r in rows if r["method"] == method
                    and (name == "all" or r["class"] == name)]
            assert stats["n_rows"] == len(mine)
            assert stats["ari"] == pytest.approx(np.mean(mine), abs=1e-5)
            assert stats["frac_ari_above"] == pytest.approx(np.mean(np.array(mine) > 0.92))

    # The DBSCAN rows are reproducible from the tuned parameters.
    from parsers.dataset import SpiceDataset
    from mlreco_spice.config import load_config
    from mlreco_spice.columns import PARSER_COORD_COLS, PARSER_INSTANCE_COL, PARSER_SEMANTIC_COL

    cfg = load_config("predict", TINY_ARCH)
    label = SpiceDataset(cfg["io"], files=[str(tiny_files[0])])[0]["clust_label"]
    labels = dbscan_by_class(label[:, list(PARSER_COORD_COLS)], label[:, PARSER_SEMANTIC_COL],
                             summary["dbscan"]["params"])
    expected = evaluate_event(label[:, PARSER_INSTANCE_COL], labels, label[:, PARSER_SEMANTIC_COL])
    got = [r for r in rows if r["method"] == "dbscan" and r["entry"] == "0"]
    assert [r["class"] for r in got] == [e["class"] for e in expected]
    for r, e in zip(got, expected):
        assert float(r["ari"]) == pytest.approx(e["ari"], abs=1e-5)

    for key in ("a", "b"):
        check = summary["checks"][key]
        verdicts = [v["pass"] for v in check["classes"].values()]
        assert check["pass"] == (None if None in verdicts else all(verdicts))
    for name, v in summary["checks"]["a"]["classes"].items():
        if v["pass"] is not None:
            assert v["pass"] == (summary["summaries"]["spice_true_semantics"][name]["ari"]
                                 >= summary["summaries"]["dbscan"][name]["ari"])

    curve = list(csv.DictReader(open(out / "curve.csv")))
    assert [(r["iteration"], r["method"]) for r in curve] == \
        [("12", "spice_true_semantics"), ("12", "full_chain"), ("12", "spice_truth_centroids")]
    log_rows = list(csv.DictReader(open(ckpt_dir / "train_log.csv")))
    assert float(curve[0]["train_time_s"]) == pytest.approx(
        sum(float(r["time_s"]) for r in log_rows), rel=1e-4)
    assert curve[0]["n_events"] == "2" and math.isfinite(float(curve[0]["ari_all"]))
    assert (out / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    failures = list(csv.DictReader(open(out / "failures.csv")))
    assert len(failures) == 2 and len(summary["failures"]) == 2
    for r in failures:
        assert Path(r["png"]).stat().st_size > 1000 and Path(r["html"]).stat().st_size > 1000
        assert Path(r["png"]).parent == out / "failures"


def test_no_absorb_rows_only_where_the_chain_has_an_absorb_step(accuracy):
    from mlreco_spice.config import load_config

    accuracy_methods = sys.modules["accuracy_methods"]  # imported by accuracy
    shipped = load_config("predict", ["predict.thresholds=null"])
    assert accuracy_methods.no_absorb_options(shipped) is None  # would repeat full_chain
    every = load_config("predict_all_steps", ["predict.thresholds=null",
                                              "model.modules.spice.clusterer.absorb_p=0.2"])
    options = accuracy_methods.no_absorb_options(every)
    assert options["absorb_p"] is None and options["reconnect_after_absorb"] is False
    assert options["connect_radius_cm"] == every["model"]["modules"]["spice"]["clusterer"][
        "connect_radius_cm"]
