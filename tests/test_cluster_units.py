"""Clusterer distances in cm, converted with the voxel pitch of each event's image meta."""
from pathlib import Path

import numpy as np
import pytest
import torch

from mlreco_spice.cluster import SPICEClusterer, cluster_events
from mlreco_spice.cluster.options import in_units, lengths_in_units, pitch_frame, step_options
from mlreco_spice.cluster.synthetic import synthetic_event
from mlreco_spice.config import ConfigError, load_config
from mlreco_spice.inference import load_thresholds

ROOT = Path(__file__).resolve().parents[1]


def all_steps_block():
    """The clusterer block with every step on, with its thresholds file applied."""
    cfg = load_config(str(ROOT / "chain_configs" / "predict_all_steps.yaml"))
    block = dict(cfg["model"]["modules"]["spice"]["clusterer"])
    block.update(load_thresholds(cfg["predict"]["thresholds"]))
    return block


def event_with_errors(seed):
    """Synthetic outputs on integer voxel coordinates (many pairs exactly 3 voxels
    apart), a fifth of the MIP voxels called HIP so that the absorb step acts."""
    ev = synthetic_event((2, 3, 3, 1, 1), n_voxels=900, spread=2.5, seed=seed)
    coords = np.round(ev["embeddings"] * 20.0)
    wrong = (ev["truth_semantic"] == 1) & (np.arange(900) % 5 == 0)
    semantics = np.where(wrong, 0, ev["truth_semantic"])
    args = [torch.as_tensor(x) for x in (ev["embeddings"], ev["margins"], ev["seediness"],
                                         semantics, np.zeros(900))]
    return args, torch.as_tensor(coords)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_shipped_cm_values_at_3_mm_give_the_old_voxel_labels(seed):
    block = all_steps_block()
    # The shipped values are the old voxel ones at 3 mm: 3 voxels, window 15 voxels.
    assert (block["connect_radius_cm"], block["absorb_radius_cm"], block["bend_window_cm"]) \
        == (0.9, 0.9, 4.5)
    assert block["connect_max_bend"] is not None and block["reconnect_after_absorb"]
    # Old semantics: the same steps in voxel units (a pitch of 1 "cm" per voxel).
    voxels = dict(block, connect_radius_cm=3.0, absorb_radius_cm=3.0, bend_window_cm=15.0)
    args, coords = event_with_errors(seed)
    new = SPICEClusterer(**block)(*args, coords=coords, voxel_cm=(0.3, 0.3, 0.3))
    old = SPICEClusterer(**voxels)(*args, coords=coords, voxel_cm=1.0)
    assert torch.equal(new, old)
    # The steps act on these events, so the equality above can fail.
    off = dict(block, connect_p=None, absorb_p=None)
    assert not torch.equal(new, SPICEClusterer(**off)(*args, coords=coords))


def test_a_cm_radius_covers_twice_the_voxels_at_1_5_mm():
    steps = lengths_in_units(step_options("fast", False, 0, None, 0.9, 0.0, 0.9, 0.1, 25.0,
                                          bend_window_cm=4.5), 0.15)
    assert steps["connect_radius"] == [6.0] * 5 and steps["absorb_radius"] == 6.0
    assert steps["bend_window"] == 30.0
    assert in_units(0.9, 0.3) == 3.0            # not 3.0000000000000004
    # Two pieces of a track with 5 voxels between their ends: apart within 0.9 cm at
    # 3 mm (1.5 cm), joined at 1.5 mm (0.75 cm).
    x = np.concatenate([np.arange(20), np.arange(25, 45)]).astype(float)
    coords = torch.as_tensor(np.stack([x, np.zeros(40), np.zeros(40)], axis=1))
    n = len(x)
    args = [torch.zeros(n, 3), torch.full((n,), 0.5), torch.full((n,), 0.9),
            torch.ones(n, dtype=torch.long), torch.zeros(n)]
    options = dict(s0=0.5, p0=0.5, connect_radius_cm=0.9, connect_p={"MIP": 0.0},
                   coords=coords)
    assert cluster_events(*args, voxel_cm=0.3, **options).unique().numel() == 2
    assert cluster_events(*args, voxel_cm=0.15, **options).unique().numel() == 1


