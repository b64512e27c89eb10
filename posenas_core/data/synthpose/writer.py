"""COCO / PoseTrack dicts for SynthPose, in memory or written to disk.

Determinism: image `index` of split `split` is drawn from
``np.random.default_rng([seed, crc32("image/" + split), index])`` (video `i` from
``[seed, crc32("video/" + split), i]``, its frame `f` noise from ``[..., i, 1 + f]``), so an image does
not depend on how many others are generated. JSON is written with sorted keys and floats rounded to
2 decimals; JPEGs with `cv2.imencode` (quality 90): the same seed writes byte-identical files.

Ids: COCO image ids are 1-based indices, file names ``<split>/<id:012d>.jpg`` (relative to
``OUT/images``); annotation id = image id * 100 + k (k = 1, 2, ...). PoseTrack videos are named
``<i:06d>_synthpose`` (i 1-based), image id = frame_id = 10**10 + i * 10**4 + frame, annotation id =
image id * 100 + k, ``track_id`` = the person's 0-based index in the video.

Layout written by `write_synthpose` (paths relative to OUT)::

    annotations/person_keypoints_<split>.json      COCO (file_name relative to images/)
    images/<split>/000000000001.jpg
    posetrack/annotations/<split>/<video>.json     PoseTrack 2018 (file_name relative to posetrack/)
    posetrack/images/<split>/<video>/000000.jpg
    synthpose.json                                 manifest, written last
"""

from __future__ import annotations

import hashlib
import json
import numbers
import os
import re
import zlib
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from posenas_core.data.keypoints import COCO_KEYPOINTS, COCO_SKELETON_1BASED
from posenas_core.data.synthpose.config import CONFIG_VERSION, SynthConfig
from posenas_core.data.synthpose.scene import PersonAnn, render_image, render_video
from posenas_core.errors import ConfigError
from posenas_core.runs.io import atomic_write_bytes, atomic_write_json

__all__ = ["generate_images", "generate_videos", "write_synthpose"]

DATASET_VERSION = 1
JPEG_QUALITY = 90
_SPLIT_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


# ------------------------------------------------------------------------------------ validation
def check_count(name: str, n) -> int:
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
        raise ConfigError(f"{name} must be a non-negative integer, got {n!r}")
    return int(n)


def check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < 2**63:
        raise ConfigError(f"seed must be an integer in [0, 2**63), got {seed!r}")
    return int(seed)


def check_split(split) -> str:
    if not isinstance(split, str) or not _SPLIT_RE.match(split):
        raise ConfigError(f"split must be a short lower-case name like 'train' or 'val' "
                          f"(letters, digits, '_'), got {split!r}")
    return split


def check_config(config) -> SynthConfig:
    if config is None:
        return SynthConfig()
    if not isinstance(config, SynthConfig):
        raise ConfigError(f"config must be a SynthConfig or None, got {type(config).__name__}")
    return config


def split_code(kind: str, split: str) -> int:
    return zlib.crc32(f"{kind}/{split}".encode())


# ---------------------------------------------------------------------------------------- dicts
def _r(x) -> float:
    return round(float(x), 2)


def categories() -> list[dict]:
    return [{"id": 1, "name": "person", "supercategory": "person", "keypoints": list(COCO_KEYPOINTS),
             "skeleton": [list(p) for p in COCO_SKELETON_1BASED]}]


def ann_dict(a: PersonAnn, ann_id: int, image_id: int, video: bool = False) -> dict:
    kp = []
    for x, y, v in a.keypoints:
        v = int(v)
        kp += [_r(x), _r(y), v] if v > 0 else [0.0, 0.0, 0]
    d = {"id": ann_id, "image_id": image_id, "category_id": 1, "bbox": [_r(b) for b in a.bbox],
         "area": _r(a.area), "keypoints": kp, "num_keypoints": int((a.keypoints[:, 2] > 0).sum()), "iscrowd": 0}
    if video:
        d["track_id"] = int(a.track_id)
        d["bbox_head"] = [_r(b) for b in a.head_box]
    return d


