"""Pure figure functions: data (DataFrame / arrays / dicts) -> plotly `go.Figure`.

Same input, same figure: no I/O, no globals, no randomness. Widgets wrap them with
``go.FigureWidget(fig)`` and copy the trace data of a freshly built figure into the live one, so
every function here returns a FIXED list of traces for a given kind of input (empty traces stay,
with empty x / y), documented per function.

- `metrics_frame(records)`     metrics.jsonl records (trainer) -> a tidy DataFrame
- `training_curves(df)`        loss / learning rate vs step, validation AP vs epoch (3 subplots)
- `pose_figure(image, gt, pred)` an image with the ground-truth and predicted skeletons
- `ap_bar(per_joint)`          a per-joint (or per-group) AP table as a bar chart
- `metrics_table(df)`          a DataFrame as a plotly table (static reports)
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from posenas_core.data import COCO_KEYPOINTS, COCO_SKELETON, JOINT_SIDE
from posenas_core.runs import flatten_scalars

from lab.draw import GT_COLORS, PRED_COLORS, limb_side, rgb_css

__all__ = ["METRIC_COLUMNS", "MARKER_MAX_POINTS", "line_mode", "val_ap", "metrics_frame", "training_curves",
           "pose_figure", "ap_bar", "metrics_table"]

# Columns of `metrics_frame` (then the flattened "val.<key>" columns of the validation records).
METRIC_COLUMNS = ["kind", "step", "epoch", "loss", "lr", "img_per_s", "time", "wall", "val_AP", "val_loss"]
_SIDE_NAMES = {"L": "left", "R": "right", "C": "centre"}
MARKER_MAX_POINTS = 40  # curves with at most this many points are drawn with markers as well


def line_mode(n_points: int) -> str:
    """Scatter mode of a curve of `n_points`: "lines+markers" up to `MARKER_MAX_POINTS`, else "lines"."""
    return "lines+markers" if n_points <= MARKER_MAX_POINTS else "lines"


def _num(v: Any) -> float:
    """A finite-or-NaN float for JSON numbers; NaN for anything else (None, strings, bools)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return math.nan
    return float(v)


def val_ap(val: Mapping) -> float:
    """The COCO AP of a validation dict: ``val["AP"]``, else ``val["coco"]["AP"]``, else NaN."""
    if not isinstance(val, Mapping):
        return math.nan
    if "AP" in val:
        return _num(val["AP"])
    coco = val.get("coco")
    return _num(coco.get("AP")) if isinstance(coco, Mapping) else math.nan


def metrics_frame(records: Iterable[Mapping]) -> pd.DataFrame:
    """Trainer metrics.jsonl records -> DataFrame, one row per record, in file order.

    Columns: `METRIC_COLUMNS` (kind is "train" for a log-step record, "val" for a record with a
    "val" dict; numbers are float, NaN when absent; val_AP from `val_ap`, val_loss = val["loss"]),
    then every scalar of the validation dicts flattened as "val.<key>[.<key>]" (sorted).
    """
    rows = []
    for r in records:
        if not isinstance(r, Mapping):
            continue
        val = r.get("val")
        is_val = isinstance(val, Mapping)
        row: dict[str, Any] = {"kind": "val" if is_val else "train"}
        for c in ("step", "epoch", "loss", "lr", "img_per_s", "time", "wall"):
            row[c] = _num(r.get(c))
        row["val_AP"] = val_ap(val) if is_val else math.nan
        row["val_loss"] = _num(val.get("loss")) if is_val else math.nan
        if is_val:
            row.update(flatten_scalars(val, "val"))
        rows.append(row)
    extra = sorted({k for row in rows for k in row if k not in METRIC_COLUMNS})
    df = pd.DataFrame(rows, columns=METRIC_COLUMNS + extra)
    for c in METRIC_COLUMNS[1:]:
        df[c] = df[c].astype(float)
    return df


