"""SynthPose generation rate on 1 thread: person instances per second, in memory and on disk.

    .venv/bin/python benchmarks/synth_rate.py [--images 300] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2  # noqa: E402
import torch  # noqa: E402

from _common import emit  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    from posenas_core.data.synthpose import SynthConfig, generate_images, write_synthpose

    out = {"images": a.images, "threads": 1, "config": SynthConfig().to_dict()}
    t0 = time.perf_counter()
    coco, imgs = generate_images(a.images, seed=a.seed, split="train")
    dt = time.perf_counter() - t0
    persons = len(coco["annotations"])
    out["in_memory"] = {"seconds": round(dt, 2), "persons": persons, "persons_per_s": round(persons / dt, 1),
                        "images_per_s": round(a.images / dt, 1), "persons_per_image": round(persons / a.images, 2)}
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        m = write_synthpose(d, n_train=a.images, n_val=0, seed=a.seed, progress=False)
        dt = time.perf_counter() - t0
    persons = m["counts"]["train_persons"] if "train_persons" in m.get("counts", {}) else persons
    out["to_disk"] = {"seconds": round(dt, 2), "persons_per_s": round(persons / dt, 1), "images_per_s": round(a.images / dt, 1)}
    emit("synth_rate", out)


if __name__ == "__main__":
    main()
