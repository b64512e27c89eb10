"""Export rewrites (deploy.rewrites): sub-pixel transposed convolutions, expanded and regrouped grouped
convolutions give torch's output (BN and activation folded in); squeeze-excite means become GlobalAveragePool in
the ONNX graph; exports take them by default (form="fast") and leave them out with form="plain"."""

import json

import onnx
import pytest
import torch
from torch import nn

from posenas_core.cli import main
from posenas_core.deploy.onnx_export import PARITY_ATOL, export_onnx, ort_session, read_onnx_metadata
from posenas_core.deploy import rewrites
from posenas_core.deploy.rewrites import (ExpandedGroupedConv, SubpixelDeconv, expand_grouped_convs, expand_pays,
                                          fast_form, global_pools, phase_taps, regroup_factor, regroup_grouped_convs,
                                          regrouped_conv, subpixel_deconvs, subpixel_unsupported)
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
    head = DeconvHead(16, num_joints=5, channels=(16, 16, 8), num_layers=3, kernels=(4, 3, 4), groups=(1, 16, 4),
                      activation="hswish").eval()
    for m in head.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.load_state_dict(random_bn(m.num_features, m.num_features).state_dict())
    x = torch.randn(1, 16, 6, 4)
    with torch.no_grad():
        want = head(x)
        assert subpixel_deconvs(head) == 2
        got = head(x)
    kinds = [type(m).__name__ for m in head.deconv_layers]      # dense and depthwise rewritten, grouped left
    assert kinds == ["SubpixelDeconv", "Identity", "Identity"] * 2 + ["ConvTranspose2d", "BatchNorm2d", "Hardswish"]
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


@pytest.mark.parametrize("block", [0, 16])
@pytest.mark.parametrize("shape", [(16, 8, 3, 1, False), (560, 280, 7, 1, True), (400, 100, 5, 2, True),
                                   (24, 3, (3, 5), (2, 1), True)], ids=lambda s: f"c{s[0]}g{s[1]}")
