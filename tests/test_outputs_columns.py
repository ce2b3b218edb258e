"""CSV columns that say what docs/outputs.md says they say."""
import math

import numpy as np
import pytest

from analysis.tables import geometry
from parsers.event import ImageMeta


def test_extent_is_the_rms_distance_from_the_centre():
    line = np.stack([np.arange(200), np.zeros(200), np.zeros(200)], axis=1)
    geo = geometry(line, ImageMeta.cube(512, 3.0))
    # a straight track of length L: L / sqrt(12)
    assert geo["extent_vox"] == pytest.approx(math.sqrt((200 ** 2 - 1) / 12))
    assert geo["extent_cm"] == pytest.approx(0.3 * geo["extent_vox"])
    angles = np.linspace(0, 2 * np.pi, 400, endpoint=False)
    ring = np.stack([100 + 30 * np.cos(angles), 100 + 30 * np.sin(angles), np.zeros(400)], axis=1)
    assert geometry(ring, None)["extent_vox"] == pytest.approx(30.0)   # not 0
    assert math.isnan(geometry(ring, None)["extent_cm"])


def test_every_csv_column_is_documented(capsys):
    import re
    from pathlib import Path

    from analysis.columns import SUMMARY, TABLES
    from mlreco_spice.cli import main
    from mlreco_spice.predict import FAILED_COLUMNS, SKIP_COLUMNS, TIMING_COLUMNS
    from mlreco_spice.training_log import SkipRecorder

    text = (Path(__file__).resolve().parents[1] / "docs" / "outputs.md").read_text()
    documented = set(re.findall(r"`([a-z_{},]+)`", text))
    # `centre_{x,y,z}_vox` stands for three columns
    for name in list(documented):
        if "{x,y,z}" in name:
            documented |= {name.replace("{x,y,z}", axis) for axis in "xyz"}
    tables = dict(TABLES, summary=SUMMARY, timing=TIMING_COLUMNS, skipped=SKIP_COLUMNS,
                  failed_files=FAILED_COLUMNS, train_skipped=SkipRecorder.COLUMNS)
    for table, columns in tables.items():
        assert f"{table}" in text or table in ("train_skipped", "timing", "skipped")
        missing = [c for c in columns if c not in documented
                   and not c.startswith("particle_")]   # documented as a group
        assert not missing, (table, missing)
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    assert "docs/outputs.md" in capsys.readouterr().out


def test_n_voxels_pred_counts_the_whole_predicted_clusters():
    from mlreco_spice.columns import CLASS_NAMES
    from mlreco_spice.metrics import evaluate_event

    mip, michel = CLASS_NAMES.index("MIP"), CLASS_NAMES.index("Michel")
    # a 30-voxel muon whose cluster also swallowed its 12-voxel Michel;
    # the Michel's own 12 voxels: 8 in the muon's cluster, 4 in a cluster of their own
    truth_sem = np.r_[np.full(30, mip), np.full(12, michel)]
    truth_inst = np.r_[np.zeros(30, int), np.ones(12, int)]
    pred = np.r_[np.zeros(30, int), np.zeros(8, int), np.full(4, 1)]
    rows = {r["class"]: r for r in evaluate_event(truth_inst, pred, truth_sem)}
    assert rows["MIP"]["n_voxels_true"] == 30
    assert rows["MIP"]["n_voxels_pred"] == 38          # the cluster holds 8 Michel voxels too
    assert rows["Michel"]["n_voxels_true"] == 12
    assert rows["Michel"]["n_voxels_pred"] == 38 + 4   # both clusters it appears in, whole
    unclustered = np.r_[np.zeros(30, int), np.full(12, -1)]
    rows = {r["class"]: r for r in evaluate_event(truth_inst, unclustered, truth_sem)}
    assert rows["Michel"]["n_voxels_pred"] == 0 and rows["MIP"]["n_voxels_pred"] == 30


def test_summary_explains_ari_of_a_single_split_instance():
    from analysis.summary import summarize, summary_markdown
    from mlreco_spice.metrics import adjusted_rand_index

    # one true instance, one voxel off: ARI 0, as the summary line says
    assert adjusted_rand_index(np.zeros(50, int), np.r_[np.zeros(49, int), 1]) == 0.0
    rows = [{"class": "Michel", "ari": "0.0", "purity": "1.0", "efficiency": "0.98"}]
    text = summary_markdown(summarize(rows, [], 0.92, 1))
    assert "single true instance has ARI 0" in text and "Michel" in text
