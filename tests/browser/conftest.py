"""Real-browser tests: JupyterLab in headless Chromium through Playwright (marker `browser`).

The `jupyterlab` fixture starts a hermetic JupyterLab server; the `lab_browser` fixture adds a headless
Chromium page and the helpers the notebook tests share (`LabSession`). Both skip (saying why) when
/usr/bin/chromium or Playwright is missing; with CI=true they fail instead (`.ci/run` installs chromium,
so there the browser tests are mandatory).

Why an earlier version "hung" for 300 s: JupyterLab renders a cell *error* as mime type
`application/vnd.jupyter.stderr` (not `.../error`), so a raising cell went unnoticed while "Run All"
stopped at it and `metrics.json` never appeared. `LabSession.run_all` detects that the run stopped (no
cell pending, some cell never ran) and reports the traceback at once.
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
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"
IN_CI = os.environ.get("CI", "").lower() == "true"
KERNEL = "posenas-venv"  # kernelspec installed for these tests only; runs sys.executable
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]


def pytest_configure(config):
    config.addinivalue_line("markers", "browser: drives JupyterLab in headless Chromium (mandatory when CI=true)")


def _require(ok: bool, why: str) -> None:
    """Skip with `why` unless CI=true, where a missing browser is a failure."""
    if not ok:
        if IN_CI:
            pytest.fail(f"the browser test is mandatory in CI (CI=true): {why}")
        pytest.skip(why)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _api(base: str, token: str, path: str, tries: int = 5):
    """GET /api/`path` as JSON. A 5xx answer is retried (up to `tries` times, 0.5 s apart): jupyter_server
    answered one poll of /api/kernels with a 500 while the notebook's kernel was starting (CI, 2026-11-29)."""
    for attempt in range(tries):
        try:
            with urllib.request.urlopen(f"{base}/api/{path}?token={token}", timeout=5) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as err:
            if err.code < 500 or attempt == tries - 1:
                raise
            time.sleep(0.5)


