"""Export rewrites: the same function as the PyTorch model, in ops ONNX Runtime runs faster (the "fast" form of
`onnx_export.export_onnx`; "plain" keeps the model's own ops). Each rewrite is exact up to float rounding and
keeps the MACs; `benchmarks/deploy_speed.py` times the two forms ("ort" vs "ort-plain").

1. Sub-pixel transposed convolutions (`subpixel_deconvs`). ONNX Runtime runs ConvTranspose through a GEMM and
   col2im at about half the speed of its blocked (NCHWc) Conv, and the deconvolution heads here hold much of a
   network's MACs (evopose2d-s: 55%, with heatmaps at stride 2). A ConvTranspose2d of stride s whose output is
   exactly s times its input (kernel + output_padding = stride + 2 * padding, dilation 1, kernel >= stride: every
   deconvolution of the heads here) splits into s_y * s_x ordinary convolutions, one per output phase (r_y, r_x),
   the phase's output at (m, n) being out[s_y m + r_y, s_x n + r_x]. Along one axis, phase r reads input m + c - j
   through kernel tap k0 + s j (j = 0, 1, ...), where k0 = (r + padding) mod s and c = (r + padding - k0) / s.
   Each phase convolution has only the taps it uses (k = 3, s = 2: 1x1, 1x2, 2x1 and 2x2; k = 4: four 2x2).
   A BatchNorm right after is folded into every phase convolution and an elementwise activation runs per phase
   (both commute with the interleave); the phases are stacked as F.fold's column blocks and interleaved by F.fold
   (ONNX Col2Im with block = stride), which ONNX Runtime runs several times faster than DepthToSpace. Dense and
   depthwise deconvolutions are rewritten; grouped ones (1 < groups < channels) are left, as their phase convs
   would run through ONNX Runtime's im2col per group (s-vipnas-res50's head: 2.3 ms rewritten vs 1.6 ms).

2. Grouped convolutions with few channels per group (`expand_grouped_convs`). ONNX Runtime runs a grouped Conv
   that its blocked layout does not take through im2col per group, writing C_in * k^2 values per output pixel.
   With G groups of ci inputs and co outputs, the same conv is: each input channel repeated co times (Expand),
   one depthwise conv over the G * co * ci channels (blocked and fast), and a sum over each output's ci inputs.
   Per output pixel the Expand writes C_in * co * stride^2 values and the depthwise conv C_in * co, against
   im2col's C_in * k^2, so the rewrite is made where its traffic is at most half of im2col's:
   2 * co * (stride_y * stride_x + 1) <= k_h * k_w. Measured on the grouped convs of s-vipnas-mbv3 and
   s-vipnas-res50 (ONNX Runtime, AMD EPYC, 1 thread): its 7x7 g=280 convs 2.5 -> 0.4 ms each; no shape inside the
   rule was slower rewritten, two with stride 2 outside it would have been faster. A BatchNorm right after is
   folded in.

    n = subpixel_deconvs(model)        # in place (on an eval-mode copy); how many were rewritten
    n = expand_grouped_convs(model)
    counts = fast_form(model)          # both: {"subpixel_deconvs": n, "expanded_grouped_convs": m}
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from posenas_core.errors import ConfigError

__all__ = ["ELEMENTWISE", "phase_taps", "subpixel_unsupported", "subpixel_pays", "SubpixelDeconv", "subpixel_deconvs",
           "expand_pays", "ExpandedGroupedConv", "expand_grouped_convs", "fast_form"]

# activations applied per element, so they commute with the phase interleave
ELEMENTWISE = (nn.ReLU, nn.ReLU6, nn.SiLU, nn.Hardswish, nn.Hardsigmoid, nn.Sigmoid, nn.Tanh, nn.LeakyReLU,
               nn.GELU, nn.Identity)


def phase_taps(kernel: int, stride: int, padding: int) -> list[list[tuple[int, int]]]:
    """Along one axis of a transposed conv, per output phase r in 0..stride-1: the (input offset, kernel index)
    pairs with out[stride * m + r] = sum of x[m + offset] * w[kernel index], offsets descending."""
    phases = []
    for r in range(stride):
        k0 = (r + padding) % stride
        c = (r + padding - k0) // stride
        phases.append([(c - j, k0 + stride * j) for j in range(-(-(kernel - k0) // stride))])
    return phases


def subpixel_unsupported(deconv: nn.ConvTranspose2d) -> str | None:
    """None when `deconv` has a sub-pixel form (SubpixelDeconv), else why not."""
    if not isinstance(deconv, nn.ConvTranspose2d):
        return f"{type(deconv).__name__} is not a ConvTranspose2d"
    if deconv.padding_mode != "zeros":
        return f"padding_mode {deconv.padding_mode!r} (only 'zeros')"
    if tuple(deconv.dilation) != (1, 1):
        return f"dilation {tuple(deconv.dilation)} (only 1)"
    for k, s, p, op in zip(deconv.kernel_size, deconv.stride, deconv.padding, deconv.output_padding):
        if k < s:
            return f"kernel {tuple(deconv.kernel_size)} smaller than stride {tuple(deconv.stride)}"
        if k + op != s + 2 * p:
            return (f"output not exactly stride x input (kernel {k} + output_padding {op} != stride {s} + "
                    f"2 x padding {p})")
    return None


def subpixel_pays(deconv: nn.Module) -> bool:
    """Whether `subpixel_deconvs` rewrites `deconv`: it has a sub-pixel form and is dense or depthwise."""
    if subpixel_unsupported(deconv) is not None:
        return False
    return deconv.groups == 1 or deconv.groups == deconv.in_channels == deconv.out_channels


def _foldable_bn(m: nn.Module | None) -> bool:
    """A BatchNorm2d with running statistics: eval-mode statistics that fold into the conv before it."""
    return isinstance(m, nn.BatchNorm2d) and m.running_var is not None


def _is_activation(m: nn.Module | None) -> bool:
    return isinstance(m, ELEMENTWISE) and not isinstance(m, nn.Identity)


def _take_next(parent: nn.Module, names: list, j: int, accept) -> nn.Module | None:
    """Inside an nn.Sequential, its child at position j when `accept(child)`, that slot left as nn.Identity;
    else None (and nothing changed)."""
    if not isinstance(parent, nn.Sequential) or j >= len(names) or not accept(parent._modules[names[j]]):
        return None
    child, parent._modules[names[j]] = parent._modules[names[j]], nn.Identity()
    return child


def _bn_affine(bn: nn.BatchNorm2d | None, channels: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift) of an eval-mode BatchNorm2d (identity when None)."""
    if bn is None:
        return like.new_ones(channels), like.new_zeros(channels)
    scale = torch.rsqrt(bn.running_var.detach().to(like) + bn.eps)
    shift = -bn.running_mean.detach().to(like) * scale
    if bn.affine:
        gamma, beta = bn.weight.detach().to(like), bn.bias.detach().to(like)
        scale, shift = scale * gamma, shift * gamma + beta
    return scale, shift


