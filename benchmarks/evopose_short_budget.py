"""EvoPose2D on a CPU budget: OKS AP of the ancestor after e0 epochs at several learning rates, and of its
children trained `e` epochs at several child learning rates (what sets the EvoPose2D notebook's defaults).

Each trial is one candidate of a real evolution (`search.candidate.evaluate_candidate`, the code the search
runs): the ancestor with the notebook's fixed parts (head skips, 128x96), then --children of its mutants
(`EvoPoseSpace.mutate`, seeded), each given the ancestor's weights. One run per point: differences of a few
hundredths of AP are noise.

    .venv/bin/python benchmarks/evopose_short_budget.py                       # the README's grid, ~35 min alone
    .venv/bin/python benchmarks/evopose_short_budget.py --lrs 0.008 --e0 10 --child-lrs 0.008 0.0005
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from _common import OUT, emit

import numpy as np

NAME = "evopose_short_budget"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", type=int, default=800, help="SynthPose train images")
    ap.add_argument("--val", type=int, default=100, help="SynthPose val images (loss and AP)")
    ap.add_argument("--e0", type=int, nargs="+", default=[5, 10], help="ancestor epochs to try")
    ap.add_argument("--lrs", type=float, nargs="+", default=[0.002, 0.004, 0.008, 0.016],
                    help="ancestor Adam lrs at batch 32 (every e0 x lr pair)")
    ap.add_argument("--child-lrs", type=float, nargs="+", default=[0.008, 0.002, 0.0005],
                    help="children's lrs, tried on the last ancestor trained")
    ap.add_argument("--children", type=int, default=4, help="mutants of the ancestor per child lr")
    ap.add_argument("--e", type=int, default=1, help="child epochs")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", type=Path, default=OUT / f"{NAME}_work")
    a = ap.parse_args()

    from posenas_core import pipeline
    from posenas_core.search import EvolutionConfig, evaluate_candidate

    data = pipeline.synthpose_dir(a.work / f"synthpose_{a.train}_{a.val}", a.train, a.val, seed=0, progress=False)

    def config(lr: float, e0: int, child_lr: float | None = None) -> EvolutionConfig:
        return EvolutionConfig(data_dir=str(data), lam=1, mu=1, generations=1, e0=e0, e=a.e, base_lr=lr,
                               child_lr=child_lr, spec_overrides={"head_skips": True}, compute_ap=True,
                               torch_threads=a.threads)

    def run(cfg: EvolutionConfig, run_dir: Path, task: dict) -> dict:
        t0 = time.perf_counter()
        row = evaluate_candidate(cfg.to_dict(), str(run_dir), task)
        return {"val_loss": row["val_loss"], "ap": row["ap"], "params": row["params"], "status": row["status"],
                "wall_s": round(time.perf_counter() - t0, 1)}

    ancestors, last = [], None
    for e0 in a.e0:
        for lr in a.lrs:
            cfg = config(lr, e0)
            rd = a.work / f"ancestor_e{e0}_lr{lr:g}"
            task = {"id": 0, "generation": 0, "parent": None, "genotype": cfg.spec_for(cfg.ancestor).to_short()}
            ancestors.append({"e0": e0, "lr": lr, **run(cfg, rd, task)})
            print(ancestors[-1], flush=True)
            last = (cfg, rd)

    children = []
    cfg0, rd0 = last
    space, parent = cfg0.space, cfg0.spec_for(cfg0.ancestor)
    seen: set = {parent.genotype}
    mutants = []
    for j in range(a.children):
        child = space.mutate(parent, np.random.default_rng([0, 1, j]), seen)
        seen.add(child.genotype)
        mutants.append(child)
    for child_lr in a.child_lrs:
        rd = a.work / f"children_lr{child_lr:g}"
        if not (rd / "candidates" / "0").exists():                # finished children are kept (resumable)
            shutil.copytree(rd0 / "candidates" / "0", rd / "candidates" / "0")
        cfg = config(cfg0.base_lr, cfg0.e0, child_lr)
        for j, child in enumerate(mutants):
            task = {"id": 1 + j, "generation": 1, "parent": 0, "genotype": child.to_short()}
            children.append({"child_lr": child_lr, "genotype": child.to_short(), **run(cfg, rd, task)})
            print(children[-1], flush=True)

    emit(NAME, {"train_images": a.train, "val_images": a.val, "input": "128x96", "child_epochs": a.e,
                "parent": {"e0": cfg0.e0, "lr": cfg0.base_lr}, "ancestors": ancestors, "children": children})


if __name__ == "__main__":
    main()