def training_curves(df: pd.DataFrame, *, log_loss: bool = True, title: str = "") -> go.Figure:
    """Loss vs step, learning rate vs step, validation AP vs epoch (1 x 3 subplots).

    `df` is a `metrics_frame` (any DataFrame with those columns). Always 4 traces, in this order:
    0 "train loss" (train rows: step, loss), 1 "val loss" (val rows with a val_loss: step, val_loss),
    2 "lr" (train rows: step, lr), 3 "val AP" (val rows with a val_AP: epoch, val_AP).
    NaN values are left out of each trace. The loss axis is logarithmic if `log_loss`; the lr axis
    (layout.yaxis2) autoranges, or is [0, 2 lr] while the lr is one positive value. The train loss
    and lr traces draw markers too while they have at most `MARKER_MAX_POINTS` points (a curve of one
    training step is a single marker, not an invisible line); the widget copies `mode` with x / y.
    """
    fig = make_subplots(rows=1, cols=3, horizontal_spacing=0.08,
                        subplot_titles=("loss", "learning rate", "validation AP"))

    def col(name: str) -> pd.Series:
        return df[name].astype(float) if name in df.columns else pd.Series(np.nan, index=df.index, dtype=float)

    kind = df["kind"] if "kind" in df.columns else pd.Series("train", index=df.index)
    step, epoch = col("step"), col("epoch")

    def xy(mask, x: pd.Series, y: pd.Series):
        m = mask & x.notna() & y.notna()
        return x[m].tolist(), y[m].tolist()

    train, val = kind == "train", kind == "val"
    x, y = xy(train, step, col("loss"))
    fig.add_trace(go.Scatter(x=x, y=y, name="train loss", mode=line_mode(len(x)), line=dict(color="#1f77b4"),
                             marker=dict(size=6)), row=1, col=1)
    x, y = xy(val, step, col("val_loss"))
    fig.add_trace(go.Scatter(x=x, y=y, name="val loss", mode="lines+markers", line=dict(color="#ff7f0e")),
                  row=1, col=1)
    x, y = xy(train, step, col("lr"))
    fig.add_trace(go.Scatter(x=x, y=y, name="lr", mode=line_mode(len(x)), line=dict(color="#2ca02c"),
                             marker=dict(size=6), cliponaxis=False), row=1, col=2)
    x, y = xy(val, epoch, col("val_AP"))
    fig.add_trace(go.Scatter(x=x, y=y, name="val AP", mode="lines+markers", line=dict(color="#d62728"),
                             cliponaxis=False), row=1, col=3)
    fig.update_xaxes(title_text="step", row=1, col=1)
    fig.update_xaxes(title_text="step", row=1, col=2)
    fig.update_xaxes(title_text="epoch", row=1, col=3)
    fig.update_yaxes(type="log" if log_loss else "linear", exponentformat="e", row=1, col=1)
    # a flat lr (one step, or a constant schedule): plotly's autorange would be lr +- 1; show [0, 2 lr]
    lr = [v for v in fig.data[2].y if v is not None and math.isfinite(v)]
    flat = bool(lr) and min(lr) == max(lr) and max(lr) > 0
    fig.update_yaxes(exponentformat="e", autorange=not flat, range=[0, 2 * lr[0]] if flat else None, row=1, col=2)
    fig.update_yaxes(rangemode="tozero", row=1, col=3)
    fig.update_layout(height=330, margin=dict(l=50, r=20, t=50 if title else 35, b=40), title=title or None,
                      legend=dict(orientation="h", yanchor="bottom", y=-0.32, x=0), template="plotly_white")
    return fig


def _limb_xy(kp: np.ndarray, shown: np.ndarray, side: str, skeleton, sides) -> tuple[list, list]:
    xs: list = []
    ys: list = []
    for a, b in skeleton:
        if shown[a] and shown[b] and limb_side(a, b, sides) == side:
            xs += [float(kp[a, 0]), float(kp[b, 0]), None]
            ys += [float(kp[a, 1]), float(kp[b, 1]), None]
    return xs, ys


