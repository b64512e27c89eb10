"""Teaching pictures of an EvoPose2D search: the family tree of an evolution, the MBConv blocks of a
network, and what a weight transfer does to each layer. Pure functions: data in, `go.Figure` out.

- `family_tree_frame(archive)`      `archive_frame` rows -> node positions (generation, slot) + parent
- `family_tree_figure(archive, generations)`  parents -> children, the mutated gene on each edge, fitness colour
- `block_frame(spec, input_hw)`     one row per MBConv block: channels in / expanded / out, kernel, stride,
                                    SE width, residual skip, feature-map sizes
- `block_diagram(df)`               those blocks drawn as inverted bottlenecks, grouped by module
- `block_traces(df)`                the diagram's traces (also the lower row of `evo_figures.network_diagram`)
- `transfer_frame(report)`          `posenas_core.search.transfer.transfer_report` -> one row per layer, placed
                                    in a (layer kind x block) grid
- `transfer_figure(report)`         that grid coloured by action: copied, cropped, padded, new, ...
- `transfer_figure_for(archive, cid)`  the transfer figure of one candidate of a run (its parent -> it)

Like `lab.evo_figures`, each figure has a FIXED list of traces for its kind of input (documented per
function), so that a live `go.FigureWidget` can take a fresh figure's traces one by one.
"""

from __future__ import annotations

import math
import re
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from posenas_core.errors import DataError
from posenas_core.genotype import spec_from_dict
from posenas_core.search import TRANSFER_ACTIONS, transfer_report
from posenas_core.spaces import EvoPoseSpec

from lab._util import fmt_float as _fmt_f, fmt_int as _fmt_int

__all__ = [
    "family_tree_frame", "family_tree_figure", "short_mutation",
    "BLOCK_COLUMNS", "block_frame", "block_diagram", "block_traces", "block_axes",
    "ACTION_COLORS", "transfer_frame", "transfer_figure", "transfer_figure_for",
]

SE_RATIO = 0.25          # squeeze width = max(1, int(block input x 0.25)), as `posenas_core.models.evopose`


# ---------------------------------------------------------------------------------------------
# Family tree

_MUT_RE = re.compile(r"module (\d+) (\w+) (\S+)->(\S+)")
_GENE_SHORT = {"kernel": "k", "blocks": "blocks", "ch8": "ch/8", "stride": "stride"}


def short_mutation(text: str) -> str:
    """'module 3 kernel 5->3' -> 'M3 k 5→3' (several changes joined by ', '; anything else unchanged)."""
    if not isinstance(text, str) or not text or text == "none":
        return ""
    parts = []
    for part in text.split(";"):
        m = _MUT_RE.search(part)
        parts.append(f"M{m.group(1)} {_GENE_SHORT.get(m.group(2), m.group(2))} {m.group(3)}\u2192{m.group(4)}"
                     if m else part.strip())
    return ", ".join(parts)


def family_tree_frame(archive: pd.DataFrame) -> pd.DataFrame:
    """Node positions of the evolution's family tree: one row per candidate of `archive` (an
    `evo_figures.archive_frame`), by id, with its columns plus "x" (the generation), "y" (its slot in its
    generation: the children of a generation sorted by their parent's slot, then id, and centred on 0,
    one unit apart), "parent_id" (int, -1 for the ancestor or an unknown parent) and "label" (the short
    mutation, `short_mutation`). Candidates without a generation are left out."""
    cols = list(archive.columns) + ["x", "y", "parent_id", "label"]
    if not len(archive):
        return pd.DataFrame(columns=cols)
    df = archive[np.isfinite(archive["generation"].astype(float))].copy()
    df["x"] = df["generation"].astype(int)
    df["parent_id"] = [int(p) if np.isfinite(p) else -1 for p in df["parent"].astype(float)]
    df["label"] = [short_mutation(m) for m in df["mutation"]]
    slot: dict[int, float] = {}
    for g in sorted(df["x"].unique()):
        sub = df[df["x"] == g]
        keys = sorted((slot.get(int(p), 0.0), int(i)) for p, i in zip(sub["parent_id"], sub["id"]))
        n = len(keys)
        for k, (_, i) in enumerate(keys):
            slot[i] = k - (n - 1) / 2
    df["y"] = [slot[int(i)] for i in df["id"]]
    return df.sort_values("id", kind="stable")[cols].reset_index(drop=True)


