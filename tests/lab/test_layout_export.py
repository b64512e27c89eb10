"""What the browser review found, checked headless: plotly's own Jupyter renderer kept, live figures updated
one trace per message (no plotly `Undefined` placeholders), figures that fill their container, markers on
short curves, tidy status lines, the monitors' / explorer's layout and the editor's preset / input size."""

import importlib
import time

import ipywidgets as W
import plotly.graph_objects as go
import plotly.io as pio
import pytest
from plotly.basedatatypes import Undefined

from posenas_core.runs.io import append_jsonl, atomic_write_json
from posenas_core.search.archive import archive_frame

import lab
from lab import EvolutionMonitor, FrontExplorer, GenotypeEditor, TrainingMonitor
from lab._util import fit_width, refit_later, sync_figure
from lab.evo_figures import front_figure
from lab.figures import MARKER_MAX_POINTS, metrics_frame, training_curves


# ---------------------------------------------------------------------------------------------
# plotly figures: plotly's own Jupyter renderer (the HTML export draws them: posenas_core.runs.notebooks)


@pytest.fixture
def restore_renderer():
    before = pio.renderers.default
    yield
    pio.renderers.default = before


def test_import_lab_keeps_plotlys_jupyter_renderer(restore_renderer):
    pio.renderers.default = "plotly_mimetype"  # plotly's default in a Jupyter kernel (JupyterLab, papermill)
    importlib.reload(lab)
    assert pio.renderers.default == "plotly_mimetype"
    bundle = pio.renderers._build_mime_bundle(lab.ap_bar({"Head": 0.5, "Total": 0.25}).to_dict())  # fig.show()
    # only the mime type JupyterLab draws (once): no text/html copy, no plotly.js in the notebook
    assert set(bundle) == {"application/vnd.plotly.v1+json"}
    assert "Head" in bundle["application/vnd.plotly.v1+json"]["data"][0]["x"]


# ---------------------------------------------------------------------------------------------
# Live figures: one trace per message


def _capture(fig: go.FigureWidget) -> list:
    msgs = []
    fig.observe(lambda ch: msgs.append(ch["new"]) if ch["new"] else None,
                names=["_py2js_restyle", "_py2js_update"])
    return msgs


def _has_undefined(v) -> bool:
    if v is Undefined:
        return True
    if isinstance(v, dict):
        return any(_has_undefined(x) for x in v.values())
    if isinstance(v, (list, tuple)):
        return any(_has_undefined(x) for x in v)
    return False


def test_sync_figure_sends_no_undefined_placeholders():
    live = go.FigureWidget(go.Figure([go.Scatter(x=[1, 2], y=[3, 4]), go.Bar(x=["a", "b"], y=[5, 6])]))
    msgs = _capture(live)
    # only trace 1 changes: a figure-wide batch would send y = [Undefined, [...]] (plotly's widget model
    # then drops trace 0's y for every view rendered later)
    sync_figure(live, go.Figure([go.Scatter(x=[1, 2], y=[3, 4]), go.Bar(x=["a", "b"], y=[7, 8])]))
    assert msgs and not any(_has_undefined(m["style_data"]) for m in msgs)
    assert [list(m["style_traces"]) for m in msgs] == [[1]]
    assert list(live.data[0].y) == [3, 4] and list(live.data[1].y) == [7, 8]
    # the negative control, what the old code did: one batch over traces changing different properties
    with live.batch_update():
        live.data[0].x = [5, 6]
        live.data[1].y = [9, 9]
    assert _has_undefined(msgs[-1]["style_data"])  # x: [[5, 6], Undefined], y: [Undefined, [9, 9]]


def test_editor_and_monitor_updates_carry_no_placeholders(tmp_path):
    ed = GenotypeEditor()
    msgs = _capture(ed.diagram)
    ed.load_json("evopose2d-s")
    ed.kernel[2].value = 3
    assert msgs and not any(_has_undefined(m.get("style_data")) for m in msgs)
    assert len(ed.diagram.data[0].y) == 9  # the channels bars keep their y

    run = tmp_path / "run"
    run.mkdir()
    atomic_write_json(run / "config.json", {"train": {"epochs": 1}, "spec": {"kind": "toy"}})
    append_jsonl(run / "metrics.jsonl", {"step": 1, "epoch": 0, "loss": 0.5, "lr": 1e-3, "time": 1.0})
    mon = TrainingMonitor(run, autostart=False)
    msgs = _capture(mon.figure)
    append_jsonl(run / "metrics.jsonl", {"step": 1, "epoch": 1, "val": {"AP": 0.25}, "time": 2.0})
    mon.refresh()  # only the val AP trace changes
    assert msgs and not any(_has_undefined(m.get("style_data")) for m in msgs)
    assert list(mon.figure.data[0].y) == [0.5] and list(mon.figure.data[3].y) == [0.25]


# ---------------------------------------------------------------------------------------------
# Figures that fill their container


def test_fit_width_and_refit_after_display():
    fig = fit_width(go.FigureWidget(go.Figure(layout=dict(width=880))))
    assert fig.layout.width is None and fig.layout.autosize and fig._config["responsive"] is True
    sent = []
    fig._send_relayout_msg = lambda d, source_view_id=None: sent.append(d)
    fixed = go.FigureWidget(go.Figure(layout=dict(width=500)))
    fixed._send_relayout_msg = lambda d, source_view_id=None: sent.append(("fixed", d))
    refit_later([fig, fixed], delays=(0.0, 0.05))
    deadline = time.time() + 5
    while len(sent) < 2 and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    assert sent == [{"autosize": True}, {"autosize": True}]  # the fixed-width figure is left alone


