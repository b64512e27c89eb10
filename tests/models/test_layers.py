"""Shared blocks (posenas_core.ops.layers): pinned state-dict layouts, SE / conv-BN maths, init and drop generators."""

import hashlib

import pytest
import torch
from torch import nn

from posenas_core.models.registry import PRESETS, build_model
from posenas_core.ops import ConvBN, DropConnect, SqueezeExcite, conv_bn, make_activation, set_drop_generator

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# sha256 (first 16 hex digits) of the "key:shape" lines of each preset's state dict, and the number of entries,
# as built before the blocks moved to ops/: checkpoints and weight transfer rely on these names and shapes.
STATE_DICT_LAYOUT = {
    "baseline-resnet": ("96284b858d458c3b", 140),
    "baseline-resnet-s2": ("f13ba4ca2292ea65", 146),
    "baseline-resnet-skip": ("b406019a33e259bd", 164),
    "baseline-resnet18": ("9525d01932b586f1", 140),
    "baseline-mbv3": ("01570a4d45b3ffb5", 322),
    "evopose2d-xs": ("93b3bc42ef4cf052", 416),
    "evopose2d-s": ("93b3bc42ef4cf052", 416),
    "evopose2d-m": ("84c4e02c08a12e8d", 762),
    "evopose2d-l": ("a4c677ace231b738", 1020),
    "evopose2d-ancestor": ("a3fe804b9f724bdb", 372),
}


def _layout(spec) -> list[str]:
    with torch.device("meta"):
        return [f"{k}:{tuple(v.shape)}" for k, v in build_model(spec).state_dict().items()]


@pytest.mark.parametrize("name", sorted(STATE_DICT_LAYOUT))
def test_state_dict_layout_of_presets_is_unchanged(name):
    lines = _layout(PRESETS[name].spec)
    digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]
    assert (digest, len(lines)) == STATE_DICT_LAYOUT[name], "state-dict keys or shapes changed: checkpoints break"


def test_state_dict_key_names_of_the_shared_blocks():
    mbv3 = [s.split(":")[0] for s in _layout(PRESETS["baseline-mbv3"].spec)]
    for key in ("backbone.stem.0.weight", "backbone.stem.1.running_var", "backbone.stage3.0.expand.0.weight",
                "backbone.stage3.0.dw.1.bias", "backbone.stage3.0.se.fc1.weight", "backbone.stage3.0.se.fc2.bias",
                "backbone.stage3.0.project.1.weight"):
        assert key in mbv3
    res = [s.split(":")[0] for s in _layout(PRESETS["baseline-resnet"].spec)]
    assert "backbone.stage2.0.downsample.0.weight" in res and "backbone.stage2.0.downsample.1.running_mean" in res
    evo = [s.split(":")[0] for s in _layout(PRESETS["evopose2d-xs"].spec)]
    for key in ("stem.conv.weight", "stem.bn.num_batches_tracked", "blocks.1.0.expand.conv.weight",
                "blocks.0.0.se.reduce.weight", "blocks.0.0.se.expand.bias", "blocks.6.1.project.bn.weight"):
        assert key in evo
    assert not [k for k in mbv3 + res + evo if any(p in k for p in (".act.", ".gate.", ".drop."))]


def test_conv_bn_and_convbn_layers():
    layers = conv_bn(8, 16, 3, 2, groups=8, act="hswish", eps=1e-3, momentum=0.01)
    conv, bn, act = layers
    assert (conv.kernel_size, conv.stride, conv.padding, conv.groups, conv.bias) == ((3, 3), (2, 2), (1, 1), 8, None)
    assert (bn.eps, bn.momentum) == (1e-3, 0.01) and isinstance(act, nn.Hardswish) and act.inplace
    assert len(conv_bn(8, 16, 1)) == 2
    m = ConvBN(8, 16, 5, act="swish", inplace=False)
    assert [n for n, _ in m.named_children()] == ["conv", "bn", "act"] and m.conv.padding == (2, 2)
    assert isinstance(m.act, nn.SiLU) and not m.act.inplace
    assert isinstance(ConvBN(8, 16, 1).act, nn.Identity)
    with pytest.raises(ValueError, match="activation 'gelu' is not allowed; choose one of"):
        make_activation("gelu")


