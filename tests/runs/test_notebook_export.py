"""posenas_core.runs.widget_state / export: widget code bundles stripped from executed notebooks, plotly figures drawn
in the HTML export with plotly.js embedded once (offline).

Hand-made notebooks (no kernel) except one run_notebook test; the browser test of the same export is
tests/browser/test_html_export.py.
"""

import base64
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from posenas_core.runs import export
from posenas_core.runs.export import export_html
from posenas_core.runs.notebooks import run_notebook
from posenas_core.runs.plotly_html import PLOTLY_MIME, plotlyjs_path
from posenas_core.runs.widget_state import (
    STRIPPED_CSS,
    STRIPPED_ESM,
    WIDGET_STATE_MIME,
    strip_notebook_file,
    strip_widget_bundles,
)

BIG_ESM = "export default { render({ el }) { el.textContent = 'hi'; } };\n//" + "x" * 20_000
SMALL_ESM = "export default { render({ el }) { el.textContent = 'small'; } };"


def widget_state() -> dict:
    return {
        "fig": {"model_module": "anywidget", "model_name": "AnyModel", "model_module_version": "~0.11.*",
                "state": {"_esm": BIG_ESM, "_css": "." + "y" * 15_000, "_widget_data": [{"type": "bar", "y": [1]}],
                          "_anywidget_id": "plotly.graph_objs._figurewidget.FigureWidget"}},
        "small": {"model_module": "anywidget", "model_name": "AnyModel", "model_module_version": "~0.11.*",
                  "state": {"_esm": SMALL_ESM, "_css": ".a {}"}},
        "slider": {"model_module": "@jupyter-widgets/controls", "model_name": "IntSliderModel",
                   "model_module_version": "2.0.0", "state": {"value": 3, "description": "d" * 20_000}},
    }


def fig_bundle(title: str, y: list) -> dict:
    return {"data": [{"type": "bar", "x": ["Head", "Hip", "Total"][: len(y)], "y": y}],
            "layout": {"title": {"text": title}}, "config": {"plotlyServerURL": "https://plot.ly"}}


def write_figs_nb(path: Path, widgets: bool = False) -> Path:
    nb = new_notebook(cells=[
        new_code_cell("fig1", outputs=[new_output("display_data", data={PLOTLY_MIME: fig_bundle("first", [1, 2, 3])})]),
        new_code_cell("x", outputs=[new_output("stream", name="stdout", text="hello\n")]),
        new_code_cell("fig2", execution_count=2, outputs=[
            new_output("execute_result", data={PLOTLY_MIME: fig_bundle("</script><script>alert(1)</script>", [4]),
                                               "text/plain": "Figure()"}, execution_count=2)]),
        # a figure that already has its own text/html (e.g. plotly's "notebook" renderer) is left alone
        new_code_cell("fig3", outputs=[new_output("display_data", data={
            PLOTLY_MIME: fig_bundle("third", [5]), "text/html": "<div id='own-html'>own</div>"})]),
    ])
    if widgets:
        nb.metadata.widgets = {WIDGET_STATE_MIME: {"state": widget_state(), "version_major": 2, "version_minor": 0}}
    nbformat.write(nb, str(path))
    return path


# ---------------------------------------------------------------- widget bundles


def test_strip_widget_bundles_replaces_only_big_anywidget_code():
    nb = new_notebook()
    nb.metadata.widgets = {WIDGET_STATE_MIME: {"state": widget_state(), "version_major": 2, "version_minor": 0}}
    removed = strip_widget_bundles(nb)
    st = nb.metadata.widgets[WIDGET_STATE_MIME]["state"]
    fig = st["fig"]["state"]
    assert fig["_esm"] == STRIPPED_ESM % len(BIG_ESM) and str(len(BIG_ESM)) in fig["_esm"]
    assert fig["_esm"].startswith("export default") and "run the cell again" in fig["_esm"]
    assert fig["_css"] == STRIPPED_CSS % 15_001
    # the rest of the state is kept (the figure's data, ids), small bundles and other widgets untouched
    expect = widget_state()
    assert {k: v for k, v in fig.items() if k not in ("_esm", "_css")} == \
        {k: v for k, v in expect["fig"]["state"].items() if k not in ("_esm", "_css")}
    assert st["small"] == expect["small"] and st["slider"] == expect["slider"]
    assert removed == len(BIG_ESM) + 15_001 - len(fig["_esm"]) - len(fig["_css"])
    assert strip_widget_bundles(nb) == 0  # idempotent
    assert strip_widget_bundles(new_notebook()) == 0  # no widget state at all


