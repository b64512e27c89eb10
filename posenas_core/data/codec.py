"""Heatmap codec: crop keypoints <-> per-joint Gaussian heatmaps (pixel convention in `geometry`).

Encoding. A joint at crop (input) position x maps to the heatmap position x_hm = (x + 0.5)/s - 0.5
(NOT rounded to a cell, unlike EvoPose2D's floor(x W'/W + 0.5)); its map is the unnormalised Gaussian
exp(-((i - x_hm)^2 + (j - y_hm)^2) / (2 sigma^2)) over the cell centres (i, j), value 1 at the exact
centre (so the sampled peak is <= 1; EvoPose2D scales by 255, we do not). It is the outer product of two
1-D Gaussians, vectorised over joints (and any leading dims); each 1-D factor is set to 0 below exp(-40)
(beyond ~8.9 sigma: effectively untruncated, without float32 denormals).
weight = 1 where v > 0 and the centre lies inside the heatmap's continuous extent
[-0.5, w-0.5] x [-0.5, h-0.5] (the crop's extent, same as `transforms`' v=0 rule); else weight 0 and a zero map.

Decoding (`decode`): per-joint argmax, then
* "argmax": a quarter-cell step toward the larger neighbour along each axis (SimpleBaseline / HRNet /
  EvoPose2D `get_preds`, here whenever both neighbours exist);
* "dark": DARK (Zhang et al., CVPR 2020): smooth each map with a Gaussian of the codec's sigma (zero
  border, as DARK's code), take the log, one Newton step x = argmax - H^-1 g from central differences
  (gradient and 2x2 Hessian) at the argmax, clipped to +-1 cell. The zero-border blur pulls peaks that
  lie within ~1.75 sigma of a border inward (by up to a cell), so along an axis where the argmax is
  closer than m = ceil(1.75 sigma - 0.75) cells to the border (and where the Hessian is not negative
  definite) the quarter step is kept (`tests/data/test_codec.py -s` prints both methods' errors on clean maps).
Coordinates are returned in crop INPUT pixels (heatmap_to_input), score = the map's maximum (raw map).

Flip. Heatmaps of a horizontally flipped input are un-flipped by exactly x -> w-1-x plus the channel
swap (no one-pixel shift, thanks to the convention).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from posenas_core.data.geometry import heatmap_to_input, input_to_heatmap
from posenas_core.data.keypoints import FLIP_INDEX
from posenas_core.errors import ConfigError, DataError

__all__ = ["HeatmapCodec", "flip_back", "flip_test", "default_sigma"]


def default_sigma(heatmap_h: int) -> float:
    """EvoPose2D's sigma = 2 * h' / 64 (2 for a 64-row heatmap)."""
    return 2.0 * heatmap_h / 64.0


def _to_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor
        x = x.detach().cpu().float().numpy()
    return np.asarray(x, dtype=np.float32)


def _gauss_kernel1d(sigma: float) -> np.ndarray:
    r = max(1, int(math.ceil(3.0 * sigma)))
    t = np.arange(-r, r + 1, dtype=np.float64)
    k = np.exp(-0.5 * (t / sigma) ** 2)
    return (k / k.sum()).astype(np.float32)


def _blur(hm: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur (radius ceil(3 sigma)) of each map over the last two axes, zero border (as DARK)."""
    import cv2

    k = _gauss_kernel1d(sigma)
    h, w = hm.shape[-2:]
    src = np.ascontiguousarray(hm, dtype=np.float32).reshape(-1, h, w)
    out = np.empty_like(src)
    for i in range(src.shape[0]):  # ~15 us per 64x48 map
        out[i] = cv2.sepFilter2D(src[i], -1, k, k, borderType=cv2.BORDER_CONSTANT)
    return out.reshape(hm.shape)


