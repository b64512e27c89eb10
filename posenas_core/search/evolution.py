"""EvoPose2D's (mu + lambda) neuroevolution with weight transfer (paper Sec. IV, public code `ga.py`).

    cfg = EvolutionConfig(data_dir="data/synthpose", input_size=(128, 96), lam=8, mu=2, generations=4)
    summary = run_evolution(cfg, "runs/evo1")                  # executor="ray" evaluates children in parallel
    summary = resume("runs/evo1")                              # after a kill -9: continues where it stopped

Algorithm (reference/evopose2d.md Sec. 3):
- Generation 0 trains the ancestor (default EfficientNet-B0's blocks, `spaces.evopose.ANCESTOR`) for `e0`
  epochs, from scratch (the public code starts it from ImageNet weights; there are none here).
- Generation g >= 1: the parents, best first, each get lam / mu children (child j of generation g has the
  parent `parents[j * P // lam]`, P = number of parents; all children of generation 1 come from the
  ancestor). A child is `mutate(parent genotype, rng, seen)`: one gene changed, never a genotype sampled
  before in the run; `rng = default_rng([seed, g, j])`, so any child's genotype is a pure function of the
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
  the first parent (elitist), and is exported to run_dir/best/ after every generation. Since the mu-th
  best fitness of an elitist pool never increases, an ancestor that has left the parents can never come
  back: `keep_ancestor` does not change the selection (see `selection_pool`), only what
  keep_checkpoints="pool" keeps.

Validation loss: the training loss (visibility-masked heatmap MSE, mean over (N, K, h, w), see
`trainer.heatmap_mse`) over the val split's persons with >= 1 labelled joint, no augmentation, eval mode,
computed after every epoch; the trainer keeps the best-by-loss checkpoint. Heatmaps use the candidate's
own output stride (a stride mutation in modules 5-7 changes it between 2 and 4) and `heatmap_sigma`.
Candidates are built unscaled (depth / width multipliers 1, as searched in the paper at 256x192); compound
scaling is applied to the final genotype afterwards (`spaces.evopose.scaled_spec`).

Determinism: candidate `id` trains with seed `train_seed(seed, id)` (init of the non-transferred weights,
sample order, augmentation, drop-connect) and `torch_threads` intra-op threads (default 1) in both
executors; CPU results are bit-identical for the same candidate only at the same thread count, which is
why it is part of the config. Hence the sequential and Ray executors write the same archive (apart from
wall times), and so does a run killed and resumed any number of times.

Run directory (the contract with the lab widgets):
    config.json              EvolutionConfig.to_dict() (with "kind": "evopose2d-evolution")
    archive.jsonl            one row per evaluated candidate, appended in id order (ARCHIVE_FIELDS)
    generations.jsonl        one row per finished generation (GENERATION_FIELDS); best_id / best_fitness
                             are those of the best candidate so far (= the first parent)
    candidates/<id>/         best.pt (trainer checkpoint of the best-val-loss epoch, spec inside),
                             result.json (its archive row: the "finished" marker), transfer.json (children:
                             the weight-transfer stats), metrics.jsonl and config.json (the trainer's);
                             checkpoints/last.pt only while it trains
    best/                    spec.json, weights.pt (state dict), metrics.json (its archive row + input size)
Candidate ids: 0 is the ancestor, child j of generation g is 1 + (g - 1) * lam + j.

Resume: rows already in archive.jsonl are never recomputed; a candidate whose result.json exists (finished
but not yet appended) is appended without training; a half-trained one continues from its last
checkpoint (the trainer's exact resume). A torn last line of a jsonl file (kill during a write) is dropped.
Data errors: the images are checked before a run (or a resume) writes anything (`data.checks.check_images`);
an image that goes missing or corrupt while a candidate trains stops the run with a DataError naming it and
the candidate, which is not recorded (the data is at fault, not the genotype): resume after the fix.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from posenas_core.errors import CheckpointError, ConfigError, DataError, PoseNASError, SpecError
from posenas_core.runs.io import append_jsonl, atomic_torch_save, atomic_write_json, atomic_write_text, read_jsonl
from posenas_core.spaces.evopose import (
    ANCESTOR,
    COLUMNS,
    EvoPoseSpec,
    genotype_from_str,
    genotype_to_str,
    mutate,
    validate_genotype,
)

if TYPE_CHECKING:  # torch is imported where it is used: `posenas --help` builds this module's parser quickly
    import torch

__all__ = [
    "KIND", "ARCHIVE_FIELDS", "GENERATION_FIELDS", "PARAMS_METRICS", "EvolutionConfig", "fitness", "candidate_id",
    "train_seed", "mutation_rng", "describe_mutation", "assign_parents", "plan_children", "selection_pool",
    "select_parents", "validation_loss", "evaluate_candidate", "run_evolution", "resume", "read_archive",
    "add_evolve_parser", "cmd_evolve", "main",
]

KIND = "evopose2d-evolution"
ARCHIVE_FIELDS = ("id", "generation", "parent", "genotype", "spec", "params", "params_with_bn_stats", "macs",
                  "val_loss", "fitness", "ap", "epochs", "wall_time_s", "status", "error", "mutation")
GENERATION_FIELDS = ("generation", "parents", "best_id", "best_fitness", "population_fitness", "wall_time_s")
PARAMS_METRICS = ("params_with_bn_stats", "params")
KEEP_CHECKPOINTS = ("all", "pool")
# Fields that may differ when resuming a run (a run can be extended by more generations).
RESUMABLE_CHANGES = ("generations",)


# ---------------------------------------------------------------------------------------------
# configuration


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and math.isfinite(v)


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
    warmup_epochs: float = 0.5                      # per-candidate linear warm-up (E3: 0). Needed here: a child
                                                    #   trained at full lr from step 0 after the transfer jumped
                                                    #   from val loss 0.07 to 9 (benchmarks/evopose_transfer_ablation)
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
    channels_last: bool = True                      # ~15% faster MBConv training at 128x96, ~5x at 64x64 (CPU)
    ckpt_every_steps: int | None = 200              # mid-epoch checkpoints of a candidate (None: epoch ends)
    keep_checkpoints: str = "all"                   # "all" | "pool": delete best.pt of unselectable candidates

    def __post_init__(self):
        o = type(self).__name__

        def bad(name, allowed, value=None):
            v = getattr(self, name) if value is None else value
            raise ConfigError(f"{o}.{name} = {v!r} is invalid; allowed: {allowed}")

        def need_int(name, lo, allow_none=False):
            v = getattr(self, name)
            if v is None and allow_none:
                return
            if not _is_int(v) or v < lo:
                bad(name, f"{'null or ' if allow_none else ''}an integer >= {lo}")
            object.__setattr__(self, name, int(v))

        def need_num(name, ok, allowed):
            v = getattr(self, name)
            if not _is_num(v) or not ok(v):
                bad(name, allowed)
            object.__setattr__(self, name, float(v))

        def need_bool(name):
            if not isinstance(getattr(self, name), bool):
                bad(name, "true or false")

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
        if (not isinstance(hw, (tuple, list)) or len(hw) != 2 or not all(_is_int(v) for v in hw)
                or any(v <= 0 or v % 32 for v in hw)):
            bad("input_size", "(H, W) or 'HxW', positive multiples of 32 (the network stride is up to 32)")
        object.__setattr__(self, "input_size", (int(hw[0]), int(hw[1])))
        for name, lo in (("lam", 1), ("mu", 1), ("generations", 0), ("e0", 1), ("e", 1), ("batch_size", 1),
                         ("seed", 0), ("val_batch_size", 1), ("torch_threads", 1)):
            need_int(name, lo)
        if self.lam % self.mu:
            raise ConfigError(f"{o}: lam = {self.lam} is not a multiple of mu = {self.mu}; every parent gets lam / mu "
                              f"children, so lam must be a multiple of mu (e.g. lam = "
                              f"{self.mu * max(1, self.lam // self.mu)})")
        need_int("max_train_samples", 1, allow_none=True)
        need_int("max_val_images", 1, allow_none=True)
        need_int("ckpt_every_steps", 1, allow_none=True)
        need_num("gamma", lambda v: True, "a finite number (the paper's Gamma is negative, e.g. -0.07)")
        need_num("target_params", lambda v: v > 0, "a number > 0 (the paper's T = 5e6)")
        need_num("base_lr", lambda v: v > 0, "a number > 0")
        need_num("warmup_epochs", lambda v: 0 <= v <= min(self.e0, self.e),
                 f"a number in [0, min(e0, e) = {min(self.e0, self.e)}]")
        need_num("min_lr_ratio", lambda v: 0 <= v <= 1, "a number in [0, 1]")
        need_num("weight_decay", lambda v: v >= 0, "a number >= 0")
        if self.sigma is not None:
            need_num("sigma", lambda v: v > 0, "null or a number > 0 (heatmap pixels)")
        if self.new_blocks not in ("copy", "identity"):
            bad("new_blocks", "'copy' or 'identity'")
        for name in ("keep_ancestor", "kernel_transfer", "compute_ap", "channels_last"):
            need_bool(name)
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
        from posenas_core.data.transforms import AugConfig

        names = {f.name for f in dataclasses.fields(AugConfig)}
        unknown = sorted(set(self.aug) - names)
        if unknown:
            raise ConfigError(f"{o}.aug: unknown field(s) {unknown}; allowed: {sorted(names)}")
        try:
            AugConfig(**self.aug)
        except ConfigError as err:
            raise ConfigError(f"{o}.aug: {err}") from None
        object.__setattr__(self, "aug", dict(self.aug))

    # -- derived ----------------------------------------------------------------------------------
    def spec_for(self, genotype) -> EvoPoseSpec:
        """The unscaled network of a genotype with this run's fixed parts (`spec_overrides`)."""
        return EvoPoseSpec(genotype=validate_genotype(genotype), **self.spec_overrides)

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
        if isinstance(d.get("input_size"), list):
            d["input_size"] = tuple(d["input_size"])
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
    changes = [f"module {i + 1} {COLUMNS[j]} {a}->{b}"
               for i, (pr, cr) in enumerate(zip(parent, child)) for j, (a, b) in enumerate(zip(pr, cr)) if a != b]
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
    tasks = []
    for j, pid in enumerate(assign_parents(parents, config.lam)):
        g_parent = genotypes[pid]
        child = mutate(g_parent, mutation_rng(config.seed, generation, j), seen)
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
# one candidate


