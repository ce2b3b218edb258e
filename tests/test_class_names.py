"""Class names by dataset: ``Track`` where tracks are one class (SPINE's scheme without PDG)."""
import numpy as np
import pytest

from analysis.csv_parts import read_table
from analysis.summary import summarize, summary_markdown, write_summary
from mlreco_spice.cluster import SPICEClusterer
from mlreco_spice.cluster.synthetic import synthetic_event
from mlreco_spice.cluster.tuning import format_threshold_table, tune_thresholds
from mlreco_spice.columns import (CLASS_NAMES, HIP, MIP, SHOWER, class_index, class_indices,
                                  class_names, shown_classes)
from mlreco_spice.metrics import evaluate_event
from parsers.label_schemes import dataset_class_names, single_track

SINGLE = class_names(single_track=True)


def _schema(particles: bool) -> dict:
    label = {"parser": "cluster3d", "cluster_product": "cluster3d_pcluster",
             "semantics_product": "sparse3d_semantics"}
    if particles:
        label["particle_product"] = "particle_pcluster"
    return {"input_data": {"parser": "sparse3d", "products": ["sparse3d_data"]},
            "clust_label": label}


def test_track_is_the_name_of_mip_and_reads_back_as_mip():
    assert class_names() == CLASS_NAMES
    assert SINGLE == ("HIP", "Track", "Shower", "Delta", "Michel")
    assert class_index("Track") == class_index("track") == class_index(" TRACK ") == MIP
    assert class_indices(["Track", "MIP", "Shower"]) == [MIP, SHOWER]
    assert shown_classes(CLASS_NAMES) == (0, 1, 2, 3, 4)
    assert shown_classes(SINGLE) == (1, 2, 3, 4)
    with pytest.raises(ValueError, match="Track"):
        class_index("Tracks")


@pytest.mark.parametrize("labels, particles, fmt, native, single", [
    ("spine", False, "larcv3", None, True),
    ("spine", True, "larcv3", None, False),            # PDG codes split the tracks
    ("pilarnet2020", False, "larcv3", None, False),    # HIP and MIP are in the files
    ("spine", False, "pilarnet_m", None, False),       # the reader splits them itself
    ("spine", False, "auto", ("semantics", "particles"), False),
    ("spine", False, "auto", (), True),                # no files to detect: the config decides
    ("spine", False, "larcv2", None, True),            # larcv2 maps particles, not semantics
])
def test_single_track_rule(labels, particles, fmt, native, single):
    cfg = {"labels": labels, "format": fmt, "files": [], "schema": _schema(particles)}
    assert single_track(cfg, native) is single
    assert dataset_class_names(cfg, native)[MIP] == ("Track" if single else "MIP")


def test_a_sparse_semantic_product_alone_gives_no_split():
    cfg = {"labels": "spine", "format": "larcv3",
           "schema": {"seg_label": {"parser": "sparse3d", "products": ["sparse3d_semantics"]}}}
    assert single_track(cfg)


def test_evaluate_event_names_rows_as_given():
    truth = np.array([0, 0, 1, 1, 2, 2])
    sem = np.array([MIP, MIP, MIP, MIP, SHOWER, SHOWER])
    rows = evaluate_event(truth, truth, sem, min_true_size=1, class_names=SINGLE)
    assert [r["class"] for r in rows] == ["Track", "Shower"]
    assert [r["class"] for r in evaluate_event(truth, truth, sem, 1)] == ["MIP", "Shower"]


def _metric(cls, ari):
    return {"class": cls, "ari": str(ari), "purity": "1.0", "efficiency": "1.0"}


