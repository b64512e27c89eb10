"""plotly figures in a standalone HTML page without importing plotly: plotly.js inline, one div + script per figure.

A figure is plotly's mime bundle form ``{data, layout, config?, frames?}`` (`PLOTLY_MIME`); the page loads
plotly.js once (`plotlyjs_html`, from the installed plotly package, `plotlyjs_path`) before the first
figure (`plotly_figure_html`). Everything put in a ``<script>`` is escaped so it cannot end the element.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from posenas_core.data.annotations import is_number

__all__ = ["PLOTLY_MIME", "plotlyjs_path", "plotly_figure_html", "plotlyjs_html"]

PLOTLY_MIME = "application/vnd.plotly.v1+json"


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
    return f"{v}px" if is_number(v) and v > 0 else default


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
    # responsive figures follow their div, not just the window: a div inside a widget box may get its final
    # width after the first draw (plotly would then be drawn wider and scaled down by CSS, cropping the axes)
    follow = ("    if (window.ResizeObserver) { new ResizeObserver(function () { window.Plotly.Plots.resize(el); })"
              ".observe(el); }\n" if config.get("responsive") else "")
    return (
        f'<div id="{div_id}" class="plotly-graph-div" style="height:{_css_size(layout.get("height"), "525px")}; '
        f'width:{width};"></div>\n'
        '<script type="text/javascript">(function () {\n'
        f'  var el = document.getElementById("{div_id}");\n'
        "  if (window.Plotly) {\n    window.Plotly.newPlot(el, " + js + ");\n" + follow + "  }\n"
        '  else { el.textContent = "[plotly figure not shown: plotly.js did not load]"; }\n'
        "})();</script>"
    )


def plotlyjs_html(source: str) -> str:
    """plotly.js inline (no CDN), as plotly's ``to_html(include_plotlyjs=True)`` embeds it."""
    return ('<script type="text/javascript">window.PlotlyConfig = {MathJaxConfig: \'local\'};</script>\n'
            f'<script type="text/javascript">{_script_safe(source)}</script>\n')

