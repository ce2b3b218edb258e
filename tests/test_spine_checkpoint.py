"""SPINE 1.4.3 checkpoints load here and give SPINE's outputs (issue 19, item 2).

SPINE's own ``SPICE`` model (``SPICEEmbedder`` plus its ``SPICEClusterer``)
is built from a SPINE config with random weights and saved as SPINE saves;
our chain is built from the config ``import-config`` writes for the same
file and loads that checkpoint. Both run on one simulated event.
"""
from pathlib import Path

import numpy as np
import pytest
import spine  # noqa: F401  (test extra: this test must never be skipped)
import torch
import yaml

from mlreco_spice.backend import import_minkowski
from mlreco_spice.checkpoint import CheckpointError, load_checkpoint
from mlreco_spice.columns import MIP
from mlreco_spice.config import load_config
from mlreco_spice.interop.import_config import import_config_file
from mlreco_spice.interop.spine_checkpoint import SPINE_FORMAT
from parsers.readers.larcv_shapes import class_to_shape

PEER = Path(__file__).parent / "fixtures" / "peer_configs" / "spine_shapes.yaml"
SIZE = 128  # the fixture's spatial_size


def _peer_config():
    """The fixture, with thresholds that give many clusters for random weights.

    (Seediness stays within about 0.37-0.52 and margins near 1 for these weights.)
    """
    peer = yaml.safe_load(PEER.read_text())
    peer["model"]["modules"]["spice"]["clusterer"].update(
        seed_threshold={"shower": 0.45, "track": 0.42, "michel": 0.4, "delta": 0.4},
        probability_threshold=[0.9, 0.85, 0.9, 0.9])
    return peer


def _spine_model(block):
    """SPINE's SPICE from ``block``, with random weights and batch norm statistics."""
    import_minkowski()  # SPINE imports MinkowskiEngine; this applies our Python 3.11 fix first
    from spine.model.spice.model import SPICE as SpineSPICE

    torch.manual_seed(0)
    model = SpineSPICE(block)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm1d):
                n = module.num_features
                module.weight.copy_(0.5 + torch.rand(n, generator=generator))
                module.bias.copy_(0.2 * torch.randn(n, generator=generator))
                module.running_mean.copy_(0.2 * torch.randn(n, generator=generator))
                module.running_var.copy_(0.5 + torch.rand(n, generator=generator))
    return model.eval()


def _event():
    """One simulated event: voxel coordinates, energies, our classes and SPINE shapes."""
    from mlreco_spice.sim import simulate_events
    from parsers.sparse import parse_sparse3d

    record = next(simulate_events(1, seed=11, size=SIZE, voxel_mm=3.0))
    rows = parse_sparse3d(record, ["data", "semantics"])
    classes = np.rint(rows[:, 4]).astype(np.int64)
    shapes = np.array([class_to_shape(c) for c in classes])
    return rows[:, :3].astype(np.int64), rows[:, 3].astype(np.float32), classes, shapes


def _partition(labels):
    """Cluster labels renumbered by first appearance (-1 kept): equal iff same partition."""
    out, seen = np.full(len(labels), -1), {}
    for i, label in enumerate(np.asarray(labels).tolist()):
        if label >= 0:
            out[i] = seen.setdefault(label, len(seen))
    return out


@pytest.fixture(scope="module")
def spine_run(tmp_path_factory):
    """SPINE's checkpoint, its outputs on the event, and our imported config."""
    from spine.data import TensorBatch

    folder = tmp_path_factory.mktemp("spine_ckpt")
    peer = _peer_config()
    peer_file = folder / "spine_peer.yaml"
    peer_file.write_text(yaml.safe_dump(peer))
    model = _spine_model(peer["model"]["modules"]["spice"])
    checkpoint = folder / "spice-100.ckpt"
    torch.save({"global_step": 100, "state_dict": model.state_dict(), "optimizer": {}}, checkpoint)
    coords, energy, classes, shapes = _event()
    n = len(coords)
    data = np.concatenate([np.zeros((n, 1)), coords, energy[:, None]], axis=1)
    with torch.no_grad():
        out = model(TensorBatch(torch.tensor(data, dtype=torch.float32), counts=[n],
                                has_batch_col=True, coord_cols=[1, 2, 3]),
                    TensorBatch(torch.tensor(shapes[:, None], dtype=torch.float32), counts=[n]))
    labels = np.full(n, -1)
    rows = out["filter_index"].index.cpu().numpy()
    for k, members in enumerate(out["clusts"].index_list):
        labels[rows[np.asarray(members.cpu())]] = k
    config = folder / "chain.yaml"
    import_config_file(peer_file, config)
    return {"checkpoint": checkpoint, "config": config, "coords": coords, "energy": energy,
            "classes": classes, "rows": rows, "labels": labels,
            **{k: out[k].torch_tensor().cpu() for k in ("embeddings", "margins", "seediness")}}


