"""PoseViewer driven headless: controls -> image bytes, info, OKS, heatmaps, errors in the Output area."""

import cv2
import numpy as np
import pytest

from posenas_core.data.geometry import apply_affine, box_to_center_size, crop_affine, input_to_heatmap
from posenas_core.errors import DataError
from posenas_core.eval.coco_eval import oks

from lab import PoseViewer, match_predictions
from lab.draw import GT_COLORS, view_geometry


def decode(png: bytes) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None, "not a PNG"
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def test_slider_changes_image_and_info(person_set):
    v = PoseViewer(person_set)
    recs = person_set.records
    assert v.index == 0 and f"<td style='padding:1px 0'>{recs[0].ann_id}</td>" in v.info.value
    first = v.image_widget.value
    assert decode(first).shape[:2] == (360, 480)  # image 1 is 90x120 -> long side 480

    v.slider.value = 2  # the person of image 2
    assert v.image_widget.value != first
    assert str(recs[2].ann_id) in v.info.value and str(recs[0].ann_id) not in v.info.value
    assert v.image_dropdown.value == recs[2].image_id == 2
    assert decode(v.image_widget.value).shape[:2] == (480, 384)  # 100x80 image
    assert v.errors.errors == []


def test_dropdown_jumps_to_first_person_of_image(person_set):
    v = PoseViewer(person_set)
    v.image_dropdown.value = 3
    assert v.index == 3 and person_set.records[3].image_id == 3
    v.image_dropdown.value = 1
    assert v.index == 0
    # moving within image 1 keeps the second person (no jump back to the first)
    v.slider.value = 1
    assert v.index == 1 and v.image_dropdown.value == 1
    assert str(person_set.records[1].ann_id) in v.info.value


def test_prev_next_buttons_wrap(person_set):
    v = PoseViewer(person_set)
    v.prev_button.click()
    assert v.index == len(person_set.records) - 1
    v.next_button.click()
    v.next_button.click()
    assert v.index == 1


def test_oks_shown_equals_core_oks(person_set, noisy_predictions):
    v = PoseViewer(person_set, noisy_predictions)
    for i in (0, 2):
        v.index = i
        rec = person_set.records[i]
        expected = oks(noisy_predictions[i], rec.keypoints, rec.area)
        assert 0.3 < expected < 1.0
        assert v.current_oks == expected
        assert f"{expected:.3f}" in v.info.value and "OKS" in v.info.value


def test_no_predictions_no_oks(person_set):
    v = PoseViewer(person_set)
    assert v.current_oks is None and "OKS" not in v.info.value


def test_prediction_is_drawn(person_set, noisy_predictions):
    a = PoseViewer(person_set).image_widget.value
    b = PoseViewer(person_set, noisy_predictions).image_widget.value
    assert decode(a).shape == decode(b).shape
    assert np.abs(decode(a).astype(int) - decode(b).astype(int)).sum() > 1000


def test_results_list_matched_by_image_and_order(person_set, noisy_predictions):
    recs = person_set.records
    results = [{"image_id": r.image_id, "category_id": 1, "keypoints": noisy_predictions[i].reshape(-1).tolist(),
                "score": 0.5 + i / 10} for i, r in enumerate(recs)]
    # another image order, same order within image 1; image 3 has no result
    shuffled = [results[2], results[0], results[1]]
    kps, scores = match_predictions(recs, shuffled)
    np.testing.assert_allclose(kps[0], noisy_predictions[0])
    np.testing.assert_allclose(kps[1], noisy_predictions[1])
    np.testing.assert_allclose(kps[2], noisy_predictions[2])
    assert kps[3] is None and scores[:3] == [0.5, 0.6, 0.7]

    v = PoseViewer(person_set, shuffled)
    v.index = 1
    assert v.current_oks == oks(noisy_predictions[1], recs[1].keypoints, recs[1].area)
    assert "0.600" in v.info.value
    v.index = 3
    assert v.current_oks is None and "none for this person" in v.info.value


