"""posenas_core.runs.params / kernels / notebooks: parameters cell parsing and checking, single papermill runs.

Only two tests start a kernel (one ok run, one failing run); the rest never execute anything.
"""

import json
import os
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from posenas_core.errors import ConfigError
from posenas_core.runs import kernels
from posenas_core.runs.notebooks import NotebookRunError, RunRecord, run_notebook
from posenas_core.runs.params import Param, check_parameters, coerce_cli_value, read_parameters

FIXTURE = Path(__file__).parent / "fixtures" / "compute.ipynb"


def write_nb(path: Path, params_src: str | None, body: str = "x = 1", tag: str = "parameters") -> Path:
    cells = []
    if params_src is not None:
        cells.append(new_code_cell(params_src, metadata={"tags": [tag]}))
    cells.append(new_code_cell(body))
    nbformat.write(new_notebook(cells=cells), str(path))
    return path


# ---------------------------------------------------------------- read_parameters


def test_read_parameters_of_fixture():
    ps = read_parameters(FIXTURE)
    assert list(ps) == ["a", "scale", "name", "flag", "tags", "cfg", "spec", "fail", "counter", "out_dir"]
    assert ps["a"] == Param("a", 2, "int", "factor", 2)
    assert (ps["scale"].default, ps["scale"].type) == (1.5, "float")
    assert (ps["name"].type, ps["flag"].type, ps["tags"].type, ps["cfg"].type, ps["spec"].type) == (
        "str", "bool", "list", "dict", "None")
    assert ps["spec"].comment == "anything JSON"
    assert ps["scale"].comment == ""


def test_comment_above_and_multiline_literal(tmp_path):
    src = "# number of\n# epochs\nepochs = 3\nsizes = [\n  1,\n  2,  # two\n]\nneg = -0.5\nt: int = 4\n"
    ps = read_parameters(write_nb(tmp_path / "n.ipynb", src))
    assert ps["epochs"].comment == "number of epochs"
    assert ps["sizes"].default == [1, 2] and ps["sizes"].comment == "two"
    assert ps["neg"].default == -0.5 and ps["t"].default == 4


def test_missing_notebook_names_path(tmp_path):
    p = tmp_path / "nope.ipynb"
    with pytest.raises(ConfigError, match="notebook not found: .*nope.ipynb"):
        read_parameters(p)


def test_no_parameters_cell(tmp_path):
    p = write_nb(tmp_path / "n.ipynb", "a = 1", tag="other")
    with pytest.raises(ConfigError, match="no code cell tagged 'parameters'"):
        read_parameters(p)


@pytest.mark.parametrize(
    "src, line, what",
    [
        ("a = 1\nepochs = int('3')\n", 2, "not a literal"),
        ("a = 1\n\nimport os\n", 3, "not a parameter assignment"),
        ("a = b = 1\n", 1, "not a parameter assignment"),
        ("a = {1, 2}\n", 1, "not JSON-typed"),
        ("a = 1\na = 2\n", 2, "assigned twice"),
        ("a = 1\nb = (\n", 2, "syntax error"),
    ],
)
def test_bad_parameters_cell_names_line(tmp_path, src, line, what):
    p = write_nb(tmp_path / "n.ipynb", src)
    with pytest.raises(ConfigError, match=f"line {line}.*{what}") as ei:
        read_parameters(p)
    assert "n.ipynb" in str(ei.value)


# ---------------------------------------------------------------- check_parameters / coerce_cli_value


def test_unknown_parameter_lists_known_names():
    with pytest.raises(ConfigError) as ei:
        check_parameters(FIXTURE, {"scal": 2.0})
    msg = str(ei.value)
    assert "unknown parameter 'scal'" in msg and "compute.ipynb" in msg
    assert "did you mean 'scale'" in msg
    assert "known: a, scale, name, flag, tags, cfg, spec, fail, counter, out_dir" in msg


def test_wrong_type_message():
    with pytest.raises(ConfigError, match=r"parameter 'a' must be int \(default 2\), got str '3x'"):
        check_parameters(FIXTURE, {"a": "3x"})


@pytest.mark.parametrize(
    "params",
    [{"a": True}, {"a": 2.5}, {"flag": 1}, {"scale": "fast"}, {"name": 3}, {"tags": "x"}, {"cfg": [1]},
     {"spec": {1, 2}}, {"scale": False}],
)
def test_wrong_types_rejected(params):
    with pytest.raises(ConfigError, match=f"parameter '{next(iter(params))}' must be"):
        check_parameters(FIXTURE, params)


def test_accepted_and_coerced_values():
    out = check_parameters(
        FIXTURE,
        {"a": "5", "scale": 2, "flag": "true", "tags": "[1, 2]", "cfg": {"k": [1]}, "spec": {"kind": "x"},
         "name": "256x192", "counter": ""},
    )
    assert out == {"a": 5, "scale": 2.0, "flag": True, "tags": [1, 2], "cfg": {"k": [1]},
                   "spec": {"kind": "x"}, "name": "256x192", "counter": ""}
    assert isinstance(out["scale"], float)
    assert check_parameters(FIXTURE, {"spec": None}) == {"spec": None}
    assert check_parameters(FIXTURE, {"tags": (1, 2)}) == {"tags": [1, 2]}


