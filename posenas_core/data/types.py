"""The one sample type every reader produces.

A `PersonRecord` is one person instance in one image (or video frame): the metadata a
top-down pipeline needs, without the pixels. Pixels come from an `ImageSource`
(a directory on disk, or an in-memory mapping for SynthPose).

Coordinates are image pixels with pixel centres at integer coordinates (see
`posenas_core.data.geometry`). Keypoints are (17, 3): x, y, v with COCO visibility
(0 absent, 1 labelled but occluded, 2 visible).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Mapping, Protocol

import numpy as np

from posenas_core.errors import DataError

__all__ = ["PersonRecord", "ImageSource", "DirectoryImageSource", "MemoryImageSource", "CachedImageSource"]


@dataclasses.dataclass
class PersonRecord:
    image_id: int
    file_name: str            # relative to the image source root
    width: int                # image size in pixels
    height: int
    bbox: np.ndarray          # (4,) float32 x, y, w, h (ground truth or detection)
    keypoints: np.ndarray     # (K, 3) float32 x, y, v; all zeros for detections without GT
    ann_id: int = -1          # annotation id (-1 for a detection)
    score: float = 1.0        # detection score (1.0 for ground-truth boxes)
    area: float = 0.0         # COCO 'area' (segment area; used by OKS)
    track_id: int = -1        # video: the person's track
    video_id: str = ""        # video: the sequence name
    frame_index: int = -1     # video: 0-based frame position in the sequence

    def __post_init__(self):
        self.bbox = np.asarray(self.bbox, dtype=np.float32).reshape(-1)
        if self.bbox.shape != (4,):
            raise DataError(f"{self.file_name}: bbox must have 4 numbers [x, y, w, h], got {self.bbox.size}")
        kp = np.asarray(self.keypoints, dtype=np.float32)
        if kp.ndim == 1:
            if kp.size % 3:
                raise DataError(f"{self.file_name}: keypoints length {kp.size} is not a multiple of 3 (x, y, v)")
            kp = kp.reshape(-1, 3)
        if kp.ndim != 2 or kp.shape[1] != 3:
            raise DataError(f"{self.file_name}: keypoints must be (K, 3), got shape {kp.shape}")
        self.keypoints = kp


class ImageSource(Protocol):
    def load(self, file_name: str) -> np.ndarray:
        """Return the image as an HxWx3 uint8 RGB array; raise DataError if missing/corrupt."""


class DirectoryImageSource:
    """Images read from files under `root` with OpenCV (returned as RGB)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def load(self, file_name: str) -> np.ndarray:
        import cv2

        path = self.root / file_name
        if not path.is_file():
            raise DataError(f"image file not found: {path}")
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            raise DataError(f"image file is not a readable image: {path}")
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)

    def __repr__(self):
        return f"DirectoryImageSource({str(self.root)!r})"


class MemoryImageSource:
    """Images held in memory, keyed by file name (SynthPose without writing files)."""

    def __init__(self, images: Mapping[str, np.ndarray]):
        self.images = images

    def load(self, file_name: str) -> np.ndarray:
        try:
            return self.images[file_name]
        except KeyError:
            raise DataError(f"image {file_name!r} is not in this in-memory dataset") from None


class CachedImageSource:
    """Decoded images of another source kept in memory, up to `max_bytes` (then read through uncached).

    Training visits every image once per epoch; decoding a 320x256 JPEG costs about as much as the
    crop, the heatmaps and the normalisation together, so from the second epoch on a cache removes
    most of the data path's cost. Images are cached in the order they are first asked for; once the
    budget is spent, later images are decoded on every call. Arrays are returned read-only (a shared
    cached array must not be modified by a transform)."""

    def __init__(self, source: ImageSource, max_bytes: int = 3 << 30):
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0:
            raise ValueError(f"CachedImageSource: max_bytes must be an integer >= 0, got {max_bytes!r}")
        self.source = source
        self.max_bytes = max_bytes
        self.nbytes = 0
        self._cache: dict[str, np.ndarray] = {}

    def load(self, file_name: str) -> np.ndarray:
        img = self._cache.get(file_name)
        if img is None:
            img = self.source.load(file_name)
            if self.nbytes + img.nbytes <= self.max_bytes:
                img = np.ascontiguousarray(img)
                img.flags.writeable = False
                self._cache[file_name] = img
                self.nbytes += img.nbytes
        return img

    def __len__(self) -> int:
        return len(self._cache)

    def __repr__(self):
        return f"CachedImageSource({self.source!r}, {len(self)} images, {self.nbytes / 2**20:.0f} MiB)"
