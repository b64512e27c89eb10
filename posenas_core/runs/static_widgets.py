"""Static HTML copies of an executed notebook's widgets, drawn from its saved widget state (offline).

`StaticWidgetRenderer(models, figure_html)`, given the models of `widget_state.saved_widget_state(nb)`, turns
one widget view output (`WIDGET_VIEW_MIME`, ``{"model_id": ...}``, which an HTML export could only draw with
the widget manager's JavaScript from a CDN) into plain HTML from the JSON state alone (no ipywidgets, no
JavaScript except plotly.js for figures):

- boxes (Box / HBox / VBox / GridBox) -> flex / grid divs of their children, with the widget's Layout as CSS
  (``display: none`` stays hidden); Tab -> a tab strip and every pane (the selected one first);
  Accordion -> one ``<details>`` per pane (the selected one open); Stack -> its selected child;
- HTML / HTMLMath -> their value (HTML the kernel wrote, as the notebook's own HTML outputs), Label -> text;
- Image -> ``<img>`` with a data URI of its value;
- controls (Button, ToggleButton(s), Dropdown, Select, RadioButtons, sliders, Text / Textarea / numbers,
  Checkbox, progress bars, ...) -> disabled look-alikes showing their description and value;
- Output widgets -> their stored outputs (HTML, images, text, errors, plotly figures, nested widgets);
- plotly's ``go.FigureWidget`` -> a plotly figure, drawn by the `figure_html` callback;
- anything else -> a short note naming the model (and its value, if it has one).
"""

from __future__ import annotations

import base64
import math
import re
from html import escape
from typing import Any, Callable

from posenas_core.data.annotations import is_number
from posenas_core.runs.plotly_html import PLOTLY_MIME
from posenas_core.runs.widget_state import (
    MODEL_REF,
    WIDGET_VIEW_MIME,
    figure_from_widget_state,
    is_plotly_figure_widget,
)

__all__ = ["StaticWidgetRenderer", "strip_ansi"]

# FontAwesome 4 icon names used by ipywidgets buttons -> a glyph (no icon font offline)
ICONS = {
    "chevron-left": "\u2039", "chevron-right": "\u203a", "chevron-up": "\u02c4", "chevron-down": "\u02c5",
    "arrow-left": "\u2190", "arrow-right": "\u2192", "refresh": "\u21bb", "eye": "\u25c9", "fire": "\u2668",
    "download": "\u2913", "upload": "\u2912", "save": "\u21a7", "folder-open": "\u2750", "share": "\u2197",
    "code": "{ }", "stop": "\u25a0", "play": "\u25b6", "pause": "\u275a\u275a", "clock-o": "\u25f7",
    "check": "\u2713", "times": "\u2715", "plus": "+", "minus": "\u2212", "search": "\u2315", "trash": "\u2715",
    "cog": "\u2699", "undo": "\u21b6", "repeat": "\u21bb",
}
BOX_CLASSES = {"Box": "pnw-box", "HBox": "pnw-hbox", "VBox": "pnw-vbox", "GridBox": "pnw-grid"}
# ipywidgets' default widths of controls without a Layout width (--jp-widgets-inline-width: 300px)
DEFAULT_WIDTHS = {k: "300px" for k in (
    "IntSlider", "FloatSlider", "FloatLogSlider", "IntRangeSlider", "FloatRangeSlider", "SelectionSlider",
    "SelectionRangeSlider", "Dropdown", "Text", "Textarea", "Combobox", "Password", "IntText", "FloatText",
    "BoundedIntText", "BoundedFloatText", "Select", "SelectMultiple", "FloatProgress", "IntProgress",
    "DatePicker", "TimePicker", "DatetimePicker", "NaiveDatetimePicker")}
BAR_COLORS = {"success": "#4caf50", "info": "#2196f3", "warning": "#ff9800", "danger": "#f44336", "": "#2196f3"}
BUTTON_COLORS = {"primary": "#2196f3", "success": "#4caf50", "info": "#00bcd4", "warning": "#ff9800",
                 "danger": "#f44336"}