def validation_loss(model: torch.nn.Module, dataset, batch_size: int = 32, channels_last: bool = False) -> float:
    """Masked heatmap MSE over a whole dataset: sum_items sum((pred - target)^2 * w) / (N * K * h * w), i.e.
    `trainer.heatmap_mse` of one batch holding every item (accumulated in float64). Eval mode, no grad; the
    model's training flag is restored."""
    import torch
    from torch.utils.data import DataLoader

    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    try:
        with torch.no_grad():
            for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0):
                images = batch["image"]                                  # (B, 3, H, W)
                if channels_last:
                    images = images.contiguous(memory_format=torch.channels_last)
                pred = model(images).float()                             # (B, K, h, w)
                diff = pred - batch["target"].float()
                w = batch["target_weight"].float()[:, :, None, None]     # (B, K, 1, 1)
                total += float((diff * diff * w).double().sum())
                count += diff.numel()
    finally:
        model.train(was_training)
    if count == 0:
        raise ConfigError("validation_loss: the validation set is empty")
    return total / count


_DATA_CACHE: dict = {}


def _load_data(config: EvolutionConfig) -> dict:
    """The run's person sets (cached per process): train (subset), val for the loss (>= 1 labelled joint),
    val for AP (every GT person of the chosen images) and the chosen val image ids."""
    from posenas_core.pipeline import load_split, split_paths

    stamps = []
    for split in ("train", "val"):            # a dataset rewritten in place (same dir) is not served stale
        st = split_paths(config.data_dir, split)[0].stat()
        stamps.append((st.st_mtime_ns, st.st_size))
    key = (str(Path(config.data_dir).resolve()), tuple(stamps), config.max_train_samples, config.max_val_images,
           config.seed)
    if key in _DATA_CACHE:
        return _DATA_CACHE[key]

    train_ps = load_split(config.data_dir, "train", train=True)
    if config.max_train_samples is not None and config.max_train_samples < len(train_ps.records):
        keep = np.sort(np.random.default_rng([config.seed, 0x5AB]).choice(
            len(train_ps.records), config.max_train_samples, replace=False))
        train_ps = dataclasses.replace(train_ps, records=[train_ps.records[i] for i in keep])
    val_all = load_split(config.data_dir, "val", train=False)
    image_ids = sorted(int(im["id"]) for im in val_all.coco.get("images", []))
    if config.max_val_images is not None:
        image_ids = image_ids[:config.max_val_images]
    chosen = set(image_ids)
    ap_ps = dataclasses.replace(val_all, records=[r for r in val_all.records if r.image_id in chosen])
    loss_ps = dataclasses.replace(val_all, records=[r for r in ap_ps.records if (r.keypoints[:, 2] > 0).any()])
    data = {"train": train_ps, "val_loss": loss_ps, "val_ap": ap_ps, "val_image_ids": image_ids}
    _DATA_CACHE.clear()
    _DATA_CACHE[key] = data
    return data


