"""EvoPose2D's (mu + lambda) neuroevolution with weight transfer (paper Sec. IV, public code `ga.py`).

    cfg = EvolutionConfig(data_dir="data/synthpose", input_size=(128, 96), lam=8, mu=2, generations=4)
    summary = run_evolution(cfg, "runs/evo1")                  # executor="ray" evaluates children in parallel
    summary = resume("runs/evo1")                              # after a kill -9: continues where it stopped

Algorithm (reference/evopose2d.md Sec. 3):
- Generation 0 trains the ancestor (`spaces.evopose.ANCESTOR`) `e0` epochs from scratch (no ImageNet here).
- Generation g >= 1: the parents, best first, each get lam / mu children (child j of generation g has the
  parent `parents[j * P // lam]`, P = number of parents; all children of generation 1 come from the
  ancestor). A child is `config.space.mutate(parent spec, rng, seen)` (`spaces.evopose.EvoPoseSpace`): one
  gene changed, never a genotype sampled before in the run; `rng = default_rng([seed, g, j])`, so any child's genotype is a pure function of the
  run's seed, its position and the selection so far, independent of the order children are trained in.
  The child's weights come from its parent's best checkpoint (`search.transfer.transfer_weights`), then
  it trains `e` epochs.
- Fitness (lower is better): J = L * (T / n) ** gamma, L the best validation loss over the candidate's
  epochs, n its parameter count, T = 5e6, gamma = -0.07 (experiment E3). n is Keras `count_params()` by
  default ("params_with_bn_stats": trainable + BN moving mean / variance), which is what the paper's
  fitness used; "params" counts the trainable ones only.
- Selection: the mu best (fitness, then id) of current parents + this generation's children, plus the
  ancestor when `keep_ancestor` (the public code never deletes generation 0's weights, so the ancestor
  stays eligible forever). Failed candidates are never selected. The best candidate so far is always
  the first parent (elitist), exported to run_dir/best/ after every generation.

Candidates (`search.candidate`) are built unscaled, as searched in the paper (`spaces.evopose.scaled_spec`
scales the result). Candidate `id` trains with seed `train_seed(seed, id)` and `torch_threads` threads, so
the sequential and Ray executors write the same archive (apart from wall times), and so does a run killed
and resumed any number of times. They train on `device` (cpu | cuda | cuda:N | auto), which a resume may change.

Run directory (the contract with the lab widgets):
    config.json              EvolutionConfig.to_dict() (with "kind": "evopose2d-evolution")
    archive.jsonl            one row per evaluated candidate, appended in id order (ARCHIVE_FIELDS)
    generations.jsonl        one row per finished generation (GENERATION_FIELDS); best_id / best_fitness
                             are those of the best candidate so far (= the first parent)
    candidates/<id>/         one candidate's checkpoint, result and training logs (`search.candidate`)
    best/                    spec.json, weights.pt (state dict), metrics.json (its archive row + input size)
Candidate ids: 0 is the ancestor, child j of generation g is 1 + (g - 1) * lam + j.

Resume: archive rows are never recomputed; a finished candidate not yet appended is appended without
training; a half-trained one continues from its last checkpoint. A torn last jsonl line is dropped.
Data errors are found before anything is written, or stop the run unrecorded: resume after the fix.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from posenas_core.data.annotations import is_int, is_number
from posenas_core.data.transforms import aug_config_from
from posenas_core.errors import ConfigError, DataError, PoseNASError, SpecError
from posenas_core.machine import DEVICES, resolve_device
from posenas_core.runs.io import append_jsonl, atomic_write_json, read_jsonl
from posenas_core.search.candidate import candidate_dir, check_data, evaluate_candidate, export_best
from posenas_core.spaces.evopose import (
    ANCESTOR,
    COLUMNS,
    EvoPoseSpace,
    EvoPoseSpec,
    genotype_from_str,
    genotype_to_str,
    validate_genotype,
)

__all__ = [
    "KIND", "ARCHIVE_FIELDS", "GENERATION_FIELDS", "PARAMS_METRICS", "EvolutionConfig", "fitness", "candidate_id",
    "train_seed", "mutation_rng", "describe_mutation", "assign_parents", "plan_children", "selection_pool",
    "select_parents", "run_evolution", "resume",
]

KIND = "evopose2d-evolution"
ARCHIVE_FIELDS = ("id", "generation", "parent", "genotype", "spec", "params", "params_with_bn_stats", "macs",
                  "val_loss", "fitness", "ap", "epochs", "wall_time_s", "status", "error", "mutation")
GENERATION_FIELDS = ("generation", "parents", "best_id", "best_fitness", "population_fitness", "wall_time_s")
PARAMS_METRICS = ("params_with_bn_stats", "params")
KEEP_CHECKPOINTS = ("all", "pool")
RESUMABLE_CHANGES = ("generations", "device")   # config fields a resume may change (extend the run, move it)


# ---------------------------------------------------------------------------------------------
# configuration


@dataclasses.dataclass(frozen=True)
class EvolutionConfig:
    """One neuroevolution run. Defaults are CPU-sized; E3's values are in the comments."""

    data_dir: str                                   # COCO-format dataset with train and val splits (SynthPose)
    input_size: tuple = (128, 96)                   # network input (H, W), multiples of 32 (E3: 256x192)
    lam: int = 8                                    # children per generation, lambda (E3: 64)
    mu: int = 2                                     # parents, mu; lam % mu == 0 (E3: 4)
    generations: int = 4                            # generations after generation 0
    e0: int = 6                                     # ancestor epochs (E3: 30, from ImageNet weights)
    e: int = 2                                      # child epochs after weight transfer (E3: 5)
    gamma: float = -0.07                            # fitness exponent Gamma (E1: -0.04, E2/E3: -0.07)
    target_params: float = 5e6                      # T: the parameter count where J == L
    keep_ancestor: bool = True                      # the ancestor stays in the selection pool (public code)
    ancestor: tuple = ANCESTOR                      # generation 0's genotype (JSON: short string)
    spec_overrides: dict = dataclasses.field(default_factory=dict)  # other EvoPoseSpec fields, e.g. {"bn": "keras"}
    batch_size: int = 32                            # (E3: 512)
    base_lr: float = 1e-3                           # Adam lr at batch 32, x batch/32 (E3: 2.5e-4 x 512/32)
    child_lr: float | None = None                   # the children's lr at batch 32 (None: base_lr, as E3)
    warmup_epochs: float = 0.5                      # per-candidate linear warm-up (E3: 0; see the ablation bench)
    min_lr_ratio: float = 0.0                       # cosine decays to this x lr (E3: 0)
    weight_decay: float = 0.0                       # L2 on conv kernels (E3: Keras l2 1e-5 ~ 2e-5 here)
    aug: dict = dataclasses.field(default_factory=lambda: {"rotation_prob": 0.0, "scale_factor": 0.0})
                                                    # AugConfig fields; default E3's: horizontal flip only
    sigma: float | None = None                      # heatmap sigma (None: pipeline.heatmap_sigma's rule)
    seed: int = 0                                   # mutations, training seeds and the train subset derive from it
    kernel_transfer: bool = True                    # transfer depthwise kernels on kernel-only mutations too
    new_blocks: str = "copy"                        # a new block: "copy" the module's last block (paper) or
                                                    #   "identity" (copy, projection BN zeroed: function-preserving)
    params_metric: str = "params_with_bn_stats"     # n in the fitness: Keras count_params (paper) | "params"
    compute_ap: bool = False                        # COCO AP of each candidate's best checkpoint (costs time)
    max_train_samples: int | None = None            # random subset of the training persons (fixed per run)
    max_val_images: int | None = None               # the first N val images (by id) for loss and AP
    val_batch_size: int = 32
    torch_threads: int = 1                          # intra-op threads per candidate (results depend on it)
    channels_last: bool = True                      # memory format of the candidates (faster on CPUs)
    ckpt_every_steps: int | None = 200              # mid-epoch checkpoints of a candidate (None: epoch ends)
    keep_checkpoints: str = "all"                   # "all" | "pool": delete best.pt of unselectable candidates
    device: str = "cpu"                             # "cpu" | "cuda" | "cuda:N" | "auto" (CUDA when present)

    def __post_init__(self):
        o = type(self).__name__

        def bad(name, allowed, value=None):
            v = getattr(self, name) if value is None else value
            raise ConfigError(f"{o}.{name} = {v!r} is invalid; allowed: {allowed}")

        def need_int(name, lo, allow_none=False):
            v = getattr(self, name)
            if v is None and allow_none:
                return
            if not is_int(v) or v < lo:
                bad(name, f"{'null or ' if allow_none else ''}an integer >= {lo}")
            object.__setattr__(self, name, int(v))

        def need_num(name, ok, allowed):
            v = getattr(self, name)
            if not is_number(v) or not math.isfinite(v) or not ok(v):
                bad(name, allowed)
            object.__setattr__(self, name, float(v))

        if not isinstance(self.data_dir, (str, Path)) or not str(self.data_dir):
            bad("data_dir", "a dataset directory path (str)")
        object.__setattr__(self, "data_dir", str(self.data_dir))
        hw = self.input_size
        if isinstance(hw, str):
            from posenas_core.pipeline import parse_input_size

            try:
                hw = parse_input_size(hw)
            except ConfigError as err:
                raise ConfigError(f"{o}.input_size: {err}") from None
        if (not isinstance(hw, (tuple, list)) or len(hw) != 2 or not all(is_int(v) for v in hw)
                or any(v <= 0 or v % 32 for v in hw)):
            bad("input_size", "(H, W) or 'HxW', positive multiples of 32 (the network stride is up to 32)")
        object.__setattr__(self, "input_size", (int(hw[0]), int(hw[1])))
        for name, lo in (("lam", 1), ("mu", 1), ("generations", 0), ("e0", 1), ("e", 1), ("batch_size", 1),
                         ("seed", 0), ("val_batch_size", 1), ("torch_threads", 1)):
            need_int(name, lo)
        if self.lam % self.mu:
            raise ConfigError(f"{o}: lam = {self.lam} is not a multiple of mu = {self.mu}; every parent gets lam / mu "
                              f"children (e.g. lam = {self.mu * max(1, self.lam // self.mu)})")
        for name in ("max_train_samples", "max_val_images", "ckpt_every_steps"):
            need_int(name, 1, allow_none=True)
        need_num("gamma", lambda v: True, "a finite number (the paper's Gamma is negative, e.g. -0.07)")
        need_num("target_params", lambda v: v > 0, "a number > 0 (the paper's T = 5e6)")
        need_num("base_lr", lambda v: v > 0, "a number > 0")
        if self.child_lr is not None:
            need_num("child_lr", lambda v: v > 0, "null (the children use base_lr) or a number > 0")
        need_num("warmup_epochs", lambda v: 0 <= v <= min(self.e0, self.e),
                 f"a number in [0, min(e0, e) = {min(self.e0, self.e)}]")
        need_num("min_lr_ratio", lambda v: 0 <= v <= 1, "a number in [0, 1]")
        need_num("weight_decay", lambda v: v >= 0, "a number >= 0")
        if self.sigma is not None:
            need_num("sigma", lambda v: v > 0, "null or a number > 0 (heatmap pixels)")
        if self.new_blocks not in ("copy", "identity"):
            bad("new_blocks", "'copy' or 'identity'")
        for name in ("keep_ancestor", "kernel_transfer", "compute_ap", "channels_last"):
            if not isinstance(getattr(self, name), bool):
                bad(name, "true or false")
        if not isinstance(self.device, str) or not (self.device in DEVICES or self.device[5:].isdigit()
                                                    and self.device.startswith("cuda:")):
            bad("device", "'cpu', 'cuda', 'cuda:N' or 'auto' (CUDA when present)")
        if self.params_metric not in PARAMS_METRICS:
            bad("params_metric", f"one of {list(PARAMS_METRICS)} ('params_with_bn_stats' is Keras count_params, "
                                 f"the paper's)")
        if self.keep_checkpoints not in KEEP_CHECKPOINTS:
            bad("keep_checkpoints", f"one of {list(KEEP_CHECKPOINTS)}")
        try:
            g = genotype_from_str(self.ancestor) if isinstance(self.ancestor, str) else validate_genotype(self.ancestor)
        except SpecError as err:
            raise ConfigError(f"{o}.ancestor: {err}") from None
        object.__setattr__(self, "ancestor", g)
        if not isinstance(self.spec_overrides, dict):
            bad("spec_overrides", "a mapping of EvoPoseSpec fields (not 'genotype')")
        allowed = sorted(f.name for f in dataclasses.fields(EvoPoseSpec) if f.name != "genotype")
        unknown = sorted(set(self.spec_overrides) - set(allowed))
        if unknown:
            raise ConfigError(f"{o}.spec_overrides: unknown field(s) {unknown}; allowed: {allowed}")
        object.__setattr__(self, "spec_overrides", dict(self.spec_overrides))
        try:
            self.spec_for(self.ancestor)
        except SpecError as err:
            raise ConfigError(f"{o}.spec_overrides: {err}") from None
        if not isinstance(self.aug, dict):
            bad("aug", "a mapping of AugConfig fields")
        aug_config_from(self.aug, f"{o}.aug")
        object.__setattr__(self, "aug", dict(self.aug))

    # -- derived ----------------------------------------------------------------------------------
    def spec_for(self, genotype) -> EvoPoseSpec:
        """The unscaled network of a genotype with this run's fixed parts (`spec_overrides`)."""
        return EvoPoseSpec(genotype=validate_genotype(genotype), **self.spec_overrides)

    @property
    def space(self) -> EvoPoseSpace:
        """The search space: every genotype, with this run's fixed parts (`spec_overrides`)."""
        return EvoPoseSpace(**self.spec_overrides)

    @property
    def num_candidates(self) -> int:
        return 1 + self.generations * self.lam

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["input_size"] = list(self.input_size)
        d["ancestor"] = genotype_to_str(self.ancestor)
        return {"kind": KIND, **d}

    @classmethod
    def from_dict(cls, d: dict) -> "EvolutionConfig":
        if not isinstance(d, dict):
            raise ConfigError(f"EvolutionConfig: expected a JSON object, got {type(d).__name__}")
        d = dict(d)
        kind = d.pop("kind", KIND)
        if kind != KIND:
            raise ConfigError(f"EvolutionConfig: kind = {kind!r}; expected {KIND!r}")
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(d) - set(names))
        if unknown:
            raise ConfigError(f"EvolutionConfig: unknown key(s) {unknown}; allowed: {names}")
        if "data_dir" not in d:
            raise ConfigError("EvolutionConfig: 'data_dir' is required (a COCO-format dataset directory)")
        return cls(**d)


