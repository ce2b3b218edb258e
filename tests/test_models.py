"""Networks: shapes, value ranges, class ownership, normalisation, freezing, folding."""
from __future__ import annotations

import pytest
import torch

from mlreco_spice.backend import minkowski_available

pytestmark = pytest.mark.skipif(not minkowski_available(), reason="MinkowskiEngine not installed")

from mlreco_spice.columns import HIP, MICHEL, MIP, SHOWER  # noqa: E402
from mlreco_spice.config import ConfigError  # noqa: E402
from mlreco_spice.errors import UserError  # noqa: E402
from mlreco_spice.registry import MODELS  # noqa: E402

SMALL = {"filters": 4, "depth": 3, "reps": 1}


def spice_cfg(**network):
    network.setdefault("uresnet", dict(SMALL))
    return {"network": network, "clusterer": {"enabled": False}}


def random_event(n, size=64, events=1, seed=0, features=1):
    gen = torch.Generator().manual_seed(seed)
    coords = torch.randint(0, size, (n, 3), generator=gen).float()
    batch = torch.randint(0, events, (n, 1), generator=gen).float()
    return torch.cat([batch, coords, torch.rand(n, features, generator=gen)], 1)


def line(start, direction, length):
    steps = torch.arange(length, dtype=torch.float32)[:, None]
    return torch.tensor(start, dtype=torch.float32) + steps * torch.tensor(direction).float()


def track_data(points, batch=0):
    n = len(points)
    return torch.cat([torch.full((n, 1), float(batch)), points, torch.ones(n, 1)], 1)


def test_registry_pairs_networks_with_losses():
    from mlreco_spice.losses import SegmentationLoss, SPICELoss
    from mlreco_spice.models import SPICE, UResNetSegmentation

    assert MODELS.get("spice") == (SPICE, SPICELoss)
    assert MODELS.get("uresnet") == (UResNetSegmentation, SegmentationLoss)


@pytest.mark.parametrize("n,events,coord_conv", [(1, 1, True), (7, 1, False), (400, 3, True)])
def test_spice_output_shapes_and_ranges(n, events, coord_conv):
    from mlreco_spice.models import SPICE

    torch.manual_seed(0)
    model = SPICE(spice_cfg(coord_conv=coord_conv, image_size=64, norm_length=64))
    data = random_event(n, events=events)
    out = model(data)
    assert out["embeddings"].shape == (n, 3)
    assert out["margins"].shape == (n, 1) and out["seediness"].shape == (n, 1)
    assert torch.equal(out["index"], torch.arange(n))
    normed = (data[:, 1:4] - 32.0) / 32.0
    offsets = out["embeddings"] - normed
    assert offsets.abs().max() < 1.0
    assert ((out["margins"] > 0) & (out["margins"] < 2)).all()
    assert ((out["seediness"] > 0) & (out["seediness"] < 1)).all()


def test_duplicate_voxels_get_identical_outputs():
    from mlreco_spice.models import SPICE

    model = SPICE(spice_cfg()).eval()
    data = random_event(30)
    data = torch.cat([data, data[:5]])
    out = model(data)
    assert out["embeddings"].shape == (35, 3)
    assert torch.equal(out["embeddings"][:5], out["embeddings"][30:])


def test_class_ownership_filters_rows_and_empty_events_work():
    from mlreco_spice.losses import SPICELoss
    from mlreco_spice.models import SPICE

    cfg = spice_cfg(classes=["hip", "MIP"])
    model = SPICE(cfg)
    data = random_event(50, events=2)
    semantics = torch.tensor([HIP, MIP, SHOWER, MICHEL, SHOWER] * 10)
    out = model(data, semantics)
    assert torch.equal(out["index"], torch.nonzero(semantics <= MIP).flatten())
    assert out["embeddings"].shape == (20, 3)
    # An event with no voxel of an owned class: empty outputs, loss still differentiable.
    empty = model(data, torch.full((50,), SHOWER))
    assert empty["embeddings"].shape == (0, 3) and empty["index"].numel() == 0
    label = torch.cat([data[:, :4], torch.zeros(50, 1), torch.full((50, 1), float(SHOWER))], 1)
    loss = SPICELoss(cfg)(empty, label)
    assert loss["loss"].item() == 0.0
    loss["loss"].backward()


