"""The 17 COCO person keypoints: names, flip pairs, OKS sigmas, limbs, joint groups.

All indices are 0-based. COCO files store the skeleton 1-based; `COCO_SKELETON_1BASED` is that form.
"""

from __future__ import annotations

__all__ = [
    "NUM_KEYPOINTS", "COCO_KEYPOINTS", "FLIP_PAIRS", "FLIP_INDEX", "OKS_SIGMAS", "COCO_SKELETON",
    "COCO_SKELETON_1BASED", "JOINT_SIDE", "JOINT_GROUPS", "POSETRACK_KEYPOINTS",
]

NUM_KEYPOINTS = 17

COCO_KEYPOINTS: tuple[str, ...] = (
    "nose",
    "left_eye", "right_eye",
    "left_ear", "right_ear",
    "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow",
    "left_wrist", "right_wrist",
    "left_hip", "right_hip",
    "left_knee", "right_knee",
    "left_ankle", "right_ankle",
)

# Left/right pairs; a horizontal flip swaps them.
FLIP_PAIRS: tuple[tuple[int, int], ...] = ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))


def _flip_index() -> tuple[int, ...]:
    idx = list(range(NUM_KEYPOINTS))
    for a, b in FLIP_PAIRS:
        idx[a], idx[b] = b, a
    return tuple(idx)


# FLIP_INDEX[j] = the joint that j becomes after a horizontal flip.
FLIP_INDEX: tuple[int, ...] = _flip_index()

# Per-keypoint OKS constants (sigmas) from the COCO evaluation code.
OKS_SIGMAS: tuple[float, ...] = (
    0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072,
    0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089,
)

# Limbs for drawing, 0-based (the COCO skeleton).
COCO_SKELETON: tuple[tuple[int, int], ...] = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7),
    (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)
COCO_SKELETON_1BASED: tuple[tuple[int, int], ...] = tuple((a + 1, b + 1) for a, b in COCO_SKELETON)

# Side of each joint, for colouring: 'C' centre, 'L' left, 'R' right.
JOINT_SIDE: tuple[str, ...] = tuple(
    "C" if n == "nose" else ("L" if n.startswith("left") else "R") for n in COCO_KEYPOINTS
)

# PoseTrack-style per-joint groups (the rows of the per-joint AP table).
JOINT_GROUPS: dict[str, tuple[int, ...]] = {
    "Head": (0, 1, 2, 3, 4),
    "Shoulder": (5, 6),
    "Elbow": (7, 8),
    "Wrist": (9, 10),
    "Hip": (11, 12),
    "Knee": (13, 14),
    "Ankle": (15, 16),
}

# PoseTrack 2018 files name their 17 keypoints differently (indices 1 and 2 are head_bottom and
# head_top; the ears are unlabelled). Same slots as COCO, so the same groups apply.
POSETRACK_KEYPOINTS: tuple[str, ...] = (
    "nose", "head_bottom", "head_top", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)
