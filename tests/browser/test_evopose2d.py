"""A real browser: JupyterLab in headless Chromium runs the EvoPose2D notebook with tiny parameters.

The notebook (parameters cell set to a tiny evolution: 16 + 4 SynthPose images at 64x64, lambda 2, mu 1,
one generation, one epoch each) runs from the Run menu; then, as a user would: the GenotypeEditor's
module-3 kernel is changed (its stats line and diagram follow), modules 5 and 6 both get stride 2 (the
validation error shows, the stats grey out) and the edit is undone; a point of the FrontExplorer is
clicked (its info panel and the editor load that candidate). Screenshots in `test-artifacts/`
(gitignored): `evopose2d_notebook.png`, `evopose2d_editor*.png`, `evopose2d_monitor.png`,
`evopose2d_front*.png`; on failure `evopose2d_failure.png` and `evopose2d.log`. Fixtures: conftest.py.
"""

from __future__ import annotations

import json
import time

import pytest

TINY = {"n_train": 24, "n_val": 4, "difficulty": "default", "input_size": "64x64", "lam": 2, "mu": 1,
        "generations": 1, "e0": 1, "e": 1, "gamma": -0.07, "target_params": 5000000.0, "kernel_transfer": True,
        "executor": "sequential", "threads": 1, "seed": 0}
RUN_TIMEOUT_S = 150

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(300)]


def _genes(editor) -> str:
    """The genotype string the editor's controls show (k<kernel>b<blocks>c<ch8>s<stride> per module)."""
    parts = []
    for m in range(1, 8):
        k = editor.locator(f".posenas-kernel-{m} select").input_value()
        b = editor.locator(f".posenas-blocks-{m} .widget-readout").inner_text().strip()
        c = editor.locator(f".posenas-ch8-{m} .widget-readout").inner_text().strip()
        s = editor.locator(f".posenas-stride-{m} select").input_value()
        parts.append(f"k{k}b{b}c{c}s{s}")
    return "-".join(parts)


def _fills(output, plot) -> None:
    """The plotly figure fills (>= 90 % of) its output area's width (not plotly's 700 px default)."""
    deadline = time.time() + 15
    while True:
        w_out = output.bounding_box()["width"]
        w_svg = float(plot.locator(".main-svg").first.get_attribute("width"))
        if w_svg >= 0.9 * w_out:
            return
        assert time.time() < deadline, f"figure {w_svg:g} px wide in an output of {w_out:g} px"
        time.sleep(0.3)


def _plot_state(plot) -> str:
    """What plotly.js holds for a figure (trace lengths, size, points drawn): the message of a failed
    point count, to tell a lost update from a figure not drawn."""
    return plot.evaluate("""gd => JSON.stringify({
        x_lengths: (gd.data || []).map(t => (t.x || []).length),
        size: gd._fullLayout ? [gd._fullLayout.width, gd._fullLayout.height] : null,
        points: gd.querySelectorAll('.point').length,
        box: [gd.clientWidth, gd.clientHeight], visible: gd.checkVisibility ? gd.checkVisibility() : null})""")


def _click_point(page, point, info, tries: int = 3) -> None:
    """Click a plotly point until the FrontExplorer's info panel shows a candidate (a click can miss while a
    late re-fit of the figure moves the point, or while a loaded kernel is slow to answer: click again)."""
    previous = info.inner_text()
    for attempt in range(tries):
        box = point.bounding_box()
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        page.mouse.move(x, y)
        page.mouse.click(x, y)
        try:
            page.wait_for_function("([el, t]) => /id\\s*\\d/.test(el.innerText) && el.innerText !== t",
                                   arg=[info.element_handle(), previous], timeout=15_000)
            return
        except Exception:
            if attempt == tries - 1:
                raise


