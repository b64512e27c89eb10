"""Shared bits of the benchmark scripts: output location and machine facts."""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "reports" / "bench"


def machine() -> dict:
    """Python / torch versions, threads, and the CPU: its model name and SIMD features (posenas_core.machine)."""
    from posenas_core.machine import cpu_info

    cpu = cpu_info()
    return {"python": platform.python_version(), "torch": torch.__version__, "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "cpu_model": cpu["model"], "cpu_features": cpu["features"],
            "native_bf16": cpu["native_bf16"], "torch_cpu_capability": cpu["torch_capability"],
            "machine": platform.machine()}


def emit(name: str, result: dict) -> dict:
    from posenas_core.runs import atomic_write_json

    result = {"benchmark": name, "machine": machine(), **result}
    atomic_write_json(OUT / f"{name}.json", result)
    print(json.dumps(result, indent=2, sort_keys=True))
    return result
