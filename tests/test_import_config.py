"""`mlreco-spice import-config`: SPINE (shapes and skip_classes forms) and lartpc_mlreco3d."""
from pathlib import Path

import pytest
import yaml

from mlreco_spice.cli import main
from mlreco_spice.config import load_config
from mlreco_spice.errors import UserError
from mlreco_spice.interop.import_config import import_config_file, import_peer_config

PEERS = Path(__file__).parent / "fixtures" / "peer_configs"


def _leaves(node, prefix=""):
    if isinstance(node, dict) and node:
        for key, value in node.items():
            yield from _leaves(value, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix


def _assert_every_key_reported(peer_file, translation):
    """No peer key is dropped silently: each leaf is (under) a reported key."""
    reported = [line.peer for line in translation.lines]
    for leaf in _leaves(yaml.safe_load(peer_file.read_text())):
        assert any(leaf == key or leaf.startswith(key + ".") or key.startswith(leaf + ".")
                   or key.startswith(leaf + "[") for key in reported), leaf


def _spice(cfg):
    return cfg["model"]["modules"]["spice"]


def _import(tmp_path, name):
    """Import fixture ``name``; check no key is dropped and the written config loads."""
    peer = PEERS / name
    out = tmp_path / "chain.yaml"
    translation = import_config_file(peer, out)
    _assert_every_key_reported(peer, translation)
    return translation, load_config(str(out))  # load_config validates


def test_spine_shapes_form(tmp_path):
    translation, cfg = _import(tmp_path, "spine_shapes.yaml")
    spice = _spice(cfg)
    net = spice["network"]
    assert cfg["model"]["stages"] == ["spice"]
    assert net["uresnet"] == {"filters": 8, "depth": 3, "reps": 1, "input_kernel": 3,
                              "leaky_slope": 0.2, "norm_eps": 1e-4, "norm_momentum": 0.01}
    assert (net["num_input"], net["coord_conv"], net["head_activation"]) == (1, True, False)
    assert net["norm_length"] == net["image_size"] == 128
    assert net["classes"] == ["Shower", "HIP", "MIP", "Michel", "Delta"]
    clus = spice["clusterer"]
    assert clus["mode"] == "spine"
    assert clus["s0"] == {"Shower": 0.3, "HIP": 0.55, "MIP": 0.55, "Michel": 0.2, "Delta": 0.8}
    # A list follows the order of `shapes`.
    assert clus["p0"] == {"Shower": 0.05, "HIP": 0.1, "MIP": 0.1, "Michel": 0.1, "Delta": 0.25}
    assert (clus["min_cluster_size"], clus["assign_leftovers"]) == (3, True)
    assert spice["loss"]["mask_loss"] == "bce" and spice["loss"]["seed_loss"] == "l2"
    assert (spice["loss"]["gamma1"], spice["loss"]["gamma2"], spice["loss"]["delta_d"]) == \
        (0.5, 1.5, 0.3)
    assert spice["use_true_semantics"] is True
    assert spice["network_input"] == {"data": "data"}
    assert cfg["io"]["dataset"]["labels"] == "spine"
    assert cfg["io"]["dataset"]["schema"]["clust_label"] == {
        "parser": "cluster3d", "cluster_product": "cluster3d_pcluster",
        "semantics_product": "sparse3d_semantics", "particle_product": "particle_pcluster"}
    assert cfg["train"]["iterations"] == 2000 and cfg["train"]["optimizer"]["name"] == "adam"
    report = translation.report()
    assert "break_clusters = False  ->  (no equivalent)" in report
    assert "uresnet.depth = 4  ->  model.modules.spice.network.uresnet.depth = 3" in report


def test_spine_skip_classes_form(tmp_path):
    translation, cfg = _import(tmp_path, "spine_skip_classes.yaml")
    spice = _spice(cfg)
    # skip michel, delta, lowe -> SPINE owns shower and track
    assert spice["network"]["classes"] == ["Shower", "HIP", "MIP"]
    assert spice["network"]["uresnet"]["depth"] == 4
    assert spice["network"]["uresnet"]["leaky_slope"] == 0.01  # SPINE's lrelu default
    # no clusterer block: SPINE's clusterer defaults
    assert spice["clusterer"]["s0"] == {"Shower": 0.0, "HIP": 0.0, "MIP": 0.0}
    assert spice["clusterer"]["p0"] == {"Shower": 0.5, "HIP": 0.5, "MIP": 0.5}
    assert spice["clusterer"]["min_cluster_size"] == 2
    assert cfg["train"]["freeze_seediness_iterations"] >= 10**9
    assert spice["loss"]["mask_loss"] == "lovasz"
    assert spice["network_input"] == {"data": "input_data"}
    report = translation.report()
    assert "uresnet.lattice.mode = 'random'  ->  (no equivalent)" in report
    assert "file_keys = None  ->  (no equivalent): set io.dataset.files" in report


def test_mlreco3d_block(tmp_path):
    translation, cfg = _import(tmp_path, "mlreco3d_spice.yaml")
    assert translation.flavour == "lartpc_mlreco3d"
    spice = _spice(cfg)
    net = spice["network"]
    assert net["uresnet"]["depth"] == 5 and net["uresnet"]["input_kernel"] == 5
    assert net["uresnet"]["leaky_slope"] == 0.33
    assert net["norm_length"] == 768 and net["num_input"] == 1
    assert net["classes"] == ["Shower", "HIP", "MIP"]
    # threshold lists are indexed by shape code
    assert spice["clusterer"]["s0"] == {"Shower": 0.25, "HIP": 0.6, "MIP": 0.6}
    assert spice["clusterer"]["p0"] == {"Shower": 0.05, "HIP": 0.15, "MIP": 0.15}
    assert spice["loss"]["mask_loss"] == "lovasz"
    assert spice["loss_input"] == {"clust_label": "cluster_label"}
    assert cfg["io"]["dataset"]["schema"]["cluster_label"]["particle_product"] == "particle_pcluster"
    assert cfg["train"]["checkpoint_every"] == 500
    assert "trainval.model_path = ''  ->  (no equivalent)" in translation.report()


def test_bare_mlreco3d_spice_block():
    block = {"spice": {"coordConv": True, "spatial_size": 256,
                       "uresnet_encoder": {"filters": 4, "depth": 3, "num_input": 4}}}
    translation = import_peer_config(block)
    net = translation.config["model"]["modules"]["spice"]["network"]
    assert (net["uresnet"]["depth"], net["norm_length"], net["num_input"]) == (2, 256, 1)


def test_shapes_and_skip_classes_together_refused():
    peer = yaml.safe_load((PEERS / "spine_shapes.yaml").read_text())
    peer["model"]["modules"]["spice"]["skip_classes"] = ["delta"]
    with pytest.raises(UserError, match="either shapes or skip_classes"):
        import_peer_config(peer)


def test_cli_prints_mapping_and_refuses_overwrite(tmp_path, capsys):
    out = tmp_path / "chain.yaml"
    peer = str(PEERS / "spine_shapes.yaml")
    assert main(["import-config", peer, "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "model.modules.spice.clusterer.min_size = 3  ->  " \
           "model.modules.spice.clusterer.min_cluster_size = 3" in printed
    assert out.read_text().startswith("# Imported from spine_shapes.yaml (SPINE)")
    assert main(["import-config", peer, "-o", str(out)]) == 2
    assert main(["import-config", peer, "-o", str(out), "--overwrite"]) == 0
