"""`posenas evolve run ...` / `posenas evolve resume RUN`: the evolution's command line (wired into
`posenas_core.cli`). Building the parser imports no torch: `posenas --help` stays fast."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from posenas_core.errors import ConfigError
from posenas_core.search.evolution import PARAMS_METRICS, EvolutionConfig, resume, run_evolution
from posenas_core.spaces.evopose import genotype_to_str

__all__ = ["add_evolve_parser", "cmd_evolve"]


_CLI_FIELDS = {  # option -> (config field, type, help); the default is EvolutionConfig's (or --config's)
    "--data": ("data_dir", str, "dataset root with train and val splits (e.g. SynthPose)"),
    "--input": ("input_size", str, "network input HxW, multiples of 32"),
    "--lam": ("lam", int, "children per generation (lambda)"),
    "--mu": ("mu", int, "parents kept per generation (mu); lam must be a multiple of it"),
    "--generations": ("generations", int, "generations after generation 0"),
    "--e0": ("e0", int, "epochs of the ancestor (generation 0)"),
    "--e": ("e", int, "epochs of each child after the weight transfer"),
    "--gamma": ("gamma", float, "fitness exponent Gamma (negative: smaller networks win)"),
    "--target-params": ("target_params", float, "parameter count T where the fitness equals the val loss"),
    "--ancestor": ("ancestor", str, "generation 0's genotype as a short string (k3b1c2s1-...)"),
    "--batch-size": ("batch_size", int, "training batch size"),
    "--lr": ("base_lr", float, "Adam lr at batch 32 (scaled by batch / 32)"),
    "--child-lr": ("child_lr", float, "the children's Adam lr at batch 32 (default: --lr)"),
    "--seed": ("seed", int, "run seed: mutations, training seeds and the train subset"),
    "--params-metric": ("params_metric", str, f"parameter count in the fitness: one of {list(PARAMS_METRICS)}"),
    "--max-train-samples": ("max_train_samples", int, "random subset of the training persons"),
    "--max-val-images": ("max_val_images", int, "the first N val images for the loss and AP"),
    "--threads": ("torch_threads", int, "torch threads per candidate (results depend on it)"),
    "--keep-checkpoints": ("keep_checkpoints", str, "whose best.pt to keep: 'all' candidates, or the selection "
                                                     "'pool' only"),
    "--new-blocks": ("new_blocks", str, "a new block is a 'copy' of the module's last one, or 'identity'"),
    "--device": ("device", str, "where candidates train and are scored: cpu, cuda, cuda:N or auto (CUDA when present)"),
}
DEVICE_METAVAR = "{cpu,cuda,auto,cuda:N}"


def _default_of(field: str) -> str:
    """'default 128x96' (EvolutionConfig's default of `field`, as the option is written) for the help."""
    v = {f.name: f.default for f in dataclasses.fields(EvolutionConfig)}[field]
    if v is dataclasses.MISSING:
        return "required unless --config has it"
    if field == "input_size":
        return "default " + "x".join(map(str, v))
    if field == "ancestor":
        return "default " + genotype_to_str(v)
    if v is None:
        return "default all"
    return f"default {v:g}" if isinstance(v, float) else f"default {v}"


def _add_executor_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--executor", choices=("sequential", "ray"), default="sequential",
                   help="evaluate the children of a generation in this process (default) or in parallel with Ray")
    p.add_argument("--ray-address", default=None, help="join an existing Ray cluster (default: start a local one)")
    p.add_argument("--ray-cpus", type=int, default=None, help="CPUs of the local Ray cluster (default: all)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def add_evolve_parser(sub) -> argparse.ArgumentParser:
    """Add `evolve run` / `evolve resume` to an argparse subparsers object; returns the 'evolve' parser."""
    e = sub.add_parser("evolve", help="EvoPose2D (mu + lambda) neuroevolution with weight transfer")
    esub = e.add_subparsers(dest="evolve_command", required=True, metavar="EVOLVE_COMMAND")
    r = esub.add_parser("run", help="start an evolution run (options override --config's fields)")
    r.add_argument("--out", type=Path, required=True, help="run directory")
    r.add_argument("--config", type=Path, default=None, help="EvolutionConfig JSON (e.g. a run's config.json)")
    for opt, (field, typ, text) in _CLI_FIELDS.items():
        r.add_argument(opt, dest=field, type=typ, default=None, help=f"{text} ({_default_of(field)})",
                       **({"metavar": DEVICE_METAVAR} if field == "device" else {}))
    r.add_argument("--no-keep-ancestor", dest="keep_ancestor", action="store_const", const=False, default=None,
                   help="drop the ancestor from the selection pool (the public code keeps it)")
    r.add_argument("--no-kernel-transfer", dest="kernel_transfer", action="store_const", const=False, default=None,
                   help="do not transfer depthwise kernels on kernel-only mutations")
    r.add_argument("--ap", dest="compute_ap", action="store_const", const=True, default=None,
                   help="COCO AP of every candidate (slower)")
    r.add_argument("--resume", action="store_true", help="continue the run in --out if it exists")
    _add_executor_args(r)
    s = esub.add_parser("resume", help="continue a killed / finished run (optionally more generations)")
    s.add_argument("run_dir", type=Path, help="the run directory (holds config.json)")
    s.add_argument("--generations", type=int, default=None,
                   help="extend the run to this many generations (default: the stored number)")
    s.add_argument("--device", default=None, metavar=DEVICE_METAVAR,
                   help="continue on this device: cpu, cuda, cuda:N or auto (default: the stored one)")
    _add_executor_args(s)
    return e


def cmd_evolve(a: argparse.Namespace) -> dict:
    """Handler of the `evolve` subcommand (PoseNASError for bad input)."""
    ray_kw = {"ray_address": a.ray_address, "ray_num_cpus": a.ray_cpus} if a.executor == "ray" else {}
    if a.executor != "ray" and (a.ray_address or a.ray_cpus):
        raise ConfigError("--ray-address / --ray-cpus need --executor ray")
    if a.evolve_command == "resume":
        out = resume(a.run_dir, executor=a.executor, generations=a.generations, device=a.device,
                     progress=not a.quiet, **ray_kw)
    else:
        fields: dict = {}
        if a.config is not None:
            if not a.config.is_file():
                raise ConfigError(f"--config: file not found: {a.config}")
            try:
                fields = json.loads(a.config.read_text())
            except json.JSONDecodeError as err:
                raise ConfigError(f"--config {a.config}: not valid JSON ({err})") from None
            if not isinstance(fields, dict):
                raise ConfigError(f"--config {a.config}: expected a JSON object of EvolutionConfig fields")
        names = [f for f, *_ in _CLI_FIELDS.values()] + ["keep_ancestor", "kernel_transfer", "compute_ap"]
        fields.update({k: getattr(a, k) for k in names if getattr(a, k) is not None})
        out = run_evolution(EvolutionConfig.from_dict(fields), a.out, executor=a.executor, resume=a.resume,
                            progress=not a.quiet, **ray_kw)
    best = out["best"]
    return {"run_dir": out["run_dir"], "candidates": out["candidates"], "parents": out["parents"],
            "best": {k: best[k] for k in ("id", "genotype", "fitness", "val_loss", "params", "macs", "ap")}}
