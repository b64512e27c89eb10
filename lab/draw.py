"""Draw skeletons, boxes and heatmaps onto images with OpenCV (cheap renders for `ipywidgets.Image`).

Conventions
-----------
- Images are (H, W, 3) uint8 RGB; the drawing functions work on a copy and return it.
- Points follow the project's pixel convention (pixel centres at integer coordinates, see
  `posenas_core.data.geometry`). Drawing uses OpenCV's fixed-point `shift` (1/16 px) and LINE_AA,
  so sub-pixel keypoints are placed exactly.
- A *view* is what the viewer shows: the full image resized to at most `display` pixels on its long
  side, or the person crop (the same box the model sees: `box_to_center_size(bbox, input_size_hw,
  enlarge)`) warped straight to `display` pixels high. `view_geometry` returns the (2, 3) affine
  image -> view and the view size; points are mapped with it and heatmaps are warped into the view
  with `heatmap_in_view`. A heatmap of size (h, w) covers exactly the continuous box of the crop it
  was computed on (x_hm = (x_in + 0.5) / s - 0.5), so image -> heatmap is
  ``crop_affine(center, size, (h, w))``.
- Styles: ground truth = solid limbs + filled joints (hollow for occluded joints, v = 1), coloured by
  side (left / right / centre); prediction = dashed limbs + cross markers in lighter tints of the
  same side colours (so a left/right swap is visible); other people in the image = thin grey.
  A prediction joint is drawn when its score (column 3, if any) is > `pred_min_score` and it is not
  the "absent" (0, 0, 0).
"""

from __future__ import annotations

import math
from typing import Sequence

import cv2
import numpy as np

from posenas_core.data import COCO_SKELETON, JOINT_SIDE, apply_affine, box_to_center_size, crop_affine, invert_affine

__all__ = [
    "GT_COLORS", "PRED_COLORS", "OTHER_COLOR", "BOX_COLOR", "limb_side", "rgb_css",
    "view_geometry", "render_view", "draw_box", "draw_skeleton", "heatmap_in_view", "overlay_heatmap",
    "render_pose",
]

# RGB colours by side: 'L' left, 'R' right, 'C' centre.
GT_COLORS: dict[str, tuple[int, int, int]] = {"L": (33, 120, 230), "R": (240, 100, 0), "C": (40, 170, 60)}
PRED_COLORS: dict[str, tuple[int, int, int]] = {"L": (110, 225, 255), "R": (255, 225, 60), "C": (170, 255, 120)}
OTHER_COLOR = (170, 170, 170)
BOX_COLOR = (255, 255, 255)
_SHIFT = 4  # fixed-point bits for OpenCV drawing (1/16 px)
_ONE = 1 << _SHIFT


def rgb_css(rgb: Sequence[int]) -> str:
    return f"rgb({int(rgb[0])},{int(rgb[1])},{int(rgb[2])})"


def limb_side(a: int, b: int, sides: Sequence[str] = JOINT_SIDE) -> str:
    """Side of the limb a-b: the joints' side if they agree, the non-centre one if one is 'C', else 'C'."""
    sa, sb = sides[a], sides[b]
    if sa == sb:
        return sa
    if "C" in (sa, sb):
        return sb if sa == "C" else sa
    return "C"  # a left-right limb (shoulders, hips)


def _compose(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """(2, 3) affine of A after B: p -> A(B(p))."""
    A = np.asarray(A, np.float64)
    B = np.asarray(B, np.float64)
    return np.concatenate([A[:, :2] @ B[:, :2], (A[:, :2] @ B[:, 2] + A[:, 2])[:, None]], axis=1)


def view_geometry(image_hw: Sequence[int], bbox: Sequence[float] | None = None, view: str = "full", *,
                  input_size_hw: Sequence[int] = (256, 192), enlarge: float = 1.25,
                  display: int = 480) -> tuple[np.ndarray, tuple[int, int]]:
    """(M image -> view (2, 3) float64, view size (H, W)) for view 'full' or 'crop' (module docstring)."""
    if view not in ("full", "crop"):
        raise ValueError(f"view must be 'full' or 'crop', got {view!r}")
    if display < 16:
        raise ValueError(f"display must be >= 16 pixels, got {display}")
    if view == "full":
        H, W = int(image_hw[0]), int(image_hw[1])
        f = display / max(H, W)
        Hv, Wv = max(1, round(H * f)), max(1, round(W * f))
        sx, sy = Wv / W, Hv / H  # cv2.resize's per-axis factors: x_v = (x + 0.5) * sx - 0.5
        M = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5]], dtype=np.float64)
        return M, (Hv, Wv)
    if bbox is None:
        raise ValueError("view 'crop' needs the person's bbox")
    Hin, Win = int(input_size_hw[0]), int(input_size_hw[1])
    Hv, Wv = int(display), max(1, round(display * Win / Hin))
    center, size = box_to_center_size(bbox, (Hin, Win), enlarge)
    return crop_affine(center, size, (Hv, Wv)), (Hv, Wv)


