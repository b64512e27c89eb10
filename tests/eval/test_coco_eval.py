"""COCO OKS AP / AR: oracles (perfect, known OKS, noise), backend parity, errors, helpers."""

from __future__ import annotations

import copy
import json
import sys

import numpy as np
import pytest

from posenas_core.data.keypoints import OKS_SIGMAS
from posenas_core.errors import ConfigError, DataError
from posenas_core.eval import STAT_NAMES, evaluate_keypoints, instance_score, make_results, oks

K = 17


def make_gt(seed: int = 0, n_images: int = 6, k: int = K, with_empty_image: bool = True) -> dict:
    """Random COCO keypoint GT: 1-3 persons per image, some joints unlabelled, medium and large areas."""
    rng = np.random.default_rng(seed)
    images, anns = [], []
    for i in range(n_images):
        images.append({"id": 100 + i, "width": 640, "height": 480, "file_name": f"{i}.jpg"})
        for _ in range(int(rng.integers(1, 4))):
            w, h = rng.uniform(30, 200), rng.uniform(60, 300)
            x0, y0 = rng.uniform(0, 640 - w), rng.uniform(0, 480 - h)
            kp = np.stack([rng.uniform(x0, x0 + w, k), rng.uniform(y0, y0 + h, k),
                           rng.choice([0, 1, 2], k, p=[0.2, 0.3, 0.5])], 1)
            kp[kp[:, 2] == 0, :2] = 0
            kp[0, 2] = 2  # at least one labelled joint
            anns.append({"id": len(anns), "image_id": 100 + i, "category_id": 1,  # id 0 on purpose
                         "keypoints": kp.reshape(-1).tolist(), "bbox": [x0, y0, w, h],
                         "area": 0.6 * w * h, "iscrowd": 0})
    if with_empty_image:
        images.append({"id": 999, "width": 640, "height": 480, "file_name": "empty.jpg"})
    cats = [{"id": 1, "name": "person", "keypoints": [f"j{j}" for j in range(k)]}]
    return {"images": images, "annotations": anns, "categories": cats}


def perfect_results(gt: dict) -> list[dict]:
    return [{"image_id": a["image_id"], "category_id": 1, "keypoints": list(a["keypoints"]), "score": 1.0}
            for a in gt["annotations"]]


