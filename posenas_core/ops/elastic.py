"""Elastic operations for weight-sharing super-networks (ViPNAS): one max-size weight, any smaller choice.

    ElasticConv2d(max_in, max_out, max_kernel, min_groups=1)           forward(x, out_channels, kernel, groups=1)
    ElasticConvTranspose2d(max_in, max_out, max_kernel, min_groups=1)  forward(x, out_channels, kernel, groups=1)
    ElasticConvBN(max_in, max_out, max_kernel, act=None, min_groups=1) forward(x, out_channels, kernel, groups=1)
    ElasticBatchNorm2d(max_channels)                     forward(x): the first x.shape[1] channels
    ElasticSqueezeExcite(max_channels, ratio=4)          forward(x): inner width make_divisible(C / ratio)

Each op's choice is an argument of `forward` (no state is set by a call, apart from BN running statistics in
training), and `static(choice)` returns the plain torch layer holding a copy of exactly the weights that choice
uses, so `op.static(choice)(x)` equals `op(x, choice)`.

Slicing (ViPNAS section 3.2, Fig. A3): width keeps the first output filters; the input width is x.shape[1] and
keeps the first input channels; a kernel is the centred crop of the max kernel, starting at (K - k) // 2, so k
must have K's parity; groups g keep the first in/g input channels of every filter (conv) or the first out/g
output columns (transposed conv). The weights keep torch's key names ('weight', 'bias', BN buffers).
Storage: a conv stores only the max_in // min_groups input channels per filter that its fewest groups
`min_groups` need (a transposed conv: max_out // min_groups output columns); fewer groups are refused.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from posenas_core.errors import ConfigError
from posenas_core.genotype import make_divisible
from posenas_core.ops.layers import GATES, ConvBN, SqueezeExcite, make_activation

__all__ = ["ElasticConv2d", "ElasticConvTranspose2d", "ElasticBatchNorm2d", "ElasticConvBN", "ElasticSqueezeExcite"]


def _check_choice(op: str, cin: int, max_in: int, out: int, max_out: int, kernel: int, max_kernel: int,
                  groups: int, min_groups: int = 1) -> None:
    """ConfigError naming the first bad value of a (cin, out, kernel, groups) choice and what is allowed."""
    if not 1 <= cin <= max_in:
        raise ConfigError(f"{op}: input has {cin} channels; allowed 1..{max_in} (max_in)")
    if not 1 <= out <= max_out:
        raise ConfigError(f"{op}: out_channels {out} is not allowed; choose 1..{max_out} (max_out)")
    if not 1 <= kernel <= max_kernel or (max_kernel - kernel) % 2:
        parity = "odd" if max_kernel % 2 else "even"
        raise ConfigError(f"{op}: kernel {kernel} is not allowed; choose an {parity} size from 1 to {max_kernel} "
                          f"(a centred crop of the max kernel {max_kernel})")
    if groups < 1 or cin % groups or out % groups:
        raise ConfigError(f"{op}: groups {groups} is not allowed; it must divide the input width {cin} "
                          f"and out_channels {out}")
    if groups < min_groups:
        raise ConfigError(f"{op}: groups {groups} is not allowed; the weight is stored for groups >= {min_groups} "
                          f"(min_groups)")


def _empty_like_layer(layer: nn.Module, like: torch.Tensor) -> nn.Module:
    """`layer` (built on the meta device, so no RNG is drawn) materialised on `like`'s device and dtype."""
    return layer.to_empty(device=like.device).to(like.dtype)


