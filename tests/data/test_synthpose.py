"""SynthPose: determinism, COCO / PoseTrack schema, visibility semantics, left/right, config errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from posenas_core.data.keypoints import COCO_KEYPOINTS, COCO_SKELETON_1BASED
from posenas_core.data.synthpose import SynthConfig, generate_images, generate_videos, write_synthpose
from posenas_core.data.synthpose.body import NUM_POSE, P, forward_kinematics, sample_body_shape
from posenas_core.data.synthpose.motion import ACTIONS, UNUSUAL, cycle_pose, unusual_pose
from posenas_core.data.synthpose.appearance import sample_appearance
from posenas_core.data.synthpose.render import View, draw_person, keypoint_visibility
from posenas_core.errors import ConfigError

L_SH, R_SH, L_HIP, R_HIP, L_EYE, R_EYE, L_EAR, R_EAR, L_EL, R_EL = 5, 6, 11, 12, 1, 2, 3, 4, 7, 8
TINY = SynthConfig(video_frames=3)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------ determinism
def test_same_seed_same_bytes_on_disk_and_different_seed_differs(tmp_path):
    m1 = write_synthpose(tmp_path / "a", 3, 2, n_videos=1, seed=7, config=TINY, progress=False)
    m2 = write_synthpose(tmp_path / "b", 3, 2, n_videos=1, seed=7, config=TINY, progress=False)
    fa, fb = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert fa == fb and m1 == m2
    assert "annotations/person_keypoints_train.json" in fa and "images/train/000000000003.jpg" in fa
    assert "images/val/000000000002.jpg" in fa and "posetrack/annotations/val/000001_synthpose.json" in fa
    assert "posetrack/images/val/000001_synthpose/000002.jpg" in fa and "synthpose.json" in fa
    assert len([k for k in fa if k.endswith(".jpg")]) == 3 + 2 + 3
    write_synthpose(tmp_path / "c", 3, 2, n_videos=1, seed=8, config=TINY, progress=False)
    fc = _files(tmp_path / "c")
    assert fc.keys() == fa.keys()
    assert fc["annotations/person_keypoints_train.json"] != fa["annotations/person_keypoints_train.json"]
    assert fc["images/val/000000000001.jpg"] != fa["images/val/000000000001.jpg"]


def test_parallel_generation_writes_the_same_files(tmp_path):
    # 70 images = 3 chunks of at most 32, on 2 spawned processes: byte-identical to one process.
    m1 = write_synthpose(tmp_path / "one", 70, 1, seed=3, config=TINY, progress=False, workers=1)
    m2 = write_synthpose(tmp_path / "two", 70, 1, seed=3, config=TINY, progress=False, workers=2)
    assert _files(tmp_path / "one") == _files(tmp_path / "two") and m1 == m2
    with pytest.raises(ConfigError, match="workers must be an integer >= 1"):
        write_synthpose(tmp_path / "bad", 1, 1, progress=False, workers=0)


def test_an_image_does_not_depend_on_how_many_are_generated():
    c2, i2 = generate_images(2, 3, "val")
    c4, i4 = generate_images(4, 3, "val")
    np.testing.assert_array_equal(i2["val/000000000002.jpg"], i4["val/000000000002.jpg"])
    assert [a for a in c4["annotations"] if a["image_id"] <= 2] == c2["annotations"]
    _, it = generate_images(2, 3, "train")          # the split is part of the seed
    assert not np.array_equal(it["train/000000000002.jpg"], i2["val/000000000002.jpg"])


def test_manifest_counts_hashes_and_readers_accept_the_files(tmp_path):
    import hashlib

    from posenas_core.data.readers import read_coco_keypoints, read_posetrack

    m = write_synthpose(tmp_path, 3, 2, n_videos=2, seed=1, config=TINY, progress=False)
    assert json.loads((tmp_path / "synthpose.json").read_text()) == m
    assert m["seed"] == 1 and SynthConfig.from_dict(m["config"]) == TINY
    assert m["counts"]["train"]["images"] == 3 and m["counts"]["val"]["images"] == 2
    pt_counts = m["counts"]["posetrack_val"]
    assert pt_counts["videos"] == 2 and pt_counts["frames"] == 6 and pt_counts["persons"] > 0
    for split in ("train", "val"):
        f = tmp_path / m["files"][split]["annotations"]
        assert hashlib.sha256(f.read_bytes()).hexdigest() == m["files"][split]["sha256"]
        coco = json.loads(f.read_text())
        assert len(coco["annotations"]) == m["counts"][split]["persons"] > 0
        ps = read_coco_keypoints(f, tmp_path / "images", check_images=True)
        assert len(ps.records) == m["counts"][split]["persons_with_keypoints"]
        assert ps.image_source.load(ps.records[0].file_name).shape == (256, 320, 3)
    pt = read_posetrack(tmp_path / "posetrack/annotations/val", tmp_path / "posetrack")
    assert {r.video_id for r in pt.records} == {"000001_synthpose", "000002_synthpose"}
    assert pt.image_source.load(pt.records[0].file_name).shape == (256, 320, 3)


# ----------------------------------------------------------------------------------------- schema
def _check_annotation(a: dict, W: int, H: int) -> np.ndarray:
    assert a["category_id"] == 1 and a["iscrowd"] == 0
    kp = np.asarray(a["keypoints"], dtype=float)
    assert kp.shape == (51,)
    kp = kp.reshape(17, 3)
    v = kp[:, 2]
    assert set(np.unique(v)) <= {0, 1, 2}
    assert a["num_keypoints"] == int((v > 0).sum())
    assert np.all(kp[v == 0, :2] == 0)                         # COCO: absent -> x = y = 0
    lab = kp[v > 0]
    assert np.all((lab[:, 0] >= -0.5) & (lab[:, 0] < W - 0.5) & (lab[:, 1] >= -0.5) & (lab[:, 1] < H - 0.5))
    x, y, w, h = a["bbox"]
    assert 0 <= x and 0 <= y and w > 0 and h > 0 and x + w <= W and y + h <= H
    assert 0 < a["area"] <= w * h
    vis = kp[v == 2]                                           # visible joints lie on the visible person
    assert np.all((vis[:, 0] >= x - 0.5) & (vis[:, 0] <= x + w - 0.5))
    assert np.all((vis[:, 1] >= y - 0.5) & (vis[:, 1] <= y + h - 0.5))
    return kp


def test_coco_dict_schema_and_keypoint_rules():
    coco, imgs = generate_images(8, 11, "train")
    assert set(coco) >= {"images", "annotations", "categories"}
    cat = coco["categories"]
    assert cat == [{"id": 1, "name": "person", "supercategory": "person", "keypoints": list(COCO_KEYPOINTS),
                    "skeleton": [list(p) for p in COCO_SKELETON_1BASED]}]
    assert [im["id"] for im in coco["images"]] == list(range(1, 9))
    for im in coco["images"]:
        assert set(im) == {"id", "file_name", "width", "height"}
        assert im["file_name"] == f"train/{im['id']:012d}.jpg"
        arr = imgs[im["file_name"]]
        assert arr.shape == (im["height"], im["width"], 3) and arr.dtype == np.uint8
    ids = [a["id"] for a in coco["annotations"]]
    assert len(ids) == len(set(ids)) and len(ids) >= 8
    image_ids = {im["id"] for im in coco["images"]}
    all_v = []
    for a in coco["annotations"]:
        assert set(a) == {"id", "image_id", "category_id", "bbox", "area", "keypoints", "num_keypoints", "iscrowd"}
        assert a["image_id"] in image_ids
        all_v.append(_check_annotation(a, 320, 256)[:, 2])
    all_v = np.concatenate(all_v)
    assert (all_v == 2).mean() > 0.4 and 0.03 < (all_v == 1).mean() < 0.45     # mostly visible, some occluded


def test_posetrack_schema_track_ids_and_smooth_motion():
    vids, imgs = generate_videos(1, 5, frames=6)
    assert list(vids) == ["000001_synthpose"]
    d = vids["000001_synthpose"]
    assert d["categories"][0]["keypoints"] == list(COCO_KEYPOINTS)
    assert len(d["images"]) == 6
    for f, im in enumerate(d["images"]):
        assert im["file_name"] == f"images/val/000001_synthpose/{f:06d}.jpg" and im["file_name"] in imgs
        assert im["frame_id"] == im["id"] == 10**10 + 10**4 + f
        assert im["vid_id"] == "000001" and im["nframes"] == 6 and im["is_labeled"] is True
        assert im["ignore_regions_x"] == [] and im["ignore_regions_y"] == []
    tracks: dict[int, dict[int, np.ndarray]] = {}
    frame_of = {im["id"]: f for f, im in enumerate(d["images"])}
    for a in d["annotations"]:
        assert set(a) >= {"id", "image_id", "category_id", "track_id", "bbox", "bbox_head", "keypoints",
                          "num_keypoints", "area", "iscrowd"}
        kp = _check_annotation(a, 320, 256)
        hx, hy, hw, hh = a["bbox_head"]
        assert hw > 0 and hh > 0 and hx >= 0 and hy >= 0
        f = frame_of[a["image_id"]]
        assert f not in tracks.setdefault(a["track_id"], {})     # one annotation per track and frame
        tracks[a["track_id"]][f] = (kp, a["bbox"][3])
    assert len({a["id"] for a in d["annotations"]}) == len(d["annotations"])
    assert sorted(tracks) == list(range(len(tracks)))
    longest = max(tracks.values(), key=len)
    assert len(longest) == 6                                    # somebody is visible in every frame
    for per_frame in tracks.values():
        for f in sorted(per_frame)[:-1]:
            if f + 1 not in per_frame:
                continue
            (k0, h0), (k1, _) = per_frame[f], per_frame[f + 1]
            both = (k0[:, 2] > 0) & (k1[:, 2] > 0)
            step = np.linalg.norm(k1[both, :2] - k0[both, :2], axis=1)
            assert step.size and np.median(step) < 0.12 * h0 + 3, (f, step)   # small per-frame displacement


def test_videos_are_deterministic_and_frames_argument():
    a, ia = generate_videos(1, 2, frames=2)
    b, ib = generate_videos(1, 2, frames=2)
    assert a == b and all(np.array_equal(ia[k], ib[k]) for k in ia)
    with pytest.raises(ConfigError, match="frames"):
        generate_videos(1, 2, frames=0)


# ------------------------------------------------------------------------------ rendering semantics
def _render_one(pose, yaw, pitch=5.0, size=(200, 260), height_px=220.0, label_back=False, seed=0):
    rng = np.random.default_rng(seed)
    shape = sample_body_shape(rng)
    app = sample_appearance(rng, 0.0, 0.0)
    sk = forward_kinematics(shape, pose)
    W, H = size
    img = np.full((H, W, 3), 128, np.uint8)
    ids = np.zeros((H, W), np.uint16)
    pts = sk.all_points()
    d = 6 * shape.height
    view = View(yaw=yaw, pitch=pitch, roll=0.0, dist=d, focal=height_px * d / shape.height, cx=W / 2, cy=H / 2,
                look_at=0.5 * (pts.min(0) + pts.max(0)))
    pr = draw_person(img, ids, sk, shape, view, app, 1, np.array([0.3, 0.6, 0.7]))
    return keypoint_visibility(pr, ids, label_back), img, ids


def test_left_right_front_and_back_views():
    pose = np.zeros(NUM_POSE)
    kp, _, _ = _render_one(pose, yaw=0.0)                      # camera in front: person's left on image right
    for l, r in ((L_SH, R_SH), (L_HIP, R_HIP), (L_EYE, R_EYE), (L_EAR, R_EAR)):
        assert kp[l, 0] > kp[r, 0] and kp[l, 2] == 2 and kp[r, 2] == 2
    assert kp[0, 2] == 2 and kp[0, 1] > kp[L_EYE, 1]          # nose below the eyes
    kp, _, _ = _render_one(pose, yaw=180.0)                    # from behind: mirrored, face not labelled
    for l, r in ((L_SH, R_SH), (L_HIP, R_HIP)):
        assert kp[l, 0] < kp[r, 0] and kp[l, 2] == 2 and kp[r, 2] == 2
    assert np.all(kp[:3, 2] == 0) and np.all(kp[:3, :2] == 0)
    kp, _, _ = _render_one(pose, yaw=180.0, label_back=True)
    assert np.all(kp[:3, 2] == 1)


def test_self_occlusion_from_the_side():
    pose = np.zeros(NUM_POSE)
    pose[[P["l_sh_el"], P["r_sh_el"]]] = 80.0                     # both arms raised forwards
    kp, _, _ = _render_one(pose, yaw=90.0)                     # camera on the person's left
    left = [j for j, n in enumerate(COCO_KEYPOINTS) if n.startswith("left")]
    right = [j for j, n in enumerate(COCO_KEYPOINTS) if n.startswith("right")]
    assert kp[0, 2] == 2 and np.all(kp[left, 2] == 2)          # the near side is visible
    assert np.all(kp[[R_EYE, R_EAR], 2] == 0)                   # the far side of the face is turned away
    assert np.all(kp[right[2:], 2] == 1)                        # the far body side is hidden by the near one
    mirror, _, _ = _render_one(pose, yaw=270.0)
    assert np.all(mirror[right, 2] == 2) and np.all(mirror[[L_EYE, L_EAR], 2] == 0) and np.all(mirror[left[2:], 2] == 1)
    hanging, _, _ = _render_one(np.zeros(NUM_POSE), yaw=90.0)
    assert hanging[L_HIP, 2] == 1                               # the near arm hangs in front of the hip


def test_face_is_drawn_where_the_keypoints_are():
    kp, img, ids = _render_one(np.zeros(NUM_POSE), yaw=0.0, height_px=240.0)
    for j in (L_EYE, R_EYE):                                    # a dark pupil at each eye keypoint
        x, y = np.rint(kp[j, :2]).astype(int)
        assert img[y, x].max() < 60, img[y, x]
    head = ids[np.rint(kp[:5, 1]).astype(int), np.rint(kp[:5, 0]).astype(int)]
    assert np.all(head == 1 + 3)                                # the face points lie on the head part


def test_every_motion_cycle_and_unusual_pose_is_within_limits():
    from posenas_core.data.synthpose.body import POSE_HI, POSE_LO, clip_pose

    assert len(ACTIONS) >= 5 and {"walk", "run", "wave", "squat", "jump"} <= set(ACTIONS)
    rng = np.random.default_rng(0)
    poses = [clip_pose(cycle_pose(a, ph)[0]) for a in ACTIONS for ph in (0.0, 0.3, 0.7)]
    poses += [clip_pose(unusual_pose(u, rng)) for u in UNUSUAL]
    for p in poses:
        assert np.all(p >= POSE_LO) and np.all(p <= POSE_HI)
        sk = forward_kinematics(sample_body_shape(rng), p)
        assert np.isfinite(sk.keypoints).all() and sk.all_points()[:, 1].min() >= -1e-9
    # walking swings the legs in antiphase
    p0, p1 = cycle_pose("walk", 0.25)[0], cycle_pose("walk", 0.75)[0]
    assert p0[P["l_hip_el"]] > 10 > -10 > p0[P["r_hip_el"]] and p1[P["l_hip_el"]] < -10


# ------------------------------------------------------------------------------------------ config
def test_config_validation_presets_and_json_round_trip():
    for cfg in (SynthConfig(), SynthConfig.easy(), SynthConfig.hard()):
        assert SynthConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert SynthConfig.easy().occluder_prob < SynthConfig().occluder_prob < SynthConfig.hard().occluder_prob
    with pytest.raises(ConfigError, match=r"occluder_prob.*\[0\.0, 1\.0\]"):
        SynthConfig(occluder_prob=1.5)
    with pytest.raises(ConfigError, match=r"people_max.*people_min"):
        SynthConfig(people_min=3, people_max=2)
    with pytest.raises(ConfigError, match="pitch_max"):
        SynthConfig(pitch_min=10.0, pitch_max=0.0)
    with pytest.raises(ConfigError, match="width"):
        SynthConfig(width="320")
    with pytest.raises(ConfigError, match="label_back_of_head"):
        SynthConfig(label_back_of_head=1)
    with pytest.raises(ConfigError, match="unknown knob.*'colour'"):
        SynthConfig.from_dict({"colour": 1})
    with pytest.raises(ConfigError, match="noise_max"):
        SynthConfig.hard(noise_max=-1.0)
    with pytest.raises(ConfigError, match=r"yaw_max = 200.0 is invalid: expected a number in \[0\.0, 180\.0\]"):
        SynthConfig(yaw_max=200.0)


def test_bad_arguments_raise_before_anything_is_written(tmp_path):
    with pytest.raises(ConfigError, match="n must be"):
        generate_images(-1, 0)
    with pytest.raises(ConfigError, match="seed"):
        generate_images(1, "0")
    with pytest.raises(ConfigError, match="split"):
        generate_images(1, 0, split="../x")
    with pytest.raises(ConfigError, match="config"):
        generate_images(1, 0, config={"width": 100})
    with pytest.raises(ConfigError, match="n_videos"):
        write_synthpose(tmp_path / "out", 1, 1, n_videos=-2, progress=False)
    with pytest.raises(ConfigError, match="seed"):
        write_synthpose(tmp_path / "out", 1, 1, seed=True, progress=False)
    assert not (tmp_path / "out").exists()


def test_config_knobs_change_the_data():
    easy, _ = generate_images(6, 0, config=SynthConfig.easy())
    kp = np.array([a["keypoints"] for a in easy["annotations"]]).reshape(-1, 17, 3)
    per_image = np.bincount([a["image_id"] for a in easy["annotations"]])[1:]
    assert per_image.max() <= 2
    big = SynthConfig(width=200, height=160, people_min=1, people_max=1, person_height_min=100.0,
                      person_height_max=110.0, unusual_pose_prob=0.0, random_pose_prob=0.0, occluder_prob=0.0)
    coco, imgs = generate_images(4, 0, config=big)
    assert len(coco["annotations"]) == 4 and imgs["train/000000000001.jpg"].shape == (160, 200, 3)
    assert all(60 < a["bbox"][3] < 135 for a in coco["annotations"])
    assert (kp[..., 2] == 2).mean() > 0.5


def test_yaw_max_bounds_the_facing():
    """yaw_max=0: everyone faces the camera (their left shoulder and hip on the image's right), nose and
    both eyes labelled unless a limb hides them; the full range (180) also shows people from behind."""
    def left_on_right(cfg, n=12):
        coco, _ = generate_images(n, 3, config=cfg)
        kp = np.array([a["keypoints"] for a in coco["annotations"]]).reshape(-1, 17, 3)
        ok = (kp[:, [5, 6, 11, 12], 2] > 0).all(1)
        side = (kp[ok, 5, 0] > kp[ok, 6, 0]) & (kp[ok, 11, 0] > kp[ok, 12, 0])
        return side.mean(), (kp[ok][:, :3, 2] > 0).all(1).mean()

    one = dict(people_min=1, people_max=1, unusual_pose_prob=0.0, random_pose_prob=0.0, roll_max=0.0)
    front, face = left_on_right(SynthConfig(yaw_max=0.0, **one))
    assert front == 1.0 and face > 0.8
    anywhere, _ = left_on_right(SynthConfig(yaw_max=180.0, **one), n=40)
    assert 0.2 < anywhere < 0.8
