"""The ViPNAS MobileNetV3 space ("vipnas-mbv3", Table A1): the released net is a member, (expansion, groups) pairs
divide, size(), exact min / max and their costs at 256x192, samples between them, mutate changes one field."""

import itertools

import numpy as np
import pytest
import torch

from posenas_core.errors import SpecError
from posenas_core.eval.profiler import count_macs, count_params
from posenas_core.models.registry import PRESETS, build_model
from posenas_core.spaces import ViPNASMbv3Space, get_space
from posenas_core.spaces.vipnas import S_VIPNAS_MBV3, S_VIPNAS_RES50, ViPNASMbv3Spec
from posenas_core.spaces.vipnas_mbv3 import BOUNDS, CHANNELS_PER_GROUP, HEAD_GROUPS, make_bounds

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SPACE = get_space("vipnas-mbv3")
MIN_SHORT = ("s16-d1w16e1k3g16a0-d2w24e3k3g72a0-d2w40e3k3g120a0-d2w80e3k3g240a0-d2w112e3k3g336a0-d2w160e3k3g480a0-"
             "h160k4g160-h160k4g160-h160k4g160")
MAX_SHORT = ("s16-d1w16e1k3g2a1-d4w24e6k7g9a1-d4w40e6k7g15a1-d4w80e6k7g30a1-d4w112e6k7g42a1-d4w160e6k7g60a1-"
             "h256k4g32-h256k4g32-h256k4g32")
MIN_COSTS = (561169, 145843200)                 # params, MACs at 256x192
MAX_COSTS = (13491829, 3297236096)          # the reference's [computed] Table A1 max: 13.5M, 3.30 G


def _replace_stage(spec, i, **change):
    stages = list(spec.stages)
    stages[i] = stages[i]._replace(**change)
    return spec.replace(stages=tuple(stages))


