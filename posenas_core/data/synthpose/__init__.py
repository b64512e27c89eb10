"""SynthPose: the embedded procedural pose dataset (no real dataset can be downloaded here).

People are 3D articulated bodies (`body`) with human proportions and joint limits, posed from motion
cycles and a pose prior (`motion`), dressed (`appearance`), seen from random viewpoints and drawn with
textured clothing and a face that agrees with the eye / ear / nose keypoints (`render`), in cluttered
multi-person scenes with occluders, blur and noise (`scene`). Visibility follows COCO (0 absent with x=y=0, 1 labelled but
occluded, 2 visible) and is decided from a depth-ordered part/instance ID buffer. Output is COCO
(images) and PoseTrack 2018 (videos) format (`writer`).

Public API::

    SynthConfig                     difficulty knobs (frozen; .easy(), .hard(), to_dict() / from_dict())
    generate_images(n, seed, split="train", config=None, progress=False) -> (coco_dict, {file_name: RGB})
    generate_videos(n_videos, seed, split="val", config=None, frames=None, progress=False)
        -> ({video_name: posetrack_dict}, {file_name: RGB})
    write_synthpose(out_dir, n_train, n_val, n_videos=0, seed=0, config=None, progress=True) -> manifest
"""

from posenas_core._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "config": ("SynthConfig",),
    "writer": ("generate_images", "generate_videos", "write_synthpose"),
})