def jpeg_bytes(img_rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img_rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:                                       # pragma: no cover - OpenCV failure
        raise RuntimeError("cv2.imencode failed to encode a JPEG")
    return buf.tobytes()


def iter_images(n: int, seed: int, split: str, cfg: SynthConfig, start: int = 0
                ) -> Iterator[tuple[dict, list[dict], np.ndarray]]:
    """Yield (image entry, annotation dicts, RGB image) for images start+1..n of a split."""
    code = split_code("image", split)
    for index in range(start, n):
        rng = np.random.default_rng([seed, code, index])
        img, anns = render_image(cfg, rng)
        image_id = index + 1
        entry = {"id": image_id, "file_name": f"{split}/{image_id:012d}.jpg", "width": cfg.width, "height": cfg.height}
        yield entry, [ann_dict(a, image_id * 100 + k + 1, image_id) for k, a in enumerate(anns)], img


def coco_dict(images: list[dict], annotations: list[dict], seed: int, split: str) -> dict:
    return {"info": {"description": "SynthPose: procedural people with COCO keypoints", "version": DATASET_VERSION,
                     "seed": seed, "split": split},
            "images": images, "annotations": annotations, "categories": categories()}


def video_name(i: int) -> str:
    return f"{i + 1:06d}_synthpose"


def iter_videos(n_videos: int, seed: int, split: str, cfg: SynthConfig, frames: int
                ) -> Iterator[tuple[str, dict, list[tuple[str, np.ndarray]]]]:
    """Yield (video name, PoseTrack dict, [(file name, RGB frame)]) per video."""
    code = split_code("video", split)
    for i in range(n_videos):
        rng = np.random.default_rng([seed, code, i])
        seq = render_video(cfg, rng, frames, lambda f, i=i: np.random.default_rng([seed, code, i, 1 + f]))
        name = video_name(i)
        images, anns, pix = [], [], []
        for f, (img, people) in enumerate(seq):
            image_id = 10**10 + (i + 1) * 10**4 + f
            fn = f"images/{split}/{name}/{f:06d}.jpg"
            images.append({"id": image_id, "file_name": fn, "frame_id": image_id, "vid_id": f"{i + 1:06d}",
                           "nframes": frames, "is_labeled": True, "ignore_regions_x": [], "ignore_regions_y": [],
                           "width": cfg.width, "height": cfg.height})
            anns += [ann_dict(a, image_id * 100 + k + 1, image_id, video=True) for k, a in enumerate(people)]
            pix.append((fn, img))
        yield name, {"images": images, "annotations": anns, "categories": categories()}, pix


def _progress(total: int, enabled: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, desc=desc, unit="img")


# ---------------------------------------------------------------------------------------- public
def generate_images(n: int, seed: int, split: str = "train", config: SynthConfig | None = None,
                    progress: bool = False) -> tuple[dict, dict[str, np.ndarray]]:
    """In memory: (COCO dict, {file_name: HxWx3 uint8 RGB}); file_name like 'train/000000000001.jpg'."""
    n, seed, split, cfg = check_count("n", n), check_seed(seed), check_split(split), check_config(config)
    images, anns, pix = [], [], {}
    with _progress(n, progress, f"SynthPose {split}") as bar:
        for entry, a, img in iter_images(n, seed, split, cfg):
            images.append(entry)
            anns += a
            pix[entry["file_name"]] = img
            bar.update(1)
    return coco_dict(images, anns, seed, split), pix


def generate_videos(n_videos: int, seed: int, split: str = "val", config: SynthConfig | None = None,
                    frames: int | None = None, progress: bool = False) -> tuple[dict[str, dict], dict[str, np.ndarray]]:
    """In memory: ({video_name: PoseTrack dict}, {file_name: image}), file names 'images/<split>/<video>/000000.jpg'."""
    n_videos, seed = check_count("n_videos", n_videos), check_seed(seed)
    split, cfg = check_split(split), check_config(config)
    frames = _check_frames(frames, cfg)
    videos, pix = {}, {}
    with _progress(n_videos * frames, progress, f"SynthPose videos {split}") as bar:
        for name, d, frames_px in iter_videos(n_videos, seed, split, cfg, frames):
            videos[name] = d
            pix.update(frames_px)
            bar.update(frames)
    return videos, pix


def _check_frames(frames, cfg: SynthConfig) -> int:
    if frames is None:
        return cfg.video_frames
    if isinstance(frames, bool) or not isinstance(frames, numbers.Integral) or not 1 <= frames <= 9999:
        raise ConfigError(f"frames must be an integer in [1, 9999] (or None for config.video_frames), got {frames!r}")
    return int(frames)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_image_range(out: Path, start: int, stop: int, seed: int, split: str, cfg: SynthConfig
                       ) -> tuple[list[dict], list[dict]]:
    """Render and write images start..stop-1 of a split; (image entries, annotations). Runs in a worker."""
    images, anns = [], []
    for entry, a, img in iter_images(stop, seed, split, cfg, start=start):
        atomic_write_bytes(out / "images" / entry["file_name"], jpeg_bytes(img))
        images.append(entry)
        anns += a
    return images, anns


def _write_images(out: Path, n: int, seed: int, split: str, cfg: SynthConfig, workers: int, bar
                  ) -> tuple[list[dict], list[dict]]:
    """Images 1..n of a split on `workers` processes (chunks of 32; the files do not depend on the split)."""
    chunks = [(i, min(n, i + 32)) for i in range(0, n, 32)]
    images, anns = [], []
    if workers <= 1 or len(chunks) <= 1:
        for a, b in chunks:
            im, an = _write_image_range(out, a, b, seed, split, cfg)
            images += im
            anns += an
            bar.update(b - a)
        return images, anns
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # spawn: the caller may hold torch / OpenMP threads that a fork would copy in an undefined state.
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_write_image_range, out, a, b, seed, split, cfg) for a, b in chunks]
        for (a, b), fut in zip(chunks, futures):   # in order: the annotation file lists images by id
            im, an = fut.result()
            images += im
            anns += an
            bar.update(b - a)
    return images, anns