def render_view(image: np.ndarray, M: np.ndarray, view_hw: Sequence[int], view: str = "full") -> np.ndarray:
    """The view's pixels: a resize for 'full' (INTER_AREA when shrinking), a warp for 'crop'."""
    Hv, Wv = int(view_hw[0]), int(view_hw[1])
    if view == "full":
        shrink = Wv < image.shape[1]
        return cv2.resize(image, (Wv, Hv), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return cv2.warpAffine(image, np.asarray(M, np.float64), (Wv, Hv), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))


def _fx(p) -> tuple[int, int]:
    return int(round(float(p[0]) * _ONE)), int(round(float(p[1]) * _ONE))


def draw_box(img: np.ndarray, corners: np.ndarray, color=BOX_COLOR, thickness: int = 1) -> np.ndarray:
    """Draw a quadrilateral through 4 corner points (4, 2) (a box mapped into a view) onto `img` in place."""
    pts = np.round(np.asarray(corners, np.float64) * _ONE).astype(np.int32).reshape(-1, 1, 2)
    cv2.polylines(img, [pts], True, tuple(int(c) for c in color), thickness, cv2.LINE_AA, _SHIFT)
    return img


def _dashed(img, p, q, color, thickness, dash: float, gap: float) -> None:
    p, q = np.asarray(p, np.float64)[:2], np.asarray(q, np.float64)[:2]
    length = float(np.hypot(*(q - p)))
    if length < 1e-6:
        return
    d = (q - p) / length
    t = 0.0
    while t < length:
        e = min(t + dash, length)
        cv2.line(img, _fx(p + d * t), _fx(p + d * e), color, thickness, cv2.LINE_AA, _SHIFT)
        t = e + gap


def draw_skeleton(img: np.ndarray, kps: np.ndarray, style: str = "gt", *,
                  skeleton: Sequence[tuple[int, int]] = COCO_SKELETON, sides: Sequence[str] = JOINT_SIDE,
                  scale: float = 1.0, pred_min_score: float = 0.0) -> np.ndarray:
    """Draw one person's keypoints (K, 3) (already in the image's coordinates) onto `img` in place.

    style 'gt': column 3 is the COCO visibility (0 skipped, 1 hollow, 2 filled); 'pred': column 3 is a
    score (drawn when > pred_min_score); 'other': grey, thin, visibility rule. `scale` multiplies the
    line widths and marker radii (1.0 suits a ~480 px view).
    """
    if style not in ("gt", "pred", "other"):
        raise ValueError(f"style must be 'gt', 'pred' or 'other', got {style!r}")
    kp = np.asarray(kps, np.float64)
    if kp.ndim != 2 or kp.shape[1] not in (2, 3) or kp.shape[0] != len(sides):
        raise ValueError(f"keypoints must be ({len(sides)}, 2 or 3), got {kp.shape}")
    finite = np.all(np.isfinite(kp[:, :2]), axis=1)
    if style == "pred":
        score = kp[:, 2] if kp.shape[1] == 3 else np.ones(len(kp))
        absent = np.all(kp[:, :3] == 0, axis=1) if kp.shape[1] == 3 else np.zeros(len(kp), bool)
        shown = finite & ~absent & (score > pred_min_score)
    else:
        v = kp[:, 2] if kp.shape[1] == 3 else np.full(len(kp), 2.0)
        shown = finite & (v > 0)
    lw = max(1, round(2 * scale))
    r = max(2.0, 4.0 * scale)
    for a, b in skeleton:
        if not (shown[a] and shown[b]):
            continue
        side = limb_side(a, b, sides)
        if style == "gt":
            cv2.line(img, _fx(kp[a]), _fx(kp[b]), GT_COLORS[side], lw + 1, cv2.LINE_AA, _SHIFT)
        elif style == "pred":
            _dashed(img, kp[a], kp[b], PRED_COLORS[side], lw, dash=7 * scale, gap=4 * scale)
        else:
            cv2.line(img, _fx(kp[a]), _fx(kp[b]), OTHER_COLOR, 1, cv2.LINE_AA, _SHIFT)
    for j in np.flatnonzero(shown):
        c = _fx(kp[j])
        rr = int(round(r * _ONE))
        if style == "gt":
            col = GT_COLORS[sides[j]]
            if kp.shape[1] == 3 and kp[j, 2] == 1:  # occluded: hollow
                cv2.circle(img, c, rr, col, lw, cv2.LINE_AA, _SHIFT)
            else:
                cv2.circle(img, c, rr, (255, 255, 255), -1, cv2.LINE_AA, _SHIFT)
                cv2.circle(img, c, int(round((r - 1) * _ONE)), col, -1, cv2.LINE_AA, _SHIFT)
        elif style == "pred":
            col = PRED_COLORS[sides[j]]
            d = r * 0.9
            p = kp[j, :2]
            for off in ((d, d), (d, -d)):
                o = np.array(off)
                cv2.line(img, _fx(p - o), _fx(p + o), (0, 0, 0), lw + 2, cv2.LINE_AA, _SHIFT)
            for off in ((d, d), (d, -d)):
                o = np.array(off)
                cv2.line(img, _fx(p - o), _fx(p + o), col, lw, cv2.LINE_AA, _SHIFT)
        else:
            cv2.circle(img, c, int(round(2 * _ONE)), OTHER_COLOR, -1, cv2.LINE_AA, _SHIFT)
    return img


