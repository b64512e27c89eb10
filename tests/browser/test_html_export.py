"""plotly figures of an executed notebook in its HTML export (offline) and in JupyterLab when reopened.

A tiny parameterized notebook shows two plotly figures (``fig.show()`` and a figure as a cell's value:
plotly's Jupyter default, the plotly mime type, which nbconvert alone "is not able to represent") and a
``go.FigureWidget`` (an anywidget whose saved state would carry plotly's ~5 MB ``_esm`` bundle). It is
run with `posenas_core.runs.notebooks.run_notebook` (papermill, a kernel of this interpreter), which
strips the widget bundle from notebook.ipynb and writes notebook.html with plotly.js embedded once.

- the HTML opened from disk in headless Chromium with every http(s) request aborted (offline, as here):
  both figures are drawn with their bars, no script error. Screenshot: test-artifacts/html_export_ap_bar.png.
- the executed notebook reopened in JupyterLab (not run again): both figures drawn once each, the stripped
  widget shows its note instead of an error. Screenshot: test-artifacts/reopened_executed_notebook.png.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import nbformat
import pytest

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

CELLS = [
    "import plotly.graph_objects as go\nimport lab",
    'lab.ap_bar({"Head": 0.5, "Hip": 0.25, "Total": 0.375}).show()',
    'lab.ap_bar({"Head": 0.125, "Total": 0.25})',
    'go.FigureWidget(go.Bar(x=["a", "b"], y=[1, 2]))',
]


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """run_notebook on the tiny notebook (once for this file) -> its run directory (notebook.ipynb, .html)."""
    from posenas_core.runs.notebooks import run_notebook

    tmp = tmp_path_factory.mktemp("export")
    # a kernelspec for this interpreter (the project's venv), one torch thread, found through JUPYTER_PATH
    prefix = tmp / "prefix"
    subprocess.run([sys.executable, "-m", "ipykernel", "install", "--prefix", str(prefix), "--name", "venv-export",
                    "--env", "OMP_NUM_THREADS", "1"], check=True, capture_output=True)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell('title = "AP"', metadata={"tags": ["parameters"]})]
    nb.cells += [nbformat.v4.new_code_cell(src) for src in CELLS]
    nbformat.write(nb, tmp / "figs.ipynb")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYTER_PATH", str(prefix / "share" / "jupyter"))
        rec = run_notebook(tmp / "figs.ipynb", tmp / "run", kernel_name="venv-export", cwd=tmp, timeout=120)
    assert rec.ok and not rec.warnings, (rec.error, rec.warnings)
    return tmp / "run"


def test_plotly_figures_in_exported_html(executed, chromium, artifacts):
    saved = json.loads((executed / "notebook.ipynb").read_text())
    outs = [o for c in saved["cells"] for o in c.get("outputs", [])]
    # the notebook keeps plotly's mime type only (no text/html copy, no plotly.js) ...
    assert [sorted(o["data"]) for o in outs if "application/vnd.plotly.v1+json" in o.get("data", {})] == \
        [["application/vnd.plotly.v1+json"]] * 2
    # ... and the FigureWidget's state without plotly's bundle
    state = saved["metadata"]["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    esm = [m["state"]["_esm"] for m in state.values() if m["model_module"] == "anywidget"]
    assert len(esm) == 1 and len(esm[0]) < 300 and "not saved" in esm[0]
    assert (executed / "notebook.ipynb").stat().st_size < 500_000

    html_path = executed / "notebook.html"
    html = html_path.read_text()
    assert html.count("window.PlotlyConfig") == 1 and 4_000_000 < len(html) < 6_000_000  # plotly.js once
    assert not re.search(r"<script[^>]+src=[^>]*plotly", html), "plotly.js from a CDN"

    page = chromium.new_page(viewport={"width": 1100, "height": 1400})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.route("http*://**", lambda route: route.abort())  # offline, as here (the CDN scripts fail)
    page.goto(html_path.resolve().as_uri(), wait_until="load", timeout=60_000)
    plot = page.locator(".js-plotly-plot")
    plot.nth(1).wait_for(timeout=30_000)
    assert plot.count() == 2
    assert plot.nth(0).locator(".barlayer .point").count() == 3, "the exported figure has no bars"
    assert plot.nth(1).locator(".barlayer .point").count() == 2
    assert plot.nth(0).bounding_box()["width"] > 800  # fills the output width (responsive)
    assert not errors, errors
    plot.first.screenshot(path=str(artifacts / "html_export_ap_bar.png"))


@pytest.mark.slow
def test_reopened_executed_notebook_in_jupyterlab(executed, lab_browser):
    from nbformat.sign import NotebookNotary

    lab = lab_browser("reopened", {"width": 1200, "height": 1600})
    nb = nbformat.read(executed / "notebook.ipynb", as_version=4)
    specs = [n for n in lab.api("kernelspecs")["kernelspecs"] if n.startswith("posenas")]  # conftest's: this venv
    nb.metadata.kernelspec = {"name": specs[0], "display_name": "PoseNAS (venv)", "language": "python"}
    # trusted, as after "Trust Notebook": JupyterLab draws no widget of an untrusted notebook (text/plain
    # only) and restores the saved widget state of a trusted one
    NotebookNotary(data_dir=str(lab.root / "jupyter" / "data")).sign(nb)
    nbformat.write(nb, lab.root / "reopened.ipynb")
    errors = []
    lab.page.on("pageerror", lambda e: errors.append(str(e)))
    lab.open(lab.root / "reopened.ipynb")
    page = lab.page
    figs = page.locator(".jp-RenderedPlotly")
    figs.nth(1).locator(".barlayer .point").first.wait_for(timeout=30_000)
    # the FigureWidget's model is restored from the saved state; its stub module says why it is not drawn
    page.get_by_text("widget not shown: its code").wait_for(timeout=30_000)
    lab.shot("reopened_executed_notebook.png")
    assert figs.count() == 2 and page.locator(".js-plotly-plot").count() == 2, "each figure drawn exactly once"
    assert figs.nth(0).locator(".barlayer .point").count() == 3
    assert "Error displaying widget" not in page.locator(".jp-Notebook").inner_text()
    assert not errors, errors