@pytest.mark.parametrize("act, gate, names", [("relu", "hardsigmoid", ("fc1", "fc2")), ("swish", "sigmoid", None)])
def test_squeeze_excite_computes_its_formula(act, gate, names):
    torch.manual_seed(0)
    kw = {"names": names} if names else {}
    se = SqueezeExcite(12, 4, act=act, gate=gate, inplace=False, **kw)
    r, e = (getattr(se, n) for n in (names or ("reduce", "expand")))
    assert (r.in_channels, r.out_channels, e.out_channels) == (12, 4, 12) and r.bias is not None
    x = torch.randn(2, 12, 5, 3)
    s = x.mean((2, 3), keepdim=True)
    f_act = torch.relu if act == "relu" else nn.functional.silu
    f_gate = nn.functional.hardsigmoid if gate == "hardsigmoid" else torch.sigmoid
    assert torch.allclose(se(x), x * f_gate(e(f_act(r(s)))))
    with pytest.raises(ValueError, match="gate 'tanh' is not allowed"):
        SqueezeExcite(12, 4, gate="tanh")


def test_drop_connect_masks_per_sample_and_uses_its_generator():
    d = DropConnect(0.5).train()
    y = torch.ones(64, 3, 2, 2)
    out = d(y)
    per_sample = out.flatten(1)
    assert set(per_sample.unique().tolist()) == {0.0, 2.0}                 # dropped, or kept and scaled 1/keep
    assert (per_sample == per_sample[:, :1]).all()                         # one draw per sample
    assert torch.equal(d.eval()(y), y) and torch.equal(DropConnect(0.0).train()(y), y)
    d.train()
    d.generator = torch.Generator().manual_seed(3)
    a = d(y)
    d.generator = torch.Generator().manual_seed(3)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    assert torch.equal(d(y), a) and torch.equal(torch.get_rng_state(), state)   # global RNG untouched


@pytest.mark.parametrize("name", ["baseline-mbv3", "evopose2d-xs"])
def test_build_model_draws_every_weight_from_the_generator(name):
    spec = PRESETS[name].spec
    nets = []
    for global_seed, gen_seed in [(0, 7), (1, 7), (0, 8)]:
        torch.manual_seed(global_seed)
        before = torch.get_rng_state()
        nets.append(build_model(spec, generator=torch.Generator().manual_seed(gen_seed)).state_dict())
        assert torch.equal(torch.get_rng_state(), before)                   # global RNG left as it was
    assert nets[0].keys() == nets[2].keys()
    assert all(torch.equal(nets[0][k], nets[1][k]) for k in nets[0])      # generator alone decides
    assert any(not torch.equal(nets[0][k], nets[2][k]) for k in nets[0])
    torch.manual_seed(5)
    a = build_model(spec).state_dict()                                      # None: the global RNG, as before
    torch.manual_seed(5)
    b = build_model(spec).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(TypeError, match="torch.Generator"):
        build_model(spec, generator=5)


def test_drop_generator_on_evopose_net():
    spec = PRESETS["evopose2d-xs"].spec.replace(drop_connect=0.5)
    torch.manual_seed(0)
    net = build_model(spec).train()
    x = torch.randn(4, 3, 64, 64)
    assert net.drop_generator is None
    torch.manual_seed(1)
    state = torch.get_rng_state()
    with torch.no_grad():
        net(x)
    assert not torch.equal(torch.get_rng_state(), state)                   # default: global RNG, as before
    net.drop_generator = torch.Generator().manual_seed(9)
    assert all(m.generator is net.drop_generator for m in net.modules() if isinstance(m, DropConnect))
    with torch.no_grad():
        a = net(x)
        net.drop_generator = torch.Generator().manual_seed(9)
        torch.manual_seed(2)
        state = torch.get_rng_state()
        b = net(x)
        c = net(x)
    assert torch.equal(a, b) and not torch.equal(b, c) and torch.equal(torch.get_rng_state(), state)
    net.drop_generator = None
    assert all(m.generator is None for m in net.modules() if isinstance(m, DropConnect))
    with pytest.raises(TypeError, match="torch.Generator or None"):
        net.drop_generator = 3
    base = build_model(PRESETS["baseline-resnet"].spec)
    base.drop_generator = torch.Generator()                                # no random layers: accepted, unused
    assert set_drop_generator(base, None) == 0
