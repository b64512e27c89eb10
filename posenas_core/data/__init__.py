"""Data: SynthPose generator, COCO / PoseTrack readers, top-down transforms, heatmap codec.

Exports (imported on first use): keypoint tables, pixel geometry, person records and image sources,
the readers, image checks, the top-down datasets, augmentation, the heatmap codec; `synthpose` as a
subpackage. The readers' shared checks (`annotations`) are internal.
"""

from posenas_core._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "keypoints": ("NUM_KEYPOINTS", "COCO_KEYPOINTS", "FLIP_PAIRS", "FLIP_INDEX", "OKS_SIGMAS", "COCO_SKELETON",
                  "COCO_SKELETON_1BASED", "JOINT_SIDE", "JOINT_GROUPS", "POSETRACK_KEYPOINTS"),
    "geometry": ("box_to_center_size", "crop_affine", "apply_affine", "invert_affine", "input_to_heatmap",
                 "heatmap_to_input", "warp_crop", "flip_keypoints", "flip_affine"),
    "types": ("PersonRecord", "ImageSource", "DirectoryImageSource", "MemoryImageSource", "CachedImageSource"),
    "coco": ("PersonSet", "read_coco_keypoints"),
    "detections": ("read_detections",),
    "posetrack": ("read_posetrack",),
    "checks": ("check_images", "image_problem", "image_size", "image_available"),
    "dataset": ("IMAGENET_MEAN", "IMAGENET_STD", "TopDownDataset", "ClipDataset", "make_clips", "normalize_image"),
    "transforms": ("AugConfig", "aug_config_from", "TransformParams", "sample_params", "apply_transform",
                   "half_body_box", "UPPER_BODY_IDS"),
    "codec": ("HeatmapCodec", "flip_back", "flip_test", "default_sigma"),
}, submodules=("synthpose",))
