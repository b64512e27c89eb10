"""posenas_core.runs.notebooks: widget code bundles stripped from executed notebooks, plotly figures drawn
in the HTML export with plotly.js embedded once (offline).

Hand-made notebooks (no kernel) except one run_notebook test; the browser test of the same export is
tests/browser/test_html_export.py.
"""

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from posenas_core.runs import notebooks as nbmod
from posenas_core.runs.notebooks import (
    PLOTLY_MIME,
    WIDGET_STATE_MIME,
    export_html,
    plotlyjs_path,
    run_notebook,
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
    assert fig["_esm"] == nbmod.STRIPPED_ESM % len(BIG_ESM) and str(len(BIG_ESM)) in fig["_esm"]
    assert fig["_esm"].startswith("export default") and "run the cell again" in fig["_esm"]
    assert fig["_css"] == nbmod.STRIPPED_CSS % 15_001
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
    # widget code is left out of the export too (nbconvert embeds the widget state)
    assert "x" * 20_000 not in html and "widget not shown" in html
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
    path, warnings = nbmod._export_html(write_figs_nb(tmp_path / "f.ipynb"), tmp_path / "f.html")
    html = path.read_text()
    assert html.count("plotly figure not shown: plotly.js was not found") == 2 and "PlotlyConfig" not in html
    assert warnings == [f"HTML export: 2 plotly figure(s) not drawn: plotly.js not found "
                        f"(plotly is not installed for {sys.executable})"]


def test_export_does_not_import_plotly(tmp_path):  # (nbconvert itself imports IPython)
    src = write_figs_nb(tmp_path / "figs.ipynb")
    code = ("import sys; from posenas_core.runs.notebooks import export_html; "
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
    assert len(models) == 1 and models[0]["_esm"] == nbmod.STRIPPED_ESM % len(BIG_ESM) and models[0]["value"] == 7
    assert (tmp_path / "run" / "notebook.ipynb").stat().st_size < 10_000
    html = (tmp_path / "run" / "notebook.html").read_text()
    assert html.count("window.PlotlyConfig") == 1 and html.count("Plotly.newPlot(el,") == 1
