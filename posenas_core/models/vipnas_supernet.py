"""ViPNAS weight-sharing super-networks: one net sized by a space's max(); any member run or extracted.

    build_supernet(space_or_name, generator=None) -> ViPNASSupernet     "vipnas-res50" | "vipnas-mbv3" | a space
    supernet(x, arch)          heatmaps of the sub-network `arch` (a member of supernet.space; SpecError otherwise)
    supernet.extract(arch)     a ViPNASNet built as build_vipnas(arch), holding copies of arch's weights
    supernet.sub_state_dict(arch)   those weights under build_vipnas(arch)'s state-dict keys (copies)

The supernet is made of elastic ops (ops.elastic) at the sizes of `space.max()` (the largest member in every
field), under the static net's module names (models.vipnas), so every tensor of a sub-network is a slice of the
supernet's tensor of the same key: the first entries of its first two axes (out / in widths; a grouped axis
keeps its first in / groups entries, paper Fig. A3) and the centred crop of its kernel axes.

Elastic choices (paper section 3.2; the choice is only an argument, forward stores nothing apart from BN
running statistics in training mode):
* depth: the first D blocks of each stage; width, kernel, groups (and attention) per stage, shared by its blocks.
* Res50: a block's downsample (1x1 conv + BN) is used exactly where the static net has one (stride != 1 or an
  input width other than the block's); GC's inner width P = gc_planes(C) follows the block width C, its
  LayerNorm([P, 1, 1]) sliced to P.
* MBv3: mid = width x expansion; no expand conv where the expansion is 1; SE inner width se_inner(mid) with the
  mmcv_hsigmoid gate; the residual where stride is 1 and the input width equals the width.
* Head: each deconv row's width / kernel / groups with its BN sliced; then a 1x1 conv (bias) to the joints.
A grouped conv stores only what the fewest groups the space allows at that layer need (its `min_groups`: the
smallest groups of the row's pairs in `space.bounds`, else those of `space.max()`).
Init as ViPNASNet: conv / deconv weights N(0, 0.001), biases 0, BN / LayerNorm 1 / 0, all from `generator`.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from posenas_core.errors import SpecError
from posenas_core.models.vipnas import ViPNASNet, gc_planes, init_vipnas_weights
from posenas_core.ops.elastic import (
    ElasticBatchNorm2d,
    ElasticConv2d,
    ElasticConvBN,
    ElasticConvTranspose2d,
    ElasticSqueezeExcite,
)
from posenas_core.ops.layers import check_input_size, init_scope
from posenas_core.spaces import get_space
from posenas_core.spaces.vipnas import MBV3_ACTIVATIONS, DeconvRow, MbStage, ResStage, ViPNASMbv3Spec, ViPNASResSpec

__all__ = ["ViPNASSupernet", "build_supernet"]

_Arch = ViPNASResSpec | ViPNASMbv3Spec          # a member of the supernet's space


class _ElasticLayerNorm(nn.LayerNorm):
    """LayerNorm([P, 1, 1]) applied to (B, p, 1, 1) with its first p entries (ContextBlock's channel_add LN)."""

    def __init__(self, max_planes: int):
        super().__init__([max_planes, 1, 1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = x.shape[1]
        return F.layer_norm(x, (p, 1, 1), self.weight[:p], self.bias[:p], self.eps)


class ElasticContextBlock(nn.Module):
    """models.vipnas.ContextBlock for C = x.shape[1] <= max_channels, inner width gc_planes(C); mmcv's names."""

    def __init__(self, max_channels: int):
        super().__init__()
        planes = gc_planes(max_channels)
        self.conv_mask = ElasticConv2d(max_channels, 1, 1, bias=True)
        self.channel_add_conv = nn.ModuleList([ElasticConv2d(max_channels, planes, 1, bias=True),
                                               _ElasticLayerNorm(planes), nn.ReLU(inplace=True),
                                               ElasticConv2d(planes, max_channels, 1, bias=True)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        conv_in, norm, act, conv_out = self.channel_add_conv
        mask = self.conv_mask(x, 1, 1).view(b, 1, h * w).softmax(-1)               # (B, 1, HW)
        context = torch.matmul(x.view(b, c, h * w), mask.transpose(1, 2))          # (B, C, 1)
        return x + conv_out(act(norm(conv_in(context.view(b, c, 1, 1), gc_planes(c), 1))), c, 1)


class ElasticResBlock(nn.Module):
    """models.vipnas.ResBottleneck with elastic width, kernel, groups and GC; forward(x, row: ResStage)."""

    def __init__(self, max_in: int, max_width: int, max_kernel: int, stride: int, min_groups: int, gc: bool,
                 downsample: bool):
        super().__init__()
        self.stride = stride
        self.conv1 = ElasticConvBN(max_in, max_width, 1, act="relu")
        self.conv2 = ElasticConvBN(max_width, max_width, max_kernel, stride, "relu", min_groups)
        self.conv3 = ElasticConvBN(max_width, max_width, 1)
        if gc:
            self.gc = ElasticContextBlock(max_width)
        if downsample:
            self.downsample = ElasticConvBN(max_in, max_width, 1, stride)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor, row: ResStage) -> torch.Tensor:
        w = row.width
        out = self.conv3(self.conv2(self.conv1(x, w, 1), w, row.kernel, row.groups), w, 1)
        if row.attention == "gc":
            out = self.gc(out)
        shortcut = self.downsample(x, w, 1) if self.stride != 1 or x.shape[1] != w else x
        return self.relu(out + shortcut)


class ElasticMbBlock(nn.Module):
    """models.vipnas.MbBlock with elastic expansion, kernel, groups and SE; forward(x, row: MbStage)."""

    def __init__(self, max_in: int, max_mid: int, max_out: int, max_kernel: int, stride: int, min_groups: int,
                 se: bool, act: str, expand: bool):
        super().__init__()
        self.stride = stride
        if expand:
            self.expand = ElasticConvBN(max_in, max_mid, 1, act=act)
        self.mid = ElasticConvBN(max_mid, max_mid, max_kernel, stride, act, min_groups)
        if se:
            self.se = ElasticSqueezeExcite(max_mid, ratio=4, divisor=1, act="relu", gate="mmcv_hsigmoid")
        self.project = ElasticConvBN(max_mid, max_out, 1)

    def forward(self, x: torch.Tensor, row: MbStage) -> torch.Tensor:
        mid = row.width * row.expansion
        out = self.mid(self.expand(x, mid, 1) if row.expansion != 1 else x, mid, row.kernel, row.groups)
        out = self.project(self.se(out) if row.se else out, row.width, 1)
        return out + x if self.stride == 1 and x.shape[1] == row.width else out


class ElasticDeconvRow(nn.Module):
    """One head row: ElasticConvTranspose2d (stride 2, no bias) -> ElasticBatchNorm2d -> ReLU (keys deconv, bn)."""

    def __init__(self, max_in: int, max_out: int, max_kernel: int, min_groups: int):
        super().__init__()
        self.deconv = ElasticConvTranspose2d(max_in, max_out, max_kernel, 2, min_groups=min_groups)
        self.bn = ElasticBatchNorm2d(max_out)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor, row: DeconvRow) -> torch.Tensor:
        return self.act(self.bn(self.deconv(x, row.width, row.kernel, row.groups)))


def _min_groups(row_bounds, fallback: int) -> int:
    """The fewest groups a bounds row allows (its (width | expansion, groups) pairs); `fallback` without pairs."""
    pairs = getattr(row_bounds, "pairs", None)
    return min(g for _, g in pairs) if pairs else fallback


def _crop(t: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """The first entries of axes 0 and 1 of `t` and the centred crop of the others, to `shape`."""
    index = []
    for axis, (big, small) in enumerate(zip(t.shape, shape)):
        start = (big - small) // 2 if axis >= 2 else 0
        index.append(slice(start, start + small))
    return t[tuple(index)]


class ViPNASSupernet(nn.Module):
    """The super-network of a ViPNAS space (module docstring); attributes `space`, `max_arch` (space.max()),
    `stride` (32) and `output_stride` (of the max arch: 4).

    forward(x, arch): (B, 3, H, W) -> (B, K, H/s, W/s) heatmaps of member `arch` (SpecError from
    `space.validate` for a non-member); H, W multiples of 32.
    """

    def __init__(self, space, generator: torch.Generator | None = None):
        super().__init__()
        self.space = space
        self.max_arch = m = space.validate(space.max())
        if not isinstance(m, (ViPNASResSpec, ViPNASMbv3Spec)):
            raise SpecError(f"ViPNASSupernet needs a space of ViPNASResSpecs or ViPNASMbv3Specs (e.g. 'vipnas-res50', "
                            f"'vipnas-mbv3'), got space {getattr(space, 'name', space)!r} of {type(m).__name__}")
        self.stride, self.output_stride = m.network_stride, m.output_stride
        bounds = getattr(space, "bounds", None)
        stage_bounds = getattr(bounds, "stages", None) or [None] * len(m.stages)
        head_bounds = getattr(bounds, "head", None)
        res = isinstance(m, ViPNASResSpec)
        with init_scope(generator):
            self.stem = ElasticConvBN(3, m.stem_channels, 7 if res else 3, 2, "relu" if res else MBV3_ACTIVATIONS[0])
            self.stem_pool = nn.MaxPool2d(3, 2, 1) if res else nn.Identity()
            c, stages = m.stem_channels, []
            for i, (row, stride) in enumerate(zip(m.stages, m.STRIDES)):
                min_groups = _min_groups(stage_bounds[i], row.groups)
                blocks = []
                for b in range(row.depth):
                    s = stride if b == 0 else 1
                    if res:
                        blocks.append(ElasticResBlock(c, row.width, row.kernel, s, min_groups, row.attention == "gc",
                                                      downsample=b == 0))
                    else:
                        blocks.append(ElasticMbBlock(c, row.width * row.expansion, row.width, row.kernel, s,
                                                     min_groups, row.se, MBV3_ACTIVATIONS[i + 1], row.expansion != 1))
                    c = row.width
                stages.append(nn.ModuleList(blocks))
            self.stages = nn.ModuleList(stages)
            head = []
            for row in m.head:
                min_groups = _min_groups(head_bounds, row.groups)
                head.append(ElasticDeconvRow(c, row.width, row.kernel, min_groups))
                c = row.width
            self.head = nn.ModuleList(head)
            self.final = ElasticConv2d(c, m.num_joints, 1, bias=True)
            self._init_weights(generator)

    def _init_weights(self, generator: torch.Generator | None) -> None:
        init_vipnas_weights(self, (ElasticConv2d, ElasticConvTranspose2d), generator)

    def forward(self, x: torch.Tensor, arch: _Arch) -> torch.Tensor:
        arch = self.space.validate(arch)
        check_input_size(x, self.stride, "backbone")
        x = self.stem_pool(self.stem(x, arch.stem_channels, self.stem.conv.max_kernel))
        for blocks, row in zip(self.stages, arch.stages):
            for b in range(row.depth):
                x = blocks[b](x, row)                  # ends at (B, C, H/32, W/32)
        for deconv, row in zip(self.head, arch.head):
            x = deconv(x, row)
        return self.final(x, arch.num_joints, 1)       # (B, K, H/s, W/s)

    def _static(self, arch: _Arch) -> ViPNASNet:
        """build_vipnas(arch)'s network on the meta device (no memory, no random draws)."""
        with torch.device("meta"):
            return ViPNASNet(self.space.validate(arch))

    def _sub_tensors(self, net: ViPNASNet) -> OrderedDict:
        own = self.state_dict()
        return OrderedDict((k, _crop(own[k], v.shape)) for k, v in net.state_dict().items())

    @torch.no_grad()
    def sub_state_dict(self, arch: _Arch) -> OrderedDict:
        """The weights and BN statistics of sub-network `arch` as copies, keyed as build_vipnas(arch)'s."""
        return OrderedDict((k, v.clone()) for k, v in self._sub_tensors(self._static(arch)).items())

    @torch.no_grad()
    def extract(self, arch: _Arch) -> ViPNASNet:
        """A ViPNASNet of `arch` (build_vipnas's structure and keys) holding copies of the sub-network's weights
        and BN statistics, on the supernet's device and dtype, in its train / eval mode."""
        net = self._static(arch)
        ref = self.stem.conv.weight
        net = net.to_empty(device=ref.device).to(ref.dtype)
        net.load_state_dict(self._sub_tensors(net))
        return net.train(self.training)


def build_supernet(space_or_name, generator: torch.Generator | None = None) -> ViPNASSupernet:
    """The supernet of a ViPNAS space, given as a space object or its registered name (ConfigError naming the
    known spaces for an unknown name); weights from `generator` (None: the global torch RNG)."""
    if isinstance(space_or_name, str):
        space_or_name = get_space(space_or_name)
    return ViPNASSupernet(space_or_name, generator)