def test_bad_predictions_raise_clear_errors(person_set):
    with pytest.raises(DataError, match=r"\(N=4, K=17, 3\).*got \(3, 17, 3\)"):
        PoseViewer(person_set, np.zeros((3, 17, 3)))
    with pytest.raises(DataError, match=r"predictions\[0\].*'keypoints' has 6 values, expected 51"):
        PoseViewer(person_set, [{"image_id": 1, "keypoints": [1, 2, 3, 4, 5, 6]}])


def make_heatmap_fn(person_set, calls, size_hw=(64, 48), input_hw=(256, 192)):
    """Heatmaps with a single hot cell at each labelled joint's heatmap position (on the crop)."""

    def fn(index):
        calls.append(index)
        r = person_set.records[index]
        c, s = box_to_center_size(r.bbox, input_hw, 1.25)
        kp = apply_affine(crop_affine(c, s, input_hw), r.keypoints[:, :2])
        hm_xy = input_to_heatmap(kp, input_hw[0] / size_hw[0])
        out = np.zeros((17,) + size_hw, np.float32)
        for j, (x, y) in enumerate(hm_xy):
            if r.keypoints[j, 2] > 0:
                out[j, int(round(y)), int(round(x))] = 1.0
        return out

    return fn


def test_heatmap_toggle_calls_fn_with_index(person_set):
    calls = []
    v = PoseViewer(person_set, heatmap_fn=make_heatmap_fn(person_set, calls))
    assert calls == [] and v.joint_dropdown.disabled
    v.index = 2
    before = v.image_widget.value
    v.heatmap_toggle.value = True
    assert calls == [2] and not v.joint_dropdown.disabled
    with_max = v.image_widget.value
    assert with_max != before and "max over joints" in v.info.value
    v.joint_dropdown.value = 9
    assert v.image_widget.value not in (before, with_max)
    assert "left_wrist" in v.info.value
    assert calls == [2]  # cached per index
    v.index = 3
    assert calls == [2, 3]
    v.heatmap_toggle.value = False
    v.index = 0
    assert calls == [2, 3]  # off: not called
    assert v.errors.errors == []


def test_heatmap_overlay_peaks_at_the_joint():
    """heatmap_in_view maps a hot heatmap cell to the joint's position in the view (crop and full)."""
    from lab.draw import heatmap_in_view

    bbox, input_hw, hm_hw = (30.0, 20.0, 50.0, 90.0), (256, 192), (64, 48)
    joint = np.array([52.3, 71.8])
    c, s = box_to_center_size(bbox, input_hw, 1.25)
    hm_xy = input_to_heatmap(apply_affine(crop_affine(c, s, input_hw), joint), 4.0)
    cell = np.round(hm_xy).astype(int)
    hm = np.zeros(hm_hw, np.float32)
    hm[cell[1], cell[0]] = 1.0
    # the cell centre, back in image coordinates: where the peak must land
    centre_img = apply_affine(np.linalg.inv(np.vstack([crop_affine(c, s, hm_hw), [0, 0, 1]]))[:2], cell)
    for view in ("crop", "full"):
        M, vhw = view_geometry((150, 200), bbox, view, input_size_hw=input_hw, display=480)
        hv = heatmap_in_view(hm, M, vhw, bbox, input_size_hw=input_hw)
        y, x = np.unravel_index(np.argmax(hv), hv.shape)
        expect = apply_affine(M, centre_img)
        assert abs(x - expect[0]) <= 1 and abs(y - expect[1]) <= 1, (view, (x, y), expect)
        assert np.hypot(*(apply_affine(M, joint) - expect)) < 0.5 * 480 / 64 * 1.5  # within a heatmap cell