# ---------------------------------------------------------------------------------------------
# the pure parts of the algorithm


def fitness(val_loss: float, n_params: int, target_params: float = 5e6, gamma: float = -0.07) -> float:
    """J = L * (T / n) ** gamma (paper Eq. 3, `ga.py`); lower is better. With gamma < 0 networks larger than
    T are penalised (J > L), smaller ones rewarded."""
    return float(val_loss) * (float(target_params) / float(n_params)) ** float(gamma)


def candidate_id(generation: int, index: int, lam: int) -> int:
    """0 for the ancestor (generation 0); 1 + (generation - 1) * lam + index for child `index` of a generation."""
    return 0 if generation == 0 else 1 + (generation - 1) * lam + index


def mutation_rng(seed: int, generation: int, index: int) -> np.random.Generator:
    """The generator of child `index` of `generation`'s mutation (independent of the execution order)."""
    return np.random.default_rng([int(seed), int(generation), int(index)])


def train_seed(seed: int, cid: int) -> int:
    """Training seed of candidate `cid` (a 32-bit int, a pure function of the run's seed and the id)."""
    return int(np.random.SeedSequence([int(seed), 0x7EA1, int(cid)]).generate_state(1, dtype=np.uint32)[0])


def describe_mutation(parent, child) -> str:
    """e.g. 'module 3 kernel 5->3' (1-based module, gene names `spaces.evopose.COLUMNS`)."""
    changes = [f"module {i + 1} {gene} {a}->{b}" for i, (pr, cr) in enumerate(zip(parent, child))
               for gene, a, b in zip(COLUMNS, pr, cr) if a != b]
    return "; ".join(changes) if changes else "none"


