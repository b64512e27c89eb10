"""The widget state an executed notebook saves: read its models, and strip the code bundles anywidget models carry.

papermill (nbclient) records every widget model the kernel created, with its last synced traits, in
``nb.metadata.widgets[WIDGET_STATE_MIME].state`` and shows a widget as an output of mime type
`WIDGET_VIEW_MIME` (``{"model_id": ...}``). `saved_widget_state` reads the models (binary buffers put
back); `figure_from_widget_state` turns a plotly ``go.FigureWidget`` model into a figure;
`strip_widget_bundles` replaces each anywidget model's JavaScript / CSS bundle by a short stub.
Only the standard library and numpy are used.
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any

from posenas_core.runs.io import atomic_write_text

__all__ = [
    "WIDGET_STATE_MIME", "WIDGET_VIEW_MIME", "MODEL_REF", "STRIPPED_ESM", "STRIPPED_CSS", "saved_widget_state",
    "figure_from_widget_state", "is_plotly_figure_widget", "strip_widget_bundles", "strip_notebook_file",
]

WIDGET_STATE_MIME = "application/vnd.jupyter.widget-state+json"
WIDGET_VIEW_MIME = "application/vnd.jupyter.widget-view+json"
MODEL_REF = "IPY_MODEL_"  # a trait referring to another model: "IPY_MODEL_<id>"
PLOTLY_FIGURE_WIDGET = "FigureWidget"  # in an AnyModel's _anywidget_id: plotly.graph_objs._figurewidget.FigureWidget
DEFAULT_FIGURE_HEIGHT = 360  # plotly's widget view uses 360 px when the layout has no height

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


def _saved_models(nb) -> dict:
    """``{model_id: model}`` as saved in the notebook's metadata (the notebook's own objects, not copies)."""
    widgets = (nb.get("metadata") or {}).get("widgets") or {}
    return (widgets.get(WIDGET_STATE_MIME) or {}).get("state") or {}


def _put(tree: Any, path: list, value: Any) -> None:
    for key in path[:-1]:
        tree = tree[key]
    tree[path[-1]] = value


def _restore_buffers(model: dict) -> dict:
    """The model's state with its binary buffers (base64 / hex in ``model["buffers"]``) put back as bytes."""
    state = json.loads(json.dumps(model.get("state") or {}))  # a copy we may change
    for buf in model.get("buffers") or []:
        try:
            data = buf.get("data", "")
            raw = bytes.fromhex(data) if buf.get("encoding") == "hex" else base64.b64decode(data)
            _put(state, list(buf["path"]), raw)
        except (KeyError, IndexError, TypeError, ValueError):
            continue  # a malformed buffer: that part stays as saved
    return state


def saved_widget_state(nb) -> dict[str, dict]:
    """``{model_id: {"model_name", "model_module", "state"}}`` of a notebook's saved widget state, binary
    buffers restored (``{}`` when the notebook saved none)."""
    out = {}
    for mid, model in _saved_models(nb).items():
        if isinstance(model, dict):
            out[mid] = {"model_name": model.get("model_name", ""), "model_module": model.get("model_module", ""),
                        "state": _restore_buffers(model)}
    return out


def _typed_arrays_to_lists(v: Any) -> Any:
    """plotly's widget serialization of numeric numpy arrays ``{buffer, dtype, shape}`` -> nested lists;
    plotly's ``"_undefined_"`` placeholders dropped."""
    if isinstance(v, dict):
        if isinstance(v.get("buffer"), (bytes, bytearray)) and "dtype" in v:
            import numpy as np

            a = np.frombuffer(v["buffer"], dtype=np.dtype(v["dtype"]))
            shape = v.get("shape")
            return (a.reshape(shape) if shape else a).tolist()
        return {k: _typed_arrays_to_lists(x) for k, x in v.items() if x != "_undefined_"}
    if isinstance(v, list):
        return [_typed_arrays_to_lists(x) for x in v]
    return v


def figure_from_widget_state(state: dict) -> dict:
    """A plotly ``go.FigureWidget``'s saved state -> a figure ``{data, layout, config}`` (plotly's mime bundle
    form). The layout gets the widget view's default height (360 px) when it has none."""
    layout = dict(_typed_arrays_to_lists(state.get("_widget_layout") or {}))
    layout.setdefault("height", DEFAULT_FIGURE_HEIGHT)
    return {"data": _typed_arrays_to_lists(state.get("_widget_data") or []), "layout": layout,
            "config": dict(state.get("_config") or {})}


def is_plotly_figure_widget(model: dict) -> bool:
    """True for a saved model (as `saved_widget_state` gives it) of a plotly ``go.FigureWidget``."""
    st = model.get("state") or {}
    return model.get("model_name") == "AnyModel" and PLOTLY_FIGURE_WIDGET in str(st.get("_anywidget_id", "")) \
        and "_widget_data" in st


def strip_widget_bundles(nb, keep_chars: int = BUNDLE_KEEP_CHARS) -> int:
    """Replace each ``_esm`` / ``_css`` string longer than `keep_chars` in the saved widget state by
    `STRIPPED_ESM` / `STRIPPED_CSS` (which name the original length), in place; every other part of the state
    is kept. Returns the number of characters removed (0: nothing changed).

    In JupyterLab, running the cell again draws the widget (its kernel sends the code); the reopened notebook
    draws the stub's note where the widget was."""
    # A plotly FigureWidget's `_esm` is plotly.js + its widget code (~5 MB per model), saved by papermill for
    # every figure shown, though no HTML export can run it offline.
    removed = 0
    for model in _saved_models(nb).values():
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
