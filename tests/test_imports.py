"""Dependency direction: posenas_core never imports the lab, widgets, plotting or IPython; and the public API:
every core module names its exports in `__all__`, and lab/, benchmarks/ and notebooks/ use only those."""

import ast
import importlib
import inspect
import json
import pkgutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

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


# --- The public API: every module names its exports; lab/, benchmarks/ and notebooks/ use only those ---

CORE_PACKAGES = ("posenas_core", "posenas_core.data", "posenas_core.data.synthpose", "posenas_core.deploy",
                 "posenas_core.eval", "posenas_core.models", "posenas_core.ops", "posenas_core.runs",
                 "posenas_core.search", "posenas_core.spaces", "posenas_core.train")


def _defines_all(tree: ast.Module) -> bool:
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        for t in targets:
            names = t.elts if isinstance(t, ast.Tuple) else [t]
            if any(isinstance(n, ast.Name) and n.id == "__all__" for n in names):
                return True
    return False


def test_every_core_module_defines_all():
    missing = [str(p.relative_to(ROOT)) for p in sorted((ROOT / "posenas_core").rglob("*.py"))
               if not _defines_all(ast.parse(p.read_text(encoding="utf-8")))]
    assert not missing, "these modules define no __all__:\n" + "\n".join(missing)


@pytest.mark.parametrize("package", CORE_PACKAGES)
def test_package_exports_resolve(package):
    pkg = importlib.import_module(package)
    names = list(pkg.__all__)
    assert names and len(names) == len(set(names)), f"{package}.__all__ is empty or repeats a name"
    submodules = {m.name for m in pkgutil.iter_modules(pkg.__path__)}
    for name in names:
        value = getattr(pkg, name)          # imports it on first use
        # a name that is also a submodule's would be overwritten by the module when that is imported
        assert inspect.ismodule(value) == (name in submodules), f"{package}.{name}: name and submodule clash"
    assert set(names) <= set(dir(pkg))


def test_importing_the_packages_imports_no_torch():
    code = ("import sys, " + ", ".join(CORE_PACKAGES)
            + "; print(sorted(m for m in ('torch', 'pandas', 'cv2') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def _client_sources():
    """(label, source) of lab/ and benchmarks/ files and of each notebook code cell (no % or ! lines)."""
    for folder in ("lab", "benchmarks"):
        for p in sorted((ROOT / folder).rglob("*.py")):
            yield str(p.relative_to(ROOT)), p.read_text(encoding="utf-8")
    for p in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(p.read_text(encoding="utf-8"))["cells"]
        for i, cell in enumerate(cells):
            if cell["cell_type"] == "code":
                lines = "".join(cell["source"]).splitlines()
                src = "\n".join("" if ln.lstrip().startswith(("%", "!")) else ln for ln in lines)
                yield f"{p.relative_to(ROOT)}[cell {i}]", src


def _dotted(node) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    return ".".join([node.id, *reversed(parts)]) if isinstance(node, ast.Name) else None


def api_violations(label: str, source: str, load=importlib.import_module) -> list[str]:
    """'label:line: why' for each use of posenas_core outside its modules' `__all__` (or of a `_` name)."""
    bad, modules = [], {}          # modules: the name a posenas_core module is bound to -> its dotted path

    def exports(module, line):
        names = getattr(load(module), "__all__", None)
        if names is None:
            bad.append(f"{label}:{line}: {module} has no __all__")
        return names

    def check(module, name, line):
        names = exports(module, line)
        if names is not None and (name.startswith("_") or name not in names):
            bad.append(f"{label}:{line}: {name} is not in {module}.__all__")
            return False
        return names is not None

    tree = ast.parse(source, filename=label)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "posenas_core":
            for a in node.names:
                if a.name != "*" and check(node.module, a.name, node.lineno):
                    if inspect.ismodule(getattr(load(node.module), a.name, None)):
                        modules[a.asname or a.name] = f"{node.module}.{a.name}"
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "posenas_core":
                    exports(a.name, node.lineno)
                    if a.asname:
                        modules[a.asname] = a.name
                    else:                   # `import posenas_core.x.y` binds posenas_core; the path is used whole
                        parts = a.name.split(".")
                        modules.update({".".join(parts[:i]): ".".join(parts[:i]) for i in range(1, len(parts) + 1)})
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _dotted(node) not in modules:
            owner = modules.get(_dotted(node.value))
            if owner is not None:
                check(owner, node.attr, node.lineno)
    return bad


def test_lab_benchmarks_and_notebooks_use_only_the_public_api():
    sources = list(_client_sources())
    assert any(label.startswith("lab/") for label, _ in sources)
    assert any(label.startswith("notebooks/") for label, _ in sources)
    bad = [v for label, src in sources for v in api_violations(label, src)]
    assert not bad, "outside posenas_core's public API (export the name or use a public one):\n" + "\n".join(bad)


def test_api_scanner_flags_private_and_unexported_names():
    src = ("from posenas_core.runs import read_jsonl\n"
           "from posenas_core.train.trainer import DROP_STREAM, train\n"
           "from posenas_core.pipeline import _resumable_info\n"
           "import posenas_core.search.transfer as tr\n"
           "from posenas_core import pipeline, train as T\n"
           "tr.transfer_weights, tr.NEW_BLOCKS, pipeline._resumable_info, pipeline.load_split, T.load_checkpoint\n"
           "import posenas_core.runs.io\n"
           "posenas_core.runs.io.read_jsonl, posenas_core.runs.io.new_file_mode\n")
    assert api_violations("m.py", src) == [
        "m.py:2: DROP_STREAM is not in posenas_core.train.trainer.__all__",
        "m.py:3: _resumable_info is not in posenas_core.pipeline.__all__",
        "m.py:6: NEW_BLOCKS is not in posenas_core.search.transfer.__all__",
        "m.py:6: _resumable_info is not in posenas_core.pipeline.__all__",
    ]


def test_api_scanner_flags_a_module_without_all():
    fake = types.ModuleType("posenas_core.fake")
    fake.thing = 1
    load = lambda name: fake if name == "posenas_core.fake" else importlib.import_module(name)  # noqa: E731
    assert api_violations("m.py", "from posenas_core.fake import thing\n", load) == [
        "m.py:1: posenas_core.fake has no __all__"]
