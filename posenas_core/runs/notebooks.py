"""Parameterized notebooks: read and check the `parameters` cell, run one notebook with papermill.

A notebook of this project has one code cell tagged ``parameters`` holding JSON-typed literal
assignments, one per line, comments allowed::

    epochs = 3          # training epochs
    lr = 0.01
    input_size = "256x192"
    spec = None         # an architecture spec as a JSON string (None: the default spec)
    out_dir = ""        # filled in by run_notebook with the run directory

then cells that call library code. `read_parameters` parses that cell with `ast` (nothing is
executed); `check_parameters` refuses unknown names and wrong types BEFORE anything runs
(papermill itself only warns on unknown names); `run_notebook` executes the notebook with
papermill into a run directory::

    out_dir/notebook.ipynb   the executed notebook (also partially executed, for a failed run),
                             without the ~5 MB JavaScript bundle each anywidget (plotly FigureWidget)
                             stores in the saved widget state (`strip_widget_bundles`)
    out_dir/notebook.html    its HTML export (so a failure is visible in a browser), readable offline:
                             plotly figures drawn with plotly.js embedded once, every widget a static
                             copy drawn from the saved widget state (`export_html`, `static_widgets`)
    out_dir/metrics.json     written by the notebook itself, if it wants to report metrics
    out_dir/run.json         {notebook, params, status, error, started, finished, duration_s,
                              metrics, files, ...}: written LAST and atomically, so a run killed in
                              flight leaves no run.json and a batch redoes it.

Type rules (`check_parameters`): the default's type is the parameter's type; an int is accepted
for a float (and converted); a ``None`` default accepts any JSON value; a ``str`` value for a
non-str parameter is JSON-parsed (so ``-p epochs 5`` from a command line works, see
`coerce_cli_value`). bool is never an int here, and an int is never a bool.
"""

from __future__ import annotations

import ast
import difflib
import hashlib
import io
import json
import math
import os
import re
import sys
import tempfile
import time
import tokenize
from dataclasses import asdict, dataclass, field
from html import escape as html_escape
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from posenas_core.errors import ConfigError
from posenas_core.runs.io import atomic_write_json, atomic_write_text

PARAMETERS_TAG = "parameters"
OUT_DIR_PARAM = "out_dir"  # a notebook declaring this parameter gets its run directory here
RUN_FILE = "run.json"
METRICS_FILE = "metrics.json"
NOTEBOOK_FILE = "notebook.ipynb"
HTML_FILE = "notebook.html"

# JSON-typed literals only: the parameter values travel through JSON (run.json, sweep files, CLI).
_TYPE_NAMES = {int: "int", float: "float", str: "str", bool: "bool", type(None): "None", list: "list", dict: "dict"}


@dataclass(frozen=True)
class Param:
    """One assignment of the parameters cell: ``name = default  # comment``."""

    name: str
    default: Any
    type: str  # "int" | "float" | "str" | "bool" | "None" | "list" | "dict"
    comment: str = ""
    line: int = 0  # 1-based line in the parameters cell


class NotebookRunError(RuntimeError):
    """A notebook run failed (raised by `run_notebook(..., raise_on_error=True)`); `.record` has it."""

    def __init__(self, message: str, record: "RunRecord"):
        super().__init__(message)
        self.record = record


@dataclass
class RunRecord:
    """What `run_notebook` writes to ``out_dir/run.json`` (and returns)."""

    notebook: str  # the notebook path as given
    params: dict  # the checked parameters as given (without the automatic out_dir)
    status: str  # "ok" | "failed"
    error: dict | None  # {ename, evalue, cell_index, exec_count, traceback} for a failed run
    started: str  # ISO 8601, UTC
    finished: str
    duration_s: float
    metrics: dict  # the notebook's out_dir/metrics.json ({} if it wrote none)
    files: list[str]  # files in out_dir (relative, posix), run.json excluded
    out_dir: str = ""
    kernel_name: str = ""
    python: str = ""  # the interpreter the kernel ran
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "RunRecord":
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})

    @classmethod
    def load(cls, path: str | os.PathLike) -> "RunRecord":
        """Read a run.json (a path to the file or to its run directory)."""
        path = Path(path)
        if path.is_dir():
            path = path / RUN_FILE
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"run record not found: {path}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"run record {path} is not valid JSON: {e}") from None
        if not isinstance(d, dict) or "status" not in d:
            raise ConfigError(f"run record {path} is not a run.json object (no 'status')")
        return cls.from_dict(d)


