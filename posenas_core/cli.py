"""`posenas` command line.

    posenas data synth --out DIR --train N --val M [--videos V] [--seed S] [--difficulty easy|default|hard]
    posenas profile MODEL [--input HxW] [--threads N] [--no-latency] [--runtime auto|eager|ort|compiled|int8]
    posenas train --data DIR --model MODEL --out RUN [--input HxW] [--epochs E] [--minutes M] [--device D] ...
    posenas eval CHECKPOINT --data DIR [--split val] [--decode argmax|dark] [--no-flip] [--out FILE] [--device D]
                 [--runtime auto|eager|ort|compiled|int8]
    posenas demo --out DIR [--device D]
    posenas run NOTEBOOK -p NAME VALUE ... [-f params.yaml] --out DIR
    posenas batch SWEEP.yaml [--workers N]
    posenas export MODEL_OR_CHECKPOINT_OR_RUN --format onnx --input HxW --out FILE [--opset N] [--no-check]
    posenas evolve run ... | resume RUN
    posenas supernet train --space vipnas-res50|vipnas-mbv3 --data DIR --out RUN ... | resume RUN | extract RUN ...

MODEL is a preset name (`posenas profile --list`) or a spec JSON file. Errors in the input
(unknown option, bad value, missing file) print one line naming what was wrong and exit 2. A notebook
that fails (`run`), or any run of a batch that fails (`batch`, after finishing the others), exits 1.
Heavy modules (torch, pandas, the pipeline) are imported inside the command functions, so `--help` is quick.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from posenas_core.errors import ConfigError, PoseNASError

__all__ = ["build_parser", "main", "parse_hw"]


def parse_hw(text: str) -> tuple[int, int]:
    """argparse type for --input: `pipeline.parse_input_size`, its error reported as argparse's."""
    from posenas_core.pipeline import parse_input_size

    try:
        return parse_input_size(text)
    except ConfigError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _nonneg_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {v}")
    return v


def _pos_int(text: str) -> int:
    v = _nonneg_int(text)
    if v == 0:
        raise argparse.ArgumentTypeError("expected a positive integer, got 0")
    return v


def _epochs(text: str) -> int | str:
    return "auto" if text == "auto" else _pos_int(text)


