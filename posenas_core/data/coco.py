"""COCO keypoint / detection readers with strict validation (see `readers.py` for the overview).

Input: a COCO keypoint file (path) or an already loaded dict with 'images', 'annotations' and
'categories' (SynthPose uses the same format in memory). Output: a `PersonSet` whose records are
`PersonRecord`s (one per person instance) and whose `.coco` is the ground truth for the evaluator.

Every problem in the input raises ONE `DataError` whose message starts with the file name and
names the record and field, e.g.
``person_keypoints_val.json: annotations[12] (id 345): 'keypoints' has 48 numbers, expected 51
(17 keypoints x 3)``.

Conventions
-----------
- Boxes are COCO ``[x, y, w, h]`` in image pixels; keypoints are flat ``[x1, y1, v1, ...]``
  (3*K numbers, K from the category's 'keypoints' list, 17 if the category has none) with
  visibility v in {0 absent, 1 occluded, 2 visible}.
- Ground-truth boxes are sanitised the standard (HRNet / mmpose) way::

      x1 = max(0, x); y1 = max(0, y)
      x2 = min(W-1, x1 + max(0, w-1)); y2 = min(H-1, y1 + max(0, h-1))
      box = [x1, y1, x2-x1, y2-y1]

  and the person is dropped from the records (not from `.coco`) if that box has zero area.
  A box lying completely outside the image (x >= W, y >= H, x+w <= 0 or y+h <= 0) is an error.
- Detection boxes are used as given (no clipping, as in HRNet / mmpose); zero-area ones are
  dropped, ones completely outside their image are an error.
- Missing optional fields are filled in a copy of the annotation in `.coco` (the input dict is
  never modified): 'area' = bbox area * 0.53 (`AREA_FROM_BOX`, a typical person segment/box area ratio),
  'num_keypoints' = number of keypoints with v > 0, 'iscrowd' = 0.
"""

from __future__ import annotations

import dataclasses
import json
import numbers
import struct
from pathlib import Path
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from posenas_core.data.keypoints import COCO_KEYPOINTS, NUM_KEYPOINTS
from posenas_core.data.types import DirectoryImageSource, ImageSource, MemoryImageSource, PersonRecord
from posenas_core.errors import ConfigError, DataError

# 'area' used when an annotation has none: bbox area times this ratio (documented above).
AREA_FROM_BOX = 0.53
_TOP_KEYS = ("images", "annotations", "categories")


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


# ---------------------------------------------------------------------------------------------
# Loading and small validators (shared with posetrack.py)
# ---------------------------------------------------------------------------------------------

