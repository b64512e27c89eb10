"""Batches of notebook runs (sweeps): a YAML file -> one `run_notebook` per parameter set.

Sweep file::

    name: demo                                 # results in reports/<name>/ (default: the file's stem)
    notebook: notebooks/00_quickstart.ipynb    # default notebook (a run may name its own)
    workers: 2                                 # concurrent runs (each has its own kernel process)
    base: {epochs: 1, seed: 0}                 # parameters common to every run
    runs:                                      # an explicit list (optional) ...
      - {id: small, params: {n_train: 200}}
      - {params: {n_train: 800}, notebook: other.ipynb}
    grid:                                      # ... and/or a cartesian product over base (optional)
      seed: [0, 1]
      input_size: ["128x96", "256x192"]

The runs are the explicit list followed by the grid points (last key varies fastest); a run's
parameters are ``{**base, **own}``. A relative notebook path is looked up in the current
directory first, then next to the sweep file. Everything (keys, types, every run's parameters
against its notebook's parameters cell, unique run ids) is checked by `load_sweep` before
anything runs.

Run ids: the given ``id``, else built from the run's own parameters (not base):
``seed-0_input_size-128x96``; a long or lossy id gets a short hash suffix.

Layout: ``reports/<name>/<run-id>/{notebook.ipynb, notebook.html, metrics.json, run.json}`` and
``reports/<name>/index.csv`` / ``index.html``, rebuilt from the run.json files on disk after each
finished run. Re-running a sweep skips runs whose run.json says "ok" with the same notebook and
parameters, and redoes failed runs and runs killed in flight (they have no run.json).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import warnings
from concurrent.futures import ThreadPoolExecutor, as_completed
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from posenas_core.errors import ConfigError
from posenas_core.runs.io import atomic_write_text
from posenas_core.runs.kernels import ensure_hermetic_jupyter_env, kernel_for_current_interpreter
from posenas_core.runs.notebooks import HTML_FILE, NOTEBOOK_FILE, RUN_FILE, RunRecord, error_summary, run_notebook
from posenas_core.runs.params import Param, check_parameters, read_parameters

__all__ = [
    "Sweep", "SweepRun", "BatchResult", "make_run_id", "load_sweep", "run_batch", "flatten_scalars",
    "collect_runs", "write_index",
]

SWEEP_KEYS = ("name", "notebook", "workers", "base", "runs", "grid")
RUN_KEYS = ("id", "params", "notebook")
_SAFE = re.compile(r"[^A-Za-z0-9_.=+-]+")
_ID_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.=+-]*$")
MAX_ID_LEN = 64

# index columns before the params.* and metrics.* columns
INDEX_COLUMNS = ["run_id", "notebook", "status", "error", "started", "duration_s"]
LINK_COLUMNS = ["notebook_ipynb", "notebook_html"]


@dataclass(frozen=True)
class SweepRun:
    """One run of a sweep: its id, notebook and complete (checked) parameters."""

    id: str
    notebook: str
    params: dict


@dataclass
class Sweep:
    name: str
    path: str  # the sweep file
    notebook: str | None
    workers: int
    base: dict
    runs: list[SweepRun]


@dataclass
class BatchResult:
    name: str
    out_dir: Path  # reports/<name>
    records: dict[str, RunRecord] = field(default_factory=dict)  # run id -> record (skipped ones too)
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    index_csv: Path | None = None
    index_html: Path | None = None

    @property
    def failed(self) -> list[str]:
        return [k for k, r in self.records.items() if not r.ok]

    @property
    def ok(self) -> bool:
        return not self.failed


# ----------------------------------------------------------------------------------------------
# Loading and validating a sweep file


def _type(v: Any) -> str:
    return {bool: "bool", int: "int", float: "float", str: "str", list: "list", dict: "mapping"}.get(
        type(v), "null" if v is None else type(v).__name__
    )


def _fmt_value(v: Any) -> str:
    if isinstance(v, str):
        return v
    return json.dumps(v, sort_keys=True, separators=(",", ":"))


def make_run_id(params: dict, prefix: str = "") -> str:
    """A readable, deterministic id from parameters: ``seed-0_input_size-128x96``.

    Characters outside ``[A-Za-z0-9_.=+-]`` become ``-``; an id that is too long or lost
    information that way gets an 8-hex hash of the exact parameters as a suffix.
    """
    raw = "_".join(f"{k}-{_fmt_value(v)}" for k, v in params.items()) or "default"
    if prefix:
        raw = f"{prefix}_{raw}"
    safe = _SAFE.sub("-", raw).strip("-") or "run"
    if safe != raw or len(safe) > MAX_ID_LEN:
        digest = hashlib.sha1(
            (prefix + json.dumps(params, sort_keys=True, default=str)).encode()
        ).hexdigest()[:8]
        safe = f"{safe[: MAX_ID_LEN - 9].rstrip('-_')}-{digest}"
    return safe


def _resolve_notebook(nb: str, sweep_path: Path, where: str) -> str:
    p = Path(nb)
    if p.is_absolute() or p.is_file():
        return p.as_posix()
    beside = sweep_path.parent / p
    if beside.is_file():
        return beside.as_posix()
    raise ConfigError(f"{where}: notebook not found: {nb} (looked in {Path.cwd()} and {sweep_path.parent})")


def _notebook_field(doc: dict, sweep_path: Path, where: str) -> str | None:
    """The 'notebook' entry of `doc` (top level or one run), checked and resolved; None when absent."""
    nb = doc.get("notebook")
    if nb is None:
        return None
    if not isinstance(nb, str) or not nb:
        raise ConfigError(f"{where}: 'notebook' must be a path string; got {nb!r}")
    return _resolve_notebook(nb, sweep_path, f"{where}: 'notebook'")


def _load_yaml(path: Path) -> Any:
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"sweep file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"sweep file {path} is not readable: {e}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e)
        ctx, cmark = getattr(e, "context", None), getattr(e, "context_mark", None)
        if ctx and cmark is not None and cmark is not mark:
            problem += f" ({ctx} at line {cmark.line + 1})"
        raise ConfigError(f"{path}: YAML syntax error{where}: {problem}") from None


def load_sweep(path: str | os.PathLike) -> Sweep:
    """Read and validate a sweep file completely (see the module docstring); raise ConfigError
    naming the file and the key on the first problem. No notebook is executed."""
    path = Path(path)
    doc = _load_yaml(path)
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: a sweep file must be a mapping with keys {', '.join(SWEEP_KEYS)}; got {_type(doc)}")
    unknown = [k for k in doc if k not in SWEEP_KEYS]
    if unknown:
        raise ConfigError(f"{path}: unknown key '{unknown[0]}'; allowed: {', '.join(SWEEP_KEYS)}")

    name = doc.get("name", path.stem)
    if not isinstance(name, str) or not _ID_OK.match(name):
        raise ConfigError(f"{path}: 'name' must be a folder name of letters, digits, '_', '.', '-'; got {name!r}")
    workers = doc.get("workers", 1)
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ConfigError(f"{path}: 'workers' must be an integer >= 1; got {workers!r}")
    base = doc.get("base") or {}
    if not isinstance(base, dict):
        raise ConfigError(f"{path}: 'base' must be a mapping of parameter -> value; got {_type(base)}")
    default_nb = _notebook_field(doc, path, str(path))

    # (position label, notebook, own params, given id)
    raw_runs: list[tuple[str, str, dict, str | None]] = []
    runs_doc = doc.get("runs")
    if runs_doc is not None:
        if not isinstance(runs_doc, list):
            raise ConfigError(f"{path}: 'runs' must be a list of {{id, params, notebook}} mappings; got {_type(runs_doc)}")
        for i, r in enumerate(runs_doc):
            where = f"{path}: runs[{i}]"
            if not isinstance(r, dict):
                raise ConfigError(f"{where} must be a mapping with keys {', '.join(RUN_KEYS)}; got {_type(r)}")
            bad = [k for k in r if k not in RUN_KEYS]
            if bad:
                raise ConfigError(f"{where}: unknown key '{bad[0]}'; allowed: {', '.join(RUN_KEYS)}")
            rid = r.get("id")
            if rid is not None and (not isinstance(rid, str) or not _ID_OK.match(rid)):
                raise ConfigError(f"{where}: 'id' must be a folder name of letters, digits, '_', '.', '=', '+', '-'; got {rid!r}")
            own = r.get("params") or {}
            if not isinstance(own, dict):
                raise ConfigError(f"{where}: 'params' must be a mapping; got {_type(own)}")
            nb = _notebook_field(r, path, where)
            if nb is None and default_nb is None:
                raise ConfigError(f"{where}: no notebook (set 'notebook' at the top of the file or in the run)")
            raw_runs.append((f"runs[{i}]", nb or default_nb, own, rid))

    grid = doc.get("grid")
    if grid is not None:
        if not isinstance(grid, dict) or not grid:
            raise ConfigError(f"{path}: 'grid' must be a non-empty mapping of parameter -> list of values; got {grid!r}")
        for k, vals in grid.items():
            if not isinstance(vals, list) or not vals:
                raise ConfigError(f"{path}: grid.{k} must be a non-empty list of values; got {vals!r}")
        if default_nb is None:
            raise ConfigError(f"{path}: 'grid' needs the top-level 'notebook'")
        keys = list(grid)
        for j, combo in enumerate(itertools.product(*(grid[k] for k in keys))):
            raw_runs.append((f"grid point {j}", default_nb, dict(zip(keys, combo)), None))

    if not raw_runs:
        raise ConfigError(f"{path}: no runs: give 'runs' (a list) and/or 'grid' (parameter -> values)")

    tables: dict[str, dict[str, Param]] = {}
    runs: list[SweepRun] = []
    seen: dict[str, str] = {}
    for label, nb, own, rid in raw_runs:
        if nb not in tables:
            try:
                tables[nb] = read_parameters(nb)
            except ConfigError as e:
                raise ConfigError(f"{path}: {label}: {e}") from None
        if rid is None:
            prefix = Path(nb).stem if (default_nb is not None and nb != default_nb) else ""
            rid = make_run_id(own, prefix)
        try:
            params = check_parameters(nb, {**base, **own}, known=tables[nb])
        except ConfigError as e:
            raise ConfigError(f"{path}: {label} (run '{rid}'): {e}") from None
        if rid in seen:
            raise ConfigError(
                f"{path}: duplicate run id '{rid}' ({seen[rid]} and {label}); give the runs distinct 'id's"
            )
        seen[rid] = label
        runs.append(SweepRun(id=rid, notebook=nb, params=params))
    return Sweep(name=name, path=path.as_posix(), notebook=default_nb, workers=workers, base=dict(base), runs=runs)


# ----------------------------------------------------------------------------------------------
# Running


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _finished_ok(run_dir: Path, run: SweepRun) -> RunRecord | None:
    """The run's record if run.json says it finished ok with the same notebook and parameters."""
    try:
        rec = RunRecord.load(run_dir / RUN_FILE)
    except ConfigError:
        return None
    if rec.ok and rec.notebook == Path(run.notebook).as_posix() and _same(rec.params, run.params):
        return rec
    return None


