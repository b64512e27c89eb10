"""posenas_core.eval: COCO OKS AP / AR, PoseTrack-style per-joint AP, PCK, and the model profiler.

Stands alone: imports only torch, numpy, OpenCV, pycocotools / faster-coco-eval and
posenas_core.{errors, data.keypoints}; the profiler's latency on a runtime other than eager imports
posenas_core.deploy.runtimes inside the call. Names are imported from their module on first use.
"""

from posenas_core._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "coco_eval": ("STAT_NAMES", "evaluate_keypoints", "instance_score", "load_gt", "load_results", "make_results",
                  "oks"),
    "pose_metrics": ("bbox_norm", "group_means", "head_size", "pck", "per_joint_ap", "per_joint_stats"),
    "profiler": ("MACS_CONVENTION", "count_macs", "count_params", "measure_latency", "profile_model", "spec_stats",
                 "timing_model"),
})
