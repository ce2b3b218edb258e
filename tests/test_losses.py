"""Loss functions against references computed from their definitions."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mlreco_spice.columns import CLASS_NAMES, HIP, MIP
from mlreco_spice.losses import (SegmentationLoss, SPICELoss, get_mask_loss, kernel_logit,
                                 lovasz_hinge, lovasz_hinge_segments, spice_loss_terms)


# ----------------------------------------------------------- references ---
def jaccard_loss_of_set(mistakes: set, foreground: set) -> float:
    """Δ_J(M) = |M| / |Y ∪ M| (Berman et al., eq. 5)."""
    if not mistakes:
        return 0.0
    return len(mistakes) / len(foreground | mistakes)


def lovasz_reference(logits: np.ndarray, labels: np.ndarray) -> float:
    """Lovász extension of Δ_J at the hinge errors, as the integral
    ∫_0^∞ Δ_J({i : m_i >= t}) dt (exact for piecewise-constant level sets)."""
    m = np.maximum(0.0, 1.0 - logits * (2.0 * labels - 1.0))
    foreground = {i for i, y in enumerate(labels) if y}
    levels = sorted(set(m.tolist()) | {0.0})
    total = 0.0
    for low, high in zip(levels[:-1], levels[1:]):
        level_set = {i for i, v in enumerate(m) if v >= high}
        total += (high - low) * jaccard_loss_of_set(level_set, foreground)
    return total


def bce_reference(p: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p))))


# ----------------------------------------------------------------- Lovász ---
@pytest.mark.parametrize("seed", range(6))
def test_lovasz_hinge_matches_definition(seed):
    rng = np.random.default_rng(seed)
    size = int(rng.integers(1, 9))
    logits = rng.normal(scale=1.5, size=size)
    labels = rng.integers(0, 2, size=size).astype(float)
    if seed == 0:
        labels[:] = 1.0  # all foreground
    if seed == 1:
        labels[:] = 0.0  # no foreground: Δ_J(M) = 1 for any mistake
    got = lovasz_hinge(torch.tensor(logits), torch.tensor(labels)).item()
    assert got == pytest.approx(lovasz_reference(logits, labels), abs=1e-10)


def test_lovasz_hinge_known_values_and_gradient():
    labels = torch.tensor([1.0, 0.0, 1.0])
    # Every voxel beyond the margin: no error at all.
    assert lovasz_hinge(torch.tensor([2.0, -3.0, 1.5]), labels).item() == 0.0
    # All logits zero: every hinge error is 1, the whole image is mistaken.
    assert lovasz_hinge(torch.zeros(3), labels).item() == pytest.approx(1.0)
    logits = torch.tensor([0.3, 0.2, -0.4, 1.2, -2.0], requires_grad=True)
    lovasz_hinge(logits, torch.tensor([1, 0, 1, 1, 0])).backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_lovasz_segments_equal_per_mask_loop():
    rng = np.random.default_rng(7)
    segments = torch.tensor(rng.integers(0, 5, size=60))
    segments[segments == 3] = 4  # segment 3 empty
    logits = torch.tensor(rng.normal(size=60), requires_grad=True)
    labels = torch.tensor(rng.integers(0, 2, size=60))
    got = lovasz_hinge_segments(logits, labels, segments, 6)
    for s in range(6):
        chosen = segments == s
        expected = lovasz_hinge(logits[chosen], labels[chosen]).item() if chosen.any() else 0.0
        assert got[s].item() == pytest.approx(expected, abs=1e-10)
    got.sum().backward()
    assert torch.isfinite(logits.grad).all()


# ------------------------------------------------------------ mask losses ---
def test_kernel_logit_is_logit_of_exp_minus_q():
    q = torch.tensor([0.05, 0.5, 0.693147, 3.0, 20.0], dtype=torch.float64)
    p = torch.exp(-q)
    assert torch.allclose(kernel_logit(q), torch.log(p / (1 - p)), atol=1e-9)
    extreme = kernel_logit(torch.tensor([0.0, 1e-9, 1e4], requires_grad=True))
    assert torch.isfinite(extreme).all() and extreme[0].item() == pytest.approx(13.8155, abs=1e-3)


def test_mask_losses_by_name():
    logits = torch.tensor([2.0, -1.0, 0.5, 0.0, -3.0], dtype=torch.float64)
    labels = torch.tensor([1, 0, 1, 1, 0])
    segments = torch.tensor([0, 0, 0, 1, 1])
    p, y = torch.sigmoid(logits).numpy(), labels.numpy().astype(float)
    bce = get_mask_loss("bce")(logits, labels, segments, 2)
    assert bce[0].item() == pytest.approx(bce_reference(p[:3], y[:3]))
    assert bce[1].item() == pytest.approx(bce_reference(p[3:], y[3:]))
    dice = get_mask_loss("dice")(logits, labels, segments, 2)
    expected = 1 - (2 * (p[:3] * y[:3]).sum() + 1) / (p[:3].sum() + y[:3].sum() + 1)
    assert dice[0].item() == pytest.approx(expected)
    focal = get_mask_loss("focal")(logits, labels, segments, 2, focal_gamma=2.0)
    pt = np.where(y == 1, p, 1 - p)
    expected = np.mean(-(1 - pt[3:]) ** 2 * np.log(pt[3:]))
    assert focal[1].item() == pytest.approx(expected)
    lovasz = get_mask_loss("LOVASZ")(logits, labels, segments, 2)
    assert lovasz[1].item() == pytest.approx(lovasz_reference(logits.numpy()[3:], y[3:]))
    with pytest.raises(ValueError, match="valid: bce, dice, focal, lovasz, lovasz_logit"):
        get_mask_loss("hinge")


def test_mask_loss_names_and_scores_match_the_config_choices():
    from mlreco_spice.defaults import STAGE_DEFAULTS
    from mlreco_spice.losses import MASK_LOSSES, mask_loss_score

    assert set(STAGE_DEFAULTS["spice"]["loss"]["mask_loss"].choices) == set(MASK_LOSSES)
    assert mask_loss_score("lovasz") == "linear"
    assert mask_loss_score("lovasz", "logit") == mask_loss_score("lovasz_logit") == "logit"
    assert {mask_loss_score(n) for n in ("bce", "dice", "focal")} == {"logit"}
    assert get_mask_loss("lovasz_logit") is get_mask_loss("lovasz")  # one Lovász, two scores


# -------------------------------------------------------- SPICE loss terms ---
CONFIG = {"gamma1": 0.5, "gamma2": 2.0, "mask_weight": 1.5, "smoothing_weight": 0.3,
          "inter_weight": 3.0, "delta_d": 1.0, "min_voxels": 2}


def _toy_batch(with_ignored: bool, seed: int = 0):
    """2 events, 2 classes, 3 instances: event 0 has HIP instances 0 (3 voxels)
    and 1 (2 voxels) and MIP instance 2 (2 voxels); event 1 has HIP instance 5
    (3 voxels). Ignored voxels: label -1, class -1, a 1-voxel instance."""
    rows = [(0, HIP, 0)] * 3 + [(0, HIP, 1)] * 2 + [(0, MIP, 2)] * 2 + [(1, HIP, 5)] * 3
    if with_ignored:
        rows = rows[:4] + [(0, HIP, -1), (0, -1, 1), (0, HIP, 9)] + rows[4:] + [(1, MIP, -1)]
    batch, sem, inst = (torch.tensor(col) for col in zip(*rows))
    gen = torch.Generator().manual_seed(seed)
    n = len(rows)
    emb = torch.rand(n, 3, generator=gen, dtype=torch.float64) * 0.6
    margins = 0.2 + torch.rand(n, 1, generator=gen, dtype=torch.float64) * 0.5
    seed_vals = torch.rand(n, 1, generator=gen, dtype=torch.float64)
    return emb, margins, seed_vals, inst, sem, batch


def _expected_terms(emb, margins, seeds, inst, sem, batch, mask_name):
    """Paper definitions with plain loops (ignored voxels already removed)."""
    emb, margins, seeds = emb.numpy(), margins.numpy().ravel(), seeds.numpy().ravel()
    inst, sem, batch = inst.numpy(), sem.numpy(), batch.numpy()
    per_event = {}
    per_class = {}
    for b in sorted(set(batch)):
        class_values = []
        for c in sorted(set(sem[batch == b])):
            in_class = np.where((batch == b) & (sem == c))[0]
            labels = sorted(set(inst[in_class]))
            mus, values = [], {"mask": [], "smoothing": [], "seed": [], "accuracy": []}
            for k in labels:
                members = in_class[inst[in_class] == k]
                mu, sigma = emb[members].mean(0), margins[members].mean()
                mus.append(mu)
                p = np.exp(-((emb[in_class] - mu) ** 2).sum(1) / (2 * sigma ** 2))
                y = (inst[in_class] == k).astype(float)
                if mask_name in ("lovasz-logit", "lovasz_logit"):
                    values["mask"].append(lovasz_reference(np.log(p) - np.log1p(-p), y))
                elif mask_name == "lovasz":  # default score 2p - 1
                    values["mask"].append(lovasz_reference(2 * p - 1, y))
                elif mask_name == "dice":
                    values["mask"].append(1 - (2 * (p * y).sum() + 1) / (p.sum() + y.sum() + 1))
                elif mask_name == "focal":  # gamma 2 (the default)
                    pt = np.where(y == 1, p, 1 - p)
                    values["mask"].append(np.mean(-(1 - pt) ** 2 * np.log(pt)))
                else:
                    values["mask"].append(bce_reference(p, y))
                values["smoothing"].append(np.abs(margins[members] - sigma).mean())
                p_own = np.exp(-((emb[members] - mu) ** 2).sum(1) / (2 * sigma ** 2))
                values["seed"].append(((seeds[members] - p_own) ** 2).mean())
                pred = p > 0.5
                values["accuracy"].append((pred & (y == 1)).sum() / (pred | (y == 1)).sum())
            hinges = [max(0.0, 2 * CONFIG["delta_d"] - np.linalg.norm(a - b_)) ** 2
                      for a, b_ in itertools.combinations(mus, 2)]
            values = {name: float(np.mean(v)) for name, v in values.items()}
            values["inter"] = float(np.mean(hinges)) if hinges else 0.0
            class_values.append(values)
            per_class.setdefault(c, []).append(values)
        per_event[b] = {name: np.mean([v[name] for v in class_values]) for name in class_values[0]}
    out = {name: float(np.mean([v[name] for v in per_event.values()]))
           for name in ("mask", "smoothing", "inter", "seed", "accuracy")}
    out["total"] = CONFIG["gamma1"] * out["seed"] + CONFIG["gamma2"] * (
        CONFIG["mask_weight"] * out["mask"] + CONFIG["smoothing_weight"] * out["smoothing"]
        + CONFIG["inter_weight"] * out["inter"])
    for c, items in per_class.items():
        out[f"mask_{CLASS_NAMES[c]}"] = float(np.mean([v["mask"] for v in items]))
    return out


@pytest.mark.parametrize("mask_name", ["lovasz", "lovasz-logit", "lovasz_logit", "bce", "dice",
                                       "focal"])
def test_spice_loss_terms_match_hand_computation(mask_name):
    emb, margins, seeds, inst, sem, batch = _toy_batch(with_ignored=False)
    emb.requires_grad_(True)
    config = dict(CONFIG, mask_loss=mask_name.split("-")[0])
    if mask_name == "lovasz-logit":
        config["lovasz_score"] = "logit"
    got = spice_loss_terms(emb, margins, seeds, inst, sem, batch, config)
    expected = _expected_terms(emb.detach(), margins, seeds, inst, sem, batch, mask_name)
    for name, value in expected.items():
        assert got[name].item() == pytest.approx(value, rel=1e-9, abs=1e-12), name
    assert expected["inter"] > 0 and expected["mask"] > 0  # the toy exercises every term
    assert got["num_instances"].item() == 4
    got["total"].backward()
    assert torch.isfinite(emb.grad).all() and emb.grad.abs().sum() > 0


def test_spice_loss_ignores_unlabelled_and_small_instances():
    clean = spice_loss_terms(*_toy_batch(with_ignored=False), CONFIG)
    noisy_inputs = _toy_batch(with_ignored=True)
    noisy = spice_loss_terms(*noisy_inputs, CONFIG)
    # Same voxels of the kept instances must carry the same values: rebuild them.
    emb, margins, seeds, inst, sem, batch = noisy_inputs
    keep = (inst >= 0) & (sem >= 0) & (inst != 9)
    filtered = spice_loss_terms(emb[keep], margins[keep], seeds[keep], inst[keep], sem[keep],
                                batch[keep], CONFIG)
    for name in ("mask", "smoothing", "inter", "seed", "total", "accuracy"):
        assert noisy[name].item() == pytest.approx(filtered[name].item(), rel=1e-12), name
    assert set(clean) == set(noisy)


def test_spice_loss_weights_classes_and_seed_switch():
    inputs = _toy_batch(with_ignored=False)
    base = spice_loss_terms(*inputs, CONFIG)
    no_inter = spice_loss_terms(*inputs, dict(CONFIG, inter_weight=0.0))
    assert base["total"].item() - no_inter["total"].item() == pytest.approx(
        CONFIG["gamma2"] * CONFIG["inter_weight"] * base["inter"].item())
    no_seed = spice_loss_terms(*inputs, CONFIG, include_seed=False)
    assert base["total"].item() - no_seed["total"].item() == pytest.approx(
        CONFIG["gamma1"] * base["seed"].item())
    hip_only = spice_loss_terms(*inputs, CONFIG, classes=["hip"])
    assert "mask_MIP" not in hip_only and hip_only["mask_HIP"].item() == pytest.approx(
        base["mask_HIP"].item())
    assert hip_only["num_instances"].item() == 3


def test_spice_loss_empty_input_is_zero_and_differentiable():
    emb = torch.rand(4, 3, requires_grad=True)
    minus = -torch.ones(4, dtype=torch.long)
    got = spice_loss_terms(emb, torch.ones(4), torch.ones(4), minus, minus, torch.zeros(4), {})
    assert got["total"].item() == 0.0 and math.isnan(got["accuracy"].item())
    got["total"].backward()


def test_spice_loss_module_selects_rows_by_index():
    emb, margins, seeds, inst, sem, batch = _toy_batch(with_ignored=True)
    extra = 3  # rows the network dropped (not owned): their labels must be skipped
    label = torch.zeros(len(inst) + extra, 6, dtype=torch.float64)
    index = torch.arange(extra, len(inst) + extra)
    label[index, 0], label[index, 4], label[index, 5] = batch.double(), inst.double(), sem.double()
    label[:extra, 4], label[:extra, 5] = 0, HIP
    loss = SPICELoss({"loss": CONFIG})
    outputs = {"embeddings": emb, "margins": margins, "seediness": seeds, "index": index}
    got = loss(outputs, label)
    expected = spice_loss_terms(emb, margins, seeds, inst, sem, batch, CONFIG)
    assert got["loss"].item() == pytest.approx(expected["total"].item(), rel=1e-12)
    loss.set_seediness_frozen(True)
    frozen = loss(outputs, label)
    assert frozen["loss"].item() == pytest.approx(
        expected["total"].item() - CONFIG["gamma1"] * expected["seed"].item(), rel=1e-12)
    with pytest.raises(ValueError, match="unknown semantic class"):
        SPICELoss({"network": {"classes": ["HIP", "Muon"]}})


# ------------------------------------------------------------ segmentation ---
def test_segmentation_loss_weighted_cross_entropy_and_accuracy():
    logits = torch.tensor([[3.0, 0, 0, 0, 0], [0, 2.0, 0, 0, 0], [0, 0, 0, 1.0, 0],
                           [0, 0, 5.0, 0, 0], [1.0, 0, 0, 0, 0]])
    label = torch.zeros(5, 5)
    label[:, 4] = torch.tensor([0, 1, 2, 2, -1])
    weights = [1.0, 2.0, 0.5, 1.0, 1.0]
    got = SegmentationLoss({"loss": {"class_weights": weights}})({"logits": logits}, label)
    expected = F.cross_entropy(logits[:4], torch.tensor([0, 1, 2, 2]), weight=torch.tensor(weights))
    assert got["loss"].item() == pytest.approx(expected.item())
    assert got["accuracy"].item() == pytest.approx(0.75)
    assert got["accuracy_Shower"].item() == pytest.approx(0.5)
    assert got["accuracy_HIP"].item() == 1.0 and "accuracy_Michel" not in got
    by_name = SegmentationLoss({"loss": {"class_weights": {"MIP": 2.0, "shower": 0.5}}})
    assert by_name.class_weights.tolist() == weights
