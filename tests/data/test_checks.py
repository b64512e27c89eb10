"""posenas_core.data.checks: every image of a split exists and is readable, checked before a long job."""

from __future__ import annotations

import re
import shutil

import cv2
import numpy as np
import pytest

from posenas_core.data.checks import check_images, image_problem
from posenas_core.data.readers import read_coco_keypoints
from posenas_core.errors import DataError


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from posenas_core.data.synthpose import write_synthpose

    d = tmp_path_factory.mktemp("checks") / "sp"
    write_synthpose(d, 4, 2, 0, seed=0, progress=False)
    return d


@pytest.fixture()
def data(synth, tmp_path):
    """A private copy of the tiny dataset (tests break its images)."""
    d = tmp_path / "sp"
    shutil.copytree(synth, d)
    return d


def train_set(d):
    return read_coco_keypoints(d / "annotations" / "person_keypoints_train.json", d / "images")


def test_a_complete_dataset_passes(data):
    ps = train_set(data)
    assert check_images(ps, progress=False) == len({r.file_name for r in ps.records}) > 0


@pytest.mark.parametrize("damage, problem", [
    (lambda p: p.unlink(), "not found at"),
    (lambda p: p.write_bytes(b""), r"is empty \(0 bytes\)"),
    (lambda p: p.write_bytes(np.random.default_rng(0).bytes(3000)), "is not an image OpenCV can read"),
    (lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]), "is truncated .*JPEG end-of-image"),
    (lambda p: p.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF" + bytes(20)), "not a readable JPEG"),
])
def test_a_bad_image_is_named_with_its_annotation(data, damage, problem):
    ps = train_set(data)
    r = ps.records[-1]
    damage(data / "images" / r.file_name)
    with pytest.raises(DataError) as e:
        check_images(ps, progress=False)
    msg = str(e.value)
    assert msg.startswith("person_keypoints_train.json: ")
    first = next(x for x in ps.records if x.file_name == r.file_name)  # the first record of that image
    assert f"image id {r.image_id} (annotation id {first.ann_id}) file_name {r.file_name!r}" in msg
    assert re.search(problem, msg) and "must be a readable JPEG or PNG" in msg
    assert len(msg.splitlines()) == 1


def test_all_bad_images_are_counted(data):
    ps = train_set(data)
    names = sorted({r.file_name for r in ps.records})
    for n in names[:3]:
        (data / "images" / n).unlink()
    with pytest.raises(DataError, match=f"2 more of the {len(names)} images have a problem too"):
        check_images(ps, progress=False)


def test_png_and_other_formats(tmp_path):
    img = np.full((8, 6, 3), 200, np.uint8)
    cv2.imwrite(str(tmp_path / "a.png"), img)
    cv2.imwrite(str(tmp_path / "a.bmp"), img)
    assert image_problem(tmp_path / "a.png") is None and image_problem(tmp_path / "a.bmp") is None
    data = (tmp_path / "a.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[:-12])
    assert "truncated (no PNG IEND" in image_problem(tmp_path / "cut.png")


def test_in_memory_images():
    img = np.zeros((8, 6, 3), np.uint8)
    gt = {"images": [{"id": 1, "file_name": "a", "width": 6, "height": 8},
                     {"id": 2, "file_name": "b", "width": 6, "height": 8}],
          "annotations": [{"id": 10 + i, "image_id": i, "category_id": 1, "bbox": [1, 1, 3, 4],
                           "keypoints": [2, 2, 2] + [0] * 48} for i in (1, 2)],
          "categories": [{"id": 1, "name": "person"}]}
    assert check_images(read_coco_keypoints(gt, images={"a": img, "b": img}), progress=False) == 2
    with pytest.raises(DataError, match=r"image id 2 \(annotation id 12\) file_name 'b' is not in the in-memory"):
        check_images(read_coco_keypoints(gt, images={"a": img}), progress=False)
    with pytest.raises(DataError, match=r"file_name 'b' is a float64 array of shape \(8, 6\), expected HxWx3 uint8"):
        check_images(read_coco_keypoints(gt, images={"a": img, "b": np.zeros((8, 6))}), progress=False)
