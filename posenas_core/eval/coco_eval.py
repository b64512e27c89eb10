"""COCO keypoint evaluation: OKS AP / AR with pycocotools (or faster-coco-eval), plus small helpers.

Conventions
-----------
- Ground truth is a COCO keypoint dict (``images``, ``annotations``, ``categories``) or a path to one.
  Annotations need ``image_id``, ``category_id``, ``keypoints`` (3K numbers: x, y, v) and ``bbox``
  (xywh). Missing ``iscrowd`` defaults to 0, missing ``num_keypoints`` is counted from ``v > 0`` and
  missing ``area`` falls back to the bbox area ``w*h`` (COCO's own ``area`` is the segmentation area,
  which is smaller: give it when you have it). Annotation ids are renumbered 1..N on an internal copy,
  because pycocotools treats an annotation id of 0 as "unmatched".
- Results are the COCO keypoint results format: ``[{image_id, category_id, keypoints (3K), score}]``.
  Only these four fields are passed on, so the detection's area (used for the APm / APl split of
  unmatched detections) is always the keypoint extent, as in COCO's own keypoint results; a ``bbox``
  field in a result does not switch pycocotools into its box branch.
- The input dicts and lists are never modified.
- Empty results give all ten stats = 0.0 (pycocotools' ``loadRes`` crashes on an empty list, and
  COCOeval would report -1 "undefined"; zero is the honest score of predicting nothing).
- A stat that COCO cannot define (e.g. APm when no GT person is of medium area) stays -1, as
  COCOeval reports it, so that "undefined" is not mistaken for a zero score.
- No evaluable ground truth (no non-crowd annotation with a labelled keypoint on the evaluated
  images) raises `DataError`: AP is undefined there (COCOeval would silently return -1).

The instance score rule of `make_results` is the SimpleBaseline / HRNet / EvoPose2D one:
``score = box_score * mean(joint scores > 0.2)`` (0 when no joint score exceeds 0.2).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from posenas_core.data.keypoints import NUM_KEYPOINTS, OKS_SIGMAS
from posenas_core.errors import ConfigError, DataError

__all__ = [
    "STAT_NAMES", "BACKENDS", "load_gt", "load_results", "evaluate_keypoints", "oks", "instance_score",
    "make_results",
]

STAT_NAMES: tuple[str, ...] = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")
BACKENDS: tuple[str, ...] = ("pycocotools", "faster", "auto")
JOINT_SCORE_THRESHOLD = 0.2  # SimpleBaseline / EvoPose2D `in_vis_thre` / `SCORE_THRESH`


# --------------------------------------------------------------------------------------------- I/O


def _load_json(obj: Any, what: str, expect: type) -> tuple[Any, str]:
    """Return (object, name used in messages); read JSON when `obj` is a path."""
    if isinstance(obj, (str, Path)):
        path = Path(obj)
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except FileNotFoundError:
            raise DataError(f"{what} file {path} does not exist") from None
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
            raise DataError(f"{what} file {path} is not readable JSON: {e}") from None
        name = f"{what} file {path}"
    else:
        data, name = obj, what
    if not isinstance(data, expect):
        raise DataError(f"{name} must be a JSON {expect.__name__}, got {type(data).__name__}")
    return data, name


def load_gt(gt: dict | str | Path) -> tuple[dict, str]:
    """Load a COCO ground-truth dict (or path) and check its top-level fields."""
    data, name = _load_json(gt, "gt", dict)
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise DataError(f"{name}: field '{key}' must be a list (a COCO keypoint dataset has "
                            "'images', 'annotations' and 'categories')")
    return data, name


def load_results(results: list[dict] | str | Path) -> tuple[list, str]:
    """Load a COCO keypoint results list (or path to a JSON list)."""
    return _load_json(results, "results", list)


# ----------------------------------------------------------------------------------- validation


def _resolve_sigmas(sigmas: Sequence[float] | np.ndarray | None, k: int) -> np.ndarray:
    if sigmas is None:
        if k != NUM_KEYPOINTS:
            raise ConfigError(f"sigmas: the default OKS_SIGMAS are for {NUM_KEYPOINTS} keypoints; "
                              f"this dataset has {k}, pass {k} sigmas")
        return np.asarray(OKS_SIGMAS, dtype=np.float64)
    s = np.asarray(sigmas, dtype=np.float64).reshape(-1)
    if s.size != k or not np.all(np.isfinite(s)) or np.any(s <= 0):
        raise ConfigError(f"sigmas must be {k} positive finite numbers (one per keypoint), got {s.tolist()}")
    return s


def _num_keypoints(gt: dict, name: str) -> int:
    """K from the first category with 'keypoints' names, else from the first annotation."""
    for cat in gt["categories"]:
        if isinstance(cat, dict) and isinstance(cat.get("keypoints"), list) and cat["keypoints"]:
            return len(cat["keypoints"])
    for ann in gt["annotations"]:
        kp = ann.get("keypoints") if isinstance(ann, dict) else None
        if isinstance(kp, list) and kp and len(kp) % 3 == 0:
            return len(kp) // 3
    raise DataError(f"{name}: cannot tell the number of keypoints (no category lists 'keypoints' "
                    "and no annotation has a 'keypoints' list)")


def _normalise_gt(gt: dict, name: str, k: int) -> tuple[dict, set]:
    """A checked copy of the GT dict that pycocotools can evaluate (see module docstring), and the
    set of category ids."""
    images = []
    for i, img in enumerate(gt["images"]):
        if not isinstance(img, dict) or "id" not in img:
            raise DataError(f"{name}: images[{i}] has no 'id'")
        images.append(img)
    image_ids = {img["id"] for img in images}
    cat_ids = set()
    for i, cat in enumerate(gt["categories"]):
        if not isinstance(cat, dict) or "id" not in cat:
            raise DataError(f"{name}: categories[{i}] has no 'id'")
        cat_ids.add(cat["id"])
    anns = []
    for i, ann in enumerate(gt["annotations"]):
        where = f"{name}: annotations[{i}] (id {ann.get('id') if isinstance(ann, dict) else '?'})"
        if not isinstance(ann, dict):
            raise DataError(f"{where} must be a dict")
        for key in ("image_id", "category_id", "keypoints", "bbox"):
            if key not in ann:
                raise DataError(f"{where} has no '{key}'")
        if ann["image_id"] not in image_ids:
            raise DataError(f"{where}: image_id {ann['image_id']!r} is not in 'images'")
        kp = ann["keypoints"]
        if not isinstance(kp, (list, tuple)) or len(kp) != 3 * k:
            n = len(kp) if isinstance(kp, (list, tuple)) else type(kp).__name__
            raise DataError(f"{where}: 'keypoints' has {n} values, expected {3 * k} ({k} joints x 3)")
        bbox = ann["bbox"]
        if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
            raise DataError(f"{where}: 'bbox' must be [x, y, w, h], got {bbox!r}")
        new = dict(ann)
        new["id"] = len(anns) + 1
        new.setdefault("iscrowd", 0)
        if "num_keypoints" not in new:
            new["num_keypoints"] = int(np.count_nonzero(np.asarray(kp, dtype=np.float64)[2::3] > 0))
        if "area" not in new:
            new["area"] = float(bbox[2]) * float(bbox[3])
        anns.append(new)
    out = {k_: v for k_, v in gt.items() if k_ not in ("images", "annotations", "categories")}
    out.update(images=images, annotations=anns, categories=list(gt["categories"]))
    return out, cat_ids


def _check_results(results: list, name: str, image_ids: set, cat_ids: set, k: int) -> list[dict]:
    """Checked, minimal copies of the results (image_id, category_id, keypoints, score)."""
    out = []
    for i, r in enumerate(results):
        where = f"{name}[{i}]"
        if not isinstance(r, dict):
            raise DataError(f"{where} must be a dict with image_id, category_id, keypoints, score")
        for key in ("image_id", "category_id", "keypoints", "score"):
            if key not in r:
                raise DataError(f"{where} has no '{key}' (a keypoint result needs image_id, "
                                "category_id, keypoints, score)")
        if r["image_id"] not in image_ids:
            raise DataError(f"{where}: image_id {r['image_id']!r} is not an image of the ground truth "
                            f"({len(image_ids)} images)")
        if r["category_id"] not in cat_ids:
            raise DataError(f"{where}: category_id {r['category_id']!r} is not a ground-truth category "
                            f"(allowed: {sorted(cat_ids)})")
        kp = r["keypoints"]
        try:
            arr = np.asarray(kp, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise DataError(f"{where}: 'keypoints' must be {3 * k} numbers") from None
        if arr.size != 3 * k:
            raise DataError(f"{where}: 'keypoints' has {arr.size} values, expected {3 * k} "
                            f"({k} joints x 3: x, y, score)")
        if not np.all(np.isfinite(arr)):
            raise DataError(f"{where}: 'keypoints' contains NaN or inf")
        try:
            score = float(r["score"])
        except (TypeError, ValueError):
            raise DataError(f"{where}: 'score' must be a number, got {r['score']!r}") from None
        if not math.isfinite(score):
            raise DataError(f"{where}: 'score' must be finite, got {score}")
        out.append({"image_id": r["image_id"], "category_id": r["category_id"],
                    "keypoints": arr.tolist(), "score": score})
    return out


# ------------------------------------------------------------------------------------- backends


def _faster_available() -> bool:
    try:
        import faster_coco_eval  # noqa: F401
    except ImportError:
        return False
    return True


def _run_cocoeval(gt: dict, dts: list[dict], sigmas: np.ndarray, img_ids: list, backend: str) -> np.ndarray:
    """Run COCOeval (keypoints) and return its 10 stats."""
    if backend == "faster":
        try:
            from faster_coco_eval import COCO, COCOeval_faster
        except ImportError:
            raise ConfigError("backend='faster' needs the faster-coco-eval package "
                              "(pip install faster-coco-eval, or the 'fast' extra); "
                              "use backend='pycocotools' or 'auto'") from None
        coco_gt = COCO(gt)
        coco_dt = coco_gt.loadRes(dts)
        ev = COCOeval_faster(coco_gt, coco_dt, iouType="keypoints", kpt_oks_sigmas=sigmas.tolist())
    else:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(dts)
        ev = COCOeval(coco_gt, coco_dt, iouType="keypoints")
    ev.params.kpt_oks_sigmas = np.asarray(sigmas, dtype=np.float64)
    try:
        ev.params.imgIds = sorted(img_ids)
    except TypeError:  # mixed id types
        ev.params.imgIds = sorted(img_ids, key=str)
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return np.asarray(ev.stats, dtype=np.float64)[:10]


def evaluate_keypoints(
    gt: dict | str | Path,
    results: list[dict] | str | Path,
    *,
    sigmas: Sequence[float] | np.ndarray | None = None,
    backend: str = "pycocotools",
    image_ids: Sequence | None = None,
    quiet: bool = True,
) -> dict[str, float]:
    """COCO OKS keypoint AP / AR.

    Args:
        gt: COCO keypoint ground truth (dict or JSON path).
        results: COCO keypoint results (list or JSON path).
        sigmas: per-keypoint OKS sigmas; default `OKS_SIGMAS` (K = 17 only; required otherwise).
        backend: "pycocotools", "faster" (faster-coco-eval's COCOeval_faster) or "auto" (faster when
            importable). Both give the same numbers.
        image_ids: evaluate only these images (default: all GT images except those marked
            ``"is_labeled": false``, PoseTrack's unlabelled frames); results on other images are
            dropped (not counted as false positives).
        quiet: silence the evaluators' prints.

    Returns:
        {name: float for name in STAT_NAMES} plus "n_predictions" (results evaluated).

    Raises:
        DataError: malformed GT / results (the message names the entry), results on unknown images,
            wrong keypoint counts, or no evaluable GT person on the evaluated images.
        ConfigError: unknown backend, bad sigmas, backend "faster" without faster-coco-eval.
    """
    if backend not in BACKENDS:
        raise ConfigError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        backend = "faster" if _faster_available() else "pycocotools"
    gt_raw, gt_name = load_gt(gt)
    res_raw, res_name = load_results(results)
    k = _num_keypoints(gt_raw, gt_name)
    sig = _resolve_sigmas(sigmas, k)
    gt_n, cat_ids = _normalise_gt(gt_raw, gt_name, k)
    all_img_ids = {img["id"] for img in gt_n["images"]}
    if image_ids is None:  # PoseTrack: unlabelled frames are not scored
        eval_ids = {img["id"] for img in gt_n["images"] if img.get("is_labeled", True) is not False}
    else:
        eval_ids = set(image_ids)
        unknown = sorted(eval_ids - all_img_ids, key=str)
        if unknown:
            raise DataError(f"image_ids: {unknown[:5]} {'...' if len(unknown) > 5 else ''}are not "
                            f"images of {gt_name}")
    n_eval_gt = sum(1 for a in gt_n["annotations"]
                    if a["image_id"] in eval_ids and a["num_keypoints"] > 0 and not a["iscrowd"])
    if n_eval_gt == 0:
        raise DataError(f"{gt_name}: no non-crowd annotation with a labelled keypoint on the "
                        f"{len(eval_ids)} evaluated images; OKS AP is undefined")
    dts = _check_results(res_raw, res_name, all_img_ids, cat_ids, k)
    dts = [d for d in dts if d["image_id"] in eval_ids]
    stats = np.zeros(10)
    if dts:
        sink = io.StringIO()
        with contextlib.redirect_stdout(sink) if quiet else contextlib.nullcontext():
            stats = _run_cocoeval(gt_n, dts, sig, list(eval_ids), backend)
    out = {name: float(v) for name, v in zip(STAT_NAMES, stats)}
    out["n_predictions"] = len(dts)
    return out


# -------------------------------------------------------------------------------------- helpers


def oks(pred: np.ndarray, gt: np.ndarray, area: float, sigmas: Sequence[float] | None = None) -> float:
    """Object keypoint similarity of one prediction to one GT person (the COCO formula).

    ``OKS = mean over labelled GT joints (v > 0) of exp(-d^2 / (2 * area * (2*sigma)^2))``,
    with ``area`` the GT area (pycocotools adds eps = np.spacing(1)).

    Args:
        pred: (K, 2) or (K, 3) predicted x, y (a third column is ignored).
        gt: (K, 3) GT x, y, v.
        area: GT object area (> 0).
        sigmas: (K,) sigmas; default OKS_SIGMAS for K = 17.
    Returns:
        OKS in [0, 1]; NaN when the GT has no labelled joint (pycocotools then falls back to a
        box-distance rule that is meaningless for a single pair).
    """
    p = np.asarray(pred, dtype=np.float64)
    g = np.asarray(gt, dtype=np.float64)
    if g.ndim != 2 or g.shape[1] != 3:
        raise DataError(f"oks: gt must have shape (K, 3) (x, y, v), got {g.shape}")
    if p.ndim != 2 or p.shape[0] != g.shape[0] or p.shape[1] not in (2, 3):
        raise DataError(f"oks: pred must have shape ({g.shape[0]}, 2) or ({g.shape[0]}, 3), got {p.shape}")
    s = _resolve_sigmas(sigmas, g.shape[0])
    if not (area > 0):
        raise DataError(f"oks: area must be > 0, got {area}")
    vis = g[:, 2] > 0
    if not vis.any():
        return float("nan")
    d2 = np.sum((p[:, :2] - g[:, :2]) ** 2, axis=1)  # (K,)
    e = d2 / (2 * s) ** 2 / (area + np.spacing(1)) / 2
    return float(np.mean(np.exp(-e[vis])))


def instance_score(joint_scores: np.ndarray, box_score: float = 1.0, thr: float = JOINT_SCORE_THRESHOLD) -> float:
    """SimpleBaseline / EvoPose2D instance score: box_score * mean of joint scores > thr (0 if none)."""
    js = np.asarray(joint_scores, dtype=np.float64).reshape(-1)
    keep = js > thr
    return float(box_score) * (float(js[keep].mean()) if keep.any() else 0.0)


def make_results(
    image_ids: Sequence,
    keypoints: np.ndarray,
    box_scores: Sequence[float] | np.ndarray | None = None,
    *,
    joint_scores: np.ndarray | None = None,
    category_id: int = 1,
    score_thr: float = JOINT_SCORE_THRESHOLD,
) -> list[dict]:
    """Build a COCO keypoint results list.

    Args:
        image_ids: (N,) image id per person.
        keypoints: (N, K, 3) with the joint score in column 3, or (N, K, 2) with `joint_scores`.
        box_scores: (N,) detector scores (default 1: GT boxes).
        joint_scores: (N, K) when `keypoints` has 2 columns.
        category_id: COCO category of the persons.
        score_thr: joint-score threshold of the instance score rule.
    Returns:
        [{image_id, category_id, keypoints: 3K floats (x, y, joint score), score}] with
        ``score = box_score * mean(joint scores > score_thr)`` (SimpleBaseline / EvoPose2D rule).
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    n = len(image_ids)
    if kp.ndim != 3 or kp.shape[0] != n or kp.shape[2] not in (2, 3):
        raise DataError(f"make_results: keypoints must be (N={n}, K, 3) or (N, K, 2), got {kp.shape}")
    if kp.shape[2] == 2:
        if joint_scores is None:
            raise DataError("make_results: keypoints are (N, K, 2): pass joint_scores (N, K)")
        js = np.asarray(joint_scores, dtype=np.float64)
        if js.shape != kp.shape[:2]:
            raise DataError(f"make_results: joint_scores must be {kp.shape[:2]}, got {js.shape}")
        kp = np.concatenate([kp, js[..., None]], axis=2)
    elif joint_scores is not None:
        raise DataError("make_results: keypoints already carry scores in column 3; "
                        "do not also pass joint_scores")
    bs = np.ones(n) if box_scores is None else np.asarray(box_scores, dtype=np.float64).reshape(-1)
    if bs.shape != (n,):
        raise DataError(f"make_results: box_scores must have {n} values, got {bs.shape}")
    out = []
    for i in range(n):
        iid = image_ids[i]
        iid = iid.item() if isinstance(iid, np.generic) else iid
        out.append({
            "image_id": iid,
            "category_id": int(category_id),
            "keypoints": kp[i].reshape(-1).tolist(),
            "score": instance_score(kp[i, :, 2], bs[i], score_thr),
        })
    return out
