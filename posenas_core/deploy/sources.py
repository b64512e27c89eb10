"""What a network is exported from: `load_source(source) -> (model, spec, info)`.

A source is a preset name, a spec (a Spec, a JSON file or JSON text), a trainer checkpoint (.pt), a run
directory (RUN/checkpoints/best.pt, else last.pt), a model directory (spec.json + weights.pt: an evolution's
best/ or `posenas supernet extract`'s output; an evolution run directory means its best/). An ONNX file is
not a source (it is what an export writes), nor is a supernet (extract a sub-network first).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from posenas_core.deploy.onnx_export import check_exportable, check_input_hw, network_stride
from posenas_core.errors import CheckpointError, ConfigError, PoseNASError
from posenas_core.genotype import Spec, spec_from_dict, spec_from_json

__all__ = ["SOURCE_KINDS", "load_source"]

SOURCE_KINDS = ("preset", "spec", "checkpoint", "run", "model_dir")
INIT_SEED = 0                   # the generator seed of an untrained spec's initial weights


def load_source(source, *, input_hw=None) -> tuple[nn.Module, Spec, dict]:
    """(model in eval mode on the CPU, its spec, info) of `source`.

    info: "source_kind" (one of SOURCE_KINDS), "input_hw" (`input_hw` when given, checked against the
    network stride; else the preset's, the run's pipeline.json's or the model directory's, else None),
    "weights" ("initial": built from the spec with a torch.Generator seeded INIT_SEED; "trained" otherwise),
    "path" (file and directory sources), "preset" (preset sources).
    ConfigError / CheckpointError / SpecError naming the source when it is none of these, is an ONNX file,
    is a supernet, or its weights do not fit its spec."""
    model, spec, info = _load(source)
    model = model.to("cpu").eval()
    if input_hw is not None:
        info["input_hw"] = check_input_hw(input_hw, network_stride(spec, model))
    elif info.get("input_hw") is not None:
        info["input_hw"] = tuple(int(v) for v in info["input_hw"])
    return model, spec, info


def _load(source) -> tuple[nn.Module, Spec, dict]:
    from posenas_core.models.registry import PRESETS, load_spec

    if isinstance(source, Spec):
        return _initial(source, {"source_kind": "spec", "input_hw": None})
    text = str(source).strip()
    if text in PRESETS:
        preset = PRESETS[text]
        return _initial(preset.spec, {"source_kind": "preset", "preset": text, "input_hw": preset.input_size_hw})
    if text.startswith("{"):
        return _initial(load_spec(text), {"source_kind": "spec", "input_hw": None})
    path = Path(text)
    if path.is_dir():
        return _from_directory(path)
    if path.is_file():
        with path.open("rb") as f:
            head = f.read(64)
        if path.suffix.lower() == ".onnx" or head[:1] == b"\x08":   # 0x08: an ONNX ModelProto's first field
            raise _onnx_refusal(path)
        if path.suffix.lower() == ".json" or head.lstrip()[:1] == b"{":
            return _initial(load_spec(path), {"source_kind": "spec", "path": str(path), "input_hw": None})
        return _from_checkpoint(path, "checkpoint")
    if path.suffix or "/" in text:
        raise ConfigError(f"source not found: {path}; a source is a preset, a spec JSON, a checkpoint, a run "
                          f"directory or a model directory")
    return _initial(load_spec(text), {})   # not a preset or a file: load_spec's ConfigError (did you mean ...)


def _initial(spec: Spec, info: dict) -> tuple[nn.Module, Spec, dict]:
    """The untrained network of `spec`, its weights from a generator seeded INIT_SEED."""
    from posenas_core.models.registry import build_model

    check_exportable(spec)
    model = build_model(spec, generator=torch.Generator().manual_seed(INIT_SEED))
    return model, spec, {**info, "weights": "initial"}


def _onnx_refusal(path: Path) -> ConfigError:
    from posenas_core.deploy.onnx_export import onnx_spec

    try:
        spec = onnx_spec(path)
        what = f" (it holds the spec {_short(spec)})"
    except PoseNASError:
        what = ""
    return ConfigError(f"{path} is an ONNX file{what}; an ONNX file cannot be a source: pass the model it came "
                       f"from (a preset, a spec JSON, a checkpoint, a run or a model directory)")


def _short(spec: Spec) -> str:
    return spec.to_short() if hasattr(spec, "to_short") else spec.to_json()


def _from_checkpoint(path: Path, kind: str) -> tuple[nn.Module, Spec, dict]:
    from posenas_core.pipeline import run_info
    from posenas_core.train.checkpoints import load_checkpoint, read_checkpoint

    stored = read_checkpoint(path)["spec"]          # one-line CheckpointError when not a checkpoint
    try:
        check_exportable(spec_from_dict(stored))    # a supernet is refused before it is built
    except ConfigError as err:
        raise ConfigError(f"checkpoint {path}: {err}") from None
    except PoseNASError as err:
        raise CheckpointError(f"checkpoint {path}: stored spec is invalid: {err}") from None
    model, _ = load_checkpoint(path)                # CheckpointError when the weights do not fit the spec
    hw = run_info(path).get("input_hw")
    return model, model.spec, {"source_kind": kind, "path": str(path), "input_hw": hw, "weights": "trained"}


def _from_directory(path: Path) -> tuple[nn.Module, Spec, dict]:
    if (path / "spec.json").is_file():
        return _from_model_dir(path)
    if (path / "best" / "spec.json").is_file():         # an evolution run: its best candidate
        return _from_model_dir(path / "best")
    for name in ("best.pt", "last.pt"):
        ckpt = path / "checkpoints" / name
        if ckpt.is_file():
            return _from_checkpoint(ckpt, "run")
    raise ConfigError(f"directory {path} is neither a run directory (checkpoints/best.pt or checkpoints/last.pt) "
                      f"nor a model directory (spec.json + weights.pt)")


def _from_model_dir(path: Path) -> tuple[nn.Module, Spec, dict]:
    from posenas_core.pipeline import load_exported

    try:
        check_exportable(spec_from_json((path / "spec.json").read_text(encoding="utf-8")))
    except ConfigError as err:
        raise ConfigError(f"model directory {path}: {err}") from None
    except PoseNASError as err:
        raise CheckpointError(f"model directory {path}: spec.json is not a valid spec: {err}") from None
    model = load_exported(path)                          # CheckpointError when the weights do not fit the spec
    hw = None
    for name, key in (("extract.json", "input_hw"), ("metrics.json", "input_size")):
        f = path / name
        if hw is None and f.is_file():
            try:
                hw = json.loads(f.read_text(encoding="utf-8")).get(key)
            except (json.JSONDecodeError, AttributeError):
                hw = None
    return model, model.spec, {"source_kind": "model_dir", "path": str(path), "input_hw": hw, "weights": "trained"}