def test_config_errors_are_clear():
    from mlreco_spice.models import SPICE, UResNetSegmentation

    with pytest.raises(ConfigError, match="unknown semantic class 'Muon'"):
        SPICE(spice_cfg(classes=["HIP", "Muon"]))
    model = SPICE(spice_cfg(num_input=1))
    with pytest.raises(UserError, match="2 feature column.*num_input is 1"):
        model(random_event(10, features=2))
    two = SPICE(spice_cfg(num_input=2))
    assert two(random_event(10, features=2))["embeddings"].shape == (10, 3)
    with pytest.raises(UserError, match="uresnet: the input has 0 feature"):
        UResNetSegmentation({"network": {"uresnet": SMALL}})(random_event(5)[:, :4])


def test_norm_length_is_stored_with_the_weights():
    from mlreco_spice.models import SPICE

    trained = SPICE(spice_cfg(norm_length=256))
    fresh = SPICE(spice_cfg())
    assert fresh.norm_length.item() == 512.0
    fresh.load_state_dict(trained.state_dict())
    assert fresh.norm_length.item() == 256.0
    data = random_event(20, size=1024)
    fresh.set_image_size(1024)
    out = fresh.eval()(data)
    assert torch.isfinite(out["embeddings"]).all()
    # Coordinates beyond ±1 when the image is larger than norm_length.
    normed = (data[:, 1:4] - 512.0) / 128.0
    assert normed.abs().max() > 1 and (out["embeddings"] - normed).abs().max() < 1


def _crop(data, offset, size):
    inside = ((data[:, 1:4] >= offset) & (data[:, 1:4] < offset + size)).all(1)
    cropped = data[inside].clone()
    cropped[:, 1:4] -= offset
    return inside, cropped


@pytest.mark.parametrize("coord_conv", [True, False])
def test_crop_and_full_image_agree_for_an_isolated_track(coord_conv):
    """A track inside a crop gets the same prediction on the crop and on the full image.

    The full image (512) also holds a second track far outside the crop (beyond
    the receptive field). The crop (256) is shifted by 128, a multiple of
    2**depth so that the down-sampling grid is unchanged, and is centred on the
    full image's centre, so the normalised coordinates of every voxel are equal.
    Then the outputs agree exactly. Without coord_conv the network is translation
    equivariant, so an off-centre crop also gives the same offsets
    (embeddings - normalised coordinates), and embeddings shifted by the
    constant coordinate shift.
    """
    from mlreco_spice.models import SPICE

    torch.manual_seed(1)
    model = SPICE(spice_cfg(coord_conv=coord_conv, image_size=512)).train()
    model(random_event(300, size=512, seed=3))  # move BN statistics away from 0/1
    model.eval()
    full = torch.cat([track_data(line([200, 210, 220], [1, 1, 0], 40)),
                      track_data(line([470, 480, 20], [0, -1, 1], 40))])
    out_full = model(full)

    inside, crop = _crop(full, 128, 256)
    assert inside.sum() == 40
    model.set_image_size(256)
    out_crop = model(crop)
    for key in ("embeddings", "margins", "seediness"):
        assert torch.allclose(out_crop[key], out_full[key][inside], atol=1e-5), key

    inside, crop = _crop(full, 64, 256)  # off-centre: normalised coordinates shift by 64/256
    out_crop = model(crop)
    offsets_full = out_full["embeddings"][inside] - (full[inside, 1:4] - 256) / 256
    offsets_crop = out_crop["embeddings"] - (crop[:, 1:4] - 128) / 256
    if coord_conv:  # the coordinate features differ, so the offsets do too
        assert not torch.allclose(offsets_crop, offsets_full, atol=1e-4)
    else:
        assert torch.allclose(offsets_crop, offsets_full, atol=1e-5)
        shift = out_crop["embeddings"] - out_full["embeddings"][inside]
        assert torch.allclose(shift, torch.full_like(shift, 0.25), atol=1e-5)


