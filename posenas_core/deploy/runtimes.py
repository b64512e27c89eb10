"""Runtimes: run a pose network eager, through ONNX Runtime or torch.compile; "auto" = the fastest that passes
parity on this machine.

    runner = make_runner(model, "ort", (256, 192), threads=1)   # an nn.Module: runner(x (B,3,H,W)) -> heatmaps
    pick = choose_runtime(model, (256, 192))                    # {"runtime", "latency_ms", "parity", "rejected", ...}
    runtime_available("compiled")                               # None, or why it cannot run here

A runner has no parameters; its forward takes (B, 3, H, W) float32 and returns float32 heatmaps (B, K, H/s, W/s),
both on the CPU, so `train.predict.predict` runs it unchanged. It keeps `spec`, `output_stride`, `runtime`,
`bf16`, `parity` (max |runner - eager fp32| on a seeded batch) and is a snapshot of the weights when built.

- eager: the model itself (fp32, NCHW): the baseline.
- ort: the model exported (`onnx_export.export_onnx`, its fast form: `deploy.rewrites`) into
  $POSENAS_CACHE_DIR/onnx (default ~/.cache/posenas), named by a hash of spec, weights and input size; an ONNX
  Runtime session with `threads` intra-op threads. Only the exported input size is accepted.
- compiled: `torch.compile` (inductor, frozen weights) of an eval-mode channels_last copy, run under no_grad;
  compiled on its first call (in `make_runner`, under `threads` torch threads), again once for a new batch
  size. Each BatchNorm right after a ConvTranspose2d is folded into it first (torch 2.13's frozen folding
  scales the wrong axis of a transposed conv with as many inputs as outputs). bf16="auto": bf16 autocast only
  where the CPU has native bf16 (`machine.cpu_info`), it passes the bf16 parity and it times faster than fp32.

Parity: fp32 runtimes within PARITY_ATOL (1e-4) absolute of eager fp32; bf16 within BF16_RTOL (5%) of the peak
|value| of the eager heatmaps, at least 1 (a trained network's target peak). bf16 rounds to 8 mantissa bits,
~0.4% per operation, and a deep network with normalised activations adds 2-3% of the peak;
benchmarks/deploy_accuracy.py measures what that does to AP.
A runtime that fails parity is an error (`make_runner`) or rejected (`choose_runtime`). int8 ("int8",
`deploy.quantize`) is not judged by parity but by AP, and "auto" never picks it.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import os
import shutil
import warnings
from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn

from posenas_core.errors import ConfigError

__all__ = ["RUNTIMES", "FP32_RUNTIMES", "RUNTIME_CHOICES", "BF16_RTOL", "runtime_available", "make_runner",
           "choose_runtime", "runner_for", "onnx_cache_dir"]

RUNTIMES = ("eager", "ort", "compiled", "int8")
FP32_RUNTIMES = ("eager", "ort", "compiled")   # "auto"'s candidates: int8 is judged by AP (deploy.quantize)
RUNTIME_CHOICES = ("auto", *RUNTIMES)
BF16_RTOL = 0.05            # bf16 parity: max abs difference <= 5% of the eager heatmaps' peak |value|
PARITY_BATCH = 1            # the parity batch: batch 1, as the latency, so a compiled graph is built once
RUNNER_CACHE = 4            # built runners kept per process (a compiled one costs seconds to a minute to build)
_RUNNERS: OrderedDict = OrderedDict()
_CHOICES: dict = {}         # choose_runtime's reports in this process, by (model key, input_hw, threads, ...)
_BF16: dict = {}            # the compiled runtime's measured bf16 decisions, by the same keys


def _check_name(runtime, allowed=RUNTIME_CHOICES) -> str:
    if runtime not in allowed:
        raise ConfigError(f"runtime {runtime!r} is unknown; choose one of {list(allowed)}")
    return runtime


def runtime_available(name: str) -> str | None:
    """None when runtime `name` can run here, else the reason it cannot (a package or a compiler missing)."""
    _check_name(name, RUNTIMES)
    if name in ("ort", "int8"):
        missing = [p for p in ("onnx", "onnxscript", "onnxruntime") if importlib.util.find_spec(p) is None]
        if missing:
            return (f"{', '.join(missing)} not installed (ONNX export and ONNX Runtime need the deploy extra: "
                    f"pip install -e '.[deploy]')")
    if name == "compiled":
        import torch._dynamo

        if not torch._dynamo.is_dynamo_supported():
            return "torch.compile does not support this Python version"
        try:
            from torch._inductor.cpp_builder import get_cpp_compiler
        except ImportError:                 # another torch layout: look for a compiler on the PATH
            found = any(shutil.which(c) for c in (os.environ.get("CXX") or "g++", "c++", "clang++"))
        else:
            try:
                found = bool(get_cpp_compiler())
            except Exception:               # inductor's InvalidCxxCompiler
                found = False
        if not found:
            return "torch.compile needs a C++ compiler (g++ or clang++; set CXX) and none was found"
    return None


def onnx_cache_dir() -> Path:
    """Where the ort runtime keeps its exports: $POSENAS_CACHE_DIR/onnx, else ~/.cache/posenas/onnx."""
    root = os.environ.get("POSENAS_CACHE_DIR") or Path.home() / ".cache" / "posenas"
    return Path(root) / "onnx"


def _model_key(model: nn.Module) -> str:
    """sha256 of the model's spec (or class) and every state-dict tensor (name, dtype, shape, bytes)."""
    h = hashlib.sha256()
    spec = getattr(model, "spec", None)
    h.update((spec.to_json() if spec is not None else type(model).__qualname__).encode())
    for name, t in model.state_dict().items():
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _output_stride(model: nn.Module):
    for obj in (model, getattr(model, "spec", None)):
        s = getattr(obj, "output_stride", None)
        if isinstance(s, int) and not isinstance(s, bool):
            return s
    return None


