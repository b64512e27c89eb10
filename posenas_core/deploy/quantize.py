"""int8: ONNX Runtime static quantization of an exported network, calibrated on real crops, judged by AP.

    q = quantize_onnx("net.onnx", "net-int8.onnx", calibration)       # calibration: (N, 3, H, W) crops
    runner = make_runner(model, "int8", (256, 192), calibration=calibration)
    check = int8_check(model, person_set, (256, 192), calibration)     # {"ap_fp32", "ap_int8", "drop", "ok"}

Quantization (`quantize_onnx`): the fp32 export is pre-processed (shape inference, graph optimisation), then
quantized in the QDQ format: weights int8 per output channel, activations uint8 with ranges calibrated on the crops
given (MinMax by default, or "percentile" / "entropy"), so ONNX Runtime fuses the pairs into integer kernels.
Grouped and depthwise convolutions are left fp32 in the file (`_fp32_nodes`: slower in int8, or mis-quantized;
ONNX Runtime quantizes some of them itself on loading). On a CPU without VNNI (AVX2 only) weights use 7 bits
(`reduce_range`), as ONNX Runtime advises: its u8 x s8 products can saturate there. The int8 file keeps the fp32
file's metadata (spec, input size, stride) and adds `posenas.quantization` (a JSON of how it was made).

int8 changes the network's numbers by design, so its check is not the fp32 parity (1e-4) but the task's own
measure: OKS AP on a validation split within INT8_AP_DROP (0.01) of the fp32 network's (`int8_check`). The
runner's `parity` (max |int8 - eager fp32| on the first calibration crops) and `parity_of_peak` are reported,
not judged: a single heatmap pixel can move a lot while every keypoint stays put.

Calibration crops must come from the data the network will see (`calibration_crops`: training-split person
crops, no augmentation); random noise calibrates ranges that real images do not have.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from posenas_core.deploy.runtimes import OrtRunner, Runner
from posenas_core.errors import ConfigError

__all__ = ["INT8_AP_DROP", "CALIBRATION_METHODS", "quantize_onnx", "calibration_crops",
           "calibration_from_dir", "Int8Runner", "int8_check", "int8_verdict", "cpu_has_vnni"]

INT8_AP_DROP = 0.01             # an int8 network counts as accurate when its AP is within this of the fp32 one
CALIBRATION_METHODS = ("minmax", "percentile", "entropy")
CALIBRATION_CROPS = 64          # crops drawn for calibration by default
QUANT_FORMAT = 1                # "posenas.quantization" format version
QUANT_POLICY = 2                # what is quantized (2: grouped / depthwise convs stay fp32); part of the cache key


def cpu_has_vnni() -> bool:
    """True when the CPU has AVX512-VNNI, AVX-VNNI or AMX-INT8 (fast, non-saturating u8 x s8 dot products)."""
    from posenas_core.machine import cpu_info

    return bool(set(cpu_info()["features"]) & {"avx512_vnni", "avx_vnni", "amx_int8"})


def _as_batches(calibration, batch: int = 2) -> list[np.ndarray]:
    if isinstance(calibration, torch.Tensor):
        calibration = [calibration]
    out = []
    for c in calibration:
        a = c.detach().cpu().numpy() if isinstance(c, torch.Tensor) else np.asarray(c)
        if a.ndim != 4 or a.shape[1] != 3:
            raise ConfigError(f"calibration crops must be (N, 3, H, W) images; got shape {tuple(a.shape)}")
        a = np.ascontiguousarray(a, dtype=np.float32)
        out.extend(a[i:i + batch] for i in range(0, len(a), batch))
    if not out:
        raise ConfigError("int8 needs calibration crops (at least one (N, 3, H, W) batch); got none")
    return out


def _digest(batches: list[np.ndarray]) -> str:
    h = hashlib.sha256()
    for b in batches:
        h.update(str(b.shape).encode())
        h.update(b.tobytes())
    return h.hexdigest()


def quantize_onnx(fp32_path, out_path, calibration, *, method: str = "minmax", per_channel: bool = True,
                  reduce_range: bool | None = None) -> Path:
    """Write the int8 (QDQ) version of the fp32 ONNX file `fp32_path` to `out_path` (atomically), calibrated
    on `calibration` (a (N, 3, H, W) tensor / array or a list of them, at the file's input size). Returns
    `out_path`. reduce_range None: 7-bit weights only where the CPU lacks VNNI."""
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from posenas_core.deploy.onnx_export import read_onnx_metadata

    if method not in CALIBRATION_METHODS:
        raise ConfigError(f"calibration method {method!r} is unknown; choose one of {list(CALIBRATION_METHODS)}")
    fp32_path, out_path = Path(fp32_path), Path(out_path)
    meta = read_onnx_metadata(fp32_path)
    hw = tuple(int(v) for v in meta["posenas.input_hw"].split("x")) if "posenas.input_hw" in meta else ()
    batches = _as_batches(calibration)
    if hw and tuple(batches[0].shape[-2:]) != hw:
        raise ConfigError(f"calibration crops are {batches[0].shape[-2]}x{batches[0].shape[-1]}; the network was "
                          f"exported at {hw[0]}x{hw[1]}: draw them at that size")
    reduce = (not cpu_has_vnni()) if reduce_range is None else bool(reduce_range)

    class Reader(CalibrationDataReader):
        """The batches, one range at a time (ONNX Runtime's strided calibration: memory of one batch)."""

        def __init__(self):
            self.set_range(0, len(batches))

        def __len__(self):
            return len(batches)

        def set_range(self, start_index: int, end_index: int):
            self._it = iter(batches[start_index:end_index])

        def get_next(self):
            b = next(self._it, None)
            return None if b is None else {"images": b}

    info = {"format": QUANT_FORMAT, "policy": QUANT_POLICY, "method": method, "per_channel": per_channel,
            "reduce_range": reduce,
            "weights": "int8", "activations": "uint8", "quant_format": "QDQ",
            "calibration_crops": int(sum(len(b) for b in batches)), "calibration_sha256": _digest(batches)[:16]}
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_path.parent) as tmp:
        pre, q = Path(tmp) / "pre.onnx", Path(tmp) / "int8.onnx"
        # inside tmp: a failed symbolic inference dumps sym_shape_infer_temp.onnx and its data into the cwd
        with contextlib.chdir(tmp):
            try:
                quant_pre_process(str(fp32_path.resolve()), str(pre.resolve()))
            except Exception as err:    # ORT's symbolic inference stops at some graphs (Col2Im feeding an Add)
                if "symbolic shape inference" not in str(err):
                    raise
                quant_pre_process(str(fp32_path.resolve()), str(pre.resolve()), skip_symbolic_shape=True)
                info["shape_inference"] = "onnx (ONNX Runtime's symbolic shape inference was incomplete)"
        skip = _fp32_nodes(pre)
        info["fp32_nodes"] = skip
        quantize_static(str(pre), str(q), Reader(), quant_format=QuantFormat.QDQ, per_channel=per_channel,
                        nodes_to_exclude=skip,
                        reduce_range=reduce, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method={"minmax": CalibrationMethod.MinMax,
                                          "percentile": CalibrationMethod.Percentile,
                                          "entropy": CalibrationMethod.Entropy}[method],
                        extra_options={"ActivationSymmetric": False, "WeightSymmetric": True,
                                       # fold each batch's ranges in at once: holding every intermediate
                                       # output of every batch took 24 GB for evopose2d-l at 512x384
                                       "CalibStridedMinMax": 1})
        _copy_metadata(fp32_path, q, {"posenas.quantization": json.dumps(info, sort_keys=True)})
        os.replace(q, out_path)
    return out_path


def _fp32_nodes(path: Path) -> list[str]:
    """Names of the nodes the quantizer leaves fp32: grouped ConvTranspose (ONNX Runtime 1.32 scales their weights
    per channel along the wrong axis: shapes (C,) and (C / groups,) do not broadcast) and grouped or depthwise Conv
    (quantized here, s-vipnas-mbv3's plain form ran 80.5 ms all int8 vs 46.6 fp32; AMD EPYC, 1 thread, 256x192).
    Loading the file, ONNX Runtime 1.32 still makes QLinearConv of those that sit between quantized activations,
    with weights it quantizes itself (its WeightBiasQuantization pass); on s-vipnas-mbv3's fast form that pass
    gave 29.0 ms against 30.1 with it disabled, so it is left on."""
    import onnx

    out = []
    for n in onnx.load(str(path)).graph.node:
        groups = next((a.i for a in n.attribute if a.name == "group"), 1)
        if n.op_type in ("Conv", "ConvTranspose") and groups > 1:
            out.append(n.name)
    return out


def _copy_metadata(src: Path, dst: Path, extra: dict) -> None:
    import onnx

    props = {p.key: p.value for p in onnx.load(str(src), load_external_data=False).metadata_props}
    props.update(extra)
    model = onnx.load(str(dst))
    del model.metadata_props[:]
    for k, v in props.items():
        model.metadata_props.add(key=k, value=v)
    onnx.save(model, str(dst))


def calibration_crops(person_set, input_hw, *, n: int = CALIBRATION_CROPS, seed: int = 0, stride: int = 4
                      ) -> torch.Tensor:
    """(n, 3, H, W) normalised person crops of `person_set` (its training split, as the network was trained
    on), without augmentation, drawn without replacement by default_rng([seed, 0x18]) (all when fewer)."""
    from posenas_core.pipeline import make_dataset

    ds = make_dataset(person_set, input_hw, train=False, stride=stride)
    if len(ds) == 0:
        raise ConfigError("int8 calibration needs person crops; the split given has no person")
    idx = np.random.default_rng([seed, 0x18]).permutation(len(ds))[:n]
    return torch.stack([torch.as_tensor(ds[int(i)]["image"]) for i in idx])


def calibration_from_dir(data_dir, input_hw, *, n: int = CALIBRATION_CROPS, seed: int = 0) -> torch.Tensor:
    """`calibration_crops` of a dataset directory's training split; ConfigError naming why when it has none."""
    from posenas_core.errors import DataError
    from posenas_core.pipeline import load_split

    try:
        train = load_split(data_dir, "train", train=False)
    except DataError as err:
        raise ConfigError(f"int8 calibrates on the training split of {data_dir}, which gives no crops: {err}") from None
    return calibration_crops(train, input_hw, n=n, seed=seed)


class Int8Runner(OrtRunner):
    """ONNX Runtime over the int8 (QDQ) quantization of the model's export, calibrated on `calibration`.
    Both files are cached beside the ort runtime's exports, the int8 one named by the weights, size and a hash
    of the calibration crops and method. Runs as the ort runner does (same forward)."""

    def __init__(self, model: nn.Module, input_hw, threads: int, calibration, method: str = "minmax"):
        Runner.__init__(self, model, "int8", input_hw)          # not OrtRunner's: it would load the fp32 file
        from posenas_core.deploy.onnx_export import ort_session
        from posenas_core.deploy.runtimes import _cached_export

        batches = _as_batches(calibration)
        fp32 = _cached_export(model, self.input_hw)
        key = f"{QUANT_POLICY}:{method}:{_digest(batches)}:{cpu_has_vnni()}"
        tag = hashlib.sha256(key.encode()).hexdigest()[:12]
        self.path = fp32.with_name(f"{fp32.stem}-int8-{tag}.onnx")
        if not self.path.is_file():
            quantize_onnx(fp32, self.path, batches, method=method)
        self.method = method
        self._session = ort_session(self.path, threads=int(threads))


def int8_verdict(ap_fp32: float, ap_int8: float) -> dict:
    """{"ap_fp32", "ap_int8", "drop" (fp32 - int8), "ok" (drop <= INT8_AP_DROP), "max_drop"}."""
    drop = float(ap_fp32) - float(ap_int8)
    return {"ap_fp32": float(ap_fp32), "ap_int8": float(ap_int8), "drop": drop, "ok": drop <= INT8_AP_DROP,
            "max_drop": INT8_AP_DROP}


def int8_check(model: nn.Module, person_set, input_hw, calibration, *, flip_test: bool = True) -> dict:
    """OKS AP of `model` on `person_set` through int8 calibrated on `calibration` against ONNX Runtime fp32
    (`pipeline.evaluate_model`): `int8_verdict`, plus the int8 runner's latency-free metrics under "metrics"."""
    from posenas_core.pipeline import evaluate_model

    out = evaluate_model(model, person_set, input_hw, flip_test=flip_test, runtime="int8", calibration=calibration)
    return {**out["int8_check"], "metrics": out}


def evaluate_auto_with_int8(model: nn.Module, person_set, input_hw, calibration, **kw) -> dict:
    """`pipeline.evaluate_model` under "auto" where int8 may win: the fastest fp32 runtime that passes parity
    (`choose_runtime`) against int8 calibrated on `calibration`; int8 is used when its AP is within INT8_AP_DROP
    of ONNX Runtime fp32's and its batch-1 latency (same threads) is lower. The metrics are the chosen runtime's,
    with "runtime_choice" holding both latencies and "int8_check"."""
    from posenas_core.deploy.runtimes import _latency, runner_for
    from posenas_core.pipeline import evaluate_model, evaluate_once

    fp32 = evaluate_model(model, person_set, input_hw, runtime="auto", **kw)
    choice = fp32["runtime_choice"]
    threads = choice["threads"]
    q = evaluate_once(model, person_set, input_hw, "int8", calibration, **kw)
    # int8's AP is judged against ONNX Runtime fp32's: already measured when auto picked ort
    ort = fp32 if fp32["runtime"] == "ort" else evaluate_once(model, person_set, input_hw, "ort", **kw)
    q["int8_check"] = int8_verdict(ort["coco"]["AP"], q["coco"]["AP"])
    r8 = runner_for(model, "int8", input_hw, threads=threads, calibration=calibration)[0]
    ms = _latency(r8, tuple(input_hw), threads, 0.3)
    best = fp32["runtime"]
    use = q["int8_check"]["ok"] and ms < choice["latency_ms"][best]
    choice["latency_ms"]["int8"] = ms
    choice["int8"] = {"used": use, "why": "AP within the allowed drop and faster" if use else (
        "AP dropped by more than the allowed" if not q["int8_check"]["ok"] else f"not faster than {best}")}
    out = q if use else fp32
    return {**out, "runtime_choice": choice, "int8_check": q["int8_check"]}