def _check_data(config: EvolutionConfig, progress: bool = False) -> dict:
    """The run's data (`_load_data`), refused before anything is written when it cannot be trained on:
    too few persons, no validation person, or a missing / corrupt image (DataError naming it)."""
    data = _load_data(config)
    n = len(data["train"].records)
    if n < config.batch_size:
        raise ConfigError(f"the training set has {n} persons (max_train_samples = {config.max_train_samples}), fewer "
                          f"than batch_size = {config.batch_size}: no full batch; lower batch_size or use more data")
    if not data["val_loss"].records:
        raise ConfigError(f"{config.data_dir}: the val split (max_val_images = {config.max_val_images}) has no "
                          f"person with a labelled joint: no validation loss")
    from posenas_core.data.checks import check_images

    for key in ("train", "val_ap" if config.compute_ap else "val_loss"):   # the images the run will read
        check_images(data[key], progress=progress)
    return data


def _candidate_ap(model, config: EvolutionConfig, data: dict) -> float:
    from posenas_core.pipeline import make_dataset
    from posenas_core.train.predict import make_val_fn

    ds = make_dataset(data["val_ap"], config.input_size, train=False, sigma=config.sigma,
                      stride=model.spec.output_stride)
    val_fn = make_val_fn(ds, data["val_ap"].coco, batch_size=config.val_batch_size, flip_test=False,
                         image_ids=data["val_image_ids"])          # E3 validates without flip test
    return float(val_fn(model)["AP"])


