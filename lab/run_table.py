"""RunTable: every notebook run under reports/ as a sortable, filterable table.

    RunTable("../reports")        # in a notebook under notebooks/

Rows come from `posenas_core.runs.batch.collect_runs(reports_root)` (one per run.json: run_id,
run_dir, notebook, status, error, started, duration_s, params.*, metrics.*, notebook_ipynb,
notebook_html). Controls: sort column + ascending toggle, status filter, a text filter
(case-insensitive substring of any cell), refresh. `.df` is the current filtered + sorted DataFrame
(all columns); the HTML shows run_id, status, duration, started, notebook, params, metrics, error and an
"open" column of links to the executed notebook and its HTML export.

Links: ``href = link_base + "/" + <path relative to reports_root>``; `link_base` defaults to
`reports_root` as given, i.e. a path relative to the kernel's working directory, which in Jupyter is
the notebook's directory, and relative hrefs in the page resolve against the notebook's URL
(``/lab/tree/notebooks/x.ipynb`` + ``../reports/...`` -> ``/lab/tree/reports/...``, which JupyterLab
opens). Pass ``link_base="files/reports"`` or an absolute URL prefix for another server layout.

The table HTML is ``DataFrame.to_html(escape=True)``; only the link and status cells are built here
(placeholders replaced after escaping), so no cell text from run.json is ever interpreted as HTML.
"""

from __future__ import annotations

import html
import math
import os
import posixpath
import secrets
from pathlib import Path
from typing import Any, Sequence

import ipywidgets as W
import pandas as pd

from posenas_core.runs import collect_runs

from lab._util import DisplayMixin, ErrorArea

__all__ = ["RunTable", "sort_runs", "filter_runs", "runs_html"]

FIRST_COLUMNS = ["run_id", "status", "duration_s", "started", "notebook"]
LINK_COLUMNS = ["notebook_ipynb", "notebook_html"]
_STATUS_COLORS = {"ok": "#176f2c", "failed": "#b00020"}


