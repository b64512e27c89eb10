"""SimpleBaseline-style pose networks: a ResNet (BasicBlock) or MobileNetV3 backbone + deconv head.

A `BaselineSpec` is the whole architecture as data; `build_baseline(spec)` turns it into a static
`nn.Module` mapping images (B, 3, H, W) to heatmaps (B, num_joints, H/s, W/s) at output stride s = 4
(SimpleBaseline) or 2 (one more deconv, as EvoPose2D's stride-2 heatmaps).

Stage-table grammar (`BaselineSpec.stages`, one row per stage / block group):

* backbone "resnet":      (depth, width, stride)
    stem = conv7x7/2 (stem_channels) -> BN -> ReLU -> maxpool3x3/2   (stride 4), then each row is
    `depth` BasicBlocks (conv3x3 -> BN -> ReLU -> conv3x3 -> BN, + shortcut, ReLU) of `width` channels,
    the first with `stride`; a 1x1 conv + BN shortcut where the shape changes.
* backbone "mobilenetv3": (kernel, expansion, out, se, activation, stride, repeats)
    stem = conv3x3/2 (stem_channels) -> BN -> h-swish (stride 2), then `repeats` inverted residuals:
    [1x1 expand to make_divisible(in * expansion) (skipped when that equals in) -> BN -> act]
    -> kxk depthwise (the first block takes `stride`) -> BN -> act
    -> [SE: avgpool -> 1x1 to make_divisible(mid / 4) -> ReLU -> 1x1 -> hard-sigmoid -> scale]
    -> 1x1 project -> BN; residual when stride 1 and in == out. activation in {"relu", "hswish"}.
* `final_channels` > 0 adds a 1x1 conv -> BN -> act (ReLU / h-swish) after the stages (MobileNetV3's 960).

`width_mult` scales the stem, stage and final widths (rounded to multiples of 8); the head width
(`head_channels`: one width for every deconv, or one per deconv) is not scaled. The backbone stride
(stem x stage strides) must be 4 * 2**head_layers (heatmaps at output stride 4) or 2 * 2**head_layers
(stride 2); input sides must be multiples of the backbone stride.

Init: Kaiming-normal (fan_out, ReLU gain) for backbone convs, BN weight 1 / bias 0, the head as in
`heads.DeconvHead` (N(0, 0.001)); drawn from `build_baseline`'s generator, else the global torch RNG.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from typing import ClassVar

import torch
from torch import nn

from posenas_core.errors import SpecError
from posenas_core.genotype import Spec, _to_tuple, check_choice, check_float, check_int, make_divisible
from posenas_core.models.heads import DECONV_PADDING, DeconvHead
from posenas_core.ops.layers import DropGeneratorMixin, SqueezeExcite, check_input_size, conv_bn, init_scope

__all__ = [
    "BaselineSpec",
    "BaselineNet",
    "build_baseline",
    "RESNET18_STAGES",
    "RESNET18_HALF_STAGES",
    "MBV3_LARGE_STAGES",
]

BACKBONES = ("resnet", "mobilenetv3")
STEM_STRIDE = {"resnet": 4, "mobilenetv3": 2}
OUTPUT_STRIDES = (4, 2)   # heatmap strides a baseline may have
MBV3_ACTIVATIONS = ("relu", "hswish")

# ResNet-18 layout. Rows: (depth, width, stride); resolutions for a 256x192 input.
RESNET18_STAGES = (
    (2, 64, 1),    # stage 1: 64x48 (stride 4)
    (2, 128, 2),   # stage 2: 32x24 (stride 8)
    (2, 256, 2),   # stage 3: 16x12 (stride 16)
    (2, 512, 2),   # stage 4:  8x6  (stride 32)
)
# The same layout at half width.
RESNET18_HALF_STAGES = (
    (2, 32, 1),    # stage 1: 64x48 (stride 4)
    (2, 64, 2),    # stage 2: 32x24 (stride 8)
    (2, 128, 2),   # stage 3: 16x12 (stride 16)
    (2, 256, 2),   # stage 4:  8x6  (stride 32)
)
# MobileNetV3-Large (timm `mobilenetv3_large_100`, without the classifier).
# Rows: (kernel, expansion, out, se, activation, stride, repeats); resolutions for a 256x192 input,
# after the stem (conv3x3/2, 16 channels, h-swish: 128x96).
MBV3_LARGE_STAGES = (
    (3, 1.0, 16, False, "relu", 1, 1),      # stage 0: 128x96 (stride 2)
    (3, 4.0, 24, False, "relu", 2, 1),      # stage 1:  64x48 (stride 4)
    (3, 3.0, 24, False, "relu", 1, 1),      #           64x48
    (5, 3.0, 40, True, "relu", 2, 3),       # stage 2:  32x24 (stride 8)
    (3, 6.0, 80, False, "hswish", 2, 1),    # stage 3:  16x12 (stride 16)
    (3, 2.5, 80, False, "hswish", 1, 1),    #           16x12
    (3, 2.3, 80, False, "hswish", 1, 2),    #           16x12
    (3, 6.0, 112, True, "hswish", 1, 2),    # stage 4:  16x12
    (5, 6.0, 160, True, "hswish", 2, 3),    # stage 5:   8x6  (stride 32)
)


@dataclasses.dataclass(frozen=True)
class BaselineSpec(Spec):
    """A SimpleBaseline-style network. Defaults: the classic SimpleBaseline-ResNet-18 (head 3 x 256)."""

    KIND: ClassVar[str] = "baseline"

    backbone: str = "resnet"                   # "resnet" | "mobilenetv3"
    stem_channels: int = 64                    # stem conv width (before width_mult)
    stages: tuple = RESNET18_STAGES            # stage table; row grammar depends on `backbone` (module doc)
    final_channels: int = 0                    # 1x1 conv after the stages (0 = none; MobileNetV3: 960)
    width_mult: float = 1.0                    # multiplies stem / stage / final widths (rounded to 8)
    head_channels: int | tuple = 256           # deconv width, or one width per deconv (head_layers entries)
    head_layers: int = 3                       # number of x2 deconvs
    head_kernel: int = 4                       # deconv kernel: 4, 3 or 2
    num_joints: int = 17                       # K heatmaps
    head_skips: bool = False                   # add backbone features to the deconvs of their resolution (U-Net)

    def __post_init__(self):
        # Canonical number types: floats stay floats through JSON (1 -> 1.0), so equal specs hash equally.
        if isinstance(self.width_mult, int) and not isinstance(self.width_mult, bool):
            object.__setattr__(self, "width_mult", float(self.width_mult))
        if isinstance(self.stages, list):
            object.__setattr__(self, "stages", _to_tuple(self.stages))
        if isinstance(self.head_channels, list):
            object.__setattr__(self, "head_channels", _to_tuple(self.head_channels))
        if self.backbone == "mobilenetv3" and isinstance(self.stages, tuple):
            rows = []
            for r in self.stages:
                if isinstance(r, tuple) and len(r) == 7 and isinstance(r[1], int) and not isinstance(r[1], bool):
                    r = (r[0], float(r[1]), *r[2:])
                rows.append(r)
            object.__setattr__(self, "stages", tuple(rows))
        super().__post_init__()

    # -- validation ---------------------------------------------------------------------------
    def validate(self) -> None:
        o = type(self).__name__
        check_choice(o, "backbone", self.backbone, BACKBONES)
        check_int(o, "stem_channels", self.stem_channels, 8, 256)
        check_int(o, "final_channels", self.final_channels, 0, 4096)
        check_float(o, "width_mult", self.width_mult, 0.25, 4.0)
        if isinstance(self.head_channels, tuple):
            if len(self.head_channels) != self.head_layers:
                raise SpecError(f"{o}.head_channels lists {len(self.head_channels)} widths, but head_layers="
                                f"{self.head_layers}: give one width per deconv, or a single integer")
            for i, w in enumerate(self.head_channels):
                check_int(o, f"head_channels[{i}]", w, 8, 1024)
        else:
            check_int(o, "head_channels", self.head_channels, 8, 1024)
        check_int(o, "head_layers", self.head_layers, 1, 5)
        check_choice(o, "head_kernel", self.head_kernel, sorted(DECONV_PADDING))
        check_int(o, "num_joints", self.num_joints, 1, 256)
        if not isinstance(self.head_skips, bool):
            raise SpecError(f"{o}.head_skips must be true or false, got {self.head_skips!r}")
        if not isinstance(self.stages, tuple) or not 1 <= len(self.stages) <= 12:
            raise SpecError(f"{o}.stages must be a list of 1 to 12 stage rows, got {self.stages!r}")
        for i, row in enumerate(self.stages):
            self._validate_row(i, row)
        stride = self.backbone_stride
        want = [s * 2 ** self.head_layers for s in OUTPUT_STRIDES]
        if stride not in want:
            raise SpecError(
                f"{o}.stages: the backbone stride is {stride} (stem {STEM_STRIDE[self.backbone]} x stage strides "
                f"{[self._row_stride(r) for r in self.stages]}), but head_layers={self.head_layers} upsamples "
                f"x{2 ** self.head_layers}; the output stride must be one of {list(OUTPUT_STRIDES)}, so the "
                f"backbone stride must be one of {want}")

    def _validate_row(self, i: int, row) -> None:
        o = f"{type(self).__name__}.stages[{i}]"
        if self.backbone == "resnet":
            if not isinstance(row, tuple) or len(row) != 3:
                raise SpecError(f"{o} must be (depth, width, stride) for backbone 'resnet', got {row!r}")
            depth, width, stride = row
            check_int(o, "depth", depth, 1, 16)
            check_int(o, "width", width, 8, 2048)
            check_choice(o, "stride", stride, (1, 2))
        else:
            if not isinstance(row, tuple) or len(row) != 7:
                raise SpecError(f"{o} must be (kernel, expansion, out, se, activation, stride, repeats) "
                                f"for backbone 'mobilenetv3', got {row!r}")
            kernel, expansion, out, se, act, stride, repeats = row
            check_choice(o, "kernel", kernel, (3, 5, 7))
            check_float(o, "expansion", expansion, 1.0, 8.0)
            check_int(o, "out", out, 8, 1024)
            if not isinstance(se, bool):
                raise SpecError(f"{o}.se must be true or false, got {se!r}")
            check_choice(o, "activation", act, MBV3_ACTIVATIONS)
            check_choice(o, "stride", stride, (1, 2))
            check_int(o, "repeats", repeats, 1, 16)

    def _row_stride(self, row) -> int:
        return row[2] if self.backbone == "resnet" else row[5]

    # -- derived quantities ---------------------------------------------------------------------
    @property
    def backbone_stride(self) -> int:
        """Stem stride x product of the stage strides (32 for the presets)."""
        s = STEM_STRIDE[self.backbone]
        for r in self.stages:
            s *= self._row_stride(r)
        return s

    @property
    def part_shapes(self) -> list[tuple[int, int]]:
        """(stride, channels) of each backbone part's output, in order: stem, one per stage row, final."""
        s = STEM_STRIDE[self.backbone]
        shapes = [(s, self.scaled(self.stem_channels))]
        for r in self.stages:
            s *= self._row_stride(r)
            shapes.append((s, self.scaled(r[1] if self.backbone == "resnet" else r[2])))
        if self.final_channels:
            shapes.append((s, self.scaled(self.final_channels)))
        return shapes

    @property
    def output_stride(self) -> int:
        """Input pixels per heatmap pixel: 4 or 2 (validate() ties the backbone stride to the head)."""
        return self.backbone_stride // 2 ** self.head_layers

    def scaled(self, channels: int) -> int:
        """A backbone width after `width_mult` (multiple of 8)."""
        return make_divisible(channels * self.width_mult) if self.width_mult != 1.0 else channels


