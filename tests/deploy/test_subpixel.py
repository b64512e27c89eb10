"""Sub-pixel transposed convolutions (deploy.subpixel): the same output as torch's ConvTranspose2d (+ BN + act),
the same MACs, taken into exports by default and left out with deconv="native"."""

import json

import onnx
import pytest
import torch
from torch import nn

from posenas_core.cli import main
from posenas_core.deploy.onnx_export import PARITY_ATOL, export_onnx, ort_session, read_onnx_metadata
from posenas_core.deploy.subpixel import SubpixelDeconv, phase_taps, subpixel_deconvs, subpixel_unsupported
from posenas_core.errors import ConfigError
from posenas_core.models.heads import DeconvHead

CASES = [  # in, out, kernel, stride, padding, output_padding, groups, bias
    (8, 12, 4, 2, 1, 0, 1, False), (8, 12, 3, 2, 1, 1, 1, False), (8, 12, 2, 2, 0, 0, 1, True),
    (8, 12, 4, 2, 1, 0, 4, False), (16, 16, 3, 2, 1, 1, 16, True), (6, 9, 3, 3, 0, 0, 3, True),
    (8, 4, 6, 4, 1, 0, 1, False), (8, 4, (3, 4), (1, 2), (1, 1), (0, 0), 2, True)]


def random_bn(c: int, seed: int) -> nn.BatchNorm2d:
    g = torch.Generator().manual_seed(seed)
    bn = nn.BatchNorm2d(c).eval()
    with torch.no_grad():
        bn.running_mean.normal_(generator=g)
        bn.running_var.uniform_(0.3, 2.0, generator=g)
        bn.weight.normal_(generator=g)
        bn.bias.normal_(generator=g)
    return bn


@pytest.mark.parametrize("case", CASES, ids=lambda c: "k{2}s{3}p{4}o{5}g{6}".format(*c))
def test_same_output_as_conv_transpose_with_bn_and_act(case):
    cin, cout, k, s, p, op, g, bias = case
    torch.manual_seed(0)
    deconv = nn.ConvTranspose2d(cin, cout, k, s, p, op, groups=g, bias=bias)
    bn, act = random_bn(cout, 1), nn.SiLU()
    x = torch.randn(2, cin, 7, 5)
    with torch.no_grad():
        want = act(bn(deconv(x)))
        got = SubpixelDeconv(deconv, bn, act)(x)
        bare = SubpixelDeconv(deconv)(x)
        assert got.shape == want.shape
        assert (got - want).abs().max() < 1e-5
        assert (bare - deconv(x)).abs().max() < 1e-5


def test_phase_convs_hold_exactly_the_deconv_taps():
    d = nn.ConvTranspose2d(8, 8, 3, 2, 1, 1)
    sp = SubpixelDeconv(d)
    assert sorted(c.kernel_size for c in sp.phases) == [(1, 1), (1, 2), (2, 1), (2, 2)]
    assert sum(c.weight[0, 0].numel() for c in sp.phases) == 9           # the MACs of the deconvolution
    sp4 = SubpixelDeconv(nn.ConvTranspose2d(8, 8, 4, 2, 1, 0))
    assert [c.kernel_size for c in sp4.phases] == [(2, 2)] * 4
    # along one axis: even outputs of k=3, s=2, p=1 read x[m] through tap 1; odd ones x[m+1] (tap 0), x[m] (tap 2)
    assert phase_taps(3, 2, 1) == [[(0, 1)], [(1, 0), (0, 2)]]


def test_rewrite_of_a_head_in_place():
    head = DeconvHead(16, num_joints=5, channels=(16, 8), num_layers=2, kernels=(4, 3), groups=(1, 4),
                      activation="hswish").eval()
    for m in head.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.load_state_dict(random_bn(m.num_features, m.num_features).state_dict())
    x = torch.randn(1, 16, 6, 4)
    with torch.no_grad():
        want = head(x)
        assert subpixel_deconvs(head) == 2
        got = head(x)
    kinds = [type(m).__name__ for m in head.deconv_layers]
    assert kinds == ["SubpixelDeconv", "Identity", "Identity"] * 2
    assert not any(isinstance(m, (nn.ConvTranspose2d, nn.BatchNorm2d)) for m in head.modules())
    assert (got - want).abs().max() < 1e-5


def test_unsupported_deconvs_are_named_and_left_native():
    odd = nn.ConvTranspose2d(4, 4, 3, 2, 1, 0)              # output 2H - 1: not a whole number of phases
    dil = nn.ConvTranspose2d(4, 4, 3, 2, 2, 1, dilation=2)
    assert "output_padding 0" in subpixel_unsupported(odd)
    assert "dilation (2, 2)" in subpixel_unsupported(dil)
    with pytest.raises(ConfigError, match="no sub-pixel form: output not exactly stride x input"):
        SubpixelDeconv(odd)
    with pytest.raises(ConfigError, match="only elementwise activations .* got Softmax"):
        SubpixelDeconv(nn.ConvTranspose2d(4, 4, 4, 2, 1), act=nn.Softmax(1))
    seq = nn.Sequential(odd, nn.BatchNorm2d(4), nn.ReLU(), nn.ConvTranspose2d(4, 4, 4, 2, 1))
    assert subpixel_deconvs(seq) == 1
    assert [type(m).__name__ for m in seq] == ["ConvTranspose2d", "BatchNorm2d", "ReLU", "SubpixelDeconv"]


def _op_types(path) -> set:
    return {n.op_type for n in onnx.load(str(path)).graph.node}


def test_export_is_subpixel_by_default_and_native_on_request(net, tmp_path):
    x = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        want = net(x)
    for form in ("subpixel", "native"):
        kw = {} if form == "subpixel" else {"deconv": "native"}
        path = export_onnx(net, tmp_path / f"{form}.onnx", (64, 64), **kw)
        ops = _op_types(path)
        assert ("ConvTranspose" in ops) == (form == "native") and ("Col2Im" in ops) == (form == "subpixel")
        assert read_onnx_metadata(path)["posenas.deconv"] == form
        got = torch.from_numpy(ort_session(path).run(["heatmaps"], {"images": x.numpy()})[0])
        assert (got - want).abs().max() <= PARITY_ATOL
    assert any(isinstance(m, nn.ConvTranspose2d) for m in net.modules())   # the model itself is not rewritten
    with pytest.raises(ConfigError, match="deconv form 'fast' is unknown; allowed: \\['subpixel', 'native'\\]"):
        export_onnx(net, tmp_path / "x.onnx", (64, 64), deconv="fast")


def test_posenas_export_deconv_flag(tmp_path, capsys):
    out = tmp_path / "n.onnx"
    assert main(["export", "evopose2d-xs", "--input", "64x64", "--out", str(out), "--deconv", "native"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["deconv"] == "native" and result["parity_max_abs_diff"] <= PARITY_ATOL
    assert "ConvTranspose" in _op_types(out)