class HeatmapCodec:
    """Encode crop keypoints to Gaussian heatmaps and decode heatmaps back to crop coordinates.

    `input_size_hw` (H, W): the network input; `stride`: the model's output stride (`spec.output_stride`),
    heatmaps are (H / stride, W / stride); `sigma`: the Gaussian's, in heatmap pixels."""

    def __init__(self, input_size_hw: Sequence[int], stride: int, sigma: float = 2.0):
        H, W = (int(v) for v in input_size_hw)
        if H <= 0 or W <= 0:
            raise ConfigError(f"HeatmapCodec: input_size_hw must be positive, got {tuple(input_size_hw)}")
        if stride <= 0 or H % stride or W % stride:
            raise ConfigError(f"HeatmapCodec: stride {stride} must be positive and divide the input size {(H, W)}")
        if not (math.isfinite(sigma) and sigma > 0):
            raise ConfigError(f"HeatmapCodec: sigma must be a positive number, got {sigma}")
        self.input_size_hw = (H, W)
        self.stride = int(stride)
        self.sigma = float(sigma)
        self.heatmap_size = (H // stride, W // stride)  # (h, w)
        h, w = self.heatmap_size
        self._xs = np.arange(w, dtype=np.float32)
        self._ys = np.arange(h, dtype=np.float32)

    def __repr__(self):
        return f"HeatmapCodec(input_size_hw={self.input_size_hw}, stride={self.stride}, sigma={self.sigma})"

    # ------------------------------------------------------------------ encode
    def encode(self, kps_crop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """kps_crop (..., K, 3) crop x, y, v -> (heatmaps (..., K, h, w) float32, weights (..., K) float32)."""
        kp = np.asarray(kps_crop, dtype=np.float32)
        if kp.ndim < 2 or kp.shape[-1] != 3:
            raise DataError(f"HeatmapCodec.encode: keypoints must be (..., K, 3) x, y, v; got shape {kp.shape}")
        h, w = self.heatmap_size
        mu = input_to_heatmap(kp[..., :2], np.float32(self.stride))                 # (..., K, 2)
        mx, my = mu[..., 0:1], mu[..., 1:2]                                         # (..., K, 1)
        valid = (kp[..., 2:3] > 0) & (mx >= -0.5) & (mx <= w - 0.5) & (my >= -0.5) & (my <= h - 0.5)
        weights = valid[..., 0].astype(np.float32)                                  # (..., K)
        inv = np.float32(-0.5 / self.sigma ** 2)
        ax = inv * np.square(self._xs - np.where(valid, mx, 0))                     # (..., K, w)
        ay = inv * np.square(self._ys - np.where(valid, my, 0))                     # (..., K, h)
        # Zero below exp(-40) (beyond ~8.9 sigma): avoids float32 denormals, 3x slower arithmetic.
        gx = np.exp(ax) * (ax > -40)
        gy = np.exp(ay) * ((ay > -40) & valid)
        heatmaps = gy[..., :, None] * gx[..., None, :]                              # (..., K, h, w)
        return heatmaps.astype(np.float32, copy=False), weights

    # ------------------------------------------------------------------ decode
    def decode(self, heatmaps, method: str = "argmax") -> tuple[np.ndarray, np.ndarray]:
        """heatmaps (N, K, h, w) (numpy or torch; (K, h, w) also accepted) ->
        (coords (N, K, 2) float32 in crop input pixels, scores (N, K) float32 = map maxima)."""
        if method not in ("argmax", "dark"):
            raise ConfigError(f"HeatmapCodec.decode: method {method!r} is unknown; allowed: 'argmax', 'dark'")
        hm = _to_numpy(heatmaps)
        squeeze = hm.ndim == 3
        if squeeze:
            hm = hm[None]
        if hm.ndim != 4:
            raise DataError(f"HeatmapCodec.decode: heatmaps must be (N, K, h, w), got shape {hm.shape}")
        N, K, h, w = hm.shape
        flat = hm.reshape(N, K, h * w)
        idx = flat.argmax(axis=-1)                                                  # (N, K)
        scores = np.take_along_axis(flat, idx[..., None], axis=-1)[..., 0]
        px, py = idx % w, idx // w

        def at(m, yy, xx):  # m (N, K, h, w) sampled at integer (yy, xx) (N, K), clamped
            xx = np.clip(xx, 0, w - 1)
            yy = np.clip(yy, 0, h - 1)
            return np.take_along_axis(m.reshape(N, K, h * w), (yy * w + xx)[..., None], axis=-1)[..., 0]

        # Quarter step toward the higher neighbour where both neighbours exist.
        dx = np.where((px > 0) & (px < w - 1), np.sign(at(hm, py, px + 1) - at(hm, py, px - 1)), 0.0)
        dy = np.where((py > 0) & (py < h - 1), np.sign(at(hm, py + 1, px) - at(hm, py - 1, px)), 0.0)
        x = px + 0.25 * dx
        y = py + 0.25 * dy

        if method == "dark":
            lg = np.log(np.maximum(_blur(hm, self.sigma), 1e-10))
            c = at(lg, py, px)
            gx = 0.5 * (at(lg, py, px + 1) - at(lg, py, px - 1))
            gy = 0.5 * (at(lg, py + 1, px) - at(lg, py - 1, px))
            hxx = at(lg, py, px + 1) - 2 * c + at(lg, py, px - 1)
            hyy = at(lg, py + 1, px) - 2 * c + at(lg, py - 1, px)
            hxy = 0.25 * (at(lg, py + 1, px + 1) - at(lg, py - 1, px + 1)
                          - at(lg, py + 1, px - 1) + at(lg, py - 1, px - 1))
            det = hxx * hyy - hxy * hxy
            ok = (det > 1e-12) & (hxx < 0) & (px > 0) & (px < w - 1) & (py > 0) & (py < h - 1)
            safe = np.where(ok, det, 1.0)
            ox = -(hyy * gx - hxy * gy) / safe
            oy = -(-hxy * gx + hxx * gy) / safe
            m = max(1, math.ceil(1.75 * self.sigma - 0.75))  # border band biased by the zero-border blur
            x = np.where(ok & (px >= m) & (px <= w - 1 - m), px + np.clip(ox, -1.0, 1.0), x)
            y = np.where(ok & (py >= m) & (py <= h - 1 - m), py + np.clip(oy, -1.0, 1.0), y)

        coords = heatmap_to_input(np.stack([x, y], axis=-1).astype(np.float32), float(self.stride))
        coords = coords.astype(np.float32)
        scores = scores.astype(np.float32)
        if squeeze:
            return coords[0], scores[0]
        return coords, scores


def flip_back(heatmaps, flip_index: Sequence[int] = FLIP_INDEX):
    """Un-flip heatmaps (..., K, h, w) of a horizontally flipped input: x -> w-1-x, channels swapped.

    numpy in -> numpy out; torch in -> torch out.
    """
    idx = list(flip_index)
    if heatmaps.shape[-3] != len(idx):
        raise DataError(f"flip_back: heatmaps have K={heatmaps.shape[-3]} channels, flip_index has {len(idx)}")
    if hasattr(heatmaps, "detach"):
        import torch

        return torch.flip(heatmaps, dims=[-1])[..., idx, :, :]
    return np.ascontiguousarray(np.asarray(heatmaps)[..., idx, :, ::-1])


def flip_test(model, images, flip_index: Sequence[int] = FLIP_INDEX):
    """Average of model(images) and flip_back(model(flipped images)); torch, no grad. images (N, 3, H, W)."""
    import torch

    with torch.no_grad():
        hm = model(images)
        hm_flipped = model(torch.flip(images, dims=[-1]))
        return 0.5 * (hm + flip_back(hm_flipped, flip_index))
