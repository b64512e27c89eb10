"""Model cost: parameters, MACs (FlopCounterMode) and CPU latency (torch.utils.benchmark).

Conventions
-----------
- params: ``sum(p.numel() for p in model.parameters())``: every learnable tensor, counted once
  even when shared, whether or not ``requires_grad`` is set (freezing a layer for fine-tuning does
  not change the model's size). This is PyTorch's usual figure and Keras' "trainable params".
- params_with_bn_stats: params + the ``running_mean`` and ``running_var`` buffers of normalisation
  layers that track running statistics. ``num_batches_tracked`` is NOT counted: Keras'
  ``count_params()`` (used for the EvoPose2D paper's figures) counts BN's moving mean and variance
  only, and has no such counter.
- MACs: one multiply-add = 1. `torch.utils.flop_counter.FlopCounterMode` counts a multiply-add as
  2 FLOPs, so MACs = FLOPs / 2. It counts convolutions (including grouped / depthwise and
  transposed: ``H_in * W_in * k_h * k_w * C_in * C_out / groups`` per image for a transposed
  conv), matmuls / linear layers and attention, but not BN, activations, pooling, elementwise
  multiplies (SE gates) or residual adds, nor biases.
- Latency: batch-1 forward in eval mode under ``torch.no_grad()``, fp32, timed by
  ``torch.utils.benchmark.Timer.blocked_autorange`` after warm-up calls that are not timed; the
  median and inter-quartile range over timed blocks are reported. The thread count is set for the
  measurement and restored afterwards. On a shared machine compare only numbers taken in the same
  run; 1 thread is the most reproducible.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
from torch import nn
from torch.utils import benchmark
from torch.utils.flop_counter import FlopCounterMode

from posenas_core.errors import ConfigError

__all__ = [
    "MACS_CONVENTION", "count_params", "count_macs", "measure_latency", "profile_model", "spec_stats",
    "timing_model", "num_threads",
]

MACS_CONVENTION = ("MACs: one multiply-add = 1 (FlopCounterMode FLOPs / 2); convolutions, matmuls and "
                   "transposed convs only (no BN, activations, elementwise)")
BN_STAT_BUFFERS = ("running_mean", "running_var")


def count_params(model: nn.Module) -> dict[str, int]:
    """{"params": learnable parameters, "params_with_bn_stats": + BN running mean / var}."""
    params = sum(p.numel() for p in model.parameters())
    stats = 0
    for m in model.modules():
        for name, buf in m.named_buffers(recurse=False):
            if name in BN_STAT_BUFFERS and buf is not None:
                stats += buf.numel()
    return {"params": int(params), "params_with_bn_stats": int(params + stats)}


def _check_hw(input_size_hw: Sequence[int]) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in input_size_hw)
    except (TypeError, ValueError):
        raise ConfigError(f"input_size_hw must be (H, W), got {input_size_hw!r}") from None
    if h <= 0 or w <= 0:
        raise ConfigError(f"input_size_hw must be positive, got {(h, w)}")
    return h, w


def _example_input(model: nn.Module, h: int, w: int, batch: int, in_channels: int) -> torch.Tensor:
    p = next(iter(model.parameters()), None)
    device = p.device if p is not None else torch.device("cpu")
    dtype = p.dtype if p is not None and p.is_floating_point() else torch.float32
    return torch.zeros(batch, in_channels, h, w, device=device, dtype=dtype)


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode and no_grad for the block; restore each module's training flag after."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for m, t in flags:
            m.training = t


@contextlib.contextmanager
def num_threads(threads: int) -> Iterator[None]:
    """torch's intra-op thread count set to `threads` inside the block, restored after."""
    prev = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(prev)


