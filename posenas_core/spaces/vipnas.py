"""ViPNAS architectures as frozen, validated specs: the released S-ViPNAS-Res50 and S-ViPNAS-MobileNetV3.

A spec is one point of the ViPNAS spatial spaces (paper section 3.2, tables A1 / A2); `models.vipnas` builds it.

    ViPNASResSpec   (KIND "vipnas-res"):  stem_channels, 4 `ResStage(depth, width, kernel, groups, attention)`
                    rows (attention "gc" | "none"; bottleneck expansion 1, mid = out = width; strides 1, 2, 2, 2
                    after a stride-4 stem), the deconv head as `DeconvRow(width, kernel, groups)` rows, num_joints.
    ViPNASMbv3Spec  (KIND "vipnas-mbv3"): stem_channels, 6 `MbStage(depth, width, expansion, kernel, groups, se)`
                    rows (strides 1, 2, 2, 2, 1, 2 after a stride-2 stem; activations `MBV3_ACTIVATIONS`, fixed
                    as in mmpose: h-swish stem, ReLU stages 1-3, h-swish stages 4-6), the head rows, num_joints.

Backbone stride 32; 3 deconvs give heatmaps at 1/4 of the input (4 deconvs: 1/2). `groups` must divide the
widths of the layer it splits: the middle conv's mid width (MBv3: width x expansion; Res50: width), and for a
deconv both its input and output widths. MBv3 expansion 1 means no expand conv (as mmpose), so it needs the
stage's input width to equal its width.

Short strings: parts joined by '-': 's<stem>', one token per stage (Res: 'd4w80k3g16a1', a1 = GC;
MBv3: 'd4w24e5k7g120a1', a1 = SE), one 'h<width>k<kernel>g<groups>' per deconv, then 'j<joints>' when not 17.
`to_short()` writes it, `from_short(text)` reads it back.
"""

from __future__ import annotations

import dataclasses
import re
from typing import ClassVar, NamedTuple

from posenas_core.errors import SpecError
from posenas_core.genotype import Spec, check_choice, check_int

__all__ = ["ResStage", "MbStage", "DeconvRow", "ViPNASResSpec", "ViPNASMbv3Spec", "RES_STRIDES", "MBV3_STRIDES",
           "MBV3_ACTIVATIONS", "S_VIPNAS_RES50", "S_VIPNAS_MBV3"]


class ResStage(NamedTuple):
    depth: int          # bottlenecks in the stage
    width: int          # mid = out channels (expansion 1)
    kernel: int         # middle conv kernel
    groups: int         # middle conv groups
    attention: str      # "gc" (ContextBlock after the last 1x1) | "none"


class MbStage(NamedTuple):
    depth: int          # inverted residuals in the stage
    width: int          # output channels
    expansion: int      # mid = width x expansion (1: no expand conv)
    kernel: int         # middle conv kernel
    groups: int         # middle conv groups
    se: bool            # squeeze-excite after the middle conv


class DeconvRow(NamedTuple):
    width: int
    kernel: int         # 4 (padding 1), 3 (padding 1, output padding 1) or 2 (padding 0)
    groups: int


RES_STRIDES = (1, 2, 2, 2)                 # stage strides after the stem (conv/2 + maxpool/2)
RES_STEM_STRIDE = 4
MBV3_STRIDES = (1, 2, 2, 2, 1, 2)          # stage strides after the stem (conv/2)
MBV3_STEM_STRIDE = 2
MBV3_ACTIVATIONS = ("hswish", "relu", "relu", "relu", "hswish", "hswish", "hswish")   # stem, stages 1-6
ATTENTIONS = ("gc", "none")
CONV_KERNELS = (1, 3, 5, 7)
DECONV_KERNELS = (2, 3, 4)
HEAD_LAYERS = (3, 4)                       # output stride 4 or 2


def _rows(value, row_cls):
    """Rows from JSON (lists) or tuples -> `row_cls` NamedTuples; other values kept for validate to name."""
    if isinstance(value, (list, tuple)):
        return tuple(row_cls(*r) if isinstance(r, (list, tuple)) and len(r) == len(row_cls._fields)
                     else r for r in value)
    return value


def _check_groups(where: str, groups, channels: dict[str, int]) -> None:
    check_int(where, "groups", groups, 1, 4096)
    for name, c in channels.items():
        if c % groups:
            raise SpecError(f"{where}.groups = {groups} does not divide the {name} width {c}; "
                            f"allowed: a divisor of {c}")