@pytest.fixture()
def jupyterlab(tmp_path):
    """(base_url, token, root_dir, log_path) of a JupyterLab server with hermetic config/state dirs."""
    _require(Path(CHROMIUM).exists(), f"{CHROMIUM} not found (Debian: apt-get install -y chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _require(False, "playwright is not installed (pip install -e '.[test]'; never `playwright install`)")

    jroot = tmp_path / "jupyter"
    env = dict(os.environ)
    env.update(JUPYTER_CONFIG_DIR=str(jroot / "config"), JUPYTER_RUNTIME_DIR=str(jroot / "runtime"),
               JUPYTER_DATA_DIR=str(jroot / "data"), IPYTHONDIR=str(jroot / "ipython"),
               JUPYTERLAB_SETTINGS_DIR=str(jroot / "settings"), JUPYTERLAB_WORKSPACES_DIR=str(jroot / "workspaces"),
               JUPYTER_PATH=str(jroot / "prefix" / "share" / "jupyter"),
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    # no "get Jupyter news?" toast over the notebook
    s = jroot / "settings" / "@jupyterlab" / "apputils-extension"
    s.mkdir(parents=True)
    (s / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    # the kernel runs this interpreter; one torch thread (2 cores shared with the server and the browser)
    subprocess.run([sys.executable, "-m", "ipykernel", "install", "--prefix", str(jroot / "prefix"),
                    "--name", KERNEL, "--display-name", "PoseNAS (venv)", "--env", "OMP_NUM_THREADS", "1"],
                   check=True, env=env, capture_output=True)

    port, token = _free_port(), secrets.token_hex(16)
    log_path = tmp_path / "jupyterlab.log"
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={tmp_path}", "--ServerApp.allow_root=True",
         "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                _api(base, token, "status")
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    pytest.fail("JupyterLab did not start within 60 s:\n" + log_path.read_text()[-3000:])
                time.sleep(0.3)
        specs = _api(base, token, "kernelspecs")["kernelspecs"]
        assert specs[KERNEL]["spec"]["argv"][0] == sys.executable, specs[KERNEL]
        yield base, token, tmp_path, log_path
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


class LabSession:
    """A JupyterLab server + a headless Chromium page, with the helpers the notebook tests share.

    `prefix` names the screenshots (`test-artifacts/<prefix>_*.png`); `shot(name)` screenshots the page.
    """

    def __init__(self, base: str, token: str, root: Path, log_path: Path, page, prefix: str):
        self.base, self.token, self.root, self.log_path = base, token, root, log_path
        self.page, self.prefix = page, prefix

    def api(self, path: str):
        return _api(self.base, self.token, path)

    def shot(self, name: str, locator=None) -> None:
        """Screenshot the page (or just `locator`'s element) to test-artifacts/`name`."""
        (locator or self.page).screenshot(path=str(ARTIFACTS / name))

    def tiny_notebook(self, src: str, params: dict, name: str) -> Path:
        """Copy notebooks/`src` with `params` as its parameters cell, bound to the tests' kernelspec."""
        nb = json.loads((ROOT / "notebooks" / src).read_text())
        cells = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(cells) == 1, f"{src} must have exactly one cell tagged 'parameters'"
        # the notebook's own defaults, then the test's values (Python literals): parameters added later keep
        # their defaults
        original = "".join(cells[0]["source"]) if isinstance(cells[0]["source"], list) else cells[0]["source"]
        cells[0]["source"] = original.rstrip("\n") + "\n" + "".join(f"{k} = {v!r}\n" for k, v in params.items())
        nb["metadata"]["kernelspec"] = {"name": KERNEL, "display_name": "PoseNAS (venv)", "language": "python"}
        path = self.root / name
        path.write_text(json.dumps(nb))
        return path

    def open(self, nb: Path) -> None:
        self.page.goto(f"{self.base}/lab/tree/{nb.name}?token={self.token}", timeout=60_000)
        self.page.wait_for_selector(".jp-Notebook .jp-CodeCell", timeout=60_000)

    def prompts(self) -> list[str]:
        return [t.strip() for t in self.page.locator(".jp-CodeCell .jp-InputPrompt").all_inner_texts()]

    def error_text(self) -> str:
        """Tracebacks shown in the notebook (JupyterLab renders errors as vnd.jupyter.stderr)."""
        texts = self.page.locator(
            ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").all_inner_texts()
        return "\n".join(t for t in texts if "Traceback" in t or "Error" in t)

    def run_all(self, done: Path, timeout_s: float) -> float:
        """Run > Run All Cells once the kernel is connected and idle; wait until `done` exists (the last
        cell writes it) and every cell has its execution count; seconds taken."""
        deadline = time.time() + 60
        while True:
            kernels = self.api("kernels")
            if kernels and kernels[0]["execution_state"] == "idle" and kernels[0]["connections"] >= 1:
                break
            assert time.time() < deadline, f"the kernel did not become idle + connected within 60 s: {kernels}"
            time.sleep(0.3)
        sessions = self.api("sessions")
        assert [s["kernel"]["name"] for s in sessions] == [KERNEL], sessions
        page = self.page
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
        t0 = time.time()
        # the run really started: some prompt is pending or numbered (not only "[ ]:")
        while all(p in ("[ ]:", "") for p in self.prompts()):
            if time.time() > t0 + 15:
                pytest.fail(f"'Run All Cells' did not start any cell within 15 s (prompts {self.prompts()})")
            time.sleep(0.2)
        next_shot = t0 + 10
        while not done.exists():
            prompts = self.prompts()
            err = self.error_text()
            if err or (not any(p == "[*]:" for p in prompts) and "[ ]:" in prompts):
                pytest.fail(f"the notebook stopped before writing {done.name} (prompts {prompts}):\n{err[-3000:]}")
            if time.time() > t0 + timeout_s:
                pytest.fail(f"the notebook did not finish within {timeout_s:g} s (prompts {prompts})")
            if time.time() > next_shot:  # intermediate screenshots while it runs (overwritten each time)
                self.shot(f"{self.prefix}_running.png")
                next_shot += 10
            time.sleep(0.5)
        page.wait_for_function("() => [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]"
                               "  .every(e => /\\[\\d+\\]/.test(e.textContent))", timeout=30_000)
        assert not self.error_text(), self.error_text()
        return time.time() - t0


@pytest.fixture()
def chromium():
    """A headless Chromium (Playwright Browser) on /usr/bin/chromium; skips / fails like `jupyterlab`."""
    _require(Path(CHROMIUM).exists(), f"{CHROMIUM} not found (Debian: apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _require(False, "playwright is not installed (pip install -e '.[test]'; never `playwright install`)")
    ARTIFACTS.mkdir(exist_ok=True)
    pw = sync_playwright().start()
    try:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
    finally:
        pw.stop()


@pytest.fixture()
def artifacts() -> Path:
    """test-artifacts/ (gitignored), created."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture()
def lab_browser(jupyterlab, chromium, request):
    """Factory: `lab_browser(prefix, viewport)` -> LabSession (its page closes with the browser at teardown;
    on failure `<prefix>_failure.png` and `<prefix>.log` (the server log) land in test-artifacts/)."""
    base, token, root, log_path = jupyterlab
    browser = chromium
    sessions: list[LabSession] = []

    def make(prefix: str, viewport: dict) -> LabSession:
        for old in ARTIFACTS.glob(f"{prefix}_*"):
            old.unlink()
        page = browser.new_page(viewport=viewport)
        page.set_default_timeout(30_000)
        sessions.append(LabSession(base, token, root, log_path, page, prefix))
        return sessions[-1]

    try:
        yield make
    finally:
        rep = getattr(request.node, "rep_call", None)
        if rep is not None and rep.failed:
            for s in sessions:
                try:
                    s.shot(f"{s.prefix}_failure.png")
                except Exception:  # noqa: BLE001 - the page may be gone; the log still helps
                    pass
                shutil.copy(log_path, ARTIFACTS / f"{s.prefix}.log")
        for s in sessions:
            s.page.close()


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the item (`lab_browser` screenshots the page when the test failed)."""
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)
