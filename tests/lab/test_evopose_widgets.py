"""EvoPose2D widgets driven headless: GenotypeEditor controls -> spec / stats / diagram / errors,
EvolutionMonitor and FrontExplorer on a run directory written by hand (the archive.jsonl /
generations.jsonl schema of the evolution), clicks -> the editor."""

import json
import time

import numpy as np
import pandas as pd
import pytest

from posenas_core.errors import SpecError
from posenas_core.eval.profiler import count_macs
from posenas_core.models.evopose import build_evopose
from posenas_core.models.registry import PRESETS, load_spec
from posenas_core.runs.io import append_jsonl, atomic_write_json
from posenas_core.search.archive import archive_frame
from posenas_core.search.pareto import pareto_front
from posenas_core.spaces.evopose import ANCESTOR, GENOTYPE_S, MAX_CH8, EvoPoseSpec, genotype_to_str, mutate

from lab import EvolutionMonitor, FrontExplorer, GenotypeEditor
from lab.evo_figures import evolution_figure, front_figure, network_frame


@pytest.fixture(scope="module")
def editor():
    return GenotypeEditor()


# ---------------------------------------------------------------------------------------------
# GenotypeEditor


def test_editor_shows_profiler_counts_of_ancestor_and_s(editor):
    ed = editor
    ed.set_spec(EvoPoseSpec(genotype=ANCESTOR), (256, 192))
    assert ed.valid and ed.spec == EvoPoseSpec(genotype=ANCESTOR)
    assert ed.stats_dict["params"] == 4_261_901 and ed.stats_dict["params_with_bn_stats"] == 4_302_125
    assert "4,261,901 trainable" in ed.stats.value and "4,302,125 with BN statistics" in ed.stats.value
    # MACs on the meta-device model == the profiler on a real model
    real = count_macs(build_evopose(ed.spec), (256, 192))
    assert ed.stats_dict["macs"] == real and f"({real:,})" in ed.stats.value
    assert "heatmaps 64x48 (output stride 4)" in ed.stats.value

    ed.load_json("evopose2d-s")
    assert ed.spec == PRESETS["evopose2d-s"].spec and ed.input_hw == (256, 192)
    assert ed.stats_dict["params"] == 2_496_239 and "2,496,239 trainable" in ed.stats.value
    assert [c.value for c in ed.blocks] == [r[1] for r in GENOTYPE_S]
    assert ed.errors.errors == []


def test_controls_are_bounded_by_the_space(editor):
    ed = editor
    assert [s.disabled for s in ed.stride] == [True] * 4 + [False] * 3
    assert [tuple(s.options) for s in ed.stride[:4]] == [(1,), (2,), (2,), (2,)]
    assert all(tuple(s.options) == (1, 2) for s in ed.stride[4:])
    assert [c.max for c in ed.ch8] == list(MAX_CH8) and all(c.min == 1 for c in ed.ch8)
    assert all((b.min, b.max) == (1, 4) for b in ed.blocks) and all(tuple(k.options) == (3, 5) for k in ed.kernel)


def test_edits_change_spec_stats_and_diagram(editor):
    ed = editor
    ed.set_spec(EvoPoseSpec(genotype=ANCESTOR), (256, 192))
    ed.kernel[2].value = 3
    ed.ch8[6].value = 20
    ed.blocks[0].value = 2
    g = list(map(list, ANCESTOR))
    g[2][0], g[6][2], g[0][1] = 3, 20, 2
    expect = EvoPoseSpec(genotype=tuple(map(tuple, g)))
    assert ed.spec == expect
    assert ed.stats_dict["params"] == sum(p.numel() for p in build_evopose(expect).parameters())
    bars, res = ed.diagram.data[:2]
    assert list(bars.x) == ["stem"] + [f"module {m}" for m in range(1, 8)] + ["head"]
    # the block row below: 2 + 2 + 2 + 3 + 3 + 4 + 1 blocks (module 1 has two now), kernels as text
    blocks = next(t for t in ed.diagram.data if t.name == "blocks")
    assert list(blocks.text) == ["k3"] * 9 + ["k5"] * 7 + ["k3"]
    assert list(ed.block_df["label"][:3]) == ["1.1", "1.2", "2.1"] and len(ed.block_df) == 17
    assert list(bars.y) == [32, 16, 24, 40, 80, 112, 192, 160, 17]
    # resolution after each stage at 256x192 (stride 2 stem, modules 2-4 and 6), head x8 up
    assert list(res.y) == [128, 128, 64, 32, 16, 16, 8, 8, 64]
    assert "8x6" in bars.text[7] and "64x48" in bars.text[8]
    assert "160 ch" in ed.row_info[6].value and "8x6" in ed.row_info[6].value

    ed.stride[5].value = 1          # network stride 16: heatmaps at 1/2
    assert ed.spec.network_stride == 16 and "heatmaps 128x96 (output stride 2)" in ed.stats.value
    assert list(ed.diagram.data[1].y)[6:] == [16, 16, 128]
    ed.height.value, ed.width.value = 128, 96   # input size: MACs follow, params do not
    assert ed.stats_dict["macs"] == count_macs(build_evopose(ed.spec), (128, 96))
    assert list(ed.diagram.data[1].y)[:2] == [64, 64]
    assert ed.errors.errors == []


