"""Heatmap heads: the SimpleBaseline deconvolution head, reused by every pose network here.

    features (B, C_in, h, w)
      -> num_layers x [ConvTranspose2d(k, stride 2, no bias) -> BN -> act]   # each doubles h and w
      -> Conv2d(final_kernel, bias) to K heatmaps                          # (B, K, h * 2**L, w * 2**L)

Deconv paddings follow SimpleBaseline / mmpose so that every layer exactly doubles the size:
k=4 -> padding 1, output_padding 0; k=3 -> 1, 1; k=2 -> 0, 0. (This is NOT TensorFlow's 'same'
transposed conv, which is shifted by one output pixel for k=3.)

Init (SimpleBaseline): deconv and final conv weights ~ N(0, 0.001), biases 0, BN weight 1 / bias 0;
drawn from `generator` when given (else the global torch RNG).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from posenas_core.ops.layers import make_activation

__all__ = ["DECONV_PADDING", "DeconvHead"]

# kernel -> (padding, output_padding) so that ConvTranspose2d(stride=2) doubles the size exactly.
DECONV_PADDING: dict[int, tuple[int, int]] = {4: (1, 0), 3: (1, 1), 2: (0, 0)}

def _per_layer(value, n: int, what: str) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,) * n
    value = tuple(value)
    if len(value) != n:
        raise ValueError(f"DeconvHead: {what} has {len(value)} entries, expected num_layers={n}")
    return value


class DeconvHead(nn.Module):
    """SimpleBaseline head: `num_layers` stride-2 deconvs, then a conv to `num_joints` heatmaps.

    Args:
        in_channels: channels of the backbone feature map.
        num_joints: K output heatmaps.
        channels: deconv widths, one int for all layers or one per layer.
        num_layers: number of x2 upsampling deconvs (0: only the final conv).
        kernels: deconv kernel(s) in {2, 3, 4}.
        groups: deconv group(s) (ViPNAS uses grouped / depthwise deconvs); 1 = dense.
        activation: 'relu' (SimpleBaseline), 'hswish' or 'swish' (EvoPose2D).
        final_kernel: kernel of the last conv (1 in SimpleBaseline, ViPNAS and EvoPose2D).
        bn_eps, bn_momentum: BatchNorm settings (PyTorch defaults; EvoPose2D's Keras BN is 1e-3 / 0.01).
        skip_channels: per deconv, the channels of a backbone feature added after it (None: no skip).
        generator: torch.Generator for the init (None: the global torch RNG).
    """

    def __init__(self, in_channels: int, num_joints: int = 17, channels: int | Sequence[int] = 256,
                 num_layers: int = 3, kernels: int | Sequence[int] = 4, groups: int | Sequence[int] = 1,
                 activation: str = "relu", final_kernel: int = 1, bn_eps: float = 1e-5,
                 bn_momentum: float = 0.1, skip_channels: Sequence[int | None] | None = None,
                 generator: torch.Generator | None = None):
        super().__init__()
        widths = _per_layer(channels, num_layers, "channels")
        ks = _per_layer(kernels, num_layers, "kernels")
        gs = _per_layer(groups, num_layers, "groups")
        layers: list[nn.Module] = []
        c = in_channels
        for w, k, g in zip(widths, ks, gs):
            if k not in DECONV_PADDING:
                raise ValueError(f"DeconvHead: deconv kernel {k} is not allowed; choose one of {sorted(DECONV_PADDING)}")
            if c % g or w % g:
                raise ValueError(f"DeconvHead: groups={g} must divide in ({c}) and out ({w}) channels")
            pad, out_pad = DECONV_PADDING[k]
            layers += [
                nn.ConvTranspose2d(c, w, k, stride=2, padding=pad, output_padding=out_pad, groups=g, bias=False),
                nn.BatchNorm2d(w, eps=bn_eps, momentum=bn_momentum),
                make_activation(activation),
            ]
            c = w
        self.deconv_layers = nn.Sequential(*layers) if layers else nn.Identity()
        # U-Net-style skips: after deconv i, add a 1x1 conv + BN projection of a backbone feature of the
        # same resolution with skip_channels[i] channels (None: no skip at that resolution).
        skips = list(skip_channels or [None] * num_layers)
        if len(skips) != num_layers:
            raise ValueError(f"DeconvHead: skip_channels has {len(skips)} entries, expected num_layers={num_layers}")
        self.laterals = nn.ModuleDict({
            str(i): nn.Sequential(nn.Conv2d(cs, w, 1, bias=False), nn.BatchNorm2d(w, eps=bn_eps, momentum=bn_momentum))
            for i, (cs, w) in enumerate(zip(skips, widths)) if cs is not None})
        self.final_layer = nn.Conv2d(c, num_joints, final_kernel, padding=final_kernel // 2, bias=True)
        self.out_channels = num_joints
        self.upsample_factor = 2 ** num_layers
        self.reset_parameters(generator)

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        for m in self.modules():
            if isinstance(m, (nn.ConvTranspose2d, nn.Conv2d)):
                nn.init.normal_(m.weight, std=0.001, generator=generator)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor, skips: Sequence[torch.Tensor | None] | None = None) -> torch.Tensor:
        """x: (B, C, h, w); skips[i]: the backbone feature added after deconv i (laterals only)."""
        if not len(self.laterals):
            x = self.deconv_layers(x)       # (B, C_L, h * 2**L, w * 2**L)
            return self.final_layer(x)      # (B, K, h * 2**L, w * 2**L)
        layers = list(self.deconv_layers)
        for i in range(len(layers) // 3):
            x = layers[3 * i + 2](layers[3 * i + 1](layers[3 * i](x)))    # deconv -> BN -> act: x2 resolution
            if str(i) in self.laterals:
                x = x + self.laterals[str(i)](skips[i])
        return self.final_layer(x)