# ----------------------------------------------------------------------------------------------
# The parameters cell


def _type_name(value: Any) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def _is_json_value(v: Any) -> bool:
    if v is None or isinstance(v, (bool, int, str)):
        return True
    if isinstance(v, float):
        return math.isfinite(v)
    if isinstance(v, list):
        return all(_is_json_value(x) for x in v)
    if isinstance(v, dict):
        return all(isinstance(k, str) and _is_json_value(x) for k, x in v.items())
    return False


def _read_notebook(nb_path: str | os.PathLike):
    import nbformat

    path = Path(nb_path)
    if not path.is_file():
        raise ConfigError(f"notebook not found: {nb_path}")
    try:
        return nbformat.read(str(path), as_version=4)
    except Exception as e:  # nbformat raises several types for a corrupt file
        raise ConfigError(f"notebook {nb_path} is not a readable .ipynb file: {e}") from None


def _parameters_source(nb, nb_path) -> str:
    for cell in nb.cells:
        if cell.get("cell_type") == "code" and PARAMETERS_TAG in cell.get("metadata", {}).get("tags", []):
            src = cell.get("source", "")
            return "".join(src) if isinstance(src, list) else src
    raise ConfigError(
        f"notebook {nb_path} has no code cell tagged '{PARAMETERS_TAG}' "
        "(add the tag to the cell of parameter assignments)"
    )


def _comments_by_line(source: str) -> dict[int, str]:
    out: dict[int, str] = {}
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT:
                out[tok.start[0]] = tok.string.lstrip("#").strip()
    except (tokenize.TokenError, SyntaxError):
        pass
    return out


def parse_parameters_source(source: str, where: str = "parameters cell") -> dict[str, Param]:
    """Parse the text of a parameters cell into ``{name: Param}`` (declaration order).

    Only ``name = <JSON literal>`` (or ``name: T = <literal>``) statements are allowed; anything
    else raises ConfigError naming the line.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError as e:
        raise ConfigError(f"{where}: line {e.lineno}: syntax error: {e.msg}") from None
    lines = source.splitlines()
    comments = _comments_by_line(source)
    params: dict[str, Param] = {}
    for node in tree.body:
        text = lines[node.lineno - 1].strip() if node.lineno - 1 < len(lines) else ""
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name, value_node = node.targets[0].id, node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            name, value_node = node.target.id, node.value
        else:
            raise ConfigError(
                f"{where}: line {node.lineno}: `{text}` is not a parameter assignment; "
                "only `name = <literal>` lines (int, float, str, bool, None, list, dict) are allowed"
            )
        try:
            value = ast.literal_eval(value_node)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            raise ConfigError(
                f"{where}: line {node.lineno}: `{text}` is not a literal; parameters must be "
                "JSON-typed literals (int, float, str, bool, None, list, dict), computed values belong "
                "in a later cell"
            ) from None
        if isinstance(value, tuple):
            value = list(value)
        if not _is_json_value(value):
            raise ConfigError(
                f"{where}: line {node.lineno}: `{text}`: a {_type_name(value)} is not JSON-typed; "
                "allowed: int, float, str, bool, None, list, dict (str keys)"
            )
        if name in params:
            raise ConfigError(
                f"{where}: line {node.lineno}: parameter '{name}' is assigned twice "
                f"(first on line {params[name].line})"
            )
        # the comment on the assignment's line(s), else the comment line(s) right above it
        end = getattr(node, "end_lineno", node.lineno) or node.lineno
        comment = next((comments[i] for i in range(node.lineno, end + 1) if i in comments), "")
        if not comment:
            above, i = [], node.lineno - 1
            while i >= 1 and i in comments and lines[i - 1].lstrip().startswith("#"):
                above.insert(0, comments[i])
                i -= 1
            comment = " ".join(above)
        params[name] = Param(name=name, default=value, type=_type_name(value), comment=comment, line=node.lineno)
    return params


def read_parameters(nb_path: str | os.PathLike) -> dict[str, Param]:
    """The notebook's parameters ``{name: Param}`` from its ``parameters``-tagged cell (not executed)."""
    nb = _read_notebook(nb_path)
    source = _parameters_source(nb, nb_path)
    return parse_parameters_source(source, where=f"parameters cell of {nb_path}")


