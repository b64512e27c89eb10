"""EvoPose2D: genotype space, spec validation and strings, mutation, compound scaling, network and presets."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from posenas_core.errors import SpecError
from posenas_core.eval.profiler import count_macs, count_params
from posenas_core.genotype import spec_from_json
from posenas_core.models.evopose import MBConv, build_evopose
from posenas_core.models.registry import PRESETS, build_model, load_spec
from posenas_core.spaces import evopose as ev
from posenas_core.spaces.evopose import (
    ANCESTOR,
    GENOTYPE_S,
    GENOTYPE_XS,
    EvoPoseSpec,
    compound_scaling,
    genotype_from_str,
    genotype_to_str,
    mutate,
    round_filters,
    sample,
    scaled_spec,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# -- published figures (reference/evopose2d.md section 2): trainable, with BN stats, conv MACs ---------------
@pytest.mark.parametrize("name, params, with_bn, gmacs, hw", [
    ("evopose2d-xs", 2_496_239, 2_531_199, 0.4624, (256, 192)),
    ("evopose2d-s", 2_496_239, 2_531_199, 1.0641, (256, 192)),
    ("evopose2d-m", 7_256_105, 7_341_609, 5.5498, (384, 288)),
    ("evopose2d-l", 14_566_883, 14_709_587, 17.5904, (512, 384)),
    ("evopose2d-ancestor", 4_261_901, 4_302_125, None, (256, 192)),
])
def test_presets_match_published_counts(name, params, with_bn, gmacs, hw):
    preset = PRESETS[name]
    assert tuple(preset.input_size_hw) == hw
    model = build_model(preset.spec)
    counts = count_params(model)
    assert counts["params"] == params                    # exact, well within the 1%
    assert counts["params_with_bn_stats"] == with_bn
    if gmacs is not None:
        assert abs(count_macs(model, hw) / 1e9 / gmacs - 1) < 0.001     # issue: within 1%; measured <= 0.015%


def test_scaled_presets_layout_matches_public_code():
    """Per-module blocks / channels and stem / head widths after compound scaling (reference table)."""
    for name, blocks, chans, stem, head in [
        ("evopose2d-s", [1, 3, 2, 4, 2, 4, 2], [16, 24, 40, 80, 112, 128, 80], 32, 128),
        ("evopose2d-m", [2, 6, 4, 7, 4, 7, 4], [24, 32, 56, 104, 144, 168, 104], 40, 168),
        ("evopose2d-l", [3, 8, 5, 10, 5, 10, 5], [24, 40, 64, 128, 176, 208, 128], 48, 208),
    ]:
        spec = PRESETS[name].spec
        plan = spec.module_plan()
        assert [p["blocks"] for p in plan] == blocks
        assert [p["out"] for p in plan] == chans
        model = build_model(spec)
        assert model.stem.conv.out_channels == stem
        assert model.head[0].deconv.out_channels == head
        assert [len(m) for m in model.blocks] == blocks


def test_compound_scaling_coefficients():
    assert compound_scaling((256, 192))["phi"] == pytest.approx(0.0, abs=1e-12)
    m = compound_scaling((384, 288))
    assert (round(m["phi"], 3), round(m["depth_mult"], 4), round(m["width_mult"], 4)) == (2.901, 1.6971, 1.3185)
    l_ = compound_scaling((512, 384))
    assert (round(l_["phi"], 3), round(l_["depth_mult"], 3), round(l_["width_mult"], 4)) == (4.959, 2.470, 1.6043)
    assert [compound_scaling(hw)["drop_connect"] for hw in [(256, 192), (320, 256), (384, 288), (512, 384)]] == \
        [0.2, 0.3, 0.4, 0.4]
    assert round_filters(32, 1.3185) == 40 and round_filters(16, 1.6043) == 24 and round_filters(128, 1.0) == 128


def test_output_strides_and_shapes():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 128, 96)
    for g, stride in [(GENOTYPE_S, 2), (GENOTYPE_XS, 4), (ANCESTOR, 4)]:
        spec = EvoPoseSpec(genotype=g)
        assert spec.output_stride == stride
        model = build_evopose(spec).eval()
        with torch.no_grad():
            y = model(x)
        assert y.shape == (2, 17, 128 // stride, 96 // stride) and torch.isfinite(y).all()
    with pytest.raises(ValueError, match="multiple of the network stride 32"):
        build_evopose(EvoPoseSpec(genotype=ANCESTOR))(torch.zeros(1, 3, 112, 96))


def test_block_details_module1_no_expansion_se_on_block_input_and_skips():
    model = build_evopose(EvoPoseSpec(genotype=ANCESTOR))
    first = model.blocks[0][0]
    assert isinstance(first.expand, nn.Identity)                   # module 1: expansion 1
    assert first.se.reduce.out_channels == 8                       # int(32 * 0.25): block input, not expanded
    b = model.blocks[1][1]                                         # module 2, block 2: 24 -> 144 -> 24
    assert b.expand.conv.out_channels == 144 and b.se.reduce.out_channels == 6 and b.has_skip
    assert not model.blocks[1][0].has_skip                         # stride 2 / channel change
    assert model.blocks[1][0].dw.conv.stride == (2, 2) and model.blocks[1][1].dw.conv.stride == (1, 1)
    assert model.blocks[2][0].dw.conv.kernel_size == (5, 5)
    rates = [m.drop_rate for m in model.modules() if isinstance(m, MBConv)]
    assert rates[0] == 0.0 and rates == sorted(rates) and rates[-1] == pytest.approx(0.2 * 15 / 16)


def test_drop_connect_only_in_training_and_keras_bn():
    torch.manual_seed(0)
    spec = EvoPoseSpec(genotype=GENOTYPE_XS, drop_connect=0.5, bn="keras")
    model = build_evopose(spec)
    bn = model.stem.bn
    assert (bn.eps, bn.momentum) == (1e-3, 0.01)
    x = torch.randn(4, 3, 64, 64)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))                     # no randomness at eval
    model.train()
    with torch.no_grad():
        assert not torch.equal(model(x), model(x))                 # branches dropped per sample


def test_init_follows_keras_variance_scaling():
    torch.manual_seed(0)
    model = build_evopose(EvoPoseSpec(genotype=ANCESTOR))
    w = model.blocks[5][0].expand.conv.weight                       # 1x1, out 672: std sqrt(2 / 672)
    assert abs(w.std().item() - (2 / 672) ** 0.5) < 0.05 * (2 / 672) ** 0.5
    dw = model.blocks[5][0].dw.conv.weight                          # depthwise 5x5: fan_out 25
    assert abs(dw.std().item() - (2 / 25) ** 0.5) < 0.05 * (2 / 25) ** 0.5
    limit = (1 / 17) ** 0.5 / 255                                   # Keras uniform limit, targets 0-1 not 0-255
    assert 0.9 * limit < model.final.weight.abs().max().item() <= limit and model.final.bias.abs().max() == 0


# -- genotype validation and strings ---------------------------------------------------------------------
def test_spec_json_and_short_string_round_trip():
    rng = np.random.default_rng(0)
    for g in [ANCESTOR, GENOTYPE_S, GENOTYPE_XS] + [sample(rng) for _ in range(20)]:
        spec = EvoPoseSpec(genotype=g)
        back = spec_from_json(spec.to_json())
        assert back == spec and hash(back) == hash(spec)
        assert genotype_from_str(genotype_to_str(g)) == g
        assert load_spec(spec.to_json()) == spec
    assert genotype_to_str(GENOTYPE_S) == "k3b1c2s1-k3b3c3s2-k5b2c5s2-k3b4c10s2-k5b2c14s1-k5b4c16s1-k3b2c10s1"
    m = PRESETS["evopose2d-m"].spec
    assert spec_from_json(m.to_json()) == m and json.loads(m.to_json())["kind"] == "evopose2d"
    assert m.to_short().startswith(genotype_to_str(GENOTYPE_S) + "@d1.6971w1.3185")


@pytest.mark.parametrize("genotype, match", [
    (ANCESTOR[:6], r"must have 7 modules"),
    (ANCESTOR[:2] + ((5, 2, 5),) + ANCESTOR[3:], r"module 3 must be 4 genes"),
    (ANCESTOR[:2] + ((7, 2, 5, 2),) + ANCESTOR[3:], r"module 3\.kernel = 7 is not allowed; choose one of \[3, 5\]"),
    (ANCESTOR[:1] + ((3, 5, 3, 2),) + ANCESTOR[2:], r"module 2\.blocks = 5 is out of range; allowed \[1, 4\]"),
    (ANCESTOR[:3] + ((3, 3, 11, 2),) + ANCESTOR[4:], r"module 4\.ch8 = 11 is out of range; allowed \[1, 10\]"),
    (ANCESTOR[:1] + ((3, 2, 3, 1),) + ANCESTOR[2:], r"module 2\.stride = 1 is not allowed; modules 1-4"),
    (ANCESTOR[:4] + ((5, 3, 14, 2),) + ANCESTOR[5:], r"network stride 64 is over the cap 32 \(modules \[5, 6\]"),
    (ANCESTOR[:6] + ((3, 1, 40, 3),) , r"module 7\.stride = 3 is not allowed"),
])
def test_invalid_genotypes_name_module_gene_and_range(genotype, match):
    with pytest.raises(SpecError, match=match):
        EvoPoseSpec(genotype=genotype)


def test_bad_strings_and_fields():
    with pytest.raises(SpecError, match="has 6 modules"):
        genotype_from_str("-".join(genotype_to_str(ANCESTOR).split("-")[:6]))
    with pytest.raises(SpecError, match=r"module 2 is 'k3x2c3s2'"):
        genotype_from_str(genotype_to_str(ANCESTOR).replace("k3b2c3s2", "k3x2c3s2"))
    with pytest.raises(SpecError, match=r"bn = 'tf' is not allowed"):
        EvoPoseSpec(bn="tf")
    with pytest.raises(SpecError, match=r"head_blocks = 5 upsamples x32, more than the network stride 16"):
        EvoPoseSpec(genotype=GENOTYPE_S, head_blocks=5)


# -- mutation ----------------------------------------------------------------------------------------------
def _diff(a, b):
    return [(i, j) for i in range(7) for j in range(4) if a[i][j] != b[i][j]]


def test_mutation_changes_exactly_one_gene_by_the_published_rules():
    rng = np.random.default_rng(1)
    genes = set()
    g = ANCESTOR
    for _ in range(400):
        child = mutate(g, rng)
        d = _diff(g, child)
        assert len(d) == 1
        (i, j), = d
        genes.add(j)
        if j == 1:                                               # blocks: 1 -> 2, 4 -> 3, else +-1
            b, nb = g[i][1], child[i][1]
            assert nb == {1: 2, 4: 3}.get(b, nb) and abs(nb - b) == 1
        if j == 3:
            assert i >= 4                                         # stride only in modules 5-7
        EvoPoseSpec(genotype=child)                               # always valid
        g = child if rng.random() < 0.5 else g
    assert genes == {0, 1, 2, 3}


def test_stride_mutation_respects_the_cap():
    """Ancestor has module 6 at stride 2 (network stride 32): a stride mutation can only turn it to 1."""
    rng = np.random.default_rng(0)
    for _ in range(300):
        child = mutate(ANCESTOR, rng)
        (i, j), = _diff(ANCESTOR, child)
        if j == 3:
            assert (i, child[i][3]) == (5, 1)


def test_mutation_never_repeats_a_seen_genotype_and_is_seeded():
    seen = {ANCESTOR}
    rng = np.random.default_rng(3)
    for _ in range(60):
        c = mutate(ANCESTOR, rng, seen)
        assert c not in seen
        seen.add(c)
    a = [mutate(GENOTYPE_S, np.random.default_rng(7)) for _ in range(3)]
    assert a[0] == a[1] == a[2]


def test_mutation_reports_exhaustion():
    # a 1-block / kernel-only neighbourhood is large; exhaust it by marking every neighbour as seen
    rng = np.random.default_rng(0)
    neighbours = set()
    for _ in range(20000):
        c = ev._mutate_once(ANCESTOR, rng)
        if c is not None and c != ANCESTOR:
            neighbours.add(c)
    with pytest.raises(SpecError, match="no unseen single-gene mutation"):
        mutate(ANCESTOR, np.random.default_rng(1), neighbours, max_tries=2000)


def test_scaled_spec_rejects_invalid_genotype():
    with pytest.raises(SpecError, match="ch8"):
        scaled_spec(ANCESTOR[:6] + ((3, 1, 41, 1),), (256, 192))


def test_head_skips_option_adds_laterals_and_transfers_by_name():
    from posenas_core.search.transfer import transfer_weights

    base = PRESETS["evopose2d-ancestor"].spec
    spec = base.replace(head_skips=True)
    assert spec_from_json(spec.to_json()) == spec and base.head_skips is False
    net, plain = build_evopose(spec), build_evopose(base)
    # ancestor at network stride 32: head blocks at strides 16, 8, 4 take modules 5, 4 and 3 (parts 5, 3, 2)
    assert net._skip_from == {0: 5, 1: 3, 2: 2}
    assert [net.head_laterals[str(i)].conv.in_channels for i in range(3)] == [
        spec.module_plan()[4]["out"], spec.module_plan()[2]["out"], spec.module_plan()[1]["out"]]
    x = torch.randn(2, 3, 128, 96)
    assert net(x).shape == plain(x).shape == (2, 17, 32, 24)
    extra = set(net.state_dict()) - set(plain.state_dict())
    assert set(plain.state_dict()) < set(net.state_dict()) and all(k.startswith("head_laterals.") for k in extra)
    # a child with a narrower module 5 gets its lateral's input channels sliced from the parent's
    g = list(spec.genotype)
    g[4] = (g[4][0], g[4][1], g[4][2] - 2, g[4][3])
    child = build_evopose(spec.replace(genotype=tuple(g)))
    transfer_weights(net, child)
    w_p, w_c = net.head_laterals["0"].conv.weight, child.head_laterals["0"].conv.weight
    assert w_c.shape[1] == w_p.shape[1] - 16 and torch.equal(w_c, w_p[:, : w_c.shape[1]])
    with pytest.raises(SpecError, match="head_skips"):
        transfer_weights(net, plain)
    with pytest.raises(SpecError, match="head_skips must be true or false"):
        base.replace(head_skips="yes")
