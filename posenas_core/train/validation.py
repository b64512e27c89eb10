"""Validation loss of a model over a whole dataset: the training loss, without augmentation or gradients."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader

from posenas_core.errors import ConfigError

__all__ = ["validation_loss"]


def validation_loss(model: nn.Module, dataset, batch_size: int = 32, channels_last: bool = False) -> float:
    """Masked heatmap MSE over a whole dataset: sum_items sum((pred - target)^2 * w) / (N * K * h * w), i.e.
    `steps.heatmap_mse` of one batch holding every item (accumulated in float64). Eval mode, no grad; the
    model's training flag is restored; batches go to the device of the model's weights. ConfigError for an empty
    dataset."""
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    try:
        with torch.no_grad():
            for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0):
                images = batch["image"].to(device)                       # (B, 3, H, W)
                if channels_last:
                    images = images.contiguous(memory_format=torch.channels_last)
                pred = model(images).float()                             # (B, K, h, w)
                diff = pred - batch["target"].to(device).float()
                w = batch["target_weight"].to(device).float()[:, :, None, None]   # (B, K, 1, 1)
                total += float((diff * diff * w).double().sum())
                count += diff.numel()
    finally:
        model.train(was_training)
    if count == 0:
        raise ConfigError("validation_loss: the validation set is empty")
    return total / count
