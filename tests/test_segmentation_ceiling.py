"""benchmarks/segmentation_ceiling.py: dots labelled by the nearest electromagnetic main piece."""
import csv
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import segmentation_ceiling as ceiling  # noqa: E402

from mlreco_spice.columns import DELTA, HIP, MICHEL, MIP, SHOWER  # noqa: E402

PITCH = (0.3, 0.3, 0.3)


def _event():
    """A Delta and a Shower whose dots sit by their own main piece, a Michel whose dot sits
    nearer the Delta, a MIP with a detached voxel, and an unassigned Shower voxel."""
    rows = []  # (x, y, z, instance, class)
    rows += [(x, 0, 0, 0, DELTA) for x in range(5)] + [(7, 0, 0, 0, DELTA)]
    rows += [(x, 0, 0, 1, SHOWER) for x in range(20, 25)] + [(18, 0, 0, 1, SHOWER)]
    rows += [(x, 10, 0, 2, MICHEL) for x in range(3)] + [(8, 1, 0, 2, MICHEL)]
    rows += [(x, 30, 0, 3, MIP) for x in range(10)] + [(12, 30, 0, 3, MIP)]
    rows += [(30, 0, 0, -1, SHOWER)]
    a = np.array(rows)
    return a[:, :3], a[:, 3], a[:, 4]


def test_event_counts_by_hand():
    coords, instance, semantic = _event()
    result = ceiling.event_counts(coords, instance, semantic, PITCH, ceiling.class_indices(
        ceiling.EM_CLASSES))
    counts = result["counts"]
    # columns: voxels, detached, rule_correct, own_particle
    assert counts[DELTA].tolist() == [6, 1, 1, 1]
    assert counts[SHOWER].tolist() == [7, 2, 2, 1]  # the unassigned voxel is no one's own
    assert counts[MICHEL].tolist() == [4, 1, 0, 0]  # its dot goes to the Delta
    assert counts[MIP].tolist() == [11, 1, 0, 0]  # counted outside its main piece, not ruled
    assert counts[HIP].tolist() == [0, 0, 0, 0]
    by_class = dict(zip(result["dot_class"].tolist(), result["distances"].tolist()))
    assert math.isclose(by_class[DELTA], 0.9)
    assert math.isclose(by_class[MICHEL], 0.3 * math.sqrt(17))
    implied = ceiling.implied_accuracy(counts)
    assert implied[MICHEL] == 0.75 and implied[DELTA] == 1.0


def test_no_em_main_piece_leaves_dots_wrong():
    coords = np.array([[0, 0, 0], [5, 0, 0]])
    result = ceiling.event_counts(coords, np.array([0, 0]), np.array([SHOWER, SHOWER]), PITCH,
                                  [SHOWER])
    # Two one-voxel pieces: the first is the main piece, the other a dot labelled by it.
    assert result["counts"][SHOWER].tolist() == [2, 1, 1, 1]
    result = ceiling.event_counts(coords[:1], np.array([-1]), np.array([DELTA]), PITCH, [DELTA])
    assert result["counts"][DELTA].tolist() == [1, 1, 0, 0] and len(result["dot_class"]) == 0


def test_summary_pools_events_and_bootstraps():
    coords, instance, semantic = _event()
    em = ceiling.class_indices(ceiling.EM_CLASSES)
    results = [ceiling.event_counts(coords, instance, semantic, PITCH, em) for _ in range(3)]
    rows = ceiling.summarize(np.stack([r["counts"] for r in results]),
                             [r["distances"] for r in results],
                             [r["dot_class"] for r in results], em, n_boot=50)
    michel = next(r for r in rows if r["class"] == "Michel")
    assert michel["implied_accuracy"] == 0.75 and michel["implied_se"] == 0.0  # same events
    assert michel["detached_fraction"] == 0.25 and michel["rule_accuracy"] == 0.0
    mip = next(r for r in rows if r["class"] == "MIP")
    assert not mip["ruled"] and math.isclose(mip["detached_fraction"], 1 / 11)
    assert "| Michel | 12 | 0.250 | 0.000 | 0.000 |" in ceiling.markdown(rows, 3, ["x.h5"])


def test_cli_on_simulated_events(tiny_files, tmp_path):
    assert ceiling.main([str(tiny_files[0]), "--events", "2", "--bootstrap", "20",
                         "--out", str(tmp_path), "--no-progress"]) == 0
    with open(tmp_path / "ceiling.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert [r["class"] for r in rows] == ["HIP", "MIP", "Shower", "Delta", "Michel"]
    shower = rows[2]
    assert int(shower["voxels"]) > 0 and 0.0 <= float(shower["implied_accuracy"]) <= 1.0
    assert (tmp_path / "ceiling.md").read_text().startswith("2 events of ")
    assert ceiling.main([str(tmp_path / "missing.h5")]) == 2
