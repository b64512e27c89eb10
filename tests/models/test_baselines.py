"""Baseline specs, builders, the deconv head and the preset registry."""

import json

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from posenas_core.errors import ConfigError, SpecError
from posenas_core.genotype import make_divisible, spec_from_dict, spec_from_json
from posenas_core.models.baselines import (
    MBV3_LARGE_STAGES,
    BaselineSpec,
    InvertedResidual,
    build_baseline,
)
from posenas_core.models.heads import DeconvHead
from posenas_core.models.registry import PRESETS, build_model, get_preset, load_spec, register_builder

PRESET_NAMES = sorted(PRESETS)



pytestmark = pytest.mark.usefixtures("one_torch_thread")

def macs(model: nn.Module, hw) -> float:
    model.eval()
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        model(torch.zeros(1, 3, *hw))
    return fc.get_total_flops() / 2


def test_presets_exist():
    assert {"baseline-resnet", "baseline-resnet18", "baseline-mbv3"} <= set(PRESETS)


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_preset_json_round_trip(name):
    spec = PRESETS[name].spec
    text = spec.to_json()
    back = spec_from_json(text)
    assert back == spec and hash(back) == hash(spec) and type(back) is type(spec)
    assert back.to_json() == text
    assert spec_from_dict(json.loads(text)) == spec


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_preset_builds_and_outputs_heatmaps_at_its_output_stride(name):
    torch.manual_seed(0)
    spec = PRESETS[name].spec
    model = build_model(spec)
    model.train()
    x = torch.randn(2, 3, 128, 96)
    y = model(x)
    s = spec.output_stride
    assert s == (spec.backbone_stride // 2 ** spec.head_layers if spec.KIND == "baseline"
                 else (2 if spec.network_stride == 16 else 4))
    assert y.shape == (2, 17, 128 // s, 96 // s)
    assert torch.isfinite(y).all()
    model.eval()
    with torch.no_grad():
        assert torch.isfinite(model(x)).all()


def test_stride2_head_with_per_layer_widths():
    """One more deconv gives heatmaps at 1/2 of the input; per-layer widths round-trip through JSON."""
    spec = PRESETS["baseline-resnet"].spec.replace(head_layers=4, head_channels=[128, 128, 64, 32])
    assert spec.head_channels == (128, 128, 64, 32) and spec.output_stride == 2
    assert spec_from_json(spec.to_json()) == spec
    model = build_model(spec)
    assert [m.out_channels for m in model.head.deconv_layers if isinstance(m, torch.nn.ConvTranspose2d)] == \
        [128, 128, 64, 32]
    assert model(torch.zeros(1, 3, 128, 96)).shape == (1, 17, 64, 48)
    # a stride-16 backbone with 3 deconvs is stride 2 as well
    s16 = BaselineSpec(stem_channels=16, stages=((1, 16, 1), (1, 32, 2), (1, 64, 2)), head_channels=32)
    assert s16.output_stride == 2 and build_model(s16)(torch.zeros(1, 3, 64, 48)).shape == (1, 17, 32, 24)


@pytest.mark.parametrize("backbone", ["baseline-resnet-s2", "baseline-mbv3"])
def test_head_skips_add_backbone_features_of_the_same_resolution(backbone):
    base = PRESETS[backbone].spec
    spec = base.replace(head_skips=True)
    assert spec_from_json(spec.to_json()) == spec and base.head_skips is False
    model, plain = build_model(spec), build_model(base)
    x = torch.randn(2, 3, 128, 96)
    # each lateral maps a backbone part's output to its deconv's width, at that deconv's resolution
    feats, h = {}, x
    for j, part in enumerate(model.backbone):
        h = part(h)
        feats[j] = h
    for i, j in enumerate(model._skip_from):
        if j is None:
            assert str(i) not in model.head.laterals
            continue
        lat = model.head.laterals[str(i)]
        assert lat[0].in_channels == feats[j].shape[1]
        assert feats[j].shape[-1] == 96 // (model.stride >> (i + 1))
    assert len(model.head.laterals) >= 2
    y = model(x)
    assert y.shape == plain(x).shape and torch.isfinite(y).all()
    y.square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.head.laterals.parameters())
    # the plain network's state dict is unchanged (old checkpoints load), the skip one adds the laterals only
    extra = set(model.state_dict()) - set(plain.state_dict())
    assert set(plain.state_dict()) < set(model.state_dict()) and all(k.startswith("head.laterals.") for k in extra)


