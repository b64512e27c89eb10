"""Pixel convention: image <-> crop <-> heatmap round trips, rotation sign, warp_crop against rendered dots."""

import cv2
import numpy as np
import pytest
import torch

from posenas_core.data.geometry import (
    apply_affine, box_to_center_size, crop_affine, flip_affine, flip_keypoints, heatmap_to_input,
    input_to_heatmap, invert_affine, warp_crop,
)
from posenas_core.data.keypoints import FLIP_INDEX
from posenas_core.errors import DataError


def render_blob(shape_hw, x0, y0, sigma=3.0, amp=250.0):
    """uint8 HxWx3 image with a Gaussian blob centred at (x0, y0) (pixel centres at integers)."""
    H, W = shape_hw
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    g = amp * np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / (2 * sigma ** 2))
    return np.repeat(np.round(g).astype(np.uint8)[:, :, None], 3, axis=2)


def centroid(img, x, y, r):
    """Intensity centroid of channel 0 in a (2r+1) window around (x, y)."""
    x0, y0 = int(round(x)), int(round(y))
    win = img[y0 - r:y0 + r + 1, x0 - r:x0 + r + 1, 0].astype(np.float64)
    yy, xx = np.mgrid[y0 - r:y0 + r + 1, x0 - r:x0 + r + 1]
    return (win * xx).sum() / win.sum(), (win * yy).sum() / win.sum()


def test_box_to_center_size_aspect_and_enlarge():
    # Wide box for a 256x192 input (aspect 0.75): height grows to w / 0.75.
    c, s = box_to_center_size([10, 20, 90, 40], (256, 192), enlarge=1.0)
    np.testing.assert_allclose(c, [55, 40])
    np.testing.assert_allclose(s, [90, 120])
    # Tall box: width grows to h * 0.75, then x1.25.
    c, s = box_to_center_size([0, 0, 30, 200], (256, 192))
    np.testing.assert_allclose(c, [15, 100])
    np.testing.assert_allclose(s, [150 * 1.25, 200 * 1.25])
    assert s.dtype == np.float64 and c.shape == (2,)
    # A zero-width box still has a height.
    _, s = box_to_center_size([5, 5, 0, 40], (128, 96), enlarge=1.0)
    np.testing.assert_allclose(s, [30, 40])


@pytest.mark.parametrize("bbox", [[0, 0, 0, 0], [0, 0, -3, 10], [0, np.nan, 5, 5], [0, 0, np.inf, 5]])
def test_box_to_center_size_rejects_bad_boxes(bbox):
    with pytest.raises(DataError, match="bbox"):
        box_to_center_size(bbox, (256, 192))


@pytest.mark.parametrize("hw", [(256, 192), (127, 95), (64, 48)])
def test_crop_affine_maps_box_edges_to_crop_edges(hw):
    H, W = hw
    c, s = np.array([100.3, 80.7]), np.array([W * 1.7, H * 1.7])
    M = crop_affine(c, s, hw)
    corners = np.array([[c[0] - s[0] / 2, c[1] - s[1] / 2], [c[0] + s[0] / 2, c[1] + s[1] / 2], c])
    np.testing.assert_allclose(apply_affine(M, corners), [[-0.5, -0.5], [W - 0.5, H - 0.5], [(W - 1) / 2, (H - 1) / 2]],
                               atol=1e-9)
    # The closed formula of the module doc.
    p = np.array([[3.0, 7.0], [150.5, 20.25]])
    expect = np.stack([(p[:, 0] - c[0]) * W / s[0] + (W - 1) / 2, (p[:, 1] - c[1]) * H / s[1] + (H - 1) / 2], -1)
    np.testing.assert_allclose(apply_affine(M, p), expect, atol=1e-9)


def test_rotation_sign_is_counter_clockwise_as_seen():
    H, W = 64, 64
    M = crop_affine([50, 50], [64, 64], (H, W), rotation_deg=90)
    # A point right of the centre ends up ABOVE the centre (smaller y) in the crop.
    np.testing.assert_allclose(apply_affine(M, [60, 50]), [(W - 1) / 2, (H - 1) / 2 - 10], atol=1e-9)
    # Same linear part as OpenCV's getRotationMatrix2D at unit scale.
    R = cv2.getRotationMatrix2D((50.0, 50.0), 33.0, 1.0)
    np.testing.assert_allclose(crop_affine([50, 50], [64, 64], (H, W), 33.0)[:, :2], R[:, :2], atol=1e-12)


