"""`posenas supernet train | resume | extract`: the supernet's command line (wired into `posenas_core.cli`).

    posenas supernet train --space vipnas-res50 --data DIR --out RUN [--input 128x96 --epochs 10 ...]
    posenas supernet resume RUN [--minutes M]
    posenas supernet extract RUN --arch JSON_OR_FILE_OR_SHORT --out DIR      spec.json + BN-calibrated weights.pt

RUN/supernet_run.json keeps the options of `train`, so `resume` continues with the same data and schedule.
Under torchrun (`torchrun --nproc_per_node=N -m posenas_core.cli supernet train ...`) every rank runs this and
the trainer splits each batch over the ranks. Building the parser imports no torch.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from posenas_core.errors import ConfigError
from posenas_core.spaces.supernet import SUPERNET_SPACES

__all__ = ["add_supernet_parser", "cmd_supernet", "RUN_OPTIONS", "load_arch", "load_supernet"]

RUN_OPTIONS = "supernet_run.json"
_RESUME_OVERRIDES = ("minutes", "quiet", "device")


def add_supernet_parser(sub, types: dict) -> None:
    """Add `supernet` and its subcommands to the `posenas` subparsers; `types` are the CLI's value parsers
    (hw, pos_int, nonneg_int, pos_float)."""
    sn = sub.add_parser("supernet", help="ViPNAS weight-sharing supernets: train (sandwich rule), resume, extract")
    ss = sn.add_subparsers(dest="supernet_command", required=True, metavar="SUPERNET_COMMAND")
    t = ss.add_parser("train", help="train a supernet with the sandwich rule and in-place distillation")
    t.add_argument("--space", required=True, choices=SUPERNET_SPACES, help="the search space whose supernet to train")
    t.add_argument("--data", required=True, type=Path, help="dataset root with train and val splits (e.g. SynthPose)")
    t.add_argument("--out", required=True, type=Path, help="run directory")
    t.add_argument("--input", type=types["hw"], default=(128, 96), help="input HxW, multiples of 32 (default 128x96)")
    t.add_argument("--epochs", type=types["pos_int"], default=10, help="epochs (default 10)")
    t.add_argument("--batch-size", type=types["pos_int"], default=32,
                   help="global batch size (default 32); under DDP it must be a multiple of the ranks")
    t.add_argument("--lr", type=types["pos_float"], default=1e-3, help="Adam lr at batch 32 (default 1e-3, the paper's)")
    t.add_argument("--num-random", type=types["nonneg_int"], default=2,
                   help="random sub-networks per batch besides the largest and smallest (default 2)")
    t.add_argument("--minutes", type=types["pos_float"], default=None, help="time budget of this call")
    t.add_argument("--seed", type=types["nonneg_int"], default=0, help="init, data order and sub-network draws")
    t.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or auto")
    t.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                   help="fp32 (default) or bf16 autocast (fast only where the CPU or GPU has native bf16)")
    t.add_argument("--calib-batches", type=types["pos_int"], default=8,
                   help="training batches that re-estimate BN before each validation of a sub-network (default 8)")
    t.add_argument("--val-every", type=types["pos_int"], default=1, help="epochs between validations (default 1)")
    t.add_argument("--no-val", action="store_true", help="no validation (AP of the largest and smallest)")
    t.add_argument("--max-val-images", type=types["pos_int"], default=None, help="validate on the first N val images")
    t.add_argument("--no-resume", action="store_true", help="start over even if RUN has a checkpoint")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    r = ss.add_parser("resume", help="continue a supernet run from its last checkpoint, with its options")
    r.add_argument("run", type=Path, help="run directory of `posenas supernet train`")
    r.add_argument("--minutes", type=types["pos_float"], default=None, help="time budget of this call")
    r.add_argument("--device", default=None, help="cpu, cuda, cuda:N or auto (default: the run's)")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    x = ss.add_parser("extract", help="a sub-network's spec and BN-recalibrated weights, as a model directory")
    x.add_argument("run", type=Path, help="run directory of `posenas supernet train`")
    x.add_argument("--arch", required=True,
                   help="the sub-network: a spec JSON (text or file), a short string, or max / min / released")
    x.add_argument("--out", required=True, type=Path, help="output directory (spec.json, weights.pt)")
    x.add_argument("--checkpoint", choices=("last", "best"), default="last", help="which checkpoint (default last)")
    x.add_argument("--calib-batches", type=types["pos_int"], default=16, help="BN recalibration batches (default 16)")


def load_arch(space, text: str):
    """The arch `text` names in `space`: max / min / released, a spec JSON text or file, or a short string;
    SpecError naming what is outside the space."""
    from posenas_core.genotype import spec_from_json

    text = str(text).strip()
    if text in ("max", "min", "released"):
        if not hasattr(space, text):
            raise ConfigError(f"space {space.name!r} has no {text!r} arch; allowed: max, min, a spec JSON or short string")
        return getattr(space, text)()
    path = Path(text)
    if not text.startswith("{") and path.suffix == ".json":
        if not path.is_file():
            raise ConfigError(f"--arch file not found: {path}")
        text = path.read_text(encoding="utf-8")
    arch = spec_from_json(text) if text.startswith("{") else space.spec_class.from_short(text)
    return space.validate(arch)


def load_supernet(run_dir: Path, which: str = "last"):
    """(supernet in eval mode, its SupernetSpec) from RUN/checkpoints/<which>.pt; CheckpointError when the
    checkpoint holds another kind of model."""
    from posenas_core.errors import CheckpointError
    from posenas_core.spaces.supernet import SupernetSpec
    from posenas_core.train.checkpoints import load_checkpoint

    path = Path(run_dir) / "checkpoints" / f"{which}.pt"
    if not path.is_file():
        raise CheckpointError(f"no checkpoint {path}; a supernet run writes checkpoints/last.pt (best.pt when validated)")
    model, ckpt = load_checkpoint(path)
    spec = model.spec if hasattr(model, "spec") else None
    if not isinstance(spec, SupernetSpec):
        raise CheckpointError(f"{path} holds a {type(spec).__name__} model, not a supernet (SupernetSpec)")
    return model.eval(), spec


def _options(a) -> dict:
    keys = ("space", "data", "input", "epochs", "batch_size", "lr", "num_random", "minutes", "seed", "device",
            "precision", "calib_batches", "val_every", "no_val", "max_val_images", "quiet")
    return {k: (str(getattr(a, k)) if isinstance(getattr(a, k), Path) else getattr(a, k)) for k in keys}


def _train(o: dict, run_dir: Path, resume: bool) -> dict:
    import dataclasses

    from posenas_core import pipeline
    from posenas_core.machine import resolve_device
    from posenas_core.runs.io import atomic_write_json
    from posenas_core.train.distributed import init_from_env
    from posenas_core.train.predict import make_val_fn
    from posenas_core.train.recipes import get_recipe
    from posenas_core.train.supernet import calibration_batches, make_supernet_val_fn, train_supernet
    from posenas_core.spaces.supernet import SupernetSpec

    device = resolve_device(o["device"])                      # ConfigError before anything is read or written
    spec = SupernetSpec(space=o["space"])
    input_hw = tuple(o["input"])
    rec = get_recipe("short-cpu")
    stride = spec.output_stride
    sigma = pipeline.heatmap_sigma(input_hw, rec.sigma, stride=stride)
    train_set = pipeline.load_split(o["data"], "train", train=True)
    ranks = init_from_env(device)
    ds = pipeline.make_dataset(train_set, input_hw, train=True, seed=o["seed"], sigma=sigma, aug=rec.aug,
                               stride=stride)
    val_fn = None
    if not o["no_val"]:
        val_set = pipeline.load_split(o["data"], "val", train=False)
        ids = sorted(int(im["id"]) for im in val_set.coco.get("images", []))[:o["max_val_images"] or None]
        chosen = set(ids)
        val_set = dataclasses.replace(val_set, records=[r for r in val_set.records if r.image_id in chosen])
        vds = pipeline.make_dataset(val_set, input_hw, train=False, sigma=sigma, stride=stride)
        evaluate = make_val_fn(vds, val_set.coco, image_ids=ids)
        calib = calibration_batches(ds, num_batches=o["calib_batches"], batch_size=o["batch_size"], seed=o["seed"])
        val_fn = make_supernet_val_fn(evaluate, calib)
    config = dataclasses.replace(
        rec.train_config(epochs=o["epochs"]), batch_size=o["batch_size"], base_lr=o["lr"], seed=o["seed"],
        max_minutes=o["minutes"], device=o["device"], bf16=o["precision"] == "bf16", progress=not o["quiet"],
        val_every=o["val_every"])
    if ranks.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(run_dir / RUN_OPTIONS, o)
    result = train_supernet(o["space"], ds, run_dir, config, num_random=o["num_random"], val_fn=val_fn,
                            resume=resume)
    return {"run_dir": str(run_dir), "space": o["space"], "ranks": ranks.world, "step": result.step,
            "total_steps": result.total_steps, "stop_reason": result.stop_reason, "best": result.best,
            "last_val": result.last_val, "last_loss": result.last_loss,
            "train_seconds": round(result.elapsed_s, 1)}


def _extract(a) -> dict:
    from posenas_core import pipeline
    from posenas_core.eval.profiler import count_params
    from posenas_core.runs.io import atomic_torch_save, atomic_write_json
    from posenas_core.train.supernet import calibrate_subnet, calibration_batches

    o = _run_options(a.run)
    supernet, spec = load_supernet(a.run, a.checkpoint)
    arch = load_arch(spec.search_space, a.arch)
    input_hw = tuple(o["input"])
    sigma = pipeline.heatmap_sigma(input_hw, None, stride=spec.output_stride)
    ds = pipeline.make_dataset(pipeline.load_split(o["data"], "train", train=True), input_hw, train=True,
                               seed=o["seed"], sigma=sigma, stride=spec.output_stride)
    net = calibrate_subnet(supernet, arch, calibration_batches(ds, num_batches=a.calib_batches,
                                                               batch_size=o["batch_size"], seed=o["seed"]))
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "spec.json", arch.to_dict())
    atomic_torch_save(out / "weights.pt", net.state_dict())
    info = {"run": str(a.run), "checkpoint": a.checkpoint, "arch": arch.to_short(), "space": spec.space,
            "calib_batches": a.calib_batches, "input_hw": list(input_hw), "params": count_params(net)["params"]}
    atomic_write_json(out / "extract.json", info)
    return {"out": str(out), **info}


def _run_options(run_dir: Path) -> dict:
    f = Path(run_dir) / RUN_OPTIONS
    if not f.is_file():
        raise ConfigError(f"{run_dir} is not a supernet run: {RUN_OPTIONS} is missing (written by `posenas supernet train`)")
    return json.loads(f.read_text(encoding="utf-8"))


def cmd_supernet(a) -> dict:
    if a.supernet_command == "train":
        return _train(_options(a), Path(a.out), resume=not a.no_resume)
    if a.supernet_command == "resume":
        o = _run_options(a.run)
        o.update({k: getattr(a, k) for k in _RESUME_OVERRIDES if getattr(a, k) not in (None, False)})
        return _train(o, Path(a.run), resume=True)
    return _extract(a)