# ---------------------------------------------------------------------------------------------
# ResNet (BasicBlock)


class BasicBlock(nn.Module):
    """ResNet BasicBlock: conv3x3(stride) -> BN -> ReLU -> conv3x3 -> BN, + shortcut, ReLU."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = (nn.Sequential(*conv_bn(cin, cout, 1, stride)) if stride != 1 or cin != cout
                           else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))     # (B, cout, H/s, W/s)
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.downsample(x))


def _resnet_backbone(spec: BaselineSpec) -> tuple[nn.Sequential, int]:
    c = spec.scaled(spec.stem_channels)
    layers: dict[str, nn.Module] = {
        "stem": nn.Sequential(*conv_bn(3, c, 7, 2, act="relu"), nn.MaxPool2d(3, 2, 1)),   # (B, c, H/4, W/4)
    }
    for i, (depth, width, stride) in enumerate(spec.stages):
        w = spec.scaled(width)
        blocks = []
        for j in range(depth):
            blocks.append(BasicBlock(c, w, stride if j == 0 else 1))
            c = w
        layers[f"stage{i + 1}"] = nn.Sequential(*blocks)
    if spec.final_channels:
        f = spec.scaled(spec.final_channels)
        layers["final"] = nn.Sequential(*conv_bn(c, f, 1, act="relu"))
        c = f
    return nn.Sequential(OrderedDict(layers)), c


# ---------------------------------------------------------------------------------------------
# MobileNetV3


class InvertedResidual(nn.Module):
    """MobileNetV3 bneck: [expand 1x1] -> depthwise kxk -> [SE] -> project 1x1; residual if shapes match."""

    def __init__(self, cin: int, mid: int, cout: int, kernel: int, stride: int, se: bool, act: str):
        super().__init__()
        self.expand = nn.Sequential(*conv_bn(cin, mid, 1, act=act)) if mid != cin else nn.Identity()
        self.dw = nn.Sequential(*conv_bn(mid, mid, kernel, stride, groups=mid, act=act))
        # SE keys se.fc1 / se.fc2 (ReLU, hard-sigmoid gate) as timm's MobileNetV3
        self.se = (SqueezeExcite(mid, make_divisible(mid / 4), act="relu", gate="hardsigmoid", names=("fc1", "fc2"))
                   if se else nn.Identity())
        self.project = nn.Sequential(*conv_bn(mid, cout, 1))
        self.use_residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.expand(x)                            # (B, mid, H, W)
        out = self.se(self.dw(out))                     # (B, mid, H/s, W/s)
        out = self.project(out)                         # (B, cout, H/s, W/s)
        return out + x if self.use_residual else out


def _mbv3_backbone(spec: BaselineSpec) -> tuple[nn.Sequential, int]:
    c = spec.scaled(spec.stem_channels)
    layers: dict[str, nn.Module] = {
        "stem": nn.Sequential(*conv_bn(3, c, 3, 2, act="hswish")),   # (B, c, H/2, W/2)
    }
    for i, (kernel, expansion, out, se, act, stride, repeats) in enumerate(spec.stages):
        w = spec.scaled(out)
        blocks = []
        for j in range(repeats):
            mid = make_divisible(c * expansion)
            blocks.append(InvertedResidual(c, mid, w, kernel, stride if j == 0 else 1, se, act))
            c = w
        layers[f"stage{i}"] = nn.Sequential(*blocks)
    if spec.final_channels:
        f = spec.scaled(spec.final_channels)
        layers["final"] = nn.Sequential(*conv_bn(c, f, 1, act="hswish"))
        c = f
    return nn.Sequential(OrderedDict(layers)), c


# ---------------------------------------------------------------------------------------------


class BaselineNet(DropGeneratorMixin, nn.Module):
    """backbone (B, 3, H, W) -> (B, C, H/S, W/S) -> DeconvHead -> heatmaps (B, K, H/s, W/s), s = output stride.

    Weights from `generator` (None: the global torch RNG). No random layers (`drop_generator` is accepted
    for a uniform API and unused)."""

    def __init__(self, spec: BaselineSpec, generator: torch.Generator | None = None):
        super().__init__()
        self.spec = spec
        make = _resnet_backbone if spec.backbone == "resnet" else _mbv3_backbone
        self.backbone, c = make(spec)
        self._init_backbone(generator)
        self.stride = spec.backbone_stride
        self.output_stride = spec.output_stride
        # head_skips: deconv i outputs stride S / 2**(i+1); its skip is the deepest backbone part at that stride.
        self._skip_from: list[int | None] = [None] * spec.head_layers
        if spec.head_skips:
            parts = spec.part_shapes
            for i in range(spec.head_layers):
                at = [j for j, (stride, _) in enumerate(parts) if stride == self.stride >> (i + 1)]
                self._skip_from[i] = at[-1] if at else None
            skip_channels = [None if j is None else parts[j][1] for j in self._skip_from]
        else:
            skip_channels = None
        self.head = DeconvHead(c, spec.num_joints, spec.head_channels, spec.head_layers, spec.head_kernel,
                               skip_channels=skip_channels, generator=generator)

    def _init_backbone(self, generator: torch.Generator | None = None) -> None:
        for m in self.backbone.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu", generator=generator)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input_size(x, self.stride, "backbone")
        if not self.spec.head_skips:
            feats = self.backbone(x)        # (B, C, H/S, W/S), S = backbone stride (32)
            return self.head(feats)         # (B, K, H/s, W/s)
        outs = []
        for part in self.backbone:          # stem, stages, final: each (B, C_j, H/S_j, W/S_j)
            x = part(x)
            outs.append(x)
        return self.head(x, [None if j is None else outs[j] for j in self._skip_from])


def build_baseline(spec: BaselineSpec, generator: torch.Generator | None = None) -> BaselineNet:
    """Build the static network of a `BaselineSpec`; weights from `generator` (then the global torch RNG is
    left as it was), or from the global torch RNG when None."""
    if not isinstance(spec, BaselineSpec):
        raise SpecError(f"build_baseline needs a BaselineSpec, got {type(spec).__name__}")
    with init_scope(generator):
        return BaselineNet(spec, generator)
