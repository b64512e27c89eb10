"""PoseViewer: browse the people of a `PersonSet` with their ground truth, predictions and heatmaps.

    viewer = PoseViewer(val_set, predictions=results, heatmap_fn=lambda i: model_heatmaps(i))
    viewer            # displays (a bare expression)

    from posenas_core.train import heatmap_fn_from_checkpoint
    PoseViewer(val_set, kps, heatmap_fn=heatmap_fn_from_checkpoint(ckpt, val_set, (128, 96)),
               input_size_hw=(128, 96))                 # a trained model's heatmaps (the notebooks do this)

Controls: a person slider with prev / next buttons, an image dropdown (jumps to that image's first
person), a full-image / crop toggle, a heatmap toggle with a joint dropdown (a joint, or the max over
joints). The image is an `ipywidgets.Image` (PNG) rendered with OpenCV by `lab.draw.render_pose`:
ground truth solid (left / right / centre colours, occluded joints hollow), prediction dashed with
crosses, the box, other people of the image in grey; `.info` (HTML) shows the ids and the OKS of the
prediction against the ground truth (`posenas_core.eval.coco_eval.oks`, with the record's area).

Predictions: an (N, K, 3) / (N, K, 2) array aligned with ``person_set.records`` (x, y, score in image
pixels, e.g. the array returned by `posenas_core.train.predict.predict`), or a COCO keypoint results
list matched by image and order: the k-th result of an image goes with the k-th record of that image
(the order `predict` writes them in). See `match_predictions`.

`heatmap_fn(index) -> (K, h, w)` (numpy or torch) gives the heatmaps of record `index` on its crop: the
box ``box_to_center_size(bbox, input_size_hw, enlarge)`` the model's dataset uses (pass the same
`input_size_hw` / `enlarge`); it is called only while the heatmap toggle is on, and cached per index.
`posenas_core.train.predict.heatmap_fn_from_checkpoint(checkpoint, person_set, input_hw)` (or
`heatmap_fn_from_model(model, ...)`) builds one from a trained model: its crop is that box.
Errors in callbacks (a failing heatmap_fn, an unreadable image) are shown in the Output area
(`.errors.widget`) and the rest of the view keeps working.
"""

from __future__ import annotations

import html
import math
from collections import OrderedDict, defaultdict
from typing import Any, Callable, Sequence

import ipywidgets as W
import numpy as np

from posenas_core.data import COCO_KEYPOINTS
from posenas_core.errors import DataError
from posenas_core.eval import oks

from lab._util import DisplayMixin, ErrorArea, png_bytes
from lab.draw import BOX_COLOR, GT_COLORS, OTHER_COLOR, PRED_COLORS, render_pose, rgb_css

__all__ = ["PoseViewer", "match_predictions"]

_CACHE_IMAGES = 4
_CACHE_HEATMAPS = 8


def match_predictions(records: Sequence, predictions: Any) -> tuple[list[np.ndarray | None], list[float | None]]:
    """Align predictions with `records` -> (keypoints (K, 3) or None per record, score or None per record).

    `predictions`: None; an array (N, K, 3) or (N, K, 2) aligned with the records (a missing score
    column becomes 1); or a COCO results list [{image_id, keypoints (3K), score?}] matched by image and
    order (the k-th result of an image <-> the k-th record of that image; records without a result get
    None, surplus results are ignored). Raises DataError for a wrong shape or a malformed result.
    """
    n = len(records)
    if predictions is None:
        return [None] * n, [None] * n
    K = records[0].keypoints.shape[0] if n else 0
    if isinstance(predictions, np.ndarray) or (hasattr(predictions, "detach") and hasattr(predictions, "shape")):
        arr = predictions.detach().cpu().numpy() if hasattr(predictions, "detach") else predictions
        arr = np.asarray(arr, dtype=np.float64)
        if arr.ndim != 3 or arr.shape[0] != n or arr.shape[1] != K or arr.shape[2] not in (2, 3):
            raise DataError(f"predictions: an array must have shape (N={n}, K={K}, 3) aligned with "
                            f"person_set.records, got {arr.shape}")
        if arr.shape[2] == 2:
            arr = np.concatenate([arr, np.ones(arr.shape[:2] + (1,))], axis=2)
        return [arr[i] for i in range(n)], [None] * n
    if not isinstance(predictions, (list, tuple)):
        raise DataError(f"predictions must be None, an (N, K, 3) array or a COCO results list, "
                        f"got {type(predictions).__name__}")
    by_image: dict[Any, list[tuple[np.ndarray, float | None]]] = defaultdict(list)
    for i, r in enumerate(predictions):
        if not isinstance(r, dict) or "image_id" not in r or "keypoints" not in r:
            raise DataError(f"predictions[{i}]: a COCO result needs 'image_id' and 'keypoints', got "
                            f"{sorted(r) if isinstance(r, dict) else type(r).__name__}")
        kp = np.asarray(r["keypoints"], dtype=np.float64).reshape(-1)
        if kp.size != 3 * K:
            raise DataError(f"predictions[{i}] (image_id {r['image_id']}): 'keypoints' has {kp.size} values, "
                            f"expected {3 * K} ({K} joints x 3)")
        score = r.get("score")
        by_image[r["image_id"]].append((kp.reshape(K, 3), float(score) if score is not None else None))
    kps: list[np.ndarray | None] = []
    scores: list[float | None] = []
    seen: dict[Any, int] = defaultdict(int)
    for rec in records:
        k = seen[rec.image_id]
        seen[rec.image_id] += 1
        lst = by_image.get(rec.image_id, [])
        if k < len(lst):
            kps.append(lst[k][0])
            scores.append(lst[k][1])
        else:
            kps.append(None)
            scores.append(None)
    return kps, scores


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float32)