def test_invalid_edit_shows_the_spec_error_and_keeps_the_last_valid_spec(editor):
    ed = editor
    ed.set_spec(EvoPoseSpec(genotype=ANCESTOR), (256, 192))
    before = ed.spec
    ed.stride[4].value = 2          # module 6 already has stride 2: network stride 64
    assert not ed.valid and ed.spec == before
    assert "network stride 64 is over the cap 32" in ed.validation.value and "modules [5, 6]" in ed.validation.value
    assert ed.save_button.disabled and ed.notebook_button.disabled and "last valid" in ed.stats.value
    with pytest.raises(SpecError, match="invalid"):
        ed.to_notebook()
    ed.stride[5].value = 1          # fixed the other way: valid again
    assert ed.valid and ed.validation.value == "" and ed.spec.genotype[4][3] == 2
    ed.height.value = 200           # not a multiple of the network stride 32
    assert not ed.valid and "200x192 must be a multiple of the network stride 32" in ed.validation.value
    ed.height.value = 256
    assert ed.valid
    ed.scaling.value = True
    ed.height.value, ed.width.value = 128, 96
    assert not ed.valid and "compound scaling only scales up" in ed.validation.value
    ed.scaling.value = False
    assert ed.valid
    assert ed.errors.errors == []   # expected problems are not tracebacks


def test_json_notebook_and_file_round_trip(editor, tmp_path):
    ed = editor
    ed.set_spec(EvoPoseSpec(genotype=GENOTYPE_S), (256, 192))
    ed.ch8[1].value = 2
    text = ed.to_notebook()
    assert text == ed.spec.to_json() == ed.notebook_text.value
    assert load_spec(text) == ed.spec                       # what a notebook parameter does with it
    spec = ed.spec

    ed.to_json_button.click()
    assert json.loads(ed.json_text.value)["genotype"][1] == [3, 3, 2, 2]
    ed.load_json("evopose2d-ancestor")
    assert ed.spec.genotype == ANCESTOR
    ed.json_text.value = text
    ed.load_button.click()
    assert ed.spec == spec and ed.validation.value == ""

    ed.json_text.value = genotype_to_str(ANCESTOR)        # a genotype string works too
    ed.load_button.click()
    assert ed.spec.genotype == ANCESTOR
    ed.json_text.value = '{"kind": "evopose2d", "genotype": [[3, 1, 2, 1]]}'
    ed.load_button.click()
    assert "SpecError" in ed.validation.value and "must have 7 modules" in ed.validation.value
    assert ed.spec.genotype == ANCESTOR and ed.errors.errors == []

    ed.set_spec(spec)
    path = tmp_path / "sub" / "spec.json"
    ed.path_text.value = str(path)
    ed.save_button.click()
    assert load_spec(str(path)) == spec and "saved" in ed.file_status.value
    ed.load_json("evopose2d-ancestor")
    ed.load_file_button.click()
    assert ed.spec == spec
    ed.path_text.value = str(tmp_path / "missing.json")
    ed.load_file_button.click()
    assert "does not exist" in ed.validation.value


