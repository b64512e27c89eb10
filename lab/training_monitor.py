"""TrainingMonitor: live loss / learning-rate / validation-AP curves of a training run directory.

    mon = TrainingMonitor("runs/r1")      # polls every 2 s in a daemon thread; works while the
    mon                                   # training runs in this kernel, another kernel or a shell

It reads the trainer's files (`posenas_core.train.trainer`): ``metrics.jsonl`` (per log step
{step, epoch, loss, lr, img_per_s, time, wall}; per validation {epoch, step, val: {...}, time, wall})
and ``config.json`` ({"train": TrainConfig, "spec": spec}).

Reading (`posenas_core.runs.io.JsonlTail`): only the bytes appended since the last poll are read (the file offset is kept);
a last line without its newline is a write in progress (or a kill's torn line) and is left for the next
poll; a file that was replaced (the trainer rewrites it atomically when it starts or resumes: new inode)
or shrank is read again from the start. A complete line that is not JSON is skipped and reported once in
the Output area.

Status ("finished" / "running" / "waiting for metrics.jsonl"): finished when a validation record has
epoch >= config epochs (the trainer validates after the last epoch) or when the last log step reaches
the trainer's latest plan ("total_steps" in its log lines; a budget run re-plans it), else
epochs x steps-per-epoch (steps per epoch = the last step logged in epoch 0: the trainer always logs
the last step of an epoch). Otherwise "running", with the time since the file last changed (a run that
was killed or stopped by its time budget shows a growing age).
"""

from __future__ import annotations

import html
import json
import math
import os
import threading
import time
from pathlib import Path
from typing import Any

import ipywidgets as W
import plotly.graph_objects as go

from posenas_core.runs import JsonlTail

from lab._util import DisplayMixin, ErrorArea, JsonFile, LiveMixin, bad_lines_error, fit_width, parts_html, sync_figure
from lab.figures import metrics_frame, training_curves, val_ap

__all__ = ["TrainingMonitor", "run_status", "config_html"]


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (dict, list)):
        return json.dumps(v, sort_keys=True)
    return str(v)


def config_html(config: dict | None) -> str:
    """The run's config.json as HTML tables: one section per top-level key ("train", "spec", ...)."""
    if not config:
        return "<i>no config.json yet</i>"
    parts = []
    for section, body in config.items():
        head = f"<div style='font-weight:bold;margin-top:4px'>{html.escape(str(section))}</div>"
        if isinstance(body, dict):
            rows = "".join(
                f"<tr><td style='padding:0 8px 0 0;color:#555;vertical-align:top;white-space:nowrap'>"
                f"{html.escape(str(k))}</td>"
                f"<td style='padding:0;overflow-wrap:anywhere'><code>{html.escape(_fmt(v))}</code></td></tr>"
                for k, v in body.items())
            body_html = f"<table style='font-size:12px'>{rows}</table>"
        else:
            body_html = f"<code>{html.escape(_fmt(body))}</code>"
        # sections side by side while they fit (each at least 260 px), wrapping below each other otherwise
        parts.append(f"<div style='flex:1 1 260px;max-width:520px;min-width:0'>{head}{body_html}</div>")
    return f"<div style='display:flex;flex-wrap:wrap;gap:0 24px'>{''.join(parts)}</div>"


