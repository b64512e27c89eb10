"""COCO keypoint reader with strict validation (see `readers.py` for the overview).

Input: a COCO keypoint file (path) or an already loaded dict with 'images', 'annotations' and
'categories' (SynthPose uses the same format in memory). Output: a `PersonSet` whose records are
`PersonRecord`s (one per person instance) and whose `.coco` is the ground truth for the evaluator.

Every problem in the input raises ONE `DataError` whose message starts with the file name and
names the record and field (the checks and the box / keypoint conventions: `annotations.py`), e.g.
``person_keypoints_val.json: annotations[12] (id 345): 'keypoints' has 48 numbers, expected 51
(17 keypoints x 3)``.

Rules
-----
- Ground-truth boxes are sanitised (`annotations.sanitize_boxes`) and the person is dropped from the
  records (not from `.coco`) if that box has zero area. A box lying completely outside the image
  (x >= W, y >= H, x+w <= 0 or y+h <= 0) is an error.
- With detections, the records are those of `detections.read_detections` (boxes used as given).
- Missing optional fields are filled in a copy of the annotation in `.coco` (the input dict is
  never modified): 'area' = bbox area * 0.53 (`AREA_FROM_BOX`), 'num_keypoints' = number of keypoints
  with v > 0, 'iscrowd' = 0.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from collections.abc import Mapping
from typing import Any

import numpy as np

from posenas_core.data.annotations import (AREA_FROM_BOX, bulk_rows, boxes_ok, check_annotation, check_bbox,
                                           check_categories, check_keypoints, check_top, get_area, get_int,
                                           images_by_id, no_persons_message, outside, sanitize_boxes,
                                           source_and_name, visibility_ok, where)
from posenas_core.data.checks import image_available
from posenas_core.data.detections import detection_records
from posenas_core.data.types import DirectoryImageSource, ImageSource, MemoryImageSource, PersonRecord
from posenas_core.errors import ConfigError, DataError

__all__ = ["PersonSet", "make_image_source", "read_coco_keypoints"]


@dataclasses.dataclass
class PersonSet:
    """The result of a reader: person records + the COCO-format ground truth for evaluation."""

    records: list[PersonRecord]
    coco: dict                          # COCO-format ground truth (images, annotations, categories)
    image_source: ImageSource | None    # where the pixels come from (None: annotations only)
    keypoint_names: tuple[str, ...]     # K names, in the file's order
    name: str                           # e.g. the file name, for messages

    def __len__(self) -> int:
        return len(self.records)

    def __repr__(self) -> str:
        return (f"PersonSet({self.name!r}: {len(self.records)} records, {len(self.coco.get('images', []))} images, "
                f"{len(self.coco.get('annotations', []))} annotations, K={len(self.keypoint_names)}, "
                f"source={self.image_source!r})")


def make_image_source(image_root: str | Path | None, images: Mapping[str, np.ndarray] | None) -> ImageSource | None:
    """The image source of a reader: a directory, an in-memory mapping, or None (annotations only)."""
    if image_root is not None and images is not None:
        raise ConfigError("pass either image_root (a directory) or images (an in-memory mapping), not both")
    if images is not None:
        if not isinstance(images, Mapping):
            raise ConfigError(f"images must be a mapping file_name -> HxWx3 uint8 array, got {type(images).__name__}")
        return MemoryImageSource(images)
    if image_root is not None:
        root = Path(image_root)
        if not root.is_dir():
            raise DataError(f"image_root is not a directory: {root}")
        return DirectoryImageSource(root)
    return None


@dataclasses.dataclass
class _Anns:
    """Validated annotations of one COCO dict, column-wise (row j = annotations[j])."""

    locs: list                      # `where` per row, for messages
    ids: np.ndarray                 # (N,) int64
    image_ids: np.ndarray           # (N,) int64
    cats: np.ndarray                # (N,) int64
    boxes: np.ndarray               # (N, 4) float64 as in the file
    area: np.ndarray                # (N,) float64 (filled where missing)
    num_keypoints: np.ndarray       # (N,) int64 (filled where missing)
    iscrowd: np.ndarray             # (N,) int64
    keypoints: dict                 # category id -> (rows (n,) int64, (n, K, 3) float64)
    fill: dict                      # row -> {field: filled value} for `.coco`


def _check_coco(data: Any, name: str) -> tuple[dict[int, dict], dict[int, int], int, tuple[str, ...], _Anns]:
    """Validate a whole COCO keypoint dict. Returns (images, K per category, person category id,
    person keypoint names, annotations)."""
    check_top(data, name)
    ks, pid, kp_names = check_categories(data, name)
    images = images_by_id(data, name)
    raw = data["annotations"]
    n = len(raw)
    locs, ids, iids, cats = [], np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, np.int64)
    area, nk, crowd = np.zeros(n), np.full(n, -1, np.int64), np.zeros(n, np.int64)
    has_area = np.zeros(n, bool)
    seen: dict[int, int] = {}
    raw_boxes, raw_kps = [], {c: ([], []) for c in ks}  # category -> (rows, values)
    for i, a in enumerate(raw):
        loc = where(name, "annotations", i, a)
        locs.append(loc)
        aid, iid, cid = check_annotation(a, loc, seen, images, ks)
        if "bbox" not in a:
            raise DataError(f"{loc}: missing 'bbox'")
        raw_boxes.append(a["bbox"])
        if "keypoints" in a:
            raw_kps[cid][0].append(i)
            raw_kps[cid][1].append(a["keypoints"])
        elif cid == pid:
            raise DataError(f"{loc}: missing 'keypoints' ({ks[cid]} keypoints x 3 numbers expected)")
        given_area = get_area(a, loc)
        if given_area is not None:
            area[i], has_area[i] = given_area, True
        if "num_keypoints" in a:
            nk[i] = get_int(a, "num_keypoints", loc)
        if "iscrowd" in a:
            crowd[i] = get_int(a, "iscrowd", loc)
            if crowd[i] not in (0, 1):
                raise DataError(f"{loc}: 'iscrowd' is {crowd[i]}, allowed 0 or 1")
        ids[i], iids[i], cats[i] = aid, iid, cid

    boxes = bulk_rows(raw_boxes, 4, lambda j: check_bbox(raw_boxes[j], locs[j]), boxes_ok)
    keypoints, counted = {}, np.zeros(n, np.int64)
    for cid, (rows, vals) in raw_kps.items():
        k = ks[cid]
        arr = bulk_rows(vals, 3 * k, lambda j: check_keypoints(vals[j], k, locs[rows[j]]), visibility_ok)
        rows_a = np.asarray(rows, np.int64)
        keypoints[cid] = (rows_a, arr.reshape(-1, k, 3))
        counted[rows_a] = (arr[:, 2::3] > 0).sum(1)

    fill: dict[int, dict] = {}
    for i in np.flatnonzero(~has_area):
        area[i] = boxes[i, 2] * boxes[i, 3] * AREA_FROM_BOX
        fill.setdefault(int(i), {})["area"] = float(area[i])
    for i in np.flatnonzero(nk < 0):
        nk[i] = counted[i]
        fill.setdefault(int(i), {})["num_keypoints"] = int(counted[i])
    for i, a in enumerate(raw):
        if "iscrowd" not in a:
            fill.setdefault(i, {})["iscrowd"] = 0
    return images, ks, pid, kp_names, _Anns(locs, ids, iids, cats, boxes, area, nk, crowd, keypoints, fill)


def _coco_copy(data: Mapping, anns: _Anns) -> dict:
    """The ground truth dict for `.coco`: the input's objects, with filled-in fields in copies."""
    out = [a if i not in anns.fill else {**a, **anns.fill[i]} for i, a in enumerate(data["annotations"])]
    return {**data, "annotations": out}