def _json_object(text: str) -> dict:
    try:
        v = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r} ({err.msg})") from None
    if not isinstance(v, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object {{\"field\": value, ...}}, got {text!r}")
    return v


def _pos_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {v}")
    return v


DEVICE_METAVAR = "{cpu,cuda,auto,cuda:N}"


def _device(text: str) -> str:
    """argparse type for --device: the form only ('cpu', 'cuda', 'cuda:N', 'auto'); whether this machine has
    the GPU is checked by the command (`machine.resolve_device`: one ConfigError line, exit 2)."""
    if text in ("cpu", "cuda", "auto") or (text.startswith("cuda:") and text[5:].isdigit()):
        return text
    raise argparse.ArgumentTypeError(f"expected cpu, cuda, cuda:N or auto (CUDA when present), got {text!r}")


def _add_device(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--device", type=_device, default="cpu", metavar=DEVICE_METAVAR,
                   help=f"where to {what}: cpu (default), cuda, cuda:N, or auto (CUDA when present)")


RUNTIME_CHOICES = ("auto", "eager", "ort", "compiled", "int8")   # = deploy.runtimes.RUNTIME_CHOICES (no torch here)


def _add_runtime(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--runtime", choices=RUNTIME_CHOICES, default="eager",
                   help=f"how to {what}: eager PyTorch (default), ort (ONNX Runtime), compiled (torch.compile, "
                        f"bf16 where native and faster), auto (the fastest that matches eager here), or int8 "
                        f"(ONNX Runtime static quantization; eval calibrates on the train split and compares AP)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="posenas", description="PoseNAS Lab: NAS for human pose estimation")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    d = sub.add_parser("data", help="datasets")
    dsub = d.add_subparsers(dest="data_command", required=True, metavar="DATA_COMMAND")
    s = dsub.add_parser("synth", help="generate SynthPose (COCO + PoseTrack 2018 layouts)")
    s.add_argument("--out", required=True, type=Path, help="output directory")
    s.add_argument("--train", type=_nonneg_int, default=1000, help="training images (default 1000)")
    s.add_argument("--val", type=_nonneg_int, default=200, help="validation images (default 200)")
    s.add_argument("--videos", type=_nonneg_int, default=0, help="validation videos (default 0)")
    s.add_argument("--seed", type=_nonneg_int, default=0, help="generator seed (default 0)")
    s.add_argument("--difficulty", choices=("easy", "default", "hard"), default="default",
                   help="SynthConfig preset (default: default)")
    s.add_argument("--config", type=Path, help="SynthConfig JSON file (overrides --difficulty)")
    s.add_argument("--workers", type=_pos_int, default=None,
                   help="processes rendering images (default: one per core for 400+ images); same files for any number")
    s.add_argument("--quiet", action="store_true", help="no progress bar")

    pr = sub.add_parser("profile", help="params, MACs and CPU latency of a model")
    pr.add_argument("model", nargs="?", help="preset name or spec JSON file")
    pr.add_argument("--input", type=parse_hw, default=None, help="HxW (default: the preset's input size)")
    pr.add_argument("--threads", type=_pos_int, default=1, help="torch threads for the latency (default 1)")
    pr.add_argument("--no-latency", action="store_true", help="skip the latency measurement")
    pr.add_argument("--min-run-time", type=_pos_float, default=1.0, help="seconds of timed runs (default 1)")
    _add_runtime(pr, "time the network")
    pr.add_argument("--list", action="store_true", help="list the preset names and exit")

    t = sub.add_parser("train", help="train a pose network on a COCO-format dataset (e.g. SynthPose)")
    t.add_argument("--data", required=True, type=Path, help="dataset root (SynthPose layout)")
    t.add_argument("--model", default="baseline-resnet", help="preset name or spec JSON (default baseline-resnet)")
    t.add_argument("--out", required=True, type=Path, help="run directory")
    t.add_argument("--input", type=parse_hw, default=(128, 96), help="network input HxW, multiples of 32 (default 128x96)")
    t.add_argument("--epochs", type=_epochs, default=10, help="a positive integer, or 'auto' to fit --minutes")
    t.add_argument("--recipe", default="short-cpu",
                   help="training recipe: short-cpu (default: learns in minutes on a CPU), simplebaseline or "
                        "evopose2d (the papers' recipes, for long runs); see posenas_core/train/recipes.py")
    t.add_argument("--batch-size", type=_pos_int, default=None, help="training batch size (default: the recipe's)")
    t.add_argument("--lr", type=_pos_float, default=None, help="base lr at batch 32 (default: the recipe's)")
    t.add_argument("--minutes", type=_pos_float, default=None, help="time budget; stops cleanly after it")
    t.add_argument("--workers", type=_nonneg_int, default=0, help="DataLoader worker processes (default 0: on 2 cores a loader process steals a core from the train step)")
    t.add_argument("--seed", type=_nonneg_int, default=0, help="model init, sample order and augmentation (default 0)")
    t.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                   help="auto (default): bf16 autocast only where this CPU has native bf16 and a short measurement "
                        "finds it faster for this network; fp32 or bf16 to force one")
    t.add_argument("--memory-format", choices=("auto", "channels_last", "nchw"), default="auto",
                   help="auto (default): the faster of the two, measured; or force one")
    t.add_argument("--aug", type=_json_object, default=None,
                   help='augmentation fields as JSON, e.g. \'{"rotation_deg": 15, "rotation_prob": 0.5}\' '
                        "(default: the recipe's)")
    t.add_argument("--no-resume", action="store_true", help="start over even if the run has a checkpoint")
    t.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_device(t, "train (on CUDA: bf16 autocast where the GPU has it, else fp16, unless --precision fp32)")

    e = sub.add_parser("eval", help="evaluate a checkpoint: COCO OKS AP, per-joint AP, PCK")
    e.add_argument("checkpoint", type=Path, help="a checkpoint of `posenas train` (RUN/checkpoints/last.pt or best.pt)")
    e.add_argument("--data", required=True, type=Path, help="dataset root (SynthPose / COCO layout)")
    e.add_argument("--split", default="val", help="split to evaluate: DATA/annotations/person_keypoints_SPLIT.json (default val)")
    e.add_argument("--decode", choices=("argmax", "dark"), default="argmax",
                   help="heatmap decoding: argmax with a quarter-cell step, or DARK (default argmax)")
    e.add_argument("--no-flip", action="store_true", help="no horizontal flip test")
    e.add_argument("--out", type=Path, help="also write the metrics JSON here")
    _add_device(e, "run the network")
    _add_runtime(e, "run the network")

    r = sub.add_parser("run", help="run a parameterized notebook with papermill")
    r.add_argument("notebook", type=Path, help="a notebook with a cell tagged 'parameters'")
    r.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="a notebook parameter (repeatable); VALUE is JSON or a plain string")
    r.add_argument("-f", "--params-file", type=Path, help="a YAML / JSON file of parameters")
    r.add_argument("--out", required=True, type=Path, help="run directory")
    r.add_argument("--timeout", type=_pos_float, default=None, help="per-cell timeout in seconds")
    r.add_argument("--no-html", action="store_true", help="do not export notebook.html")

    b = sub.add_parser("batch", help="run a sweep (list and/or grid of notebook parameter sets)")
    b.add_argument("sweep", type=Path, help="sweep YAML file")
    b.add_argument("--reports", type=Path, default=Path("reports"), help="reports root (default reports/)")
    b.add_argument("--workers", type=_pos_int, default=None, help="concurrent runs (default: the sweep's)")
    b.add_argument("--timeout", type=_pos_float, default=None, help="per-cell timeout in seconds")

    from posenas_core.search.evolve_cli import add_evolve_parser

    add_evolve_parser(sub)

    from posenas_core.train.supernet_cli import add_supernet_parser

    add_supernet_parser(sub, {"hw": parse_hw, "pos_int": _pos_int, "nonneg_int": _nonneg_int, "pos_float": _pos_float})

    from posenas_core.deploy.export_cli import add_export_parser

    add_export_parser(sub)

    m = sub.add_parser("demo", help="generate SynthPose, train the baseline briefly, evaluate, write metrics")
    m.add_argument("--out", type=Path, default=Path("reports/demo"), help="output directory (default reports/demo)")
    m.add_argument("--train", type=_pos_int, default=2000, help="SynthPose training images (default 2000)")
    m.add_argument("--val", type=_pos_int, default=200, help="SynthPose validation images (default 200)")
    m.add_argument("--minutes", type=_pos_float, default=3.0, help="training time budget (default 3)")
    m.add_argument("--model", default="baseline-resnet", help="preset name or spec JSON (default baseline-resnet)")
    m.add_argument("--seed", type=_nonneg_int, default=0, help="data and training seed (default 0)")
    _add_device(m, "train and evaluate")
    return p


def _cmd_synth(a) -> dict:
    from posenas_core.data.synthpose import SynthConfig, write_synthpose

    if a.config is not None:
        if not a.config.is_file():
            raise ConfigError(f"--config: file not found: {a.config}")
        try:
            cfg = SynthConfig.from_dict(json.loads(a.config.read_text()))
        except json.JSONDecodeError as err:
            raise ConfigError(f"--config {a.config}: not valid JSON ({err})") from None
    else:
        cfg = {"easy": SynthConfig.easy, "hard": SynthConfig.hard, "default": SynthConfig}[a.difficulty]()
    manifest = write_synthpose(a.out, a.train, a.val, a.videos, seed=a.seed, config=cfg, progress=not a.quiet,
                               workers=a.workers)
    return {"out": str(a.out), "counts": manifest.get("counts")}


def _cmd_profile(a) -> dict:
    from posenas_core.eval.profiler import profile_model
    from posenas_core.models.registry import PRESETS, build_model, load_spec

    if a.list or a.model is None:
        if a.model is None and not a.list:
            raise ConfigError(f"profile: name a MODEL (a preset or a spec JSON file); presets: {sorted(PRESETS)}")
        return {"presets": {k: p.description for k, p in sorted(PRESETS.items())}}
    spec = load_spec(a.model)
    hw = a.input or (PRESETS[a.model].input_size_hw if a.model in PRESETS else (256, 192))
    model = build_model(spec)
    out = profile_model(model, hw, threads=a.threads, latency=not a.no_latency, min_run_time=a.min_run_time,
                        runtime=a.runtime)
    return {"model": a.model, **out}


MEMORY_FORMAT = {"auto": "auto", "channels_last": True, "nchw": False}       # -> channels_last=...


def _cmd_train(a) -> dict:
    from posenas_core import pipeline

    return pipeline.train_on_dataset(
        data_dir=a.data, model=a.model, run_dir=a.out, input_hw=a.input, epochs=a.epochs,
        recipe=a.recipe, batch_size=a.batch_size, base_lr=a.lr, max_minutes=a.minutes, num_workers=a.workers,
        seed=a.seed, bf16=pipeline.PRECISIONS[a.precision], channels_last=MEMORY_FORMAT[a.memory_format],
        resume=not a.no_resume, progress=not a.quiet, aug=a.aug, device=a.device,
    )


def _cmd_eval(a) -> dict:
    from posenas_core import pipeline

    return pipeline.evaluate_checkpoint(
        a.checkpoint, data_dir=a.data, split=a.split, decode=a.decode, flip_test=not a.no_flip, out=a.out,
        device=a.device, runtime=a.runtime,
    )


def _cmd_run(a) -> dict:
    from posenas_core.runs.notebooks import run_notebook
    from posenas_core.runs.params import coerce_cli_value, read_parameters

    known = read_parameters(a.notebook)  # missing notebook / no parameters cell: ConfigError
    params: dict = {}
    if a.params_file is not None:
        import yaml

        if not a.params_file.is_file():
            raise ConfigError(f"-f: parameters file not found: {a.params_file}")
        try:
            loaded = yaml.safe_load(a.params_file.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"-f {a.params_file}: not valid YAML/JSON ({err})") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"-f {a.params_file}: expected a mapping of parameter -> value")
        params.update(loaded)
    for name, text in a.param:
        if name not in known:
            params[name] = text  # check_parameters reports it with the list of known names
        else:
            params[name] = coerce_cli_value(text, known[name])
    rec = run_notebook(a.notebook, a.out, params, timeout=a.timeout, html=not a.no_html, known=known, progress=True)
    result = {"status": rec.status, "out": str(a.out), "duration_s": rec.duration_s, "metrics": rec.metrics}
    if not rec.ok:
        from posenas_core.runs.notebooks import error_summary

        result["error"] = error_summary(rec.error)
    return result


