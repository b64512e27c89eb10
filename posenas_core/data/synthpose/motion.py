"""Poses: motion cycles (walk, run, wave, ...), unusual poses and a pose prior.

A motion cycle maps a phase in [0, 1) to a pose vector (`body.POSE_NAMES`, degrees) and a lift
(fraction of the standing height the body is off the ground, for jumps). `sample_pose` is the prior
used for still images: a cycle at a random phase + joint noise, an unusual pose, or uniformly random
joint angles. `PersonMotion` gives smooth per-frame poses for videos.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from posenas_core.data.synthpose.body import NUM_POSE, P, clip_pose

__all__ = ["ACTIONS", "ACTION_WEIGHTS", "UNUSUAL", "cycle_pose", "unusual_pose", "sample_pose", "PersonMotion"]

# action -> relative frequency in the prior (walking people dominate real data; others keep variety)
ACTION_WEIGHTS: dict[str, float] = {
    "walk": 0.20, "run": 0.12, "wave": 0.08, "squat": 0.07, "jump": 0.07, "jumping_jacks": 0.06,
    "punch": 0.07, "kick": 0.06, "dance": 0.09, "bend": 0.06, "sit": 0.06, "climb": 0.06,
}
ACTIONS: tuple[str, ...] = tuple(ACTION_WEIGHTS)
# actions that translate the person in videos: metres per cycle, as a fraction of the standing height
TRAVEL_PER_CYCLE: dict[str, float] = {"walk": 0.85, "run": 1.5}
UNUSUAL: tuple[str, ...] = ("lying_back", "lying_front", "lying_side", "handstand", "sit_ground", "kneel",
                            "crawl", "cartwheel")


def _pose(**kw: float) -> np.ndarray:
    p = np.zeros(NUM_POSE)
    for k, v in kw.items():
        p[P[k]] = v
    return p


def _sides(side: str) -> tuple[str, str]:
    """(active, other) side prefixes: side 'l' or 'r'."""
    return (side, "r" if side == "l" else "l")


def cycle_pose(action: str, phase: float, side: str = "l") -> tuple[np.ndarray, float]:
    """Pose (NUM_POSE,) degrees and lift (fraction of height) of `action` at `phase` in [0, 1).

    `side` picks the active limb of one-sided actions (wave, punch lead, kick, climb start).
    """
    t = 2.0 * math.pi * phase
    s, c = math.sin(t), math.cos(t)
    a, o = _sides(side)
    p = np.zeros(NUM_POSE)
    lift = 0.0

    def put(**kw):
        for k, v in kw.items():
            p[P[k.replace("A_", a + "_").replace("O_", o + "_")]] = v

    if action == "walk":
        put(l_hip_el=22 * s, r_hip_el=-22 * s,
            l_knee=5 + 55 * max(0.0, c) ** 1.5, r_knee=5 + 55 * max(0.0, -c) ** 1.5,
            l_sh_el=-18 * s, r_sh_el=18 * s, l_sh_az=8, r_sh_az=8,
            l_elbow=15 + 12 * max(0.0, -s), r_elbow=15 + 12 * max(0.0, s),
            spine_yaw=-6 * s, spine_pitch=3, neck_pitch=5)
    elif action == "run":
        put(l_hip_el=10 + 40 * s, r_hip_el=10 - 40 * s,
            l_knee=20 + 90 * max(0.0, c) ** 1.2, r_knee=20 + 90 * max(0.0, -c) ** 1.2,
            l_sh_el=-35 * s, r_sh_el=35 * s, l_sh_az=10, r_sh_az=10, l_elbow=85 + 10 * s, r_elbow=85 - 10 * s,
            spine_yaw=-10 * s, spine_pitch=12, neck_pitch=-5)
        lift = 0.03 * abs(math.sin(2 * t))
    elif action == "wave":
        put(A_sh_el=105 + 15 * s, A_sh_az=80, A_sh_twist=70, A_elbow=55 + 30 * math.sin(2 * t),
            O_sh_el=8, O_sh_az=10, O_elbow=10, neck_yaw=8, spine_roll=-4, l_hip_az=4, r_hip_az=4)
    elif action == "squat":
        d = 0.5 - 0.5 * c
        put(l_hip_el=100 * d, r_hip_el=100 * d, l_hip_az=15 * d, r_hip_az=15 * d, l_knee=125 * d, r_knee=125 * d,
            spine_pitch=35 * d, l_sh_el=85 * d, r_sh_el=85 * d, l_elbow=10, r_elbow=10, neck_pitch=-25 * d)
    elif action == "jump":
        crouch = max(0.0, c) ** 2 * 0.7                          # crouched around phase 0
        air = max(0.0, -c)                                         # airborne around phase 0.5
        put(l_hip_el=90 * crouch + 30 * air, r_hip_el=90 * crouch + 30 * air, l_knee=110 * crouch + 40 * air,
            r_knee=110 * crouch + 40 * air, spine_pitch=30 * crouch, l_sh_el=-30 * crouch + 160 * air,
            r_sh_el=-30 * crouch + 160 * air, l_sh_az=20 * air, r_sh_az=20 * air, l_elbow=15, r_elbow=15,
            neck_pitch=-15 * crouch)
        lift = 0.22 * air
    elif action == "jumping_jacks":
        d = 0.5 - 0.5 * c
        put(l_sh_el=15 + 150 * d, r_sh_el=15 + 150 * d, l_sh_az=90, r_sh_az=90, l_elbow=10, r_elbow=10,
            l_hip_el=3 + 22 * d, r_hip_el=3 + 22 * d, l_hip_az=90, r_hip_az=90, l_knee=8, r_knee=8)
        lift = 0.03 * math.sin(t) ** 2
    elif action == "punch":
        pa, po = max(0.0, s) ** 2, max(0.0, -s) ** 2
        put(A_sh_el=40 + 45 * pa, A_sh_az=15 - 15 * pa, A_elbow=120 - 110 * pa,
            O_sh_el=40 + 45 * po, O_sh_az=15 - 15 * po, O_elbow=120 - 110 * po,
            spine_yaw=(25 if a == "r" else -25) * (pa - po), A_hip_el=15, O_hip_el=-10, A_knee=20, O_knee=20,
            neck_pitch=8)
    elif action == "kick":
        k = max(0.0, s)
        put(A_hip_el=10 + 75 * k, A_knee=80 - 70 * k, O_knee=10, spine_pitch=-12 * k,
            l_sh_el=45, r_sh_el=45, l_sh_az=60, r_sh_az=60, l_elbow=60, r_elbow=60)
    elif action == "dance":
        put(l_sh_el=90 + 60 * s, l_sh_az=40 + 40 * c, r_sh_el=90 - 60 * s, r_sh_az=40 - 40 * c,
            l_elbow=40 + 30 * c, r_elbow=40 - 30 * c, spine_roll=15 * s, neck_roll=10 * s,
            l_knee=20 + 20 * s, r_knee=20 - 20 * s, l_hip_el=10 + 10 * s, r_hip_el=10 - 10 * s,
            l_hip_az=10, r_hip_az=10)
    elif action == "bend":
        d = 0.5 - 0.5 * c
        put(spine_pitch=85 * d, l_hip_el=20 * d, r_hip_el=20 * d, l_knee=15 * d, r_knee=15 * d,
            l_sh_el=80 * d, r_sh_el=80 * d, l_elbow=10, r_elbow=10, neck_pitch=-20 * d)
    elif action == "sit":
        put(l_hip_el=88, r_hip_el=88, l_knee=85 + 10 * s, r_knee=85 - 10 * s, l_hip_az=8, r_hip_az=8,
            l_sh_el=30, r_sh_el=30, l_elbow=70, r_elbow=70, spine_pitch=-5 + 5 * c, neck_pitch=5)
    elif action == "climb":
        u = 0.5 + 0.5 * s
        put(A_sh_el=100 + 60 * u, O_sh_el=160 - 60 * u, A_elbow=90 - 70 * u, O_elbow=20 + 70 * u,
            l_sh_az=20, r_sh_az=20, O_hip_el=60 * u, A_hip_el=60 * (1 - u), O_knee=10 + 80 * u,
            A_knee=10 + 80 * (1 - u), neck_pitch=-25)
    else:
        raise ValueError(f"unknown action {action!r}; known: {ACTIONS}")
    return p, lift


def unusual_pose(kind: str, rng: np.random.Generator) -> np.ndarray:
    """A pose far from upright standing (lying, upside-down, on the ground, ...)."""
    U = rng.uniform
    sgn = 1.0 if rng.random() < 0.5 else -1.0
    limbs = dict(l_sh_el=U(-20, 150), r_sh_el=U(-20, 150), l_sh_az=U(0, 100), r_sh_az=U(0, 100),
                 l_elbow=U(0, 120), r_elbow=U(0, 120), l_hip_el=U(-10, 60), r_hip_el=U(-10, 60),
                 l_hip_az=U(0, 40), r_hip_az=U(0, 40), l_knee=U(0, 90), r_knee=U(0, 90))
    if kind == "lying_back":
        p = _pose(root_pitch=-90 + U(-10, 15), neck_pitch=U(-30, 20), neck_yaw=U(-60, 60), **limbs)
    elif kind == "lying_front":
        p = _pose(root_pitch=90 + U(-15, 10), neck_pitch=U(-50, 0), neck_yaw=U(-60, 60), **limbs)
    elif kind == "lying_side":
        fetal = U(0, 1)
        limbs.update(l_hip_el=70 * fetal + U(-10, 10), r_hip_el=70 * fetal + U(-10, 20), l_knee=90 * fetal + U(0, 20),
                     r_knee=90 * fetal + U(0, 20))
        p = _pose(root_roll=sgn * U(75, 100), spine_pitch=30 * fetal, neck_pitch=U(-10, 30), **limbs)
    elif kind == "handstand":
        p = _pose(root_pitch=180 + U(-15, 15), l_sh_el=U(160, 180), r_sh_el=U(160, 180), l_sh_az=U(0, 20),
                  r_sh_az=U(0, 20), l_elbow=U(0, 15), r_elbow=U(0, 15), l_hip_el=U(-20, 40), r_hip_el=U(-20, 40),
                  l_hip_az=U(0, 30), r_hip_az=U(0, 30), l_knee=U(0, 50), r_knee=U(0, 50), neck_pitch=U(-40, 0))
    elif kind == "sit_ground":
        p = _pose(root_pitch=U(-20, 5), l_hip_el=U(70, 100), r_hip_el=U(70, 100), l_hip_az=U(0, 40), r_hip_az=U(0, 40),
                  l_knee=U(0, 130), r_knee=U(0, 130), l_sh_el=U(-30, 60), r_sh_el=U(-30, 60), l_sh_az=U(0, 40),
                  r_sh_az=U(0, 40), l_elbow=U(0, 100), r_elbow=U(0, 100), spine_pitch=U(0, 30))
    elif kind == "kneel":
        p = _pose(l_hip_el=U(-5, 25), r_hip_el=U(-5, 80), l_knee=U(85, 110), r_knee=U(85, 110),
                  l_sh_el=U(-10, 120), r_sh_el=U(-10, 120), l_sh_az=U(0, 60), r_sh_az=U(0, 60),
                  l_elbow=U(0, 120), r_elbow=U(0, 120), spine_pitch=U(-10, 30))
    elif kind == "crawl":
        ph = U(-1, 1)
        p = _pose(root_pitch=U(80, 95), l_sh_el=90 + 15 * ph, r_sh_el=90 - 15 * ph, l_sh_az=U(0, 15), r_sh_az=U(0, 15),
                  l_elbow=U(0, 20), r_elbow=U(0, 20), l_hip_el=90 - 15 * ph, r_hip_el=90 + 15 * ph,
                  l_knee=U(80, 100), r_knee=U(80, 100), neck_pitch=U(-60, -30))
    elif kind == "cartwheel":
        p = _pose(root_roll=sgn * U(60, 130), l_sh_el=U(140, 175), r_sh_el=U(140, 175), l_sh_az=U(70, 100),
                  r_sh_az=U(70, 100), l_elbow=U(0, 15), r_elbow=U(0, 15), l_hip_el=U(30, 70), r_hip_el=U(30, 70),
                  l_hip_az=U(70, 90), r_hip_az=U(70, 90), l_knee=U(0, 20), r_knee=U(0, 20))
    else:
        raise ValueError(f"unknown unusual pose {kind!r}; known: {UNUSUAL}")
    return p


def random_pose(rng: np.random.Generator) -> np.ndarray:
    """Joint angles drawn uniformly within comfortable ranges (a near-upright root)."""
    U = rng.uniform
    return _pose(
        root_pitch=rng.normal(0, 8), root_roll=rng.normal(0, 8),
        spine_pitch=U(-20, 60), spine_roll=U(-25, 25), spine_yaw=U(-40, 40),
        neck_pitch=U(-35, 50), neck_roll=U(-25, 25), neck_yaw=U(-70, 70),
        l_sh_el=U(-50, 180), l_sh_az=U(-40, 120), l_sh_twist=U(-70, 70), l_elbow=U(0, 150),
        r_sh_el=U(-50, 180), r_sh_az=U(-40, 120), r_sh_twist=U(-70, 70), r_elbow=U(0, 150),
        l_hip_el=U(-25, 100), l_hip_az=U(-20, 60), l_hip_twist=U(-30, 30), l_knee=U(0, 140),
        r_hip_el=U(-25, 100), r_hip_az=U(-20, 60), r_hip_twist=U(-30, 30), r_knee=U(0, 140),
    )


# per-angle noise scale: root tilt and spine vary less than limbs
_NOISE_SCALE = np.ones(NUM_POSE)
_NOISE_SCALE[[P["root_pitch"], P["root_roll"]]] = 0.3
_NOISE_SCALE[[P["spine_pitch"], P["spine_roll"], P["spine_yaw"]]] = 0.6
_NOISE_SCALE[[P["neck_pitch"], P["neck_roll"], P["neck_yaw"]]] = 1.5


def sample_pose(rng: np.random.Generator, unusual_prob: float, random_prob: float,
                noise_deg: float) -> tuple[np.ndarray, float, str]:
    """The pose prior for still images: (pose (NUM_POSE,) degrees, lift fraction, label)."""
    u = rng.random()
    if u < unusual_prob:
        kind = UNUSUAL[int(rng.integers(len(UNUSUAL)))]
        pose = unusual_pose(kind, rng) + rng.normal(0, 0.5 * noise_deg, NUM_POSE) * _NOISE_SCALE
        return clip_pose(pose), 0.0, kind
    if rng.random() < random_prob:
        return clip_pose(random_pose(rng)), 0.0, "random"
    action = ACTIONS[int(rng.choice(len(ACTIONS), p=np.array(list(ACTION_WEIGHTS.values()))))]
    side = "l" if rng.random() < 0.5 else "r"
    pose, lift = cycle_pose(action, float(rng.random()), side)
    pose = pose * rng.uniform(0.75, 1.25) + rng.normal(0, noise_deg, NUM_POSE) * _NOISE_SCALE
    return clip_pose(pose), lift, action


@dataclasses.dataclass
class PersonMotion:
    """A smooth pose trajectory for videos: a cycle + a fixed offset + slowly varying noise."""

    action: str
    side: str
    phase0: float
    freq: float                  # cycles per frame
    amp: float
    offset: np.ndarray           # (NUM_POSE,) fixed per-person style offset, degrees
    wobble_amp: np.ndarray       # (2, NUM_POSE) amplitudes of two slow sinusoids
    wobble_freq: np.ndarray      # (2, NUM_POSE) cycles per frame
    wobble_phase: np.ndarray     # (2, NUM_POSE)

    @classmethod
    def sample(cls, rng: np.random.Generator, action: str, noise_deg: float) -> "PersonMotion":
        fast = action in ("run", "jumping_jacks", "punch", "dance")
        return cls(
            action=action, side="l" if rng.random() < 0.5 else "r", phase0=float(rng.random()),
            freq=float(rng.uniform(0.05, 0.08) if fast else rng.uniform(0.035, 0.06)), amp=float(rng.uniform(0.8, 1.2)),
            offset=rng.normal(0, 0.6 * noise_deg, NUM_POSE) * _NOISE_SCALE,
            wobble_amp=np.abs(rng.normal(0, 0.4 * noise_deg, (2, NUM_POSE))) * _NOISE_SCALE,
            wobble_freq=rng.uniform(0.005, 0.03, (2, NUM_POSE)),
            wobble_phase=rng.uniform(0, 2 * np.pi, (2, NUM_POSE)),
        )

    def phase(self, frame: float) -> float:
        return (self.phase0 + self.freq * frame) % 1.0

    def pose(self, frame: float) -> tuple[np.ndarray, float]:
        pose, lift = cycle_pose(self.action, self.phase(frame), self.side)
        wob = (self.wobble_amp * np.sin(2 * np.pi * self.wobble_freq * frame + self.wobble_phase)).sum(0)
        return clip_pose(pose * self.amp + self.offset + wob), lift * self.amp

    def travel_per_frame(self, height: float) -> float:
        """Metres travelled per frame (0 for in-place actions)."""
        return TRAVEL_PER_CYCLE.get(self.action, 0.0) * height * self.freq
