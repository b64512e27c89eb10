"""Train a pose network on heatmaps, in a run directory that survives a kill.

    result = train(spec, train_set, "runs/r1", TrainConfig(epochs=10), val_fn=make_val_fn(val_set, gt))

Loss: visibility-masked MSE, mean over (B, K, h, w) of (pred - target)^2 * weight[:, :, None, None]
(EvoPose2D's `mse_loss`, not renormalised by the number of visible joints). Adam; the learning rate is
lr = base_lr * batch_size / 32, a per-step linear warm-up over `warmup_epochs`, then a cosine decay to
`min_lr_ratio * lr` at the last step (`lr_at`).

Determinism: the model is initialised from `Generator().manual_seed(seed)` (`build_model(generator=)`),
drop-connect draws from its own generator seeded from `seed` (its state is in every checkpoint); epoch e
visits the samples in the order `torch.randperm(n, generator=Generator(seed mixed with e))` and calls
`train_set.set_epoch(e)` when the dataset has it, so an epoch's order and augmentation are a pure
function of (seed, epoch). Only deterministic CPU ops are used.

A step's forwards and backwards are a step function (`train.steps`: `plain_step`, or the supernet's sandwich
rule). `config.device` picks the CPU or a GPU (autocast bf16, or fp16 with a gradient scaler, on CUDA).
Under torchrun (`train.distributed`) the model is wrapped in DDP, each rank trains on its share of every
batch, and only rank 0 logs, validates and writes checkpoints.

Run directory:
    config.json              {"train": TrainConfig, "spec": spec}
    metrics.jsonl            per log step {step, epoch, loss, lr, img_per_s, time, wall};
                             per validation {epoch, step, val: {...}, time, wall}
    checkpoints/last.pt      written atomically at each epoch end, every `ckpt_every_steps` steps and when
                             the time budget stops the run
    checkpoints/best.pt      the checkpoint of the best validation ("AP" higher, else "loss" lower)

A checkpoint's contents are described in `train.checkpoints`. Resuming from one (`resume=True`) gives
final weights bit-identical to an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from posenas_core.errors import CheckpointError, ConfigError, PoseNASError
from posenas_core.genotype import Spec, spec_from_dict
from posenas_core.machine import resolve_device
from posenas_core.models.registry import build_model
from posenas_core.ops import set_drop_generator
from posenas_core.runs.io import append_jsonl, atomic_torch_save, atomic_write_json, atomic_write_text, read_jsonl
from posenas_core.train.checkpoints import (
    CHECKPOINT_FORMAT,
    check_state_dict,
    read_checkpoint,
    reference_state,
    rng_state,
    set_rng_state,
    spec_mismatch,
)
from posenas_core.train.budget import BudgetPlanner
from posenas_core.train.distributed import check_batch_size, current_ranks
from posenas_core.train.steps import StepContext, plain_step

__all__ = ["TrainConfig", "TrainResult", "train", "lr_at"]

DROP_STREAM = 0xD0C                        # mixed with the seed: the drop-connect generator's seed


@dataclasses.dataclass
class TrainConfig:
    """One training run. Every field is JSON-serialisable (`to_dict` / `from_dict`)."""

    epochs: int = 20                       # a short CPU schedule; SimpleBaseline uses 140 on GPUs
    batch_size: int = 32                   # ~0.3 s per step at 128x96 on 2 cores; BN statistics stay stable
    base_lr: float = 1e-3                  # Adam lr at batch 32 (SimpleBaseline); scaled by batch_size / 32
    warmup_epochs: float = 0.5             # linear per-step warm-up keeps early Adam steps from blowing up BN
    min_lr_ratio: float = 0.0              # cosine ends at min_lr_ratio * lr (EvoPose2D decays to 0)
    lr_schedule: str = "cosine"            # "cosine" (EvoPose2D) or "step" (SimpleBaseline: x0.1 at 90/140, 120/140)
    weight_decay: float = 0.0              # L2 on conv kernels only; SimpleBaseline uses none (EvoPose2D ~2e-5)
    grad_clip: float | None = None         # max grad norm; None = off (Adam with warm-up rarely needs it)
    bf16: bool = False                     # CPU autocast: ~1.7x faster for dense convs (baseline-resnet*), slower for MBConv at 128x96
    channels_last: bool = True             # faster CPU convs (oneDNN), no effect on results beyond rounding
    num_workers: int = 0                   # 2 cores: a loader process would steal a core from the train step
    drop_last: bool = True                 # a tiny last batch gives noisy BatchNorm statistics
    seed: int = 0                          # model init, sample order and augmentation derive from it
    log_every: int = 20                    # steps between metrics.jsonl lines (~5 s at 128x96)
    val_every: int = 1                     # epochs between validations (val_fn), and always after the last
    ckpt_every_steps: int | None = 200     # mid-epoch checkpoints (~1 min of CPU work); None = epoch ends only
    max_minutes: float | None = None       # time budget of this call; stop + checkpoint after the step past it
    fill_budget: bool = False              # re-plan the steps from the measured speed to end at max_minutes (of the run)
    progress: bool = True                  # tqdm.auto progress bar
    device: str = "cpu"                    # "cpu" | "cuda" | "cuda:N" | "auto" (CUDA when present; machine.resolve_device)
    fp16: bool = False                     # CUDA only: fp16 autocast with a gradient scaler (bf16 autocasts in bf16)

    # Fields that change the weight trajectory: a resumed run must use the same values.
    TRAJECTORY_FIELDS = ("epochs", "batch_size", "base_lr", "warmup_epochs", "min_lr_ratio", "weight_decay",
                         "grad_clip", "bf16", "fp16", "channels_last", "drop_last", "seed", "fill_budget", "lr_schedule")

    def __post_init__(self):
        def need(name: str, ok: bool, allowed: str):
            if not ok:
                raise ConfigError(f"TrainConfig.{name} = {getattr(self, name)!r} is invalid; allowed: {allowed}")

        def is_int(v):
            return isinstance(v, int) and not isinstance(v, bool)

        def is_num(v):
            return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

        need("epochs", is_int(self.epochs) and self.epochs >= 1, "an integer >= 1")
        need("batch_size", is_int(self.batch_size) and self.batch_size >= 1, "an integer >= 1")
        need("base_lr", is_num(self.base_lr) and self.base_lr > 0, "a number > 0")
        need("warmup_epochs", is_num(self.warmup_epochs) and 0 <= self.warmup_epochs <= self.epochs,
             f"a number in [0, epochs={self.epochs}]")
        need("min_lr_ratio", is_num(self.min_lr_ratio) and 0 <= self.min_lr_ratio <= 1, "a number in [0, 1]")
        need("lr_schedule", self.lr_schedule in ("cosine", "step"), "'cosine' or 'step'")
        need("weight_decay", is_num(self.weight_decay) and self.weight_decay >= 0, "a number >= 0")
        need("grad_clip", self.grad_clip is None or (is_num(self.grad_clip) and self.grad_clip > 0),
             "null or a number > 0")
        for name in ("bf16", "channels_last", "drop_last", "progress", "fill_budget"):
            need(name, isinstance(getattr(self, name), bool), "true or false")
        need("num_workers", is_int(self.num_workers) and self.num_workers >= 0, "an integer >= 0")
        need("seed", is_int(self.seed) and self.seed >= 0, "an integer >= 0")
        need("log_every", is_int(self.log_every) and self.log_every >= 1, "an integer >= 1")
        need("val_every", is_int(self.val_every) and self.val_every >= 1, "an integer >= 1")
        need("ckpt_every_steps", self.ckpt_every_steps is None
             or (is_int(self.ckpt_every_steps) and self.ckpt_every_steps >= 1), "null or an integer >= 1")
        need("max_minutes", self.max_minutes is None or (is_num(self.max_minutes) and self.max_minutes > 0),
             "null or a number > 0")
        need("fill_budget", not self.fill_budget or self.max_minutes is not None,
             "true only with a time budget (max_minutes)")
        need("device", isinstance(self.device, str) and (self.device in ("cpu", "cuda", "auto")
                                                         or self.device.startswith("cuda:")),
             "'cpu', 'cuda', 'cuda:N' or 'auto'")
        need("fp16", isinstance(self.fp16, bool) and not (self.fp16 and self.bf16), "true or false, not both fp16 and bf16")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        if not isinstance(d, dict):
            raise ConfigError(f"TrainConfig: expected a JSON object, got {type(d).__name__}")
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(d) - set(names))
        if unknown:
            raise ConfigError(f"TrainConfig: unknown key(s) {unknown}; allowed: {names}")
        return cls(**d)


@dataclasses.dataclass
class TrainResult:
    model: nn.Module                 # the trained model (train mode; channels_last if configured)
    run_dir: Path
    epoch: int                       # epoch in progress (== epochs when complete)
    step_in_epoch: int               # batches done in that epoch (0 at a boundary)
    step: int                        # global optimizer steps done
    total_steps: int
    stop_reason: str                 # "completed" | "time_budget" | "already_complete"
    best: dict | None                # {"metric", "value", "epoch", "step"} of the best validation
    last_val: dict | None            # the latest val_fn result
    last_loss: float | None          # mean loss of the last logging window of this call
    elapsed_s: float                 # wall time of this call
    total_elapsed_s: float           # training wall time summed over resumed calls

    @property
    def completed(self) -> bool:
        return self.stop_reason in ("completed", "already_complete")


STEP_MILESTONES = (90 / 140, 120 / 140)   # SimpleBaseline: lr x0.1 at epochs 90 and 120 of 140


def lr_at(step: int, total_steps: int, warmup_steps: int, peak_lr: float, min_lr_ratio: float = 0.0,
          schedule: str = "cosine") -> float:
    """Learning rate of optimizer step `step` (0-based).

    Warm-up: peak * (step + 1) / warmup_steps for step < warmup_steps (so the first step is not wasted);
    then "cosine": from peak (at step == warmup_steps) to min_lr_ratio * peak (at step == total_steps - 1);
    or "step": peak x 0.1 for each of `STEP_MILESTONES` (fractions of total_steps) passed.
    """
    if step < warmup_steps:
        return peak_lr * (step + 1) / warmup_steps
    if schedule == "step":
        return peak_lr * 0.1 ** sum(step >= m * total_steps for m in STEP_MILESTONES)
    span = max(1, total_steps - 1 - warmup_steps)
    t = min(1.0, (step - warmup_steps) / span)
    lo = min_lr_ratio * peak_lr
    return lo + (peak_lr - lo) * 0.5 * (1.0 + math.cos(math.pi * t))


def _mix_seed(*parts: int) -> int:
    """A 63-bit torch seed that is a pure function of the integers `parts`."""
    a, b = np.random.SeedSequence([int(p) for p in parts]).generate_state(2, dtype=np.uint32)
    return (int(a) << 31) ^ int(b)


def _jsonable(obj: Any) -> Any:
    """Plain JSON types only (numpy scalars -> float/int), for metrics and checkpoints."""
    return json.loads(json.dumps(obj, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


# ---------------------------------------------------------------------------------------------
# training


def _make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Adam:
    # Weight decay on conv / deconv kernels only (not BN, not biases), as EvoPose2D's Keras l2.
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    return torch.optim.Adam([
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ], lr=config.base_lr)


def _better(metric: str, new: float, old: float | None) -> bool:
    if old is None:
        return True
    return new > old if metric == "AP" else new < old


def train(spec: Spec, train_set, run_dir: str | Path, config: TrainConfig | None = None, *,
          val_fn: Callable[[nn.Module], dict] | None = None, resume: bool = True,
          model: nn.Module | None = None, step_fn: Callable | None = None) -> TrainResult:
    """Train `spec` (or the given `model`, which must fit `spec`) on `train_set`; see the module doc.

    `step_fn(ctx, images, batch) -> {"loss": ...}` does a step's forwards and backwards (`train.steps`;
    default `plain_step`; the supernet's sandwich rule is another). Under an initialised torch.distributed
    group of N > 1 ranks (torchrun), the model is wrapped in DDP, each rank trains on its 1/N of every batch,
    and only rank 0 writes the run directory and validates (`train.distributed`).

    train_set items are dicts with `image` (3, H, W), `target` (K, h, w), `target_weight` (K,).
    `val_fn(model) -> dict` runs after every `val_every` epochs, after the last epoch and when the
    time budget stops the run. resume=True continues from run_dir/checkpoints/last.pt if it exists
    (the spec and the TRAJECTORY_FIELDS of the config must match); resume=False starts over and
    overwrites metrics.jsonl and the checkpoints.
    """
    t_call = time.perf_counter()
    config = config or TrainConfig()
    if not isinstance(config, TrainConfig):
        raise ConfigError(f"config must be a TrainConfig, got {type(config).__name__}")
    run_dir = Path(run_dir)
    ckpt_dir = run_dir / "checkpoints"
    last_path, best_path = ckpt_dir / "last.pt", ckpt_dir / "best.pt"
    metrics_path = run_dir / "metrics.jsonl"

    step_fn = step_fn or plain_step
    ranks = current_ranks()
    device = resolve_device(config.device)
    if device.type == "cuda" and ranks.distributed:
        device = torch.device("cuda", torch.cuda.current_device())
    if config.fp16 and device.type != "cuda":
        raise ConfigError(f"TrainConfig.fp16 = True needs a CUDA device, got device {config.device!r} ({device}); "
                          f"on the CPU use bf16 (native only where the CPU has AMX / AVX512-BF16) or fp32")
    check_batch_size(config.batch_size, ranks)
    n = len(train_set)
    bs = config.batch_size
    if ranks.distributed and not config.drop_last and n % bs:
        raise ConfigError(f"under DDP the last batch must split over the {ranks.world} ranks too: use drop_last=True, "
                          f"or a training set whose size ({n}) is a multiple of batch_size {bs}")
    spe = n // bs if config.drop_last else math.ceil(n / bs)
    if spe == 0:
        raise ConfigError(f"the training set has {n} samples, fewer than TrainConfig.batch_size={bs} "
                          f"with drop_last=True: no full batch; lower batch_size or set drop_last=False")
    total_steps = config.epochs * spe
    warmup_steps = round(config.warmup_epochs * spe)
    peak_lr = config.base_lr * bs / 32

    if model is None:
        model = build_model(spec, generator=torch.Generator().manual_seed(config.seed))
    else:
        check_state_dict(reference_state(spec), model.state_dict(), "train(model=...)")
    model = model.to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = _make_optimizer(model, config)
    drop_rng = torch.Generator().manual_seed(_mix_seed(config.seed, DROP_STREAM))
    scaler = torch.amp.GradScaler("cuda") if config.fp16 else None
    set_drop_generator(model, drop_rng)

    epoch, step_in_epoch, step = 0, 0, 0
    best: dict | None = None
    last_val: dict | None = None
    prev_elapsed = 0.0
    if resume and last_path.exists():
        ckpt = read_checkpoint(last_path)
        try:
            stored_spec = spec_from_dict(ckpt["spec"])
        except PoseNASError as e:
            raise CheckpointError(f"checkpoint {last_path}: stored spec is invalid: {e}") from None
        if stored_spec != spec:
            raise CheckpointError(f"cannot resume {last_path}: it was trained with a different spec "
                                  f"({spec_mismatch(stored_spec, spec)}); use resume=False or a new run_dir")
        old = ckpt.get("config", {})
        defaults = TrainConfig().to_dict()       # fields added later keep their default in older checkpoints
        for name in TrainConfig.TRAJECTORY_FIELDS:
            if old.get(name, defaults[name]) != getattr(config, name):
                raise ConfigError(f"cannot resume {last_path}: it was trained with {name}={old.get(name)!r}, "
                                  f"but the config has {name}={getattr(config, name)!r}; use the same value, "
                                  f"resume=False or a new run_dir")
        if ckpt.get("steps_per_epoch") != spe:
            raise ConfigError(f"cannot resume {last_path}: it had {ckpt.get('steps_per_epoch')} steps per epoch, "
                              f"the training set ({n} samples) now gives {spe}; use the same data, resume=False "
                              f"or a new run_dir")
        check_state_dict(model.state_dict(), ckpt["model"], f"checkpoint {last_path}")
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        set_rng_state(ckpt["rng"])
        if "scaler" in ckpt and scaler is not None:
            scaler.load_state_dict(ckpt["scaler"])
        if "drop_rng" in ckpt:
            drop_rng.set_state(ckpt["drop_rng"])
        epoch, step_in_epoch, step = ckpt["epoch"], ckpt["step_in_epoch"], ckpt["step"]
        total_steps = int(ckpt.get("total_steps", total_steps))
        best, last_val, prev_elapsed = ckpt.get("best"), ckpt.get("last_val"), float(ckpt.get("elapsed_s", 0.0))
        # Drop log lines written after this checkpoint (work lost in the kill): they will be redone.
        if ranks.main:
            kept = [r for r in read_jsonl(metrics_path) if r.get("step", 0) <= step]
            atomic_write_text(metrics_path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in kept))
    elif ranks.main:
        atomic_write_text(metrics_path, "")
        for p in (last_path, best_path):
            p.unlink(missing_ok=True)
    if ranks.main:
        atomic_write_json(run_dir / "config.json", {"train": config.to_dict(), "spec": spec.to_dict()})
    ranks.barrier()              # every rank has read the checkpoint before rank 0 may write a new one
    runner = model
    if ranks.distributed:
        from torch.nn.parallel import DistributedDataParallel

        runner = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                         find_unused_parameters=getattr(step_fn, "find_unused_parameters", False))
    amp_dtype = torch.bfloat16 if config.bf16 else torch.float16

    def backward(loss: torch.Tensor) -> None:
        (scaler.scale(loss) if scaler is not None else loss).backward()

    def make_ctx(step_index: int) -> StepContext:
        return StepContext(runner, step_index,
                           lambda: torch.autocast(device.type, dtype=amp_dtype, enabled=config.bf16 or config.fp16),
                           backward, runner.no_sync if ranks.distributed else contextlib.nullcontext)

    def elapsed() -> float:
        return prev_elapsed + time.perf_counter() - t_call

    def save(path: Path) -> None:
        if not ranks.main:
            return
        extra = {"scaler": scaler.state_dict()} if scaler is not None else {}
        atomic_torch_save(path, extra | {
            "format": CHECKPOINT_FORMAT,
            "spec": spec.to_dict(),
            "config": config.to_dict(),
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "step": step,
            "epoch": epoch,
            "step_in_epoch": step_in_epoch,
            "steps_per_epoch": spe,
            "total_steps": total_steps,
            "rng": rng_state(),
            "drop_rng": drop_rng.get_state(),
            "best": best,
            "last_val": last_val,
            "elapsed_s": elapsed(),
        })

    def validate() -> None:
        nonlocal best, last_val
        if not ranks.main:       # the other ranks wait for rank 0 in the next step's collective
            return
        val = _jsonable(val_fn(model))
        model.train()
        last_val = val
        append_jsonl(metrics_path, {"epoch": epoch, "step": step, "val": val, "time": elapsed(),
                                    "wall": time.time()})
        metric = "AP" if "AP" in val else ("loss" if "loss" in val else None)
        if metric is not None and _better(metric, float(val[metric]), best and best["value"]):
            best = {"metric": metric, "value": float(val[metric]), "epoch": epoch, "step": step}
            save(best_path)

    if step >= total_steps:
        return TrainResult(model, run_dir, epoch, step_in_epoch, step, total_steps, "already_complete", best,
                           last_val, None, time.perf_counter() - t_call, elapsed())

    from tqdm.auto import tqdm

    bar = tqdm(total=total_steps, initial=step, disable=not (config.progress and ranks.main), desc="train", unit="step")
    model.train()
    stop_reason = "completed"
    win_loss, win_steps, win_imgs, win_t0 = {}, 0, 0, time.perf_counter()
    last_loss = None
    budget_s = config.max_minutes * 60 if config.max_minutes else None
    planner = BudgetPlanner(budget_s, val_fn is not None, elapsed(), step) if config.fill_budget else None

    def over_budget() -> bool:
        if budget_s is None:
            return False
        # fill_budget: the budget is the run's (resumed calls included); otherwise this call's.
        return (elapsed() if planner else time.perf_counter() - t_call) > budget_s

    try:
        while step < total_steps:
            if hasattr(train_set, "set_epoch"):
                train_set.set_epoch(epoch)
            perm = torch.randperm(n, generator=torch.Generator().manual_seed(_mix_seed(config.seed, epoch)))
            indices = perm[step_in_epoch * bs: spe * bs].tolist()      # drops the tail when drop_last
            batches = [ranks.shard(indices[i:i + bs]) for i in range(0, len(indices), bs)]
            loader = DataLoader(train_set, batch_sampler=batches, num_workers=config.num_workers,
                                generator=torch.Generator().manual_seed(_mix_seed(config.seed, epoch, step_in_epoch)))
            stop = None
            for batch in loader:
                batch = {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
                images = batch["image"]                                 # (B, 3, H, W)
                if config.channels_last:
                    images = images.contiguous(memory_format=torch.channels_last)
                lr = lr_at(step, total_steps, warmup_steps, peak_lr, config.min_lr_ratio, config.lr_schedule)
                for g in optimizer.param_groups:
                    g["lr"] = lr
                optimizer.zero_grad(set_to_none=True)
                losses = step_fn(make_ctx(step), images, batch)         # forward(s) + backward(s)
                if scaler is not None:
                    scaler.unscale_(optimizer)
                if config.grad_clip is not None:
                    nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                if scaler is not None:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
                step += 1
                step_in_epoch += 1
                bar.update(1)

                for k, v in losses.items():
                    win_loss[k] = win_loss.get(k, 0.0) + float(v)
                win_steps += 1
                win_imgs += images.shape[0] * ranks.world
                if step % config.log_every == 0 or step_in_epoch == spe:
                    now = time.perf_counter()
                    means = {k: v / win_steps for k, v in win_loss.items()}
                    last_loss = means["loss"]
                    if planner is not None:
                        total_steps = planner.replan(step, elapsed(), total_steps)
                    if ranks.main:
                        append_jsonl(metrics_path, means | {"step": step, "epoch": epoch, "lr": lr,
                                                            "img_per_s": win_imgs / max(now - win_t0, 1e-9),
                                                            "total_steps": total_steps, "time": elapsed(),
                                                            "wall": time.time()},
                                     fsync=False)     # a resume rewrites the log up to its checkpoint anyway
                    bar.set_postfix(loss=f"{last_loss:.3g}", lr=f"{lr:.2g}")
                    win_loss, win_steps, win_imgs, win_t0 = {}, 0, 0, now
                out_of_time = over_budget()
                if ranks.distributed and (budget_s is not None or planner is not None):
                    out_of_time, total_steps = ranks.agree([out_of_time, total_steps])   # rank 0's clock decides
                bar.total = total_steps
                if out_of_time:
                    stop = "time_budget"
                elif step >= total_steps:
                    stop = "completed"
                if step_in_epoch < spe:
                    if stop:
                        break
                    if config.ckpt_every_steps and step % config.ckpt_every_steps == 0:
                        save(last_path)
            if stop and step_in_epoch < spe:                    # stopped mid-epoch
                stop_reason = stop
                if val_fn is not None:
                    planner.validate(validate) if planner else validate()
                save(last_path)
                break
            epoch += 1
            step_in_epoch = 0
            if val_fn is not None and (epoch % config.val_every == 0 or stop):
                planner.validate(validate) if planner else validate()
            save(last_path)
            win_t0 = time.perf_counter()        # throughput windows exclude validation and saving
            if stop:
                stop_reason = stop
                break
    finally:
        bar.close()
    if ranks.distributed:          # BN statistics are per rank: every rank ends with rank 0's (the saved ones)
        for b in model.buffers():
            torch.distributed.broadcast(b, 0)
    return TrainResult(model, run_dir, epoch, step_in_epoch, step, total_steps, stop_reason, best, last_val,
                       last_loss, time.perf_counter() - t_call, elapsed())
