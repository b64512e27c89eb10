"""EvolutionMonitor: the fitness of an EvoPose2D evolution run directory, live.

    mon = EvolutionMonitor("runs/evo1")    # polls every 2 s in a daemon thread

It reads the run's ``archive.jsonl`` and ``generations.jsonl`` (only the new lines) and ``config.json``
(`EvolutionReader`, also used by `lab.front_explorer.FrontExplorer`) and shows every candidate's fitness
by generation, the best-so-far line, the median per generation and the parents; a status line; a table of
the current parents and the best candidate (`candidates_html`); config.json (collapsed) below.
"""

from __future__ import annotations

import html
import os
import threading
from pathlib import Path

import ipywidgets as W
import numpy as np
import pandas as pd
import plotly.graph_objects as go

from posenas_core.errors import DataError
from posenas_core.runs import JsonlTail
from posenas_core.search import archive_frame, generations_frame

from lab._util import (DisplayMixin, ErrorArea, JsonFile, LiveMixin, bad_lines_error, fit_width, fmt_float, fmt_int,
                       parts_html, sync_figure)
from lab.evo_figures import evolution_figure, parents_table
from lab.training_monitor import config_html

__all__ = ["EvolutionMonitor", "EvolutionReader", "candidates_html", "config_input_hw"]


def candidates_html(df: pd.DataFrame) -> str:
    """A candidates table (`parents_table` columns) as escaped HTML, numbers formatted."""
    if not len(df):
        return "<i>no candidates yet</i>"
    disp = df.copy()
    for c in ("params", "macs"):
        if c in disp:
            disp[c] = disp[c].map(fmt_int)
    for c in ("val_loss", "fitness", "ap"):
        if c in disp:
            disp[c] = disp[c].map(fmt_float)
    if "generation" in disp:
        disp["generation"] = disp["generation"].map(fmt_int)
    style = ("<style>.posenas-evo{border-collapse:collapse;font-size:12px}.posenas-evo th,.posenas-evo td"
             "{border:1px solid #ddd;padding:2px 6px;text-align:left}.posenas-evo th{background:#f0f0f0}</style>")
    return style + disp.to_html(escape=True, index=False, border=0, classes="posenas-evo", na_rep="")


def config_input_hw(config: dict | None) -> tuple[int, int] | None:
    """The input size of an evolution config (keys input_hw / input_size_hw / input_size as [H, W]), or None."""
    if not isinstance(config, dict):
        return None
    for key in ("input_hw", "input_size_hw", "input_size"):
        v = config.get(key)
        if isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(x, int) and x > 0 for x in v):
            return int(v[0]), int(v[1])
    return None


class EvolutionReader:
    """archive.jsonl + generations.jsonl + config.json of one run directory, read incrementally.

    `.archive_tail`, `.gen_tail` (JsonlTail: `.records`), `.config` (dict or None); `poll()` reads what
    is new."""

    def __init__(self, run_dir: str | os.PathLike):
        self.run_dir = Path(run_dir)
        self.archive_tail = JsonlTail(self.run_dir / "archive.jsonl")
        self.gen_tail = JsonlTail(self.run_dir / "generations.jsonl")
        self.config_file = JsonFile(self.run_dir / "config.json")

    @property
    def config(self) -> dict | None:
        return self.config_file.value

    def poll(self) -> tuple[bool, list[DataError]]:
        """Read what is new: (anything changed, errors about skipped lines or a bad config.json)."""
        errs: list[DataError] = []
        try:
            changed = self.config_file.poll()
        except DataError as e:
            changed = False
            errs.append(e)
        for tail in (self.archive_tail, self.gen_tail):
            new, reset = tail.poll()
            changed = changed or bool(new) or reset
            e = bad_lines_error(tail)
            if e is not None:
                errs.append(e)
        return changed, errs