def test_a_stale_error_banner_clears_after_a_successful_action(editor, tmp_path):
    ed = editor
    ed.set_spec(EvoPoseSpec(genotype=GENOTYPE_S), (256, 192))
    ed.path_text.value = ""
    ed.save_button.click()                                   # no path: the banner shows
    assert "no file path given" in ed.validation.value
    ed.path_text.value = str(tmp_path / "s.json")
    ed.save_button.click()                                   # a successful save clears it
    assert ed.validation.value == "" and "saved" in ed.file_status.value
    ed.path_text.value = str(tmp_path / "missing.json")
    ed.load_file_button.click()
    assert "does not exist" in ed.validation.value
    ed.notebook_button.click()                               # so does any other successful action
    assert ed.validation.value == "" and ed.notebook_text.value == ed.spec.to_json()
    ed.json_text.value = "{not json"
    ed.load_button.click()
    assert "invalid" in ed.validation.value
    ed.to_json_button.click()
    assert ed.validation.value == ""
    # with an invalid genotype in the controls, a failed action's banner gives way to the controls' problem
    ed.stride[4].value = 2
    ed.stride[5].value = 2                                   # modules 5 and 6 both stride 2
    problem = ed.validation.value
    assert not ed.valid and "network stride 64" in problem
    ed.notebook_button.disabled = False                      # (disabled while invalid; a script may call it)
    ed.notebook_button.click()                               # refused: the controls are invalid
    assert "cannot send" in ed.validation.value
    ed.json_text.value = "{not json"
    ed.load_button.click()
    ed.path_text.value = str(tmp_path / "s.json")
    ed.load_file_button.click()                              # a good file: loaded, the genotype is valid again
    assert ed.valid and ed.validation.value == ""
    ed.stride[4].value, ed.stride[5].value = 2, 2
    ed.json_text.value = "{not json"
    ed.load_button.click()
    assert "invalid" in ed.validation.value and "SpecError" in ed.validation.value
    ed.kernel[0].value = 5                                   # an edit re-validates: the controls' problem only
    assert ed.validation.value == problem
    ed.set_spec(EvoPoseSpec(genotype=GENOTYPE_S), (256, 192))
    assert ed.valid and ed.validation.value == "" and ed.errors.errors == []
    ed.preset.value = "evopose2d-s"
    ed.preset_button.click()                                 # loading a preset fixes everything
    assert ed.valid and ed.validation.value == "" and ed.errors.errors == []


def test_send_to_notebook_leads_to_the_evolutions_ancestor(editor):
    """The editor's text is what the EvoPose2D notebook's `ancestor` parameter takes, and it becomes the
    evolution's starting genotype (`spec_from_text` -> EvolutionConfig.ancestor)."""
    from posenas_core.search.evolution import EvolutionConfig

    from lab.genotype_editor import spec_from_text

    ed = editor
    ed.set_spec(EvoPoseSpec(genotype=ANCESTOR), (128, 96))
    ed.kernel[0].value = 5
    ed.blocks[6].value = 2
    text = ed.notebook_button.click() or ed.notebook_text.value
    geno = genotype_to_str(ed.spec.genotype)
    assert "ancestor = editor.to_notebook()" in ed.notebook_hint.value and geno in ed.notebook_hint.value
    assert ed.notebook_command == f"posenas run notebooks/02_evopose2d.ipynb -p ancestor {geno} --out reports/evo-mine"
    for given in (text, geno):                               # the JSON or the genotype string
        cfg = EvolutionConfig(data_dir="data/synth", ancestor=spec_from_text(given).genotype)
        assert cfg.ancestor == ed.spec.genotype
    assert spec_from_text("evopose2d-ancestor").genotype == ANCESTOR
    with pytest.raises(SpecError, match="not an EvoPose2D genotype"):
        spec_from_text("baseline-resnet")
    with pytest.raises(SpecError, match="no spec given"):
        spec_from_text("  ")


def test_compound_scaled_preset_and_scaling_switch(editor):
    ed = editor
    ed.load_json("evopose2d-m")
    assert ed.input_hw == (384, 288) and ed.scaling.value and ed.spec == PRESETS["evopose2d-m"].spec
    assert ed.stats_dict["params"] == 7_256_105
    ed.height.value, ed.width.value = 256, 192              # scaling on: back to S's size and multipliers
    assert ed.spec == PRESETS["evopose2d-s"].spec and ed.stats_dict["params"] == 2_496_239
    ed.set_spec(PRESETS["evopose2d-m"].spec)                 # no size given: found from the multipliers
    assert ed.input_hw == (384, 288) and ed.scaling.value


def test_latency_measured_in_a_background_thread():
    ed = GenotypeEditor("evopose2d-s", latency_min_run_time=0.05)
    ed.height.value, ed.width.value = 64, 48
    assert "not measured" in ed.latency_label.value
    ed.latency_button.click()
    assert ed.latency_task.join(60) and ed.latency_task.state == "done", ed.errors.errors
    lat = ed.latency
    assert lat["latency_ms"] > 0 and lat["input_hw"] == (64, 48) and lat["threads"] == 1
    assert f"{lat['latency_ms']:.2f} ms" in ed.latency_label.value and not ed.latency_button.disabled
    ed.kernel[0].value = 5                                    # another spec: the figure is marked stale
    assert "earlier spec" in ed.latency_label.value


