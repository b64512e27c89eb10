"""GenotypeEditor: edit an EvoPose2D genotype and see its cost and network.

    ed = GenotypeEditor("evopose2d-s")    # a spec, a preset name, a genotype string or a spec JSON
    ed.spec, ed.valid, ed.stats_dict      # the last valid spec; params / MACs at the input size

Controls: one row per module (kernel {3, 5}; blocks 1-4; channels/8 in 1..the ancestor's; stride fixed
1, 2, 2, 2 for modules 1-4 (disabled), 1 or 2 for modules 5-7), the input size (`input_hw`, else a preset's
own size, else 256x192), the preset list (the preset the current spec is, blank for any other) and a
compound-scaling switch (on: the spec is ``scaled_spec(genotype, input size)``, the identity at 256x192,
refused below it; off, the default unless a scaled spec such as evopose2d-m is loaded: the loaded spec's
multipliers are kept).

Every edit re-validates: an invalid genotype (e.g. two stride-2 modules among 5-7) shows its SpecError in
the validation area and keeps the last valid spec (`.valid` is False until the edit is undone). The stats
line is `posenas_core.eval.profiler.spec_stats` (params, with BN statistics, MACs; a model on the meta
device: no weights, the global RNG untouched); "measure latency" times `profiler.timing_model` with
`measure_latency` (batch 1, 1 thread, runtime `latency_runtime`: eager, ort, compiled or auto) in a
background thread. The diagram
(`lab.evo_figures.network_diagram`) shows stem, modules 1-7 and head, and below them every MBConv block
(`lab.evo_pictures.block_traces`); it fills the output's width (`lab._util.fit_width`).

Text: "load" reads what `spec_from_text` reads (a spec JSON, a genotype string, a preset name or a spec
file path), "to JSON" writes the current spec there; a file path + "save" / "load file"; "send to
notebook" puts ``spec.to_json()`` in `.notebook_text` and in `.notebook_hint` how to start the EvoPose2D
notebook's evolution from it (its `ancestor` parameter reads it with `spec_from_text`). A button's
expected error (bad JSON, a missing file) shows in the validation area until the next successful action.
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
import plotly.graph_objects as go

from posenas_core.errors import ConfigError, PoseNASError, SpecError
from posenas_core.eval import measure_latency, spec_stats, timing_model
from posenas_core.models import PRESETS, load_spec
from posenas_core.runs import atomic_write_text
from posenas_core.spaces.evopose import (FIXED_STRIDES, KERNELS, MAX_BLOCKS, MAX_CH8, EvoPoseSpec, compound_scaling,
                                         genotype_from_str, genotype_to_str, scaled_spec)

from lab._util import BackgroundTask, DisplayMixin, ErrorArea, fit_width, parts_html, sync_figure
from lab.evo_figures import network_diagram, network_frame
from lab.evo_pictures import block_frame

__all__ = ["GenotypeEditor", "spec_from_text", "NOTEBOOK", "ANCESTOR_PARAMETER"]

EVOPOSE_PRESETS = [name for name, p in PRESETS.items() if isinstance(p.spec, EvoPoseSpec)]
SCALING_SIZES = ((256, 192), (384, 288), (512, 384))   # sizes tried when a loaded spec is compound-scaled
_GENOTYPE_RE = re.compile(r"^k\d+b\d+c\d+s\d+(-k\d+b\d+c\d+s\d+)*$")
NOTEBOOK = "notebooks/02_evopose2d.ipynb"      # the notebook whose parameter "send to notebook" fills
ANCESTOR_PARAMETER = "ancestor"                # its parameter: the evolution's starting genotype


def spec_from_text(text: str) -> EvoPoseSpec:
    """An EvoPose2D spec from a genotype string ('k3b1c2s1-k3b2c3s2-...') or what `load_spec` reads (a
    preset name, a spec JSON string, a spec file path). SpecError / ConfigError saying what is accepted
    otherwise, SpecError for a spec of another kind."""
    t = str(text).strip()
    if not t:
        raise SpecError("no spec given: a spec JSON, a genotype string (k3b1c2s1-...), a preset name or a spec "
                        "file path")
    spec = EvoPoseSpec(genotype=genotype_from_str(t)) if _GENOTYPE_RE.match(t) else load_spec(t)
    if not isinstance(spec, EvoPoseSpec):
        raise SpecError(f"{t[:60]!r} is a spec of kind {getattr(spec, 'KIND', type(spec).__name__)!r}, not an "
                        f"EvoPose2D genotype; EvoPose2D presets: {EVOPOSE_PRESETS}")
    return spec


class GenotypeEditor(DisplayMixin):
    """Edit an EvoPose2D genotype with live cost and a network diagram (see the module docstring).

    Attributes: `.widget`; `.kernel`, `.blocks`, `.ch8`, `.stride` (7 controls each, module order);
    `.height`, `.width` (input size), `.scaling` (Checkbox); `.preset` + `.preset_button`;
    `.validation` (HTML: the SpecError text of an invalid edit, or a load error); `.stats` (HTML) and
    `.stats_dict` ({"params", "params_with_bn_stats", "macs", "input_hw", "network_stride",
    "output_stride", "heatmap_hw"} of the current valid spec); `.latency` (the last measurement:
    {"latency_ms", "iqr_ms", "runs", "runtime", "spec", "input_hw"} or None), `.latency_button`, `.latency_task`
    (BackgroundTask); `.diagram` (go.FigureWidget), `.net_df` (its `network_frame`); `.json_text`
    (Textarea), `.load_button`, `.to_json_button`; `.path_text`, `.save_button`, `.load_file_button`;
    `.notebook_button`, `.notebook_text`, `.notebook_hint` (HTML), `.notebook_command` (the
    `posenas run ... -p ancestor ...` line of the last send); `.block_df` (the diagram's
    `lab.evo_pictures.block_frame`); `.errors` (ErrorArea: unexpected errors of callbacks).
    """

    def __init__(self, spec: EvoPoseSpec | str | None = None, *, input_hw: Sequence[int] | None = None,
                 latency_min_run_time: float = 1.0, latency_threads: int = 1, latency_runtime: str = "eager",
                 title: str = "GenotypeEditor"):
        self.latency_min_run_time = float(latency_min_run_time)
        self.latency_runtime = latency_runtime
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
            sync_figure(self.diagram, network_diagram(self.net_df, blocks=self.block_df),
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
        return parts_html([
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
        model = timing_model(spec)
        if stop.is_set():
            return {}
        report(1, 2, f"timing at {hw[0]}x{hw[1]}, {self.latency_threads} thread(s)")
        lat = measure_latency(model, hw, threads=self.latency_threads, min_run_time=self.latency_min_run_time,
                              runtime=self.latency_runtime)
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
                f"{lat['threads']} thread, batch 1, {lat['input_hw'][0]}x{lat['input_hw'][1]}, {lat['runtime']})")
        self.latency_label.value = text if current else f"<span style='color:#888'>{text}: of an earlier spec</span>"
