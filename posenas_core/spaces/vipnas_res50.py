"""The ViPNAS ResNet-50 spatial search space (paper Table A2) as a `SearchSpace` of ViPNASResSpecs ("vipnas-res50").

Members: ViPNASResSpecs with 17 joints whose stem, 4 stage rows and deconv head take the choices in `BOUNDS`
(Table A2 with the paper's steps: depth 1, width 16, kernel 2, group 16):

    stem      width {32, 48, 64}                      (7x7 conv s2 + max-pool; not otherwise searched)
    stage 1   depth 3-4, width {64, 80}               kernel {3, 5}, groups {16, 32, 48, 64}, GC on/off
    stage 2   depth 4-6, width 128-160 step 16        "
    stage 3   depth 6-8, width 256-320 step 16        "
    stage 4   depth 3-4, width 512-640 step 16        "
    head      3 deconvs sharing one row: width 64-256 step 16, kernel 4, groups {16, 32, 48, 64}

Groups must divide the width they split, so each row's allowed (width, groups) pairs are precomputed as data
(`RowBounds.pairs`: width % groups == 0); `sample` / `mutate` draw only those and `contains` is False for others.
A deconv's groups must also divide its input width, so the head's groups must divide stage 4's width too.
Choices made where Table A2 is silent [inferred]: the head's width / groups are one row shared by its three
deconvs (stage-wise sharing, as the released head); its kernel stays 4; the stem's 7x7 kernel is fixed.
The released S-ViPNAS-Res50 (`S_VIPNAS_RES50`) is a member.

sample(rng): each choice uniform; a row's (width, groups) pair uniform over its allowed pairs (the head's over
those whose groups divide stage 4's width). mutate: one field of one row (stem width, or a stage's depth, width,
kernel, groups or attention, or the head's width or groups) changed, uniform over such members not in `seen`.
min(): smallest stem, depths, widths, kernel 3, GC off, groups 64; max(): largest of each, kernel 5, GC on,
groups 16. Every layer's params grow with depth, width, kernel and GC and shrink with groups, and strides are
fixed, so every member's params and MACs (at any one input size) lie between min's and max's.
`size()` counts the members. No torch here.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from posenas_core.errors import SpecError
from posenas_core.spaces.vipnas import S_VIPNAS_RES50, ResStage, ViPNASResSpec
from posenas_core.spaces.registry import MembershipByValidate, MutateByNeighbours

__all__ = ["ViPNASRes50Space", "RowBounds", "Res50Bounds", "BOUNDS", "GROUPS", "make_bounds"]

GROUPS = (16, 32, 48, 64)
ATTENTION = ("none", "gc")
HEAD_LAYERS = 3
NUM_JOINTS = 17


class RowBounds(NamedTuple):
    """One searchable row: its choices and the allowed (width, groups) pairs (width % groups == 0)."""
    depth: tuple
    width: tuple
    kernel: tuple
    groups: tuple
    attention: tuple
    pairs: tuple


class Res50Bounds(NamedTuple):
    stem: tuple                 # stem widths
    stages: tuple               # 4 RowBounds
    head: RowBounds             # depth (3,), attention ("none",); one row for all deconvs


def _row(depth, widths, kernel, groups=GROUPS, attention=ATTENTION) -> RowBounds:
    pairs = tuple((w, g) for w in widths for g in groups if w % g == 0)
    return RowBounds(tuple(depth), tuple(widths), tuple(kernel), tuple(groups), tuple(attention), pairs)


def make_bounds(stem, stages, head) -> Res50Bounds:
    """A bounds table from plain choices: stages as (depths, widths, kernels[, groups[, attention]]) and the
    head as (widths, kernels[, groups])."""
    h = tuple(head)
    return Res50Bounds(tuple(stem), tuple(_row(*s) for s in stages),
                       _row((HEAD_LAYERS,), h[0], h[1], *(h[2:] or (GROUPS,)), attention=("none",)))


BOUNDS = make_bounds(
    stem=(32, 48, 64),
    stages=[((3, 4), (64, 80), (3, 5)),
            ((4, 5, 6), range(128, 161, 16), (3, 5)),
            ((6, 7, 8), range(256, 321, 16), (3, 5)),
            ((3, 4), range(512, 641, 16), (3, 5))],
    head=(range(64, 257, 16), (4,)))


class ViPNASRes50Space(MutateByNeighbours, MembershipByValidate):
    """The ViPNAS ResNet-50 space (module docstring); `bounds` defaults to `BOUNDS` (a smaller table: tests)."""

    name = "vipnas-res50"
    spec_class = ViPNASResSpec

    def __init__(self, bounds: Res50Bounds = BOUNDS):
        self.bounds = bounds

    def __repr__(self) -> str:
        return "ViPNASRes50Space()" if self.bounds == BOUNDS else f"ViPNASRes50Space({self.bounds!r})"

    # -- members from choices ----------------------------------------------------------------------
    @staticmethod
    def _spec(stem, stages, head_row) -> ViPNASResSpec:
        return ViPNASResSpec(stem_channels=stem, stages=tuple(ResStage(*s) for s in stages),
                             head=(tuple(head_row),) * HEAD_LAYERS, num_joints=NUM_JOINTS)

    def _head_pairs(self, cin: int) -> list:
        return [(w, g) for w, g in self.bounds.head.pairs if cin % g == 0]

    def min(self) -> ViPNASResSpec:
        b = self.bounds
        rows = [(r.depth[0], r.width[0], r.kernel[0], max(g for w, g in r.pairs if w == r.width[0]),
                 r.attention[0]) for r in b.stages]
        cin, hw = rows[-1][1], b.head.width[0]
        hg = max(g for w, g in self._head_pairs(cin) if w == hw)
        return self._spec(b.stem[0], rows, (hw, b.head.kernel[0], hg))

    def max(self) -> ViPNASResSpec:
        b = self.bounds
        rows = [(r.depth[-1], r.width[-1], r.kernel[-1], min(g for w, g in r.pairs if w == r.width[-1]),
                 r.attention[-1]) for r in b.stages]
        cin, hw = rows[-1][1], b.head.width[-1]
        hg = min(g for w, g in self._head_pairs(cin) if w == hw)
        return self._spec(b.stem[-1], rows, (hw, b.head.kernel[-1], hg))

    def sample(self, rng: np.random.Generator) -> ViPNASResSpec:
        b = self.bounds
        pick = lambda seq: seq[int(rng.integers(len(seq)))]    # noqa: E731
        stem = pick(b.stem)
        rows = []
        for r in b.stages:
            w, g = pick(r.pairs)
            rows.append((pick(r.depth), w, pick(r.kernel), g, pick(r.attention)))
        hw, hg = pick(self._head_pairs(rows[-1][1]))
        return self._spec(stem, rows, (hw, pick(b.head.kernel), hg))

    def neighbours(self, spec: ViPNASResSpec) -> list:
        """Every member that differs from `spec` in exactly one field of one row (stem, stage or head)."""
        self.validate(spec)
        b, out = self.bounds, []
        stages, head = [tuple(s) for s in spec.stages], tuple(spec.head[0])
        for v in b.stem:
            if v != spec.stem_channels:
                out.append((v, stages, head))
        for i, r in enumerate(b.stages):
            for f, choices in zip(ResStage._fields, r[:5]):
                for v in choices:
                    if v != getattr(spec.stages[i], f):
                        rows = list(stages)
                        rows[i] = tuple(spec.stages[i]._replace(**{f: v}))
                        out.append((spec.stem_channels, rows, head))
        for j, choices in enumerate((b.head.width, b.head.kernel, b.head.groups)):
            for v in choices:
                if v != head[j]:
                    out.append((spec.stem_channels, stages, head[:j] + (v,) + head[j + 1:]))
        members = []
        for stem, rows, h in out:
            try:
                members.append(self._spec(stem, rows, h))
            except SpecError:               # a (width, groups) pair that does not divide
                continue
        return [m for m in members if self.contains(m)]

    # -- membership ---------------------------------------------------------------------------------
    def validate(self, spec) -> ViPNASResSpec:
        """`spec` if it is a member; SpecError naming the first value outside the space otherwise."""
        if not isinstance(spec, ViPNASResSpec):
            raise SpecError(f"search space {self.name!r} holds ViPNASResSpecs, got {type(spec).__name__}")
        b, n = self.bounds, self.name

        def need(where, value, allowed):
            if value not in allowed:
                raise SpecError(f"search space {n!r}: {where} = {value!r} is not allowed; allowed: {list(allowed)}")

        need("num_joints", spec.num_joints, (NUM_JOINTS,))
        need("stem_channels", spec.stem_channels, b.stem)
        for i, (row, r) in enumerate(zip(spec.stages, b.stages)):
            for f in ("depth", "width", "kernel", "groups", "attention"):
                need(f"stages[{i}].{f}", getattr(row, f), getattr(r, f))
            need(f"stages[{i}] (width, groups)", (row.width, row.groups), r.pairs)
        need("head length", len(spec.head), (HEAD_LAYERS,))
        need("head rows (one row shared by all deconvs)", len(set(spec.head)), (1,))
        h = spec.head[0]
        need("head.width", h.width, b.head.width)
        need("head.kernel", h.kernel, b.head.kernel)
        need("head.groups", h.groups, b.head.groups)
        need("head (width, groups)", (h.width, h.groups), self._head_pairs(spec.stages[-1].width))
        return spec

    def from_short(self, text: str) -> ViPNASResSpec:
        return self.validate(ViPNASResSpec.from_short(text))

    def size(self) -> int:
        """The number of distinct members."""
        b = self.bounds
        n = len(b.stem)
        for r in b.stages[:-1]:
            n *= len(r.depth) * len(r.pairs) * len(r.kernel) * len(r.attention)
        last = b.stages[-1]
        n *= len(last.depth) * len(last.kernel) * len(last.attention) * len(b.head.kernel)
        return n * sum(len(self._head_pairs(w)) for w, _ in last.pairs)

    def released(self) -> ViPNASResSpec:
        """The released S-ViPNAS-Res50 (a member)."""
        return self.validate(S_VIPNAS_RES50)

