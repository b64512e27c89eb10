"""Tests for the COCO / detection / PoseTrack readers (tiny dicts and files in tmp_path)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from posenas_core.data.keypoints import COCO_KEYPOINTS, POSETRACK_KEYPOINTS
from posenas_core.data.readers import (
    AREA_FROM_BOX,
    DERIVED_BOX_ENLARGE,
    PersonSet,
    read_coco_keypoints,
    read_detections,
    read_posetrack,
)
from posenas_core.data.types import DirectoryImageSource, MemoryImageSource
from posenas_core.errors import DataError

K = 17


def kps(n_vis: int, x0: float = 10.0, y0: float = 20.0, v: int = 2) -> list[float]:
    """17*3 flat keypoints: the first n_vis labelled at (x0+j, y0+2j), the rest absent."""
    out = []
    for j in range(K):
        out += [x0 + j, y0 + 2 * j, v] if j < n_vis else [0, 0, 0]
    return out


def coco_dict() -> dict:
    """2 images (640x480, 100x50), 6 annotations covering the filters."""
    return {
        "images": [
            {"id": 1, "file_name": "a.png", "width": 640, "height": 480},
            {"id": 2, "file_name": "b.png", "width": 100, "height": 50},
        ],
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 1, "bbox": [10, 20, 100, 200], "keypoints": kps(5),
             "num_keypoints": 5, "area": 5000.0, "iscrowd": 0},
            # partially outside on the right/bottom -> clipped
            {"id": 11, "image_id": 2, "category_id": 1, "bbox": [-5.0, 10.0, 80.0, 60.0], "keypoints": kps(3),
             "num_keypoints": 3, "area": 1000.0, "iscrowd": 0},
            # no keypoints -> only with min_keypoints=0
            {"id": 12, "image_id": 1, "category_id": 1, "bbox": [300, 300, 50, 60], "keypoints": kps(0),
             "num_keypoints": 0, "area": 2000.0, "iscrowd": 0},
            # crowd -> only with include_crowd
            {"id": 13, "image_id": 1, "category_id": 1, "bbox": [400, 100, 80, 80], "keypoints": kps(4),
             "num_keypoints": 4, "area": 3000.0, "iscrowd": 1},
            # 1 px wide -> zero area after sanitising -> dropped from records
            {"id": 14, "image_id": 1, "category_id": 1, "bbox": [50, 50, 1, 40], "keypoints": kps(2),
             "num_keypoints": 2, "area": 30.0, "iscrowd": 0},
            # no 'area' / 'num_keypoints' / 'iscrowd' -> filled in .coco
            {"id": 15, "image_id": 2, "category_id": 1, "bbox": [1, 2, 10, 20], "keypoints": kps(6, v=1)},
        ],
        "categories": [{"id": 1, "name": "person", "supercategory": "person", "keypoints": list(COCO_KEYPOINTS),
                        "skeleton": [[16, 14]]}],
    }


def write_json(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj))
    return path


def pycoco(d: dict):
    from pycocotools.coco import COCO

    c = COCO()
    c.dataset = copy.deepcopy(d)
    c.createIndex()
    return c


def raises(fn, *needles: str) -> str:
    """fn() raises DataError whose message contains every needle; returns the message."""
    with pytest.raises(DataError) as ei:
        fn()
    msg = str(ei.value)
    for n in needles:
        assert n in msg, f"{n!r} not in {msg!r}"
    return msg


# ------------------------------------------------------------------------------------------- COCO

def test_coco_gt_records_filters_and_sanitising(tmp_path):
    d = coco_dict()
    snapshot = copy.deepcopy(d)
    path = write_json(tmp_path / "person_keypoints_val.json", d)
    ps = read_coco_keypoints(path)
    assert isinstance(ps, PersonSet) and ps.name == "person_keypoints_val.json"
    assert ps.keypoint_names == COCO_KEYPOINTS and ps.image_source is None
    # default: non-crowd, >=1 keypoint, non-zero sanitised area: 10, 11, 15 (14 is 1 px wide)
    assert [r.ann_id for r in ps.records] == [10, 11, 15]
    r10, r11, r15 = ps.records
    np.testing.assert_allclose(r10.bbox, [10, 20, 99, 199])           # x2 = x1 + w - 1
    # x1 = max(0,-5) = 0, x2 = min(99, 0 + 79) = 79; y1 = 10, y2 = min(49, 10 + 59) = 49
    np.testing.assert_allclose(r11.bbox, [0, 10, 79, 39])
    assert (r11.width, r11.height, r11.file_name, r11.image_id) == (100, 50, "b.png", 2)
    assert r10.keypoints.shape == (K, 3) and r10.keypoints.dtype == np.float32
    np.testing.assert_allclose(r10.keypoints[4], [14, 28, 2])
    assert r10.area == 5000.0 and r10.score == 1.0 and r10.track_id == -1
    assert r15.area == pytest.approx(10 * 20 * AREA_FROM_BOX)

    assert [r.ann_id for r in read_coco_keypoints(d, min_keypoints=0).records] == [10, 11, 12, 15]
    assert [r.ann_id for r in read_coco_keypoints(d, include_crowd=True).records] == [10, 11, 13, 15]
    assert [r.ann_id for r in read_coco_keypoints(d, min_keypoints=4).records] == [10, 15]

    # .coco: all annotations, missing fields filled in a copy; the input is untouched
    anns = {a["id"]: a for a in ps.coco["annotations"]}
    assert sorted(anns) == [10, 11, 12, 13, 14, 15]
    assert anns[15]["num_keypoints"] == 6 and anns[15]["iscrowd"] == 0
    assert anns[15]["area"] == pytest.approx(200 * AREA_FROM_BOX)
    assert d == snapshot
    c = pycoco(ps.coco)
    assert len(c.getAnnIds(imgIds=[1])) == 4 and c.loadCats(1)[0]["keypoints"] == list(COCO_KEYPOINTS)


def test_coco_dict_equals_path_and_custom_k(tmp_path):
    d = coco_dict()
    a = read_coco_keypoints(d)
    b = read_coco_keypoints(write_json(tmp_path / "x.json", d))
    assert a.name.startswith("<in-memory") and b.name == "x.json"
    assert len(a.records) == len(b.records)
    for ra, rb in zip(a.records, b.records):
        np.testing.assert_array_equal(ra.bbox, rb.bbox)
        np.testing.assert_array_equal(ra.keypoints, rb.keypoints)
    # K comes from the category's keypoint list
    d3 = {"images": [{"id": 1, "file_name": "a.png", "width": 64, "height": 64}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10],
                           "keypoints": [1, 2, 2, 3, 4, 1, 0, 0, 0], "area": 50}],
          "categories": [{"id": 1, "name": "person", "keypoints": ["a", "b", "c"]}]}
    ps = read_coco_keypoints(d3, name="tiny")
    assert ps.keypoint_names == ("a", "b", "c") and ps.records[0].keypoints.shape == (3, 3)
    assert ps.records[0].ann_id == 1 and ps.name == "tiny"


def test_coco_detections_path_list_and_threshold(tmp_path):
    d = coco_dict()
    dets = [
        {"image_id": 1, "category_id": 1, "bbox": [10, 10, 50, 80], "score": 0.9},
        {"image_id": 2, "category_id": 1, "bbox": [-3, 5, 20, 30], "score": 0.4},   # kept unclipped
        {"image_id": 1, "category_id": 2, "bbox": [10, 10, 50, 80], "score": 0.99},  # not a person
        {"image_id": 1, "category_id": 1, "bbox": [10, 10, 0, 80], "score": 0.95},  # zero area
        {"image_id": 2, "category_id": 1, "bbox": [1, 1, 5, 5], "score": 0.05},
    ]
    det_path = write_json(tmp_path / "dets.json", dets)
    ps = read_coco_keypoints(d, detections=det_path)
    assert [r.score for r in ps.records] == pytest.approx([0.9, 0.4, 0.05])
    assert all(r.ann_id == -1 and not r.keypoints.any() and r.keypoints.shape == (K, 3) for r in ps.records)
    np.testing.assert_allclose(ps.records[1].bbox, [-3, 5, 20, 30])
    assert ps.records[1].area == pytest.approx(600) and ps.records[1].file_name == "b.png"
    assert len(ps.coco["annotations"]) == 6        # the ground truth is still all annotations
    thr = read_coco_keypoints(d, detections=dets, det_score_thr=0.4)
    assert [r.score for r in thr.records] == pytest.approx([0.9, 0.4])
    direct = read_detections(det_path, d, score_thr=0.5)
    assert [(r.image_id, r.score) for r in direct] == [(1, pytest.approx(0.9))]


def test_image_sources_and_check_images(tmp_path):
    d = coco_dict()
    root = tmp_path / "imgs"
    root.mkdir()
    img = np.zeros((480, 640, 3), np.uint8)
    img[..., 0] = 200                                   # red in RGB
    cv2.imwrite(str(root / "a.png"), img[..., ::-1])
    ps = read_coco_keypoints(d, root)
    assert isinstance(ps.image_source, DirectoryImageSource)
    loaded = ps.image_source.load(ps.records[0].file_name)
    assert loaded.shape == (480, 640, 3) and loaded[0, 0].tolist() == [200, 0, 0]
    raises(lambda: read_coco_keypoints(d, root, check_images=True), "<in-memory", "'file_name'", "b.png")
    cv2.imwrite(str(root / "b.png"), np.zeros((50, 100, 3), np.uint8))
    assert len(read_coco_keypoints(d, root, check_images=True).records) == 3

    mem = {"a.png": img, "b.png": np.zeros((50, 100, 3), np.uint8)}
    ps = read_coco_keypoints(d, images=mem, check_images=True)
    assert isinstance(ps.image_source, MemoryImageSource)
    assert ps.image_source.load("a.png") is img
    raises(lambda: read_coco_keypoints(d, images={"a.png": img}, check_images=True), "'file_name'", "b.png")
    raises(lambda: read_coco_keypoints(d, tmp_path / "nope"), "image_root", "nope")


# ---------------------------------------------------------------------------------- COCO errors

def _mutated(fn) -> dict:
    d = coco_dict()
    fn(d)
    return d


@pytest.mark.parametrize("mutate, needles", [
    (lambda d: d.pop("categories"), ["missing top-level key", "'categories'"]),
    (lambda d: d.update(annotations={}), ["'annotations' must be a list"]),
    (lambda d: d["annotations"][1].update(image_id=99), ["annotations[1] (id 11)", "'image_id' 99"]),
    (lambda d: d["annotations"][1].update(keypoints=kps(3)[:48]),
     ["annotations[1] (id 11): 'keypoints' has 48 numbers, expected 51 (17 keypoints x 3)"]),
    (lambda d: d["annotations"][0]["keypoints"].__setitem__(7, "abc"),
     ["annotations[0] (id 10)", "'keypoints'[7]", "'abc'", "expected a number"]),
    (lambda d: d["annotations"][0]["keypoints"].__setitem__(4, None), ["annotations[0] (id 10)", "'keypoints'[4]"]),
    (lambda d: d["annotations"][0].update(bbox=[1, 2, "3", 4]), ["annotations[0] (id 10)", "'bbox'[2]"]),
    (lambda d: d["annotations"][0].update(bbox=[1, 2, 3]), ["annotations[0] (id 10)", "'bbox' has 3 numbers"]),
    (lambda d: d["annotations"][0].update(area="big"), ["annotations[0] (id 10)", "'area'"]),
    (lambda d: d["annotations"][0]["keypoints"].__setitem__(5, 3),
     ["annotations[0] (id 10)", "'keypoints' visibility of keypoint 1", "is 3", "allowed 0"]),
    (lambda d: d["annotations"][2].update(bbox=[1, 2, -3, 4]),
     ["annotations[2] (id 12)", "'bbox'", "negative width/height"]),
    (lambda d: d["images"][1].update(id=1), ["images[1] (id 1)", "duplicate image id 1"]),
    (lambda d: d["annotations"][3].update(id=10), ["annotations[3] (id 10)", "duplicate annotation id 10"]),
    (lambda d: d["images"][0].pop("width"), ["images[0] (id 1)", "missing 'width'"]),
    (lambda d: d["annotations"][0].update(category_id=7), ["annotations[0] (id 10)", "'category_id' 7"]),
    (lambda d: d["annotations"][0].update(id="x"), ["annotations[0]", "'id' must be an integer"]),
    (lambda d: d["categories"][0].update(keypoints=[1, 2]), ["categories[0] (id 1)", "'keypoints'"]),
])
def test_coco_validation_errors(tmp_path, mutate, needles):
    path = write_json(tmp_path / "person_keypoints_val.json", _mutated(mutate))
    raises(lambda: read_coco_keypoints(path), "person_keypoints_val.json", *needles)


def test_coco_box_outside_image(tmp_path):
    d = coco_dict()
    d["annotations"][1]["bbox"] = [120, 10, 30, 20]        # image 2 is 100 x 50
    path = write_json(tmp_path / "person_keypoints_val.json", d)
    raises(lambda: read_coco_keypoints(path), "person_keypoints_val.json", "annotations[1] (id 11)",
           "[120.0, 10.0, 30.0, 20.0]", "completely outside", "width 100 height 50")
    d["annotations"][1]["bbox"] = [-50, 10, 40, 20]        # left of the image
    raises(lambda: read_coco_keypoints(d), "(id 11)", "completely outside")


def test_file_and_json_errors(tmp_path):
    raises(lambda: read_coco_keypoints(tmp_path / "missing.json"), "not found", "missing.json")
    bad = tmp_path / "broken.json"
    bad.write_text('{"images": [],\n  "annotations": [,]}')
    raises(lambda: read_coco_keypoints(bad), "broken.json", "not valid JSON", "line 2", "column")
    lst = write_json(tmp_path / "list.json", [1, 2])
    raises(lambda: read_coco_keypoints(lst), "list.json", "top level must be a JSON object")


def test_detection_errors(tmp_path):
    d = coco_dict()
    p = write_json(tmp_path / "dets.json", {"image_id": 1})
    raises(lambda: read_coco_keypoints(d, detections=p), "dets.json", "must be a JSON list", "got dict")
    p = write_json(tmp_path / "dets.json", [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5]}])
    raises(lambda: read_detections(p, d), "dets.json: [0]", "missing ['score']")
    p = write_json(tmp_path / "dets.json", [[1, 1, [0, 0, 5, 5], 0.5]])
    raises(lambda: read_detections(p, d), "dets.json: [0]", "must be an object")
    p = write_json(tmp_path / "dets.json", [{"image_id": 5, "category_id": 1, "bbox": [0, 0, 5, 5], "score": .5}])
    raises(lambda: read_detections(p, d), "dets.json: [0]", "'image_id' 5")
    p = write_json(tmp_path / "dets.json", [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 5, -5], "score": 0.5}])
    raises(lambda: read_detections(p, d), "dets.json: [0]", "'bbox'", "negative")
    p = write_json(tmp_path / "dets.json", [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5], "score": "hi"}])
    raises(lambda: read_detections(p, d), "dets.json: [0]", "'score'")
    p = write_json(tmp_path / "dets.json", [{"image_id": 2, "category_id": 1, "bbox": [0, 60, 5, 5], "score": .5}])
    raises(lambda: read_detections(p, d), "dets.json: [0]", "completely outside", "100x50")


# ------------------------------------------------------------------------------------- PoseTrack

def video(vid: str, base_img: int, base_ann: int, names=POSETRACK_KEYPOINTS, n_frames: int = 4) -> dict:
    """One PoseTrack-18 style video: frames listed in reverse frame order, frame 1 unlabelled,
    2 tracks on every labelled frame."""
    images = []
    for f in reversed(range(n_frames)):
        images.append({"id": base_img + f, "file_name": f"images/val/{vid}/{f:06d}.jpg", "frame_id": base_img + f,
                       "vid_id": vid, "nframes": n_frames, "is_labeled": f != 1,
                       "ignore_regions_x": [[0, 5, 5]], "ignore_regions_y": [[0, 0, 5]]})
    anns = []
    for f in range(n_frames):
        for t in range(2):
            anns.append({"id": base_ann + 10 * f + t, "image_id": base_img + f, "category_id": 1, "track_id": t,
                         "bbox": [20.0 + 50 * t, 10.0 + f, 40.0, 60.0], "bbox_head": [25.0 + 50 * t, 12.0, 8.0, 9.0],
                         "keypoints": kps(13, x0=25 + 50 * t, y0=15 + f, v=1), "scores": []})
    return {"images": images, "annotations": anns,
            "categories": [{"id": 1, "name": "person", "supercategory": "person", "keypoints": list(names)}]}


def test_posetrack_directory_grouping_order_and_coco(tmp_path):
    ann_dir = tmp_path / "posetrack_data" / "val"
    ann_dir.mkdir(parents=True)
    write_json(ann_dir / "000522_mpii_test.json", video("000522", 10005220000, 1000522000000))
    write_json(ann_dir / "000342_mpii_test.json", video("000342", 10003420000, 1000342000000))
    (ann_dir / "notes.txt").write_text("not a video")
    ps = read_posetrack(ann_dir)
    assert ps.keypoint_names == POSETRACK_KEYPOINTS and ps.name == "val"
    # sorted by file name: 000342 first; per video 3 labelled frames x 2 tracks
    assert len(ps.records) == 12
    assert [r.video_id for r in ps.records[:6]] == ["000342_mpii_test"] * 6
    assert {r.video_id for r in ps.records[6:]} == {"000522_mpii_test"}
    r = ps.records[0]
    assert (r.image_id, r.frame_index, r.track_id, r.ann_id) == (10003420000, 0, 0, 1000342000000)
    assert r.file_name == "images/val/000342/000000.jpg" and (r.width, r.height) == (0, 0)   # size unknown
    # frame_index follows frame_id even though 'images' lists frames in reverse; frame 1 is unlabelled
    assert sorted({(x.frame_index, x.image_id - 10003420000) for x in ps.records[:6]}) == [(0, 0), (2, 2), (3, 3)]
    assert [x.track_id for x in ps.records[:6]] == [0, 1, 0, 1, 0, 1]
    np.testing.assert_allclose(ps.records[1].bbox, [70, 10, 40, 60])    # size unknown: box as given
    assert ps.records[0].area == pytest.approx(40 * 60 * AREA_FROM_BOX)

    c = ps.coco
    assert len(c["images"]) == 8 and len(c["annotations"]) == 12
    im = {i["id"]: i for i in c["images"]}
    assert im[10003420001]["is_labeled"] is False and im[10003420003]["frame_index"] == 3
    assert im[10003420003]["video"] == "000342_mpii_test" and im[10003420003]["ignore_regions_x"] == [[0, 5, 5]]
    a = c["annotations"][0]
    assert a["bbox_head"] == [25.0, 12.0, 8.0, 9.0] and a["num_keypoints"] == 13 and a["iscrowd"] == 0
    assert len(a["keypoints"]) == 51 and a["track_id"] == 0
    assert not any(x["image_id"] % 10 == 1 for x in c["annotations"])    # unlabelled frame contributes nothing
    json.dumps(c)                                                         # plain JSON types
    coco = pycoco(c)
    assert len(coco.getAnnIds()) == 12 and len(coco.getImgIds()) == 8

    # the merged GT scores itself perfectly with the COCO evaluator
    from pycocotools.cocoeval import COCOeval

    dets = [{"image_id": x["image_id"], "category_id": 1, "keypoints": x["keypoints"], "score": 1.0}
            for x in c["annotations"]]
    ev = COCOeval(coco, coco.loadRes(dets), "keypoints")
    ev.params.imgIds = [i["id"] for i in c["images"] if i["is_labeled"]]
    ev.params.useSegm = None
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        ev.evaluate(), ev.accumulate(), ev.summarize()
    assert ev.stats[0] == pytest.approx(1.0)


def test_posetrack_single_mapping_list_and_image_sizes(tmp_path):
    v1 = video("000001", 10000010000, 1000001000000, names=COCO_KEYPOINTS, n_frames=3)
    v2 = video("000002", 10000020000, 1000002000000, names=COCO_KEYPOINTS, n_frames=3)
    one = read_posetrack(v1)
    assert len(one.records) == 4 and one.records[0].video_id == "000001"
    assert one.keypoint_names == COCO_KEYPOINTS
    both = read_posetrack({"clipA": v1, "clipB": v2})
    assert [r.video_id for r in both.records] == ["clipA"] * 4 + ["clipB"] * 4
    p = write_json(tmp_path / "000002_x.json", v2)
    mixed = read_posetrack([v1, p])
    assert [r.video_id for r in mixed.records] == ["000001"] * 4 + ["000002_x"] * 4

    # in-memory frames give the image size, and boxes are sanitised against it
    mem = {im["file_name"]: np.zeros((64, 100, 3), np.uint8) for im in v1["images"]}
    ps = read_posetrack(v1, images=mem)
    assert {(r.width, r.height) for r in ps.records} == {(100, 64)}
    r = ps.records[1]                              # frame 0, track 1: box [70, 10, 40, 60]
    assert (r.track_id, r.frame_index) == (1, 0)
    np.testing.assert_allclose(r.bbox, [70, 10, 29, 53])   # x2 = min(99, 109), y2 = min(63, 69)


def test_posetrack_sizes_from_files_and_clipping(tmp_path):
    v = video("000007", 10000070000, 1000007000000, n_frames=1)
    fn = v["images"][0]["file_name"]
    (tmp_path / fn).parent.mkdir(parents=True)
    ok, buf = cv2.imencode(".jpg", np.zeros((90, 100, 3), np.uint8))
    (tmp_path / fn).write_bytes(buf.tobytes())
    ps = read_posetrack(v, tmp_path)
    assert {(r.width, r.height) for r in ps.records} == {(100, 90)}
    np.testing.assert_allclose(ps.records[1].bbox, [70, 10, 29, 59])   # x2 = min(99, 70 + 39)
    cv2.imwrite(str(tmp_path / fn).replace(".jpg", ".png"), np.zeros((80, 120, 3), np.uint8))
    v["images"][0]["file_name"] = fn.replace(".jpg", ".png")
    assert {(r.width, r.height) for r in read_posetrack(v, tmp_path).records} == {(120, 80)}
    # a box completely outside a known-size frame is an error
    v["images"][0].update(width=60, height=40)
    raises(lambda: read_posetrack(v, name="clip.json"), "clip.json", "annotations[1]", "completely outside",
           "width 60 height 40")


def test_posetrack_missing_bbox_keypoints_and_area():
    v = video("000003", 10000030000, 1000003000000, n_frames=1)
    a0, a1 = v["annotations"]
    del a0["bbox"]                       # derived from the labelled keypoints
    a1["bbox"] = []
    a1["keypoints"] = []                 # neither -> skipped everywhere
    a0["area"] = 123.0
    ps = read_posetrack(v)
    assert len(ps.records) == 1 and len(ps.coco["annotations"]) == 1
    kp = np.asarray(kps(13, x0=25, y0=15)).reshape(K, 3)[:13, :2]
    lo, hi = kp.min(0), kp.max(0)
    size = (hi - lo) * DERIVED_BOX_ENLARGE
    expect = [*((lo + hi) / 2 - size / 2), *size]
    np.testing.assert_allclose(ps.records[0].bbox, expect, rtol=1e-6)
    assert ps.records[0].area == 123.0 and ps.coco["annotations"][0]["area"] == 123.0
    # keypoints empty but a box: kept in .coco with num_keypoints 0, not a record (min_keypoints=1)
    v = video("000003", 10000030000, 1000003000000, n_frames=1)
    v["annotations"][1]["keypoints"] = []
    ps = read_posetrack(v)
    assert len(ps.records) == 1 and [a["num_keypoints"] for a in ps.coco["annotations"]] == [13, 0]
    assert len(read_posetrack(v, min_keypoints=0).records) == 2


def test_posetrack_errors(tmp_path):
    v = video("000004", 10000040000, 1000004000000)
    del v["annotations"][3]["track_id"]
    p = write_json(tmp_path / "000004_bonn.json", v)
    raises(lambda: read_posetrack(p), "000004_bonn.json", "annotations[3] (id 1000004000011)", "'track_id'")

    v = video("000004", 10000040000, 1000004000000)
    v["annotations"][0]["keypoints"] = kps(3)[:-3]
    raises(lambda: read_posetrack({"vidA": v}), "vidA: annotations[0]", "'keypoints' has 48 numbers")
    v = video("000004", 10000040000, 1000004000000)
    v["images"][0]["is_labeled"] = "yes"
    raises(lambda: read_posetrack({"vidA": v}), "vidA: images[0]", "'is_labeled'")
    v = video("000004", 10000040000, 1000004000000)
    v["images"][1]["frame_id"] = v["images"][0]["frame_id"]
    raises(lambda: read_posetrack({"vidA": v}), "vidA: images[1]", "duplicate 'frame_id'")
    v = video("000004", 10000040000, 1000004000000)
    v["annotations"][0]["image_id"] = 5
    raises(lambda: read_posetrack({"vidA": v}), "vidA: annotations[0]", "'image_id' 5")

    # ids must be unique across videos; keypoint names must agree
    a = video("000005", 10000050000, 1000005000000)
    raises(lambda: read_posetrack({"vidA": a, "vidB": copy.deepcopy(a)}), "vidB: images[0]", "also used in vidA")
    b = video("000006", 10000060000, 1000005000000)
    raises(lambda: read_posetrack({"vidA": a, "vidB": b}), "vidB: annotations[0]", "also used in vidA")
    c = video("000006", 10000060000, 1000006000000, names=COCO_KEYPOINTS)
    raises(lambda: read_posetrack({"vidA": a, "vidB": c}), "vidB", "'keypoints'", "same keypoint names")

    bad = {k: val for k, val in a.items() if k != "categories"}
    raises(lambda: read_posetrack({"vidA": bad}), "vidA", "'categories'")
    raises(lambda: read_posetrack(tmp_path / "none.json"), "not found", "none.json")
    empty = tmp_path / "empty"
    empty.mkdir()
    raises(lambda: read_posetrack(empty), "no *.json", "empty")
    raises(lambda: read_posetrack({"vidA": [1]}), "'vidA'", "list")


# ------------------------------------------------------------------------------------------- empty splits

def test_a_split_without_persons_is_a_data_error_naming_the_file(tmp_path):
    d = coco_dict()
    d["annotations"] = [a for a in d["annotations"] if a["id"] in (12, 13)]  # no keypoints / crowd only
    p = write_json(tmp_path / "person_keypoints_val.json", d)
    msg = raises(lambda: read_coco_keypoints(p), "person_keypoints_val.json: no persons: 2 images and 2 annotations",
                 "non-crowd person", ">= 1 labelled keypoint(s)")
    assert len(msg.splitlines()) == 1
    assert [r.ann_id for r in read_coco_keypoints(p, min_keypoints=0).records] == [12]
    assert read_coco_keypoints(p, allow_empty=True).records == []
    d["images"], d["annotations"] = [], []
    raises(lambda: read_coco_keypoints(write_json(p, d), min_keypoints=0), "no persons: 0 images and 0 annotations")
    # detections that give no person are an empty prediction (scored 0), not an error
    assert read_coco_keypoints(coco_dict(), detections=[]).records == []

    v = video("000009", 10000090000, 1000009000000)
    for a in v["annotations"]:
        a["keypoints"] = []
    f = write_json(tmp_path / "000009_mpii.json", v)
    raises(lambda: read_posetrack(f), "000009_mpii.json: no persons: 4 images and 8 annotations")
    assert len(read_posetrack(f, allow_empty=True).coco["images"]) == 4


# ------------------------------------------------------------------------------------------- shared checks

@pytest.mark.parametrize("section, index, change, message", [
    ("images", 1, {"file_name": ""}, "images[1] (id {img1}): 'file_name' must be a non-empty string, got ''"),
    ("images", 1, {"width": -3}, "images[1] (id {img1}): image size must be positive, got width=-3"),
    ("images", 1, {"id": "{img0}"}, "images[1] (id {img0}): duplicate image id {img0}"),
    ("annotations", 1, {"id": "{ann0}"}, "annotations[1] (id {ann0}): duplicate annotation id {ann0} "
                                         "(also annotations[0])"),
    ("annotations", 1, {"category_id": 7}, "annotations[1] (id {ann1}): 'category_id' 7 is not in 'categories' "
                                           "(ids [1])"),
    ("annotations", 1, {"area": -2.0}, "annotations[1] (id {ann1}): 'area' is -2, must be >= 0"),
    ("annotations", 1, {"bbox": [1, 2, -3, 4]}, "annotations[1] (id {ann1}): 'bbox' [1.0, 2.0, -3.0, 4.0] has a "
                                                "negative width/height"),
])
def test_coco_and_posetrack_share_their_record_checks(section, index, change, message):
    """The image / annotation / box checks are one set (data/annotations.py): same rule, same message."""
    for read, d in ((read_coco_keypoints, coco_dict()), (read_posetrack, video("000007", 700, 7000))):
        ids = {f"img{i}": d["images"][i]["id"] for i in range(2)}
        ids.update({f"ann{i}": d["annotations"][i]["id"] for i in range(2)})
        d[section][index].update({k: ids[v[1:-1]] if str(v).startswith("{") else v for k, v in change.items()})
        raises(lambda: read(d, name="split.json"), "split.json: " + message.format(**ids))