def test_an_anisotropic_pitch_scales_each_axis():
    coords = np.array([[0.0, 0, 0], [2, 0, 0], [0, 0, 2]])
    scaled, unit = pitch_frame(coords, (0.3, 0.3, 0.6))
    assert unit == 1.0 and np.allclose(scaled[1:], [[0.6, 0, 0], [0, 0, 1.2]])
    same, unit = pitch_frame(coords, 0.3)
    assert unit == 0.3 and same is coords
    # Two voxels apart along x (0.6 cm) touch within 0.9 cm; along z (1.2 cm) they do not.
    args = [torch.zeros(3, 3), torch.full((3,), 0.5), torch.tensor([0.9, 0.8, 0.7]),
            torch.ones(3, dtype=torch.long), torch.zeros(3)]
    labels = cluster_events(*args, s0=0.5, p0=0.5, connect_radius_cm=0.9, connect_p=0.0,
                            coords=torch.as_tensor(coords), voxel_cm=(0.3, 0.3, 0.6))
    assert labels[0] == labels[1] != labels[2]
    for bad in ((0.3, 0.0, 0.3), (0.3, 0.3), float("nan")):
        with pytest.raises(ValueError, match="voxel_cm must be"):
            pitch_frame(coords, bad)


def test_the_old_voxel_names_are_refused_with_a_number():
    with pytest.raises(ValueError, match="connect_radius' was in voxels.*connect_radius_cm"):
        SPICEClusterer(connect_radius=3.0, connect_p=0.1)
    with pytest.raises(ValueError, match="absorb_radius' was in voxels.*absorb_radius_cm"):
        cluster_events(torch.zeros(1, 3), torch.ones(1), torch.ones(1), torch.zeros(1),
                       torch.zeros(1), absorb_radius=3.0)
    with pytest.raises(TypeError, match="unexpected clusterer option 'conect_radius_cm'"):
        SPICEClusterer(conect_radius_cm=0.9)
    # None (off) has no unit: it still turns the step off, over a cm value too.
    off = SPICEClusterer(connect_radius_cm=0.9, absorb_radius_cm=0.9, connect_radius=None,
                         absorb_radius=None)
    assert off.steps["connect_radius_cm"] == [None] * 5 and off.steps["absorb_radius_cm"] is None
    key = "model.modules.spice.clusterer"
    with pytest.raises(ConfigError, match=rf"'{key}.connect_radius' was in voxels; it is "
                                          rf"renamed '{key}.connect_radius_cm', in cm"):
        load_config("predict_all_steps", [f"{key}.connect_radius=3.0"])
    # predict_all_steps.yaml sets both radii in cm; the old names at null still switch the
    # steps off.
    cfg = load_config("predict_all_steps", [f"{key}.connect_radius=null", f"{key}.absorb_radius=null"])
    block = cfg["model"]["modules"]["spice"]["clusterer"]
    assert "connect_radius" not in block and "absorb_radius" not in block
    assert block["connect_radius_cm"] is None and block["absorb_radius_cm"] is None
    assert not SPICEClusterer(**block).needs_coords
    with pytest.raises(ConfigError, match="bend_window_cm"):
        load_config("predict_all_steps", [f"{key}.bend_window_cm=wide"])


def test_the_chain_gives_the_spice_stage_the_batch_pitch():
    from types import SimpleNamespace

    from mlreco_spice.chain import Chain, ChainError
    from parsers.event import ImageMeta

    class Net:
        voxel_cm = "unset"

        def set_voxel_cm(self, voxel_cm):
            self.voxel_cm = voxel_cm

    net = Net()
    chain = SimpleNamespace(networks={"spice": net}, stage_cfgs={"spice": {"network": {}}})
    fine, coarse = ImageMeta.cube(64, 1.5), ImageMeta.cube(64, 3.0)
    Chain._sync_image_size(chain, "spice", {"meta": [fine, fine]})
    assert net.voxel_cm == tuple(fine.voxel_cm) == pytest.approx((0.15, 0.15, 0.15))
    Chain._sync_image_size(chain, "spice", {})          # no meta: no stale pitch
    assert net.voxel_cm is None
    with pytest.raises(ChainError, match="different voxel pitches"):
        Chain._sync_image_size(chain, "spice", {"meta": [fine, coarse]})
