"""A plotly figure shown in an executed notebook survives nbconvert's HTML export, offline.

nbconvert drops the `application/vnd.plotly.v1+json` output JupyterLab draws ("not able to be
represented"); `import lab` makes plotly add an offline text/html copy (plotly.js embedded once per
notebook, no CDN: `lab._util.use_export_renderer`). A two-cell notebook is executed with nbclient in a
kernel of this interpreter, exported with the project's `export_html` (what `posenas run` writes as
notebook.html), opened in headless Chromium from disk (no network here): the bar chart is drawn.
Screenshot: test-artifacts/html_export_ap_bar.png.
"""

from __future__ import annotations

import sys

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]


def test_plotly_figure_in_exported_html(chromium, artifacts, tmp_path, monkeypatch):
    import subprocess

    import nbformat
    from nbclient import NotebookClient

    from posenas_core.runs.notebooks import export_html

    # a kernelspec for this interpreter (the project's venv), one torch thread, found through JUPYTER_PATH
    prefix = tmp_path / "prefix"
    subprocess.run([sys.executable, "-m", "ipykernel", "install", "--prefix", str(prefix), "--name", "venv-export",
                    "--env", "OMP_NUM_THREADS", "1"], check=True, capture_output=True)
    monkeypatch.setenv("JUPYTER_PATH", str(prefix / "share" / "jupyter"))

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import lab"),
                nbformat.v4.new_code_cell('lab.ap_bar({"Head": 0.5, "Hip": 0.25, "Total": 0.375}).show()')]
    client = NotebookClient(nb, timeout=120, kernel_name="venv-export",
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outs = nb.cells[1].outputs
    mimes = [sorted(o.get("data", {})) for o in outs]
    # plotly.js once (text/html), then the figure: plotly mime type (JupyterLab) + text/html (export)
    assert mimes == [["text/html"], ["application/vnd.plotly.v1+json", "text/html"]], mimes
    ipynb = tmp_path / "nb.ipynb"
    nbformat.write(nb, ipynb)
    html = export_html(ipynb, tmp_path / "nb.html")

    page = chromium.new_page(viewport={"width": 1100, "height": 900})
    page.route("http*://**", lambda route: route.abort())  # offline, as here (the CDN scripts fail)
    page.goto(html.resolve().as_uri(), wait_until="load", timeout=60_000)
    plot = page.locator(".js-plotly-plot")
    plot.first.wait_for(timeout=30_000)
    assert plot.count() == 1
    assert plot.first.locator(".barlayer .point").count() == 3, "the exported figure has no bars"
    plot.first.screenshot(path=str(artifacts / "html_export_ap_bar.png"))
