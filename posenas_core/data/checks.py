"""Checks of a dataset's images, run before a long job (training, an evolution) writes anything.

    check_images(person_set, progress=True)   -> number of distinct images checked, or DataError
    image_size(source, file_name)             -> (width, height) from the file's header, without decoding

Every image a record refers to must exist and be readable. For files on disk that means: not empty, and
a complete JPEG (start-of-image marker, a frame header with the image size, an end-of-image marker in the
last KiB: a copy cut short loses it) or a complete PNG (signature, IHDR, IEND at the end); any other
format is decoded with OpenCV. Only the headers and the last KiB are read, so the check is cheap: measured
on 10,000 copies of SynthPose's 320x256 JPEGs (warm file cache, one core, 2 runs), 0.4-0.6 s (41-62 us an
image) against 4.0-6.2 s (400-620 us an image) to decode each with cv2.imread; a progress bar shows from
1,000 images on.

The error names the annotation file, the image id, an annotation id that uses the image and its
file_name, says what is wrong with it, and how many other images have a problem too.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from posenas_core.data.types import CachedImageSource, DirectoryImageSource, ImageSource, MemoryImageSource
from posenas_core.errors import DataError

__all__ = ["check_images", "image_problem", "jpeg_frame_size", "header_size", "image_size", "image_available"]

_JPEG_SOI = b"\xff\xd8\xff"
_JPEG_EOI = b"\xff\xd9"
_PNG_SIG = b"\x89PNG\r\n\x1a\n"
_PNG_IEND = b"IEND\xaeB`\x82"
_TAIL = 1024  # bytes read at the end of a file for its end marker (a little padding after it is tolerated)
_PROGRESS_MIN = 1000  # images: fewer are checked without a progress bar (well under a second)


def jpeg_frame_size(f) -> tuple[int, int] | None:
    """(width, height) from the frame header (SOFn) of the JPEG open in `f` (binary), or None when the
    segments after the start-of-image marker end, or reach the scan, before any frame header."""
    f.seek(2)
    while True:
        b = f.read(1)
        while b and b != b"\xff":          # resync to a marker
            b = f.read(1)
        while b == b"\xff":                # fill bytes
            b = f.read(1)
        if not b:
            return None
        m = b[0]
        if m in (0xD8, 0x01) or 0xD0 <= m <= 0xD7:  # markers without a length
            continue
        if m in (0xD9, 0xDA):              # end of image / start of scan before any frame header
            return None
        seg = f.read(2)
        if len(seg) < 2:
            return None
        n = struct.unpack(">H", seg)[0]
        if 0xC0 <= m <= 0xCF and m not in (0xC4, 0xC8, 0xCC):  # SOFn: precision, height, width
            d = f.read(5)
            if len(d) < 5:
                return None
            h, w = struct.unpack(">HH", d[1:5])
            return int(w), int(h)
        f.seek(n - 2, 1)


def header_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR or a JPEG's frame header; None for anything else."""
    with open(path, "rb") as f:
        head = f.read(24)
        if head[:8] == _PNG_SIG and len(head) >= 24:
            w, h = struct.unpack(">II", head[16:24])
            return int(w), int(h)
        if head[:2] != b"\xff\xd8":
            return None
        return jpeg_frame_size(f)


def image_size(source: ImageSource | None, file_name: str) -> tuple[int, int] | None:
    """(width, height) of an image without decoding it where possible (JPEG / PNG header, else OpenCV);
    None if it cannot be known (no such image, no source, another kind of source)."""
    if isinstance(source, MemoryImageSource):
        img = source.images.get(file_name)
        return None if img is None else (int(np.shape(img)[1]), int(np.shape(img)[0]))
    if not isinstance(source, DirectoryImageSource):
        return None
    path = source.root / file_name
    if not path.is_file():
        return None
    size = header_size(path)
    if size is None:
        import cv2

        img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        size = None if img is None else (int(img.shape[1]), int(img.shape[0]))
    return size


def image_available(source: ImageSource | None, file_name: str) -> bool:
    """Whether `source` holds `file_name` now (True for a source that cannot say, or none)."""
    if isinstance(source, MemoryImageSource):
        return file_name in source.images
    if isinstance(source, DirectoryImageSource):
        return (source.root / file_name).is_file()
    return True


def image_problem(path: str | Path) -> str | None:
    """What is wrong with the image file at `path` (a short phrase), or None when it looks readable."""
    path = Path(path)
    if not path.is_file():
        return f"not found at {path}"
    size = path.stat().st_size
    if size == 0:
        return f"is empty (0 bytes): {path}"
    with open(path, "rb") as f:
        head = f.read(16)
        if head.startswith(_JPEG_SOI) or head.startswith(_PNG_SIG):
            f.seek(max(0, size - _TAIL))
            tail = f.read()
            if head.startswith(_PNG_SIG):
                if head[12:16] != b"IHDR":
                    return f"is not a readable PNG (no IHDR header): {path}"
                return None if _PNG_IEND in tail else f"is truncated (no PNG IEND chunk at its end): {path}"
            size = jpeg_frame_size(f)
            if size is None or min(size) == 0:
                return f"is not a readable JPEG (no frame header with the image size): {path}"
            return None if _JPEG_EOI in tail else f"is truncated (no JPEG end-of-image marker at its end): {path}"
    import cv2

    if cv2.imread(str(path), cv2.IMREAD_UNCHANGED) is None:
        return f"is not an image OpenCV can read: {path}"
    return None


def _memory_problem(source: MemoryImageSource, file_name: str) -> str | None:
    if file_name not in source.images:
        return "is not in the in-memory image mapping"
    a = np.asarray(source.images[file_name])
    if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8 or 0 in a.shape:
        return f"is a {a.dtype} array of shape {a.shape}, expected HxWx3 uint8"
    return None


def check_images(person_set, *, progress: bool = True) -> int:
    """Check every distinct image of `person_set.records` (see the module doc); returns how many were checked.

    DataError naming the first bad image (annotation file, image id, annotation id, file_name, the problem)
    and the number of bad images. A PersonSet without an image source (annotations only) is not checked."""
    source = person_set.image_source
    while isinstance(source, CachedImageSource):
        source = source.source
    if source is None:
        return 0
    first: dict[str, object] = {}
    for r in person_set.records:
        first.setdefault(r.file_name, r)
    from tqdm.auto import tqdm

    bad: list[tuple[object, str]] = []
    for name, r in tqdm(first.items(), total=len(first), desc="check images", unit="img",
                        disable=not progress or len(first) < _PROGRESS_MIN):
        if isinstance(source, DirectoryImageSource):
            problem = image_problem(source.root / name)
        elif isinstance(source, MemoryImageSource):
            problem = _memory_problem(source, name)
        else:                                 # another source: load each image (it raises DataError)
            try:
                source.load(name)
                problem = None
            except DataError as err:
                problem = str(err)
        if problem is not None:
            bad.append((r, problem))
    if bad:
        r, problem = bad[0]
        more = f" ({len(bad) - 1} more of the {len(first)} images have a problem too)" if len(bad) > 1 else ""
        raise DataError(f"{person_set.name}: image id {r.image_id} (annotation id {r.ann_id}) file_name "
                        f"{r.file_name!r} {problem}{more}; every image an annotation refers to must be a readable "
                        f"JPEG or PNG (or another format OpenCV reads)")
    return len(first)
