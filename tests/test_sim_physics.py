"""Physics of the simulator, measured on simulated particles."""
import numpy as np
import pytest

from mlreco_spice.sim import physics
from mlreco_spice.sim.geometry import isotropic
from mlreco_spice.sim.showers import simulate_cascades
from mlreco_spice.sim.tracks import propagate_track

LOW = np.zeros(3)
HIGH = np.full(3, 153.6)
CENTRE = HIGH / 2


def test_mip_mean_dedx_is_2_1_mev_per_cm():
    rng = np.random.default_rng(11)
    deposited, length = 0.0, 0.0
    for direction in isotropic(rng, 12):
        ke = rng.uniform(300.0, 3000.0)
        track = propagate_track(rng, CENTRE, direction, ke, physics.MUON_MASS, LOW, HIGH)
        assert not track.stopped
        deposited += track.energies.sum()
        length += track.length_cm
    assert deposited / length == pytest.approx(2.1, rel=0.15)


@pytest.mark.parametrize("ke", [40.0, 100.0, 200.0])
def test_proton_range_matches_pstar_csda(ke):
    # PSTAR (NIST) argon CSDA ranges: 2.159, 10.92, 36.27 g/cm2 at 40, 100, 200 MeV,
    # i.e. 1.55, 7.82, 25.98 cm at 1.396 g/cm3.
    rng = np.random.default_rng(int(ke))
    # No per-step fluctuation: the bookkeeping alone must give the kinetic energy back.
    track = propagate_track(rng, CENTRE, np.array([0.0, 0.0, 1.0]), ke, physics.PROTON_MASS,
                            LOW, HIGH, landau_width=0.0)
    assert track.stopped
    expected = physics.pstar_range_cm(ke)
    assert track.length_cm == pytest.approx(expected, rel=0.10)
    # The same length measured along the deposit trajectory (step midpoints),
    # so a wrong step bookkeeping cannot pass.
    walked = np.linalg.norm(np.diff(track.points, axis=0), axis=1).sum()
    assert walked == pytest.approx(expected, rel=0.10)
    assert track.energies.sum() == pytest.approx(ke, rel=0.02)


def test_proton_has_bragg_peak():
    rng = np.random.default_rng(3)
    track = propagate_track(rng, CENTRE, np.array([1.0, 0.0, 0.0]), 150.0, physics.PROTON_MASS,
                            LOW, HIGH)
    n = len(track.energies)
    last_cm = track.energies[-10:].sum()          # 10 steps of 0.1 cm
    first_cm = track.energies[: n // 2].sum() / (n // 2) * 10
    assert last_cm > 3.0 * first_cm


def test_michel_energies_never_above_endpoint():
    rng = np.random.default_rng(5)
    energies = physics.sample_michel_energy(rng, 200_000)
    assert energies.max() <= 52.8
    # Michel spectrum peaks at the endpoint: mean x = 0.7.
    assert energies.mean() / 52.8 == pytest.approx(0.7, abs=0.01)


def test_michel_in_events_respect_endpoint():
    from mlreco_spice.sim import simulate_event_with_truth
    from parsers.event import ImageMeta

    meta = ImageMeta.cube(512, 3.0)
    michel = []
    for i in range(10):
        record, truth = simulate_event_with_truth(21, i, meta)
        for particle, item in zip(record.particles["pcluster"], truth):
            if item.kind == "michel":
                michel.append((particle.energy_init, particle.energy_deposit))
    assert michel, "no Michel electron in 10 events"
    for init, deposit in michel:
        assert init <= 52.8 and deposit <= 52.8


def test_mean_photon_conversion_distance_is_9_7_x0():
    rng = np.random.default_rng(9)
    n = 400
    big_low, big_high = np.full(3, -1e4), np.full(3, 1e4)   # no escapes
    result = simulate_cascades(rng, np.zeros((n, 3)), isotropic(rng, n),
                               rng.uniform(50.0, 500.0, n), np.ones(n, dtype=bool),
                               big_low, big_high)
    assert result.primary_pair.all()
    assert result.first_interaction_cm.mean() == pytest.approx(9.0 / 7.0 * 14.0, rel=0.15)


def test_shower_energy_is_conserved_inside_a_large_volume():
    rng = np.random.default_rng(4)
    big_low, big_high = np.full(3, -1e4), np.full(3, 1e4)
    result = simulate_cascades(rng, np.zeros((3, 3)), isotropic(rng, 3),
                               np.array([100.0, 300.0, 30.0]), np.array([False, True, False]),
                               big_low, big_high)
    per_shower = np.bincount(result.owner, result.energies, minlength=3)
    # Only brems photons below kmin are not followed.
    assert per_shower == pytest.approx([100.0, 300.0, 30.0], rel=0.05)


def test_highland_angle_of_a_1_gev_muon():
    # Highland over 14 cm (1 X0) for p ~ 1.1 GeV/c, beta ~ 1: 13.6 / 1100 = 12 mrad.
    theta = physics.highland_theta0(np.array([1000.0]), physics.MUON_MASS, 14.0, 14.0)[0]
    assert theta == pytest.approx(0.0124, rel=0.05)