def noisy_results(gt: dict, sigma: float, seed: int = 1, drop: float = 0.0, extra: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for a in gt["annotations"]:
        if rng.uniform() < drop:
            continue
        kp = np.asarray(a["keypoints"], dtype=np.float64).reshape(-1, 3).copy()
        kp[:, :2] += rng.normal(0, sigma, (len(kp), 2))
        kp[:, 2] = rng.uniform(0, 1, len(kp))
        out.append({"image_id": a["image_id"], "category_id": 1, "keypoints": kp.reshape(-1).tolist(),
                    "score": float(rng.uniform(0.3, 1.0))})
    img_ids = [im["id"] for im in gt["images"]]
    k = len(gt["annotations"][0]["keypoints"]) // 3
    for _ in range(extra):  # false positives, some on the empty image
        kp = np.stack([rng.uniform(0, 640, k), rng.uniform(0, 480, k), rng.uniform(0, 1, k)], 1)
        out.append({"image_id": int(rng.choice(img_ids)), "category_id": 1,
                    "keypoints": kp.reshape(-1).tolist(), "score": float(rng.uniform(0, 1))})
    return out


def test_perfect_predictions_give_ap_one():
    gt = make_gt()
    s = evaluate_keypoints(gt, perfect_results(gt))
    assert set(s) == set(STAT_NAMES) | {"n_predictions"}
    assert s["n_predictions"] == len(gt["annotations"])
    for name in STAT_NAMES:
        assert s[name] == pytest.approx(1.0), name


def test_known_oks_gives_known_ap():
    """One person with OKS 0.77 to its GT is a match at thresholds 0.50..0.75 (6 of 10): AP = 0.6."""
    gt = make_gt(seed=3, n_images=1, with_empty_image=False)
    gt["annotations"] = gt["annotations"][:1]
    a = gt["annotations"][0]
    g = np.asarray(a["keypoints"]).reshape(K, 3)

    def shifted(d):
        p = g.copy()
        p[:, 0] += d
        return p

    lo, hi = 0.0, 100.0  # bisection on the shift for OKS = 0.77
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if oks(shifted(mid), g, a["area"]) > 0.77 else (lo, mid)
    p = shifted(lo)
    assert oks(p, g, a["area"]) == pytest.approx(0.77, abs=1e-9)
    res = [{"image_id": a["image_id"], "category_id": 1, "keypoints": p.reshape(-1).tolist(), "score": 0.9}]
    s = evaluate_keypoints(gt, res)
    assert s["AP"] == pytest.approx(0.6)
    assert s["AP50"] == pytest.approx(1.0) and s["AP75"] == pytest.approx(1.0)
    assert s["AR"] == pytest.approx(0.6)


def test_ap_decreases_with_noise():
    gt = make_gt(seed=5, n_images=8)
    aps = [evaluate_keypoints(gt, noisy_results(gt, sigma, seed=7))["AP"] for sigma in (0.0, 2.0, 6.0, 15.0, 40.0)]
    assert aps[0] == pytest.approx(1.0)
    assert all(b <= a + 1e-9 for a, b in zip(aps, aps[1:])), aps
    assert aps[-1] < 0.2 < aps[1]


def test_empty_results_give_zeros_and_no_crash():
    s = evaluate_keypoints(make_gt(), [])
    assert s["n_predictions"] == 0
    assert all(s[n] == 0.0 for n in STAT_NAMES)


def test_no_gt_annotations_is_a_data_error():
    gt = make_gt()
    gt["annotations"] = []
    with pytest.raises(DataError, match="no non-crowd annotation with a labelled keypoint"):
        evaluate_keypoints(gt, [])


@pytest.mark.parametrize("backend", ["pycocotools", "faster"])
def test_backend_parity_on_noisy_case(backend):
    gt = make_gt(seed=11, n_images=10)
    res = noisy_results(gt, sigma=4.0, seed=12, drop=0.25, extra=6)
    ref = evaluate_keypoints(gt, res, backend="pycocotools")
    got = evaluate_keypoints(gt, res, backend=backend)
    assert 0.05 < ref["AP"] < 0.95  # non-trivial
    for name in STAT_NAMES:
        assert got[name] == pytest.approx(ref[name], abs=1e-6), name
    assert evaluate_keypoints(gt, res, backend="auto")["AP"] == pytest.approx(ref["AP"], abs=1e-6)


def test_faster_backend_missing_is_a_config_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "faster_coco_eval", None)  # import now raises ImportError
    gt = make_gt()
    with pytest.raises(ConfigError, match="faster-coco-eval"):
        evaluate_keypoints(gt, perfect_results(gt), backend="faster")
    assert evaluate_keypoints(gt, perfect_results(gt), backend="auto")["AP"] == pytest.approx(1.0)


def test_unknown_image_and_bad_lengths_name_the_result():
    gt = make_gt()
    res = perfect_results(gt)
    bad = copy.deepcopy(res)
    bad[1]["image_id"] = 12345
    with pytest.raises(DataError, match=r"results\[1\].*12345"):
        evaluate_keypoints(gt, bad)
    bad = copy.deepcopy(res)
    bad[2]["keypoints"] = bad[2]["keypoints"][:34]
    with pytest.raises(DataError, match=r"results\[2\].*34 values, expected 51"):
        evaluate_keypoints(gt, bad)
    bad = copy.deepcopy(res)
    del bad[0]["score"]
    with pytest.raises(DataError, match=r"results\[0\] has no 'score'"):
        evaluate_keypoints(gt, bad)
    with pytest.raises(ConfigError, match="backend"):
        evaluate_keypoints(gt, res, backend="tf")


def test_inputs_not_mutated_paths_accepted_and_quiet(tmp_path, capsys):
    gt = make_gt()
    res = noisy_results(gt, 3.0)
    gt0, res0 = copy.deepcopy(gt), copy.deepcopy(res)
    s = evaluate_keypoints(gt, res)
    assert gt == gt0 and res == res0
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "res.json").write_text(json.dumps(res))
    s2 = evaluate_keypoints(tmp_path / "gt.json", str(tmp_path / "res.json"))
    assert s2 == s
    assert capsys.readouterr().out == ""
    with pytest.raises(DataError, match="does not exist"):
        evaluate_keypoints(tmp_path / "nope.json", res)


