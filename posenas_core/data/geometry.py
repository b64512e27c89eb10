"""The one pixel convention of the project: image <-> crop <-> heatmap coordinates.

Convention (OpenCV `warpAffine`, COCO keypoints read as such)
------------------------------------------------------------
* Pixel centres sit at INTEGER coordinates. Pixel (i, j) of an image covers the continuous square
  [j - 0.5, j + 0.5] x [i - 0.5, i + 0.5]; an image of size (H, W) covers [-0.5, W-0.5] x [-0.5, H-0.5].
  Points are (x, y) = (column, row).
* A person box (x, y, w, h) is the continuous rectangle [x, x+w] x [y, y+h]; its centre is
  (x + w/2, y + h/2). `box_to_center_size` widens or heightens it to the input aspect W/H and then
  multiplies both sides by `enlarge` (1.25).
* Crop (input) coordinates. A crop of input size (H, W) from the box (centre c, size (w, h)) maps the
  continuous box [cx - w/2, cx + w/2] onto [-0.5, W-0.5] (and the same for y), i.e. without rotation

      x_crop = (x - cx) * W / w + (W - 1) / 2,        y_crop = (y - cy) * H / h + (H - 1) / 2.

  With a rotation by theta (degrees, positive = the image content turns COUNTER-clockwise as seen on
  screen, the `cv2.getRotationMatrix2D` sign; y points down), with (dx, dy) = (x - cx, y - cy):

      x_crop = W/w * ( cos(theta) dx + sin(theta) dy) + (W - 1) / 2
      y_crop = H/h * (-sin(theta) dx + cos(theta) dy) + (H - 1) / 2

  (a point right of the centre moves up when theta = +90).
* Heatmap coordinates at output stride s (a heatmap cell covers s x s input pixels):

      x_hm = (x_in + 0.5) / s - 0.5,         x_in = (x_hm + 0.5) * s - 0.5

  so the heatmap of size (H/s, W/s) covers exactly the same continuous box as the crop.
* Horizontal flip of an image / crop / heatmap of width W is x -> W - 1 - x at every level (consistent
  with the formulas above: flipping the crop and mapping to the heatmap commutes), with left/right joints
  swapped by `FLIP_INDEX`. No one-pixel shift is needed in the flip test.

All affine matrices are (2, 3) float64 arrays M with p' = M[:, :2] @ p + M[:, 2].
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from posenas_core.errors import DataError

__all__ = [
    "box_to_center_size",
    "crop_affine",
    "apply_affine",
    "invert_affine",
    "input_to_heatmap",
    "heatmap_to_input",
    "warp_crop",
    "flip_keypoints",
    "flip_affine",
]


def box_to_center_size(bbox_xywh: Sequence[float], input_size_hw: Sequence[int],
                       enlarge: float = 1.25) -> tuple[np.ndarray, np.ndarray]:
    """Box (x, y, w, h) -> (centre (2,) float64, size_wh (2,) float64) with w/h == W/H, times `enlarge`.

    The shorter side (relative to the input aspect W/H) is extended; the centre does not move.
    Raises DataError for a non-finite box or one with no extent.
    """
    x, y, w, h = (float(v) for v in bbox_xywh)
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        raise DataError(f"bbox must be finite numbers [x, y, w, h], got {[x, y, w, h]}")
    if w < 0 or h < 0 or (w == 0 and h == 0):
        raise DataError(f"bbox must have w >= 0, h >= 0 and a non-zero extent, got w={w}, h={h}")
    H, W = input_size_hw
    aspect = W / H
    cx, cy = x + 0.5 * w, y + 0.5 * h
    if w > aspect * h:
        h = w / aspect
    else:
        w = h * aspect
    return np.array([cx, cy], dtype=np.float64), np.array([w * enlarge, h * enlarge], dtype=np.float64)


def crop_affine(center: Sequence[float], size_wh: Sequence[float], input_size_hw: Sequence[int],
                rotation_deg: float = 0.0, inverse: bool = False) -> np.ndarray:
    """(2, 3) float64 affine image -> crop (or crop -> image with inverse=True); formulas in the module doc."""
    cx, cy = float(center[0]), float(center[1])
    bw, bh = float(size_wh[0]), float(size_wh[1])
    if not (bw > 0 and bh > 0):
        raise DataError(f"crop size must be positive, got {(bw, bh)}")
    H, W = input_size_hw
    sx, sy = W / bw, H / bh
    t = math.radians(float(rotation_deg))
    c, s = math.cos(t), math.sin(t)
    ox, oy = (W - 1) * 0.5, (H - 1) * 0.5
    if not inverse:
        a, b, d, e = sx * c, sx * s, -sy * s, sy * c
        return np.array([[a, b, ox - a * cx - b * cy],
                         [d, e, oy - d * cx - e * cy]], dtype=np.float64)
    # Inverse: (dx, dy) = R^T ((x_crop - ox) / sx, (y_crop - oy) / sy); R = [[c, s], [-s, c]].
    a, b, d, e = c / sx, -s / sy, s / sx, c / sy
    return np.array([[a, b, cx - a * ox - b * oy],
                     [d, e, cy - d * ox - e * oy]], dtype=np.float64)


def apply_affine(M: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) affine to points (..., 2) -> (..., 2) float64."""
    pts = np.asarray(pts, dtype=np.float64)
    M = np.asarray(M, dtype=np.float64)
    return pts @ M[:, :2].T + M[:, 2]


