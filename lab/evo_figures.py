"""Pure figures of EvoPose2D searches: run-directory records / specs -> DataFrames -> plotly figures.

Same input, same figure (no I/O, no randomness). Each figure function returns a FIXED list of traces
for a given kind of input (documented per function), so a widget can copy the trace data of a fresh
figure into its live `go.FigureWidget`.

Records are those of the evolution's run directory (`posenas_core.search.evolution`):
``archive.jsonl`` (one line per evaluated candidate: id, generation, parent, genotype, spec, params,
params_with_bn_stats, macs, val_loss, fitness, ap, epochs, wall_time_s, status, error, mutation) and
``generations.jsonl`` (one line per finished generation: generation, parents, best_id, best_fitness,
population_fitness, wall_time_s). Fitness is lower-is-better (J = L * (T / n) ** Gamma with Gamma < 0,
as the evolution writes it); validation loss too; AP is higher-is-better.

The DataFrames are those of `posenas_core.search.archive` (`archive_frame`, `generations_frame`).

- `evolution_figure(arch, gens)`     candidates' fitness by generation, best so far, median, parents
- `parents_table(arch, gens)`        the current parents and the best candidate
- `front_figure(df, x=, y=)`         loss / AP / fitness vs MACs / params per run, Pareto fronts
- `network_frame(spec, input_hw)`    stem, modules 1-7, head of an EvoPoseSpec at an input size
- `network_diagram(df, blocks=)`     that table as a bar diagram (channels, resolution, genes); with
                                     `blocks` (`lab.evo_pictures.block_frame`) the MBConv blocks below it
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from posenas_core.search import pareto_front, pareto_order
from posenas_core.spaces import EvoPoseSpec

__all__ = [
    "X_AXES", "Y_AXES", "RUN_COLORS", "evolution_figure", "parents_table", "front_points", "front_figure",
    "network_frame", "network_diagram",
]

# x: column, axis title, scale (values are divided by it for the axis)
X_AXES = {"macs": ("macs", "GMACs (multiply-adds / 1e9)", 1e9), "params": ("params", "params (millions)", 1e6)}
# y: column, axis title, lower is better
Y_AXES = {"val_loss": ("val_loss", "validation loss", True), "fitness": ("fitness", "fitness J (lower is better)", True),
          "ap": ("ap", "AP", False)}
RUN_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#7f7f7f",
              "#bcbd22")


def _ok(df: pd.DataFrame, col: str) -> pd.DataFrame:
    """Rows with status ok (or no status) and a finite value in `col`."""
    st = df["status"].astype(str)
    m = ((st == "ok") | (st == "")) & np.isfinite(df[col].astype(float))
    return df[m]


def _hover_data(df: pd.DataFrame) -> list[list]:
    def fmt_int(v):
        return f"{int(v):,}" if np.isfinite(v) else "?"

    def fmt_f(v):
        return f"{v:.4g}" if np.isfinite(v) else "-"

    return [[str(r.run), int(r.id), str(r.genotype), fmt_int(r.params), fmt_int(r.macs), fmt_f(r.val_loss),
             fmt_f(r.fitness), fmt_f(r.ap), "" if not np.isfinite(r.generation) else int(r.generation)]
            for r in df.itertuples(index=False)]


# customdata columns of every candidate point (front_figure, evolution_figure)
HOVER_FIELDS = ("run", "id", "genotype", "params", "macs", "val_loss", "fitness", "ap", "generation")
# (plotly's hover text knows few HTML entities: "&middot;" would show as is, so the character itself)
_HOVER = ("<b>%{customdata[2]}</b><br>run %{customdata[0]} \u00b7 id %{customdata[1]} \u00b7 generation "
          "%{customdata[8]}<br>params %{customdata[3]} \u00b7 MACs %{customdata[4]}<br>val loss %{customdata[5]}"
          " \u00b7 fitness %{customdata[6]} \u00b7 AP %{customdata[7]}<extra></extra>")


# ---------------------------------------------------------------------------------------------
# Evolution progress


def evolution_figure(archive: pd.DataFrame, generations: pd.DataFrame | None = None, *, title: str = "") -> go.Figure:
    """Fitness of every candidate by generation (lower is better).

    Always 4 traces: 0 "candidates" (every ok candidate with a finite fitness: generation, fitness;
    customdata `HOVER_FIELDS`), 1 "best so far" (per generation with candidates: the lowest fitness of
    all generations <= g, a step line), 2 "median" (median fitness of each generation's candidates),
    3 "parents" (for each row of `generations`: its parents' fitness at that generation, from the
    archive). Empty traces stay, with empty x / y.
    """
    fig = go.Figure()
    ok = _ok(archive, "fitness") if len(archive) else archive
    ok = ok[np.isfinite(ok["generation"].astype(float))] if len(ok) else ok
    fig.add_trace(go.Scatter(x=ok["generation"].astype(int).tolist(), y=ok["fitness"].tolist(), mode="markers",
                             name="candidates", customdata=_hover_data(ok), hovertemplate=_HOVER,
                             marker=dict(color="#1f77b4", size=7, opacity=0.6)))
    if len(ok):
        per_gen = ok.groupby(ok["generation"].astype(int))["fitness"]
        gens = sorted(per_gen.groups)
        best = np.minimum.accumulate(per_gen.min().reindex(gens).to_numpy()).tolist()
        med = per_gen.median().reindex(gens).tolist()
    else:
        gens, best, med = [], [], []
    fig.add_trace(go.Scatter(x=gens, y=best, mode="lines+markers", name="best so far", line_shape="hv",
                             line=dict(color="#d62728", width=2.5)))
    fig.add_trace(go.Scatter(x=gens, y=med, mode="lines", name="median", line=dict(color="#7f7f7f", dash="dot")))
    px, py, pc = [], [], []
    if generations is not None and len(generations) and len(archive):
        fit = dict(zip(archive["id"].tolist(), archive["fitness"].tolist()))
        by_id = archive.set_index("id")
        for g, parents in zip(generations["generation"].tolist(), generations["parents"].tolist()):
            for p in parents:
                if p in fit and np.isfinite(fit[p]):
                    px.append(int(g))
                    py.append(float(fit[p]))
                    pc.append(_hover_data(by_id.loc[[p]].reset_index())[0])
    fig.add_trace(go.Scatter(x=px, y=py, mode="markers", name="parents", customdata=pc, hovertemplate=_HOVER,
                             marker=dict(symbol="diamond-open", size=12, color="#2ca02c", line=dict(width=2))))
    fig.update_xaxes(title_text="generation", dtick=1, rangemode="tozero")
    fig.update_yaxes(title_text="fitness J (lower is better)", exponentformat="e")
    fig.update_layout(height=360, margin=dict(l=60, r=20, t=50 if title else 30, b=40), title=title or None,
                      template="plotly_white", legend=dict(orientation="h", yanchor="bottom", y=1.0, x=0))
    return fig


def parents_table(archive: pd.DataFrame, generations: pd.DataFrame | None = None) -> pd.DataFrame:
    """The parents selected after the last generation and the best candidate (lowest fitness).

    Columns: role ("best", "parent" or "best, parent"), id, generation, genotype, params, macs, val_loss,
    fitness, ap, mutation. The best comes first, then the parents by fitness. Empty when the archive
    has no candidate with a finite fitness and no generation has been finished.
    """
    cols = ["role", "id", "generation", "genotype", "params", "macs", "val_loss", "fitness", "ap", "mutation"]
    roles: dict[int, list[str]] = {}
    ok = _ok(archive, "fitness") if len(archive) else archive
    if len(ok):
        best = int(ok.loc[ok["fitness"].idxmin(), "id"])
        roles.setdefault(best, []).append("best")
    if generations is not None and len(generations):
        for p in generations["parents"].iloc[-1]:
            roles.setdefault(int(p), []).append("parent")
    if not roles:
        return pd.DataFrame(columns=cols)
    sub = archive[archive["id"].isin(list(roles))].copy()
    sub["role"] = [", ".join(roles[i]) for i in sub["id"]]
    sub["_best"] = [0 if "best" in roles[i] else 1 for i in sub["id"]]
    sub = sub.sort_values(["_best", "fitness", "id"], kind="stable")
    return sub[cols].reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# Pareto fronts


def front_points(df: pd.DataFrame, x: str = "macs", y: str = "val_loss") -> pd.DataFrame:
    """The candidates of `df` (an `archive_frame`, possibly of several runs) that can be drawn:
    status ok and finite `x` and `y`, with column "on_front" (the run's own Pareto front: `x` and `y`
    minimised, or `y` maximised for AP)."""
    if x not in X_AXES:
        raise ValueError(f"front x axis {x!r} is not one of {sorted(X_AXES)}")
    if y not in Y_AXES:
        raise ValueError(f"front y axis {y!r} is not one of {sorted(Y_AXES)}")
    pts = _ok(df, y) if len(df) else df.copy()
    pts = pts[np.isfinite(pts[x].astype(float))].copy() if len(pts) else pts.copy()
    lower = Y_AXES[y][2]
    on = np.zeros(len(pts), bool)
    for run in pts["run"].unique():
        m = (pts["run"] == run).to_numpy()
        yv = pts.loc[m, y].to_numpy(float)
        on[m] = pareto_front(pts.loc[m, x].to_numpy(float), yv if lower else -yv)
    pts["on_front"] = on
    return pts.reset_index(drop=True)


def _front_line(pts: pd.DataFrame, x: str, y: str) -> tuple[list, list, list]:
    yv = pts[y].to_numpy(float)
    idx = pareto_order(pts[x].to_numpy(float), yv if Y_AXES[y][2] else -yv)
    sub = pts.iloc[idx]
    return (sub[x] / X_AXES[x][2]).tolist(), sub[y].tolist(), _hover_data(sub)


def front_figure(df: pd.DataFrame, *, x: str = "macs", y: str = "val_loss", runs: Sequence[str] | None = None,
                 selected: tuple[str, int] | None = None, title: str = "") -> go.Figure:
    """`y` (val_loss, fitness or ap) vs `x` (macs or params) for every candidate, one colour per run.

    `runs` fixes the runs and their order (default: order of appearance in `df`). Traces, in order:
    for each run i, 2i "<run>" (its ok candidates; customdata `HOVER_FIELDS`) and 2i+1 "<run> front"
    (its Pareto front as a step line, by x ascending); then, with more than one run, "front of all
    runs" (dashed black); last "selected" (the candidate `selected` = (run, id), a ring; empty if None).
    Clicks are events only (clickmode "event": no plotly selection dimming the other points; the
    "selected" ring marks the choice).
    x values are divided by the axis scale (GMACs, millions of params).
    """
    if runs is None:
        runs = list(dict.fromkeys(df["run"].tolist())) if len(df) else []
    pts = front_points(df, x, y)
    scale = X_AXES[x][2]
    fig = go.Figure()
    for i, run in enumerate(runs):
        color = RUN_COLORS[i % len(RUN_COLORS)]
        sub = pts[pts["run"] == run]
        fig.add_trace(go.Scatter(x=(sub[x] / scale).tolist(), y=sub[y].tolist(), mode="markers", name=str(run),
                                 customdata=_hover_data(sub), hovertemplate=_HOVER, legendgroup=str(run),
                                 marker=dict(color=color, size=8, opacity=0.75,
                                             line=dict(width=sub["on_front"].map({True: 1.5, False: 0}).tolist(),
                                                       color="black"))))
        fx, fy, fc = _front_line(sub, x, y)
        fig.add_trace(go.Scatter(x=fx, y=fy, mode="lines", name=f"{run} front", line_shape="hv", customdata=fc,
                                 hovertemplate=_HOVER, legendgroup=str(run), line=dict(color=color, width=2)))
    if len(runs) > 1:
        allp = pts[pts["run"].isin(list(runs))].copy()
        yv = allp[y].to_numpy(float)
        allp = allp[pareto_front(allp[x].to_numpy(float), yv if Y_AXES[y][2] else -yv)]
        fx, fy, fc = _front_line(allp, x, y)
        fig.add_trace(go.Scatter(x=fx, y=fy, mode="lines", name="front of all runs", line_shape="hv", customdata=fc,
                                 hovertemplate=_HOVER, line=dict(color="black", width=1.5, dash="dash")))
    sx, sy, sc = [], [], []
    if selected is not None:
        s = pts[(pts["run"] == selected[0]) & (pts["id"] == int(selected[1]))]
        sx, sy, sc = (s[x] / scale).tolist(), s[y].tolist(), _hover_data(s)
    fig.add_trace(go.Scatter(x=sx, y=sy, mode="markers", name="selected", customdata=sc, hovertemplate=_HOVER,
                             marker=dict(symbol="circle-open", size=18, color="black", line=dict(width=3))))
    fig.update_xaxes(title_text=X_AXES[x][1])
    fig.update_yaxes(title_text=Y_AXES[y][1])
    if y == "ap" and len(df) and not np.isfinite(pd.to_numeric(df["ap"], errors="coerce")).any():
        fig.add_annotation(text="no AP in these runs: they were made without compute_ap "
                                "(EvolutionConfig.compute_ap=True, `posenas evolve run --ap`)",
                           xref="paper", yref="paper", x=0.5, y=0.5, showarrow=False, font=dict(size=13))
    fig.update_layout(height=420, margin=dict(l=60, r=20, t=50 if title else 30, b=45), title=title or None,
                      template="plotly_white", hovermode="closest", clickmode="event",
                      legend=dict(orientation="h", yanchor="bottom", y=1.0, x=0))
    return fig


# ---------------------------------------------------------------------------------------------
# Network diagram

NETWORK_COLUMNS = ["stage", "kernel", "blocks", "in_ch", "out_ch", "stride", "expansion", "out_h", "out_w",
                   "cum_stride", "label"]


def network_frame(spec: EvoPoseSpec, input_hw: Sequence[int]) -> pd.DataFrame:
    """One row per stage of `spec` at input (H, W): "stem", "module 1" .. "module 7", "head".

    Columns `NETWORK_COLUMNS`: kernel, blocks (after depth scaling), in_ch / out_ch (after width
    scaling), stride (the stage's first-block stride; the head's is 1 / 2**head_blocks as a float),
    expansion, out_h / out_w (feature-map size after the stage: each stride-2 conv gives ceil(h / 2),
    each head deconv doubles), cum_stride (input pixels per output pixel after the stage) and a short
    label. The head row's out_ch is the number of heatmaps (the final 1x1 conv); its label names the
    deconv width.
    """
    h, w = (int(v) for v in input_hw)
    rows = []
    c0 = spec.channels(spec.stem_channels)
    h, w, cum = -(-h // 2), -(-w // 2), 2
    rows.append({"stage": "stem", "kernel": 3, "blocks": 1, "in_ch": 3, "out_ch": c0, "stride": 2, "expansion": 1,
                 "out_h": h, "out_w": w, "cum_stride": cum, "label": f"conv 3x3/2 -> {c0}"})
    for p in spec.module_plan():
        if p["stride"] == 2:
            h, w, cum = -(-h // 2), -(-w // 2), cum * 2
        rows.append({"stage": f"module {p['module']}", "kernel": p["kernel"], "blocks": p["blocks"], "in_ch": p["in"],
                     "out_ch": p["out"], "stride": p["stride"], "expansion": p["expansion"], "out_h": h, "out_w": w,
                     "cum_stride": cum,
                     "label": f"k{p['kernel']} x{p['blocks']} s{p['stride']} e{p['expansion']}"})
    hb, hc = spec.head_blocks, spec.channels(spec.head_channels)
    h, w = h * 2 ** hb, w * 2 ** hb
    rows.append({"stage": "head", "kernel": 3, "blocks": hb, "in_ch": rows[-1]["out_ch"], "out_ch": spec.num_joints,
                 "stride": 1 / 2 ** hb, "expansion": 1, "out_h": h, "out_w": w, "cum_stride": cum // 2 ** hb,
                 "label": f"{hb} x deconv 3x3/2 -> {hc}, 1x1 -> {spec.num_joints}"})
    df = pd.DataFrame(rows, columns=NETWORK_COLUMNS)
    df["stride"] = df["stride"].astype(float)
    return df


_STRIDE_COLORS = {2: "#9ecae1", 4: "#6baed6", 8: "#4292c6", 16: "#2171b5", 32: "#08519c", 64: "#08306b"}


def network_diagram(df: pd.DataFrame, *, blocks: pd.DataFrame | None = None, title: str = "") -> go.Figure:
    """A `network_frame` as a diagram: one bar per stage (height = output channels, colour = input
    pixels per feature pixel), its genes and feature-map size written on it; the feature-map height
    as a line on the right axis. With `blocks` (a `lab.evo_pictures.block_frame` of the same spec), a
    second row below draws every MBConv block (`lab.evo_pictures.block_traces`: expansion, kernel, SE,
    channels, stride, residual skip).

    Traces: 0 "channels" (bars: x stage, y out_ch, text "<label><br>HxW"), 1 "resolution" (x stage,
    y out_h, on the secondary y axis, log scale); with `blocks`, then the 8 traces of `block_traces`
    (axes x2 / y3; no tick labels there, so the stage ticks stay the only x tick labels).
    """
    two = blocks is not None
    if two:
        fig = make_subplots(rows=2, cols=1, specs=[[{"secondary_y": True}], [{}]], row_heights=[0.45, 0.55],
                            vertical_spacing=0.13)
    else:
        fig = make_subplots(specs=[[{"secondary_y": True}]])
    row = dict(row=1, col=1) if two else {}
    stages = df["stage"].tolist()
    text = [f"{r.out_ch} ch<br>{r.out_h}x{r.out_w}" for r in df.itertuples(index=False)]
    hover = [f"<b>{r.stage}</b><br>{r.label}<br>{r.in_ch} -> {r.out_ch} channels<br>output {r.out_h}x{r.out_w} "
             f"(1/{r.cum_stride} of the input)" for r in df.itertuples(index=False)]
    colors = [_STRIDE_COLORS.get(int(c), "#999999") if r != "head" else "#fd8d3c"
              for c, r in zip(df["cum_stride"].tolist(), stages)]
    fig.add_trace(go.Bar(x=stages, y=df["out_ch"].tolist(), name="channels", text=text, textposition="outside",
                         hovertext=hover, hoverinfo="text", marker=dict(color=colors), cliponaxis=False,
                         showlegend=False),
                  secondary_y=False, **row)
    fig.add_trace(go.Scatter(x=stages, y=df["out_h"].tolist(), name="feature-map height", mode="lines+markers",
                             line=dict(color="#e6550d", dash="dot"), hovertext=hover, hoverinfo="text",
                             showlegend=False),
                  secondary_y=True, **row)
    ticks = [f"{s}<br><span style='font-size:10px'>{lab}</span>" for s, lab in
             zip(stages, [f"k{r.kernel} b{r.blocks} {_stride_text(r.stride)}" for r in df.itertuples(index=False)])]
    fig.update_xaxes(tickmode="array", tickvals=stages, ticktext=ticks, **row)
    top = float(df["out_ch"].max()) if len(df) else 1.0
    fig.update_yaxes(title_text="output channels", range=[0, top * 1.3], secondary_y=False, **row)
    heights = sorted({int(v) for v in df["out_h"].tolist()})
    fig.update_yaxes(title_text="feature-map height", type="log", secondary_y=True, showgrid=False,
                     tickmode="array", tickvals=heights, ticktext=[str(v) for v in heights], **row)
    if not two:
        fig.update_layout(height=340, margin=dict(l=55, r=55, t=50 if title else 25, b=60), title=title or None,
                          template="plotly_white", showlegend=False, bargap=0.25)
        return fig
    from lab.evo_pictures import BLOCK_LEGEND, block_axes, block_traces

    for tr in block_traces(blocks):
        fig.add_trace(tr, row=2, col=1)
    ax = block_axes(blocks)
    fig.update_xaxes(visible=False, range=ax["x"], row=2, col=1)
    fig.update_yaxes(visible=False, range=ax["y"], row=2, col=1)
    fig.update_layout(height=700, margin=dict(l=55, r=55, t=50 if title else 25, b=40), title=title or None,
                      template="plotly_white", showlegend=True, bargap=0.25, hovermode="closest",
                      legend=BLOCK_LEGEND)
    return fig


def _stride_text(s: float) -> str:
    """'s2' for a stride, 'up x8' for the head's upsampling (stride 1/8)."""
    return f"s{int(s)}" if s >= 1 else f"up x{int(round(1 / s))}"
