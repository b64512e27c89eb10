"""ViPNAS supernet training speed: the cost of elasticity, and sandwich-training throughput.

1. Cost of elasticity, per space: a sandwich step on the supernet (max, min and 2 random archs of
   `SandwichStep(space, seed=0).archs(step)`; zero_grad, the step function, one Adam step, as the trainer)
   against 4 training steps of the same archs as static extracted nets (`supernet.extract(arch)`, each with
   its own Adam; ground-truth MSE plus, for the non-max ones, the MSE against the max net's detached output;
   extraction and Adam's state allocation not timed). A and B alternate per step on the same archs; the
   figure is median(A) / median(B) (issue 11's target: <= 1.15).
2. Throughput: images / s of a sandwich step (batch / step time; a step trains 2 + 2 sub-networks on the
   batch) at 128x96 and 256x192, fp32 and bf16 autocast (bf16 only on a CPU with native bf16).

Data are random tensors (targets (B, 17, h, w), joint weights 1); fp32 unless said; channels_last as the
trainer's default. The JSON names the CPU, the torch threads and the archs (short strings).

    .venv/bin/python benchmarks/supernet_speed.py [--spaces vipnas-res50 vipnas-mbv3] [--steps 5] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from _common import emit

NUM_RANDOM = 2


def _data(batch: int, hw: tuple[int, int], stride: int, joints: int, channels_last: bool):
    """Random images (B, 3, H, W), targets (B, K, H/s, W/s) and joint weights of ones (B, K)."""
    g = torch.Generator().manual_seed(0)
    h, w = hw
    images = torch.randn(batch, 3, h, w, generator=g)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    target = torch.rand(batch, joints, h // stride, w // stride, generator=g)
    return images, {"target": target, "target_weight": torch.ones(batch, joints)}


def _setup(space_name: str, channels_last: bool):
    """(supernet in train mode, its Adam, the sandwich step function)."""
    from posenas_core.models import build_supernet
    from posenas_core.train.supernet import SandwichStep

    net = build_supernet(space_name, generator=torch.Generator().manual_seed(0)).train()
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    return net, torch.optim.Adam(net.parameters(), lr=1e-3), SandwichStep(net.space, seed=0, num_random=NUM_RANDOM)


def sandwich_step(net, opt, step_fn, step: int, images, batch, bf16: bool = False) -> float:
    """Seconds of one trainer-like supernet step: zero_grad, the sandwich step function, Adam step."""
    from posenas_core.train import StepContext

    ctx = StepContext(net, step, lambda: torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16),
                      lambda loss: loss.backward())
    t0 = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    step_fn(ctx, images, batch)
    opt.step()
    return time.perf_counter() - t0


def static_steps(net, archs, images, batch, channels_last: bool) -> float:
    """Seconds of one training step of each arch as a static extracted net (extraction and Adam's state
    allocation not counted), the non-max ones also fitting the max net's detached output, as in the sandwich rule."""
    from posenas_core.train import heatmap_mse

    fmt = torch.channels_last if channels_last else torch.contiguous_format
    target, weight = batch["target"], batch["target_weight"]
    total, soft = 0.0, None
    for i, arch in enumerate(archs):
        model = net.extract(arch).to(memory_format=fmt)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        for p in model.parameters():                   # Adam's state made untimed (a zero-gradient step moves nothing)
            p.grad = torch.zeros_like(p)
        opt.step()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        pred = model(images)
        loss = heatmap_mse(pred, target, weight)
        if i == 0:
            soft = pred.detach()
        else:
            loss = loss + heatmap_mse(pred, soft, torch.ones_like(weight))
        loss.backward()
        opt.step()
        total += time.perf_counter() - t0
    return total


