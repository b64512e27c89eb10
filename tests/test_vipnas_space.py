"""The ViPNAS ResNet-50 space ("vipnas-res50", Table A2): the released net is a member, pairs divide, size(),
min / max bracket samples at 256x192, mutate changes one field."""

import itertools

import numpy as np
import pytest
import torch

from posenas_core.errors import SpecError
from posenas_core.eval.profiler import count_macs, count_params
from posenas_core.models.registry import PRESETS, build_model
from posenas_core.spaces import get_space
from posenas_core.spaces.vipnas import S_VIPNAS_RES50, ViPNASResSpec
from posenas_core.spaces.vipnas_res50 import BOUNDS, GROUPS, ViPNASRes50Space, make_bounds

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SPACE = get_space("vipnas-res50")


def test_registered_bounds_and_released_member():
    assert isinstance(SPACE, ViPNASRes50Space) and SPACE.spec_class is ViPNASResSpec and SPACE.bounds == BOUNDS
    assert BOUNDS.stem == (32, 48, 64) and GROUPS == (16, 32, 48, 64)
    assert [r.depth for r in BOUNDS.stages] == [(3, 4), (4, 5, 6), (6, 7, 8), (3, 4)]
    assert [len(r.width) for r in BOUNDS.stages] == [2, 3, 5, 9] and len(BOUNDS.head.width) == 13
    assert BOUNDS.stages[0].pairs == ((64, 16), (64, 32), (64, 64), (80, 16))           # 80/32, 80/48, 80/64 out
    assert (304, 32) not in BOUNDS.stages[2].pairs and (288, 48) in BOUNDS.stages[2].pairs
    assert SPACE.contains(S_VIPNAS_RES50) and SPACE.contains(PRESETS["s-vipnas-res50"].spec)
    assert SPACE.size() == 3661701120


def test_non_members_are_named():
    s = S_VIPNAS_RES50
    with pytest.raises(SpecError, match=r"stages\[0\]\.depth = 2 is not allowed; allowed: \[3, 4\]"):
        SPACE.validate(s.replace(stages=((2, 80, 3, 16, "gc"),) + s.stages[1:]))
    with pytest.raises(SpecError, match=r"stem_channels = 40 is not allowed"):
        SPACE.validate(s.replace(stem_channels=40))
    with pytest.raises(SpecError, match=r"does not divide the input width 608"):
        s.replace(head=((144, 4, 48),) * 3)                     # the spec itself: the first deconv's input
    with pytest.raises(SpecError, match=r"head\.groups = 8 is not allowed; allowed: \[16, 32, 48, 64\]"):
        SPACE.validate(s.replace(head=((144, 4, 8),) * 3))
    with pytest.raises(SpecError, match=r"stages\[2\]\.groups = 8 is not allowed"):
        SPACE.validate(s.replace(stages=s.stages[:2] + ((7, 304, 5, 8, "gc"), s.stages[3])))
    assert not SPACE.contains(s.replace(head=((144, 4, 16), (144, 4, 16), (160, 4, 16))))
    assert not SPACE.contains(s.replace(num_joints=14)) and not SPACE.contains(PRESETS["s-vipnas-mbv3"].spec)
    assert SPACE.from_short(s.to_short()) == s


def test_samples_draw_only_dividing_pairs():
    for seed in range(200):
        spec = SPACE.sample(np.random.default_rng(seed))
        assert SPACE.contains(spec)
        assert all(r.width % r.groups == 0 and r.groups in GROUPS for r in spec.stages)
        h = spec.head[0]
        assert h.width % h.groups == 0 and spec.stages[-1].width % h.groups == 0
    assert SPACE.sample(np.random.default_rng(7)) == SPACE.sample(np.random.default_rng(7))


def _brute_force_count(space) -> int:
    """Members counted by enumerating every raw combination of choices (no pair tables)."""
    b = space.bounds
    rows = [[row for row in itertools.product(*r[:5]) if row[1] % row[3] == 0] for r in b.stages]
    count = 0
    for stem, *stages, hw, hk, hg in itertools.product(b.stem, *rows, b.head.width, b.head.kernel, b.head.groups):
        count += hw % hg == 0 and stages[-1][1] % hg == 0
    return count