def default_workers(n_images: int) -> int:
    """Processes for generating `n_images`: one per core, but one for small sets (a spawn costs ~1 s)."""
    return 1 if n_images < 400 else max(1, min(os.cpu_count() or 1, 8))


def write_synthpose(out_dir, n_train: int, n_val: int, n_videos: int = 0, seed: int = 0,
                    config: SynthConfig | None = None, progress: bool = True, workers: int | None = None) -> dict:
    """Write the dataset under `out_dir` (layout in the module docstring); return the manifest dict.

    Every file is written atomically; the manifest `synthpose.json` is written last (an existing one is
    removed first, so a dataset without a manifest is incomplete). Videos go to split 'val'. Images are
    rendered on `workers` processes (default `default_workers`); the files are the same for any number.
    """
    n_train, n_val = check_count("n_train", n_train), check_count("n_val", n_val)
    n_videos, seed, cfg = check_count("n_videos", n_videos), check_seed(seed), check_config(config)
    if workers is None:
        workers = default_workers(n_train + n_val)
    if isinstance(workers, bool) or not isinstance(workers, numbers.Integral) or workers < 1:
        raise ConfigError(f"workers must be an integer >= 1, got {workers!r}")
    if not isinstance(out_dir, (str, os.PathLike)):
        raise ConfigError(f"out_dir must be a path, got {type(out_dir).__name__}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"out_dir {str(out)!r} exists and is not a directory")
    manifest_path = out / "synthpose.json"
    if manifest_path.exists():
        manifest_path.unlink()
    frames = cfg.video_frames
    counts, files = {}, {}
    with _progress(n_train + n_val + n_videos * frames, progress, "SynthPose") as bar:
        for split, n in (("train", n_train), ("val", n_val)):
            images, anns = _write_images(out, n, seed, split, cfg, int(workers), bar)
            rel = f"annotations/person_keypoints_{split}.json"
            atomic_write_json(out / rel, coco_dict(images, anns, seed, split), indent=None)
            counts[split] = {"images": len(images), "persons": len(anns),
                             "persons_with_keypoints": sum(1 for a in anns if a["num_keypoints"] > 0)}
            files[split] = {"annotations": rel, "images": f"images/{split}", "sha256": _sha256(out / rel)}
        vids = []
        n_pt_anns = 0
        for name, d, frames_px in iter_videos(n_videos, seed, "val", cfg, frames):
            for fn, img in frames_px:
                atomic_write_bytes(out / "posetrack" / fn, jpeg_bytes(img))
            rel = f"posetrack/annotations/val/{name}.json"
            atomic_write_json(out / rel, d, indent=None)
            vids.append({"name": name, "annotations": rel, "sha256": _sha256(out / rel)})
            n_pt_anns += len(d["annotations"])
            bar.update(frames)
        counts["posetrack_val"] = {"videos": n_videos, "frames": n_videos * frames, "persons": n_pt_anns}
        files["posetrack_val"] = {"root": "posetrack", "annotations": "posetrack/annotations/val",
                                  "images": "posetrack/images/val", "videos": vids}
    manifest = {"version": DATASET_VERSION, "config_version": CONFIG_VERSION, "generator": "synthpose",
                "seed": seed, "config": cfg.to_dict(), "counts": counts, "files": files}
    atomic_write_json(manifest_path, manifest)
    return json.loads(json.dumps(manifest))