def _legend_html(with_pred: bool) -> str:
    def sw(color, label, style="solid"):
        return (f'<span style="display:inline-block;width:22px;border-top:3px {style} {rgb_css(color)};'
                f'vertical-align:middle;margin-right:4px"></span>{html.escape(label)}')

    def dot(color, label, hollow=False):
        fill = "transparent" if hollow else rgb_css(color)
        return (f'<span style="display:inline-block;width:9px;height:9px;border-radius:50%;'
                f'border:2px solid {rgb_css(color)};background:{fill};vertical-align:middle;margin-right:4px">'
                f'</span>{html.escape(label)}')

    rows = [
        "<b>ground truth</b>",
        sw(GT_COLORS["L"], "left") + " &nbsp; " + sw(GT_COLORS["R"], "right") + " &nbsp; " + sw(GT_COLORS["C"], "centre"),
        dot(GT_COLORS["L"], "visible (v=2)") + " &nbsp; " + dot(GT_COLORS["L"], "occluded (v=1)", hollow=True),
    ]
    if with_pred:
        rows += ["<b>prediction</b> (dashed, &times; joints)",
                 sw(PRED_COLORS["L"], "left", "dashed") + " &nbsp; " + sw(PRED_COLORS["R"], "right", "dashed")
                 + " &nbsp; " + sw(PRED_COLORS["C"], "centre", "dashed")]
    rows.append(sw(BOX_COLOR, "box (full view)") + " &nbsp; " + sw(OTHER_COLOR, "other people"))
    return ('<div style="font-size:12px;line-height:1.7;background:#333;color:#eee;padding:4px 8px;'
            'border-radius:4px">' + "<br>".join(rows) + "</div>")


