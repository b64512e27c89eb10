"""Teaching pictures (lab.evo_pictures): the family tree's nodes / edges / mutation labels, the MBConv
block glyphs of a spec, and the weight-transfer grid's cells, checked against hand-made inputs."""

import math

import numpy as np
import pandas as pd
import pytest

from posenas_core.errors import DataError
from posenas_core.search.archive import archive_frame, generations_frame
from posenas_core.search.evolution import describe_mutation
from posenas_core.search.transfer import TRANSFER_ACTIONS, transfer_report
from posenas_core.spaces.evopose import ANCESTOR, EvoPoseSpec, genotype_to_str

from lab.evo_pictures import (ACTION_COLORS, block_diagram, block_frame, family_tree_figure, family_tree_frame,
                              short_mutation, transfer_figure, transfer_figure_for, transfer_frame)


def _with(g, module, **genes):
    k, b, c, s = g[module]
    row = (genes.get("kernel", k), genes.get("blocks", b), genes.get("ch8", c), genes.get("stride", s))
    return g[:module] + (row,) + g[module + 1:]


# A tiny evolution written by hand: ancestor 0; generation 1: children 1, 2 (of 0), 3 failed;
# generation 2: 4 and 5 of parent 2, 6 of parent 1.
G1 = _with(ANCESTOR, 2, kernel=3)                 # module 3 kernel 5 -> 3
G2 = _with(ANCESTOR, 4, blocks=4)                 # module 5 blocks 3 -> 4
G3 = _with(ANCESTOR, 0, ch8=1)
G4 = _with(G2, 3, ch8=6)                          # module 4 ch/8 10 -> 6
G5 = _with(G2, 6, kernel=5)
G6 = _with(G1, 5, stride=1)
TREE = [(0, 0, None, ANCESTOR, 0.030), (1, 1, 0, G1, 0.027), (2, 1, 0, G2, 0.025), (3, 1, 0, G3, None),
        (4, 2, 2, G4, 0.022), (5, 2, 2, G5, 0.026), (6, 2, 1, G6, 0.028)]
GENOS = {i: g for i, _, _, g, _ in TREE}


def _archive():
    rows = []
    for cid, gen, parent, geno, fit in TREE:
        rows.append({"id": cid, "generation": gen, "parent": parent, "genotype": genotype_to_str(geno),
                     "spec": EvoPoseSpec(genotype=geno).to_dict(), "params": 4_000_000 + cid, "macs": 10 ** 8,
                     "val_loss": fit, "fitness": fit, "status": "ok" if fit is not None else "failed",
                     "mutation": None if parent is None else describe_mutation(GENOS[parent], geno)})
    gens = [{"generation": 0, "parents": [0]}, {"generation": 1, "parents": [2, 1]},
            {"generation": 2, "parents": [4, 2]}]
    return archive_frame(rows), generations_frame(gens)


def _segments(trace):
    """(x0, y0, x1, y1) of a None-separated line trace."""
    xs, ys = list(trace.x), list(trace.y)
    return [(xs[i], ys[i], xs[i + 1], ys[i + 1]) for i in range(0, len(xs), 3)]


# ---------------------------------------------------------------------------------------------
# family tree


def test_short_mutation():
    assert short_mutation("module 3 kernel 5->3") == "M3 k 5\u21923"
    assert short_mutation("module 6 ch8 24->13; module 2 blocks 2->3") == "M6 ch/8 24\u219213, M2 blocks 2\u21923"
    assert short_mutation(None) == short_mutation("none") == ""


def test_family_tree_frame_places_generations_and_sorts_children_by_parent():
    arch, _ = _archive()
    df = family_tree_frame(arch).set_index("id")
    assert df["x"].tolist() == [0, 1, 1, 1, 2, 2, 2]
    assert df.loc[0, "y"] == 0 and sorted(df.loc[[1, 2, 3], "y"]) == [-1, 0, 1]
    # generation 2: the child of parent 1 (slot -1) comes before the children of parent 2 (slot 0)
    assert df.loc[6, "y"] < df.loc[4, "y"] < df.loc[5, "y"]
    assert df.loc[4, "parent_id"] == 2 and df.loc[0, "parent_id"] == -1
    assert df.loc[1, "label"] == "M3 k 5\u21923" and df.loc[0, "label"] == ""