# ---------------------------------------------------------------------------------------------
# A run directory written by hand


def _candidates(n_gen=2, children=4, seed=0):
    """Archive rows: the ancestor (generation 0) and `children` mutants per generation."""
    rng = np.random.default_rng(seed)
    rows, seen, parents = [], {ANCESTOR}, [0]
    genos = {0: ANCESTOR}
    rows.append(_row(0, 0, None, ANCESTOR, 4_261_901, 522_976_256, 1.0))
    cid = 1
    for g in range(1, n_gen + 1):
        for j in range(children):
            p = parents[j % len(parents)]
            child = mutate(genos[p], rng, seen)
            seen.add(child)
            genos[cid] = child
            rows.append(_row(cid, g, p, child, 3_000_000 + 100_000 * ((cid * 7) % 11), 400_000_000 + 50_000_000 *
                             ((cid * 5) % 9), 1.0 - 0.03 * cid + 0.05 * ((cid * 3) % 4)))
            cid += 1
        parents = [r["id"] for r in sorted(rows, key=lambda r: r["fitness"])[:2]]
    return rows


def _row(cid, gen, parent, geno, params, macs, loss, gamma=-0.07):
    return {"id": cid, "generation": gen, "parent": parent, "genotype": genotype_to_str(geno),
            "spec": EvoPoseSpec(genotype=geno).to_dict(), "params": params, "params_with_bn_stats": params + 40_000,
            "macs": macs, "val_loss": loss, "fitness": loss * (5e6 / params) ** gamma, "ap": None, "epochs": 2,
            "wall_time_s": 1.5, "status": "ok", "error": None, "mutation": None if parent is None else "m"}


def _gen_row(g, rows):
    pop = [r for r in rows if r["generation"] == g]
    pool = [r for r in rows if r["generation"] <= g and r["fitness"] is not None]
    best = sorted(pool, key=lambda r: r["fitness"])
    return {"generation": g, "parents": [r["id"] for r in best[:2]], "best_id": best[0]["id"],
            "best_fitness": best[0]["fitness"], "population_fitness": [r["fitness"] for r in pop], "wall_time_s": 3.0}


def _write_run(d, rows, gens, generations_total=3):
    d.mkdir(parents=True, exist_ok=True)
    atomic_write_json(d / "config.json", {"kind": "evopose2d-evolution", "generations": generations_total,
                                          "lam": 4, "mu": 2, "input_size": [128, 96],
                                          "aug": {"rotation_prob": 0.0}})
    for r in rows:
        append_jsonl(d / "archive.jsonl", r)
    for g in gens:
        append_jsonl(d / "generations.jsonl", _gen_row(g, rows))


def test_refresh_sends_every_trace_whole_again(tmp_path):
    """plotly.py sends only changes; "refresh" re-sends each trace whole, so a view that missed an update while
    it was drawing itself is repaired (a browser test once saw the finished monitor without its points)."""
    d = tmp_path / "evo"
    _write_run(d, _candidates(n_gen=1)[:5], [1])
    mon = EvolutionMonitor(d, autostart=False)
    sent = []
    mon.figure._send_restyle_msg = lambda data, trace_indexes=None, **kw: sent.append((trace_indexes, data))
    mon.refresh()                                     # nothing changed on disk: plotly alone would send nothing
    assert [t for t, _ in sent] == [[0], [1], [2], [3]]
    assert sent[0][1]["x"] == [list(mon.figure.data[0].x)] and len(sent[0][1]["x"][0]) == 5
    assert sent[0][1]["marker"] == [mon.figure.data[0].marker.to_plotly_json()]


