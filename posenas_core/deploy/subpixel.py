"""Sub-pixel form of transposed convolutions, for export: the same function as ordinary convolutions.

ONNX Runtime runs ConvTranspose through a GEMM and col2im at about half the speed of its blocked (NCHWc) Conv,
and the deconvolution heads here hold much of a network's MACs (evopose2d-s: 56%, with heatmaps at stride 2).
`benchmarks/deploy_speed.py` times both forms.

A ConvTranspose2d of stride s whose output is exactly s times its input (kernel + output_padding = stride +
2 * padding, dilation 1, kernel >= stride: every deconvolution of the heads here) splits into s_y * s_x ordinary
convolutions, one per output phase (r_y, r_x), the phase's output at (m, n) being out[s_y m + r_y, s_x n + r_x].
Along one axis, phase r reads input m + c - j through kernel tap k0 + s j (j = 0, 1, ...), where
k0 = (r + padding) mod s and c = (r + padding - k0) / s. Each phase convolution has only the taps it uses
(k = 3, s = 2: 1x1, 1x2, 2x1 and 2x2; k = 4: four 2x2), so the MACs are the deconvolution's.

A BatchNorm right after the deconvolution is folded into every phase convolution, and an elementwise activation
after it runs per phase (both commute with the interleave). The phases are stacked as F.fold's column blocks
and interleaved by F.fold (ONNX Col2Im with block = stride), which ONNX Runtime runs several times faster than
DepthToSpace or a Transpose.

    subpixel_deconvs(model)   # in place; each [ConvTranspose2d (, BatchNorm2d) (, act)] -> one SubpixelDeconv
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from posenas_core.errors import ConfigError

__all__ = ["ELEMENTWISE", "phase_taps", "subpixel_unsupported", "SubpixelDeconv", "subpixel_deconvs"]

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
        if bn is not None and (not isinstance(bn, nn.BatchNorm2d) or bn.running_var is None):
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
    """Rewrite `model` in place (use an eval-mode copy): every ConvTranspose2d with a sub-pixel form becomes a
    SubpixelDeconv. Inside an nn.Sequential, a BatchNorm2d right after it (running statistics) and then an
    elementwise activation are taken in too, their slots left as nn.Identity. Returns how many were rewritten."""
    done = 0
    for parent in list(model.modules()):
        names = list(parent._modules)
        for i, name in enumerate(names):
            deconv = parent._modules[name]
            if not isinstance(deconv, nn.ConvTranspose2d) or subpixel_unsupported(deconv) is not None:
                continue
            bn = act = None
            j = i + 1
            if isinstance(parent, nn.Sequential):
                nxt = parent._modules[names[j]] if j < len(names) else None
                if isinstance(nxt, nn.BatchNorm2d) and nxt.running_var is not None:
                    bn, parent._modules[names[j]] = nxt, nn.Identity()
                    j += 1
                nxt = parent._modules[names[j]] if j < len(names) else None
                if isinstance(nxt, ELEMENTWISE) and not isinstance(nxt, nn.Identity):
                    act, parent._modules[names[j]] = nxt, nn.Identity()
            parent._modules[name] = SubpixelDeconv(deconv, bn, act)
            done += 1
    return done
