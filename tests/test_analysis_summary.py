"""Summary aggregates (Table III, ARI threshold fraction, segmentation accuracy)."""
import math

import numpy as np
import pytest

from analysis.csv_parts import read_table
from analysis.summary import summarize, summary_markdown, write_summary


def metric(cls, ari, pur, eff):
    return {"class": cls, "ari": str(ari), "purity": str(pur), "efficiency": str(eff)}


ROWS = [metric("MIP", 0.95, 1.0, 0.9), metric("MIP", 0.5, 0.8, 0.7), metric("MIP", 0.93, 0.9, 1.0),
        metric("Shower", 0.92, 0.6, 0.5), metric("Shower", 0.2, 0.4, 0.9)]
SEG = [{"true_class": "MIP", "pred_class": "MIP", "n_voxels": "90"},
       {"true_class": "MIP", "pred_class": "HIP", "n_voxels": "10"},
       {"true_class": "Shower", "pred_class": "Shower", "n_voxels": "30"},
       {"true_class": "Shower", "pred_class": "MIP", "n_voxels": "20"},
       {"true_class": "MIP", "pred_class": "MIP", "n_voxels": "50"}]


def test_table_three_means_and_threshold_fraction():
    summary = summarize(ROWS, SEG, ari_threshold=0.92, n_events=3)
    mip, shower, total = summary.row("MIP"), summary.row("Shower"), summary.row("all")
    assert mip["n_rows"] == 3 and mip["purity"] == pytest.approx(0.9)
    assert mip["efficiency"] == pytest.approx(np.mean([0.9, 0.7, 1.0]))
    assert mip["ari"] == pytest.approx(np.mean([0.95, 0.5, 0.93]))
    assert mip["frac_ari_above"] == pytest.approx(2 / 3)
    assert shower["frac_ari_above"] == 0.0  # 0.92 is not above 0.92
    assert total["n_rows"] == 5 and total["frac_ari_above"] == pytest.approx(2 / 5)
    assert [r["class"] for r in summary.rows] == ["MIP", "Shower", "all"]


def test_segmentation_confusion_and_accuracy():
    summary = summarize(ROWS, SEG, ari_threshold=0.92, n_events=3)
    assert summary.confusion[1, 1] == 140 and summary.confusion[1, 0] == 10
    assert summary.row("MIP")["voxel_accuracy"] == pytest.approx(140 / 150)
    assert summary.row("Shower")["voxel_accuracy"] == pytest.approx(30 / 50)
    assert summary.row("all")["voxel_accuracy"] == pytest.approx(170 / 200)


def test_without_segmentation_stage_and_written_files(tmp_path):
    summary = summarize(ROWS, [], ari_threshold=0.5, n_events=3)
    assert summary.confusion is None and math.isnan(summary.row("MIP")["voxel_accuracy"])
    text = summary_markdown(summary)
    assert "no semantic stage" in text and "| MIP | 3 | 0.9000 |" in text
    paths = write_summary(tmp_path, summary)
    assert [p.name for p in paths] == ["summary.csv", "summary.md"]
    rows = read_table(tmp_path / "summary.csv")
    assert [r["class"] for r in rows] == ["MIP", "Shower", "all"]
    assert float(rows[2]["frac_ari_above"]) == pytest.approx(3 / 5)
    write_summary(tmp_path, summarize(ROWS, SEG, 0.92, 3))
    confusion = read_table(tmp_path / "confusion_matrix.csv")
    assert confusion[1]["true_class"] == "MIP" and confusion[1]["HIP"] == "10"


def test_particle_row_from_event_rows(tmp_path):
    from analysis.summary import PARTICLES

    events = [{"particle_n_true": "3", "particle_n_pred": "3", "particle_ari": "1.0",
               "particle_purity": "1.0", "particle_efficiency": "1.0"},
              {"particle_n_true": "3", "particle_n_pred": "2", "particle_ari": "0.5",
               "particle_purity": "0.8", "particle_efficiency": "1.0"},
              {"particle_n_true": "0", "particle_n_pred": "0", "particle_ari": "",
               "particle_purity": "", "particle_efficiency": ""}]  # nothing scored
    summary = summarize(ROWS, SEG, ari_threshold=0.92, n_events=3, event_rows=events)
    row = summary.row(PARTICLES)
    assert row["n_rows"] == 2 and row["ari"] == pytest.approx(0.75)
    assert row["purity"] == pytest.approx(0.9) and row["frac_ari_above"] == 0.5
    assert summary.row("all")["n_rows"] == 5  # the class rows are unchanged
    text = summary_markdown(summary)
    assert "## Particles" in text and "| events | 2 | 0.9000 | 1.0000 | 0.7500 | 0.5000 |" in text
    write_summary(tmp_path, summary)
    assert [r["class"] for r in read_table(tmp_path / "summary.csv")][-1] == PARTICLES
