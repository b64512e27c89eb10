"""Tiny hand-made COCO data for the lab tests (no SynthPose: fast and independent).

Three images of different sizes and colours; image 1 has two people, images 2 and 3 one each.
Each person is a template skeleton scaled into its box, with one occluded (v=1) and one absent (v=0)
joint.
"""

import numpy as np
import pytest

from posenas_core.data.keypoints import COCO_KEYPOINTS
from posenas_core.data.readers import read_coco_keypoints

# (x, y) of the 17 COCO joints in a unit box; the person's left is on the image's right.
TEMPLATE = np.array([
    (0.50, 0.10), (0.55, 0.07), (0.45, 0.07), (0.60, 0.09), (0.40, 0.09),
    (0.70, 0.25), (0.30, 0.25), (0.80, 0.45), (0.20, 0.45), (0.85, 0.60), (0.15, 0.60),
    (0.62, 0.55), (0.38, 0.55), (0.64, 0.75), (0.36, 0.75), (0.65, 0.95), (0.35, 0.95),
])


def person_keypoints(box):
    x, y, w, h = box
    kp = np.zeros((17, 3))
    kp[:, 0] = x + TEMPLATE[:, 0] * w
    kp[:, 1] = y + TEMPLATE[:, 1] * h
    kp[:, 2] = 2
    kp[7, 2] = 1          # left elbow occluded
    kp[4] = 0             # right ear absent
    return kp


# image id -> (file name, height, width, colour, boxes)
IMAGES = {
    1: ("a.png", 90, 120, (40, 60, 90), [(10, 10, 40, 70), (65, 12, 40, 70)]),
    2: ("b.png", 100, 80, (90, 40, 40), [(20, 15, 40, 80)]),
    3: ("c.png", 70, 70, (30, 90, 40), [(15, 5, 36, 60)]),
}


def make_coco():
    images, anns, pix = [], [], {}
    aid = 100
    for iid, (fn, H, W, col, boxes) in IMAGES.items():
        images.append({"id": iid, "file_name": fn, "height": H, "width": W})
        img = np.zeros((H, W, 3), np.uint8)
        img[:] = col
        img[H // 2:, :, 1] = 200  # some structure
        pix[fn] = img
        for box in boxes:
            aid += 1
            kp = person_keypoints(box)
            anns.append({"id": aid, "image_id": iid, "category_id": 1, "bbox": list(box),
                         "keypoints": kp.reshape(-1).round(2).tolist(), "num_keypoints": int((kp[:, 2] > 0).sum()),
                         "area": float(box[2] * box[3] * 0.6), "iscrowd": 0})
    coco = {"images": images, "annotations": anns,
            "categories": [{"id": 1, "name": "person", "keypoints": list(COCO_KEYPOINTS)}]}
    return coco, pix


@pytest.fixture
def tiny_coco():
    return make_coco()


@pytest.fixture
def person_set(tiny_coco):
    coco, pix = tiny_coco
    return read_coco_keypoints(coco, images=pix)


@pytest.fixture
def noisy_predictions(person_set):
    """(N, 17, 3) predictions: GT + seeded noise, score column 0.9."""
    rng = np.random.default_rng(0)
    pred = np.stack([r.keypoints.astype(np.float64) for r in person_set.records])
    pred[..., :2] += rng.normal(0, 2.0, pred[..., :2].shape)
    pred[..., 2] = 0.9
    return pred


@pytest.fixture
def make_person_keypoints():
    """The template person (17, 3) in a given box: v = 2, left elbow v = 1, right ear v = 0."""
    return person_keypoints
