"""EvoPose2D neuroevolution: archive / run-dir schema, fitness, selection, mutation bookkeeping, resume after
crashes (in-process and kill -9), executors, config errors. A tiny genotype on a tiny SynthPose at 64x64."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from posenas_core.errors import ConfigError, PoseNASError
from posenas_core.models.registry import build_model
from posenas_core.runs.io import read_jsonl
from posenas_core.search import candidate
from posenas_core.search import evolution as evo
from posenas_core.cli import main as cli_main
from posenas_core.search.evolution import (
    ARCHIVE_FIELDS,
    GENERATION_FIELDS,
    EvolutionConfig,
    fitness,
    run_evolution,
)
from posenas_core.search.executors import make_executor, ray_available
from posenas_core.spaces.evopose import ANCESTOR, genotype_from_str, genotype_to_str, mutate

REPO = Path(__file__).resolve().parents[2]
# Smallest channels everywhere: ~20k params, ~0.1 s per candidate epoch at 64x64.
TINY = "k3b1c1s1-k3b1c1s2-k3b1c1s2-k3b1c1s2-k3b1c1s1-k3b1c1s2-k3b1c1s1"


class Crash(BaseException):
    """A simulated kill: not an Exception, so the evolution does not record it as a failed candidate."""


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    from posenas_core.data.synthpose import write_synthpose

    d = tmp_path_factory.mktemp("synth") / "sp"
    write_synthpose(d, 16, 6, 0, seed=0, progress=False)
    return d


def make_cfg(data_dir, **kw) -> EvolutionConfig:
    base = dict(data_dir=str(data_dir), input_size=(64, 64), lam=2, mu=1, generations=2, e0=2, e=1, ancestor=TINY,
                spec_overrides={"head_channels": 16}, batch_size=8, base_lr=1e-2, seed=3, max_train_samples=16,
                max_val_images=5)
    base.update(kw)
    return EvolutionConfig(**base)


def strip(rows):
    return [{k: v for k, v in r.items() if k != "wall_time_s"} for r in rows]


def run_files(run_dir):
    return strip(read_jsonl(run_dir / "archive.jsonl")), strip(read_jsonl(run_dir / "generations.jsonl"))


@pytest.fixture(scope="module")
def reference(data_dir, tmp_path_factory):
    """One uninterrupted run: (run dir, config, archive rows, generation rows, summary)."""
    run = tmp_path_factory.mktemp("evo") / "ref"
    cfg = make_cfg(data_dir)
    summary = run_evolution(cfg, run, progress=False)
    return run, cfg, read_jsonl(run / "archive.jsonl"), read_jsonl(run / "generations.jsonl"), summary


# --------------------------------------------------------------------------------------- schema


def test_archive_generations_and_run_dir_schema(reference):
    run, cfg, rows, gens, summary = reference
    assert [r["id"] for r in rows] == [0, 1, 2, 3, 4]
    assert [r["generation"] for r in rows] == [0, 1, 1, 2, 2]
    for r in rows:
        assert set(r) == set(ARCHIVE_FIELDS)
        assert r["status"] == "ok" and r["error"] is None and r["ap"] is None
        assert r["spec"]["kind"] == "evopose2d" and genotype_to_str(r["spec"]["genotype"]) == r["genotype"]
        assert r["epochs"] == (2 if r["id"] == 0 else 1)
        assert r["wall_time_s"] > 0 and r["macs"] > 0 and 0 < r["params"] < r["params_with_bn_stats"]
        model = build_model(cfg.spec_for(genotype_from_str(r["genotype"])))
        from posenas_core.eval.profiler import count_macs, count_params

        assert count_params(model) == {"params": r["params"], "params_with_bn_stats": r["params_with_bn_stats"]}
        assert count_macs(model, (64, 64)) == r["macs"]
        cdir = run / "candidates" / str(r["id"])
        assert (cdir / "best.pt").is_file() and (cdir / "result.json").is_file()
        assert json.loads((cdir / "result.json").read_text()) == r
        assert not (cdir / "checkpoints").exists()          # last.pt (optimizer state) dropped when finished
        if r["id"]:
            t = json.loads((cdir / "transfer.json").read_text())
            assert t["parent"] == r["parent"] and t["copied"] > 0
    assert rows[0]["parent"] is None and rows[0]["mutation"] is None
    assert [g["generation"] for g in gens] == [0, 1, 2]
    for g in gens:
        assert set(g) == set(GENERATION_FIELDS) and len(g["parents"]) == 1
        assert g["best_id"] == g["parents"][0] and g["best_fitness"] == rows[g["best_id"]]["fitness"]
        ids = [0] if g["generation"] == 0 else [1 + (g["generation"] - 1) * 2 + j for j in range(2)]
        assert g["population_fitness"] == [rows[i]["fitness"] for i in ids]
    stored = json.loads((run / "config.json").read_text())
    assert stored["kind"] == "evopose2d-evolution" and stored["ancestor"] == TINY
    assert EvolutionConfig.from_dict(stored) == cfg
    # best/ export: the best candidate's spec and best-epoch weights load into a fresh model
    best_id = gens[-1]["best_id"]
    metrics = json.loads((run / "best" / "metrics.json").read_text())
    assert metrics["id"] == best_id == summary["best"]["id"] and metrics["input_size"] == [64, 64]
    from posenas_core.genotype import spec_from_dict
    from posenas_core.train.checkpoints import load_checkpoint

    spec = spec_from_dict(json.loads((run / "best" / "spec.json").read_text()))
    model = build_model(spec)
    model.load_state_dict(torch.load(run / "best" / "weights.pt", weights_only=True))
    ref_model, _ = load_checkpoint(run / "candidates" / str(best_id) / "best.pt")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), ref_model.state_dict().values()))


# --------------------------------------------------------------------------------------- fitness


def test_fitness_formula_by_hand():
    assert fitness(0.5, 2_500_000, 5e6, -0.07) == pytest.approx(0.47631899902196867, rel=1e-12)  # 0.5 * 2**-0.07
    assert fitness(0.5, 5_000_000, 5e6, -0.07) == pytest.approx(0.5, rel=1e-15)                 # n == T: J == L
    assert fitness(0.5, 10_000_000, 5e6, -0.07) > 0.5 > fitness(0.5, 1_000_000, 5e6, -0.07)  # big penalised
    assert fitness(2.0, 1e6, 5e6, 0.0) == 2.0


def test_archive_fitness_and_val_loss_against_an_independent_computation(reference, data_dir):
    run, cfg, rows, _, _ = reference
    for r in rows:
        assert r["fitness"] == pytest.approx(r["val_loss"] * (5e6 / r["params_with_bn_stats"]) ** -0.07, rel=1e-12)
    # L is the best validation loss over the epochs (the trainer's log) ...
    vals = [m["val"]["loss"] for m in read_jsonl(run / "candidates" / "0" / "metrics.jsonl") if "val" in m]
    assert len(vals) == 2 and rows[0]["val_loss"] == min(vals)
    # ... and equals the masked heatmap MSE of the stored best checkpoint, recomputed item by item
    from posenas_core.pipeline import load_split, make_dataset
    from posenas_core.train.checkpoints import load_checkpoint
    from posenas_core.train.steps import heatmap_mse

    val = load_split(data_dir, "val", train=True)           # persons with >= 1 labelled joint
    first5 = set(sorted(im["id"] for im in val.coco["images"])[:5])
    val.records = [p for p in val.records if p.image_id in first5]
    for r in (rows[0], rows[3]):
        model, _ = load_checkpoint(run / "candidates" / str(r["id"]) / "best.pt")
        ds = make_dataset(val, (64, 64), train=False, stride=model.spec.output_stride)
        with torch.no_grad():
            losses = [float(heatmap_mse(model(torch.as_tensor(it["image"])[None]),
                                        torch.as_tensor(it["target"])[None],
                                        torch.as_tensor(it["target_weight"])[None])) for it in ds]
        assert len(losses) == len(ds) > 0
        assert r["val_loss"] == pytest.approx(float(np.mean(losses)), rel=1e-5)


def test_params_metric_trainable_only_and_ap(reference, tmp_path):
    _, cfg, rows, _, _ = reference
    cfg2 = make_cfg(cfg.data_dir, params_metric="params", e0=1, compute_ap=True)
    row = candidate.evaluate_candidate(cfg2.to_dict(), str(tmp_path), {"id": 0, "generation": 0, "parent": None,
                                                                       "genotype": TINY, "mutation": None})
    assert row["status"] == "ok" and row["params"] == rows[0]["params"] and row["epochs"] == 1
    assert row["fitness"] == pytest.approx(row["val_loss"] * (5e6 / row["params"]) ** -0.07, rel=1e-12)
    assert isinstance(row["ap"], float) and 0.0 <= row["ap"] <= 1.0


# --------------------------------------------------------------------------------------- selection, mutation


def test_select_parents_keeps_the_mu_best_and_skips_failures():
    rows = {0: {"status": "ok", "fitness": 0.30}, 1: {"status": "ok", "fitness": 0.10},
            2: {"status": "failed", "fitness": None}, 3: {"status": "ok", "fitness": 0.20},
            4: {"status": "ok", "fitness": 0.10}, 5: {"status": "ok", "fitness": float("nan")}}
    assert evo.select_parents(rows, [0, 1, 2, 3, 4, 5], 2) == [1, 4]          # tie broken by id
    assert evo.select_parents(rows, [0, 1, 2, 3, 4, 5], 3) == [1, 4, 3]
    assert evo.select_parents(rows, [0, 2, 3], 5) == [3, 0]                   # fewer than mu eligible
    with pytest.raises(PoseNASError, match="all failed"):
        evo.select_parents(rows, [2, 5], 1)
    # the ancestor joins the pool only with keep_ancestor; no duplicates
    assert evo.selection_pool([3, 1], [5, 6], True) == [3, 1, 5, 6, 0]
    assert evo.selection_pool([3, 1], [5, 6], False) == [3, 1, 5, 6]
    assert evo.selection_pool([0, 1], [5, 6], True) == [0, 1, 5, 6]
    assert evo.select_parents(rows, evo.selection_pool([3], [4], True), 1) == [4]
    rows[0]["fitness"] = 0.01
    assert evo.select_parents(rows, evo.selection_pool([3], [4], True), 1) == [0]
    assert evo.select_parents(rows, evo.selection_pool([3], [4], False), 1) == [4]
    assert evo.assign_parents([7, 9], 4) == [7, 7, 9, 9] and evo.assign_parents([7], 3) == [7, 7, 7]


def test_run_selection_matches_a_hand_selection(reference):
    _, cfg, rows, gens, _ = reference
    by_id = {r["id"]: r for r in rows}
    parents = [0]
    for g in gens[1:]:
        children = [r["id"] for r in rows if r["generation"] == g["generation"]]
        assert all(by_id[c]["parent"] in parents for c in children)
        pool = set(parents) | set(children) | {0}
        parents = sorted(pool, key=lambda i: (by_id[i]["fitness"], i))[:cfg.mu]
        assert g["parents"] == parents


def test_children_are_single_gene_mutations_never_repeated_and_reproducible(reference):
    _, cfg, rows, _, _ = reference
    genos = [genotype_from_str(r["genotype"]) for r in rows]
    assert len(set(genos)) == len(genos)
    for k, r in enumerate(rows[1:], start=1):
        parent = genotype_from_str(rows[r["parent"]]["genotype"])
        diff = [(i, j) for i in range(7) for j in range(4) if parent[i][j] != genos[k][i][j]]
        assert len(diff) == 1 and r["mutation"] == evo.describe_mutation(parent, genos[k])
        assert r["mutation"].startswith(f"module {diff[0][0] + 1} ")
        # the draw depends only on (seed, generation, index) and what was sampled before this child
        j = (r["id"] - 1) % cfg.lam
        again = mutate(parent, evo.mutation_rng(cfg.seed, r["generation"], j), set(genos[:k]))
        assert again == genos[k]
    assert evo.describe_mutation(ANCESTOR, ANCESTOR[:2] + ((3, 2, 5, 2),) + ANCESTOR[3:]) == "module 3 kernel 5->3"
    assert evo.train_seed(3, 1) == evo.train_seed(3, 1) != evo.train_seed(3, 2)


# --------------------------------------------------------------------------------------- resume


def test_resume_after_a_crash_between_candidates(reference, tmp_path):
    run_ref, cfg, _, _, _ = reference
    run = tmp_path / "r"

    def crash_after_2(row):
        if row["id"] == 2:
            raise Crash

    cfg = dataclasses.replace(cfg, keep_checkpoints="pool")  # changes what stays on disk, not the results
    with pytest.raises(Crash):
        run_evolution(cfg, run, progress=False, on_candidate=crash_after_2)
    assert len(read_jsonl(run / "archive.jsonl")) == 3
    trained = []
    summary = run_evolution(cfg, run, resume=True, progress=False, on_validation=lambda cid, loss: trained.append(cid))
    assert trained == [3, 4]                                 # nothing finished is retrained
    assert run_files(run) == run_files(run_ref)
    assert summary["best"]["id"] == reference[4]["best"]["id"]
    kept = {int(p.parent.name) for p in (run / "candidates").glob("*/best.pt")}
    assert kept == set(summary["parents"]) | {0}


def test_resume_a_half_trained_candidate_from_its_checkpoint(reference, tmp_path):
    run_ref, cfg, _, _, _ = reference
    run = tmp_path / "r"
    calls = []

    def crash_in_second_validation(cid, loss):
        calls.append(cid)
        if calls == [0, 0]:                                  # the ancestor's epoch 2, before its checkpoint
            raise Crash

    with pytest.raises(Crash):
        run_evolution(cfg, run, progress=False, on_validation=crash_in_second_validation)
    last = torch.load(run / "candidates" / "0" / "checkpoints" / "last.pt", weights_only=True)
    assert last["epoch"] == 1 and read_jsonl(run / "archive.jsonl") == []
    trained = []
    evo.resume(run, progress=False, on_validation=lambda cid, loss: trained.append(cid))
    assert trained == [0, 1, 2, 3, 4]                        # the ancestor only redid its 2nd epoch
    assert run_files(run) == run_files(run_ref)


def test_resume_repairs_a_torn_archive_line_and_appends_finished_results(reference, tmp_path):
    run_ref, cfg, _, _, _ = reference
    run = tmp_path / "r"
    shutil.copytree(run_ref, run)
    lines = (run / "archive.jsonl").read_text().splitlines(keepends=True)
    (run / "archive.jsonl").write_text("".join(lines[:2]) + lines[2][:25])   # torn write of row 2
    (run / "generations.jsonl").write_text((run / "generations.jsonl").read_text().splitlines(keepends=True)[0])
    trained = []
    evo.resume(run, progress=False, on_validation=lambda cid, loss: trained.append(cid))
    assert trained == []                                     # rows 2-4 came from candidates/<id>/result.json
    assert (run / "archive.jsonl").read_text() == (run_ref / "archive.jsonl").read_text()
    assert run_files(run) == run_files(run_ref)


def test_kill_9_then_resume_gives_the_uninterrupted_archive(reference, tmp_path):
    run_ref, cfg, _, _, _ = reference
    run = tmp_path / "r"
    cfg_file = tmp_path / "cfg.json"
    cfg_file.write_text(json.dumps(cfg.to_dict()))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "posenas_core.cli", "evolve", "run", "--config", str(cfg_file),
                             "--out", str(run), "--quiet"], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.time() + 60
    try:
        while time.time() < deadline and proc.poll() is None:
            if len(read_jsonl(run / "archive.jsonl")) >= 2:  # mid-run: the ancestor and one child are done
                break
            time.sleep(0.02)
        assert proc.poll() is None, f"the run ended before the kill: {proc.stderr.read().decode()[-2000:]}"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert len(read_jsonl(run / "archive.jsonl")) < 5
    assert cli_main(["evolve", "resume", str(run), "--quiet"]) == 0
    assert run_files(run) == run_files(run_ref)


def test_resumed_run_can_be_extended_but_not_changed(reference, tmp_path, capsys):
    run_ref, cfg, rows, _, _ = reference
    run = tmp_path / "r"
    shutil.copytree(run_ref, run)
    with pytest.raises(ConfigError, match=r"gamma: stored -0\.07, given -0\.04"):
        run_evolution(make_cfg(cfg.data_dir, gamma=-0.04), run, resume=True, progress=False)
    with pytest.raises(ConfigError, match="already holds an evolution run"):
        run_evolution(cfg, run, progress=False)
    with pytest.raises(ConfigError, match="extended, not shortened"):
        run_evolution(make_cfg(cfg.data_dir, generations=1), run, resume=True, progress=False)
    out = evo.resume(run, generations=3, progress=False)
    new = read_jsonl(run / "archive.jsonl")
    assert strip(new[:5]) == strip(rows) and [r["generation"] for r in new[5:]] == [3, 3]
    assert out["candidates"] == 7 and json.loads((run / "config.json").read_text())["generations"] == 3
    assert cli_main(["evolve", "resume", str(tmp_path / "nothing")]) == 2 and "no config.json" in capsys.readouterr().err


# --------------------------------------------------------------------------------------- executors


@pytest.mark.skipif(not ray_available(), reason="ray is not installed in this environment")
def test_ray_executor_writes_the_sequential_archive(reference, tmp_path):
    run_ref, cfg, _, _, _ = reference
    run_evolution(cfg, tmp_path / "r", executor="ray", ray_num_cpus=2, ray_object_store_mb=100, progress=False)
    assert run_files(tmp_path / "r") == run_files(run_ref)


def test_executor_errors():
    with pytest.raises(ConfigError, match="unknown; allowed"):
        make_executor("gpu")
    with pytest.raises(ConfigError, match="executor is 'sequential'"):
        make_executor("sequential", num_cpus=2)
    if not ray_available():
        with pytest.raises(ConfigError, match="needs the ray package"):
            make_executor("ray")
    ex = make_executor("sequential")
    assert list(ex.map(lambda a, b: a * b, [(1, 2), (3, 4)])) == [2, 12]


# --------------------------------------------------------------------------------------- config errors


@pytest.mark.parametrize("kw, match", [
    ({"lam": 6, "mu": 4}, "lam = 6 is not a multiple of mu = 4"),
    ({"input_size": (64, 48)}, "input_size"),
    ({"input_size": "60x64"}, "multiples of 32"),
    ({"gamma": "x"}, "gamma = 'x' is invalid"),
    ({"gamma": float("nan")}, "gamma"),
    ({"target_params": 0}, "target_params"),
    ({"params_metric": "flops"}, "params_metric = 'flops' is invalid"),
    ({"ancestor": "k3b1c1s1"}, "ancestor: .*has 1 modules; expected 7"),
    ({"ancestor": TINY.replace("k3b1c1s1", "k4b1c1s1", 1)}, "ancestor: .*module 1.*kernel"),
    ({"spec_overrides": {"depth": 2}}, r"spec_overrides: unknown field\(s\) \['depth'\]"),
    ({"spec_overrides": {"bn": "tf"}}, "spec_overrides: .*bn"),
    ({"aug": {"flip": 0.5}}, r"aug: unknown field\(s\) \['flip'\]"),
    ({"warmup_epochs": 2.0}, r"warmup_epochs = 2.0 is invalid; allowed: a number in \[0, min\(e0, e\) = 1\]"),
    ({"e": 0}, "EvolutionConfig.e = 0"),
    ({"child_lr": 0}, r"child_lr = 0 is invalid; allowed: null \(the children use base_lr\) or a number > 0"),
    ({"keep_ancestor": 1}, "keep_ancestor = 1 is invalid; allowed: true or false"),
    ({"max_val_images": 0}, "max_val_images"),
    ({"keep_checkpoints": "some"}, "keep_checkpoints"),
])
def test_config_errors_name_the_field(kw, match, tmp_path):
    with pytest.raises(ConfigError, match=match):
        make_cfg(tmp_path, **kw)


def test_children_train_at_child_lr_and_the_ancestor_at_base_lr(data_dir, tmp_path):
    cfg = make_cfg(data_dir, generations=1, lam=1, mu=1, child_lr=1e-3)
    run_evolution(cfg, tmp_path / "run", progress=False)

    def peak_lr(cid):
        rows = read_jsonl(tmp_path / "run" / "candidates" / str(cid) / "metrics.jsonl")
        return max(r["lr"] for r in rows if "lr" in r)

    scale = cfg.batch_size / 32                                  # lr = base lr x batch / 32
    assert peak_lr(1) == pytest.approx(1e-3 * scale) and peak_lr(0) == pytest.approx(1e-2 * scale)


def test_config_round_trip_and_data_errors(data_dir, tmp_path):
    cfg = make_cfg(data_dir)
    assert EvolutionConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['lambda'\]"):
        EvolutionConfig.from_dict({**cfg.to_dict(), "lambda": 4})
    with pytest.raises(ConfigError, match="'data_dir' is required"):
        EvolutionConfig.from_dict({"lam": 2})
    with pytest.raises(ConfigError, match="fewer than batch_size = 32"):
        run_evolution(make_cfg(data_dir, batch_size=32), tmp_path / "r", progress=False)
    from posenas_core.errors import DataError

    with pytest.raises(DataError, match="annotation file not found"):
        run_evolution(make_cfg(tmp_path / "missing"), tmp_path / "r2", progress=False)
    assert not (tmp_path / "r").exists() or not (tmp_path / "r" / "archive.jsonl").exists()
    with pytest.raises(ConfigError, match="only with executor='sequential'"):
        run_evolution(cfg, tmp_path / "r3", executor="ray", on_validation=print, progress=False)
    with pytest.raises(ConfigError, match="no config.json"):
        evo.resume(tmp_path / "nowhere")
    assert evo.candidate_id(3, 1, 4) == 10 and evo.candidate_id(0, 0, 4) == 0


# --------------------------------------------------------------------------------------- data errors


def test_images_are_checked_before_an_evolution_writes_anything(data_dir, tmp_path):
    from posenas_core.errors import DataError

    data = tmp_path / "sp"
    shutil.copytree(data_dir, data)
    cfg = make_cfg(data)
    r = candidate.load_data(cfg)["train"].records[0]
    (data / "images" / r.file_name).write_bytes(b"")
    with pytest.raises(DataError, match=rf"person_keypoints_train.json: image id {r.image_id} \(annotation id \d+\) "
                                        rf"file_name '{r.file_name}' is empty"):
        run_evolution(cfg, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_a_data_error_while_a_candidate_trains_is_not_recorded_and_resume_continues_after_the_fix(
        data_dir, tmp_path, capsys):
    data, run, moved = tmp_path / "sp", tmp_path / "run", tmp_path / "moved"
    shutil.copytree(data_dir, data)
    cfg = make_cfg(data, generations=1)
    seen = []

    def break_the_data_after_the_ancestor(cid, loss):
        seen.append(cid)
        if seen.count(0) == cfg.e0:            # the ancestor's last validation: its training is done
            (data / "images" / "train").rename(moved)

    from posenas_core.errors import DataError

    with pytest.raises(DataError) as e:
        run_evolution(cfg, run, progress=False, on_validation=break_the_data_after_the_ancestor)
    msg = str(e.value)
    assert msg.startswith(f"candidate 1 (generation 1): image file not found: {data / 'images' / 'train'}")
    assert f"fix the data, then `posenas evolve resume {run}` continues it" in msg
    rows = read_jsonl(run / "archive.jsonl")
    assert [(r["id"], r["status"]) for r in rows] == [(0, "ok")]      # candidate 1 is not recorded as failed
    assert not (run / "candidates" / "1" / "result.json").exists()

    # resuming before the fix: refused by the image check, in one line naming an image; nothing changes
    assert cli_main(["evolve", "resume", str(run), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("posenas evolve: error: person_keypoints_train.json: image id ") and "not found" in err
    assert len(err.splitlines()) == 1 and read_jsonl(run / "archive.jsonl") == rows

    moved.rename(data / "images" / "train")
    assert cli_main(["evolve", "resume", str(run), "--quiet"]) == 0
    rows = read_jsonl(run / "archive.jsonl")
    assert [(r["id"], r["status"]) for r in rows] == [(0, "ok"), (1, "ok"), (2, "ok")]
    assert json.loads(capsys.readouterr().out)["candidates"] == 3