_TREE_HOVER = ("<b>id %{customdata[0]}</b> \u00b7 generation %{customdata[1]} \u00b7 parent %{customdata[2]}<br>"
               "%{customdata[3]}<br>mutation: %{customdata[4]}<br>fitness %{customdata[5]} \u00b7 val loss "
               "%{customdata[6]}<br>params %{customdata[7]} \u00b7 MACs %{customdata[8]}<extra></extra>")


def _tree_custom(df: pd.DataFrame) -> list[list]:
    return [[int(r.id), int(r.x), "-" if r.parent_id < 0 else int(r.parent_id), str(r.genotype),
             "- (the ancestor)" if r.parent_id < 0 else (str(r.mutation) or "-"),
             _fmt_f(r.fitness), _fmt_f(r.val_loss), _fmt_int(r.params), _fmt_int(r.macs)]
            for r in df.itertuples(index=False)]


def family_tree_figure(archive: pd.DataFrame, generations: pd.DataFrame | None = None, *, title: str = "",
                       show_mutations: bool | None = None) -> go.Figure:
    """The evolution's family tree: every candidate a node at (generation, slot), an edge from its parent,
    the mutated gene written on the edge, the fitness as the node's colour (green = low = good).

    Always 6 traces: 0 "edges" (parent -> child lines, None-separated), 1 "mutations" (the short mutation
    at 60 % along each edge; hover: the full mutation), 2 "candidates" (ok candidates with a fitness:
    marker colour = fitness, text = id; customdata [id, generation, parent, genotype, mutation, fitness,
    val loss, params, MACs]), 3 "failed" (candidates without a fitness: grey crosses), 4 "parents now"
    (rings: the parents selected after the last generation of `generations`), 5 "best" (a star: the
    lowest fitness). `show_mutations` (default: when there are at most 40 children) writes the mutation
    text; its hover is there either way.
    """
    df = family_tree_frame(archive)
    pos = {int(i): (float(x), float(y)) for i, x, y in zip(df["id"], df["x"], df["y"])} if len(df) else {}
    ex, ey, mx, my, mt, mh = [], [], [], [], [], []
    for r in df.itertuples(index=False):
        if r.parent_id in pos:
            (x0, y0), (x1, y1) = pos[r.parent_id], (float(r.x), float(r.y))
            ex += [x0, x1, None]
            ey += [y0, y1, None]
            mx.append(x0 + 0.6 * (x1 - x0))
            my.append(y0 + 0.6 * (y1 - y0))
            mt.append(r.label)
            mh.append(f"{int(r.parent_id)} \u2192 {int(r.id)}: {r.mutation or '?'}")
    if show_mutations is None:
        show_mutations = len(mt) <= 40
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=ex, y=ey, mode="lines", name="edges", hoverinfo="skip", showlegend=False,
                             line=dict(color="#9e9e9e", width=1.2)))
    fig.add_trace(go.Scatter(x=mx, y=my, mode="text" if show_mutations else "markers", name="mutations",
                             text=mt if show_mutations else None, textposition="top center",
                             textfont=dict(size=10, color="#5a3d99"), hovertext=mh, hoverinfo="text",
                             marker=dict(size=6, color="rgba(0,0,0,0)"), showlegend=False))
    fitness = df["fitness"].astype(float) if len(df) else pd.Series(dtype=float)
    status = df["status"].astype(str) if len(df) else pd.Series(dtype=str)
    ok_mask = np.isfinite(fitness) & status.isin(["ok", ""]) if len(df) else np.zeros(0, bool)
    ok, bad = df[ok_mask], df[~ok_mask] if len(df) else df
    fig.add_trace(go.Scatter(
        x=ok["x"].tolist(), y=ok["y"].tolist(), mode="markers+text", name="candidates",
        text=[str(int(i)) for i in ok["id"]], textposition="middle center", textfont=dict(size=9, color="black"),
        customdata=_tree_custom(ok), hovertemplate=_TREE_HOVER,
        marker=dict(size=22, color=ok["fitness"].tolist(), colorscale="RdYlGn", reversescale=True,
                    showscale=bool(len(ok)), line=dict(color="#333", width=1),
                    colorbar=dict(title=dict(text="fitness J<br>(lower is<br>better)", side="top"), thickness=12,
                                  len=0.9, exponentformat="e")),
        showlegend=False))
    fig.add_trace(go.Scatter(x=bad["x"].tolist(), y=bad["y"].tolist(), mode="markers", name="failed",
                             customdata=_tree_custom(bad), hovertemplate=_TREE_HOVER,
                             marker=dict(symbol="x", size=14, color="#9e9e9e")))
    px, py = [], []
    if generations is not None and len(generations):
        for p in generations["parents"].iloc[-1]:
            if int(p) in pos:
                px.append(pos[int(p)][0])
                py.append(pos[int(p)][1])
    fig.add_trace(go.Scatter(x=px, y=py, mode="markers", name="parents now", hoverinfo="skip",
                             marker=dict(symbol="circle-open", size=32, color="#1f5fbf", line=dict(width=2.5))))
    bx, by = [], []
    if len(ok):
        b = ok.loc[ok["fitness"].astype(float).idxmin()]
        bx, by = [float(b["x"])], [float(b["y"]) + 0.32]
    fig.add_trace(go.Scatter(x=bx, y=by, mode="markers", name="best", hoverinfo="skip",
                             marker=dict(symbol="star", size=15, color="#ffb000", line=dict(color="#7a5200", width=1))))
    n_gen = int(df["x"].max()) + 1 if len(df) else 1
    height = max(300, min(900, 70 * (df.groupby("x").size().max() if len(df) else 1) + 120))
    fig.update_xaxes(title_text="generation", dtick=1, range=[-0.4, n_gen - 0.6], zeroline=False)
    fig.update_yaxes(visible=False, zeroline=False)
    fig.update_layout(height=height, margin=dict(l=30, r=20, t=50 if title else 30, b=45), title=title or None,
                      template="plotly_white", hovermode="closest",
                      legend=dict(orientation="h", yanchor="bottom", y=1.0, x=0))
    return fig


