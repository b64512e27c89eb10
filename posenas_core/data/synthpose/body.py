"""A 3D articulated human body: proportions, pose vector, joint limits, forward kinematics.

Body frame (units: metres): x = the person's LEFT, y = UP, z = FORWARD (the way the person faces);
right-handed. The pelvis (midpoint of the hip joints) is at the origin before grounding; after
`forward_kinematics` the lowest body point touches y = 0 (+ `lift`, e.g. for a jump).

Pose vector (`POSE_NAMES`, degrees). Limbs use a swing parameterisation without gimbal lock:
`el` (elevation) swings the limb away from hanging straight down, in the vertical plane at azimuth
`az` (0 = forward, 90 = sideways outwards, negative = across the body; a negative `el` swings
backwards), then `twist` turns it about its own axis; the elbow bends the forearm forwards and the
knee bends the shin backwards. Spine angles are split half/half between the lumbar and thoracic
segments. Root pitch/roll tilt the whole body (lying: +-90, upside-down: 180).
"""

from __future__ import annotations

import dataclasses

import numpy as np

__all__ = [
    "P", "NUM_POSE", "POSE_LO", "POSE_HI", "clip_pose", "PART", "NUM_PARTS", "KEYPOINT_OWNERS", "SEGMENTS",
    "SEG_PART", "RING_N", "BodyShape", "sample_body_shape", "Skeleton", "forward_kinematics",
]

POSE_NAMES: tuple[str, ...] = (
    "root_pitch", "root_roll",                             # whole-body tilt: + pitch falls forwards, + roll leans left
    "spine_pitch", "spine_roll", "spine_yaw",              # + bends forwards / to the left / turns the chest left
    "neck_pitch", "neck_roll", "neck_yaw",                 # + nods down / tilts left / turns the face left
    "l_sh_el", "l_sh_az", "l_sh_twist", "l_elbow",         # left arm
    "r_sh_el", "r_sh_az", "r_sh_twist", "r_elbow",         # right arm (az mirrored: 90 = outwards to the right)
    "l_hip_el", "l_hip_az", "l_hip_twist", "l_knee",       # left leg
    "r_hip_el", "r_hip_az", "r_hip_twist", "r_knee",       # right leg
)
P: dict[str, int] = {n: i for i, n in enumerate(POSE_NAMES)}
NUM_POSE = len(POSE_NAMES)

_LIMITS = {
    "root_pitch": (-180, 180), "root_roll": (-180, 180),
    "spine_pitch": (-30, 90), "spine_roll": (-35, 35), "spine_yaw": (-45, 45),
    "neck_pitch": (-45, 60), "neck_roll": (-35, 35), "neck_yaw": (-75, 75),
    "sh_el": (-60, 180), "sh_az": (-45, 120), "sh_twist": (-90, 90), "elbow": (0, 150),
    "hip_el": (-30, 125), "hip_az": (-35, 90), "hip_twist": (-45, 45), "knee": (0, 150),
}
POSE_LO = np.array([_LIMITS[n if n in _LIMITS else n[2:]][0] for n in POSE_NAMES], dtype=np.float64)
POSE_HI = np.array([_LIMITS[n if n in _LIMITS else n[2:]][1] for n in POSE_NAMES], dtype=np.float64)


def clip_pose(pose: np.ndarray) -> np.ndarray:
    """Clip to the joint limits; a limb swung backwards (el < 0) may not also swing far sideways."""
    p = np.clip(np.asarray(pose, dtype=np.float64), POSE_LO, POSE_HI)
    for side in ("l", "r"):
        for limb, (lo, hi) in (("sh", (-20.0, 30.0)), ("hip", (-15.0, 30.0))):
            el, az = P[f"{side}_{limb}_el"], P[f"{side}_{limb}_az"]
            if p[el] < 0:
                p[az] = min(max(p[az], lo), hi)
    return p


# Body parts (rendering units). A keypoint is visible if the pixel it projects to shows one of its owner parts.
PART_NAMES: tuple[str, ...] = (
    "pelvis", "chest", "neck", "head",
    "l_upper_arm", "l_forearm", "l_hand", "r_upper_arm", "r_forearm", "r_hand",
    "l_thigh", "l_shin", "l_foot", "r_thigh", "r_shin", "r_foot",
)
PART: dict[str, int] = {n: i for i, n in enumerate(PART_NAMES)}
NUM_PARTS = len(PART_NAMES)

