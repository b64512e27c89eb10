"""Trainer checkpoints: reading them back into models, checking weights against a spec, RNG states.

A checkpoint (`train.trainer.train` writes it atomically) holds only tensors and plain Python values, so
it loads with `torch.load(weights_only=True)`:
{"format", "spec" (dict), "config" (dict), "model", "optimizer", "step", "epoch", "step_in_epoch",
"steps_per_epoch", "total_steps", "rng" {"torch", "numpy", "python"}, "best", "last_val", "elapsed_s"}.
`epoch` is the epoch in progress and `step_in_epoch` the number of its batches already done (0 at an
epoch boundary).
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch
from torch import nn

from posenas_core.errors import CheckpointError, SpecError
from posenas_core.genotype import Spec, spec_from_dict
from posenas_core.models.registry import build_model
from posenas_core.runs.io import read_torch_file

__all__ = ["CHECKPOINT_FORMAT", "load_checkpoint", "read_checkpoint", "check_state_dict", "reference_state",
           "spec_mismatch", "rng_state", "set_rng_state"]

CHECKPOINT_FORMAT = 1



def check_state_dict(reference: dict, state: dict, what: str) -> None:
    """CheckpointError naming the first missing / unexpected / mis-shaped entry of `state` vs `reference`.

    `reference` and `state` map names to tensors (only shapes are compared).
    """
    missing = [k for k in reference if k not in state]
    unexpected = [k for k in state if k not in reference]
    for k, v in reference.items():
        if k in state and tuple(state[k].shape) != tuple(v.shape):
            raise CheckpointError(f"{what}: parameter {k!r} has shape {tuple(state[k].shape)} in the weights but "
                                  f"{tuple(v.shape)} in the model built from the spec")
    if missing:
        raise CheckpointError(f"{what}: the weights lack {len(missing)} entries of the model built from the spec, "
                              f"first {missing[0]!r}")
    if unexpected:
        raise CheckpointError(f"{what}: the weights have {len(unexpected)} entries the model built from the spec "
                              f"does not, first {unexpected[0]!r}")


def spec_mismatch(a: Spec, b: Spec) -> str:
    """The first field where two specs differ, e.g. "field 'width': 32 vs 64" ("identical" when none)."""
    da, db = a.to_dict(), b.to_dict()
    for k in sorted(set(da) | set(db)):
        if da.get(k) != db.get(k):
            return f"field {k!r}: {da.get(k)!r} vs {db.get(k)!r}"
    return "identical"


def reference_state(spec: Spec) -> dict:
    """State dict (shapes only) of the model a spec builds, without allocating its weights."""
    with torch.device("meta"):
        return build_model(spec).state_dict()


def read_checkpoint(path: Path, map_location="cpu") -> dict:
    """The checkpoint dict of `path`; CheckpointError in one line when it is unreadable or not a checkpoint."""
    ckpt = read_torch_file(path, what="checkpoint", map_location=map_location)  # one-line CheckpointError
    if not isinstance(ckpt, dict) or "spec" not in ckpt or "model" not in ckpt:
        kind = f"a dict with keys {sorted(map(str, ckpt))[:5]}" if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(f"checkpoint {path} is {kind}, not a PoseNAS checkpoint (a dict with 'spec' and "
                              f"'model' entries, as `posenas train` writes)")
    return ckpt


def load_checkpoint(path: str | Path, map_location="cpu", expected_spec: Spec | None = None
                    ) -> tuple[nn.Module, dict]:
    """Rebuild the model of a checkpoint from its stored spec and load its weights (eval mode).

    Raises CheckpointError if the file is unreadable, its spec is invalid or differs from
    `expected_spec`, or the weights do not fit the spec (naming the first mismatching entry and shapes).
    """
    path = Path(path)
    ckpt = read_checkpoint(path, map_location)
    try:
        spec = spec_from_dict(ckpt["spec"])
    except SpecError as e:
        raise CheckpointError(f"checkpoint {path}: stored spec is invalid: {e}") from None
    if expected_spec is not None and spec != expected_spec:
        raise CheckpointError(f"checkpoint {path}: its spec differs from the expected spec "
                              f"({spec_mismatch(spec, expected_spec)})")
    model = build_model(spec)
    check_state_dict(model.state_dict(), ckpt["model"], f"checkpoint {path}")
    model.load_state_dict(ckpt["model"])
    model.eval()
    return model, ckpt


def rng_state() -> dict:
    """The torch, NumPy and Python global RNG states as tensors and plain values (for a checkpoint)."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "python": [py_state[0], list(py_state[1]), py_state[2]],
    }


def set_rng_state(state: dict) -> None:
    """Restore the global RNG states `rng_state` returned."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n[0], np.asarray(n[1], dtype=np.uint32), n[2], n[3], n[4]))
    p = state["python"]
    random.setstate((p[0], tuple(p[1]), p[2]))