def coerce_cli_value(text: str, param: Param) -> Any:
    """A command-line string -> a value for `param`: JSON-parse it; if that fails keep the raw
    string when the parameter is a str (or has a None default). The result is not type-checked
    here (`check_parameters` does that and names the parameter).

    >>> coerce_cli_value("5", Param("epochs", 3, "int"))
    5
    >>> coerce_cli_value("256x192", Param("input_size", "128x96", "str"))
    '256x192'
    """
    if param.type == "str":
        # a str parameter takes the text as is, unless it is a JSON string literal ("\"a b\"")
        if len(text) >= 2 and text[0] == text[-1] == '"':
            try:
                v = json.loads(text)
                if isinstance(v, str):
                    return v
            except json.JSONDecodeError:
                pass
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _short(v: Any, n: int = 60) -> str:
    r = repr(v)
    return r if len(r) <= n else r[: n - 3] + "..."


def _check_value(p: Param, value: Any, nb_path) -> Any:
    """Check one value against its parameter; return the (coerced) value or raise ConfigError."""
    original = value
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(value, str) and p.type not in ("str", "None"):
        value = coerce_cli_value(value, p)
    t = p.type
    if t == "None":
        ok = _is_json_value(value)
    elif t == "bool":
        ok = isinstance(value, bool)
    elif t == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif t == "float":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok:
            value = float(value)
            ok = math.isfinite(value)
    elif t == "str":
        ok = isinstance(value, str)
    elif t == "list":
        ok = isinstance(value, list) and _is_json_value(value)
    elif t == "dict":
        ok = isinstance(value, dict) and _is_json_value(value)
    else:  # pragma: no cover - read_parameters only produces the types above
        ok = False
    if not ok:
        want = "any JSON value" if t == "None" else t
        raise ConfigError(
            f"parameter '{p.name}' must be {want} (default {_short(p.default)}), "
            f"got {_type_name(original)} {_short(original)} for {nb_path}"
        )
    return value