def test_family_tree_figure_nodes_edges_mutations_fitness_and_selection():
    arch, gens = _archive()
    fig = family_tree_figure(arch, gens)
    assert [t.name for t in fig.data] == ["edges", "mutations", "candidates", "failed", "parents now", "best"]
    pos = {int(r.id): (r.x, r.y) for r in family_tree_frame(arch).itertuples()}
    # one edge per child, from its parent's node to its own
    edges = {(a, b) for a in pos for b in pos for seg in _segments(fig.data[0]) if seg == (*pos[a], *pos[b])}
    assert edges == {(0, 1), (0, 2), (0, 3), (2, 4), (2, 5), (1, 6)}
    # the mutated gene on each edge, 60 % of the way to the child
    muts = dict(zip(fig.data[1].text, zip(fig.data[1].x, fig.data[1].y)))
    assert set(muts) == {"M3 k 5\u21923", "M5 blocks 3\u21924", "M1 ch/8 2\u21921", "M4 ch/8 10\u21926",
                         "M7 k 3\u21925", "M6 stride 2\u21921"}
    x, y = muts["M4 ch/8 10\u21926"]
    assert math.isclose(x, 1.6) and math.isclose(y, pos[2][1] + 0.6 * (pos[4][1] - pos[2][1]))
    assert any("2 \u2192 4: module 4 ch8 10->6" == h for h in fig.data[1].hovertext)
    # nodes: ok candidates coloured by fitness, labelled by id, hover = genotype + fitness
    cand = fig.data[2]
    assert list(cand.text) == ["0", "1", "2", "4", "5", "6"]
    assert list(cand.marker.color) == [0.030, 0.027, 0.025, 0.022, 0.026, 0.028]
    assert cand.marker.reversescale and cand.marker.showscale
    c4 = cand.customdata[3]
    assert c4[0] == 4 and c4[2] == 2 and c4[3] == genotype_to_str(G4) and c4[5] == "0.022"
    assert "%{customdata[3]}" in cand.hovertemplate and "fitness %{customdata[5]}" in cand.hovertemplate
    assert list(fig.data[3].x) == [1] and fig.data[3].customdata[0][0] == 3          # the failed one
    ring = set(zip(fig.data[4].x, fig.data[4].y))
    assert ring == {pos[4], pos[2]}                                                    # the last parents
    assert list(fig.data[5].x) == [2] and math.isclose(fig.data[5].y[0], pos[4][1] + 0.32)   # best: id 4
    assert fig.layout.xaxis.title.text == "generation"


def test_family_tree_of_an_empty_or_ancestor_only_archive():
    fig = family_tree_figure(archive_frame([]))
    assert len(fig.data) == 6 and all(len(t.x or ()) == 0 for t in fig.data)
    arch, _ = _archive()
    fig = family_tree_figure(arch[arch["id"] == 0])
    assert list(fig.data[2].text) == ["0"] and len(fig.data[0].x) == 0


# ---------------------------------------------------------------------------------------------
# MBConv blocks


