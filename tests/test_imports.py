"""Dependency direction: posenas_core never imports the lab, widgets, plotting or IPython."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = ("lab", "ipywidgets", "plotly", "IPython", "anywidget", "matplotlib")


def _imports(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield node.lineno, a.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module


def test_core_does_not_import_lab_or_widgets():
    files = sorted((ROOT / "posenas_core").rglob("*.py"))
    assert files, "no posenas_core sources found"
    bad = [
        f"{p.relative_to(ROOT)}:{line}: import {name}"
        for p in files
        for line, name in _imports(p)
        if name.split(".")[0] in FORBIDDEN
    ]
    assert not bad, "posenas_core must not import these:\n" + "\n".join(bad)


def test_scanner_sees_a_forbidden_import(tmp_path):
    p = tmp_path / "m.py"
    p.write_text("import os\nfrom plotly import graph_objects\n")
    assert [n for _, n in _imports(p)] == ["os", "plotly"]


def test_no_torchvision_anywhere():
    for p in list((ROOT / "posenas_core").rglob("*.py")) + list((ROOT / "lab").rglob("*.py")):
        for _, name in _imports(p):
            assert name.split(".")[0] != "torchvision", f"{p}: torchvision is not allowed (see DESIGN.md)"
