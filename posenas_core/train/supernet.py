"""Training a weight-sharing supernet (ViPNAS section 3.2, after BigNAS): the sandwich rule with in-place
distillation, BatchNorm recalibration of a sub-network, and the run that puts them on the core trainer.

    step = SandwichStep(space, seed, num_random=2)     a trainer step function (`train.steps`)
    net = calibrate_subnet(supernet, arch, batches)    extracted sub-network with re-estimated BN statistics
    result = train_supernet("vipnas-res50", train_set, RUN, TrainConfig(...), val_fn=...)

Sandwich rule, per batch: the largest sub-network (the space's max) learns from the ground truth; the smallest
(min) and `num_random` random ones from the ground truth plus the largest's detached heatmaps, with equal
weights (in-place distillation: MSE over every joint and pixel). The gradients of all of them accumulate and
the trainer takes one optimizer step. The random sub-networks of step s are drawn from
numpy.random.default_rng([seed, SANDWICH_STREAM, s]): a resumed run, or every DDP rank, draws the same ones.
The logged "loss" is the largest's ground-truth loss; "loss_min" and "loss_random" (mean) sit beside it.

BatchNorm recalibration: the running statistics of an extracted sub-network are reset and re-estimated as the
cumulative average (momentum None) over the given training batches, in train mode without gradients; the net
is returned in eval mode. A supernet's BN statistics mix every sub-network it trained, so every evaluation
of a sub-network goes through this first.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
from torch import nn

from posenas_core.spaces.supernet import SupernetSpec
from posenas_core.train.steps import StepContext, heatmap_mse

__all__ = ["SandwichStep", "SANDWICH_STREAM", "calibrate_bn", "calibrate_subnet", "calibration_batches",
           "make_supernet_val_fn", "train_supernet"]

SANDWICH_STREAM = 0x5A4D


class SandwichStep:
    """A trainer step function: max (ground truth), min and `num_random` random archs (ground truth + the
    max's heatmaps). The model it is given is called as `model(images, arch)`."""

    find_unused_parameters = True          # an arch leaves the rest of the supernet without gradients (DDP)

    def __init__(self, space, seed: int, num_random: int = 2):
        if not isinstance(num_random, int) or isinstance(num_random, bool) or num_random < 0:
            from posenas_core.errors import ConfigError

            raise ConfigError(f"num_random = {num_random!r} is invalid; allowed: an integer >= 0 (random "
                              f"sub-networks per batch besides the largest and the smallest)")
        self.space, self.seed, self.num_random = space, int(seed), num_random
        self._max, self._min = space.max(), space.min()

    def archs(self, step: int) -> list:
        """[max, min, random_1, ..., random_N] of optimizer step `step` (a pure function of seed and step)."""
        rng = np.random.default_rng([self.seed, SANDWICH_STREAM, int(step)])
        return [self._max, self._min] + [self.space.sample(rng) for _ in range(self.num_random)]

    def __call__(self, ctx: StepContext, images: torch.Tensor, batch: dict) -> dict:
        target, weight = batch["target"], batch["target_weight"]      # (B, K, h, w), (B, K)
        archs = self.archs(ctx.step)
        losses, soft, all_joints = {}, None, None
        for i, arch in enumerate(archs):
            sync_now = i == len(archs) - 1          # DDP: average the accumulated gradients once, at the last
            with (contextlib.nullcontext() if sync_now else ctx.no_sync()):
                with ctx.autocast():
                    pred = ctx.model(images, arch)                      # (B, K, h, w)
                loss = heatmap_mse(pred, target, weight)
                if i == 0:
                    soft = pred.detach()
                    all_joints = torch.ones_like(weight)
                    losses["loss"] = loss.detach()
                else:
                    loss = loss + heatmap_mse(pred, soft, all_joints)
                    key = "loss_min" if i == 1 else "loss_random"
                    losses[key] = losses.get(key, 0.0) + loss.detach() / (1 if i == 1 else self.num_random)
                ctx.backward(loss)
        return losses


@torch.no_grad()
def calibrate_bn(model: nn.Module, batches: Iterable[torch.Tensor]) -> nn.Module:
    """Re-estimate every BatchNorm's running statistics of `model` as the cumulative average over `batches`
    (image tensors (B, 3, H, W)); returns `model` in eval mode. ConfigError when `batches` is empty."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    model.train()
    seen = 0
    try:
        for images in batches:
            model(images.to(device))
            seen += 1
    finally:
        for m, mom in zip(bns, saved):
            m.momentum = mom
    if seen == 0:
        from posenas_core.errors import ConfigError

        raise ConfigError("calibrate_bn: no batches given; BN recalibration needs at least one training batch")
    return model.eval()


def calibrate_subnet(supernet: nn.Module, arch, batches: Iterable[torch.Tensor]) -> nn.Module:
    """The sub-network `arch` extracted from `supernet` (a plain static net with copied weights) with its BN
    statistics re-estimated over `batches`, in eval mode."""
    return calibrate_bn(supernet.extract(arch), batches)


def calibration_batches(dataset, *, num_batches: int = 16, batch_size: int = 32, seed: int = 0) -> list[torch.Tensor]:
    """`num_batches` image batches of `dataset` items drawn without replacement by default_rng([seed, 0xBA7C])
    (fewer when the dataset is smaller); the same seed gives the same batches."""
    n = min(len(dataset), num_batches * batch_size)
    idx = np.random.default_rng([seed, 0xBA7C]).permutation(len(dataset))[:n]
    out = []
    for i in range(0, n, batch_size):
        out.append(torch.stack([torch.as_tensor(dataset[int(j)]["image"]) for j in idx[i:i + batch_size]]))
    return out


def make_supernet_val_fn(evaluate: Callable[[nn.Module], dict], batches: list[torch.Tensor],
                         archs: dict | None = None) -> Callable[[nn.Module], dict]:
    """A trainer val_fn for a supernet: each named arch (default {"max", "min"} of its space) extracted,
    BN-recalibrated on `batches` and scored by `evaluate(net) -> dict` (e.g. `train.predict.make_val_fn`).
    The result has the max's metrics under their own names (so "AP" picks the best checkpoint) and every
    arch's as "<name>/<metric>"."""

    def val_fn(supernet: nn.Module) -> dict:
        chosen = archs or {"max": supernet.space.max(), "min": supernet.space.min()}
        out = {}
        for name, arch in chosen.items():
            metrics = evaluate(calibrate_subnet(supernet, arch, batches))
            out.update({f"{name}/{k}": v for k, v in metrics.items()})
            if name == "max":
                out.update(metrics)
        return out

    return val_fn


def train_supernet(space: str, train_set, run_dir: str | Path, config=None, *, num_random: int = 2,
                   val_fn: Callable | None = None, resume: bool = True):
    """Train the supernet of the registered space `space` with the sandwich rule on the core trainer
    (`train.trainer.train`: checkpoints holding the SupernetSpec and config, exact resume, metrics.jsonl,
    time budget, DDP under torchrun). Returns the trainer's TrainResult (its `model` is the supernet)."""
    from posenas_core.train.trainer import TrainConfig, train

    from posenas_core.errors import ConfigError
    import json

    from posenas_core.runs.io import atomic_write_json
    from posenas_core.train.distributed import current_ranks

    config = config or TrainConfig()
    spec = SupernetSpec(space=space)
    step = SandwichStep(spec.search_space, config.seed, num_random)
    run_dir = Path(run_dir)
    info, path = {"space": space, "num_random": num_random}, run_dir / "supernet.json"
    if resume and path.exists() and (old := json.loads(path.read_text())) != info:
        raise ConfigError(f"cannot resume {run_dir}: it trains {old}, not {info}; use the same space and "
                          f"num_random, resume=False, or a new run directory")
    if current_ranks().main:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, info)
    return train(spec, train_set, run_dir, config, val_fn=val_fn, resume=resume, step_fn=step)
