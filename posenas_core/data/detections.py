"""COCO detection results -> person records without keypoints (top-down evaluation on detected boxes).

    records = read_detections("detections.json", coco_gt, score_thr=0.0)

A detection file is a JSON list ``[{image_id, category_id, bbox, score}, ...]``; the ground truth it refers
to gives the file names and image sizes. Kept: the person category with score >= the threshold. Boxes are
used as given (no clipping, as in HRNet / mmpose); zero-area ones are dropped, one completely outside its
image is a DataError.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from posenas_core.data.annotations import (boxes_ok, bulk_rows, check_bbox, check_categories, check_top, get_int,
                                           get_number, images_by_id, is_mapping, outside, source_and_name)
from posenas_core.data.types import PersonRecord
from posenas_core.errors import DataError

__all__ = ["read_detections", "detection_records"]


def read_detections(det: str | Path | list, coco: dict, score_thr: float = 0.0, *,
                    name: str | None = None, keypoint_count: int | None = None) -> list[PersonRecord]:
    """Person records from COCO detection results ``[{image_id, category_id, bbox, score}, ...]``.

    `coco` is the ground-truth dict the detections refer to (for file names and image sizes).
    Keeps category == the person category (1 in COCO) and score >= `score_thr`; records have all-zero
    keypoints (K from the person category, or `keypoint_count`), ann_id -1, the detection score, and
    area = box area. Boxes are used as given (no clipping); zero-area boxes are dropped; a box completely
    outside its image is a DataError.
    """
    dets, dname = source_and_name(det, name, "detection file")
    cname = "<ground truth>"
    check_top(coco, cname)
    ks, pid, _ = check_categories(coco, cname)
    images = images_by_id(coco, cname)
    k = keypoint_count or ks[pid]
    return detection_records(dets, dname, images, pid, k, float(score_thr))


def detection_records(dets: Any, dname: str, images: dict[int, dict], pid: int, k: int,
                      score_thr: float) -> list[PersonRecord]:
    """The person records of loaded detections `dets` (called `dname` in messages) on the validated
    `images` ({image_id: {'file_name', 'width', 'height'}}): category `pid`, score >= `score_thr`, K = `k`."""
    if not isinstance(dets, list):
        raise DataError(f"{dname}: detections must be a JSON list of {{image_id, category_id, bbox, score}} "
                        f"objects, got {type(dets).__name__}")
    locs, iids, keep, scores, raw_boxes = [], [], [], [], []
    for i, d in enumerate(dets):
        loc = f"{dname}: [{i}]"
        if not is_mapping(d):
            raise DataError(f"{loc}: a detection must be an object {{image_id, category_id, bbox, score}}, "
                            f"got {type(d).__name__}")
        if not ("image_id" in d and "category_id" in d and "bbox" in d and "score" in d):
            missing = [key for key in ("image_id", "category_id", "bbox", "score") if key not in d]
            raise DataError(f"{loc}: detection is missing {missing}; expected keys image_id, category_id, bbox, score")
        iid = get_int(d, "image_id", loc)
        if iid not in images:
            raise DataError(f"{loc}: 'image_id' {iid} is not an image of the ground truth")
        cid = get_int(d, "category_id", loc)
        score = get_number(d, "score", loc)
        locs.append(loc)
        iids.append(iid)
        scores.append(score)
        keep.append(cid == pid and score >= score_thr)
        raw_boxes.append(d["bbox"])
    boxes = bulk_rows(raw_boxes, 4, lambda j: check_bbox(raw_boxes[j], locs[j]), boxes_ok)
    if not dets:
        return []
    W = np.array([images[i]["width"] for i in iids])
    H = np.array([images[i]["height"] for i in iids])
    keep_a = np.asarray(keep)
    bad = np.flatnonzero(keep_a & outside(boxes, W, H))
    if bad.size:
        j = int(bad[0])
        raise DataError(f"{locs[j]}: 'bbox' {boxes[j].tolist()} lies completely outside image {iids[j]} "
                        f"({W[j]}x{H[j]})")
    out = []
    for j in np.flatnonzero(keep_a & (boxes[:, 2] * boxes[:, 3] > 0)):
        im = images[iids[j]]
        out.append(PersonRecord(image_id=iids[j], file_name=im["file_name"], width=im["width"], height=im["height"],
                                bbox=boxes[j], keypoints=np.zeros((k, 3), np.float32), ann_id=-1,
                                score=scores[j], area=float(boxes[j, 2] * boxes[j, 3])))
    return out
