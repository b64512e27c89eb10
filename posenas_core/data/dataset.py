"""Torch datasets for top-down pose: one person crop per item, or a clip of one track's frames.

Item dict of `TopDownDataset` (H, W input; h = H/s, w = W/s heatmap; K joints):
    image          float32 (3, H, W)   (RGB/255 - IMAGENET_MEAN) / IMAGENET_STD
    target         float32 (K, h, w)   Gaussian heatmaps (`HeatmapCodec.encode`)
    target_weight  float32 (K,)        1 for a labelled joint inside the crop, else 0
    keypoints      float32 (K, 3)      the joints in crop input pixels, v = 0 outside the crop
    affine         float32 (2, 3)      original image -> (possibly flipped) crop
    flipped        bool
    index          int                 position in `records` (metadata: `dataset.records[index]`)
`ClipDataset` returns the same keys with a leading (T+1) dim on the arrays; `index` is the clip index
and `flipped` one bool (the flip is shared by the frames).

Randomness: item i of epoch e draws from `np.random.default_rng([seed, e, i])`, so an item is the same
whatever the number of DataLoader workers and after a resume. Call `set_epoch(e)` each epoch (in the
main process before building the iterator; with persistent workers rebuild the iterator).
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from typing import Sequence

import numpy as np
import torch

from posenas_core.data.codec import HeatmapCodec
from posenas_core.data.keypoints import FLIP_INDEX
from posenas_core.data.transforms import AugConfig, TransformParams, apply_transform, half_body_box, sample_params
from posenas_core.data.types import PersonRecord
from posenas_core.errors import ConfigError, DataError

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "TopDownDataset", "ClipDataset", "make_clips", "normalize_image"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_SCALE = (1.0 / (255.0 * np.array(IMAGENET_STD, dtype=np.float32))).astype(np.float32)
_BIAS = (-np.array(IMAGENET_MEAN, dtype=np.float32) / np.array(IMAGENET_STD, dtype=np.float32)).astype(np.float32)


def normalize_image(crop: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) RGB -> float32 tensor (3, H, W) = (x/255 - mean) / std."""
    chw = np.ascontiguousarray(crop.transpose(2, 0, 1)).astype(np.float32)
    chw *= _SCALE[:, None, None]
    chw += _BIAS[:, None, None]
    return torch.from_numpy(chw)


def _check_flip_index(flip_index: Sequence[int], K: int) -> tuple[int, ...]:
    fi = tuple(int(i) for i in flip_index)
    if sorted(fi) != list(range(K)):
        raise ConfigError(f"flip_index must be a permutation of 0..{K - 1} (K={K} joints), got {fi}")
    return fi


class _Base(torch.utils.data.Dataset):
    def _setup(self, K, image_source, input_size_hw, codec, train, aug, seed, flip_index):
        H, W = (int(v) for v in input_size_hw)
        self.input_size_hw = (H, W)
        self.image_source = image_source
        if not isinstance(codec, HeatmapCodec):
            raise ConfigError(f"codec must be a HeatmapCodec (its stride is the model's spec.output_stride), "
                              f"got {type(codec).__name__}")
        if tuple(codec.input_size_hw) != (H, W):
            raise ConfigError(f"codec input size {codec.input_size_hw} differs from the dataset's {(H, W)}")
        self.codec = codec
        self.train = bool(train)
        if not isinstance(aug, AugConfig):
            raise ConfigError(f"aug must be an AugConfig, got {type(aug).__name__}")
        self.aug = aug
        self.seed = int(seed)
        self.epoch = 0
        self.flip_index = _check_flip_index(flip_index, K)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _params(self, index: int) -> TransformParams:
        if not self.train:
            return TransformParams.identity()
        return sample_params(np.random.default_rng([self.seed, self.epoch, index]), self.aug)

    def _load(self, record: PersonRecord) -> np.ndarray:
        img = self.image_source.load(record.file_name)
        if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise DataError(f"image {record.file_name!r}: expected an HxWx3 uint8 RGB array, got "
                            f"{getattr(img, 'dtype', type(img).__name__)} {getattr(img, 'shape', '')}")
        return img

    def _one(self, record: PersonRecord, params: TransformParams):
        crop, kps, M = apply_transform(self._load(record), record, params, self.input_size_hw, self.flip_index,
                                       enlarge=self.aug.enlarge, half_body_min_joints=self.aug.half_body_min_joints)
        target, weight = self.codec.encode(kps)
        return normalize_image(crop), target, weight, kps, M


def _check_records(records, what: str) -> int:
    if len(records) == 0:
        raise DataError(f"{what}: the record list is empty; nothing to train or evaluate on")
    K = records[0].keypoints.shape[0]
    for r in records:
        if r.keypoints.shape[0] != K:
            raise DataError(f"{what}: {r.file_name} (ann_id {r.ann_id}) has {r.keypoints.shape[0]} joints, "
                            f"the first record has {K}")
    return K


