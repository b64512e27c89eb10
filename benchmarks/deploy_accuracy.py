"""Deployment accuracy: OKS AP of briefly trained networks through every runtime, int8 included.

deploy_speed.py times every runtime on random weights; this one asks what each runtime does to a trained
network's accuracy. Per --presets (one dense, three MBConv by default): train on SynthPose for --minutes
(`pipeline.train_on_dataset(epochs="auto")`, the short-cpu recipe, no validation), then score the val split
(flip test, argmax; `train.predict.predict` + pycocotools OKS AP) through: eager fp32, ort fp32, compiled fp32,
compiled bf16 (forced, where the CPU has native bf16), and int8 (ONNX Runtime static quantization calibrated on
--calib training crops, `deploy.quantize`). Reported per runtime: AP, AP minus eager's AP, the largest and
the median keypoint shift from eager's (pixels of the original image), and for int8 the issue-12 verdict
(AP within 0.01 of ONNX Runtime fp32's) plus batch-1 latencies of ort fp32 and int8 at the training size.
Targets: fp32 runtimes within 0.002 AP of eager, int8 within 0.01. Trained runs are kept under --work and
reused (a finished run is not trained again).

    .venv/bin/python benchmarks/deploy_accuracy.py      # ~35 min alone on the machine (4 nets x 6 min of training)
    .venv/bin/python benchmarks/deploy_accuracy.py --quick  # smoke: 40 / 10 images, 64x64, 0.3 min
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

from _common import OUT, emit

NAME = "deploy_accuracy"
PRESETS_DEFAULT = ("baseline-resnet-s2", "baseline-mbv3", "evopose2d-xs", "evopose2d-s")


def score(runner, person_set, ds) -> tuple[dict, np.ndarray]:
    from posenas_core.eval.coco_eval import evaluate_keypoints
    from posenas_core.train.predict import predict

    results, kps = predict(runner, ds, batch_size=32, flip_test=True)
    c = evaluate_keypoints(person_set.coco, results)
    return {"AP": round(float(c["AP"]), 4), "AP50": round(float(c["AP50"]), 4)}, kps


def runners(model, hw, calibration, native_bf16: bool):
    """(name, runner or None, note) for each runtime row."""
    from posenas_core.deploy import make_runner

    yield "eager", model.eval(), ""
    yield "ort", make_runner(model, "ort", hw, threads=torch.get_num_threads()), ""
    yield "compiled-fp32", make_runner(model, "compiled", hw, threads=torch.get_num_threads(), bf16=False), ""
    if native_bf16:
        yield "compiled-bf16", make_runner(model, "compiled", hw, threads=torch.get_num_threads(), bf16=True), ""
    else:
        yield "compiled-bf16", None, "skipped: no native bf16 on this CPU"
    yield "int8", make_runner(model, "int8", hw, threads=torch.get_num_threads(), calibration=calibration), ""


def preset_result(name: str, data: Path, a, hw) -> dict:
    from posenas_core import pipeline
    from posenas_core.deploy.quantize import calibration_from_dir, int8_verdict
    from posenas_core.eval import measure_latency
    from posenas_core.machine import cpu_info
    from posenas_core.train.checkpoints import load_checkpoint
    from posenas_core.train.predict import output_stride_of

    run = a.work / name
    t0 = time.perf_counter()
    summary = pipeline.train_on_dataset(data_dir=data, model=name, run_dir=run, input_hw=hw, epochs="auto",
                                        max_minutes=a.minutes, seed=0, progress=False, validate=False)
    train_s = time.perf_counter() - t0
    model = load_checkpoint(run / "checkpoints" / "last.pt")[0].eval()
    val = pipeline.load_split(data, "val", train=False)
    ds = pipeline.make_dataset(val, hw, train=False, stride=output_stride_of(model))
    calibration = calibration_from_dir(data, hw, n=a.calib)
    out = {"train_s": round(train_s, 1), "steps": summary.get("steps") or summary.get("total_steps"),
           "persons_val": len(val.records), "runtimes": {}}
    kps0 = None
    for rt, runner, note in runners(model, hw, calibration, bool(cpu_info()["native_bf16"])):
        if runner is None:
            out["runtimes"][rt] = {"note": note}
            continue
        s, kps = score(runner, val, ds)
        kps0 = kps if kps0 is None else kps0
        shift = np.linalg.norm(kps[..., :2] - kps0[..., :2], axis=-1)
        s.update(ap_minus_eager=round(s["AP"] - out["runtimes"].get("eager", s)["AP"], 4),
                 max_shift_px=round(float(shift.max()), 3), median_shift_px=round(float(np.median(shift)), 3))
        if rt in ("ort", "int8"):
            ms = measure_latency(runner, hw, threads=1, min_run_time=a.min_run_time)["latency_ms"]
            s["latency_ms"] = round(ms, 2)
        out["runtimes"][rt] = s
        print(f"  {name} {rt}: AP {s['AP']:.4f} ({s['ap_minus_eager']:+.4f}), max shift {s['max_shift_px']:.2f} px",
              flush=True)
    r = out["runtimes"]
    out["int8_check"] = int8_verdict(r["ort"]["AP"], r["int8"]["AP"])
    out["int8_speedup_over_ort"] = round(r["ort"]["latency_ms"] / r["int8"]["latency_ms"], 3)
    fp32 = [v["ap_minus_eager"] for k, v in r.items() if k in ("ort", "compiled-fp32") and "AP" in v]
    out["fp32_within_0.002"] = all(abs(d) <= 0.002 for d in fp32)
    return out


def table(rows: dict) -> str:
    cols = ("eager", "ort", "compiled-fp32", "compiled-bf16", "int8")
    lines = ["| preset | " + " | ".join(f"{c} AP" for c in cols) + " | int8 - ort fp32 | int8 / ort speed |",
             "|---|" + "---|" * (len(cols) + 2)]
    for name, r in rows.items():
        cells = [f"{r['runtimes'][c]['AP']:.3f}" if "AP" in r["runtimes"][c] else "-" for c in cols]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {-r['int8_check']['drop']:+.4f} | "
                     f"{r['int8_speedup_over_ort']:.2f}x |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", nargs="+", default=list(PRESETS_DEFAULT))
    ap.add_argument("--minutes", type=float, default=6.0, help="training minutes per preset")
    ap.add_argument("--train", type=int, default=800, help="SynthPose training images")
    ap.add_argument("--val", type=int, default=100, help="SynthPose val images")
    ap.add_argument("--input", default="128x96", help="training and scoring size HxW")
    ap.add_argument("--calib", type=int, default=64, help="int8 calibration crops (training split)")
    ap.add_argument("--min-run-time", type=float, default=1.0, help="seconds per latency")
    ap.add_argument("--threads", type=int, default=2, help="torch threads for training and scoring")
    ap.add_argument("--work", type=Path, default=OUT / "deploy_accuracy_work")
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    if a.quick:
        a.presets, a.minutes, a.train, a.val, a.input, a.calib = a.presets[:1], 0.3, 40, 10, "64x64", 16
        a.min_run_time, a.work = 0.2, a.work.with_name(a.work.name + "_quick")
    from posenas_core import pipeline

    hw = tuple(int(v) for v in a.input.split("x"))
    torch.set_num_threads(a.threads)
    a.work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("POSENAS_CACHE_DIR", str(a.work))
    data = pipeline.synthpose_dir(a.work / f"synthpose_{a.train}_{a.val}", a.train, a.val, seed=0, progress=False)
    rows = {}
    for name in a.presets:
        rows[name] = preset_result(name, data, a, hw)
    print(table(rows))
    emit(NAME + ("_quick" if a.quick else ""), {"input": a.input, "minutes": a.minutes, "train_images": a.train,
                                                "val_images": a.val, "threads": a.threads, "presets": rows,
                                                "table": table(rows)})


if __name__ == "__main__":
    main()