def test_evolution_monitor_follows_the_run(tmp_path):
    d = tmp_path / "evo"
    rows = _candidates(n_gen=2)
    mon = EvolutionMonitor(d, autostart=False)
    assert "waiting for" in mon.status.value and [len(t.x) for t in mon.figure.data] == [0, 0, 0, 0]

    _write_run(d, rows[:5], [1])                      # ancestor + generation 1 finished
    mon.refresh()
    cand, best, med, par = mon.figure.data
    assert list(cand.x) == [0, 1, 1, 1, 1] and list(cand.y) == pytest.approx([r["fitness"] for r in rows[:5]])
    f = [r["fitness"] for r in rows[:5]]
    assert list(best.x) == [0, 1] and list(best.y) == pytest.approx([f[0], min(f)])
    assert list(med.y) == pytest.approx([f[0], float(np.median(f[1:]))])
    g1 = _gen_row(1, rows[:5])
    assert list(par.x) == [1, 1] and list(par.y) == pytest.approx([f[i] for i in g1["parents"]])
    assert cand.customdata[1][2] == rows[1]["genotype"]
    assert "generation 1 done of 3" in mon.status.value and "5 candidates" in mon.status.value
    best_id = g1["best_id"]
    assert f"id {best_id}" in mon.status.value and rows[best_id]["genotype"] in mon.status.value
    assert list(mon.table_df["id"]) == g1["parents"] and mon.table_df["role"].iloc[0] == "best, parent"
    for p in g1["parents"]:
        assert rows[p]["genotype"] in mon.table.value
    assert "generations" in mon.config.value

    for r in rows[5:]:                                # generation 2: lines appended, one failed
        append_jsonl(d / "archive.jsonl", r)
    append_jsonl(d / "archive.jsonl", {**_row(99, 2, 1, ANCESTOR, 1, 1, 0.1), "status": "failed", "val_loss": None,
                                       "fitness": None, "error": "boom"})
    append_jsonl(d / "generations.jsonl", _gen_row(2, rows))
    mon.refresh()
    assert len(mon.figure.data[0].x) == 9 and list(mon.figure.data[1].x) == [0, 1, 2]
    assert mon.figure.data[1].y[-1] == pytest.approx(min(r["fitness"] for r in rows))
    assert "generation 2 done of 3" in mon.status.value and "(1 failed)" in mon.status.value
    assert list(mon.table_df["id"]) == _gen_row(2, rows)["parents"]
    assert mon.errors.errors == []

    assert "running" in mon.status.value
    append_jsonl(d / "generations.jsonl", _gen_row(3, rows))       # the config's last generation
    with open(d / "archive.jsonl", "a") as fh:
        fh.write("not json\n")
    mon.refresh()
    assert "finished" in mon.status.value and "generation 3 done of 3" in mon.status.value
    assert "line 11 is not valid JSON" in str(mon.errors.last_error)


def test_evolution_monitor_polls_live(tmp_path):
    d = tmp_path / "evo"
    rows = _candidates(n_gen=1)
    _write_run(d, rows[:1], [])
    mon = EvolutionMonitor(d, poll_seconds=0.05)
    try:
        assert mon.running and len(mon.figure.data[0].x) == 1
        append_jsonl(d / "archive.jsonl", rows[1])
        t0 = time.monotonic()
        while len(mon.figure.data[0].x) < 2 and time.monotonic() - t0 < 10:
            time.sleep(0.02)
        assert len(mon.figure.data[0].x) == 2
    finally:
        mon.stop()
    assert not mon.running and not mon.live_button.value


