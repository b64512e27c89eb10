"""PoseTrack 2018 reader (one JSON per video) with strict validation.

Layout of one video file::

    images:      [{id, file_name, frame_id, vid_id, nframes, is_labeled, ignore_regions_x, ignore_regions_y}]
    annotations: [{id, image_id, category_id, track_id, bbox, bbox_head, keypoints (3*K)}]
    categories:  [{id, name, keypoints: [names...]}]

Real PoseTrack18 names its 17 keypoints `POSETRACK_KEYPOINTS` (head_bottom / head_top in the eye
slots; ears unlabelled); SynthPose uses `COCO_KEYPOINTS`. The file's names are kept in order and
exposed as `PersonSet.keypoint_names`; all videos read together must use the same names.

Rules (documented choices):
- Records and `.coco` annotations come only from frames with ``is_labeled`` true (a frame without the
  field counts as labelled). Annotations on unlabelled frames are validated, then ignored.
- ``frame_index`` = the frame's 0-based position in its video, ordered by ``frame_id`` when every
  frame has one, else by the order of 'images'.
- ``video_id`` = the file stem (e.g. ``000342_mpii_test``), the mapping key, or for a single
  in-memory dict the images' 'vid_id' (else ``"video"``).
- Missing or empty 'keypoints' (real files have some) = all keypoints absent.
- Missing or empty 'bbox' (real files have some): derived from the labelled keypoints (v > 0): their
  min/max extent, enlarged by 15 % in width and height about its centre. An annotation with neither a
  box nor a labelled keypoint carries nothing and is skipped (records and `.coco`).
- Missing 'area' = bbox area * 0.53 (`AREA_FROM_BOX`): PoseTrack has no segment areas, and OKS needs one.
- 'bbox_head' is kept in the `.coco` annotations when present and non-empty (head size for PCKh-style
  scoring).
- Records: labelled persons with ``num_keypoints >= min_keypoints``; the box is sanitised like COCO when
  the image size is known (a box completely outside the image is an error) and zero-area boxes are
  dropped from the records (they stay in `.coco`).
- Image size: the image's 'width'/'height' if present (real PoseTrack has none), else read from the
  image header (JPEG/PNG) or the in-memory array for frames with records; 0 if it cannot be known.
- Image and annotation ids must be unique across all videos read together (as in real PoseTrack18,
  where ids embed the video number), because `.coco` merges them.

`.coco` is a merged COCO-style dict: every frame of every video as an image (with ``video``,
``frame_index``, ``is_labeled``, ``width``, ``height`` and the original fields such as ``frame_id``,
``vid_id``, ``ignore_regions_x/y``), the labelled persons as annotations (``id, image_id, category_id,
track_id, bbox, keypoints, num_keypoints, area, iscrowd=0`` [+ ``bbox_head``]) and the first video's
categories. An evaluator should score only the images with ``is_labeled`` true.
"""

from __future__ import annotations

from pathlib import Path
from collections.abc import Mapping
from typing import Any

import numpy as np

from posenas_core.data.annotations import (AREA_FROM_BOX, check_annotation, check_bbox, check_categories,
                                           check_image, check_keypoints, check_top, get_area, get_int, load_json,
                                           no_persons_message, outside, sanitize_box, where)
from posenas_core.data.checks import image_size
from posenas_core.data.coco import PersonSet, make_image_source
from posenas_core.data.types import PersonRecord
from posenas_core.errors import DataError

__all__ = ["DERIVED_BOX_ENLARGE", "derive_box", "read_posetrack"]

# Enlargement of the keypoint extent when a box has to be derived from keypoints.
DERIVED_BOX_ENLARGE = 1.15

_Video = tuple[str, str, Any]  # (video_id, display name for messages, loaded dict)


def _is_video_dict(d: Mapping) -> bool:
    return any(k in d for k in ("images", "annotations", "categories"))


def _single_name(d: Any) -> str:
    if isinstance(d, Mapping) and isinstance(d.get("images"), list) and d["images"]:
        first = d["images"][0]
        if isinstance(first, Mapping) and first.get("vid_id") not in (None, ""):
            return str(first["vid_id"])
    return "video"


