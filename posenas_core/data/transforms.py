"""Top-down train / val transforms: person box -> (augmented) crop, with OpenCV.

Pipeline of `apply_transform` (coordinates per `posenas_core.data.geometry`):

1. box -> centre / size: the record's bbox, aspect-corrected to W/H and enlarged by `enlarge` (1.25);
   or, for a half-body draw on a person with more than `half_body_min_joints` labelled joints, the box
   of the visible upper-body (joints 0-10) or lower-body (11-16) joints: centre = their mean, size =
   aspect-corrected extent x 1.5 (SimpleBaseline / HRNet `half_body_transform`);
2. size *= scale multiplier; rotation about the centre (positive = counter-clockwise as seen);
3. optional horizontal flip of the CROP (x -> W-1-x in crop coordinates) with joints swapped by
   `flip_index`; a single warp with the composed affine;
4. a keypoint whose crop position falls outside [-0.5, W-0.5] x [-0.5, H-0.5] gets v = 0.

Random draws (EvoPose2D `dataset/coco.py` defaults, see shared/reference/evopose2d.md section 6):
    scale    = clip(1 + N(0,1) * scale_factor, 1 - scale_factor, 1 + scale_factor)
    rotation = clip(N(0,1) * rotation_deg, -2 rotation_deg, 2 rotation_deg) with prob rotation_prob, else 0
    flip     with prob flip_prob;  half-body with prob half_body_prob (upper body with prob 1/2)
`sample_params` always consumes the same number of draws, and the parameters are separate from their
application so the SAME transform can be applied to every frame of a clip.

Note: EvoPose2D normalises the image before warping (the border becomes the mean colour); here the
uint8 image is warped with a black border and normalised afterwards (the border is (0 - mean) / std).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Mapping, Sequence

import numpy as np

from posenas_core.data.geometry import box_to_center_size, crop_affine, warp_crop
from posenas_core.data.keypoints import FLIP_INDEX
from posenas_core.data.types import PersonRecord
from posenas_core.errors import ConfigError, DataError

__all__ = ["AugConfig", "aug_config_from", "TransformParams", "sample_params", "apply_transform", "half_body_box",
           "UPPER_BODY_IDS"]

# COCO joints 0..10 (head, shoulders, elbows, wrists) are the upper body; 11..16 the lower body.
UPPER_BODY_IDS: tuple[int, ...] = tuple(range(11))
HALF_BODY_MARGIN = 1.5  # HRNet: half-body box = joint extent x 1.5 (no 1.25 enlargement on top)


@dataclasses.dataclass(frozen=True)
class AugConfig:
    """Training augmentation; defaults are EvoPose2D's (`dataset/coco.py`)."""

    scale_factor: float = 0.3      # scale *= clip(1 + N*0.3, 0.7, 1.3)
    rotation_deg: float = 40.0     # angle = clip(N*40, -80, 80) degrees ...
    rotation_prob: float = 0.6     # ... applied with this probability
    flip_prob: float = 0.5         # horizontal flip with joint swap
    half_body_prob: float = 0.0    # EvoPose2D: off (HRNet uses 0.3)
    half_body_min_joints: int = 8  # half-body only for persons with MORE than this many labelled joints
    enlarge: float = 1.25          # box enlargement (crop context)

    def __post_init__(self):
        def bad(name, allowed):
            raise ConfigError(f"AugConfig.{name} = {getattr(self, name)!r} is invalid; allowed: {allowed}")

        for name in ("scale_factor", "rotation_deg", "rotation_prob", "flip_prob", "half_body_prob", "enlarge"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                bad(name, "a finite number")
        if not 0.0 <= self.scale_factor < 1.0:
            bad("scale_factor", "0 <= scale_factor < 1")
        if not 0.0 <= self.rotation_deg <= 180.0:
            bad("rotation_deg", "0 <= rotation_deg <= 180")
        for name in ("rotation_prob", "flip_prob", "half_body_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                bad(name, "a probability in [0, 1]")
        if isinstance(self.half_body_min_joints, bool) or not isinstance(self.half_body_min_joints, int) \
                or self.half_body_min_joints < 0:
            bad("half_body_min_joints", "an integer >= 0")
        if not self.enlarge > 0:
            bad("enlarge", "a number > 0")


def aug_config_from(value, owner: str = "aug") -> AugConfig:
    """An AugConfig from an AugConfig, a mapping of its fields (missing ones keep their defaults) or None
    (the defaults). ConfigError prefixed with `owner` (e.g. "EvolutionConfig.aug") naming unknown fields and
    the allowed ones, or the invalid value."""
    if isinstance(value, AugConfig):
        return value
    if value is None:
        value = {}
    names = sorted(f.name for f in dataclasses.fields(AugConfig))
    if not isinstance(value, Mapping):
        raise ConfigError(f"{owner} = {value!r} is invalid; allowed: a mapping of AugConfig fields {names}")
    unknown = sorted(set(value) - set(names))
    if unknown:
        raise ConfigError(f"{owner}: unknown field(s) {unknown}; allowed: {names}")
    try:
        return AugConfig(**value)
    except ConfigError as err:
        raise ConfigError(f"{owner}: {err}") from None


@dataclasses.dataclass(frozen=True)
class TransformParams:
    """One sampled transform (shareable across the frames of a clip)."""

    scale: float = 1.0            # multiplier of the crop size (> 1: zoom out)
    rotation_deg: float = 0.0     # counter-clockwise as seen
    flip: bool = False            # horizontal flip of the crop
    half_body: bool = False       # use the half-body box (if the person qualifies)
    upper_body: bool = True       # which half is tried first

    @classmethod
    def identity(cls) -> "TransformParams":
        return cls()


def sample_params(rng: np.random.Generator, aug: AugConfig) -> TransformParams:
    """Draw one transform. Always consumes 6 draws from `rng`, in a fixed order."""
    z_scale, z_rot = rng.standard_normal(2)
    u_rot, u_flip, u_half, u_upper = rng.random(4)
    sf = aug.scale_factor
    scale = float(np.clip(1.0 + z_scale * sf, 1.0 - sf, 1.0 + sf))
    rot = float(np.clip(z_rot * aug.rotation_deg, -2.0 * aug.rotation_deg, 2.0 * aug.rotation_deg)) \
        if u_rot < aug.rotation_prob else 0.0
    return TransformParams(scale=scale, rotation_deg=rot, flip=bool(u_flip < aug.flip_prob),
                           half_body=bool(u_half < aug.half_body_prob), upper_body=bool(u_upper < 0.5))


def half_body_box(keypoints: np.ndarray, input_size_hw: Sequence[int], upper_first: bool = True,
                  min_joints: int = 8, margin: float = HALF_BODY_MARGIN):
    """HRNet half-body box: (centre (2,), size_wh (2,)) or None if the person does not qualify.

    Qualifies when more than `min_joints` joints are labelled (v > 0). The preferred half is used if it
    has more than 2 labelled joints, else the other half if it has more than 2, else the preferred half
    if it has at least 2; otherwise None.
    """
    kp = np.asarray(keypoints)
    vis = kp[:, 2] > 0
    if int(vis.sum()) <= min_joints:
        return None
    is_upper = np.zeros(len(kp), dtype=bool)
    is_upper[[i for i in UPPER_BODY_IDS if i < len(kp)]] = True
    upper, lower = kp[vis & is_upper, :2], kp[vis & ~is_upper, :2]
    first, second = (upper, lower) if upper_first else (lower, upper)
    sel = first if len(first) > 2 else (second if len(second) > 2 else first)
    if len(sel) < 2:
        return None
    center = sel.mean(axis=0).astype(np.float64)
    w, h = (sel.max(axis=0) - sel.min(axis=0)).astype(np.float64)
    H, W = input_size_hw
    aspect = W / H
    if w > aspect * h:
        h = w / aspect
    else:
        w = h * aspect
    if not (w > 0 and h > 0):
        return None
    return center, np.array([w * margin, h * margin], dtype=np.float64)


def apply_transform(image: np.ndarray, record: PersonRecord, params: TransformParams,
                    input_size_hw: Sequence[int], flip_index: Sequence[int] = FLIP_INDEX, *,
                    enlarge: float = 1.25, half_body_min_joints: int = 8):
    """Crop one person: -> (crop (H, W, 3) uint8, kps_crop (K, 3) float32, M (2, 3) float64).

    `M` maps ORIGINAL image coordinates to the (possibly flipped) crop; kps_crop = M applied to the
    record's keypoints (joints swapped when flipped), v set to 0 outside the crop. x, y are transformed
    for every joint, including v = 0 ones.
    """
    H, W = int(input_size_hw[0]), int(input_size_hw[1])
    kp = record.keypoints
    box = None
    if params.half_body:
        box = half_body_box(kp, (H, W), params.upper_body, half_body_min_joints)
    if box is None:
        try:
            box = box_to_center_size(record.bbox, (H, W), enlarge)
        except DataError as e:
            raise DataError(f"{record.file_name} (ann_id {record.ann_id}): {e}") from None
    center, size = box
    size = size * params.scale
    M = crop_affine(center, size, (H, W), params.rotation_deg)
    if params.flip:
        # Compose with x -> W-1-x in crop coordinates: negate row 0, shift by W-1.
        M[0] = -M[0]
        M[0, 2] += W - 1
        if len(flip_index) != len(kp):
            raise DataError(f"flip_index has {len(flip_index)} entries but {record.file_name} has K={len(kp)} joints")
        kp = kp[list(flip_index)]
    crop = warp_crop(image, M, (H, W))

    xy = kp[:, :2].astype(np.float64) @ M[:, :2].T + M[:, 2]
    inside = (xy[:, 0] >= -0.5) & (xy[:, 0] <= W - 0.5) & (xy[:, 1] >= -0.5) & (xy[:, 1] <= H - 0.5)
    kps_crop = np.empty((len(kp), 3), dtype=np.float32)
    kps_crop[:, :2] = xy
    kps_crop[:, 2] = np.where(inside, kp[:, 2], 0.0)
    return crop, kps_crop, M