class _ViPNASSpec(Spec):
    """Shared fields' checks, strides and the head / short-string parts of both families."""

    STAGE_ROW: ClassVar[type] = tuple
    STRIDES: ClassVar[tuple] = ()
    STEM_STRIDE: ClassVar[int] = 1

    def __post_init__(self):
        object.__setattr__(self, "stages", _rows(self.stages, self.STAGE_ROW))
        object.__setattr__(self, "head", _rows(self.head, DeconvRow))
        super().__post_init__()

    @property
    def network_stride(self) -> int:
        """Input pixels per backbone-output pixel (32)."""
        s = self.STEM_STRIDE
        for t in self.STRIDES:
            s *= t
        return s

    @property
    def output_stride(self) -> int:
        """Input pixels per heatmap pixel: 4 with 3 deconvs, 2 with 4."""
        return self.network_stride // 2 ** len(self.head)

    def _check_rows(self, o: str) -> None:
        n = len(self.STRIDES)
        if not isinstance(self.stages, tuple) or len(self.stages) != n:
            raise SpecError(f"{o}.stages must be {n} rows {list(self.STAGE_ROW._fields)}, got {self.stages!r}")
        for i, row in enumerate(self.stages):
            if not isinstance(row, self.STAGE_ROW):
                raise SpecError(f"{o}.stages[{i}] must be {len(self.STAGE_ROW._fields)} values "
                                f"{list(self.STAGE_ROW._fields)}, got {row!r}")
        if not isinstance(self.head, tuple) or len(self.head) not in HEAD_LAYERS:
            raise SpecError(f"{o}.head must be {' or '.join(map(str, HEAD_LAYERS))} rows {list(DeconvRow._fields)} "
                            f"(heatmaps at 1/4 or 1/2), got {self.head!r}")
        for i, row in enumerate(self.head):
            if not isinstance(row, DeconvRow):
                raise SpecError(f"{o}.head[{i}] must be 3 values {list(DeconvRow._fields)}, got {row!r}")

    def _check_head(self, o: str, cin: int) -> None:
        for i, (width, kernel, groups) in enumerate(self.head):
            where = f"{o}.head[{i}]"
            check_int(where, "width", width, 8, 1024)
            check_choice(where, "kernel", kernel, DECONV_KERNELS)
            _check_groups(where, groups, {"input": cin, "output": width})
            cin = width
        check_int(o, "num_joints", self.num_joints, 1, 256)

    # -- short strings ---------------------------------------------------------------------------
    def _stage_token(self, row) -> str:  # pragma: no cover - subclasses override
        raise NotImplementedError

    def to_short(self) -> str:
        parts = [f"s{self.stem_channels}", *(self._stage_token(r) for r in self.stages),
                 *(f"h{w}k{k}g{g}" for w, k, g in self.head)]
        if self.num_joints != 17:
            parts.append(f"j{self.num_joints}")
        return "-".join(parts)

    @classmethod
    def from_short(cls, text: str) -> "_ViPNASSpec":
        """The spec written by `to_short` (SpecError naming the token that does not parse)."""
        parts = str(text).strip().split("-")
        n = len(cls.STRIDES)
        grammar = f"'s<stem>-' + {n} stage tokens like {cls._EXAMPLE!r} + 3 or 4 'h<width>k<kernel>g<groups>' [+ 'j<joints>']"
        m = re.fullmatch(r"s(\d+)", parts[0])
        if not m or len(parts) < n + 4:
            raise SpecError(f"{cls.__name__}: {text!r} is not a short string; expected {grammar}")
        stages = []
        for tok in parts[1:n + 1]:
            sm = re.fullmatch(cls._STAGE_RE, tok)
            if not sm:
                raise SpecError(f"{cls.__name__}: stage token {tok!r} does not parse; expected like {cls._EXAMPLE!r}")
            stages.append(cls._stage_from_match(sm))
        head, joints = [], 17
        for i, tok in enumerate(parts[n + 1:]):
            hm = re.fullmatch(r"h(\d+)k(\d+)g(\d+)", tok)
            jm = re.fullmatch(r"j(\d+)", tok) if i == len(parts) - n - 2 else None
            if hm:
                head.append(tuple(int(v) for v in hm.groups()))
            elif jm:
                joints = int(jm.group(1))
            else:
                raise SpecError(f"{cls.__name__}: head token {tok!r} does not parse; expected {grammar}")
        return cls(stem_channels=int(m.group(1)), stages=tuple(stages), head=tuple(head), num_joints=joints)