def test_heatmap_fn_error_is_shown_not_raised(person_set):
    def bad(index):
        raise RuntimeError(f"model exploded on {index}")

    v = PoseViewer(person_set, heatmap_fn=bad)
    v.index = 1
    v.heatmap_toggle.value = True  # must not raise
    outs = v.errors.widget.outputs
    assert len(outs) == 1 and outs[0]["output_type"] == "error"
    assert outs[0]["ename"] == "RuntimeError" and outs[0]["evalue"] == "model exploded on 1"
    assert any("model exploded on 1" in line for line in outs[0]["traceback"])
    assert isinstance(v.errors.last_error, RuntimeError)
    assert "heatmap_fn failed" in v.info.value
    assert decode(v.image_widget.value).shape[:2] == (360, 480)  # the view still rendered


def test_heatmap_wrong_shape_is_reported(person_set):
    v = PoseViewer(person_set, heatmap_fn=lambda i: np.zeros((5, 8, 6)))
    v.heatmap_toggle.value = True
    assert isinstance(v.errors.last_error, DataError)
    assert "must return (K=17, h, w) heatmaps, got shape (5, 8, 6)" in v.errors.widget.outputs[-1]["evalue"]


def test_crop_view_size_and_gt_colours(person_set):
    v = PoseViewer(person_set, input_size_hw=(256, 192), display=320)
    v.view_toggle.value = "crop"
    img = decode(v.image_widget.value)
    assert img.shape[:2] == (320, 240)
    rec = person_set.records[0]
    M, vhw = view_geometry((90, 120), rec.bbox, "crop", input_size_hw=(256, 192), display=320)
    # a visible left joint (left knee, 13) is drawn as a filled dot of the GT left colour
    x, y = np.round(apply_affine(M, rec.keypoints[13, :2])).astype(int)
    assert np.abs(img[y, x].astype(int) - np.array(GT_COLORS["L"])).max() <= 40, img[y, x]


def test_missing_image_is_reported(tiny_coco):
    from posenas_core.data.readers import read_coco_keypoints

    coco, pix = tiny_coco
    pix = dict(pix)
    del pix["b.png"]
    ps = read_coco_keypoints(coco, images=pix)
    v = PoseViewer(ps)
    v.index = 2
    assert isinstance(v.errors.last_error, DataError) and "b.png" in str(v.errors.last_error)
    v.index = 3  # the next one works again
    assert str(ps.records[3].ann_id) in v.info.value


def test_display_delegates_to_widget(person_set):
    v = PoseViewer(person_set, title="t<b>")
    bundle = v._repr_mimebundle_()
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == v.widget.model_id
    assert "t&lt;b&gt;" in v.title.value


def test_heatmaps_of_a_model_through_the_core_heatmap_fn(person_set):
    """`posenas_core.train.predict.heatmap_fn_from_model` plugs into the viewer: the toggle is enabled and
    shows the model's maps of the person's crop (a stub model: the crop's green channel pooled 4x, so the
    maps are hot on the lower half of each image, where the fixture paints green)."""
    import torch
    from torch import nn

    from posenas_core.train.predict import heatmap_fn_from_model

    class GreenModel(nn.Module):
        output_stride = 4

        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(1))

        def forward(self, x):
            return nn.functional.avg_pool2d(x[:, 1:2], 4).repeat(1, 17, 1, 1) * self.w

    fn = heatmap_fn_from_model(GreenModel(), person_set, (64, 48))
    v = PoseViewer(person_set, heatmap_fn=fn, input_size_hw=(64, 48))
    assert not v.heatmap_toggle.disabled
    plain = v.image_widget.value
    v.heatmap_toggle.value = True
    assert v.image_widget.value != plain and v.errors.errors == []
    hm = v.heatmaps(v.index)
    assert hm.shape == (17, 16, 12) and np.allclose(hm, fn(v.index))
    assert hm[0, -4:].mean() > hm[0, :4].mean() + 1.0           # green (lower) half of the crop is hot
    assert "16x12 map" in v.info.value
    v.view_toggle.value = "crop"
    v.index = 3
    assert v.errors.errors == [] and v.heatmaps(3).shape == (17, 16, 12)
