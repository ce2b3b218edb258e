"""Simulated files in SPINE's label scheme, with and without PDG codes: train, predict, evaluate.

``simulate --labels spine`` writes shape codes (0 shower, 1 track, 2 Michel,
3 delta) and keeps the particle table's PDG codes; the same events without
the particle table stand for a file that carries none. Read with
``io.dataset.labels: spine``, the first gives exactly the classes of the same
events written in our scheme; the second one track class (MIP), named
``Track`` in evaluate's CSVs and summary and in tune's thresholds.
"""
from __future__ import annotations

import numpy as np
import pytest

from analysis.csv_parts import read_table
from analysis.evaluate import evaluate
from mlreco_spice.cli import main
from mlreco_spice.columns import HIP, MIP
from mlreco_spice.config import load_config
from mlreco_spice.predict import output_name, predict_files
from parsers.dataset import SpiceDataset
from test_predict import TINY_ARCH

SIM = ["-n", "3", "--seed", "21", "--size", "64"]
LABEL = "model.modules.spice.loss_input.clust_label"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Our scheme, SPINE's with PDG codes, SPINE's without a particle table."""
    from mlreco_spice.sim import simulate_events
    from parsers.label_schemes import records_in_scheme
    from parsers.writer import write_events

    folder = tmp_path_factory.mktemp("schemes")
    ours, spine, bare = folder / "ours.h5", folder / "spine.h5", folder / "spine_no_pdg.h5"
    assert main(["simulate", "-o", str(ours), *SIM]) == 0
    assert main(["simulate", "-o", str(spine), *SIM, "--labels", "spine"]) == 0
    records = list(records_in_scheme(simulate_events(3, seed=21, size=64), "spine"))
    for record in records:
        record.particles.clear()
    write_events(str(bare), records)
    return {"ours": ours, "spine": spine, "bare": bare}


def _cfg(file, labels, pdg=True, *extra):
    sets = [f"io.dataset.files=[{file}]", f"io.dataset.labels={labels}", *TINY_ARCH, *extra]
    if pdg:
        sets.append("io.dataset.schema.clust_label.particle_product=particle_pcluster")
    return load_config("full_chain", sets)


def _labels(cfg):
    dataset = SpiceDataset(cfg["io"])
    return [np.asarray(dataset[i]["clust_label"]) for i in range(len(dataset))]


def test_spine_file_with_pdg_reads_as_our_classes(files):
    ours = _labels(_cfg(files["ours"], "pilarnet2020"))
    spine = _labels(_cfg(files["spine"], "spine"))
    for a, b in zip(ours, spine):
        np.testing.assert_array_equal(a, b)
    assert any(HIP in set(b[:, -1].astype(int)) for b in spine)


def test_spine_file_without_pdg_keeps_one_track_class(files):
    ours = _labels(_cfg(files["ours"], "pilarnet2020"))
    bare = _labels(_cfg(files["bare"], "spine", pdg=False))
    for a, b in zip(ours, bare):
        tracks = np.isin(a[:, -1], [HIP, MIP])
        assert np.all(b[tracks, -1] == MIP)
        np.testing.assert_array_equal(a[~tracks], b[~tracks])


def test_codes_outside_the_scheme_name_file_entry_and_value(files, tmp_path):
    from mlreco_spice.errors import BadEventError
    from parsers.event import SparseProduct
    from parsers.readers import open_reader
    from parsers.writer import write_events

    record = open_reader(str(files["spine"]))[1]
    sem = record.sparse3d["semantics"]
    values = sem.values.copy()
    values[0] = 5  # a ghost: no class in SPINE's scheme here
    record.sparse3d["semantics"] = SparseProduct(sem.coords, values, sem.meta)
    bad = tmp_path / "ghost.h5"
    write_events(str(bad), [record])
    cfg = _cfg(bad, "spine", True, "io.on_bad_event=raise")
    with pytest.raises(BadEventError, match=r"ghost\.h5 entry 0: .*semantic values outside "
                                            r"0-4, e\.g\. 5\.0"):
        SpiceDataset(cfg["io"])[0]


@pytest.mark.parametrize("kind", ["spine", "bare"])
def test_train_predict_evaluate(kind, files, tiny_trained, tmp_path):
    from mlreco_spice.train import train

    pdg = kind == "spine"
    cfg = _cfg(files[kind], "spine", pdg, f"train.output_dir={tmp_path / 'run'}",
               "train.iterations=2", "train.checkpoint_every=2", "io.loader.batch_size=1")
    assert train(cfg, progress=False).last_checkpoint is not None
    cfg = _cfg(files[kind], "spine", pdg, f"predict.weights={tiny_trained}",
               "predict.thresholds=null", "model.modules.spice.use_true_semantics=false")
    report = predict_files(cfg, [str(files[kind])], str(tmp_path / "pred"))
    assert not report.failed_files and not report.bad_events
    out = tmp_path / "pred" / output_name(str(files[kind]))
    result = evaluate(cfg, [str(out)], str(tmp_path / "eval"), quiet=True)
    assert not result.failed_files and len(result.evaluated) == 1
    tracks = {"HIP", "MIP"} if pdg else {"Track"}
    names = (["HIP", "MIP"] if pdg else ["Track"]) + ["Shower", "Delta", "Michel"]
    for table in ("clusters", "cluster_metrics", "summary"):
        classes = {r["class"] for r in read_table(tmp_path / "eval" / f"{table}.csv")}
        assert classes & {"HIP", "MIP", "Track"} == tracks, table
    confusion = read_table(tmp_path / "eval" / "confusion_matrix.csv")
    assert [r["true_class"] for r in confusion] == names
    segmentation = read_table(tmp_path / "eval" / "segmentation.csv")
    assert {r["true_class"] for r in segmentation} & {"HIP", "MIP", "Track"} == tracks
    markdown = (tmp_path / "eval" / "summary.md").read_text()
    assert ("| Track |" in markdown) != pdg and ("MIP" in markdown) == pdg
    # Summarised again from the folder alone, the names come from its rows: none is lost.
    from analysis.summary import summarize_outdir

    again = summarize_outdir(tmp_path / "eval", 0.92)
    assert {r["class"] for r in again.rows} == \
        {r["class"] for r in read_table(tmp_path / "eval" / "summary.csv")}


@pytest.mark.parametrize("kind", ["spine", "bare"])
def test_tune_names_the_track_class(kind, files, tiny_trained, tmp_path):
    import yaml

    from mlreco_spice.tune_files import tune_from_files

    pdg = kind == "spine"
    cfg = _cfg(files[kind], "spine", pdg, f"predict.weights={tiny_trained}",
               "predict.thresholds=null", "model.modules.spice.use_true_semantics=false")
    output = tmp_path / "thresholds.yaml"
    result = tune_from_files(cfg, [str(files[kind])], str(output), n_events=3, step=0.25,
                             progress=False)
    names = (["HIP", "MIP"] if pdg else ["Track"]) + ["Shower", "Delta", "Michel"]
    text = output.read_text()
    assert list(yaml.safe_load(text)["s0"]) == names == list(result["scores"])
    assert ("MIP" in text) == pdg and ("HIP" in text) == pdg and ("Track" in text) != pdg
    assert ("Track" in result["tuned"]) != pdg


def test_predict_drops_low_energy_voxels_as_training_does(files, tiny_trained, tmp_path):
    """low_energy: drop takes the low-energy deposits out of the input at inference too,
    though predict's schema holds only the network's inputs (the labels say which)."""
    from parsers.event import SparseProduct
    from parsers.readers import open_reader
    from parsers.writer import write_events

    records = [open_reader(str(files["spine"]))[i] for i in range(3)]
    low = 0
    for record in records:
        sem = record.sparse3d["semantics"]
        values = sem.values.copy()
        values[::7] = 4  # SPINE's low-energy code
        low += int((values == 4).sum())
        record.sparse3d["semantics"] = SparseProduct(sem.coords, values, sem.meta)
    lowe = tmp_path / "lowe.h5"
    write_events(str(lowe), records)
    total = sum(len(r.sparse3d["data"].values) for r in records)
    cfg = _cfg(lowe, "spine", True, f"predict.weights={tiny_trained}", "predict.thresholds=null",
               "model.modules.spice.use_true_semantics=false",
               "io.dataset.reader_options={semantic_mapping: {low_energy: drop}}")
    report = predict_files(cfg, [str(lowe)], str(tmp_path / "pred"))
    assert not report.failed_files and not report.bad_events
    out = open_reader(str(tmp_path / "pred" / output_name(str(lowe))))
    # uresnet's prediction covers exactly the voxels the network saw.
    predicted = sum(len(out[i].sparse3d["semantics_pred"].values) for i in range(len(out)))
    assert low > 0 and predicted == total - low