def test_registered_bounds_and_released_member():
    assert isinstance(SPACE, ViPNASMbv3Space) and SPACE.spec_class is ViPNASMbv3Spec and SPACE.bounds == BOUNDS
    assert BOUNDS.stem == (16,) and CHANNELS_PER_GROUP == (1, 2, 4, 8, 16)
    assert [r.width for r in BOUNDS.stages] == [16, 24, 40, 80, 112, 160]
    assert [r.depth for r in BOUNDS.stages] == [(1,)] + [(2, 3, 4)] * 5
    assert [r.expansion for r in BOUNDS.stages] == [(1,)] + [(3, 4, 5, 6)] * 5
    assert BOUNDS.stages[0].pairs == ((1, 2), (1, 4), (1, 8), (1, 16)) and BOUNDS.stages[0].kernel == (3,)
    assert BOUNDS.stages[1].pairs[:4] == ((3, 72), (3, 36), (3, 18), (3, 9))           # 24 x 3 / cpg
    assert all(len(r.pairs) == 17 and r.kernel == (3, 5, 7) for r in BOUNDS.stages[1:])    # cpg 16: e6 only
    assert [min(g for _, g in r.pairs) for r in BOUNDS.stages[1:]] == [9, 15, 30, 42, 60]   # Table A1's lows
    assert [max(g for _, g in r.pairs) for r in BOUNDS.stages[1:]] == [144, 240, 480, 672, 960]
    assert BOUNDS.head.pairs == ((160, 32), (160, 160), (256, 32)) and BOUNDS.head.kernel == (4,)
    assert HEAD_GROUPS == (32, 64, 128, 160, 256)
    released = SPACE.released()
    assert released is S_VIPNAS_MBV3 and SPACE.contains(PRESETS["s-vipnas-mbv3"].spec)
    cpg = [r.width * r.expansion // r.groups for r in released.stages[1:]]
    assert cpg == [1, 8, 4, 2, 4] and released.stages[0].groups == 8
    # stage 1: 4 groups x SE; stages 2-6: 3 depths x (4 expansions x 4 cpg + cpg 16 at e6) x 3 kernels x SE;
    # 3 head pairs
    assert SPACE.size() == (4 * 2) * (3 * 17 * 3 * 2) ** 5 * 3 == 64389992442624


def test_min_and_max_are_exact():
    assert SPACE.min().to_short() == MIN_SHORT and SPACE.max().to_short() == MAX_SHORT
    assert SPACE.from_short(MIN_SHORT) == SPACE.min() and SPACE.from_short(MAX_SHORT) == SPACE.max()


def test_non_members_are_named():
    s = S_VIPNAS_MBV3
    with pytest.raises(SpecError, match=r"stages\[1\]\.groups = 48 does not divide the mid \(width x expansion\) "
                                        r"width 120"):
        _replace_stage(s, 1, groups=48)                         # the spec itself: 24 x 5 = 120
    with pytest.raises(SpecError, match=r"stages\[1\]\.groups \(expansion 5, mid 120\) = 40 is not allowed; "
                                        r"allowed: \[120, 60, 30, 15\]"):
        SPACE.validate(_replace_stage(s, 1, groups=40))         # divides 120, but 3 channels per group
    with pytest.raises(SpecError, match=r"kernel = 9 is not allowed"):
        SPACE.from_short(s.to_short().replace("d4w24e5k7", "d4w24e5k9"))
    with pytest.raises(SpecError, match=r"stages\[1\]\.kernel = 1 is not allowed; allowed: \[3, 5, 7\]"):
        SPACE.validate(_replace_stage(s, 1, kernel=1))
    with pytest.raises(SpecError, match=r"stages\[2\]\.depth = 5 is not allowed; allowed: \[2, 3, 4\]"):
        SPACE.validate(_replace_stage(s, 2, depth=5))
    with pytest.raises(SpecError, match=r"stages\[1\]\.expansion = 2 is not allowed; allowed: \[3, 4, 5, 6\]"):
        SPACE.validate(_replace_stage(s, 1, expansion=2, groups=48))
    with pytest.raises(SpecError, match=r"'vipnas-mbv3' holds ViPNASMbv3Specs, got ViPNASResSpec"):
        SPACE.validate(S_VIPNAS_RES50)
    with pytest.raises(SpecError, match=r"head\.width = 192 is not allowed; allowed: \[160, 256\]"):
        SPACE.validate(s.replace(head=((192, 4, 32),) * 3))
    with pytest.raises(SpecError, match=r"head\.groups \(width 160, input 160\) = 16 is not allowed; "
                                        r"allowed: \[32, 160\]"):
        SPACE.validate(s.replace(head=((160, 4, 16),) * 3))
    with pytest.raises(SpecError, match=r"num_joints = 14 is not allowed; allowed: \[17\]"):
        SPACE.validate(s.replace(num_joints=14))
    with pytest.raises(SpecError, match=r"stages\[0\]\.groups \(expansion 1, mid 16\) = 1 is not allowed"):
        SPACE.validate(_replace_stage(s, 0, groups=1))
    assert not SPACE.contains(s.replace(head=((160, 4, 160), (160, 4, 160), (160, 4, 32))))
    assert not SPACE.contains(_replace_stage(s, 3, width=96, groups=96))
    assert SPACE.from_short(s.to_short()) == s and SPACE.from_short(MAX_SHORT).to_short() == MAX_SHORT


SMALL = make_bounds(
    stem=(16,),
    stages=[dict(depth=(1,), width=16, expansion=(1,), kernel=(3,), groups=(4, 16), se=(False,)),
            dict(depth=(2, 3), width=24, expansion=(3, 5), kernel=(3,), cpg=(1, 8), se=(False,)),
            dict(depth=(2,), width=40, expansion=(4,), kernel=(3, 5), groups=(20, 48, 160)),
            dict(depth=(2,), width=80, expansion=(3,), kernel=(3,), cpg=(1,), se=(False,)),
            dict(depth=(2,), width=112, expansion=(6,), kernel=(7,), cpg=(2,), se=(True,)),
            dict(depth=(4,), width=160, expansion=(6,), kernel=(5,), cpg=(4, 8), se=(True,))],
    head=((160, 192, 256), (4,)))


def _row_members(space, base, i, raw_rows) -> list:
    """The rows of stage i (from every raw combination, groups over all divisors) that `contains` accepts."""
    return [r for r in raw_rows if space.contains(_replace_stage(base, i, **r))]


def test_size_matches_a_brute_force_count():
    space = ViPNASMbv3Space(SMALL)
    base = space.min()
    per_row = []
    for i, r in enumerate(SMALL.stages):
        raw = [dict(depth=d, expansion=e, kernel=k, groups=g, se=a)
               for d, e, k, a in itertools.product(r.depth, r.expansion, r.kernel, r.se)
               for g in range(1, r.width * e + 1) if r.width * e % g == 0]
        per_row.append(_row_members(space, base, i, raw))
    heads = [h for h in itertools.product((160, 192, 256), (4,), range(1, 257))
             if 160 % h[2] == 0 and h[0] % h[2] == 0 and space.contains(base.replace(head=(h,) * 3))]
    assert [len(rows) for rows in per_row] == [2, 8, 8, 1, 1, 2] and len(heads) == 4   # 192 only with groups 32
    assert space.size() == 2 * 8 * 8 * 1 * 1 * 2 * 4 == 1024
    members = set()
    for rows in itertools.product(*per_row):
        spec = base
        for i, r in enumerate(rows):
            spec = _replace_stage(spec, i, **r)
        members.update(spec.replace(head=(h,) * 3) for h in heads)
    assert len(members) == space.size() and all(space.contains(m) for m in list(members)[::37])
    drawn = {space.sample(np.random.default_rng(s)) for s in range(2000)}
    assert drawn <= members and len(drawn) > 700


def test_samples_draw_expansion_then_channels_per_group():
    counts = {e: 0 for e in (3, 4, 5, 6)}
    for seed in range(300):
        spec = SPACE.sample(np.random.default_rng(seed))
        assert SPACE.contains(spec) and spec.stages[0].groups in (2, 4, 8, 16)
        for r in spec.stages[1:]:
            assert r.width * r.expansion // r.groups in CHANNELS_PER_GROUP and r.width * r.expansion % r.groups == 0
            counts[r.expansion] += 1
        assert (spec.head[0].width, spec.head[0].groups) in BOUNDS.head.pairs
    assert all(250 < c < 500 for c in counts.values())                 # 1500 draws, 375 expected each
    assert SPACE.sample(np.random.default_rng(7)) == SPACE.sample(np.random.default_rng(7))


def _costs(spec) -> tuple[int, int]:
    torch.manual_seed(0)
    model = build_model(spec).eval()
    return count_params(model)["params"], count_macs(model, (256, 192))


def test_min_and_max_costs_at_256x192_bracket_samples():
    lo, hi = _costs(SPACE.min()), _costs(SPACE.max())
    assert lo == MIN_COSTS and hi == MAX_COSTS
    released = _costs(S_VIPNAS_MBV3)
    assert lo[0] < released[0] < hi[0] and lo[1] < released[1] < hi[1]
    for seed in range(8):
        p, m = _costs(SPACE.sample(np.random.default_rng(seed)))
        assert lo[0] <= p <= hi[0] and lo[1] <= m <= hi[1]


def _choices(spec) -> list:
    """A spec's searched fields, stage groups as channels per group (stages 2-6), one entry per field."""
    out = []
    for i, r in enumerate(spec.stages):
        g = r.groups if i == 0 else r.width * r.expansion // r.groups
        out += [(i, "depth", r.depth), (i, "expansion", r.expansion), (i, "kernel", r.kernel), (i, "groups", g),
                (i, "se", r.se)]
    return out + [("head", "width", spec.head[0].width), ("head", "groups", spec.head[0].groups)]


def _changed(a, b) -> list:
    return [x for x, y in zip(_choices(a), _choices(b)) if x != y]


def test_mutate_changes_exactly_one_field_and_avoids_seen():
    for seed in range(30):
        parent = SPACE.sample(np.random.default_rng(seed))
        child = SPACE.mutate(parent, np.random.default_rng(seed + 100))
        assert SPACE.contains(child) and len(_changed(parent, child)) == 1
    parent = S_VIPNAS_MBV3
    options = SPACE.neighbours(parent)
    assert len(options) == len(set(options)) and all(len(_changed(parent, o)) == 1 for o in options)
    # stage 1: 3 other groups + SE; stages 2-6: 2 depths + 3 expansions + 2 kernels + 3 cpg + SE (stage 6, at
    # expansion 6, has a 4th other cpg: 16); head groups 32
    assert len(options) == 4 + 5 * 11 + 1 + 1
    assert _replace_stage(parent, 2, expansion=6, groups=30) in options          # 40 x 4 / 20 = 8 = 40 x 6 / 30
    last = SPACE.mutate(parent, np.random.default_rng(0), seen=options[:-1])
    assert last == options[-1]
    with pytest.raises(SpecError, match="is in seen"):
        SPACE.mutate(parent, np.random.default_rng(0), seen=options)