def _candidate_dir(run_dir: Path, cid: int) -> Path:
    return Path(run_dir) / "candidates" / str(int(cid))


def _drop_last_checkpoint(cdir: Path) -> None:
    """Remove candidates/<id>/checkpoints/ once the candidate is finished (last.pt holds the optimizer state,
    only needed to resume its training; best.pt has been moved up to candidates/<id>/best.pt)."""
    ckpt_dir = cdir / "checkpoints"
    (ckpt_dir / "last.pt").unlink(missing_ok=True)
    try:
        ckpt_dir.rmdir()
    except OSError:         # absent, or not empty
        pass


def evaluate_candidate(config: dict, run_dir: str, task: dict,
                       on_validation: Callable[[int, float], None] | None = None) -> dict:
    """Build, transfer (children), train and score one candidate; return its archive row.

    `config` is `EvolutionConfig.to_dict()` and `task` a `plan_children` item (the ancestor: parent None).
    Module-level and JSON-in / JSON-out so that Ray can run it. Idempotent: a finished candidate
    (candidates/<id>/result.json) is returned as stored, a half-trained one resumes from its checkpoint.
    Training errors give a row with status "failed"; data errors (a missing or corrupt image) and
    parent-checkpoint errors raise, leaving nothing recorded: they are not the candidate's fault, and a
    resume after the fix continues the candidate from its last checkpoint.
    `on_validation(id, val_loss)` is called after each epoch's validation (for monitors and tests)."""
    import torch

    from posenas_core.eval.profiler import count_macs, count_params
    from posenas_core.models.registry import build_model
    from posenas_core.pipeline import make_dataset
    from posenas_core.train.trainer import TrainConfig, load_checkpoint, train

    cfg = EvolutionConfig.from_dict(config)
    cid = int(task["id"])
    cdir = _candidate_dir(Path(run_dir), cid)
    done = cdir / "result.json"
    if done.is_file():
        _drop_last_checkpoint(cdir)
        return json.loads(done.read_text())
    t0 = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.torch_threads)
    try:
        genotype = genotype_from_str(task["genotype"])
        spec = cfg.spec_for(genotype)
        parent = task.get("parent")
        epochs = cfg.e0 if parent is None else cfg.e
        row: dict[str, Any] = {
            "id": cid, "generation": int(task["generation"]), "parent": parent, "genotype": task["genotype"],
            "spec": spec.to_dict(), "params": None, "params_with_bn_stats": None, "macs": None, "val_loss": None,
            "fitness": None, "ap": None, "epochs": epochs, "wall_time_s": None, "status": "ok", "error": None,
            "mutation": task.get("mutation"),
        }
        data = _load_data(cfg)
        seed = train_seed(cfg.seed, cid)
        torch.manual_seed(seed)
        model = build_model(spec)                                   # fresh init of what the transfer leaves
        row.update(count_params(model))
        row["macs"] = count_macs(model, cfg.input_size)
        if parent is not None:
            from posenas_core.search.transfer import transfer_weights   # lazy: written by a parallel task

            parent_model, _ = load_checkpoint(_candidate_dir(Path(run_dir), parent) / "best.pt")
            stats = transfer_weights(parent_model, model, kernel_transfer=cfg.kernel_transfer,
                                     new_blocks=cfg.new_blocks)
            atomic_write_json(cdir / "transfer.json", {"parent": parent, "kernel_transfer": cfg.kernel_transfer,
                                                       "new_blocks": cfg.new_blocks,
                                                       **{k: int(v) for k, v in stats.items()}})
            del parent_model
        stride = spec.output_stride
        train_ds = make_dataset(data["train"], cfg.input_size, train=True, seed=seed, sigma=cfg.sigma, aug=cfg.aug,
                                stride=stride)
        val_ds = make_dataset(data["val_loss"], cfg.input_size, train=False, sigma=cfg.sigma, stride=stride)

        def val_fn(m):
            loss = validation_loss(m, val_ds, cfg.val_batch_size, cfg.channels_last)
            if on_validation is not None:
                on_validation(cid, loss)
            return {"loss": loss}

        tc = TrainConfig(epochs=epochs, batch_size=cfg.batch_size, base_lr=cfg.base_lr,
                         warmup_epochs=cfg.warmup_epochs, min_lr_ratio=cfg.min_lr_ratio,
                         weight_decay=cfg.weight_decay, channels_last=cfg.channels_last, seed=seed, val_every=1,
                         ckpt_every_steps=cfg.ckpt_every_steps, log_every=20, progress=False, num_workers=0)
        best_path, ckpt_best = cdir / "best.pt", cdir / "checkpoints" / "best.pt"
        try:
            torch.manual_seed(seed)                                  # drop-connect draws from the global RNG
            result = train(spec, train_ds, cdir, tc, val_fn=val_fn, resume=True, model=model)
            loss = None if result.best is None else float(result.best["value"])
            if loss is None or not math.isfinite(loss):
                raise FloatingPointError(f"validation loss is {loss} (training diverged)")
            if ckpt_best.is_file():
                ckpt_best.replace(best_path)
            row["val_loss"] = loss
            row["fitness"] = fitness(loss, row[cfg.params_metric], cfg.target_params, cfg.gamma)
            if cfg.compute_ap:
                best_model, _ = load_checkpoint(best_path, expected_spec=spec)
                row["ap"] = _candidate_ap(best_model, cfg, data)
        except DataError as err:                                      # not recorded: see the docstring
            raise DataError(f"candidate {cid} (generation {row['generation']}): {err}") from None
        except (CheckpointError, SpecError):
            raise
        except Exception as err:                                      # noqa: BLE001 - recorded in the archive
            row.update(status="failed", error=f"{type(err).__name__}: {err}", val_loss=None, fitness=None)
        row["wall_time_s"] = round(time.perf_counter() - t0, 3)
        atomic_write_json(done, row)
        _drop_last_checkpoint(cdir)
        return row
    finally:
        torch.set_num_threads(threads)


