"""Scenes: cluttered backgrounds, occluders, multi-person images and videos, blur / noise.

`render_image(cfg, rng)` draws one still image with 1..N people and returns it with one
`PersonAnn` per visible person. `render_video(cfg, rng, frames, frame_rng)` draws a sequence with
people following motion cycles (walking ones translate and turn back before leaving the view)
under a slowly panning / zooming camera; a person keeps its `track_id` for the whole video.
All randomness comes from the generators passed in.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import cv2
import numpy as np

from posenas_core.data.synthpose.appearance import (
    SKIN_TONES, Appearance, noise_banks, noise_crop, random_colour, sample_appearance,
)
from posenas_core.data.synthpose.body import NUM_PARTS, BodyShape, forward_kinematics, sample_body_shape
from posenas_core.data.synthpose.config import SynthConfig
from posenas_core.data.synthpose.motion import ACTION_WEIGHTS, PersonMotion, sample_pose
from posenas_core.data.synthpose.render import (
    ID_STRIDE, OCCLUDER_ID, SHIFT, PersonRender, View, capsule_polys, cv_colour, draw_person, keypoint_visibility,
    to_fixed,
)

__all__ = ["PersonAnn", "render_image", "render_video"]


@dataclasses.dataclass
class PersonAnn:
    """One annotated person: keypoints (17, 3) x, y, v; tight box of its visible pixels [x, y, w, h]
    (pixel-index box: x = first column, w = number of columns); visible pixel area; head box."""

    keypoints: np.ndarray
    bbox: np.ndarray
    area: float
    head_box: np.ndarray
    label: str
    track_id: int = -1


@dataclasses.dataclass
class Occluder:
    kind: str                  # box, pole, blob
    pts: np.ndarray            # box / pole: (4, 2) polygon; blob: (1, 2) centre
    axes: tuple[float, float]  # blob half-axes (px)
    angle: float               # blob angle (deg)
    colour: np.ndarray
    stripes: int               # box: number of horizontal planks (0 = plain)


# ---------------------------------------------------------------------------------------- background
def make_background(rng: np.random.Generator, W: int, H: int, clutter: float) -> np.ndarray:
    """(H, W, 3) uint8 RGB: smooth colour field (+ floor), fabric-like noise, shapes, lines, limb-like distractors."""
    gh, gw = int(rng.integers(2, 6)), int(rng.integers(2, 6))
    base = random_colour(rng)
    coarse = (base + rng.normal(0, rng.uniform(15, 70), (gh, gw, 3))).astype(np.float32)
    bg = cv2.resize(coarse, (W, H), interpolation=cv2.INTER_CUBIC)
    if rng.random() < 0.5:                                    # a floor below a horizon
        y = int(rng.uniform(0.3, 0.75) * H)
        fcol = random_colour(rng)
        floor = cv2.resize((fcol + rng.normal(0, 25, (2, 3, 3))).astype(np.float32), (W, H - y),
                           interpolation=cv2.INTER_LINEAR)
        bg[y:] = floor
    smooth, _ = noise_banks()
    bg += noise_crop(smooth, rng, H, W)[..., None] * float(rng.uniform(2, 10))
    img = np.clip(bg, 0, 255).astype(np.uint8)

    n_shapes = int(round(clutter * rng.uniform(8, 40)))
    for _ in range(n_shapes):
        _random_shape(img, rng, W, H)
    n_limbs = int(round(clutter * rng.uniform(0, 7)))
    for _ in range(n_limbs):
        _distractor_limb(img, rng, W, H)
    return img


def _random_shape(img, rng, W, H):
    col = cv_colour(random_colour(rng))
    kind = rng.choice(6, p=[0.22, 0.18, 0.15, 0.15, 0.2, 0.1])
    cx, cy = rng.uniform(-0.1, 1.1) * W, rng.uniform(-0.1, 1.1) * H
    s = rng.uniform(0.03, 0.35) * min(W, H)
    if kind == 0:                                               # rotated rectangle
        box = cv2.boxPoints(((cx, cy), (s * rng.uniform(0.5, 2.5), s * rng.uniform(0.3, 2)), rng.uniform(0, 180)))
        cv2.fillConvexPoly(img, to_fixed(box), col, cv2.LINE_AA, SHIFT)
    elif kind == 1:                                             # circle / ring
        th = -1 if rng.random() < 0.6 else int(rng.integers(1, 5))
        cv2.circle(img, tuple(to_fixed([cx, cy])), int(s * 0.6 * 16), col, th, cv2.LINE_AA, SHIFT)
    elif kind == 2:                                             # ellipse
        cv2.ellipse(img, tuple(to_fixed([cx, cy])), (int(s * 16), int(s * rng.uniform(0.2, 0.8) * 16)),
                    rng.uniform(0, 180), 0, 360, col, -1, cv2.LINE_AA, SHIFT)
    elif kind == 3:                                             # convex polygon
        pts = rng.normal(0, s * 0.6, (int(rng.integers(3, 7)), 2)) + [cx, cy]
        hull = cv2.convexHull(pts.astype(np.float32))[:, 0]
        cv2.fillConvexPoly(img, to_fixed(hull), col, cv2.LINE_AA, SHIFT)
    elif kind == 4:                                             # line / polyline
        pts = np.cumsum(rng.normal(0, s, (int(rng.integers(2, 5)), 2)), 0) + [cx, cy]
        cv2.polylines(img, [to_fixed(pts)], False, col, int(rng.integers(1, 6)), cv2.LINE_AA, SHIFT)
    else:                                                       # stripes patch
        ang = rng.uniform(0, np.pi)
        d = np.array([math.cos(ang), math.sin(ang)])
        nrm = np.array([-d[1], d[0]])
        gap = rng.uniform(4, 14)
        for k in range(int(rng.integers(3, 10))):
            c = np.array([cx, cy]) + nrm * gap * k
            cv2.line(img, tuple(to_fixed(c - d * s)), tuple(to_fixed(c + d * s)), col, max(1, int(gap * 0.4)), cv2.LINE_AA,
                     SHIFT)


def _distractor_limb(img, rng, W, H):
    """1-3 shaded capsules joined end to end, coloured like skin or clothing (a hard negative)."""
    col = (SKIN_TONES[int(rng.integers(len(SKIN_TONES)))] if rng.random() < 0.5 else random_colour(rng))
    p = np.array([rng.uniform(0, W), rng.uniform(0, H)])
    r = rng.uniform(3, 11)
    ang = rng.uniform(0, 2 * np.pi)
    for _ in range(int(rng.integers(1, 4))):
        L = rng.uniform(4, 9) * r
        q = p + L * np.array([math.cos(ang), math.sin(ang)])
        r2 = r * rng.uniform(0.7, 1.0)
        poly = capsule_polys(p[None], q[None], np.array([r]), np.array([r2]))[0]
        cv2.fillConvexPoly(img, to_fixed(poly), cv_colour(col * 0.78), cv2.LINE_AA, SHIFT)
        inner = capsule_polys(p[None], q[None], np.array([r * 0.5]), np.array([r2 * 0.5]))[0]
        cv2.fillConvexPoly(img, to_fixed(inner), cv_colour(col * 1.05), cv2.LINE_AA, SHIFT)
        p, r = q, r2
        ang += rng.uniform(-1.8, 1.8)


# ------------------------------------------------------------------------------------------ occluders
def make_occluder(rng: np.random.Generator, ext: tuple[float, float, float, float]) -> Occluder:
    """An object overlapping the person box `ext` = (x0, y0, x1, y1): a box over the lower part,
    a pole crossing it, or a blob over some part."""
    x0, y0, x1, y1 = ext
    w, h = max(x1 - x0, 4.0), max(y1 - y0, 4.0)
    col = random_colour(rng)
    kind = ("box", "pole", "blob")[int(rng.choice(3, p=[0.4, 0.3, 0.3]))]
    if kind == "box":
        top = y0 + rng.uniform(0.45, 0.85) * h
        if rng.random() < 0.7:        # from below (a table, a car, a wall)
            xa = x0 + rng.uniform(-0.6, 0.4) * w
            xb = xa + rng.uniform(0.6, 1.6) * w
            pts = np.array([[xa, top], [xb, top], [xb, y1 + 0.3 * h], [xa, y1 + 0.3 * h]])
        else:                         # from a side, covering part of the width
            side = rng.random() < 0.5
            xe = x0 + rng.uniform(0.2, 0.5) * w if side else x1 - rng.uniform(0.2, 0.5) * w
            ya, yb = y0 + rng.uniform(-0.2, 0.5) * h, y1 + 0.2 * h
            xo = x0 - 0.5 * w if side else x1 + 0.5 * w
            pts = np.array([[xo, ya], [xe, ya], [xe, yb], [xo, yb]])
        return Occluder("box", pts, (0, 0), 0, col, int(rng.integers(0, 5)) if rng.random() < 0.5 else 0)
    if kind == "pole":
        x = x0 + rng.uniform(0.15, 0.85) * w
        half = max(2.0, rng.uniform(0.04, 0.12) * w)
        tilt = rng.uniform(-0.25, 0.25) * h
        ya, yb = y0 - 2 * h, y1 + 2 * h
        pts = np.array([[x - half - tilt * 2, ya], [x + half - tilt * 2, ya], [x + half + tilt * 2, yb],
                        [x - half + tilt * 2, yb]])
        return Occluder("pole", pts, (0, 0), 0, col, 0)
    c = np.array([[x0 + rng.uniform(0.1, 0.9) * w, y0 + rng.uniform(0.15, 0.9) * h]])
    a = rng.uniform(0.12, 0.3) * h
    return Occluder("blob", c, (a, a * rng.uniform(0.5, 1.0)), float(rng.uniform(0, 180)), col, 0)


def draw_occluder(img: np.ndarray, ids: np.ndarray, oc: Occluder, scale: float = 1.0,
                  offset: tuple[float, float] = (0.0, 0.0)) -> None:
    """Draw (after mapping x -> scale * x + offset, for a moving camera) into the image and the ID buffer."""
    col = oc.colour
    pts = oc.pts * scale + np.asarray(offset)
    if oc.kind in ("box", "pole"):
        cv2.fillConvexPoly(ids, to_fixed(pts), OCCLUDER_ID, cv2.LINE_8, SHIFT)
        cv2.fillConvexPoly(img, to_fixed(pts), cv_colour(col), cv2.LINE_AA, SHIFT)
        if oc.kind == "pole":    # a highlight down the pole
            mid = pts.mean(0)
            inner = mid + (pts - mid) * np.array([0.35, 1.0])
            inner[:, 0] -= 0.15 * (pts[1, 0] - pts[0, 0])
            cv2.fillConvexPoly(img, to_fixed(inner), cv_colour(col * 1.2 + 20), cv2.LINE_AA, SHIFT)
        elif oc.stripes:          # planks
            top, bot = pts[0, 1], pts[2, 1]
            for k in range(1, oc.stripes + 1):
                y = top + (bot - top) * k / (oc.stripes + 3)
                cv2.line(img, tuple(to_fixed([pts[0, 0], y])), tuple(to_fixed([pts[1, 0], y])), cv_colour(col * 0.6), 2, cv2.LINE_AA,
                         SHIFT)
        cv2.polylines(img, [to_fixed(pts)], True, cv_colour(col * 0.55), 1, cv2.LINE_AA, SHIFT)
    else:
        axes = (int(oc.axes[0] * scale * 16), int(oc.axes[1] * scale * 16))
        c = tuple(to_fixed(pts[0]))
        cv2.ellipse(ids, c, axes, oc.angle, 0, 360, OCCLUDER_ID, -1, cv2.LINE_8, SHIFT)
        cv2.ellipse(img, c, axes, oc.angle, 0, 360, cv_colour(col), -1, cv2.LINE_AA, SHIFT)
        cv2.ellipse(img, tuple(to_fixed(pts[0] - 0.25 * np.array(oc.axes) * scale)), (axes[0] // 2, axes[1] // 2),
                    oc.angle, 0, 360, cv_colour(col * 1.15 + 15), -1, cv2.LINE_AA, SHIFT)


# ----------------------------------------------------------------------------------- post-processing
@dataclasses.dataclass
class Photometric:
    gain: np.ndarray     # (3,) per-channel gain
    bias: float
    blur: float          # Gaussian sigma (0 = none)
    motion: int          # motion-blur kernel length (0 = none)
    motion_angle: float
    noise: float         # additive noise std

    @classmethod
    def sample(cls, rng: np.random.Generator, cfg: SynthConfig) -> "Photometric":
        gain = rng.uniform(0.85, 1.15, 3) * rng.uniform(0.8, 1.15)
        blur = float(rng.uniform(0.3, cfg.blur_max)) if (cfg.blur_max > 0.3 and rng.random() < 0.5) else 0.0
        motion = int(rng.integers(3, 8)) if (cfg.blur_max > 0 and rng.random() < 0.1) else 0
        return cls(gain=gain, bias=float(rng.uniform(-15, 15)), blur=blur, motion=motion,
                   motion_angle=float(rng.uniform(0, 180)), noise=float(rng.uniform(0, cfg.noise_max)))

    def apply(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        f = img.astype(np.float32) * self.gain.astype(np.float32) + np.float32(self.bias)
        if self.blur > 0:
            f = cv2.GaussianBlur(f, (0, 0), self.blur)
        if self.motion:
            k = np.zeros((self.motion, self.motion), np.float32)
            c = (self.motion - 1) / 2
            d = np.array([math.cos(math.radians(self.motion_angle)), math.sin(math.radians(self.motion_angle))])
            cv2.line(k, tuple(to_fixed(c - d * c)), tuple(to_fixed(c + d * c)), 1.0, 1, cv2.LINE_AA, SHIFT)
            f = cv2.filter2D(f, -1, k / max(k.sum(), 1e-6))
        if self.noise > 0:
            _, pix = noise_banks()
            f += noise_crop(pix, rng, f.shape[0], f.shape[1]) * np.float32(self.noise)
        return np.clip(f, 0, 255).astype(np.uint8)


# -------------------------------------------------------------------------------------------- people
@dataclasses.dataclass
class _Person:
    shape: BodyShape
    app: Appearance
    view: View
    pose: np.ndarray
    lift: float
    label: str
    slot: int
    depth: float                # larger = farther (drawn first)
    track_id: int = -1


def _light(rng: np.random.Generator) -> np.ndarray:
    v = np.array([rng.uniform(-0.8, 0.8), rng.uniform(0.2, 1.0), rng.uniform(0.3, 1.0)])
    return v / np.linalg.norm(v)


def _annotate(pr: PersonRender, ids: np.ndarray, label: str, track_id: int, label_back: bool) -> PersonAnn | None:
    """Keypoints from the final ID buffer, tight box and area of the visible pixels; None if nothing shows."""
    x0, y0, x1, y1 = pr.extent
    if x1 <= x0 or y1 <= y0:
        return None
    roi = ids[y0:y1, x0:x1]
    mask = (roi >= pr.id_base) & (roi < pr.id_base + NUM_PARTS)
    area = int(mask.sum())
    if area == 0:
        return None
    cols, rows = np.flatnonzero(mask.any(0)), np.flatnonzero(mask.any(1))
    bbox = np.array([x0 + cols[0], y0 + rows[0], cols[-1] - cols[0] + 1, rows[-1] - rows[0] + 1], dtype=np.float64)
    kp = keypoint_visibility(pr, ids, label_back)
    H, W = ids.shape
    r = pr.head_r_px * 1.15
    hx0, hy0 = max(0.0, pr.head_uv[0] - r), max(0.0, pr.head_uv[1] - r)
    hx1, hy1 = min(float(W), pr.head_uv[0] + r), min(float(H), pr.head_uv[1] + r)
    head = np.array([hx0, hy0, max(0.0, hx1 - hx0), max(0.0, hy1 - hy0)])
    return PersonAnn(keypoints=kp, bbox=bbox, area=float(area), head_box=head, label=label, track_id=track_id)


def _draw_all(img, ids, people: list[_Person], skeletons, occluders: dict[int, list[Occluder]], light, rng,
              label_back: bool, oc_scale=1.0, oc_offset=(0.0, 0.0)) -> list[PersonAnn | None]:
    """Draw people far to near, each person's occluders right after it; annotate from the final buffers."""
    renders = {}
    for p in sorted(people, key=lambda q: -q.depth):
        sk = skeletons[p.slot]
        renders[p.slot] = draw_person(img, ids, sk, p.shape, p.view, p.app, 1 + p.slot * ID_STRIDE, light)
        for oc in occluders.get(p.slot, []):
            draw_occluder(img, ids, oc, oc_scale, oc_offset)
    return [_annotate(renders[p.slot], ids, p.label, p.track_id, label_back) for p in people]


