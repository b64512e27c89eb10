"""WORK IN PROGRESS (issue 3; not collected: the file name does not start with test_). Last run: the notebook
did not finish within 300 s inside JupyterLab while the same notebook passes under papermill in 19 s.

A real browser: JupyterLab in headless Chromium runs the quickstart notebook with tiny parameters.

Asserts that the PoseViewer and a plotly figure rendered, moves the PoseViewer's slider and asserts the
picture changed; keeps a screenshot in test-artifacts/. Mandatory in CI (CI=true); elsewhere it skips
with the reason when Chromium or Playwright is missing.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"
IN_CI = os.environ.get("CI", "").lower() == "true"


def _require(ok: bool, why: str):
    if not ok:
        if IN_CI:
            pytest.fail(f"browser test is mandatory in CI: {why}")
        pytest.skip(why)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tiny_notebook(dst: Path) -> Path:
    """The quickstart with tiny values in its parameters cell (what a user would type)."""
    nb = json.loads((ROOT / "notebooks" / "00_quickstart.ipynb").read_text())
    for cell in nb["cells"]:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            cell["source"] = ("n_train = 24\nn_val = 6\ndifficulty = \"default\"\ninput_size = \"128x96\"\n"
                              "model = \"baseline-resnet\"\nepochs = 1\nminutes = 0.05\nseed = 0\n"
                              f"out_dir = {json.dumps(str(dst / 'out'))}\n")
    path = dst / "quickstart_tiny.ipynb"
    path.write_text(json.dumps(nb))
    return path


@pytest.fixture()
def jupyterlab(tmp_path):
    _require(Path(CHROMIUM).exists(), f"{CHROMIUM} not found (apt-get install chromium)")
    try:
        import playwright  # noqa: F401
    except ImportError:
        _require(False, "playwright is not installed (pip install playwright)")
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ)
    jroot = tmp_path / "jupyter"
    env.update(JUPYTER_CONFIG_DIR=str(jroot / "config"), JUPYTER_RUNTIME_DIR=str(jroot / "runtime"),
               IPYTHONDIR=str(jroot / "ipython"), JUPYTER_DATA_DIR=str(jroot / "data"),
               PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""))
    # the kernel must run this interpreter (the project's venv)
    subprocess.run([sys.executable, "-m", "ipykernel", "install", "--prefix", str(jroot / "prefix"),
                    "--name", "python3"], check=True, env=env, capture_output=True)
    env["JUPYTER_PATH"] = str(jroot / "prefix" / "share" / "jupyter")
    log = open(tmp_path / "jupyterlab.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--ServerApp.token={token}", f"--ServerApp.root_dir={tmp_path}", "--ServerApp.allow_root=True",
         "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        try:
            urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                pytest.fail("JupyterLab did not start:\n" + (tmp_path / "jupyterlab.log").read_text()[-3000:])
            time.sleep(0.5)
    try:
        yield base, token, tmp_path
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_quickstart_in_jupyterlab(jupyterlab):
    from playwright.sync_api import sync_playwright

    base, token, root = jupyterlab
    nb = _tiny_notebook(root)
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--disable-quic"])
        page = browser.new_page(viewport={"width": 1400, "height": 4000})
        try:
            page.goto(f"{base}/lab/tree/{nb.name}?token={token}", timeout=60_000)
            page.wait_for_selector(".jp-Notebook", timeout=60_000)
            page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=60_000)
            page.click("text=Run", timeout=10_000)
            page.click("text=Run All Cells", timeout=10_000)
            # the metrics cell is last: wait for the run to finish (metrics.json appears)
            deadline = time.time() + 300
            while not (root / "out" / "metrics.json").exists():
                assert time.time() < deadline, "the notebook did not finish within 300 s"
                errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
                if page.locator(".jp-RenderedText[data-mime-type='application/vnd.jupyter.error']").count():
                    page.screenshot(path=str(ARTIFACTS / "jupyterlab_error.png"), full_page=True)
                    pytest.fail("a cell raised: " + page.locator(
                        ".jp-RenderedText[data-mime-type='application/vnd.jupyter.error']").first.inner_text()[:2000])
                del errors
                time.sleep(1)
            page.wait_for_selector(".js-plotly-plot", timeout=60_000)
            viewer_img = page.locator(".widget-image").first
            viewer_img.wait_for(timeout=60_000)
            assert page.locator(".widget-slider").count() >= 1
            before = viewer_img.get_attribute("src")
            assert before and before.startswith("blob:") or before.startswith("data:")
            shot_before = viewer_img.screenshot()
            # move the first PoseViewer's slider one step with the keyboard
            handle = page.locator(".widget-slider .noUi-handle, .widget-slider .ui-slider-handle").first
            handle.click()
            page.keyboard.press("ArrowRight")
            deadline = time.time() + 20
            while viewer_img.screenshot() == shot_before:
                assert time.time() < deadline, "moving the PoseViewer slider did not change the picture"
                time.sleep(0.5)
            assert page.locator(".js-plotly-plot").count() >= 1
            page.screenshot(path=str(ARTIFACTS / "jupyterlab_quickstart.png"), full_page=False)
        finally:
            browser.close()