# ---------------------------------------------------------------------------------------------
# the run


def read_archive(run_dir) -> list[dict]:
    """archive.jsonl of a run directory (a torn last line is dropped)."""
    return read_jsonl(Path(run_dir) / "archive.jsonl")


def _repair_jsonl(path: Path) -> list[dict]:
    """Rows of a jsonl file; a torn last line (kill during a write) is removed from the file so that the
    next append starts on a fresh line."""
    rows = read_jsonl(path)
    if path.exists():
        text = path.read_text(encoding="utf-8")
        canonical = "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows)
        if text != canonical:
            atomic_write_text(path, canonical)
    return rows


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


def _export_best(run_dir: Path, row: dict, config: EvolutionConfig) -> None:
    """best/spec.json, best/weights.pt (state dict of the best-val-loss epoch), best/metrics.json (written
    last: its presence with the same id means the export is complete)."""
    from posenas_core.train.trainer import load_checkpoint

    out = run_dir / "best"
    metrics_path = out / "metrics.json"
    if metrics_path.is_file():
        try:
            if json.loads(metrics_path.read_text()).get("id") == row["id"]:
                return
        except json.JSONDecodeError:
            pass
    src = _candidate_dir(run_dir, row["id"]) / "best.pt"
    model, _ = load_checkpoint(src)
    atomic_write_json(out / "spec.json", model.spec.to_dict())
    atomic_torch_save(out / "weights.pt", model.state_dict())
    atomic_write_json(metrics_path, {**row, "input_size": list(config.input_size),
                                     "checkpoint": str(src.relative_to(run_dir))})


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
    _check_data(config, progress)                     # data errors before anything is written
    run_dir.mkdir(parents=True, exist_ok=True)
    ex = make_executor(executor, address=ray_address, num_cpus=ray_num_cpus, object_store_mb=ray_object_store_mb) \
        if executor == "ray" else make_executor(executor)
    try:
        _prepare_run_dir(config, run_dir, resume)
    except BaseException:
        ex.close()
        raise
    archive_path, gens_path = run_dir / "archive.jsonl", run_dir / "generations.jsonl"
    rows = {int(r["id"]): r for r in _repair_jsonl(archive_path)}
    gen_rows = {int(r["generation"]): r for r in _repair_jsonl(gens_path)}
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
        _export_best(run_dir, rows[parents[0]], config)
        if config.keep_checkpoints == "pool":
            keep = set(parents) | ({0} if config.keep_ancestor else set())   # the next selection pool
            for i, r in rows.items():
                # only candidates of generations <= g: on resume, `rows` already holds later ones
                if i not in keep and int(r["generation"]) <= g:
                    (_candidate_dir(run_dir, i) / "best.pt").unlink(missing_ok=True)

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
           **kwargs) -> dict:
    """Continue the run in `run_dir` with its stored config (optionally extended to more `generations`)."""
    cfg_path = Path(run_dir) / "config.json"
    if not cfg_path.is_file():
        raise ConfigError(f"{run_dir}: no config.json; not an evolution run directory")
    try:
        config = EvolutionConfig.from_dict(json.loads(cfg_path.read_text()))
    except json.JSONDecodeError as err:
        raise ConfigError(f"{cfg_path}: not valid JSON ({err})") from None
    if generations is not None:
        config = dataclasses.replace(config, generations=generations)
    return run_evolution(config, run_dir, executor=executor, resume=True, progress=progress, **kwargs)