def invert_affine(M: np.ndarray) -> np.ndarray:
    """Inverse of a (2, 3) affine (float64). Raises DataError if singular."""
    M = np.asarray(M, dtype=np.float64)
    A = M[:, :2]
    det = A[0, 0] * A[1, 1] - A[0, 1] * A[1, 0]
    if not math.isfinite(det) or abs(det) < 1e-300:
        raise DataError(f"affine matrix is singular (det={det}): {M.tolist()}")
    Ai = np.array([[A[1, 1], -A[0, 1]], [-A[1, 0], A[0, 0]]], dtype=np.float64) / det
    return np.concatenate([Ai, -(Ai @ M[:, 2])[:, None]], axis=1)


def flip_affine(width: int) -> np.ndarray:
    """(2, 3) affine of the horizontal flip x -> width - 1 - x (y unchanged)."""
    return np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0]], dtype=np.float64)


def input_to_heatmap(pts, stride: float):
    """Crop (input) coordinates -> heatmap coordinates: x_hm = (x + 0.5) / s - 0.5 (numpy or torch)."""
    return (pts + 0.5) / stride - 0.5


def heatmap_to_input(pts, stride: float):
    """Heatmap coordinates -> crop (input) coordinates: x = (x_hm + 0.5) * s - 0.5 (numpy or torch)."""
    return (pts + 0.5) * stride - 0.5


def warp_crop(image: np.ndarray, M: np.ndarray, input_size_hw: Sequence[int]) -> np.ndarray:
    """Warp an HxWx3 uint8 image with the image -> crop affine M into an (H, W, 3) uint8 crop.

    Bilinear interpolation, constant border 0 (black outside the image).
    """
    import cv2

    H, W = int(input_size_hw[0]), int(input_size_hw[1])
    return cv2.warpAffine(image, np.asarray(M, dtype=np.float64), (W, H), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))


def flip_keypoints(kps: np.ndarray, width: int, flip_index: Sequence[int]) -> np.ndarray:
    """Horizontally flip keypoints (..., K, 2 or 3): x -> width - 1 - x, joints swapped by flip_index.

    `flip_index[j]` is the joint that j becomes. All joints are flipped (v is carried along unchanged).
    Returns a new array of the same dtype.
    """
    kps = np.asarray(kps)
    if kps.ndim < 2 or kps.shape[-1] not in (2, 3):
        raise DataError(f"keypoints must be (..., K, 2) or (..., K, 3), got shape {kps.shape}")
    if len(flip_index) != kps.shape[-2]:
        raise DataError(f"flip_index has {len(flip_index)} entries but keypoints have K={kps.shape[-2]}")
    out = kps[..., list(flip_index), :].copy()
    out[..., 0] = (width - 1) - out[..., 0]
    return out