def load_json(path: str | Path, what: str = "annotation file") -> Any:
    """Read a JSON file; a missing file or invalid JSON is a DataError naming the file (and line/col)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{what} not found: {path}")
    if not path.is_file():
        raise DataError(f"{what} is not a file: {path}")
    try:
        with open(path, "r", encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise DataError(f"{path.name}: not valid JSON: {e.msg} at line {e.lineno} column {e.colno} "
                        f"(file {path})") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path.name}: not valid JSON: not UTF-8 text ({e.reason} at byte {e.start}) "
                        f"(file {path})") from None


def is_int(v: Any) -> bool:
    t = type(v)
    return t is int or (t is not bool and isinstance(v, numbers.Integral))


def is_number(v: Any) -> bool:
    t = type(v)
    return t is float or t is int or (t is not bool and isinstance(v, numbers.Real))


def is_mapping(v: Any) -> bool:
    return type(v) is dict or isinstance(v, Mapping)


class where:
    """'file.json: annotations[12] (id 345)' — the location used in every message.

    Built for every record but formatted only when a message is raised (keeps reading fast)."""

    __slots__ = ("name", "section", "index", "obj")

    def __init__(self, name: str, section: str, index: int, obj: Any = None):
        self.name, self.section, self.index, self.obj = name, section, index, obj

    def __str__(self) -> str:
        s = f"{self.name}: {self.section}[{self.index}]"
        if is_mapping(self.obj) and "id" in self.obj:
            s += f" (id {self.obj['id']!r})"
        return s

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


def check_top(data: Any, name: str, keys: tuple[str, ...] = _TOP_KEYS) -> None:
    """The top level must be an object with list-valued `keys`."""
    if not isinstance(data, Mapping):
        raise DataError(f"{name}: top level must be a JSON object with keys {list(keys)}, "
                        f"got {type(data).__name__}")
    missing = [k for k in keys if k not in data]
    if missing:
        raise DataError(f"{name}: missing top-level key(s) {missing}; a COCO-format file needs {list(keys)} "
                        f"(found {sorted(map(str, data.keys()))})")
    for k in keys:
        if not isinstance(data[k], list):
            raise DataError(f"{name}: top-level '{k}' must be a list, got {type(data[k]).__name__}")
        for i, item in enumerate(data[k]):
            if not is_mapping(item):
                raise DataError(f"{name}: {k}[{i}] must be an object, got {type(item).__name__}")


def get_int(obj: Mapping, key: str, loc: str, *, required: bool = True, default: int | None = None) -> int | None:
    if key not in obj:
        if required:
            raise DataError(f"{loc}: missing '{key}'")
        return default
    v = obj[key]
    if is_int(v):
        return int(v)
    if is_number(v) and float(v).is_integer():  # 640.0 is accepted as 640
        return int(v)
    raise DataError(f"{loc}: '{key}' must be an integer, got {v!r} ({type(v).__name__})")


def get_number(obj: Mapping, key: str, loc: str) -> float:
    v = obj[key]
    if not is_number(v) or not np.isfinite(float(v)):
        raise DataError(f"{loc}: '{key}' must be a finite number, got {v!r} ({type(v).__name__})")
    return float(v)


def number_array(value: Any, key: str, loc: str) -> np.ndarray:
    """A flat list (or 1-D array) of finite numbers -> float64 array; otherwise a DataError naming the
    first bad element."""
    if isinstance(value, (str, bytes)) or is_mapping(value) or not hasattr(value, "__len__"):
        raise DataError(f"{loc}: '{key}' must be a list of numbers, got {type(value).__name__}")
    try:
        arr = np.asarray(value)
    except ValueError:  # ragged nesting
        arr = np.asarray(value, dtype=object)
    if arr.ndim != 1 or arr.dtype.kind not in "iuf":
        if arr.ndim > 1:
            raise DataError(f"{loc}: '{key}' must be a flat list of numbers, got a nested list of shape {arr.shape}")
        for i, v in enumerate(list(value)):
            if not is_number(v):
                raise DataError(f"{loc}: '{key}'[{i}] is {v!r} ({type(v).__name__}), expected a number")
        arr = np.asarray(value, dtype=np.float64)  # e.g. an object array of numbers
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        bad = np.flatnonzero(~np.isfinite(arr))
        raise DataError(f"{loc}: '{key}'[{bad[0]}] is {arr[bad[0]]}, expected a finite number")
    return arr


def check_bbox(value: Any, loc: str, key: str = "bbox") -> np.ndarray:
    """[x, y, w, h] with 4 finite numbers and w, h >= 0 -> float64 (4,)."""
    b = number_array(value, key, loc)
    if b.size != 4:
        raise DataError(f"{loc}: '{key}' has {b.size} numbers, expected 4 [x, y, w, h]")
    if b[2] < 0 or b[3] < 0:
        raise DataError(f"{loc}: '{key}' {b.tolist()} has a negative width/height; expected w >= 0 and h >= 0")
    return b


def check_keypoints(value: Any, k: int, loc: str) -> np.ndarray:
    """Flat 3*K numbers with visibility in {0, 1, 2} -> float64 (K, 3)."""
    kp = number_array(value, "keypoints", loc)
    if kp.size != 3 * k:
        raise DataError(f"{loc}: 'keypoints' has {kp.size} numbers, expected {3 * k} ({k} keypoints x 3)")
    kp = kp.reshape(k, 3)
    v = kp[:, 2]
    if not ((v == 0) | (v == 1) | (v == 2)).all():
        j = int(np.flatnonzero((v != 0) & (v != 1) & (v != 2))[0])
        raise DataError(f"{loc}: 'keypoints' visibility of keypoint {j} (index {3 * j + 2}) is {kp[j, 2]:g}, "
                        f"allowed 0 (absent), 1 (occluded), 2 (visible)")
    return kp


def check_categories(data: Mapping, name: str) -> tuple[dict[int, int], int, tuple[str, ...]]:
    """Validate 'categories'. Returns ({category_id: K}, person_category_id, person keypoint names).

    The person category is the one named 'person', else the only category, else id 1.
    K = len(category['keypoints']) (17 when a category lists no keypoints)."""
    cats = data["categories"]
    if not cats:
        raise DataError(f"{name}: 'categories' is empty; expected at least the person category")
    ks: dict[int, int] = {}
    names: dict[int, tuple[str, ...]] = {}
    for i, c in enumerate(cats):
        loc = where(name, "categories", i, c)
        cid = get_int(c, "id", loc)
        if cid in ks:
            raise DataError(f"{loc}: duplicate category id {cid}")
        kn = c.get("keypoints")
        if kn is None or (isinstance(kn, list) and not kn):
            ks[cid], names[cid] = NUM_KEYPOINTS, COCO_KEYPOINTS
        elif isinstance(kn, list) and all(isinstance(s, str) for s in kn):
            ks[cid], names[cid] = len(kn), tuple(kn)
        else:
            raise DataError(f"{loc}: 'keypoints' must be a list of keypoint names (strings), got {kn!r:.80}")
    person = [c["id"] for c in cats if c.get("name") == "person"]
    if person:
        pid = int(person[0])
    elif len(cats) == 1:
        pid = int(cats[0]["id"])
    elif 1 in ks:
        pid = 1
    else:
        raise DataError(f"{name}: no person category: none is named 'person' and there is no category id 1 "
                        f"(ids {sorted(ks)})")
    return ks, pid, names[pid]


def bulk_rows(values: list, width: int, check_one: Callable[[int], np.ndarray],
              valid: Callable[[np.ndarray], bool]) -> np.ndarray:
    """Stack per-record number lists into an (N, width) float64 array with one numpy call. If anything
    is off (ragged, non-numeric, non-finite, not `valid`), check record by record with `check_one(j)`
    so that the first bad record raises its precise DataError."""
    if values:
        try:
            arr = np.array(values)
        except (ValueError, TypeError):
            arr = None
        if arr is not None and arr.ndim == 2 and arr.shape[1] == width and arr.dtype.kind in "iuf":
            arr = arr.astype(np.float64)
            if np.isfinite(arr).all() and valid(arr):
                return arr
    out = np.zeros((len(values), width))
    for j in range(len(values)):
        out[j] = check_one(j).reshape(-1)
    return out


def _boxes_ok(arr: np.ndarray) -> bool:
    return bool((arr[:, 2:4] >= 0).all())


def _visibility_ok(arr: np.ndarray) -> bool:
    v = arr[:, 2::3]
    return bool(((v == 0) | (v == 1) | (v == 2)).all())


def sanitize_boxes(b: np.ndarray, width: np.ndarray | int, height: np.ndarray | int) -> np.ndarray:
    """Standard COCO top-down box cleaning (clip to the image; see the module docstring).
    b: (N, 4) x, y, w, h; width/height: (N,) or scalars. Returns (N, 4) float64."""
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    W, H = np.asarray(width, np.float64), np.asarray(height, np.float64)
    x1, y1 = np.maximum(0.0, b[:, 0]), np.maximum(0.0, b[:, 1])
    x2 = np.minimum(W - 1.0, x1 + np.maximum(0.0, b[:, 2] - 1.0))
    y2 = np.minimum(H - 1.0, y1 + np.maximum(0.0, b[:, 3] - 1.0))
    return np.stack([x1, y1, x2 - x1, y2 - y1], axis=1)


def sanitize_box(b: np.ndarray, width: int, height: int) -> np.ndarray:
    """`sanitize_boxes` for one (4,) box."""
    return sanitize_boxes(b, width, height)[0]


def outside(b: np.ndarray, width: np.ndarray | int, height: np.ndarray | int) -> np.ndarray:
    """True where box [x, y, w, h] has no overlap with the image [0, W) x [0, H). b: (4,) or (N, 4)."""
    b = np.asarray(b, dtype=np.float64)
    x, y, w, h = b[..., 0], b[..., 1], b[..., 2], b[..., 3]
    return (x >= width) | (y >= height) | (x + w <= 0) | (y + h <= 0)


def make_image_source(image_root: str | Path | None, images: Mapping[str, np.ndarray] | None) -> ImageSource | None:
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


def image_available(source: ImageSource | None, file_name: str) -> bool:
    if isinstance(source, MemoryImageSource):
        return file_name in source.images
    if isinstance(source, DirectoryImageSource):
        return (source.root / file_name).is_file()
    return True


def image_size(source: ImageSource | None, file_name: str) -> tuple[int, int] | None:
    """(width, height) of an image without decoding it where possible (JPEG/PNG header); None if unknown."""
    if isinstance(source, MemoryImageSource):
        img = source.images.get(file_name)
        return None if img is None else (int(np.shape(img)[1]), int(np.shape(img)[0]))
    if not isinstance(source, DirectoryImageSource):
        return None
    path = source.root / file_name
    if not path.is_file():
        return None
    size = _header_size(path)
    if size is None:
        import cv2

        img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        size = None if img is None else (int(img.shape[1]), int(img.shape[0]))
    return size


def _header_size(path: Path) -> tuple[int, int] | None:
    """Width, height from a PNG IHDR or a JPEG SOFn segment; None for anything else."""
    with open(path, "rb") as f:
        head = f.read(24)
        if head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) >= 24:
            w, h = struct.unpack(">II", head[16:24])
            return int(w), int(h)
        if head[:2] != b"\xff\xd8":
            return None
        from posenas_core.data.checks import jpeg_frame_size

        return jpeg_frame_size(f)


def no_persons_message(name: str, n_images: int, n_annotations: int, min_keypoints: int, kind: str = "") -> str:
    """The DataError message of a split that gives no person record (shared with posetrack.py)."""
    labelled = f" and >= {min_keypoints} labelled keypoint(s)" if min_keypoints > 0 else ""
    return (f"{name}: no persons: {n_images} images and {n_annotations} annotations, none a {kind}person with a "
            f"non-empty box{labelled}; a split to train or evaluate on needs at least one (allow_empty=True reads "
            f"it anyway)")


def _source_and_name(ann: Any, name: str | None, what: str) -> tuple[Any, str]:
    """(loaded data, display name) for a path or an in-memory object."""
    if isinstance(ann, (str, Path)):
        p = Path(ann)
        return load_json(p, what), name or p.name
    return ann, name or f"<in-memory {what}>"


# ---------------------------------------------------------------------------------------------
# COCO
# ---------------------------------------------------------------------------------------------

def _check_images(data: Mapping, name: str, *, need_size: bool = True) -> dict[int, dict]:
    """Validate 'images' -> {image_id: {'file_name', 'width', 'height'}} (size 0 = unknown when not needed)."""
    out: dict[int, dict] = {}
    for i, im in enumerate(data["images"]):
        loc = where(name, "images", i, im)
        iid = get_int(im, "id", loc)
        if iid in out:
            raise DataError(f"{loc}: duplicate image id {iid}")
        fn = im.get("file_name")
        if not isinstance(fn, str) or not fn:
            raise DataError(f"{loc}: 'file_name' must be a non-empty string, got {fn!r}")
        w = get_int(im, "width", loc, required=need_size, default=0)
        h = get_int(im, "height", loc, required=need_size, default=0)
        if need_size and (w <= 0 or h <= 0):
            raise DataError(f"{loc}: image size must be positive, got width={w} height={h}")
        out[iid] = {"file_name": fn, "width": w, "height": h}
    return out


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
    images = _check_images(data, name)
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
        aid = get_int(a, "id", loc)
        if aid in seen:
            raise DataError(f"{loc}: duplicate annotation id {aid} (also annotations[{seen[aid]}])")
        seen[aid] = i
        iid = get_int(a, "image_id", loc)
        if iid not in images:
            raise DataError(f"{loc}: 'image_id' {iid} is not in 'images'")
        cid = get_int(a, "category_id", loc)
        if cid not in ks:
            raise DataError(f"{loc}: 'category_id' {cid} is not in 'categories' (ids {sorted(ks)})")
        if "bbox" not in a:
            raise DataError(f"{loc}: missing 'bbox'")
        raw_boxes.append(a["bbox"])
        if "keypoints" in a:
            raw_kps[cid][0].append(i)
            raw_kps[cid][1].append(a["keypoints"])
        elif cid == pid:
            raise DataError(f"{loc}: missing 'keypoints' ({ks[cid]} keypoints x 3 numbers expected)")
        if "area" in a:
            area[i], has_area[i] = get_number(a, "area", loc), True
            if area[i] < 0:
                raise DataError(f"{loc}: 'area' is {area[i]:g}, must be >= 0")
        if "num_keypoints" in a:
            nk[i] = get_int(a, "num_keypoints", loc)
        if "iscrowd" in a:
            crowd[i] = get_int(a, "iscrowd", loc)
            if crowd[i] not in (0, 1):
                raise DataError(f"{loc}: 'iscrowd' is {crowd[i]}, allowed 0 or 1")
        ids[i], iids[i], cats[i] = aid, iid, cid

    boxes = bulk_rows(raw_boxes, 4, lambda j: check_bbox(raw_boxes[j], locs[j]), _boxes_ok)
    keypoints, counted = {}, np.zeros(n, np.int64)
    for cid, (rows, vals) in raw_kps.items():
        k = ks[cid]
        arr = bulk_rows(vals, 3 * k, lambda j: check_keypoints(vals[j], k, locs[rows[j]]), _visibility_ok)
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


def read_detections(det: str | Path | list, coco: dict, score_thr: float = 0.0, *,
                    name: str | None = None, keypoint_count: int | None = None) -> list[PersonRecord]:
    """Person records from COCO detection results ``[{image_id, category_id, bbox, score}, ...]``.

    `coco` is the ground-truth dict the detections refer to (for file names and image sizes).
    Keeps category == the person category (1 in COCO) and score >= `score_thr`; records have all-zero
    keypoints (K from the person category, or `keypoint_count`), ann_id -1, the detection score, and
    area = box area. Boxes are used as given (no clipping); zero-area boxes are dropped; a box completely
    outside its image is a DataError.
    """
    dets, dname = _source_and_name(det, name, "detection file")
    cname = "<ground truth>"
    check_top(coco, cname)
    ks, pid, _ = check_categories(coco, cname)
    images = _check_images(coco, cname)
    k = keypoint_count or ks[pid]
    return _detection_records(dets, dname, images, pid, k, float(score_thr))


def _detection_records(dets: Any, dname: str, images: dict[int, dict], pid: int, k: int,
                       score_thr: float) -> list[PersonRecord]:
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
    boxes = bulk_rows(raw_boxes, 4, lambda j: check_bbox(raw_boxes[j], locs[j]), _boxes_ok)
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
    data, dname = _source_and_name(ann, name, "COCO annotation file")
    source = make_image_source(image_root, images)
    if check_images and source is None:
        raise ConfigError("check_images=True needs image_root or images")
    imgs, ks, pid, kp_names, A = _check_coco(data, dname)
    k = ks[pid]

    if detections is not None:
        det_data, det_name = _source_and_name(detections, None, "detection file")
        records = _detection_records(det_data, det_name, imgs, pid, k, float(det_score_thr))
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