# ---------------------------------------------------------------------------------------------
# command line: `posenas evolve run ...` / `posenas evolve resume RUN` (wired into posenas_core.cli)

_CLI_FIELDS = {  # option -> (config field, type, help); the default is EvolutionConfig's (or --config's)
    "--data": ("data_dir", str, "dataset root with train and val splits (e.g. SynthPose)"),
    "--input": ("input_size", str, "network input HxW, multiples of 32"),
    "--lam": ("lam", int, "children per generation (lambda)"),
    "--mu": ("mu", int, "parents kept per generation (mu); lam must be a multiple of it"),
    "--generations": ("generations", int, "generations after generation 0"),
    "--e0": ("e0", int, "epochs of the ancestor (generation 0)"),
    "--e": ("e", int, "epochs of each child after the weight transfer"),
    "--gamma": ("gamma", float, "fitness exponent Gamma (negative: smaller networks win)"),
    "--target-params": ("target_params", float, "parameter count T where the fitness equals the val loss"),
    "--ancestor": ("ancestor", str, "generation 0's genotype as a short string (k3b1c2s1-...)"),
    "--batch-size": ("batch_size", int, "training batch size"),
    "--lr": ("base_lr", float, "Adam lr at batch 32 (scaled by batch / 32)"),
    "--seed": ("seed", int, "run seed: mutations, training seeds and the train subset"),
    "--params-metric": ("params_metric", str, f"parameter count in the fitness: one of {list(PARAMS_METRICS)}"),
    "--max-train-samples": ("max_train_samples", int, "random subset of the training persons"),
    "--max-val-images": ("max_val_images", int, "the first N val images for the loss and AP"),
    "--threads": ("torch_threads", int, "torch threads per candidate (results depend on it)"),
    "--keep-checkpoints": ("keep_checkpoints", str, "whose best.pt to keep: 'all' candidates, or the selection "
                                                     "'pool' only"),
    "--new-blocks": ("new_blocks", str, "a new block is a 'copy' of the module's last one, or 'identity'"),
}


