"""Event displays: HTML views and colours, PNG, and the HTML in headless Chromium."""
import numpy as np
import pytest

from analysis.browser_check import check_html, find_chromium
from analysis.display import (PALETTE, SPURIOUS_PALETTE, UNCLUSTERED, VIEWS, event_figure,
                              instance_colours, write_event_html, write_event_png)
from test_analysis_tables import make_event

pytest.importorskip("plotly")
pytest.importorskip("matplotlib")


def test_colours_follow_matches():
    event = make_event()
    true_col, pred_col = instance_colours(event)
    truth, pred = event.truth_instance, event.clusters
    assert set(true_col[truth == 2]) == {PALETTE[2]}
    assert set(pred_col[pred == 2]) == {PALETTE[2]}          # best match of true 2
    assert set(pred_col[pred == 5]) == {SPURIOUS_PALETTE[5]}  # a fragment of true 1
    assert set(pred_col[pred == -1]) == {UNCLUSTERED} and set(true_col[truth == -1]) == {UNCLUSTERED}


def test_figure_has_every_view_and_hover_info():
    event = make_event()
    fig = event_figure(event)
    buttons = fig.layout.updatemenus[0].buttons
    assert tuple(b.label for b in buttons) == VIEWS
    names = [t.name for t in fig.data]
    for view, button in enumerate(buttons):
        shown = [n for n, v in zip(names, button.args[0]["visible"]) if v]
        assert shown, VIEWS[view]
    true_view = [n for n, v in zip(names, buttons[2].args[0]["visible"]) if v]
    assert true_view == ["no instance"] + [f"true {k}" for k in range(5)]
    pred_view = [n for n, v in zip(names, buttons[3].args[0]["visible"]) if v]
    assert pred_view == ["unclustered"] + [f"pred {k}" for k in (0, 1, 2, 5, 6)]
    # Every voxel appears once per instance view; hover carries id, class and energy.
    trace = fig.data[names.index("true 2")]
    assert len(trace.x) == 50 and "class Shower" in trace.hovertemplate
    rows = np.flatnonzero(event.truth_instance == 2)
    assert np.allclose(trace.x, event.meta.to_cm(event.coords[rows])[:, 0], rtol=0, atol=0.0051)
    assert np.allclose(trace.customdata[:, 0].astype(float), event.features[rows, 0])
    assert trace.customdata.dtype == np.float32   # sent as binary, not JSON text
    voxels = fig.data[names.index("voxel")]      # the energy view: every voxel, with its index
    assert np.array_equal(voxels.customdata[:, 1:], event.coords)
    assert np.allclose(voxels.customdata[:, 0], event.features[:, 0])
    assert list(voxels.text) == list(np.array(["HIP", "MIP", "Shower", "Delta", "Michel", "none"])[
        np.where(event.truth_semantic >= 0, event.truth_semantic, 5)])
    embedding = [t for t, v in zip(fig.data, buttons[4].args[0]["visible"]) if v]
    assert sum(len(t.x) for t in embedding) == event.n_voxels


def test_html_shares_plotly_js_and_png_is_written(tmp_path):
    import plotly

    event = make_event()
    html = write_event_html(event, tmp_path / "e.html")
    write_event_html(event, tmp_path / "f.html")
    png = write_event_png(event, tmp_path / "e.png")
    text = html.read_text()
    bundle = f"plotly-{plotly.__version__}.min.js"
    assert f'src="{bundle}"' in text and "Plotly.newPlot" in text and len(text) < 200_000
    assert [p.name for p in tmp_path.glob("*.js")] == [bundle]   # once per directory
    assert (tmp_path / bundle).stat().st_size > 1_000_000
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    single = write_event_html(event, tmp_path / "single" / "e.html", embed_plotlyjs=True)
    assert "<script src=" not in single.read_text() and single.stat().st_size > 1_000_000


def test_png_colour_key_names_instances_and_greys():
    from analysis.display import colour_key

    event = make_event()
    true_col, pred_col = instance_colours(event)
    key = colour_key(event.truth_instance, true_col,
                     np.array(["Shower"] * event.n_voxels, dtype=object), "true")
    texts = [t for _, t in key]
    assert texts[0].startswith("true ") and "vox" in texts[0]
    assert texts[-1].startswith("no instance: ")
    assert dict((t, c) for c, t in key)[texts[-1]] == UNCLUSTERED


NO_CHROMIUM = ("chromium not installed: `make install` installs it with apt-get when run as "
               "root, else `apt-get install chromium`")


@pytest.mark.skipif(find_chromium() is None, reason=NO_CHROMIUM)
def test_html_opens_in_headless_chromium(tmp_path):
    html = write_event_html(make_event(), tmp_path / "e.html")
    result = check_html(html, tmp_path / "shot.png")
    assert result.ok, result.describe()
    assert result.coloured_pixels > 500


@pytest.mark.skipif(find_chromium() is None, reason=NO_CHROMIUM)
def test_browser_check_catches_errors_and_blank_pages(tmp_path):
    page = tmp_path / "bad.html"
    page.write_text("<html><head></head><body><script>console.error('boom'); missing();</script>"
                    "</body></html>")
    result = check_html(page, tmp_path / "bad.png")
    assert result.blank and len(result.errors) == 2
    assert "boom" in result.errors[0] and "Uncaught ReferenceError" in result.errors[1]


def test_figure_of_an_event_without_voxels():
    """A skipped event is written empty: its display must still draw (it used to raise)."""
    import dataclasses

    event = make_event()
    keep = np.zeros(event.n_voxels, dtype=bool)
    empty = dataclasses.replace(
        event, coords=event.coords[keep], features=event.features[keep],
        semantics=event.semantics[keep], clusters=event.clusters[keep],
        embeddings=event.embeddings[keep], margins=event.margins[keep],
        seediness=event.seediness[keep], semantics_pred=event.semantics_pred[keep],
        truth_instance=event.truth_instance[keep], truth_semantic=event.truth_semantic[keep])
    fig = event_figure(empty)
    assert all(len(trace.x) == 0 for trace in fig.data)
