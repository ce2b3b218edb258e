"""predict and evaluate on the larcv2 ROOT and PILArNet-M fixtures, through the shipped configs.

The tiny chain of ``tiny_trained`` was trained on 96 px larcv3 files; the
fixtures are 64 px (the model takes the image size from each event's meta).
Each format is read through its shipped config (``chain_configs/
pilarnet_larcv2.yaml``, ``chain_configs/pilarnet_m.yaml``), which maps the
format's products onto the schema.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from analysis.csv_parts import read_table
from analysis.evaluate import evaluate
from mlreco_spice.config import load_config
from mlreco_spice.predict import output_name, predict_files
from parsers.readers import open_reader
from test_predict import TINY_ARCH

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures"))
from fixture_events import FIXTURE_EVENTS, LARCV2_FIXTURE, PILARNET_M_FIXTURE  # noqa: E402

#: format -> (shipped config, fixture, overrides, truth product names in the output)
FORMATS = {
    "larcv2": ("pilarnet_larcv2", LARCV2_FIXTURE, [],
               {"semantics": "fivetypes", "cluster": "mcst"}),
    "pilarnet_m": ("pilarnet_m", PILARNET_M_FIXTURE,
                   [f"io.dataset.reader_options.grid_size={FIXTURE_EVENTS['size']}"],
                   {"semantics": "semantics", "cluster": "pcluster"}),
}
N_EVENTS = FIXTURE_EVENTS["n"]


def chain_cfg(fmt: str, weights: str, *extra: str):
    config, _, overrides, _ = FORMATS[fmt]
    return load_config(config, [f"predict.weights={weights}", "predict.thresholds=null",
                                "model.modules.spice.use_true_semantics=false",
                                *TINY_ARCH, *overrides, *extra])


@pytest.fixture(scope="module", params=sorted(FORMATS))
def predicted(request, tiny_trained, tmp_path_factory):
    """(format, input fixture, predict report, output file) for each format."""
    fmt = request.param
    fixture = FORMATS[fmt][1]
    if not fixture.exists():
        pytest.fail(f"{fixture} missing: run tests/fixtures/make_larcv2_fixture.py", pytrace=False)
    cfg = chain_cfg(fmt, tiny_trained)
    assert cfg["io"]["dataset"]["format"] == fmt
    out = tmp_path_factory.mktemp(f"predict_{fmt}")
    report = predict_files(cfg, [str(fixture)], str(out))
    return fmt, fixture, report, out / output_name(str(fixture))


def test_predict_writes_one_entry_per_input_entry(predicted):
    fmt, fixture, report, out = predicted
    assert report.written == [out] and not report.failed_files and not report.bad_events
    names = FORMATS[fmt][3]
    source = open_reader(str(fixture), fmt, **load_config(FORMATS[fmt][0], FORMATS[fmt][2])
                         ["io"]["dataset"]["reader_options"])
    output = open_reader(str(out))
    assert output.format_name == "larcv3"
    assert len(source) == len(output) == N_EVENTS
    for entry in range(N_EVENTS):
        src, got = source[entry], output[entry]
        assert (got.run, got.subrun, got.event) == (src.run, src.subrun, src.event)
        data = got.sparse3d["data"]
        n_vox = len(data.coords)
        assert n_vox == len(src.sparse3d["data"].coords) > 100
        assert data.meta.size == (FIXTURE_EVENTS["size"],) * 3
        assert len(got.sparse3d["semantics_pred"].coords) == n_vox
        assert set(got.sparse3d["semantics_pred"].values.tolist()) <= set(range(5))
        clusters = got.cluster3d["spice"]
        assert 0 < len(clusters) == len(got.particles["spice"])
        assert 0 < sum(len(c) for c in clusters.coords) <= n_vox
        # The truth products are copied, so the output can be evaluated.
        assert len(got.cluster3d[names["cluster"]]) == len(src.cluster3d[names["cluster"]])
        assert len(got.sparse3d[names["semantics"]].coords) == \
            len(src.sparse3d[names["semantics"]].coords)


def _assert_metrics_for_every_event(report, outdir: Path, file_stem: str):
    assert not report.failed_files and not report.bad_events and len(report.evaluated) == 1
    events = read_table(outdir / "events.csv")
    assert sorted(int(r["entry"]) for r in events) == list(range(N_EVENTS))
    assert all(Path(r["file"]).stem == file_stem for r in events)
    metrics = read_table(outdir / "cluster_metrics.csv")
    assert {int(r["entry"]) for r in metrics} == set(range(N_EVENTS))
    assert report.rows["cluster_metrics"] == len(metrics) >= N_EVENTS
    assert all(-1.0 <= float(r["ari"]) <= 1.0 for r in metrics if r["ari"] != "")  # ARI may be < 0
    assert len(read_table(outdir / "clusters.csv")) > N_EVENTS  # true instances


def test_evaluate_predict_outputs_with_the_format_config(predicted, tiny_trained, tmp_path):
    fmt, _, _, out = predicted
    report = evaluate(chain_cfg(fmt, tiny_trained), [str(out)], str(tmp_path / "eval"),
                      quiet=True)
    _assert_metrics_for_every_event(report, tmp_path / "eval", out.stem)


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_evaluate_raw_inputs(fmt, tiny_trained, tmp_path):
    fixture = FORMATS[fmt][1]
    report = evaluate(chain_cfg(fmt, tiny_trained), [str(fixture)], str(tmp_path / "eval"),
                      quiet=True)
    _assert_metrics_for_every_event(report, tmp_path / "eval", fixture.stem)