def test_block_frame_of_the_ancestor():
    df = block_frame(EvoPoseSpec(genotype=ANCESTOR), (256, 192))
    assert df["label"].tolist() == ["1.1", "2.1", "2.2", "3.1", "3.2", "4.1", "4.2", "4.3", "5.1", "5.2", "5.3",
                                    "6.1", "6.2", "6.3", "6.4", "7.1"]
    b = df.set_index("label")
    # module 1: no expansion (32 -> 32 -> 16), squeeze 8; module 2's first block: stride 2, no skip
    assert tuple(b.loc["1.1", ["in_ch", "exp_ch", "out_ch", "se_ch", "stride", "skip"]]) == (32, 32, 16, 8, 1, False)
    assert tuple(b.loc["2.1", ["in_ch", "exp_ch", "out_ch", "kernel", "stride", "skip"]]) == (16, 96, 24, 3, 2, False)
    assert tuple(b.loc["2.2", ["in_ch", "exp_ch", "out_ch", "se_ch", "stride", "skip"]]) == (24, 144, 24, 6, 1, True)
    assert tuple(b.loc["6.1", ["in_h", "in_w", "out_h", "out_w"]]) == (16, 12, 8, 6)
    assert int(b.loc["7.1", "exp_ch"]) == 192 * 6 and df["skip"].sum() == 9


def test_block_diagram_draws_every_block():
    df = block_frame(EvoPoseSpec(genotype=ANCESTOR), (256, 192))
    fig = block_diagram(df)
    names = [t.name for t in fig.data]
    assert names[:4] == ["kernel 3x3", "kernel 5x5", "residual skip", "squeeze-excite"] and len(names) == 8
    by = {t.name: t for t in fig.data}
    # one closed polygon per block, in the colour of its kernel
    assert list(by["kernel 3x3"].x).count(None) == int((df["kernel"] == 3).sum()) == 7
    assert list(by["kernel 5x5"].x).count(None) == 9
    assert by["kernel 3x3"].fill == "toself" and by["kernel 3x3"].fillcolor != by["kernel 5x5"].fillcolor
    # the glyph of block 2.1: input 16 ch (left), expanded 96 (middle), output 24 (right), heights ~ sqrt
    poly = list(by["kernel 3x3"].y)
    first2 = poly[10:19]                                   # block 1.1 is polygon 0, block 2.1 polygon 1
    assert math.isclose(first2[0], -0.5 * math.sqrt(16)) and math.isclose(first2[1], -0.5 * math.sqrt(96))
    assert math.isclose(first2[3], -0.5 * math.sqrt(24))
    assert list(by["residual skip"].x).count(None) == 9                     # one arc per skip block
    assert len(by["squeeze-excite"].x) == 16 and "96 \u2192 4 \u2192 96" in by["squeeze-excite"].hovertext[1]
    assert len(by[next(n for n in names if n.startswith("stride 2"))].x) == 4   # modules 2, 3, 4 and 6
    blocks = by["blocks"]
    assert list(blocks.text)[:4] == ["k3", "k3", "k3", "k5"]
    assert "depthwise 5x5, stride 2" in blocks.hovertext[3] and "+ residual skip" in blocks.hovertext[4]
    assert "no expand conv" in blocks.hovertext[0]
    mods = list(by["modules"].text)
    assert len(mods) == 7 and "<b>M6</b> 192 ch" in mods[5] and "8x6" in mods[5]
    assert list(by["module borders"].x).count(None) == 6
    # modules are separated: the gap between blocks of two modules is larger than within a module
    x = list(blocks.x)
    assert math.isclose(x[2] - x[1], 1) and x[1] - x[0] > 1.5


# ---------------------------------------------------------------------------------------------
# weight transfer


def _cell(fig, row, col):
    hm = fig.data[0]
    i, j = list(hm.y).index(row), list(hm.x).index(col)
    return hm.z[i][j], hm.text[i][j], hm.customdata[i][j]


