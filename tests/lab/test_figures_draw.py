"""lab.figures (pure figure functions: trace counts and data) and lab.draw (OpenCV rendering)."""

import math

import numpy as np
import pandas as pd
import pytest

from posenas_core.data.geometry import apply_affine
from posenas_core.data.keypoints import COCO_SKELETON

from lab.draw import GT_COLORS, PRED_COLORS, draw_skeleton, limb_side, render_pose, view_geometry
from lab.figures import METRIC_COLUMNS, ap_bar, metrics_frame, metrics_table, pose_figure, training_curves

RECORDS = [
    {"step": 10, "epoch": 0, "loss": 0.5, "lr": 1e-4, "img_per_s": 90.0, "time": 5.0, "wall": 1.0},
    {"step": 20, "epoch": 0, "loss": 0.25, "lr": 2e-4, "img_per_s": 95.0, "time": 10.0, "wall": 2.0},
    {"epoch": 1, "step": 20, "val": {"AP": 0.1, "loss": 0.3}, "time": 12.0, "wall": 3.0},
    {"step": 30, "epoch": 1, "loss": None, "lr": 3e-4, "img_per_s": 97.0, "time": 15.0, "wall": 4.0},
    {"epoch": 2, "step": 40, "val": {"coco": {"AP": 0.2, "AR": 0.3}}, "time": 20.0, "wall": 5.0},
]


def test_metrics_frame():
    df = metrics_frame(RECORDS)
    assert list(df.columns[: len(METRIC_COLUMNS)]) == METRIC_COLUMNS
    assert {"val.AP", "val.loss", "val.coco.AP", "val.coco.AR"} <= set(df.columns)
    assert list(df["kind"]) == ["train", "train", "val", "train", "val"]
    assert df["val_AP"].tolist()[2] == 0.1 and df["val_AP"].tolist()[4] == 0.2
    assert math.isnan(df["loss"][3]) and df["val_loss"][2] == 0.3
    assert len(metrics_frame([])) == 0 and list(metrics_frame([]).columns) == METRIC_COLUMNS


def test_training_curves_traces():
    fig = training_curves(metrics_frame(RECORDS))
    assert [t.name for t in fig.data] == ["train loss", "val loss", "lr", "val AP"]
    loss, vloss, lr, ap = fig.data
    assert list(loss.x) == [10, 20] and list(loss.y) == [0.5, 0.25]  # the None loss is left out
    assert list(vloss.x) == [20] and list(vloss.y) == [0.3]
    assert list(lr.x) == [10, 20, 30] and list(lr.y) == [1e-4, 2e-4, 3e-4]
    assert list(ap.x) == [1, 2] and list(ap.y) == [0.1, 0.2]
    assert (loss.xaxis, lr.xaxis, ap.xaxis) == ("x", "x2", "x3")
    assert fig.layout.yaxis.type == "log"
    assert len(training_curves(metrics_frame([])).data) == 4
    # pure: same input, same figure
    assert training_curves(metrics_frame(RECORDS)).to_json() == fig.to_json()


