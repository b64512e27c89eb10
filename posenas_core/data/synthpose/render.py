"""Camera, projection and drawing of one person; keypoint visibility from a part/instance ID buffer.

Image conventions: RGB uint8 HxWx3; pixel centres at integer coordinates (the project's convention),
so a point at (x, y) lies in pixel (round(x), round(y)). Drawing uses OpenCV with sub-pixel
coordinates (`shift=4`): antialiased (LINE_AA) in the colour image, LINE_8 in the ID buffer.

ID buffer (uint16, HxW): 0 = background, `id_base + part` for the parts of a person
(`id_base = 1 + slot * ID_STRIDE`), `OCCLUDER_ID` for occluders. People and their parts are drawn
far to near (painter's algorithm, parts sorted by camera depth), so the buffer holds the front-most
surface; a keypoint is visible (v=2) when its pixel shows one of its owner parts (see
`keypoint_visibility`), labelled-but-occluded (v=1) when something else is in front, absent (v=0,
x=y=0) when outside the image (or a face point turned away from the camera, see SynthConfig).

Camera frame: x right, y down, z forward (OpenCV). A `View` looks at a body-frame point from
azimuth `yaw` (0 = in front of the person, 90 = on the person's left side) and elevation `pitch`.
"""

from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np

from posenas_core.data.synthpose.appearance import Appearance, noise_banks, noise_crop
from posenas_core.data.synthpose.body import (
    KEYPOINT_OWNERS, NUM_PARTS, PART, RING_N, SEG_PART, SEGMENTS, BodyShape, Skeleton,
)

__all__ = [
    "SHIFT", "ID_STRIDE", "OCCLUDER_ID", "View", "cv_colour", "to_fixed", "capsule_polys", "PersonRender",
    "draw_person", "keypoint_visibility",
]

SHIFT = 4                      # sub-pixel bits for cv2 drawing
SCALE = float(1 << SHIFT)
ID_STRIDE = 32                 # ids per person slot (>= NUM_PARTS)
OCCLUDER_ID = 65000
ARC_N = 5                      # points per half circle of a capsule outline
_LIN = np.linspace(0, 1, ARC_N + 1)[None, :]

_FACE_THRESH = np.array([-0.3, 0.25, 0.25, -0.2, -0.2])  # nose, eyes, ears: min cos(normal, to-camera)
_TORSO_JOINTS = {5: 4, 6: 4, 11: 1, 12: 1}                  # keypoint -> ring index of its torso reference depth