def test_baseline_resnet_preset_cost():
    """The small ResNet preset is meant to cost 0.4-0.8 GMACs at 256x192 (FlopCounterMode / 2)."""
    model = build_model(PRESETS["baseline-resnet"].spec)
    assert 0.4e9 <= macs(model, (256, 192)) <= 0.8e9
    assert 2e6 < sum(p.numel() for p in model.parameters()) < 6e6


def test_resnet18_matches_torchvision_layout_param_count():
    """Full ResNet-18 backbone (without fc) has 11,176,512 params (torchvision resnet18 minus its 513,000 fc)."""
    model = build_model(PRESETS["baseline-resnet18"].spec)
    n = sum(p.numel() for p in model.backbone.parameters())
    assert n == 11_176_512


def test_mbv3_expansion_widths_match_mobilenetv3_large():
    model = build_model(PRESETS["baseline-mbv3"].spec)
    mids = [m.dw[0].out_channels for m in model.modules() if isinstance(m, InvertedResidual)]
    assert mids == [16, 64, 72, 72, 120, 120, 240, 200, 184, 184, 480, 672, 672, 960, 960]
    se = [not isinstance(m.se, nn.Identity) for m in model.modules() if isinstance(m, InvertedResidual)]
    assert se == [False] * 3 + [True] * 3 + [False] * 4 + [True] * 5
    assert sum(isinstance(m, nn.Hardswish) for m in model.modules()) > 0
    assert sum(isinstance(m, nn.Hardsigmoid) for m in model.modules()) == 8


def test_residual_identity_and_block_count():
    spec = BaselineSpec(stem_channels=16, stages=((2, 16, 1), (3, 32, 2), (1, 32, 2), (1, 64, 2)), head_channels=32)
    model = build_baseline(spec)
    depths = [len(getattr(model.backbone, f"stage{i}")) for i in range(1, 5)]
    assert depths == [2, 3, 1, 1]


def test_init_head_std_and_kaiming_backbone():
    torch.manual_seed(0)
    model = build_model(PRESETS["baseline-resnet18"].spec)
    deconv = model.head.deconv_layers[0].weight
    assert abs(deconv.std().item() - 0.001) < 1e-4
    assert model.head.final_layer.bias.abs().max().item() == 0
    conv = model.backbone.stage3[0].conv1.weight      # fan_out = 256 * 9
    assert abs(conv.std().item() - (2 / (256 * 9)) ** 0.5) < 0.1 * (2 / (256 * 9)) ** 0.5


def test_width_mult_scales_backbone_not_head():
    base = PRESETS["baseline-resnet18"].spec
    half = base.replace(width_mult=0.5)
    m = build_baseline(half)
    assert m.backbone.stem[0].out_channels == 32
    assert m.backbone.stage4[0].conv1.out_channels == 256
    assert m.head.deconv_layers[0].out_channels == 256
    assert m(torch.zeros(1, 3, 64, 64)).shape == (1, 17, 16, 16)


def test_input_not_multiple_of_stride_is_rejected():
    model = build_model(PRESETS["baseline-resnet"].spec)
    with pytest.raises(ValueError, match="multiple of the backbone stride 32"):
        model(torch.zeros(1, 3, 100, 96))


@pytest.mark.parametrize("changes, field", [
    ({"backbone": "vgg"}, "backbone"),
    ({"stem_channels": 4}, "stem_channels"),
    ({"width_mult": 0.1}, "width_mult"),
    ({"width_mult": "1"}, "width_mult"),
    ({"head_channels": 0}, "head_channels"),
    ({"head_kernel": 5}, "head_kernel"),
    ({"head_layers": 0}, "head_layers"),
    ({"num_joints": 0}, "num_joints"),
    ({"final_channels": -1}, "final_channels"),
    ({"stages": ((2, 64, 1), (2, 128, 3), (2, 256, 2), (2, 512, 2))}, "stages[1].stride"),
    ({"stages": ((2, 64, 1), (0, 128, 2), (2, 256, 2), (2, 512, 2))}, "stages[1].depth"),
    ({"stages": ((2, 64, 1), (2, 128))}, "stages[1]"),
    ({"stages": ((2, 64, 1), (2, 128, 2))}, "backbone stride is 8"),
    ({"head_layers": 4, "head_channels": (64, 64)}, "head_channels lists 2 widths, but head_layers=4"),
    ({"head_layers": 4, "head_channels": (64, 64, 64, 4)}, "head_channels[3]"),
    ({"stages": ()}, "stages"),
    ({"head_layers": 2}, "backbone stride must be one of [16, 8]"),
    ({"head_skips": 1}, "head_skips must be true or false"),
])
def test_spec_validation_names_the_field(changes, field):
    with pytest.raises(SpecError, match=field.replace("[", r"\[").replace("]", r"\]")):
        BaselineSpec(**changes)