class EvolutionMonitor(LiveMixin, DisplayMixin):
    """Live fitness of an evolution run directory (see the module docstring).

    Attributes: `.widget`; `.figure` (go.FigureWidget with the 4 traces of
    `lab.evo_figures.evolution_figure`); `.table` (HTML of `.table_df` = `parents_table`); `.status`
    (HTML); `.config` (HTML of config.json); `.archive` / `.generations` (DataFrames of the records
    read); `.summary` (dict: generations_done, last_generation, generations_total (config "generations":
    the number after generation 0), candidates, failed, best_id, best_fitness, best_genotype, finished:
    the last finished generation is the config's last); `.errors`. `refresh()` polls once; `start()` / `stop()`.
    """

    def __init__(self, run_dir: str | os.PathLike, *, poll_seconds: float = 2.0, autostart: bool = True,
                 title: str = ""):
        self.poll_seconds = self._poll_interval(poll_seconds)
        self.run_dir = Path(run_dir)
        self.reader = EvolutionReader(self.run_dir)
        self._lock = threading.Lock()
        self.archive = archive_frame([])
        self.generations = generations_frame([])
        self.table_df = parents_table(self.archive, self.generations)
        self.summary: dict = {}
        self.polls = 0
        self._drawn = False

        self.errors = ErrorArea()
        self.figure = fit_width(go.FigureWidget(evolution_figure(self.archive, self.generations)))
        self._fit_figures = (self.figure,)
        self.status = W.HTML()
        self.status.add_class("posenas-status")
        self.table = W.HTML(candidates_html(self.table_df), layout=W.Layout(max_height="260px", overflow="auto"))
        # config.json below the figure, full width (in an accordion: it is long)
        self.config = W.HTML(config_html(None), layout=W.Layout(max_height="300px", overflow="auto"))
        self.config.add_class("posenas-config")
        self.config_box = W.Accordion(children=[self.config], titles=("config.json",), selected_index=None)
        self._live_controls(self.run_dir, "the run directory", self.poll_seconds)
        head = W.HTML(f"<h3 style='margin:4px 0'>{html.escape(title or str(self.run_dir))}</h3>")
        self.widget = W.VBox([
            head,
            W.HBox([self.refresh_button, self.live_button, self.status],
                   layout=W.Layout(align_items="center", grid_gap="0 8px")),
            self.figure,
            W.HTML("<b>current parents and best candidate</b>"),
            self.table,
            self.config_box,
            self.errors.widget,
        ], layout=W.Layout(width="100%"))
        self.refresh()
        if autostart:
            self.start()

    def _poll(self) -> None:
        with self._lock:
            self.polls += 1
            changed, errs = self.reader.poll()
            if changed or not self._drawn:
                cfg = self.reader.config
                self.config.value = config_html({"evolution": {k: v for k, v in cfg.items() if k != "kind"}}
                                                if cfg else None)
                self.archive = archive_frame(self.reader.archive_tail.records)
                self.generations = generations_frame(self.reader.gen_tail.records)
                sync_figure(self.figure, evolution_figure(self.archive, self.generations))
                self.table_df = parents_table(self.archive, self.generations)
                self.table.value = candidates_html(self.table_df)
                self._drawn = True
            self.summary = self._summarise()
            self.status.value = self._status_html(self.summary)
        if errs:
            raise errs[0]

    def _summarise(self) -> dict:
        a, g, cfg = self.archive, self.generations, self.reader.config or {}
        total = cfg.get("generations")
        total = total if isinstance(total, int) and not isinstance(total, bool) else None
        ok = a[np.isfinite(a["fitness"])] if len(a) else a
        best = ok.loc[ok["fitness"].idxmin()] if len(ok) else None
        return {
            "exists": self.reader.archive_tail.exists, "generations_done": len(g),
            "last_generation": int(g["generation"].iloc[-1]) if len(g) else None, "generations_total": total,
            "candidates": len(a), "failed": int((a["status"] == "failed").sum()) if len(a) else 0,
            "best_id": int(best["id"]) if best is not None else None,
            "best_fitness": float(best["fitness"]) if best is not None else None,
            "best_genotype": str(best["genotype"]) if best is not None else None,
            "finished": total is not None and len(g) > 0 and int(g["generation"].iloc[-1]) >= total,
        }

    def _status_html(self, s: dict) -> str:
        if not s["exists"]:
            return f"<span style='color:#888'>waiting for {html.escape(str(self.run_dir / 'archive.jsonl'))}</span>"
        parts = ["<b style='color:#176f2c'>finished</b>" if s["finished"] else "<b style='color:#1f5fbf'>running</b>"]
        tail = ""
        if s["last_generation"] is not None:
            tot = f" of {s['generations_total']}" if s["generations_total"] is not None else ""
            parts.append(f"generation {s['last_generation']} done{tot}")
        parts.append(f"{s['candidates']} candidates" + (f" ({s['failed']} failed)" if s["failed"] else ""))
        if s["best_id"] is not None:
            parts.append(f"best fitness {s['best_fitness']:.4g} (id {s['best_id']})")
            tail = (f"<br><span style='font-size:12px;color:#555'>best <code style='overflow-wrap:anywhere'>"
                    f"{html.escape(s['best_genotype'])}</code></span>")
        return parts_html(parts) + tail
