"""Registers the `browser` marker (real-browser tests; part of `make test`, deselect with -m 'not browser')."""


def pytest_configure(config):
    config.addinivalue_line("markers", "browser: drives JupyterLab in headless Chromium (mandatory when CI=true)")