@pytest.mark.parametrize("hw", [(256, 192), (127, 95), (33, 20)])
@pytest.mark.parametrize("rot", [0.0, 37.5, -80.0, 180.0])
def test_image_crop_image_round_trip(hw, rot):
    rng = np.random.default_rng(hash((hw, rot)) % 2 ** 32)
    c, s = box_to_center_size([40.2, 13.9, 77.7, 140.1], hw)
    M = crop_affine(c, s * 0.83, hw, rot)
    Minv = crop_affine(c, s * 0.83, hw, rot, inverse=True)
    np.testing.assert_allclose(Minv, invert_affine(M), atol=1e-9)
    pts = rng.uniform(-50, 400, (500, 2))
    assert np.abs(apply_affine(Minv, apply_affine(M, pts)) - pts).max() < 1e-3
    # With a flip of the crop composed in.
    Mf = np.vstack([flip_affine(hw[1]) @ np.vstack([M, [0, 0, 1]])])
    back = apply_affine(invert_affine(Mf), apply_affine(Mf, pts))
    assert np.abs(back - pts).max() < 1e-3
    x_crop = apply_affine(M, pts)[:, 0]
    np.testing.assert_allclose(apply_affine(Mf, pts)[:, 0], hw[1] - 1 - x_crop, atol=1e-9)


def test_invert_affine_singular():
    with pytest.raises(DataError, match="singular"):
        invert_affine(np.array([[1.0, 2.0, 0.0], [2.0, 4.0, 0.0]]))


@pytest.mark.parametrize("stride", [1, 2, 4, 8])
def test_heatmap_mapping(stride):
    W = 96
    x = np.array([-0.5, 0.0, 17.3, W - 1.0, W - 0.5])
    hm = input_to_heatmap(x, stride)
    np.testing.assert_allclose(hm[[0, -1]], [-0.5, W / stride - 0.5])  # same continuous extent
    np.testing.assert_allclose(heatmap_to_input(hm, stride), x)
    # A flip x -> W-1-x in input is x -> w-1-x in the heatmap (no shift).
    np.testing.assert_allclose(input_to_heatmap(W - 1 - x, stride), W / stride - 1 - hm, atol=1e-12)
    t = torch.tensor(x)
    assert torch.allclose(input_to_heatmap(t, stride), torch.tensor(hm))


@pytest.mark.parametrize("hw,rot,zoom,flip", [((64, 48), 0.0, 1.0, False), ((65, 47), 30.0, 0.8, False),
                                              ((64, 48), -65.0, 1.3, True), ((96, 72), 120.0, 0.6, True)])
def test_warp_crop_dot_lands_at_predicted_position(hw, rot, zoom, flip):
    H, W = hw
    img_hw = (150, 170)
    x0, y0 = 83.37, 71.81
    img = render_blob(img_hw, x0, y0, sigma=4.0)
    c, s = box_to_center_size([60, 40, 50, 70], hw)
    M = crop_affine(c + [3.3, -2.1], s * zoom, hw, rot)
    if flip:
        M = flip_affine(W) @ np.vstack([M, [0, 0, 1]])
    crop = warp_crop(img, M, hw)
    assert crop.shape == (H, W, 3) and crop.dtype == np.uint8
    px, py = apply_affine(M, [x0, y0])
    r = int(np.ceil(4.0 * W / s[0] / zoom * 4))
    cx, cy = centroid(crop, px, py, r)
    assert abs(cx - px) < 0.05 and abs(cy - py) < 0.05, (cx, cy, px, py)


def test_warp_crop_border_is_black():
    img = np.full((20, 20, 3), 200, np.uint8)
    M = crop_affine([10, 10], [80, 80], (16, 16))  # zoom out: most of the crop is outside the image
    crop = warp_crop(img, M, (16, 16))
    assert crop[0, 0].tolist() == [0, 0, 0] and crop[8, 8].tolist() == [200, 200, 200]


def test_flip_keypoints():
    rng = np.random.default_rng(0)
    kp = np.concatenate([rng.uniform(0, 50, (17, 2)), rng.integers(0, 3, (17, 1))], 1).astype(np.float32)
    f = flip_keypoints(kp, 60, FLIP_INDEX)
    assert f.dtype == np.float32
    np.testing.assert_allclose(f[1], [59 - kp[2, 0], kp[2, 1], kp[2, 2]])  # left eye <- right eye
    np.testing.assert_allclose(f[0, 0], 59 - kp[0, 0])                      # nose stays
    np.testing.assert_allclose(flip_keypoints(f, 60, FLIP_INDEX), kp, atol=1e-5)  # involution
    batch = np.stack([kp[:, :2]] * 4)
    np.testing.assert_allclose(flip_keypoints(batch, 60, FLIP_INDEX)[2], f[:, :2])
    with pytest.raises(DataError, match="flip_index"):
        flip_keypoints(kp[:5], 60, FLIP_INDEX)