def _collect(ann: Any, name: str | None) -> list[_Video]:
    """Turn every accepted input form into a list of (video_id, display name, dict)."""
    if isinstance(ann, (str, Path)):
        p = Path(ann)
        if p.is_dir():
            files = sorted(p.glob("*.json"))
            if not files:
                raise DataError(f"PoseTrack annotation directory has no *.json files: {p}")
            return [(f.stem, f.name, load_json(f, "PoseTrack annotation file")) for f in files]
        return [(p.stem, name or p.name, load_json(p, "PoseTrack annotation file"))]
    if isinstance(ann, Mapping):
        if _is_video_dict(ann):
            vid = _single_name(ann)
            return [(vid, name or f"<in-memory PoseTrack video {vid}>", ann)]
        if not ann:
            raise DataError(f"{name or '<in-memory PoseTrack>'}: no videos (empty mapping)")
        out = []
        for k, v in ann.items():
            if not isinstance(v, Mapping):
                raise DataError(f"{name or '<in-memory PoseTrack>'}: expected one video dict (images, annotations, "
                                f"categories) or a mapping {{video_name: video dict}}; entry {k!r} is "
                                f"{type(v).__name__}")
            out.append((str(k), str(k), v))
        return out
    if isinstance(ann, list):
        if not ann:
            raise DataError(f"{name or '<in-memory PoseTrack>'}: no videos (empty list)")
        out = []
        for i, item in enumerate(ann):
            if isinstance(item, (str, Path)):
                out.extend(_collect(item, None))
            elif isinstance(item, Mapping):
                vid = _single_name(item)
                vid = f"video{i}" if vid == "video" else vid
                out.append((vid, f"<in-memory PoseTrack video {vid}>", item))
            else:
                raise DataError(f"{name or '<in-memory PoseTrack>'}: list item [{i}] must be a path or a video dict, "
                                f"got {type(item).__name__}")
        return out
    raise DataError(f"PoseTrack annotations must be a path, a directory, a dict or a list, got {type(ann).__name__}")


def derive_box(kp: np.ndarray) -> np.ndarray | None:
    """[x, y, w, h] around the labelled keypoints (v > 0), enlarged by `DERIVED_BOX_ENLARGE`; None if none."""
    vis = kp[:, 2] > 0
    if not vis.any():
        return None
    lo, hi = kp[vis, :2].min(0), kp[vis, :2].max(0)
    c, size = (lo + hi) / 2, (hi - lo) * DERIVED_BOX_ENLARGE
    return np.array([c[0] - size[0] / 2, c[1] - size[1] / 2, size[0], size[1]], dtype=np.float64)


def _given(v: Any) -> bool:
    """False for a missing (None) or empty optional field ('bbox', 'keypoints', 'bbox_head')."""
    return v is not None and not (hasattr(v, "__len__") and len(v) == 0)


def _labelled(im: Mapping, loc: str) -> bool:
    v = im.get("is_labeled", True)
    if isinstance(v, bool) or (isinstance(v, int) and v in (0, 1)):
        return bool(v)
    raise DataError(f"{loc}: 'is_labeled' must be true/false, got {v!r}")