def _projected_box(sk, view: View) -> tuple[float, float, float, float]:
    uv, _ = view.project(sk.all_points())
    pad = view.f_mean * sk.head_r * 0.6 / view.dist
    return (float(uv[:, 0].min() - pad), float(uv[:, 1].min() - pad), float(uv[:, 0].max() + pad),
            float(uv[:, 1].max() + pad))


# ------------------------------------------------------------------------------------------- images
def _facing(rng: np.random.Generator, cfg: SynthConfig) -> float:
    """A person's facing (view yaw) in [0, 360): uniform within `cfg.yaw_max` degrees of facing the camera."""
    return float(rng.uniform(-cfg.yaw_max, cfg.yaw_max)) % 360.0


def _clamp_inside(c: float, lo: float, hi: float, size: int, frac: float) -> float:
    """Anchor c such that at most `frac` of the extent [c + lo, c + hi] lies outside [0, size]."""
    ext = hi - lo
    lo_c, hi_c = -lo - frac * ext, size - hi + frac * ext
    return float(0.5 * (lo_c + hi_c) if lo_c > hi_c else min(max(c, lo_c), hi_c))


def render_image(cfg: SynthConfig, rng: np.random.Generator) -> tuple[np.ndarray, list[PersonAnn]]:
    """One still image (H, W, 3) uint8 RGB and its annotated people."""
    W, H = cfg.width, cfg.height
    img = make_background(rng, W, H, cfg.clutter)
    ids = np.zeros((H, W), np.uint16)
    n = int(rng.integers(cfg.people_min, cfg.people_max + 1))
    base_pitch = rng.uniform(cfg.pitch_min, cfg.pitch_max)
    aspect = float(rng.uniform(1 - cfg.aspect_jitter, 1 + cfg.aspect_jitter))
    people, skeletons, boxes = [], {}, []
    for k in range(n):
        shape = sample_body_shape(rng)
        app = sample_appearance(rng, cfg.texture_prob, cfg.lr_cue_prob)
        pose, lift, label = sample_pose(rng, cfg.unusual_pose_prob, cfg.random_pose_prob, cfg.pose_noise_deg)
        sk = forward_kinematics(shape, pose, lift * shape.height)
        h_px = float(rng.uniform(cfg.person_height_min, cfg.person_height_max))
        ratio = float(math.exp(rng.uniform(math.log(cfg.dist_min), math.log(cfg.dist_max))))
        dist = ratio * shape.height
        allp = sk.all_points()
        look_at = 0.5 * (allp.min(0) + allp.max(0))
        pitch = float(np.clip(base_pitch + rng.normal(0, 6), cfg.pitch_min, cfg.pitch_max))
        view = View(yaw=_facing(rng, cfg), pitch=pitch, roll=float(rng.uniform(-cfg.roll_max, cfg.roll_max)),
                    dist=dist, focal=h_px * dist / shape.height, cx=0.0, cy=0.0, look_at=look_at, aspect=aspect)
        bx0, by0, bx1, by1 = _projected_box(sk, view)             # relative to the anchor
        bw, bh = bx1 - bx0, by1 - by0
        if boxes and rng.random() < cfg.overlap_prob:            # overlap an earlier person
            ox0, oy0, ox1, oy1 = boxes[int(rng.integers(len(boxes)))]
            side = 1.0 if rng.random() < 0.5 else -1.0
            cx = 0.5 * (ox0 + ox1) + side * rng.uniform(0.25, 0.7) * max(ox1 - ox0, bw)
            cy = 0.5 * (oy0 + oy1) + rng.uniform(-0.25, 0.25) * max(oy1 - oy0, bh)
        else:                                                     # anywhere, at most ~15 % outside
            lo_x, hi_x = -bx0 - 0.15 * bw, W - bx1 + 0.15 * bw
            lo_y, hi_y = -by0 - 0.15 * bh, H - by1 + 0.15 * bh
            cx = rng.uniform(lo_x, hi_x) if hi_x > lo_x else 0.5 * (lo_x + hi_x)
            cy = rng.uniform(lo_y, hi_y) if hi_y > lo_y else 0.5 * (lo_y + hi_y)
        # at most ~20 % of the person's extent outside the image (centred if it is larger than the image)
        cx, cy = _clamp_inside(cx, bx0, bx1, W, 0.2), _clamp_inside(cy, by0, by1, H, 0.2)
        view.cx, view.cy = cx, cy
        boxes.append((bx0 + cx, by0 + cy, bx1 + cx, by1 + cy))
        depth = -h_px + rng.normal(0, 10)                         # bigger people are nearer
        people.append(_Person(shape, app, view, pose, lift, label, k, depth))
        skeletons[k] = sk
    occluders = {}
    for p in people:
        if rng.random() < cfg.occluder_prob:
            occluders[p.slot] = [make_occluder(rng, boxes[p.slot])]
    anns = _draw_all(img, ids, people, skeletons, occluders, _light(rng), rng, cfg.label_back_of_head)
    img = Photometric.sample(rng, cfg).apply(img, rng)
    return img, [a for a in anns if a is not None]


