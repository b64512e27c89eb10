"""plotly figures and widgets of an executed notebook in its HTML export (offline), the reopened notebook in
JupyterLab, and a sweep's index.html.

A tiny parameterized notebook shows two plotly figures (``fig.show()`` and a figure as a cell's value:
plotly's Jupyter default, the plotly mime type, which nbconvert alone "is not able to represent") and a
``go.FigureWidget`` (an anywidget whose saved state would carry plotly's ~5 MB ``_esm`` bundle). It is
run with `posenas_core.runs.notebooks.run_notebook` (papermill, a kernel of this interpreter), which
strips the widget bundle from notebook.ipynb and writes notebook.html with plotly.js embedded once.

- the HTML opened from disk in headless Chromium with every http(s) request aborted (offline, as here):
  both figures and the FigureWidget (a static copy drawn from the saved widget state) are drawn with their
  bars, no script error. Screenshot: test-artifacts/html_export_ap_bar.png.
- the executed notebook reopened in JupyterLab (not run again): both figures drawn once each, the stripped
  widget shows its note instead of an error. Screenshot: test-artifacts/reopened_executed_notebook.png.
- the project's notebooks (quickstart, EvoPose2D) run with tiny parameters; their HTML opened offline shows a
  static copy of every widget drawn from the saved widget state: the PoseViewer's pictures (decoded, non-zero
  size), the TrainingMonitor's and EvolutionMonitor's curves with points, the GenotypeEditor's network diagram
  (bars), the FrontExplorer's candidates. Screenshots: test-artifacts/html_export_<widget>.png and
  html_export_{quickstart,evopose2d}_page.png.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

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
def kernel_prefix(tmp_path_factory):
    """A kernelspec "venv-export" for this interpreter (the project's venv), one torch thread, found through
    JUPYTER_PATH while the module's tests run."""
    prefix = tmp_path_factory.mktemp("kernel")
    subprocess.run([sys.executable, "-m", "ipykernel", "install", "--prefix", str(prefix), "--name", "venv-export",
                    "--env", "OMP_NUM_THREADS", "1"], check=True, capture_output=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYTER_PATH", str(prefix / "share" / "jupyter"))
        yield prefix


@pytest.fixture(scope="module")
def executed(tmp_path_factory, kernel_prefix):
    """run_notebook on the tiny notebook (once for this file) -> its run directory (notebook.ipynb, .html)."""
    from posenas_core.runs.notebooks import run_notebook

    tmp = tmp_path_factory.mktemp("export")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell('title = "AP"', metadata={"tags": ["parameters"]})]
    nb.cells += [nbformat.v4.new_code_cell(src) for src in CELLS]
    nbformat.write(nb, tmp / "figs.ipynb")
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
    plot.nth(2).wait_for(timeout=30_000)
    assert plot.count() == 3  # the two figures and the FigureWidget (a static copy from its saved state)
    assert plot.nth(0).locator(".barlayer .point").count() == 3, "the exported figure has no bars"
    assert plot.nth(1).locator(".barlayer .point").count() == 2
    assert plot.nth(2).locator(".barlayer .point").count() == 2, "the FigureWidget is not drawn"
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


# ---------------------------------------------------------------- the project's notebooks: every widget drawn

ROOT = Path(__file__).resolve().parents[2]
# tiny parameters (as tests/test_notebooks.py): each run takes well under a minute
TINY = {
    "00_quickstart.ipynb": {"n_train": 24, "n_val": 6, "minutes": 0.05, "epochs": 1},
    "02_evopose2d.ipynb": {"n_train": 24, "n_val": 4, "input_size": "64x64", "lam": 2, "mu": 1, "generations": 1,
                           "e0": 1, "e": 1, "threads": 1},
}


@pytest.fixture(scope="module")
def notebook_html(tmp_path_factory, kernel_prefix):
    """Both project notebooks run with tiny parameters -> {notebook name: its notebook.html}."""
    from posenas_core.runs.notebooks import run_notebook

    tmp = tmp_path_factory.mktemp("notebooks")
    out = {}
    for name, params in TINY.items():
        rec = run_notebook(ROOT / "notebooks" / name, tmp / name.removesuffix(".ipynb"), params,
                           kernel_name="venv-export", cwd=ROOT / "notebooks", timeout=300)
        assert rec.ok and not rec.warnings, (name, rec.error, rec.warnings)
        out[name] = tmp / name.removesuffix(".ipynb") / "notebook.html"
    return out


def _open_offline(chromium, html_path: Path):
    page = chromium.new_page(viewport={"width": 1200, "height": 900})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.route("http*://**", lambda route: route.abort())  # offline: nothing from a CDN
    page.goto(html_path.resolve().as_uri(), wait_until="load", timeout=60_000)
    return page, errors


def _points(root) -> int:
    root.locator(".js-plotly-plot").first.wait_for(timeout=30_000)
    return root.locator(".js-plotly-plot .scatterlayer .point").count()


def _widget(page, **filt):
    loc = page.locator(".pnw-root").filter(**filt)
    assert loc.count() == 1, f"expected one widget matching {filt}, found {loc.count()}"
    loc.scroll_into_view_if_needed()
    return loc


def _no_blank_widgets(page, html: str) -> None:
    assert "application/vnd.jupyter.widget-view+json" not in html, "a widget view is left for a widget manager"
    assert "html-manager" not in html and "embed-amd" not in html
    assert page.get_by_text("widget not shown").count() == 0
    assert page.get_by_text("plotly figure not shown").count() == 0


def _drawn_at_full_size(page) -> None:
    """Every plotly figure fills its div: not drawn wider than its box and scaled down by CSS (which crops the
    axes of a figure inside a widget box)."""
    page.wait_for_timeout(500)                                     # let resize observers redraw
    sizes = page.evaluate("""() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(d => {
        const s = d.querySelector('svg.main-svg'); return [d.id, d.getBoundingClientRect().width,
        s ? s.getBoundingClientRect().width : -1, d.getBoundingClientRect().height,
        s ? s.getBoundingClientRect().height : -1]; })""")
    bad = [x for x in sizes if abs(x[1] - x[2]) > 1 or abs(x[3] - x[4]) > 1]
    assert sizes and not bad, f"figures not drawn at their div's size (id, div w, svg w, div h, svg h): {bad}"


@pytest.mark.timeout(420)
def test_every_widget_of_the_notebooks_shows_in_exported_html(notebook_html, chromium, artifacts):
    # -- quickstart: 2 PoseViewers (ground truth, predictions), the TrainingMonitor, tqdm bars
    html_path = notebook_html["00_quickstart.ipynb"]
    page, errors = _open_offline(chromium, html_path)
    _no_blank_widgets(page, html_path.read_text())
    viewers = page.locator(".pnw-root").filter(has=page.locator("img.pnw-image"))
    assert viewers.count() == 2
    for i in range(2):
        img = viewers.nth(i).locator("img.pnw-image")
        img.scroll_into_view_if_needed()
        assert img.is_visible()
        box = img.bounding_box()
        assert box["width"] > 100 and box["height"] > 100, box
        natural = img.evaluate("el => [el.complete, el.naturalWidth, el.naturalHeight]")
        assert natural[0] and natural[1] > 0 and natural[2] > 0, f"the picture did not decode: {natural}"
    # the viewer's controls show their values (disabled look-alikes)
    assert viewers.first.locator("input[type=range]").count() == 1
    assert viewers.first.locator("select option[selected]").first.inner_text().startswith("val/")
    viewers.first.screenshot(path=str(artifacts / "html_export_pose_viewer.png"))
    monitor = _widget(page, has=page.locator("button", has_text="refresh"))
    assert _points(monitor) >= 2, "the TrainingMonitor's curves have no points"  # train loss, lr, val AP
    monitor.screenshot(path=str(artifacts / "html_export_training_monitor.png"))
    assert page.locator(".pnw-progress").count() >= 2  # tqdm bars
    _drawn_at_full_size(page)
    assert not errors, errors
    page.screenshot(path=str(artifacts / "html_export_quickstart_page.png"), full_page=True)
    page.close()

    # -- EvoPose2D: GenotypeEditor (network diagram), EvolutionMonitor, FrontExplorer
    html_path = notebook_html["02_evopose2d.ipynb"]
    page, errors = _open_offline(chromium, html_path)
    _no_blank_widgets(page, html_path.read_text())
    editor = _widget(page, has=page.locator("button", has_text="load preset"))
    editor.locator(".js-plotly-plot").first.wait_for(timeout=30_000)
    assert editor.locator(".js-plotly-plot .barlayer .point").count() == 9, "the network diagram has no bars"  # stem, 7 modules, head
    assert editor.locator("input[type=range]").count() == 14  # blocks and channels of 7 modules
    editor.screenshot(path=str(artifacts / "html_export_genotype_editor.png"))
    evo = _widget(page, has_text="/evolution")  # its title is the run directory
    assert _points(evo) >= 3, "the EvolutionMonitor has no points"  # 3 candidates (+ best / parents)
    evo.screenshot(path=str(artifacts / "html_export_evolution_monitor.png"))
    front = _widget(page, has=page.locator("button", has_text="val loss"))
    assert _points(front) >= 3, "the FrontExplorer has no candidates"
    front.screenshot(path=str(artifacts / "html_export_front_explorer.png"))
    _drawn_at_full_size(page)
    assert not errors, errors
    page.screenshot(path=str(artifacts / "html_export_evopose2d_page.png"), full_page=True)
    page.close()


# ---------------------------------------------------------------- a sweep's index.html on a laptop screen


def _sweep_dir(root: Path) -> Path:
    """A batch directory written by hand: three EvoPose2D-like runs with evolution archives, one failed run."""
    batch = root / "evo-sweep"
    for i, gamma in enumerate([0.0, -0.04, -0.07, -0.2]):
        d = batch / f"gamma-{gamma}"
        (d / "evolution").mkdir(parents=True)
        failed = i == 3
        metrics = {} if failed else {
            "AP": 0.1 + 0.05 * i, "coco": {"AP": 0.1 + 0.05 * i, "AP50": 0.3 + 0.05 * i}, "pck@0.2": 0.4 + 0.01 * i,
            "best_val_loss": 0.044 - 0.001 * i, "best_params": 3_600_000 - 400_000 * i, "best_macs": 42e6 - 3e6 * i}
        spec = json.dumps({"kind": "evopose2d", "genotype": [[3, 1, 2, 1]] * 7, "head_channels": 128 + i})
        rec = {"notebook": "notebooks/02_evopose2d.ipynb", "params": {"gamma": gamma, "spec": spec, "n_train": 300},
               "status": "failed" if failed else "ok", "started": "2026-11-28T23:05:01+00:00", "finished": "",
               "duration_s": 300.0 + 40 * i, "metrics": metrics, "files": [],
               "error": {"ename": "RuntimeError", "evalue": "boom", "cell_index": 7, "exec_count": 5} if failed else None}
        (d / "run.json").write_text(json.dumps(rec))
        (d / "notebook.html").write_text(f"<html><body>run {gamma}</body></html>")
        if not failed:
            rows = [{"id": k, "generation": k // 3, "genotype": f"g{k}", "status": "ok", "ap": 0.02 * k + i / 20,
                     "macs": 30e6 + 2e6 * ((7 * k + i) % 6), "val_loss": 0.046 - 0.0007 * ((5 * k + i) % 7)}
                     for k in range(9)]
            (d / "evolution" / "archive.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return batch


def test_sweep_index_offline_on_a_laptop_screen(tmp_path, chromium, artifacts):
    from posenas_core.runs.batch import write_index

    batch = _sweep_dir(tmp_path)
    _, index = write_index(batch)
    page = chromium.new_page(viewport={"width": 1366, "height": 768})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.route("http*://**", lambda route: route.abort())  # offline
    page.goto(index.resolve().as_uri(), wait_until="load", timeout=60_000)
    page.locator("#runs-fronts .scatterlayer .point").first.wait_for(timeout=30_000)
    assert page.evaluate("document.documentElement.scrollWidth") <= 1366, "the page scrolls sideways"
    head = page.locator("#headline")
    assert head.bounding_box()["x"] + head.bounding_box()["width"] <= 1366
    assert head.locator("thead th").all_inner_texts()[:3] == ["run", "AP", "AP50"]
    bars = page.evaluate("[...document.querySelectorAll('#runs-bar .barlayer .point path')]"
                         ".map(p => p.getBBox().height)")
    assert len(bars) == 4 and sum(h > 10 for h in bars) == 3, bars  # a bar per run that has an AP
    assert page.locator("#runs-fronts .scatterlayer .trace").count() == 6  # candidates + front per run
    assert page.locator("#runs-fronts .scatterlayer .point").count() == 27  # 3 runs x 9 candidates
    assert not page.locator("#details").is_visible()  # all parameters: collapsed
    # the fronts: val loss first, AP on a click (the archives have both)
    fronts = page.locator("#runs-fronts")
    assert fronts.locator(".ytitle").text_content() == "validation loss (lower is better)"
    fronts.locator(".updatemenu-button", has_text="AP").click()
    page.wait_for_function("document.querySelector('#runs-fronts .ytitle').textContent.startsWith('AP')")
    assert fronts.locator(".ytitle").text_content() == "AP (higher is better)"
    fronts.locator(".updatemenu-button", has_text="validation loss").click()
    # a click on a header sorts (AP, descending on a second click; the failed run stays last)
    head.locator("thead th", has_text="AP").first.click()
    head.locator("thead th", has_text="AP").first.click()
    runs = [t.split()[0] for t in head.locator("tbody td:first-child").all_inner_texts()]
    assert runs == ["gamma--0.07", "gamma--0.04", "gamma-0.0", "gamma--0.2"]
    # the run's link opens its notebook.html
    with page.expect_navigation():
        head.get_by_role("link", name="gamma--0.04", exact=True).click()
    assert page.url.endswith("gamma--0.04/notebook.html") and "run -0.04" in page.content()
    page.go_back()
    page.locator("#runs-bar .barlayer .point").first.wait_for(timeout=30_000)
    page.screenshot(path=str(artifacts / "batch_index.png"), full_page=True)
    assert not errors, errors