def _threads(n: int):
    from posenas_core.eval.profiler import num_threads

    return num_threads(int(n))


def _eager_out(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """`model(x)` in eval mode, fp32, no grad; each module's training flag restored."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            return model(x).float()
    finally:
        for m, t in flags:
            m.training = t


class Runner(nn.Module):
    """A network behind a runtime: no parameters; forward (B, 3, H, W) float32 -> (B, K, h, w) float32 (CPU)."""

    def __init__(self, model: nn.Module, runtime: str, input_hw):
        super().__init__()
        self.runtime, self.input_hw = runtime, tuple(int(v) for v in input_hw)
        self.spec, self.output_stride = getattr(model, "spec", None), _output_stride(model)
        self.parity: float | None = None        # max |runner - eager fp32| on the parity batch
        self.bf16 = False

    def extra_repr(self) -> str:
        return f"runtime={self.runtime!r}, input_hw={self.input_hw}, bf16={self.bf16}"


def _cached_export(model: nn.Module, input_hw) -> Path:
    """The model's fp32 ONNX export at `input_hw` in `onnx_cache_dir()`, named by a hash of spec, weights and
    size and by the CPU's channel block; exported on first use (the ort runtime's file, and the int8 runtime's
    starting point)."""
    from posenas_core.deploy.onnx_export import export_onnx
    from posenas_core.deploy.rewrites import nchwc_block

    h, w = input_hw     # export_onnx's default form, whose grouped convs depend on the CPU's channel block
    path = onnx_cache_dir() / f"{_model_key(model)[:24]}-{h}x{w}-fast{nchwc_block()}.onnx"
    if not path.is_file():          # export_onnx writes atomically: a present file is complete
        path.parent.mkdir(parents=True, exist_ok=True)
        export_onnx(model, path, (h, w))
    return path


class OrtRunner(Runner):
    """ONNX Runtime over the model's export (fixed H x W, dynamic batch)."""

    def __init__(self, model: nn.Module, input_hw, threads: int):
        super().__init__(model, "ort", input_hw)
        from posenas_core.deploy.onnx_export import ort_session

        self.path = _cached_export(model, self.input_hw)
        self._session = ort_session(self.path, threads=int(threads))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != self.input_hw:
            h, w = self.input_hw
            raise ConfigError(f"this {self.runtime} runner was exported at {h}x{w}; got an input of "
                              f"{x.shape[-2]}x{x.shape[-1]}: make a runner for that size")
        images = x.detach().to("cpu", torch.float32).contiguous().numpy()
        return torch.from_numpy(self._session.run(["heatmaps"], {"images": images})[0])


