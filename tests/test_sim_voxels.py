"""Voxelisation by exact traversal: thin tracks holding dE/dx times the path in each voxel."""
import dataclasses

import numpy as np
import pytest

from mlreco_spice.columns import MIP
from mlreco_spice.sim import SimSettings, physics
from mlreco_spice.sim.morphology import neighbour_counts, voxels_per_length
from mlreco_spice.sim.products import voxelise
from mlreco_spice.sim.showers import CascadeSettings
from mlreco_spice.sim.tracks import propagate_track
from mlreco_spice.sim.traversal import deposit_segments, traverse_segments
from parsers.event import ImageMeta

META = ImageMeta.cube(512, 3.0)
LOW = np.zeros(3)
HIGH = np.asarray(META.length_cm)


def test_traversal_shares_a_segment_by_length():
    # From x = 0.5 to 2.5 voxels along x: half a voxel, a whole one, half a voxel.
    seg, vox, frac = traverse_segments(np.array([[0.5, 0.2, 0.2]]), np.array([[2.5, 0.2, 0.2]]))
    assert seg.tolist() == [0, 0, 0]
    assert vox.tolist() == [[0, 0, 0], [1, 0, 0], [2, 0, 0]]
    assert frac == pytest.approx([0.25, 0.5, 0.25])
    # A point deposit (zero length) stays in its voxel; a diagonal crossing through an
    # edge visits no voxel with zero length.
    seg, vox, frac = traverse_segments(np.array([[3.2, 4.7, 5.1], [0.5, 0.5, 0.5]]),
                                       np.array([[3.2, 4.7, 5.1], [1.5, 1.5, 0.5]]))
    assert vox.tolist() == [[3, 4, 5], [0, 0, 0], [1, 1, 0]]
    assert frac == pytest.approx([1.0, 0.5, 0.5])


def test_deposit_segments_merges_consecutive_crossings_and_keeps_energy():
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 20, (300, 3))
    b = a + rng.normal(0, 0.4, (300, 3))
    energy = rng.uniform(0.1, 1.0, 300)
    owner = np.repeat(np.arange(3), 100)
    out_owner, vox, dep = deposit_segments(a, b, energy, owner)
    assert np.bincount(out_owner, dep) == pytest.approx(np.bincount(owner, energy))
    same = (out_owner[1:] == out_owner[:-1]) & np.all(vox[1:] == vox[:-1], axis=1)
    assert not same.any()


def _straight_mip(direction):
    """A 100 GeV muon from inside the image to its wall, as simulated (scattering and
    fluctuations included; at 100 GeV it strays less than a tenth of a voxel)."""
    rng = np.random.default_rng(5)
    direction = np.asarray(direction, float) / np.linalg.norm(direction)
    start = HIGH / 2 - 60.0 * direction + 0.013  # off the voxel edges
    track = propagate_track(rng, start, direction, 1e5, physics.MUON_MASS, LOW, HIGH)
    event = voxelise(META, [track.points], [track.vectors], [track.energies], [MIP])
    return track, event


@pytest.mark.parametrize("direction", [(1, 0, 0), (1, 1, 0), (1, 1, 1)],
                         ids=["axis", "face-diagonal", "body-diagonal"])
def test_straight_mip_is_one_to_two_voxels_per_voxel_of_length(direction):
    track, event = _straight_mip(direction)
    coords = event.clusters.coords[0]
    assert track.length_cm > 100.0
    assert 1.0 <= voxels_per_length(coords) <= 2.0
    # A 26-connected line: every voxel touches the next one.
    assert neighbour_counts(coords).min() >= 1
    # The energy of each voxel is dE/dx times the path inside it: all of it is there.
    restricted = physics.bethe_dedx(np.array([1e5]), physics.MUON_MASS,
                                    SimSettings().delta_cut_mev)[0]
    assert event.data.values.sum() == pytest.approx(restricted * track.length_cm, rel=0.05)
    # All of the steps' energy is in the voxels (the last step's part beyond the wall aside).
    assert event.data.values.sum() == pytest.approx(track.energies.sum(), rel=1e-3)


def test_no_spreading_by_default():
    assert SimSettings().smear_cm == 0.0
    assert not any("smear" in f.name for f in dataclasses.fields(CascadeSettings))
    # Behaviour: an axis-aligned track stays in one row of voxels unless spreading is asked for.
    _, event = _straight_mip((1, 0, 0))
    assert np.unique(event.data.coords[:, 1:], axis=0).shape[0] <= 3
    from mlreco_spice.sim import simulate_event

    thin = simulate_event(4, 0, ImageMeta.cube(128, 3.0))
    fat = simulate_event(4, 0, ImageMeta.cube(128, 3.0), settings=SimSettings(smear_cm=0.3))
    assert fat.sparse3d["data"].coords.shape[0] > 1.5 * thin.sparse3d["data"].coords.shape[0]


def test_energy_per_voxel_pairs_data_and_semantics_by_voxel_not_by_position():
    from mlreco_spice.sim.morphology import MorphologyAccumulator
    from parsers.event import ClusterProduct, EventRecord, SparseProduct

    meta = ImageMeta.cube(8, 3.0)
    coords = np.array([[0, 0, 0], [0, 0, 1], [3, 3, 3]])
    # The data product lists the voxels in another order and holds one more voxel.
    data = SparseProduct(np.array([[3, 3, 3], [5, 5, 5], [0, 0, 1], [0, 0, 0]]),
                         np.array([9.0, 7.0, 0.2, 0.4], np.float32), meta)
    sem = SparseProduct(coords, np.array([MIP, MIP, 2], np.float32), meta)
    record = EventRecord(sparse3d={"data": data, "semantics": sem},
                         cluster3d={"pcluster": ClusterProduct([], [], meta)})
    acc = MorphologyAccumulator()
    acc.add(record, np.zeros(0, np.int64), "data", "semantics", "pcluster")
    result = acc.result()
    assert result["MIP"]["energy_median"] == pytest.approx(0.3)
    assert result["Shower"]["energy_median"] == pytest.approx(9.0)