@pytest.mark.parametrize("row, field", [
    ((4, 3.0, 24, False, "relu", 1, 1), "kernel"),
    ((3, 0.5, 24, False, "relu", 1, 1), "expansion"),
    ((3, 3.0, 24, 1, "relu", 1, 1), "se"),
    ((3, 3.0, 24, False, "gelu", 1, 1), "activation"),
    ((3, 3.0, 24, False, "relu", 1, 0), "repeats"),
    ((3, 3.0, 24, False, "relu", 1), "stages\\[1\\] must be"),
])
def test_mbv3_row_validation(row, field):
    stages = list(MBV3_LARGE_STAGES)
    stages[1] = row
    with pytest.raises(SpecError, match=field):
        BaselineSpec(backbone="mobilenetv3", stem_channels=16, stages=tuple(stages))


def test_mbv3_rows_from_json_lists_and_int_expansion_are_canonical():
    spec = PRESETS["baseline-mbv3"].spec
    d = json.loads(spec.to_json())
    d["stages"][0][1] = 1                   # an int expansion from hand-written JSON
    back = spec_from_dict(d)
    assert back == spec and back.to_json() == spec.to_json()
    assert isinstance(back.stages[0], tuple)


def test_unknown_field_and_kind():
    d = PRESETS["baseline-resnet"].spec.to_dict()
    with pytest.raises(SpecError, match="unknown field"):
        spec_from_dict({**d, "depth": 3})
    with pytest.raises(SpecError, match="unknown spec kind"):
        spec_from_dict({**d, "kind": "nope"})


def test_make_divisible():
    assert make_divisible(80 * 2.5) == 200
    assert make_divisible(80 * 2.3) == 184
    assert make_divisible(3) == 8
    assert make_divisible(27) == 32       # 24 would be > 10% below 27


def test_deconv_head_kernels_and_groups():
    for k in (2, 3, 4):
        head = DeconvHead(32, 5, channels=(16, 16), num_layers=2, kernels=k)
        assert head(torch.zeros(1, 32, 3, 5)).shape == (1, 5, 12, 20)
    head = DeconvHead(32, 5, channels=32, num_layers=3, groups=32, activation="swish")
    assert head(torch.zeros(1, 32, 2, 2)).shape == (1, 5, 16, 16)
    assert head.deconv_layers[0].groups == 32
    assert DeconvHead(8, 3, num_layers=0)(torch.zeros(1, 8, 4, 4)).shape == (1, 3, 4, 4)
    with pytest.raises(ValueError, match="kernel 5"):
        DeconvHead(8, 3, kernels=5)
    with pytest.raises(ValueError, match="groups=3"):
        DeconvHead(8, 3, channels=16, groups=3)


def test_get_preset_and_load_spec(tmp_path):
    assert get_preset("baseline-mbv3").spec.backbone == "mobilenetv3"
    with pytest.raises(ConfigError, match="baseline-resnet18"):
        get_preset("resnet-9000")
    assert load_spec("baseline-resnet") == PRESETS["baseline-resnet"].spec
    f = tmp_path / "s.json"
    spec = PRESETS["baseline-resnet"].spec.replace(head_channels=64)
    f.write_text(spec.to_json())
    assert load_spec(str(f)) == spec
    assert load_spec(f) == spec
    assert load_spec(spec.to_json()) == spec
    with pytest.raises(ConfigError, match="neither a model preset"):
        load_spec(str(tmp_path / "missing.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(SpecError, match="bad.json"):
        load_spec(str(bad))
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({**spec.to_dict(), "head_kernel": 7}))
    with pytest.raises(SpecError, match="wrong.json.*head_kernel"):
        load_spec(str(wrong))


def test_register_builder_dispatch():
    """build_model dispatches on the spec class; unregistered types get a SpecError (no new Spec kind is
    declared here, so the global kind registry stays clean for other tests)."""
    from posenas_core.models import registry

    with pytest.raises(SpecError, match="no model builder registered"):
        build_model(object())
    spec = PRESETS["baseline-resnet"].spec
    saved = registry._BUILDERS[BaselineSpec]
    try:
        register_builder(BaselineSpec, lambda s: nn.Conv2d(3, s.head_channels, 1))
        assert build_model(spec).out_channels == spec.head_channels
    finally:
        register_builder(BaselineSpec, saved)
    assert isinstance(build_model(spec), type(build_baseline(spec)))
    with pytest.raises(TypeError):
        register_builder(dict, lambda s: None)
