"""Top-down transforms: config validation, sampling, crop geometry, flip / half-body / visibility rules."""

import dataclasses

import numpy as np
import pytest

from posenas_core.data.geometry import apply_affine, box_to_center_size, crop_affine, warp_crop
from posenas_core.data.keypoints import FLIP_INDEX
from posenas_core.data.transforms import AugConfig, TransformParams, apply_transform, half_body_box, sample_params
from posenas_core.data.types import PersonRecord
from posenas_core.errors import ConfigError, DataError

IMG_HW = (160, 200)
INPUT = (64, 48)


def make_person(rng=None, n_vis=17):
    """A record whose 17 joints are spread over the box [60, 30, 70, 110], first n_vis labelled."""
    rng = rng or np.random.default_rng(1)
    xy = np.stack([rng.uniform(62, 128, 17), rng.uniform(32, 138, 17)], 1)
    # Upper body (0..10) above y=85, lower (11..16) below, as in a standing person.
    xy[:11, 1] = rng.uniform(32, 84, 11)
    xy[11:, 1] = rng.uniform(86, 138, 6)
    v = np.where(np.arange(17) < n_vis, 2.0, 0.0)
    kp = np.concatenate([xy, v[:, None]], 1)
    return PersonRecord(1, "p.png", IMG_HW[1], IMG_HW[0], [60, 30, 70, 110], kp, ann_id=7)


def dots_image(kp, value=255):
    """Image with a 3x3 bright square at each joint (rounded)."""
    img = np.zeros(IMG_HW + (3,), np.uint8)
    for x, y in np.round(kp[:, :2]).astype(int):
        img[y - 1:y + 2, x - 1:x + 2] = value
    return img


@pytest.mark.parametrize("field,value", [("scale_factor", 1.0), ("scale_factor", -0.1), ("rotation_deg", 200.0),
                                         ("rotation_prob", 1.5), ("flip_prob", -0.01), ("half_body_prob", 2),
                                         ("half_body_min_joints", -1), ("half_body_min_joints", 2.5),
                                         ("enlarge", 0.0), ("flip_prob", float("nan")), ("flip_prob", "0.5")])
def test_aug_config_validation(field, value):
    with pytest.raises(ConfigError, match=f"AugConfig.{field}"):
        AugConfig(**{field: value})


def test_aug_config_defaults_are_evopose2d():
    a = AugConfig()
    assert (a.scale_factor, a.rotation_deg, a.rotation_prob, a.flip_prob, a.half_body_prob, a.enlarge) == \
        (0.3, 40.0, 0.6, 0.5, 0.0, 1.25)


def test_sample_params_distribution_and_determinism():
    aug = AugConfig()
    rng = np.random.default_rng(0)
    ps = [sample_params(rng, aug) for _ in range(4000)]
    scales = np.array([p.scale for p in ps])
    rots = np.array([p.rotation_deg for p in ps])
    assert scales.min() >= 0.7 and scales.max() <= 1.3 and abs(scales.mean() - 1) < 0.02
    assert np.abs(rots).max() <= 80 and np.abs(rots).max() > 70
    assert abs((rots != 0).mean() - 0.6) < 0.03
    assert abs(np.mean([p.flip for p in ps]) - 0.5) < 0.03
    assert not any(p.half_body for p in ps)  # off by default
    a = [sample_params(np.random.default_rng([3, 1, 4]), aug) for _ in range(2)]
    assert a[0] == a[1]
    # A fixed number of draws: the stream after sampling does not depend on the config.
    r1, r2 = np.random.default_rng(5), np.random.default_rng(5)
    sample_params(r1, aug)
    sample_params(r2, AugConfig(rotation_prob=0.0, flip_prob=0.0))
    assert r1.random() == r2.random()
    none = sample_params(np.random.default_rng(0), AugConfig(0.0, 0.0, 0.0, 0.0))
    assert dataclasses.replace(none, upper_body=True) == TransformParams.identity()


def test_identity_transform_is_the_plain_box_crop():
    rec = make_person()
    img = dots_image(rec.keypoints)
    crop, kps, M = apply_transform(img, rec, TransformParams.identity(), INPUT, FLIP_INDEX)
    c, s = box_to_center_size(rec.bbox, INPUT, 1.25)
    np.testing.assert_allclose(M, crop_affine(c, s, INPUT))
    np.testing.assert_array_equal(crop, warp_crop(img, M, INPUT))
    assert crop.shape == INPUT + (3,) and crop.dtype == np.uint8 and kps.shape == (17, 3) and kps.dtype == np.float32
    np.testing.assert_allclose(kps[:, :2], apply_affine(M, rec.keypoints[:, :2]), atol=1e-4)
    np.testing.assert_array_equal(kps[:, 2], rec.keypoints[:, 2])


