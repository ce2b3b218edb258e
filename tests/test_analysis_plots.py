"""Plots are drawn from the merged CSVs and draw one entry per CSV row."""
import math

import pytest

from analysis.columns import TABLES
from analysis.csv_parts import PartWriter, read_table
from analysis.plots import PLOT_FILES, make_plots
from analysis.tables import event_tables
from test_analysis_tables import make_event

pytest.importorskip("matplotlib")


@pytest.fixture(scope="module")
def outdir(tmp_path_factory):
    out = tmp_path_factory.mktemp("plots")
    writer = PartWriter(out, TABLES)
    for part in range(2):
        rows = {name: [] for name in TABLES}
        for k in range(3):
            event = make_event(seed=10 * part + k, entry=k)
            if k == 2:
                event.margins[:] = float("nan")   # margins not saved for this event
                event.forward_time_s = float("nan")  # timing unknown
            for name, table_rows in event_tables(event, 10).items():
                rows[name].extend(table_rows)
        writer.write(f"part{part}", rows, {"source": f"part{part}.h5"})
    writer.merge()
    return out


def test_every_plot_written_with_one_entry_per_row(outdir):
    counts = make_plots(outdir)
    assert set(counts) == set(PLOT_FILES)
    for name, result in counts.items():
        assert result["path"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    metrics = read_table(outdir / "cluster_metrics.csv")
    assert len(metrics) == 18  # 6 events x 3 classes
    assert counts["metric_distributions"]["entries"] == {"purity": 18, "efficiency": 18, "ari": 18}
    assert counts["metrics_vs_multiplicity"]["entries"] == {"purity": 18, "efficiency": 18, "ari": 18}
    assert counts["cluster_count_confusion"]["entries"] == 18
    instances = read_table(outdir / "clusters.csv")
    with_margin = [r for r in instances if r["mean_margin"] != ""]
    assert len(instances) == 30 and len(with_margin) == 20
    assert counts["margin_vs_extent"]["entries"] == len(with_margin)
    assert counts["margin_vs_extent"]["per_class"]["MIP"] == 8
    events = read_table(outdir / "events.csv")
    assert counts["timing"]["rows"] == len(events) == 6
    assert counts["timing"]["entries"] == {"forward_time_s": 4, "cluster_time_s": 6}
    assert all(math.isfinite(float(r["cluster_time_s"])) for r in events)


def test_plots_and_summary_of_an_empty_evaluation(tmp_path):
    from analysis.summary import summarize_outdir

    PartWriter(tmp_path, TABLES).merge()
    counts = make_plots(tmp_path)
    assert all(c["rows"] == 0 and c["path"].is_file() for c in counts.values())
    summary = summarize_outdir(tmp_path, 0.92)
    assert summary.n_events == 0 and summary.row("all")["n_rows"] == 0
    assert math.isnan(summary.row("all")["ari"])


def test_margin_figure_is_left_out_without_margins_and_says_why(tmp_path):
    writer = PartWriter(tmp_path, TABLES)
    rows = {name: [] for name in TABLES}
    for k in range(2):
        event = make_event(seed=k, entry=k)
        event.margins[:] = float("nan")   # predict.save_embeddings: false
        for name, table_rows in event_tables(event, 10).items():
            rows[name].extend(table_rows)
    writer.write("part0", rows, {"source": "part0.h5"})
    writer.merge()
    stale = tmp_path / PLOT_FILES["margin_vs_extent"]
    stale.write_bytes(b"old")
    counts = make_plots(tmp_path)
    assert counts["margin_vs_extent"]["entries"] == 0 and counts["margin_vs_extent"]["path"] is None
    assert "save_embeddings" in counts["margin_vs_extent"]["skipped"]
    assert not stale.exists()
    assert counts["metric_distributions"]["path"].is_file()