def test_pose_figure_traces(make_person_keypoints):
    img = np.zeros((90, 120, 3), np.uint8)
    gt = make_person_keypoints((10, 10, 40, 70))  # joint 7 occluded, joint 4 absent
    fig = pose_figure(img, gt)
    assert len(fig.data) == 1 + 4 and fig.data[0].type == "image"
    names = [t.name for t in fig.data]
    assert names[1:] == ["GT left", "GT right", "GT centre", "GT joints"]
    joints = fig.data[4]
    assert len(joints.x) == 16  # v = 0 joint left out
    sym = dict(zip(joints.text, joints.marker.symbol))
    assert sym["left_elbow (v=1)"] == "circle-open" and sym["nose (v=2)"] == "circle"
    # every limb with both ends labelled is drawn once, on its side's trace
    n_limbs = sum(len(fig.data[i].x) // 3 for i in (1, 2, 3))
    assert n_limbs == sum(1 for a, b in COCO_SKELETON if gt[a, 2] > 0 and gt[b, 2] > 0)
    left = fig.data[1]
    assert (gt[13, 0], gt[15, 0]) in {(left.x[i], left.x[i + 1]) for i in range(0, len(left.x), 3)} | \
           {(left.x[i + 1], left.x[i]) for i in range(0, len(left.x), 3)}

    pred = gt.copy()
    pred[:, 2] = 0.8
    pred[0] = 0  # absent
    fig2 = pose_figure(img, gt, pred, bbox=(10, 10, 40, 70))
    assert len(fig2.data) == 1 + 4 + 4 + 1
    assert [t.name for t in fig2.data[5:]] == ["pred left", "pred right", "pred centre", "pred joints", "box"]
    assert fig2.data[5].line.dash == "dash" and fig2.data[1].line.dash == "solid"
    assert len(fig2.data[8].x) == 16 and set(fig2.data[8].marker.symbol) == {"x"}
    assert list(fig2.data[9].x) == [10, 50, 50, 10, 10]
    assert pose_figure(img, gt, pred).to_json() == pose_figure(img, gt, pred).to_json()
    with pytest.raises(ValueError, match=r"\(17, 2 or 3\)"):
        pose_figure(img, gt[:5])


def test_ap_bar_and_table():
    fig = ap_bar({"Head": 0.8, "Shoulder": float("nan"), "Total": 0.6})
    bar = fig.data[0]
    assert list(bar.x) == ["Head", "Shoulder", "Total"] and list(bar.y) == [0.8, None, 0.6]
    assert list(bar.text) == ["0.800", "n/a", "0.600"] and bar.marker.color[2] != bar.marker.color[0]
    assert tuple(fig.layout.yaxis.range) == (0, 1.05)

    df = pd.DataFrame({"run_id": ["a", "b"], "metrics.AP": [0.123456, float("nan")]})
    t = metrics_table(df)
    assert list(t.data[0].header.values) == ["run_id", "metrics.AP"]
    assert [list(c) for c in t.data[0].cells.values] == [["a", "b"], ["0.1235", ""]]
    with pytest.raises(KeyError, match="nope"):
        metrics_table(df, ["nope"])


def test_limb_side():
    assert limb_side(13, 15) == "L" and limb_side(14, 16) == "R"
    assert limb_side(5, 6) == "C" and limb_side(0, 1) == "L" and limb_side(2, 0) == "R"


def test_draw_skeleton_styles_on_black():
    canvas = np.zeros((100, 100, 3), np.uint8)
    kp = np.zeros((17, 3))
    kp[11] = (30.0, 10.0, 2)  # left hip visible
    kp[13] = (30.3, 40.0, 2)  # left knee visible
    kp[16] = (70.0, 80.0, 1)  # right ankle occluded; right knee absent -> no limb to it
    out = draw_skeleton(canvas.copy(), kp, "gt")
    assert np.abs(out[40, 30].astype(int) - GT_COLORS["L"]).max() <= 40  # filled dot
    assert np.abs(out[25, 30].astype(int) - GT_COLORS["L"]).max() <= 40  # the left thigh limb
    assert out[80, 70].max() == 0 and out[80, 74].max() > 0  # hollow: centre empty, ring drawn
    assert out[60, 70].max() == 0  # no limb to the absent right knee
    pred = kp.copy()
    pred[:, 2] = [0.9 if v > 0 else 0 for v in kp[:, 2]]
    outp = draw_skeleton(canvas.copy(), pred, "pred", pred_min_score=0.5)
    assert np.abs(outp[40, 30].astype(int) - PRED_COLORS["L"]).max() <= 60  # cross centre
    assert not np.array_equal(outp, out)
    with pytest.raises(ValueError, match="style"):
        draw_skeleton(canvas, kp, "nope")


def test_render_pose_views_and_points(make_person_keypoints):
    img = np.full((90, 120, 3), 50, np.uint8)
    gt = make_person_keypoints((10, 10, 40, 70))
    full = render_pose(img, gt, bbox=(10, 10, 40, 70), display=240)
    assert full.shape == (180, 240, 3)
    crop = render_pose(img, gt, bbox=(10, 10, 40, 70), view="crop", input_size_hw=(256, 192), display=256)
    assert crop.shape == (256, 192, 3)
    M, vhw = view_geometry((90, 120), (10, 10, 40, 70), "crop", input_size_hw=(256, 192), display=256)
    x, y = np.round(apply_affine(M, gt[0, :2])).astype(int)  # the nose, a centre joint
    assert np.abs(crop[y, x].astype(int) - GT_COLORS["C"]).max() <= 40
    with pytest.raises(ValueError, match="uint8"):
        render_pose(img.astype(np.float32), gt)