def test_seediness_freeze_stops_gradients_and_statistics():
    from mlreco_spice.losses import SPICELoss
    from mlreco_spice.models import SPICE

    model = SPICE(spice_cfg())
    model.set_seediness_frozen(True)
    model.train()
    bn = model.seediness_head[0].norm
    before = bn.running_mean.clone()
    data = random_event(60, events=2)
    label = torch.cat([data[:, :4], (data[:, 1:2] > 32).float(), torch.zeros(60, 1)], 1)
    out = model(data)
    SPICELoss(spice_cfg())(out, label)["loss"].backward()
    assert all(p.grad is None for p in model.seediness_parameters())
    assert model.encoder.input_conv.kernel.grad is not None
    assert torch.equal(bn.running_mean, before) and not bn.training
    seed_ids = {id(p) for p in model.seediness_parameters()}
    assert all(p.requires_grad for p in model.parameters() if id(p) not in seed_ids)
    model.set_seediness_frozen(False)
    assert bn.training and all(p.requires_grad for p in model.seediness_parameters())


def test_frozen_seediness_branch_runs_without_autograd():
    """No backward pass through a frozen seediness branch (issue 17).

    Before, the decoder ran with autograd on (its input comes from the trained
    encoder) and a zero-weighted term kept it in the loss graph, so backward
    traversed it for zero gradients.
    """
    from mlreco_spice.losses import SPICELoss
    from mlreco_spice.models import SPICE

    torch.manual_seed(0)
    model = SPICE(spice_cfg())
    loss = SPICELoss(spice_cfg())
    model.set_seediness_frozen(True)
    loss.set_seediness_frozen(True)
    model.train()
    grad_mode = []
    for module in (model.seediness_decoder, model.seediness_head):
        module.register_forward_hook(lambda *_: grad_mode.append(torch.is_grad_enabled()))
    data = random_event(60, events=2)
    label = torch.cat([data[:, :4], (data[:, 1:2] > 32).float(), torch.zeros(60, 1)], 1)
    out = model(data)
    assert grad_mode == [False, False]  # the branch ran with autograd off
    assert out["seediness"].grad_fn is None and not out["seediness"].requires_grad
    assert out["embeddings"].requires_grad
    terms = loss(out, label)
    assert torch.isfinite(terms["seed"])  # still computed and logged
    terms["loss"].backward()
    assert all(p.grad is None for p in model.seediness_parameters())
    assert model.encoder.input_conv.kernel.grad is not None
    # Released: the branch records a graph again and receives gradients.
    model.set_seediness_frozen(False)
    loss.set_seediness_frozen(False)
    model.zero_grad(set_to_none=True)
    out = model(data)
    assert grad_mode[-2:] == [True, True] and out["seediness"].requires_grad
    loss(out, label)["loss"].backward()
    assert all(p.grad is not None for p in model.seediness_parameters())


def test_frozen_chain_stage_records_no_graph():
    from mlreco_spice.chain import Chain
    from mlreco_spice.config import fill_defaults

    cfg = fill_defaults({"model": {"stages": ["uresnet", "spice"], "modules": {
        "uresnet": {"network": {"uresnet": dict(SMALL)}, "freeze": True,
                    "network_input": {"data": "data"}, "loss_input": {"seg_label": "seg_label"}},
        "spice": {**spice_cfg(), "use_true_semantics": True,
                  "network_input": {"data": "data", "semantics": "uresnet.semantics"},
                  "loss_input": {"clust_label": "clust_label"}}}}})
    chain = Chain(cfg["model"]).train()
    data = random_event(80, events=2)
    label = torch.cat([data[:, :4], (data[:, 1:2] > 32).float(), torch.zeros(80, 1)], 1)
    batch = {"data": data, "clust_label": label, "seg_label": label[:, [0, 1, 2, 3, 5]]}
    outputs = chain(batch)
    assert all(not t.requires_grad for t in outputs["uresnet"].values()
               if isinstance(t, torch.Tensor))
    terms = chain.compute_loss(batch, outputs)
    assert "uresnet.loss" not in terms
    terms["loss"].backward()
    assert all(p.grad is None for p in chain.networks["uresnet"].parameters())


