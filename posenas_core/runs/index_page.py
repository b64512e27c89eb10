"""The ``index.html`` of a batch directory: the runs compared, readable offline on a laptop screen.

`index_page(df, batch_dir)` turns the table of `posenas_core.runs.batch.collect_runs` into one HTML page:

1. a headline table (``DataFrame.to_html``) fitting a 1366 px wide screen: each run's id as a link to its
   notebook.html (left), its headline metrics rounded (`HEADLINE_METRICS`: AP, AP50, PCK, val loss,
   params, MACs, whichever the runs reported; else the first numeric metrics), wall time, status (the error
   in a tooltip) and the parameters that differ between runs (long values cut, the full value in a tooltip);
2. charts drawn with plotly.js embedded once (offline; the figure JSON is written here, plotly itself is not
   imported by the core): a bar per run of a headline metric (a menu switches the metric), and, for runs
   that wrote an evolution archive (``archive.jsonl`` of `posenas_core.search.evolution`), every candidate
   of each run with its Pareto front overlaid, val loss (or AP) against MACs;
3. every parameter and metric, in a collapsed ``<details>`` table (scrolls inside its own box).

Column headers sort the tables on a click.
"""

from __future__ import annotations

import json
import math
from html import escape
from pathlib import Path
from typing import Any

from posenas_core.data.annotations import is_number
from posenas_core.runs import plotly_html
from posenas_core.runs.io import read_jsonl
from posenas_core.search.pareto import pareto_order  # pure NumPy (no search machinery is imported)

__all__ = ["CUT_DETAILS", "fmt_number", "fmt_duration", "index_page"]

# (label, candidate columns (first present wins), scale, format, what it is)
HEADLINE_METRICS = (
    ("AP", ("metrics.AP", "metrics.coco.AP"), 1.0, ".3f", "COCO OKS AP"),
    ("AP50", ("metrics.coco.AP50", "metrics.AP50"), 1.0, ".3f", "COCO OKS AP at OKS 0.5"),
    ("PCK@0.2", ("metrics.pck@0.2", "metrics.pck"), 1.0, ".3f", "PCK: a joint within 0.2 of the box size"),
    ("val loss", ("metrics.best_val_loss", "metrics.val_loss"), 1.0, ".4g", "validation loss (of the best candidate)"),
    ("params (M)", ("metrics.best_params", "metrics.params"), 1e-6, ".2f", "trainable parameters, millions"),
    ("GMACs", ("metrics.best_macs", "metrics.macs"), 1e-9, ".3f", "multiply-adds / 1e9 (one multiply-add = 1)"),
)
FALLBACK_METRICS = 4  # numeric metrics shown when none of HEADLINE_METRICS is there
MAX_VARIED_PARAMS = 5  # varied parameters in the headline table (all are in the details table)
CUT_HEADLINE = 22  # characters of a parameter value in the headline table (the full value in a tooltip)
CUT_DETAILS = 40
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf")
ARCHIVE = "archive.jsonl"

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1em 1.5em; color: #222; }
h2 { margin: .2em 0 .3em; } h3 { margin: 1.2em 0 .4em; }
p.summary { margin: .2em 0 .8em; color: #444; }
table.runs { border-collapse: collapse; font-size: 13px; }
table.runs th, table.runs td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; white-space: nowrap;
  max-width: 16em; overflow: hidden; text-overflow: ellipsis; }
