"""benchmarks/paired_chains.py: two accuracy.py folders compared event by event."""
import csv
import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import paired_chains  # noqa: E402


def _folder(path, shower, particle, method="full_chain", order=None, sizes=None):
    """events.csv and particles.csv of an accuracy.py run: Shower ARI and particle ARI per
    event (entries 0..n-1 of test.h5), plus a DBSCAN row the comparison must ignore."""
    path.mkdir()
    entries = order or list(range(len(shower)))
    with open(path / "events.csv", "w", newline="") as stream:
        w = csv.DictWriter(stream, ["method", "file", "entry", "class", "ari"])
        w.writeheader()
        for e in entries:
            w.writerow({"method": method, "file": "/a/test.h5", "entry": e, "class": "Shower",
                        "ari": shower[e]})
            w.writerow({"method": "dbscan", "file": "/a/test.h5", "entry": e, "class": "Shower",
                        "ari": 0.0})
    with open(path / "particles.csv", "w", newline="") as stream:
        w = csv.DictWriter(stream, ["method", "file", "entry", "particle_ari",
                                    "particle_n_voxels_true"])
        w.writeheader()
        for e in entries:
            w.writerow({"method": method, "file": "/a/test.h5", "entry": e,
                        "particle_ari": particle[e],
                        "particle_n_voxels_true": (sizes or [100] * len(particle))[e]})
    return path


def test_paired_changes_match_the_per_event_differences(tmp_path, capsys):
    old = _folder(tmp_path / "old", [0.5, 0.6, 0.7, 0.8], [0.9, 0.9, 0.9, 0.9])
    # Stored in another order, one Shower score missing (nan): paired on the rest.
    new = _folder(tmp_path / "new", [0.6, "nan", 0.9, 0.8], [0.8, 0.9, 0.8, 0.9], order=[3, 2, 1, 0])
    changes = paired_chains.compare(new, old, "full_chain")
    shower, mean = changes["Shower"]
    assert shower.n == 3 and shower.mean == pytest.approx((0.1 + 0.2 + 0.0) / 3)
    assert shower.se == pytest.approx(0.1 / math.sqrt(3))   # differences 0.1, 0.2, 0.0
    assert mean == pytest.approx(0.65)                      # the reference's own mean
    particle, _ = changes[paired_chains.PARTICLE]
    assert particle.n == 4 and particle.mean == pytest.approx(-0.05)
    assert changes["Michel"][0].n == 0                      # no rows: n/a, not zero
    assert paired_chains.main([str(new), str(old)]) == 0
    table = (new / "paired.md").read_text()
    assert "| particle level | 0.9000 | -0.0500 ± 0.0289 | 4 |" in table
    assert "| Michel | nan | n/a | 0 |" in table


def test_missing_folders_methods_and_events_are_named(tmp_path, capsys):
    old = _folder(tmp_path / "old", [0.5, 0.6], [0.9, 0.9])
    assert paired_chains.main([str(tmp_path / "nowhere"), str(old)]) == 1
    assert "not found" in capsys.readouterr().err
    assert paired_chains.main([str(old), str(old), "--method", "full_chain_no_absorb"]) == 1
    assert "no rows of method 'full_chain_no_absorb'" in capsys.readouterr().err
    other = tmp_path / "other"
    _folder(other, [0.5], [0.9])
    for name in ("events.csv", "particles.csv"):   # another file's events
        text = (other / name).read_text().replace("/a/test.h5", "/a/select.h5")
        (other / name).write_text(text)
    assert paired_chains.main([str(other), str(old)]) == 1
    assert "share no event" in capsys.readouterr().err
    # Same names and entries, other events (a file simulated again differently): refused.
    again = _folder(tmp_path / "again", [0.5, 0.6], [0.9, 0.9], sizes=[100, 101])
    assert paired_chains.main([str(again), str(old)]) == 1
    assert "1 events have the same file name and entry but other labelled voxels" \
        in capsys.readouterr().err
