"""Shared wiring for the lab's widgets: an error area, background work with progress + stop, display.

- `ErrorArea`: an `ipywidgets.Output` that callbacks report their exceptions into. ``with
  errors.catch("rendering"):`` shows the traceback in the Output (as a Jupyter "error" output, so
  it renders like a cell error) and keeps it in `.errors`; nothing is raised into the comm layer
  (where ipywidgets would only log it) and nothing is swallowed silently. Works from any thread
  and without a kernel (the outputs are appended to the widget's state directly, not captured).
- `BackgroundTask`: runs ``fn(report, stop_event)`` in a daemon thread with a progress bar, a status
  label and a Stop button; ``report(done, total=None, text="")`` moves the bar; the function
  checks ``stop_event.is_set()`` between units of work. Errors go to the task's `ErrorArea`.
- `Poller`: calls ``fn()`` every `interval` seconds in a daemon thread until stopped (a live view).
- `LiveMixin`: the "refresh" / "live" buttons of a monitor, wired to its `Poller`; `start()` / `stop()`.
- `JsonFile`: a run's config.json, re-read when it changes; `bad_lines_error`: the error for skipped
  JSON lines; `parts_html`, `fmt_int`, `fmt_float`: status lines and table numbers.
- `DisplayMixin`: ``_repr_mimebundle_`` / ``_ipython_display_`` delegate to ``self.widget`` so that
  a bare widget object at the end of a cell displays (and re-fit the widget's `fit_width` figures).
- `sync_figure(live, fresh)`: copy a freshly built figure's traces into a live `go.FigureWidget`, one
  trace per message (see its docstring for the plotly widget bug this avoids).
- `fit_width(fig)`: a `go.FigureWidget` that fills its container's width instead of plotly's 700 px.
- `png_bytes`: RGB uint8 array -> PNG bytes (for `ipywidgets.Image`).
- plotly figures (``fig.show()`` / a figure as a cell's value) use plotly's own Jupyter default, the plotly
  mime type, drawn once by JupyterLab; `posenas_core.runs.notebooks.export_html` draws them in the HTML
  export of an executed notebook (plotly.js embedded once, offline).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import ipywidgets as W

from posenas_core.errors import DataError

__all__ = ["ErrorArea", "BackgroundTask", "Poller", "LiveMixin", "DisplayMixin", "JsonFile", "read_json_object",
           "bad_lines_error", "png_bytes", "sync_figure", "fit_width", "refit_later", "parts_html", "fmt_int",
           "fmt_float"]


class ErrorArea:
    """An Output area for the exceptions of callbacks (see the module docstring).

    `.widget` is the `ipywidgets.Output`; `.errors` the list of (context, exception) shown so far;
    `.last_error` the latest exception (None if none). `clear()` empties both.
    """

    def __init__(self, max_errors: int = 5):
        self.widget = W.Output(layout=W.Layout(max_height="320px", overflow="auto"))
        self.errors: list[tuple[str, BaseException]] = []
        self.max_errors = int(max_errors)  # only the latest few tracebacks stay on screen
        self._lock = threading.Lock()

    @property
    def last_error(self) -> BaseException | None:
        return self.errors[-1][1] if self.errors else None

    def clear(self) -> None:
        with self._lock:
            self.errors.clear()
            self.widget.outputs = ()

    def show(self, exc: BaseException, context: str = "") -> None:
        """Append `exc` (with its traceback) to the Output area."""
        tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
        head = f"Error while {context}: " if context else "Error: "
        out = {
            "output_type": "error",
            "ename": type(exc).__name__,
            "evalue": str(exc),
            "traceback": [f"\x1b[31m{head}{type(exc).__name__}: {exc}\x1b[0m", *"".join(tb).rstrip().splitlines()],
        }
        with self._lock:
            self.errors.append((context, exc))
            self.widget.outputs = (tuple(self.widget.outputs) + (out,))[-self.max_errors:]

    @contextlib.contextmanager
    def catch(self, context: str = ""):
        """Run the block; an Exception inside it is shown (not raised, not swallowed)."""
        try:
            yield
        except Exception as exc:  # noqa: BLE001 - shown to the user, see the docstring
            self.show(exc, context)

    def wrap(self, fn: Callable, context: str = "") -> Callable:
        """`fn` with its exceptions shown here (for ``observe`` / ``on_click`` callbacks)."""

        def inner(*args, **kwargs):
            with self.catch(context or getattr(fn, "__name__", "")):
                return fn(*args, **kwargs)

        inner.__name__ = getattr(fn, "__name__", "callback")
        return inner


class BackgroundTask:
    """Long work in a daemon thread with a progress bar and a Stop button.

    ``task = BackgroundTask(fn, description="train")``; ``task.start()`` runs
    ``fn(report, stop_event)``. `report(done, total=None, text="")` updates the bar (``total``
    None keeps the previous total) and the label. `stop()` sets the event (the Stop button calls
    it); the function should return soon after. ``task.result`` / ``task.error`` hold the outcome;
    errors are also shown in ``task.errors`` (an `ErrorArea`, shared if one is passed).
    """

    def __init__(self, fn: Callable[[Callable, threading.Event], object], *, description: str = "",
                 errors: ErrorArea | None = None, on_done: Callable[["BackgroundTask"], None] | None = None):
        self.fn = fn
        self.on_done = on_done
        self.errors = errors or ErrorArea()
        self.progress = W.FloatProgress(value=0.0, min=0.0, max=1.0, description=description,
                                        layout=W.Layout(width="320px"))
        self.label = W.Label("")
        self.stop_button = W.Button(description="Stop", icon="stop", button_style="warning",
                                    disabled=True, layout=W.Layout(width="90px"))
        self.stop_button.on_click(lambda _b: self.stop())
        self.widget = W.HBox([self.progress, self.stop_button, self.label])
        self.stop_event = threading.Event()
        self.thread: threading.Thread | None = None
        self.result = None
        self.error: BaseException | None = None
        self.state = "idle"  # idle | running | stopping | done | stopped | failed

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def report(self, done: float, total: float | None = None, text: str = "") -> None:
        if total is not None and total > 0:
            self.progress.max = float(total)
        self.progress.value = float(min(max(done, 0.0), self.progress.max))
        if text:
            self.label.value = text

    def start(self) -> "BackgroundTask":
        if self.running:
            raise RuntimeError("this task is already running; stop() it first")
        self.stop_event = threading.Event()
        self.result, self.error = None, None
        self.state = "running"
        self.stop_button.disabled = False
        self.progress.bar_style = ""
        self.thread = threading.Thread(target=self._run, name=f"lab-{self.progress.description or 'task'}",
                                       daemon=True)
        self.thread.start()
        return self

    def _run(self) -> None:
        try:
            self.result = self.fn(self.report, self.stop_event)
            self.state = "stopped" if self.stop_event.is_set() else "done"
            self.progress.bar_style = "warning" if self.stop_event.is_set() else "success"
        except Exception as exc:  # noqa: BLE001 - shown in the error area
            self.error = exc
            self.state = "failed"
            self.progress.bar_style = "danger"
            self.errors.show(exc, self.progress.description or "running the task")
        finally:
            self.stop_button.disabled = True
            if self.on_done is not None:
                with self.errors.catch("finishing the task"):
                    self.on_done(self)

    def stop(self, wait: float | None = None) -> None:
        """Ask the work to stop; with `wait`, join the thread for up to that many seconds."""
        if self.running:
            self.state = "stopping"
        self.stop_event.set()
        self.stop_button.disabled = True
        if wait is not None:
            self.join(wait)

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread; True if it has finished."""
        if self.thread is not None:
            self.thread.join(timeout)
        return not self.running