class _ElasticConvBase(nn.Module):
    """The stored weight (torch's layout for the layer, the grouped axis cut to what `min_groups` needs) and the
    bias of an elastic conv."""

    def __init__(self, max_in: int, max_out: int, max_kernel: int, stride: int, bias: bool, min_groups: int,
                 transposed: bool):
        super().__init__()
        self.max_in, self.max_out, self.max_kernel = int(max_in), int(max_out), int(max_kernel)
        self.stride, self.min_groups = int(stride), int(min_groups)
        split = self.max_out if transposed else self.max_in             # the width the groups split in storage
        if not 1 <= self.min_groups <= split:
            raise ConfigError(f"{type(self).__name__}: min_groups {min_groups} is not allowed; choose 1..{split}")
        stored = (self.max_in, split // self.min_groups) if transposed else (self.max_out, split // self.min_groups)
        self.weight = nn.Parameter(torch.empty(*stored, self.max_kernel, self.max_kernel))
        self.bias = nn.Parameter(torch.empty(self.max_out)) if bias else None
        # torch's default init (kaiming-uniform a=sqrt(5), bias uniform +-1/sqrt(fan_in)) on the stored weight
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(stored[1] * self.max_kernel ** 2)
            nn.init.uniform_(self.bias, -bound, bound)

    def _check(self, in_channels: int, out_channels: int, kernel: int, groups: int) -> None:
        _check_choice(type(self).__name__, in_channels, self.max_in, out_channels, self.max_out, kernel,
                      self.max_kernel, groups, self.min_groups)

    def _crop(self, kernel: int) -> slice:
        c = (self.max_kernel - kernel) // 2
        return slice(c, c + kernel)

    @staticmethod
    def _filled(layer: nn.Module, w: torch.Tensor, b: torch.Tensor | None) -> nn.Module:
        """`layer` (built on the meta device: no RNG drawn) materialised like `w`, holding copies of w and b."""
        layer = _empty_like_layer(layer, w)
        layer.weight.copy_(w)
        if b is not None:
            layer.bias.copy_(b)
        return layer

    def extra_repr(self) -> str:
        return (f"max_in={self.max_in}, max_out={self.max_out}, max_kernel={self.max_kernel}, stride={self.stride}, "
                f"bias={self.bias is not None}" + (f", min_groups={self.min_groups}" if self.min_groups > 1 else ""))


class ElasticConv2d(_ElasticConvBase):
    """Conv2d with a shared weight (max_out, max_in // min_groups, K, K) and optional bias (max_out).

    forward(x, out_channels, kernel, groups=1): conv of x (width x.shape[1] <= max_in) with
    W[:out, :in // groups, c:c + kernel, c:c + kernel], c = (K - kernel) // 2, padding kernel // 2;
    groups >= min_groups.
    """

    def __init__(self, max_in: int, max_out: int, max_kernel: int, stride: int = 1, bias: bool = False,
                 min_groups: int = 1):
        super().__init__(max_in, max_out, max_kernel, stride, bias, min_groups, transposed=False)

    def sub_weights(self, in_channels: int, out_channels: int, kernel: int,
                    groups: int = 1) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The (weight, bias) views that choice uses (ConfigError for a choice outside the max)."""
        self._check(in_channels, out_channels, kernel, groups)
        k = self._crop(kernel)
        w = self.weight[:out_channels, :in_channels // groups, k, k]
        return w, None if self.bias is None else self.bias[:out_channels]

    def forward(self, x: torch.Tensor, out_channels: int, kernel: int, groups: int = 1) -> torch.Tensor:
        w, b = self.sub_weights(x.shape[1], out_channels, kernel, groups)
        return F.conv2d(x, w, b, self.stride, kernel // 2, groups=groups)

    @torch.no_grad()
    def static(self, in_channels: int, out_channels: int, kernel: int, groups: int = 1) -> nn.Conv2d:
        """A plain nn.Conv2d holding a copy of the choice's weights."""
        w, b = self.sub_weights(in_channels, out_channels, kernel, groups)
        return self._filled(nn.Conv2d(in_channels, out_channels, kernel, self.stride, kernel // 2, groups=groups,
                                      bias=b is not None, device="meta"), w, b)


class ElasticConvTranspose2d(_ElasticConvBase):
    """ConvTranspose2d with a shared weight (max_in, max_out // min_groups, K, K) (torch's transposed layout),
    optional bias (max_out).

    forward(x, out_channels, kernel, groups=1): the output is exactly stride x the input size; the weight is
    W[:in, :out // groups, c:c + kernel, c:c + kernel], c = (K - kernel) // 2; padding (kernel - stride + 1) // 2
    and output_padding (kernel - stride) % 2 (kernel 4 / stride 2: 1, 0; kernel 2 / stride 2: 0, 0);
    groups >= min_groups.
    """

    def __init__(self, max_in: int, max_out: int, max_kernel: int, stride: int = 2, bias: bool = False,
                 min_groups: int = 1):
        super().__init__(max_in, max_out, max_kernel, stride, bias, min_groups, transposed=True)

    def padding(self, kernel: int) -> tuple[int, int]:
        """(padding, output_padding) giving an output of stride x the input (ConfigError when none exists)."""
        d = kernel - self.stride
        if d < 0 or (d % 2 and self.stride < 2):
            raise ConfigError(f"{type(self).__name__}: kernel {kernel} cannot give an output of stride {self.stride} "
                              f"x the input; allowed kernels >= stride {self.stride}"
                              + (" with kernel - stride even" if self.stride < 2 else ""))
        return (d + 1) // 2, d % 2

    def sub_weights(self, in_channels: int, out_channels: int, kernel: int,
                    groups: int = 1) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The (weight, bias) views that choice uses (ConfigError for a choice outside the max)."""
        self._check(in_channels, out_channels, kernel, groups)
        self.padding(kernel)
        k = self._crop(kernel)
        w = self.weight[:in_channels, :out_channels // groups, k, k]
        return w, None if self.bias is None else self.bias[:out_channels]

    def forward(self, x: torch.Tensor, out_channels: int, kernel: int, groups: int = 1) -> torch.Tensor:
        w, b = self.sub_weights(x.shape[1], out_channels, kernel, groups)
        pad, out_pad = self.padding(kernel)
        return F.conv_transpose2d(x, w, b, self.stride, pad, out_pad, groups)

    @torch.no_grad()
    def static(self, in_channels: int, out_channels: int, kernel: int, groups: int = 1) -> nn.ConvTranspose2d:
        """A plain nn.ConvTranspose2d holding a copy of the choice's weights."""
        w, b = self.sub_weights(in_channels, out_channels, kernel, groups)
        pad, out_pad = self.padding(kernel)
        return self._filled(nn.ConvTranspose2d(in_channels, out_channels, kernel, self.stride, pad, out_pad,
                                               groups=groups, bias=b is not None, device="meta"), w, b)


class ElasticBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d(max_channels) applied to the first C = x.shape[1] channels of its affine and running stats.

    Training updates the running statistics of those C channels only (num_batches_tracked is shared by all
    widths: with momentum None the cumulative average counts every batch). Keys are nn.BatchNorm2d's.
    """

    def __init__(self, max_channels: int, eps: float = 1e-5, momentum: float | None = 0.1):
        super().__init__(max_channels, eps=eps, momentum=momentum)

    def _check_width(self, channels: int) -> None:
        if not 1 <= channels <= self.num_features:
            raise ConfigError(f"{type(self).__name__}: input has {channels} channels; allowed 1..{self.num_features}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        self._check_width(c)
        factor = 0.0
        if self.training:
            self.num_batches_tracked.add_(1)
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        return F.batch_norm(x, self.running_mean[:c], self.running_var[:c], self.weight[:c], self.bias[:c],
                            self.training, factor, self.eps)

    @torch.no_grad()
    def static(self, channels: int) -> nn.BatchNorm2d:
        """A plain nn.BatchNorm2d(channels) with copies of the first channels' affine and running statistics."""
        self._check_width(channels)
        bn = _empty_like_layer(nn.BatchNorm2d(channels, self.eps, self.momentum, device="meta"), self.weight)
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(bn, name).copy_(getattr(self, name)[:channels])
        bn.num_batches_tracked = self.num_batches_tracked.clone()
        bn.train(self.training)
        return bn


class ElasticConvBN(nn.Module):
    """ElasticConv2d (no bias) -> ElasticBatchNorm2d -> activation `act` (None: identity), children conv, bn, act:
    the elastic twin of ops.layers.ConvBN (same keys). forward(x, out_channels, kernel, groups=1)."""

    def __init__(self, max_in: int, max_out: int, max_kernel: int, stride: int = 1, act: str | None = None,
                 min_groups: int = 1, inplace: bool = True):
        super().__init__()
        self._act, self._inplace = act, inplace
        self.conv = ElasticConv2d(max_in, max_out, max_kernel, stride, min_groups=min_groups)
        self.bn = ElasticBatchNorm2d(max_out)
        self.act = nn.Identity() if act is None else make_activation(act, inplace)

    def forward(self, x: torch.Tensor, out_channels: int, kernel: int, groups: int = 1) -> torch.Tensor:
        return self.act(self.bn(self.conv(x, out_channels, kernel, groups)))

    @torch.no_grad()
    def static(self, in_channels: int, out_channels: int, kernel: int, groups: int = 1) -> ConvBN:
        """An ops.layers.ConvBN holding copies of the choice's conv weight and BN affine / statistics."""
        conv, bn = self.conv.static(in_channels, out_channels, kernel, groups), self.bn.static(out_channels)
        with torch.device("meta"):
            twin = ConvBN(in_channels, out_channels, kernel, self.conv.stride, groups, self._act, self._inplace,
                          self.bn.eps, self.bn.momentum)
        twin.conv, twin.bn = conv, bn
        return twin.train(self.training)


class ElasticSqueezeExcite(nn.Module):
    """SqueezeExcite whose widths follow the block: C = x.shape[1] <= max_channels, inner make_divisible(C / ratio).

    The reduce and expand convs are ElasticConv2d(kernel 1, bias) named `names`, so `static(C)` is an
    ops.layers.SqueezeExcite(C, inner, act, gate, names) with the same state-dict keys.
    """

    def __init__(self, max_channels: int, ratio: float = 4, divisor: int = 8, act: str = "relu",
                 gate: str = "hardsigmoid", inplace: bool = True, names: tuple[str, str] = ("reduce", "expand")):
        super().__init__()
        if gate not in GATES:
            raise ConfigError(f"{type(self).__name__}: gate {gate!r} is not allowed; choose one of {sorted(GATES)}")
        self.max_channels, self.ratio, self.divisor = int(max_channels), ratio, int(divisor)
        self._act, self._gate, self._inplace, self._names = act, gate, inplace, tuple(names)
        max_inner = self.inner(self.max_channels)
        self.add_module(self._names[0], ElasticConv2d(self.max_channels, max_inner, 1, bias=True))
        self.act = make_activation(act, inplace)
        self.add_module(self._names[1], ElasticConv2d(max_inner, self.max_channels, 1, bias=True))
        self.gate = GATES[gate]()

    def inner(self, channels: int) -> int:
        """The squeeze width for a block of `channels`: make_divisible(channels / ratio, divisor)."""
        return make_divisible(channels / self.ratio, self.divisor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        reduce, expand = (self._modules[n] for n in self._names)
        c = x.shape[1]
        s = x.mean((2, 3), keepdim=True)
        return x * self.gate(expand(self.act(reduce(s, self.inner(c), 1)), c, 1))

    @torch.no_grad()
    def static(self, channels: int) -> SqueezeExcite:
        """An ops.layers.SqueezeExcite for `channels` holding copies of the weights that width uses."""
        inner = self.inner(channels)
        reduce, expand = (self._modules[n] for n in self._names)
        with torch.device("meta"):
            se = SqueezeExcite(channels, inner, self._act, self._gate, self._inplace, self._names)
        setattr(se, self._names[0], reduce.static(channels, inner, 1))
        setattr(se, self._names[1], expand.static(inner, channels, 1))
        return se.train(self.training)