def _cmd_batch(a) -> dict:
    from posenas_core.runs.batch import load_sweep, run_batch

    sweep = load_sweep(a.sweep)  # every run's parameters are checked before anything runs
    res = run_batch(sweep, reports_root=a.reports, workers=a.workers, timeout=a.timeout)
    out = {"sweep": sweep.name, "ran": len(res.ran), "skipped": len(res.skipped), "failed": len(res.failed),
           "index_csv": str(res.index_csv), "index_html": str(res.index_html)}
    if res.failed:
        from posenas_core.runs.notebooks import error_summary

        out["failed_runs"] = {rid: error_summary(res.records[rid].error) for rid in res.failed}
    return out


def _failure(command: str, result: dict) -> str | None:
    """The one-line reason `posenas run` / `posenas batch` exits 1 (a notebook failed), else None."""
    if command == "run" and result.get("status") != "ok":
        return f"the notebook failed: {result.get('error')}; see {Path(result['out']) / 'notebook.html'}"
    if command == "batch" and result.get("failed"):
        runs = "; ".join(f"{rid} ({err})" for rid, err in result.get("failed_runs", {}).items())
        return (f"{result['failed']} of {result['ran'] + result['skipped']} runs failed: {runs}; "
                f"see {result['index_html']}")
    return None


