"""EvoPose2D weight-transfer ablation on SynthPose (issue 4): epochs a child needs to reach its parent's
validation loss (a) after weight transfer (`kernel_transfer=True`, this project), (b) after the public
code's transfer (`kernel_transfer=False`: depthwise kernels left random on a kernel-size-only mutation),
(c) from scratch, (d) after transfer with new blocks started as the identity (`new_blocks="identity"`;
only differs from (a) for children with new blocks). The paper reports about 6x fewer epochs with transfer.

Protocol
- Data: a SynthPose split generated once under --data (--train / --val images, --seed).
- Parent: the ancestor (or --parent GENOTYPE, or --parent-checkpoint), trained --parent-epochs epochs
  (Adam, lr = --lr x batch / 32, linear warm-up 0.5 epoch, cosine to 0: the generation-0 schedule).
  Its target loss is the best validation loss over its evaluations (EvoPose2D's L), and the children
  inherit the weights of that evaluation (the public code's SAVE_BEST).
- Children: --children genotypes drawn with `mutate` (seeded, never repeated). Stride mutations are
  redrawn: they change the heatmap resolution, so their validation loss is not comparable with the
  parent's. Each child starts from ONE fresh init (same seed for the three conditions), then is trained
  with the same data order and schedule in each condition: linear warm-up --child-warmup epochs (0.5,
  the trainer's default; the paper's children have none, but Adam's first sign-like steps at full lr
  sent a transferred child's val loss from 0.07 to 9 within 6 steps in a small trial), cosine to 0 at --max-epochs
  (children train e epochs with a cosine in the paper), stopped as soon as it reaches the target
  (val <= target x (1 + 1e-4), float noise).
- Validation loss: EvoPose2D's masked heatmap MSE (`steps.heatmap_mse`) over the val persons with at
  least one labelled joint, eval mode, no flip; measured before training and every --eval-every steps
  (default a quarter epoch) and at each epoch end. "Epochs to reach" = steps / steps-per-epoch at the
  first evaluation that reaches the target (resolution: one evaluation interval); None if not reached
  by --max-epochs (censored: counted as max-epochs, see `summarise` for the ratio bounds).
- Ratio scratch / transfer per child uses max(transfer epochs, one evaluation interval) as the
  denominator (a function-preserving child can reach the target at 0 epochs); the median is reported.
- 1 torch thread by default: with the second core busy, 2 threads ran 8x slower (measured).

Resumable: the parent (weights + curve) and every finished (child, condition) are kept under --work and
reused by a later call with the same settings; the JSON report is written at the end (and after each
child). Time: ~0.5 s per step of 32 at 64x64 and ~3x that at 128x96 (1 thread), so the defaults
(600 images ~ 1200 persons, 6 + 6 x 3 x <= 6 epochs) take up to ~2 h. The small checks of issue 4 (3 and
1.5 min; figures from so few steps are noise, not the paper's measurement):
    .venv/bin/python benchmarks/evopose_transfer_ablation.py --train 240 --val 40 --input 64x64 \
        --parent-epochs 6 --children 2 --max-epochs 3 --work /tmp/tr_bench/work [--seed 2 --children 1]
At inputs this small the stride-32 bottleneck is 2x2 and eval-mode BN differs strongly from the batch
statistics the net trains with (measured: 27% relative output difference at init even with running
statistics computed on the same batch), so the parent's val loss is erratic: prefer 128x96 or larger.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import statistics
import time
from pathlib import Path

from _common import OUT, machine

import numpy as np
import torch

NAME = "evopose_transfer_ablation"
CONDITIONS = ("transfer", "transfer_public", "scratch", "transfer_identity")
# kernel_transfer=True / False / fresh init / kernel_transfer=True with new_blocks="identity" (identical to
# "transfer" unless the child has new blocks: then its run is reused, not repeated)


def _seed(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, dtype=np.uint32)[0])


def _lr(step: int, total: int, warmup: int, peak: float) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total - 1 - warmup))
    return peak * 0.5 * (1.0 + math.cos(math.pi * t))


@torch.no_grad()
def val_loss(model, val_batches) -> float:
    """Masked heatmap MSE over the cached val batches (mean over all (B, K, h, w) elements)."""
    from posenas_core.train import heatmap_mse

    model.eval()
    total, n = 0.0, 0                                        # images are channels_last (see main)
    for img, tgt, w in val_batches:
        total += float(heatmap_mse(model(img), tgt, w)) * img.shape[0]
        n += img.shape[0]
    model.train()
    return total / n


def train_until(model, train_ds, val_batches, *, epochs: int, batch_size: int, peak_lr: float, warmup_epochs: float,
                eval_every: int, seed: int, target: float | None = None, keep_best: bool = False) -> dict:
    """Train `model` (Adam, warm-up + cosine to 0 over `epochs`); validate at step 0, every `eval_every`
    steps and at every epoch end; stop at the first validation <= target (when given). keep_best: end
    with the weights of the best validation (the public code's SAVE_BEST, used for the parent)."""
    from posenas_core.train import heatmap_mse

    n = len(train_ds)
    spe = n // batch_size
    total = epochs * spe
    warmup = round(warmup_epochs * spe)
    model.to(memory_format=torch.channels_last)              # ~5x faster depthwise convs on CPU (measured)
    opt = torch.optim.Adam(model.parameters(), lr=peak_lr)
    torch.manual_seed(seed)                                  # drop-connect masks
    t0 = time.perf_counter()
    curve = [[0.0, val_loss(model, val_batches)]]
    best_state = None                                        # keep_best: best evaluation AFTER training began
    hit = target is not None and curve[0][1] <= target * (1 + 1e-4)
    step = 0
    model.train()
    for epoch in range(epochs):
        if hit:
            break
        train_ds.set_epoch(epoch)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(_seed(seed, epoch)))[: spe * batch_size]
        loader = torch.utils.data.DataLoader(train_ds, batch_size=batch_size, sampler=perm.tolist())
        for batch in loader:
            for g in opt.param_groups:
                g["lr"] = _lr(step, total, warmup, peak_lr)
            images = batch["image"].contiguous(memory_format=torch.channels_last)
            loss = heatmap_mse(model(images), batch["target"], batch["target_weight"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if step % eval_every == 0 or step % spe == 0:
                curve.append([step / spe, val_loss(model, val_batches)])
                if keep_best and (best_state is None or curve[-1][1] < min(v for _, v in curve[1:-1])):
                    best_state = {k: v.clone() for k, v in model.state_dict().items()}
                if step % spe == 0 and target is None:
                    print(f"  epoch {step // spe}: val {curve[-1][1]:.5g} ({time.perf_counter() - t0:.0f} s)",
                          flush=True)
                if target is not None and curve[-1][1] <= target * (1 + 1e-4):
                    hit = True
                    break
    if keep_best and best_state is not None:
        model.load_state_dict(best_state)
    reached = curve[-1][0] if hit else None
    trained = curve[1:] if keep_best and len(curve) > 1 else curve
    return {"curve": [[round(e, 4), v] for e, v in curve], "reached_epochs": reached, "steps": step,
            "seconds": round(time.perf_counter() - t0, 1), "best_val": min(v for _, v in trained)}


def draw_children(parent_g, n: int, seed: int) -> list:
    from posenas_core.spaces.evopose import mutate

    rng = np.random.default_rng([seed, 1])
    seen, out = {parent_g}, []
    while len(out) < n:
        g = mutate(parent_g, rng, seen)
        seen.add(g)
        if any(a[3] != b[3] for a, b in zip(g, parent_g)):
            continue                                          # stride mutation: different heatmap grid
        out.append(g)
    return out


def describe_mutation(parent_g, child_g) -> str:
    from posenas_core.spaces.evopose import COLUMNS

    for m, (a, b) in enumerate(zip(parent_g, child_g)):
        for j, (x, y) in enumerate(zip(a, b)):
            if x != y:
                return f"module {m + 1} {COLUMNS[j]} {x}->{y}"
    return "none"


def summarise(children: list[dict], max_epochs: int, resolution: float) -> dict:
    """Median epochs per condition and per-child ratios num / den of epochs to reach the target.

    Not reached -> the cap (censored). A ratio is a lower bound when only `num` is censored, an upper
    bound when only `den` is, and undefined (left out, counted) when both are."""
    def eff(v):
        return float(max_epochs) if v is None else float(v)

    out = {}
    for num, den in (("scratch", "transfer"), ("scratch", "transfer_public"), ("transfer_public", "transfer"),
                     ("transfer", "transfer_identity")):
        ratios, bounds, undefined = [], [], 0
        for c in children:
            if num not in c or den not in c:
                continue
            rn, rd = c[num]["reached_epochs"], c[den]["reached_epochs"]
            if rn is None and rd is None:
                undefined += 1
                continue
            ratios.append(round(eff(rn) / max(eff(rd), resolution), 3))
            bounds.append("lower" if rn is None else "upper" if rd is None else "exact")
        out[f"median_ratio_{num}_over_{den}"] = round(statistics.median(ratios), 3) if ratios else None
        out[f"ratios_{num}_over_{den}"] = ratios
        out[f"ratio_bounds_{num}_over_{den}"] = bounds
        out[f"ratio_undefined_{num}_over_{den}"] = undefined
    for cond in CONDITIONS:
        vals = [c[cond]["reached_epochs"] for c in children if cond in c]
        out[f"reached_{cond}"] = f"{sum(v is not None for v in vals)}/{len(vals)}"
        out[f"median_epochs_{cond}"] = round(statistics.median(eff(v) for v in vals), 3) if vals else None
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--children", type=int, default=6)
    ap.add_argument("--parent-epochs", type=int, default=6, help="E0: epochs of the parent")
    ap.add_argument("--max-epochs", type=int, default=6, help="cap (and cosine length) of a child's training")
    ap.add_argument("--train", type=int, default=600, help="SynthPose train images to generate")
    ap.add_argument("--val", type=int, default=100, help="SynthPose val images to generate")
    ap.add_argument("--input", default="128x96", help="network input HxW (multiples of 32)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--parent", default=None, help="parent genotype string (default: the ancestor)")
    ap.add_argument("--parent-checkpoint", type=Path, default=None,
                    help="a trained EvoPose2D checkpoint to use as the parent (skips its training)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3, help="Adam lr at batch 32 (scaled by batch / 32)")
    ap.add_argument("--child-warmup", type=float, default=0.5,
                    help="children's linear lr warm-up in epochs (all three conditions)")
    ap.add_argument("--eval-every", type=int, default=0, help="validation interval in steps (0: a quarter epoch)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1: on a shared 2-core machine 2 threads ran 8x slower than 1, measured)")
    ap.add_argument("--data", type=Path, default=None, help="SynthPose dir (default: under --work, generated)")
    ap.add_argument("--work", type=Path, default=OUT / f"{NAME}_work", help="parent weights + finished runs")
    ap.add_argument("--out", type=Path, default=OUT / f"{NAME}.json")
    a = ap.parse_args()

    from posenas_core import pipeline
    from posenas_core.data.synthpose import write_synthpose
    from posenas_core.models import build_evopose
    from posenas_core.runs import append_jsonl, atomic_torch_save, atomic_write_json, read_jsonl
    from posenas_core.search import transfer_weights
    from posenas_core.spaces.evopose import ANCESTOR, EvoPoseSpec, genotype_from_str, genotype_to_str
    from posenas_core.train import load_checkpoint

    torch.set_num_threads(a.threads)
    t_start = time.perf_counter()
    hw = pipeline.parse_input_size(a.input)
    data = a.data or a.work / f"synthpose-{a.train}-{a.val}-s{a.seed}"
    if not (data / "synthpose.json").is_file():
        write_synthpose(data, a.train, a.val, seed=a.seed, progress=False)

    if a.parent_checkpoint is not None:
        parent, _ = load_checkpoint(a.parent_checkpoint)
        if not isinstance(parent.spec, EvoPoseSpec):
            raise SystemExit(f"--parent-checkpoint {a.parent_checkpoint}: not an EvoPose2D checkpoint")
        pspec = parent.spec
    else:
        pspec = EvoPoseSpec(genotype=genotype_from_str(a.parent) if a.parent else ANCESTOR)
        parent = None
    stride = pspec.output_stride
    train_set = pipeline.load_split(data, "train", train=True)
    val_set = pipeline.load_split(data, "val", train=True)       # persons with >= 1 labelled joint
    train_ds = pipeline.make_dataset(train_set, hw, train=True, seed=a.seed, stride=stride)
    val_ds = pipeline.make_dataset(val_set, hw, train=False, stride=stride)
    val_batches = [(b["image"].contiguous(memory_format=torch.channels_last), b["target"], b["target_weight"])
                   for b in torch.utils.data.DataLoader(val_ds, batch_size=64)]
    spe = len(train_ds) // a.batch_size
    if spe < 1:
        raise SystemExit(f"{len(train_ds)} training persons: fewer than one batch of {a.batch_size}")
    eval_every = a.eval_every or max(1, spe // 4)
    peak = a.lr * a.batch_size / 32
    settings = {"train": a.train, "val": a.val, "input": list(hw), "seed": a.seed, "parent": pspec.to_short(),
                "parent_checkpoint": str(a.parent_checkpoint) if a.parent_checkpoint else None,
                "parent_epochs": a.parent_epochs, "max_epochs": a.max_epochs, "batch_size": a.batch_size,
                "lr": a.lr, "child_warmup": a.child_warmup, "eval_every": eval_every, "train_persons": len(train_ds), "val_persons": len(val_ds)}
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    work = a.work / key
    work.mkdir(parents=True, exist_ok=True)

    # -- parent ---------------------------------------------------------------------------------
    ppath = work / "parent.pt"
    if ppath.is_file():
        saved = torch.load(ppath, weights_only=True)
        parent = build_evopose(pspec)
        parent.load_state_dict(saved["model"])
        prun = json.loads(saved["run"])
        print(f"parent reused from {ppath}")
    else:
        if parent is None:
            torch.manual_seed(_seed(a.seed, 0))
            parent = build_evopose(pspec)
            prun = train_until(parent, train_ds, val_batches, epochs=a.parent_epochs, batch_size=a.batch_size,
                               peak_lr=peak, warmup_epochs=0.5, eval_every=eval_every, seed=_seed(a.seed, 0, 1),
                               keep_best=True)
        else:
            prun = {"curve": [[0.0, val_loss(parent, val_batches)]], "steps": 0, "seconds": 0.0}
            prun["best_val"] = prun["curve"][0][1]
        atomic_torch_save(ppath, {"model": parent.state_dict(), "run": json.dumps(prun)})
    target = float(prun["best_val"])
    init_val = float(prun["curve"][0][1])
    if a.parent_checkpoint is None and not target < 0.9 * init_val:
        raise SystemExit(f"the parent did not learn: its best val loss after training ({target:.5g}) is not 10% below "
                         f"its val loss at init ({init_val:.5g}, about the all-zeros prediction); a target it already "
                         f"met untrained would make every condition 'reach' it at 0 epochs. Train it longer, on more "
                         f"data (--train, --parent-epochs) or with a lower --lr; delete {ppath} to retrain it.")
    print(f"parent {pspec.to_short()}: target val loss {target:.6g} ({prun['seconds']} s)")

    # -- children -------------------------------------------------------------------------------
    rpath = work / "runs.jsonl"
    done = {(r["child"], r["condition"]): r for r in read_jsonl(rpath)} if rpath.is_file() else {}
    children = []
    resolution = eval_every / spe

    def report(final: bool) -> dict:
        result = {"benchmark": NAME, "machine": machine(), "settings": settings, "complete": final,
                  "protocol": "epochs to reach the parent's best val loss (masked heatmap MSE); see the script doc",
                  "parent": {"genotype": pspec.to_short(), "target_val_loss": target, "curve": prun["curve"],
                             "seconds": prun["seconds"]},
                  "eval_resolution_epochs": round(resolution, 4), "children": children,
                  "summary": summarise(children, a.max_epochs, resolution),
                  "wall_s": round(time.perf_counter() - t_start, 1)}
        atomic_write_json(a.out, result)
        return result

    for i, g in enumerate(draw_children(pspec.genotype, a.children, a.seed)):
        cspec = EvoPoseSpec(genotype=g, **{k: v for k, v in pspec.to_dict().items()
                                            if k not in ("genotype", "kind")})
        entry = {"child": i, "genotype": genotype_to_str(g), "mutation": describe_mutation(pspec.genotype, g)}
        torch.manual_seed(_seed(a.seed, 2, i))
        child = build_evopose(cspec)
        init = {k: v.clone() for k, v in child.state_dict().items()}
        for cond in CONDITIONS:
            if (i, cond) in done and done[(i, cond)]["genotype"] == entry["genotype"]:
                r = done[(i, cond)]
            elif cond == "transfer_identity" and not (entry["transfer"]["transfer_stats"] or {}).get("from_last_block"):
                r = {**done.get((i, "transfer"), {}), **entry["transfer"], "condition": cond}   # no new block: same run
            else:
                child.load_state_dict(init)
                stats = None
                if cond != "scratch":
                    stats = transfer_weights(parent, child, kernel_transfer=(cond != "transfer_public"),
                                             new_blocks="identity" if cond == "transfer_identity" else "copy")
                run = train_until(child, train_ds, val_batches, epochs=a.max_epochs, batch_size=a.batch_size,
                                  peak_lr=peak, warmup_epochs=a.child_warmup, eval_every=eval_every, seed=_seed(a.seed, 3, i),
                                  target=target)
                r = {"child": i, "condition": cond, "genotype": entry["genotype"], "transfer_stats": stats, **run}
                append_jsonl(rpath, r)
            entry[cond] = {k: r[k] for k in ("reached_epochs", "best_val", "steps", "seconds", "transfer_stats",
                                             "curve")}
            print(f"child {i} {entry['mutation']:<28} {cond:<16} reached at {r['reached_epochs']} epochs "
                  f"(start {r['curve'][0][1]:.5g}, best {r['best_val']:.5g}, {r['seconds']} s)", flush=True)
        children.append(entry)
        report(final=False)
    result = report(final=True)
    print(json.dumps(result["summary"], indent=2))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
