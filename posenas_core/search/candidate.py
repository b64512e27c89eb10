"""One candidate of an evolution: build, transfer its parent's weights, train, score; its archive row.

    row = evaluate_candidate(config.to_dict(), run_dir, {"id": 3, "generation": 1, "parent": 0,
                                                         "genotype": "k3b1c2s1-...", "mutation": "..."})

`evaluate_candidate` is module-level and JSON-in / JSON-out, so that the Ray executor can ship it by
reference (`search.executors`); `search.evolution.run_evolution` calls it for every candidate.

Validation loss: the training loss (`train.validation.validation_loss`) over the val split's persons with
>= 1 labelled joint, no augmentation, eval mode, after every epoch; the trainer keeps the best-by-loss
checkpoint. Heatmaps use the candidate's own output stride (a stride mutation in modules 5-7 changes it
between 2 and 4) and `pipeline.heatmap_sigma`.

Determinism: candidate `id` trains with seed `evolution.train_seed(seed, id)` (init of the non-transferred
weights, sample order, augmentation, drop-connect) and `torch_threads` intra-op threads; CPU results are
bit-identical for the same candidate only at the same thread count.

Device: candidates train and are scored on `config.device` (`machine.resolve_device`; "auto": CUDA when
present); on a GPU under bf16 autocast, fp16 where the GPU lacks bf16 (`pipeline.cuda_autocast`); on the
CPU in fp32. Parent checkpoints are loaded and their weights transferred on the CPU.

Candidate directory `candidates/<id>/`: best.pt (trainer checkpoint of the best-val-loss epoch, spec
inside), result.json (its archive row: the "finished" marker), transfer.json (children: the weight-transfer
stats), metrics.jsonl and config.json (the trainer's); checkpoints/last.pt only while it trains.

Data errors: `check_data` refuses a dataset before a run writes anything; an image that goes missing or
corrupt while a candidate trains raises a DataError naming it and the candidate, which is not recorded.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from posenas_core.errors import CheckpointError, ConfigError, DataError, SpecError
from posenas_core.runs.io import atomic_torch_save, atomic_write_json
from posenas_core.spaces.evopose import genotype_from_str

if TYPE_CHECKING:
    from posenas_core.search.evolution import EvolutionConfig

__all__ = ["evaluate_candidate", "load_data", "check_data", "candidate_dir", "export_best"]


_DATA_CACHE: dict = {}


def load_data(config: EvolutionConfig) -> dict:
    """The run's person sets (cached per process): train (subset), val for the loss (>= 1 labelled joint),
    val for AP (every GT person of the chosen images) and the chosen val image ids."""
    from posenas_core.pipeline import load_split, split_paths

    stamps = []
    for split in ("train", "val"):            # a dataset rewritten in place (same dir) is not served stale
        st = split_paths(config.data_dir, split)[0].stat()
        stamps.append((st.st_mtime_ns, st.st_size))
    key = (str(Path(config.data_dir).resolve()), tuple(stamps), config.max_train_samples, config.max_val_images,
           config.seed)
    if key in _DATA_CACHE:
        return _DATA_CACHE[key]

    train_ps = load_split(config.data_dir, "train", train=True)
    if config.max_train_samples is not None and config.max_train_samples < len(train_ps.records):
        keep = np.sort(np.random.default_rng([config.seed, 0x5AB]).choice(
            len(train_ps.records), config.max_train_samples, replace=False))
        train_ps = dataclasses.replace(train_ps, records=[train_ps.records[i] for i in keep])
    val_all = load_split(config.data_dir, "val", train=False)
    image_ids = sorted(int(im["id"]) for im in val_all.coco.get("images", []))
    if config.max_val_images is not None:
        image_ids = image_ids[:config.max_val_images]
    chosen = set(image_ids)
    ap_ps = dataclasses.replace(val_all, records=[r for r in val_all.records if r.image_id in chosen])
    loss_ps = dataclasses.replace(val_all, records=[r for r in ap_ps.records if (r.keypoints[:, 2] > 0).any()])
    data = {"train": train_ps, "val_loss": loss_ps, "val_ap": ap_ps, "val_image_ids": image_ids}
    _DATA_CACHE.clear()
    _DATA_CACHE[key] = data
    return data


def check_data(config: EvolutionConfig, progress: bool = False) -> dict:
    """The run's data (`load_data`), refused before anything is written when it cannot be trained on:
    too few persons, no validation person, or a missing / corrupt image (DataError naming it)."""
    data = load_data(config)
    n = len(data["train"].records)
    if n < config.batch_size:
        raise ConfigError(f"the training set has {n} persons (max_train_samples = {config.max_train_samples}), fewer "
                          f"than batch_size = {config.batch_size}: no full batch; lower batch_size or use more data")
    if not data["val_loss"].records:
        raise ConfigError(f"{config.data_dir}: the val split (max_val_images = {config.max_val_images}) has no "
                          f"person with a labelled joint: no validation loss")
    from posenas_core.data.checks import check_images

    for key in ("train", "val_ap" if config.compute_ap else "val_loss"):   # the images the run will read
        check_images(data[key], progress=progress)
    return data


def _candidate_ap(model, config: EvolutionConfig, data: dict) -> float:
    from posenas_core.machine import resolve_device
    from posenas_core.pipeline import make_dataset
    from posenas_core.train.predict import make_val_fn

    model = model.to(resolve_device(config.device))
    ds = make_dataset(data["val_ap"], config.input_size, train=False, sigma=config.sigma,
                      stride=model.spec.output_stride)
    val_fn = make_val_fn(ds, data["val_ap"].coco, batch_size=config.val_batch_size, flip_test=False,
                         image_ids=data["val_image_ids"])          # E3 validates without flip test
    return float(val_fn(model)["AP"])


def candidate_dir(run_dir: Path, cid: int) -> Path:
    """run_dir/candidates/<cid>/."""
    return Path(run_dir) / "candidates" / str(int(cid))


def _drop_last_checkpoint(cdir: Path) -> None:
    """Remove candidates/<id>/checkpoints/ once the candidate is finished (last.pt holds the optimizer state,
    only needed to resume its training; best.pt has been moved up to candidates/<id>/best.pt)."""
    ckpt_dir = cdir / "checkpoints"
    (ckpt_dir / "last.pt").unlink(missing_ok=True)
    try:
        ckpt_dir.rmdir()
    except OSError:         # absent, or not empty
        pass


def evaluate_candidate(config: dict, run_dir: str, task: dict,
                       on_validation: Callable[[int, float], None] | None = None) -> dict:
    """Build, transfer (children), train and score one candidate; return its archive row.

    `config` is `EvolutionConfig.to_dict()` and `task` a `plan_children` item (the ancestor: parent None).
    Module-level and JSON-in / JSON-out so that Ray can run it. Idempotent: a finished candidate
    (candidates/<id>/result.json) is returned as stored, a half-trained one resumes from its checkpoint.
    Training errors give a row with status "failed"; data errors (a missing or corrupt image),
    parent-checkpoint errors and config errors (e.g. a half-trained candidate resumed on another device type,
    so in another precision) raise, leaving nothing recorded: they are not the candidate's fault, and a
    resume after the fix continues the candidate from its last checkpoint.
    `on_validation(id, val_loss)` is called after each epoch's validation (for monitors and tests)."""
    import torch

    from posenas_core.eval.profiler import count_macs, count_params
    from posenas_core.machine import resolve_device
    from posenas_core.models.registry import build_model
    from posenas_core.pipeline import cuda_autocast, make_dataset
    from posenas_core.search.evolution import EvolutionConfig, fitness, train_seed
    from posenas_core.train.checkpoints import load_checkpoint
    from posenas_core.train.trainer import TrainConfig, train
    from posenas_core.train.validation import validation_loss

    cfg = EvolutionConfig.from_dict(config)
    cid = int(task["id"])
    cdir = candidate_dir(Path(run_dir), cid)
    done = cdir / "result.json"
    if done.is_file():
        _drop_last_checkpoint(cdir)
        return json.loads(done.read_text())
    t0 = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.torch_threads)
    try:
        genotype = genotype_from_str(task["genotype"])
        spec = cfg.spec_for(genotype)
        parent = task.get("parent")
        epochs = cfg.e0 if parent is None else cfg.e
        row: dict[str, Any] = {
            "id": cid, "generation": int(task["generation"]), "parent": parent, "genotype": task["genotype"],
            "spec": spec.to_dict(), "params": None, "params_with_bn_stats": None, "macs": None, "val_loss": None,
            "fitness": None, "ap": None, "epochs": epochs, "wall_time_s": None, "status": "ok", "error": None,
            "mutation": task.get("mutation"),
        }
        data = load_data(cfg)
        seed = train_seed(cfg.seed, cid)
        model = build_model(spec, generator=torch.Generator().manual_seed(seed))  # what the transfer leaves
        row.update(count_params(model))
        row["macs"] = count_macs(model, cfg.input_size)
        if parent is not None:
            from posenas_core.search.transfer import transfer_weights   # lazy: written by a parallel task

            parent_model, _ = load_checkpoint(candidate_dir(Path(run_dir), parent) / "best.pt")
            stats = transfer_weights(parent_model, model, kernel_transfer=cfg.kernel_transfer,
                                     new_blocks=cfg.new_blocks)
            atomic_write_json(cdir / "transfer.json", {"parent": parent, "kernel_transfer": cfg.kernel_transfer,
                                                       "new_blocks": cfg.new_blocks,
                                                       **{k: int(v) for k, v in stats.items()}})
            del parent_model
        stride = spec.output_stride
        train_ds = make_dataset(data["train"], cfg.input_size, train=True, seed=seed, sigma=cfg.sigma, aug=cfg.aug,
                                stride=stride)
        val_ds = make_dataset(data["val_loss"], cfg.input_size, train=False, sigma=cfg.sigma, stride=stride)

        def val_fn(m):
            loss = validation_loss(m, val_ds, cfg.val_batch_size, cfg.channels_last)
            if on_validation is not None:
                on_validation(cid, loss)
            return {"loss": loss}

        lr = cfg.base_lr if parent is None or cfg.child_lr is None else cfg.child_lr
        device = resolve_device(cfg.device)
        tc = TrainConfig(epochs=epochs, batch_size=cfg.batch_size, base_lr=lr,
                         warmup_epochs=cfg.warmup_epochs, min_lr_ratio=cfg.min_lr_ratio,
                         weight_decay=cfg.weight_decay, channels_last=cfg.channels_last, seed=seed, val_every=1,
                         ckpt_every_steps=cfg.ckpt_every_steps, log_every=20, progress=False, num_workers=0,
                         device=str(device), **(cuda_autocast() if device.type == "cuda" else {}))
        best_path, ckpt_best = cdir / "best.pt", cdir / "checkpoints" / "best.pt"
        try:
            result = train(spec, train_ds, cdir, tc, val_fn=val_fn, resume=True, model=model)
            loss = None if result.best is None else float(result.best["value"])
            if loss is None or not math.isfinite(loss):
                raise FloatingPointError(f"validation loss is {loss} (training diverged)")
            if ckpt_best.is_file():
                ckpt_best.replace(best_path)
            row["val_loss"] = loss
            row["fitness"] = fitness(loss, row[cfg.params_metric], cfg.target_params, cfg.gamma)
            if cfg.compute_ap:
                best_model, _ = load_checkpoint(best_path, expected_spec=spec)
                row["ap"] = _candidate_ap(best_model, cfg, data)
        except DataError as err:                                      # not recorded: see the docstring
            raise DataError(f"candidate {cid} (generation {row['generation']}): {err}") from None
        except (CheckpointError, ConfigError, SpecError):
            raise
        except Exception as err:                                      # noqa: BLE001 - recorded in the archive
            row.update(status="failed", error=f"{type(err).__name__}: {err}", val_loss=None, fitness=None)
        row["wall_time_s"] = round(time.perf_counter() - t0, 3)
        atomic_write_json(done, row)
        _drop_last_checkpoint(cdir)
        return row
    finally:
        torch.set_num_threads(threads)


def export_best(run_dir: Path, row: dict, input_size) -> None:
    """Export candidate `row` as run_dir/best/: spec.json, weights.pt (state dict of its best-val-loss epoch)
    and metrics.json (its row + input size, written last: present with the same id means complete)."""
    from posenas_core.train.checkpoints import load_checkpoint

    out = Path(run_dir) / "best"
    metrics_path = out / "metrics.json"
    if metrics_path.is_file():
        try:
            if json.loads(metrics_path.read_text()).get("id") == row["id"]:
                return
        except json.JSONDecodeError:
            pass
    src = candidate_dir(run_dir, row["id"]) / "best.pt"
    model, _ = load_checkpoint(src)
    atomic_write_json(out / "spec.json", model.spec.to_dict())
    atomic_torch_save(out / "weights.pt", model.state_dict())
    atomic_write_json(metrics_path, {**row, "input_size": list(input_size),
                                     "checkpoint": str(src.relative_to(run_dir))})