def elasticity(space_name: str, steps: int, batch: int, hw, channels_last: bool) -> dict:
    """Part 1 for one space: A (sandwich step) and B (4 static steps) per step, after one untimed step."""
    net, opt, step_fn = _setup(space_name, channels_last)
    images, data = _data(batch, hw, net.output_stride, net.max_arch.num_joints, channels_last)
    a_s, b_s, archs_log = [], [], []
    for step in range(steps + 1):                      # step 0: warm-up
        a = sandwich_step(net, opt, step_fn, step, images, data)
        b = static_steps(net, step_fn.archs(step), images, data, channels_last)
        if step > 0:
            a_s.append(a)
            b_s.append(b)
            archs_log.append([arch.to_short() for arch in step_fn.archs(step)])
    ma, mb = statistics.median(a_s), statistics.median(b_s)
    return {"space": space_name, "steps": steps, "archs": archs_log,
            "sandwich_step_s": [round(t, 4) for t in a_s], "static_4_steps_s": [round(t, 4) for t in b_s],
            "median_sandwich_step_s": round(ma, 4), "median_static_4_steps_s": round(mb, 4),
            "ratio": round(ma / mb, 3), "target": 1.15, "meets_target": ma / mb <= 1.15}


def throughput(space_name: str, steps: int, batch: int, hw, channels_last: bool, bf16: bool) -> dict:
    """Part 2, one point: img/s of sandwich steps (median step time, after one untimed step)."""
    net, opt, step_fn = _setup(space_name, channels_last)
    images, data = _data(batch, hw, net.output_stride, net.max_arch.num_joints, channels_last)
    times = [sandwich_step(net, opt, step_fn, s, images, data, bf16) for s in range(steps + 1)][1:]
    med = statistics.median(times)
    return {"step_s": [round(t, 4) for t in times], "median_step_s": round(med, 4), "img_per_s": round(batch / med, 2)}


def _hw(text: str) -> tuple[int, int]:
    h, w = (int(v) for v in text.split("x"))
    return h, w


def main() -> None:
    from posenas_core.machine import cpu_info
    from posenas_core.train import TrainConfig

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spaces", nargs="+", default=["vipnas-res50", "vipnas-mbv3"])
    ap.add_argument("--steps", type=int, default=5, help="timed steps per measurement (after 1 warm-up step)")
    ap.add_argument("--input", default="128x96", help="part 1's input HxW")
    ap.add_argument("--batch", type=int, default=16, help="batch of part 1 and of part 2 at 128x96")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--large-steps", type=int, default=3, help="timed steps at 256x192")
    ap.add_argument("--large-batch", type=int, default=8, help="batch at 256x192")
    ap.add_argument("--quick", action="store_true", help="smoke test: first space, 2 steps, batch 4, 64x64 only")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    channels_last = TrainConfig().channels_last
    native_bf16 = cpu_info()["native_bf16"]
    if a.quick:
        spaces, steps, hw = a.spaces[:1], 2, (64, 64)
        points = [(hw, 4, 2)]                                          # (input, batch, steps)
        batch = 4
    else:
        spaces, steps, hw, batch = a.spaces, a.steps, _hw(a.input), a.batch
        points = [((128, 96), a.batch, a.steps), ((256, 192), a.large_batch, a.large_steps)]
    t_start = time.perf_counter()
    part1 = [elasticity(s, steps, batch, hw, channels_last) for s in spaces]
    part2 = []
    for s in spaces:
        for p_hw, p_batch, p_steps in points:
            for precision in ("fp32", "bf16"):
                row = {"space": s, "input": f"{p_hw[0]}x{p_hw[1]}", "batch": p_batch, "precision": precision}
                if precision == "bf16" and not native_bf16:
                    row["skipped"] = "no native bf16"
                else:
                    row.update(throughput(s, p_steps, p_batch, p_hw, channels_last, precision == "bf16"))
                part2.append(row)
    emit("supernet_speed_quick" if a.quick else "supernet_speed", {
        "quick": a.quick, "torch_threads": torch.get_num_threads(), "channels_last": channels_last,
        "input": f"{hw[0]}x{hw[1]}", "batch": batch, "num_random": NUM_RANDOM,
        "elasticity": part1,
        "elasticity_note": "ratio = median sandwich step (max + min + 2 random on the supernet, one Adam step) / "
                           "median of 4 static extracted-net steps (same archs, each its own Adam; extraction and "
                           "Adam state allocation not timed); fp32; A then B per step on the same archs",
        "throughput": part2,
        "throughput_note": f"img/s = batch / sandwich step time; each step trains {2 + NUM_RANDOM} sub-networks "
                           "(max, min, random) on the batch",
        "wall_s": round(time.perf_counter() - t_start, 1),
    })


if __name__ == "__main__":
    main()
