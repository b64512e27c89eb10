"""`SynthConfig`: the few documented difficulty knobs of SynthPose.

Every knob has a default chosen so the default split is *not* trivial (a mean pose placed in the
ground-truth box scores OKS AP below 0.01, against a bound of 0.25) yet learnable on a CPU: the
baseline-resnet-s2 reaches OKS AP 0.6 after 15 minutes on 2 cores (`benchmarks/ap_figures.py`; people
are clearly drawn and 100-220 px tall in a 320x256 image). The defaults face people into the camera's
half-space (`yaw_max` 90: frontal to profile views) and keep overlaps, occluders, clutter, blur and
noise light; unusual poses are left to `hard()`. Measured with the same 15-minute recipe: a yaw-90 split
with the earlier, busier settings (overlap 0.1, occluders 0.05, unusual poses 0.05, clutter 0.3, blur
0.8, noise 4) scored AP 0.49. `SynthConfig.easy()` and `.hard()` (crowded, seen from every side, no
left/right cue) are presets.
Values are validated in `__post_init__`; a bad one raises `ConfigError` naming the knob and the
allowed range. `to_dict()` / `from_dict()` round-trip through JSON.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any, Mapping

from posenas_core.errors import ConfigError

__all__ = ["CONFIG_VERSION", "SynthConfig"]

CONFIG_VERSION = 1


@dataclasses.dataclass(frozen=True)
class SynthConfig:
    # --- image -----------------------------------------------------------------------------------
    width: int = 320                  # image width in px; small so that generation and decoding are fast
    height: int = 256                 # image height in px
    # --- people ----------------------------------------------------------------------------------
    people_min: int = 1               # people per image / video, drawn uniformly in [people_min, people_max]
    people_max: int = 2               # 2: a second person in many images (and crops), few enough to stay readable
    person_height_min: float = 100.0  # standing height in px (sitting / lying people look smaller);
    person_height_max: float = 220.0  #   100-220 keeps joints resolvable at a 128x96 network input
    overlap_prob: float = 0.05        # chance a person is placed overlapping an earlier one (inter-person occlusion)
    occluder_prob: float = 0.03       # chance per person of an object (box / pole / blob) drawn in front of it
    # --- pose and viewpoint ----------------------------------------------------------------------
    unusual_pose_prob: float = 0.0    # lying, upside-down (handstand), sitting, kneeling, crawling, cartwheel
    random_pose_prob: float = 0.05    # joint angles drawn uniformly within joint limits instead of a motion cycle
    pose_noise_deg: float = 6.0       # std of Gaussian noise added to every joint angle of a motion-cycle pose
    yaw_max: float = 90.0             # facing, degrees from "towards the camera", uniform in [-yaw_max, yaw_max]:
                                      #   90 = frontal to profile views; 180 = any direction (back views too)
    pitch_min: float = -5.0           # camera elevation in degrees (+ = above the person looking down)
    pitch_max: float = 30.0           #   wide enough for foreshortening, never fully top-down
    roll_max: float = 5.0             # camera roll (image-plane rotation) in degrees, uniform in [-roll_max, roll_max]
    dist_min: float = 3.0             # camera distance / person height: small = strong perspective foreshortening
    dist_max: float = 8.0
    # --- appearance ------------------------------------------------------------------------------
    clutter: float = 0.2              # background clutter in [0, 1]: shapes, lines, stripes, limb-like distractors
    texture_prob: float = 0.3         # chance a garment is striped or spotted (else plain)
    lr_cue_prob: float = 0.7          # chance a person's left limbs are tinted lighter than the right ones
                                      #   (a weak, consistent left/right cue; clothing is otherwise symmetric)
    aspect_jitter: float = 0.05       # pixel aspect ratio drawn in [1 - a, 1 + a] (stretches people horizontally)
    blur_max: float = 0.5             # max Gaussian blur sigma in px (applied to ~half of the images)
    noise_max: float = 3.0            # max std of additive pixel noise (0-255 scale)
    # --- labels and videos -----------------------------------------------------------------------
    label_back_of_head: bool = False  # False (COCO practice): eyes / nose / ears turned away from the camera are
                                      #   not labelled (v=0); True: labelled as occluded (v=1)
    video_frames: int = 20            # frames per video (generate_videos' default; at most 9999)

    def __post_init__(self):
        _check_int(self, "width", 64, 2048)
        _check_int(self, "height", 64, 2048)
        _check_int(self, "people_min", 1, 16)
        _check_int(self, "people_max", self.people_min, 16, lo_name="people_min")
        _check_num(self, "person_height_min", 24.0, 4.0 * self.height, hi_name="4 * height")
        _check_num(self, "person_height_max", self.person_height_min, 4.0 * self.height,
                   lo_name="person_height_min", hi_name="4 * height")
        for name in ("overlap_prob", "occluder_prob", "unusual_pose_prob", "random_pose_prob", "clutter",
                     "texture_prob", "lr_cue_prob"):
            _check_num(self, name, 0.0, 1.0)
        _check_num(self, "pose_noise_deg", 0.0, 45.0)
        _check_num(self, "yaw_max", 0.0, 180.0)
        _check_num(self, "pitch_min", -60.0, 80.0)
        _check_num(self, "pitch_max", self.pitch_min, 80.0, lo_name="pitch_min")
        _check_num(self, "roll_max", 0.0, 45.0)
        _check_num(self, "dist_min", 2.0, 50.0)
        _check_num(self, "dist_max", self.dist_min, 50.0, lo_name="dist_min")
        _check_num(self, "aspect_jitter", 0.0, 0.3)
        _check_num(self, "blur_max", 0.0, 5.0)
        _check_num(self, "noise_max", 0.0, 50.0)
        if not isinstance(self.label_back_of_head, bool):
            raise ConfigError(f"SynthConfig.label_back_of_head must be true or false, got {self.label_back_of_head!r}")
        _check_int(self, "video_frames", 1, 9999)

    # ------------------------------------------------------------------------------------ presets
    @classmethod
    def easy(cls, **overrides) -> "SynthConfig":
        """Few, large, unoccluded, upright people on plain backgrounds, facing the camera; a strong left/right cue."""
        base = dict(people_min=1, people_max=2, yaw_max=60.0, person_height_min=120.0, person_height_max=230.0,
                    overlap_prob=0.03, occluder_prob=0.0, unusual_pose_prob=0.0, random_pose_prob=0.03,
                    pose_noise_deg=5.0, pitch_min=-5.0, pitch_max=25.0, roll_max=3.0, dist_min=4.0,
                    dist_max=10.0, clutter=0.1, texture_prob=0.2, lr_cue_prob=1.0, aspect_jitter=0.0,
                    blur_max=0.0, noise_max=2.0)
        base.update(overrides)
        return cls(**base)

    @classmethod
    def hard(cls, **overrides) -> "SynthConfig":
        """Crowded, smaller, more occluded people in unusual poses, seen from every side and steep views;
        no left/right cue."""
        base = dict(people_min=1, people_max=6, yaw_max=180.0, person_height_min=50.0, person_height_max=220.0,
                    overlap_prob=0.5, occluder_prob=0.5, unusual_pose_prob=0.25, random_pose_prob=0.35,
                    pose_noise_deg=15.0, pitch_min=-30.0, pitch_max=70.0, roll_max=20.0, dist_min=2.0,
                    dist_max=8.0, clutter=1.0, texture_prob=0.7, lr_cue_prob=0.0, aspect_jitter=0.15,
                    blur_max=2.0, noise_max=12.0)
        base.update(overrides)
        return cls(**base)

    # ---------------------------------------------------------------------------------- JSON
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SynthConfig":
        if not isinstance(d, Mapping):
            raise ConfigError(f"SynthConfig.from_dict expects a mapping of knob -> value, got {type(d).__name__}")
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - set(names))
        if unknown:
            raise ConfigError(f"SynthConfig: unknown knob(s) {unknown}; allowed: {sorted(names)}")
        return cls(**dict(d))


def _range_text(lo, hi, lo_name, hi_name) -> str:
    lo_t = f"{lo}" if lo_name is None else f"{lo_name} ({lo})"
    hi_t = f"{hi}" if hi_name is None else f"{hi_name} ({hi})"
    return f"[{lo_t}, {hi_t}]"


def _check_int(cfg, name, lo, hi, lo_name=None, hi_name=None):
    v = getattr(cfg, name)
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or not lo <= v <= hi:
        raise ConfigError(f"SynthConfig.{name} = {v!r} is invalid: expected an integer in "
                          f"{_range_text(lo, hi, lo_name, hi_name)}")
    object.__setattr__(cfg, name, int(v))


def _check_num(cfg, name, lo, hi, lo_name=None, hi_name=None):
    v = getattr(cfg, name)
    ok = (not isinstance(v, bool) and isinstance(v, numbers.Real) and math.isfinite(float(v))
          and lo <= float(v) <= hi)
    if not ok:
        raise ConfigError(f"SynthConfig.{name} = {v!r} is invalid: expected a number in "
                          f"{_range_text(lo, hi, lo_name, hi_name)}")
    object.__setattr__(cfg, name, float(v))