class Poller:
    """Call `fn()` every `interval` seconds in a daemon thread until `stop()` (errors -> `errors`).

    An error does not end the polling (a file being rewritten may be unreadable for a moment);
    each failing call is shown once per distinct message in a row.
    """

    def __init__(self, fn: Callable[[], object], interval: float, errors: ErrorArea, name: str = "poll"):
        if not interval > 0:
            raise ValueError(f"poll interval must be > 0 seconds, got {interval}")
        self.fn, self.interval, self.errors, self.name = fn, float(interval), errors, name
        self._stop = threading.Event()
        self.thread: threading.Thread | None = None
        self._last_msg = None

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def start(self) -> None:
        if self.running:
            return
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, args=(self._stop,), name=f"lab-{self.name}", daemon=True)
        self.thread.start()

    def _loop(self, stop: threading.Event) -> None:
        while not stop.is_set():
            t0 = time.monotonic()
            try:
                self.fn()
                self._last_msg = None
            except Exception as exc:  # noqa: BLE001 - shown in the error area
                msg = f"{type(exc).__name__}: {exc}"
                if msg != self._last_msg:
                    self.errors.show(exc, self.name)
                self._last_msg = msg
            stop.wait(max(0.0, self.interval - (time.monotonic() - t0)))

    def stop(self, wait: float | None = 5.0) -> None:
        self._stop.set()
        if self.thread is not None and wait is not None and self.thread is not threading.current_thread():
            self.thread.join(wait)