# COCO keypoint index -> parts that "own" it (see render.keypoint_visibility).
KEYPOINT_OWNERS: tuple[tuple[int, ...], ...] = (
    (PART["head"],), (PART["head"],), (PART["head"],), (PART["head"],), (PART["head"],),
    (PART["chest"], PART["l_upper_arm"]), (PART["chest"], PART["r_upper_arm"]),
    (PART["l_upper_arm"], PART["l_forearm"]), (PART["r_upper_arm"], PART["r_forearm"]),
    (PART["l_forearm"], PART["l_hand"]), (PART["r_forearm"], PART["r_hand"]),
    (PART["pelvis"], PART["l_thigh"]), (PART["pelvis"], PART["r_thigh"]),
    (PART["l_thigh"], PART["l_shin"]), (PART["r_thigh"], PART["r_shin"]),
    (PART["l_shin"], PART["l_foot"]), (PART["r_shin"], PART["r_foot"]),
)

# Limb capsules, in the order of Skeleton.seg_*: (part, proximal point name, distal point name).
SEGMENTS: tuple[str, ...] = (
    "neck", "l_upper_arm", "l_forearm", "l_hand", "r_upper_arm", "r_forearm", "r_hand",
    "l_thigh", "l_shin", "l_foot", "r_thigh", "r_shin", "r_foot",
)
SEG_PART = np.array([PART[s] for s in SEGMENTS], dtype=np.int64)

# Torso cross-sections (bottom -> top): crotch, hip joints, waist, chest, shoulder top. Bands between
# consecutive rings form the pelvis (rings 0-2) and the chest (rings 2-4).
RING_NAMES = ("crotch", "hip", "waist", "chest", "top")
RING_N = 10                                   # points per ring (an ellipse)
_RING_T = np.linspace(0.0, 2 * np.pi, RING_N, endpoint=False)
RING_COS, RING_SIN = np.cos(_RING_T), np.sin(_RING_T)

# Face points on the head sphere, in head units (x left, y up, z forward; radius 1).
FACE_POINTS: dict[str, tuple[float, float, float]] = {
    "nose": (0.0, -0.22, 1.12),
    "left_eye": (0.36, 0.08, 0.93), "right_eye": (-0.36, 0.08, 0.93),
    "left_ear": (0.98, -0.02, -0.12), "right_ear": (-0.98, -0.02, -0.12),
}


@dataclasses.dataclass(frozen=True)
class BodyShape:
    """Proportions in metres. Radii are (proximal, distal) for tapered limbs."""

    height: float
    thigh: float
    shin: float
    ankle_h: float
    foot: float
    upper_arm: float
    forearm: float
    hand: float
    lumbar: float          # pelvis -> waist
    thoracic: float        # waist -> shoulder line
    neck: float            # shoulder line -> head centre
    head_r: float
    shoulder_half: float   # half the distance between the shoulder joints
    hip_half: float        # half the distance between the hip joints
    r_upper_arm: tuple[float, float]
    r_forearm: tuple[float, float]
    r_hand: tuple[float, float]
    r_thigh: tuple[float, float]
    r_shin: tuple[float, float]
    r_foot: tuple[float, float]
    r_neck: float
    rings: tuple[tuple[float, float], ...]   # (half width, half depth) per RING_NAMES


def sample_body_shape(rng: np.random.Generator) -> BodyShape:
    """Human proportions (fractions of the standing height) with build / sex / age variation."""
    child = rng.random() < 0.1
    H = float(rng.uniform(1.1, 1.45) if child else rng.uniform(1.5, 1.95))
    j = lambda s=0.05: float(rng.uniform(1 - s, 1 + s))       # noqa: E731  proportion jitter
    build = float(rng.uniform(0.8, 1.4))                       # thin .. heavy: widths and limb radii
    masc = float(rng.random())                                 # 0 = broad hips, 1 = broad shoulders
    head_r = H * (0.078 if child else 0.064) * j(0.06)
    leg = (0.94 if child else 1.0) * j(0.04)
    sh = H * (0.105 + 0.02 * masc) * j(0.05)
    hip = H * (0.056 + 0.006 * (1 - masc)) * j(0.06)
    b = build
    return BodyShape(
        height=H,
        thigh=H * 0.245 * leg * j(0.03), shin=H * 0.245 * leg * j(0.03), ankle_h=H * 0.045, foot=H * 0.13 * j(),
        upper_arm=H * 0.172 * j(0.04), forearm=H * 0.148 * j(0.04), hand=H * 0.095 * j(),
        lumbar=H * 0.10 * j(0.06), thoracic=H * 0.19 * j(0.04), neck=H * 0.085 * j(0.08), head_r=head_r,
        shoulder_half=sh, hip_half=hip,
        r_upper_arm=(H * 0.030 * b, H * 0.022 * b), r_forearm=(H * 0.022 * b, H * 0.016 * b**0.5),
        r_hand=(H * 0.017, H * 0.014), r_thigh=(H * 0.050 * b, H * 0.032 * b),
        r_shin=(H * 0.033 * b, H * 0.021 * b**0.5),
        r_foot=(H * 0.021, H * 0.019), r_neck=H * 0.028 * b**0.7,
        rings=(
            (H * (0.085 + 0.012 * (1 - masc)) * b, H * 0.060 * b),   # crotch
            (H * (0.093 + 0.014 * (1 - masc)) * b, H * 0.066 * b),   # hip joints
            (H * 0.080 * b, H * 0.058 * b**1.3),                      # waist
            (sh * 0.92 * b**0.6, H * 0.068 * b**1.1),                 # chest
            (sh * 0.80 * b**0.4, H * 0.045 * b),                      # shoulder top
        ),
    )