def _isna(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA or v is pd.NaT


def sort_runs(df: pd.DataFrame, column: str, ascending: bool = True) -> pd.DataFrame:
    """Stable sort by `column`: numerically when every non-missing value is a number (bools count
    as 0/1), else by text; missing values last either way. Index reset."""
    if column not in df.columns:
        raise KeyError(f"sort column {column!r} is not a column of the run table; columns: {list(df.columns)}")
    s = df[column]
    present = s.map(lambda v: not _isna(v))
    num = pd.to_numeric(s.where(present), errors="coerce")
    if bool((num.notna() == present).all()):
        key = num.astype(float)
    else:
        key = s.map(lambda v: None if _isna(v) else str(v))
    out = df.assign(__key=key.values).sort_values("__key", ascending=ascending, na_position="last", kind="stable")
    return out.drop(columns="__key").reset_index(drop=True)


def filter_runs(df: pd.DataFrame, status: str = "", text: str = "") -> pd.DataFrame:
    """Rows whose status equals `status` ("" = any) and where some cell contains `text`
    (case-insensitive substring; "" = any). Index reset."""
    mask = pd.Series(True, index=df.index)
    if status:
        mask &= df["status"].astype(str) == status
    text = text.strip()
    if text and len(df):
        cells = df.apply(lambda col: col.map(lambda v: "" if _isna(v) else str(v)))
        mask &= cells.apply(lambda col: col.str.contains(text, case=False, regex=False)).any(axis=1)
    return df[mask].reset_index(drop=True)


def display_columns(df: pd.DataFrame) -> list[str]:
    params = [c for c in df.columns if c.startswith("params.")]
    metrics = [c for c in df.columns if c.startswith("metrics.")]
    return [c for c in FIRST_COLUMNS if c in df.columns] + params + metrics + (["error"] if "error" in df.columns else [])


def runs_html(df: pd.DataFrame, link_base: str = "") -> str:
    """The runs as an HTML table (`DataFrame.to_html(escape=True)` with built link / status cells)."""
    if not len(df):
        return "<i>no runs</i>"
    cols = display_columns(df)
    disp = df[cols].copy()
    tag = secrets.token_hex(6)
    cells: dict[str, str] = {}

    def cell(markup: str) -> str:
        tok = f"@@{tag}-{len(cells)}@@"
        cells[tok] = markup
        return tok

    if "status" in disp.columns:
        disp["status"] = [
            cell(f"<b style='color:{_STATUS_COLORS.get(str(s), '#333')}'>{html.escape(str(s))}</b>") for s in disp["status"]
        ]
    links = []
    for _, row in df.iterrows():
        parts = []
        for c, label in zip(LINK_COLUMNS, ("ipynb", "html")):
            rel = row.get(c)
            if isinstance(rel, str) and rel:
                href = posixpath.join(link_base, rel) if link_base else rel
                parts.append(f'<a href="{html.escape(href, quote=True)}" target="_blank">{label}</a>')
        links.append(cell(" ".join(parts)))
    disp["open"] = links
    table = disp.to_html(escape=True, index=False, na_rep="", border=0, classes="posenas-runs",
                         float_format=lambda v: f"{v:.4g}")
    for tok, markup in cells.items():
        table = table.replace(tok, markup)
    style = ("<style>.posenas-runs{border-collapse:collapse;font-size:12px}"
             ".posenas-runs th,.posenas-runs td{border:1px solid #ddd;padding:2px 6px;text-align:left}"
             ".posenas-runs th{background:#f0f0f0}.posenas-runs tr:nth-child(even){background:#fafafa}</style>")
    return style + table


class RunTable(DisplayMixin):
    """Runs under `reports_root` (see the module docstring).

    Attributes: `.widget` (root), `.df` (current filtered + sorted DataFrame), `.all_runs` (everything
    collect_runs found), `.table` (HTML widget), `.summary` (HTML), `.sort_dropdown`, `.ascending`,
    `.status_filter`, `.text_filter`, `.refresh_button`, `.errors` (ErrorArea).
    """

    def __init__(self, reports_root: str | os.PathLike = "reports", *, link_base: str | None = None,
                 sort_by: str = "run_dir", ascending: bool = True, title: str = ""):
        self.reports_root = Path(reports_root)
        self.link_base = Path(reports_root).as_posix() if link_base is None else str(link_base)
        self.errors = ErrorArea()
        self.all_runs = collect_runs(self.reports_root)
        self.df = self.all_runs
        self._initial_sort = sort_by
        self.sort_dropdown = W.Dropdown(options=[sort_by], value=sort_by, description="sort by",
                                        layout=W.Layout(width="300px"))
        self.ascending = W.ToggleButton(value=bool(ascending), description="ascending", icon="sort-amount-asc",
                                        layout=W.Layout(width="110px"))
        self.status_filter = W.Dropdown(options=[("all", "")], value="", description="status",
                                        layout=W.Layout(width="180px"))
        self.text_filter = W.Text(value="", placeholder="text in any column", description="filter",
                                  continuous_update=False, layout=W.Layout(width="260px"))
        self.refresh_button = W.Button(description="refresh", icon="refresh", layout=W.Layout(width="90px"))
        self.summary = W.HTML()
        self.table = W.HTML(layout=W.Layout(max_height="520px", overflow="auto"))
        self._building = False
        for w in (self.sort_dropdown, self.ascending, self.status_filter, self.text_filter):
            w.observe(self._on_control, names="value")
        self.refresh_button.on_click(lambda _b: self.refresh())
        head = W.HTML(f"<h3 style='margin:4px 0'>{html.escape(title)}</h3>") if title else W.HTML("")
        self.widget = W.VBox([
            head,
            W.HBox([self.sort_dropdown, self.ascending, self.status_filter, self.text_filter, self.refresh_button]),
            self.summary, self.table, self.errors.widget,
        ])
        self.refresh(reload=False)

    def _on_control(self, _change) -> None:
        if not self._building:
            self.update()

    def refresh(self, reload: bool = True) -> None:
        """Re-read every run.json under reports_root, then update the table."""
        with self.errors.catch(f"reading the runs under {self.reports_root}"):
            if reload:
                self.all_runs = collect_runs(self.reports_root)
            df = self.all_runs
            self._building = True
            try:
                cols = list(df.columns)
                current = self.sort_dropdown.value
                self.sort_dropdown.options = cols
                self.sort_dropdown.value = current if current in cols else (cols[0] if cols else None)
                statuses = sorted({str(s) for s in df["status"] if not _isna(s)}) if "status" in df.columns else []
                sel = self.status_filter.value
                self.status_filter.options = [("all", "")] + [(s, s) for s in statuses]
                self.status_filter.value = sel if sel in statuses else ""
            finally:
                self._building = False
        self.update()

    def update(self) -> None:
        """Apply the filters and the sort to `.all_runs` and redraw (errors -> the Output area)."""
        with self.errors.catch("updating the run table"):
            df = filter_runs(self.all_runs, self.status_filter.value or "", self.text_filter.value)
            col = self.sort_dropdown.value
            if col:
                df = sort_runs(df, col, self.ascending.value)
            self.df = df
            self.ascending.icon = "sort-amount-asc" if self.ascending.value else "sort-amount-desc"
            n_all = len(self.all_runs)
            by = self.all_runs["status"].value_counts().to_dict() if n_all else {}
            counts = ", ".join(f"{v} {html.escape(str(k))}" for k, v in sorted(by.items()))
            self.summary.value = (f"{len(df)} of {n_all} runs shown" + (f" ({counts} in all)" if counts else "")
                                  + f" &middot; <code>{html.escape(str(self.reports_root))}</code>")
            self.table.value = runs_html(df, self.link_base)