CSS = """<style>
.pnw { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; font-size: 13px; line-height: 1.4;
       box-sizing: border-box; }
.pnw * { box-sizing: border-box; }
.pnw-hbox { display: flex; flex-direction: row; gap: 2px 4px; }
.pnw-vbox { display: flex; flex-direction: column; gap: 2px; }
.pnw-box { display: flex; flex-direction: row; }
.pnw-grid { display: grid; }
.pnw-ctl { display: flex; align-items: center; gap: 6px; margin: 2px 2px; min-height: 28px; width: 100%; }
.pnw-ctl > .pnw-field, .pnw-ctl > select { flex: 1 1 auto; min-width: 0; }
.pnw-desc { color: #333; white-space: nowrap; }
.pnw-btn { font: inherit; padding: 3px 10px; border: 1px solid #bbb; border-radius: 2px; background: #eee;
           color: #222; white-space: nowrap; min-height: 28px; }
.pnw-btn.pnw-on { background: #c9d8ee; border-color: #7895c4; font-weight: 600; }
.pnw-btn[disabled], .pnw-field[disabled] { opacity: 1; cursor: default; }
.pnw-off { opacity: .5; }
.pnw-field { font: inherit; padding: 2px 6px; border: 1px solid #bbb; border-radius: 2px; background: #fafafa;
             color: #222; min-height: 26px; max-width: 100%; }
.pnw-range { flex: 1 1 auto; min-width: 60px; }
.pnw-readout { font-variant-numeric: tabular-nums; white-space: nowrap; }
.pnw-progress { display: inline-block; height: 16px; background: #e8e8e8; border-radius: 2px; overflow: hidden;
                flex: 1 1 auto; min-width: 80px; }
.pnw-progress > span { display: block; height: 100%; }
.pnw-tabs { display: flex; gap: 2px; border-bottom: 1px solid #bbb; margin-bottom: 4px; }
.pnw-tab { padding: 3px 12px; border: 1px solid #bbb; border-bottom: none; background: #eee; }
.pnw-tab.pnw-on { background: #fff; font-weight: 600; }
.pnw-pane-title { font-weight: 600; margin: 6px 0 2px; color: #555; }
.pnw details { border: 1px solid #ccc; margin: 2px 0; }
.pnw summary { padding: 3px 8px; background: #f3f3f3; cursor: pointer; }
.pnw-output pre { margin: 0; white-space: pre-wrap; }
.pnw-error { color: #b00020; }
.pnw-note { color: #777; font-style: italic; }
.pnw img { max-width: 100%; height: auto; }
</style>
"""


def _text(v: Any) -> str:
    return "" if v is None else escape(str(v))


def _num_or_0(x: Any) -> Any:
    return x if is_number(x) else 0


def _fmt(v: Any, fmt: str | None) -> str:
    """A slider readout: ipywidgets' d3-format string, read as Python's format spec (the common cases agree)."""
    if isinstance(v, (list, tuple)):
        return " \u2013 ".join(_fmt(x, fmt) for x in v)
    if is_number(v) and fmt:
        try:
            return format(v, fmt)
        except (ValueError, TypeError):
            pass
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


