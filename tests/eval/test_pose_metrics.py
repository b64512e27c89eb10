"""PoseTrack-style per-joint AP (checked against a line-by-line port of poseval) and PCK."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from posenas_core.data.keypoints import JOINT_GROUPS
from posenas_core.errors import DataError
from posenas_core.eval import bbox_norm, head_size, pck, per_joint_ap, per_joint_stats

K = 17


def make_gt(seed: int = 0, n_images: int = 5, head_boxes: bool = True, empty_image: bool = True) -> dict:
    rng = np.random.default_rng(seed)
    images, anns = [], []
    for i in range(n_images):
        images.append({"id": i + 1, "file_name": f"{i}.jpg"})
        for _ in range(int(rng.integers(1, 4))):
            w, h = rng.uniform(40, 150), rng.uniform(80, 250)
            x0, y0 = rng.uniform(0, 500), rng.uniform(0, 300)
            kp = np.stack([rng.uniform(x0, x0 + w, K), rng.uniform(y0, y0 + h, K),
                           rng.choice([0, 2], K, p=[0.25, 0.75])], 1)
            kp[kp[:, 2] == 0] = 0
            ann = {"id": len(anns) + 1, "image_id": i + 1, "category_id": 1,
                   "keypoints": kp.reshape(-1).tolist(), "bbox": [x0, y0, w, h]}
            if head_boxes:
                ann["bbox_head"] = [x0 + w / 3, y0, w / 4, h / 8]
            anns.append(ann)
    if empty_image:
        images.append({"id": 99, "file_name": "unlabelled.jpg"})
    return {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "person"}]}


def perfect(gt: dict, absent: str = "zeros") -> list[dict]:
    """GT joints with score 1; unlabelled joints absent ((0, 0, 0)) or present with score 0."""
    out = []
    for a in gt["annotations"]:
        kp = np.asarray(a["keypoints"], dtype=np.float64).reshape(K, 3).copy()
        lab = kp[:, 2] > 0
        kp[:, 2] = lab.astype(float)
        if absent == "score0":
            kp[~lab, :2] = 5.0
        out.append({"image_id": a["image_id"], "category_id": 1, "keypoints": kp.reshape(-1).tolist(), "score": 1.0})
    return out


def noisy(gt: dict, sigma: float, seed: int = 1, drop: float = 0.2, extra: int = 4) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for a in gt["annotations"]:
        if rng.uniform() < drop:
            continue
        kp = np.asarray(a["keypoints"], dtype=np.float64).reshape(K, 3).copy()
        kp[:, :2] += rng.normal(0, sigma, (K, 2))
        kp[:, 2] = rng.uniform(0.01, 1, K)  # distinct scores: no ties
        out.append({"image_id": a["image_id"], "category_id": 1, "keypoints": kp.reshape(-1).tolist(), "score": 1.0})
    for _ in range(extra):
        kp = np.stack([rng.uniform(0, 600, K), rng.uniform(0, 500, K), rng.uniform(0.01, 1, K)], 1)
        out.append({"image_id": int(rng.choice([im["id"] for im in gt["images"]])), "category_id": 1,
                    "keypoints": kp.reshape(-1).tolist(), "score": 1.0})
    return out


# --- a direct port of poseval's assignGTmulti / computeRPC / VOCap / computeMetrics (loops) ---
def poseval_reference(gt: dict, results: list[dict], thr: float = 0.5) -> np.ndarray:
    frames = []
    for im in gt["images"]:
        g = [a for a in gt["annotations"] if a["image_id"] == im["id"]]
        if not g:  # cleanupData drops frames without GT rects
            continue
        p = [r for r in results if r["image_id"] == im["id"]]
        frames.append((g, p))
    scores_all = [[] for _ in range(K)]
    labels_all = [[] for _ in range(K)]
    n_gt_all = np.zeros(K)
    for g_anns, p_res in frames:
        G, P = len(g_anns), len(p_res)
        dist = np.full((P, G, K), np.inf)
        score = np.full((P, K), np.nan)
        has_pr = np.zeros((P, K), bool)
        has_gt = np.zeros((G, K), bool)
        gk = [np.asarray(a["keypoints"]).reshape(K, 3) for a in g_anns]
        pk = [np.asarray(r["keypoints"]).reshape(K, 3) for r in p_res]
        for j in range(G):
            for i in range(K):
                has_gt[j, i] = gk[j][i, 2] > 0
        for r in range(P):
            for i in range(K):
                if not (pk[r][i, 0] == 0 and pk[r][i, 1] == 0 and pk[r][i, 2] == 0):
                    score[r, i] = pk[r][i, 2]
                    has_pr[r, i] = True
        if P and G:
            for j in range(G):
                hb = g_anns[j]["bbox_head"]
                hs = 0.6 * np.linalg.norm(np.subtract([hb[0] + hb[2], hb[1] + hb[3]], [hb[0], hb[1]]))
                for r in range(P):
                    for i in range(K):
                        if has_pr[r, i] and has_gt[j, i]:
                            dist[r, j, i] = np.linalg.norm(np.subtract(gk[j][i, :2], pk[r][i, :2])) / hs
            n_gtp = np.sum(has_gt, axis=1)
            match = dist <= thr
            pckh = 1.0 * np.sum(match, axis=2)
            for r in range(P):
                for j in range(G):
                    if n_gtp[j] > 0:
                        pckh[r, j] = pckh[r, j] / n_gtp[j]
            idx = np.argmax(pckh, axis=1)
            for r in range(P):
                for j in range(G):
                    if j != idx[r]:
                        pckh[r, j] = 0
            pr_to_gt = np.argmax(pckh, axis=0)
            val = np.max(pckh, axis=0)
            pr_to_gt[val == 0] = -1
            for r in range(P):
                if r in pr_to_gt:
                    j = np.argwhere(pr_to_gt == r)[0, 0]
                    m = match[r, j, :]
                else:
                    m = np.zeros(K, bool)
                for i in range(K):
                    if has_pr[r, i]:
                        scores_all[i].append(score[r, i])
                        labels_all[i].append(m[i])
        for j in range(G):
            n_gt_all += has_gt[j]
    ap = np.zeros(K)
    for i in range(K):
        s, lab = np.array(scores_all[i]), np.array(labels_all[i])
        order = s.argsort()[::-1]
        lab = lab[order]
        npos, prec, rec = 0, np.zeros(len(s)), np.zeros(len(s))
        for k in range(len(s)):
            npos += lab[k] == 1
            rec[k] = npos / n_gt_all[i]
            prec[k] = npos / (k + 1)
        if len(prec):
            mpre = np.concatenate([[0], prec, [0]])
            mrec = np.concatenate([[0], rec, [1]])
            for k in range(mpre.size - 2, -1, -1):
                mpre[k] = max(mpre[k], mpre[k + 1])
            ii = np.flatnonzero(mrec[1:] != mrec[:-1]) + 1
            ap[i] = np.sum((mrec[ii] - mrec[ii - 1]) * mpre[ii])
    return ap


@pytest.mark.parametrize("seed,sigma", [(0, 4.0), (1, 2.0), (2, 6.0)])
def test_matches_poseval_port(seed, sigma):
    gt = make_gt(seed, n_images=6)
    res = noisy(gt, sigma, seed=seed + 10)
    ref = poseval_reference(gt, res)
    got = per_joint_stats(gt, res)
    assert 0.1 < np.nanmean(got["ap"]) < 0.95  # non-trivial
    np.testing.assert_allclose(got["ap"], ref, atol=1e-12)
    table = per_joint_ap(gt, res)
    assert list(table) == list(JOINT_GROUPS) + ["Total"]
    assert table["Total"] == pytest.approx(ref.mean())
    assert table["Wrist"] == pytest.approx(ref[[9, 10]].mean())
    assert table["Head"] == pytest.approx(ref[:5].mean())


@pytest.mark.parametrize("absent", ["zeros", "score0"])
def test_perfect_predictions_give_one(absent):
    gt = make_gt(3)
    table = per_joint_ap(gt, perfect(gt, absent))
    assert all(v == pytest.approx(1.0) for v in table.values()), table


def test_hand_computed_ap_for_one_joint():
    """Joint 0 in 3 images; predictions scored 0.9 (correct), 0.8 (wrong), 0.7 (correct):
    precision 1, 1/2, 2/3 at recall 1/3, 1/3, 2/3 -> AP = 1/3 * 1 + 1/3 * 2/3 = 5/9."""
    anns, res = [], []
    for i, (dx, s) in enumerate([(1.0, 0.9), (30.0, 0.8), (2.0, 0.7)]):
        kp = np.zeros((K, 3))
        kp[0] = (100, 100, 2)
        anns.append({"id": i + 1, "image_id": i, "keypoints": kp.reshape(-1).tolist(),
                     "bbox_head": [90, 90, 20, 0], "bbox": [0, 0, 200, 200]})  # head size 12
        pk = np.zeros((K, 3))
        pk[0] = (100 + dx, 100, s)
        res.append({"image_id": i, "keypoints": pk.reshape(-1).tolist(), "score": 1.0})
    gt = {"images": [{"id": i} for i in range(3)], "annotations": anns, "categories": []}
    st = per_joint_stats(gt, res)
    assert st["ap"][0] == pytest.approx(5 / 9)
    assert st["n_gt"][0] == 3 and st["n_pred"][0] == 3
    assert np.isnan(st["ap"][1:]).all()  # no labelled GT: left out of the means
    assert per_joint_ap(gt, res)["Total"] == pytest.approx(5 / 9)
    # threshold: a 6-px error is 0.5 head sizes: correct at 0.5, wrong at 0.4
    res[1]["keypoints"][0] = 106.0
    assert per_joint_stats(gt, res, thr=0.5)["ap"][0] == pytest.approx(1.0)
    assert per_joint_stats(gt, res, thr=0.4)["ap"][0] == pytest.approx(5 / 9)
    # min_joint_score drops the 0.8 joint before matching
    res[1]["keypoints"][0] = 130.0
    assert per_joint_stats(gt, res, min_joint_score=0.75)["ap"][0] == pytest.approx(1 / 3)


def test_head_size_from_head_box_and_fallback():
    assert head_size({"bbox_head": [0, 0, 30, 40]}) == pytest.approx(0.6 * 50)
    w, h = 90.0, 250.0
    side = np.sqrt(w * h) / 4.5
    assert head_size({"bbox": [5, 5, w, h]}) == pytest.approx(0.6 * np.sqrt(2) * side)
    with pytest.raises(DataError, match="head size"):
        head_size({"bbox": [0, 0, 0, 10]}, "ann 7")
    gt = make_gt(4, head_boxes=False)
    assert per_joint_ap(gt, perfect(gt))["Total"] == pytest.approx(1.0)


def test_posetrack_ears_unlabelled_and_ignore_regions():
    gt = make_gt(5, n_images=3)
    for a in gt["annotations"]:
        a["keypoints"][9:15] = [0] * 6  # joints 3, 4 (ears) unlabelled as in PoseTrack18
    res = noisy(gt, 6.0, seed=3, drop=0.0, extra=0)
    st = per_joint_stats(gt, res)
    assert np.isnan(st["ap"][3:5]).all()
    assert per_joint_ap(gt, res)["Head"] == pytest.approx(np.mean(st["ap"][[0, 1, 2]]))
    # an ignore region around one GT person's right wrist: its wrist and the predicted one vanish
    a = next(a for a in gt["annotations"] if a["keypoints"][32] > 0)
    gx, gy = a["keypoints"][30:32]
    pred = next(r for r in res if r["image_id"] == a["image_id"])
    pred["keypoints"][30:32] = [gx + 1.0, gy - 1.0]
    st = per_joint_stats(gt, res)
    img = next(im for im in gt["images"] if im["id"] == a["image_id"])
    img["ignore_regions_x"] = [[gx - 3, gx + 3, gx + 3, gx - 3]]
    img["ignore_regions_y"] = [[gy - 3, gy - 3, gy + 3, gy + 3]]
    st2 = per_joint_stats(gt, res)
    assert st2["n_gt"][10] == st["n_gt"][10] - 1
    assert st2["n_pred"][10] == st["n_pred"][10] - 1
    np.testing.assert_array_equal(np.delete(st2["n_gt"], 10), np.delete(st["n_gt"], 10))


def test_predictions_on_unlabelled_frames_are_ignored_and_unknown_images_raise():
    gt = make_gt(6)
    res = perfect(gt)
    fp = copy.deepcopy(res[0])
    fp["image_id"] = 99  # the image without GT persons (an unlabelled frame)
    assert per_joint_ap(gt, res + [fp])["Total"] == pytest.approx(1.0)
    fp["image_id"] = 12345
    with pytest.raises(DataError, match=r"results\[\d+\].*12345"):
        per_joint_ap(gt, res + [fp])
    bad = copy.deepcopy(res)
    bad[0]["keypoints"] = bad[0]["keypoints"][:30]
    with pytest.raises(DataError, match=r"results\[0\].*expected 51"):
        per_joint_ap(gt, bad)


def test_pck_hand_values():
    gt = np.zeros((2, 3, 3))
    gt[..., 2] = 1
    gt[1, 2, 2] = 0  # unlabelled
    pred = np.zeros((2, 3, 2))
    pred[0, :, 0] = [1.0, 3.0, 10.0]  # sample 0: norm 20, thr 0.2 -> 4 px
    pred[1, :, 1] = [5.0, 1.0, 0.0]  # sample 1: norm 10 -> 2 px
    out = pck(pred, gt, np.array([20.0, 10.0]), thr=0.2)
    np.testing.assert_allclose(out["per_joint"], [0.5, 1.0, 0.0])
    assert out["mean"] == pytest.approx(3 / 5)
    np.testing.assert_array_equal(out["count"], [2, 2, 1])
    gt[:, 2, 2] = 0
    assert np.isnan(pck(pred, gt, np.array([20.0, 10.0]), thr=0.2)["per_joint"][2])
    np.testing.assert_allclose(bbox_norm(np.array([[0, 0, 10, 30], [1, 1, 50, 20]])), [30, 50])
    with pytest.raises(DataError, match="norm must be > 0"):
        pck(pred, gt, np.array([0.0, 10.0]))
    with pytest.raises(DataError, match="pred must be"):
        pck(pred[:, :2], gt, np.array([1.0, 1.0]))
