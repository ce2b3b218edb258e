"""benchmarks/dot_cues.py: the dots judged from their own cues, against the nearest-piece rule."""
import csv
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import dot_cues  # noqa: E402
import segmentation_ceiling as ceiling  # noqa: E402

from mlreco_spice.columns import DELTA, MICHEL, MIP, SHOWER  # noqa: E402

PITCH = (0.3, 0.3, 0.3)
EM = sorted(ceiling.class_indices(ceiling.EM_CLASSES))  # Shower, Delta, Michel


def _event():
    """A Delta and a Shower with a dot by their own main piece, a Michel whose two touching
    dots sit nearer the Delta, and a MIP; energy 1 MeV per voxel but the Michel dots' 0.25."""
    rows = []  # (x, y, z, instance, class, MeV)
    rows += [(x, 0, 0, 0, DELTA, 1.0) for x in range(5)] + [(7, 0, 0, 0, DELTA, 1.0)]
    rows += [(x, 0, 0, 1, SHOWER, 1.0) for x in range(20, 25)] + [(18, 0, 0, 1, SHOWER, 1.0)]
    rows += [(x, 10, 0, 2, MICHEL, 1.0) for x in range(3)]
    rows += [(8, 2, 0, 2, MICHEL, 0.25), (8, 3, 0, 2, MICHEL, 0.25)]
    rows += [(x, 30, 0, 3, MIP, 1.0) for x in range(10)]
    a = np.array(rows)
    return a[:, :3].astype(int), a[:, 5], a[:, 3].astype(int), a[:, 4].astype(int)


def test_features_by_hand():
    coords, energy, instance, semantic = _event()
    result = dot_cues.dot_features(coords, energy, instance, semantic, PITCH, EM)
    names = dot_cues.feature_names(EM)
    assert names[:3] == ["distance_Shower", "distance_Delta", "distance_Michel"]
    assert len(names) == result["features"].shape[1] == 3 + 6 + 1 + 3
    rows = {tuple(coords[i]): r for i, r in zip(np.flatnonzero(
        ~ceiling.split_dots(coords, instance, semantic, EM)[1] & np.isin(semantic, EM)),
        result["features"])}
    assert sorted(result["dot_class"].tolist()) == [SHOWER, DELTA, MICHEL, MICHEL]
    michel = dict(zip(names, rows[(8, 2, 0)]))
    assert math.isclose(michel["distance_Delta"], 0.3 * math.sqrt(20))  # (4, 0, 0)
    assert math.isclose(michel["distance_Michel"], 0.3 * 10)  # (2, 10, 0)
    assert math.isclose(michel["distance_Shower"], 0.3 * math.sqrt(148))  # (20, 0, 0)
    assert michel["piece_voxels_Delta"] == 5 and michel["piece_voxels_Michel"] == 3
    assert michel["piece_energy_Shower"] == 5.0
    assert math.isclose(michel["distance_track"], 0.3 * 28)  # (8, 30, 0)
    assert michel["dot_energy"] == 0.25
    assert michel["fragment_voxels"] == 2 and michel["fragment_energy"] == 0.5
    delta = dict(zip(names, rows[(7, 0, 0)]))
    assert delta["fragment_voxels"] == 1 and math.isclose(delta["distance_Delta"], 0.9)
    counts = result["counts"]
    assert counts[MICHEL, ceiling.VOXELS] == 5 and counts[MICHEL, ceiling.DETACHED] == 2


def test_rule_from_features_matches_segmentation_ceiling():
    coords, energy, instance, semantic = _event()
    events = [dot_cues.dot_features(coords, energy, instance, semantic, PITCH, EM)]
    x = events[0]["features"][:, dot_cues.group_columns(EM, ["distances"])]
    correct = dot_cues.correct_counts(events, x.argmin(axis=1), EM)
    expected = ceiling.event_counts(coords, instance, semantic, PITCH, EM)["counts"]
    assert correct[0].tolist() == expected[:, ceiling.RULE_CORRECT].tolist()
    assert correct[0, MICHEL] == 0 and correct[0, DELTA] == 1
    # Not judged (-1) is wrong, whatever the class.
    assert dot_cues.correct_counts(events, np.full(4, -1), EM).sum() == 0