class LiveMixin:
    """Live polling of files by a widget: a "refresh" button, a "live" toggle and a `Poller` calling `_poll`.

    The widget calls `_poll_interval(poll_seconds)` first (its own validation), then `_live_controls(...)`,
    which makes `.refresh_button`, `.live_button` and `._poller`; it needs `.errors` (an ErrorArea)."""

    refresh_button: W.Button
    live_button: W.ToggleButton
    _poller: "Poller"
    errors: ErrorArea
    _source: str = ""

    def _poll_interval(self, poll_seconds: Any) -> float:
        """`poll_seconds` as a float; DataError naming the widget unless it is a number > 0."""
        if not (isinstance(poll_seconds, (int, float)) and poll_seconds > 0):
            raise DataError(f"{type(self).__name__}: poll_seconds must be a number > 0, got {poll_seconds!r}")
        return float(poll_seconds)

    def _live_controls(self, source: str, polled: str, poll_seconds: float,
                       widths: tuple[str, str] = ("auto", "auto")) -> None:
        """Make `.refresh_button` (-> `refresh()`), `.live_button` (-> `_on_live`: polling `polled` every
        `poll_seconds`) with the given widths, and `._poller`; errors say "reading `source`"."""
        self._source = str(source)
        self.refresh_button = W.Button(description="refresh", icon="refresh", layout=W.Layout(width=widths[0]))
        self.live_button = W.ToggleButton(value=False, description="live", icon="eye",
                                          tooltip=f"poll {polled} every {poll_seconds:g} s",
                                          layout=W.Layout(width=widths[1]))
        self.refresh_button.on_click(lambda _b: self.refresh())
        self.live_button.observe(self.errors.wrap(self._on_live, "starting / stopping the polling"), names="value")
        self._poller = Poller(self._poll, poll_seconds, self.errors, name=f"reading {self._source}")

    @property
    def running(self) -> bool:
        return self._poller.running

    def start(self) -> None:
        """Start polling in a daemon thread (the 'live' button does the same)."""
        if not self.live_button.value:
            self.live_button.value = True  # -> _on_live
        elif not self._poller.running:
            self._poller.start()

    def stop(self, wait: float | None = 5.0) -> None:
        """Stop polling (the figure keeps its data; `refresh()` still works)."""
        self._poller.stop(wait)
        if self.live_button.value:
            self.live_button.value = False

    def _on_live(self, change) -> None:
        if change["new"]:
            self._poller.start()
        else:
            self._poller.stop(wait=None)

    def refresh(self) -> None:
        """Poll once, synchronously (errors go to the Output area), and send the figure to the page again whole
        (`resend_figure`: "refresh" repairs a view that missed an update)."""
        with self.errors.catch(f"reading {self._source}"):
            self._poll()
            for fig in getattr(self, "_fit_figures", ()):
                resend_figure(fig)

    def _poll(self) -> None:  # pragma: no cover - subclasses implement
        raise NotImplementedError


