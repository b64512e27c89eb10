"""The SynthPose difficulty figures (issue 2):

1. OKS AP of the "mean pose placed in the box" predictor on the default val split (target <= 0.25);
2. OKS AP of the baseline network trained for at most `--minutes` (15) on 2 cores (target >= 0.60).

The number of epochs is chosen so that the cosine schedule ends inside the budget: a short
calibration (`pipeline.measure_train_speed`) measures training img/s on this machine first. The trainer's own time budget
(`max_minutes`) is the hard stop either way.

    .venv/bin/python benchmarks/ap_figures.py [--train 8000] [--val 500] [--minutes 15] [--model baseline-resnet]
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from _common import OUT, emit


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=OUT / "synthpose-default")
    ap.add_argument("--train", type=int, default=8000, help="train images to generate if --data is missing")
    ap.add_argument("--val", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--difficulty", choices=("easy", "default", "hard"), default="default")
    ap.add_argument("--model", default="baseline-resnet")
    ap.add_argument("--input", default="128x96")
    ap.add_argument("--minutes", type=float, default=15.0)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--run", type=Path, default=OUT / "ap_run")
    a = ap.parse_args()
    from posenas_core import pipeline
    from posenas_core.data.synthpose import SynthConfig, write_synthpose

    hw = tuple(int(v) for v in a.input.split("x"))
    t0 = time.perf_counter()
    if not (a.data / "synthpose.json").is_file():
        cfg = {"easy": SynthConfig.easy, "default": SynthConfig, "hard": SynthConfig.hard}[a.difficulty]()
        write_synthpose(a.data, n_train=a.train, n_val=a.val, seed=a.seed, config=cfg, progress=True)
    gen_s = time.perf_counter() - t0
    mean_pose = pipeline.mean_pose_baseline(a.data)

    shutil.rmtree(a.run, ignore_errors=True)
    summary = pipeline.train_on_dataset(data_dir=a.data, model=a.model, run_dir=a.run, input_hw=hw, epochs="auto",
                                        batch_size=a.batch_size, base_lr=a.lr, max_minutes=a.minutes, seed=a.seed,
                                        progress=True, validate=False)
    metrics = {}
    for decode in ("argmax", "dark"):
        m = pipeline.evaluate_checkpoint(a.run / "checkpoints" / "last.pt", data_dir=a.data, decode=decode, input_hw=hw)
        metrics[decode] = {"AP": m["coco"]["AP"], "coco": m["coco"], "per_joint_ap": m["per_joint_ap"],
                           "pck@0.2": m["pck@0.2"]}
    emit(f"ap_figures_{a.difficulty}", {"difficulty": a.difficulty,
        "data": str(a.data), "generation_s": round(gen_s, 1),
        "val_persons": mean_pose["n_persons"], "model": a.model, "input": a.input,
        "epochs": summary["epochs"], "budget_minutes": a.minutes,
        "train_seconds": summary.get("total_elapsed_s", summary.get("train_seconds")),
        "stop_reason": summary.get("stop_reason"),
        "mean_pose_AP": mean_pose["coco"]["AP"], "baseline_AP": metrics["argmax"]["AP"],
        "baseline_AP_dark": metrics["dark"]["AP"], "eval": metrics, "mean_pose": mean_pose["coco"],
    })


if __name__ == "__main__":
    main()
