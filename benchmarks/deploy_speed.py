"""Deployment speed: every preset through every runtime, against this machine's matmul peak, in one run.

1. Peak: 1-thread (and --threads) matmul GFLOP/s, 2048 x 2048, 2 n^3 / t, median of 5; fp32, and bf16 where the
   CPU has native bf16 (`machine.cpu_info`), else "skipped"; measured before and after part 2, the higher counts.
2. Per preset at its input size (256x192 for all but evopose2d-m / -l), batch 1, --threads threads: latency
   (median, IQR; `eval.profiler.measure_latency`) of eager fp32, ort fp32 (the "fast" export form), ort fp32 over
   an export of the model's own ops ("ort-plain": what the rewrites of `deploy.rewrites` gain), compiled (bf16
   "auto") and compiled fp32, and int8 (ONNX Runtime static quantization calibrated on random crops: speed only, as
   the weights are random; whether int8 keeps AP is benchmarks/deploy_accuracy.py's question); parity vs eager (max
   |diff| and relative to the eager peak |heatmap|); achieved GFLOP/s = 2 MACs / time and its fraction of the fp32
   peak (and of the bf16 peak for a bf16 runner); the best runtime's speed-up over eager (issue 12's target >= 2x)
   among the fp32 runtimes, then with int8; and `choose_runtime`'s pick. A runtime that fails is recorded (the
   error's first line), the run goes on.
3. Batched prediction (`train.predict.predict`, flip test, batch 32, --predict-threads) over a SynthPose val
   split, one dense and one MBConv preset at their input size: person crops / s of each runtime (int8 calibrated
   on random crops), the best fp32 one and int8 over eager (target >= 2x), and keypoint agreement with eager (max
   and median pixel difference). Weights are random (seeded), so no AP here: AP per runtime on trained networks is
   benchmarks/deploy_accuracy.py's.
4. --layers: s-vipnas-mbv3, 1 thread, batch 1: torch.profiler of eager by op and input shape (top 15 by self CPU
   time) and ONNX Runtime's profile summed per node type, convolutions split into dense / grouped / depthwise.

Models: `build_model` with a seeded generator, non-trivial BN statistics and a unit-gain last conv (heatmaps of
order 1: a constant output proves no parity).
The ONNX exports and the SynthPose split are cached under --work.

    .venv/bin/python benchmarks/deploy_speed.py [--threads 1] [--presets ...] [--min-run-time 1.0] [--layers]
    .venv/bin/python benchmarks/deploy_speed.py --quick     # baseline-mbv3 and s-vipnas-mbv3, 0.2 s timings
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch
from torch import nn

from _common import OUT, emit

QUICK_PRESETS = ("baseline-mbv3", "s-vipnas-mbv3")
PREDICT_PRESETS = ("baseline-resnet-s2", "evopose2d-xs")      # one dense, one MBConv
QUICK_PREDICT = ("baseline-resnet-s2", "baseline-mbv3")
LAYERS_PRESET = "s-vipnas-mbv3"
RUNTIME_ROWS = ("eager", "ort", "ort-plain", "compiled", "compiled-fp32", "int8")   # compiled: bf16 "auto"
FP32_ROWS = ("eager", "ort", "compiled", "compiled-fp32")   # "best" / "speedup": the library's runtimes that
#                                                             pass parity; int8 apart (judged by AP)
INT8_CALIBRATION = 16                 # random crops: the weights are random too, so int8 here is speed only
SAME_AS = "the compiled runner itself: bf16 auto chose fp32"
ROUNDS = 3                  # latency: median of ROUNDS interleaved medians of min_run_time / ROUNDS s each


def threads(n: int):
    from posenas_core.eval.profiler import num_threads

    return num_threads(n)


def first_line(err: BaseException) -> str:
    return f"{type(err).__name__}: {(str(err).strip().splitlines() or [''])[0][:300]}"


def matmul_peak(n_threads: int, dtype: torch.dtype, n: int = 2048, reps: int = 5) -> float:
    """GFLOP/s of an n x n matmul on `n_threads` threads: 2 n^3 / median time."""
    g = torch.Generator().manual_seed(0)
    a, b = (torch.randn(n, n, generator=g).to(dtype) for _ in range(2))
    times = []
    with threads(n_threads):
        for i in range(reps + 1):
            t0 = time.perf_counter()
            torch.mm(a, b)
            if i:                                   # the first call warms up
                times.append(time.perf_counter() - t0)
    return 2 * n**3 / statistics.median(times) / 1e9


def peaks(thread_counts) -> dict:
    """{str(threads): {"fp32": GFLOP/s, "bf16": GFLOP/s or "skipped (...)"}}."""
    from posenas_core.machine import cpu_info

    native = cpu_info()["native_bf16"]
    out = {}
    for t in sorted(set(thread_counts)):
        out[str(t)] = {"fp32": matmul_peak(t, torch.float32),
                       "bf16": matmul_peak(t, torch.bfloat16) if native else "skipped (no native bf16)"}
    return out


def higher(before: dict, after: dict) -> dict:
    """Per thread count and dtype, the higher of two `peaks` (a contended spell lowers one of them)."""
    return {t: {d: max(v, after[t][d]) if isinstance(v, float) else v for d, v in p.items()}
            for t, p in before.items()}


def add_fractions(rows: dict, peak: dict) -> None:
    """Each timed runtime's GFLOP/s as a fraction of the fp32 peak (and of the bf16 peak for a bf16 runner)."""
    for row in rows.values():
        for entry in row.get("runtimes", {}).values():
            if "gflops" in entry:
                entry["of_fp32_peak"] = entry["gflops"] / peak["fp32"]
                if entry["bf16"] and isinstance(peak["bf16"], float):
                    entry["of_bf16_peak"] = entry["gflops"] / peak["bf16"]


