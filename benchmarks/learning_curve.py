"""Learning curves on short CPU budgets: OKS AP after 1, 2, 4, 8 and 15 minutes of training, for the
lab's default (`baseline-resnet-skip` with the `short-cpu` recipe) and the paper's (SimpleBaseline: its
deconv head, `baseline-resnet-s2`, with the `simplebaseline` recipe), in one run. A curve is RECIPE:MODEL.

Each point is its own run of `pipeline.train_on_dataset(epochs="auto", max_minutes=B)`: a schedule that
ends inside the budget B (an intermediate checkpoint of a longer run would be scored mid-schedule, at a
high learning rate), evaluated on the val split with flip test and argmax decoding. Precision and memory
format are "auto" (measured on this CPU; recorded per point). Runs go one at a time: alone on the machine.

    .venv/bin/python benchmarks/learning_curve.py [--budgets 1 2 4 8 15] [--recipes short-cpu simplebaseline]
        [--curves short-cpu:baseline-resnet-skip simplebaseline:baseline-resnet-s2] [--input 128x96] [--data DIR]
    # about 60 minutes at the defaults
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
    ap.add_argument("--data", type=Path, default=None, help="dataset dir (default reports/bench/synthpose-default)")
    ap.add_argument("--train", type=int, default=8000, help="train images to generate if --data is missing")
    ap.add_argument("--val", type=int, default=500)
    ap.add_argument("--input", default="128x96")
    ap.add_argument("--budgets", type=float, nargs="+", default=[1, 2, 4, 8, 15], help="minutes")
    ap.add_argument("--curves", nargs="+", default=["short-cpu:baseline-resnet-skip", "simplebaseline:baseline-resnet-s2"],
                    help="RECIPE:MODEL pairs")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    from posenas_core import pipeline
    from posenas_core.data.synthpose import write_synthpose

    data = a.data or OUT / "synthpose-default"
    if not (data / "synthpose.json").is_file():
        write_synthpose(data, n_train=a.train, n_val=a.val, seed=a.seed, progress=True)
    hw = pipeline.parse_input_size(a.input)
    mean_pose = pipeline.mean_pose_baseline(data)["coco"]["AP"]
    points = []
    curves = [c.split(":", 1) for c in a.curves]
    for recipe, model in curves:
        for minutes in a.budgets:
            run = OUT / "learning_curve_runs" / f"{recipe}-{model}-{minutes:g}min"
            shutil.rmtree(run, ignore_errors=True)
            t0 = time.perf_counter()
            s = pipeline.train_on_dataset(data_dir=data, model=model, run_dir=run, input_hw=hw, epochs="auto",
                                          max_minutes=minutes, recipe=recipe, seed=a.seed, validate=False,
                                          progress=False)
            wall = time.perf_counter() - t0
            m = pipeline.evaluate_checkpoint(run / "checkpoints" / "last.pt", data_dir=data, input_hw=hw)
            point = {"recipe": recipe, "model": model, "minutes": minutes, "AP": round(m["coco"]["AP"], 4),
                     "AP50": round(m["coco"]["AP50"], 4), "pck@0.2": round(m["pck@0.2"], 4),
                     "steps": s["step"], "samples": s["step"] * json.loads((run / "config.json").read_text())["train"]["batch_size"],
                     "train_s": round(s["total_elapsed_s"], 1), "wall_s": round(wall, 1),
                     "stop_reason": s["stop_reason"], "format": s["format"]}
            points.append(point)
            print(json.dumps(point), flush=True)
    emit("learning_curve", {"data": str(data), "input": a.input, "mean_pose_AP": mean_pose, "points": points,
                            "table": {f"{r}:{m}": {f"{p['minutes']:g}": p["AP"] for p in points
                                                   if (p["recipe"], p["model"]) == (r, m)} for r, m in curves}})


if __name__ == "__main__":
    main()