class StaticWidgetRenderer:
    """Render widget views of one notebook from its saved state (see the module docstring).

    `figure_html(fig, div_id) -> str` draws one plotly figure ``{data, layout, config}`` (the HTML export
    embeds plotly.js once before the first figure); without it a figure becomes a note. Counters:
    `widgets` (views rendered), `figures`, `missing` (views whose model was not saved)."""

    def __init__(self, models: dict[str, dict], figure_html: Callable[[dict, str], str] | None = None):
        self.models = models
        self.figure_html = figure_html
        self.widgets = self.figures = self.missing = 0
        self._css_done = False
        self._seq = 0

    # ------------------------------------------------------------------ entry points

    def render_view(self, view: dict) -> str:
        """The static HTML for one `WIDGET_VIEW_MIME` output value (``{"model_id": ...}``)."""
        mid = (view or {}).get("model_id", "")
        self.widgets += 1
        if mid not in self.models:
            self.missing += 1
        css = "" if self._css_done else CSS
        self._css_done = True
        return f'{css}<div class="pnw pnw-root" data-model-id="{escape(mid)}">{self.render(mid, set())}</div>'

    def render_output(self, out: dict, seen: set | None = None) -> str:
        """One Jupyter output (stream / display_data / execute_result / error), e.g. of an Output widget."""
        seen = set() if seen is None else seen
        kind = out.get("output_type")
        if kind == "stream":
            cls = " pnw-error" if out.get("name") == "stderr" else ""
            return f'<pre class="{cls.strip()}">{_text(_join(out.get("text")))}</pre>'
        if kind == "error":
            tb = "\n".join(out.get("traceback") or []) or f"{out.get('ename')}: {out.get('evalue')}"
            return f'<pre class="pnw-error">{_text(strip_ansi(tb))}</pre>'
        data = out.get("data") or {}
        if WIDGET_VIEW_MIME in data:
            return self.render((data[WIDGET_VIEW_MIME] or {}).get("model_id", ""), seen)
        if PLOTLY_MIME in data and isinstance(data[PLOTLY_MIME], dict):
            return self._figure(data[PLOTLY_MIME])
        if "text/html" in data:
            return _join(data["text/html"])
        for mime in ("image/png", "image/jpeg", "image/gif"):
            if mime in data:
                return f'<img src="data:{mime};base64,{_join(data[mime]).strip()}">'
        if "image/svg+xml" in data:
            return _join(data["image/svg+xml"])
        if "text/markdown" in data:
            return f"<pre>{_text(_join(data['text/markdown']))}</pre>"
        if "text/plain" in data:
            return f"<pre>{_text(_join(data['text/plain']))}</pre>"
        return ""

    # ------------------------------------------------------------------ the tree

    def render(self, mid: str, seen: set) -> str:
        if isinstance(mid, str) and mid.startswith(MODEL_REF):
            mid = mid[len(MODEL_REF):]
        model = self.models.get(mid)
        if model is None:
            return '<span class="pnw-note">[widget not shown: its state was not saved in the notebook]</span>'
        if mid in seen:  # a cycle (not possible in ipywidgets, but state is data)
            return ""
        seen = seen | {mid}
        st = model["state"]
        name = model.get("model_name", "")
        short = name.removesuffix("Model")
        if is_plotly_figure_widget(model):
            inner = self._figure(figure_from_widget_state(st))
        elif short in BOX_CLASSES:  # the box itself is the flex / grid container, laid out by its Layout
            return self._wrap("".join(self._child_list(st, seen)), st, name, BOX_CLASSES[short])
        else:
            method = getattr(self, "_w_" + short, None)
            inner = method(st, seen) if method else self._unknown(name, st)
        return self._wrap(inner, st, name)

    def _child_list(self, st: dict, seen: set) -> list[str]:
        return [self.render(c, seen) for c in st.get("children") or []]

    def _ref_state(self, ref: Any) -> dict:
        """The state of the model an ``IPY_MODEL_<id>`` trait refers to ({} when none)."""
        if isinstance(ref, str) and ref.startswith(MODEL_REF):
            return self.models.get(ref[len(MODEL_REF):], {}).get("state", {})
        return {}

    def _layout_css(self, st: dict) -> str:
        parts = []
        for k, v in self._ref_state(st.get("layout")).items():
            if k.startswith("_") or v is None or v == "" or not isinstance(v, (str, int, float)):
                continue
            css_key = {"grid_gap": "gap"}.get(k, k.replace("_", "-"))
            parts.append(f"{css_key}:{escape(str(v))}")
        return ";".join(parts)

    def _style(self, st: dict) -> dict:
        return self._ref_state(st.get("style"))

    def _wrap(self, inner: str, st: dict, name: str, box: str = "") -> str:
        css = self._layout_css(st)
        short = name.removesuffix("Model")
        if short in DEFAULT_WIDTHS and "width:" not in css.replace("-width:", ""):
            css = f"width:{DEFAULT_WIDTHS[short]};" + css
        cls = box or "pnw-" + escape(short.lower())
        classes = " ".join(escape(str(c)) for c in st.get("_dom_classes") or [])
        tip = st.get("tooltip") or st.get("description_tooltip")
        title = f' title="{_text(tip)}"' if tip else ""
        cls = " ".join(c for c in ("pnw-w", cls, classes) if c)
        return f'<div class="{cls}" style="{css}"{title}>{inner}</div>'

    def _desc(self, st: dict) -> str:
        d = st.get("description")
        if not d:
            return ""
        width = self._style(st).get("description_width")
        style = f' style="width:{escape(str(width))}"' if width else ""
        text = str(d) if st.get("description_allow_html") else escape(str(d))
        return f'<span class="pnw-desc"{style}>{text}</span>'

    def _ctl(self, st: dict, body: str) -> str:
        return f'<span class="pnw-ctl">{self._desc(st)}{body}</span>'

    # ------------------------------------------------------------------ containers

    @staticmethod
    def _titler(st: dict, word: str) -> Callable[[int], str]:
        """Pane i's title (a Tab's or an Accordion's), else ``"<word> <i + 1>"``."""
        titles = list(st.get("titles") or st.get("_titles") or [])
        return lambda i: titles[i] if i < len(titles) and titles[i] else f"{word} {i + 1}"

    def _w_Tab(self, st, seen):
        kids = self._child_list(st, seen)
        sel = st.get("selected_index")
        sel = sel if isinstance(sel, int) and 0 <= sel < len(kids) else (0 if kids else None)
        title = self._titler(st, "tab")
        strip = "".join(f'<span class="pnw-tab{" pnw-on" if i == sel else ""}">{_text(title(i))}</span>'
                        for i in range(len(kids)))
        order = ([sel] if sel is not None else []) + [i for i in range(len(kids)) if i != sel]
        panes = "".join((f'<div class="pnw-pane-title">{_text(title(i))}</div>' if i != sel else "") + kids[i]
                        for i in order)
        return f'<div class="pnw-tabs">{strip}</div>{panes}'

    def _w_Accordion(self, st, seen):
        kids, sel, title = self._child_list(st, seen), st.get("selected_index"), self._titler(st, "section")
        return "".join(f'<details{" open" if i == sel else ""}><summary>{_text(title(i))}</summary>{k}</details>'
                       for i, k in enumerate(kids))

    def _w_Stack(self, st, seen):
        kids = self._child_list(st, seen)
        sel = st.get("selected_index")
        return kids[sel] if isinstance(sel, int) and 0 <= sel < len(kids) else ""

    def _w_Output(self, st, seen):
        outs = st.get("outputs") or []
        return '<div class="pnw-output">' + "".join(self.render_output(o, seen) for o in outs) + "</div>"

    # ------------------------------------------------------------------ text and pictures

    def _w_HTML(self, st, seen):
        return self._ctl(st, f"<div>{st.get('value') or ''}</div>") if st.get("description") \
            else str(st.get("value") or "")

    _w_HTMLMath = _w_HTML

    def _w_Label(self, st, seen):
        return f"<span>{_text(st.get('value'))}</span>"

    def _w_Image(self, st, seen):
        v, fmt = st.get("value"), str(st.get("format") or "png")
        if isinstance(v, str):
            v = v.encode()
        if not v:
            return '<span class="pnw-note">[empty image]</span>'
        if fmt == "url":
            src = escape(v.decode("utf-8", "replace"))
        else:
            mime = "image/svg+xml" if fmt == "svg" else f"image/{escape(fmt)}"
            src = f"data:{mime};base64,{base64.b64encode(v).decode()}"
        size = "".join(f' {k}="{escape(str(st[k]))}"' for k in ("width", "height") if st.get(k))
        return f'<img class="pnw-image" src="{src}"{size} alt="{_text(st.get("description") or "image")}">'

    _w_Video = _w_Audio = lambda self, st, seen: '<span class="pnw-note">[media not shown in the static export]</span>'

    # ------------------------------------------------------------------ controls (disabled look-alikes)

    def _button(self, st: dict, on: bool = False) -> str:
        icon = ICONS.get(str(st.get("icon") or ""), "")
        label = _text(st.get("description"))
        text = f"{icon} {label}".strip() if icon else label
        style = self._style(st)
        color = style.get("button_color") or BUTTON_COLORS.get(st.get("button_style") or "")
        css = f"background:{escape(str(color))};color:#fff;" if color else ""
        if style.get("font_weight"):
            css += f"font-weight:{escape(str(style['font_weight']))};"
        dim = " pnw-off" if st.get("disabled") else ""
        return (f'<button class="pnw-btn{" pnw-on" if on else ""}{dim}" disabled style="width:100%;{css}">'
                f"{text or '&nbsp;'}</button>")

    def _w_Button(self, st, seen):
        return self._button(st)

    def _w_ToggleButton(self, st, seen):
        return self._button(st, on=bool(st.get("value")))

    def _labels(self, st: dict) -> list[str]:
        return [str(x) for x in st.get("_options_labels") or []]

    def _selected(self, st: dict) -> str:
        labels, i = self._labels(st), st.get("index")
        return labels[i] if isinstance(i, int) and 0 <= i < len(labels) else ""

    def _w_Dropdown(self, st, seen):
        dim = " pnw-off" if st.get("disabled") else ""
        body = (f'<select class="pnw-field{dim}" disabled style="width:100%">'
                f'<option selected>{_text(self._selected(st))}</option></select>')
        return self._ctl(st, body)

    def _w_ToggleButtons(self, st, seen):
        labels, idx = self._labels(st), st.get("index")
        tips = st.get("tooltips") or []
        width = self._style(st).get("button_width")
        w = f' style="width:{escape(str(width))}"' if width else ""
        btns = "".join(
            f'<button class="pnw-btn{" pnw-on" if i == idx else ""}" disabled{w}'
            f'{f" title={chr(34)}{_text(tips[i])}{chr(34)}" if i < len(tips) and tips[i] else ""}>{_text(lab)}</button>'
            for i, lab in enumerate(labels))
        return self._ctl(st, f'<span class="pnw-hbox">{btns}</span>')

    def _w_RadioButtons(self, st, seen):
        labels, idx = self._labels(st), st.get("index")
        items = "".join(f'<label><input type="radio" disabled{" checked" if i == idx else ""}> {_text(lab)}</label>'
                        for i, lab in enumerate(labels))
        return self._ctl(st, f'<span class="pnw-vbox">{items}</span>')

    def _select_list(self, st: dict, chosen: set) -> str:
        labels = self._labels(st)
        rows = st.get("rows") or min(max(len(labels), 1), 5)
        opts = "".join(f'<option{" selected" if i in chosen else ""}>{_text(lab)}</option>'
                       for i, lab in enumerate(labels))
        return self._ctl(st, f'<select class="pnw-field" multiple disabled size="{int(rows)}">{opts}</select>')

    def _w_Select(self, st, seen):
        return self._select_list(st, {st.get("index")})

    def _w_SelectMultiple(self, st, seen):
        return self._select_list(st, set(st.get("index") or []))

    def _slider(self, st: dict, value: Any, lo: Any, hi: Any, readout: str) -> str:
        v = value[0] if isinstance(value, (list, tuple)) and value else value
        rng = (f'<input class="pnw-range" type="range" disabled min="{_num_or_0(lo)}" max="{_num_or_0(hi)}" '
               f'value="{_num_or_0(v)}" step="any">')
        out = f'<span class="pnw-readout">{_text(readout)}</span>' if st.get("readout", True) else ""
        return self._ctl(st, rng + out)

    def _w_IntSlider(self, st, seen):
        v = st.get("value")
        return self._slider(st, v, st.get("min"), st.get("max"), _fmt(v, st.get("readout_format")))

    _w_FloatSlider = _w_IntRangeSlider = _w_FloatRangeSlider = _w_IntSlider

    def _w_FloatLogSlider(self, st, seen):
        v, base = st.get("value"), st.get("base") or 10
        try:
            pos = math.log(v, base)
        except (TypeError, ValueError):
            pos = 0
        return self._slider(st, pos, st.get("min"), st.get("max"), _fmt(v, st.get("readout_format")))

    def _w_SelectionSlider(self, st, seen):
        labels = self._labels(st)
        return self._slider(st, st.get("index"), 0, max(len(labels) - 1, 0), self._selected(st))

    def _w_SelectionRangeSlider(self, st, seen):
        labels, idx = self._labels(st), list(st.get("index") or [])
        text = " \u2013 ".join(labels[i] for i in idx if isinstance(i, int) and 0 <= i < len(labels))
        return self._slider(st, idx, 0, max(len(labels) - 1, 0), text)

    def _w_Text(self, st, seen):
        value = st.get("value")
        ph = st.get("placeholder")
        ph = f' placeholder="{_text(ph)}"' if ph and ph != "\u200b" else ""
        return self._ctl(st, f'<input class="pnw-field" type="text" disabled value="{_text(value)}"{ph} '
                             f'style="width:100%">')

    _w_Combobox = _w_IntText = _w_FloatText = _w_BoundedIntText = _w_BoundedFloatText = _w_Text
    _w_DatePicker = _w_TimePicker = _w_DatetimePicker = _w_NaiveDatetimePicker = _w_Text

    def _w_Password(self, st, seen):
        return self._ctl(st, '<input class="pnw-field" type="password" disabled value="********">')

    def _w_Textarea(self, st, seen):
        rows = st.get("rows")
        rows = f' rows="{int(rows)}"' if isinstance(rows, int) else ""
        return self._ctl(st, f'<textarea class="pnw-field" disabled{rows} style="width:100%;height:100%">'
                             f"{_text(st.get('value'))}</textarea>")

    def _w_Checkbox(self, st, seen):
        box = f'<input type="checkbox" disabled{" checked" if st.get("value") else ""}>'
        return f'<label class="pnw-ctl">{box}{self._desc(st)}</label>'

    def _w_Valid(self, st, seen):
        ok = bool(st.get("value"))
        mark = '<span style="color:#4caf50">\u2714</span>' if ok else \
            f'<span style="color:#f44336">\u2716 {_text(st.get("readout"))}</span>'
        return self._ctl(st, mark)

    def _w_ColorPicker(self, st, seen):
        c = _text(st.get("value"))
        return self._ctl(st, f'<span style="display:inline-block;width:18px;height:18px;background:{c};'
                             f'border:1px solid #999"></span> {c}')

    def _w_FloatProgress(self, st, seen):
        lo, hi, v = st.get("min") or 0, st.get("max"), st.get("value") or 0
        try:
            frac = max(0.0, min(1.0, (v - lo) / (hi - lo)))
        except (TypeError, ZeroDivisionError):
            frac = 0.0
        color = self._style(st).get("bar_color") or BAR_COLORS.get(st.get("bar_style") or "", BAR_COLORS[""])
        bar = (f'<span class="pnw-progress" role="progressbar" aria-valuenow="{_text(v)}" aria-valuemax="{_text(hi)}">'
               f'<span style="width:{frac * 100:.1f}%;background:{escape(str(color))}"></span></span>')
        return self._ctl(st, bar)

    _w_IntProgress = _w_FloatProgress

    def _w_Play(self, st, seen):
        return self._ctl(st, f'<span class="pnw-readout">\u25b6 {_text(st.get("value"))}</span>')

    def _w_Link(self, st, seen):  # jslink: nothing to show
        return ""

    _w_DirectionalLink = _w_Link

    # ------------------------------------------------------------------ figures and the rest

    def _figure(self, fig: dict) -> str:
        self.figures += 1
        self._seq += 1
        if self.figure_html is None:
            return '<pre class="pnw-note">[plotly figure not shown: plotly.js is not available]</pre>'
        return self.figure_html(fig, f"posenas-widget-plotly-{self._seq}")

    def _unknown(self, name: str, st: dict) -> str:
        """A model this module cannot draw (a custom or anywidget widget): its name and value, if simple."""
        what = name.removesuffix("Model") or "widget"
        if name == "AnyModel" and st.get("_anywidget_id"):
            what = str(st["_anywidget_id"]).rsplit(".", 1)[-1]
        what = escape(what)
        value = st.get("value")
        shown = f": {_text(value)}" if isinstance(value, (str, int, float, bool)) and value != "" else ""
        return self._ctl(st, f'<span class="pnw-note">[{what}{shown}]</span>')


def _join(v: Any) -> str:
    return "".join(v) if isinstance(v, list) else ("" if v is None else str(v))


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def strip_ansi(text: str) -> str:
    """`text` without ANSI terminal escape codes (the colours of an IPython traceback)."""
    return _ANSI.sub("", text)
