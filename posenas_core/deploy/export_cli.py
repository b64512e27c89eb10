"""`posenas export SOURCE --format onnx --input HxW --out FILE [--opset N] [--form fast|plain] [--no-check]`
(wired into `posenas_core.cli`). Building the parser imports no torch: `posenas --help` stays fast.

SOURCE is anything `deploy.sources.load_source` takes. After the export, ONNX Runtime's output is compared
with PyTorch's on a seeded batch; a difference over PARITY_ATOL is an error (exit 2) naming it.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from posenas_core.errors import CheckpointError

__all__ = ["add_export_parser", "cmd_export"]

DEFAULT_INPUT = (256, 192)      # when the source does not say its input size


def _hw(text: str) -> tuple[int, int]:
    """'256x192' -> (256, 192), any positive integers (the network stride is checked by the export)."""
    try:
        h, w = (int(v) for v in str(text).lower().split("x"))
    except ValueError:
        h = w = 0
    if h <= 0 or w <= 0:
        raise argparse.ArgumentTypeError(f"expected HxW with two positive integers, e.g. 256x192; got {text!r}")
    return h, w


def _opset(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer operator set version, got {text!r}") from None


def add_export_parser(sub) -> argparse.ArgumentParser:
    """Add `export` to an argparse subparsers object; returns its parser."""
    p = sub.add_parser("export", help="export a model to ONNX (spec in the file's metadata), checking parity")
    p.add_argument("source", help="preset name, spec JSON, checkpoint (.pt), run directory or model directory "
                                  "(spec.json + weights.pt)")
    p.add_argument("--format", choices=("onnx",), default="onnx", help="file format (default onnx)")
    p.add_argument("--input", type=_hw, default=None,
                   help="network input HxW, multiples of the network stride (default: the source's, else 256x192)")
    p.add_argument("--out", type=Path, required=True, help="the file to write")
    p.add_argument("--opset", type=_opset, default=None, help="ONNX operator set 18..23 (default: the exporter's)")
    p.add_argument("--form", choices=("fast", "plain"), default="fast",
                   help="fast (default): the same function in ops ONNX Runtime runs faster (transposed convs as "
                        "per-phase convs + Col2Im, grouped convs as depthwise); plain: the model's own ops")
    p.add_argument("--no-check", action="store_true", help="skip the ONNX Runtime vs PyTorch parity check")
    return p


def cmd_export(a) -> dict:
    """Run `posenas export`: the result JSON (out, spec, input, form, nchwc_block for the fast form, bytes,
    parity, seconds)."""
    from posenas_core.deploy.onnx_export import PARITY_ATOL, export_onnx, onnx_parity, read_onnx_metadata
    from posenas_core.deploy.sources import load_source

    model, spec, info = load_source(a.source, input_hw=a.input)
    hw = info["input_hw"] or DEFAULT_INPUT
    t0 = time.perf_counter()
    out = export_onnx(model, a.out, hw, spec=spec, opset=a.opset, form=a.form,
                      metadata={"posenas.source": str(a.source), "posenas.weights": info["weights"]})
    seconds = time.perf_counter() - t0
    short = spec.to_short() if hasattr(spec, "to_short") else spec.to_json()
    result = {"out": str(out), "format": a.format, "spec": short, "kind": spec.KIND,
              "source_kind": info["source_kind"], "weights": info["weights"], "input": f"{hw[0]}x{hw[1]}",
              "form": a.form, "bytes": out.stat().st_size, "seconds": round(seconds, 2),
              "parity_max_abs_diff": None}
    block = read_onnx_metadata(out).get("posenas.nchwc_block")
    if block is not None:   # the fast form's grouped convs fit this CPU's NCHWc block (deploy.rewrites)
        result["nchwc_block"] = int(block)
    if not a.no_check:
        t0 = time.perf_counter()
        diff = onnx_parity(model, out, hw)
        result.update(parity_max_abs_diff=diff, check_seconds=round(time.perf_counter() - t0, 2))
        if not diff <= PARITY_ATOL:
            raise CheckpointError(f"{out}: ONNX Runtime differs from PyTorch by {diff:.3g} (max abs on a seeded "
                                  f"batch); allowed: <= {PARITY_ATOL:g}. The file is kept for inspection")
    return result
