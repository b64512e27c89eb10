"""posenas_core.eval: COCO OKS AP / AR, PoseTrack-style per-joint AP, PCK, and the model profiler.

Stands alone: imports only torch, numpy, OpenCV, pycocotools / faster-coco-eval and
posenas_core.{errors, data.keypoints}.
"""

from posenas_core.eval.coco_eval import (
    STAT_NAMES,
    evaluate_keypoints,
    instance_score,
    load_gt,
    load_results,
    make_results,
    oks,
)
from posenas_core.eval.pose_metrics import bbox_norm, group_means, head_size, pck, per_joint_ap, per_joint_stats
from posenas_core.eval.profiler import (
    MACS_CONVENTION,
    count_macs,
    count_params,
    measure_latency,
    profile_model,
)

__all__ = [
    "STAT_NAMES",
    "evaluate_keypoints",
    "instance_score",
    "load_gt",
    "load_results",
    "make_results",
    "oks",
    "bbox_norm",
    "group_means",
    "head_size",
    "pck",
    "per_joint_ap",
    "per_joint_stats",
    "MACS_CONVENTION",
    "count_macs",
    "count_params",
    "measure_latency",
    "profile_model",
]