def pose_figure(image: np.ndarray, gt_kps: np.ndarray | None, pred_kps: np.ndarray | None = None, *,
                bbox: Sequence[float] | None = None, title: str = "",
                skeleton: Sequence[tuple[int, int]] = COCO_SKELETON, sides: Sequence[str] = JOINT_SIDE,
                names: Sequence[str] = COCO_KEYPOINTS, pred_min_score: float = 0.0) -> go.Figure:
    """An image (go.Image) with skeletons, in image pixel coordinates (x right, y down).

    Traces, in order: 0 the image; if gt_kps is given: 3 "GT <side>" limb traces (left, right,
    centre; solid) and 1 "GT joints" marker trace (filled circles, open circles for occluded v = 1;
    only v > 0 joints); if pred_kps is given: 3 "pred <side>" limb traces (dashed) and 1 "pred
    joints" trace (crosses; joints with score > pred_min_score and not (0, 0, 0)); if bbox is given:
    1 "box" trace (the closed rectangle). Colours are those of `lab.draw` (lighter for predictions).
    """
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"image must be (H, W, 3) RGB, got shape {img.shape}")
    fig = go.Figure(go.Image(z=img, hoverinfo="x+y", name="image"))
    order = ("L", "R", "C")

    def add_person(kps: np.ndarray, pred: bool) -> None:
        kp = np.asarray(kps, np.float64)
        if kp.ndim != 2 or kp.shape[0] != len(sides) or kp.shape[1] not in (2, 3):
            raise ValueError(f"keypoints must be ({len(sides)}, 2 or 3), got {kp.shape}")
        third = kp[:, 2] if kp.shape[1] == 3 else np.full(len(kp), 2.0)
        finite = np.all(np.isfinite(kp[:, :2]), axis=1)
        if pred:
            absent = np.all(kp == 0, axis=1) if kp.shape[1] == 3 else np.zeros(len(kp), bool)
            shown = finite & ~absent & ((third > pred_min_score) if kp.shape[1] == 3 else True)
        else:
            shown = finite & (third > 0)
        colors = PRED_COLORS if pred else GT_COLORS
        who = "pred" if pred else "GT"
        for side in order:
            x, y = _limb_xy(kp, shown, side, skeleton, sides)
            fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name=f"{who} {_SIDE_NAMES[side]}",
                                     legendgroup=who, hoverinfo="skip",
                                     line=dict(color=rgb_css(colors[side]), width=2 if pred else 3,
                                               dash="dash" if pred else "solid")))
        idx = np.flatnonzero(shown)
        if pred:
            symbols = ["x"] * len(idx)
            text = [f"{names[j]} (score {third[j]:.2f})" if kp.shape[1] == 3 else names[j] for j in idx]
        else:
            symbols = ["circle-open" if third[j] == 1 else "circle" for j in idx]
            text = [f"{names[j]} (v={int(third[j])})" for j in idx]
        fig.add_trace(go.Scatter(
            x=kp[idx, 0].tolist(), y=kp[idx, 1].tolist(), mode="markers", name=f"{who} joints", legendgroup=who,
            text=text, hoverinfo="text+x+y",
            marker=dict(symbol=symbols, size=9 if pred else 8, color=[rgb_css(colors[sides[j]]) for j in idx],
                        line=dict(width=2 if not pred else 1, color=[rgb_css(colors[sides[j]]) for j in idx]
                                  if not pred else "black"))))

    if gt_kps is not None:
        add_person(gt_kps, pred=False)
    if pred_kps is not None:
        add_person(pred_kps, pred=True)
    if bbox is not None:
        x, y, w, h = (float(v) for v in bbox)
        fig.add_trace(go.Scatter(x=[x, x + w, x + w, x, x], y=[y, y, y + h, y + h, y], mode="lines", name="box",
                                 hoverinfo="skip", line=dict(color="white", width=1)))
    H, W = img.shape[:2]
    fig.update_xaxes(range=[-0.5, W - 0.5], showgrid=False, zeroline=False, visible=False)
    fig.update_yaxes(range=[H - 0.5, -0.5], showgrid=False, zeroline=False, visible=False,
                     scaleanchor="x", scaleratio=1)
    scale = min(1.0, 520 / max(H, W))
    fig.update_layout(width=int(W * scale) + 160, height=int(H * scale) + (60 if title else 30),
                      margin=dict(l=5, r=5, t=40 if title else 10, b=5), title=title or None,
                      legend=dict(itemsizing="constant"), plot_bgcolor="white")
    return fig


def ap_bar(per_joint: Mapping[str, float], *, title: str = "AP per joint", total_key: str = "Total") -> go.Figure:
    """A bar per entry of `per_joint` (e.g. `per_joint_ap`'s {"Head": 0.71, ..., "Total": 0.65}), in the
    mapping's order. One trace: x = keys, y = values (NaN -> None, labelled "n/a"); the `total_key`
    bar is dark grey, the others blue. Values in [0, 1] fix the y range to [0, 1.05].
    """
    keys = [str(k) for k in per_joint]
    vals = [_num(per_joint[k]) for k in per_joint]
    y = [None if math.isnan(v) else v for v in vals]
    text = ["n/a" if v is None else f"{v:.3f}" for v in y]
    colors = ["#555555" if k == total_key else "#1f77b4" for k in keys]
    fig = go.Figure(go.Bar(x=keys, y=y, text=text, textposition="outside", marker_color=colors, name="AP",
                           cliponaxis=False))
    finite = [v for v in y if v is not None]
    if finite and min(finite) >= 0 and max(finite) <= 1:
        fig.update_yaxes(range=[0, 1.05])
    fig.update_layout(title=title or None, height=320, margin=dict(l=50, r=20, t=50 if title else 20, b=40),
                      yaxis_title="AP", template="plotly_white", showlegend=False)
    return fig


def metrics_table(df: pd.DataFrame, columns: Sequence[str] | None = None, *, float_format: str = "{:.4g}",
                  title: str = "") -> go.Figure:
    """A DataFrame as one go.Table trace (header = the columns; floats formatted, NaN/None blank)."""
    cols = list(columns) if columns is not None else list(df.columns)
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise KeyError(f"metrics_table: no column(s) {missing}; the DataFrame has {list(df.columns)}")

    def fmt(v):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return ""
        if isinstance(v, (float, np.floating)):
            return float_format.format(float(v))
        return str(v)

    cells = [[fmt(v) for v in df[c].tolist()] for c in cols]
    fig = go.Figure(go.Table(header=dict(values=cols, align="left", fill_color="#eeeeee"),
                             cells=dict(values=cells, align="left")))
    fig.update_layout(title=title or None, margin=dict(l=5, r=5, t=40 if title else 5, b=5),
                      height=min(900, 60 + 28 * (len(df) + 1)))
    return fig