def test_expanded_grouped_conv_equals_the_grouped_conv(shape, block):
    c, g, k, stride, bias = shape
    torch.manual_seed(0)
    conv = nn.Conv2d(c, c, k, stride, padding=1, groups=g, bias=bias)
    bn = random_bn(c, 3)
    x = torch.randn(2, c, 9, 7)
    with torch.no_grad():
        assert (ExpandedGroupedConv(conv, bn, block)(x) - bn(conv(x))).abs().max() < 1e-4
        assert (ExpandedGroupedConv(conv, None, block)(x) - conv(x)).abs().max() < 1e-4
    e = ExpandedGroupedConv(conv, block=block)
    assert e.dw.groups == e.dw.in_channels == c * (c // g)                   # one depthwise conv, same MACs
    assert e.dw.weight.numel() == conv.weight.numel()
    # blocked: the repeat and the sum are 1x1 convs of 0/1 weights, with groups whose widths are multiples of 16;
    # 24 channels in 3 groups have no such merge (8 per group, 3 groups), so that one keeps Expand and ReduceSum
    assert (e.select is not None) == (block == 16 and g != 3)
    if e.select is not None:
        for one_by_one, rows_per_one in ((e.select, 1), (e.gather, c // g)):
            w = one_by_one.weight
            assert w.shape[-2:] == (1, 1) and set(w.unique().tolist()) == {0.0, 1.0}
            assert (w.sum((1, 2, 3)) == rows_per_one).all()                 # each output: one input / ci inputs
            assert (w.shape[0] // one_by_one.groups) % 16 == 0 and w.shape[1] % 16 == 0


def test_which_grouped_convs_are_expanded():
    assert expand_pays(nn.Conv2d(560, 560, 7, groups=280))                  # 2 * 2 * (1 + 1) <= 49
    assert expand_pays(nn.Conv2d(160, 160, 7, groups=20))                   # 2 * 8 * 2 <= 49
    assert not expand_pays(nn.Conv2d(160, 160, 7, 2, groups=20))            # 2 * 8 * (4 + 1) > 49: stride 2
    assert not expand_pays(nn.Conv2d(160, 160, 5, groups=16))               # 2 * 10 * 2 > 25
    assert not expand_pays(nn.Conv2d(128, 128, 3, groups=4))                # 2 * 32 * 2 > 9
    assert not expand_pays(nn.Conv2d(64, 64, 3, groups=64))                 # depthwise already
    assert not expand_pays(nn.Conv2d(64, 64, 3)) and not expand_pays(nn.ConvTranspose2d(8, 8, 3, groups=4))
    seq = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1, groups=8), nn.BatchNorm2d(16), nn.ReLU(),
                        nn.Conv2d(16, 16, 3, padding=1, groups=2))
    assert expand_grouped_convs(seq) == 1
    assert [type(m).__name__ for m in seq] == ["ExpandedGroupedConv", "Identity", "ReLU", "Conv2d"]


def test_which_grouped_convs_are_regrouped():
    assert regroup_factor(nn.Conv2d(160, 160, 7, 2, groups=20), 16) == 2   # 8 per group: 2 groups make 16
    assert regroup_factor(nn.Conv2d(400, 400, 5, 2, groups=100), 16) == 4  # 4 per group
    assert regroup_factor(nn.Conv2d(400, 400, 5, 2, groups=100), 8) == 2   # an AVX2 CPU's block
    assert regroup_factor(nn.Conv2d(160, 160, 7, 2, groups=20), 8) == 1    # already blocked there
    assert regroup_factor(nn.Conv2d(64, 64, 3, 2, groups=32), 16) == 1     # 2 per group: 8 groups, too many MACs
    assert regroup_factor(nn.Conv2d(160, 160, 5, groups=16), 16) == 1      # 10 per group: no merge of 2 or 4
    assert regroup_factor(nn.Conv2d(160, 160, 7, groups=20), 16) == 1      # expanded instead (expand_pays)
    assert regroup_factor(nn.Conv2d(64, 64, 3, groups=64), 16) == 1        # depthwise
    assert regroup_factor(nn.Conv2d(160, 160, 7, 2, groups=20), 0) == 1    # a CPU without blocked kernels
    assert regroup_factor(nn.Conv2d(48, 48, 3, 2, groups=6), 16) == 2      # 8 per group, 6 groups: 3 of 16
    assert regroup_factor(nn.Conv2d(40, 40, 3, 2, groups=5), 16) == 1      # 8 per group, 5 groups: no pairs
    assert regroup_factor(nn.Conv2d(48, 48, 3, 2, groups=12), 16) == 4     # 4 per group, 12 groups


def test_regrouped_conv_equals_the_grouped_conv():
    torch.manual_seed(0)
    conv = nn.Conv2d(32, 48, 3, 2, 1, groups=8)                             # 4 in, 6 out per group
    x = torch.randn(2, 32, 11, 9)
    new = regrouped_conv(conv, 4)
    assert new.groups == 2 and new.weight.shape == (48, 16, 3, 3)
    with torch.no_grad():
        assert (new(x) - conv(x)).abs().max() < 1e-5
    w = new.weight.detach().reshape(2, 4, 6, 4, 4, 3, 3)                     # merged group, group, out, group, in
    for a in range(4):
        for b in range(4):
            assert (w[:, a, :, b] == 0).all() == (a != b)                   # block diagonal: zero between groups
    with pytest.raises(ConfigError, match="cannot merge 3 of a conv's 8 groups: choose a divisor of 8"):
        regrouped_conv(conv, 3)
    seq = nn.Sequential(nn.Conv2d(160, 160, 7, 2, 3, groups=20), nn.BatchNorm2d(160), nn.Conv2d(16, 16, 3))
    assert regroup_grouped_convs(seq, block=16) == 1 and seq[0].groups == 10 and isinstance(seq[1], nn.BatchNorm2d)


def test_nchwc_block_follows_the_cpu(monkeypatch):
    import posenas_core.machine as machine

    for features, block in ((["avx2", "avx512f", "avx512_vnni"], 16), (["avx2"], 8), ([], 0)):
        monkeypatch.setattr(machine, "cpu_info", lambda f=features: {"features": f})
        assert rewrites.nchwc_block() == block


@pytest.mark.parametrize("block", [0, 16])
def test_fast_form_of_a_vipnas_net_equals_it(block):
    from posenas_core.deploy.onnx_export import parity_model
    from posenas_core.models.registry import PRESETS, build_model

    net = parity_model(build_model(PRESETS["s-vipnas-mbv3"].spec, generator=torch.Generator().manual_seed(0)), 0,
                       (64, 64))
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = net(x)
        counts = fast_form(net, block)
        got = net(x)
    # 17 grouped convs: 14 expanded; the three with stride 2 (g = 20, 100, 240; 8, 4 and 4 channels per group)
    # regrouped where the CPU has blocked kernels; the head's deconvs are depthwise
    assert counts == {"subpixel_deconvs": 3, "expanded_grouped_convs": 14, "regrouped_convs": 3 if block else 0}
    assert all((m.select is not None) == bool(block) for m in net.modules() if isinstance(m, ExpandedGroupedConv))
    assert (got - want).abs().max() <= PARITY_ATOL


class _SE(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 1)

    def forward(self, x):
        y = self.conv(x)
        gate = torch.sigmoid(self.fc(y.mean((2, 3), keepdim=True)))        # squeeze-excite: becomes GAP
        return y * gate + y.mean(1, keepdim=True) + y.mean((-1, -2), keepdim=True)   # channel mean: stays


def test_global_pools_replace_spatial_means(tmp_path):
    torch.manual_seed(0)
    net, x = _SE().eval(), torch.randn(2, 3, 12, 10)
    with torch.no_grad():
        program = torch.onnx.export(net, (x,), None, dynamo=True, input_names=["images"],
                                    output_names=["heatmaps"], optimize=True, verbose=False)
    proto = program.model_proto
    before = [n.op_type for n in proto.graph.node].count("ReduceMean")
    assert before == 3 and global_pools(proto) == 2
    ops = [n.op_type for n in proto.graph.node]
    assert ops.count("GlobalAveragePool") == 2 and ops.count("ReduceMean") == 1
    onnx.checker.check_model(proto)
    path = tmp_path / "se.onnx"
    path.write_bytes(proto.SerializeToString())
    with torch.no_grad():
        want = net(x)
    got = torch.from_numpy(ort_session(path).run(["heatmaps"], {"images": x.numpy()})[0])
    assert (got - want).abs().max() <= 1e-5


def test_export_is_fast_by_default_and_plain_on_request(net, tmp_path):
    x = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        want = net(x)
    for form in ("fast", "plain"):
        kw = {} if form == "fast" else {"form": "plain"}
        path = export_onnx(net, tmp_path / f"{form}.onnx", (64, 64), **kw)
        ops = _op_types(path)
        assert ("ConvTranspose" in ops) == (form == "plain") and ("Col2Im" in ops) == (form == "fast")
        meta = read_onnx_metadata(path)
        assert meta["posenas.form"] == form
        assert meta.get("posenas.nchwc_block") == (str(rewrites.nchwc_block()) if form == "fast" else None)
        got = torch.from_numpy(ort_session(path).run(["heatmaps"], {"images": x.numpy()})[0])
        assert (got - want).abs().max() <= PARITY_ATOL
    assert any(isinstance(m, nn.ConvTranspose2d) for m in net.modules())   # the model itself is not rewritten
    with pytest.raises(ConfigError, match="export form 'quick' is unknown; allowed: \\['fast', 'plain'\\]"):
        export_onnx(net, tmp_path / "x.onnx", (64, 64), form="quick")


def test_posenas_export_form_flag(tmp_path, capsys):
    out = tmp_path / "n.onnx"
    assert main(["export", "evopose2d-xs", "--input", "64x64", "--out", str(out), "--form", "plain"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["form"] == "plain" and result["parity_max_abs_diff"] <= PARITY_ATOL and "nchwc_block" not in result
    assert "ConvTranspose" in _op_types(out)
    assert main(["export", "evopose2d-xs", "--input", "64x64", "--out", str(out), "--no-check"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["form"] == "fast" and result["nchwc_block"] == rewrites.nchwc_block()
    assert "ConvTranspose" not in _op_types(out)