@pytest.mark.parametrize("seed", range(6))
def test_random_transform_dots_follow_keypoints(seed):
    rec = make_person(np.random.default_rng(seed))
    img = dots_image(rec.keypoints)
    params = sample_params(np.random.default_rng(seed), AugConfig(scale_factor=0.2, rotation_prob=1.0, flip_prob=0.5))
    params = dataclasses.replace(params, flip=bool(seed % 2))
    crop, kps, M = apply_transform(img, rec, params, INPUT, FLIP_INDEX)
    np.testing.assert_array_equal(crop, warp_crop(img, M, INPUT))
    src = rec.keypoints[list(FLIP_INDEX)] if params.flip else rec.keypoints
    np.testing.assert_allclose(kps[:, :2], apply_affine(M, src[:, :2]), atol=1e-4)
    # Each in-crop joint sits on a bright dot of the crop.
    H, W = INPUT
    for x, y, v in kps:
        if v > 0 and 1 <= x <= W - 2 and 1 <= y <= H - 2:
            assert crop[int(round(y)), int(round(x)), 0] > 60
    if params.flip:
        # M maps to the flipped crop: its x axis is mirrored relative to the unflipped crop.
        _, kps0, M0 = apply_transform(img, rec, dataclasses.replace(params, flip=False), INPUT, FLIP_INDEX)
        np.testing.assert_allclose(M[0], [-M0[0, 0], -M0[0, 1], W - 1 - M0[0, 2]])
        np.testing.assert_allclose(kps[5, 0], W - 1 - kps0[6, 0], atol=1e-4)  # left shoulder <- right shoulder


def test_keypoints_outside_the_crop_become_invisible():
    rec = make_person()
    rec.keypoints[3, :2] = [5, 5]     # far outside the box crop
    rec.keypoints[4, :2] = [300, 50]  # outside the image too
    rec.keypoints[8, 2] = 1           # occluded but inside stays 1
    _, kps, _ = apply_transform(dots_image(rec.keypoints[[0]]), rec, TransformParams.identity(), INPUT)
    assert kps[3, 2] == 0 and kps[4, 2] == 0 and kps[8, 2] == 1 and kps[0, 2] == 2


def test_zoom_in_pushes_joints_out():
    rec = make_person()
    _, kps, _ = apply_transform(dots_image(rec.keypoints), rec, TransformParams(scale=0.3), INPUT)
    inside = (kps[:, 0] >= -0.5) & (kps[:, 0] <= INPUT[1] - 0.5) & (kps[:, 1] >= -0.5) & (kps[:, 1] <= INPUT[0] - 0.5)
    assert 0 < (kps[:, 2] > 0).sum() < 17
    np.testing.assert_array_equal(kps[:, 2] > 0, inside)


def test_half_body_box():
    rec = make_person()
    c, s = half_body_box(rec.keypoints, INPUT, upper_first=True)
    up = rec.keypoints[:11, :2]
    np.testing.assert_allclose(c, up.mean(0))
    ext = up.max(0) - up.min(0)
    assert np.isclose(s[0] / s[1], INPUT[1] / INPUT[0]) and (s >= ext * 1.5 - 1e-9).all() and np.isclose(s, ext * 1.5).any()
    c, _ = half_body_box(rec.keypoints, INPUT, upper_first=False)
    np.testing.assert_allclose(c, rec.keypoints[11:, :2].mean(0))
    assert half_body_box(make_person(n_vis=8).keypoints, INPUT) is None  # needs MORE than 8 labelled joints
    # Lower body preferred but only 1 lower joint labelled: falls back to the upper body.
    kp = rec.keypoints.copy()
    kp[11:16, 2] = 0
    c, _ = half_body_box(kp, INPUT, upper_first=False, min_joints=4)
    np.testing.assert_allclose(c, kp[:11, :2].mean(0))


def test_apply_transform_half_body():
    rec = make_person()
    img = dots_image(rec.keypoints)
    p = TransformParams(half_body=True, upper_body=True)
    _, kps, M = apply_transform(img, rec, p, INPUT, half_body_min_joints=8)
    H, W = INPUT
    np.testing.assert_allclose(apply_affine(M, rec.keypoints[:11, :2].mean(0)), [(W - 1) / 2, (H - 1) / 2], atol=1e-6)
    assert (kps[:11, 2] > 0).all()
    # Not qualifying (min_joints 17): the plain box.
    _, _, M2 = apply_transform(img, rec, p, INPUT, half_body_min_joints=17)
    np.testing.assert_allclose(M2, apply_transform(img, rec, TransformParams(), INPUT)[2])


def test_bad_box_names_the_file():
    rec = make_person()
    rec.bbox[:] = [0, 0, 0, 0]
    with pytest.raises(DataError, match=r"p\.png.*ann_id 7"):
        apply_transform(dots_image(rec.keypoints), rec, TransformParams(), INPUT)