# ------------------------------------------------------------------------------------ rotations
def rot_x(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rot_y(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rot_z(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _swing(el: float, az: float) -> np.ndarray:
    """Swing the -y axis by `el` in the vertical plane at azimuth `az` (0 = towards +z, 90 = towards +x)."""
    return rot_y(az) @ rot_x(-el) @ rot_y(-az)


def _spine_rot(pitch: float, roll: float, yaw: float) -> np.ndarray:
    return rot_y(yaw) @ rot_z(-roll) @ rot_x(pitch)


@dataclasses.dataclass
class Skeleton:
    """The posed body in the body frame (after grounding). Shapes noted per field."""

    keypoints: np.ndarray      # (17, 3) COCO keypoints
    seg_a: np.ndarray          # (S, 3) capsule start (proximal) points, S = len(SEGMENTS)
    seg_b: np.ndarray          # (S, 3) capsule end points
    seg_ra: np.ndarray         # (S,) radii at seg_a
    seg_rb: np.ndarray         # (S,) radii at seg_b
    rings: np.ndarray          # (5, RING_N, 3) torso cross-sections, bottom -> top
    ring_centres: np.ndarray   # (5, 3)
    head_centre: np.ndarray    # (3,)
    head_r: float
    head_rot: np.ndarray       # (3, 3) head frame -> body frame

    def all_points(self) -> np.ndarray:
        """(N, 3) every point used for extents (keypoints, capsule ends, rings, head top/bottom)."""
        up = self.head_rot[:, 1] * self.head_r
        return np.concatenate([self.keypoints, self.seg_a, self.seg_b, self.rings.reshape(-1, 3),
                               (self.head_centre + up)[None], (self.head_centre - up)[None]])


def forward_kinematics(shape: BodyShape, pose: np.ndarray, lift: float = 0.0) -> Skeleton:
    """Pose (NUM_POSE,) degrees -> Skeleton in the body frame, lowest point at y = lift."""
    a = np.deg2rad(np.asarray(pose, dtype=np.float64))
    g = lambda n: a[P[n]]                                                     # noqa: E731
    s = shape
    ex = np.array([1.0, 0.0, 0.0])
    down = np.array([0.0, -1.0, 0.0])
    r_root = rot_z(-g("root_roll")) @ rot_x(g("root_pitch"))
    r_lumbar = r_root @ _spine_rot(0.5 * g("spine_pitch"), 0.5 * g("spine_roll"), 0.5 * g("spine_yaw"))
    r_thorax = r_root @ _spine_rot(g("spine_pitch"), g("spine_roll"), g("spine_yaw"))
    pelvis = np.zeros(3)
    waist = pelvis + r_lumbar[:, 1] * s.lumbar
    sh_line = waist + r_thorax[:, 1] * s.thoracic
    neck_base = sh_line + r_thorax[:, 1] * (0.02 * s.height)
    r_head = r_thorax @ rot_y(g("neck_yaw")) @ rot_x(g("neck_pitch")) @ rot_z(-g("neck_roll"))
    head_c = sh_line + r_head @ np.array([0.0, s.neck, 0.012 * s.height])

    pts = {}
    for side, sgn in (("l", 1.0), ("r", -1.0)):
        # arm
        shoulder = sh_line + r_thorax @ np.array([sgn * s.shoulder_half, -0.012 * s.height, 0.0])
        r_ua = r_thorax @ _swing(g(f"{side}_sh_el"), sgn * g(f"{side}_sh_az")) @ rot_y(sgn * g(f"{side}_sh_twist"))
        elbow = shoulder + r_ua @ down * s.upper_arm
        r_fa = r_ua @ rot_x(-g(f"{side}_elbow"))
        wrist = elbow + r_fa @ down * s.forearm
        hand_end = wrist + r_fa @ down * s.hand
        # leg
        hip = pelvis + r_root @ (sgn * s.hip_half * ex)
        r_th = r_root @ _swing(g(f"{side}_hip_el"), sgn * g(f"{side}_hip_az")) @ rot_y(sgn * g(f"{side}_hip_twist"))
        knee = hip + r_th @ down * s.thigh
        r_sn = r_th @ rot_x(g(f"{side}_knee"))
        ankle = knee + r_sn @ down * s.shin
        heel = ankle + r_sn @ np.array([0.0, -0.6 * s.ankle_h, -0.25 * s.foot])
        toe = ankle + r_sn @ np.array([0.0, -0.8 * s.ankle_h, 0.85 * s.foot])
        pts[side] = dict(shoulder=shoulder, elbow=elbow, wrist=wrist, hand_end=hand_end,
                         hip=hip, knee=knee, ankle=ankle, heel=heel, toe=toe)

    face = {k: head_c + r_head @ (np.array(v) * s.head_r) for k, v in FACE_POINTS.items()}
    L, R = pts["l"], pts["r"]
    kp = np.stack([face["nose"], face["left_eye"], face["right_eye"], face["left_ear"], face["right_ear"],
                   L["shoulder"], R["shoulder"], L["elbow"], R["elbow"], L["wrist"], R["wrist"],
                   L["hip"], R["hip"], L["knee"], R["knee"], L["ankle"], R["ankle"]])           # (17, 3)

    seg = []
    for side in ("l", "r"):
        q = pts[side]
        seg += [(q["shoulder"], q["elbow"], s.r_upper_arm), (q["elbow"], q["wrist"], s.r_forearm),
                (q["wrist"], q["hand_end"], s.r_hand)]
    seg_arms = seg
    seg = []
    for side in ("l", "r"):
        q = pts[side]
        seg += [(q["hip"], q["knee"], s.r_thigh), (q["knee"], q["ankle"], s.r_shin), (q["heel"], q["toe"], s.r_foot)]
    segs = [(neck_base - r_thorax[:, 1] * 0.03 * s.height, head_c, (s.r_neck, s.r_neck))] + seg_arms + seg
    seg_a = np.stack([x[0] for x in segs])
    seg_b = np.stack([x[1] for x in segs])
    seg_ra = np.array([x[2][0] for x in segs])
    seg_rb = np.array([x[2][1] for x in segs])

    # torso rings: (frame rotation, centre) per ring
    frames = [(r_root, pelvis - r_root[:, 1] * 0.035 * s.height), (r_root, pelvis), (r_lumbar, waist),
              (r_thorax, waist + r_thorax[:, 1] * 0.6 * s.thoracic),
              (r_thorax, sh_line + r_thorax[:, 1] * 0.012 * s.height)]
    rings, centres = [], []
    for (rot, c), (hw, hd) in zip(frames, s.rings):
        local = np.stack([hw * RING_COS, np.zeros(RING_N), hd * RING_SIN], axis=1)    # (RING_N, 3)
        rings.append(c + local @ rot.T)
        centres.append(c)
    rings = np.stack(rings)                                                        # (5, RING_N, 3)
    centres = np.stack(centres)

    sk = Skeleton(keypoints=kp, seg_a=seg_a, seg_b=seg_b, seg_ra=seg_ra, seg_rb=seg_rb, rings=rings,
                  ring_centres=centres, head_centre=head_c, head_r=s.head_r, head_rot=r_head)
    # ground: lowest surface point at y = lift (capsule ends minus their radii, head bottom, rings)
    low = min(float(np.min(seg_a[:, 1] - seg_ra)), float(np.min(seg_b[:, 1] - seg_rb)),
              float(rings[..., 1].min()), float(head_c[1] - s.head_r))
    shift = np.array([0.0, lift - low, 0.0])
    for f in ("keypoints", "seg_a", "seg_b", "rings", "ring_centres", "head_centre"):
        setattr(sk, f, getattr(sk, f) + shift)
    return sk
