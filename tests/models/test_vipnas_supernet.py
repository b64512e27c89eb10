"""ViPNAS supernets: every member run by the supernet equals its extracted static net, built as build_vipnas
would build it (keys, shapes, module types, params, MACs); gradients stay in the used slices; no state; errors."""

import numpy as np
import pytest
import torch
from torch import nn

from posenas_core.errors import ConfigError, SpecError
from posenas_core.eval.profiler import count_macs, count_params, spec_stats
from posenas_core.models import ViPNASNet, build_supernet
from posenas_core.models.registry import get_preset
from posenas_core.models.vipnas import build_vipnas
from posenas_core.spaces import get_space
from posenas_core.spaces.vipnas import S_VIPNAS_MBV3

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SPACES = ("vipnas-res50", "vipnas-mbv3")
HW = (64, 64)                 # the smallest square input both backbones (stride 32) take


def _randomised(supernet):
    """Weights ~ N(0, 1 / fan_in), biases, BN / LN affine and BN running statistics random (seeded), so that a
    wrong slice anywhere changes the heatmaps well above 1e-5."""
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for name, t in supernet.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            if t.ndim == 4:
                t.copy_(torch.randn(t.shape, generator=g) / np.sqrt(t[0].numel()))
            elif name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) * 1.5 + 0.5)
            elif name.endswith("weight"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            else:
                t.copy_((torch.rand(t.shape, generator=g) - 0.5) * 0.4)
    return supernet


@pytest.fixture(scope="module", params=SPACES)
def supernet(request):
    return _randomised(build_supernet(request.param, torch.Generator().manual_seed(0))).eval()


def _x(seed=1, batch=2):
    return torch.randn(batch, 3, *HW, generator=torch.Generator().manual_seed(seed))


def _archs(space):
    return [space.min(), space.max(), space.released(), *(space.sample(np.random.default_rng(i)) for i in range(20))]


def _meta(spec):
    with torch.device("meta"):
        return build_vipnas(spec)


def _shapes(model):
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def test_every_member_equals_its_extracted_net_built_as_from_scratch(supernet):
    x = _x()
    archs = _archs(supernet.space)
    assert len(set(archs)) >= 22
    for arch in archs:
        name = arch.to_short()
        with torch.no_grad():
            y = supernet(x, arch)
            net = supernet.extract(arch)
            assert type(net) is ViPNASNet and net.spec == arch and not net.training
            assert y.shape == (2, 17, HW[0] // 4, HW[1] // 4) and y.abs().max() > 0.05, name
            assert (y - net(x)).abs().max().item() < 1e-5, name
        ref = _meta(arch)
        assert _shapes(net) == _shapes(ref), name
        assert [type(m) for m in net.modules()] == [type(m) for m in ref.modules()], name
        assert count_params(net) == count_params(ref), name        # ref: build_vipnas(arch) on the meta device
        assert count_macs(net, HW) == count_macs(ref, HW), name


def test_supernet_params_and_grouped_storage():
    """Each grouped layer stores what the fewest groups its row allows need: Res50's max() uses groups 16
    everywhere, so that supernet holds exactly the max member's parameters; MBv3's at least those."""
    counts = {}
    for name in SPACES:
        with torch.device("meta"):
            net = build_supernet(name)
        counts[name] = count_params(net)["params"], spec_stats(get_space(name).max(), HW)["params"]
        rows = get_space(name).bounds.stages
        for s, (blocks, row) in enumerate(zip(net.stages, net.max_arch.stages)):
            conv = blocks[0].conv2.conv if name == "vipnas-res50" else blocks[0].mid.conv
            fewest = min(g for _, g in rows[s].pairs)
            assert conv.min_groups == fewest and conv.weight.shape[1] == conv.max_in // fewest
    assert counts["vipnas-res50"][0] == counts["vipnas-res50"][1] == 10_111_015
    assert counts["vipnas-mbv3"][0] >= counts["vipnas-mbv3"][1]


def test_extracted_released_res50_has_the_preset_shapes():
    net = build_supernet("vipnas-res50", torch.Generator().manual_seed(0)).train()
    extracted = net.extract(get_preset("s-vipnas-res50").spec)
    assert extracted.training
    assert _shapes(extracted) == _shapes(_meta(get_preset("s-vipnas-res50").spec))


def test_extract_copies_the_weights_and_draws_no_random_numbers():
    net = build_supernet("vipnas-mbv3", torch.Generator().manual_seed(0))
    rng = torch.get_rng_state()
    arch = S_VIPNAS_MBV3
    sub = net.sub_state_dict(arch)
    extracted = net.extract(arch)
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(sub[k], v) for k, v in extracted.state_dict().items())
    before = net.stages[1][0].mid.conv.weight.detach().clone()
    with torch.no_grad():
        extracted.stages[1][0].mid.conv.weight.add_(1.0)
        sub["stages.1.0.mid.conv.weight"].add_(1.0)
    assert torch.equal(net.stages[1][0].mid.conv.weight, before)
    # the stored weight of that layer: (max mid 144, 144 // the fewest groups, 7, 7); the member uses 120 x 1
    fewest = min(g for _, g in net.space.bounds.stages[1].pairs)
    assert tuple(before.shape) == (144, 144 // fewest, 7, 7)
    assert extracted.stages[1][0].mid.conv.weight.shape == (120, 1, 7, 7)


def test_init_is_mmposes_and_comes_from_the_generator():
    rng = torch.get_rng_state()
    a, b = (build_supernet("vipnas-res50", torch.Generator().manual_seed(3)) for _ in range(2))
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    w = a.stages[2][0].conv2.conv.weight
    assert 0.0008 < w.std().item() < 0.0012
    assert torch.equal(a.final.bias, torch.zeros(17))
    assert torch.equal(a.stages[0][0].gc.channel_add_conv[1].weight, torch.ones(16, 1, 1))     # LN([16, 1, 1])


def _with_attention(space):
    """min() with attention (GC / SE) switched on in stage 1, a member of `space`."""
    arch = space.min()
    first = arch.stages[0]
    first = first._replace(attention="gc") if hasattr(first, "attention") else first._replace(se=True)
    return space.validate(arch.replace(stages=(first,) + arch.stages[1:]))


@pytest.mark.parametrize("name", SPACES)
def test_gradients_stay_inside_the_used_slices(name):
    net = _randomised(build_supernet(name, torch.Generator().manual_seed(0))).train()
    arch = _with_attention(net.space)
    y = net(_x(batch=2), arch)
    (y * torch.randn(y.shape, generator=torch.Generator().manual_seed(2))).sum().backward()
    used = _shapes(_meta(arch))
    n_used = 0
    for key, p in net.named_parameters():
        grad = torch.zeros_like(p) if p.grad is None else p.grad
        if key not in used:
            assert not grad.any(), f"{key} is not in {arch.to_short()} but has a gradient"
            continue
        n_used += 1
        index = tuple(slice((big - small) // 2 if axis >= 2 else 0, ((big - small) // 2 if axis >= 2 else 0) + small)
                      for axis, (big, small) in enumerate(zip(p.shape, used[key])))
        inside = torch.zeros_like(grad, dtype=torch.bool)
        inside[index] = True
        assert not grad[~inside].any(), f"{key}: gradient outside the slice {used[key]} of {tuple(p.shape)}"
        if not key.endswith("conv_mask.bias"):          # softmax is shift-invariant: that bias has no gradient
            assert grad[inside].abs().sum() > 0, f"{key}: no gradient inside the used slice"
    assert n_used == sum(1 for k in used if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))


def _attributes(module):
    return {n: {k: v for k, v in vars(m).items() if k not in ("_parameters", "_buffers", "_modules")}
            for n, m in module.named_modules()}


@pytest.mark.parametrize("name", SPACES)
def test_forward_keeps_no_state(name):
    net = _randomised(build_supernet(name, torch.Generator().manual_seed(0))).eval()
    space, x = net.space, _x()
    a, b = space.max(), space.sample(np.random.default_rng(5))
    attrs, state = _attributes(net), {k: v.clone() for k, v in net.state_dict().items()}
    with torch.no_grad():
        alone = [net(x, a), net(x, b)]
        mixed = [net(x, s) for s in (a, b, b, a)]
    assert torch.equal(mixed[0], alone[0]) and torch.equal(mixed[3], alone[0])
    assert torch.equal(mixed[1], alone[1]) and torch.equal(mixed[2], alone[1])
    assert _attributes(net) == attrs
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in state.items())
    net.train()
    net(x, b)
    moved = {k for k, v in state.items() if not torch.equal(v, net.state_dict()[k])}
    assert moved and all(k.endswith(("running_mean", "running_var", "num_batches_tracked")) for k in moved)


def test_bad_input_is_one_clear_error():
    net = build_supernet("vipnas-res50", torch.Generator().manual_seed(0))
    rel = net.space.released()
    deep = rel.replace(stages=(rel.stages[0]._replace(depth=5),) + rel.stages[1:])
    wide_kernel = rel.replace(stages=rel.stages[:3] + (rel.stages[3]._replace(kernel=7),))
    x = _x(batch=1)
    with pytest.raises(SpecError, match=r"stages\[0\]\.depth = 5 is not allowed; allowed: \[3, 4\]"):
        net(x, deep)
    with pytest.raises(SpecError, match=r"stages\[3\]\.kernel = 7 is not allowed; allowed: \[3, 5\]"):
        net.extract(wide_kernel)
    with pytest.raises(SpecError, match=r"'vipnas-res50' holds ViPNASResSpecs, got ViPNASMbv3Spec"):
        net(x, S_VIPNAS_MBV3)
    with pytest.raises(SpecError, match=r"holds ViPNASResSpecs, got ViPNASMbv3Spec"):
        net.sub_state_dict(S_VIPNAS_MBV3)
    with pytest.raises(ValueError, match="multiple of the backbone stride 32"):
        net(torch.zeros(1, 3, 64, 48), rel)
    with pytest.raises(SpecError, match=r"ViPNASSupernet needs a space of ViPNASResSpecs or ViPNASMbv3Specs .*"
                                        r"'evopose2d' of EvoPoseSpec"):
        build_supernet("evopose2d")
    with pytest.raises(ConfigError, match="unknown search space 'vipnas-res5'"):
        build_supernet("vipnas-res5")


def test_the_stem_and_first_blocks_follow_the_static_nets_rules():
    net = build_supernet("vipnas-res50")
    assert isinstance(net.stem_pool, nn.MaxPool2d) and net.stem.conv.max_kernel == 7
    assert (net.stride, net.output_stride) == (32, 4)
    assert hasattr(net.stages[0][0], "downsample") and not hasattr(net.stages[0][1], "downsample")
    # stem 64 and stage-1 width 64: the static net has no downsample there, and neither does the sub-network
    arch = net.space.min().replace(stem_channels=64)
    assert "stages.0.0.downsample.conv.weight" not in net.sub_state_dict(arch)
    assert "stages.0.0.downsample.conv.weight" in net.sub_state_dict(net.space.min())
    mb = build_supernet("vipnas-mbv3")
    assert not hasattr(mb.stages[0][0], "expand") and hasattr(mb.stages[1][0], "expand")