def test_coerce_cli_value():
    p_int, p_str, p_none = Param("epochs", 3, "int"), Param("size", "128x96", "str"), Param("spec", None, "None")
    assert coerce_cli_value("5", p_int) == 5
    assert coerce_cli_value("5x", p_int) == "5x"  # left for check_parameters to reject with a name
    assert coerce_cli_value("256x192", p_str) == "256x192"
    assert coerce_cli_value("5", p_str) == "5"  # a str parameter keeps its text
    assert coerce_cli_value('"a b"', p_str) == "a b"
    assert coerce_cli_value('{"kind": "evopose"}', p_none) == {"kind": "evopose"}
    assert coerce_cli_value("hello", p_none) == "hello"
    assert coerce_cli_value("null", Param("x", 1.0, "float")) is None


def test_bad_params_rejected_before_execution(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match="unknown parameter 'epoch'"):
        run_notebook(FIXTURE, out, {"epoch": 1})
    with pytest.raises(ConfigError, match="parameter 'a' must be int"):
        run_notebook(FIXTURE, out, {"a": "lots"})
    assert not out.exists()


# ---------------------------------------------------------------- kernel and environment


def test_hermetic_env_set_only_when_unset(tmp_path, monkeypatch):
    monkeypatch.setattr(kernels, "_hermetic_root", lambda: tmp_path / "h")
    monkeypatch.delenv("JUPYTER_CONFIG_DIR", raising=False)
    monkeypatch.delenv("JUPYTER_RUNTIME_DIR", raising=False)
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "mine"))
    set_now = kernels.ensure_hermetic_jupyter_env()
    assert set(set_now) == {"JUPYTER_CONFIG_DIR", "JUPYTER_RUNTIME_DIR"}
    assert os.environ["JUPYTER_CONFIG_DIR"] == str(tmp_path / "h" / "config")
    assert Path(os.environ["JUPYTER_RUNTIME_DIR"]).is_dir()
    assert os.environ["IPYTHONDIR"] == str(tmp_path / "mine")
    assert kernels.ensure_hermetic_jupyter_env() == {}


def test_kernelspec_of_another_interpreter_is_replaced(tmp_path, monkeypatch):
    from jupyter_client.kernelspec import KernelSpec, KernelSpecManager

    monkeypatch.setattr(kernels, "_hermetic_root", lambda: tmp_path / "h")
    monkeypatch.setenv("JUPYTER_PATH", "")
    argv = {"v": ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"]}
    monkeypatch.setattr(KernelSpecManager, "get_kernel_spec",
                        lambda self, name: KernelSpec(argv=argv["v"], display_name="x", language="python"))
    assert kernels.kernel_for_current_interpreter("python3") == "python3"  # bare python = sys.executable
    argv["v"] = ["/opt/elsewhere/bin/python3", "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    name = kernels.kernel_for_current_interpreter("python3")
    assert name.startswith("posenas-py-")
    spec = json.loads((tmp_path / "h" / "data" / "kernels" / name / "kernel.json").read_text())
    assert spec["argv"][0] == os.path.abspath(sys.executable)
    assert name in KernelSpecManager().find_kernel_specs()  # found through JUPYTER_PATH
    assert kernels.kernel_for_current_interpreter("other-kernel") == "other-kernel"


# ---------------------------------------------------------------- real runs (start a kernel)


def test_run_notebook_ok(tmp_path):
    out = tmp_path / "runs" / "one"
    wd = tmp_path / "wd"
    wd.mkdir()
    rec = run_notebook(FIXTURE, out, {"a": 4, "scale": 2, "tags": [1], "spec": {"k": 1}}, cwd=wd)
    assert rec.status == "ok" and rec.error is None
    assert rec.metrics["y"] == 8.0 and rec.metrics["loss"] == {"train": 0.125, "val": 0.25}
    assert rec.metrics["types"] == ["int", "float", "bool", "list", "dict", "dict"]
    assert rec.metrics["cwd"] == str(wd.resolve())  # kernel cwd without chdir of this process
    assert Path.cwd() != wd
    assert rec.params == {"a": 4, "scale": 2.0, "tags": [1], "spec": {"k": 1}}  # no automatic out_dir
    assert rec.files == ["metrics.json", "notebook.html", "notebook.ipynb"]
    assert rec.python == os.path.abspath(sys.executable)
    on_disk = json.loads((out / "run.json").read_text())
    assert on_disk["status"] == "ok" and on_disk["metrics"]["y"] == 8.0
    assert RunRecord.load(out) == rec
    executed = nbformat.read(str(out / "notebook.ipynb"), as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert f'out_dir = "{out.resolve()}"' in injected[0].source
    html = (out / "notebook.html").read_text()
    assert "<html" in html and "y = 8.0" in html
    assert rec.duration_s > 0


def test_run_notebook_failure_recorded(tmp_path):
    out = tmp_path / "bad"
    (out).mkdir()
    (out / "metrics.json").write_text('{"stale": 1}')  # from an earlier run: must not be credited
    with pytest.raises(NotebookRunError, match="ValueError: boom a=7 \\(cell 2, In \\[3\\]\\)") as ei:
        run_notebook(FIXTURE, out, {"a": 7, "fail": True}, raise_on_error=True)
    rec = ei.value.record
    assert rec.status == "failed" and rec.metrics == {}
    assert rec.error["ename"] == "ValueError" and rec.error["evalue"] == "boom a=7"
    assert rec.error["cell_index"] == 2  # the compute cell of the fixture (0-based)
    assert "raise ValueError" in rec.error["traceback"]
    assert json.loads((out / "run.json").read_text())["status"] == "failed"
    assert "boom a=7" in (out / "notebook.html").read_text()  # the partial notebook is exported
    assert isinstance(ei.value.__cause__, Exception)