def run_batch(
    sweep: Sweep | str | os.PathLike,
    reports_root: str | os.PathLike = "reports",
    workers: int | None = None,
    progress: bool = True,
    *,
    kernel_name: str = "python3",
    timeout: float | None = None,
    cwd: str | os.PathLike | None = None,
    html: bool = True,
    on_run_done: Callable[[str, RunRecord], None] | None = None,
) -> BatchResult:
    """Run every run of `sweep` (a Sweep or a sweep file path) into ``reports_root/<name>/<id>/``.

    `workers` (default: the sweep's) runs execute concurrently in threads, each with its own
    kernel process. A failed run is recorded and the batch goes on; finished-ok runs with the
    same parameters are skipped; index.csv/index.html are rewritten after every finished run.
    `on_run_done(run_id, record)` is called in the calling thread after each run (e.g. a widget).
    """
    if not isinstance(sweep, Sweep):
        sweep = load_sweep(sweep)
    out_root = Path(reports_root) / sweep.name
    out_root.mkdir(parents=True, exist_ok=True)
    result = BatchResult(name=sweep.name, out_dir=out_root)

    todo: list[SweepRun] = []
    for run in sweep.runs:
        rec = _finished_ok(out_root / run.id, run)
        if rec is not None:
            result.records[run.id] = rec
            result.skipped.append(run.id)
        else:
            todo.append(run)

    # Environment and kernel set-up once, in this thread, before any worker starts.
    ensure_hermetic_jupyter_env()
    kernel = kernel_for_current_interpreter(kernel_name)
    tables = {nb: read_parameters(nb) for nb in {r.notebook for r in todo}}

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(sweep.runs), initial=len(result.skipped), desc=f"batch {sweep.name}", unit="run")

    def one(run: SweepRun) -> RunRecord:
        return run_notebook(
            run.notebook, out_root / run.id, run.params, kernel_name=kernel, timeout=timeout, cwd=cwd,
            html=html, progress=False, known=tables[run.notebook],
        )

    n_workers = max(1, min(workers or sweep.workers, len(todo) or 1))
    try:
        with ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix="posenas-batch") as pool:
            futures = {pool.submit(one, run): run for run in todo}
            try:
                for fut in as_completed(futures):
                    run = futures[fut]
                    rec = fut.result()  # run_notebook records notebook errors; anything else is ours
                    result.records[run.id] = rec
                    result.ran.append(run.id)
                    write_index(out_root)
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(failed=len(result.failed))
                    if on_run_done is not None:
                        on_run_done(run.id, rec)
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
    finally:
        if bar is not None:
            bar.close()
    # keep the sweep's order in the result
    result.records = {r.id: result.records[r.id] for r in sweep.runs if r.id in result.records}
    result.index_csv, result.index_html = write_index(out_root)
    return result


