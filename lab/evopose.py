"""EvoPose2D widgets: edit a genotype, watch an evolution, explore the loss / cost front of runs.

    ed = GenotypeEditor("evopose2d-s")                         # 7 x 4 genes, input size, live cost
    mon = EvolutionMonitor("runs/evo1")                        # fitness per generation, live
    fx = FrontExplorer(["runs/evo1", "runs/evo2"], editor=ed)  # click a candidate -> it opens in `ed`

GenotypeEditor
    One row of controls per module (kernel {3, 5}; blocks 1-4; channels/8 in 1..the ancestor's; stride
    fixed 1, 2, 2, 2 for modules 1-4 (disabled) and 1 or 2 for modules 5-7), the input size (H, W: the
    `input_hw` given, else a preset's own size, else 256x192), the preset list (showing the preset the
    current spec is, blank for any other) and
    a compound-scaling switch (on: the spec is ``scaled_spec(genotype, input size)``, the identity at
    256x192, refused below it; off, the default unless a scaled spec such as evopose2d-m is loaded: the
    loaded spec's multipliers are kept). Every edit re-validates: an invalid genotype
    (e.g. two stride-2 modules among 5-7) shows the SpecError text in the validation area and keeps the
    last valid spec (`.spec`; `.valid` is False until the edit is undone). For a valid spec the stats
    line shows params (trainable and with BN running statistics; `count_params`) and MACs at the input
    size (`count_macs`); both are measured by the profiler on a model built on the "meta" device (no
    memory, no weights, the global RNG untouched). Latency (`measure_latency`, batch 1, 1 thread) is
    measured on the "measure latency" button in a background thread (weights from a local generator).
    The diagram (`lab.evo_figures.network_diagram`) shows stem, modules 1-7 and head with channels,
    strides and feature-map sizes, and below them every MBConv block (`lab.evo_pictures.block_traces`:
    the 1x1 expansion's width, the depthwise kernel as colour, squeeze-excite, output channels, stride-2
    blocks, residual skips); it fills the output's width (`lab._util.fit_width`), as do the
    monitor's and the explorer's figures. JSON: the text area loads a spec JSON, a genotype string, a preset
    name or a spec file path ("load"), "to JSON" writes the current spec there; a file path + "save" /
    "load file"; "send to notebook" puts ``spec.to_json()`` (the string a notebook's `model` /
    `spec` parameter takes; `posenas_core.models.registry.load_spec` reads it) in `.notebook_text`,
    and in `.notebook_hint` how to start the EvoPose2D notebook's evolution from it (its `ancestor`
    parameter reads any of these texts with `spec_from_text`). A button's expected error (bad JSON, a
    missing file) shows in the validation area until the next successful action clears it.

EvolutionMonitor
    Reads ``archive.jsonl`` and ``generations.jsonl`` of an evolution run directory incrementally
    (`lab.training_monitor.JsonlTail`, polled by `Poller`): every candidate's fitness by generation,
    the best-so-far line, the median per generation and the parents; a status line, a table of the
    current parents and the best candidate, and config.json (collapsed) below.

FrontExplorer
    Every candidate of one or more runs as validation loss, fitness or AP against GMACs or params,
    one colour per run, each run's Pareto front as a step line (and the front of all runs); hover shows
    the genotype, id, params, MACs and scores; a click (or `select(run, id)`) shows the candidate in the
    info panel (beside the figure, or below it in a narrow output) and loads its spec into the editor.
"""

from __future__ import annotations

import html
import json
import os
import re
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Sequence

import ipywidgets as W
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch

from posenas_core.errors import ConfigError, DataError, PoseNASError, SpecError
from posenas_core.eval.profiler import count_macs, count_params, measure_latency
from posenas_core.genotype import spec_from_dict, spec_from_json
from posenas_core.models.evopose import build_evopose
from posenas_core.models.registry import PRESETS, load_spec
from posenas_core.runs.io import atomic_write_text
from posenas_core.spaces.evopose import (FIXED_STRIDES, KERNELS, MAX_BLOCKS, MAX_CH8, EvoPoseSpec, compound_scaling,
                                         genotype_from_str, genotype_to_str, scaled_spec)

from lab._util import (BackgroundTask, DisplayMixin, ErrorArea, LiveMixin, Poller, fit_width, fmt_float as _fmt_f,
                       fmt_int as _fmt_int, sync_figure)
