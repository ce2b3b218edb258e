"""Analysis rows of one event: metrics equal mlreco_spice.metrics, matches, geometry."""
import math

import numpy as np
import pytest

from analysis.columns import TABLES
from analysis.tables import event_tables, geometry
from mlreco_spice.inference import EventPrediction
from mlreco_spice.metrics import adjusted_rand_index, efficiency, purity
from parsers.event import ImageMeta, Particle

META = ImageMeta((32, 32, 32), (0.3, 0.3, 0.3), (10.0, -5.0, 0.0))


def make_event(seed=0, entry=0):
    """A synthetic event with known truth and a prediction that errs in known ways.

    True instances (id: class, voxels): 0: MIP 40, 1: MIP 30, 2: Shower 50,
    3: Michel 12, 4: Delta 5 (below min_true_size), plus 8 unlabelled voxels.
    Prediction: 0 correct; 1 split into clusters 1 (20) and 5 (10); 2 and 3
    merged into cluster 2; 4 unclustered; the unlabelled voxels form cluster 6
    (spurious).
    """
    rng = np.random.default_rng(seed)
    sizes = [40, 30, 50, 12, 5, 8]
    linear = rng.choice(32 ** 3, size=sum(sizes), replace=False)
    coords = np.stack(np.unravel_index(linear, (32, 32, 32)), axis=1).astype(np.int64)
    truth = np.repeat([0, 1, 2, 3, 4, -1], sizes)
    semantic = np.repeat([1, 1, 2, 4, 3, -1], sizes)
    pred = truth.copy()
    pred[40:60] = 1
    pred[60:70] = 5
    pred[120:132] = 2
    pred[132:137] = -1
    pred[137:] = 6
    n = len(truth)
    margins = rng.uniform(0.1, 1.0, n).astype(np.float32)
    event = EventPrediction(
        file="f.h5", entry=entry, run=1, subrun=2, event=10 + entry, meta=META, coords=coords,
        features=rng.uniform(0.5, 2.0, (n, 1)), semantics=np.where(pred >= 0, semantic.clip(0), -1),
        clusters=pred, embeddings=rng.normal(size=(n, 3)), margins=margins,
        seediness=rng.uniform(size=n), semantics_pred=np.where(np.arange(n) % 7 == 0, 0, semantic.clip(0)),
        truth_instance=truth, truth_semantic=semantic, forward_time_s=0.5, cluster_time_s=0.25)
    event.extra["true_particles"] = [Particle(id=0, pdg=13, semantic=1, start_cm=(0, 0, 0),
                                              energy_init=250.0, energy_deposit=40.0)]
    return event


def test_metric_rows_equal_metrics_module():
    event = make_event()
    rows = event_tables(event, 10)["cluster_metrics"]
    assert [r["class"] for r in rows] == ["MIP", "Shower", "Michel"]  # Delta below min size
    for row in rows:
        c = {"MIP": 1, "Shower": 2, "Michel": 4}[row["class"]]
        mask = event.truth_semantic == c
        t, p = event.truth_instance[mask], event.clusters[mask]
        assert row["ari"] == pytest.approx(adjusted_rand_index(t, p))
        assert row["purity"] == pytest.approx(purity(t, p))
        assert row["efficiency"] == pytest.approx(efficiency(t, p))
        assert (row["run"], row["subrun"], row["event"], row["entry"]) == (1, 2, 10, 0)
        assert row["forward_time_s"] == 0.5 and row["cluster_time_s"] == 0.25
        assert set(row) == set(TABLES["cluster_metrics"])
    mip = rows[0]
    assert (mip["n_true"], mip["n_pred"], mip["n_voxels_true"]) == (2, 3, 70)
    assert mip["efficiency"] == pytest.approx((1 + 20 / 30) / 2)


def test_instance_rows_matches_and_particles():
    event = make_event()
    rows = {r["true_id"]: r for r in event_tables(event, 10)["clusters"]}
    assert sorted(rows) == [0, 1, 2, 3, 4]
    assert rows[1]["best_pred_id"] == 1 and rows[1]["overlap"] == 20
    assert rows[1]["match_efficiency"] == pytest.approx(20 / 30)
    assert rows[1]["match_purity"] == pytest.approx(1.0)
    assert rows[3]["best_pred_id"] == 2 and rows[3]["match_purity"] == pytest.approx(12 / 62)
    assert rows[4]["best_pred_id"] == -1 and rows[4]["overlap"] == 0
    assert math.isnan(rows[4]["match_purity"]) and rows[4]["evaluated"] == 0
    assert rows[0]["pdg"] == 13 and rows[0]["energy_init_mev"] == 250.0 and rows[1]["pdg"] is None
    assert rows[2]["class"] == "Shower" and rows[2]["size"] == 50
    voxels = event.truth_instance == 2
    assert rows[2]["mean_margin"] == pytest.approx(float(event.margins[voxels].mean()))
    assert rows[2]["energy_sum"] == pytest.approx(float(event.features[voxels, 0].sum()))


def test_pred_rows_show_spurious_clusters():
    rows = {r["pred_id"]: r for r in event_tables(make_event(), 10)["pred_clusters"]}
    assert sorted(rows) == [0, 1, 2, 5, 6]
    assert rows[6]["best_true_id"] == -1 and rows[6]["spurious"] == 1 and rows[6]["size"] == 8
    assert rows[5]["best_true_id"] == 1 and rows[5]["spurious"] == 1  # a fragment of 1
    assert rows[1]["spurious"] == 0 and rows[0]["spurious"] == 0
    assert rows[2]["best_true_id"] == 2 and rows[2]["overlap"] == 50 and rows[2]["size"] == 62
    assert rows[2]["pred_class"] == "Shower"


def test_geometry_centre_and_extent_in_voxels_and_cm():
    coords = np.array([[0, 0, 0], [2, 0, 0], [0, 4, 0]])
    geo = geometry(coords, META)
    centre = coords.mean(axis=0)
    distances = np.linalg.norm(coords - centre, axis=1)
    assert geo["centre_y_vox"] == pytest.approx(4 / 3)
    rms = np.sqrt((distances ** 2).mean())   # radius of gyration (docs/outputs.md)
    assert geo["extent_vox"] == pytest.approx(rms)
    assert geo["extent_cm"] == pytest.approx(rms * 0.3)
    assert geo["centre_x_cm"] == pytest.approx(10.0 + (2 / 3 + 0.5) * 0.3)


def test_event_and_segmentation_rows():
    event = make_event()
    tables = event_tables(event, 10)
    (row,) = tables["events"]
    assert (row["n_voxels"], row["n_true"], row["n_pred"], row["n_unclustered"]) == (145, 5, 5, 5)
    from mlreco_spice.metrics import evaluate_particles

    particle = evaluate_particles(event.truth_instance, event.clusters, 10)
    assert {k: row[f"particle_{k}"] for k in particle} == particle
    assert 0 < particle["ari"] <= 1 and particle["n_true"] > 0
    cells = {(r["true_class"], r["pred_class"]): r["n_voxels"] for r in tables["segmentation"]}
    labelled = event.truth_semantic >= 0
    assert sum(cells.values()) == labelled.sum()
    wrong = labelled & (event.semantics_pred != event.truth_semantic)
    assert sum(v for (t, p), v in cells.items() if t != p) == wrong.sum()


def test_missing_truth_is_an_error():
    event = make_event()
    event.truth_instance = None
    with pytest.raises(ValueError, match="no truth"):
        event_tables(event, 10)