class JsonFile:
    """The JSON object in `path` (`.value`, None while the file is missing), re-read by `poll()` when the
    file changes (inode, mtime, size)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.value: dict | None = None
        self._stamp: tuple | None = None

    def poll(self) -> bool:
        """Re-read a changed file; True if it changed. DataError (`.value` kept) unless it holds a JSON object."""
        try:
            st = os.stat(self.path)
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = None
        if stamp == self._stamp:
            return False
        self.value, self._stamp = (read_json_object(self.path) if stamp else None), stamp
        return True


def read_json_object(path: Path) -> dict | None:
    """The JSON object in the file at `path`; None if there is no file; DataError if it is not a JSON object."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        d = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(d, dict):
        raise DataError(f"{path} must hold a JSON object, got {type(d).__name__}")
    return d


def bad_lines_error(tail) -> DataError | None:
    """The DataError for the lines a JSON-lines reader (`.path`, `.bad_lines` [(line, message)]) skipped."""
    if not tail.bad_lines:
        return None
    n, msg = tail.bad_lines[0]
    more = f" (and {len(tail.bad_lines) - 1} more lines)" if len(tail.bad_lines) > 1 else ""
    return DataError(f"{tail.path}: line {n} is {msg}; skipped{more}")


class DisplayMixin:
    """A bare widget object displays its `.widget` (the root ipywidgets container); the figures listed
    in `_fit_figures` (made by `fit_width`) are re-fitted to their container once the view is on the page."""

    widget: W.Widget
    _fit_figures: tuple = ()

    def _repr_mimebundle_(self, **kwargs):
        refit_later(self._fit_figures)
        return self.widget._repr_mimebundle_(**kwargs)

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)
        refit_later(self._fit_figures)


# ---------------------------------------------------------------------------------------------
# Live plotly figures (go.FigureWidget)


def sync_figure(live, fresh, layout_keys: Sequence[str] = ()) -> None:
    """Copy every trace of `fresh` (a go.Figure with the same number and kinds of traces) into the live
    `go.FigureWidget`, and the layout parts named in `layout_keys` (e.g. "xaxis", "yaxis2").

    One update message per trace, never one `batch_update` over all traces: for a trace whose property
    did not change, a multi-trace restyle carries plotly's `Undefined` placeholder, and plotly's widget
    model (plotly 6-7, JupyterLab) stores it as a *missing* property. The view on the page is right, but
    every view rendered later (the widget displayed after the update, a reloaded page) loses that data
    (a bar chart without y became horizontal bars in the GenotypeEditor)."""
    for lt, ft in zip(live.data, fresh.data):
        lt.update(_trace_props(ft), overwrite=True)  # one restyle of this trace only
    for key in layout_keys:
        part = fresh.layout[key]
        live.layout[key].update(part.to_plotly_json() if part is not None else {}, overwrite=True)
    save_figure_state(live)


def resend_figure(live) -> None:
    """Send every trace of the live `go.FigureWidget` to its views again, whole, changed or not (one restyle
    message per trace). plotly.py sends only what changed since its own last message, so a view that missed a
    message (an update that reached the browser while the view was still drawing itself) would otherwise keep
    stale data for good; `LiveMixin.refresh` calls this."""
    send = getattr(live, "_send_restyle_msg", None)       # plotly's own restyle message (private API)
    if send is None:
        return
    for i, trace in enumerate(live.data):
        send({k: [v] for k, v in _trace_props(trace).items()}, trace_indexes=[i])


