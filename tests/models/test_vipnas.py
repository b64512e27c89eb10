"""ViPNAS specs and static networks: the released S-ViPNAS presets, layer order, keys, specs' checks and strings."""

import pytest
import torch

from posenas_core.errors import SpecError
from posenas_core.eval.profiler import count_macs, count_params
from posenas_core.genotype import spec_from_json
from posenas_core.models.registry import PRESETS, build_model, load_spec
from posenas_core.models.vipnas import ContextBlock, gc_planes
from posenas_core.ops import MmcvHSigmoid
from posenas_core.spaces.vipnas import MbStage, ResStage, ViPNASMbv3Spec, ViPNASResSpec

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# mmpose's released models at 256x192, 17 joints (reference: conv / deconv MACs, trainable params).
PUBLISHED = {"s-vipnas-res50": (7.287e6, 1.464e9), "s-vipnas-mbv3": (5.896e6, 0.734e9)}


def _model(name):
    return build_model(PRESETS[name].spec, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_presets_match_published_counts_and_shapes(name):
    params, macs = PUBLISHED[name]
    model = _model(name)
    assert count_params(model)["params"] == pytest.approx(params, rel=0.01)
    assert count_macs(model, (256, 192)) == pytest.approx(macs, rel=0.01)
    model.eval()
    with torch.no_grad():
        y = model(torch.randn(1, 3, 256, 192, generator=torch.Generator().manual_seed(1)))
    assert y.shape == (1, 17, 64, 48) and torch.isfinite(y).all()
    assert PRESETS[name].spec.output_stride == 4 and PRESETS[name].spec.network_stride == 32


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_json_and_short_string_round_trips(name):
    spec = PRESETS[name].spec
    back = spec_from_json(spec.to_json())
    assert back == spec and hash(back) == hash(spec) and type(back) is type(spec)
    assert all(type(r) in (ResStage, MbStage) for r in back.stages)
    assert load_spec(spec.to_json()) == spec
    assert type(spec).from_short(spec.to_short()) == spec
    other = spec.replace(num_joints=133)
    assert other.to_short().endswith("-j133") and type(spec).from_short(other.to_short()) == other


def test_short_strings_are_the_documented_grammar():
    assert PRESETS["s-vipnas-res50"].spec.to_short() == (
        "s48-d4w80k3g16a1-d6w160k5g16a0-d7w304k5g16a1-d3w608k5g16a1-h144k4g16-h144k4g16-h144k4g16")
    assert PRESETS["s-vipnas-mbv3"].spec.to_short().startswith("s16-d1w16e1k3g8a1-d4w24e5k7g120a1-d4w40e4k7g20a0-")
    with pytest.raises(SpecError, match="stage token 'd4w80k3g16'"):
        ViPNASResSpec.from_short("s48-d4w80k3g16-d6w160k5g16a0-d7w304k5g16a1-d3w608k5g16a1-h144k4g16-h144k4g16-h1k4g1")
    with pytest.raises(SpecError, match="not a short string"):
        ViPNASMbv3Spec.from_short("x16")


def test_res50_layer_order_keys_and_gc_widths():
    model = _model("s-vipnas-res50")
    keys = set(model.state_dict())
    for k in ("stem.conv.weight", "stem.bn.running_var", "stages.0.0.conv1.conv.weight", "stages.0.0.conv2.bn.bias",
              "stages.0.0.gc.conv_mask.weight", "stages.0.0.gc.channel_add_conv.1.weight",
              "stages.0.0.gc.channel_add_conv.3.bias", "stages.1.0.downsample.conv.weight", "head.2.deconv.weight",
              "head.0.bn.running_mean", "final.weight", "final.bias"):
        assert k in keys, k
    assert not any(k.startswith("stages.1.") and ".gc." in k for k in keys)        # stage 2 has no GC
    assert "stages.0.1.downsample.conv.weight" not in keys
    assert [gc_planes(c) for c in (80, 304, 608)] == [16, 19, 38]
    conv2 = model.stages[3][0].conv2.conv
    assert (conv2.kernel_size, conv2.stride, conv2.groups, conv2.in_channels) == ((5, 5), (2, 2), 16, 608)
    deconv = model.head[0].deconv
    assert (deconv.in_channels, deconv.out_channels, deconv.groups, deconv.padding) == (608, 144, 16, (1, 1))
    assert [len(s) for s in model.stages] == [4, 6, 7, 3]


def test_mbv3_blocks_expansion_groups_se_and_activations():
    model = _model("s-vipnas-mbv3")
    first = model.stages[0][0]
    assert isinstance(first.expand, torch.nn.Identity) and first.use_residual        # expansion 1: no expand conv
    b = model.stages[1][0]                                                             # in 16 -> mid 120 -> out 24
    assert (b.expand.conv.in_channels, b.mid.conv.groups, b.mid.conv.kernel_size, b.project.conv.out_channels) == (
        16, 120, (7, 7), 24)
    assert b.se.reduce.out_channels == 30 and isinstance(b.se.gate, MmcvHSigmoid)
    assert isinstance(model.stages[2][0].se, torch.nn.Identity)                        # stage 3: no SE
    assert isinstance(model.stem.act, torch.nn.Hardswish) and isinstance(b.mid.act, torch.nn.ReLU)
    assert isinstance(model.stages[3][0].mid.act, torch.nn.Hardswish)
    assert [h.deconv.groups for h in model.head] == [160, 160, 160]
    assert [len(s) for s in model.stages] == [1, 4, 4, 4, 4, 4]


def test_gate_and_context_block_maths():
    x = torch.tensor([-3.0, -1.0, 0.0, 0.5, 1.0, 3.0])
    assert torch.equal(MmcvHSigmoid()(x), torch.tensor([0.0, 0.0, 0.5, 0.75, 1.0, 1.0]))
    torch.manual_seed(0)
    gc = ContextBlock(8, 4).eval()
    x = torch.randn(2, 8, 3, 5)
    w = torch.softmax(gc.conv_mask(x).flatten(2), -1)                                # (B, 1, HW)
    ctx = (x.flatten(2) * w).sum(-1)[..., None, None]                                 # (B, C, 1, 1)
    assert torch.allclose(gc(x), x + gc.channel_add_conv(ctx), atol=1e-6)


def test_init_follows_mmpose_and_the_generator():
    a, b = _model("s-vipnas-res50"), _model("s-vipnas-res50")
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    w = a.stages[2][0].conv2.conv.weight
    assert 0.0008 < w.std().item() < 0.0012 and torch.equal(a.final.bias, torch.zeros(17))


@pytest.mark.parametrize("cls, changes, match", [
    (ViPNASResSpec, {"stages": ((4, 80, 3, 24, "gc"),) + ViPNASResSpec().stages[1:]},
     r"stages\[0\]\.groups = 24 does not divide the stage width 80"),
    (ViPNASResSpec, {"stages": ((4, 80, 4, 16, "gc"),) + ViPNASResSpec().stages[1:]}, r"stages\[0\]\.kernel"),
    (ViPNASResSpec, {"stages": ((4, 80, 3, 16, "se"),) + ViPNASResSpec().stages[1:]}, r"stages\[0\]\.attention"),
    (ViPNASResSpec, {"stages": ViPNASResSpec().stages[:3]}, r"stages must be 4 rows"),
    (ViPNASResSpec, {"head": ((144, 4, 16),) * 2}, r"head must be 3 or 4 rows"),
    (ViPNASResSpec, {"head": ((150, 4, 16),) * 3}, r"head\[0\]\.groups = 16 does not divide the output width 150"),
    (ViPNASResSpec, {"stem_channels": 4}, r"stem_channels = 4 is out of range"),
    (ViPNASMbv3Spec, {"stages": ((1, 16, 1, 3, 7, True),) + ViPNASMbv3Spec().stages[1:]},
     r"stages\[0\]\.groups = 7 does not divide the mid \(width x expansion\) width 16"),
    (ViPNASMbv3Spec, {"stages": ((1, 24, 1, 3, 8, True),) + ViPNASMbv3Spec().stages[1:]},
     r"stages\[0\]\.expansion = 1 \(no expand conv\) needs"),
    (ViPNASMbv3Spec, {"stages": ((1, 16, 1, 3, 8, 1),) + ViPNASMbv3Spec().stages[1:]}, r"stages\[0\]\.se must be"),
    (ViPNASMbv3Spec, {"head": ((160, 5, 160),) * 3}, r"head\[0\]\.kernel = 5 is not allowed"),
    (ViPNASMbv3Spec, {"num_joints": 0}, r"num_joints = 0 is out of range"),
])
def test_validation_names_the_field_and_the_allowed_values(cls, changes, match):
    with pytest.raises(SpecError, match=match):
        cls(**changes)


def test_four_deconvs_give_stride_two_heatmaps():
    spec = ViPNASMbv3Spec(head=((160, 4, 160),) * 3 + ((32, 4, 32),))
    model = build_model(spec, generator=torch.Generator().manual_seed(0)).eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 64, 32)).shape == (1, 17, 32, 16)
    with pytest.raises(ValueError, match="multiple of the backbone stride 32"):
        model(torch.zeros(1, 3, 48, 32))