@pytest.mark.parametrize("hip_predicted", [False, True])
def test_single_track_summary_has_no_hip_row(tmp_path, hip_predicted):
    rows = [_metric("Track", 0.9), _metric("Shower", 0.5)]
    seg = [{"true_class": "Track", "pred_class": "Track", "n_voxels": "40"},
           {"true_class": "Shower", "pred_class": "Track", "n_voxels": "10"},
           {"true_class": "Shower", "pred_class": "Shower", "n_voxels": "30"}]
    if hip_predicted:  # weights trained with HIP labels may still predict it
        seg.append({"true_class": "Track", "pred_class": "HIP", "n_voxels": "5"})
    summary = summarize(rows, seg, 0.92, 2, class_names=SINGLE)
    assert [r["class"] for r in summary.rows] == ["Track", "Shower", "all"]
    assert summary.row("Track")["voxel_accuracy"] == pytest.approx(40 / (45 if hip_predicted else 40))
    write_summary(tmp_path, summary)
    confusion = read_table(tmp_path / "confusion_matrix.csv")
    assert [r["true_class"] for r in confusion] == ["Track", "Shower", "Delta", "Michel"]
    assert ("HIP" in confusion[0]) is hip_predicted and "MIP" not in confusion[0]
    assert confusion[1]["Track"] == "10"
    if hip_predicted:
        assert confusion[0]["HIP"] == "5"
    text = summary_markdown(summary)
    assert "| Track |" in text and "MIP" not in text
    assert ("HIP" in text) is hip_predicted
    assert [r["class"] for r in read_table(tmp_path / "summary.csv")] == ["Track", "Shower", "all"]


def test_default_summary_keeps_five_by_five_confusion(tmp_path):
    seg = [{"true_class": "MIP", "pred_class": "MIP", "n_voxels": "4"}]
    write_summary(tmp_path, summarize([_metric("MIP", 1.0)], seg, 0.92, 1))
    confusion = read_table(tmp_path / "confusion_matrix.csv")
    assert [r["true_class"] for r in confusion] == list(CLASS_NAMES)
    assert list(confusion[0]) == ["true_class", *CLASS_NAMES]


def test_tuned_thresholds_name_track_and_leave_hip_out():
    events = [synthetic_event((0, 2, 2, 0, 0), n_voxels=300, spread=2.0, seed=s) for s in range(2)]
    result = tune_thresholds(events, step=0.25, progress=False, class_names=SINGLE)
    for key in ("s0", "p0", "connect_p", "scores"):
        assert list(result[key]) == ["Track", "Shower", "Delta", "Michel"]
    assert result["tuned"] == ["Track", "Shower"]
    table = format_threshold_table(result)
    assert "Track" in table and "MIP" not in table and "HIP" not in table
    # The result reads back as thresholds, Track as MIP.
    clusterer = SPICEClusterer(s0=result["s0"], p0=result["p0"])
    assert clusterer.s0[MIP] == result["s0"]["Track"]
    assert list(clusterer.thresholds(SINGLE)["s0"]) == ["Track", "Shower", "Delta", "Michel"]
    assert list(clusterer.thresholds()["s0"]) == list(CLASS_NAMES)
    assert HIP not in [class_index(n) for n in result["s0"]]


def test_plots_draw_the_track_class(tmp_path):
    from analysis.plots import plot_cluster_count_confusion, plot_metric_distributions

    rows = [{**_metric("Track", 0.9), "n_true": "2", "n_pred": "2"},
            {**_metric("Shower", 0.5), "n_true": "1", "n_pred": "3"}]
    drawn = plot_metric_distributions(rows, tmp_path / "m.png")
    assert drawn["entries"] == {"purity": 2, "efficiency": 2, "ari": 2}
    assert plot_cluster_count_confusion(rows, tmp_path / "c.png")["entries"] == 2


def test_event_tables_and_display_name_the_track_class():
    pytest.importorskip("plotly")
    from analysis.display import event_figure
    from analysis.tables import event_tables
    from test_analysis_tables import make_event

    event = make_event()  # true classes MIP, Shower, Michel, Delta; some voxels predicted HIP
    tables = event_tables(event, 10, SINGLE)
    assert {r["class"] for r in tables["cluster_metrics"]} == {"Track", "Shower", "Michel"}
    assert {r["class"] for r in tables["clusters"]} == {"Track", "Shower", "Michel", "Delta"}
    assert "Track" in {r["true_class"] for r in tables["segmentation"]}
    assert "MIP" not in {r["pred_class"] for r in tables["pred_clusters"]}
    names = [t.name for t in event_figure(event, SINGLE).data]
    assert "Track" in names and "MIP" not in names
    assert "MIP" in [t.name for t in event_figure(event).data]