# ----------------------------------------------------------------------------------------------
# Index tables


def _is_scalar(v: Any) -> bool:
    """A value that fits one table cell as it is: None, bool, int, float or str."""
    return v is None or isinstance(v, (bool, int, float, str))


def flatten_scalars(d: Mapping, prefix: str) -> dict:
    """{"a": {"b": 1, "c": [..]}} -> {"prefix.a.b": 1}: nested mappings joined with dots, scalars kept."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}.{k}"
        if isinstance(v, Mapping):
            out.update(flatten_scalars(v, key))
        elif _is_scalar(v):
            out[key] = v
        # lists and other non-scalars are left out of the table (they stay in run.json)
    return out


def _row(run_json: Path, root: Path) -> dict | None:
    try:
        rec = RunRecord.load(run_json)
    except ConfigError as e:
        warnings.warn(f"skipping {run_json}: {e}")
        return None
    run_dir = run_json.parent
    rel = run_dir.relative_to(root).as_posix()
    row = {
        "run_id": run_dir.name,
        "run_dir": rel,
        "notebook": rec.notebook,
        "status": rec.status,
        "error": error_summary(rec.error),
        "started": rec.started,
        "duration_s": rec.duration_s,
    }
    for k, v in rec.params.items():
        row[f"params.{k}"] = v if _is_scalar(v) else json.dumps(v, sort_keys=True)
    row.update(flatten_scalars(rec.metrics or {}, "metrics"))
    row["notebook_ipynb"] = f"{rel}/{NOTEBOOK_FILE}" if (run_dir / NOTEBOOK_FILE).exists() else ""
    row["notebook_html"] = f"{rel}/{HTML_FILE}" if (run_dir / HTML_FILE).exists() else ""
    return row


def _frame(rows: list[dict]):
    import pandas as pd

    fixed = ["run_id", "run_dir"] + INDEX_COLUMNS[1:]
    if not rows:
        return pd.DataFrame(columns=fixed + LINK_COLUMNS)
    df = pd.DataFrame(rows)
    # parameters in first-seen order (the order people wrote them), metrics sorted by name
    params: list[str] = []
    for r in rows:
        params += [c for c in r if c.startswith("params.") and c not in params]
    metrics = sorted(c for c in df.columns if c.startswith("metrics."))
    return df[fixed + params + metrics + LINK_COLUMNS].reset_index(drop=True)


def collect_runs(reports_root: str | os.PathLike = "reports"):
    """A pandas DataFrame with one row per run.json under `reports_root` (batch and single runs).

    Columns: run_id, run_dir (relative to reports_root), notebook, status, error, started,
    duration_s, ``params.<name>`` (lists/dicts as JSON), ``metrics.<name>`` (nested dicts
    flattened with dots; non-scalars left out), notebook_ipynb / notebook_html (paths relative
    to reports_root, "" when absent). Sorted by run_dir.
    """
    root = Path(reports_root)
    rows = [r for p in sorted(root.rglob(RUN_FILE)) if (r := _row(p, root)) is not None] if root.is_dir() else []
    return _frame(rows)


def write_index(batch_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Rebuild ``index.csv`` (`collect_runs`) and ``index.html`` (`posenas_core.runs.index_page`) of a batch
    directory from its run.json files, atomically: one row per run directory, links relative to the batch
    directory. Returns both paths."""
    from posenas_core.runs.index_page import index_page

    batch_dir = Path(batch_dir)
    df = collect_runs(batch_dir)
    csv_path = atomic_write_text(batch_dir / "index.csv", df.to_csv(index=False))
    html_path = atomic_write_text(batch_dir / "index.html", index_page(df, batch_dir, f"Batch {batch_dir.name}"))
    return csv_path, html_path
