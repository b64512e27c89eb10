"""The SynthPose difficulty figures (issue 2):

1. OKS AP of the "mean pose placed in the box" predictor on the default val split (target <= 0.25);
2. OKS AP of the baseline network trained for at most `--minutes` (15) on 2 cores (target >= 0.60).

The recipe (every part overridable): `baseline-resnet-s2` (the half-width ResNet-18 SimpleBaseline with
heatmaps at stride 2) at 128x96 with the `short-cpu` training recipe (`posenas_core/train/recipes.py`),
precision and memory format measured on this CPU ("auto"), and a schedule that the trainer re-plans from
the speed it measures so that it ends inside the budget. The same run from the command line:

    posenas data synth --out D --train 8000 --val 500
    posenas train --data D --model baseline-resnet-s2 --input 128x96 --epochs auto --minutes 15 --out R
    posenas eval R/checkpoints/last.pt --data D

    .venv/bin/python benchmarks/ap_figures.py [--train 8000] [--val 500] [--minutes 15] [--model baseline-resnet-s2]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from _common import OUT, emit

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=None, help="dataset dir (default reports/bench/synthpose-DIFFICULTY)")
    ap.add_argument("--train", type=int, default=8000, help="train images to generate if --data is missing")
    ap.add_argument("--val", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--difficulty", choices=("easy", "default", "hard"), default="default")
    ap.add_argument("--model", default="baseline-resnet-s2")
    ap.add_argument("--input", default="128x96")
    ap.add_argument("--minutes", type=float, default=15.0)
    ap.add_argument("--recipe", default="short-cpu", help="training recipe (posenas_core/train/recipes.py)")
    ap.add_argument("--batch-size", type=int, default=None, help="default: the recipe's")
    ap.add_argument("--lr", type=float, default=None, help="default: the recipe's")
    ap.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                    help="auto: bf16 only where native and measured faster on this CPU")
    ap.add_argument("--aug", type=json.loads, default=None, help="AugConfig fields as JSON (default: the recipe's)")
    ap.add_argument("--run", type=Path, default=None, help="run dir (default reports/bench/ap_run-DIFFICULTY)")
    a = ap.parse_args()
    from posenas_core import pipeline
    from posenas_core.data.synthpose import SynthConfig, write_synthpose

    data = a.data or OUT / f"synthpose-{a.difficulty}"
    run = a.run or OUT / f"ap_run-{a.difficulty}"
    hw = pipeline.parse_input_size(a.input)
    t0 = time.perf_counter()
    if not (data / "synthpose.json").is_file():
        cfg = {"easy": SynthConfig.easy, "default": SynthConfig, "hard": SynthConfig.hard}[a.difficulty]()
        write_synthpose(data, n_train=a.train, n_val=a.val, seed=a.seed, config=cfg, progress=True)
    gen_s = time.perf_counter() - t0
    mean_pose = pipeline.mean_pose_baseline(data)

    shutil.rmtree(run, ignore_errors=True)
    summary = pipeline.train_on_dataset(data_dir=data, model=a.model, run_dir=run, input_hw=hw, epochs="auto",
                                        recipe=a.recipe, batch_size=a.batch_size, base_lr=a.lr, max_minutes=a.minutes,
                                        seed=a.seed, bf16=pipeline.PRECISIONS[a.precision], channels_last="auto",
                                        aug=a.aug, progress=True, validate=False)
    metrics = {}
    for decode in ("argmax", "dark"):
        m = pipeline.evaluate_checkpoint(run / "checkpoints" / "last.pt", data_dir=data, decode=decode, input_hw=hw)
        metrics[decode] = {"AP": m["coco"]["AP"], "coco": m["coco"], "per_joint_ap": m["per_joint_ap"],
                           "pck@0.2": m["pck@0.2"]}
    emit(f"ap_figures_{a.difficulty}", {"difficulty": a.difficulty,
        "data": str(data), "generation_s": round(gen_s, 1), "config": json.loads((data / "synthpose.json").read_text())["config"],
        "val_persons": mean_pose["n_persons"], "model": a.model, "input": a.input, "format": summary["format"], "recipe": a.recipe,
        "aug": summary["aug"],
        "epochs": summary["epochs"], "train_persons": summary.get("train_persons"), "budget_minutes": a.minutes,
        "train_seconds": summary.get("total_elapsed_s", summary.get("train_seconds")),
        "stop_reason": summary.get("stop_reason"),
        "mean_pose_AP": mean_pose["coco"]["AP"], "baseline_AP": metrics["argmax"]["AP"],
        "baseline_AP_dark": metrics["dark"]["AP"], "eval": metrics, "mean_pose": mean_pose["coco"],
    })


if __name__ == "__main__":
    main()
