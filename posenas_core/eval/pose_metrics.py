"""PoseTrack-style per-joint AP table (as in poseval) and PCK.

Per-joint AP (`per_joint_stats`, `per_joint_ap`) follows poseval's ``evaluateAP`` /
``assignGTmulti`` (github.com/leonid-pishchulin/poseval), on COCO-format GT and results:

1. Images without any GT person annotation, or marked ``"is_labeled": false``, are skipped with
   their predictions (poseval's ``cleanupData``: PoseTrack's unlabelled frames). Results on images unknown to the GT raise.
2. GT joints with ``v > 0`` are labelled. If an image has PoseTrack ignore regions
   (``ignore_regions_x`` / ``ignore_regions_y``: lists of polygons), GT and predicted joints
   strictly inside one are dropped (poseval's ``removeIgnoredPoints``).
3. A predicted joint (x, y) is correct for a GT person when ``||pred - gt|| <= thr * head_size``.
   ``head_size = 0.6 * diagonal of the GT 'bbox_head'`` (PoseTrack). Without a head box (COCO) the
   head box is estimated as a square of side ``sqrt(w*h) / 4.5`` of the person bbox: a standing
   adult's box is about 7.5 head heights by 2.7 (geometric mean ~4.5), so this side is about one
   head height, like PoseTrack's head boxes, and it scales with the person as OKS's sqrt(area) does.
4. Person matching per image (poseval): PCKh[p, g] = correct joints of prediction p on GT g /
   labelled joints of g; each prediction keeps only its best GT; each GT then takes the prediction
   with the highest remaining PCKh (ties: the first); a GT whose best value is 0 stays unmatched.
   Joints of a matched prediction are TP when correct for its GT; all joints of unmatched
   predictions are FP (so are predicted joints where the GT joint is unlabelled).
5. Per joint, the predicted joints of all images are ranked by their joint score (result
   ``"scores"`` list if present, PoseTrack18 style, else column 3 of ``keypoints``; ties keep
   input order: a stable sort, where poseval's quicksort order is arbitrary), precision / recall
   are computed against the number of labelled GT joints, and AP is the area under the
   monotone-interpolated PR curve (VOC ap, poseval's ``VOCap``).
6. A joint with no labelled GT joint has AP NaN and is left out of the means (PoseTrack's ears).
   A group is the mean over its joints; "Total" is the mean over all joints (not over groups),
   as poseval's ``computeMetrics`` does.

Values are in [0, 1] (poseval prints percent) for consistency with the COCO AP of `coco_eval`.

A predicted joint stored as exactly (0, 0, 0) is "absent", as poseval's converter treats it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np

from posenas_core.data.keypoints import JOINT_GROUPS
from posenas_core.eval.coco_eval import load_gt, load_results
from posenas_core.errors import DataError

__all__ = ["head_size", "per_joint_stats", "group_means", "per_joint_ap", "bbox_norm", "pck"]

HEAD_SIZE_FACTOR = 0.6  # poseval getHeadSize: 0.6 * head-box diagonal
HEAD_SIDE_PER_SQRT_BOX = 1.0 / 4.5  # fallback head-box side = sqrt(w*h) / 4.5 of the person box


def head_size(ann: Mapping, where: str = "annotation") -> float:
    """PoseTrack head size of one GT annotation (see module docstring, item 3)."""
    hb = ann.get("bbox_head")
    if hb is not None and len(hb) == 4 and (hb[2] > 0 or hb[3] > 0):
        return HEAD_SIZE_FACTOR * float(np.hypot(hb[2], hb[3]))
    bb = ann.get("bbox")
    if bb is None or len(bb) != 4:
        raise DataError(f"{where}: needs 'bbox_head' or 'bbox' [x, y, w, h] to set the head size")
    if not (bb[2] > 0 and bb[3] > 0):
        raise DataError(f"{where}: 'bbox' {list(bb)} has no area and there is no 'bbox_head'; "
                        "cannot set the head size")
    side = np.sqrt(float(bb[2]) * float(bb[3])) * HEAD_SIDE_PER_SQRT_BOX
    return HEAD_SIZE_FACTOR * float(np.sqrt(2.0) * side)


def _ignore_polygons(img: Mapping) -> list[np.ndarray]:
    xs, ys = img.get("ignore_regions_x") or [], img.get("ignore_regions_y") or []
    polys = []
    for px, py in zip(xs, ys):
        if len(px) >= 3 and len(px) == len(py):
            polys.append(np.stack([px, py], axis=1).astype(np.float32).reshape(-1, 1, 2))
    return polys


def _inside_any(xy: np.ndarray, polys: list[np.ndarray]) -> np.ndarray:
    """(K,) bool: point strictly inside one of the polygons."""
    out = np.zeros(len(xy), dtype=bool)
    for k, (x, y) in enumerate(xy):
        out[k] = any(cv2.pointPolygonTest(p, (float(x), float(y)), False) > 0 for p in polys)
    return out


def _voc_ap(rec: np.ndarray, prec: np.ndarray) -> float:
    """Area under the monotone-interpolated precision/recall curve (poseval VOCap)."""
    mrec = np.concatenate([[0.0], rec, [1.0]])
    mpre = np.concatenate([[0.0], prec, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    i = np.flatnonzero(mrec[1:] != mrec[:-1]) + 1
    return float(np.sum((mrec[i] - mrec[i - 1]) * mpre[i]))


def _load(gt, results):
    gt_d, gt_name = load_gt(gt)
    res, res_name = load_results(results)
    return gt_d, gt_name, res, res_name


def per_joint_stats(
    gt: dict | str | Path,
    results: list[dict] | str | Path,
    *,
    thr: float = 0.5,
    min_joint_score: float | None = None,
) -> dict:
    """Per-joint PoseTrack AP with poseval's matching (module docstring).

    `min_joint_score`: predicted joints scoring below it are dropped before matching (PoseTrack
    submissions usually do this; poseval itself keeps every joint it is given). Default: keep all.

    Returns:
        {"ap": (K,), "precision": (K,), "recall": (K,)  (final precision / recall, all in [0, 1],
         NaN for joints without labelled GT), "n_gt": (K,) int labelled GT joints,
         "n_pred": (K,) int predicted joints, "n_images": evaluated images}.
    """
    if not (thr > 0):
        raise DataError(f"thr must be > 0 (a fraction of the head size), got {thr}")
    gt_d, gt_name, res, res_name = _load(gt, results)
    images = {}
    for i, img in enumerate(gt_d["images"]):
        if not isinstance(img, dict) or "id" not in img:
            raise DataError(f"{gt_name}: images[{i}] has no 'id'")
        images[img["id"]] = img
    gts_by_img: dict = defaultdict(list)
    k = None
    for i, ann in enumerate(gt_d["annotations"]):
        where = f"{gt_name}: annotations[{i}] (id {ann.get('id')})"
        if ann.get("image_id") not in images:
            raise DataError(f"{where}: image_id {ann.get('image_id')!r} is not in 'images'")
        kp = np.asarray(ann.get("keypoints", []), dtype=np.float64)
        if kp.size == 0 or kp.size % 3:
            raise DataError(f"{where}: 'keypoints' must be 3K numbers, got {kp.size}")
        if k is None:
            k = kp.size // 3
        elif kp.size != 3 * k:
            raise DataError(f"{where}: 'keypoints' has {kp.size} values, expected {3 * k}")
        gts_by_img[ann["image_id"]].append((kp.reshape(k, 3), head_size(ann, where)))
    if k is None:
        raise DataError(f"{gt_name}: no annotations; per-joint AP is undefined")
    preds_by_img: dict = defaultdict(list)
    for i, r in enumerate(res):
        where = f"{res_name}[{i}]"
        if not isinstance(r, dict) or "image_id" not in r or "keypoints" not in r:
            raise DataError(f"{where} must be a dict with 'image_id' and 'keypoints'")
        if r["image_id"] not in images:
            raise DataError(f"{where}: image_id {r['image_id']!r} is not an image of the ground truth "
                            f"({len(images)} images)")
        kp = np.asarray(r["keypoints"], dtype=np.float64).reshape(-1)
        if kp.size != 3 * k:
            raise DataError(f"{where}: 'keypoints' has {kp.size} values, expected {3 * k} ({k} joints x 3)")
        kp = kp.reshape(k, 3)
        if "scores" in r:
            js = np.asarray(r["scores"], dtype=np.float64).reshape(-1)
            if js.size != k:
                raise DataError(f"{where}: 'scores' has {js.size} values, expected {k} (one per joint)")
        else:
            js = kp[:, 2]
        present = ~np.all(kp == 0, axis=1)
        if min_joint_score is not None:
            present &= js >= min_joint_score
        preds_by_img[r["image_id"]].append((kp[:, :2], js, present))

    scores_all: list[list[np.ndarray]] = [[] for _ in range(k)]
    labels_all: list[list[np.ndarray]] = [[] for _ in range(k)]
    n_gt = np.zeros(k, dtype=np.int64)
    n_images = 0
    for img_id, gts in gts_by_img.items():  # images without GT are skipped (poseval cleanupData)
        if images[img_id].get("is_labeled", True) is False:
            continue
        n_images += 1
        preds = preds_by_img.get(img_id, [])
        polys = _ignore_polygons(images[img_id])
        g_xy = np.stack([g[0][:, :2] for g in gts])  # (G, K, 2)
        has_gt = np.stack([g[0][:, 2] > 0 for g in gts])  # (G, K)
        heads = np.array([g[1] for g in gts])  # (G,)
        if polys:
            for gi in range(len(gts)):
                has_gt[gi] &= ~_inside_any(g_xy[gi], polys)
        n_gt += has_gt.sum(0)
        if not preds:
            continue
        p_xy = np.stack([p[0] for p in preds])  # (P, K, 2)
        p_sc = np.stack([p[1] for p in preds])  # (P, K)
        has_pr = np.stack([p[2] for p in preds])  # (P, K)
        if polys:
            for pi in range(len(preds)):
                has_pr[pi] &= ~_inside_any(p_xy[pi], polys)
        d = np.linalg.norm(p_xy[:, None] - g_xy[None], axis=3) / heads[None, :, None]  # (P, G, K)
        valid = has_pr[:, None, :] & has_gt[None, :, :]
        match = valid & (d <= thr)  # (P, G, K)
        n_lab = has_gt.sum(1)  # (G,)
        pckh = match.sum(2).astype(np.float64)  # (P, G)
        pckh = np.where(n_lab[None] > 0, pckh / np.maximum(n_lab[None], 1), pckh)
        best = np.argmax(pckh, axis=1)  # (P,) each prediction keeps its best GT only
        keep = np.zeros_like(pckh)
        keep[np.arange(len(preds)), best] = pckh[np.arange(len(preds)), best]
        pr_to_gt = np.argmax(keep, axis=0)  # (G,)
        pr_to_gt[np.max(keep, axis=0) == 0] = -1
        for pi in range(len(preds)):
            gi = np.flatnonzero(pr_to_gt == pi)
            lab = match[pi, gi[0]] if gi.size else np.zeros(k, dtype=bool)
            for j in np.flatnonzero(has_pr[pi]):
                scores_all[j].append(p_sc[pi, j:j + 1])
                labels_all[j].append(lab[j:j + 1])

    ap = np.full(k, np.nan)
    pre = np.full(k, np.nan)
    rec = np.full(k, np.nan)
    n_pred = np.zeros(k, dtype=np.int64)
    for j in range(k):
        s = np.concatenate(scores_all[j]) if scores_all[j] else np.zeros(0)
        lab = np.concatenate(labels_all[j]) if labels_all[j] else np.zeros(0, dtype=bool)
        n_pred[j] = s.size
        if n_gt[j] == 0:
            continue
        if s.size == 0:
            ap[j] = pre[j] = rec[j] = 0.0
            continue
        order = np.argsort(-s, kind="stable")
        tp = np.cumsum(lab[order])
        recall = tp / n_gt[j]
        precision = tp / np.arange(1, s.size + 1)
        ap[j] = _voc_ap(recall, precision)
        pre[j], rec[j] = precision[-1], recall[-1]
    return {"ap": ap, "precision": pre, "recall": rec, "n_gt": n_gt, "n_pred": n_pred, "n_images": n_images}


def group_means(values: np.ndarray, groups: Mapping[str, Sequence[int]] = JOINT_GROUPS) -> dict[str, float]:
    """{group: nanmean over its joints, ..., "Total": nanmean over all joints} (NaN if all NaN)."""
    v = np.asarray(values, dtype=np.float64)
    out = {}
    for name, idx in groups.items():
        idx = list(idx)
        if any(i < 0 or i >= v.size for i in idx):
            raise DataError(f"groups['{name}']: joint indices {idx} out of range for {v.size} joints")
        sel = v[idx]
        out[name] = float(np.nanmean(sel)) if np.any(~np.isnan(sel)) else float("nan")
    out["Total"] = float(np.nanmean(v)) if np.any(~np.isnan(v)) else float("nan")
    return out


def per_joint_ap(
    gt: dict | str | Path,
    results: list[dict] | str | Path,
    *,
    thr: float = 0.5,
    groups: Mapping[str, Sequence[int]] = JOINT_GROUPS,
    min_joint_score: float | None = None,
) -> dict[str, float]:
    """PoseTrack / poseval AP table: {"Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle",
    "Total"} in [0, 1]. See the module docstring for the exact rules; `per_joint_stats` gives the
    per-joint values."""
    stats = per_joint_stats(gt, results, thr=thr, min_joint_score=min_joint_score)
    return group_means(stats["ap"], groups)


# ------------------------------------------------------------------------------------------ PCK


def bbox_norm(bboxes: np.ndarray) -> np.ndarray:
    """PCK normaliser of person boxes: max(w, h). bboxes (N, 4) xywh -> (N,)."""
    b = np.asarray(bboxes, dtype=np.float64)
    if b.ndim != 2 or b.shape[1] != 4:
        raise DataError(f"bbox_norm: bboxes must be (N, 4) xywh, got {b.shape}")
    return np.maximum(b[:, 2], b[:, 3])


def pck(pred: np.ndarray, gt: np.ndarray, norm: np.ndarray, thr: float = 0.05) -> dict:
    """Percentage of correct keypoints: a labelled joint (v > 0) is correct when its distance to the
    prediction is <= thr * norm of its sample.

    Args:
        pred: (N, K, 2) (or (N, K, 3): the third column is ignored).
        gt: (N, K, 3) x, y, v.
        norm: (N,) per-sample normaliser (e.g. `bbox_norm`, or head size for PCKh).
        thr: fraction of the normaliser.
    Returns:
        {"per_joint": (K,) fraction correct (NaN for a joint never labelled), "mean": fraction of all
         labelled joints that are correct (pooled, i.e. the per-joint values weighted by their counts,
         as MPII's PCKh "Mean"; NaN if nothing is labelled), "count": (K,) labelled joints}.
    """
    p = np.asarray(pred, dtype=np.float64)
    g = np.asarray(gt, dtype=np.float64)
    nm = np.asarray(norm, dtype=np.float64).reshape(-1)
    if g.ndim != 3 or g.shape[2] != 3:
        raise DataError(f"pck: gt must be (N, K, 3), got {g.shape}")
    if p.ndim != 3 or p.shape[:2] != g.shape[:2] or p.shape[2] not in (2, 3):
        raise DataError(f"pck: pred must be {g.shape[:2] + (2,)}, got {p.shape}")
    if nm.shape != (g.shape[0],):
        raise DataError(f"pck: norm must have {g.shape[0]} values, got {nm.shape}")
    if not (thr > 0):
        raise DataError(f"pck: thr must be > 0, got {thr}")
    lab = g[..., 2] > 0  # (N, K)
    bad = np.flatnonzero(lab.any(1) & ~(nm > 0))
    if bad.size:
        raise DataError(f"pck: norm must be > 0 for samples with labelled joints; sample {bad[0]} has "
                        f"norm {nm[bad[0]]}")
    d = np.linalg.norm(p[..., :2] - g[..., :2], axis=2)  # (N, K)
    ok = lab & (d <= thr * np.where(nm > 0, nm, 1.0)[:, None])
    count = lab.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_joint = np.where(count > 0, ok.sum(0) / np.maximum(count, 1), np.nan)
    mean = float(ok.sum() / count.sum()) if count.sum() > 0 else float("nan")
    return {"per_joint": per_joint, "mean": mean, "count": count}
