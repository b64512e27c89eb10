"""A real browser: JupyterLab in headless Chromium runs the quickstart notebook with tiny parameters.

JupyterLab on 127.0.0.1 (free port, random token) with a kernelspec that runs *this* interpreter (the
project's venv; fixtures in conftest.py) opens the quickstart (parameters cell set to tiny values, as a
user would type them) in headless Chromium through Playwright, runs all cells from the Run menu, asserts
that the PoseViewer (ipywidgets slider + image) and the plotly figures rendered (the AP bar chart exactly once), that the
TrainingMonitor's config panel is not squeezed beside its figure, moves the PoseViewer's slider with the
keyboard and asserts that the picture changed. Screenshots land in `test-artifacts/` (gitignored): the
whole notebook, the PoseViewer before/after the slider move, the TrainingMonitor and the AP bar chart;
on failure `jupyterlab_failure.png` and `jupyterlab.log`.
"""

from __future__ import annotations

import json
import time

import pytest

TINY = {"n_train": 24, "n_val": 6, "difficulty": "default", "input_size": "128x96", "model": "baseline-resnet",
        "epochs": 1, "minutes": 0.05, "precision": "fp32", "seed": 0}
RUN_TIMEOUT_S = 150  # papermill runs the tiny notebook in ~20 s

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(300)]


def test_quickstart_in_jupyterlab(lab_browser):
    # JupyterLab scrolls inside its own panel: a tall viewport shows the whole executed notebook
    lab = lab_browser("jupyterlab", {"width": 1400, "height": 4200})
    page = lab.page
    nb = lab.tiny_notebook("00_quickstart.ipynb", dict(TINY, out_dir=str(lab.root / "out")), "quickstart_tiny.ipynb")
    metrics = lab.root / "out" / "metrics.json"
    lab.open(nb)
    lab.run_all(metrics, RUN_TIMEOUT_S)
    assert 0.0 <= json.loads(metrics.read_text())["AP"] <= 1.0

    # the PoseViewers: ipywidgets slider + decoded PNG image, the info panel names the person
    viewers = page.locator(".jp-OutputArea-output:has(.widget-image)")
    viewers.nth(1).wait_for(timeout=30_000)
    assert viewers.count() == 2, "expected two PoseViewers (ground truth, predictions)"
    viewer = viewers.first
    img = viewer.locator(".widget-image")
    slider = viewer.locator(".widget-slider").first
    readout = slider.locator(".widget-readout")
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=img.element_handle(), timeout=20_000)
    assert readout.inner_text().strip() == "0"
    assert "1 / " in viewer.inner_text()
    # the view toggle's labels fit their buttons (no "full im...")
    for b in viewer.locator(".widget-toggle-buttons button").all():
        assert b.evaluate("e => e.scrollWidth <= e.clientWidth"), f"button label cut: {b.inner_text()!r}"

    # plotly: the AP bar chart (fig.show()) has bars and is drawn exactly once
    bar = page.locator(".jp-RenderedPlotly").first
    bar.wait_for(timeout=30_000)
    assert bar.locator(".barlayer .point").count() >= 2, "the AP bar chart shows no bars"
    bar_cell = page.locator(".jp-CodeCell:has(.jp-RenderedPlotly)").last
    assert bar_cell.locator(".js-plotly-plot").count() == 1, "the AP bar chart is drawn more than once"
    # the TrainingMonitor's FigureWidget has axes and a visible single-step loss curve; the config
    # panel is not squeezed beside the figure (it wraps below it in a narrow output area)
    monitor = page.locator(".jp-OutputArea-output:has(.widget-hprogress):has(.js-plotly-plot)").first
    monitor.wait_for(timeout=30_000)
    assert monitor.locator(".js-plotly-plot .xaxislayer-above").count() >= 3
    assert monitor.locator(".js-plotly-plot .scatterlayer .point").count() >= 2, "single-point curves invisible"
    assert "finished" in monitor.inner_text()
    config_box = monitor.locator(".posenas-config").first
    assert config_box.bounding_box()["width"] >= 280, config_box.bounding_box()
    status = monitor.locator(".posenas-status").first
    assert status.bounding_box()["height"] < 30, "the status line wraps"

    lab.shot("jupyterlab_notebook.png")
    lab.shot("jupyterlab_poseviewer_before.png", viewer)
    lab.shot("jupyterlab_training_monitor.png", monitor)
    lab.shot("jupyterlab_plotly_ap_bar.png", bar)

    # move the slider one step with the keyboard, as a user would
    src_before, png_before = img.get_attribute("src"), img.screenshot()
    assert src_before and src_before.startswith(("blob:", "data:")), src_before
    slider.locator(".noUi-handle").first.click()
    page.keyboard.press("ArrowRight")
    page.wait_for_function("el => el.textContent.trim() === '1'", arg=readout.element_handle(), timeout=10_000)
    deadline = time.time() + 20
    while img.get_attribute("src") == src_before or img.screenshot() == png_before:
        assert time.time() < deadline, "moving the PoseViewer's slider did not change the picture"
        time.sleep(0.3)
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=img.element_handle())
    assert "2 / " in viewer.inner_text(), "the info panel did not follow the slider"
    assert not lab.error_text(), lab.error_text()
    lab.shot("jupyterlab_poseviewer_after.png", viewer)
