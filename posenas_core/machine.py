"""What this machine is, and the fastest training precision / memory format on it, measured.

    cpu_info()                                     -> {"model", "features", "native_bf16", "cores", ...}
    train_step_speed(spec, input_hw, ...)          -> img/s of forward + MSE + backward + Adam, synthetic data
    choose_train_format(spec, input_hw, ...)       -> {"bf16", "channels_last", "img_per_s", "measured", ...}
    resolve_device("cpu" | "cuda" | "cuda:N" | "auto") -> torch.device ("auto": CUDA when present)

CPUs here and on users' laptops differ: bf16 autocast is about 2x faster than fp32 for dense convolutions
with native bf16 (AMX, AVX512-BF16), about 12x slower without it (emulated), and slower for depthwise /
MBConv networks even with it. So "auto" means: bf16 is only tried where the CPU has native bf16, and every
candidate format is timed on the network itself; the fastest wins.
"""

from __future__ import annotations

import functools
import os
import platform
import time

__all__ = ["cpu_info", "train_step_speed", "choose_train_format", "resolve_auto", "resolve_device", "DEVICES"]

DEVICES = ("cpu", "cuda", "auto")     # also "cuda:N"

_FEATURES = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile", "amx_int8", "avx_vnni")


@functools.lru_cache(maxsize=1)
def cpu_info() -> dict:
    """The CPU model, its SIMD features of interest and whether bf16 is native (AMX or AVX512-BF16)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and value.strip():
                    model = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = set(value.split())
    except OSError:  # not Linux: leave the features unknown
        pass
    try:
        import torch

        capability = torch.backends.cpu.get_cpu_capability()
    except Exception:  # torch missing or too old
        capability = None
    features = [f for f in _FEATURES if f in flags]
    return {"model": model, "machine": platform.machine(), "cores": os.cpu_count(), "features": features,
            "native_bf16": "amx_bf16" in flags or "avx512_bf16" in flags, "torch_capability": capability}


def train_step_speed(spec, input_hw, *, batch_size: int = 32, bf16: bool = False, channels_last: bool = True,
                     steps: int = 3, warmup: int = 1, device: str = "cpu") -> float:
    """Training img/s of `spec` at `input_hw` (median of `steps` steps after `warmup`), on random tensors:
    the network's own speed in this format, without the data path."""
    import numpy as np
    import torch

    from posenas_core.models.registry import build_model

    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = build_model(spec).train().to(device=device, memory_format=fmt)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch_size, 3, *input_hw, generator=gen).to(device).contiguous(memory_format=fmt)
    times = []
    for _ in range(warmup + steps):
        t0 = time.perf_counter()
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=bf16):
            y = model(x)
        loss = y.float().square().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device != "cpu":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return float(batch_size / np.median(times[warmup:]))


def choose_train_format(spec, input_hw, *, batch_size: int = 32, bf16="auto", channels_last="auto",
                        steps: int = 3) -> dict:
    """Time the candidate formats of a training step and return the fastest.

    `bf16` / `channels_last`: True or False fixes that choice, "auto" lets the measurement decide (bf16 is
    only a candidate on a CPU with native bf16; bf16 always runs channels_last, where its gains are).
    Returns {"bf16", "channels_last", "img_per_s", "measured": {format name: img/s}, "cpu": model}."""
    from posenas_core.errors import ConfigError

    for name, v in (("bf16", bf16), ("channels_last", channels_last)):
        if v not in (True, False, "auto"):
            raise ConfigError(f"{name} = {v!r} is invalid; allowed: true, false or 'auto'")
    info = cpu_info()
    bf16_options = [False, True] if bf16 == "auto" and info["native_bf16"] else [bool(bf16 is True)]
    candidates = []
    for b in bf16_options:
        cl_options = [True] if (b and channels_last == "auto") else \
            ([True, False] if channels_last == "auto" else [bool(channels_last)])
        candidates += [(b, cl) for cl in cl_options]
    measured = {}
    for b, cl in candidates:
        measured[_format_name(b, cl)] = round(train_step_speed(spec, input_hw, batch_size=batch_size, bf16=b,
                                                               channels_last=cl, steps=steps), 2)
    b, cl = max(candidates, key=lambda c: measured[_format_name(*c)])
    return {"bf16": b, "channels_last": cl, "img_per_s": measured[_format_name(b, cl)], "measured": measured,
            "cpu": info["model"], "native_bf16": info["native_bf16"]}


def _format_name(bf16: bool, channels_last: bool) -> str:
    return ("bf16" if bf16 else "fp32") + ("-channels_last" if channels_last else "-nchw")


def resolve_auto(spec, input_hw, *, batch_size: int, bf16="auto", channels_last="auto") -> dict:
    """`choose_train_format` when anything is "auto", else the fixed choice without measuring."""
    if bf16 != "auto" and channels_last != "auto":
        info = cpu_info()
        return {"bf16": bool(bf16), "channels_last": bool(channels_last), "img_per_s": None, "measured": {},
                "cpu": info["model"], "native_bf16": info["native_bf16"]}
    return choose_train_format(spec, input_hw, batch_size=batch_size, bf16=bf16, channels_last=channels_last)


def resolve_device(name="cpu"):
    """The torch.device for "cpu", "cuda", "cuda:N" or "auto" (CUDA when torch sees a GPU, else the CPU).

    ConfigError when the name is not one of these, or names a GPU this torch cannot use (CPU-only build, no
    GPU, or an index past the last GPU)."""
    import torch

    from posenas_core.errors import ConfigError

    text = str(name)
    allowed = "'cpu', 'cuda', 'cuda:N' or 'auto'"
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    head, _, index = text.partition(":")
    if head != "cuda" or (index and not index.isdigit()):
        raise ConfigError(f"device {name!r} is not allowed; choose {allowed}")
    if not torch.cuda.is_available():
        build = f"torch {torch.__version__}" + (" is a CPU-only build" if torch.version.cuda is None else " sees no GPU")
        raise ConfigError(f"device {text!r} was asked for, but CUDA is not available here ({build}); "
                          f"use 'cpu', or 'auto' to take a GPU only when there is one")
    if index and int(index) >= torch.cuda.device_count():
        raise ConfigError(f"device {text!r}: this machine has {torch.cuda.device_count()} GPU(s); "
                          f"allowed cuda:0..cuda:{torch.cuda.device_count() - 1}")
    return torch.device(text)