def test_widgets_have_no_fixed_figure_width(tmp_path):
    mon = TrainingMonitor(tmp_path / "run", autostart=False)
    evo = EvolutionMonitor(tmp_path / "evo", autostart=False)
    fx = FrontExplorer([tmp_path / "evo"])
    ed = GenotypeEditor()
    for w, fig in ((mon, mon.figure), (evo, evo.figure), (fx, fx.figure), (ed, ed.diagram)):
        assert fig.layout.width is None and fig._config.get("responsive"), type(w).__name__
        assert w._fit_figures == (fig,)


def _hboxes_holding(root, a, b) -> list:
    """HBoxes under `root` whose children include both `a` and `b` (side by side)."""
    out, stack = [], [root]
    while stack:
        w = stack.pop()
        kids = list(getattr(w, "children", ()))
        if isinstance(w, W.HBox) and a in kids and b in kids:
            out.append(w)
        stack += kids
    return out


def test_monitors_put_config_below_the_figure(tmp_path):
    mon = TrainingMonitor(tmp_path / "run", autostart=False)
    assert not _hboxes_holding(mon.widget, mon.figure, mon.config)
    kids = list(mon.widget.children)
    assert kids.index(mon.figure) < kids.index(mon.config) and kids.index(mon.status) < kids.index(mon.figure)
    evo = EvolutionMonitor(tmp_path / "evo", autostart=False)
    assert not _hboxes_holding(evo.widget, evo.figure, evo.config)


# ---------------------------------------------------------------------------------------------
# Curves of a few points, status lines


def _steps(n):
    return [{"step": s, "epoch": 0, "loss": 1.0 / s, "lr": 1e-3, "time": float(s)} for s in range(1, n + 1)]


def test_short_curves_have_markers_and_a_flat_lr_a_useful_range():
    one = training_curves(metrics_frame(_steps(1)))
    assert one.data[0].mode == "lines+markers" and one.data[2].mode == "lines+markers"
    assert tuple(one.layout.yaxis2.range) == (0, 2e-3) and one.layout.yaxis2.autorange is False
    many = training_curves(metrics_frame(_steps(MARKER_MAX_POINTS + 1)))
    assert many.data[0].mode == "lines" and many.data[2].mode == "lines"
    recs = _steps(3)
    recs[1]["lr"] = 2e-3
    assert training_curves(metrics_frame(recs)).layout.yaxis2.autorange is True


def test_training_monitor_copies_mode_and_status_parts_do_not_split(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    atomic_write_json(run / "config.json", {"train": {"epochs": 1}})
    for r in _steps(1):
        append_jsonl(run / "metrics.jsonl", r)
    append_jsonl(run / "metrics.jsonl", {"step": 1, "epoch": 1, "val": {"AP": 0.0}, "time": 2.0})
    mon = TrainingMonitor(run, autostart=False)
    assert mon.figure.data[0].mode == "lines+markers"
    assert mon.figure.layout.yaxis2.autorange is False and tuple(mon.figure.layout.yaxis2.range) == (0, 2e-3)
    assert "<span style='white-space:nowrap'>best AP 0.000</span>" in mon.status.value
    for r in _steps(MARKER_MAX_POINTS + 5)[1:]:
        append_jsonl(run / "metrics.jsonl", dict(r, lr=1e-3 * r["step"]))
    mon.refresh()
    assert mon.figure.data[0].mode == "lines" and mon.figure.layout.yaxis2.autorange is True


# ---------------------------------------------------------------------------------------------
# GenotypeEditor: input size, preset list, latency row; FrontExplorer: clicks and hover


def test_editor_keeps_the_given_input_size_and_shows_the_loaded_preset():
    ed = GenotypeEditor("evopose2d-ancestor", input_hw=(64, 64))
    assert ed.input_hw == (64, 64) and "at 64x64" in ed.stats.value
    assert ed.preset.value == "evopose2d-ancestor"
    assert GenotypeEditor("evopose2d-s").input_hw == (256, 192)  # a preset's own size without input_hw
    ed.kernel[2].value = 3  # no longer the preset
    assert ed.preset.value is None
    ed.preset_button.click()  # nothing chosen: said in the validation area, nothing raised
    assert "choose a preset" in ed.validation.value
    ed.preset.value = "evopose2d-s"
    ed.preset_button.click()
    assert ed.preset.value == "evopose2d-s" and ed.spec == lab.genotype_editor.PRESETS["evopose2d-s"].spec
    assert ed.latency_task.widget.layout.display == "none"  # progress + Stop only while measuring


def test_front_figure_click_events_only_and_plain_hover_text():
    recs = [{"id": 0, "generation": 0, "genotype": "g0", "params": 10, "macs": 1e9, "val_loss": 0.5,
             "fitness": 0.4, "status": "ok"}]
    fig = front_figure(archive_frame(recs, run="r"), runs=["r"])
    assert fig.layout.clickmode == "event"  # no plotly selection dimming the other points
    assert all("&middot;" not in (t.hovertemplate or "") for t in fig.data)


def test_front_figure_says_why_the_ap_axis_is_empty():
    recs = [{"id": 0, "generation": 0, "genotype": "g0", "params": 10, "macs": 1e9, "val_loss": 0.5,
             "fitness": 0.4, "status": "ok"}]
    no_ap = front_figure(archive_frame(recs, run="r"), y="ap", runs=["r"])
    assert any("compute_ap" in a.text for a in no_ap.layout.annotations)
    with_ap = front_figure(archive_frame([dict(recs[0], ap=0.31)], run="r"), y="ap", runs=["r"])
    assert not with_ap.layout.annotations and with_ap.data[0].y == (0.31,)
    assert not front_figure(archive_frame(recs, run="r"), y="val_loss", runs=["r"]).layout.annotations