def test_fold_batchnorm_preserves_eval_outputs():
    from mlreco_spice.models import SPICE, fold_batchnorm

    torch.manual_seed(0)
    model = SPICE(spice_cfg()).train()
    for seed in range(3):
        model(random_event(200, seed=seed))
    model.eval()
    data = random_event(150, seed=9)
    expected = model(data)
    # MinkowskiEngine modules cannot be deep-copied: copy through the state dict.
    folded = SPICE(spice_cfg())
    folded.load_state_dict(model.state_dict())
    fold_batchnorm(folded)
    got = folded(data)
    for key in ("embeddings", "margins", "seediness"):
        assert torch.allclose(got[key], expected[key], atol=1e-5), key
    assert folded.encoder.blocks[0][0].conv1.bias is not None


def test_uresnet_segmentation_outputs_and_loss():
    from mlreco_spice.losses import SegmentationLoss
    from mlreco_spice.models import UResNetSegmentation

    cfg = {"network": {"uresnet": SMALL}}
    model = UResNetSegmentation(cfg)
    for n in (1, 90):
        data = random_event(n, events=2)
        out = model(data)
        assert out["logits"].shape == (n, 5)
        assert torch.equal(out["semantics"], out["logits"].argmax(1))
    label = torch.cat([data[:, :4], torch.randint(-1, 5, (90, 1)).float()], 1)
    loss = SegmentationLoss(cfg)(out, label)
    loss["loss"].backward()
    assert 0 <= loss["accuracy"].item() <= 1
    assert model.encoder.input_conv.kernel.grad.abs().sum() > 0


def test_uresnet_logit_offsets_move_the_argmax_only():
    from mlreco_spice.models import UResNetSegmentation

    torch.manual_seed(0)
    plain = UResNetSegmentation({"network": {"uresnet": SMALL}}).eval()
    shifted = UResNetSegmentation({"network": {"uresnet": SMALL,
                                               "logit_offsets": {"Michel": 50.0}}}).eval()
    shifted.load_state_dict(plain.state_dict())   # offsets are config: any weights load
    data = random_event(200, events=2)
    with torch.no_grad():
        a, b = plain(data), shifted(data)
    assert torch.equal(a["logits"], b["logits"])           # the loss sees no offset
    assert (b["semantics"] == MICHEL).all()                # a large Michel offset wins
    expected = (a["logits"] + torch.tensor([1.0, -1.0, 0.0, 0.0, 0.0])).argmax(1)
    listed = UResNetSegmentation({"network": {"uresnet": SMALL,
                                              "logit_offsets": [1.0, -1.0, 0, 0, 0]}}).eval()
    listed.load_state_dict(plain.state_dict())
    with torch.no_grad():
        assert torch.equal(listed(data)["semantics"], expected)
    assert "logit_offsets" not in plain.state_dict() and "logit_offsets" not in listed.state_dict()
    with pytest.raises(ValueError, match="finite"):
        UResNetSegmentation({"network": {"uresnet": SMALL, "logit_offsets": {"HIP": float("nan")}}})
    with pytest.raises(ValueError, match="3 classes"):
        UResNetSegmentation({"network": {"uresnet": SMALL, "num_classes": 3,
                                         "logit_offsets": [0, 0, 0]}})


def test_stage_checkpoints_join_into_the_full_chain(tmp_path):
    """Stage-wise training: a uresnet-only and a SPICE-only chain's weights load into the
    joint chain through model.modules.<stage>.weights."""
    from mlreco_spice.chain import Chain
    from mlreco_spice.config import load_config

    arch = "{filters: 4, depth: 2, reps: 1, input_kernel: 3}"
    saved = {}
    for config, stage in (("uresnet_train", "uresnet"), ("spice_stage_train", "spice")):
        torch.manual_seed(len(stage))
        cfg = load_config(config, [f"model.modules.{stage}.network.uresnet={arch}"])
        saved[stage] = Chain(cfg["model"]).state_dict()
        torch.save(saved[stage], tmp_path / f"{stage}.pt")
    cfg = load_config("predict", [f"model.modules.{s}.network.uresnet={arch}" for s in saved]
                      + [f"model.modules.{s}.weights={tmp_path / s}.pt" for s in saved])
    joint = Chain(cfg["model"]).state_dict()
    for stage, state in saved.items():
        for key, value in state.items():
            assert torch.equal(joint[key], value), key