from lab.evo_figures import (X_AXES, Y_AXES, archive_frame, evolution_figure, front_figure, generations_frame,
                             network_diagram, network_frame, parents_table)
from lab.evo_pictures import block_frame
from lab.training_monitor import JsonlTail, config_html

__all__ = ["GenotypeEditor", "EvolutionMonitor", "FrontExplorer", "spec_stats", "candidates_html", "spec_from_text",
           "NOTEBOOK", "ANCESTOR_PARAMETER"]

EVOPOSE_PRESETS = [name for name, p in PRESETS.items() if isinstance(p.spec, EvoPoseSpec)]
SCALING_SIZES = ((256, 192), (384, 288), (512, 384))   # sizes tried when a loaded spec is compound-scaled
_GENOTYPE_RE = re.compile(r"^k\d+b\d+c\d+s\d+(-k\d+b\d+c\d+s\d+)*$")
NOTEBOOK = "notebooks/02_evopose2d.ipynb"      # the notebook whose parameter "send to notebook" fills
ANCESTOR_PARAMETER = "ancestor"                # its parameter: the evolution's starting genotype


_copy_figure = sync_figure  # one message per trace (see lab._util.sync_figure)
_NOWRAP = "<span style='white-space:nowrap'>{}</span>"


def _parts_html(parts: Sequence[str]) -> str:
    """Status parts joined by middots; each part wraps as a whole (never in the middle)."""
    return " &middot; ".join(_NOWRAP.format(p) for p in parts)


def candidates_html(df: pd.DataFrame) -> str:
    """A candidates table (`parents_table` columns) as escaped HTML, numbers formatted."""
    if not len(df):
        return "<i>no candidates yet</i>"
    disp = df.copy()
    for c in ("params", "macs"):
        if c in disp:
            disp[c] = disp[c].map(_fmt_int)
    for c in ("val_loss", "fitness", "ap"):
        if c in disp:
            disp[c] = disp[c].map(_fmt_f)
    if "generation" in disp:
        disp["generation"] = disp["generation"].map(_fmt_int)
    style = ("<style>.posenas-evo{border-collapse:collapse;font-size:12px}.posenas-evo th,.posenas-evo td"
             "{border:1px solid #ddd;padding:2px 6px;text-align:left}.posenas-evo th{background:#f0f0f0}</style>")
    return style + disp.to_html(escape=True, index=False, border=0, classes="posenas-evo", na_rep="")


def spec_from_text(text: str) -> EvoPoseSpec:
    """An EvoPose2D spec from what a person types or a notebook parameter holds: a spec JSON string, a
    genotype string ('k3b1c2s1-k3b2c3s2-...'), a preset name ('evopose2d-ancestor', 'evopose2d-s', ...) or
    the path of a spec JSON file (`GenotypeEditor.save` writes one). SpecError / ConfigError otherwise,
    saying what is accepted."""
    t = str(text).strip()
    if not t:
        raise SpecError("no spec given: a spec JSON, a genotype string (k3b1c2s1-...), a preset name or a spec "
                        "file path")
    if t.startswith("{"):
        spec = spec_from_json(t)
    elif _GENOTYPE_RE.match(t):
        spec = EvoPoseSpec(genotype=genotype_from_str(t))
    else:
        spec = load_spec(t)
    if not isinstance(spec, EvoPoseSpec):
        raise SpecError(f"{t[:60]!r} is a spec of kind {getattr(spec, 'KIND', type(spec).__name__)!r}, not an "
                        f"EvoPose2D genotype; EvoPose2D presets: {EVOPOSE_PRESETS}")
    return spec


# ---------------------------------------------------------------------------------------------
# Cost of a spec


def spec_stats(spec: EvoPoseSpec, input_hw: Sequence[int]) -> dict:
    """{"params", "params_with_bn_stats", "macs"} of `spec` at `input_hw`, measured by the profiler on a
    model built on the meta device (same counts as a real model; no weights, the global RNG untouched).
    ValueError if the input size is not a multiple of the network stride."""
    h, w = (int(v) for v in input_hw)
    with torch.device("meta"):
        model = build_evopose(spec)
    out = count_params(model)
    out["macs"] = count_macs(model, (h, w))
    return out


