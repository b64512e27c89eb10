"""What one training step does with a batch, as a function the trainer calls: forward(s) and backward(s).

    step_fn(ctx: StepContext, images, batch) -> {"loss": tensor, ...}    (detached scalars, logged as means)

The trainer zeroes the gradients before the call, then clips them and takes one optimizer step after it, so a
step function may run several forwards and backwards whose gradients accumulate (the sandwich rule). It must
call `ctx.backward(loss)` (not `loss.backward()`: fp16 scales the loss) and run every forward inside
`ctx.autocast()`. Under torch DDP, every backward but the last of a step goes inside `ctx.no_sync()`, so the
gradients are averaged over the ranks once per step. "loss" is the figure the trainer logs, checks and
plots; other keys are logged beside it.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Callable, ContextManager

import torch
from torch import nn

__all__ = ["StepContext", "plain_step", "heatmap_mse"]


def heatmap_mse(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """mean over (B, K, h, w) of (pred - target)^2 * weight[:, :, None, None]; computed in fp32.

    pred, target: (B, K, h, w); weight: (B, K) (0 for joints without a label).
    """
    if pred.shape != target.shape:
        raise ValueError(f"heatmap_mse: pred shape {tuple(pred.shape)} != target shape {tuple(target.shape)}")
    diff = pred.float() - target.float()
    return (diff * diff * weight.float()[:, :, None, None]).mean()


@dataclasses.dataclass
class StepContext:
    """What a step function may use: the model to call (DDP-wrapped when distributed), the global step index,
    the autocast context, the backward to call and the DDP no-sync context (a no-op otherwise)."""

    model: nn.Module
    step: int
    autocast: Callable[[], ContextManager]
    backward: Callable[[torch.Tensor], None]
    no_sync: Callable[[], ContextManager] = contextlib.nullcontext


def plain_step(ctx: StepContext, images: torch.Tensor, batch: dict) -> dict:
    """One forward and backward of the whole model against the ground-truth heatmaps."""
    with ctx.autocast():
        pred = ctx.model(images)                                       # (B, K, h, w)
    loss = heatmap_mse(pred, batch["target"], batch["target_weight"])
    ctx.backward(loss)
    return {"loss": loss.detach()}
