"""Checks of COCO-format JSON fields and the box rules shared by the readers (coco, posetrack, detections).

Each check returns the clean value or raises ONE `DataError` whose message starts with the location
(`where`: ``person_keypoints_val.json: annotations[12] (id 345)``) and names the field and what is
allowed, e.g. ``...: 'keypoints' has 48 numbers, expected 51 (17 keypoints x 3)``.

Conventions
-----------
- Boxes are COCO ``[x, y, w, h]`` in image pixels; keypoints are flat ``[x1, y1, v1, ...]``
  (3*K numbers, K from the category's 'keypoints' list, 17 if the category has none) with
  visibility v in {0 absent, 1 occluded, 2 visible}.
- Ground-truth boxes are sanitised the standard (HRNet / mmpose) way (`sanitize_boxes`)::

      x1 = max(0, x); y1 = max(0, y)
      x2 = min(W-1, x1 + max(0, w-1)); y2 = min(H-1, y1 + max(0, h-1))
      box = [x1, y1, x2-x1, y2-y1]

- A missing 'area' is the bbox area * 0.53 (`AREA_FROM_BOX`, a typical person segment / box area ratio).
"""

from __future__ import annotations

import json
import numbers
from pathlib import Path
from collections.abc import Callable, Container, Mapping
from typing import Any

import numpy as np

from posenas_core.data.keypoints import COCO_KEYPOINTS, NUM_KEYPOINTS
from posenas_core.errors import DataError

__all__ = [
    "AREA_FROM_BOX", "load_json", "is_int", "is_number", "is_mapping", "where", "check_top", "get_int",
    "get_number", "check_bbox", "check_keypoints", "check_categories", "bulk_rows", "boxes_ok", "visibility_ok",
    "check_image", "images_by_id", "check_annotation", "get_area", "sanitize_boxes", "sanitize_box", "outside",
    "no_persons_message", "source_and_name",
]

# 'area' used when an annotation has none: bbox area times this ratio (documented above).
AREA_FROM_BOX = 0.53
_TOP_KEYS = ("images", "annotations", "categories")


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
    """True for an integer (a bool is not one)."""
    t = type(v)
    return t is int or (t is not bool and isinstance(v, numbers.Integral))


def is_number(v: Any) -> bool:
    """True for a real number (a bool is not one)."""
    t = type(v)
    return t is float or t is int or (t is not bool and isinstance(v, numbers.Real))


def is_mapping(v: Any) -> bool:
    """True for a dict or another Mapping."""
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
    """obj[key] as an int (640.0 is accepted as 640); a missing key is a DataError if `required`, else `default`."""
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
    """obj[key] (present) as a float; DataError unless it is a finite number."""
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


def boxes_ok(arr: np.ndarray) -> bool:
    """Every (x, y, w, h) row has w, h >= 0 (for `bulk_rows`)."""
    return bool((arr[:, 2:4] >= 0).all())


def visibility_ok(arr: np.ndarray) -> bool:
    """Every visibility of the flat keypoint rows is 0, 1 or 2 (for `bulk_rows`)."""
    v = arr[:, 2::3]
    return bool(((v == 0) | (v == 1) | (v == 2)).all())


def check_image(im: Mapping, loc: where, seen: Container[int], *,
                need_size: bool = True) -> tuple[int, str, int, int]:
    """(id, file_name, width, height) of one 'images' entry: an integer id not in `seen`, a non-empty file_name,
    integer width and height (`need_size`: required and > 0; else optional, 0 = unknown, and >= 0)."""
    iid = get_int(im, "id", loc)
    if iid in seen:
        raise DataError(f"{loc}: duplicate image id {iid}")
    fn = im.get("file_name")
    if not isinstance(fn, str) or not fn:
        raise DataError(f"{loc}: 'file_name' must be a non-empty string, got {fn!r}")
    w = get_int(im, "width", loc, required=need_size, default=0)
    h = get_int(im, "height", loc, required=need_size, default=0)
    if min(w, h) < (1 if need_size else 0):
        raise DataError(f"{loc}: image size must be positive, got width={w} height={h}")
    return iid, fn, w, h


def images_by_id(data: Mapping, name: str) -> dict[int, dict]:
    """'images' of a COCO dict (sizes required) -> {image_id: {'file_name', 'width', 'height'}}."""
    out: dict[int, dict] = {}
    for i, im in enumerate(data["images"]):
        iid, fn, w, h = check_image(im, where(name, "images", i, im), out)
        out[iid] = {"file_name": fn, "width": w, "height": h}
    return out


def check_annotation(a: Mapping, loc: where, seen: dict[int, int], images: Container[int], ks: Mapping[int, int],
                     images_name: str = "'images'") -> tuple[int, int, int]:
    """(id, image_id, category_id) of one annotation: an integer id not in `seen` (then recorded there as
    id -> index), an image_id in `images` (called `images_name` in the message), a category_id in `ks`."""
    aid = get_int(a, "id", loc)
    if aid in seen:
        raise DataError(f"{loc}: duplicate annotation id {aid} (also annotations[{seen[aid]}])")
    seen[aid] = loc.index
    iid = get_int(a, "image_id", loc)
    if iid not in images:
        raise DataError(f"{loc}: 'image_id' {iid} is not in {images_name}")
    cid = get_int(a, "category_id", loc)
    if cid not in ks:
        raise DataError(f"{loc}: 'category_id' {cid} is not in 'categories' (ids {sorted(ks)})")
    return aid, iid, cid


def get_area(a: Mapping, loc: where) -> float | None:
    """The annotation's 'area' (a finite number >= 0), or None when it has none."""
    if "area" not in a:
        return None
    area = get_number(a, "area", loc)
    if area < 0:
        raise DataError(f"{loc}: 'area' is {area:g}, must be >= 0")
    return area


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


def no_persons_message(name: str, n_images: int, n_annotations: int, min_keypoints: int, kind: str = "") -> str:
    """The DataError message of a split that gives no person record (shared with posetrack.py)."""
    labelled = f" and >= {min_keypoints} labelled keypoint(s)" if min_keypoints > 0 else ""
    return (f"{name}: no persons: {n_images} images and {n_annotations} annotations, none a {kind}person with a "
            f"non-empty box{labelled}; a split to train or evaluate on needs at least one (allow_empty=True reads "
            f"it anyway)")


def source_and_name(ann: Any, name: str | None, what: str) -> tuple[Any, str]:
    """(loaded data, display name) for a path or an in-memory object."""
    if isinstance(ann, (str, Path)):
        p = Path(ann)
        return load_json(p, what), name or p.name
    return ann, name or f"<in-memory {what}>"