# ---------------------------------------------------------------------------------------------
# MBConv blocks

BLOCK_COLUMNS = ["module", "block", "label", "in_ch", "exp_ch", "out_ch", "kernel", "stride", "expansion", "se_ch",
                 "skip", "in_h", "in_w", "out_h", "out_w"]


def block_frame(spec: EvoPoseSpec, input_hw: Sequence[int]) -> pd.DataFrame:
    """One row per MBConv block of `spec` (after depth / width scaling) at input (H, W).

    Columns `BLOCK_COLUMNS`: module (1-based), block (1-based within the module), label ("3.2"), in_ch,
    exp_ch (in_ch x expansion: the depthwise conv's width), out_ch, kernel, stride (the first block of a
    module takes the module's stride, the others 1), expansion, se_ch (the squeeze width,
    max(1, int(in_ch x 0.25))), skip (residual add: stride 1 and in_ch == out_ch), in_h / in_w and
    out_h / out_w (feature-map sizes; the stem halves the input, each stride 2 halves again, rounding up)."""
    h, w = (-(-int(v) // 2) for v in input_hw)          # after the stride-2 stem
    rows = []
    for p in spec.module_plan():
        for j in range(p["blocks"]):
            cin = p["in"] if j == 0 else p["out"]
            s = p["stride"] if j == 0 else 1
            oh, ow = (-(-h // 2), -(-w // 2)) if s == 2 else (h, w)
            rows.append({"module": p["module"], "block": j + 1, "label": f"{p['module']}.{j + 1}", "in_ch": cin,
                         "exp_ch": cin * p["expansion"], "out_ch": p["out"], "kernel": p["kernel"], "stride": s,
                         "expansion": p["expansion"], "se_ch": max(1, int(cin * SE_RATIO)),
                         "skip": s == 1 and cin == p["out"], "in_h": h, "in_w": w, "out_h": oh, "out_w": ow})
            h, w = oh, ow
    return pd.DataFrame(rows, columns=BLOCK_COLUMNS)


KERNEL_COLORS = {3: "#6baed6", 5: "#fd8d3c"}
BLOCK_LEGEND = dict(orientation="h", yanchor="top", y=-0.01, x=0, font=dict(size=11),   # under the blocks
                    title=dict(text="each block: input | expanded (depthwise) | output channels, height ~ "
                                    "√channels", side="top", font=dict(size=11, color="#555")))
_BLOCK_W = 0.42          # half width of a block glyph (x units; blocks are 1 apart)
_MODULE_GAP = 0.7        # extra room between modules


def _half(c: float) -> float:
    """Half height of a glyph side for c channels: sqrt scale (16 -> 2, 1152 -> 17)."""
    return 0.5 * math.sqrt(max(float(c), 1.0))


def _block_layout(df: pd.DataFrame) -> tuple[list[float], float]:
    """x centre of every block (modules separated by a gap) and the largest half height."""
    xs, x, prev = [], 0.0, None
    for m in df["module"].tolist():
        if prev is not None:
            x += 1.0 + (_MODULE_GAP if m != prev else 0.0)
        xs.append(x)
        prev = m
    top = max((_half(c) for c in df[["in_ch", "exp_ch", "out_ch"]].to_numpy().ravel()), default=1.0) if len(df) else 1.0
    return xs, top


def block_axes(df: pd.DataFrame) -> dict:
    """The x / y ranges that `block_traces` draws in: {"x": [lo, hi], "y": [lo, hi]}."""
    xs, top = _block_layout(df)
    return {"x": [(xs[0] if xs else 0) - 0.9, (xs[-1] if xs else 0) + 0.9], "y": [-top - 2.8, top + 7.6]}


def block_traces(df: pd.DataFrame) -> list[go.Scatter]:
    """The traces of `block_diagram`, in order (always 8):

    0 "kernel 3x3" and 1 "kernel 5x5": the blocks of that kernel as filled polygons (None-separated), an
    inverted bottleneck each: the block input's channels on the left edge, the expanded width (the
    depthwise conv) in the middle, the output's channels on the right edge (heights ~ sqrt(channels));
    2 "residual skip": a bracket over each block with a skip connection; 3 "squeeze-excite": a diamond
    on every block (hover: its squeeze width); 4 "stride 2": a down arrow under the blocks that halve the
    feature map; 5 "blocks": one invisible point per block carrying its hover (module, block, channels,
    kernel, stride, SE, skip, sizes) and its kernel as text; 6 "modules": each module's name, output
    channels and feature-map size above its blocks; 7 "module borders": dotted lines between modules.
    """
    xs, top = _block_layout(df)
    polys: dict[int, tuple[list, list]] = {3: ([], []), 5: ([], [])}
    skip_x, skip_y, se_x, se_y, se_h, st_x, st_y, hov = [], [], [], [], [], [], [], []
    for xc, r in zip(xs, df.itertuples(index=False)):
        hi, he, ho = _half(r.in_ch), _half(r.exp_ch), _half(r.out_ch)
        a, b = _BLOCK_W, 0.18
        px = [xc - a, xc - b, xc + b, xc + a, xc + a, xc + b, xc - b, xc - a, xc - a, None]
        py = [-hi, -he, -he, -ho, ho, he, he, hi, -hi, None]
        tx, ty = polys.setdefault(int(r.kernel), ([], []))
        tx += px
        ty += py
        peak = max(hi, he, ho)
        if r.skip:                                     # an arc from the block's input over it to its output
            skip_x += [xc - a, xc - 0.5 * a, xc, xc + 0.5 * a, xc + a, None]
            skip_y += [hi + 0.3, peak + 1.6, peak + 2.2, peak + 1.6, ho + 0.3, None]
        se_x.append(xc)
        se_y.append(he + 0.9)
        se_h.append(f"block {r.label}: squeeze-excite {r.exp_ch} \u2192 {r.se_ch} \u2192 {r.exp_ch} channels")
        if r.stride == 2:
            st_x.append(xc)
            st_y.append(-top - 1.6)
        hov.append(f"<b>module {r.module}, block {r.block}</b><br>"
                   f"{r.in_ch} ch \u2192 1x1 expand x{r.expansion} \u2192 {r.exp_ch} ch"
                   f"{' (no expand conv)' if r.expansion == 1 else ''}<br>"
                   f"depthwise {r.kernel}x{r.kernel}, stride {r.stride}<br>"
                   f"squeeze-excite to {r.se_ch} ch<br>1x1 project \u2192 {r.out_ch} ch"
                   f"{' + residual skip' if r.skip else ''}<br>"
                   f"{r.in_h}x{r.in_w} \u2192 {r.out_h}x{r.out_w}")
    traces = []
    for k in (3, 5):
        tx, ty = polys[k]
        traces.append(go.Scatter(x=tx, y=ty, mode="lines", fill="toself", fillcolor=KERNEL_COLORS[k],
                                 line=dict(color="#333", width=1), name=f"kernel {k}x{k}", hoverinfo="skip",
                                 legendgroup="blocks"))
    traces.append(go.Scatter(x=skip_x, y=skip_y, mode="lines", name="residual skip", hoverinfo="skip",
                             line=dict(color="#2ca02c", width=1.8, shape="spline")))
    traces.append(go.Scatter(x=se_x, y=se_y, mode="markers", name="squeeze-excite", hovertext=se_h,
                             hoverinfo="text", marker=dict(symbol="diamond", size=7, color="#7b4fb8")))
    traces.append(go.Scatter(x=st_x, y=st_y, mode="text", name="stride 2 (\u2193 halves the map)",
                             text=["\u2193 s2"] * len(st_x), textfont=dict(size=11, color="#b00020"),
                             hoverinfo="skip"))
    traces.append(go.Scatter(x=xs, y=[0.0] * len(xs), mode="markers+text", name="blocks", showlegend=False,
                             text=[f"k{int(k)}" for k in df["kernel"]] if len(df) else [],
                             textfont=dict(size=10, color="#222"), hovertext=hov, hoverinfo="text",
                             marker=dict(size=18, color="rgba(0,0,0,0)")))
    mx, mt, bx, by = [], [], [], []
    if len(df):
        mods = df["module"].to_numpy()
        for m in dict.fromkeys(mods.tolist()):
            idx = np.flatnonzero(mods == m)
            r = df.iloc[idx[-1]]
            mx.append(float(np.mean([xs[i] for i in idx])))
            mt.append(f"<b>M{m}</b> {int(r.out_ch)} ch<br>{int(r.out_h)}x{int(r.out_w)}")
            if idx[0] > 0:
                xb = xs[idx[0]] - (1.0 + _MODULE_GAP) / 2
                bx += [xb, xb, None]
                by += [-top - 2.5, top + 7.4, None]
    traces.append(go.Scatter(x=mx, y=[top + 5.2] * len(mx), mode="text", name="modules", text=mt,
                             textfont=dict(size=10, color="#333"), hoverinfo="skip", showlegend=False))
    traces.append(go.Scatter(x=bx, y=by, mode="lines", name="module borders", hoverinfo="skip", showlegend=False,
                             line=dict(color="#bbbbbb", width=1, dash="dot")))
    return traces


def block_diagram(df: pd.DataFrame, *, title: str = "") -> go.Figure:
    """A `block_frame` drawn block by block (the 8 traces of `block_traces`): what a student edits in the
    genotype (kernel = colour, blocks = how many glyphs per module, channels = glyph height, stride = the
    down arrows) and what every block is made of (1x1 expansion -> depthwise kxk -> squeeze-excite ->
    1x1 projection, plus the residual skip when the shape allows it)."""
    fig = go.Figure(block_traces(df))
    ax = block_axes(df)
    fig.update_xaxes(visible=False, range=ax["x"])
    fig.update_yaxes(visible=False, range=ax["y"])
    fig.update_layout(height=380, margin=dict(l=10, r=10, t=40 if title else 10, b=40), title=title or None,
                      template="plotly_white", hovermode="closest", legend=BLOCK_LEGEND)
    return fig


# ---------------------------------------------------------------------------------------------
# Weight transfer

ACTION_COLORS = {"copied": "#a1d99b", "cropped": "#fd8d3c", "padded": "#4292c6", "cropped+padded": "#807dba",
                 "new": "#de2d26", "init": "#252525", "dropped": "#d0d0d0"}
ACTION_TEXT = {"copied": "=", "cropped": "crop", "padded": "pad", "cropped+padded": "c+p", "new": "new",
               "init": "init", "dropped": "drop"}
TRANSFER_ROWS = ["stem / head conv", "stem / head BN", "expand 1x1", "expand BN", "depthwise kxk", "depthwise BN",
                 "SE reduce", "SE expand", "project 1x1", "project BN"]
_PART_ROW = {"expand.conv": "expand 1x1", "expand.bn": "expand BN", "dw.conv": "depthwise kxk",
             "dw.bn": "depthwise BN", "se.reduce": "SE reduce", "se.expand": "SE expand",
             "project.conv": "project 1x1", "project.bn": "project BN"}
_BLOCK_LAYER = re.compile(r"^blocks\.(\d+)\.(\d+)\.(.+)$")
_HEAD_LAYER = re.compile(r"^head\.(\d+)\.(\w+)$")


def _place(layer: str) -> tuple[tuple, str, str]:
    """(column sort key, column label, row label) of a state-dict layer name."""
    m = _BLOCK_LAYER.match(layer)
    if m:
        mod, blk = int(m.group(1)), int(m.group(2))
        return (1, mod, blk), f"{mod + 1}.{blk + 1}", _PART_ROW.get(m.group(3), m.group(3))
    m = _HEAD_LAYER.match(layer)
    if m:
        return (2, int(m.group(1)), 0), f"head {int(m.group(1)) + 1}", \
            "stem / head BN" if m.group(2) == "bn" else "stem / head conv"
    if layer.startswith("stem."):
        return (0, 0, 0), "stem", "stem / head BN" if layer.endswith(".bn") else "stem / head conv"
    if layer == "final":
        return (3, 0, 0), "final", "stem / head conv"
    return (4, 0, 0), layer, layer


def _shape_text(s) -> str:
    return "-" if s is None else "\u00d7".join(str(int(v)) for v in s)


def transfer_frame(report: Sequence[Mapping]) -> pd.DataFrame:
    """`transfer_report` rows -> DataFrame: layer, column (the block "3.2" = module 3 block 2, or "stem",
    "head 1".., "final"), row (one of `TRANSFER_ROWS`), action, source, parent_shape, child_shape (as text
    "32x1x3x3", "-" when absent), in the figure's column order (stem, blocks by module and block, head,
    final) and the report's order within a column."""
    rows = []
    for i, r in enumerate(report):
        key, col, row = _place(str(r["layer"]))
        rows.append({"layer": r["layer"], "column": col, "row": row, "action": r["action"],
                     "source": r.get("source") or "-", "parent_shape": _shape_text(r.get("parent_shape")),
                     "child_shape": _shape_text(r.get("child_shape")), "_key": key, "_i": i})
    df = pd.DataFrame(rows, columns=["layer", "column", "row", "action", "source", "parent_shape", "child_shape",
                                     "_key", "_i"])
    df = df.sort_values(["_key", "_i"], kind="stable") if len(df) else df
    return df.drop(columns=["_key", "_i"]).reset_index(drop=True)


def transfer_figure(report: Sequence[Mapping] | pd.DataFrame, *, title: str = "") -> go.Figure:
    """What a weight transfer did to each layer: a grid, one column per block (and stem, head, final), one
    row per kind of layer, each cell coloured by its action (copied, cropped, padded, cropped+padded,
    new, init, dropped) with a short word; hover: the layer, the parent and child shapes and where the
    weights came from.

    Always 1 + 7 traces: 0 the grid (a heatmap of action codes, `TRANSFER_ACTIONS` order; customdata
    [layer, action, parent shape, child shape, source]), then one legend entry per action (empty
    markers, in `TRANSFER_ACTIONS` order)."""
    df = report if isinstance(report, pd.DataFrame) else transfer_frame(report)
    cols = list(dict.fromkeys(df["column"].tolist()))
    rows = [r for r in TRANSFER_ROWS if r in set(df["row"])] + sorted(set(df["row"]) - set(TRANSFER_ROWS))
    code = {a: i for i, a in enumerate(TRANSFER_ACTIONS)}
    z = [[None] * len(cols) for _ in rows]
    text = [[""] * len(cols) for _ in rows]
    custom = [[["", "", "", "", ""] for _ in cols] for _ in rows]
    ci, ri = {c: i for i, c in enumerate(cols)}, {r: i for i, r in enumerate(rows)}
    for r in df.itertuples(index=False):
        i, j = ri[r.row], ci[r.column]
        z[i][j] = code[r.action]
        text[i][j] = ACTION_TEXT[r.action]
        custom[i][j] = [r.layer, r.action, r.parent_shape, r.child_shape, r.source]
    n = len(TRANSFER_ACTIONS)
    scale = []
    for i, a in enumerate(TRANSFER_ACTIONS):
        scale += [[i / n, ACTION_COLORS[a]], [(i + 1) / n, ACTION_COLORS[a]]]
    fig = go.Figure()
    fig.add_trace(go.Heatmap(
        x=cols, y=rows, z=z, text=text, texttemplate="%{text}", textfont=dict(size=9), customdata=custom,
        colorscale=scale, zmin=-0.5, zmax=n - 0.5, showscale=False, xgap=2, ygap=2, name="layers",
        hovertemplate="<b>%{customdata[0]}</b><br>%{customdata[1]}<br>parent %{customdata[2]} \u2192 child "
                      "%{customdata[3]}<br>from %{customdata[4]}<extra></extra>"))
    for a in TRANSFER_ACTIONS:
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=a, hoverinfo="skip",
                                 marker=dict(symbol="square", size=12, color=ACTION_COLORS[a],
                                             line=dict(color="#555", width=0.5))))
    fig.update_xaxes(type="category", tickangle=-60, tickfont=dict(size=9), title_text="block (module.block)",
                     showgrid=False)
    fig.update_yaxes(type="category", autorange="reversed", tickfont=dict(size=10), showgrid=False)
    fig.update_layout(height=140 + 26 * len(rows), margin=dict(l=110, r=10, t=60 if title else 30, b=70),
                      title=title or None, template="plotly_white",
                      legend=dict(orientation="h", yanchor="bottom", y=1.0, x=0, font=dict(size=11)))
    return fig


def transfer_figure_for(archive: pd.DataFrame, cid: int | None = None, *, kernel_transfer: bool = True,
                        new_blocks: str = "copy") -> go.Figure:
    """`transfer_figure` of the transfer from candidate `cid`'s parent to it, from the specs an
    `archive_frame` records; `cid` None: the child with the best (lowest) fitness, else the first child.
    `kernel_transfer` / `new_blocks`: the run's settings (config.json). DataError when the run has no
    child yet, `cid` is not a child of the archive or a spec is missing."""
    children = archive[np.isfinite(archive["parent"].astype(float))] if len(archive) else archive
    if not len(children):
        raise DataError("transfer_figure_for: the archive has no child yet (only the ancestor)")
    if cid is None:
        fit = children["fitness"].astype(float)
        row = children.loc[fit.idxmin()] if np.isfinite(fit).any() else children.iloc[0]
    else:
        sub = children[children["id"] == int(cid)]
        if not len(sub):
            raise DataError(f"transfer_figure_for: candidate {cid} is not a child in the archive "
                            f"(children: {children['id'].tolist()})")
        row = sub.iloc[-1]
    pid = int(row["parent"])
    prow = archive[archive["id"] == pid]
    if not len(prow):
        raise DataError(f"transfer_figure_for: the parent {pid} of candidate {int(row['id'])} is not in the archive")
    prow = prow.iloc[-1]
    specs = []
    for r in (prow, row):
        if not isinstance(r["spec"], Mapping):
            raise DataError(f"transfer_figure_for: candidate {int(r['id'])} has no spec in the archive")
        specs.append(spec_from_dict(dict(r["spec"])))
    report = transfer_report(specs[0], specs[1], kernel_transfer=kernel_transfer, new_blocks=new_blocks)
    title = (f"weight transfer: parent {pid} \u2192 child {int(row['id'])} ({short_mutation(row['mutation']) or '-'})")
    return transfer_figure(report, title=title)