def test_group_columns_partition_the_features():
    groups = list(dot_cues.FEATURE_GROUPS)
    columns = [dot_cues.group_columns(EM, [g]) for g in groups]
    assert sum(columns, []) == list(range(len(dot_cues.feature_names(EM))))
    assert columns[groups.index("tracks")] == [9]


def test_offsets_lift_the_smallest_class():
    """Two Michel dots the judge calls Shower with a small margin: an offset recovers them
    without losing the Shower dot, whose margin is larger."""
    counts = np.zeros((5, len(ceiling.COUNTS)), dtype=np.int64)
    counts[SHOWER, :2] = (10, 1)
    counts[MICHEL, :2] = (4, 2)
    events = [{"dot_class": np.array([SHOWER, MICHEL, MICHEL]), "counts": counts}]
    log_proba = np.log(np.array([[0.9, 0.05, 0.05], [0.5, 0.1, 0.4], [0.45, 0.1, 0.45]]))
    offsets = dot_cues.choose_offsets(log_proba, events, EM, grid=np.linspace(-2, 2, 9))
    judged = (log_proba + offsets).argmax(axis=1)
    assert offsets[0] == 0.0 and judged.tolist() == [0, 2, 2]
    assert dot_cues.choose_offsets(log_proba, events, EM, grid=[0.0]).tolist() == [0, 0, 0]
    # A flat objective (every offset of the grid judges alike) keeps no offset.
    sure = np.log(np.array([[0.98, 0.01, 0.01]] * 3))
    assert dot_cues.choose_offsets(sure, events, EM, grid=[-1.0, 0.0, 1.0]).tolist() == [0, 0, 0]


def test_judge_learns_a_separable_cue():
    rng = np.random.default_rng(1)
    n = 3000
    target = rng.integers(0, 3, n)
    features = rng.uniform(0, 50, (n, len(dot_cues.feature_names(EM))))
    features[np.arange(n), target] = rng.uniform(0, 1, n)  # nearest piece is the own class
    judge = dot_cues.DotJudge(dot_cues.group_columns(EM, ["distances"]), 3, seed=0)
    judge.fit(features[:2000], target[:2000], epochs=20)
    assert (judge.predict(features[2000:]) == target[2000:]).mean() > 0.95
    judge.offsets = np.array([0.0, -50.0, -50.0])  # offsets act on the judgement
    assert (judge.predict(features[2000:]) == 0).all()


def test_cli_on_simulated_events(tiny_files, tmp_path):
    assert dot_cues.main(["--train-file", str(tiny_files[0]), "--train-events", "4",
                          "--test-file", str(tiny_files[1]), "--test-events", "2",
                          "--epochs", "1", "--bootstrap", "10", "--out", str(tmp_path),
                          "--no-progress"]) == 0
    with open(tmp_path / "dot_cues.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert [r["judge"] for r in rows] == ["nearest main piece (rule)", "MLP: distances",
                                          "MLP: distances + pieces",
                                          "MLP: distances + pieces + tracks",
                                          "MLP: distances + pieces + tracks + dot"]
    # The rule here and segmentation_ceiling's on the same events agree.
    ceiling_rows = ceiling.run(ceiling.parse_args([str(tiny_files[1]), "--events", "2",
                                                   "--bootstrap", "0", "--no-progress"]))
    for name in ceiling.EM_CLASSES:
        expected = next(r for r in ceiling_rows if r["class"] == name)["implied_accuracy"]
        assert np.isclose(float(rows[0][f"implied_{name}"] or "nan"), expected, equal_nan=True)
    assert (tmp_path / "dot_cues.md").read_text().startswith("2 test events of tiny_1.h5")
    assert dot_cues.main(["--train-file", str(tmp_path / "missing.h5"),
                          "--test-file", str(tiny_files[1])]) == 2
