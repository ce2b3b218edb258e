"""Batch prediction: larcv outputs, skip-completed, shards, provenance checks."""
import csv
from pathlib import Path

import pytest

from mlreco_spice.config import load_config
from mlreco_spice.errors import UserError
from mlreco_spice.predict import output_name, predict_files, read_provenance, select_shard


@pytest.fixture(scope="module")
def predict_cfg(tiny_trained):
    return load_config("predict", [f"predict.weights={tiny_trained}", "predict.thresholds=null",
                                   *TINY_ARCH])


TINY_ARCH = ["model.modules.spice.network.uresnet={filters: 4, depth: 2, reps: 1, input_kernel: 3}",
             "model.modules.uresnet.network.uresnet={filters: 4, depth: 2, reps: 1, input_kernel: 3}"]


def test_predict_writes_products_larcv_reads(predict_cfg, tiny_files, tmp_path):
    import larcv

    report = predict_files(predict_cfg, [str(tiny_files[0])], str(tmp_path))
    out = tmp_path / output_name(str(tiny_files[0]))
    assert report.written == [out] and not report.failed_files
    io = larcv.IOManager(larcv.IOManager.kREAD)
    io.add_in_file(str(out))
    io.initialize()
    assert io.get_n_entries() == 4
    for entry in range(4):
        io.read_entry(entry)
        clusters = io.get_data("cluster3d", "spice").sparse_cluster(0)  # projection 0
        data = io.get_data("sparse3d", "data")
        pred = io.get_data("sparse3d", "semantics_pred")
        particles = io.get_data("particle", "spice")
        n_vox = data.as_vector()[0].size()
        assert pred.as_vector()[0].size() == n_vox
        assert clusters.size() == particles.size()
        clustered = sum(clusters.as_vector()[k].size() for k in range(clusters.size()))
        assert clusters.size() > 0
        assert 0 < clustered <= n_vox
    io.finalize()
    provenance = read_provenance(out)
    assert provenance["weights_sha256"] and "model:" in provenance["config"]
    rows = list(csv.DictReader(open(tmp_path / f"{Path(tiny_files[0]).stem}_timing.csv")))
    assert len(rows) == 4 and all(float(r["forward_time_s"]) > 0 for r in rows)


def test_rerun_skips_completed_and_refuses_other_config(predict_cfg, tiny_files, tmp_path):
    first = predict_files(predict_cfg, [str(f) for f in tiny_files], str(tmp_path), max_events=1)
    assert len(first.written) == 2
    stamp = [p.stat().st_mtime_ns for p in first.written]
    again = predict_files(predict_cfg, [str(f) for f in tiny_files], str(tmp_path), max_events=1)
    assert again.written == [] and sorted(again.skipped_complete) == sorted(first.written)
    assert [p.stat().st_mtime_ns for p in first.written] == stamp
    other = load_config("predict", [f"predict.weights={predict_cfg['predict']['weights']}",
                                    "predict.thresholds={s0: 0.9}", *TINY_ARCH])
    with pytest.raises(UserError, match="another config or weights.*--overwrite"):
        predict_files(other, [str(tiny_files[0])], str(tmp_path), max_events=1)
    redone = predict_files(other, [str(tiny_files[0])], str(tmp_path), max_events=1, overwrite=True)
    assert len(redone.written) == 1


def test_shards_partition_files_without_overlap():
    files = [f"f{k}.h5" for k in range(7)]
    parts = [select_shard(files, (i, 3)) for i in range(3)]
    assert sorted(sum(parts, [])) == sorted(files)
    assert sum(len(p) for p in parts) == len(files)


def test_same_stem_is_an_error_before_any_work(predict_cfg, tiny_files, tmp_path):
    other = tmp_path / "elsewhere"
    other.mkdir()
    twin = other / Path(tiny_files[0]).name
    twin.write_bytes(Path(tiny_files[0]).read_bytes())
    with pytest.raises(UserError, match="share the stem"):
        predict_files(predict_cfg, [str(tiny_files[0]), str(twin)], str(tmp_path / "out"))
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_save_embeddings_writes_debug_products(predict_cfg, tiny_files, tmp_path):
    from mlreco_spice.config import apply_overrides
    from parsers.readers import open_reader

    cfg = apply_overrides(predict_cfg, ["predict.save_embeddings=true"])
    predict_files(cfg, [str(tiny_files[0])], str(tmp_path), max_events=1)
    record = open_reader(str(tmp_path / output_name(str(tiny_files[0]))))[0]
    n = len(record.sparse3d["data"].coords)
    for name in ("spice_embedding_x", "spice_embedding_y", "spice_embedding_z",
                 "spice_margin", "spice_seediness"):
        assert len(record.sparse3d[name].coords) == n, name
    margins = record.sparse3d["spice_margin"].values
    seeds = record.sparse3d["spice_seediness"].values
    assert ((margins > 0) & (margins < 2)).all() and ((seeds > 0) & (seeds < 1)).all()
