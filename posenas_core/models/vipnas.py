"""ViPNAS static networks (mmpose ViPNAS_ResNet / ViPNAS_MobileNetV3 + ViPNASHead) from their specs.

    build_vipnas(spec, generator=None) -> ViPNASNet      spec: ViPNASResSpec | ViPNASMbv3Spec (spaces.vipnas)
    ViPNASNet: images (B, 3, H, W) -> heatmaps (B, K, H/4, W/4); H, W multiples of 32

Layers, in mmpose's order:

* Res: stem = conv7x7/2 -> BN -> ReLU -> maxpool3x3/2; each bottleneck (expansion 1, mid = out = width) =
  1x1 -> BN -> ReLU -> kxk(groups, stride) -> BN -> ReLU -> 1x1 -> BN -> [GC] -> + shortcut -> ReLU, the shortcut
  a 1x1 conv(stride) + BN when the stride is not 1 or the width changes. GC = mmcv ContextBlock(C, ratio
  max(1/16, 16/C)): 'att' pooling (1x1 C->1, softmax over HW, weighted sum), channel_add fusion
  1x1 C->P -> LayerNorm([P, 1, 1]) -> ReLU -> 1x1 P->C, P = max(C // 16, 16) (16 / 19 / 38 for 80 / 304 / 608).
* MBv3: stem = conv3x3/2 -> BN -> h-swish; each inverted residual = [1x1 expand -> BN -> act, when expansion > 1]
  -> kxk(groups, stride) -> BN -> act -> [SE] -> 1x1 -> BN, + input when stride 1 and in == out. mid is the stage
  width x expansion (also for its first block). SE = 1x1 (bias) mid -> mid // 4 (as ops.elastic's
  ElasticSqueezeExcite(ratio 4, divisor 1): round(mid / 4), equal to mmpose's int(mid / 4) for every mid that is a
  multiple of 4, as all released and table-A1 ones) -> ReLU -> 1x1 -> ops.layers.MmcvHSigmoid clamp((x + 1) / 2, 0, 1)
  (mmpose pins bias 1, divisor 2; torch's Hardsigmoid is (x + 3) / 6) -> scale.
* Head: per row, ConvTranspose2d(kernel, stride 2, groups, no bias) -> BN -> ReLU; then a 1x1 conv (bias) to K.

State-dict keys, as a supernet names the same modules: stem.{conv,bn}, stages.{s}.{b}.{layer}.{conv,bn} with
layer conv1 / conv2 / conv3 / downsample / gc (Res) or expand / mid / project / se (MBv3; SE convs reduce,
expand), head.{i}.{deconv,bn}, final. The GC block keeps mmcv's names (conv_mask, channel_add_conv.{0,1,3}).

Init as mmpose: every conv and deconv N(0, 0.001), biases 0; BN / LayerNorm weight 1, bias 0 (this also
replaces mmcv ContextBlock's own zero init of its last conv, as mmpose's init_cfg does).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from posenas_core.errors import SpecError
from posenas_core.genotype import make_divisible
from posenas_core.models.heads import DECONV_PADDING
from posenas_core.ops.layers import (
    ConvBN,
    DropGeneratorMixin,
    SqueezeExcite,
    check_input_size,
    init_scope,
    make_activation,
)
from posenas_core.spaces.vipnas import MBV3_ACTIVATIONS, ViPNASMbv3Spec, ViPNASResSpec

__all__ = ["ContextBlock", "ViPNASNet", "build_vipnas", "gc_planes", "se_inner"]


def gc_planes(channels: int) -> int:
    """ContextBlock's inner width: int(C * max(1/16, 16/C)) = max(C // 16, 16)."""
    return max(channels // 16, 16)


def se_inner(mid: int) -> int:
    """The SE squeeze width of an MBv3 block of `mid` channels: round(mid / 4) (ElasticSqueezeExcite divisor 1)."""
    return make_divisible(mid / 4, 1)


class ContextBlock(nn.Module):
    """mmcv ContextBlock, pooling 'att', fusion 'channel_add': x + add(sum_hw softmax(mask(x)) * x)."""

    def __init__(self, channels: int, planes: int):
        super().__init__()
        self.conv_mask = nn.Conv2d(channels, 1, 1)
        self.channel_add_conv = nn.Sequential(nn.Conv2d(channels, planes, 1), nn.LayerNorm([planes, 1, 1]),
                                              nn.ReLU(inplace=True), nn.Conv2d(planes, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        mask = self.conv_mask(x).view(b, 1, h * w).softmax(-1)           # (B, 1, HW)
        context = torch.matmul(x.view(b, c, h * w), mask.transpose(1, 2))  # (B, C, 1)
        return x + self.channel_add_conv(context.view(b, c, 1, 1))


class ResBottleneck(nn.Module):
    """ViPNAS_Bottleneck with expansion 1 (module doc)."""

    def __init__(self, cin: int, width: int, kernel: int, groups: int, stride: int, gc: bool):
        super().__init__()
        self.conv1 = ConvBN(cin, width, 1, act="relu")
        self.conv2 = ConvBN(width, width, kernel, stride, groups, act="relu")
        self.conv3 = ConvBN(width, width, 1)
        self.gc = ContextBlock(width, gc_planes(width)) if gc else nn.Identity()
        self.downsample = ConvBN(cin, width, 1, stride) if stride != 1 or cin != width else nn.Identity()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.gc(self.conv3(self.conv2(self.conv1(x))))   # (B, width, H/s, W/s)
        return self.relu(out + self.downsample(x))


class MbBlock(nn.Module):
    """mmpose InvertedResidual as ViPNAS_MobileNetV3 uses it (module doc)."""

    def __init__(self, cin: int, mid: int, cout: int, kernel: int, groups: int, stride: int, se: bool, act: str,
                 expand: bool):
        super().__init__()
        self.expand = ConvBN(cin, mid, 1, act=act) if expand else nn.Identity()
        self.mid = ConvBN(mid, mid, kernel, stride, groups, act=act)
        self.se = SqueezeExcite(mid, se_inner(mid), act="relu", gate="mmcv_hsigmoid") if se else nn.Identity()
        self.project = ConvBN(mid, cout, 1)
        self.use_residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.se(self.mid(self.expand(x))))   # (B, cout, H/s, W/s)
        return out + x if self.use_residual else out


def _res_layers(spec: ViPNASResSpec) -> tuple[nn.Module, list[nn.Sequential], int]:
    c = spec.stem_channels
    stem = ConvBN(3, c, 7, 2, act="relu")
    stem.add_module("pool", nn.MaxPool2d(3, 2, 1))                        # (B, c, H/4, W/4)
    stages = []
    for (depth, width, kernel, groups, attention), stride in zip(spec.stages, spec.STRIDES):
        blocks = []
        for b in range(depth):
            blocks.append(ResBottleneck(c, width, kernel, groups, stride if b == 0 else 1, attention == "gc"))
            c = width
        stages.append(nn.Sequential(*blocks))
    return stem, stages, c


def _mbv3_layers(spec: ViPNASMbv3Spec) -> tuple[nn.Module, list[nn.Sequential], int]:
    c = spec.stem_channels
    stem = ConvBN(3, c, 3, 2, act=MBV3_ACTIVATIONS[0])                    # (B, c, H/2, W/2)
    stages = []
    for i, ((depth, width, expansion, kernel, groups, se), stride) in enumerate(zip(spec.stages, spec.STRIDES)):
        blocks = []
        for b in range(depth):
            blocks.append(MbBlock(c, width * expansion, width, kernel, groups, stride if b == 0 else 1, se,
                                  MBV3_ACTIVATIONS[i + 1], expansion != 1))
            c = width
        stages.append(nn.Sequential(*blocks))
    return stem, stages, c


def init_vipnas_weights(net: nn.Module, conv_types: tuple, generator: torch.Generator | None) -> None:
    """mmpose's init of ViPNAS nets: every conv of `conv_types` N(0, 0.001) with zero bias, norms at 1 / 0.
    Shared by the static nets and the supernet (whose elastic convs are other types)."""
    for m in net.modules():
        if isinstance(m, conv_types):
            nn.init.normal_(m.weight, std=0.001, generator=generator)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.LayerNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class ViPNASNet(DropGeneratorMixin, nn.Module):
    """stem -> stages -> head (deconvs) -> final 1x1: (B, 3, H, W) -> (B, K, H/s, W/s), s = spec.output_stride.

    No random layers (`drop_generator` is accepted for a uniform API and unused)."""

    def __init__(self, spec: ViPNASResSpec | ViPNASMbv3Spec, generator: torch.Generator | None = None):
        super().__init__()
        self.spec = spec
        self.stride = spec.network_stride
        self.output_stride = spec.output_stride
        make = _res_layers if isinstance(spec, ViPNASResSpec) else _mbv3_layers
        self.stem, stages, c = make(spec)
        self.stages = nn.ModuleList(stages)
        head = []
        for width, kernel, groups in spec.head:
            pad, out_pad = DECONV_PADDING[kernel]
            head.append(nn.Sequential(OrderedDict(
                deconv=nn.ConvTranspose2d(c, width, kernel, 2, pad, out_pad, groups=groups, bias=False),
                bn=nn.BatchNorm2d(width), act=make_activation("relu"))))
            c = width
        self.head = nn.Sequential(*head)
        self.final = nn.Conv2d(c, spec.num_joints, 1)
        self._init_weights(generator)

    def _init_weights(self, generator: torch.Generator | None) -> None:
        init_vipnas_weights(self, (nn.Conv2d, nn.ConvTranspose2d), generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input_size(x, self.stride, "backbone")
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)                    # ends at (B, C, H/32, W/32)
        return self.final(self.head(x))     # (B, K, H/s, W/s)


def build_vipnas(spec: ViPNASResSpec | ViPNASMbv3Spec, generator: torch.Generator | None = None) -> ViPNASNet:
    """Build the static network of a ViPNAS spec; weights from `generator` (then the global torch RNG is left as
    it was), or from the global torch RNG when None."""
    if not isinstance(spec, (ViPNASResSpec, ViPNASMbv3Spec)):
        raise SpecError(f"build_vipnas needs a ViPNASResSpec or ViPNASMbv3Spec, got {type(spec).__name__}")
    with init_scope(generator):
        return ViPNASNet(spec, generator)