def test_strip_notebook_file_rewrites_only_when_needed(tmp_path):
    p = write_figs_nb(tmp_path / "w.ipynb", widgets=True)
    before = p.stat().st_size
    assert strip_notebook_file(p) > 34_000
    assert p.stat().st_size < before - 34_000
    nb = nbformat.read(str(p), as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.widgets[WIDGET_STATE_MIME]["state"]["fig"]["state"]["_widget_data"] == [{"type": "bar", "y": [1]}]
    assert len(nb.cells) == 4  # outputs kept
    plain = write_figs_nb(tmp_path / "plain.ipynb")
    text = plain.read_text()
    assert strip_notebook_file(plain) == 0 and plain.read_text() == text


# ---------------------------------------------------------------- plotly figures in the HTML export


def _scripts(html: str) -> list[str]:
    return re.findall(r"<script[^>]*>(.*?)</script>", html, flags=re.S)


def test_export_draws_plotly_figures_with_plotlyjs_once(tmp_path):
    src = write_figs_nb(tmp_path / "figs.ipynb", widgets=True)
    saved = src.read_text()
    html = export_html(src, tmp_path / "figs.html").read_text()
    assert src.read_text() == saved  # the notebook itself is not changed by the export
    assert "not able to be represented" not in html
    plotlyjs = plotlyjs_path().read_text()
    banner = plotlyjs[:60]  # "/**\n* plotly.js v..."
    assert html.count(banner) == 1 and html.count("window.PlotlyConfig") == 1  # embedded once ...
    assert not re.search(r"<script[^>]+src=[^>]*plotly", html)  # ... not from a CDN
    scripts = _scripts(html)
    lib = next(i for i, s in enumerate(scripts) if s.startswith(banner))
    plots = [i for i, s in enumerate(scripts) if "Plotly.newPlot" in s and "posenas-plotly-" in s]
    assert len(plots) == 2 and lib < plots[0]  # plotly.js before every figure's script
    assert 'id="posenas-plotly-0-0"' in html and 'id="posenas-plotly-2-0"' in html
    # each figure's JSON as given (the title with </script> escaped: it cannot end the script early)
    figs = [json.loads(re.search(r"newPlot\(el, (\{.*\})\);", scripts[i]).group(1)) for i in plots]
    assert figs[0]["data"] == fig_bundle("", [1, 2, 3])["data"] and figs[0]["config"]["responsive"] is True
    assert figs[1]["layout"]["title"]["text"] == "</script><script>alert(1)</script>"
    assert "<script>alert(1)" not in html
    assert 'id="own-html"' in html and html.count("Plotly.newPlot") == 2
    # widget code is left out of the export too, and the saved widget state with it (no widget is shown
    # here; a shown one becomes static HTML), so there is no widget manager loading from a CDN either
    assert "x" * 20_000 not in html and WIDGET_STATE_MIME not in html and "html-manager" not in html
    assert len(plotlyjs) < len(html) < len(plotlyjs) + 400_000  # nbconvert's page ~300 kB


def test_export_without_figures_has_no_plotlyjs(tmp_path):
    p = tmp_path / "plain.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell("1", outputs=[new_output("stream", text="one\n")])]), str(p))
    html = export_html(p, tmp_path / "plain.html").read_text()
    assert "one" in html and "PlotlyConfig" not in html and len(html) < 1_000_000


def test_export_without_plotly_says_so(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "plotly" else real(name, *a))
    assert plotlyjs_path() is None
    path, warnings = export.export_html_with_warnings(write_figs_nb(tmp_path / "f.ipynb"), tmp_path / "f.html")
    html = path.read_text()
    assert html.count("plotly figure not shown: plotly.js was not found") == 2 and "PlotlyConfig" not in html
    assert warnings == [f"HTML export: 2 plotly figure(s) not drawn: plotly.js not found "
                        f"(plotly is not installed for {sys.executable})"]


def test_export_does_not_import_plotly(tmp_path):  # (nbconvert itself imports IPython)
    src = write_figs_nb(tmp_path / "figs.ipynb")
    code = ("import sys; from posenas_core.runs.export import export_html; "
            f"export_html({str(src)!r}, {str(tmp_path / 'f.html')!r}); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('plotly', 'ipywidgets', 'lab')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    assert (tmp_path / "f.html").read_text().count("Plotly.newPlot") == 2


# ---------------------------------------------------------------- run_notebook: both, end to end (one kernel)

WIDGET_NB_BODY = f"""
import anywidget, traitlets
from IPython.display import display

class Big(anywidget.AnyWidget):
    _esm = traitlets.Unicode({BIG_ESM[:-20_000]!r} + "x" * 20_000).tag(sync=True)  # BIG_ESM
    value = traitlets.Int(7).tag(sync=True)

display(Big())
display({{{PLOTLY_MIME!r}: {fig_bundle("AP", [1, 2])!r}}}, raw=True)
"""


def test_run_notebook_strips_widget_code_and_draws_figures(tmp_path):
    src = tmp_path / "w.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell("n = 1", metadata={"tags": ["parameters"]}),
                                       new_code_cell(WIDGET_NB_BODY)]), str(src))
    rec = run_notebook(src, tmp_path / "run", timeout=60)
    assert rec.ok and rec.warnings == [], (rec.error, rec.warnings)
    nb = json.loads((tmp_path / "run" / "notebook.ipynb").read_text())
    models = [m["state"] for m in nb["metadata"]["widgets"][WIDGET_STATE_MIME]["state"].values()
              if m["model_module"] == "anywidget"]
    assert len(models) == 1 and models[0]["_esm"] == STRIPPED_ESM % len(BIG_ESM) and models[0]["value"] == 7
    assert (tmp_path / "run" / "notebook.ipynb").stat().st_size < 10_000
    html = (tmp_path / "run" / "notebook.html").read_text()
    assert html.count("window.PlotlyConfig") == 1 and html.count("Plotly.newPlot(el,") == 1


