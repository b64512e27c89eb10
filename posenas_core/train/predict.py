"""Batched top-down prediction: person crops -> heatmaps -> image keypoints -> COCO results.

    results, kps = predict(model, val_set)                 # kps (N, K, 3): image x, y, joint score
    metrics = evaluate_keypoints(gt_coco, results)          # or: make_val_fn(val_set, gt_coco)(model)

For each dataset item (a val-mode `TopDownDataset`: keys `image` (3, H, W), `affine` (2, 3) image ->
crop, `index`), the model's heatmaps (optionally averaged with the un-flipped heatmaps of the
horizontally flipped crop: x -> w-1-x plus the left/right channel swap, no shift) are decoded by
`dataset.codec.decode` to crop input pixels and mapped back to the image with the inverse of `affine`.

Result score (SimpleBaseline / mmpose rescoring): box score (`dataset.records[i].score`) x the mean of the
joint scores above `kpt_score_thr` (0.2); when no joint passes the threshold the mean is taken as 0, so
such an uncertain person ranks last (as mmpose does) rather than first.

    fn = heatmap_fn_from_checkpoint("runs/r1/checkpoints/last.pt", val_set, (128, 96))
    PoseViewer(val_set, kps, heatmap_fn=fn, input_size_hw=(128, 96))     # lab: the heatmap toggle works

`heatmap_fn_from_model` / `heatmap_fn_from_checkpoint` give the PoseViewer's `heatmap_fn(index) -> (K, h, w)`:
the model's heatmaps of person `person_set.records[index]` on its val-mode crop (the box the viewer
draws the heatmap on: `box_to_center_size(bbox, input_hw, 1.25)`), one person per call.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from posenas_core.data.codec import flip_back
from posenas_core.data.geometry import apply_affine, invert_affine
from posenas_core.data.keypoints import FLIP_INDEX
from posenas_core.errors import ConfigError
from posenas_core.eval.coco_eval import evaluate_keypoints, make_results

__all__ = ["predict", "make_val_fn", "output_stride_of", "heatmap_fn_from_model", "heatmap_fn_from_checkpoint"]


def output_stride_of(spec_or_model) -> int:
    """Input pixels per heatmap pixel of a spec or a built model: its `output_stride`, or its spec's.
    ConfigError when it has neither (the stride is never guessed)."""
    for obj in (spec_or_model, getattr(spec_or_model, "spec", None)):
        s = getattr(obj, "output_stride", None)
        if isinstance(s, int) and not isinstance(s, bool) and s > 0:
            return s
    raise ConfigError(f"{type(spec_or_model).__name__} has no output stride: expected a spec, or a model with "
                      f"an `output_stride` or a `spec` (as `models.registry.build_model` returns)")


def _is_channels_last(model: nn.Module) -> bool:
    for p in model.parameters():
        if p.dim() == 4 and p.shape[1] > 1 and p.shape[2] * p.shape[3] > 1:
            return p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
    return False


def predict(model: nn.Module, dataset, *, batch_size: int = 64, flip_test: bool = True, decode: str = "argmax",
            flip_index: Sequence[int] = FLIP_INDEX, num_workers: int = 0, progress: bool = False,
            kpt_score_thr: float = 0.2, category_id: int = 1) -> tuple[list[dict], np.ndarray]:
    """Run `model` over `dataset` (eval mode, no grad) and return (COCO results, keypoints (N, K, 3)).

    results[i] = {"image_id", "category_id", "keypoints": [x, y, joint score] * K (image pixels),
    "score": box score x mean(joint scores > kpt_score_thr), 0 if none (`coco_eval.make_results`)},
    one per item, in dataset order; the array holds the same x, y, joint score (float32). `decode` is "argmax" or "dark" (see `HeatmapCodec.decode`). The model's
    training mode is restored afterwards. Batches go to the device of the model's parameters (fp32, no
    autocast); heatmaps come back to the CPU for decoding.
    """
    codec = dataset.codec
    was_training = model.training
    model.eval()
    cl = _is_channels_last(model)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    chunks: list[np.ndarray] = []                                          # per batch (B, K, 3)
    index_chunks: list[np.ndarray] = []
    from tqdm.auto import tqdm

    try:
        with torch.no_grad():
            for batch in tqdm(loader, disable=not progress, desc="predict", unit="batch"):
                images = batch["image"].to(device)                        # (B, 3, H, W)
                if cl:
                    images = images.contiguous(memory_format=torch.channels_last)
                heat = model(images).float()                              # (B, K, h, w)
                if flip_test:
                    heat_f = model(torch.flip(images, dims=[-1])).float()
                    heat = 0.5 * (heat + flip_back(heat_f, flip_index))
                coords, scores = codec.decode(heat.cpu(), method=decode)  # (B, K, 2) crop px, (B, K)
                affine = batch["affine"].double().numpy()                 # (B, 2, 3) image -> crop
                img_xy = np.stack([apply_affine(invert_affine(M), c) for M, c in zip(affine, coords)])
                chunks.append(np.concatenate([img_xy, np.asarray(scores)[..., None]], axis=-1).astype(np.float32))
                index_chunks.append(np.asarray(batch["index"], dtype=np.int64).reshape(-1))
    finally:
        model.train(was_training)
    if not chunks:
        return [], np.zeros((0, 0, 3), np.float32)
    out = np.concatenate(chunks)                                          # (N, K, 3)
    indices = np.concatenate(index_chunks)
    records = [dataset.records[int(i)] for i in indices]
    results = make_results([r.image_id for r in records], out, [r.score for r in records],
                           category_id=category_id, score_thr=kpt_score_thr)
    return results, out


def make_val_fn(dataset, gt_coco, **predict_kwargs) -> Callable[[nn.Module], dict]:
    """A trainer `val_fn(model) -> dict` of COCO keypoint metrics ("AP", ...) of `predict` on `dataset`.

    `gt_coco` is the COCO keypoint ground truth (dict or JSON path) passed to `evaluate_keypoints`;
    `predict_kwargs` go to `predict` (a `backend=` or `image_ids=` key goes to `evaluate_keypoints`).
    """
    eval_kwargs = {k: predict_kwargs.pop(k) for k in ("backend", "image_ids", "sigmas") if k in predict_kwargs}

    def val_fn(model: nn.Module) -> dict:
        results, _ = predict(model, dataset, **predict_kwargs)
        return evaluate_keypoints(gt_coco, results, **eval_kwargs)

    return val_fn


def heatmap_fn_from_model(model: nn.Module, person_set, input_hw: Sequence[int], *, flip_test: bool = False,
                          flip_index: Sequence[int] = FLIP_INDEX) -> Callable[[int], np.ndarray]:
    """`fn(index) -> (K, h, w)` float32: `model`'s heatmaps of `person_set.records[index]` (the PoseViewer's
    `heatmap_fn`).

    The person is cropped as for evaluation (`TopDownDataset(train=False)`: its box aspect-corrected to
    `input_hw` (H, W) and enlarged 1.25, no augmentation); h, w = H / s, W / s for the model's output stride
    s. `flip_test` averages with the un-flipped heatmaps of the flipped crop, as `predict` does. Each call
    runs the model in eval mode without gradients (its training flag is restored) on the device of its
    parameters; calls are serialised by a lock (a widget may call from a callback thread). IndexError for
    an index outside the records."""
    from posenas_core.data.codec import HeatmapCodec
    from posenas_core.data.dataset import TopDownDataset

    if not isinstance(model, nn.Module):
        raise ConfigError(f"heatmap_fn_from_model needs a torch model (nn.Module), got {type(model).__name__}")
    hw = tuple(int(v) for v in input_hw)
    stride = output_stride_of(model)
    if hw[0] % int(stride) or hw[1] % int(stride):
        raise ConfigError(f"input size {hw[0]}x{hw[1]} is not a multiple of the model's output stride {stride}")
    ds = TopDownDataset(person_set.records, person_set.image_source, hw, codec=HeatmapCodec(hw, int(stride)),
                        train=False, flip_index=flip_index)
    lock = threading.Lock()
    device = next((p.device for p in model.parameters()), torch.device("cpu"))

    def heatmap_fn(index: int) -> np.ndarray:
        image = ds[int(index)]["image"][None].to(device)                   # (1, 3, H, W)
        with lock:
            was_training = model.training
            model.eval()
            try:
                with torch.no_grad():
                    heat = model(image).float()                              # (1, K, h, w)
                    if flip_test:
                        heat_f = model(torch.flip(image, dims=[-1])).float()
                        heat = 0.5 * (heat + flip_back(heat_f, flip_index))
            finally:
                model.train(was_training)
        return heat[0].cpu().numpy().astype(np.float32)                     # (K, h, w)

    return heatmap_fn


def heatmap_fn_from_checkpoint(checkpoint, person_set, input_hw: Sequence[int], *, flip_test: bool = False,
                               map_location="cpu", device="cpu") -> Callable[[int], np.ndarray]:
    """`heatmap_fn_from_model` of the model a trainer checkpoint stores (rebuilt from its spec,
    `checkpoints.load_checkpoint`), run on `device` ("cpu" | "cuda" | "cuda:N" | "auto",
    `machine.resolve_device`); CheckpointError if the file is missing or unreadable."""
    from posenas_core.machine import resolve_device
    from posenas_core.train.checkpoints import load_checkpoint

    dev = resolve_device(device)                    # ConfigError before the file is read
    model, _ = load_checkpoint(Path(checkpoint), map_location=map_location)
    return heatmap_fn_from_model(model.to(dev), person_set, input_hw, flip_test=flip_test)