def read_posetrack(ann: str | Path | dict | list, image_root: str | Path | None = None, *,
                   images: Mapping[str, np.ndarray] | None = None, min_keypoints: int = 1,
                   allow_empty: bool = False, name: str | None = None) -> PersonSet:
    """Read PoseTrack 2018 videos into one `PersonSet` (rules in the module docstring).

    `ann`: one video json, a directory of video jsons (read in sorted order), one video dict, a
    {video_name: video dict} mapping, or a list of paths / video dicts. Records carry ``video_id``,
    ``frame_index`` and ``track_id``; `.coco` merges all videos for the COCO evaluator (area = bbox area
    * 0.53 where 'area' is missing). file_name is relative to `image_root` (the dataset root for real
    PoseTrack) or a key of `images`. Videos that give no person record are a DataError unless `allow_empty`.
    """
    videos = _collect(ann, name)
    source = make_image_source(image_root, images)
    set_name = name or (Path(ann).name if isinstance(ann, (str, Path)) else videos[0][1] if len(videos) == 1
                        else f"<{len(videos)} PoseTrack videos>")

    kp_names: tuple[str, ...] | None = None
    first_names_from = ""
    categories: list = []
    img_owner: dict[int, str] = {}   # image id -> display name of its video (uniqueness across videos)
    ann_owner: dict[int, str] = {}
    out_images: list[dict] = []
    out_anns: list[dict] = []
    records: list[PersonRecord] = []
    sizes: dict[str, tuple[int, int] | None] = {}
    n_annotations = 0

    for vid, vname, data in videos:
        check_top(data, vname)
        ks, pid, names = check_categories(data, vname)
        if kp_names is None:
            kp_names, first_names_from, categories = names, vname, list(data["categories"])
        elif names != kp_names:
            raise DataError(f"{vname}: categories 'keypoints' {list(names)} differ from {list(kp_names)} "
                            f"in {first_names_from}; all videos must use the same keypoint names")

        # --- images (frames) ---
        frames: dict[int, dict] = {}
        frame_ids: list[int | None] = []
        for i, im in enumerate(data["images"]):
            loc = where(vname, "images", i, im)
            iid, fn, w, h = check_image(im, loc, frames, need_size=False)
            if iid in img_owner:
                raise DataError(f"{loc}: image id {iid} is also used in {img_owner[iid]}; image ids must be unique "
                                f"across videos (as in PoseTrack 2018)")
            frame_ids.append(get_int(im, "frame_id", loc, required=False))
            frames[iid] = dict(index=i, file_name=fn, width=w, height=h, labelled=_labelled(im, loc), src=im)
        order = list(range(len(frames)))
        if frame_ids and all(f is not None for f in frame_ids):
            seen: dict[int, int] = {}
            for i, f in enumerate(frame_ids):
                if f in seen:
                    raise DataError(f"{where(vname, 'images', i, data['images'][i])}: duplicate 'frame_id' {f} "
                                    f"(also images[{seen[f]}])")
                seen[f] = i
            order = sorted(order, key=lambda i: frame_ids[i])
        position = {i: rank for rank, i in enumerate(order)}
        for iid, fr in frames.items():
            fr["frame_index"] = position[fr["index"]]
            img_owner[iid] = vname

        # --- annotations (persons) ---
        video_ann_ids: dict[int, int] = {}
        n_annotations += len(data["annotations"])
        for i, a in enumerate(data["annotations"]):
            loc = where(vname, "annotations", i, a)
            aid, iid, cid = check_annotation(a, loc, video_ann_ids, frames, ks, "this video's 'images'")
            if aid in ann_owner:
                raise DataError(f"{loc}: annotation id {aid} is also used in {ann_owner[aid]}; annotation ids must "
                                f"be unique across videos (as in PoseTrack 2018)")
            ann_owner[aid] = vname
            if "track_id" not in a:
                raise DataError(f"{loc}: missing 'track_id' (every PoseTrack person needs its track id)")
            tid = get_int(a, "track_id", loc)
            k = ks[cid]
            kp = check_keypoints(a["keypoints"], k, loc) if _given(a.get("keypoints")) else np.zeros((k, 3))
            box = check_bbox(a["bbox"], loc) if _given(a.get("bbox")) else None
            head = check_bbox(a["bbox_head"], loc, "bbox_head") if _given(a.get("bbox_head")) else None
            area = get_area(a, loc)
            fr = frames[iid]
            if not fr["labelled"] or cid != pid:
                continue
            if box is None:
                box = derive_box(kp)
                if box is None:
                    continue  # neither a box nor a labelled keypoint
            if area is None:
                area = float(box[2] * box[3] * AREA_FROM_BOX)
            nk = int((kp[:, 2] > 0).sum())
            coco_ann = dict(id=aid, image_id=iid, category_id=cid, track_id=tid, bbox=[float(v) for v in box],
                            keypoints=[float(v) for v in kp.reshape(-1)], num_keypoints=nk, area=float(area),
                            iscrowd=0)
            if head is not None:
                coco_ann["bbox_head"] = [float(v) for v in head]
            out_anns.append(coco_ann)

            if nk < min_keypoints:
                continue
            fn = fr["file_name"]
            if not (fr["width"] and fr["height"]):
                if fn not in sizes:
                    sizes[fn] = image_size(source, fn)
                if sizes[fn] is not None:
                    fr["width"], fr["height"] = sizes[fn]
            W, H = fr["width"], fr["height"]
            rbox = box
            if W and H:
                if outside(box, W, H):
                    raise DataError(f"{loc}: 'bbox' {np.round(box, 2).tolist()} lies completely outside image "
                                    f"{iid} ({fn}, width {W} height {H})")
                rbox = sanitize_box(box, W, H)
            if rbox[2] * rbox[3] <= 0:
                continue
            records.append(PersonRecord(image_id=iid, file_name=fn, width=W, height=H, bbox=rbox, keypoints=kp,
                                        ann_id=aid, score=1.0, area=float(area), track_id=tid, video_id=vid,
                                        frame_index=fr["frame_index"]))

        for iid, fr in frames.items():
            out_images.append({**fr["src"], "id": iid, "video": vid, "frame_index": fr["frame_index"],
                               "is_labeled": fr["labelled"], "width": fr["width"], "height": fr["height"]})

    if not records and not allow_empty:
        raise DataError(no_persons_message(set_name, len(out_images), n_annotations, min_keypoints))
    coco = {"images": out_images, "annotations": out_anns, "categories": categories}
    return PersonSet(records=records, coco=coco, image_source=source, keypoint_names=kp_names or (), name=set_name)
