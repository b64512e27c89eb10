"""The EvoPose2D network built from an `EvoPoseSpec` (PyTorch port of the public TF code's `EvoPose`).

    image (B, 3, H, W)
      stem:    Conv 3x3/2 (round_filters(32), no bias) -> BN -> swish              # (B, 32, H/2, W/2)
      modules: 7 x [blocks x MBConv]; the first block of a module takes its stride
      head:    head_blocks x [ConvTranspose 3x3/2 (round_filters(128), no bias) -> BN -> swish]
      final:   Conv 1x1 (bias) to K heatmaps                                      # (B, K, H/os, W/os)

MBConv (EfficientNet), input Cin, expanded Cexp = Cin x expansion:
  [1x1 expand -> BN -> swish]  (absent when expansion is 1: module 1)
  -> depthwise kxk / stride (no bias) -> BN -> swish
  -> SE: avgpool -> 1x1 to max(1, int(Cin x 0.25)) (bias) -> swish -> 1x1 to Cexp (bias) -> sigmoid -> scale
     (the squeeze width is 0.25 of the *block input*, as in the public code)
  -> 1x1 project (no bias) -> BN
  -> + input, with drop-connect on the branch, when stride is 1 and Cin == Cout.
Drop-connect rate of global block b (0-based, after depth scaling) of N: spec.drop_connect x b / N.

Padding is PyTorch-symmetric ('same' for stride 1; k//2 for stride 2), and the transposed convs use
padding 1 / output_padding 1: both differ from TF's 'same' by a pixel alignment that only matters when
porting TF weights (see reference/evopose2d.md). Param and MAC counts are identical.

State-dict layout (what the weight transfer in `posenas_core.search.transfer` matches on):
  stem.{conv,bn}, blocks.{m}.{b}.{expand.conv, expand.bn, dw.conv, dw.bn, se.reduce, se.expand,
  project.conv, project.bn}, head.{i}.{deconv,bn}, final.
Init as the public code: Keras VarianceScaling(2, fan_out, truncated normal) for conv / deconv kernels,
VarianceScaling(1/3, fan_out, uniform) / 255 for the final conv (its targets peak at 255, ours at 1),
zero biases, BN weight 1 / bias 0; drawn from `build_evopose`'s generator, else the global torch RNG.
Drop-connect masks come from `net.drop_generator` (a torch.Generator; None, the default: the global RNG).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from posenas_core.errors import SpecError
from posenas_core.ops.layers import ConvBN, DropConnect, DropGeneratorMixin, SqueezeExcite, check_input_size, init_scope
from posenas_core.spaces.evopose import EvoPoseSpec

__all__ = ["EvoPoseNet", "MBConv", "build_evopose", "bn_kwargs"]

SE_RATIO = 0.25
TARGET_SCALE = 255.0                           # the public code's heatmap peak value (ours: 1)
_TRUNC_STD_CORRECTION = 0.87962566103423978   # std of a unit normal truncated at +-2 (Keras' correction)


def bn_kwargs(style: str) -> dict:
    """BatchNorm2d settings: 'torch' defaults, or 'keras' (momentum 0.99 -> torch 0.01, eps 1e-3)."""
    return {"eps": 1e-3, "momentum": 0.01} if style == "keras" else {"eps": 1e-5, "momentum": 0.1}


def _conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, act: bool = True,
             bn: str = "torch") -> ConvBN:
    """Conv -> BN (bn style) -> swish (not in place) when `act`: keys conv.*, bn.*."""
    return ConvBN(cin, cout, k, stride, groups, act="swish" if act else None, inplace=False, **bn_kwargs(bn))


class MBConv(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expansion: int, drop_rate: float,
                 bn: str = "torch"):
        super().__init__()
        mid = cin * expansion
        self.expand = _conv_bn(cin, mid, 1, bn=bn) if expansion != 1 else nn.Identity()
        self.dw = _conv_bn(mid, mid, kernel, stride, groups=mid, bn=bn)
        self.se = SqueezeExcite(mid, max(1, int(cin * SE_RATIO)), act="swish", gate="sigmoid", inplace=False)
        self.project = _conv_bn(mid, cout, 1, act=False, bn=bn)
        self.has_skip = stride == 1 and cin == cout
        # drop-connect: drop the whole branch per sample, rescale the kept ones (Keras Dropout noise (B,1,1,1))
        self.drop = DropConnect(drop_rate)

    @property
    def drop_rate(self) -> float:
        return self.drop.rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.se(self.dw(self.expand(x))))
        return x + self.drop(y) if self.has_skip else y


class HeadBlock(nn.Sequential):
    def __init__(self, cin: int, cout: int, bn: str = "torch"):
        super().__init__()
        self.deconv = nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1, bias=False)
        self.bn = nn.BatchNorm2d(cout, **bn_kwargs(bn))
        self.act = nn.SiLU()


class EvoPoseNet(DropGeneratorMixin, nn.Module):
    """EvoPose2D: images (B, 3, H, W) -> heatmaps (B, K, H / output_stride, W / output_stride).

    Weights from `generator` (None: the global torch RNG); `net.drop_generator = g` makes every drop-connect
    draw from the torch.Generator g (None, the default: the global RNG)."""

    def __init__(self, spec: EvoPoseSpec, generator: torch.Generator | None = None):
        super().__init__()
        self.spec = spec
        plan = spec.module_plan()
        total = sum(p["blocks"] for p in plan)
        self.stem = _conv_bn(3, spec.channels(spec.stem_channels), 3, 2, bn=spec.bn)
        modules, b = [], 0
        for p in plan:
            blocks = []
            for j in range(p["blocks"]):
                cin = p["in"] if j == 0 else p["out"]
                blocks.append(MBConv(cin, p["out"], p["kernel"], p["stride"] if j == 0 else 1, p["expansion"],
                                     spec.drop_connect * b / total, bn=spec.bn))
                b += 1
            modules.append(nn.Sequential(*blocks))
        self.blocks = nn.ModuleList(modules)
        c, head = plan[-1]["out"], []
        hc = spec.channels(spec.head_channels)
        for _ in range(spec.head_blocks):
            head.append(HeadBlock(c, hc, bn=spec.bn))
            c = hc
        self.head = nn.Sequential(*head)
        self.final = nn.Conv2d(c, spec.num_joints, 1, bias=True)
        self.stride = spec.network_stride
        self.output_stride = spec.output_stride
        # head_skips: after head block i (stride S / 2**(i+1)), add a 1x1 conv + BN of the deepest backbone
        # part (stem or module) at that stride; keys head_laterals.{i}.{conv,bn} (transferred by name).
        self._skip_from: dict[int, int] = {}
        if spec.head_skips:
            strides, s_cum = [2], 2                                   # part 0: the stem
            chans = [spec.channels(spec.stem_channels)] + [p["out"] for p in plan]
            for p in plan:
                s_cum *= p["stride"]
                strides.append(s_cum)
            for i in range(spec.head_blocks):
                at = [j for j, st in enumerate(strides) if st == self.stride >> (i + 1)]
                if at:
                    self._skip_from[i] = at[-1]
            self.head_laterals = nn.ModuleDict({str(i): _conv_bn(chans[j], hc, 1, act=False, bn=spec.bn)
                                                for i, j in self._skip_from.items()})
        self.reset_parameters(generator)

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) and m is not self.final:
                # VarianceScaling(2.0, fan_out, truncated_normal)
                # Keras fans: Conv2D k*k*out, DepthwiseConv2D k*k (depth multiplier 1), Conv2DTranspose k*k*in
                if isinstance(m, nn.ConvTranspose2d):
                    fan_out = m.kernel_size[0] * m.kernel_size[1] * m.in_channels
                else:
                    fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
                std = math.sqrt(2.0 / max(1, fan_out)) / _TRUNC_STD_CORRECTION
                nn.init.trunc_normal_(m.weight, std=std, a=-2 * std, b=2 * std, generator=generator)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        # VarianceScaling(1/3, fan_out, uniform), divided by 255: the public code's heatmap targets peak at 255,
        # ours at 1, so this keeps its initial output / target ratio. Unscaled, the initial outputs (std ~1.5)
        # are ~100x the targets: the first epochs go into shrinking them (loss 0.94 at init vs 0.014 for
        # all-zeros at 128x96) and eval-mode BN statistics lag far behind (val loss rose while training).
        fan_out = self.final.out_channels * self.final.kernel_size[0] * self.final.kernel_size[1]
        limit = math.sqrt(3.0 * (1.0 / 3.0) / fan_out) / TARGET_SCALE
        nn.init.uniform_(self.final.weight, -limit, limit, generator=generator)
        nn.init.zeros_(self.final.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input_size(x, self.stride, "network")
        x = self.stem(x)                     # (B, C0, H/2, W/2)
        parts = [x]
        for module in self.blocks:
            x = module(x)                    # (B, C_m, H/s_m, W/s_m)
            parts.append(x)
        if not self._skip_from:
            x = self.head(x)                 # (B, Ch, H/os, W/os), os = stride / 2**head_blocks
        else:
            for i, block in enumerate(self.head):
                x = block(x)                 # (B, Ch, 2h, 2w)
                if i in self._skip_from:
                    x = x + self.head_laterals[str(i)](parts[self._skip_from[i]])
        return self.final(x)                 # (B, K, H/os, W/os)


def build_evopose(spec: EvoPoseSpec, generator: torch.Generator | None = None) -> EvoPoseNet:
    """Build the static network of an `EvoPoseSpec`; weights from `generator` (then the global torch RNG is
    left as it was), or from the global torch RNG when None."""
    if not isinstance(spec, EvoPoseSpec):
        raise SpecError(f"build_evopose needs an EvoPoseSpec, got {type(spec).__name__}")
    with init_scope(generator):
        return EvoPoseNet(spec, generator)
