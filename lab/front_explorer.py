"""FrontExplorer: every candidate of one or more EvoPose2D evolution runs against its cost.

    fx = FrontExplorer(["runs/evo1", "runs/evo2"], editor=ed)   # click a candidate -> it opens in `ed`

Validation loss, fitness or AP against GMACs or params, one colour per run, each run's Pareto front as a
step line (and the front of all runs); hover shows the genotype, id, params, MACs and scores; a click (or
`select(run, id)`) shows the candidate in the info panel (beside the figure, or below it in a narrow
output) and loads its spec into the `GenotypeEditor` given.
"""

from __future__ import annotations

import html
import os
import threading
from pathlib import Path
from typing import Sequence

import ipywidgets as W
import numpy as np
import pandas as pd
import plotly.graph_objects as go

from posenas_core.errors import ConfigError, DataError
from posenas_core.genotype import spec_from_dict
from posenas_core.search import archive_frame
from posenas_core.spaces import EvoPoseSpec

from lab._util import DisplayMixin, ErrorArea, Poller, fit_width, fmt_float as _fmt_f, fmt_int as _fmt_int, sync_figure
from lab.evo_figures import X_AXES, Y_AXES, front_figure
from lab.evolution_monitor import EvolutionReader, config_input_hw
from lab.genotype_editor import GenotypeEditor

__all__ = ["FrontExplorer"]


class _Points:
    """Stand-in for plotly's Points object (`point_inds`) for `FrontExplorer.on_click` callers."""

    def __init__(self, point_inds: Sequence[int]):
        self.point_inds = list(point_inds)