def test_image_ids_restrict_the_evaluation():
    gt = make_gt(seed=2, n_images=6)
    good = [r for r in perfect_results(gt) if r["image_id"] in (100, 101)]
    bad = [r for r in noisy_results(gt, 60.0) if r["image_id"] not in (100, 101)]
    full = evaluate_keypoints(gt, good + bad)
    sub = evaluate_keypoints(gt, good + bad, image_ids=[100, 101])
    assert sub["AP"] == pytest.approx(1.0) and full["AP"] < 0.9
    assert sub["n_predictions"] == len(good)
    with pytest.raises(DataError, match="image_ids"):
        evaluate_keypoints(gt, good, image_ids=[100, 4242])


def test_custom_keypoint_count_needs_sigmas():
    gt = make_gt(k=5)
    with pytest.raises(ConfigError, match="pass 5 sigmas"):
        evaluate_keypoints(gt, perfect_results(gt))
    with pytest.raises(ConfigError, match="5 positive"):
        evaluate_keypoints(gt, perfect_results(gt), sigmas=[0.05] * 4)
    s = evaluate_keypoints(gt, perfect_results(gt), sigmas=[0.05] * 5)
    assert s["AP"] == pytest.approx(1.0)


def test_oks_matches_pycocotools_compute_oks():
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = make_gt(seed=4, n_images=1, with_empty_image=False)
    gt["annotations"] = gt["annotations"][:1]
    gt["annotations"][0]["id"] = 1
    gt["annotations"][0]["num_keypoints"] = 1
    res = noisy_results(gt, 6.0, seed=9)
    coco = COCO()
    coco.dataset = gt
    coco.createIndex()
    ev = COCOeval(coco, coco.loadRes(copy.deepcopy(res)), iouType="keypoints")
    ev._prepare()
    ref = ev.computeOks(100, 1)[0, 0]
    a = gt["annotations"][0]
    got = oks(np.asarray(res[0]["keypoints"]).reshape(K, 3), np.asarray(a["keypoints"]).reshape(K, 3), a["area"])
    assert 0.05 < ref < 0.95
    assert got == pytest.approx(ref, rel=1e-12)
    # unlabelled joints do not count; no labelled joint -> NaN
    g = np.asarray(a["keypoints"]).reshape(K, 3).copy()
    p = g[:, :2].copy()
    p[g[:, 2] == 0] += 1000.0
    assert oks(p, g, a["area"]) == pytest.approx(1.0)
    g[:, 2] = 0
    assert np.isnan(oks(p, g, a["area"]))
    with pytest.raises(DataError, match="pred must have shape"):
        oks(p[:5], np.asarray(a["keypoints"]).reshape(K, 3), a["area"])


def test_make_results_instance_score_rule_and_round_trip():
    js = np.array([0.1, 0.5, 0.9, 0.2] + [0.0] * 13)
    assert instance_score(js, 0.5) == pytest.approx(0.5 * (0.5 + 0.9) / 2)  # 0.2 is not > 0.2
    assert instance_score(np.full(17, 0.1), 0.9) == 0.0
    gt = make_gt(seed=8)
    kps = np.stack([np.asarray(a["keypoints"]).reshape(K, 3)[:, :2] for a in gt["annotations"]])
    ids = np.array([a["image_id"] for a in gt["annotations"]])
    scores = np.tile(js, (len(ids), 1))
    r2 = make_results(ids, kps, box_scores=np.full(len(ids), 0.5), joint_scores=scores)
    r3 = make_results(list(ids), np.concatenate([kps, scores[..., None]], 2), np.full(len(ids), 0.5))
    assert r2 == r3
    assert type(r2[0]["image_id"]) is int and len(r2[0]["keypoints"]) == 51
    assert r2[0]["score"] == pytest.approx(0.35)
    assert r2[0]["keypoints"][2::3] == pytest.approx(js.tolist())
    json.dumps(r2)
    assert evaluate_keypoints(gt, r2)["AP"] == pytest.approx(1.0)
    with pytest.raises(DataError, match="joint_scores"):
        make_results(ids, kps)


def test_unlabelled_posetrack_frames_are_not_scored():
    gt = make_gt(seed=6)
    gt["images"].append({"id": 555, "is_labeled": False})
    res = perfect_results(gt)
    fp = dict(res[0], image_id=555)
    s = evaluate_keypoints(gt, res + [fp])
    assert s["AP"] == pytest.approx(1.0) and s["n_predictions"] == len(res)
    # a prediction on a labelled image without persons is a false positive
    fp = dict(res[0], image_id=999, score=2.0)
    assert evaluate_keypoints(gt, res + [fp])["AP"] < 1.0