@dataclasses.dataclass(frozen=True)
class ViPNASResSpec(_ViPNASSpec):
    """A ViPNAS ResNet (bottleneck, expansion 1). Defaults: the released S-ViPNAS-Res50 (mmpose ViPNAS_ResNet)."""

    KIND: ClassVar[str] = "vipnas-res"
    STAGE_ROW: ClassVar[type] = ResStage
    STRIDES: ClassVar[tuple] = RES_STRIDES
    STEM_STRIDE: ClassVar[int] = RES_STEM_STRIDE
    _STAGE_RE: ClassVar[str] = r"d(\d+)w(\d+)k(\d+)g(\d+)a([01])"
    _EXAMPLE: ClassVar[str] = "d4w80k3g16a1"

    stem_channels: int = 48
    stages: tuple = ((4, 80, 3, 16, "gc"), (6, 160, 5, 16, "none"), (7, 304, 5, 16, "gc"), (3, 608, 5, 16, "gc"))
    head: tuple = ((144, 4, 16),) * 3
    num_joints: int = 17

    def validate(self) -> None:
        o = type(self).__name__
        check_int(o, "stem_channels", self.stem_channels, 8, 256)
        self._check_rows(o)
        for i, (depth, width, kernel, groups, attention) in enumerate(self.stages):
            where = f"{o}.stages[{i}]"
            check_int(where, "depth", depth, 1, 16)
            check_int(where, "width", width, 8, 2048)
            check_choice(where, "kernel", kernel, CONV_KERNELS)
            _check_groups(where, groups, {"stage": width})
            check_choice(where, "attention", attention, ATTENTIONS)
        self._check_head(o, self.stages[-1].width)

    def _stage_token(self, r: ResStage) -> str:
        return f"d{r.depth}w{r.width}k{r.kernel}g{r.groups}a{int(r.attention == 'gc')}"

    @staticmethod
    def _stage_from_match(m) -> ResStage:
        d, w, k, g, a = m.groups()
        return ResStage(int(d), int(w), int(k), int(g), "gc" if a == "1" else "none")


@dataclasses.dataclass(frozen=True)
class ViPNASMbv3Spec(_ViPNASSpec):
    """A ViPNAS MobileNetV3. Defaults: the released S-ViPNAS-MobileNetV3 (mmpose ViPNAS_MobileNetV3)."""

    KIND: ClassVar[str] = "vipnas-mbv3"
    STAGE_ROW: ClassVar[type] = MbStage
    STRIDES: ClassVar[tuple] = MBV3_STRIDES
    STEM_STRIDE: ClassVar[int] = MBV3_STEM_STRIDE
    _STAGE_RE: ClassVar[str] = r"d(\d+)w(\d+)e(\d+)k(\d+)g(\d+)a([01])"
    _EXAMPLE: ClassVar[str] = "d4w24e5k7g120a1"

    stem_channels: int = 16
    stages: tuple = ((1, 16, 1, 3, 8, True), (4, 24, 5, 7, 120, True), (4, 40, 4, 7, 20, False),
                     (4, 80, 5, 5, 100, True), (4, 112, 5, 7, 280, True), (4, 160, 6, 5, 240, True))
    head: tuple = ((160, 4, 160),) * 3
    num_joints: int = 17

    def validate(self) -> None:
        o = type(self).__name__
        check_int(o, "stem_channels", self.stem_channels, 8, 256)
        self._check_rows(o)
        cin = self.stem_channels
        for i, (depth, width, expansion, kernel, groups, se) in enumerate(self.stages):
            where = f"{o}.stages[{i}]"
            check_int(where, "depth", depth, 1, 16)
            check_int(where, "width", width, 8, 1024)
            check_int(where, "expansion", expansion, 1, 8)
            if expansion == 1 and cin != width:
                raise SpecError(f"{where}.expansion = 1 (no expand conv) needs the stage input width {cin} to equal "
                                f"its width {width}; allowed: expansion 2..8, or width {cin}")
            check_choice(where, "kernel", kernel, CONV_KERNELS)
            _check_groups(where, groups, {"mid (width x expansion)": width * expansion})
            if not isinstance(se, bool):
                raise SpecError(f"{where}.se must be true or false, got {se!r}")
            cin = width
        self._check_head(o, cin)

    def _stage_token(self, r: MbStage) -> str:
        return f"d{r.depth}w{r.width}e{r.expansion}k{r.kernel}g{r.groups}a{int(r.se)}"

    @staticmethod
    def _stage_from_match(m) -> MbStage:
        d, w, e, k, g, a = m.groups()
        return MbStage(int(d), int(w), int(e), int(k), int(g), a == "1")


S_VIPNAS_RES50 = ViPNASResSpec()
S_VIPNAS_MBV3 = ViPNASMbv3Spec()