def _cpu_model(spec: EvoPoseSpec) -> torch.nn.Module:
    """A real CPU model for timing: built on meta, materialised, weights from a local generator."""
    with torch.device("meta"):
        model = build_evopose(spec)
    model = model.to_empty(device="cpu")
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.05)
        for name, b in model.named_buffers():
            if name.endswith("running_var"):
                b.fill_(1.0)
            else:
                b.zero_()
    return model.eval()


# ---------------------------------------------------------------------------------------------
# GenotypeEditor


class GenotypeEditor(DisplayMixin):
    """Edit an EvoPose2D genotype with live cost and a network diagram (see the module docstring).

    Attributes: `.widget`; `.kernel`, `.blocks`, `.ch8`, `.stride` (7 controls each, module order);
    `.height`, `.width` (input size), `.scaling` (Checkbox); `.preset` + `.preset_button`;
    `.validation` (HTML: the SpecError text of an invalid edit, or a load error); `.stats` (HTML) and
    `.stats_dict` ({"params", "params_with_bn_stats", "macs", "input_hw", "network_stride",
    "output_stride", "heatmap_hw"} of the current valid spec); `.latency` (the last measurement:
    {"latency_ms", "iqr_ms", "runs", "spec", "input_hw"} or None), `.latency_button`, `.latency_task`
    (BackgroundTask); `.diagram` (go.FigureWidget), `.net_df` (its `network_frame`); `.json_text`
    (Textarea), `.load_button`, `.to_json_button`; `.path_text`, `.save_button`, `.load_file_button`;
    `.notebook_button`, `.notebook_text`, `.notebook_hint` (HTML), `.notebook_command` (the
    `posenas run ... -p ancestor ...` line of the last send); `.block_df` (the diagram's
    `lab.evo_pictures.block_frame`); `.errors` (ErrorArea: unexpected errors of callbacks).
    """

    def __init__(self, spec: EvoPoseSpec | str | None = None, *, input_hw: Sequence[int] | None = None,
                 latency_min_run_time: float = 1.0, latency_threads: int = 1, title: str = "GenotypeEditor"):
        self.latency_min_run_time = float(latency_min_run_time)
        self.latency_threads = int(latency_threads)
        self.errors = ErrorArea()
        self._syncing = False
        self._lock = threading.RLock()
        self._cache: OrderedDict[tuple, dict] = OrderedDict()
        self._base = EvoPoseSpec()
        self._spec = self._base
        self._problem = ""
        self.stats_dict: dict = {}
        self.latency: dict | None = None
        self.updates = 0
        given_hw = input_hw
        input_hw = tuple(input_hw) if input_hw is not None else (256, 192)

        lay = W.Layout
        self.kernel, self.blocks, self.ch8, self.stride, self.row_info = [], [], [], [], []
        cells = [W.HTML(f"<b>{h}</b>") for h in ("module", "kernel", "blocks", "channels / 8", "stride", "output")]
        for m in range(7):
            k = W.Dropdown(options=list(KERNELS), value=KERNELS[0], layout=lay(width="64px"))
            # no description: its (empty) label must not take the track's room
            b = W.IntSlider(value=1, min=1, max=MAX_BLOCKS, continuous_update=False, layout=lay(width="180px"),
                            style={"description_width": "0px"})
            c = W.IntSlider(value=1, min=1, max=MAX_CH8[m], continuous_update=False, layout=lay(width="250px"),
                            style={"description_width": "0px"})
            fixed = m < len(FIXED_STRIDES)
            s = W.Dropdown(options=[FIXED_STRIDES[m]] if fixed else [1, 2], value=FIXED_STRIDES[m] if fixed else 1,
                           disabled=fixed, layout=lay(width="60px"),
                           tooltip="fixed" if fixed else "at most one of modules 5-7 may have stride 2")
            info = W.HTML("", layout=lay(width="150px"))
            for ctl, gene in ((k, "kernel"), (b, "blocks"), (c, "ch8"), (s, "stride")):
                ctl.observe(self.errors.wrap(self._on_control, "editing the genotype"), names="value")
                ctl.add_class(f"posenas-{gene}-{m + 1}")  # e.g. .posenas-kernel-3 (module 3's kernel)
            self.kernel.append(k), self.blocks.append(b), self.ch8.append(c), self.stride.append(s)
            self.row_info.append(info)
            cells += [W.HTML(f"module {m + 1}"), k, b, c, s, info]
        self.grid = W.GridBox(cells, layout=lay(grid_template_columns="70px 70px 190px 260px 70px 160px",
                                                grid_gap="2px 6px"))
        self.height = W.BoundedIntText(value=int(input_hw[0]), min=16, max=2048, step=32, description="input H",
                                       layout=lay(width="140px"), style={"description_width": "initial"})
        self.width = W.BoundedIntText(value=int(input_hw[1]), min=16, max=2048, step=32, description="W",
                                      layout=lay(width="100px"), style={"description_width": "initial"})
        self.scaling = W.Checkbox(value=False, description="compound scaling", indent=False, layout=lay(width="150px"),
                                  tooltip="depth / width / drop-connect from the input size (identity at 256x192; "
                                          "inputs below it are not scaled down)")
        for ctl in (self.height, self.width, self.scaling):
            ctl.observe(self.errors.wrap(self._on_control, "changing the input size"), names="value")
        # shows the preset the current spec is (blank for any other spec); pick one + "load preset"
        self.preset = W.Dropdown(options=EVOPOSE_PRESETS, value=None, description="preset",
                                 layout=lay(width="250px"), style={"description_width": "initial"})
        self.preset_button = W.Button(description="load preset", icon="download", layout=lay(width="auto"))
        self.preset_button.on_click(self.errors.wrap(lambda _b: self._guarded(self._load_preset), "loading the preset"))

        self.validation = W.HTML("")
        self.validation.add_class("posenas-validation")
        self.stats = W.HTML("")
        self.stats.add_class("posenas-stats")
        self.latency_label = W.HTML("")
        self.latency_button = W.Button(description="measure latency", icon="clock-o", layout=lay(width="auto"),
                                       tooltip=f"batch-1 CPU forward, {self.latency_threads} thread(s)")
        self.latency_task = BackgroundTask(self._measure, description="latency", errors=self.errors,
                                           on_done=lambda _t: self._show_latency(finished=True))
        self.latency_button.on_click(self.errors.wrap(lambda _b: self.measure_latency(), "measuring latency"))
        self.latency_task.widget.layout.display = "none"  # progress + Stop only while measuring

        self.net_df = network_frame(self._spec, self.input_hw)
        self.block_df = block_frame(self._spec, self.input_hw)
        self.diagram = fit_width(go.FigureWidget(network_diagram(self.net_df, blocks=self.block_df)))
        self._fit_figures = (self.diagram,)

        self.json_text = W.Textarea(value="", placeholder="spec JSON, genotype string, preset name or spec file path",
                                    layout=lay(width="560px", height="90px"))
        self.load_button = W.Button(description="load", icon="upload", layout=lay(width="auto"),
                                    tooltip="load the spec JSON / genotype string / preset / path in the text area")
        self.to_json_button = W.Button(description="to JSON", icon="code", layout=lay(width="auto"),
                                       tooltip="write the current spec as JSON into the text area")
        self.load_button.on_click(self.errors.wrap(
            lambda _b: self._guarded(lambda: self.load_json(self.json_text.value)), "loading the JSON"))
        self.to_json_button.on_click(self.errors.wrap(lambda _b: self._guarded(self._to_text), "writing the JSON"))
        self.path_text = W.Text(value="", placeholder="path/to/spec.json", description="file",
                                layout=lay(width="420px"), style={"description_width": "initial"})
        self.save_button = W.Button(description="save", icon="save", layout=lay(width="auto"))
        self.load_file_button = W.Button(description="load file", icon="folder-open", layout=lay(width="auto"))
        self.save_button.on_click(self.errors.wrap(lambda _b: self._guarded(self.save), "saving the spec"))
        self.load_file_button.on_click(self.errors.wrap(lambda _b: self._guarded(self.load_file), "loading the file"))
        self.file_status = W.HTML("")
        self.notebook_button = W.Button(description="send to notebook", icon="share", layout=lay(width="auto"),
                                        tooltip="the JSON string a notebook's spec parameter takes")
        self.notebook_text = W.Text(value="", placeholder="spec.to_json()", layout=lay(width="560px"))
        self.notebook_button.on_click(self.errors.wrap(lambda _b: self._guarded(self.to_notebook), "sending"))
        self.notebook_hint = W.HTML("")
        self.notebook_hint.add_class("posenas-notebook-hint")
        self.notebook_command = ""

        head = W.HTML(f"<h3 style='margin:4px 0'>{html.escape(title)}</h3>" if title else "")
        self.widget = W.VBox([
            head,
            W.HBox([self.preset, self.preset_button, self.height, self.width, self.scaling],
                   layout=lay(flex_flow="row wrap", align_items="center", grid_gap="4px 8px")),
            self.grid,
            self.validation,
            self.stats,
            W.HBox([self.latency_button, self.latency_task.widget, self.latency_label],
                   layout=lay(flex_flow="row wrap", align_items="center")),
            self.diagram,
            W.HBox([self.json_text, W.VBox([self.load_button, self.to_json_button])]),
            W.HBox([self.path_text, self.save_button, self.load_file_button, self.file_status]),
            W.HBox([self.notebook_button, self.notebook_text]),
            self.notebook_hint,
            self.errors.widget,
        ])
        if spec is None:
            self.set_spec(EvoPoseSpec(), input_hw)
        elif isinstance(spec, str):
            self.load_json(spec, input_hw=given_hw)
        else:
            self.set_spec(spec, input_hw)

    # ----------------------------------------------------------------------------- state
    @property
    def spec(self) -> EvoPoseSpec:
        """The current spec (the last valid one while the controls hold an invalid genotype)."""
        return self._spec

    @property
    def valid(self) -> bool:
        """False while the controls hold an invalid genotype / input size (see `.validation`)."""
        return not self._problem

    @property
    def input_hw(self) -> tuple[int, int]:
        return int(self.height.value), int(self.width.value)

    @property
    def genotype(self) -> tuple:
        """The genotype the controls show (possibly invalid)."""
        return tuple((int(self.kernel[m].value), int(self.blocks[m].value), int(self.ch8[m].value),
                      int(self.stride[m].value)) for m in range(7))

    # ----------------------------------------------------------------------------- loading
    def set_spec(self, spec: EvoPoseSpec, input_hw: Sequence[int] | None = None) -> None:
        """Show `spec` (and the input size, if given) in the controls.

        Compound scaling is switched on when `spec` is really scaled (multipliers above 1) and equals
        ``scaled_spec(spec.genotype, size)`` with its fixed fields for the given size, or (no size
        given) for the current size or one of 384x288, 512x384 (that size is then selected). Otherwise
        it is switched off and the spec's own multipliers are kept while editing (at 256x192 both give
        the same network)."""
        if not isinstance(spec, EvoPoseSpec):
            kind = getattr(spec, "KIND", type(spec).__name__)
            raise SpecError(f"GenotypeEditor edits evopose2d specs; got a spec of kind {kind!r}")
        sizes = [tuple(int(v) for v in input_hw)] if input_hw is not None else \
            [self.input_hw] + [s for s in SCALING_SIZES if s != self.input_hw]
        scaled_hw = None
        for hw in sizes:
            if compound_scaling(hw)["phi"] <= 0:
                continue
            try:
                if self._scaled(spec.genotype, hw, spec) == spec:
                    scaled_hw = hw
                    break
            except SpecError:
                continue
        hw = scaled_hw or (sizes[0] if input_hw is not None else self.input_hw)
        with self._lock:
            self._syncing = True
            try:
                for m, (k, b, c, s) in enumerate(spec.genotype):
                    self.kernel[m].value, self.blocks[m].value, self.ch8[m].value = k, b, c
                    self.stride[m].value = s
                self.height.value, self.width.value = hw
                self.scaling.value = scaled_hw is not None
                self._base = spec
            finally:
                self._syncing = False
        self._update()

    def _load_preset(self) -> EvoPoseSpec:
        if self.preset.value is None:
            raise ConfigError("choose a preset in the 'preset' list first")
        return self.load_json(self.preset.value)

    def load_json(self, text: str, input_hw: Sequence[int] | None = None) -> EvoPoseSpec:
        """Load a spec JSON string, a genotype string ('k3b1c2s1-...'), a preset name or a spec file path
        (`spec_from_text`).

        A preset also sets its input size unless `input_hw` is given. Raises SpecError / ConfigError on
        bad input (the buttons show it in the validation area)."""
        t = str(text).strip()
        hw = tuple(int(v) for v in input_hw) if input_hw is not None else None
        spec = spec_from_text(t)
        if t in PRESETS and hw is None:
            hw = PRESETS[t].input_size_hw
        self.set_spec(spec, hw)
        return spec

    def load_file(self, path: str | os.PathLike | None = None) -> EvoPoseSpec:
        """Load a spec JSON file (default: the path in `.path_text`)."""
        p = Path(path if path is not None else self.path_text.value.strip())
        if not p.is_file():
            raise ConfigError(f"spec file {str(p)!r} does not exist")
        spec = load_spec(str(p))
        self.set_spec(spec)
        self.file_status.value = f"<span style='color:#176f2c'>loaded {html.escape(str(p))}</span>"
        return spec

    def save(self, path: str | os.PathLike | None = None) -> Path:
        """Write the current spec as JSON (indented; `load_spec(path)` reads it) to `path` or `.path_text`."""
        self._require_valid("save")
        target = str(path if path is not None else self.path_text.value).strip()
        if not target:
            raise ConfigError("no file path given: type one in the 'file' box")
        p = atomic_write_text(target, json.dumps(self._spec.to_dict(), indent=2, sort_keys=True) + "\n")
        self.file_status.value = f"<span style='color:#176f2c'>saved {html.escape(str(p))}</span>"
        return p

    def to_notebook(self) -> str:
        """``spec.to_json()``: the string to give a notebook's spec parameter (also shown in `.notebook_text`).

        The EvoPose2D notebook's `ancestor` parameter takes it (or the genotype string, a preset name, a
        spec file path: `spec_from_text`) as the genotype its evolution starts from. `.notebook_hint` says
        how: in the running notebook ``ancestor = editor.to_notebook()`` and re-run from its config cell; in
        batch `.notebook_command` (``posenas run notebooks/02_evopose2d.ipynb -p ancestor <genotype> --out
        ...``). The evolution takes the genotype only: the scaling multipliers and the other spec fields are
        the run's own (`EvolutionConfig.spec_overrides`)."""
        self._require_valid("send")
        text = self._spec.to_json()
        self.notebook_text.value = text
        geno = genotype_to_str(self._spec.genotype)
        self.notebook_command = f"posenas run {NOTEBOOK} -p {ANCESTOR_PARAMETER} {geno} --out reports/evo-mine"
        code = "<code style='overflow-wrap:anywhere'>{}</code>"
        self.notebook_hint.value = (
            "<div style='font-size:12px;line-height:1.6'><b>use it as the evolution's ancestor</b> "
            f"(parameter <code>{ANCESTOR_PARAMETER}</code> of <code>{NOTEBOOK}</code>):<br>"
            "&bull; in this notebook: " + code.format(f"{ANCESTOR_PARAMETER} = editor.to_notebook()")
            + ", then re-run from the config cell with a new <code>out_dir</code>;<br>"
            "&bull; in batch: " + code.format(html.escape(self.notebook_command)) + "<br>"
            "<span style='color:#666'>(the evolution takes the genotype; input size and scaling are the "
            "run's own)</span></div>")
        return text

    def _to_text(self) -> None:
        self._require_valid("export")
        self.json_text.value = json.dumps(self._spec.to_dict(), indent=1, sort_keys=True)

    def _require_valid(self, what: str) -> None:
        if self._problem:
            raise SpecError(f"cannot {what}: the genotype in the editor is invalid ({self._problem})")

    def _guarded(self, fn) -> Any:
        """Run a button action; expected errors (bad spec / path) go to the validation area, and a
        successful action clears such a banner of an earlier one (leaving only the controls' own problem,
        if they hold an invalid genotype)."""
        try:
            out = fn()
        except (PoseNASError, OSError) as e:
            self.validation.value = self._problem_html(f"{type(e).__name__}: {e}")
            return None
        self.validation.value = self._problem_html(self._problem) if self._problem else ""
        return out

    # ----------------------------------------------------------------------------- editing
    def _scaled(self, genotype, hw, base: EvoPoseSpec) -> EvoPoseSpec:
        if compound_scaling(hw)["phi"] < 0:
            raise SpecError(f"compound scaling only scales up: an input of {hw[0]}x{hw[1]} is below 256x192 "
                            f"((H + W) / 2 = {(hw[0] + hw[1]) / 2:g} < 224); switch 'compound scaling' off")
        return scaled_spec(genotype, hw, stem_channels=base.stem_channels, head_channels=base.head_channels,
                           head_blocks=base.head_blocks, num_joints=base.num_joints, bn=base.bn)

    def _on_control(self, _change=None) -> None:
        if not self._syncing:
            self._update()

    @staticmethod
    def _problem_html(msg: str) -> str:
        return (f"<div style='color:#b00020;background:#fdecea;padding:4px 8px;border-radius:3px'>"
                f"<b>invalid:</b> {html.escape(msg)}</div>")

    def _update(self) -> None:
        """Validate the controls; on success recompute stats, diagram and row labels."""
        with self._lock:
            self.updates += 1
            hw = self.input_hw
            try:
                if self.scaling.value:
                    spec = self._scaled(self.genotype, hw, self._base)
                else:
                    spec = self._base.replace(genotype=self.genotype)
                stride = spec.network_stride
                if hw[0] % stride or hw[1] % stride:
                    raise SpecError(f"input size {hw[0]}x{hw[1]} must be a multiple of the network stride {stride}")
            except SpecError as e:
                self._problem = str(e)
                self.validation.value = self._problem_html(self._problem)
                self.stats.value = (f"<span style='color:#888'>(stats of the last valid spec) "
                                    f"{self._stats_text()}</span>")
                for btn in (self.save_button, self.notebook_button, self.to_json_button, self.latency_button):
                    btn.disabled = True
                return
            self._problem = ""
            self.validation.value = ""
            self.preset.value = next((n for n in EVOPOSE_PRESETS if PRESETS[n].spec == spec), None)
            for btn in (self.save_button, self.notebook_button, self.to_json_button):
                btn.disabled = False
            self.latency_button.disabled = self.latency_task.running
            self._spec = spec
            key = (spec, hw)
            if key not in self._cache:
                self._cache[key] = spec_stats(spec, hw)
                while len(self._cache) > 64:
                    self._cache.popitem(last=False)
            st = self._cache[key]
            os_ = spec.output_stride
            self.stats_dict = {**st, "input_hw": hw, "network_stride": stride, "output_stride": os_,
                               "heatmap_hw": (hw[0] // os_, hw[1] // os_)}
            self.stats.value = self._stats_text()
            self.net_df = network_frame(spec, hw)
            self.block_df = block_frame(spec, hw)
            _copy_figure(self.diagram, network_diagram(self.net_df, blocks=self.block_df),
                         ("xaxis", "yaxis", "yaxis2", "xaxis2", "yaxis3"))
            rows = self.net_df.set_index("stage")
            for m in range(7):
                r = rows.loc[f"module {m + 1}"]
                self.row_info[m].value = (f"<span style='font-size:12px'>{int(r.out_ch)} ch &middot; "
                                          f"{int(r.out_h)}x{int(r.out_w)}</span>")
            self._show_latency()

    def _stats_text(self) -> str:
        s = self.stats_dict
        if not s:
            return ""
        h, w = s["input_hw"]
        return _parts_html([
            f"<b>params</b> {s['params']:,} trainable", f"{s['params_with_bn_stats']:,} with BN statistics",
            f"<b>MACs</b> {s['macs'] / 1e9:.3f} G ({s['macs']:,}) at {h}x{w}",
            f"network stride {s['network_stride']}",
            f"heatmaps {s['heatmap_hw'][0]}x{s['heatmap_hw'][1]} (output stride {s['output_stride']})"])

    # ----------------------------------------------------------------------------- latency
    def measure_latency(self, wait: float | None = None) -> BackgroundTask:
        """Measure the current spec's latency in a background thread (`wait`: join up to that many s)."""
        self._require_valid("measure")
        if not self.latency_task.running:
            self.latency_button.disabled = True
            self.latency_task.widget.layout.display = None
            self.latency_label.value = "<span style='color:#888'>measuring...</span>"
            self._latency_job = (self._spec, self.input_hw)
            self.latency_task.start()
        if wait is not None:
            self.latency_task.join(wait)
        return self.latency_task

    def _measure(self, report, stop) -> dict:
        spec, hw = self._latency_job
        report(0, 2, "building the model")
        model = _cpu_model(spec)
        if stop.is_set():
            return {}
        report(1, 2, f"timing at {hw[0]}x{hw[1]}, {self.latency_threads} thread(s)")
        lat = measure_latency(model, hw, threads=self.latency_threads, min_run_time=self.latency_min_run_time)
        report(2, 2, "done")
        self.latency = {**lat, "spec": spec, "input_hw": hw, "threads": self.latency_threads}
        return self.latency

    def _show_latency(self, finished: bool = False) -> None:
        """The latency line (`finished`: called by the task's on_done, its thread is still alive)."""
        busy = self.latency_task.running and not finished
        self.latency_button.disabled = busy or bool(self._problem)
        if not busy:
            self.latency_task.widget.layout.display = "none"
        lat = self.latency
        if busy:
            return
        if lat is None:
            self.latency_label.value = "<span style='color:#888'>latency not measured</span>"
            return
        current = (lat["spec"], tuple(lat["input_hw"])) == (self._spec, self.input_hw)
        text = (f"<b>latency</b> {lat['latency_ms']:.2f} ms (IQR {lat['iqr_ms']:.2f}, {lat['runs']} runs, "
                f"{lat['threads']} thread, batch 1, {lat['input_hw'][0]}x{lat['input_hw'][1]})")
        self.latency_label.value = text if current else f"<span style='color:#888'>{text}: of an earlier spec</span>"


# ---------------------------------------------------------------------------------------------
# Reading evolution run directories


def _read_json_dict(path: Path) -> dict | None:
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


def _bad_lines_error(tail: JsonlTail) -> DataError | None:
    if not tail.bad_lines:
        return None
    n, msg = tail.bad_lines[0]
    more = f" (and {len(tail.bad_lines) - 1} more lines)" if len(tail.bad_lines) > 1 else ""
    return DataError(f"{tail.path}: line {n} is {msg}; skipped{more}")


def _config_input_hw(config: dict | None) -> tuple[int, int] | None:
    """The input size of an evolution config (keys input_hw / input_size_hw / input_size as [H, W])."""
    if not isinstance(config, dict):
        return None
    for key in ("input_hw", "input_size_hw", "input_size"):
        v = config.get(key)
        if isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(x, int) and x > 0 for x in v):
            return int(v[0]), int(v[1])
    return None


class _RunReader:
    """archive.jsonl + generations.jsonl + config.json of one run directory, read incrementally."""

    def __init__(self, run_dir: str | os.PathLike):
        self.run_dir = Path(run_dir)
        self.archive_tail = JsonlTail(self.run_dir / "archive.jsonl")
        self.gen_tail = JsonlTail(self.run_dir / "generations.jsonl")
        self.config: dict | None = None
        self._config_stamp = None

    def poll(self) -> tuple[bool, list[DataError]]:
        """Read what is new; (anything changed, errors about skipped lines / a bad config)."""
        errs: list[DataError] = []
        changed = False
        cpath = self.run_dir / "config.json"
        try:
            st = os.stat(cpath)
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = None
        if stamp != self._config_stamp:
            try:
                self.config = _read_json_dict(cpath) if stamp else None
                self._config_stamp = stamp
                changed = True
            except DataError as e:
                errs.append(e)
        for tail in (self.archive_tail, self.gen_tail):
            new, reset = tail.poll()
            changed = changed or bool(new) or reset
            e = _bad_lines_error(tail)
            if e is not None:
                errs.append(e)
        return changed, errs


# ---------------------------------------------------------------------------------------------
# EvolutionMonitor


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
        if not (isinstance(poll_seconds, (int, float)) and poll_seconds > 0):
            raise DataError(f"EvolutionMonitor: poll_seconds must be a number > 0, got {poll_seconds!r}")
        self.run_dir = Path(run_dir)
        self.poll_seconds = float(poll_seconds)
        self.reader = _RunReader(self.run_dir)
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
        self.refresh_button = W.Button(description="refresh", icon="refresh", layout=W.Layout(width="auto"))
        self.live_button = W.ToggleButton(value=False, description="live", icon="eye",
                                          tooltip=f"poll the run directory every {self.poll_seconds:g} s",
                                          layout=W.Layout(width="auto"))
        self.refresh_button.on_click(lambda _b: self.refresh())
        self.live_button.observe(self.errors.wrap(self._on_live, "starting / stopping the polling"), names="value")
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
        self._source = str(self.run_dir)
        self._poller = Poller(self._poll, self.poll_seconds, self.errors, name=f"reading {self.run_dir}")
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
                _copy_figure(self.figure, evolution_figure(self.archive, self.generations))
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
        return _parts_html(parts) + tail


# ---------------------------------------------------------------------------------------------
# FrontExplorer


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
        self.readers = {n: _RunReader(d) for n, d in zip(names, self.run_dirs)}
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
            _copy_figure(self.figure, self._fresh(), ("xaxis", "yaxis"))
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
            self.editor.set_spec(spec, _config_input_hw(self.readers[run].config))
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