def check_parameters(nb_path: str | os.PathLike, params: dict, *, known: dict[str, Param] | None = None) -> dict:
    """Validate `params` against the notebook's parameters cell; return the checked (coerced) dict.

    Unknown names and wrong types raise ConfigError before anything executes. `known` lets a caller
    pass an already read parameter table (a batch reads each notebook once).
    """
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise ConfigError(f"parameters for {nb_path} must be a mapping of name -> value, got {_type_name(params)}")
    known = read_parameters(nb_path) if known is None else known
    out = {}
    for name, value in params.items():
        if name not in known:
            close = difflib.get_close_matches(str(name), list(known), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(
                f"unknown parameter '{name}' for {nb_path}{hint}; known: {', '.join(known) or '(none)'}"
            )
        out[name] = _check_value(known[name], value, nb_path)
    return out


# ----------------------------------------------------------------------------------------------
# A hermetic Jupyter environment and a kernel that runs this interpreter


def _hermetic_root() -> Path:
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"posenas-jupyter-{uid}"


def ensure_hermetic_jupyter_env() -> dict[str, str]:
    """Point JUPYTER_CONFIG_DIR / JUPYTER_RUNTIME_DIR / IPYTHONDIR at private directories when they
    are not set (so no user config changes a run and nothing is written to a read-only home).
    Returns the variables it set. Idempotent; call it before starting worker threads."""
    root = _hermetic_root()
    set_now = {}
    for var, sub in (("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_RUNTIME_DIR", "runtime"), ("IPYTHONDIR", "ipython")):
        if not os.environ.get(var):
            d = root / sub
            d.mkdir(parents=True, exist_ok=True)
            os.environ[var] = str(d)
            set_now[var] = str(d)
    if "IPYTHONDIR" in set_now:
        # Our own IPython dir: keep command history in memory, so concurrent kernels of a batch do
        # not contend for one sqlite file.
        cfg = Path(set_now["IPYTHONDIR"]) / "profile_default" / "ipython_kernel_config.py"
        if not cfg.exists():
            atomic_write_text(cfg, "c.HistoryManager.hist_file = ':memory:'\n")
    return set_now


_PYTHON_NAMES = {"python", f"python{sys.version_info[0]}", "python%d.%d" % sys.version_info[:2]}


def _runs_this_interpreter(argv0: str) -> bool:
    """True when a kernelspec's argv[0] starts this interpreter. jupyter_client replaces a bare
    ``python``/``python3``/``python3.X`` by sys.executable; a path must be in our bin directory
    (symlinks are not resolved: a venv's python links to the base interpreter but is not it)."""
    if argv0 in _PYTHON_NAMES:
        return True
    here = os.path.abspath(sys.executable)
    there = os.path.abspath(argv0)
    return there == here or os.path.dirname(there) == os.path.dirname(here)


def kernel_for_current_interpreter(kernel_name: str = "python3") -> str:
    """Return a kernel name that runs sys.executable.

    If `kernel_name` is ``python3`` and its kernelspec starts another interpreter (a user-wide
    kernelspec shadowing the venv's), write a kernelspec ``posenas-py-<hash>`` pointing at
    sys.executable into a private data directory (added to JUPYTER_PATH) and return its name.
    Other kernel names are used as given (the caller chose them).
    """
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    if kernel_name != "python3":
        return kernel_name
    try:
        spec = KernelSpecManager().get_kernel_spec(kernel_name)
        argv0 = spec.argv[0] if spec.argv else ""
    except NoSuchKernel:
        argv0 = ""
    if argv0 and _runs_this_interpreter(argv0):
        return kernel_name
    name = "posenas-py-" + hashlib.sha1(os.path.abspath(sys.executable).encode()).hexdigest()[:10]
    data_dir = _hermetic_root() / "data"
    kernel_json = data_dir / "kernels" / name / "kernel.json"
    spec_dict = {
        "argv": [os.path.abspath(sys.executable), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": f"Python {sys.version_info[0]}.{sys.version_info[1]} (posenas)",
        "language": "python",
    }
    if not kernel_json.exists() or json.loads(kernel_json.read_text()) != spec_dict:
        atomic_write_json(kernel_json, spec_dict)
    paths = [p for p in os.environ.get("JUPYTER_PATH", "").split(os.pathsep) if p]
    if str(data_dir) not in paths:
        os.environ["JUPYTER_PATH"] = os.pathsep.join([str(data_dir)] + paths)
    return name


def _kernel_python(kernel_name: str) -> str:
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        argv0 = KernelSpecManager().get_kernel_spec(kernel_name).argv[0]
    except (NoSuchKernel, IndexError):
        return ""
    return os.path.abspath(sys.executable) if argv0 in _PYTHON_NAMES else argv0


def _kernel_encryption(kernel_name: str) -> str | None:
    """jupyter_client's `KernelManager.transport_encryption` policy for our runs, None to leave it alone.

    The kernel listens on TCP on 127.0.0.1, and ipykernel warns at every start (on the terminal of `posenas
    run` / `batch`) that the channel is plain text unless the manager provisions CurveZMQ keys. So keys are
    provisioned: "required" when the kernel runs this interpreter and its ipykernel declares Curve support
    (our private kernelspec does not say so), else "auto" (when the kernelspec declares it). None when pyzmq
    has no Curve or jupyter_client predates the option: the run goes on unencrypted, with the warning."""
    import zmq
    from jupyter_client import KernelManager

    if not zmq.has("curve") or "transport_encryption" not in KernelManager.class_trait_names():
        return None
    try:
        from ipykernel.kernelspec import get_kernel_dict

        ours = "curve" in get_kernel_dict().get("metadata", {}).get("supported_encryption", [])
    except Exception:  # no ipykernel here, or another version of it
        ours = False
    return "required" if ours and _kernel_python(kernel_name) == os.path.abspath(sys.executable) else "auto"


# ----------------------------------------------------------------------------------------------
# One run

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _source_cell_index(nb_path, executed_index: int, source: str) -> int:
    """Papermill's cell index counts its injected-parameters cell; map it back to the cell index
    in the notebook as written (0-based), matching the failing cell's source."""
    try:
        cells = _read_notebook(nb_path).cells
    except ConfigError:
        return executed_index
    matches = [i for i, c in enumerate(cells) if c.get("cell_type") == "code" and c.get("source") == source]
    if not matches:
        return executed_index
    return min(matches, key=lambda i: (abs(i - executed_index), i))


def _error_from(exc: BaseException, nb_path) -> dict:
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError):
        tb = "\n".join(_ANSI.sub("", line) for line in (exc.traceback or []))
        return {
            "ename": exc.ename,
            "evalue": exc.evalue,
            "cell_index": _source_cell_index(nb_path, exc.cell_index, exc.source),  # in nb_path
            "executed_cell_index": exc.cell_index,  # in notebook.ipynb before papermill's error markers
            "exec_count": exc.exec_count,  # the "In [n]" shown in notebook.html
            "traceback": tb[-4000:],
        }
    return {"ename": type(exc).__name__, "evalue": str(exc), "cell_index": None, "exec_count": None, "traceback": ""}


def error_summary(error: dict | None) -> str:
    """One line for a table: ``ValueError: boom (cell 3)``."""
    if not error:
        return ""
    s = f"{error.get('ename', 'Error')}: {error.get('evalue', '')}"
    if error.get("cell_index") is not None:
        s += f" (cell {error['cell_index']}"
        s += f", In [{error['exec_count']}])" if error.get("exec_count") is not None else ")"
    return s


# ----------------------------------------------------------------------------------------------
# What an executed notebook keeps: widget code out, plotly figures drawn in the HTML export

PLOTLY_MIME = "application/vnd.plotly.v1+json"
WIDGET_STATE_MIME = "application/vnd.jupyter.widget-state+json"
BUNDLE_KEEP_CHARS = 10_000  # a smaller bundle (a widget's own few lines) is kept

# What replaces a stripped `_esm`: a valid anywidget module (so the anywidget extension of JupyterLab draws
# a short note instead of failing to import `undefined`) that says why the widget is not drawn.
STRIPPED_ESM = (
    "export default { render({ el }) { el.textContent = "
    "'[widget not shown: its code (%d characters) is not saved in the executed notebook; "
    "run the cell again to see it]'; } };\n"
)
STRIPPED_CSS = "/* stripped: %d characters of widget CSS are not saved in the executed notebook */\n"
# an anywidget model's JavaScript module / style sheet (source text) -> its stub
BUNDLE_STUBS = {"_esm": STRIPPED_ESM, "_css": STRIPPED_CSS}


def strip_widget_bundles(nb, keep_chars: int = BUNDLE_KEEP_CHARS) -> int:
    """Replace the JavaScript bundles that anywidget models (e.g. plotly's ``go.FigureWidget``, whose
    ``_esm`` is plotly.js + its widget code, ~5 MB per model) carry in the saved widget state
    ``nb.metadata.widgets[WIDGET_STATE_MIME].state[id].state`` by a short stub; in place.

    papermill (nbclient) saves every widget's state into the executed notebook, so each FigureWidget
    shown costs ~5 MB in notebook.ipynb and notebook.html, though the HTML export cannot draw these
    widgets offline. Every other part of the state is kept. In JupyterLab, running the cell again draws
    the widget (its kernel sends the code); the reopened notebook, once trusted, restores the model from
    the saved state and draws the stub's note where a static copy of the widget was. A ``_esm`` / ``_css`` string longer than `keep_chars` is
    replaced by `STRIPPED_ESM` / `STRIPPED_CSS` (which name the original length). Returns the number of
    characters removed (0: nothing changed).
    """
    widgets = (nb.get("metadata") or {}).get("widgets") or {}
    state = (widgets.get(WIDGET_STATE_MIME) or {}).get("state") or {}
    removed = 0
    for model in state.values():
        mstate = model.get("state") if isinstance(model, dict) else None
        if not isinstance(mstate, dict):
            continue
        for key, stub in BUNDLE_STUBS.items():
            v = mstate.get(key)
            if isinstance(v, str) and len(v) > keep_chars:
                mstate[key] = stub % len(v)
                removed += len(v) - len(mstate[key])
    return removed


def strip_notebook_file(ipynb_path: str | os.PathLike, keep_chars: int = BUNDLE_KEEP_CHARS) -> int:
    """`strip_widget_bundles` on a saved notebook, rewritten atomically if anything was stripped.
    Returns the number of characters removed."""
    import nbformat

    nb = nbformat.read(str(ipynb_path), as_version=4)
    removed = strip_widget_bundles(nb, keep_chars)
    if removed:
        atomic_write_text(ipynb_path, nbformat.writes(nb) + "\n")
    return removed


def plotlyjs_path() -> Path | None:
    """plotly.js as installed with the plotly package (``plotly/package_data/plotly.min.js``), found
    without importing plotly; None if plotly is not installed."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("plotly")
    except (ImportError, ValueError):
        return None
    for loc in (spec.submodule_search_locations or []) if spec else []:
        p = Path(loc) / "package_data" / "plotly.min.js"
        if p.is_file():
            return p
    return None


def _script_safe(text: str) -> str:
    """JavaScript source that cannot end the ``<script>`` element it is put in (``</`` -> ``<\\/``, as
    plotly's ``to_html`` does; the same characters inside a string or a regular expression)."""
    return text.replace("</", "<\\/")


def _json_for_script(value: Any) -> str:
    """`value` as a JavaScript literal safe inside ``<script>``: JSON with every ``<`` written as
    ``\\u003c`` (only JSON strings can hold one), so no ``</script>`` or ``<!--`` can appear. NaN and
    Infinity (which Python's json reads) stay JavaScript literals."""
    return json.dumps(value, separators=(",", ":")).replace("<", "\\u003c")


def _css_size(v: Any, default: str) -> str:
    return f"{v}px" if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 else default


def plotly_figure_html(fig: dict, div_id: str) -> str:
    """The HTML of one figure given as a plotly mime bundle ``{data, layout, config?, frames?}``: a div
    and a script calling ``Plotly.newPlot`` (plotly.js must be loaded before, see `plotlyjs_html`).
    Sized like plotly's ``to_html``: the layout's width / height, else 100% x 525 px (responsive)."""
    layout = fig.get("layout") or {}
    config = dict(fig.get("config") or {})
    width = _css_size(layout.get("width"), "100%")
    if width.endswith("%"):
        config.setdefault("responsive", True)
    figure = {"data": fig.get("data") or [], "layout": layout, "config": config}
    if fig.get("frames"):
        figure["frames"] = fig["frames"]
    js = _json_for_script(figure)
    return (
        f'<div id="{div_id}" class="plotly-graph-div" style="height:{_css_size(layout.get("height"), "525px")}; '
        f'width:{width};"></div>\n'
        '<script type="text/javascript">(function () {\n'
        f'  var el = document.getElementById("{div_id}");\n'
        "  if (window.Plotly) { window.Plotly.newPlot(el, " + js + "); }\n"
        '  else { el.textContent = "[plotly figure not shown: plotly.js did not load]"; }\n'
        "})();</script>"
    )


def plotlyjs_html(source: str) -> str:
    """plotly.js inline (no CDN), as plotly's ``to_html(include_plotlyjs=True)`` embeds it."""
    return ('<script type="text/javascript">window.PlotlyConfig = {MathJaxConfig: \'local\'};</script>\n'
            f'<script type="text/javascript">{_script_safe(source)}</script>\n')


def render_static_outputs(nb, plotlyjs: str | None, *, widgets: bool = True) -> dict[str, int]:
    """Give the outputs that nbconvert cannot draw offline a static ``text/html``; in place, for the HTML
    export (the .ipynb is not changed). Cells are walked in order, in one pass:

    - an output holding only a plotly figure (`PLOTLY_MIME`, which nbconvert "is not able to represent")
      -> the figure drawn by plotly.js (outputs that already have ``text/html`` are left alone);
    - with `widgets`, a widget view (`WIDGET_VIEW_MIME`, which needs the widget manager's JavaScript from a
      CDN) -> a static copy of the widget drawn from the notebook's saved widget state
      (`posenas_core.runs.static_widgets`; plotly ``FigureWidget`` views become plotly figures); the view mime
      type is removed from the output.

    plotly.js (`plotlyjs`, its source) goes in with the first figure only: once per HTML file, before every
    figure's script. Without `plotlyjs` each figure becomes a note saying plotly.js is missing.
    Returns ``{"figures", "widgets", "missing"}``: figures drawn (or noted), widget views rendered, and
    views whose model was not saved in the notebook (they show a note)."""
    from posenas_core.runs.static_widgets import WIDGET_VIEW_MIME, StaticWidgetRenderer, saved_widget_state

    n_fig = 0

    def figure(fig: dict, div_id: str) -> str:
        nonlocal n_fig
        n_fig += 1
        if plotlyjs is None:
            return ('<pre>[plotly figure not shown: plotly.js was not found when this HTML was exported '
                    f'(plotly is not installed for {html_escape(sys.executable)})]</pre>')
        return (plotlyjs_html(plotlyjs) if n_fig == 1 else "") + plotly_figure_html(fig, div_id)

    renderer = StaticWidgetRenderer(saved_widget_state(nb), figure) if widgets else None
    for ci, cell in enumerate(nb.cells):
        for oi, out in enumerate(cell.get("outputs", []) if cell.get("cell_type") == "code" else []):
            data = out.get("data") or {}
            if renderer is not None and WIDGET_VIEW_MIME in data:
                data["text/html"] = renderer.render_view(data.pop(WIDGET_VIEW_MIME))
                continue
            fig = data.get(PLOTLY_MIME)
            if isinstance(fig, dict) and "text/html" not in data:
                data["text/html"] = figure(fig, f"posenas-plotly-{ci}-{oi}")
    return {"figures": n_fig, "widgets": renderer.widgets if renderer else 0,
            "missing": renderer.missing if renderer else 0}


def render_plotly_outputs(nb, plotlyjs: str | None) -> int:
    """`render_static_outputs` for plotly figures only (widget views are left as they are); returns the
    number of figures rendered."""
    return render_static_outputs(nb, plotlyjs, widgets=False)["figures"]


def _export_html(ipynb_path, html_path) -> tuple[Path, list[str]]:
    import nbformat
    from nbconvert import HTMLExporter

    from posenas_core.runs.static_widgets import WIDGET_VIEW_MIME, is_plotly_figure_widget, saved_widget_state

    nb = nbformat.read(str(ipynb_path), as_version=4)
    warnings: list[str] = []
    strip_widget_bundles(nb)  # a notebook saved before stripping existed
    outs = [o.get("data") or {} for c in nb.cells if c.get("cell_type") == "code" for o in c.get("outputs", [])]
    has_fig = any(PLOTLY_MIME in d and "text/html" not in d for d in outs) or (
        any(WIDGET_VIEW_MIME in d for d in outs) and any(map(is_plotly_figure_widget, saved_widget_state(nb).values())))
    js_path = plotlyjs_path() if has_fig else None
    plotlyjs = js_path.read_text(encoding="utf-8") if js_path else None
    counts = render_static_outputs(nb, plotlyjs)
    if plotlyjs is None and counts["figures"]:
        warnings.append(f"HTML export: {counts['figures']} plotly figure(s) not drawn: plotly.js not found "
                        f"(plotly is not installed for {sys.executable})")
    if counts["missing"]:
        warnings.append(f"HTML export: {counts['missing']} widget(s) not drawn: their state is not saved in "
                        f"{Path(ipynb_path).name}")
    # Every widget view is now static HTML: no widget manager (a script from a CDN, blank offline) and no
    # copy of the saved state (images, figure data) in the page.
    (nb.get("metadata") or {}).pop("widgets", None)
    from posenas_core.runs.math_html import notebook_math_to_mathml

    notebook_math_to_mathml(nb)       # equations as MathML: MathJax would come from a CDN
    body, _ = HTMLExporter().from_notebook_node(nb)
    return atomic_write_text(html_path, body), warnings


def export_html(ipynb_path: str | os.PathLike, html_path: str | os.PathLike) -> Path:
    """Export a (possibly partially executed) notebook to a standalone HTML file, atomically, readable offline.

    plotly figures (`PLOTLY_MIME` outputs) are drawn with plotly.js embedded once (offline, ~4.8 MB
    per file that has a figure; a note replaces them if plotly is not installed); every widget is a static
    copy drawn from the notebook's saved widget state (`render_static_outputs`,
    `posenas_core.runs.static_widgets`): boxes, text, images, controls showing their values, plotly
    ``FigureWidget`` views as figures; no widget manager script and no widget code bundle is in the page."""
    return _export_html(ipynb_path, html_path)[0]


def _list_files(out_dir: Path) -> list[str]:
    files = []
    for p in sorted(out_dir.rglob("*")):
        if p.is_file() and p.name != RUN_FILE and not (p.name.startswith(".") and p.name.endswith(".tmp")):
            files.append(p.relative_to(out_dir).as_posix())
    return files


def run_notebook(
    nb_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    params: dict | None = None,
    *,
    kernel_name: str = "python3",
    timeout: float | None = None,
    cwd: str | os.PathLike | None = None,
    html: bool = True,
    progress: bool = False,
    raise_on_error: bool = False,
    known: dict[str, Param] | None = None,
) -> RunRecord:
    """Execute `nb_path` with `params` into `out_dir` (see the module docstring for the files).

    Parameters are checked first: a ConfigError leaves no trace (out_dir is not even created).
    A notebook that raises gives a record with status "failed" and its error (ename, evalue, the
    failing cell index); nothing is raised unless `raise_on_error` (then NotebookRunError, after
    run.json is written). `timeout` is papermill's per-cell execution timeout in seconds; `cwd`
    is the kernel's working directory (default: this process's). If the notebook declares an
    `out_dir` parameter it receives the absolute run directory unless `params` sets it.
    """
    known = read_parameters(nb_path) if known is None else known
    params = check_parameters(nb_path, dict(params or {}), known=known)
    run_params = dict(params)
    out = Path(out_dir)
    if OUT_DIR_PARAM in known and OUT_DIR_PARAM not in params:
        run_params[OUT_DIR_PARAM] = str(out.resolve())

    ensure_hermetic_jupyter_env()
    kernel = kernel_for_current_interpreter(kernel_name)

    out.mkdir(parents=True, exist_ok=True)
    # A re-run starts clean: run.json goes first (a kill from here on leaves no record -> redone),
    # and a stale metrics.json must not be credited to this run.
    for name in (RUN_FILE, METRICS_FILE, NOTEBOOK_FILE, HTML_FILE):
        (out / name).unlink(missing_ok=True)

    import papermill

    started, t0 = _now(), time.perf_counter()
    error: dict | None = None
    exc_seen: BaseException | None = None
    engine_kwargs = {}
    if cwd is not None:
        # papermill's own `cwd=` does os.chdir() for the whole process (unsafe with worker
        # threads); nbclient starts the kernel in resources.metadata.path instead.
        engine_kwargs["resources"] = {"metadata": {"path": str(Path(cwd).resolve())}}
    encryption = _kernel_encryption(kernel)
    if encryption is not None:
        from traitlets.config import Config

        engine_kwargs["config"] = Config({"KernelManager": {"transport_encryption": encryption}})
    try:
        papermill.execute_notebook(
            str(nb_path),
            str(out / NOTEBOOK_FILE),
            parameters=run_params,
            kernel_name=kernel,
            language="python",
            progress_bar=progress,
            execution_timeout=timeout,
            **engine_kwargs,
        )
    except Exception as e:  # KeyboardInterrupt propagates: no run.json, the run is redone
        error, exc_seen = _error_from(e, nb_path), e
    duration = time.perf_counter() - t0

    warnings: list[str] = []
    if (out / NOTEBOOK_FILE).exists():
        try:
            strip_notebook_file(out / NOTEBOOK_FILE)
        except Exception as e:  # the notebook as papermill saved it stands
            warnings.append(f"stripping widget code from {NOTEBOOK_FILE} failed: {type(e).__name__}: {e}")
    if html and (out / NOTEBOOK_FILE).exists():
        try:
            warnings += _export_html(out / NOTEBOOK_FILE, out / HTML_FILE)[1]
        except Exception as e:  # the run's result stands; say why there is no HTML
            warnings.append(f"HTML export failed: {type(e).__name__}: {e}")

    metrics: dict = {}
    mpath = out / METRICS_FILE
    if mpath.exists():
        try:
            metrics = json.loads(mpath.read_text(encoding="utf-8"))
            if not isinstance(metrics, dict):
                raise ValueError(f"a JSON object is required, got {_type_name(metrics)}")
        except (ValueError, UnicodeDecodeError) as e:
            metrics = {}
            if error is None:
                error = {"ename": "MetricsError", "evalue": f"{mpath}: {e}", "cell_index": None,
                         "exec_count": None, "traceback": ""}

    record = RunRecord(
        notebook=Path(nb_path).as_posix(),
        params=params,
        status="ok" if error is None else "failed",
        error=error,
        started=started,
        finished=_now(),
        duration_s=round(duration, 3),
        metrics=metrics,
        files=_list_files(out),
        out_dir=str(out.resolve()),
        kernel_name=kernel,
        python=_kernel_python(kernel),
        warnings=warnings,
    )
    atomic_write_json(out / RUN_FILE, record.to_dict())  # last: its presence means "finished"
    if raise_on_error and not record.ok:
        msg = f"notebook {nb_path} failed: {error_summary(error)}; see {out / HTML_FILE}"
        raise NotebookRunError(msg, record) from exc_seen
    return record
