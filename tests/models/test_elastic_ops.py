"""Elastic ops (posenas_core.ops.elastic): every choice equals its static twin, centred crops, errors, BN stats."""

import numpy as np
import pytest
import torch
from torch import nn

from posenas_core.errors import ConfigError
from posenas_core.ops import (GATES, ConvBN, ElasticBatchNorm2d, ElasticConv2d, ElasticConvBN, ElasticConvTranspose2d,
                              ElasticSqueezeExcite, MmcvHSigmoid, SqueezeExcite)

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SEEDS = range(24)


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape
    return (a - b).abs().max().item()


def _n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _conv_choices(max_in, max_out, max_kernel, kernels):
    """(in, out, kernel, groups): the max, the min, then seeded random ones."""
    yield max_in, max_out, max_kernel, 1
    yield 1, 1, min(kernels), 1
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        cin, cout = int(rng.integers(1, max_in + 1)), int(rng.integers(1, max_out + 1))
        groups = int(rng.choice(_divisors(np.gcd(cin, cout))))
        yield cin, cout, int(rng.choice(kernels)), groups


def _x(seed: int, c: int, size: int = 9) -> torch.Tensor:
    return torch.randn(2, c, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("stride,bias", [(1, False), (2, True)])
def test_conv_choices_equal_their_static_twin(stride, bias):
    torch.manual_seed(0)
    op = ElasticConv2d(12, 16, 7, stride=stride, bias=bias).eval()
    before = {k: v.clone() for k, v in op.state_dict().items()}
    choices = list(_conv_choices(12, 16, 7, [1, 3, 5, 7]))
    assert len(choices) >= 22 and any(g > 1 for *_, g in choices)
    for i, (cin, cout, k, g) in enumerate(choices):
        x = _x(i, cin)
        y = op(x, cout, k, g)
        twin = op.static(cin, cout, k, g)
        assert type(twin) is nn.Conv2d
        assert y.shape == (2, cout, (9 - 1) // stride + 1, (9 - 1) // stride + 1)
        assert _max_diff(y, twin(x)) < 1e-5, (cin, cout, k, g)
        fresh = nn.Conv2d(cin, cout, k, stride, k // 2, groups=g, bias=bias)
        assert _n_params(twin) == _n_params(fresh) and twin.weight.shape == fresh.weight.shape
    assert all(torch.equal(v, op.state_dict()[k]) for k, v in before.items()), "a call changed the op's state"


def test_conv_crop_is_the_centre_and_groups_keep_the_first_inputs():
    op = ElasticConv2d(8, 6, 7)
    rng = np.random.default_rng(3)
    for _ in range(5):
        k = int(rng.choice([1, 3, 5]))
        w, _ = op.sub_weights(8, 6, k, groups=2)
        c = (7 - k) // 2
        assert torch.equal(w, op.weight.detach()[:6, :4, c:c + k, c:c + k])
    assert torch.equal(op.sub_weights(8, 6, 3)[0], op.weight.detach()[:, :, 2:5, 2:5])
    # a 1x1 crop is the centre tap: the conv is then a per-pixel matrix product with W[:, :, 3, 3]
    x = _x(1, 8)
    y = op(x, 6, 1)
    assert _max_diff(y, torch.einsum("oi,bihw->bohw", op.weight.detach()[:, :, 3, 3], x)) < 1e-5


def test_static_twin_is_a_copy_and_draws_no_random_numbers():
    op = ElasticConv2d(4, 4, 3, bias=True)
    state = torch.get_rng_state()
    twin = op.static(4, 4, 3)
    assert torch.equal(torch.get_rng_state(), state)
    with torch.no_grad():
        twin.weight.zero_()
        twin.bias.zero_()
    assert op.weight.abs().sum() > 0 and op.bias.abs().sum() > 0


@pytest.mark.parametrize("max_kernel,kernels", [(4, [2, 4]), (5, [3, 5])])
def test_deconv_choices_equal_their_static_twin_and_double_the_size(max_kernel, kernels):
    torch.manual_seed(1)
    op = ElasticConvTranspose2d(12, 16, max_kernel, stride=2, bias=True).eval()
    for i, (cin, cout, k, g) in enumerate(_conv_choices(12, 16, max_kernel, kernels)):
        x = _x(i, cin, size=5)
        y = op(x, cout, k, g)
        twin = op.static(cin, cout, k, g)
        assert type(twin) is nn.ConvTranspose2d
        assert y.shape == (2, cout, 10, 10), (k, y.shape)
        assert _max_diff(y, twin(x)) < 1e-5, (cin, cout, k, g)
        pad, out_pad = op.padding(k)
        fresh = nn.ConvTranspose2d(cin, cout, k, 2, pad, out_pad, groups=g, bias=True)
        assert _n_params(twin) == _n_params(fresh) and twin.weight.shape == fresh.weight.shape


def test_deconv_padding_and_crop():
    op = ElasticConvTranspose2d(6, 8, 4)
    assert op.padding(4) == (1, 0) and op.padding(2) == (0, 0)
    assert ElasticConvTranspose2d(6, 8, 5).padding(3) == (1, 1)
    w, _ = op.sub_weights(6, 8, 2, groups=2)
    assert torch.equal(w, op.weight.detach()[:6, :4, 1:3, 1:3])


def _bn_with_stats() -> ElasticBatchNorm2d:
    """An elastic BN(16) after training batches at widths 16, 10, 4 (with affine values set away from 1 / 0)."""
    torch.manual_seed(2)
    bn = ElasticBatchNorm2d(16)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
    bn.train()
    for i, c in enumerate([16, 10, 4]):
        bn(_x(i, c) * 3 + 1)
    return bn.eval()


def test_bn_training_moves_only_the_first_channels():
    bn = ElasticBatchNorm2d(16).train()
    bn(_x(0, 16) * 2 + 1)
    mean, var = bn.running_mean.clone(), bn.running_var.clone()
    bn(_x(1, 6) * 3 - 2)
    assert not torch.allclose(bn.running_mean[:6], mean[:6]) and not torch.allclose(bn.running_var[:6], var[:6])
    assert torch.equal(bn.running_mean[6:], mean[6:]) and torch.equal(bn.running_var[6:], var[6:])
    assert int(bn.num_batches_tracked) == 2


def test_bn_choices_equal_their_static_twin():
    bn = _bn_with_stats()
    assert not torch.allclose(bn.running_mean, torch.zeros(16))
    widths = [16, 1] + [int(np.random.default_rng(s).integers(1, 17)) for s in SEEDS]
    for i, c in enumerate(widths):
        x = _x(10 + i, c)
        twin = bn.static(c)
        assert type(twin) is nn.BatchNorm2d and not twin.training
        assert _n_params(twin) == _n_params(nn.BatchNorm2d(c))
        assert torch.equal(twin.running_mean, bn.running_mean[:c]) and twin.num_batches_tracked == 3
        assert (twin.eps, twin.momentum) == (bn.eps, bn.momentum)
        y = bn(x)
        assert y.shape == x.shape and _max_diff(y, twin(x)) < 1e-5


def test_bn_training_step_matches_the_static_twin():
    bn = _bn_with_stats()
    twin = bn.static(7).train()
    bn.train()
    x = _x(5, 7)
    assert _max_diff(bn(x), twin(x)) < 1e-5
    assert _max_diff(bn.running_mean[:7], twin.running_mean) < 1e-6
    assert _max_diff(bn.running_var[:7], twin.running_var) < 1e-6


def test_se_choices_equal_their_static_twin():
    torch.manual_seed(4)
    se = ElasticSqueezeExcite(64, names=("fc1", "fc2")).eval()
    assert se.inner(64) == 16 and se.inner(24) == 8 and se.inner(40) == 16
    widths = [64, 1] + [int(np.random.default_rng(s).integers(1, 65)) for s in SEEDS]
    for i, c in enumerate(widths):
        x = _x(20 + i, c, size=5)
        twin = se.static(c)
        ref = SqueezeExcite(c, se.inner(c), act="relu", gate="hardsigmoid", names=("fc1", "fc2"))
        assert type(twin) is SqueezeExcite
        assert {k: v.shape for k, v in twin.state_dict().items()} == {k: v.shape for k, v in ref.state_dict().items()}
        y = se(x)
        assert y.shape == x.shape and _max_diff(y, twin(x)) < 1e-5


@pytest.mark.parametrize("call,match", [
    (lambda: ElasticConv2d(8, 8, 5)(_x(0, 8), 9, 3), r"out_channels 9 .*1\.\.8"),
    (lambda: ElasticConv2d(8, 8, 5)(_x(0, 9), 8, 3), r"input has 9 channels; allowed 1\.\.8"),
    (lambda: ElasticConv2d(8, 8, 5)(_x(0, 8), 8, 7), r"kernel 7 .*odd size from 1 to 5"),
    (lambda: ElasticConv2d(8, 8, 5)(_x(0, 8), 8, 4), r"kernel 4 .*odd size from 1 to 5"),
    (lambda: ElasticConv2d(8, 8, 5)(_x(0, 6), 8, 3, groups=4), r"groups 4 .*input width 6 and out_channels 8"),
    (lambda: ElasticConv2d(8, 8, 5).static(8, 6, 3, groups=4), r"groups 4 .*input width 8 and out_channels 6"),
    (lambda: ElasticConvTranspose2d(8, 8, 4)(_x(0, 8), 8, 3), r"kernel 3 .*even size from 1 to 4"),
    (lambda: ElasticConvTranspose2d(8, 8, 4)(_x(0, 8), 9, 4), r"out_channels 9 .*1\.\.8"),
    (lambda: ElasticConvTranspose2d(8, 8, 4, stride=4)(_x(0, 8), 8, 2), r"kernel 2 .*allowed kernels >= stride 4"),
    (lambda: ElasticConvTranspose2d(8, 8, 4).static(8, 8, 4, groups=3), r"groups 3 .*input width 8"),
    (lambda: ElasticBatchNorm2d(8)(_x(0, 9)), r"input has 9 channels; allowed 1\.\.8"),
    (lambda: ElasticBatchNorm2d(8).static(0), r"input has 0 channels; allowed 1\.\.8"),
    (lambda: ElasticSqueezeExcite(8, gate="tanh"), r"gate 'tanh' is not allowed"),
])
def test_errors_name_the_value_and_what_is_allowed(call, match):
    with pytest.raises(ConfigError, match=match):
        call()


@pytest.mark.parametrize("transposed", [False, True])
def test_min_groups_stores_only_the_columns_the_fewest_groups_need(transposed):
    torch.manual_seed(5)
    cls, kernel, kernels = (ElasticConvTranspose2d, 4, [2, 4]) if transposed else (ElasticConv2d, 5, [1, 3, 5])
    op = cls(12, 16, kernel, bias=True, min_groups=4).eval()
    assert op.weight.shape == ((12, 4, 4, 4) if transposed else (16, 3, 5, 5))
    assert _n_params(op) == op.weight.numel() + 16 and "min_groups=4" in repr(op)
    choices = [(12, 16, kernel, 4), (12, 12, kernel, 12)]
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        cin, cout = int(rng.choice([4, 8, 12])), int(rng.choice([4, 8, 12, 16]))
        groups = int(rng.choice([g for g in _divisors(np.gcd(cin, cout)) if g >= 4]))
        choices.append((cin, cout, int(rng.choice(kernels)), groups))
    for i, (cin, cout, k, g) in enumerate(choices):
        x = _x(30 + i, cin, size=5)
        w, _ = op.sub_weights(cin, cout, k, g)
        c = (kernel - k) // 2
        first = (cin, cout // g) if transposed else (cout, cin // g)
        assert torch.equal(w, op.weight.detach()[:first[0], :first[1], c:c + k, c:c + k])
        assert _max_diff(op(x, cout, k, g), op.static(cin, cout, k, g)(x)) < 1e-5, (cin, cout, k, g)
    with pytest.raises(ConfigError, match=r"groups 2 is not allowed; the weight is stored for groups >= 4"):
        op(_x(0, 12, size=5), 16, kernel, 2)
    with pytest.raises(ConfigError, match=r"min_groups 0 is not allowed; choose 1\.\.(12|16)"):
        cls(12, 16, kernel, min_groups=0)


def test_conv_bn_choices_equal_their_static_conv_bn():
    torch.manual_seed(6)
    op = ElasticConvBN(12, 16, 5, stride=2, act="relu", min_groups=2)
    with torch.no_grad():
        for name in ("weight", "bias", "running_mean"):
            getattr(op.bn, name).uniform_(-0.5, 0.5)
        op.bn.running_var.uniform_(0.5, 2)
    op.eval()
    for i, (cin, cout, k, g) in enumerate([(12, 16, 5, 2), (6, 8, 3, 2), (4, 12, 1, 4), (12, 4, 5, 4)]):
        twin = op.static(cin, cout, k, g)
        ref = ConvBN(cin, cout, k, 2, g, act="relu")
        assert type(twin) is ConvBN and not twin.training and isinstance(twin.act, nn.ReLU)
        shapes = {key: v.shape for key, v in ref.state_dict().items()}
        assert {key: v.shape for key, v in twin.state_dict().items()} == shapes
        x = _x(40 + i, cin)
        y = op(x, cout, k, g)
        assert y.shape == (2, cout, 5, 5) and (y >= 0).all() and _max_diff(y, twin(x)) < 1e-5
    assert set(op.state_dict()) == {"conv.weight", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var",
                                    "bn.num_batches_tracked"}


def test_mmcv_hsigmoid_gate_in_the_elastic_se():
    assert GATES["mmcv_hsigmoid"] is MmcvHSigmoid
    x = torch.tensor([-3.0, -1.0, 0.0, 0.5, 1.0, 3.0])
    assert torch.equal(MmcvHSigmoid()(x), torch.tensor([0.0, 0.0, 0.5, 0.75, 1.0, 1.0]))
    torch.manual_seed(7)
    se = ElasticSqueezeExcite(48, divisor=1, gate="mmcv_hsigmoid").eval()
    for i, c in enumerate([48, 20, 7]):
        twin = se.static(c)
        assert isinstance(twin.gate, MmcvHSigmoid) and twin.reduce.out_channels == round(c / 4)
        x = _x(50 + i, c, size=5)
        assert _max_diff(se(x), twin(x)) < 1e-5
