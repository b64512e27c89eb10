"""Export rewrites: the same function as the PyTorch model, in ops ONNX Runtime runs faster (the "fast" form of
`onnx_export.export_onnx`; "plain" keeps the model's own ops). Each rewrite is exact up to float rounding; the
first keeps the MACs, the second and third add some (1x1 repeats and sums, zeros between merged groups) to run in
faster kernels. Profiles and GFLOP/s count the model's own MACs. `benchmarks/deploy_speed.py` times the two forms
("ort" vs "ort-plain").

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
   folded in. Where the CPU has blocked kernels, the repeat and the sum are 1x1 convs of 0/1 weights with groups
   merged to the block, rather than Expand and ReduceSum, so the whole conv stays in the blocked layout.

3. Regrouped convolutions (`regroup_grouped_convs`). ONNX Runtime's blocked Conv also takes a grouped conv whose
   inputs and outputs per group are multiples of its channel block (MLAS: 16 with AVX512F, 8 with AVX2). A grouped
   conv outside the rule above whose groups are narrower than a block is rewritten as the same conv with f
   neighbouring groups merged into one, the weights between different original groups zero (block diagonal): f
   times the MACs, but in the blocked kernel. Made where f <= 4. Measured on s-vipnas-mbv3's stride-2 grouped
   convs (ONNX Runtime, AMD EPYC, 1 thread, block 16): 7x7 g=20 (8 channels per group, f=2) 4.7 -> 2.4 ms;
   5x5 g=100 and g=240 (4 per group, f=4) 1.3 -> 0.86 and 0.95 -> 0.64; with f=8 (2 per group) it was slower.
   The block is the CPU's (`nchwc_block`), so a file exported on one CPU is fastest there.

4. Global average pools (`global_pools`, on the exported ONNX graph). The exporter writes the squeeze-excite
   pool x.mean((2, 3), keepdim=True) as ReduceMean, which ONNX Runtime runs outside its blocked layout (a
   reorder before each) and, in int8, as dequantize + fp32 ReduceMean over NHWC data. GlobalAveragePool is the
   same function on a 4-D tensor and has blocked and int8 (QLinearGlobalAveragePool) kernels: evopose2d-m's
   int8 form at 384x288 went from 178 to 148 ms (ONNX Runtime, AMD EPYC, 1 thread).

    n = subpixel_deconvs(model)        # in place (on an eval-mode copy); how many were rewritten
    n = expand_grouped_convs(model, block=16)
    n = regroup_grouped_convs(model, block=16)
    counts = fast_form(model)          # all three: {"subpixel_deconvs": n, "expanded_grouped_convs": m, ...}
    n = global_pools(proto)            # on the onnx.ModelProto the exporter wrote, in place
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from posenas_core.errors import ConfigError

__all__ = ["ELEMENTWISE", "phase_taps", "subpixel_unsupported", "subpixel_pays", "SubpixelDeconv", "subpixel_deconvs",
           "expand_pays", "ExpandedGroupedConv", "expand_grouped_convs", "nchwc_block", "regroup_factor",
           "regrouped_conv", "regroup_grouped_convs", "fast_form", "global_pools"]

MAX_REGROUP = 4     # regroup_grouped_convs merges at most this many groups (that many times the MACs)

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


def _slots(model: nn.Module):
    """(parent, its child names, index, child) for every child of every module of `model`: the module list is a
    snapshot, each child is read when reached, so a caller may replace parent._modules[names[i]] and the slots
    after it (`_take_next`)."""
    for parent in list(model.modules()):
        names = list(parent._modules)
        for i, name in enumerate(names):
            yield parent, names, i, parent._modules[name]


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
    for parent, names, i, deconv in _slots(model):
        if not isinstance(deconv, nn.ConvTranspose2d) or not subpixel_pays(deconv):
            continue
        bn = _take_next(parent, names, i + 1, _foldable_bn)
        act = _take_next(parent, names, i + 1 + (bn is not None), _is_activation)
        parent._modules[names[i]] = SubpixelDeconv(deconv, bn, act)
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


def _merge_factor(g: int, ci: int, co: int, block: int) -> int:
    """The fewest neighbouring groups (of `g`, ci inputs and co outputs each) to merge so that inputs and outputs
    per merged group are multiples of `block`, and that divides g; 0 when none does or block < 1."""
    if block < 1:
        return 0
    f0 = math.lcm(block // math.gcd(ci, block), block // math.gcd(co, block))
    return next((f for f in range(f0, g + 1, f0) if g % f == 0), 0)


class ExpandedGroupedConv(nn.Module):
    """`bn(conv(x))` for a grouped Conv2d (G groups, ci inputs and co outputs each) as: every input channel
    repeated co times, one depthwise conv over the G * co * ci channels, a sum over each output's ci inputs, then
    the bias. `bn` (eval-mode statistics) is optional and folded in.

    block > 0 (ONNX Runtime's NCHWc channel block): the repeat and the sum are 1x1 convs of 0/1 weights whose
    groups are merged to multiples of the block, so the whole conv stays in the blocked layout (s-vipnas-mbv3:
    29.6 -> 27.0 ms against Expand and ReduceSum, which leave it twice per conv). block 0, or no merge that fits:
    Expand and ReduceSum."""

    def __init__(self, conv: nn.Conv2d, bn: nn.BatchNorm2d | None = None, block: int = 0):
        super().__init__()
        if not isinstance(conv, nn.Conv2d) or conv.groups == 1 or conv.padding_mode != "zeros" \
                or isinstance(conv.padding, str):
            raise ConfigError("ExpandedGroupedConv takes a grouped, zero-padded Conv2d with numeric padding")
        if bn is not None and not _foldable_bn(bn):
            raise ConfigError("ExpandedGroupedConv folds only a BatchNorm2d with running statistics")
        w = conv.weight.detach()                                     # (G * co, ci, kh, kw)
        g, ci = conv.groups, w.shape[1]
        co = conv.out_channels // g
        self.shape = (g, co, ci)
        scale, shift = _bn_affine(bn, conv.out_channels, w)
        if conv.bias is not None:
            shift = shift + conv.bias.detach() * scale
        has_bias = conv.bias is not None or bn is not None
        n = w.shape[0] * ci                                           # channels (g, o, i)
        self.dw = nn.Conv2d(n, n, conv.kernel_size, conv.stride, conv.padding, conv.dilation, groups=n,
                            bias=False).to(w)
        f = _merge_factor(g, ci, co, block)
        self.select = self.gather = None
        if f:
            r = torch.arange(n)                                       # channel (gi, o, i) of the depthwise conv
            col = (r // (co * ci)) * ci + r % ci                      # the input channel it repeats
            self.select = nn.Conv2d(conv.in_channels, n, 1, groups=g // f, bias=False).to(w)
            self.gather = nn.Conv2d(n, conv.out_channels, 1, groups=g // f, bias=has_bias).to(w)
        with torch.no_grad():
            self.dw.weight.copy_((w * scale.view(-1, 1, 1, 1)).reshape(n, 1, *w.shape[2:]))
            if f:
                self.select.weight.zero_()[r, col % (f * ci), 0, 0] = 1.0
                self.gather.weight.zero_()[r // ci, r % (f * co * ci), 0, 0] = 1.0
                if has_bias:
                    self.gather.bias.copy_(shift)
        for p in self.parameters():
            p.requires_grad_(False)
        self.register_buffer("bias", shift.clone() if has_bias and not f else None)

    def extra_repr(self) -> str:
        g, co, ci = self.shape
        return f"groups={g}, out_per_group={co}, in_per_group={ci}, blocked={self.select is not None}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.select is not None:
            return self.gather(self.dw(self.select(x)))
        g, co, ci = self.shape
        b, _, h, w = x.shape
        z = self.dw(x.reshape(b, g, 1, ci, h, w).expand(b, g, co, ci, h, w).reshape(b, g * co * ci, h, w))
        y = z.reshape(b, g * co, ci, *z.shape[-2:]).sum(2)
        return y if self.bias is None else y + self.bias.view(1, -1, 1, 1)


def expand_grouped_convs(model: nn.Module, block: int = 0) -> int:
    """Rewrite `model` in place (use an eval-mode copy): every Conv2d for which `expand_pays` becomes an
    ExpandedGroupedConv (`block` as there), a BatchNorm2d right after it inside an nn.Sequential folded in (its
    slot left as nn.Identity). Returns how many were rewritten."""
    done = 0
    for parent, names, i, conv in _slots(model):
        if expand_pays(conv):
            parent._modules[names[i]] = ExpandedGroupedConv(conv, _take_next(parent, names, i + 1, _foldable_bn),
                                                            block)
            done += 1
    return done


def nchwc_block() -> int:
    """The channel block of ONNX Runtime's blocked (NCHWc) convolutions on this CPU, as MLAS picks it: 16 with
    AVX512F, 8 with AVX2; 0 where it has no blocked kernels (then nothing is regrouped)."""
    from posenas_core.machine import cpu_info

    features = set(cpu_info()["features"])
    return 16 if "avx512f" in features else 8 if "avx2" in features else 0


def regroup_factor(conv: nn.Module, block: int) -> int:
    """How many neighbouring groups of the grouped Conv2d `conv` `regroup_grouped_convs` merges so that inputs
    and outputs per group are multiples of `block`; 1 when it leaves `conv` (not grouped, depthwise, already
    blocked, taken by `expand_pays`, or more than MAX_REGROUP groups to merge)."""
    if not isinstance(conv, nn.Conv2d) or conv.groups == 1 or conv.in_channels == conv.groups or block < 1:
        return 1
    if expand_pays(conv):
        return 1
    g = conv.groups
    f = _merge_factor(g, conv.in_channels // g, conv.out_channels // g, block)
    return f if 1 < f <= MAX_REGROUP else 1


@torch.no_grad()
def regrouped_conv(conv: nn.Conv2d, f: int) -> nn.Conv2d:
    """The same function as `conv` (G groups) as a Conv2d of G / f groups whose weights between different
    original groups are zero."""
    g, (kh, kw) = conv.groups, conv.kernel_size
    if f < 1 or g % f:
        raise ConfigError(f"cannot merge {f} of a conv's {g} groups: choose a divisor of {g}")
    ci, co = conv.in_channels // g, conv.out_channels // g
    new = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                    conv.dilation, g // f, conv.bias is not None, conv.padding_mode,
                    device=conv.weight.device, dtype=conv.weight.dtype)
    w = conv.weight.new_zeros(g // f, f, co, f, ci, kh, kw)
    src = conv.weight.reshape(g // f, f, co, ci, kh, kw)
    for j in range(f):
        w[:, j, :, j] = src[:, j]
    new.weight.copy_(w.reshape(conv.out_channels, f * ci, kh, kw))
    if conv.bias is not None:
        new.bias.copy_(conv.bias)
    return new.train(conv.training)


def regroup_grouped_convs(model: nn.Module, block: int | None = None) -> int:
    """Rewrite `model` in place: every Conv2d with `regroup_factor` f > 1 becomes `regrouped_conv(conv, f)`
    (a BatchNorm after it stays: ONNX Runtime folds it). block None: `nchwc_block()`. Returns how many."""
    block = nchwc_block() if block is None else int(block)
    done = 0
    for parent, names, i, conv in _slots(model):
        f = regroup_factor(conv, block)
        if f > 1:
            parent._modules[names[i]] = regrouped_conv(conv, f)
            done += 1
    return done


def fast_form(model: nn.Module, block: int | None = None) -> dict:
    """The module rewrites on `model`, in place (use an eval-mode copy): transposed convolutions first (their
    phase convolutions are then grouped convs like any other), then expanded, then regrouped grouped convs
    (`block`: the NCHWc channel block, None: this CPU's). Returns how many of each were made."""
    block = nchwc_block() if block is None else int(block)
    return {"subpixel_deconvs": subpixel_deconvs(model),
            "expanded_grouped_convs": expand_grouped_convs(model, block),
            "regrouped_convs": regroup_grouped_convs(model, block)}


def global_pools(proto) -> int:
    """Replace, in the onnx.ModelProto `proto` (in place), each ReduceMean over axes 2 and 3 of a 4-D tensor with
    keepdims by GlobalAveragePool, and drop the axes constants no longer used. Returns how many were replaced.
    A ReduceMean whose input rank or axes the graph does not state is left alone."""
    from onnx import helper, numpy_helper

    g = proto.graph
    rank = {v.name: len(v.type.tensor_type.shape.dim) for v in (*g.input, *g.value_info, *g.output)
            if v.type.tensor_type.HasField("shape")}
    consts = {i.name: i for i in g.initializer}       # tensors by name, turned into arrays only when read
    consts.update({n.output[0]: n.attribute[0].t for n in g.node
                   if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value"})
    replaced, axes_inputs = 0, set()
    for i, n in enumerate(g.node):
        if n.op_type != "ReduceMean" or rank.get(n.input[0]) != 4:
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
        axes = attrs.get("axes")                                                     # opset < 18: an attribute
        if axes is None and len(n.input) > 1 and n.input[1] in consts:
            axes = numpy_helper.to_array(consts[n.input[1]])
        if axes is None or attrs.get("keepdims", 1) != 1 or sorted(int(a) % 4 for a in axes) != [2, 3]:
            continue
        axes_inputs.update(n.input[1:])
        g.node[i].CopyFrom(helper.make_node("GlobalAveragePool", [n.input[0]], list(n.output), name=n.name))
        replaced += 1
    stale = axes_inputs - {name for n in g.node for name in n.input} - {o.name for o in g.output}
    for items, name in ((g.initializer, lambda x: x.name), (g.node, lambda x: x.output[0] if x.output else "")):
        for x in [x for x in items if name(x) in stale]:
            items.remove(x)
    return replaced
