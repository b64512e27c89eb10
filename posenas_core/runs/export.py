"""A notebook (executed or partially executed) -> one standalone HTML file, readable offline.

`export_html` draws with nbconvert what nbconvert can, and gives everything it would leave blank offline a
static copy first (`render_static_outputs`): plotly figures (`PLOTLY_MIME`) with plotly.js embedded once
(`posenas_core.runs.plotly_html`; a note when plotly is not installed), every widget view from the
notebook's saved widget state (`posenas_core.runs.static_widgets`), equations as MathML
(`posenas_core.runs.math_html`). The page holds no widget manager script, no saved widget state and no
widget code bundle.
"""

from __future__ import annotations

import os
import sys
from html import escape
from pathlib import Path

from posenas_core.runs.io import atomic_write_text
from posenas_core.runs.math_html import notebook_math_to_mathml
from posenas_core.runs.plotly_html import PLOTLY_MIME, plotly_figure_html, plotlyjs_html, plotlyjs_path
from posenas_core.runs.static_widgets import StaticWidgetRenderer
from posenas_core.runs.widget_state import (
    WIDGET_VIEW_MIME,
    is_plotly_figure_widget,
    saved_widget_state,
    strip_widget_bundles,
)

__all__ = ["render_static_outputs", "export_html_with_warnings", "export_html"]


def render_static_outputs(nb, plotlyjs: str | None) -> dict[str, int]:
    """Give the outputs that nbconvert cannot draw offline a static ``text/html``, in place (for the HTML
    export; the .ipynb is not changed). Cells are walked in order, in one pass:

    - an output holding a plotly figure (`PLOTLY_MIME`) and no ``text/html`` -> the figure drawn by plotly.js;
    - a widget view (`WIDGET_VIEW_MIME`) -> a static copy of the widget drawn from the notebook's saved widget
      state (plotly ``FigureWidget`` views become plotly figures); the view mime type is removed.

    plotly.js (`plotlyjs`, its source) goes in with the first figure only, before every figure's script;
    without it each figure becomes a note saying plotly.js is missing. Returns ``{"figures", "widgets",
    "missing"}``: figures drawn (or noted), widget views rendered, views whose model was not saved."""
    n_fig = 0

    def figure(fig: dict, div_id: str) -> str:
        nonlocal n_fig
        n_fig += 1
        if plotlyjs is None:
            return ('<pre>[plotly figure not shown: plotly.js was not found when this HTML was exported '
                    f'(plotly is not installed for {escape(sys.executable)})]</pre>')
        return (plotlyjs_html(plotlyjs) if n_fig == 1 else "") + plotly_figure_html(fig, div_id)

    renderer = StaticWidgetRenderer(saved_widget_state(nb), figure)
    for ci, cell in enumerate(nb.cells):
        for oi, out in enumerate(cell.get("outputs", []) if cell.get("cell_type") == "code" else []):
            data = out.get("data") or {}
            if WIDGET_VIEW_MIME in data:
                data["text/html"] = renderer.render_view(data.pop(WIDGET_VIEW_MIME))
                continue
            fig = data.get(PLOTLY_MIME)
            if isinstance(fig, dict) and "text/html" not in data:
                data["text/html"] = figure(fig, f"posenas-plotly-{ci}-{oi}")
    return {"figures": n_fig, "widgets": renderer.widgets, "missing": renderer.missing}


def export_html_with_warnings(ipynb_path: str | os.PathLike, html_path: str | os.PathLike) -> tuple[Path, list[str]]:
    """`export_html`, and the warnings for a run record: figures not drawn (no plotly.js), widgets not drawn
    (their state not saved)."""
    import nbformat
    from nbconvert import HTMLExporter

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
    notebook_math_to_mathml(nb)  # equations as MathML: MathJax would come from a CDN
    body, _ = HTMLExporter().from_notebook_node(nb)
    return atomic_write_text(html_path, body), warnings


def export_html(ipynb_path: str | os.PathLike, html_path: str | os.PathLike) -> Path:
    """Export a (possibly partially executed) notebook to a standalone HTML file, atomically, readable
    offline (see the module docstring); returns the HTML file's path."""
    # plotly.js embedded once adds ~4.8 MB to a page that has a figure.
    return export_html_with_warnings(ipynb_path, html_path)[0]