def seeded_model(spec, seed: int = 0, hw=(256, 192)) -> nn.Module:
    """`build_model(spec)` from a seeded generator, made non-trivial by `deploy.parity_model` (random BN
    statistics and affines, the last conv at unit gain): heatmaps of order 1, far from constant."""
    from posenas_core.deploy import parity_model
    from posenas_core.models import build_model

    return parity_model(build_model(spec, generator=torch.Generator().manual_seed(seed)), seed, hw)


def parity(model: nn.Module, runner: nn.Module, hw) -> dict:
    x = torch.randn(1, 3, *hw, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want, got = model(x).float(), runner(x).float()
    diff, peak = float((got - want).abs().max()), float(want.abs().max())
    return {"max_abs_diff": diff, "peak_abs": peak, "diff_of_peak": diff / max(peak, 1e-12)}


class PlainFormOrt(nn.Module):
    """ONNX Runtime over an export of the model's own ops (form="plain"): the "ort-plain" row, what the ort
    runtime's fast form (`deploy.rewrites`) is measured against."""

    def __init__(self, model: nn.Module, hw, n_threads: int, path: Path):
        super().__init__()
        from posenas_core.deploy import export_onnx, ort_session

        path.parent.mkdir(parents=True, exist_ok=True)
        self._session = ort_session(export_onnx(model, path, hw, form="plain"), threads=n_threads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self._session.run(["heatmaps"], {"images": x.contiguous().numpy()})[0])


def build_runners(model, hw, n_threads: int, plain_path: Path) -> tuple[dict, dict]:
    """({row name: runner}, {row name: error or note}) for RUNTIME_ROWS; no compiled-fp32 runner when compiled's
    bf16 "auto" chose fp32 (the same runner: SAME_AS note)."""
    from posenas_core.deploy import make_runner, runtime_available

    runners, notes = {"eager": model}, {}
    if runtime_available("ort") is None:
        runners["ort-plain"] = PlainFormOrt(model, hw, n_threads, plain_path)
    cal = torch.randn(INT8_CALIBRATION, 3, *hw, generator=torch.Generator().manual_seed(1))
    for row, rt, bf16 in (("ort", "ort", "auto"), ("compiled", "compiled", "auto"),
                          ("compiled-fp32", "compiled", False), ("int8", "int8", False)):
        if row == "compiled-fp32" and "compiled" in runners and not runners["compiled"].bf16:
            notes[row] = SAME_AS
            continue
        reason = runtime_available(rt)
        if reason is not None:
            notes[row] = f"unavailable: {reason}"
            continue
        t0 = time.perf_counter()
        try:
            runners[row] = make_runner(model, rt, hw, threads=n_threads, bf16=bf16,
                                       calibration=cal if rt == "int8" else None)
        except Exception as err:                    # a preset that does not export / compile: record, go on
            notes[row] = first_line(err)
        else:
            runners[row].build_s = time.perf_counter() - t0
    return runners, notes


def timings(runners: dict, hw, n_threads: int, min_run_time: float) -> tuple[dict, dict]:
    """({name: {"latency_ms", "iqr_ms", "runs"}}, {name: error}): ROUNDS interleaved rounds (a busy spell of a
    shared machine hits every runtime), each `measure_latency` of min_run_time / ROUNDS s; medians of the rounds."""
    from posenas_core.eval import measure_latency

    rounds, failed = {}, {}
    for _ in range(ROUNDS):
        for name in [k for k in runners if k not in failed]:
            try:
                rounds.setdefault(name, []).append(
                    measure_latency(runners[name], hw, threads=n_threads, min_run_time=min_run_time / ROUNDS))
            except Exception as err:
                failed[name] = first_line(err)
    lat = {k: {"latency_ms": statistics.median(m["latency_ms"] for m in v),
               "iqr_ms": statistics.median(m["iqr_ms"] for m in v), "runs": sum(m["runs"] for m in v)}
           for k, v in rounds.items() if k not in failed}
    return lat, failed


def preset_row(preset, a) -> dict:
    from posenas_core.deploy import choose_runtime
    from posenas_core.eval import count_macs

    hw = tuple(preset.input_size_hw)
    model = seeded_model(preset.spec, hw=hw)
    macs = count_macs(model, hw)
    runners, notes = build_runners(model, hw, a.threads, a.work / "plain" / f"{preset.name}-{hw[0]}x{hw[1]}.onnx")
    lats, failed = timings(runners, hw, a.threads, a.min_run_time)
    row = {"input": f"{hw[0]}x{hw[1]}", "input_note": "256x192" if hw == (256, 192) else "the preset's own size",
           "macs": macs, "runtimes": {}}
    for rt in RUNTIME_ROWS:
        r = runners.get(rt)
        if notes.get(rt) == SAME_AS and "latency_ms" in row["runtimes"].get("compiled", {}):
            row["runtimes"][rt] = {**row["runtimes"]["compiled"], "note": SAME_AS}
            continue
        try:
            if rt not in lats:
                raise RuntimeError(failed.get(rt) or notes.get(rt, "not built"))
            par = {"max_abs_diff": 0.0, "diff_of_peak": 0.0} if rt == "eager" else parity(model, r, hw)
        except Exception as err:
            row["runtimes"][rt] = {"error": str(err) if isinstance(err, RuntimeError) else first_line(err)}
            continue
        bf16 = bool(getattr(r, "bf16", False))
        gflops = 2 * macs / (lats[rt]["latency_ms"] / 1e3) / 1e9
        entry = {**lats[rt], "bf16": bf16, "parity": par, "gflops": gflops, "build_s": getattr(r, "build_s", None)}
        if hasattr(r, "bf16_choice"):
            entry["bf16_choice"] = r.bf16_choice
        row["runtimes"][rt] = entry
    timed = {k: v["latency_ms"] for k, v in row["runtimes"].items() if "latency_ms" in v and "note" not in v}
    fp32 = {k: v for k, v in timed.items() if k in FP32_ROWS}
    best = min(fp32, key=fp32.get)
    row.update(best=best, speedup=timed["eager"] / timed[best] if "eager" in timed else None)
    if "int8" in timed and "eager" in timed:    # the fast path where int8 keeps AP (benchmarks/deploy_accuracy.py)
        row.update(speedup_int8=timed["eager"] / min(fp32[best], timed["int8"]), int8_over_ort=(
            timed["ort"] / timed["int8"] if "ort" in timed else None))
    try:
        row["choose_runtime"] = choose_runtime(model, hw, threads=a.threads, min_run_time=min(0.3, a.min_run_time))
    except Exception as err:
        row["choose_runtime"] = {"runtime": None, "error": first_line(err)}
    return row


def predict_throughput(names, a, data_dir: Path) -> dict:
    """Per preset: crops / s of `predict` (flip test) for each runtime, eager's keypoints compared to each."""
    import numpy as np

    from posenas_core import pipeline
    from posenas_core.deploy import choose_runtime, make_runner
    from posenas_core.models import PRESETS
    from posenas_core.train.predict import output_stride_of, predict

    val = pipeline.load_split(data_dir, "val", train=False)
    out = {}
    for name in names:
        hw = tuple(PRESETS[name].input_size_hw)
        model = seeded_model(PRESETS[name].spec)
        ds = pipeline.make_dataset(val, hw, train=False, stride=output_stride_of(model))
        res = {"input": f"{hw[0]}x{hw[1]}", "crops": len(ds), "runtimes": {}}
        kps0 = None
        with threads(a.predict_threads):
            cal = torch.randn(INT8_CALIBRATION, 3, *hw, generator=torch.Generator().manual_seed(1))
            for rt in ("eager", "ort", "compiled", "int8"):
                try:
                    runner = make_runner(model, rt, hw, threads=a.predict_threads,
                                         calibration=cal if rt == "int8" else None)
                    predict(runner, ds, batch_size=32, flip_test=True)        # warm-up: compiles each batch size
                    times = []
                    for _ in range(a.predict_reps):
                        t0 = time.perf_counter()
                        _, kps = predict(runner, ds, batch_size=32, flip_test=True)
                        times.append(time.perf_counter() - t0)
                except Exception as err:
                    res["runtimes"][rt] = {"error": first_line(err)}
                    continue
                kps0 = kps if rt == "eager" else kps0
                entry = {"crops_per_s": len(ds) / statistics.median(times), "bf16": bool(getattr(runner, "bf16", 0))}
                if kps0 is not None and rt != "eager":
                    d = np.abs(kps[..., :2] - kps0[..., :2]).max(axis=-1)
                    entry["kp_diff_px"] = {"max": float(d.max()), "median": float(np.median(d)),
                                           "within_1px": float((d <= 1.0).mean())}
                res["runtimes"][rt] = entry
            try:
                res["choose_runtime"] = choose_runtime(model, hw, threads=a.predict_threads)["runtime"]
            except Exception as err:
                res["choose_runtime"] = first_line(err)
        rate = {k: v["crops_per_s"] for k, v in res["runtimes"].items() if "crops_per_s" in v and k != "int8"}
        if rate:
            res["best"] = max(rate, key=rate.get)
            res["ratio_best_over_eager"] = rate[res["best"]] / rate["eager"] if "eager" in rate else None
            if "crops_per_s" in res["runtimes"].get("int8", {}) and "eager" in rate:   # where int8 keeps AP
                res["ratio_int8_over_eager"] = res["runtimes"]["int8"]["crops_per_s"] / rate["eager"]
        out[name] = res
    return out


def conv_kind(in_shape, w_shape) -> str | None:
    """dense / grouped / depthwise from a conv's input (N, C, H, W) and weight (M, C / g, k, k) shapes."""
    if len(in_shape or ()) != 4 or len(w_shape or ()) != 4 or not w_shape[1]:
        return None
    g = in_shape[1] // w_shape[1]
    return "dense" if g == 1 else "depthwise" if g == in_shape[1] else f"grouped (g={g})"


def layer_view(work: Path, reps: int = 10) -> dict:
    """torch.profiler of eager and ORT's profile of one preset, 1 thread, batch 1, `reps` forwards."""
    import onnxruntime as ort
    from torch.profiler import ProfilerActivity, profile

    from posenas_core.deploy import make_runner
    from posenas_core.models import PRESETS

    hw = tuple(PRESETS[LAYERS_PRESET].input_size_hw)
    model = seeded_model(PRESETS[LAYERS_PRESET].spec)
    x = torch.zeros(1, 3, *hw)
    with threads(1), torch.no_grad():
        model(x)
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            for _ in range(reps):
                model(x)
    events = sorted(prof.key_averages(group_by_input_shape=True), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    eager = [{"op": e.key, "shapes": str(e.input_shapes)[:160], "calls": e.count // reps,
              "self_ms": e.self_cpu_time_total / 1e3 / reps, "share": e.self_cpu_time_total / total,
              "conv": conv_kind(*(list(e.input_shapes[:2]) + [None, None])[:2]) if "conv" in e.key else None}
             for e in events[:15]]
    path = make_runner(model, "ort", hw, threads=1).path
    opts = ort.SessionOptions()
    opts.enable_profiling, opts.profile_file_prefix = True, str(work / "ort_profile")
    opts.intra_op_num_threads, opts.inter_op_num_threads, opts.log_severity_level = 1, 1, 3
    sess = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    for _ in range(reps + 1):
        sess.run(None, {"images": x.numpy()})
    trace_file = Path(sess.end_profiling())
    trace = json.loads(trace_file.read_text())
    trace_file.unlink()
    runs = sorted((e for e in trace if e.get("name") == "model_run"), key=lambda e: e["ts"])
    start = runs[0]["ts"] + runs[0]["dur"] if runs else 0          # the first run warms up
    per_type: dict = {}
    for e in trace:
        if e.get("cat") != "Node" or not e["name"].endswith("_kernel_time") or e["ts"] < start:
            continue
        args = e.get("args", {})
        shapes = [next(iter(s.values())) for s in args.get("input_type_shape", [])]
        kind = conv_kind(*(shapes[:2] + [None, None])[:2]) if "Conv" in args.get("op_name", "") else None
        key = args.get("op_name", "?") + (f" {kind}" if kind else "")
        per_type[key] = per_type.get(key, 0.0) + e["dur"] / 1e3 / reps
    ort_total = sum(per_type.values())
    ort_rows = [{"node": k, "ms": v, "share": v / ort_total}
                for k, v in sorted(per_type.items(), key=lambda kv: -kv[1])]
    return {"preset": LAYERS_PRESET, "input": f"{hw[0]}x{hw[1]}", "reps": reps, "eager_top15": eager,
            "eager_total_ms": total / 1e3 / reps, "ort_per_node_type": ort_rows, "ort_total_ms": ort_total}


def table(rows: dict) -> str:
    lines = ["| preset | GMACs | eager ms | ort ms | ort, plain form ms | compiled ms | best fp32 | speed-up "
             "| GFLOP/s | % of fp32 peak | int8 ms | int8 / ort | speed-up with int8 |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]

    def ms(r, k):
        if k not in r["runtimes"]:
            return "-"
        return f"{r['runtimes'][k]['latency_ms']:.1f}" if "latency_ms" in r["runtimes"][k] else "failed"

    for name, r in rows.items():
        if "best" not in r or r.get("speedup") is None:
            lines.append(f"| {name} | failed: {r.get('error') or r['runtimes']['eager']['error']} |")
            continue
        comp = [k for k in ("compiled", "compiled-fp32") if "latency_ms" in r["runtimes"][k]]
        c = min(comp, key=lambda k: r["runtimes"][k]["latency_ms"]) if comp else None
        c_txt = "failed" if c is None else ms(r, c) + (" (bf16)" if r["runtimes"][c]["bf16"] else "")
        b = r["runtimes"][r["best"]]
        size = "" if r["input"] == "256x192" else f" @{r['input']}"
        lines.append(f"| {name}{size} | {r['macs'] / 1e9:.3f} | {ms(r, 'eager')} | {ms(r, 'ort')} | "
                     f"{ms(r, 'ort-plain')} | {c_txt} | "
                     f"{r['best']}{' (bf16)' if b['bf16'] else ''} | {r['speedup']:.2f}x | {b['gflops']:.1f} | "
                     f"{100 * b['of_fp32_peak']:.0f}% | {ms(r, 'int8')} | "
                     + (f"{r['int8_over_ort']:.2f}x | {r['speedup_int8']:.2f}x |" if r.get("int8_over_ort") else
                        "- | - |"))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--presets", nargs="+", default=None, metavar="NAME",
                    help=f"default: every preset (--quick: {' '.join(QUICK_PRESETS)})")
    ap.add_argument("--min-run-time", type=float, default=1.0, help="seconds per latency (--quick: 0.2)")
    ap.add_argument("--predict-threads", type=int, default=2)
    ap.add_argument("--predict-reps", type=int, default=3, help="timed passes over the val split (--quick: 1)")
    ap.add_argument("--val-images", type=int, default=60, help="SynthPose val images (--quick: 12)")
    ap.add_argument("--no-predict", action="store_true", help="skip part 3")
    ap.add_argument("--layers", action="store_true", help=f"part 4: per-layer profiles of {LAYERS_PRESET}")
    ap.add_argument("--work", type=Path, default=OUT / "deploy_speed_work", help="ONNX exports and SynthPose")
    ap.add_argument("--quick", action="store_true", help="2 presets, 0.2 s timings, 12 val images, 1 timed pass")
    a = ap.parse_args()
    from posenas_core import pipeline
    from posenas_core.models import PRESETS

    if a.quick:
        a.presets = a.presets or list(QUICK_PRESETS)
        a.min_run_time, a.predict_reps, a.val_images = 0.2, 1, min(a.val_images, 12)
    names = a.presets or sorted(PRESETS)
    unknown = sorted(set(names) - set(PRESETS))
    if unknown:
        ap.error(f"unknown presets {unknown}; choose from {sorted(PRESETS)}")
    a.work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("POSENAS_CACHE_DIR", str(a.work))       # the ort runtime's exports go to WORK/onnx
    torch.set_num_threads(a.threads)
    seconds, t0 = {}, time.perf_counter()
    peak_before = peaks([1, a.threads])
    seconds["peak"] = time.perf_counter() - t0
    rows = {}
    for name in names:
        t = time.perf_counter()
        try:
            rows[name] = preset_row(PRESETS[name], a)
        except Exception as err:                    # e.g. eager itself fails: the other presets still run
            rows[name] = {"error": first_line(err)}
        seconds[name] = time.perf_counter() - t
        print(f"{name}: {seconds[name]:.0f} s, best {rows[name].get('best')}", flush=True)
    peak_after = peaks([1, a.threads])                  # again after the presets: the higher of the two counts
    peak_all = higher(peak_before, peak_after)
    peak = peak_all[str(a.threads)]
    add_fractions(rows, peak)
    result = {"quick": a.quick, "threads": a.threads, "min_run_time": a.min_run_time, "peak_gflops": peak_all,
              "peak_gflops_before_after": [peak_before, peak_after],
              "presets": rows, "target_speedup": 2.0}
    if not a.no_predict:
        t = time.perf_counter()
        data = pipeline.synthpose_dir(a.work / f"synthpose_0_{a.val_images}", 0, a.val_images, seed=0, progress=False)
        result["predict"] = {"threads": a.predict_threads, "batch": 32, "flip_test": True, "reps": a.predict_reps,
                             "ap": "not measured (random weights); AP per runtime on trained nets: "
                                   "benchmarks/deploy_accuracy.py",
                             "kp_note": "random weights: heatmaps without a clear peak (ties over uniform image "
                                        "areas) move their argmax on tiny differences, bf16 most; keypoints and AP "
                                        "agree on trained nets (benchmarks/deploy_accuracy.py)",
                             "presets": predict_throughput(QUICK_PREDICT if a.quick else PREDICT_PRESETS, a, data)}
        seconds["predict"] = time.perf_counter() - t
    if a.layers:
        t = time.perf_counter()
        try:
            result["layers"] = layer_view(a.work)
        except Exception as err:
            result["layers"] = {"error": first_line(err)}
        seconds["layers"] = time.perf_counter() - t
    result["seconds"] = {**seconds, "total": time.perf_counter() - t0}
    result = emit("deploy_speed_quick" if a.quick else "deploy_speed", result)
    bf16 = peak["bf16"] if isinstance(peak["bf16"], str) else f"{peak['bf16']:.1f}"
    print(f"\nCPU: {result['machine']['cpu_model']}; {a.threads} thread(s); matmul peak fp32 {peak['fp32']:.1f} "
          f"GFLOP/s, bf16 {bf16}")
    print(table(rows))
    for name, r in result.get("predict", {}).get("presets", {}).items():
        rates = ", ".join(f"{k} {v['crops_per_s']:.1f}" if "crops_per_s" in v else f"{k} failed"
                          for k, v in r["runtimes"].items())
        print(f"predict {name}@{r['input']}: crops/s {rates}; best fp32 {r.get('best')} "
              f"{r.get('ratio_best_over_eager') or float('nan'):.2f}x over eager, int8 "
              f"{r.get('ratio_int8_over_eager') or float('nan'):.2f}x")
    lay = result.get("layers", {})
    if "eager_top15" in lay:
        print(f"layers {lay['preset']}: eager {lay['eager_total_ms']:.1f} ms, top ops: " + "; ".join(
            f"{e['op']} {e['conv'] or ''} {e['self_ms']:.1f} ms" for e in lay["eager_top15"][:5]))
        print(f"layers {lay['preset']}: ort {lay['ort_total_ms']:.1f} ms, by node: " + "; ".join(
            f"{e['node']} {e['ms']:.1f} ms" for e in lay["ort_per_node_type"][:6]))


if __name__ == "__main__":
    main()