def assign_parents(parents: Sequence[int], lam: int) -> list[int]:
    """The parent of each of `lam` children: best parent first, each repeated lam / P times (P = len(parents))."""
    p = len(parents)
    if p == 0:
        raise ConfigError("assign_parents: no parents")
    return [int(parents[j * p // lam]) for j in range(lam)]


def plan_children(config: EvolutionConfig, generation: int, parents: Sequence[int], genotypes: dict,
                  seen: set) -> list[dict]:
    """The tasks of a generation's children, in id order: {"id", "generation", "parent", "genotype" (str),
    "mutation"}. `genotypes` maps candidate id -> genotype; `seen` (every genotype sampled in the run so
    far) is extended with each new child, so siblings never repeat each other either."""
    tasks, space = [], config.space
    for j, pid in enumerate(assign_parents(parents, config.lam)):
        g_parent = genotypes[pid]
        child = space.mutate(config.spec_for(g_parent), mutation_rng(config.seed, generation, j), seen).genotype
        seen.add(child)
        tasks.append({"id": candidate_id(generation, j, config.lam), "generation": generation, "parent": pid,
                      "genotype": genotype_to_str(child), "mutation": describe_mutation(g_parent, child)})
    return tasks


def selection_pool(parents: Sequence[int], children: Sequence[int], keep_ancestor: bool) -> list[int]:
    """Candidates eligible for selection after a generation: current parents + its children (+ the ancestor).

    Note: with elitist (mu + lambda) selection the ancestor, once out of the parents, can never return
    (the mu-th best fitness of the pool never increases), so `keep_ancestor` does not change which parents
    are chosen; it is kept for fidelity to the public code and decides whether keep_checkpoints="pool"
    keeps the ancestor's weights."""
    pool = list(dict.fromkeys(int(i) for i in parents))
    pool += [int(i) for i in children if int(i) not in pool]
    if keep_ancestor and 0 not in pool:
        pool.append(0)
    return pool


def select_parents(rows: dict, pool: Sequence[int], mu: int) -> list[int]:
    """The `mu` best candidates of `pool` by (fitness, id); failed ones (fitness null / not finite) excluded.

    `rows` maps id -> archive row."""
    ok = sorted({int(i) for i in pool if rows[i].get("status") == "ok" and rows[i].get("fitness") is not None
                 and math.isfinite(rows[i]["fitness"])}, key=lambda i: (rows[i]["fitness"], i))
    if not ok:
        raise PoseNASError(f"selection: no candidate of the pool {sorted(pool)} has a fitness (all failed); "
                           f"see the 'error' fields of archive.jsonl")
    return ok[:mu]


# ---------------------------------------------------------------------------------------------
# the run


def _config_diff(old: dict, new: dict) -> list[str]:
    keys = sorted(set(old) | set(new))
    return [f"{k}: stored {old.get(k)!r}, given {new.get(k)!r}" for k in keys
            if k not in RESUMABLE_CHANGES and old.get(k) != new.get(k)]


def _prepare_run_dir(config: EvolutionConfig, run_dir: Path, resume: bool) -> None:
    cfg_path = run_dir / "config.json"
    new = json.loads(json.dumps(config.to_dict()))
    if cfg_path.is_file():
        if not resume:
            raise ConfigError(f"{run_dir} already holds an evolution run (config.json); resume it (resume=True, "
                              f"`posenas evolve resume RUN`) or use a new run directory")
        try:
            old = json.loads(cfg_path.read_text())
        except json.JSONDecodeError as err:
            raise ConfigError(f"{cfg_path}: not valid JSON ({err})") from None
        diff = _config_diff(old, new)
        if diff:
            raise ConfigError(f"cannot resume {run_dir}: the config differs from the stored one in "
                              f"{len(diff)} field(s): " + "; ".join(diff)
                              + f" (only {list(RESUMABLE_CHANGES)} may change; use a new run directory)")
        if isinstance(old.get("generations"), int) and config.generations < old["generations"]:
            raise ConfigError(f"cannot resume {run_dir} with generations = {config.generations}: the run was "
                              f"started with {old['generations']} (a run can be extended, not shortened)")
        if old != new:
            atomic_write_json(cfg_path, new)
    else:
        if not resume and (run_dir / "archive.jsonl").exists():
            raise ConfigError(f"{run_dir} holds an archive.jsonl but no config.json; use a new run directory")
        atomic_write_json(cfg_path, new)


def run_evolution(config: EvolutionConfig, run_dir, *, executor: str = "sequential", resume: bool = False,
                  progress: bool = True, ray_address: str | None = None, ray_num_cpus: int | None = None,
                  ray_object_store_mb: int = 256, on_candidate: Callable[[dict], None] | None = None,
                  on_validation: Callable[[int, float], None] | None = None) -> dict:
    """Run (or with resume=True continue) the evolution in `run_dir`; see the module doc.

    executor: "sequential" (this process) or "ray" (the children of a generation in parallel; `ray_address`
    joins an existing cluster, else a local one with `ray_num_cpus` CPUs). `on_candidate(row)` is called
    after each archive append; `on_validation(id, val_loss)` after each epoch's validation (sequential
    executor only). Returns {"run_dir", "candidates", "generations", "parents", "best"}."""
    from tqdm.auto import tqdm

    from posenas_core.search.executors import make_executor

    if not isinstance(config, EvolutionConfig):
        raise ConfigError(f"config must be an EvolutionConfig, got {type(config).__name__}")
    if on_validation is not None and executor != "sequential":
        raise ConfigError("on_validation runs in the training process: only with executor='sequential'")
    run_dir = Path(run_dir)
    resolve_device(config.device)                     # device and data errors before anything is written
    check_data(config, progress)
    run_dir.mkdir(parents=True, exist_ok=True)
    ex = make_executor(executor, address=ray_address, num_cpus=ray_num_cpus, object_store_mb=ray_object_store_mb) \
        if executor == "ray" else make_executor(executor)
    try:
        _prepare_run_dir(config, run_dir, resume)
    except BaseException:
        ex.close()
        raise
    archive_path, gens_path = run_dir / "archive.jsonl", run_dir / "generations.jsonl"
    rows = {int(r["id"]): r for r in read_jsonl(archive_path, repair=True)}
    gen_rows = {int(r["generation"]): r for r in read_jsonl(gens_path, repair=True)}
    # Tasks get absolute paths: Ray workers need not share this process's working directory.
    cfg_dict = json.loads(json.dumps(config.to_dict()))
    cfg_dict["data_dir"] = str(Path(config.data_dir).resolve())
    bar = tqdm(total=config.num_candidates, initial=min(len(rows), config.num_candidates), disable=not progress,
               desc="evolution", unit="cand")
    genotypes = {0: config.ancestor}

    def evaluate(tasks: list[dict]) -> list[dict]:
        for t in tasks:
            old = rows.get(t["id"])
            if old is not None and (old["genotype"], old["parent"]) != (t["genotype"], t["parent"]):
                raise ConfigError(f"{archive_path}: candidate {t['id']} has genotype {old['genotype']} from parent "
                                  f"{old['parent']}, but this config plans {t['genotype']} from {t['parent']}: the "
                                  f"run directory does not belong to this config and seed")
        todo = [t for t in tasks if t["id"] not in rows]
        extra = (on_validation,) if on_validation is not None else ()
        args = [(cfg_dict, str(run_dir.resolve()), t) + extra for t in todo]
        for row in ex.map(evaluate_candidate, args):            # in id order, whatever the executor
            append_jsonl(archive_path, row)
            rows[row["id"]] = row
            bar.update(1)
            done = [r for r in rows.values() if r.get("fitness") is not None]
            if done:
                best = min(done, key=lambda r: (r["fitness"], r["id"]))
                bar.set_postfix(best_id=best["id"], best_fitness=f"{best['fitness']:.4g}")
            if on_candidate is not None:
                on_candidate(row)
        return [rows[t["id"]] for t in tasks]

    def finish_generation(g: int, evaluated: list[dict], parents: list[int], t_gen: float) -> None:
        line = {"generation": g, "parents": parents, "best_id": parents[0],
                "best_fitness": rows[parents[0]]["fitness"],
                "population_fitness": [r["fitness"] for r in evaluated],
                "wall_time_s": round(time.perf_counter() - t_gen, 3)}
        old = gen_rows.get(g)
        if old is None:
            append_jsonl(gens_path, line)
            gen_rows[g] = line
        elif old["parents"] != parents:
            raise ConfigError(f"{gens_path}: generation {g} selected {old['parents']} but the archive gives "
                              f"{parents}: the run directory is inconsistent")
        export_best(run_dir, rows[parents[0]], config.input_size)
        if config.keep_checkpoints == "pool":
            keep = set(parents) | ({0} if config.keep_ancestor else set())   # the next selection pool
            for i, r in rows.items():
                # only candidates of generations <= g: on resume, `rows` already holds later ones
                if i not in keep and int(r["generation"]) <= g:
                    (candidate_dir(run_dir, i) / "best.pt").unlink(missing_ok=True)

    try:
        t_gen = time.perf_counter()
        ancestor_task = {"id": 0, "generation": 0, "parent": None, "genotype": genotype_to_str(config.ancestor),
                         "mutation": None}
        (row0,) = evaluate([ancestor_task])
        if row0["status"] != "ok":
            raise PoseNASError(f"the ancestor (candidate 0) failed: {row0['error']}")
        parents = [0]
        finish_generation(0, [row0], parents, t_gen)
        seen = {config.ancestor}
        for g in range(1, config.generations + 1):
            t_gen = time.perf_counter()
            tasks = plan_children(config, g, parents, genotypes, seen)
            for t in tasks:
                genotypes[t["id"]] = genotype_from_str(t["genotype"])
            children = evaluate(tasks)
            if all(r["status"] != "ok" for r in children):
                raise PoseNASError(f"every child of generation {g} failed; first error: {children[0]['error']}")
            pool = selection_pool(parents, [r["id"] for r in children], config.keep_ancestor)
            parents = select_parents(rows, pool, config.mu)
            finish_generation(g, children, parents, t_gen)
    except DataError as err:   # e.g. an image gone or corrupt while a candidate trains: the data's fault
        cause = getattr(err, "cause", err)     # a Ray task's error wraps the worker's DataError
        raise DataError(f"{cause}; the evolution stopped without recording the candidate in training: fix the "
                        f"data, then `posenas evolve resume {run_dir}` continues it from its last "
                        f"checkpoint") from None
    finally:
        bar.close()
        ex.close()
    return {"run_dir": str(run_dir), "candidates": len(rows), "generations": config.generations,
            "parents": parents, "best": rows[parents[0]]}


def resume(run_dir, *, executor: str = "sequential", generations: int | None = None, progress: bool = True,
           device: str | None = None, **kwargs) -> dict:
    """Continue the run in `run_dir` with its stored config (optionally more `generations`, another `device`)."""
    cfg_path = Path(run_dir) / "config.json"
    if not cfg_path.is_file():
        raise ConfigError(f"{run_dir}: no config.json; not an evolution run directory")
    try:
        config = EvolutionConfig.from_dict(json.loads(cfg_path.read_text()))
    except json.JSONDecodeError as err:
        raise ConfigError(f"{cfg_path}: not valid JSON ({err})") from None
    changes = {k: v for k, v in (("generations", generations), ("device", device)) if v is not None}
    config = dataclasses.replace(config, **changes)
    return run_evolution(config, run_dir, executor=executor, resume=True, progress=progress, **kwargs)
