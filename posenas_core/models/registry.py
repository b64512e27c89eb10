"""Named model presets and the spec -> builder registry.

    build_model(spec, generator=None) -> nn.Module, dispatching on the spec's class (`register_builder`)
    get_preset("baseline-resnet").spec
    load_spec("baseline-mbv3" | "path/to/spec.json" | '{"kind": "baseline", ...}')

Other spec kinds (EvoPose2D, ViPNAS) register their builders with
`register_builder(TheirSpec, build_fn)` when their module is imported; `build_fn(spec)` builds with the global
torch RNG, `build_fn(spec, generator=g)` must draw every initial weight from the torch.Generator g.

Costs below: trainable params; MACs counted with FlopCounterMode / 2 (convolutions only).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from posenas_core.errors import ConfigError, SpecError
from posenas_core.genotype import Spec, spec_from_dict
from posenas_core.models.baselines import (
    MBV3_LARGE_STAGES,
    RESNET18_HALF_STAGES,
    RESNET18_STAGES,
    BaselineSpec,
    build_baseline,
)
from posenas_core.models.evopose import build_evopose
from posenas_core.models.vipnas import build_vipnas
from posenas_core.models.vipnas_supernet import build_supernet
from posenas_core.spaces.evopose import ANCESTOR, GENOTYPE_S, GENOTYPE_XS, EvoPoseSpec, scaled_spec
from posenas_core.spaces.supernet import SupernetSpec
from posenas_core.spaces.vipnas import S_VIPNAS_MBV3, S_VIPNAS_RES50, ViPNASMbv3Spec, ViPNASResSpec

__all__ = ["Preset", "PRESETS", "register_builder", "build_model", "get_preset", "load_spec"]

_BUILDERS: dict[type[Spec], Callable[[Spec], nn.Module]] = {}


def register_builder(spec_cls: type[Spec], fn: Callable[[Spec], nn.Module]) -> None:
    """Make `build_model` build specs of class `spec_cls` with `fn(spec) -> nn.Module`."""
    if not (isinstance(spec_cls, type) and issubclass(spec_cls, Spec)):
        raise TypeError(f"register_builder needs a Spec subclass, got {spec_cls!r}")
    _BUILDERS[spec_cls] = fn


register_builder(BaselineSpec, build_baseline)
register_builder(EvoPoseSpec, build_evopose)
register_builder(ViPNASResSpec, build_vipnas)
register_builder(ViPNASMbv3Spec, build_vipnas)


def _build_supernet(spec: SupernetSpec, generator: torch.Generator | None = None) -> nn.Module:
    """The weight-sharing supernet of `spec.space` (called as `net(x, arch)`), keeping `spec` as `net.spec`."""
    net = build_supernet(spec.space, generator)
    net.spec = spec
    return net


register_builder(SupernetSpec, _build_supernet)


def build_model(spec: Spec, generator: torch.Generator | None = None) -> nn.Module:
    """Build the static network of any registered spec.

    Initial weights come from `generator` (a torch.Generator; the global torch RNG is then left as it was),
    or from the global torch RNG when None (so `torch.manual_seed(s)` before the call fixes them)."""
    fn = _BUILDERS.get(type(spec))
    if fn is None:
        known = sorted(c.KIND for c in _BUILDERS)
        raise SpecError(f"no model builder registered for spec kind "
                        f"{getattr(spec, 'KIND', type(spec).__name__)!r}; registered kinds: {known}")
    return fn(spec) if generator is None else fn(spec, generator=generator)


@dataclasses.dataclass(frozen=True)
class Preset:
    name: str
    spec: Spec
    input_size_hw: tuple[int, int]      # the input size the preset is meant for (H, W)
    description: str


PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset(
        "baseline-resnet",
        BaselineSpec(backbone="resnet", stem_channels=32, stages=RESNET18_HALF_STAGES, head_channels=128),
        (256, 192),
        "SimpleBaseline with a half-width ResNet-18 (32-64-128-256) and a 3 x 128 deconv head: "
        "3.85M params, 0.757 GMACs at 256x192 (0.189 at 128x96). The fastest preset to train on CPU.",
    ),
    Preset(
        "baseline-resnet-s2",
        BaselineSpec(backbone="resnet", stem_channels=32, stages=RESNET18_HALF_STAGES, head_layers=4,
                     head_channels=(128, 128, 64, 32)),
        (256, 192),
        "baseline-resnet with heatmaps at 1/2 of the input (one more deconv; deconv widths 128-128-64-32, "
        "the same 0.189 GMACs at 128x96): finer heatmaps for small inputs. 3.75M params.",
    ),
    Preset(
        "baseline-resnet-skip",
        BaselineSpec(backbone="resnet", stem_channels=32, stages=RESNET18_HALF_STAGES, head_layers=4,
                     head_channels=(128, 128, 64, 32), head_skips=True),
        (256, 192),
        "baseline-resnet-s2 with U-Net skips: after each deconv, a 1x1 conv + BN of the backbone feature of the "
        "same resolution is added (stages 3, 2, 1). 0.193 GMACs at 128x96, 3.78M params. Learns far faster on a "
        "short CPU budget (OKS AP 0.49 vs 0.31 after the same 24k samples; benchmarks/learning_curve.py).",
    ),
    Preset(
        "baseline-resnet18",
        BaselineSpec(backbone="resnet", stem_channels=64, stages=RESNET18_STAGES, head_channels=256),
        (256, 192),
        "The classic SimpleBaseline-ResNet-18 (64-128-256-512, head 3 x 256): "
        "15.4M params, 2.90 GMACs at 256x192 (0.724 at 128x96).",
    ),
    Preset(
        "baseline-mbv3",
        BaselineSpec(backbone="mobilenetv3", stem_channels=16, stages=MBV3_LARGE_STAGES, final_channels=0,
                     head_channels=128),
        (256, 192),
        "MobileNetV3-Large backbone (no 960-channel last conv) feeding a 3 x 128 deconv head from its "
        "160-channel stride-32 features: 3.67M params, 0.476 GMACs at 256x192 (0.120 at 128x96).",
    ),
    Preset(
        "evopose2d-xs", scaled_spec(GENOTYPE_XS, (256, 192)), (256, 192),
        "EvoPose2D-XS: the S genotype with module 6 at stride 2 (network stride 32, heatmaps at 1/4): "
        "2,496,239 params (2,531,199 with BN statistics), 0.462 GMACs at 256x192.",
    ),
    Preset(
        "evopose2d-s", scaled_spec(GENOTYPE_S, (256, 192)), (256, 192),
        "EvoPose2D-S, the best genotype of the published search (E3); heatmaps at 1/2 of the input: "
        "2,496,239 params (2,531,199 with BN statistics), 1.064 GMACs at 256x192.",
    ),
    Preset(
        "evopose2d-m", scaled_spec(GENOTYPE_S, (384, 288)), (384, 288),
        "EvoPose2D-M: S compound-scaled to 384x288 (depth x1.697, width x1.319, drop-connect 0.4): "
        "7,256,105 params, 5.55 GMACs at 384x288.",
    ),
    Preset(
        "evopose2d-l", scaled_spec(GENOTYPE_S, (512, 384)), (512, 384),
        "EvoPose2D-L: S compound-scaled to 512x384 (depth x2.470, width x1.604, drop-connect 0.4): "
        "14,566,883 params, 17.59 GMACs at 512x384.",
    ),
    Preset(
        "evopose2d-ancestor", EvoPoseSpec(genotype=ANCESTOR), (256, 192),
        "The common ancestor of the EvoPose2D search (EfficientNet-B0's blocks, heatmaps at 1/4): "
        "4,261,901 params, 0.523 GMACs at 256x192.",
    ),
    Preset(
        "s-vipnas-res50", S_VIPNAS_RES50, (256, 192),
        "The released S-ViPNAS-Res50 (mmpose ViPNAS_ResNet + ViPNASHead): stem 48, bottlenecks of expansion 1, "
        "widths 80/160/304/608, depths 4/6/7/3, kernels 3/5/5/5, groups 16, GC in stages 1/3/4, head 3 x 144 "
        "deconvs (groups 16): 7,286,772 params, 1.464 GMACs at 256x192.",
    ),
    Preset(
        "s-vipnas-mbv3", S_VIPNAS_MBV3, (256, 192),
        "The released S-ViPNAS-MobileNetV3 (mmpose ViPNAS_MobileNetV3 + ViPNASHead): widths 16/24/40/80/112/160, "
        "expansions 1/5/4/5/5/6, depths 1/4/4/4/4/4, grouped middle convs, SE in every stage but 3, head 3 x 160 "
        "depthwise deconvs: 5,895,725 params, 0.734 GMACs at 256x192.",
    ),
)}


def _did_you_mean(name) -> str:
    """' (did you mean 'baseline-resnet'?)' for a near miss of a preset name; '' otherwise."""
    close = difflib.get_close_matches(str(name), list(PRESETS), n=3, cutoff=0.8)
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""


def get_preset(name: str) -> Preset:
    """The preset called `name`; ConfigError listing the known names (and the closest ones) otherwise."""
    try:
        return PRESETS[name]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown model preset {name!r}{_did_you_mean(name)}; known presets: "
                          f"{sorted(PRESETS)}") from None


def load_spec(name_or_path: str | Path) -> Spec:
    """A spec from a preset name, a spec JSON file, or (for notebooks) a JSON string starting with '{'."""
    if isinstance(name_or_path, Spec):
        return name_or_path
    text = str(name_or_path).strip()
    if text in PRESETS:
        return PRESETS[text].spec
    if text.startswith("{"):
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise SpecError(f"spec string is not valid JSON: {e}") from None
        return spec_from_dict(d)
    path = Path(text)
    if path.is_file() and (path.suffix.lower() in (".onnx", ".pt", ".pth") or b"\0" in path.read_bytes()[:1024]):
        what = {".onnx": "an ONNX file", ".pt": "a torch file", ".pth": "a torch file"}.get(path.suffix.lower(),
                                                                                             "a binary file")
        raise SpecError(f"{path} is {what}, not a spec: a model is named by a preset or a spec JSON file "
                        f"(an exported ONNX file keeps its spec inside: posenas_core.deploy.onnx_spec reads it; "
                        f"a checkpoint's spec is read by posenas_core.train.load_checkpoint)")
    if path.is_file():
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise SpecError(f"spec file {path} is not valid JSON: {e}") from None
        try:
            return spec_from_dict(d)
        except SpecError as e:
            raise SpecError(f"spec file {path}: {e}") from None
    raise ConfigError(f"{text!r} is neither a model preset{_did_you_mean(text)} nor an existing spec JSON file; "
                      f"known presets: {sorted(PRESETS)}")