class PoseViewer(DisplayMixin):
    """Browse a PersonSet with GT, predictions and heatmaps (see the module docstring).

    Attributes: `.widget` (root), `.image_widget` (ipywidgets.Image, PNG), `.info` (HTML), `.errors`
    (ErrorArea; `.errors.widget` is the Output), `.slider`, `.image_dropdown`, `.view_toggle`,
    `.heatmap_toggle`, `.joint_dropdown`, `.prev_button`, `.next_button`; `.index` the current record,
    `.current_oks` the OKS shown (None when there is no prediction / no labelled joint / no area).
    """

    def __init__(self, person_set, predictions: Any = None, *, heatmap_fn: Callable[[int], Any] | None = None,
                 title: str = "", input_size_hw: Sequence[int] = (256, 192), enlarge: float = 1.25,
                 display: int = 480, pred_min_score: float = 0.0):
        self.person_set = person_set
        self.records = list(person_set.records)
        if not self.records:
            raise DataError(f"PoseViewer: {getattr(person_set, 'name', 'the person set')} has no person records")
        if getattr(person_set, "image_source", None) is None:
            raise DataError("PoseViewer: the person set has no image_source (read it with image_root= or images=)")
        self.names = tuple(getattr(person_set, "keypoint_names", ()) or COCO_KEYPOINTS)
        self.K = self.records[0].keypoints.shape[0]
        self.pred, self.pred_scores = match_predictions(self.records, predictions)
        self.has_pred = predictions is not None
        self.heatmap_fn = heatmap_fn
        self.input_size_hw = (int(input_size_hw[0]), int(input_size_hw[1]))
        self.enlarge = float(enlarge)
        self.display = int(display)
        self.pred_min_score = float(pred_min_score)
        self.current_oks: float | None = None
        self.render_count = 0
        self._images: OrderedDict[str, np.ndarray] = OrderedDict()
        self._heatmaps: OrderedDict[int, np.ndarray] = OrderedDict()
        self._syncing = False

        # image id -> record indices (record order); images in order of first appearance
        self.by_image: dict[Any, list[int]] = defaultdict(list)
        for i, r in enumerate(self.records):
            self.by_image[r.image_id].append(i)

        n = len(self.records)
        self.errors = ErrorArea()
        self.slider = W.IntSlider(value=0, min=0, max=n - 1, description="person", continuous_update=False,
                                  layout=W.Layout(width="340px"))
        self.prev_button = W.Button(description="", icon="chevron-left", tooltip="previous person",
                                    layout=W.Layout(width="38px"))
        self.next_button = W.Button(description="", icon="chevron-right", tooltip="next person",
                                    layout=W.Layout(width="38px"))
        options = []
        for iid, idx in self.by_image.items():
            fn = self.records[idx[0]].file_name
            options.append((f"{fn} (image {iid}, {len(idx)} {'person' if len(idx) == 1 else 'people'})", iid))
        self.image_dropdown = W.Dropdown(options=options, value=self.records[0].image_id, description="image",
                                         layout=W.Layout(width="420px"))
        # buttons sized to their labels ("full image" was cut to "full im..." at 80 px)
        self.view_toggle = W.ToggleButtons(options=[("full image", "full"), ("crop", "crop")], value="full",
                                           style=W.ToggleButtonsStyle(button_width="auto"))
        self.heatmap_toggle = W.ToggleButton(value=False, description="heatmaps", icon="fire",
                                             disabled=heatmap_fn is None,
                                             tooltip="overlay heatmap_fn(index)" if heatmap_fn else
                                             "pass heatmap_fn= (e.g. posenas_core.train.predict."
                                             "heatmap_fn_from_checkpoint) to see heatmaps")
        self.joint_dropdown = W.Dropdown(options=[("max over joints", -1)] + [(nm, j) for j, nm in enumerate(self.names)],
                                         value=-1, description="joint", disabled=True,
                                         layout=W.Layout(width="240px"))
        self.image_widget = W.Image(format="png", layout=W.Layout(border="1px solid #ccc"))
        self.info = W.HTML()
        self.legend = W.HTML(_legend_html(self.has_pred))
        self.title = W.HTML(f"<h3 style='margin:4px 0'>{html.escape(title)}</h3>" if title else "")

        self.slider.observe(self.errors.wrap(self._on_index, "changing the person"), names="value")
        self.image_dropdown.observe(self.errors.wrap(self._on_image, "jumping to the image"), names="value")
        self.view_toggle.observe(lambda _c: self.render(), names="value")
        self.heatmap_toggle.observe(self.errors.wrap(self._on_heat_toggle, "toggling heatmaps"), names="value")
        self.joint_dropdown.observe(lambda _c: self.render(), names="value")
        self.prev_button.on_click(self.errors.wrap(lambda _b: self.step(-1), "going back"))
        self.next_button.on_click(self.errors.wrap(lambda _b: self.step(+1), "going forward"))

        controls = W.VBox([
            W.HBox([self.prev_button, self.slider, self.next_button, self.image_dropdown]),
            W.HBox([self.view_toggle, self.heatmap_toggle, self.joint_dropdown]),
        ])
        side = W.VBox([self.info, self.legend], layout=W.Layout(margin="0 0 0 12px", max_width="380px"))
        self.widget = W.VBox([self.title, controls, W.HBox([self.image_widget, side]), self.errors.widget])
        self.render()

    # ----------------------------------------------------------------------------- navigation
    @property
    def index(self) -> int:
        return int(self.slider.value)

    @index.setter
    def index(self, i: int) -> None:
        n = len(self.records)
        if not -n <= int(i) < n:
            raise IndexError(f"index {i} out of range for {n} records")
        self.slider.value = int(i) % n

    def step(self, delta: int) -> None:
        """Move by `delta` people, wrapping around."""
        self.slider.value = (self.index + int(delta)) % len(self.records)

    def _on_index(self, _change=None) -> None:
        iid = self.records[self.index].image_id
        if self.image_dropdown.value != iid:
            self._syncing = True
            try:
                self.image_dropdown.value = iid
            finally:
                self._syncing = False
        self.render()

    def _on_image(self, change) -> None:
        if self._syncing or change["new"] == self.records[self.index].image_id:
            return
        self.slider.value = self.by_image[change["new"]][0]

    def _on_heat_toggle(self, change) -> None:
        self.joint_dropdown.disabled = not change["new"]
        self.render()

    # ----------------------------------------------------------------------------- data
    def _image(self, file_name: str) -> np.ndarray:
        if file_name in self._images:
            self._images.move_to_end(file_name)
            return self._images[file_name]
        img = self.person_set.image_source.load(file_name)
        self._images[file_name] = img
        while len(self._images) > _CACHE_IMAGES:
            self._images.popitem(last=False)
        return img

    def heatmaps(self, index: int) -> np.ndarray:
        """`heatmap_fn(index)` as a (K, h, w) float32 array (cached); raises on a wrong shape."""
        if self.heatmap_fn is None:
            raise ValueError("PoseViewer: no heatmap_fn was given")
        if index in self._heatmaps:
            self._heatmaps.move_to_end(index)
            return self._heatmaps[index]
        hm = _to_numpy(self.heatmap_fn(index))
        if hm.ndim == 4 and hm.shape[0] == 1:
            hm = hm[0]
        if hm.ndim != 3 or hm.shape[0] != self.K:
            raise DataError(f"heatmap_fn({index}) must return (K={self.K}, h, w) heatmaps, got shape {hm.shape}")
        self._heatmaps[index] = hm
        while len(self._heatmaps) > _CACHE_HEATMAPS:
            self._heatmaps.popitem(last=False)
        return hm

    # ----------------------------------------------------------------------------- view
    def render(self) -> None:
        """Redraw the image and the info for the current controls (errors go to the Output area)."""
        with self.errors.catch("rendering the view"):
            self._render()

    def _render(self) -> None:
        i = self.index
        rec = self.records[i]
        pred = self.pred[i]
        heat, heat_note = None, ""
        if self.heatmap_toggle.value and self.heatmap_fn is not None:
            heat_note = "<span style='color:#b00020'>heatmap_fn failed (see the error below)</span>"
            with self.errors.catch(f"computing heatmap_fn({i})"):
                hm = self.heatmaps(i)
                j = self.joint_dropdown.value
                heat = hm.max(axis=0) if j < 0 else hm[j]
                which = "max over joints" if j < 0 else self.names[j]
                heat_note = html.escape(f"{which}: peak {float(heat.max()):.3g} on a {hm.shape[1]}x{hm.shape[2]} map")
        others = [self.records[k].keypoints for k in self.by_image[rec.image_id] if k != i]
        img = self._image(rec.file_name)
        rgb = render_pose(img, rec.keypoints, pred, bbox=rec.bbox, view=self.view_toggle.value,
                          input_size_hw=self.input_size_hw, enlarge=self.enlarge, display=self.display,
                          heatmap=heat, others=others, pred_min_score=self.pred_min_score)
        self.current_oks = self._oks(i)
        self.image_widget.value = png_bytes(rgb)
        self.image_widget.width = rgb.shape[1]
        self.image_widget.height = rgb.shape[0]
        self.info.value = self._info_html(i, heat_note)
        self.render_count += 1

    def _oks(self, i: int) -> float | None:
        rec, pred = self.records[i], self.pred[i]
        if pred is None or not (rec.area > 0) or not np.any(rec.keypoints[:, 2] > 0):
            return None
        return oks(pred, rec.keypoints, rec.area)

    def _info_html(self, i: int, heat_note: str) -> str:
        rec = self.records[i]
        v = rec.keypoints[:, 2]
        x, y, w, h = (float(t) for t in rec.bbox)
        rows = [
            ("person", f"{i + 1} / {len(self.records)}"),
            ("ann id", str(rec.ann_id)),
            ("image id", str(rec.image_id)),
            ("file", rec.file_name),
            ("box x,y,w,h", f"{x:.1f}, {y:.1f}, {w:.1f}, {h:.1f}"),
            ("area", f"{rec.area:.1f}"),
            ("labelled joints", f"{int((v > 0).sum())} ({int((v == 2).sum())} visible, {int((v == 1).sum())} occluded)"),
        ]
        if self.has_pred:
            if self.pred[i] is None:
                rows.append(("prediction", "none for this person"))
            else:
                if self.pred_scores[i] is not None:
                    rows.append(("pred score", f"{self.pred_scores[i]:.3f}"))
                o = self.current_oks
                rows.append(("OKS", "n/a (no labelled joint or no area)" if o is None or math.isnan(o) else f"{o:.3f}"))
        body = "".join(f"<tr><td style='padding:1px 8px 1px 0;color:#555'>{html.escape(k)}</td>"
                       f"<td style='padding:1px 0'>{html.escape(val)}</td></tr>" for k, val in rows)
        if heat_note:
            body += f"<tr><td style='padding:1px 8px 1px 0;color:#555'>heatmap</td><td>{heat_note}</td></tr>"
        return f"<table style='font-size:13px'>{body}</table>"