# ------------------------------------------------------------------------------------------- camera
@dataclasses.dataclass
class View:
    """A pinhole camera around one person (angles in degrees, distances in metres)."""

    yaw: float                 # camera azimuth around the person: 0 = in front, 90 = on the person's left
    pitch: float               # camera elevation: + = above, looking down
    roll: float                # image-plane rotation
    dist: float                # camera distance to `look_at`
    focal: float               # px
    cx: float                  # image position of `look_at`
    cy: float
    look_at: np.ndarray        # (3,) body-frame point
    aspect: float = 1.0        # fx = focal * aspect, fy = focal

    def camera(self) -> tuple[np.ndarray, np.ndarray]:
        """(R (3, 3) body -> camera rotation, camera position (3,) in the body frame); cached."""
        key = (self.yaw, self.pitch, self.roll, self.dist, *np.asarray(self.look_at, dtype=np.float64).tolist())
        cache = self.__dict__.get("_cam")
        if cache is not None and cache[0] == key:
            return cache[1]
        self.__dict__["_cam"] = (key, self._camera())
        return self.__dict__["_cam"][1]

    def _camera(self) -> tuple[np.ndarray, np.ndarray]:
        ps, th, ro = math.radians(self.yaw), math.radians(self.pitch), math.radians(self.roll)
        d = np.array([math.sin(ps) * math.cos(th), math.sin(th), math.cos(ps) * math.cos(th)])
        pos = np.asarray(self.look_at, dtype=np.float64) + self.dist * d
        fwd = -d
        right = np.cross(fwd, [0.0, 1.0, 0.0])
        right /= np.linalg.norm(right)
        down = np.cross(fwd, right)
        cr, sr = math.cos(ro), math.sin(ro)
        R = np.stack([cr * right + sr * down, -sr * right + cr * down, fwd])
        return R, pos

    def project(self, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 3) body-frame points -> (N, 2) image uv and (N,) camera depth."""
        R, pos = self.camera()
        pc = (np.asarray(pts, dtype=np.float64) - pos) @ R.T
        z = np.maximum(pc[:, 2], 1e-3)
        uv = np.stack([self.focal * self.aspect * pc[:, 0] / z + self.cx, self.focal * pc[:, 1] / z + self.cy], 1)
        return uv, pc[:, 2]

    @property
    def f_mean(self) -> float:
        return self.focal * math.sqrt(self.aspect)


# ----------------------------------------------------------------------------------------- drawing
def cv_colour(col) -> tuple[int, int, int]:
    """An RGB colour as the int tuple OpenCV wants (clipped to 0..255)."""
    return (int(min(255.0, max(0.0, float(col[0])))), int(min(255.0, max(0.0, float(col[1])))),
            int(min(255.0, max(0.0, float(col[2])))))


def to_fixed(pts: np.ndarray) -> np.ndarray:
    """Points in pixels -> int32 fixed point for OpenCV drawing with `shift=SHIFT`."""
    return np.rint(np.asarray(pts) * SCALE).astype(np.int32)


def capsule_polys(a: np.ndarray, b: np.ndarray, ra: np.ndarray, rb: np.ndarray) -> np.ndarray:
    """Outlines of tapered capsules (convex hull of two circles): (M, 2) ends, radii -> (M, 2*ARC_N+2, 2)."""
    d = b - a
    L = np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-6)
    u = d / L
    n = np.stack([-u[:, 1], u[:, 0]], 1)
    phi = np.arcsin(np.clip((ra - rb)[:, None] / L, -0.95, 0.95))  # tilt of the tangent lines (unequal radii)
    base = np.arctan2(n[:, 1], n[:, 0])[:, None]                   # angle of +n
    lin = _LIN
    # tangent normals m+ (angle base - phi) and m- (angle base + pi + phi); arc around a passes -u, around b passes +u
    ta = base - phi + lin * (np.pi + 2 * phi)
    tb = base + np.pi + phi + lin * (np.pi - 2 * phi)
    pa = a[:, None, :] + ra[:, None, None] * np.stack([np.cos(ta), np.sin(ta)], -1)
    pb = b[:, None, :] + rb[:, None, None] * np.stack([np.cos(tb), np.sin(tb)], -1)
    return np.concatenate([pa, pb], 1)


def _batched_capsules(a, b, ra, rb, l2) -> tuple[np.ndarray, np.ndarray]:
    """Fixed-point outlines (M, 2*ARC_N+2, 2) int32 of capsules and of their highlights (half radius,
    shifted across the limb towards the light whose image-plane direction of travel is `l2`)."""
    d = b - a
    nrm = np.stack([-d[:, 1], d[:, 0]], 1) / np.maximum(np.hypot(d[:, 0], d[:, 1]), 1e-6)[:, None]
    off = -nrm * (nrm @ l2)[:, None] * 0.3
    outer = capsule_polys(a, b, ra, rb)
    inner = capsule_polys(a + off * ra[:, None], b + off * rb[:, None], 0.5 * ra, 0.5 * rb)
    return to_fixed(outer), to_fixed(inner)


@dataclasses.dataclass
class PersonRender:
    """What `draw_person` learnt about one drawn person (for visibility and annotations)."""

    id_base: int
    kp_uv: np.ndarray          # (17, 2)
    kp_z: np.ndarray           # (17,) camera depth
    face_dot: np.ndarray       # (5,) cos(angle between face-point normal and direction to the camera)
    ring_z: np.ndarray         # (5,) camera depth of the torso ring centres
    torso_tol: np.ndarray      # (17,) depth tolerance of shoulder / hip joints behind their torso reference
    head_uv: np.ndarray        # (2,)
    head_r_px: float
    extent: tuple[int, int, int, int]   # x0, y0, x1, y1 (exclusive) pixel box of everything drawn, clipped


def draw_person(img: np.ndarray, ids: np.ndarray, sk: Skeleton, shape: BodyShape, view: View, app: Appearance,
                id_base: int, light: np.ndarray) -> PersonRender:
    """Draw one person (parts far to near) into `img` (RGB, HxWx3 uint8) and `ids` (HxW uint16, part
    ids `id_base + part`); return its projection info for `keypoint_visibility`.

    `light`: (3,) unit direction the light travels, in camera coordinates.
    """
    H, W = ids.shape
    R, cam_pos = view.camera()
    fm = view.f_mean
    S = len(SEGMENTS)
    head_up = sk.head_rot[:, 1] * sk.head_r
    pts = np.concatenate([sk.keypoints, sk.seg_a, sk.seg_b, sk.rings.reshape(-1, 3), sk.ring_centres,
                          sk.head_centre[None], (sk.head_centre + head_up)[None]])
    uv, z = view.project(pts)
    kp_uv, kp_z = uv[:17], z[:17]
    sa_uv, sb_uv, sa_z, sb_z = uv[17:17 + S], uv[17 + S:17 + 2 * S], z[17:17 + S], z[17 + S:17 + 2 * S]
    o = 17 + 2 * S
    rings_uv = uv[o:o + sk.rings.size // 3].reshape(sk.rings.shape[0], -1, 2)
    o += sk.rings.size // 3
    ring_c_uv, ring_z = uv[o:o + 5], z[o:o + 5]
    head_uv, head_z = uv[o + 5], z[o + 5]
    head_r_px = fm * sk.head_r / max(head_z, 1e-3)
    ra_px = fm * sk.seg_ra / np.maximum(sa_z, 1e-3)
    rb_px = fm * sk.seg_rb / np.maximum(sb_z, 1e-3)

    # light direction projected on the image plane (for the limb highlight offset)
    l2 = np.array([light[0], light[1]])
    l2 = l2 / max(np.linalg.norm(l2), 1e-6)

    skin = app.skin
    tint = np.ones(S)
    if app.lr_tint > 0:
        for i, name in enumerate(SEGMENTS):
            if name.startswith("l_"):
                tint[i] = 1.0 + app.lr_tint
            elif name.startswith("r_"):
                tint[i] = 1.0 - app.lr_tint

    # ---- draw items: (depth, kind, data)
    items = []
    H_body = shape.height
    for i, name in enumerate(SEGMENTS):
        depth = 0.5 * (sa_z[i] + sb_z[i])
        if "arm" in name or "hand" in name:
            depth -= 0.03 * H_body            # on ties with the torso, arms are drawn in front
        if name == "neck":
            depth += 0.02 * H_body
        items.append((depth, "seg", i))
    items.append((float(ring_z[[0, 1, 2]].mean()), "pelvis", None))
    items.append((float(ring_z[[2, 3, 4]].mean()) + 0.005 * H_body, "chest", None))
    items.append((float(head_z) - 0.01 * H_body, "head", None))
    if app.hair_style == "long":
        items.append((float(head_z) + 0.5 * sk.head_r * float(R[2] @ -sk.head_rot[:, 2]), "long_hair", None))
    items.sort(key=lambda t: -t[0])

    def seg_colour(i: int):
        """(colour, alt colour, pattern, clothed fraction from the proximal end, colour beyond it)."""
        name = SEGMENTS[i]
        if name == "neck":
            return skin, None, "plain", 1.0, skin
        if name.endswith("hand"):
            return skin, None, "plain", 1.0, skin
        if name.endswith("foot"):
            return app.shoes, None, "plain", 1.0, app.shoes
        if name.endswith("upper_arm"):
            frac = (0.0, 0.5, 1.0)[app.sleeve]
            return app.top, app.top_alt, app.top_pattern, frac, skin
        if name.endswith("forearm"):
            frac = 1.0 if app.sleeve == 2 else 0.0
            return app.top, app.top_alt, app.top_pattern, frac, skin
        if name.endswith("thigh"):
            return app.bottom, app.bottom_alt, app.bottom_pattern, (0.65 if app.legs == 1 else 1.0), skin
        if name.endswith("shin"):
            return app.bottom, app.bottom_alt, app.bottom_pattern, (0.0 if app.legs == 1 else 1.0), skin
        raise AssertionError(name)

    def capsule(a, b, r0, r1, col, pid):
        """One shaded capsule (outline darker, highlight towards the light)."""
        k = _batched_capsules(np.array([a]), np.array([b]), np.array([r0]), np.array([r1]), l2)
        cv2.fillConvexPoly(ids, k[0][0], pid, cv2.LINE_8, SHIFT)
        cv2.fillConvexPoly(img, k[0][0], cv_colour(col * 0.78), cv2.LINE_AA, SHIFT)
        cv2.fillConvexPoly(img, k[1][0], cv_colour(col * 1.06), cv2.LINE_AA, SHIFT)

    # limb pieces, batched: a segment is one capsule, or two (the clothed part and the skin beyond it)
    pieces, seg_pieces = [], [[] for _ in range(S)]
    for i in range(S):
        a, b, r0, r1 = sa_uv[i], sb_uv[i], ra_px[i], rb_px[i]
        col, alt, pattern, frac, rest = seg_colour(i)
        rest = rest if rest is skin else rest * tint[i]
        if frac <= 0.0:
            pieces.append((a, b, r0, r1, rest, None, "plain", i))
        elif frac >= 1.0:
            pieces.append((a, b, r0, r1, col * tint[i], None if alt is None else alt * tint[i], pattern, i))
        else:
            m, rm = a + (b - a) * frac, r0 + (r1 - r0) * frac
            pieces.append((m, b, rm * 0.95, r1, rest, None, "plain", i))
            pieces.append((a, m, r0, rm, col * tint[i], alt * tint[i], pattern, i))
        seg_pieces[i] = list(range(len(pieces) - (2 if 0.0 < frac < 1.0 else 1), len(pieces)))
    outer_fix, inner_fix = _batched_capsules(np.array([p[0] for p in pieces]), np.array([p[1] for p in pieces]),
                                             np.array([p[2] for p in pieces]), np.array([p[3] for p in pieces]), l2)

    def stripes(a, b, r0, r1, col):
        d = b - a
        L = float(np.hypot(d[0], d[1]))
        if L < 4:
            return
        nrm = np.array([-d[1], d[0]]) / L
        period = max(3.0, (r0 + r1) * 0.9)
        k = int(L / period)
        thick = max(1, int(round(period * 0.35)))
        for j in range(1, k + 1):
            t = (j - 0.5) / max(k, 1)
            c = a + d * t
            r = (r0 + (r1 - r0) * t) * 0.85 - 0.5 * thick
            if r <= 0.5:
                continue
            cv2.line(img, tuple(to_fixed(c - nrm * r)), tuple(to_fixed(c + nrm * r)), cv_colour(col), thick, cv2.LINE_AA, SHIFT)

    def spots(a, b, r0, r1, col, key):
        d = b - a
        L = float(np.hypot(d[0], d[1]))
        rm = 0.5 * (r0 + r1)
        if L < 3 or rm < 2:
            return
        nrm = np.array([-d[1], d[0]]) / L
        srng = np.random.default_rng([app.tex_seed, key])
        k = max(1, int(L / max(rm, 2.0) * 1.2))
        t = srng.random(k)
        off = srng.uniform(-0.55, 0.55, k)
        for tj, oj in zip(t, off):
            c = a + d * tj + nrm * oj * (r0 + (r1 - r0) * tj)
            cv2.circle(img, tuple(to_fixed(c)), int(0.3 * rm * SCALE), cv_colour(col), -1, cv2.LINE_AA, SHIFT)

    def band(ring_a, ring_b, col, pid, ca_uv, cb_uv):
        hull = cv2.convexHull(np.concatenate([ring_a, ring_b]).astype(np.float32))[:, 0]
        cv2.fillConvexPoly(ids, to_fixed(hull), pid, cv2.LINE_8, SHIFT)
        cv2.fillConvexPoly(img, to_fixed(hull), cv_colour(col * 0.8), cv2.LINE_AA, SHIFT)
        ia = ca_uv + (ring_a - ca_uv) * 0.62 - l2 * 0.12 * np.ptp(ring_a[:, 0])
        ib = cb_uv + (ring_b - cb_uv) * 0.62 - l2 * 0.12 * np.ptp(ring_b[:, 0])
        inner = cv2.convexHull(np.concatenate([ia, ib]).astype(np.float32))[:, 0]
        cv2.fillConvexPoly(img, to_fixed(inner), cv_colour(col * 1.04), cv2.LINE_AA, SHIFT)

    def torso(lo: int, hi: int, col, alt, pattern, n_bands, pid):
        # interpolate n_bands + 1 rings between ring lo and ring hi (through the rings in between)
        idx = np.linspace(lo, hi, n_bands + 1)
        ring_pts, ring_cs = [], []
        for t in idx:
            i0 = min(int(math.floor(t)), hi - 1)
            f = t - i0
            ring_pts.append(rings_uv[i0] * (1 - f) + rings_uv[i0 + 1] * f)
            ring_cs.append(ring_c_uv[i0] * (1 - f) + ring_c_uv[i0 + 1] * f)
        for k in range(n_bands):
            c = alt if (pattern == "stripes" and k % 2 == 1) else col
            band(ring_pts[k], ring_pts[k + 1], c, pid, ring_cs[k], ring_cs[k + 1])
        if pattern == "spots":
            # spots on the front / back half facing the camera: random points between the rings' centres and rims
            srng = np.random.default_rng([app.tex_seed, 50 + lo])
            rad = 0.035 * float(np.ptp(rings_uv[hi][:, 0]) + np.ptp(rings_uv[lo][:, 0])) + 0.5
            for _ in range(3 * n_bands + 4):
                t, q, w = srng.random(), int(srng.integers(RING_N)), srng.uniform(0, 0.8)
                k = min(int(t * n_bands), n_bands - 1)
                c = ring_cs[k] + (ring_pts[k][q] - ring_cs[k]) * w
                cv2.circle(img, tuple(to_fixed(c)), int(rad * SCALE), cv_colour(alt), -1, cv2.LINE_AA, SHIFT)

    for _, kind, i in items:
        if kind == "seg":
            pid = id_base + int(SEG_PART[i])
            for k in seg_pieces[i]:
                a, b, r0, r1, col, alt, pattern, _ = pieces[k]
                cv2.fillConvexPoly(ids, outer_fix[k], pid, cv2.LINE_8, SHIFT)
                cv2.fillConvexPoly(img, outer_fix[k], cv_colour(col * 0.78), cv2.LINE_AA, SHIFT)
                cv2.fillConvexPoly(img, inner_fix[k], cv_colour(col * 1.06), cv2.LINE_AA, SHIFT)
                if pattern == "stripes":
                    stripes(a, b, r0, r1, alt)
                elif pattern == "spots":
                    spots(a, b, r0, r1, alt, i)
        elif kind == "pelvis":
            torso(0, 2, app.bottom, app.bottom_alt, "spots" if app.bottom_pattern == "spots" else "plain", 2,
                  id_base + PART["pelvis"])
        elif kind == "chest":
            n = app.top_stripes if app.top_pattern == "stripes" else 2
            torso(2, 4, app.top, app.top_alt, app.top_pattern, n, id_base + PART["chest"])
        elif kind == "long_hair":
            up, fwd = sk.head_rot[:, 1], sk.head_rot[:, 2]
            tip3 = sk.head_centre - up * 1.5 * sk.head_r - fwd * 0.45 * sk.head_r
            top3 = sk.head_centre - fwd * 0.25 * sk.head_r
            huv, hz = view.project(np.stack([top3, tip3]))
            capsule(huv[0], huv[1], fm * 0.95 * sk.head_r / hz[0], fm * 0.75 * sk.head_r / hz[1], app.hair,
                    id_base + PART["head"])
        elif kind == "head":
            _draw_head(img, ids, sk, view, app, R, cam_pos, head_uv, head_r_px, id_base + PART["head"], light)

    # fabric noise over the person's pixels
    ext = _extent(np.concatenate([sa_uv, sb_uv, rings_uv.reshape(-1, 2), head_uv[None]]),
                  max(float(ra_px.max()), head_r_px * 1.6) + 2, W, H)
    x0, y0, x1, y1 = ext
    if app.texture_amp > 0 and x1 > x0 and y1 > y0:
        roi_ids = ids[y0:y1, x0:x1]
        mask = (roi_ids >= id_base) & (roi_ids < id_base + NUM_PARTS)
        if mask.any():
            smooth, _ = noise_banks()
            nz = noise_crop(smooth, np.random.default_rng([app.tex_seed, 99]), y1 - y0, x1 - x0)
            roi = img[y0:y1, x0:x1]
            gain = 1.0 + app.texture_amp * nz
            roi[mask] = np.clip(roi[mask].astype(np.float32) * gain[mask][:, None], 0, 255).astype(np.uint8)

    # face-point normals vs direction to the camera (body frame)
    fp = sk.keypoints[:5]
    nrm = fp - sk.head_centre
    nrm /= np.linalg.norm(nrm, axis=1, keepdims=True)
    to_cam = cam_pos - fp
    to_cam /= np.linalg.norm(to_cam, axis=1, keepdims=True)
    face_dot = (nrm * to_cam).sum(1)
    tol = np.zeros(17)
    tol[[5, 6]] = 0.85 * shape.shoulder_half
    tol[[11, 12]] = 0.85 * shape.hip_half
    return PersonRender(id_base=id_base, kp_uv=kp_uv, kp_z=kp_z, face_dot=face_dot, ring_z=ring_z, torso_tol=tol,
                        head_uv=head_uv, head_r_px=float(head_r_px), extent=ext)


def _extent(uv: np.ndarray, pad: float, W: int, H: int) -> tuple[int, int, int, int]:
    x0 = int(max(0, math.floor(uv[:, 0].min() - pad)))
    y0 = int(max(0, math.floor(uv[:, 1].min() - pad)))
    x1 = int(min(W, math.ceil(uv[:, 0].max() + pad) + 1))
    y1 = int(min(H, math.ceil(uv[:, 1].max() + pad) + 1))
    return x0, y0, x1, y1


def _draw_head(img, ids, sk: Skeleton, view: View, app: Appearance, R, cam_pos, c_uv, r_px, pid, light):
    """Head: a shaded sphere (hair / skin from the head-frame normal), then eyes, nose, mouth, ears."""
    H, W = ids.shape
    r = max(float(r_px), 1.0)
    cu, cv_ = float(c_uv[0]), float(c_uv[1])
    x0, x1 = max(0, int(math.floor(cu - r - 1))), min(W, int(math.ceil(cu + r + 2)))
    y0, y1 = max(0, int(math.floor(cv_ - r - 1))), min(H, int(math.ceil(cv_ + r + 2)))
    M = R @ sk.head_rot                                           # head frame -> camera
    if x1 > x0 and y1 > y0:
        dx = ((np.arange(x0, x1) - cu) / r)[None, :]
        dy = ((np.arange(y0, y1) - cv_) / r)[:, None]
        rr = dx * dx + dy * dy                                    # (h, w)
        nz = -np.sqrt(np.clip(1.0 - rr, 0.0, 1.0))
        n_cam = np.stack(np.broadcast_arrays(dx, dy, nz), -1) / np.maximum(np.sqrt(rr + nz * nz), 1e-6)[..., None]
        n_head = n_cam @ M                                        # (h, w, 3)
        hy, hz = n_head[..., 1], n_head[..., 2]
        style = app.hair_style
        if style == "bald":
            hair = (hz < -0.55) & (np.abs(hy) < 0.3)
        elif style == "long":
            hair = (hy > app.hairline - 0.05) | ((hz < -0.1) & (hy > -0.95))
        else:
            hair = (hy > app.hairline) | ((hz < -0.3) & (hy > -0.45))
        col = np.where(hair[..., None], app.hair.astype(np.float32), app.skin.astype(np.float32))
        if style == "hat":
            col = np.where((hy > 0.45)[..., None], app.hat.astype(np.float32), col)
        shade = 0.62 + 0.45 * np.clip(-(n_cam @ light), 0.0, 1.0)
        alpha = np.clip(r - np.sqrt(rr) * r + 0.5, 0.0, 1.0)[..., None]
        roi = img[y0:y1, x0:x1].astype(np.float32)
        img[y0:y1, x0:x1] = np.clip(roi * (1 - alpha) + col * shade[..., None] * alpha, 0, 255).astype(np.uint8)
    cv2.circle(ids, (int(round(cu * SCALE)), int(round(cv_ * SCALE))), int(round(r * SCALE)), pid, -1, cv2.LINE_8,
               SHIFT)

    # facial features, from head-frame points (radius 1)
    to_cam_h = sk.head_rot.T @ (cam_pos - sk.head_centre)
    to_cam_h /= np.linalg.norm(to_cam_h)

    def facing(p):
        p = np.asarray(p, dtype=np.float64)
        return float(p @ to_cam_h / np.linalg.norm(p))

    def proj(hpts):
        return view.project(sk.head_centre + (np.asarray(hpts, dtype=np.float64) * sk.head_r) @ sk.head_rot.T)[0]

    skin = app.skin
    # ears: a small disc in the head's y-z plane at each side
    t = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    for sx in (1.0, -1.0):
        if facing([sx, -0.02, -0.12]) > _FACE_THRESH[3] and app.hair_style != "long":
            # a disc sticking out backwards-outwards from the side of the head
            ear = np.stack([sx * (1.0 + 0.12 * np.sin(t)), -0.02 + 0.32 * np.cos(t), -0.12 - 0.2 * np.sin(t)], 1)
            e_uv = cv2.convexHull(proj(ear).astype(np.float32))[:, 0]
            cv2.fillConvexPoly(ids, to_fixed(e_uv), pid, cv2.LINE_8, SHIFT)
            cv2.fillConvexPoly(img, to_fixed(e_uv), cv_colour(skin * 0.82), cv2.LINE_AA, SHIFT)
    # eyes
    eye_r = max(0.6, 0.13 * r)
    for sx in (1.0, -1.0):
        p = [sx * 0.36, 0.08, 0.93]
        f = facing(p)
        if f > _FACE_THRESH[1]:
            e = proj([p])[0]
            rr_ = eye_r * (0.5 + 0.5 * f)
            if r >= 7:
                cv2.ellipse(img, (tuple(to_fixed(e))), (int(rr_ * 1.5 * SCALE), int(rr_ * SCALE)), 0, 0, 360,
                            (235, 235, 230), -1, cv2.LINE_AA, SHIFT)
            cv2.circle(img, tuple(to_fixed(e)), int(round(rr_ * 0.8 * SCALE)), (25, 20, 20), -1, cv2.LINE_AA, SHIFT)
            if r >= 6:   # eyebrow
                br = proj([[sx * 0.22, 0.3, 0.93], [sx * 0.5, 0.28, 0.82]])
                cv2.line(img, tuple(to_fixed(br[0])), tuple(to_fixed(br[1])), cv_colour(app.hair * 0.8), max(1, int(0.08 * r)),
                         cv2.LINE_AA, SHIFT)
    # nose
    if facing([0.0, -0.22, 1.12]) > _FACE_THRESH[0]:
        nose = proj([[0.0, -0.22, 1.12], [0.13, -0.3, 0.93], [-0.13, -0.3, 0.93], [0.0, 0.08, 0.99]])
        hull = cv2.convexHull(nose.astype(np.float32))[:, 0]
        cv2.fillConvexPoly(ids, to_fixed(hull), pid, cv2.LINE_8, SHIFT)
        cv2.fillConvexPoly(img, to_fixed(hull), cv_colour(skin * 0.72), cv2.LINE_AA, SHIFT)
    # mouth
    if facing([0.0, -0.5, 0.86]) > 0.15:
        m = proj([[0.2, -0.5, 0.84], [0.0, -0.53, 0.85], [-0.2, -0.5, 0.84]])
        cv2.polylines(img, [to_fixed(m)], False, (140, 50, 50), max(1, int(0.07 * r)), cv2.LINE_AA, SHIFT)


# ---------------------------------------------------------------------------------------- visibility
def keypoint_visibility(pr: PersonRender, ids: np.ndarray, label_back_of_head: bool) -> np.ndarray:
    """(17, 3) x, y, v of a drawn person, decided from the final ID buffer (everything drawn).

    v=0 (x=y=0): outside the image, or a face point turned away (v=1 if `label_back_of_head`).
    v=2: the pixel shows one of the keypoint's owner parts (a shoulder / hip seen through its torso part
    only if it lies on the camera side of the torso), or nothing at all. v=1 otherwise (own parts,
    other people or occluders in front).
    """
    H, W = ids.shape
    out = np.zeros((17, 3), dtype=np.float64)
    ix = np.rint(pr.kp_uv[:, 0]).astype(np.int64)
    iy = np.rint(pr.kp_uv[:, 1]).astype(np.int64)
    inside = (ix >= 0) & (ix < W) & (iy >= 0) & (iy < H) & (pr.kp_z > 0)
    base = pr.id_base
    for j in range(17):
        if not inside[j]:
            continue
        if j < 5 and pr.face_dot[j] < _FACE_THRESH[j]:
            if label_back_of_head:
                out[j] = (pr.kp_uv[j, 0], pr.kp_uv[j, 1], 1)
            continue
        pid = int(ids[iy[j], ix[j]])
        if pid == 0:
            v = 2
        elif base <= pid < base + NUM_PARTS and (pid - base) in KEYPOINT_OWNERS[j]:
            v = 2
            if j in _TORSO_JOINTS and (pid - base) in (PART["chest"], PART["pelvis"]):
                if pr.kp_z[j] - pr.ring_z[_TORSO_JOINTS[j]] > pr.torso_tol[j]:
                    v = 1
        else:
            v = 1
        out[j] = (pr.kp_uv[j, 0], pr.kp_uv[j, 1], v)
    return out
