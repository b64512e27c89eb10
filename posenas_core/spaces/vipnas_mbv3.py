"""The ViPNAS MobileNetV3 spatial search space (paper Table A1) as a `SearchSpace` of ViPNASMbv3Specs ("vipnas-mbv3").

Members: ViPNASMbv3Specs with 17 joints whose stem, 6 stage rows and deconv head take the choices in `BOUNDS`:

    stem      width 16, kernel 3                            (fixed; kernel 3 is the builder's)
    stage 1   depth 1, width 16, expansion 1, kernel 3      groups {2, 4, 8, 16} (mid 16), SE on/off
    stages 2-6  depth {2, 3, 4}, widths 24/40/80/112/160 (fixed), expansion {3, 4, 5, 6}, kernel {3, 5, 7},
              SE on/off, groups = mid / cpg with channels per group cpg in {1, 2, 4, 8, 16} (mid = width x
              expansion), kept within Table A1's group range [width x 3/8, width x 6] (cpg 16: expansion 6 only)
    head      3 deconvs sharing one row, kernel 4: (width, groups) in (160, 32), (160, 160), (256, 32)

Activations are fixed (`MBV3_ACTIVATIONS`: h-swish stem and stages 4-6, ReLU stages 1-3), as are the strides.
Where Table A1 is silent or departs from the released net:
* Expansion {3, 4, 5, 6} [inferred]: Table A1 gives [3, 6]; the released net uses 5, so every integer is kept.
* Groups as channels per group [inferred]: Table A1's group bounds are width x 3/8 .. width x 6 (e.g. [9, 144] for
  width 24), and the released groups have 1, 2, 4 or 8 channels per group. A stage's groups are mid / cpg with
  cpg a power of two from 1 to 16, kept when they lie in Table A1's range: so depthwise (cpg 1) at every
  expansion, and the table's lowest groups (width x 3/8) at expansion 6 (cpg 16) and 3 (cpg 8). Every pair
  divides mid by construction; the allowed pairs per stage are precomputed as data (`MbRowBounds.pairs`), never
  discovered at run time.
* Head: Table A1 gives width 256 with groups [32, 256]. The released net's head (width 160, depthwise, groups 160)
  is outside Table A1 and is kept as an extra choice. Groups are drawn from (32, 64, 128, 160, 256) and must
  divide both the head width and stage 6's width 160 (the first deconv's input); as gcd(160, 256) = 32, width 256
  can only take groups 32, so Table A1's groups above 32 cannot apply to its first deconv.
So the released S-ViPNAS-MobileNetV3 (`S_VIPNAS_MBV3`) is a member: its expansion 5 and head width 160 are choices.

sample(rng): each field uniform; a stage's (expansion, groups) as expansion uniform then groups uniform among
that expansion's pairs (stages 2-6: cpg uniform over 1, 2, 4, 8, and 16 at expansion 6; stage 1: groups uniform); the head as width
uniform then groups uniform among that width's pairs. mutate: one field of one row changed (a stage's depth,
expansion, kernel, groups or SE; the head's width or groups), uniform over such members not in `seen`; changing
a stage's expansion keeps its channels per group (rescales groups), changing groups changes the cpg.
min(): smallest depth, expansion and kernel, SE off, most groups (cpg 1; stage 1 groups 16), head (160, 4, 160);
max(): largest of each, SE on, fewest groups (Table A1's lowest, width x 3/8 at expansion 6; stage 1 groups 2),
head (256, 4, 32). Every layer's params
grow with depth, expansion, kernel, SE, head width and channels per group, and strides are fixed, so every
member's params and MACs (at any one input size) lie between min's and max's. `size()` counts the members.
No torch here.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from posenas_core.errors import SpecError
from posenas_core.spaces.registry import MembershipByValidate, MutateByNeighbours
from posenas_core.spaces.vipnas import S_VIPNAS_MBV3, MbStage, ViPNASMbv3Spec

__all__ = ["ViPNASMbv3Space", "MbRowBounds", "HeadBounds", "Mbv3Bounds", "BOUNDS", "CHANNELS_PER_GROUP",
           "HEAD_GROUPS", "make_bounds"]

CHANNELS_PER_GROUP = (1, 2, 4, 8, 16)
HEAD_GROUPS = (32, 64, 128, 160, 256)
SE = (False, True)
HEAD_LAYERS = 3
NUM_JOINTS = 17


class MbRowBounds(NamedTuple):
    """One stage row: its choices and the allowed (expansion, groups) pairs (groups divides width x expansion)."""
    depth: tuple
    width: int                  # fixed
    expansion: tuple
    kernel: tuple
    groups: tuple               # every groups value of `pairs`, sorted
    se: tuple
    pairs: tuple


class HeadBounds(NamedTuple):
    """The head's one shared deconv row: choices and the allowed (width, groups) pairs (groups divides both the
    width and the first deconv's input, stage 6's width)."""
    width: tuple
    kernel: tuple
    groups: tuple
    pairs: tuple


class Mbv3Bounds(NamedTuple):
    stem: tuple                 # stem widths
    stages: tuple               # 6 MbRowBounds
    head: HeadBounds


def _row(depth, width, expansion, kernel, groups=None, cpg=CHANNELS_PER_GROUP, se=SE,
         group_range=(1, 1 << 30)) -> MbRowBounds:
    """Pairs from explicit `groups` (those dividing mid) or, when None, from channels per group `cpg` with
    groups within `group_range` (inclusive)."""
    lo, hi = group_range
    if groups is None:
        pairs = tuple((e, width * e // c) for e in expansion for c in cpg
                      if width * e % c == 0 and lo <= width * e // c <= hi)
    else:
        pairs = tuple((e, g) for e in expansion for g in groups if width * e % g == 0)
    return MbRowBounds(tuple(depth), width, tuple(expansion), tuple(kernel), tuple(sorted({g for _, g in pairs})),
                       tuple(se), pairs)


def make_bounds(stem, stages, head) -> Mbv3Bounds:
    """A bounds table from plain choices: stages as dicts of `_row`'s arguments (depth, width, expansion, kernel,
    and groups or cpg, se) and the head as (widths, kernels[, groups])."""
    rows = tuple(_row(**s) for s in stages)
    widths, kernels, *rest = head
    groups = tuple(rest[0]) if rest else HEAD_GROUPS
    cin = rows[-1].width
    pairs = tuple((w, g) for w in widths for g in groups if w % g == 0 and cin % g == 0)
    return Mbv3Bounds(tuple(stem), rows, HeadBounds(tuple(widths), tuple(kernels), groups, pairs))


_MB = dict(depth=(2, 3, 4), expansion=(3, 4, 5, 6), kernel=(3, 5, 7))
BOUNDS = make_bounds(
    stem=(16,),                                                                  # 1/2
    stages=[dict(depth=(1,), width=16, expansion=(1,), kernel=(3,), groups=(2, 4, 8, 16)),    # 1/2
            dict(width=24, group_range=(9, 144), **_MB),                         # 1/4
            dict(width=40, group_range=(15, 240), **_MB),                        # 1/8
            dict(width=80, group_range=(30, 480), **_MB),                        # 1/16
            dict(width=112, group_range=(42, 672), **_MB),                       # 1/16
            dict(width=160, group_range=(60, 960), **_MB)],                      # 1/32
    head=((160, 256), (4,)))                                                     # 1/4 (3 deconvs)


class ViPNASMbv3Space(MutateByNeighbours, MembershipByValidate):
    """The ViPNAS MobileNetV3 space (module docstring); `bounds` defaults to `BOUNDS` (a smaller table: tests)."""

    name = "vipnas-mbv3"
    spec_class = ViPNASMbv3Spec

    def __init__(self, bounds: Mbv3Bounds = BOUNDS):
        self.bounds = bounds

    def __repr__(self) -> str:
        return "ViPNASMbv3Space()" if self.bounds == BOUNDS else f"ViPNASMbv3Space({self.bounds!r})"

    # -- members from choices ----------------------------------------------------------------------
    @staticmethod
    def _spec(stem, stages, head_row) -> ViPNASMbv3Spec:
        return ViPNASMbv3Spec(stem_channels=stem, stages=tuple(MbStage(*s) for s in stages),
                              head=(tuple(head_row),) * HEAD_LAYERS, num_joints=NUM_JOINTS)

    @staticmethod
    def _groups(pairs, first) -> list:
        """The groups paired with `first` (a stage's expansion or the head's width)."""
        return [g for a, g in pairs if a == first]

    def _extreme(self, end: int) -> ViPNASMbv3Spec:
        """min (end 0) or max (end -1): each choice at that end; groups at the other end (most groups: fewest
        params)."""
        b, pick_g = self.bounds, (max if end == 0 else min)
        rows = [(r.depth[end], r.width, r.expansion[end], r.kernel[end],
                 pick_g(self._groups(r.pairs, r.expansion[end])), r.se[end]) for r in b.stages]
        hw = b.head.width[end]
        return self._spec(b.stem[end], rows, (hw, b.head.kernel[end], pick_g(self._groups(b.head.pairs, hw))))

    def min(self) -> ViPNASMbv3Spec:
        return self._extreme(0)

    def max(self) -> ViPNASMbv3Spec:
        return self._extreme(-1)

    def sample(self, rng: np.random.Generator) -> ViPNASMbv3Spec:
        b = self.bounds
        pick = lambda seq: seq[int(rng.integers(len(seq)))]    # noqa: E731
        stem, rows = pick(b.stem), []
        for r in b.stages:
            depth, e = pick(r.depth), pick(r.expansion)
            rows.append((depth, r.width, e, pick(r.kernel), pick(self._groups(r.pairs, e)), pick(r.se)))
        hw = pick(b.head.width)
        return self._spec(stem, rows, (hw, pick(b.head.kernel), pick(self._groups(b.head.pairs, hw))))

    def neighbours(self, spec: ViPNASMbv3Spec) -> list:
        """Every member that differs from `spec` in exactly one field of one row (stem, stage or head); a new
        expansion keeps the stage's channels per group."""
        self.validate(spec)
        b, out = self.bounds, []
        stages, head = [tuple(s) for s in spec.stages], tuple(spec.head[0])
        out += [(v, stages, head) for v in b.stem if v != spec.stem_channels]
        for i, (r, s) in enumerate(zip(b.stages, spec.stages)):
            changes = [{"depth": v} for v in r.depth if v != s.depth]
            changes += [{"expansion": e, "groups": s.groups * e // s.expansion} for e in r.expansion
                        if e != s.expansion and s.groups * e % s.expansion == 0]
            changes += [{"kernel": v} for v in r.kernel if v != s.kernel]
            changes += [{"groups": g} for g in self._groups(r.pairs, s.expansion) if g != s.groups]
            changes += [{"se": v} for v in r.se if v != s.se]
            for change in changes:
                rows = list(stages)
                rows[i] = tuple(s._replace(**change))
                out.append((spec.stem_channels, rows, head))
        for j, choices in enumerate((b.head.width, b.head.kernel, b.head.groups)):
            out += [(spec.stem_channels, stages, head[:j] + (v,) + head[j + 1:]) for v in choices if v != head[j]]
        members = []
        for stem, rows, h in out:
            try:
                members.append(self._spec(stem, rows, h))
            except SpecError:               # groups that do not divide
                continue
        return [m for m in members if self.contains(m)]

    # -- membership ---------------------------------------------------------------------------------
    def validate(self, spec) -> ViPNASMbv3Spec:
        """`spec` if it is a member; SpecError naming the first value outside the space otherwise."""
        if not isinstance(spec, ViPNASMbv3Spec):
            raise SpecError(f"search space {self.name!r} holds ViPNASMbv3Specs, got {type(spec).__name__}")
        b, n = self.bounds, self.name

        def need(where, value, allowed):
            if value not in allowed:
                raise SpecError(f"search space {n!r}: {where} = {value!r} is not allowed; allowed: {list(allowed)}")

        need("num_joints", spec.num_joints, (NUM_JOINTS,))
        need("stem_channels", spec.stem_channels, b.stem)
        for i, (row, r) in enumerate(zip(spec.stages, b.stages)):
            need(f"stages[{i}].depth", row.depth, r.depth)
            need(f"stages[{i}].width", row.width, (r.width,))
            need(f"stages[{i}].expansion", row.expansion, r.expansion)
            need(f"stages[{i}].kernel", row.kernel, r.kernel)
            need(f"stages[{i}].groups (expansion {row.expansion}, mid {row.width * row.expansion})", row.groups,
                 self._groups(r.pairs, row.expansion))
            need(f"stages[{i}].se", row.se, r.se)
        need("head length", len(spec.head), (HEAD_LAYERS,))
        need("head rows (one row shared by all deconvs)", len(set(spec.head)), (1,))
        h = spec.head[0]
        need("head.width", h.width, b.head.width)
        need("head.kernel", h.kernel, b.head.kernel)
        need(f"head.groups (width {h.width}, input {spec.stages[-1].width})", h.groups,
             self._groups(b.head.pairs, h.width))
        return spec

    def from_short(self, text: str) -> ViPNASMbv3Spec:
        return self.validate(ViPNASMbv3Spec.from_short(text))

    def size(self) -> int:
        """The number of distinct members."""
        b = self.bounds
        n = len(b.stem) * len(b.head.pairs) * len(b.head.kernel)
        for r in b.stages:
            n *= len(r.depth) * len(r.pairs) * len(r.kernel) * len(r.se)
        return n

    def released(self) -> ViPNASMbv3Spec:
        """The released S-ViPNAS-MobileNetV3 (a member)."""
        return self.validate(S_VIPNAS_MBV3)