class FrontExplorer(DisplayMixin):
    """Loss / fitness / AP vs MACs / params of every candidate of one or more runs (see the module docstring).

    `run_dirs`: one run directory or a list; `names`: the legend names (default: the directories'
    names, made unique). `x` in {"macs", "params"}; `y` in {"val_loss", "fitness", "ap", "auto"}
    ("auto": AP when some candidate has one, else val_loss). Attributes: `.widget`; `.figure`
    (go.FigureWidget of `front_figure`: per run a candidates trace and a front trace, the front of all
    runs when there are several, then "selected"); `.x_toggle`, `.y_toggle`, `.refresh_button`;
    `.info` (HTML of the selected candidate); `.df` (all runs' `archive_frame`s); `.selected`
    ((run, id) or None); `.selected_spec`; `.editor`; `.errors`. `select(run, id)` is what a click
    does; `on_click(trace, points, state)` is the plotly callback; `click(trace_index, point_index)`
    calls it. `refresh()` re-reads the archives; with `poll_seconds` a thread does so until `stop()`.
    """

    def __init__(self, run_dirs: str | os.PathLike | Sequence[str | os.PathLike], editor: GenotypeEditor | None = None,
                 *, names: Sequence[str] | None = None, x: str = "macs", y: str = "auto", title: str = "",
                 poll_seconds: float | None = None):
        if isinstance(run_dirs, (str, os.PathLike)):
            run_dirs = [run_dirs]
        self.run_dirs = [Path(d) for d in run_dirs]
        if not self.run_dirs:
            raise ConfigError("FrontExplorer needs at least one run directory")
        if names is None:
            names = [d.name or str(d) for d in self.run_dirs]
            if len(set(names)) < len(names):
                names = [str(d) for d in self.run_dirs]
        names = [str(n) for n in names]
        if len(names) != len(self.run_dirs) or len(set(names)) != len(names):
            raise ConfigError(f"FrontExplorer: names must be {len(self.run_dirs)} distinct strings, got {names}")
        if x not in X_AXES:
            raise ConfigError(f"FrontExplorer: x = {x!r} is not one of {sorted(X_AXES)}")
        if y != "auto" and y not in Y_AXES:
            raise ConfigError(f"FrontExplorer: y = {y!r} is not one of {sorted(Y_AXES) + ['auto']}")
        self.names = names
        self.editor = editor
        self.readers = {n: EvolutionReader(d) for n, d in zip(names, self.run_dirs)}
        self.errors = ErrorArea()
        self.selected: tuple[str, int] | None = None
        self.selected_spec: EvoPoseSpec | None = None
        self._lock = threading.RLock()
        self._syncing = False
        self.df = archive_frame([])
        for r in self.readers.values():
            for e in r.poll()[1]:
                self.errors.show(e, "reading the run")
        self.df = self._frame()
        if y == "auto":
            y = "ap" if np.isfinite(self.df["ap"]).any() else "val_loss"

        toggle_style = W.ToggleButtonsStyle(button_width="auto")
        self.x_toggle = W.ToggleButtons(options=[("MACs", "macs"), ("params", "params")], value=x, style=toggle_style,
                                        tooltips=["x axis: multiply-adds", "x axis: parameter count"])
        self.y_toggle = W.ToggleButtons(options=[("val loss", "val_loss"), ("fitness", "fitness"), ("AP", "ap")],
                                        value=y, style=toggle_style,
                                        tooltips=["y axis: validation loss", "y axis: fitness J", "y axis: COCO AP"])
        self.refresh_button = W.Button(description="refresh", icon="refresh", layout=W.Layout(width="auto"))
        self.x_toggle.observe(self.errors.wrap(lambda _c: self.redraw(), "changing the x axis"), names="value")
        self.y_toggle.observe(self.errors.wrap(lambda _c: self.redraw(), "changing the y axis"), names="value")
        self.refresh_button.on_click(self.errors.wrap(lambda _b: self.refresh(), "refreshing"))
        self.figure = fit_width(go.FigureWidget(self._fresh()))
        self._fit_figures = (self.figure,)
        for tr in self.figure.data:
            if tr.name != "selected":
                tr.on_click(self.on_click)
        self.info = W.HTML("<i>click a candidate</i>", layout=W.Layout(flex="0 1 320px", min_width="260px",
                                                                        margin="0 0 0 8px"))
        self.info.add_class("posenas-info")
        self.counts = W.HTML("")
        head = W.HTML(f"<h3 style='margin:4px 0'>{html.escape(title)}</h3>" if title else "")
        # the figure takes the room the info panel (320 px) leaves; below 480 px for it, the panel wraps below
        plot = W.VBox([self.figure], layout=W.Layout(flex="1 1 480px", min_width="0"))
        self.widget = W.VBox([
            head,
            W.HBox([W.HBox([W.Label("x"), self.x_toggle]), W.HBox([W.Label("y"), self.y_toggle]),
                    self.refresh_button, self.counts],
                   layout=W.Layout(flex_flow="row wrap", align_items="center", grid_gap="4px 16px")),
            W.HBox([plot, self.info], layout=W.Layout(flex_flow="row wrap", width="100%")),
            self.errors.widget,
        ], layout=W.Layout(width="100%"))
        self._show_counts()
        self._poller = None
        if poll_seconds is not None:
            self._poller = Poller(lambda: self.refresh(force=False), float(poll_seconds), self.errors,
                                  name="reading the runs")
            self._poller.start()

    def stop(self, wait: float | None = 5.0) -> None:
        """Stop the polling started by `poll_seconds` (if any)."""
        if self._poller is not None:
            self._poller.stop(wait)

    # ----------------------------------------------------------------------------- data
    def _frame(self) -> pd.DataFrame:
        frames = [archive_frame(r.archive_tail.records, run=n) for n, r in self.readers.items()]
        return pd.concat(frames, ignore_index=True) if frames else archive_frame([])

    def _fresh(self) -> go.Figure:
        return front_figure(self.df, x=self.x_toggle.value, y=self.y_toggle.value, runs=self.names,
                            selected=self.selected)

    def refresh(self, force: bool = True) -> None:
        """Re-read the runs' archives (only the new lines) and redraw (if something changed, or `force`)."""
        with self._lock:
            changed = False
            for n, r in self.readers.items():
                ch, errs = r.poll()
                changed = changed or ch
                for e in errs:
                    self.errors.show(e, f"reading run {n}")
            if changed or force:
                self.df = self._frame()
                self.redraw()

    def redraw(self) -> None:
        with self._lock:
            sync_figure(self.figure, self._fresh(), ("xaxis", "yaxis"))
            self._show_counts()

    def _show_counts(self) -> None:
        parts = []
        for n in self.names:
            sub = self.df[self.df["run"] == n]
            shown = np.isfinite(sub[self.y_toggle.value]) & np.isfinite(sub[self.x_toggle.value]) & \
                (sub["status"].isin(["ok", ""]))
            parts.append(f"{html.escape(n)}: {int(shown.sum())} of {len(sub)} shown")
        self.counts.value = "<span style='font-size:12px'>" + " &middot; ".join(parts) + "</span>"

    # ----------------------------------------------------------------------------- selection
    def on_click(self, trace, points, state=None) -> None:
        """Plotly click callback: select the first clicked point of a candidates / front trace."""
        with self.errors.catch("selecting the clicked candidate"):
            inds = list(getattr(points, "point_inds", []) or [])
            if not inds or trace.customdata is None:
                return
            row = trace.customdata[inds[0]]
            self.select(str(row[0]), int(row[1]))

    def click(self, trace_index: int, point_index: int) -> None:
        """Do what a click on point `point_index` of trace `trace_index` does (for scripts and tests)."""
        self.on_click(self.figure.data[trace_index], _Points([point_index]))

    def select(self, run: str, cid: int) -> EvoPoseSpec:
        """Show candidate `cid` of `run`, ring it in the figure and load its spec into the editor."""
        with self._lock:
            sub = self.df[(self.df["run"] == run) & (self.df["id"] == int(cid))]
            if not len(sub):
                raise DataError(f"FrontExplorer: run {run!r} has no candidate with id {cid}")
            row = sub.iloc[-1]
            if not isinstance(row["spec"], dict):
                raise DataError(f"FrontExplorer: candidate {cid} of run {run!r} has no spec in archive.jsonl")
            spec = spec_from_dict(row["spec"])
            if not isinstance(spec, EvoPoseSpec):
                raise DataError(f"FrontExplorer: candidate {cid} of run {run!r} is a {spec.KIND!r} spec, "
                                f"not evopose2d")
            self.selected, self.selected_spec = (run, int(cid)), spec
            self.info.value = self._info_html(row)
            self.redraw()
        if self.editor is not None:
            self.editor.set_spec(spec, config_input_hw(self.readers[run].config))
        return spec

    def _info_html(self, row: pd.Series) -> str:
        items = [("run", row["run"]), ("id", int(row["id"])), ("generation", _fmt_int(row["generation"])),
                 ("parent", _fmt_int(row["parent"])), ("mutation", row["mutation"] or "-"),
                 ("params", _fmt_int(row["params"])), ("with BN stats", _fmt_int(row["params_with_bn_stats"])),
                 ("MACs", _fmt_int(row["macs"])), ("val loss", _fmt_f(row["val_loss"])),
                 ("fitness", _fmt_f(row["fitness"])), ("AP", _fmt_f(row["ap"])), ("epochs", _fmt_int(row["epochs"])),
                 ("status", row["status"] or "-")]
        rows = "".join(f"<tr><td style='color:#555;padding-right:8px'>{html.escape(k)}</td>"
                       f"<td>{html.escape(str(v))}</td></tr>" for k, v in items)
        # plain word breaking: a line may end after a "-" (between modules), never inside a module's genes
        return f"<div style='font-size:12px'><code>{html.escape(row['genotype'])}</code><table>{rows}</table></div>"
