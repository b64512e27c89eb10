"""Static building blocks shared by the model builders (baselines, EvoPose2D, ViPNAS next).

    make_activation(name, inplace)   'relu' | 'hswish' | 'swish' -> a fresh module
    GATES                            SE gates: 'sigmoid' | 'hardsigmoid' | 'mmcv_hsigmoid' (MmcvHSigmoid)
    conv_bn(cin, cout, k, ...)       [Conv2d -> BN (-> act)] as a list, for a position-keyed nn.Sequential
    ConvBN(cin, cout, k, ...)        the same layers as named children conv, bn, act
    SqueezeExcite(c, inner, ...)     avgpool -> 1x1 reduce -> act -> 1x1 expand -> gate -> scale
    DropConnect(rate)                drops a residual branch per sample in training; masks from `.generator`
    set_drop_generator(model, g)     hand one torch.Generator to every DropConnect of a model
    DropGeneratorMixin               `model.drop_generator = g` on a network (None: the global RNG)
    init_scope(generator)            build-time scope: with a generator, the global torch RNG is left as it was

The state-dict keys these blocks make are part of the checkpoints: `conv_bn` gives '<i>.weight' (conv) and
'<i+1>.*' (BN); `ConvBN` gives 'conv.weight', 'bn.*'; `SqueezeExcite` names its two convs (`names`).
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from typing import Iterator

import torch
from torch import nn

__all__ = ["ACTIVATIONS", "GATES", "MmcvHSigmoid", "make_activation", "conv_bn", "ConvBN", "SqueezeExcite",
           "DropConnect", "set_drop_generator", "DropGeneratorMixin", "init_scope", "check_input_size"]

ACTIVATIONS = {"relu": nn.ReLU, "hswish": nn.Hardswish, "swish": nn.SiLU}


class MmcvHSigmoid(nn.Module):
    """clamp((x + 1) / 2, 0, 1): mmcv's HSigmoid(bias=1, divisor=2), the SE gate of mmpose's ViPNAS MBv3."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ((x + 1) / 2).clamp_(0, 1)


GATES = {"sigmoid": nn.Sigmoid, "hardsigmoid": nn.Hardsigmoid, "mmcv_hsigmoid": MmcvHSigmoid}


def make_activation(name: str, inplace: bool = True) -> nn.Module:
    """'relu' | 'hswish' | 'swish' -> a fresh module (ValueError naming the allowed names)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"activation {name!r} is not allowed; choose one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name](inplace=inplace)


def conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, act: str | None = None,
            inplace: bool = True, eps: float = 1e-5, momentum: float = 0.1) -> list[nn.Module]:
    """[Conv2d k x k / stride, padding k // 2, no bias -> BatchNorm2d(eps, momentum) (-> activation `act`)].

    A list, for an nn.Sequential keyed by position ('0' conv, '1' BN, '2' act, then the caller's layers)."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
                               nn.BatchNorm2d(cout, eps=eps, momentum=momentum)]
    if act is not None:
        layers.append(make_activation(act, inplace))
    return layers


class ConvBN(nn.Sequential):
    """`conv_bn`'s layers as named children conv, bn, act (nn.Identity when `act` is None): keys conv.*, bn.*."""

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, act: str | None = None,
                 inplace: bool = True, eps: float = 1e-5, momentum: float = 0.1):
        conv, bn, *act_ = conv_bn(cin, cout, k, stride, groups, act, inplace, eps, momentum)
        super().__init__(OrderedDict(conv=conv, bn=bn, act=act_[0] if act_ else nn.Identity()))


class SqueezeExcite(nn.Module):
    """x * gate(expand(act(reduce(mean_hw(x))))): 1x1 convs with bias, C -> `inner` -> C.

    Args:
        channels: C, in and out.
        inner: the squeeze width (the caller's rule: MobileNetV3 make_divisible(C / 4), EfficientNet int(Cin / 4)).
        act: activation after the reduce conv ('relu', 'swish', ...; `inplace` as `make_activation`).
        gate: a GATES name ('sigmoid' | 'hardsigmoid' | 'mmcv_hsigmoid').
        names: attribute (state-dict) names of the reduce and expand convs.
    """

    def __init__(self, channels: int, inner: int, act: str = "relu", gate: str = "sigmoid", inplace: bool = True,
                 names: tuple[str, str] = ("reduce", "expand")):
        super().__init__()
        if gate not in GATES:
            raise ValueError(f"SqueezeExcite: gate {gate!r} is not allowed; choose one of {sorted(GATES)}")
        self._names = tuple(names)
        self.add_module(self._names[0], nn.Conv2d(channels, inner, 1, bias=True))
        self.act = make_activation(act, inplace)
        self.add_module(self._names[1], nn.Conv2d(inner, channels, 1, bias=True))
        self.gate = GATES[gate]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        reduce, expand = (self._modules[n] for n in self._names)
        s = x.mean((2, 3), keepdim=True)                      # (B, C, 1, 1)
        return x * self.gate(expand(self.act(reduce(s))))


class DropConnect(nn.Module):
    """In training, zero a residual branch (B, ...) per sample with probability `rate`, and scale the kept
    samples by 1 / (1 - rate); identity in eval or at rate 0. Masks come from `self.generator`
    (a torch.Generator on the branch's device; None: the global torch RNG)."""

    def __init__(self, rate: float):
        super().__init__()
        self.rate = float(rate)
        self.generator: torch.Generator | None = None

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        if not self.training or self.rate <= 0:
            return y
        keep = 1.0 - self.rate
        mask = torch.empty((y.shape[0],) + (1,) * (y.ndim - 1), dtype=y.dtype, device=y.device)
        mask.bernoulli_(keep, generator=self.generator)
        return y * mask / keep

    def extra_repr(self) -> str:
        return f"rate={self.rate}"


def set_drop_generator(model: nn.Module, generator: torch.Generator | None) -> int:
    """Make every DropConnect in `model` draw from `generator` (None: the global RNG); returns how many."""
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"drop_generator must be a torch.Generator or None, got {type(generator).__name__}")
    n = 0
    for m in model.modules():
        if isinstance(m, DropConnect):
            m.generator = generator
            n += 1
    return n


class DropGeneratorMixin:
    """For an nn.Module network: `net.drop_generator = g` (a torch.Generator or None) sets the generator of
    every DropConnect inside it; reading gives the last one set (None by default: the global RNG)."""

    @property
    def drop_generator(self) -> torch.Generator | None:
        return self.__dict__.get("_drop_generator")

    @drop_generator.setter
    def drop_generator(self, generator: torch.Generator | None) -> None:
        set_drop_generator(self, generator)
        self.__dict__["_drop_generator"] = generator


@contextlib.contextmanager
def init_scope(generator: torch.Generator | None) -> Iterator[None]:
    """Wrap a network's construction. With a generator, the CPU global torch RNG is restored on exit (the
    layers' default inits draw from it before the builder's explicit inits overwrite them from `generator`),
    so the weights depend on `generator` alone; None: nothing changes (all draws from the global RNG)."""
    if generator is None:
        yield
        return
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    with torch.random.fork_rng(devices=[]):
        yield


def check_input_size(x: torch.Tensor, stride: int, what: str = "network") -> None:
    """ValueError unless the height and width of `x` are multiples of `stride` (the `what` stride)."""
    h, w = x.shape[-2], x.shape[-1]
    if h % stride or w % stride:
        raise ValueError(f"input size {h}x{w} must be a multiple of the {what} stride {stride}")