# ------------------------------------------------------------------------------------------- videos
_VIDEO_ACTIONS = {"walk": 0.4, "run": 0.12}
_rest = 1.0 - sum(_VIDEO_ACTIONS.values())
_inplace = {a: w for a, w in ACTION_WEIGHTS.items() if a not in _VIDEO_ACTIONS}
_VIDEO_ACTIONS.update({a: _rest * w / sum(_inplace.values()) for a, w in _inplace.items()})


@dataclasses.dataclass
class _Track:
    shape: BodyShape
    app: Appearance
    motion: PersonMotion
    yaw: float          # deg, facing relative to the camera (0 = towards it)
    turn: float         # deg per frame
    pitch: float
    roll: float
    dist: float
    dist_range: tuple[float, float]
    focal: float
    u: float            # anchor in stage (big background) coordinates
    v: float
    elev: float         # camera height above the anchor point (m), moves the anchor when the distance changes
    look_at: np.ndarray


def render_video(cfg: SynthConfig, rng: np.random.Generator, frames: int,
                 frame_rng: Callable[[int], np.random.Generator]) -> list[tuple[np.ndarray, list[PersonAnn]]]:
    """A video: [(frame image, annotated people with track ids)] * frames."""
    W, H = cfg.width, cfg.height
    margin = 1.5
    BW, BH = int(W * margin), int(H * margin)
    stage = make_background(rng, BW, BH, cfg.clutter)
    c0 = np.array([BW / 2, BH / 2])
    pan = rng.normal(0, 1.2, 2) * np.array([1.0, 0.4])                # stage px per frame
    zoom = float(rng.uniform(-0.004, 0.004))                            # log scale per frame
    photo = Photometric.sample(rng, cfg)
    light = _light(rng)
    aspect = float(rng.uniform(1 - cfg.aspect_jitter, 1 + cfg.aspect_jitter))
    base_pitch = rng.uniform(cfg.pitch_min, cfg.pitch_max)
    n = int(rng.integers(cfg.people_min, cfg.people_max + 1))
    names, weights = list(_VIDEO_ACTIONS), np.array(list(_VIDEO_ACTIONS.values()))
    tracks: list[_Track] = []
    for k in range(n):
        shape = sample_body_shape(rng)
        app = sample_appearance(rng, cfg.texture_prob, cfg.lr_cue_prob)
        action = names[int(rng.choice(len(names), p=weights / weights.sum()))]
        motion = PersonMotion.sample(rng, action, cfg.pose_noise_deg)
        h_px = float(rng.uniform(cfg.person_height_min, cfg.person_height_max))
        ratio = float(math.exp(rng.uniform(math.log(cfg.dist_min), math.log(cfg.dist_max))))
        dist = ratio * shape.height
        pitch = float(np.clip(base_pitch + rng.normal(0, 5), cfg.pitch_min, cfg.pitch_max))
        # anchor (the standing body centre) within the central part of the first frame
        u = c0[0] + rng.uniform(-0.35, 0.35) * W
        v = c0[1] + rng.uniform(-0.5, 0.5) * max(0.0, H - 0.9 * h_px)
        tracks.append(_Track(
            shape=shape, app=app, motion=motion, yaw=_facing(rng, cfg), turn=float(rng.normal(0, 1.5)),
            pitch=pitch, roll=float(rng.uniform(-cfg.roll_max, cfg.roll_max)) * 0.5, dist=dist,
            dist_range=(dist * 0.8, dist * 1.25), focal=h_px * dist / shape.height, u=u, v=v,
            elev=dist * math.sin(math.radians(pitch)), look_at=np.array([0.0, 0.52 * shape.height, 0.0])))
    occluders = {}
    for k, t in enumerate(tracks):
        if rng.random() < cfg.occluder_prob:
            hh = t.focal * t.shape.height / t.dist
            occluders[k] = [make_occluder(rng, (t.u - 0.25 * hh, t.v - 0.5 * hh, t.u + 0.25 * hh, t.v + 0.5 * hh))]

    out = []
    for f in range(frames):
        frng = frame_rng(f)
        s = math.exp(zoom * f)
        c = c0 + pan * f
        # stage -> frame: x_f = s * (x_s - c) + (W/2, H/2)
        M = np.array([[s, 0, W / 2 - s * c[0]], [0, s, H / 2 - s * c[1]]], dtype=np.float64)
        img = cv2.warpAffine(stage, M, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
        ids = np.zeros((H, W), np.uint16)
        people, skeletons = [], {}
        for k, t in enumerate(tracks):
            pose, lift = t.motion.pose(f)
            skeletons[k] = forward_kinematics(t.shape, pose, lift * t.shape.height)
            view = View(yaw=t.yaw, pitch=t.pitch, roll=t.roll, dist=t.dist, focal=t.focal * s,
                        cx=s * (t.u - c[0]) + W / 2, cy=s * (t.v - c[1]) + H / 2, look_at=t.look_at, aspect=aspect)
            people.append(_Person(t.shape, t.app, view, pose, lift, t.motion.action, k, t.dist, track_id=k))
        anns = _draw_all(img, ids, people, skeletons, occluders, light, frng, cfg.label_back_of_head,
                         oc_scale=s, oc_offset=(W / 2 - s * c[0], H / 2 - s * c[1]))
        img = photo.apply(img, frng)
        out.append((img, [a for a in anns if a is not None]))
        for t in tracks:
            _step(t, W, H, c, s)
    return out


def _step(t: _Track, W: int, H: int, c: np.ndarray, s: float) -> None:
    """Advance one frame: walk along the facing direction, turn back before leaving the view / depth range."""
    speed = t.motion.travel_per_frame(t.shape.height)
    ps = math.radians(t.yaw)
    lateral, towards = -math.sin(ps), math.cos(ps)      # image-right and towards-camera components of facing
    if speed > 0:
        fx = s * (t.u - c[0]) + W / 2                   # current frame position
        out_x = (fx < 0.15 * W and lateral < -0.2) or (fx > 0.85 * W and lateral > 0.2)
        out_d = (t.dist < t.dist_range[0] and towards > 0.2) or (t.dist > t.dist_range[1] and towards < -0.2)
        if out_x or out_d:
            t.turn = math.copysign(12.0, t.turn if t.turn != 0 else 1.0)
        elif abs(t.turn) > 3:
            t.turn *= 0.5
    t.yaw = (t.yaw + t.turn) % 360.0
    if speed > 0:
        new_d = max(t.dist - towards * speed, 0.5 * t.dist_range[0])
        t.u += lateral * speed * t.focal / t.dist
        t.v += t.elev * t.focal * (1.0 / new_d - 1.0 / t.dist)
        t.dist = new_d