table.runs th { background: #f0f0f0; cursor: pointer; position: sticky; top: 0; }
table.runs th:hover { background: #e0e0e0; }
table.runs td:has(> .num) { text-align: right; } table.runs .num { font-variant-numeric: tabular-nums; }
table.runs tr:nth-child(even) { background: #fafafa; }
.status-ok { color: #176f2c; font-weight: bold; }
.status-failed { color: #b00020; font-weight: bold; }
.muted { color: #888; }
.note { color: #666; font-size: 12px; }
details { margin-top: 1.2em; } summary { cursor: pointer; font-weight: 600; }
.scroll { overflow-x: auto; max-width: 100%; }
.chart { max-width: 1100px; }
"""

SORT_JS = """
function sortTable(th) {
  const table = th.closest("table"), body = table.tBodies[0];
  const i = Array.from(th.parentNode.children).indexOf(th);
  const asc = th.dataset.asc !== "1"; th.dataset.asc = asc ? "1" : "0";
  const key = r => { const c = r.children[i], v = c && c.querySelector("[data-v]");
                     return v ? v.dataset.v : (c ? c.innerText : ""); };
  const rows = Array.from(body.rows).sort((a, b) => {
    const x = key(a).trim(), y = key(b).trim(), nx = parseFloat(x), ny = parseFloat(y);
    if (x === "" || y === "") return (x === "") - (y === "");  // empty cells last either way
    const c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
    return asc ? c : -c;
  });
  rows.forEach(r => body.appendChild(r));
}
document.addEventListener("DOMContentLoaded", () =>
  document.querySelectorAll("table.runs thead th").forEach(th => th.addEventListener("click", () => sortTable(th))));
"""


# ----------------------------------------------------------------------------------------------
# cells


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or (isinstance(v, str) and v == "")


def _is_num(v: Any) -> bool:
    """A number that is not NaN (pandas' missing value); bool is not a number."""
    return is_number(v) and v == v  # NaN != NaN


def _plain(v: Any) -> Any:
    """A numpy scalar as the Python value it holds; anything else as it is."""
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        try:
            return v.item()
        except (TypeError, ValueError):
            pass
    return v


def _num(v: Any) -> float | None:
    """A finite number (numpy scalars included) as a float, else None."""
    v = _plain(v)
    return float(v) if _is_num(v) and math.isfinite(v) else None


def fmt_number(v: Any, fmt: str = ".4g", scale: float = 1.0) -> str:
    """A number rounded for a person: ints with thousands separators, floats with `fmt` (after `scale`)."""
    v = _plain(v)
    if not _is_num(v):
        return "" if _missing(v) else str(v)
    if scale == 1.0 and (isinstance(v, int) or (fmt == ".4g" and float(v).is_integer() and abs(v) < 1e15)):
        return f"{int(v):,}"  # (an int column with a missing value is float in pandas)
    x = v * scale
    if not math.isfinite(x):
        return str(x)
    return format(x, fmt)


def fmt_duration(seconds: Any) -> str:
    """83.2 -> '1m 23s'; 4000 -> '1h 07m'; 7.25 -> '7.2s'."""
    s = _num(seconds)
    if s is None:
        return ""
    if s < 60:
        return f"{s:.1f}s"
    m, sec = divmod(int(round(s)), 60)
    if m < 60:
        return f"{m}m {sec:02d}s"
    h, m = divmod(int(round(s / 60)), 60)
    return f"{h}h {m:02d}m"


def _cut(text: str, n: int) -> str:
    """`text` escaped; cut to `n` characters with the full value in a tooltip when longer."""
    if len(text) <= n:
        return escape(text)
    return f'<span title="{escape(text)}">{escape(text[: n - 1])}\u2026</span>'


def _num_cell(v: Any, text: str) -> str:
    n = _num(v)
    return f'<span class="num" data-v="{n!r}">{escape(text)}</span>' if n is not None else ""


def _value_cell(v: Any, cut: int) -> str:
    """Any table value: numbers rounded (raw value kept for sorting), strings cut with a tooltip."""
    v = _plain(v)
    if _missing(v):
        return ""
    if _is_num(v):
        return _num_cell(v, fmt_number(v))
    return _cut(str(v), cut)


def _status_cell(status: Any, error: Any) -> str:
    status = "" if _missing(status) else str(status)
    tip = f' title="{escape(str(error))}"' if not _missing(error) else ""
    return f'<span class="status-{escape(status)}"{tip}>{escape(status)}</span>'


def _run_cell(row) -> str:
    rid = escape(str(row["run_id"]))
    html, ipynb = row.get("notebook_html") or "", row.get("notebook_ipynb") or ""
    main = f'<a href="{escape(html)}">{rid}</a>' if html else rid
    extra = f' <a class="muted" href="{escape(ipynb)}">ipynb</a>' if ipynb else ""
    return main + extra


# ----------------------------------------------------------------------------------------------
# which columns


def headline_metrics(df) -> list[tuple[str, str, float, str, str]]:
    """``[(label, column, scale, fmt, what)]`` of the headline metrics present in `df` (a value in some row)."""
    out = []
    for label, cols, scale, fmt, what in HEADLINE_METRICS:
        col = next((c for c in cols if c in df.columns and df[c].map(_is_num).any()), None)
        if col is not None:
            out.append((label, col, scale, fmt, what))
    if not out:
        numeric = [c for c in df.columns if c.startswith("metrics.") and df[c].map(_is_num).any()]
        out = [(c.removeprefix("metrics."), c, 1.0, ".4g", c) for c in numeric[:FALLBACK_METRICS]]
    return out


def varied_params(df) -> list[str]:
    """The ``params.*`` columns whose value differs between runs (what a sweep varies)."""
    out = []
    for c in df.columns:
        if c.startswith("params."):
            values = {json.dumps(_plain(v), sort_keys=True, default=str) for v in df[c]}
            if len(values) > 1:
                out.append(c)
    return out


# ----------------------------------------------------------------------------------------------
# tables


def headline_table(df) -> str:
    """The headline table: run (link), headline metrics rounded, wall time, status, varied parameters."""
    import pandas as pd

    metrics = headline_metrics(df)
    params = varied_params(df)
    cols: dict[str, list[str]] = {"run": [_run_cell(r) for _, r in df.iterrows()]}
    for label, col, scale, fmt, _ in metrics:
        cols[label] = [_num_cell(v, fmt_number(v, fmt, scale)) if _is_num(_plain(v)) else "" for v in df[col]]
    cols["wall time"] = [_num_cell(v, fmt_duration(v)) for v in df["duration_s"]]
    cols["status"] = [_status_cell(s, e) for s, e in zip(df["status"], df["error"])]
    for c in params[:MAX_VARIED_PARAMS]:
        cols[c.removeprefix("params.")] = [_value_cell(v, CUT_HEADLINE) for v in df[c]]
    table = pd.DataFrame(cols).to_html(escape=False, index=False, border=0, classes="runs headline",
                                       table_id="headline", na_rep="")
    notes = [f"<b>{escape(label)}</b>: {escape(what)}" for label, _, _, _, what in metrics]
    if len(params) > MAX_VARIED_PARAMS:
        notes.append(f"{len(params) - MAX_VARIED_PARAMS} more varied parameters in the full table below")
    return table + (f'<p class="note">{" &middot; ".join(notes)}</p>' if notes else "")


def details_table(df, skip: tuple[str, ...] = ("run_dir", "notebook_ipynb", "notebook_html")) -> str:
    """Every column (parameters, metrics, times, errors), numbers rounded, long values cut with a tooltip."""
    import pandas as pd

    cols: dict[str, list[str]] = {"run": [_run_cell(r) for _, r in df.iterrows()]}
    for c in df.columns:
        if c in skip or c == "run_id":
            continue
        if c == "started":
            cols[c] = [_cut(str(v).replace("T", " ")[:16], 16) if not _missing(v) else "" for v in df[c]]
            continue
        cols[c] = [_value_cell(v, CUT_DETAILS) for v in df[c]]
    return pd.DataFrame(cols).to_html(escape=False, index=False, border=0, classes="runs details",
                                      table_id="details", na_rep="")


# ----------------------------------------------------------------------------------------------
# charts (plotly figure JSON written by hand: the core does not import plotly)


def metric_bar_figure(df) -> dict | None:
    """One bar per run of a headline metric (a menu switches between them and wall time; the first metric
    that is not zero for every run is shown first); None without runs."""
    if not len(df):
        return None
    runs = [str(r) for r in df["run_id"]]
    ok = [s == "ok" for s in df["status"]]
    series = [(label, [(_num(v) * scale if _num(v) is not None else None) for v in df[col]], fmt)
              for label, col, scale, fmt, _ in headline_metrics(df)]
    minutes = [(_num(v) / 60 if _num(v) is not None else None) for v in df["duration_s"]]
    series.append(("wall time (min)", minutes, ".2f"))
    series = [s for s in series if any(v is not None for v in s[1])]
    if not series:
        return None
    colors = [PALETTE[0] if k else "#bbbbbb" for k in ok]
    first = next((i for i, (_, ys, _) in enumerate(series) if any(ys)), 0)  # shown first: not all zero
    traces = []
    for i, (label, ys, fmt) in enumerate(series):
        traces.append({
            "type": "bar", "x": runs, "y": ys, "name": label, "visible": i == first,
            "marker": {"color": colors}, "text": [format(y, fmt) if y is not None else "" for y in ys],
            "textposition": "outside", "cliponaxis": False,
            "hovertemplate": f"%{{x}}<br>{escape(label)}: %{{y}}<extra></extra>",
        })
    layout = {
        "title": {"text": "Runs compared", "x": 0, "xanchor": "left"},
        "height": 380, "margin": {"l": 60, "r": 20, "t": 70, "b": 90},
        "yaxis": {"title": {"text": series[first][0]}, "rangemode": "tozero", "automargin": True},
        "xaxis": {"type": "category", "automargin": True, "tickangle": -30 if len(runs) > 6 else 0},
        "showlegend": False, "bargap": 0.35,
    }
    if len(series) > 1:
        layout["updatemenus"] = [{
            "type": "dropdown", "direction": "down", "x": 1, "xanchor": "right", "y": 1.18, "yanchor": "top",
            "showactive": True, "active": first,
            "buttons": [{"label": label, "method": "update",
                         "args": [{"visible": [j == i for j in range(len(series))]}, {"yaxis.title.text": label}]}
                        for i, (label, _, _) in enumerate(series)],
        }]
    return {"data": traces, "layout": layout, "config": {"displaylogo": False}}


def find_archives(run_dir: Path) -> list[Path]:
    """Evolution archives of a run directory: ``archive.jsonl`` in it or up to two folders down."""
    return sorted(p for pat in (ARCHIVE, f"*/{ARCHIVE}", f"*/*/{ARCHIVE}") for p in run_dir.glob(pat) if p.is_file())


def _archive_points(rows: list[dict], metric: str) -> list[tuple[float, float, Any]]:
    pts = []
    for r in rows:
        x, y = _num(r.get("macs")), _num(r.get(metric))
        if r.get("status", "ok") == "ok" and x is not None and y is not None:
            pts.append((x / 1e9, y, r))
    return pts


def _better(label: str, maximize: bool) -> str:
    return f"{label} ({'higher' if maximize else 'lower'} is better)"


def fronts_figure(df, batch_dir: Path) -> dict | None:
    """Every candidate of each run's evolution archive and its Pareto front, val loss (or AP) vs GMACs, one
    colour per run; a menu switches val loss / AP when both are there. None when no run has an archive."""
    archives: list[tuple[str, list[dict]]] = []
    for _, row in df.iterrows():
        paths = find_archives(batch_dir / str(row["run_dir"]))
        for path in paths:
            try:
                rows = read_jsonl(path)
            except (OSError, ValueError):
                continue
            if rows:  # a run with several archives: each named by its folder
                name = str(row["run_id"]) + (f"/{path.parent.name}" if len(paths) > 1 else "")
                archives.append((name, rows))
    if not archives:
        return None
    metrics = [(m, label, m == "ap") for m, label in (("val_loss", "validation loss"), ("ap", "AP"))
               if any(_archive_points(rows, m) for _, rows in archives)]
    if not metrics:
        return None
    traces, groups = [], []
    for mi, (metric, label, maximize) in enumerate(metrics):
        idx = []
        for ri, (name, rows) in enumerate(archives):
            pts = _archive_points(rows, metric)
            if not pts:
                continue
            color = PALETTE[ri % len(PALETTE)]
            hover = [f"id {r.get('id')} \u00b7 gen {r.get('generation')}<br>{escape(str(r.get('genotype', '')))}"
                     for _, _, r in pts]
            front = [pts[i] for i in pareto_order([p[0] for p in pts], [-p[1] if maximize else p[1] for p in pts])]
            idx.append(len(traces))
            traces.append({"type": "scatter", "mode": "markers", "name": name, "legendgroup": name,
                           "x": [p[0] for p in pts], "y": [p[1] for p in pts], "hovertext": hover,
                           "hovertemplate": f"%{{hovertext}}<br>%{{x:.4g}} GMACs, {label} %{{y:.4g}}"
                                            f"<extra>{escape(name)}</extra>",
                           "marker": {"color": color, "size": 8, "opacity": 0.7}, "visible": mi == 0})
            idx.append(len(traces))
            traces.append({"type": "scatter", "mode": "lines", "name": f"{name} front", "legendgroup": name,
                           "showlegend": False, "x": [p[0] for p in front], "y": [p[1] for p in front],
                           "line": {"color": color, "width": 2, "shape": "hv"}, "hoverinfo": "skip",
                           "visible": mi == 0})
        groups.append(idx)
    layout = {
        "title": {"text": "Evolution archives: every candidate and its run's Pareto front", "x": 0, "xanchor": "left"},
        "height": 420, "margin": {"l": 70, "r": 20, "t": 70, "b": 60}, "hovermode": "closest",
        "xaxis": {"title": {"text": "GMACs (multiply-adds / 1e9)"}, "automargin": True},
        "yaxis": {"title": {"text": _better(metrics[0][1], metrics[0][2])}, "automargin": True},
        "legend": {"orientation": "h", "x": 0, "y": -0.18, "yanchor": "top"},
    }
    if len(metrics) > 1:
        layout["updatemenus"] = [{
            "type": "buttons", "direction": "right", "x": 1, "xanchor": "right", "y": 1.15, "yanchor": "top",
            "buttons": [{"label": label, "method": "update",
                         "args": [{"visible": [i in groups[mi] for i in range(len(traces))]},
                                  {"yaxis.title.text": _better(label, maximize)}]}
                        for mi, (_, label, maximize) in enumerate(metrics)],
        }]
    return {"data": traces, "layout": layout, "config": {"displaylogo": False}}


def charts_html(df, batch_dir: Path) -> tuple[str, list[str]]:
    """The charts with plotly.js embedded once (before the first), or a note; and warnings."""
    figs = [(fid, f) for fid, f in (("runs-bar", metric_bar_figure(df)), ("runs-fronts", fronts_figure(df, batch_dir)))
            if f is not None]
    if not figs:
        return "", []
    js_path = plotly_html.plotlyjs_path()
    if js_path is None:
        return ('<p class="note">[charts not shown: plotly.js was not found when this page was written '
                "(plotly is not installed)]</p>"), ["index.html: charts not drawn: plotly.js not found"]
    parts = [plotly_html.plotlyjs_html(js_path.read_text(encoding="utf-8"))]
    parts += [f'<div class="chart">{plotly_html.plotly_figure_html(f, fid)}</div>' for fid, f in figs]
    return "\n".join(parts), []


# ----------------------------------------------------------------------------------------------
# the page


def index_page(df, batch_dir: str | Path, title: str) -> str:
    """The whole index.html (see the module docstring) for `df` (`collect_runs` of `batch_dir`)."""
    batch_dir = Path(batch_dir)
    n_ok = int((df["status"] == "ok").sum()) if len(df) else 0
    summary = f"{len(df)} runs: {n_ok} ok, {len(df) - n_ok} failed"
    head = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(title)}</title>\n<style>{CSS}</style>\n<script>{SORT_JS}</script></head><body>\n"
            f"<h2>{escape(title)}</h2>\n")
    if not len(df):
        return head + f'<p class="summary">{summary}.</p></body></html>\n'
    try:
        charts, _ = charts_html(df, batch_dir)
    except Exception as e:  # a chart must never cost the table
        charts = f'<p class="note">[charts not shown: {escape(type(e).__name__)}: {escape(str(e))}]</p>'
    body = [
        f'<p class="summary">{summary}. Each run id opens its executed notebook (HTML); click a column header '
        "to sort.</p>",
        headline_table(df),
        charts,
        f"<details><summary>All parameters and metrics ({len(df.columns)} columns)</summary>"
        f'<div class="scroll">{details_table(df)}</div>'
        '<p class="note">Parameters are <code>params.*</code>, metrics <code>metrics.*</code>; '
        "the same table as <a href=\"index.csv\">index.csv</a>.</p></details>",
    ]
    return head + "\n".join(body) + "\n</body></html>\n"