def _cmd_demo(a) -> dict:
    from posenas_core import pipeline

    return pipeline.run_demo(a.out, n_train=a.train, n_val=a.val, minutes=a.minutes, model=a.model, seed=a.seed,
                             device=a.device)


def _cmd_evolve(a) -> dict:
    from posenas_core.search.evolve_cli import cmd_evolve

    return cmd_evolve(a)


def _cmd_supernet(a) -> dict:
    from posenas_core.train.supernet_cli import cmd_supernet

    return cmd_supernet(a)


def _cmd_export(a) -> dict:
    from posenas_core.deploy.export_cli import cmd_export

    return cmd_export(a)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    a = parser.parse_args(argv)  # unknown option / bad value: argparse prints the error and exits 2
    handler = {
        "data": _cmd_synth, "profile": _cmd_profile, "train": _cmd_train, "eval": _cmd_eval, "demo": _cmd_demo,
        "run": _cmd_run, "batch": _cmd_batch, "evolve": _cmd_evolve,
        "supernet": _cmd_supernet, "export": _cmd_export,
    }[a.command]
    try:
        result = handler(a)
    except PoseNASError as err:
        print(f"posenas {a.command}: error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2, sort_keys=True, default=str))
    failure = _failure(a.command, result)
    if failure is not None:  # exit status 1: the command ran, but what it ran failed
        print(f"posenas {a.command}: {failure}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