# ---------------------------------------------------------------- widgets: static copies from the saved state


PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108020000009077"
                    "53de0000000c4944415408d763f8cfc000000301010018dd8db00000000049454e44ae426082")  # 1x1 px


def widgets_notebook(path: Path) -> Path:
    """A notebook showing real ipywidgets / a plotly FigureWidget, with the widget state exactly as the
    kernel's widget manager serializes it (binary buffers base64 in `buffers`), as papermill saves it."""
    import ipywidgets as W
    import numpy as np
    import plotly.graph_objects as go

    out = W.Output()
    out.outputs = ({"output_type": "stream", "name": "stdout", "text": "printed in the output widget\n"},
                   {"output_type": "display_data", "metadata": {},
                    "data": {"text/html": "<b id='in-output'>html in output</b>", "text/plain": "x"}})
    fig = go.FigureWidget(go.Scatter(x=np.array([1.0, 2.0, 3.0], np.float32), y=[3, 1, 2], mode="markers"))
    viewer = W.VBox([
        W.HTML("<h3 id='title'>Viewer <i>title</i></h3>"),
        W.HBox([W.Button(icon="chevron-left", layout=W.Layout(width="38px")),
                W.IntSlider(value=4, min=0, max=8, description="person"),
                W.Dropdown(options=["a.jpg", "b.jpg"], value="b.jpg", description="image"),
                W.ToggleButtons(options=["full image", "crop"], value="crop"),
                W.Checkbox(value=True, description="heatmaps <x>")]),
        W.HBox([W.Image(value=PNG, format="png", width=40, height=40), W.Label("a <label>")]),
        W.FloatProgress(value=0.5, min=0, max=1, bar_style="success", description="progress"),
        W.Text(value="spec.to_json()", description="send"),
        W.Textarea(value="{\"a\": 1}"),
        W.HBox([W.HTML("hidden part")], layout=W.Layout(display="none")),
        W.Accordion([W.HTML("<i>config body</i>")], titles=("config.json",)),
        W.Tab([W.HTML("tab one"), W.HTML("tab two")], titles=("one", "two"), selected_index=1),
        W.VBox([fig], layout=W.Layout(flex="1 1 480px", border="1px solid red")),
        out,
        W.ColorPicker(value="red"),
    ])
    state = W.Widget.get_manager_state(drop_defaults=False, widgets=None)
    view = {"version_major": 2, "version_minor": 0, "model_id": viewer.model_id}
    nb = new_notebook(cells=[
        new_code_cell("viewer", outputs=[new_output("display_data", data={
            "application/vnd.jupyter.widget-view+json": view, "text/plain": "VBox(...)"})]),
        new_code_cell("fig.show()", outputs=[new_output("display_data", data={PLOTLY_MIME: fig_bundle("mime", [1])})]),
        new_code_cell("lost", outputs=[new_output("display_data", data={
            "application/vnd.jupyter.widget-view+json": {**view, "model_id": "0" * 32}, "text/plain": "lost"})]),
    ])
    nb.metadata.widgets = {WIDGET_STATE_MIME: json.loads(json.dumps(state))}
    nbformat.write(nb, str(path))
    return path