def test_evopose2d_in_jupyterlab(lab_browser):
    t0 = time.time()
    lab = lab_browser("evopose2d", {"width": 1400, "height": 5200})
    page = lab.page
    nb = lab.tiny_notebook("02_evopose2d.ipynb", dict(TINY, out_dir=str(lab.root / "out")), "evopose2d_tiny.ipynb")
    metrics = lab.root / "out" / "metrics.json"
    lab.open(nb)
    t_run = lab.run_all(metrics, RUN_TIMEOUT_S)
    assert json.loads(metrics.read_text())["candidates"] == 3

    # --- GenotypeEditor: the ancestor at the notebook's 64x64, a vertical bar per stage, full width
    editor = page.locator(".jp-OutputArea-output:has(.posenas-stats)").first
    editor.wait_for()
    ancestor = "k3b1c2s1-k3b2c3s2-k5b2c5s2-k3b3c10s2-k5b3c14s1-k5b4c24s2-k3b1c40s1"
    assert _genes(editor) == ancestor
    stats = editor.locator(".posenas-stats")
    assert "at 64x64" in stats.inner_text(), stats.inner_text()
    diagram = editor.locator(".js-plotly-plot")
    bars = diagram.locator(".barlayer .point")
    bars.nth(8).wait_for(timeout=30_000)        # plotly draws after the widget appears: wait, do not race it
    assert bars.count() == 9
    heights = [bars.nth(i).locator("path").first.bounding_box()["height"] for i in range(9)]   # the bar, not its label
    assert heights[7] > 5 * heights[1], f"bars not drawn by channels (module 1 16, module 7 320): {heights}"
    _fills(editor, diagram)
    for b in editor.locator("button").all():  # labels fit their buttons ("load preset", "send to notebook")
        assert b.evaluate("e => e.scrollWidth <= e.clientWidth + 1"), f"button label cut: {b.inner_text()!r}"
    lab.shot("evopose2d_editor.png", editor)

    # change a gene: module 3 kernel 5 -> 3; the stats line (params, MACs) and the diagram follow
    before = stats.inner_text()
    editor.locator(".posenas-kernel-3 select").select_option("3")
    page.wait_for_function("([el, t]) => el.innerText !== t", arg=[stats.element_handle(), before])
    assert "params" in stats.inner_text() and "invalid" not in editor.inner_text()
    deadline = time.time() + 15
    while "k3 b2 s2" not in diagram.locator(".xtick").nth(3).text_content():
        assert time.time() < deadline, f"diagram ticks: {diagram.locator('.xtick').all_text_contents()}"
        time.sleep(0.3)
    lab.shot("evopose2d_editor_edited.png", editor)

    # an invalid edit: modules 5 and 6 both stride 2 -> the SpecError shows, the stats grey out; undo it
    editor.locator(".posenas-stride-5 select").select_option("2")
    validation = editor.locator(".posenas-validation")
    validation.get_by_text("invalid").wait_for()
    assert "stride" in validation.inner_text(), validation.inner_text()
    assert "last valid spec" in stats.inner_text()
    lab.shot("evopose2d_editor_invalid.png", editor)
    editor.locator(".posenas-stride-5 select").select_option("1")
    page.wait_for_function("el => !el.innerText.includes('invalid')", arg=validation.element_handle())

    # --- EvolutionMonitor: finished, 3 candidates drawn, full width
    monitor = page.locator(".jp-OutputArea-output:has(.posenas-status):has(.js-plotly-plot)").first
    assert "finished" in monitor.locator(".posenas-status").inner_text()
    assert "3 candidates" in monitor.locator(".posenas-status").inner_text()
    points = monitor.locator(".js-plotly-plot .scatterlayer .trace").first.locator(".point")
    deadline = time.time() + 20  # the last figure update can reach the browser after the status text
    while points.count() != 3 and time.time() < deadline:
        time.sleep(0.25)
    assert points.count() == 3, _plot_state(monitor.locator(".js-plotly-plot").first)
    _fills(monitor, monitor.locator(".js-plotly-plot"))
    lab.shot("evopose2d_monitor.png", monitor)

    # --- FrontExplorer: click a child's point -> info panel + the editor loads its genotype
    front = page.locator(".jp-OutputArea-output:has(.posenas-info)").first
    plot = front.locator(".js-plotly-plot")
    points = plot.locator(".scatterlayer .trace").first.locator(".point")
    assert points.count() == 3
    lab.shot("evopose2d_front.png", front)
    info = front.locator(".posenas-info")
    for i in range(3):
        _click_point(page, points.nth(i), info)
        genotype = info.locator("code").first.inner_text().strip()
        if genotype != ancestor:
            break
    assert genotype != ancestor, "every point clicked loaded the ancestor"
    deadline = time.time() + 15
    while _genes(editor) != genotype:
        assert time.time() < deadline, f"the editor shows {_genes(editor)}, not the clicked {genotype}"
        time.sleep(0.3)
    assert "generation" in info.inner_text() and "params" in info.inner_text()
    assert not lab.error_text(), lab.error_text()
    lab.shot("evopose2d_front_selected.png", front)
    lab.shot("evopose2d_editor_loaded.png", editor)
    lab.shot("evopose2d_notebook.png")
    print(f"run all {t_run:.1f} s, test {time.time() - t0:.1f} s")