def count_macs(model: nn.Module, input_size_hw: Sequence[int] = (256, 192), batch: int = 1,
               in_channels: int = 3) -> int:
    """MACs of one forward pass per image (FlopCounterMode total / 2 / batch), eval mode."""
    h, w = _check_hw(input_size_hw)
    if batch < 1:
        raise ConfigError(f"batch must be >= 1, got {batch}")
    x = _example_input(model, h, w, batch, in_channels)
    counter = FlopCounterMode(display=False)
    with _eval_mode(model), counter:
        model(x)
    return int(counter.get_total_flops() // 2 // batch)


def measure_latency(model: nn.Module, input_size_hw: Sequence[int] = (256, 192), threads: int = 1,
                    min_run_time: float = 1.0, warmup: int = 3, in_channels: int = 3, runtime: str = "eager") -> dict:
    """Batch-1 CPU latency: {"latency_ms": median, "iqr_ms", "runs": timed forward calls, "runtime"}.

    `runtime` ("eager", "ort", "compiled", "auto", "int8": `deploy.runtimes`) times the model's runner instead,
    built first (export / compile and a parity check, not timed); "auto" also gives "runtime_choice"; int8 is
    calibrated on random crops (its speed; "int8_note" says so)."""
    h, w = _check_hw(input_size_hw)
    if threads < 1:
        raise ConfigError(f"threads must be >= 1, got {threads}")
    if not (min_run_time > 0):
        raise ConfigError(f"min_run_time must be > 0 seconds, got {min_run_time}")
    if warmup < 0:
        raise ConfigError(f"warmup must be >= 0, got {warmup}")
    info = {"runtime": "eager"}
    if runtime != "eager":
        from posenas_core.deploy.runtimes import runner_for

        cal = None
        if runtime == "int8":      # the weights are what they are: random crops give int8's speed, not its accuracy
            cal = torch.randn(16, in_channels, h, w, generator=torch.Generator().manual_seed(0))
        model, info = runner_for(model, runtime, (h, w), threads=threads, calibration=cal)
        if runtime == "int8":
            info["int8_note"] = ("calibrated on random crops: the latency holds, the accuracy is untested (posenas "
                                 "eval --runtime int8 calibrates on the data and compares AP with fp32)")
    x = _example_input(model, h, w, 1, in_channels)
    with _eval_mode(model), num_threads(threads):
        for _ in range(warmup):
            model(x)
        timer = benchmark.Timer(stmt="model(x)", globals={"model": model, "x": x}, num_threads=threads)
        m = timer.blocked_autorange(min_run_time=min_run_time)
    return {"latency_ms": float(m.median * 1e3), "iqr_ms": float(m.iqr * 1e3),
            "runs": int(len(m.times) * m.number_per_run), **info}


def profile_model(model: nn.Module, input_size_hw: Sequence[int] = (256, 192), threads: int = 1,
                  latency: bool = True, min_run_time: float = 1.0, in_channels: int = 3, runtime: str = "eager") -> dict:
    """Params, MACs and (optionally) latency of a model at one input size.

    Returns a JSON-ready dict: params, params_with_bn_stats, macs, gmacs, latency_ms, latency_iqr_ms
    (None when latency=False), runtime (the one timed, `measure_latency`: "auto" adds runtime_choice, compiled
    bf16; None when latency=False), input "HxW", input_hw [H, W], threads, macs_convention.
    """
    h, w = _check_hw(input_size_hw)
    out: dict = dict(count_params(model))
    macs = count_macs(model, (h, w), in_channels=in_channels)
    out.update(macs=macs, gmacs=macs / 1e9, latency_ms=None, latency_iqr_ms=None, runtime=None)
    if latency:
        lat = measure_latency(model, (h, w), threads=threads, min_run_time=min_run_time, in_channels=in_channels,
                              runtime=runtime)
        out.update(latency_ms=lat.pop("latency_ms"), latency_iqr_ms=lat.pop("iqr_ms"))
        out.update({k: v for k, v in lat.items() if k.startswith("runtime") or k in ("bf16", "int8_note")})
    out.update(input=f"{h}x{w}", input_hw=[h, w], threads=int(threads), macs_convention=MACS_CONVENTION)
    return out


def _meta_model(spec) -> nn.Module:
    """The network of a registered spec built on the meta device: no memory, the global RNG untouched.
    (`models.registry` is imported here, not at the top: the profiler itself needs no model family.)"""
    from posenas_core.models.registry import build_model

    with torch.device("meta"):
        return build_model(spec)


def spec_stats(spec, input_size_hw: Sequence[int]) -> dict[str, int]:
    """{"params", "params_with_bn_stats", "macs"} of the network of `spec` (any registered kind) at
    `input_size_hw`: `count_params` / `count_macs` on a model built on the meta device (same counts as a
    real model, no weights, the global RNG untouched). ConfigError for a bad size; the model's own error
    (e.g. ValueError) for a size it cannot take."""
    h, w = _check_hw(input_size_hw)
    model = _meta_model(spec)
    return {**count_params(model), "macs": count_macs(model, (h, w))}


def timing_model(spec, seed: int = 0) -> nn.Module:
    """A CPU model of `spec` in eval mode for `measure_latency`: weights N(0, 0.05^2) from a generator
    seeded with `seed` (the global RNG untouched), BN statistics mean 0 / variance 1. Not for training."""
    model = _meta_model(spec).to_empty(device="cpu")
    g = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.05)
        for name, b in model.named_buffers():
            if name.endswith("running_var"):
                b.fill_(1.0)
            else:
                b.zero_()
    return model.eval()