def heatmap_in_view(heatmap: np.ndarray, image_to_view: np.ndarray, view_hw: Sequence[int],
                    bbox: Sequence[float], *, input_size_hw: Sequence[int] = (256, 192),
                    enlarge: float = 1.25) -> np.ndarray:
    """Warp one (h, w) heatmap computed on the person crop of `bbox` into the view: -> (Hv, Wv) float32.

    image -> heatmap is ``crop_affine(center, size, (h, w))`` for the crop box of `bbox`; the view
    pixel p reads the heatmap at (image -> heatmap) o (view -> image) (p), bilinear, 0 outside.
    """
    hm = np.asarray(heatmap, np.float32)
    if hm.ndim != 2:
        raise ValueError(f"heatmap must be 2-D (h, w), got shape {hm.shape}")
    center, size = box_to_center_size(bbox, input_size_hw, enlarge)
    img_to_hm = crop_affine(center, size, hm.shape)
    view_to_hm = _compose(img_to_hm, invert_affine(image_to_view))
    Hv, Wv = int(view_hw[0]), int(view_hw[1])
    return cv2.warpAffine(hm, view_to_hm, (Wv, Hv), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def overlay_heatmap(img: np.ndarray, heat: np.ndarray, alpha: float = 0.65,
                    colormap: int = cv2.COLORMAP_JET) -> np.ndarray:
    """Blend a heatmap (H, W) over an RGB image of the same size; returns a new image.

    The heat is clipped at 0 and divided by its maximum (a zero map leaves the image unchanged);
    each pixel blends with weight ``alpha * sqrt(heat)``, so cold regions keep the image visible.
    """
    h = np.clip(np.asarray(heat, np.float32), 0.0, None)
    if h.shape != img.shape[:2]:
        raise ValueError(f"heat {h.shape} must match the image size {img.shape[:2]}")
    m = float(h.max()) if h.size else 0.0
    if m <= 0:
        return img.copy()
    h = h / m
    cm = cv2.cvtColor(cv2.applyColorMap((h * 255).astype(np.uint8), colormap), cv2.COLOR_BGR2RGB)
    w = (alpha * np.sqrt(h))[..., None]  # sqrt: the tails of a small Gaussian stay visible
    return (img.astype(np.float32) * (1 - w) + cm.astype(np.float32) * w).round().astype(np.uint8)


def render_pose(image: np.ndarray, gt_kps: np.ndarray | None = None, pred_kps: np.ndarray | None = None, *,
                bbox: Sequence[float] | None = None, view: str = "full", input_size_hw: Sequence[int] = (256, 192),
                enlarge: float = 1.25, display: int = 480, heatmap: np.ndarray | None = None,
                others: Sequence[np.ndarray] = (), pred_min_score: float = 0.0) -> np.ndarray:
    """Render one person: the view of `image` with the heatmap overlay (if given), the box (full view),
    other people (grey, full view), the ground truth and the prediction. Returns (Hv, Wv, 3) uint8 RGB.

    All keypoints / the box are in image coordinates; `heatmap` (h, w) is on the crop of `bbox`.
    """
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"image must be an (H, W, 3) uint8 RGB array, got {img.dtype} {img.shape}")
    M, vhw = view_geometry(img.shape[:2], bbox, view, input_size_hw=input_size_hw, enlarge=enlarge,
                           display=display)
    out = render_view(img, M, vhw, view)
    if heatmap is not None:
        if bbox is None:
            raise ValueError("a heatmap overlay needs the person's bbox (the crop it was computed on)")
        out = overlay_heatmap(out, heatmap_in_view(heatmap, M, vhw, bbox, input_size_hw=input_size_hw,
                                                   enlarge=enlarge))
    scale = max(vhw) / 480.0
    scale = min(max(scale, 0.5), 2.0)

    def to_view(kp):
        kp = np.asarray(kp, np.float64).copy()
        kp[:, :2] = apply_affine(M, kp[:, :2])
        return kp

    if view == "full":
        for o in others:
            draw_skeleton(out, to_view(o), "other", scale=scale)
        if bbox is not None:
            x, y, w, h = (float(v) for v in bbox)
            corners = np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]])  # the continuous box
            draw_box(out, apply_affine(M, corners), BOX_COLOR, 1)
    if gt_kps is not None:
        draw_skeleton(out, to_view(gt_kps), "gt", scale=scale)
    if pred_kps is not None:
        draw_skeleton(out, to_view(pred_kps), "pred", scale=scale, pred_min_score=pred_min_score)
    return out