def test_front_explorer_fronts_hover_toggles_and_click_to_editor(tmp_path, editor):
    rows_a = _candidates(n_gen=2, seed=0)
    rows_b = _candidates(n_gen=1, seed=1)
    rows_b[2] = {**rows_b[2], "status": "failed", "val_loss": None, "fitness": None}
    for r in rows_b:
        r["ap"] = 0.3 + 0.01 * r["id"]
    _write_run(tmp_path / "a", rows_a, [1, 2])
    _write_run(tmp_path / "b", rows_b, [1])
    fx = FrontExplorer([tmp_path / "a", tmp_path / "b"], editor=editor, y="val_loss")
    names = [t.name for t in fx.figure.data]
    assert names == ["a", "a front", "b", "b front", "front of all runs", "selected"]

    pts_a, front_a = fx.figure.data[0], fx.figure.data[1]
    assert list(pts_a.x) == pytest.approx([r["macs"] / 1e9 for r in rows_a])
    assert list(pts_a.y) == pytest.approx([r["val_loss"] for r in rows_a])
    on = pareto_front([r["macs"] for r in rows_a], [r["val_loss"] for r in rows_a])
    exp = sorted((rows_a[i]["macs"] / 1e9, rows_a[i]["val_loss"]) for i in np.flatnonzero(on))
    assert len(exp) >= 2
    np.testing.assert_allclose(np.column_stack([front_a.x, front_a.y]), np.array(exp))
    assert front_a.line.shape == "hv"
    assert len(fx.figure.data[2].x) == len(rows_b) - 1                # the failed candidate is left out
    assert list(pts_a.customdata[3][:3]) == ["a", 3, rows_a[3]["genotype"]]
    assert f"{rows_a[3]['params']:,}" in list(pts_a.customdata[3]) and "%{customdata[2]}" in pts_a.hovertemplate
    both = [(r["macs"], r["val_loss"]) for r in rows_a] + [(r["macs"], r["val_loss"]) for r in rows_b
                                                          if r["status"] == "ok"]
    on_all = pareto_front(*zip(*both))
    assert len(fx.figure.data[4].x) == int(on_all.sum())

    fx.x_toggle.value = "params"
    assert list(fx.figure.data[0].x) == pytest.approx([r["params"] / 1e6 for r in rows_a])
    assert "params" in fx.figure.layout.xaxis.title.text
    fx.y_toggle.value = "ap"                                          # only run b has AP; higher is better
    assert len(fx.figure.data[0].x) == 0 and list(fx.figure.data[2].y) == pytest.approx(
        [r["ap"] for r in rows_b if r["status"] == "ok"])
    ok_b = [r for r in rows_b if r["status"] == "ok"]
    on_b = pareto_front([r["params"] for r in ok_b], [-r["ap"] for r in ok_b])
    assert len(fx.figure.data[3].x) == int(on_b.sum())
    fx.y_toggle.value = "val_loss"
    fx.x_toggle.value = "macs"

    # a click on candidate 3 of run a: info, ring and the editor shows its genotype
    fx.click(0, 3)
    assert fx.selected == ("a", 3) and editor.spec.genotype == EvoPoseSpec(genotype=tuple(
        map(tuple, rows_a[3]["spec"]["genotype"]))).genotype
    assert [c.value for c in editor.ch8] == [row[2] for row in editor.spec.genotype]
    assert editor.input_hw == (128, 96)                               # from the run's config.json
    assert rows_a[3]["genotype"] in fx.info.value and "4,261,901" not in fx.info.value
    assert list(fx.figure.data[-1].x) == pytest.approx([rows_a[3]["macs"] / 1e9])

    class FakePoints:                                                 # plotly's callback signature
        point_inds = [0]
    fx.on_click(fx.figure.data[2], FakePoints(), None)
    assert fx.selected == ("b", 0) and editor.spec.genotype == ANCESTOR
    assert fx.errors.errors == [] and editor.errors.errors == []

    with pytest.raises(Exception, match="no candidate with id 42"):
        fx.select("a", 42)

    # refresh picks up new lines
    append_jsonl(tmp_path / "a" / "archive.jsonl", _row(50, 3, 0, GENOTYPE_S, 2_496_239, 100_000_000, 0.2))
    fx.refresh()
    assert len(fx.figure.data[0].x) == len(rows_a) + 1
    assert fx.figure.data[1].x[0] == pytest.approx(0.1)              # the new cheapest, best point leads the front


def test_front_explorer_polls_live_and_defaults_to_ap(tmp_path):
    rows = _candidates(n_gen=1)
    for r in rows:
        r["ap"] = 0.5 + 0.01 * r["id"]
    _write_run(tmp_path / "r", rows[:3], [])
    fx = FrontExplorer(tmp_path / "r", poll_seconds=0.05)
    try:
        assert fx.y_toggle.value == "ap" and len(fx.figure.data) == 3   # one run: no "front of all runs"
        append_jsonl(tmp_path / "r" / "archive.jsonl", rows[3])
        t0 = time.monotonic()
        while len(fx.figure.data[0].x) < 4 and time.monotonic() - t0 < 10:
            time.sleep(0.02)
        assert list(fx.figure.data[0].y) == pytest.approx([r["ap"] for r in rows[:4]])
    finally:
        fx.stop()
    assert fx.errors.errors == []


def test_pure_figures_fixed_traces():
    empty = archive_frame([])
    assert [t.name for t in evolution_figure(empty).data] == ["candidates", "best so far", "median", "parents"]
    assert [t.name for t in front_figure(empty, runs=["r"]).data] == ["r", "r front", "selected"]
    df = network_frame(EvoPoseSpec(genotype=GENOTYPE_S), (256, 192))
    assert df["out_ch"].tolist() == [32, 16, 24, 40, 80, 112, 128, 80, 17]
    assert df["cum_stride"].tolist() == [2, 2, 4, 8, 16, 16, 16, 16, 2]
    assert isinstance(df, pd.DataFrame) and df["stage"].iloc[-1] == "head"