def test_widgets_drawn_from_saved_state(tmp_path):
    src = widgets_notebook(tmp_path / "w.ipynb")
    nb = nbformat.read(str(src), as_version=4)
    counts = export.render_static_outputs(nb, "/* plotly.js */")
    assert counts == {"figures": 2, "widgets": 2, "missing": 1}
    datas = [o.data for c in nb.cells for o in c.outputs]
    assert all("application/vnd.jupyter.widget-view+json" not in d for d in datas)  # replaced ...
    assert datas[0]["text/plain"] == "VBox(...)"  # ... the rest of the output kept
    html = datas[0]["text/html"]
    assert html.count(".pnw-ctl {") == 1 and ".pnw-ctl {" not in datas[2]["text/html"]  # CSS once
    assert "<h3 id='title'>Viewer <i>title</i></h3>" in html  # HTML widgets: their value as HTML
    assert "a &lt;label&gt;" in html and "heatmaps &lt;x&gt;" in html  # text escaped
    # the image: its binary buffer (base64 in the state's `buffers`) as a data URI
    assert f'src="data:image/png;base64,{base64.b64encode(PNG).decode()}" width="40" height="40"' in html
    # controls as disabled look-alikes showing their values
    assert '<input class="pnw-range" type="range" disabled min="0" max="8" value="4"' in html
    assert '<span class="pnw-readout">4</span>' in html and '<span class="pnw-desc">person</span>' in html
    assert "<option selected>b.jpg</option>" in html
    assert re.search(r'<button class="pnw-btn pnw-on" disabled[^>]*>crop</button>', html)
    assert '<input type="checkbox" disabled checked>' in html and "\u2039" in html  # chevron-left glyph
    assert 'value="spec.to_json()"' in html and "{&quot;a&quot;: 1}</textarea>" in html
    assert 'style="width:50.0%;background:#4caf50"' in html  # the progress bar
    assert "display:none" in html and "hidden part" in html  # hidden, as in JupyterLab
    assert "<details><summary>config.json</summary>" in html and "<i>config body</i>" in html
    assert html.index("tab two") < html.index("tab one")  # the selected tab first
    assert "flex:1 1 480px" in html and "border-top:1px solid red" in html  # Layout -> CSS
    assert "width:300px" in html  # ipywidgets' default control width
    assert "printed in the output widget" in html and "<b id='in-output'>html in output</b>" in html  # Output
    assert "background:red" in html and "[widget not shown" not in html
    assert "[widget not shown: its state was not saved in the notebook]" in datas[2]["text/html"]
    # plotly.js with the first figure only (the FigureWidget, in the first cell), before its script
    assert html.index("/* plotly.js */") < html.index('id="posenas-widget-plotly-1"')
    assert "/* plotly.js */" not in datas[1]["text/html"] and 'id="posenas-plotly-1-0"' in datas[1]["text/html"]
    # the FigureWidget's data: its float32 x (a typed-array buffer) as a list
    fig = json.loads(re.search(r"newPlot\(el, (\{.*\})\);", html).group(1))
    assert fig["data"][0]["x"] == [1.0, 2.0, 3.0] and fig["data"][0]["y"] == [3, 1, 2]
    assert fig["data"][0]["mode"] == "markers" and fig["layout"]["height"] == 360


def test_export_of_widgets_needs_no_widget_manager(tmp_path):
    src = widgets_notebook(tmp_path / "w.ipynb")
    path, warnings = export.export_html_with_warnings(src, tmp_path / "w.html")
    html = path.read_text()
    assert warnings == ["HTML export: 1 widget(s) not drawn: their state is not saved in w.ipynb"]
    # no view left for a widget manager, and none in the page (a script from a CDN: blank offline)
    assert "application/vnd.jupyter.widget-view+json" not in html and WIDGET_STATE_MIME not in html
    assert "html-manager" not in html and "embed-amd" not in html
    assert html.count('class="pnw pnw-root"') == 2 and html.count("window.PlotlyConfig") == 1
    assert html.count("Plotly.newPlot(el,") == 2 and "Viewer <i>title</i>" in html
    assert f"data:image/png;base64,{base64.b64encode(PNG).decode()}" in html
    # the renderer reads the JSON state alone (no ipywidgets): without a figure callback, a note
    from posenas_core.runs.static_widgets import StaticWidgetRenderer
    from posenas_core.runs.widget_state import saved_widget_state

    nb = nbformat.read(str(src), as_version=4)
    r = StaticWidgetRenderer(saved_widget_state(nb))
    out = r.render_view(nb.cells[0].outputs[0].data["application/vnd.jupyter.widget-view+json"])
    assert "plotly figure not shown" in out and (r.widgets, r.figures, r.missing) == (1, 1, 0)


