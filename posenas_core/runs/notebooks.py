"""One notebook run: check the parameters, execute the notebook with papermill into a run directory, record it.

`run_notebook(nb_path, out_dir, params)` writes::

    out_dir/notebook.ipynb   the executed notebook (also partially executed, for a failed run), without the
                             JavaScript bundles of its widgets (`widget_state.strip_widget_bundles`)
    out_dir/notebook.html    its HTML export (so a failure is visible in a browser), readable offline
                             (`export.export_html`)
    out_dir/metrics.json     written by the notebook itself, if it wants to report metrics
    out_dir/run.json         a `RunRecord`: written LAST and atomically, so a run killed in flight leaves no
                             run.json and a batch redoes it.

The parameters are checked against the notebook's ``parameters`` cell first (`posenas_core.runs.params`).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from posenas_core.errors import ConfigError
from posenas_core.runs.export import export_html_with_warnings
from posenas_core.runs.io import atomic_write_json
from posenas_core.runs.kernels import (
    ensure_hermetic_jupyter_env,
    kernel_encryption,
    kernel_for_current_interpreter,
    kernel_python,
)
from posenas_core.runs.params import Param, check_parameters, read_notebook, read_parameters, type_name
from posenas_core.runs.static_widgets import strip_ansi
from posenas_core.runs.widget_state import strip_notebook_file

__all__ = [
    "OUT_DIR_PARAM", "RUN_FILE", "METRICS_FILE", "NOTEBOOK_FILE", "HTML_FILE", "NotebookRunError", "RunRecord",
    "error_summary", "run_notebook",
]

OUT_DIR_PARAM = "out_dir"  # a notebook declaring this parameter gets its run directory here
RUN_FILE = "run.json"
METRICS_FILE = "metrics.json"
NOTEBOOK_FILE = "notebook.ipynb"
HTML_FILE = "notebook.html"


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


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _source_cell_index(nb_path, executed_index: int, source: str) -> int:
    """Papermill's cell index counts its injected-parameters cell; map it back to the cell index
    in the notebook as written (0-based), matching the failing cell's source."""
    try:
        cells = read_notebook(nb_path).cells
    except ConfigError:
        return executed_index
    matches = [i for i, c in enumerate(cells) if c.get("cell_type") == "code" and c.get("source") == source]
    if not matches:
        return executed_index
    return min(matches, key=lambda i: (abs(i - executed_index), i))


def _error_from(exc: BaseException, nb_path) -> dict:
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError):
        tb = "\n".join(strip_ansi(line) for line in (exc.traceback or []))
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
    encryption = kernel_encryption(kernel)
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
            warnings += export_html_with_warnings(out / NOTEBOOK_FILE, out / HTML_FILE)[1]
        except Exception as e:  # the run's result stands; say why there is no HTML
            warnings.append(f"HTML export failed: {type(e).__name__}: {e}")

    metrics: dict = {}
    mpath = out / METRICS_FILE
    if mpath.exists():
        try:
            metrics = json.loads(mpath.read_text(encoding="utf-8"))
            if not isinstance(metrics, dict):
                raise ValueError(f"a JSON object is required, got {type_name(metrics)}")
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
        python=kernel_python(kernel),
        warnings=warnings,
    )
    atomic_write_json(out / RUN_FILE, record.to_dict())  # last: its presence means "finished"
    if raise_on_error and not record.ok:
        msg = f"notebook {nb_path} failed: {error_summary(error)}; see {out / HTML_FILE}"
        raise NotebookRunError(msg, record) from exc_seen
    return record