def _hms(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def run_status(records: list[dict], config: dict | None, *, exists: bool = True, age_s: float | None = None) -> dict:
    """Summary of a run from its metrics records and config (pure; see the module docstring for the rules).

    Returns {"state": "waiting" | "running" | "finished", "step", "epoch", "epochs", "steps_per_epoch",
    "total_steps", "loss", "lr", "img_per_s", "elapsed_s", "best_ap", "last_ap", "n_val", "age_s"}
    (None where unknown).
    """
    train = [r for r in records if not isinstance(r.get("val"), dict)]
    vals = [r for r in records if isinstance(r.get("val"), dict)]
    epochs = None
    if isinstance(config, dict) and isinstance(config.get("train"), dict):
        e = config["train"].get("epochs")
        epochs = e if isinstance(e, int) and not isinstance(e, bool) else None
    spe = None
    if any((r.get("epoch") or 0) >= 1 for r in records):
        steps0 = [r["step"] for r in train if r.get("epoch") == 0 and isinstance(r.get("step"), int)]
        spe = max(steps0) if steps0 else None
    last = train[-1] if train else {}
    step = max([r.get("step") for r in records if isinstance(r.get("step"), (int, float))], default=None)
    aps = [a for a in (val_ap(r["val"]) for r in vals) if not math.isnan(a)]
    total = epochs * spe if (epochs and spe) else None
    planned = max([r["total_steps"] for r in train if isinstance(r.get("total_steps"), int)][-1:], default=None)
    if planned:   # the trainer's own plan (a budget run re-plans its steps as it measures its speed)
        total = planned
        epochs = math.ceil(planned / spe) if spe else epochs
    finished = bool(
        (epochs is not None and any(isinstance(r.get("epoch"), int) and r["epoch"] >= epochs for r in vals))
        or (total is not None and step is not None and step >= total))
    times = [r.get("time") for r in records if isinstance(r.get("time"), (int, float))]
    state = "waiting" if not exists else ("finished" if finished else "running")
    return {
        "state": state, "step": step, "epoch": last.get("epoch"), "epochs": epochs, "steps_per_epoch": spe,
        "total_steps": total, "loss": last.get("loss"), "lr": last.get("lr"), "img_per_s": last.get("img_per_s"),
        "elapsed_s": max(times) if times else None, "best_ap": max(aps) if aps else None,
        "last_ap": aps[-1] if aps else None, "n_val": len(vals), "age_s": age_s,
    }


class TrainingMonitor(LiveMixin, DisplayMixin):
    """Live curves of a run directory (see the module docstring).

    Layout (top to bottom, fits narrow output areas): title; progress + refresh + live; the status
    line; the figure (full width); config.json (sections side by side while they fit); errors.
    Attributes: `.widget` (root), `.figure` (go.FigureWidget with the 4 traces of
    `lab.figures.training_curves`), `.status` (HTML status line), `.config` (HTML of config.json),
    `.progress`, `.errors` (ErrorArea), `.records` (all metrics records read), `.df` (their
    `metrics_frame`), `.summary` (the latest `run_status` dict). `refresh()` polls once synchronously;
    `start()` / `stop()` the polling thread.
    """

    def __init__(self, run_dir: str | os.PathLike, *, poll_seconds: float = 2.0, autostart: bool = True,
                 title: str = "", stale_after_s: float = 300.0):
        self.poll_seconds = self._poll_interval(poll_seconds)
        self.run_dir = Path(run_dir)
        self.metrics_path = self.run_dir / "metrics.jsonl"
        self.config_path = self.run_dir / "config.json"
        self.stale_after_s = float(stale_after_s)
        self.tail = JsonlTail(self.metrics_path)
        self._config_file = JsonFile(self.config_path)
        self._lock = threading.Lock()
        self._drawn = None  # (n records, tail ident) last drawn
        self.df = metrics_frame([])
        self.summary: dict = {}
        self.polls = 0

        self.errors = ErrorArea()
        # no fixed width: the figure fills the output area
        self.figure = fit_width(go.FigureWidget(training_curves(self.df, title="")))
        self._fit_figures = (self.figure,)
        self.status = W.HTML(layout=W.Layout(margin="2px 0 0 0"))
        self.status.add_class("posenas-status")
        self.progress = W.FloatProgress(value=0, min=0, max=1, description="progress",
                                        layout=W.Layout(width="260px"))
        # config.json below the figure, full width (sections side by side while they fit)
        self.config = W.HTML(config_html(None), layout=W.Layout(width="auto", max_height="260px",
                                                                overflow="auto", margin="0 0 0 8px"))
        self.config.add_class("posenas-config")
        self._live_controls(self.metrics_path, self.metrics_path.name, self.poll_seconds, widths=("90px", "80px"))
        head = W.HTML(f"<h3 style='margin:4px 0'>{html.escape(title or str(self.run_dir))}</h3>")
        self.widget = W.VBox([
            head,
            W.HBox([self.progress, self.refresh_button, self.live_button]),
            self.status,
            self.figure,
            self.config,
            self.errors.widget,
        ], layout=W.Layout(width="100%"))
        self.refresh()
        if autostart:
            self.start()

    @property
    def records(self) -> list[dict]:
        return self.tail.records

    @property
    def config_dict(self) -> dict | None:
        """The run's config.json (None while there is none)."""
        return self._config_file.value

    def _poll(self) -> None:
        with self._lock:
            self.polls += 1
            if self._config_file.poll():
                self.config.value = config_html(self.config_dict)
            new, reset = self.tail.poll()
            key = (len(self.tail.records), self.tail.ident)
            if key != self._drawn:
                self.df = metrics_frame(self.tail.records)
                # x, y, mode (markers while a curve has few points); the lr axis range of a flat lr
                sync_figure(self.figure, training_curves(self.df), ("yaxis2",))
                self._drawn = key
            age = time.time() - self.tail.mtime if self.tail.mtime is not None else None
            self.summary = run_status(self.tail.records, self.config_dict, exists=self.tail.exists, age_s=age)
            self._show_status(self.summary)
            err = bad_lines_error(self.tail)
        if err is not None:
            raise err

    def _show_status(self, s: dict) -> None:
        if s["state"] == "waiting":
            self.status.value = (f"<span style='color:#888'>waiting for {html.escape(str(self.metrics_path))}"
                                 "</span>")
            self.progress.value = 0
            return
        parts = []
        if s["state"] == "finished":
            parts.append("<b style='color:#176f2c'>finished</b>")
        elif s["age_s"] is not None and s["age_s"] > self.stale_after_s:
            parts.append(f"<b style='color:#b36b00'>no update for {_hms(s['age_s'])}</b> (stopped, or validating)")
        else:
            parts.append("<b style='color:#1f5fbf'>running</b>")
        if s["step"] is not None:
            tot = f" / {s['total_steps']}" if s["total_steps"] else ""
            parts.append(f"step {int(s['step'])}{tot}")
        if s["epoch"] is not None:
            # the trainer's epoch is the 0-based epoch in progress: show it 1-based, "epoch 3 / 3"
            parts.append(f"epoch {int(s['epoch']) + 1}" + (f" / {s['epochs']}" if s["epochs"] else ""))
        if isinstance(s["loss"], (int, float)):
            parts.append(f"loss {s['loss']:.4g}")
        if isinstance(s["img_per_s"], (int, float)):
            parts.append(f"{s['img_per_s']:.1f} img/s")
        if s["elapsed_s"] is not None:
            parts.append(f"elapsed {_hms(s['elapsed_s'])}")
        if s["best_ap"] is not None:
            parts.append(f"best AP {s['best_ap']:.3f}")
        if s["state"] != "finished" and s["age_s"] is not None:
            parts.append(f"<span style='color:#888'>updated {_hms(s['age_s'])} ago</span>")
        # one line: the parts wrap as wholes (never "best AP" / "0.000" on two lines)
        self.status.value = parts_html(parts)
        if s["state"] == "finished":
            self.progress.max, self.progress.value, self.progress.bar_style = 1, 1, "success"
        elif s["total_steps"] and s["step"] is not None:
            self.progress.max, self.progress.value = float(s["total_steps"]), float(s["step"])
            self.progress.bar_style = ""
        elif s["epochs"] and s["epoch"] is not None:
            self.progress.max, self.progress.value = float(s["epochs"]), float(s["epoch"])
            self.progress.bar_style = ""
