"""Pipeline steps: small, typed functions the CLI, the demo and the notebooks call.

    load_split(data_dir, split)            -> PersonSet (COCO-format dataset on disk, e.g. SynthPose)
    train_on_dataset(data_dir, model, ...) -> summary dict (a run directory with checkpoints, metrics)
    evaluate_model(model, person_set, ...) -> metrics dict (COCO 10 stats, per-joint AP, PCK)
    evaluate_checkpoint(path, data_dir)    -> metrics dict
    mean_pose_baseline(data_dir)           -> metrics dict of the "mean pose placed in the box" predictor
    run_demo(out_dir)                      -> generate SynthPose, train briefly, evaluate, write metrics.json

Each step writes what it produces into the directory it is given, atomically. Every training and evaluation
step takes `device`: "cpu" (default), "cuda", "cuda:N" or "auto" (CUDA when present), checked up front by
`machine.resolve_device` (ConfigError before anything is written).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

import numpy as np

from posenas_core.errors import ConfigError, DataError
from posenas_core.machine import resolve_device
from posenas_core.runs.io import atomic_write_json

__all__ = [
    "RUN_INFO", "PRECISIONS", "QuickstartConfig", "parse_input_size", "split_paths", "load_split",
    "heatmap_sigma", "make_dataset", "evaluate_model", "evaluate_once", "check_run_dir", "train_on_dataset",
    "run_info", "evaluate_checkpoint", "predict_checkpoint", "mean_pose_baseline", "run_demo", "synthpose_dir",
    "make_synthpose", "load_exported", "write_metrics", "cuda_autocast",
]

RUN_INFO = "pipeline.json"  # beside a run's checkpoints: data dir, input size, model name


def parse_input_size(text: str) -> tuple[int, int]:
    """'256x192' -> (256, 192): network input height x width, each a positive multiple of 32."""
    try:
        h, w = str(text).lower().split("x")
        h, w = int(h), int(w)
    except ValueError:
        raise ConfigError(f"expected HxW with two positive integers, e.g. 256x192; got {text!r}") from None
    if h <= 0 or w <= 0 or h % 32 or w % 32:
        raise ConfigError(f"input size {text!r}: height and width must be positive multiples of 32")
    return h, w


def split_paths(data_dir: str | Path, split: str) -> tuple[Path, Path]:
    """(annotation json, image root) of a split in the SynthPose / COCO layout."""
    data_dir = Path(data_dir)
    ann = data_dir / "annotations" / f"person_keypoints_{split}.json"
    if not ann.is_file():
        found = sorted(p.name for p in (data_dir / "annotations").glob("person_keypoints_*.json"))
        raise DataError(
            f"{ann}: annotation file not found; expected DIR/annotations/person_keypoints_<split>.json"
            + (f" (found: {found})" if found else f" (is {data_dir} a dataset root? generate one with `posenas data synth`)")
        )
    return ann, data_dir / "images"


def load_split(data_dir: str | Path, split: str, *, train: bool):
    from posenas_core.data.readers import read_coco_keypoints

    ann, images = split_paths(data_dir, split)
    # Training keeps persons with >= 1 labelled keypoint; evaluation keeps every GT person.
    return read_coco_keypoints(ann, images, min_keypoints=1 if train else 0)


def heatmap_sigma(input_hw, sigma: float | None = None, *, stride: int) -> float:
    """Gaussian sigma in heatmap pixels: `sigma` if given, else max(2, 2h'/64) for a heatmap of h' = H/stride
    rows (`stride`: the model's output stride, `spec.output_stride`).

    EvoPose2D's rule 2h'/64 gives 1 at 128x96 (32x24 heatmaps), a target so small that a CPU-budget run
    learns slowly (benchmarks/ap_figures.py); 2 heatmap pixels is SimpleBaseline's value and the floor here."""
    from posenas_core.data.codec import default_sigma

    return float(sigma) if sigma is not None else max(2.0, default_sigma(int(input_hw[0]) // int(stride)))


def make_dataset(person_set, input_hw, *, train: bool, stride: int, seed: int = 0, sigma: float | None = None,
                 aug=None, cache_mb: int = 0):
    """A TopDownDataset over `person_set` with heatmaps at output `stride` (the model's `spec.output_stride`);
    `aug` is an AugConfig or a dict of its fields (default AugConfig(); `transforms.aug_config_from`);
    `cache_mb` > 0 keeps up to that many MiB of decoded images in memory (`CachedImageSource`: for
    training, which reads every image once per epoch)."""
    from posenas_core.data.codec import HeatmapCodec
    from posenas_core.data.dataset import TopDownDataset
    from posenas_core.data.transforms import aug_config_from

    hw = tuple(int(v) for v in input_hw)
    codec = HeatmapCodec(hw, stride, sigma=heatmap_sigma(hw, sigma, stride=stride))
    aug = aug_config_from(aug, "aug")
    source = person_set.image_source
    if cache_mb:
        from posenas_core.data.types import CachedImageSource
        source = CachedImageSource(source, int(cache_mb) << 20)
    return TopDownDataset(person_set.records, source, input_size_hw=hw, codec=codec, train=train,
                          seed=seed, aug=aug)


def evaluate_model(model, person_set, input_hw, *, decode: str = "argmax", flip_test: bool = True, batch_size: int = 64,
                   progress: bool = False, sigma: float | None = None, device="cpu", runtime: str = "eager",
                   calibration=None) -> dict:
    """COCO OKS AP/AR (10 stats), PoseTrack-style per-joint AP and PCK@0.2 (box-normalised) of `model`,
    run in fp32 on `device` (the model is moved there in place, as `nn.Module.to` does), through `runtime`
    (`deploy.runtimes.runner_for`: eager, ort, compiled, auto, int8; "runtime" and its notes join the metrics).
    int8 needs `calibration` crops and adds "int8_check": its AP against ONNX Runtime fp32's (`deploy.quantize`);
    "auto" with `calibration` lets int8 win where its AP holds and it is faster (`evaluate_auto_with_int8`)."""
    model = model.to(resolve_device(device))
    kw = {"decode": decode, "flip_test": flip_test, "batch_size": batch_size, "progress": progress, "sigma": sigma}
    if runtime == "auto" and calibration is not None and next(model.parameters()).device.type == "cpu":
        from posenas_core.deploy.quantize import evaluate_auto_with_int8      # int8 joins, judged by AP

        return evaluate_auto_with_int8(model, person_set, input_hw, calibration, **kw)
    out = evaluate_once(model, person_set, input_hw, runtime, calibration, **kw)
    if runtime == "int8":
        from posenas_core.deploy.quantize import int8_verdict

        fp32 = evaluate_once(model, person_set, input_hw, "ort", **kw)
        out["int8_check"] = int8_verdict(fp32["coco"]["AP"], out["coco"]["AP"])
    return out


def evaluate_once(model, person_set, input_hw, runtime: str, calibration=None, *, decode: str = "argmax",
                  flip_test: bool = True, batch_size: int = 64, progress: bool = False,
                  sigma: float | None = None) -> dict:
    """`evaluate_model`'s metrics through one runtime (the model already on its device), without int8's AP
    check."""
    from posenas_core.deploy.runtimes import runner_for
    from posenas_core.eval.coco_eval import evaluate_keypoints
    from posenas_core.eval.pose_metrics import bbox_norm, pck, per_joint_ap
    from posenas_core.train.predict import output_stride_of, predict

    ds = make_dataset(person_set, input_hw, train=False, sigma=sigma,  # sigma matters to DARK decoding
                      stride=output_stride_of(model))
    net, rt = runner_for(model, runtime, input_hw, calibration=calibration)
    results, kps = predict(net, ds, batch_size=batch_size, flip_test=flip_test, decode=decode, progress=progress)
    out = {"coco": evaluate_keypoints(person_set.coco, results), **rt}
    out["per_joint_ap"] = per_joint_ap(person_set.coco, results)
    gt = np.stack([r.keypoints for r in person_set.records])
    boxes = np.stack([r.bbox for r in person_set.records])
    p = pck(kps[..., :2], gt, bbox_norm(boxes), thr=0.2)
    out["pck@0.2"] = float(p["mean"])
    out["n_persons"] = len(person_set.records)
    return out


def check_run_dir(run_dir, spec, input_hw, *, resume: bool = True) -> None:
    """Refuse to continue the run in `run_dir` with another model or input size than it was started with
    (its pipeline.json and the trainer's config.json), before anything is written: a resumed checkpoint
    evaluated at another size would be scored silently wrong. resume=False starts over: anything goes.
    ConfigError naming the run directory, the stored and the given values, and what is allowed."""
    if not resume:
        return
    from posenas_core.models.registry import load_spec

    stored = {}
    for name in (RUN_INFO, "config.json"):
        f = Path(run_dir) / name
        if f.is_file():
            try:
                stored[name] = json.loads(f.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                raise ConfigError(f"cannot resume {run_dir}: {f} is not valid JSON ({err}); use --no-resume "
                                  f"(resume=False) to start over or a new run directory") from None
    info, cfg = stored.get(RUN_INFO, {}), stored.get("config.json", {})
    diffs = []
    if "input_hw" in info and [int(v) for v in info["input_hw"]] != [int(v) for v in input_hw]:
        diffs.append(f"input size {'x'.join(map(str, info['input_hw']))}, not {'x'.join(map(str, input_hw))}")
    given = json.loads(json.dumps(spec.to_dict()))
    old_spec = cfg.get("spec")
    if old_spec is None and isinstance(info.get("model"), dict):  # a Spec given as such
        old_spec = info["model"]
    elif old_spec is None and "model" in info:
        try:
            old_spec = load_spec(info["model"]).to_dict()
        except ValueError:  # a spec file that has gone: nothing to compare
            old_spec = None
    old_spec = None if old_spec is None else json.loads(json.dumps(old_spec))
    if old_spec is not None and old_spec != given:
        field = next(k for k in sorted(set(old_spec) | set(given)) if old_spec.get(k) != given.get(k))
        name = info["model"] if isinstance(info.get("model"), str) else "(a spec)"
        diffs.append(f"model {name!r} (spec field {field!r}: {old_spec.get(field)!r}, "
                     f"not {given.get(field)!r})")
    if diffs:
        raise ConfigError(f"cannot resume {run_dir}: it was started with " + "; ".join(diffs)
                          + "; use the same values, --no-resume (resume=False) to start over, or a new run directory")


def cuda_autocast(bf16="auto") -> dict:
    """Autocast on a GPU: {"bf16", "fp16"}. bf16 True / False forces bf16 / fp32; "auto" takes bf16 where the
    GPU supports it (`torch.cuda.is_bf16_supported()`: Ampere and later), else fp16 (with a gradient scaler).
    Nothing is measured: `machine.resolve_auto` times CPU formats only."""
    import torch

    use_bf16 = bool(torch.cuda.is_bf16_supported()) if bf16 == "auto" else bool(bf16)
    return {"bf16": use_bf16, "fp16": bf16 == "auto" and not use_bf16}


def train_on_dataset(*, data_dir, model, run_dir, input_hw=(128, 96), epochs: int | str = 10,
                     recipe="short-cpu", batch_size: int | None = None, base_lr: float | None = None,
                     max_minutes: float | None = None, num_workers: int = 0, seed: int = 0, bf16="auto",
                     channels_last="auto", resume: bool = True, progress: bool = True, val_every: int = 1,
                     validate: bool = True, sigma: float | None = None, aug: dict | None = None,
                     cache_mb: int = 3072, device="cpu") -> dict:
    """Train `model` (preset name, spec JSON path or a Spec) on DIR's train split, validating on its val split.

    `recipe` (a name of `train.recipes` or a Recipe) gives lr, warm-up, schedule, batch size, augmentation
    and sigma; `batch_size`, `base_lr`, `sigma`, `aug` override it. epochs="auto" fills `max_minutes`: the
    trainer re-plans its steps from the speed it measures as it goes (`TrainConfig.fill_budget`), so a
    slower or busier machine does fewer steps but still ends its schedule inside the budget.
    bf16 / channels_last "auto": the fastest training format on this machine, measured on the network
    (`machine.choose_train_format`); the choice and the measurements are recorded in pipeline.json. On a
    GPU (`device`, recorded resolved in pipeline.json) nothing is measured: `cuda_autocast(bf16)`, and
    channels_last "auto" means True (NHWC suits cuDNN's mixed-precision convolutions).
    validate=False skips the per-epoch validation (when the caller evaluates afterwards anyway).
    `cache_mb` MiB of decoded training images are kept in memory (0: off)."""
    from posenas_core.models.registry import load_spec
    from posenas_core.train.predict import make_val_fn
    from posenas_core.train.trainer import train

    from posenas_core.genotype import Spec
    from posenas_core.train.recipes import get_recipe

    dev = resolve_device(device)                          # ConfigError before anything is read or written
    run_dir = Path(run_dir)
    spec = model if isinstance(model, Spec) else load_spec(model)
    epochs_auto = epochs == "auto"
    train_set = load_split(data_dir, "train", train=True)
    val_set = load_split(data_dir, "val", train=False) if validate else None
    # Refusals and data errors come before anything is written (no part-written run directory).
    from posenas_core.data.checks import check_images

    check_run_dir(run_dir, spec, input_hw, resume=resume)
    for person_set in (train_set, val_set) if validate else (train_set,):
        check_images(person_set, progress=progress)
    rec = get_recipe(recipe)
    batch_size = rec.batch_size if batch_size is None else batch_size
    stride = spec.output_stride
    sigma = heatmap_sigma(input_hw, rec.sigma if sigma is None else sigma, stride=stride)
    ds = make_dataset(train_set, input_hw, train=True, seed=seed, sigma=sigma,
                      aug=rec.aug if aug is None else aug, stride=stride, cache_mb=cache_mb)
    previous = _resumable_info(run_dir) if resume else None
    if epochs == "auto" and max_minutes is None:
        raise ConfigError("epochs='auto' needs a time budget (max_minutes)")
    if previous is not None and "format" in previous:      # a resumed run keeps the format and plan it chose
        fmt = previous["format"]
        if fmt.get("fp16") and dev.type != "cuda":
            raise ConfigError(f"cannot resume {run_dir} on {dev}: it trains with fp16 autocast, which needs a GPU; "
                              f"use device 'cuda' or 'auto' on a machine with one, or a new run directory")
    elif dev.type == "cuda":
        fmt = {**cuda_autocast(bf16), "channels_last": True if channels_last == "auto" else bool(channels_last),
               "img_per_s": None, "measured": {}}
    else:
        from posenas_core.machine import resolve_auto

        fmt = resolve_auto(spec, input_hw, batch_size=batch_size, bf16=bf16, channels_last=channels_last)
    if epochs == "auto":
        if previous is not None and "epochs" in previous:
            epochs = int(previous["epochs"])
        else:   # a first plan; the trainer re-plans from the speed it measures
            from posenas_core.machine import train_step_speed

            ips = fmt["img_per_s"] or train_step_speed(spec, input_hw, batch_size=batch_size, bf16=fmt["bf16"],
                                                       channels_last=fmt["channels_last"], device=dev.type)
            epochs = max(1, math.ceil(0.9 * max_minutes * 60.0 * ips / len(ds)))
    info = {"data_dir": str(data_dir), "model": model if isinstance(model, str) else spec.to_dict(),
            "input_hw": list(input_hw), "epochs": epochs, "fill_budget": epochs_auto,   # auto needs max_minutes
            "sigma": sigma, "output_stride": stride, "train_persons": len(ds), "recipe": rec.name,
            "format": fmt, "aug": dataclasses.asdict(ds.aug), "device": str(dev)}
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run_dir / RUN_INFO, info)
    fields = dict(batch_size=batch_size, num_workers=num_workers, seed=seed, bf16=fmt["bf16"],
                  fp16=bool(fmt.get("fp16", False)), channels_last=fmt["channels_last"], max_minutes=max_minutes,
                  progress=progress, val_every=val_every, fill_budget=info["fill_budget"], device=str(dev))
    if base_lr is not None:
        fields["base_lr"] = base_lr
    config = dataclasses.replace(rec.train_config(epochs=epochs), **fields)
    val_fn = (make_val_fn(make_dataset(val_set, input_hw, train=False, sigma=sigma, stride=stride), val_set.coco)
              if validate else None)
    t0 = time.time()
    result = train(spec, ds, run_dir, config, val_fn=val_fn, resume=resume)
    summary = {"run_dir": str(run_dir), "train_seconds": round(time.time() - t0, 1), **info}
    summary.update({k: v for k, v in vars(result).items() if isinstance(v, (int, float, str, dict, list, type(None)))})
    summary["epochs_done"] = round(result.step * batch_size / max(1, len(ds)), 2)   # passes over the persons
    return summary


def _resumable_info(run_dir: Path) -> dict | None:
    """The pipeline.json of a run that a resume would continue (None when there is nothing to resume)."""
    f = run_dir / RUN_INFO
    if f.is_file() and (run_dir / "checkpoints" / "last.pt").is_file():
        return json.loads(f.read_text())
    return None


def run_info(checkpoint: str | Path) -> dict:
    """The pipeline.json of the run a checkpoint belongs to ({} when there is none)."""
    for d in Path(checkpoint).resolve().parents[:2]:
        f = d / RUN_INFO
        if f.is_file():
            return json.loads(f.read_text())
    return {}


def evaluate_checkpoint(checkpoint, *, data_dir, split: str = "val", decode: str = "argmax", flip_test: bool = True,
                        input_hw=None, out=None, device="cpu", runtime: str = "eager") -> dict:
    """`evaluate_model` of a trainer checkpoint (loaded on the CPU, then moved to `device`) on DIR's `split`;
    the input size and sigma come from the run's pipeline.json unless `input_hw` is given. `out`: also
    write the metrics JSON there."""
    resolve_device(device)                                # ConfigError before anything is read or written
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise ConfigError(f"checkpoint file not found: {checkpoint}")
    from posenas_core.train.checkpoints import load_checkpoint

    model, _ = load_checkpoint(checkpoint)
    info = run_info(checkpoint)
    input_hw = input_hw or info.get("input_hw")
    if input_hw is None:
        raise ConfigError(f"{checkpoint}: no {RUN_INFO} beside it gives the input size; pass input_hw")
    person_set = load_split(data_dir, split, train=False)
    calibration = None
    if runtime == "int8" or (runtime == "auto" and resolve_device(device).type == "cpu"):
        from posenas_core.deploy.quantize import calibration_from_dir     # int8's ranges: training-split crops

        try:
            calibration = calibration_from_dir(data_dir, input_hw)
        except ConfigError:
            if runtime == "int8":
                raise                                     # "auto" goes on without int8
    metrics = evaluate_model(model, person_set, input_hw, decode=decode, flip_test=flip_test,
                             sigma=info.get("sigma"), device=device, runtime=runtime, calibration=calibration)
    metrics.update(checkpoint=str(checkpoint), split=split, decode=decode, flip_test=flip_test, input_hw=list(input_hw))
    if out is not None:
        atomic_write_json(out, metrics)
    return metrics


def predict_checkpoint(checkpoint, person_set, *, input_hw, decode: str = "argmax", flip_test: bool = True,
                       device="cpu", runtime: str = "eager") -> np.ndarray:
    """(N, K, 3) predicted keypoints (x, y, score in image pixels) of `checkpoint` for `person_set.records`,
    run on `device` through `runtime` (as `evaluate_model`; NumPy on the CPU either way)."""
    from posenas_core.deploy.runtimes import runner_for
    from posenas_core.train.checkpoints import load_checkpoint
    from posenas_core.train.predict import output_stride_of, predict

    dev = resolve_device(device)
    model = load_checkpoint(checkpoint)[0].to(dev)
    ds = make_dataset(person_set, input_hw, train=False, sigma=run_info(checkpoint).get("sigma"),
                      stride=output_stride_of(model))
    _, kps = predict(runner_for(model, runtime, input_hw)[0], ds, flip_test=flip_test, decode=decode)
    return kps


def mean_pose_baseline(data_dir, split: str = "val") -> dict:
    """The 'mean pose placed in the box' predictor: the mean of the training keypoints in box-normalised
    coordinates ((x - x0) / w, (y - y0) / h over visible joints), placed into every evaluation box.
    Its OKS AP measures how much of a dataset a network could score without looking at the image."""
    from posenas_core.eval.coco_eval import evaluate_keypoints, make_results

    train_set = load_split(data_dir, "train", train=True)
    ev = load_split(data_dir, split, train=False)
    b = np.stack([r.bbox for r in train_set.records]).astype(np.float64)
    k = np.stack([r.keypoints for r in train_set.records]).astype(np.float64)
    vis = k[..., 2] > 0
    rel = (k[..., :2] - b[:, None, :2]) / np.maximum(b[:, None, 2:], 1.0)
    mean = np.array([rel[vis[:, j], j].mean(axis=0) if vis[:, j].any() else (0.5, 0.5) for j in range(k.shape[1])])
    eb = np.stack([r.bbox for r in ev.records]).astype(np.float64)
    pred = eb[:, None, :2] + mean[None] * eb[:, None, 2:]
    kps = np.concatenate([pred, np.ones(pred.shape[:2] + (1,))], axis=-1)
    results = make_results([r.image_id for r in ev.records], kps, [r.score for r in ev.records])
    return {"coco": evaluate_keypoints(ev.coco, results), "n_persons": len(ev.records)}


def run_demo(out_dir, *, n_train: int = 2000, n_val: int = 200, minutes: float = 3.0, model: str = "baseline-resnet",
             seed: int = 0, input_hw=(128, 96), epochs: int | str = "auto", device="cpu") -> dict:
    """Generate SynthPose, train the baseline for `minutes`, evaluate, write OUT/metrics.json.

    epochs="auto" fits the cosine schedule to the time budget (a short speed measurement first)."""
    from posenas_core.data.synthpose import write_synthpose

    resolve_device(device)                                # ConfigError before the dataset is written
    out_dir = Path(out_dir)
    data_dir = out_dir / "synthpose"
    t0 = time.time()
    manifest_file = data_dir / "synthpose.json"
    if not manifest_file.is_file():  # the manifest is written last: present means complete
        write_synthpose(data_dir, n_train, n_val, 0, seed=seed)
    t_data = time.time() - t0
    summary = train_on_dataset(data_dir=data_dir, model=model, run_dir=out_dir / "run", input_hw=input_hw,
                               epochs=epochs, max_minutes=minutes, seed=seed, validate=False, device=device)
    ckpt = out_dir / "run" / "checkpoints" / "last.pt"
    metrics = evaluate_checkpoint(ckpt, data_dir=data_dir, input_hw=input_hw, device=device)
    baseline = mean_pose_baseline(data_dir)
    report = {
        "dataset": {"dir": str(data_dir), "train_images": n_train, "val_images": n_val, "seconds": round(t_data, 1)},
        "model": model, "input_hw": list(input_hw), "train": summary, "val": metrics,
        "mean_pose_baseline": baseline, "AP": metrics["coco"]["AP"], "mean_pose_AP": baseline["coco"]["AP"],
    }
    atomic_write_json(out_dir / "metrics.json", report)
    return {"metrics": str(out_dir / "metrics.json"), "AP": report["AP"], "mean_pose_AP": report["mean_pose_AP"]}


PRECISIONS = {"auto": "auto", "fp32": False, "bf16": True}   # a notebook's `precision` -> train_on_dataset(bf16=)


@dataclasses.dataclass(frozen=True)
class QuickstartConfig:
    """The quickstart notebook's parameters, validated (notebooks/00_quickstart.ipynb)."""

    n_train: int = 400            # SynthPose training images (~1.5 persons each)
    n_val: int = 60               # validation images
    difficulty: str = "default"   # SynthConfig preset: easy | default | hard
    input_size: str = "128x96"    # network input HxW; 128x96 trains ~4x faster than 256x192 on a CPU
    model: str = "baseline-resnet-skip"  # preset name or a spec JSON string (U-Net skips: learns fast)
    epochs: int = 0               # 0: as many as fit in `minutes` (see schedule_for_budget)
    minutes: float = 2.0          # training time budget
    recipe: str = "short-cpu"     # training recipe (train.recipes): short-cpu | simplebaseline | evopose2d
    precision: str = "auto"       # auto: bf16 only where native and measured faster here | fp32 | bf16
    seed: int = 0                 # data and training seed
    out_dir: str = "reports/quickstart"  # where the dataset, run and metrics.json go

    def __post_init__(self):
        def bad(field, allowed):
            raise ConfigError(f"quickstart parameter {field} = {getattr(self, field)!r} is invalid; expected {allowed}")

        for f in ("n_train", "n_val", "seed"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int) or v < (0 if f == "seed" else 1):
                bad(f, "a non-negative integer" if f == "seed" else "a positive integer")
        if self.difficulty not in ("easy", "default", "hard"):
            bad("difficulty", "one of 'easy', 'default', 'hard'")
        try:
            parse_input_size(self.input_size)
        except ConfigError as err:
            raise ConfigError(f"quickstart parameter input_size: {err}") from None
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 0:
            bad("epochs", "a non-negative integer (0: fit the time budget)")
        if isinstance(self.minutes, bool) or not isinstance(self.minutes, (int, float)) or not self.minutes > 0:
            bad("minutes", "a positive number")
        if self.precision not in PRECISIONS:
            bad("precision", f"one of {sorted(PRECISIONS)}")
        from posenas_core.train.recipes import get_recipe

        try:
            get_recipe(self.recipe)
        except ConfigError as err:
            raise ConfigError(f"quickstart parameter recipe: {err}") from None
        from posenas_core.models.registry import load_spec

        load_spec(self.model)  # unknown preset / bad spec: SpecError or ConfigError naming it

    @property
    def input_hw(self) -> tuple[int, int]:
        return parse_input_size(self.input_size)

    @property
    def bf16(self):
        """train_on_dataset's bf16 argument: "auto", True or False."""
        return PRECISIONS[self.precision]

    @property
    def train_epochs(self) -> int | str:
        return self.epochs or "auto"

    @property
    def data_dir(self) -> Path:
        return Path(self.out_dir) / "synthpose"

    @property
    def run_dir(self) -> Path:
        return Path(self.out_dir) / "run"


def synthpose_dir(data_dir, n_train: int, n_val: int, *, difficulty: str = "default", seed: int = 0,
                  progress: bool = True) -> Path:
    """Generate SynthPose images into `data_dir` (or reuse it when complete: the manifest is written last)."""
    from posenas_core.data.synthpose import SynthConfig, write_synthpose

    presets = {"easy": SynthConfig.easy, "default": SynthConfig, "hard": SynthConfig.hard}
    if difficulty not in presets:
        raise ConfigError(f"SynthPose difficulty {difficulty!r} is unknown; choose one of {sorted(presets)}")
    data_dir = Path(data_dir)
    if not (data_dir / "synthpose.json").is_file():
        write_synthpose(data_dir, n_train, n_val, 0, seed=seed, config=presets[difficulty](), progress=progress)
    return data_dir


def make_synthpose(cfg: QuickstartConfig) -> Path:
    """Generate (or reuse, when complete) the quickstart's SynthPose dataset; returns its directory."""
    return synthpose_dir(cfg.data_dir, cfg.n_train, cfg.n_val, difficulty=cfg.difficulty, seed=cfg.seed)


def load_exported(model_dir, device="cpu"):
    """The network exported as MODEL_DIR/spec.json + MODEL_DIR/weights.pt (e.g. an evolution's best/), eval mode,
    on `device` (loaded on the CPU first).

    CheckpointError when a file is missing or the weights do not fit the spec (naming the first mismatch)."""
    from posenas_core.errors import CheckpointError
    from posenas_core.genotype import spec_from_json
    from posenas_core.models.registry import build_model
    from posenas_core.runs.io import read_torch_file
    from posenas_core.train.checkpoints import check_state_dict

    dev = resolve_device(device)
    model_dir = Path(model_dir)
    spec_file, weights_file = model_dir / "spec.json", model_dir / "weights.pt"
    for f in (spec_file, weights_file):
        if not f.is_file():
            raise CheckpointError(f"exported model {model_dir}: {f.name} is missing (need spec.json and weights.pt)")
    model = build_model(spec_from_json(spec_file.read_text(encoding="utf-8")))
    state = read_torch_file(weights_file, what="weights file")  # one-line CheckpointError naming it
    if not isinstance(state, dict):
        raise CheckpointError(f"weights file {weights_file} holds a {type(state).__name__}, not a state dict")
    check_state_dict(model.state_dict(), state, str(weights_file))
    model.load_state_dict(state)
    return model.eval().to(dev)


def write_metrics(out_dir, metrics: dict) -> Path:
    """OUT/metrics.json (atomic); what `posenas run` / `posenas batch` collect from a notebook."""
    return atomic_write_json(Path(out_dir) / "metrics.json", metrics)