def read_coco_keypoints(ann: str | Path | dict, image_root: str | Path | None = None, *,
                        images: Mapping[str, np.ndarray] | None = None,
                        detections: str | Path | list | None = None,
                        det_score_thr: float = 0.0, min_keypoints: int = 1, include_crowd: bool = False,
                        check_images: bool = False, allow_empty: bool = False, name: str | None = None) -> PersonSet:
    """Read a COCO keypoint file (or loaded dict) into a `PersonSet`.

    With ground-truth boxes (``detections=None``): one record per person annotation with
    ``num_keypoints >= min_keypoints`` (1 = the usual train filter; 0 keeps all, for validation),
    crowd annotations only if `include_crowd`, box sanitised (module docstring; zero-area boxes dropped).
    With `detections` (a results json path or list): one record per person detection with
    score >= `det_score_thr` (see `read_detections`).

    `.coco` is always the whole ground truth (all annotations, crowd included) with missing
    'area' / 'num_keypoints' / 'iscrowd' filled in copies. Images come from `image_root`
    (file_name relative to it) or the in-memory `images` mapping. `check_images=True` verifies that
    every image a record refers to exists now (otherwise the image source raises when loading).
    `name` overrides the display name used in messages (default: the file name).
    Ground truth that gives no person record is a DataError unless `allow_empty` (nothing to train or
    evaluate on); detections that give none are not (an empty prediction scores zero).
    """
    data, dname = source_and_name(ann, name, "COCO annotation file")
    source = make_image_source(image_root, images)
    if check_images and source is None:
        raise ConfigError("check_images=True needs image_root or images")
    imgs, ks, pid, kp_names, A = _check_coco(data, dname)
    k = ks[pid]

    if detections is not None:
        det_data, det_name = source_and_name(detections, None, "detection file")
        records = detection_records(det_data, det_name, imgs, pid, k, float(det_score_thr))
    else:
        rows, kp = A.keypoints[pid]
        sel = (A.num_keypoints[rows] >= min_keypoints) & ((A.iscrowd[rows] == 0) | include_crowd)
        rows, kp = rows[sel], kp[sel].astype(np.float32)
        W = np.array([imgs[i]["width"] for i in A.image_ids[rows]], dtype=np.int64)
        H = np.array([imgs[i]["height"] for i in A.image_ids[rows]], dtype=np.int64)
        bad = np.flatnonzero(outside(A.boxes[rows], W, H))
        if bad.size:
            j, r = int(bad[0]), int(rows[bad[0]])
            im = imgs[int(A.image_ids[r])]
            raise DataError(f"{A.locs[r]}: 'bbox' {A.boxes[r].tolist()} lies completely outside image "
                            f"{A.image_ids[r]} ({im['file_name']}, width {W[j]} height {H[j]})")
        boxes = sanitize_boxes(A.boxes[rows], W, H)
        records = []
        for j in np.flatnonzero((boxes[:, 2] > 0) & (boxes[:, 3] > 0)):
            r = int(rows[j])
            iid = int(A.image_ids[r])
            records.append(PersonRecord(image_id=iid, file_name=imgs[iid]["file_name"], width=int(W[j]),
                                        height=int(H[j]), bbox=boxes[j], keypoints=kp[j], ann_id=int(A.ids[r]),
                                        score=1.0, area=float(A.area[r])))
        if not records and not allow_empty:
            raise DataError(no_persons_message(dname, len(imgs), len(A.ids), min_keypoints,
                                               "" if include_crowd else "non-crowd "))

    if check_images:
        checked: set[str] = set()
        for r in records:
            if r.file_name in checked:
                continue
            if not image_available(source, r.file_name):
                raise DataError(f"{dname}: image id {r.image_id} 'file_name' {r.file_name!r} not found in {source!r}")
            checked.add(r.file_name)
    return PersonSet(records=records, coco=_coco_copy(data, A), image_source=source,
                     keypoint_names=kp_names, name=dname)