class TopDownDataset(_Base):
    """One person crop per item (train: augmented with `aug`; val: the plain box crop)."""

    def __init__(self, records: Sequence[PersonRecord], image_source, input_size_hw: Sequence[int],
                 codec: HeatmapCodec, train: bool = True, aug: AugConfig = AugConfig(),
                 seed: int = 0, flip_index: Sequence[int] = FLIP_INDEX):
        self.records = list(records)
        K = _check_records(self.records, "TopDownDataset")
        self._setup(K, image_source, input_size_hw, codec, train, aug, seed, flip_index)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        index = int(index)
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} records")
        index %= len(self)
        params = self._params(index)
        image, target, weight, kps, M = self._one(self.records[index], params)
        return {
            "image": image,                                        # (3, H, W)
            "target": torch.from_numpy(target),                    # (K, h, w)
            "target_weight": torch.from_numpy(weight),             # (K,)
            "keypoints": torch.from_numpy(kps),                    # (K, 3)
            "affine": torch.from_numpy(M.astype(np.float32)),      # (2, 3)
            "flipped": params.flip,
            "index": index,
        }


def make_clips(records: Sequence[PersonRecord], length: int, stride: int = 1) -> list[list[PersonRecord]]:
    """Windows of `length` consecutive frames (frame_index n, n+1, ...) of one (video_id, track_id).

    Successive windows of a track start `stride` frames apart (stride=1: every window; stride=length:
    non-overlapping). Records without a track (track_id < 0) or frame index (< 0) are skipped; a gap
    in the frame indices breaks a track into separate runs. Output sorted by (video_id, track_id, start).
    """
    if isinstance(length, bool) or not isinstance(length, int) or length < 1:
        raise ConfigError(f"make_clips: length must be an integer >= 1, got {length!r}")
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise ConfigError(f"make_clips: stride must be an integer >= 1, got {stride!r}")
    tracks: dict[tuple[str, int], dict[int, PersonRecord]] = defaultdict(dict)
    for r in records:
        if r.track_id < 0 or r.frame_index < 0:
            continue
        frames = tracks[(r.video_id, r.track_id)]
        if r.frame_index in frames:
            raise DataError(f"make_clips: video {r.video_id!r} track {r.track_id} has two records at frame "
                            f"{r.frame_index} ({frames[r.frame_index].file_name}, {r.file_name})")
        frames[r.frame_index] = r
    clips = []
    for key in sorted(tracks):
        frames = tracks[key]
        idx = sorted(frames)  # split into runs of consecutive frame indices
        run_start = 0
        for j in range(1, len(idx) + 1):
            if j == len(idx) or idx[j] != idx[j - 1] + 1:
                run = idx[run_start:j]
                for s in range(0, len(run) - length + 1, stride):
                    clips.append([frames[f] for f in run[s:s + length]])
                run_start = j
    return clips


class ClipDataset(_Base):
    """A clip of T+1 frames of one track per item, all frames with the SAME sampled transform.

    Each frame's box comes from its own record; the scale / rotation / flip draw is shared. Half-body
    is used only if every frame of the clip qualifies (so the crops stay consistent).
    """

    def __init__(self, clips: Sequence[Sequence[PersonRecord]], image_source,
                 input_size_hw: Sequence[int], codec: HeatmapCodec,
                 train: bool = True, aug: AugConfig = AugConfig(), seed: int = 0,
                 flip_index: Sequence[int] = FLIP_INDEX):
        self.clips = [list(c) for c in clips]
        if not self.clips:
            raise DataError("ClipDataset: the clip list is empty; nothing to train or evaluate on")
        lengths = {len(c) for c in self.clips}
        if len(lengths) != 1 or 0 in lengths:
            raise DataError(f"ClipDataset: every clip must have the same non-zero length, got lengths {sorted(lengths)}")
        K = _check_records([r for c in self.clips for r in c], "ClipDataset")
        self._setup(K, image_source, input_size_hw, codec, train, aug, seed, flip_index)

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> dict:
        index = int(index)
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} clips")
        index %= len(self)
        clip = self.clips[index]
        params = self._params(index)
        if params.half_body and any(
                half_body_box(r.keypoints, self.input_size_hw, params.upper_body, self.aug.half_body_min_joints) is None
                for r in clip):
            params = dataclasses.replace(params, half_body=False)
        frames = [self._one(r, params) for r in clip]
        return {
            "image": torch.stack([f[0] for f in frames]),                                   # (T+1, 3, H, W)
            "target": torch.from_numpy(np.stack([f[1] for f in frames])),                   # (T+1, K, h, w)
            "target_weight": torch.from_numpy(np.stack([f[2] for f in frames])),            # (T+1, K)
            "keypoints": torch.from_numpy(np.stack([f[3] for f in frames])),                # (T+1, K, 3)
            "affine": torch.from_numpy(np.stack([f[4] for f in frames]).astype(np.float32)),  # (T+1, 2, 3)
            "flipped": params.flip,
            "index": index,
        }
