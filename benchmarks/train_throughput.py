"""Trainer throughput vs a bare PyTorch loop, same model, same run, input 128x96.

The trainer reads JPEGs from a SynthPose directory, augments, encodes heatmaps and trains; the bare
loop trains the same architecture on pre-made tensors already in memory (forward + masked MSE +
backward + Adam step, nothing else). The ratio says whether the data path is a bottleneck
(target >= 0.85). The two are interleaved bare / trainer / bare to see contention on the 2nd vCPU.
By default the trainer's images come from a warm decoded-image cache, as from the second epoch of
`posenas train` on (`--no-cache`: every image decoded from its JPEG, as in the first epoch). Precision and
memory format: "auto" (default) picks them as `posenas train` does, by measuring on this CPU; both loops
then use the same format. The JSON names the CPU model and features.

    .venv/bin/python benchmarks/train_throughput.py [--model baseline-resnet-s2] [--steps 60] [--precision auto|fp32|bf16]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from _common import emit


def bare_loop(spec, batches, steps: int, warmup: int, channels_last: bool, bf16: bool = False) -> float:
    """img/s of forward + loss + backward + Adam over pre-made tensors (after `warmup` steps)."""
    from posenas_core.models import build_model
    from posenas_core.train import heatmap_mse

    torch.manual_seed(0)
    model = build_model(spec).train()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    batches = [(x.contiguous(memory_format=fmt), t, w) for x, t, w in batches]
    t0, n = None, 0
    for i in range(warmup + steps):
        if i == warmup:
            t0 = time.perf_counter()
        x, t, w = batches[i % len(batches)]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            pred = model(x)
        loss = heatmap_mse(pred, t, w)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= warmup:
            n += x.shape[0]
    return n / (time.perf_counter() - t0)


def trainer_run(spec, ds, steps: int, warmup: int, workers: int, channels_last: bool, run_dir: Path,
                bf16: bool = False) -> float:
    """img/s of posenas_core's trainer from its metrics.jsonl, excluding the first `warmup` steps."""
    from posenas_core.runs import read_jsonl
    from posenas_core.train import TrainConfig, train

    bs = 32
    n = (steps + warmup) * bs
    sub = torch.utils.data.Subset(ds, range(min(n, len(ds))))
    sub.set_epoch = ds.set_epoch  # the trainer seeds augmentation per epoch through the dataset
    cfg = TrainConfig(epochs=1, batch_size=bs, num_workers=workers, channels_last=channels_last, bf16=bf16, log_every=1,
                      ckpt_every_steps=None, val_every=1, progress=False, warmup_epochs=0.0)
    train(spec, sub, run_dir, cfg, resume=False)
    logs = [r for r in read_jsonl(run_dir / "metrics.jsonl") if "loss" in r]
    t0 = next(r for r in logs if r["step"] == warmup)["time"]
    last = logs[-1]
    return (last["step"] - warmup) * bs / (last["time"] - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="baseline-resnet-s2")
    ap.add_argument("--steps", type=int, default=60, help="timed steps per measurement")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--workers", type=int, default=0, help="trainer DataLoader workers")
    ap.add_argument("--input", default="128x96")
    ap.add_argument("--memory-format", choices=("auto", "channels_last", "nchw"), default="auto")
    ap.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                    help="auto: bf16 only where native and measured faster (as posenas train)")
    ap.add_argument("--no-cache", action="store_true", help="decode every image (no warm decoded-image cache)")
    ap.add_argument("--data", type=Path, help="an existing SynthPose dir (default: generate one in a temp dir)")
    a = ap.parse_args()
    from posenas_core import pipeline
    from posenas_core.data.synthpose import write_synthpose
    from posenas_core.models import load_spec

    from posenas_core.machine import resolve_auto

    hw = tuple(int(v) for v in a.input.split("x"))
    spec = load_spec(a.model)
    fmt = resolve_auto(spec, hw, batch_size=32, bf16=pipeline.PRECISIONS[a.precision],
                       channels_last={"auto": "auto", "channels_last": True, "nchw": False}[a.memory_format])
    cl, bf16 = fmt["channels_last"], fmt["bf16"]
    with tempfile.TemporaryDirectory() as tmp:
        data = a.data
        if data is None:
            data = Path(tmp) / "synth"
            n_img = int((a.steps + a.warmup) * 32 / 1.2) + 50  # ~1.5 persons per image at the default
            write_synthpose(data, n_train=n_img, n_val=0, seed=0, progress=False)
        person_set = pipeline.load_split(data, "train", train=True)
        ds = pipeline.make_dataset(person_set, hw, train=True, seed=0, stride=spec.output_stride,
                                   cache_mb=0 if a.no_cache else 3072)
        if len(ds) < (a.steps + a.warmup) * 32:
            raise SystemExit(f"dataset has {len(ds)} persons; need {(a.steps + a.warmup) * 32}")
        # The bare loop's tensors: 8 real batches made once, kept in memory.
        loader = torch.utils.data.DataLoader(ds, batch_size=32, shuffle=False)
        batches = []
        for b in loader:
            batches.append((b["image"], b["target"], b["target_weight"]))
            if len(batches) == 8:
                break
        if not a.no_cache:  # warm, as from the second epoch on
            for r in ds.records[:(a.steps + a.warmup) * 32]:
                ds.image_source.load(r.file_name)
        bare1 = bare_loop(spec, batches, a.steps, a.warmup, cl, bf16)
        ours = trainer_run(spec, ds, a.steps, a.warmup, a.workers, cl, Path(tmp) / "run", bf16)
        bare2 = bare_loop(spec, batches, a.steps, a.warmup, cl, bf16)
    bare = statistics.mean([bare1, bare2])
    name = "train_throughput_" + ("bf16" if bf16 else "fp32") + ("_nocache" if a.no_cache else "")
    emit(name, {"format": fmt,
        "model": a.model, "input": a.input, "batch": 32, "steps": a.steps, "workers": a.workers,
        "channels_last": cl, "bf16": bf16, "image_cache": not a.no_cache, "torch_threads": torch.get_num_threads(),
        "bare_img_per_s": [round(bare1, 1), round(bare2, 1)], "trainer_img_per_s": round(ours, 1),
        "ratio_vs_mean_bare": round(ours / bare, 3),
    })


if __name__ == "__main__":
    main()