def _default_of(field: str) -> str:
    """'default 128x96' (EvolutionConfig's default of `field`, as the option is written) for the help."""
    v = {f.name: f.default for f in dataclasses.fields(EvolutionConfig)}[field]
    if v is dataclasses.MISSING:
        return "required unless --config has it"
    if field == "input_size":
        return "default " + "x".join(map(str, v))
    if field == "ancestor":
        return "default " + genotype_to_str(v)
    if v is None:
        return "default all"
    return f"default {v:g}" if isinstance(v, float) else f"default {v}"


def _add_executor_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--executor", choices=("sequential", "ray"), default="sequential",
                   help="evaluate the children of a generation in this process (default) or in parallel with Ray")
    p.add_argument("--ray-address", default=None, help="join an existing Ray cluster (default: start a local one)")
    p.add_argument("--ray-cpus", type=int, default=None, help="CPUs of the local Ray cluster (default: all)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def add_evolve_parser(sub) -> argparse.ArgumentParser:
    """Add `evolve run` / `evolve resume` to an argparse subparsers object; returns the 'evolve' parser."""
    e = sub.add_parser("evolve", help="EvoPose2D (mu + lambda) neuroevolution with weight transfer")
    esub = e.add_subparsers(dest="evolve_command", required=True, metavar="EVOLVE_COMMAND")
    r = esub.add_parser("run", help="start an evolution run (options override --config's fields)")
    r.add_argument("--out", type=Path, required=True, help="run directory")
    r.add_argument("--config", type=Path, default=None, help="EvolutionConfig JSON (e.g. a run's config.json)")
    for opt, (field, typ, text) in _CLI_FIELDS.items():
        r.add_argument(opt, dest=field, type=typ, default=None, help=f"{text} ({_default_of(field)})")
    r.add_argument("--no-keep-ancestor", dest="keep_ancestor", action="store_const", const=False, default=None,
                   help="drop the ancestor from the selection pool (the public code keeps it)")
    r.add_argument("--no-kernel-transfer", dest="kernel_transfer", action="store_const", const=False, default=None,
                   help="do not transfer depthwise kernels on kernel-only mutations")
    r.add_argument("--ap", dest="compute_ap", action="store_const", const=True, default=None,
                   help="COCO AP of every candidate (slower)")
    r.add_argument("--resume", action="store_true", help="continue the run in --out if it exists")
    _add_executor_args(r)
    s = esub.add_parser("resume", help="continue a killed / finished run (optionally more generations)")
    s.add_argument("run_dir", type=Path, help="the run directory (holds config.json)")
    s.add_argument("--generations", type=int, default=None,
                   help="extend the run to this many generations (default: the stored number)")
    _add_executor_args(s)
    return e


def cmd_evolve(a: argparse.Namespace) -> dict:
    """Handler of the `evolve` subcommand (PoseNASError for bad input)."""
    ray_kw = {"ray_address": a.ray_address, "ray_num_cpus": a.ray_cpus} if a.executor == "ray" else {}
    if a.executor != "ray" and (a.ray_address or a.ray_cpus):
        raise ConfigError("--ray-address / --ray-cpus need --executor ray")
    if a.evolve_command == "resume":
        out = resume(a.run_dir, executor=a.executor, generations=a.generations, progress=not a.quiet, **ray_kw)
    else:
        fields: dict = {}
        if a.config is not None:
            if not a.config.is_file():
                raise ConfigError(f"--config: file not found: {a.config}")
            try:
                fields = json.loads(a.config.read_text())
            except json.JSONDecodeError as err:
                raise ConfigError(f"--config {a.config}: not valid JSON ({err})") from None
            if not isinstance(fields, dict):
                raise ConfigError(f"--config {a.config}: expected a JSON object of EvolutionConfig fields")
        names = [f for f, *_ in _CLI_FIELDS.values()] + ["keep_ancestor", "kernel_transfer", "compute_ap"]
        fields.update({k: getattr(a, k) for k in names if getattr(a, k) is not None})
        out = run_evolution(EvolutionConfig.from_dict(fields), a.out, executor=a.executor, resume=a.resume,
                            progress=not a.quiet, **ray_kw)
    best = out["best"]
    return {"run_dir": out["run_dir"], "candidates": out["candidates"], "parents": out["parents"],
            "best": {k: best[k] for k in ("id", "genotype", "fitness", "val_loss", "params", "macs", "ap")}}
