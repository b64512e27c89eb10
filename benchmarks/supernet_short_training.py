"""A short supernet training on SynthPose against each sub-network trained alone, for the same wall time.

Run 1 trains the `--space` supernet with the sandwich rule (max, min and --num-random random sub-networks per
batch, in-place distillation: `train.supernet.train_supernet`) for --minutes; its largest and smallest
sub-networks are then extracted, BN-recalibrated on --calib-batches training batches (`calibrate_subnet`) and
scored, and also scored as extracted, without recalibration. Runs 2 and 3 train the same two archs as static
nets from scratch for the same --minutes (`pipeline.train_on_dataset(epochs="auto")`). Every run: the
`short-cpu` recipe's augmentation, sigma, warm-up and cosine schedule ending inside the budget, Adam --lr at
batch 32, the same seed, precision, channels_last and threads, no validation during training. Scores: OKS AP
on the val split with flip test and argmax decoding (`pipeline.evaluate_model`). One run per point.

    .venv/bin/python benchmarks/supernet_short_training.py             # ~35 min alone on the machine
    .venv/bin/python benchmarks/supernet_short_training.py --quick     # smoke test: 60 / 10 images, 64x64, 0.3 min
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import shutil
import time
from pathlib import Path

from _common import OUT, emit

NAME = "supernet_short_training"
CACHE_MB = 3072          # decoded training images kept in memory, as train_on_dataset's default


def _scores(metrics: dict) -> dict:
    return {"AP": round(metrics["coco"]["AP"], 4), "AP50": round(metrics["coco"]["AP50"], 4),
            "pck@0.2": round(metrics["pck@0.2"], 4)}


def _first_epochs(space, hw, a, n_persons: int) -> int:
    """A first plan of the supernet's epochs (the trainer re-plans from its speed): a sandwich step timed as the
    max's and min's static steps plus --num-random steps of their mean, as train_on_dataset plans a static net."""
    from posenas_core.machine import train_step_speed

    per_img = [1.0 / train_step_speed(s, hw, batch_size=a.batch_size, bf16=a.precision == "bf16", steps=2)
               for s in (space.max(), space.min())]
    ips = 1.0 / (sum(per_img) * (1 + a.num_random / 2))
    return max(1, math.ceil(0.9 * a.minutes * 60.0 * ips / n_persons))


def _warmup_steps(run: Path, n_persons: int, batch_size: int) -> int:
    """The warm-up steps of a trainer run, from its config.json (a fraction of its first plan's steps)."""
    import json

    cfg = json.loads((run / "config.json").read_text(encoding="utf-8"))["train"]
    return round(cfg["warmup_epochs"] * (n_persons // batch_size))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--space", default="vipnas-res50", help="a space with a supernet (vipnas-res50, vipnas-mbv3)")
    ap.add_argument("--minutes", type=float, default=10.0, help="training wall time of each of the three runs")
    ap.add_argument("--train", type=int, default=800, help="SynthPose train images")
    ap.add_argument("--val", type=int, default=100, help="SynthPose val images (AP)")
    ap.add_argument("--input", default="128x96", help="input HxW")
    ap.add_argument("--lr", type=float, default=1e-3, help="Adam lr at batch 32 (the ViPNAS paper's)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--num-random", type=int, default=2, help="random sub-networks per batch besides max and min")
    ap.add_argument("--calib-batches", type=int, default=16, help="BN recalibration batches")
    ap.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="smoke test: 60 / 10 images, 64x64, 0.3 min per run")
    ap.add_argument("--work", type=Path, default=None, help=f"data and run dirs (default reports/bench/{NAME}_work)")
    a = ap.parse_args()
    if a.quick:
        a.train, a.val, a.input, a.minutes = 60, 10, "64x64", 0.3
    name = NAME + ("_quick" if a.quick else "")
    work = a.work or OUT / f"{name}_work"

    import torch

    torch.set_num_threads(a.threads)
    from posenas_core import pipeline
    from posenas_core.eval.profiler import count_params
    from posenas_core.runs import read_jsonl
    from posenas_core.spaces.supernet import SupernetSpec
    from posenas_core.train.recipes import get_recipe
    from posenas_core.train.supernet import calibrate_subnet, calibration_batches, train_supernet

    t_start = time.perf_counter()
    data = pipeline.synthpose_dir(work / f"synthpose_{a.train}_{a.val}", a.train, a.val, seed=a.seed, progress=False)
    hw = pipeline.parse_input_size(a.input)
    rec = get_recipe("short-cpu")
    sn_spec = SupernetSpec(space=a.space)
    space, stride = sn_spec.search_space, sn_spec.output_stride
    archs = {"max": space.max(), "min": space.min()}
    sigma = pipeline.heatmap_sigma(hw, rec.sigma, stride=stride)
    train_set = pipeline.load_split(data, "train", train=True)
    val_set = pipeline.load_split(data, "val", train=False)
    bf16 = a.precision == "bf16"

    # Run 1: the supernet.
    ds = pipeline.make_dataset(train_set, hw, train=True, seed=a.seed, sigma=sigma, aug=rec.aug, stride=stride,
                               cache_mb=CACHE_MB)
    epochs = _first_epochs(space, hw, a, len(ds))
    # The budget planner re-plans at each log line: one every 20 static steps, so about as often in wall time.
    config = dataclasses.replace(rec.train_config(epochs=epochs), batch_size=a.batch_size, base_lr=a.lr, seed=a.seed,
                                 max_minutes=a.minutes, fill_budget=True, bf16=bf16, channels_last=True, progress=False,
                                 log_every=max(1, 20 // (2 + a.num_random)))
    run = work / "supernet"
    shutil.rmtree(run, ignore_errors=True)
    res = train_supernet(a.space, ds, run, config, num_random=a.num_random, resume=False)
    logged = [r["img_per_s"] for r in read_jsonl(run / "metrics.jsonl") if "img_per_s" in r]
    supernet_run = {"steps": res.step, "images": res.step * a.batch_size, "train_s": round(res.total_elapsed_s, 1),
                    "img_per_s": round(res.step * a.batch_size / max(res.total_elapsed_s, 1e-9), 2),
                    "img_per_s_logged_mean": round(sum(logged) / len(logged), 2) if logged else None,
                    "subnet_passes_per_step": 2 + a.num_random, "first_plan_epochs": epochs,
                    "warmup_steps": _warmup_steps(run, len(ds), a.batch_size), "total_steps": res.total_steps,
                    "stop_reason": res.stop_reason, "last_loss": res.last_loss}
    print(supernet_run, flush=True)
    supernet = res.model.eval()
    calib = calibration_batches(ds, num_batches=a.calib_batches, batch_size=a.batch_size, seed=a.seed)
    result = {}
    for key, arch in archs.items():
        raw = supernet.extract(arch)
        result[key] = {"arch": arch.to_short(), "params": count_params(raw)["params"],
                       "supernet_no_recalibration": _scores(pipeline.evaluate_model(raw, val_set, hw, sigma=sigma)),
                       "supernet": _scores(pipeline.evaluate_model(calibrate_subnet(supernet, arch, calib), val_set,
                                                                   hw, sigma=sigma)),
                       "supernet_steps": res.step, "supernet_images": res.step * a.batch_size}
        print(key, result[key], flush=True)
    del supernet, res

    # Runs 2 and 3: each arch alone, from scratch, for the same wall time.
    for key, arch in archs.items():
        run = work / f"alone_{key}"
        shutil.rmtree(run, ignore_errors=True)
        t0 = time.perf_counter()
        s = pipeline.train_on_dataset(data_dir=data, model=arch, run_dir=run, input_hw=hw, epochs="auto",
                                      max_minutes=a.minutes, recipe=rec, batch_size=a.batch_size, base_lr=a.lr,
                                      seed=a.seed, bf16=bf16, channels_last=True, resume=False, progress=False,
                                      validate=False, cache_mb=CACHE_MB)
        wall = time.perf_counter() - t0
        m = pipeline.evaluate_checkpoint(run / "checkpoints" / "last.pt", data_dir=data, input_hw=hw)
        result[key].update({"alone": _scores(m), "alone_steps": s["step"], "alone_images": s["step"] * a.batch_size,
                            "alone_train_s": round(s["total_elapsed_s"], 1), "alone_wall_s": round(wall, 1),
                            "alone_img_per_s": round(s["step"] * a.batch_size / max(s["total_elapsed_s"], 1e-9), 2),
                            "alone_first_plan_epochs": s["epochs"], "alone_total_steps": s["total_steps"],
                            "alone_warmup_steps": _warmup_steps(run, len(ds), a.batch_size),
                            "alone_stop_reason": s["stop_reason"]})
        print(key, result[key], flush=True)

    emit(name, {"space": a.space, "data": str(data), "train_images": a.train, "val_images": a.val,
                "train_persons": len(ds), "input": a.input, "minutes": a.minutes, "lr": a.lr,
                "batch_size": a.batch_size, "num_random": a.num_random, "calib_batches": len(calib),
                "precision": a.precision, "channels_last": True, "threads": a.threads, "seed": a.seed,
                "recipe": rec.name, "quick": a.quick, "supernet_run": supernet_run, "archs": result,
                "table": {k: {"supernet": v["supernet"]["AP"], "supernet_no_recalibration":
                              v["supernet_no_recalibration"]["AP"], "alone": v["alone"]["AP"]}
                          for k, v in result.items()},
                "wall_s": round(time.perf_counter() - t_start, 1)})


if __name__ == "__main__":
    main()
