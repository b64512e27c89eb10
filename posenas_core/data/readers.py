"""Dataset readers: COCO keypoints, COCO detection results, PoseTrack 2018.

Each reader turns a file (or an already loaded dict — SynthPose goes through the same code)
into a `PersonSet`: `PersonRecord`s (one per person instance, pixels via `image_source`)
plus `.coco`, the COCO-format ground truth the evaluator scores against.

- `read_coco_keypoints(ann, image_root, ...)`  COCO person keypoints (ground-truth or detected boxes)
- `read_detections(det, coco, score_thr)`      COCO detection results -> records without keypoints
- `read_posetrack(ann, image_root, ...)`       PoseTrack 2018 videos (one json per video), merged

Validation is strict: every problem raises one `DataError` naming the file, the record
(``annotations[12] (id 345)``) and the field. Details in `coco.py`, `detections.py` and `posetrack.py`;
the checks they share in `annotations.py`.
"""

from posenas_core.data.annotations import AREA_FROM_BOX, sanitize_box
from posenas_core.data.coco import PersonSet, read_coco_keypoints
from posenas_core.data.detections import read_detections
from posenas_core.data.posetrack import DERIVED_BOX_ENLARGE, derive_box, read_posetrack

__all__ = [
    "AREA_FROM_BOX",
    "DERIVED_BOX_ENLARGE",
    "PersonSet",
    "derive_box",
    "read_coco_keypoints",
    "read_detections",
    "read_posetrack",
    "sanitize_box",
]