def _fold_deconv_bn(model: nn.Module) -> None:
    """Fold each BatchNorm2d that directly follows a ConvTranspose2d in an nn.Sequential into the deconv (in
    place; the BN becomes Identity). Transposed weights are (in, out / groups, k, k): scale along axis 1 per group."""
    from posenas_core.deploy.rewrites import _bn_affine, _foldable_bn, _slots, _take_next

    for parent, names, i, conv in _slots(model):
        bn = _take_next(parent, names, i + 1, _foldable_bn) if isinstance(conv, nn.ConvTranspose2d) else None
        if bn is None:
            continue
        with torch.no_grad():
            s, shift = _bn_affine(bn, conv.out_channels, conv.weight)
            g, (cin, cout_g) = conv.groups, conv.weight.shape[:2]
            conv.weight.mul_(s.view(g, 1, cout_g).expand(g, cin // g, cout_g).reshape(cin, cout_g, 1, 1))
            bias = shift if conv.bias is None else conv.bias * s + shift
            conv.bias = nn.Parameter(bias.detach().clone(), requires_grad=False)


RECOMPILE_LIMIT = 64        # compiled models per forward code (one per preset / genotype compiled in a process)


def _allow_many_compiled_models() -> None:
    """Every model of a family shares its forward code, and dynamo keeps only `recompile_limit` (8) compiled
    versions of a code object, then silently runs it eager: raise the limit, and make hitting it an error (a
    runner labelled "compiled" that runs eager would make its latency a lie)."""
    import torch._dynamo

    cfg = torch._dynamo.config
    cfg.recompile_limit = max(cfg.recompile_limit, RECOMPILE_LIMIT)
    cfg.fail_on_recompile_limit_hit = True


class CompiledRunner(Runner):
    """torch.compile (inductor, freezing) of an eval-mode, channels_last copy; bf16 autocast when `bf16`."""

    def __init__(self, model: nn.Module, input_hw, bf16: bool = False, compiled: tuple | None = None):
        super().__init__(model, "compiled", input_hw)
        if compiled is None:
            net = copy.deepcopy(model).eval().requires_grad_(False)
            _fold_deconv_bn(net)
            _allow_many_compiled_models()
            compiled = (torch.compile(net.to(memory_format=torch.channels_last), options={"freezing": True}),)
        self._compiled = compiled            # a tuple: no submodule, so no parameters
        self.bf16 = bool(bf16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.detach().to("cpu", torch.float32).contiguous(memory_format=torch.channels_last)
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            return self._compiled[0](x).float()


def _parity(model: nn.Module, runner: nn.Module, input_hw, seed: int = 0, x=None) -> tuple[float, float]:
    """(max |runner - eager fp32|, peak |eager|) on `x`, default a seeded random batch of PARITY_BATCH at
    `input_hw`."""
    if x is None:
        x = torch.randn(PARITY_BATCH, 3, *input_hw, generator=torch.Generator().manual_seed(seed))
    want = _eager_out(model, x)
    with torch.no_grad():
        got = runner(x).float()
    if got.shape != want.shape:
        return float("inf"), float(want.abs().max())
    return float((got - want).abs().max()), float(want.abs().max())


def _passes(diff: float, peak: float, bf16: bool, int8: bool = False) -> bool:
    from posenas_core.deploy.onnx_export import PARITY_ATOL

    # int8 is judged by AP, not here; bf16 by its share of the heatmap scale: the peak, at least 1 (a trained
    # network's target peak), so that a weak random batch does not make the bound a rounding-size one
    return int8 or diff <= (BF16_RTOL * max(peak, 1.0) if bf16 else PARITY_ATOL)


def _tolerance_text(bf16: bool) -> str:
    from posenas_core.deploy.onnx_export import PARITY_ATOL

    return f"{BF16_RTOL:.0%} of the heatmap peak (at least 1; bf16)" if bf16 else f"{PARITY_ATOL:g} absolute (fp32)"


def _latency(runner: nn.Module, input_hw, threads: int, min_run_time: float) -> float:
    from posenas_core.eval.profiler import measure_latency

    return measure_latency(runner, input_hw, threads=threads, min_run_time=min_run_time, warmup=2)["latency_ms"]


def _check_cpu(model: nn.Module, runtime: str) -> None:
    p = next(iter(model.parameters()), None)
    if runtime in ("ort", "compiled") and p is not None and p.device.type != "cpu":
        raise ConfigError(f"runtime {runtime!r} asked for a model on {p.device}: runtimes ort/compiled are CPU "
                          f"paths; on CUDA use eager")


def _compiled(model, hw, threads, bf16, min_run_time) -> CompiledRunner:
    """The compiled runner; bf16 "auto" on a native-bf16 CPU: bf16 if it passes parity and times faster than fp32
    (measured once per model, input size and threads in this process; `runner.bf16_choice` says what was seen)."""
    from posenas_core.machine import cpu_info

    native = bool(cpu_info()["native_bf16"])
    key = (_model_key(model), hw, threads)
    if bf16 != "auto" or not native or key in _BF16:
        use = _BF16[key]["bf16"] if bf16 == "auto" and key in _BF16 else bf16 is True
        runner = CompiledRunner(model, hw, bf16=use)
        runner.bf16_choice = _BF16.get(key, {"bf16": use, "native_bf16": native, "measured": False})
        return runner
    fp32 = CompiledRunner(model, hw, bf16=False)
    half = CompiledRunner(model, hw, bf16=True, compiled=fp32._compiled)   # one compiled module, two graphs
    diff, peak = _parity(model, half, hw)
    ms = {"fp32": _latency(fp32, hw, threads, min_run_time),
          "bf16": _latency(half, hw, threads, min_run_time) if _passes(diff, peak, True) else None}
    use = ms["bf16"] is not None and ms["bf16"] < ms["fp32"]
    _BF16[key] = {"bf16": use, "native_bf16": True, "measured": True, "latency_ms": ms,
                  "bf16_diff_of_peak": diff / max(peak, 1e-12)}
    runner = half if use else fp32
    runner.bf16_choice = _BF16[key]
    return runner


def _build(model, runtime, hw, threads, bf16, min_run_time=0.3, int8=None) -> Runner:
    """A runner of a CPU runtime, run once: `.parity` (max abs difference) and `.parity_ok` set. The last
    RUNNER_CACHE runners built in this process are reused for the same weights, runtime, size, threads and bf16
    (int8: and calibration). int8: (calibration crops, method); its parity is measured on the first crops."""
    x = None
    if runtime == "int8":
        import numpy as np

        from posenas_core.deploy.quantize import _as_batches, _digest

        batches = _as_batches(int8[0])
        x = torch.from_numpy(np.concatenate(batches[:4])[:4])    # each batch holds at least one crop
        int8_key = (_digest(batches), int8[1])
    key = (_model_key(model), runtime, hw, threads, bf16, int8_key if runtime == "int8" else None)
    if key in _RUNNERS:
        _RUNNERS.move_to_end(key)
        return _RUNNERS[key]
    if runtime == "int8":
        from posenas_core.deploy.quantize import Int8Runner

        runner = Int8Runner(model, hw, threads, batches, method=int8[1])
    elif runtime == "ort":
        runner = OrtRunner(model, hw, threads)
    else:
        runner = _compiled(model, hw, threads, bf16, min_run_time)
    diff, peak = _parity(model, runner, hw, x=x)
    runner.parity, runner.parity_ok = diff, _passes(diff, peak, runner.bf16, runtime == "int8")
    runner.parity_of_peak = diff / max(peak, 1e-12)
    _RUNNERS[key] = runner
    while len(_RUNNERS) > RUNNER_CACHE:
        _RUNNERS.popitem(last=False)
    return runner


def choose_runtime(model: nn.Module, input_hw, *, threads: int = 1, candidates=FP32_RUNTIMES, bf16="auto",
                   min_run_time: float = 0.3) -> dict:
    """Build each available candidate, check its parity against eager fp32, time its batch-1 latency (median of
    `min_run_time` s, `threads` threads) and return {"runtime": the fastest passing, "latency_ms": {name: ms},
    "parity": {name: max abs diff}, "rejected": {name: reason}, "cpu": CPU model, "native_bf16", "bf16" (the
    compiled runtime's), "input_hw", "threads"}. Cached in this process per (spec and weights, input_hw, threads)."""
    report, _ = _choose(model, input_hw, threads, candidates, bf16, min_run_time)
    return copy.deepcopy(report)


def _choose(model, input_hw, threads, candidates, bf16, min_run_time):
    from posenas_core.machine import cpu_info

    hw = tuple(int(v) for v in input_hw)
    if "int8" in candidates:
        raise ConfigError("choose_runtime compares runtimes by parity with fp32, which int8 cannot meet: judge int8 "
                          "by AP (deploy.quantize.int8_check); candidates allowed: " + str(list(FP32_RUNTIMES)))
    candidates = tuple(_check_name(c, FP32_RUNTIMES) for c in candidates) or ("eager",)
    key = (_model_key(model), hw, int(threads), candidates, bf16)
    if key in _CHOICES:
        return _CHOICES[key], {}
    info = cpu_info()
    report = {"runtime": None, "latency_ms": {}, "parity": {}, "rejected": {}, "cpu": info["model"],
              "native_bf16": info["native_bf16"], "bf16": None, "input_hw": list(hw), "threads": int(threads)}
    runners = {}
    with _threads(threads):
        for name in candidates:
            reason = runtime_available(name)
            if reason is None and name != "eager":
                try:
                    _check_cpu(model, name)
                    r = _build(model, name, hw, threads, bf16, min_run_time)
                except ConfigError as err:
                    reason = str(err)
                else:
                    report["parity"][name] = r.parity
                    reason = None if r.parity_ok else (f"parity {r.parity:.3g} above {_tolerance_text(r.bf16)}")
                    report["bf16"] = r.bf16 if name == "compiled" else report["bf16"]
            elif reason is None:
                r = model
                report["parity"][name] = 0.0
            if reason is not None:
                report["rejected"][name] = reason
                continue
            runners[name] = r
            report["latency_ms"][name] = _latency(r, hw, threads, min_run_time)
    if not runners:
        raise ConfigError(f"no runtime of {list(candidates)} can run here: {report['rejected']}")
    report["runtime"] = min(report["latency_ms"], key=report["latency_ms"].get)
    _CHOICES[key] = report
    return report, runners


def make_runner(model: nn.Module, runtime: str, input_hw, *, threads: int = 1, bf16="auto",
                fallback: bool = False, calibration=None, int8_method: str = "minmax") -> nn.Module:
    """The runner of `model` under `runtime` ("auto", "eager", "ort", "compiled", "int8") at `input_hw` (H, W).

    eager returns the model itself in eval mode. ort / compiled are built, run once and checked for parity
    (ConfigError naming the difference and the tolerance when they fail); "auto" is `choose_runtime`'s pick
    (its report in `runner.choice`). A runtime that is not available here: ConfigError naming why and the
    available ones, or, with `fallback=True`, the eager model and a warning. ConfigError for an unknown
    runtime, and for ort / compiled on a model whose weights are on a GPU. int8 (`deploy.quantize`) needs
    `calibration` ((N, 3, H, W) crops of real data); its parity is reported, not checked: its accuracy is
    AP's question (`deploy.quantize.int8_check`)."""
    runner = runner_for(model, runtime, input_hw, threads=threads, bf16=bf16, fallback=fallback,
                        calibration=calibration, int8_method=int8_method)[0]
    return runner.eval() if runner is model else runner


def runner_for(model: nn.Module, runtime: str, input_hw, *, threads: int | None = None, bf16="auto",
               fallback: bool = False, calibration=None, int8_method: str = "minmax") -> tuple[nn.Module, dict]:
    """(`make_runner`'s runner, info for a result dict: {"runtime": what runs, "runtime_warning" on a fallback,
    "runtime_choice": choose_runtime's report for "auto", "bf16" for compiled}). threads None: torch's count.
    Eager gives the model itself, its training flag untouched (`predict` and `measure_latency` set eval mode)."""
    _check_name(runtime)
    threads = torch.get_num_threads() if threads is None else int(threads)
    if threads < 1:
        raise ConfigError(f"threads must be >= 1, got {threads}")
    hw = tuple(int(v) for v in input_hw)
    p = next(iter(model.parameters()), None)
    if runtime == "auto" and p is not None and p.device.type != "cpu":
        runtime = "eager"                                   # on a GPU, eager is the only runtime offered
    _check_cpu(model, runtime)
    info: dict = {"runtime": runtime}
    if runtime == "auto":
        report, runners = _choose(model, hw, threads, FP32_RUNTIMES, bf16, 0.3)
        name = report["runtime"]
        runner = runners[name] if name in runners else runner_for(model, name, hw, threads=threads, bf16=bf16)[0]
        info.update(runtime=name, runtime_choice=copy.deepcopy(report))
        if isinstance(runner, Runner):
            runner.choice = info["runtime_choice"]
    elif runtime != "eager" and (reason := runtime_available(runtime)) is not None:
        ok = [r for r in RUNTIMES if runtime_available(r) is None]
        if not fallback:
            raise ConfigError(f"runtime {runtime!r} is not available here: {reason}; available: {ok}")
        info.update(runtime="eager", runtime_warning=f"runtime {runtime!r} is not available ({reason}); ran eager")
        warnings.warn(info["runtime_warning"], RuntimeWarning, stacklevel=2)
        runner = model
    elif runtime == "eager":
        runner = model
    else:
        if runtime == "int8" and calibration is None:
            raise ConfigError("runtime 'int8' needs calibration crops of real data (deploy.quantize.calibration_crops;"
                              " on the command line: --data): quantization ranges come from them")
        with _threads(threads):
            runner = _build(model, runtime, hw, threads, bf16, int8=(calibration, int8_method))
        if not runner.parity_ok:
            raise ConfigError(f"runtime {runtime!r} fails parity on this model: max |heatmap difference| "
                              f"{runner.parity:.3g} above {_tolerance_text(runner.bf16)}; use eager")
        info["parity_of_peak"] = runner.parity_of_peak
    if isinstance(runner, CompiledRunner):
        info["bf16"] = runner.bf16
    return runner, info