def test_size_matches_a_brute_force_count():
    small = make_bounds(stem=(32, 64), stages=[((3, 4), (64, 80), (3,)), ((4,), (128, 144), (3, 5)),
                                               ((6,), (256,), (3,), (16, 64)), ((3, 4), (512, 528, 576), (5,))],
                        head=((64, 96, 144), (4,)))
    space = ViPNASRes50Space(small)
    assert space.size() == _brute_force_count(space) == \
        2 * (2 * 4 * 2) * (5 * 2 * 2) * (2 * 2) * (2 * 2) * (3 * 6 + 2 * 5 + 4 * 8)
    members = {space.sample(np.random.default_rng(s)) for s in range(3000)}
    assert len(members) <= space.size() and all(space.contains(m) for m in members)
    # stage 4 (width, groups) x head pairs whose groups divide it: 512: 3 x 6, 528: 2 x 5, 576: 4 x 8.
    # Full table: stages 1-3 independently, stage 4 x head pairs whose groups divide stage 4's width.
    pairs = [sum(w % g == 0 for w in ws for g in GROUPS) for ws in ((64, 80), range(128, 161, 16), range(256, 321, 16))]
    assert pairs == [4, 7, 11]                  # e.g. 80 only with 16; 272 and 304 only with 16
    s123 = 3 * (2 * pairs[0] * 2 * 2) * (3 * pairs[1] * 2 * 2) * (3 * pairs[2] * 2 * 2)
    head = {g: sum(w % g == 0 for w in range(64, 257, 16)) for g in GROUPS}
    divisors = {w: [g for g in GROUPS if w % g == 0] for w in range(512, 641, 16)}
    s4 = sum(len(gs) * sum(head[g] for g in gs) for gs in divisors.values()) * 2 * 2 * 2
    assert SPACE.size() == s123 * s4


def _costs(spec) -> tuple[int, int]:
    torch.manual_seed(0)
    model = build_model(spec).eval()
    return count_params(model)["params"], count_macs(model, (256, 192))


def test_min_and_max_bracket_samples_at_256x192():
    lo, hi = _costs(SPACE.min()), _costs(SPACE.max())
    print(f"vipnas-res50 at 256x192: min {lo[0]} params {lo[1]} MACs; max {hi[0]} params {hi[1]} MACs")
    assert lo[0] < hi[0] and lo[1] < hi[1]
    released = _costs(S_VIPNAS_RES50)
    assert lo[0] < released[0] < hi[0] and lo[1] < released[1] < hi[1]
    for seed in range(20):
        p, m = _costs(SPACE.sample(np.random.default_rng(seed)))
        assert lo[0] <= p <= hi[0] and lo[1] <= m <= hi[1]


def _changed_fields(a, b) -> list:
    diff = [("stem",)] if a.stem_channels != b.stem_channels else []
    for i, (ra, rb) in enumerate(zip(a.stages, b.stages)):
        diff += [(i, f) for f in ra._fields if getattr(ra, f) != getattr(rb, f)]
    diff += [("head", f) for f in a.head[0]._fields if getattr(a.head[0], f) != getattr(b.head[0], f)]
    return diff


def test_mutate_changes_exactly_one_field_and_avoids_seen():
    for seed in range(30):
        parent = SPACE.sample(np.random.default_rng(seed))
        child = SPACE.mutate(parent, np.random.default_rng(seed + 100))
        assert SPACE.contains(child) and len(_changed_fields(parent, child)) == 1
    parent = S_VIPNAS_RES50
    options = SPACE.neighbours(parent)
    assert len(options) == len(set(options)) and all(len(_changed_fields(parent, o)) == 1 for o in options)
    last = SPACE.mutate(parent, np.random.default_rng(0), seen=options[:-1])
    assert last == options[-1]
    with pytest.raises(SpecError, match="is in seen"):
        SPACE.mutate(parent, np.random.default_rng(0), seen=options)