def test_transfer_figure_cells_show_what_happened_to_each_layer():
    parent = EvoPoseSpec(genotype=ANCESTOR)
    code = {a: i for i, a in enumerate(TRANSFER_ACTIONS)}
    # kernel 3 -> 5 in module 1 (one block): its depthwise kernel is padded, everything else copied
    fig = transfer_figure(transfer_report(parent, EvoPoseSpec(genotype=_with(ANCESTOR, 0, kernel=5))))
    assert [t.name for t in fig.data] == ["layers"] + list(TRANSFER_ACTIONS)
    assert [t.marker.color for t in fig.data[1:]] == [ACTION_COLORS[a] for a in TRANSFER_ACTIONS]
    z, text, custom = _cell(fig, "depthwise kxk", "1.1")
    assert (z, text) == (code["padded"], "pad")
    assert custom == ["blocks.0.0.dw.conv", "padded", "32\u00d71\u00d73\u00d73", "32\u00d71\u00d75\u00d75",
                      "blocks.0.0.dw.conv"]
    zs = [v for row in fig.data[0].z for v in row if v is not None]
    assert zs.count(code["padded"]) == 1 and set(zs) == {code["copied"], code["padded"]}
    assert list(fig.data[0].x)[:3] == ["stem", "1.1", "2.1"] and list(fig.data[0].x)[-4:] == \
        ["head 1", "head 2", "head 3", "final"]
    assert _cell(fig, "expand 1x1", "1.1")[0] is None                     # module 1 has no expand conv

    # blocks + 1 in module 5 (3 -> 4): a column of new layers taken from block 5.3
    fig = transfer_figure(transfer_report(parent, EvoPoseSpec(genotype=_with(ANCESTOR, 4, blocks=4))))
    col = [_cell(fig, r, "5.4") for r in ("expand 1x1", "depthwise kxk", "SE reduce", "project BN")]
    assert all(t == "new" for _, t, _ in col) and col[1][2][4] == "blocks.4.2.dw.conv"
    # blocks - 1 (module 6: 4 -> 3): the parent's block 6.4 is dropped
    fig = transfer_figure(transfer_report(parent, EvoPoseSpec(genotype=_with(ANCESTOR, 5, blocks=3))))
    assert _cell(fig, "depthwise kxk", "6.4")[1] == "drop"
    # channels 40 -> 24 in module 3: its projection is cropped, as is module 4's first expansion
    fig = transfer_figure(transfer_report(parent, EvoPoseSpec(genotype=_with(ANCESTOR, 2, ch8=3))))
    assert _cell(fig, "project 1x1", "3.1")[1] == "crop" and _cell(fig, "expand 1x1", "4.1")[1] == "crop"
    assert _cell(fig, "expand 1x1", "3.1")[1] == "="


def test_transfer_frame_orders_columns_structurally():
    parent = EvoPoseSpec(genotype=ANCESTOR)
    df = transfer_frame(transfer_report(parent, EvoPoseSpec(genotype=_with(ANCESTOR, 5, blocks=3))))
    cols = list(dict.fromkeys(df["column"]))
    assert cols.index("6.4") == cols.index("6.3") + 1 < cols.index("7.1")   # the dropped block in its place
    assert set(df["row"]) <= {"stem / head conv", "stem / head BN", "expand 1x1", "expand BN", "depthwise kxk",
                              "depthwise BN", "SE reduce", "SE expand", "project 1x1", "project BN"}


def test_transfer_figure_for_a_run_picks_the_best_child():
    arch, _ = _archive()
    fig = transfer_figure_for(arch)                  # best child: 4 (module 4 ch/8 10 -> 6, parent 2)
    assert "parent 2 \u2192 child 4" in fig.layout.title.text and "M4 ch/8 10\u21926" in fig.layout.title.text
    assert {t for row in fig.data[0].text for t in row} == {"", "=", "crop"}
    fig = transfer_figure_for(arch, 2)               # module 5 blocks 3 -> 4: a new block 5.4
    assert "parent 0 \u2192 child 2" in fig.layout.title.text
    assert _cell(fig, "project 1x1", "5.4")[1] == "new"
    fig = transfer_figure_for(arch, 6, kernel_transfer=False)    # a stride change keeps every shape
    assert {t for row in fig.data[0].text for t in row} == {"", "="}
    with pytest.raises(DataError, match="candidate 0 is not a child"):
        transfer_figure_for(arch, 0)
    with pytest.raises(DataError, match="no child yet"):
        transfer_figure_for(arch[arch["id"] == 0])