def _trace_props(trace) -> dict:
    """A trace's properties as plotly JSON, less its type and id (a live trace keeps both)."""
    d = trace.to_plotly_json()
    d.pop("type", None)
    d.pop("uid", None)
    return d


def save_figure_state(live) -> None:
    """Make the live `go.FigureWidget`'s synced ``_widget_data`` / ``_widget_layout`` match its figure.

    plotly sets them only when the widget is created or displayed and sends later updates as transient
    restyle/relayout messages, so the widget state that papermill (and JupyterLab's "save widget state")
    keeps in an executed notebook would hold the figure as first shown (a monitor with no points). The
    HTML export draws a static copy of each widget from that state
    (`posenas_core.runs.static_widgets`). plotly's view ignores these traits after it is drawn (no
    redraw); one message carries the whole figure."""
    from copy import deepcopy

    if hasattr(live, "_widget_data") and hasattr(live, "_layout_obj"):
        live._widget_data = deepcopy(live._data)
        live._widget_layout = deepcopy(live._layout_obj._props)


REFIT_DELAYS_S = (0.5, 2.0, 5.0)


def fit_width(fig):
    """Let a `go.FigureWidget` fill its container's width (no `layout.width`; plotly's "responsive"
    config follows window resizes). Returns `fig`. List it in a DisplayMixin's `_fit_figures`.

    Why the re-fit (`refit_later`): plotly's anywidget view (plotly >= 6) draws before JupyterLab has
    put it on the page, so it measures nothing and uses plotly's 700 px default, and it never re-measures
    on its own (plotly.py issue #5208); a relayout with ``autosize`` sent once the view is on the page
    makes plotly.js measure the container."""
    fig.layout.width = None
    fig.layout.autosize = True
    fig._config = {**(fig._config or {}), "responsive": True}
    return fig


def refit_later(figs: Sequence, delays: Sequence[float] = REFIT_DELAYS_S) -> None:
    """After each of `delays` seconds (daemon timers), ask every view of `figs` to re-measure its
    container (see `fit_width`). Cheap: a relayout message, no data."""
    figs = [f for f in figs if f is not None]
    if not figs:
        return

    def refit():
        for f in figs:
            send = getattr(f, "_send_relayout_msg", None)  # plotly's own relayout message (private API)
            if send is not None and f.layout.width is None:
                send({"autosize": True})

    for d in delays:
        t = threading.Timer(float(d), refit)
        t.daemon = True
        t.start()


def png_bytes(rgb: np.ndarray) -> bytes:
    """Encode an (H, W, 3) uint8 RGB array as PNG bytes."""
    import cv2

    a = np.ascontiguousarray(rgb)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"png_bytes: expected an (H, W, 3) uint8 RGB array, got {a.dtype} {a.shape}")
    ok, buf = cv2.imencode(".png", cv2.cvtColor(a, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise ValueError("png_bytes: OpenCV could not encode the image")
    return buf.tobytes()


def parts_html(parts: Sequence[str]) -> str:
    """Status parts joined by middots; each part wraps as a whole (never in the middle)."""
    return " &middot; ".join(f"<span style='white-space:nowrap'>{p}</span>" for p in parts)


def _fmt_finite(v: Any, fmt) -> str:
    """`fmt(float(v))`, or "-" when `v` is None, NaN, infinite or not a number."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return "-"
    return fmt(f) if np.isfinite(f) else "-"


def fmt_int(v: Any) -> str:
    """An integer with thousands separators for tables; "-" for None / NaN / not a number."""
    return _fmt_finite(v, lambda f: f"{int(f):,}")


def fmt_float(v: Any) -> str:
    """A number to 4 significant digits for tables; "-" for None / NaN / not a number."""
    return _fmt_finite(v, lambda f: f"{f:.4g}")