def _our_outputs(run, weights_key, semantics):
    from mlreco_spice.chain import Chain

    cfg = load_config(str(run["config"]), [f"{weights_key}={run['checkpoint']}"])
    chain = Chain(cfg["model"]).eval()
    n = len(run["coords"])
    data = torch.tensor(np.concatenate([np.zeros((n, 1)), run["coords"], run["energy"][:, None]],
                                       axis=1), dtype=torch.float32)
    with torch.no_grad():
        return chain.networks["spice"](data, torch.as_tensor(semantics))


def test_checkpoint_is_detected_with_our_names(spine_run):
    payload = load_checkpoint(spine_run["checkpoint"])
    assert payload["format"] == SPINE_FORMAT and payload["iteration"] == 100
    assert "encoder.input_conv.kernel" in payload["model"]
    assert not any(k.startswith("spine:") for k in payload["model"])
    assert float(payload["model"]["embedding_head.1.linear.bias"].abs().sum()) == 0.0


def test_embeddings_margins_seediness_equal_spine(spine_run):
    out = _our_outputs(spine_run, "model.modules.spice.weights", spine_run["classes"])
    assert np.array_equal(out["index"].numpy(), spine_run["rows"])
    assert float(spine_run["seediness"].std()) > 0.01  # not saturated: the check has teeth
    for key in ("embeddings", "margins", "seediness"):
        diff = float((out[key] - spine_run[key].reshape(out[key].shape)).abs().max())
        assert diff < 1e-5, (key, diff)


def test_clusters_equal_spine_clusterer_voxel_for_voxel(spine_run):
    # SPINE clusters per shape: all tracks together. Labels without PDG codes keep one
    # track class here, which is what the spine label scheme gives (track -> MIP).
    semantics = spine_run["classes"].copy()
    semantics[np.isin(semantics, [0, 1])] = MIP
    out = _our_outputs(spine_run, "model.modules.spice.weights", semantics)
    ours = np.full(len(spine_run["coords"]), -1)
    ours[out["index"].numpy()] = out["clusters"].numpy()
    assert len(set(spine_run["labels"].tolist()) - {-1}) > 3
    assert np.array_equal(_partition(ours), _partition(spine_run["labels"]))


def test_predict_weights_take_a_spine_checkpoint(spine_run):
    from mlreco_spice.inference import InferenceEngine

    cfg = load_config(str(spine_run["config"]),
                      [f"predict.weights={spine_run['checkpoint']}"])
    engine = InferenceEngine(cfg, device="cpu")
    spice = engine.chain.networks["spice"]
    assert spice.norm_length.item() == SIZE  # kept from the config: SPINE stores no S
    payload = load_checkpoint(spine_run["checkpoint"])
    assert torch.equal(spice.encoder.input_conv.kernel, payload["model"]["encoder.input_conv.kernel"])


def test_mismatching_architecture_named_layer_by_layer(spine_run):
    from mlreco_spice.chain import Chain

    cfg = load_config(str(spine_run["config"]), [
        f"model.modules.spice.weights={spine_run['checkpoint']}",
        "model.modules.spice.network.uresnet.depth=2"])  # one level fewer than SPINE's 4
    with pytest.raises(CheckpointError, match="does not fit") as err:
        Chain(cfg["model"])
    message = str(err.value)
    assert "shape mismatch: embedding_decoder.blocks.0" in message
    assert "not in model: embedding_decoder.blocks.2" in message


def test_predict_runs_the_imported_chain_with_spine_weights(spine_run, tmp_path):
    """The imported chain clusters the true classes, as SPINE's SPICE: predict reads them."""
    from mlreco_spice.predict import output_name, predict_files
    from mlreco_spice.sim import simulate_file
    from parsers.readers import open_reader

    events = tmp_path / "spine_labels.h5"
    simulate_file(events, 2, seed=4, size=SIZE, labels="spine")
    cfg = load_config(str(spine_run["config"]), [f"predict.weights={spine_run['checkpoint']}"])
    report = predict_files(cfg, [str(events)], str(tmp_path / "out"))
    assert not report.failed_files and not report.bad_events
    out = open_reader(str(tmp_path / "out" / output_name(str(events))))
    assert len(out) == 2 and all(len(out[i].cluster3d["spice"]) > 0 for i in range(2))