class SubpixelDeconv(nn.Module):
    """`act(bn(deconv(x)))` as one ordinary conv per output phase, then an interleave (F.fold): same output to
    float rounding, same MACs. `bn` (eval-mode statistics) and `act` (one of ELEMENTWISE) are optional.
    ConfigError when `deconv` has no sub-pixel form (`subpixel_unsupported`)."""

    def __init__(self, deconv: nn.ConvTranspose2d, bn: nn.BatchNorm2d | None = None, act: nn.Module | None = None):
        super().__init__()
        why = subpixel_unsupported(deconv)
        if why is not None:
            raise ConfigError(f"this transposed convolution has no sub-pixel form: {why}")
        if bn is not None and not _foldable_bn(bn):
            raise ConfigError("SubpixelDeconv folds only a BatchNorm2d with running statistics")
        if act is not None and not isinstance(act, ELEMENTWISE):
            raise ConfigError(f"SubpixelDeconv applies only elementwise activations "
                              f"({', '.join(c.__name__ for c in ELEMENTWISE)}); got {type(act).__name__}")
        self.stride = tuple(deconv.stride)
        self.act = act if act is not None else nn.Identity()
        w = deconv.weight.detach()                          # (in, out / groups, kh, kw)
        g, (cin, cout_g, kh, kw) = deconv.groups, w.shape
        cout = cout_g * g
        scale, shift = _bn_affine(bn, cout, w)
        if deconv.bias is not None:
            shift = shift + deconv.bias.detach() * scale
        # to a conv's layout (out, in / groups, kh, kw), the BN scale folded in per output channel
        wc = w.reshape(g, cin // g, cout_g, kh, kw).transpose(1, 2).reshape(cout, cin // g, kh, kw)
        wc = wc * scale.view(-1, 1, 1, 1)
        self.phases, self.pads = nn.ModuleList(), []
        (sy, sx), (py, px) = self.stride, deconv.padding
        for ty in phase_taps(kh, sy, py):
            for tx in phase_taps(kw, sx, px):
                conv = nn.Conv2d(cin, cout, (len(ty), len(tx)), groups=g, bias=True).to(w)
                lo_y, lo_x = ty[-1][0], tx[-1][0]          # smallest offset: tap 0 of the phase conv
                with torch.no_grad():
                    for oy, ky in ty:
                        for ox, kx in tx:
                            conv.weight[:, :, oy - lo_y, ox - lo_x] = wc[:, :, ky, kx]
                    conv.bias.copy_(shift)
                conv.weight.requires_grad_(False)
                conv.bias.requires_grad_(False)
                pad = (-lo_x, tx[0][0], -lo_y, ty[0][0])   # F.pad order: left, right, top, bottom
                if pad[0] == pad[1] >= 0 and pad[2] == pad[3] >= 0:
                    conv.padding, pad = (pad[2], pad[0]), None  # symmetric: the conv's own padding
                self.phases.append(conv)
                self.pads.append(pad)

    def extra_repr(self) -> str:
        return f"stride={self.stride}, phases={len(self.phases)}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ys = [self.act(conv(x if pad is None else F.pad(x, pad))) for conv, pad in zip(self.phases, self.pads)]
        y = torch.stack(ys, 2)                               # (B, C, phases, h, w): fold's column order
        b, c, p, h, w = y.shape
        sy, sx = self.stride
        return F.fold(y.reshape(b, c * p, h * w), (h * sy, w * sx), (sy, sx), stride=(sy, sx))


def subpixel_deconvs(model: nn.Module) -> int:
    """Rewrite `model` in place (use an eval-mode copy): every ConvTranspose2d for which `subpixel_pays` becomes
    a SubpixelDeconv. Inside an nn.Sequential, a BatchNorm2d right after it (running statistics) and then an
    elementwise activation are taken in too, their slots left as nn.Identity. Returns how many were rewritten."""
    done = 0
    for parent in list(model.modules()):
        names = list(parent._modules)
        for i, name in enumerate(names):
            deconv = parent._modules[name]
            if not isinstance(deconv, nn.ConvTranspose2d) or not subpixel_pays(deconv):
                continue
            bn = _take_next(parent, names, i + 1, _foldable_bn)
            act = _take_next(parent, names, i + 1 + (bn is not None), _is_activation)
            parent._modules[name] = SubpixelDeconv(deconv, bn, act)
            done += 1
    return done


def expand_pays(conv: nn.Module) -> bool:
    """Whether `expand_grouped_convs` rewrites `conv`: a grouped (not depthwise) zero-padded Conv2d whose
    rewritten form moves at most half the data im2col would: 2 * co * (stride_y * stride_x + 1) <= k_h * k_w,
    co its outputs per group."""
    if not isinstance(conv, nn.Conv2d) or conv.groups == 1 or conv.padding_mode != "zeros":
        return False
    if conv.in_channels == conv.groups or isinstance(conv.padding, str):    # depthwise already; 'same' / 'valid'
        return False
    (kh, kw), (sy, sx) = conv.kernel_size, conv.stride
    return 2 * (conv.out_channels // conv.groups) * (sy * sx + 1) <= kh * kw


class ExpandedGroupedConv(nn.Module):
    """`bn(conv(x))` for a grouped Conv2d (G groups, ci inputs and co outputs each) as: every input channel
    repeated co times, one depthwise conv over the G * co * ci channels, a sum over each output's ci inputs, then
    the bias. `bn` (eval-mode statistics) is optional and folded in."""

    def __init__(self, conv: nn.Conv2d, bn: nn.BatchNorm2d | None = None):
        super().__init__()
        if not isinstance(conv, nn.Conv2d) or conv.groups == 1 or conv.padding_mode != "zeros" \
                or isinstance(conv.padding, str):
            raise ConfigError("ExpandedGroupedConv takes a grouped, zero-padded Conv2d with numeric padding")
        if bn is not None and not _foldable_bn(bn):
            raise ConfigError("ExpandedGroupedConv folds only a BatchNorm2d with running statistics")
        w = conv.weight.detach()                                     # (G * co, ci, kh, kw)
        g, ci = conv.groups, w.shape[1]
        self.shape = (g, conv.out_channels // g, ci)
        scale, shift = _bn_affine(bn, conv.out_channels, w)
        if conv.bias is not None:
            shift = shift + conv.bias.detach() * scale
        n = w.shape[0] * ci                                           # channels (g, o, i)
        self.dw = nn.Conv2d(n, n, conv.kernel_size, conv.stride, conv.padding, conv.dilation, groups=n,
                            bias=False).to(w)
        with torch.no_grad():
            self.dw.weight.copy_((w * scale.view(-1, 1, 1, 1)).reshape(n, 1, *w.shape[2:]))
        self.dw.weight.requires_grad_(False)
        self.register_buffer("bias", shift.clone() if conv.bias is not None or bn is not None else None)

    def extra_repr(self) -> str:
        g, co, ci = self.shape
        return f"groups={g}, out_per_group={co}, in_per_group={ci}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g, co, ci = self.shape
        b, _, h, w = x.shape
        z = self.dw(x.reshape(b, g, 1, ci, h, w).expand(b, g, co, ci, h, w).reshape(b, g * co * ci, h, w))
        y = z.reshape(b, g * co, ci, *z.shape[-2:]).sum(2)
        return y if self.bias is None else y + self.bias.view(1, -1, 1, 1)


def expand_grouped_convs(model: nn.Module) -> int:
    """Rewrite `model` in place (use an eval-mode copy): every Conv2d for which `expand_pays` becomes an
    ExpandedGroupedConv, a BatchNorm2d right after it inside an nn.Sequential folded in (its slot left as
    nn.Identity). Returns how many were rewritten."""
    done = 0
    for parent in list(model.modules()):
        names = list(parent._modules)
        for i, name in enumerate(names):
            conv = parent._modules[name]
            if not expand_pays(conv):
                continue
            parent._modules[name] = ExpandedGroupedConv(conv, _take_next(parent, names, i + 1, _foldable_bn))
            done += 1
    return done


def fast_form(model: nn.Module) -> dict:
    """Both rewrites on `model`, in place (use an eval-mode copy): transposed convolutions first (their phase
    convolutions are then grouped convs like any other). Returns how many of each were made."""
    return {"subpixel_deconvs": subpixel_deconvs(model), "expanded_grouped_convs": expand_grouped_convs(model)}