def test_unknown_widget_and_cycle_are_safe():
    from posenas_core.runs.static_widgets import StaticWidgetRenderer

    models = {
        "a": {"model_name": "VBoxModel", "model_module": "@jupyter-widgets/controls",
              "state": {"children": ["IPY_MODEL_b", "IPY_MODEL_a"]}},
        "b": {"model_name": "FancyThingModel", "model_module": "fancy", "state": {"value": "<v>"}},
    }
    html = StaticWidgetRenderer(models).render_view({"model_id": "a"})
    assert "[FancyThing: &lt;v&gt;]" in html and html.count("pnw-vbox") == 2  # the cycle drawn once
    anyw = {"c": {"model_name": "AnyModel", "state": {"_anywidget_id": "__main__.Big", "value": 7}}}
    assert "[Big: 7]" in StaticWidgetRenderer(anyw).render_view({"model_id": "c"})  # named by its class


def test_untitled_panes_styles_and_tracebacks():
    from posenas_core.runs.static_widgets import StaticWidgetRenderer, strip_ansi

    label = {"model_name": "LabelModel", "state": {"value": "x"}}
    models = {
        "t": {"model_name": "TabModel", "state": {"children": ["IPY_MODEL_l", "IPY_MODEL_l"], "titles": ["", "two"],
                                                  "selected_index": 1}},
        "a": {"model_name": "AccordionModel", "state": {"children": ["IPY_MODEL_l"], "selected_index": 0}},
        "l": label,
        "b": {"model_name": "ButtonModel", "state": {"description": "go", "style": "IPY_MODEL_s"}},
        "c": {"model_name": "ButtonModel", "state": {"description": "no", "style": "s"}},  # not a model reference
        "s": {"model_name": "ButtonStyleModel", "state": {"button_color": "pink"}},
        "o": {"model_name": "OutputModel", "state": {"outputs": [
            {"output_type": "error", "ename": "E", "evalue": "v", "traceback": ["\x1b[0;31mE\x1b[0m: <v>"]}]}},
    }
    r = StaticWidgetRenderer(models)
    tab = r.render_view({"model_id": "t"})
    assert '<span class="pnw-tab">tab 1</span><span class="pnw-tab pnw-on">two</span>' in tab
    assert '<div class="pnw-pane-title">tab 1</div>' in tab and "pane-title\">two" not in tab
    assert "<details open><summary>section 1</summary>" in r.render_view({"model_id": "a"})
    assert "background:pink" in r.render_view({"model_id": "b"})
    assert "pink" not in r.render_view({"model_id": "c"})
    assert '<pre class="pnw-error">E: &lt;v&gt;</pre>' in r.render_view({"model_id": "o"})
    assert strip_ansi("\x1b[1;32mok\x1b[0m done") == "ok done"


def test_live_figure_updates_reach_the_saved_state():
    """A FigureWidget updated after it was shown (the monitors: `lab._util.sync_figure`) keeps its current
    figure in the synced `_widget_data` that papermill saves, not the figure as first shown."""
    import plotly.graph_objects as go

    from lab._util import sync_figure

    fig = go.FigureWidget(go.Scatter(x=[], y=[]))
    fig._repr_mimebundle_()  # shown (empty)
    sync_figure(fig, go.Figure(go.Scatter(x=[1, 2], y=[0.5, 0.25])), ("xaxis",))
    state = fig.get_state()
    assert list(state["_widget_data"][0]["x"]) == [1, 2] and list(state["_widget_data"][0]["y"]) == [0.5, 0.25]


def test_markdown_formulas_become_mathml_and_code_is_left_alone():
    from posenas_core.runs.math_html import markdown_math_to_mathml

    out = markdown_math_to_mathml(r"loss $L = \frac{1}{N}$, `x = $y$`, costs \$5 and $$T_k(x) = 1$$" + "\n```\n$z$\n```")
    assert out.count("<math") == 2 and 'display="block"' in out and 'display="inline"' in out
    assert "<mfrac>" in out and "`x = $y$`" in out and r"\$5" in out and "\n```\n$z$\n```" in out
    assert markdown_math_to_mathml(r"bad $\notacommand{$ stays") == r"bad $\notacommand{$ stays"


def test_responsive_figures_follow_their_div_fixed_ones_do_not():
    from posenas_core.runs.plotly_html import plotly_figure_html

    responsive = plotly_figure_html({"data": [], "layout": {"height": 300}}, "a")
    fixed = plotly_figure_html({"data": [], "layout": {"width": 640, "height": 300}}, "b")
    assert '"responsive":true' in responsive and "ResizeObserver" in responsive and "Plots.resize(el)" in responsive
    assert "responsive" not in fixed and "ResizeObserver" not in fixed and "width:640px" in fixed
