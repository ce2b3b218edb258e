"""SPICE overfits one simulated event, and the overfitted event clusters well.

One 96-voxel event from the simulator, the default (small) architecture,
Adam at the paper's learning rate. Budget: about 20-40 s on two CPU cores.
(At 128 voxels the version-2 simulator's event holds showers whose detached
Compton dots 60 steps do not pull in: Shower ARI 0.54, 0.84 after 100 steps.)

The clustering check uses the paper's Table II thresholds unchanged (nothing
is tuned on this event) and the paper's evaluation convention of ignoring
true clusters smaller than 10 voxels (``metrics.DEFAULT_MIN_TRUE_SIZE``).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mlreco_spice.backend import minkowski_available

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not minkowski_available(), reason="MinkowskiEngine not installed")]

from mlreco_spice.columns import BATCH_COL, INSTANCE_COL, SEMANTIC_COL  # noqa: E402

SIZE = 96
EVENT_SEED = 3
ITERATIONS = 60


def simulated_batch():
    """``(data, clust_label)`` tensors of one simulated event, rows aligned."""
    from mlreco_spice.sim import simulate_event
    from parsers.cluster import parse_cluster3d
    from parsers.collate import collate_events
    from parsers.event import ImageMeta
    from parsers.sparse import parse_sparse3d

    record = simulate_event(EVENT_SEED, 0, ImageMeta.cube(SIZE, 3.0))
    data = parse_sparse3d(record, "data")
    label = parse_cluster3d(record, "pcluster", "semantics", "pcluster")
    assert np.array_equal(data[:, :3], label[:, :3])  # same voxels, same order
    batch = collate_events([{"data": data, "clust_label": label}])
    return batch["data"], batch["clust_label"]


@pytest.fixture(scope="module")
def overfitted():
    from mlreco_spice.losses import SPICELoss
    from mlreco_spice.models import SPICE

    torch.manual_seed(0)
    data, label = simulated_batch()
    semantics = label[:, SEMANTIC_COL].long()
    cfg = {"network": {"image_size": SIZE}}
    model, loss_fn = SPICE(cfg), SPICELoss(cfg)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.005)
    history = []
    for _ in range(ITERATIONS):
        loss = loss_fn(model(data, semantics), label)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append(loss.item())
    return model, loss_fn, data, label, history


def test_event_is_not_trivial():
    _, label = simulated_batch()
    semantics, instances = label[:, SEMANTIC_COL].long(), label[:, INSTANCE_COL].long()
    multi = [c for c in torch.unique(semantics).tolist()
             if len(torch.unique(instances[semantics == c])) >= 2]
    assert len(torch.unique(semantics)) >= 3 and len(multi) >= 2


def test_spice_overfits_one_event(overfitted):
    _, _, _, _, history = overfitted
    assert history[-1] <= 0.2 * history[0], history[::10]


def test_overfitted_event_clusters_with_high_ari(overfitted):
    from mlreco_spice.metrics import evaluate_event

    model, loss_fn, data, label, _ = overfitted
    semantics = label[:, SEMANTIC_COL].long()
    model.eval()
    with torch.inference_mode():
        out = model(data, semantics)
        eval_loss = loss_fn(out, label)
    assert eval_loss["accuracy"].item() > 0.95
    clusters = out["clusters"].cpu().numpy()
    truth = label[out["index"]]
    rows = evaluate_event(truth[:, INSTANCE_COL].long().numpy(), clusters,
                          truth[:, SEMANTIC_COL].long().numpy())
    assert rows, "no class left to score"
    for row in rows:
        assert row["ari"] > 0.9, rows
    assert (truth[:, BATCH_COL] == 0).all()
