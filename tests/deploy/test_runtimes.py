"""Runtimes (deploy.runtimes): eager / ort / compiled runners equal eager fp32 (1e-4; bf16 within BF16_RTOL of the
peak), give the same keypoints and AP through evaluate_model, "auto" picks the fastest passing one, and each
bad input is one clear error. One tiny EvoPose2D network at 64x64; compiled graphs are built once per module."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from posenas_core import pipeline
from posenas_core.cli import RUNTIME_CHOICES as CLI_RUNTIMES
from posenas_core.cli import main
from posenas_core.deploy import runtimes
from posenas_core.deploy.runtimes import (BF16_RTOL, RUNTIME_CHOICES, RUNTIMES, choose_runtime, make_runner,
                                          runner_for, runtime_available)
from posenas_core.deploy.onnx_export import parity_model
from posenas_core.deploy.rewrites import nchwc_block
from posenas_core.errors import ConfigError
from posenas_core.eval.profiler import measure_latency, profile_model
from posenas_core.models.registry import build_model

HW = (64, 64)


def nontrivial(model: nn.Module, seed: int = 0) -> nn.Module:
    return parity_model(model, seed, HW)


@pytest.fixture(scope="module")
def compiled(net):
    return make_runner(net, "compiled", HW, threads=1, bf16=False)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    from posenas_core.data.synthpose import write_synthpose

    root = tmp_path_factory.mktemp("sp")
    write_synthpose(root, 0, 4, 0, seed=3, progress=False)
    return root


@pytest.fixture(scope="module")
def val_set(data_dir):
    return pipeline.load_split(data_dir, "val", train=False)


def _x(batch, seed=1):
    return torch.randn(batch, 3, *HW, generator=torch.Generator().manual_seed(seed))


def test_names_and_availability():
    assert RUNTIMES == ("eager", "ort", "compiled", "int8") and RUNTIME_CHOICES == ("auto", *RUNTIMES) == CLI_RUNTIMES
    assert runtimes.FP32_RUNTIMES == RUNTIMES[:3] and runtime_available("int8") is None
    assert runtime_available("eager") is None and runtime_available("ort") is None      # onnxruntime: the deploy extra
    with pytest.raises(ConfigError, match=r"runtime 'tensorrt' is unknown; choose one of \['eager', 'ort', 'comp"):
        runtime_available("tensorrt")


def test_fold_deconv_bn_equals_unfolded_for_grouped_and_square_deconvs():
    for cin, cout, groups in ((16, 16, 1), (16, 16, 4), (8, 16, 2)):
        seq = nontrivial(nn.Sequential(nn.Conv2d(3, cin, 1), nn.ConvTranspose2d(cin, cout, 4, 2, 1, groups=groups,
                                                                             bias=False), nn.BatchNorm2d(cout)))
        x = _x(2)[:, :, :8, :8]
        want = seq(x)
        runtimes._fold_deconv_bn(seq)
        assert isinstance(seq[2], nn.Identity) and seq[1].bias is not None
        torch.testing.assert_close(seq(x), want, atol=1e-5, rtol=1e-5)


def test_ort_runner_equals_eager_and_reuses_its_export(net):
    r = make_runner(net, "ort", HW, threads=1)
    assert isinstance(r, nn.Module) and not list(r.parameters())
    assert r.spec == net.spec and r.output_stride == net.spec.output_stride and r.runtime == "ort"
    with torch.no_grad():
        want = net(_x(3))
    assert want.abs().max() > 0.1 and want.std() > 0.01                     # heatmaps far from constant
    assert r.parity <= 1e-4 and (r(_x(3)) - want).abs().max() <= 1e-4 and r(_x(3)).dtype == torch.float32
    files = list(runtimes.onnx_cache_dir().glob("*.onnx"))
    assert [f.name for f in files] == [r.path.name] and r.path.name.endswith(f"-64x64-fast{nchwc_block()}.onnx")
    runtimes._RUNNERS.clear()
    stamp = r.path.stat().st_mtime_ns
    assert make_runner(net, "ort", HW, threads=1).path.stat().st_mtime_ns == stamp     # not exported again
    with pytest.raises(ConfigError, match="exported at 64x64; got an input of 96x64"):
        r(torch.zeros(1, 3, 96, 64))


def test_compiled_runner_equals_eager_in_channels_last_fp32(net, compiled):
    assert compiled.runtime == "compiled" and compiled.bf16 is False and not list(compiled.parameters())
    with torch.no_grad():
        want = net(_x(1, seed=5))
    assert compiled.parity <= 1e-4 and (compiled(_x(1, seed=5)) - want).abs().max() <= 1e-4
    assert make_runner(net, "compiled", HW, threads=1, bf16=False) is compiled             # the process cache
    # dynamo would silently run a 9th model of one forward code eager: the limit is raised, and hitting it fails
    from torch._dynamo import config as dynamo_config

    assert dynamo_config.recompile_limit >= 64 and dynamo_config.fail_on_recompile_limit_hit
    assert [p.requires_grad for p in net.parameters()][0] is True                          # the model untouched


def test_compiled_bf16_within_its_tolerance(net):
    r = make_runner(net, "compiled", HW, threads=1, bf16=True)
    assert r.bf16 is True
    with torch.no_grad():
        want = net(_x(1, seed=6))
    diff = (r(_x(1, seed=6)) - want).abs().max()
    assert 0 < diff <= BF16_RTOL * max(want.abs().max(), 1.0)   # not fp32 (diff > 0), within 5% of the peak (>= 1)


def test_choose_runtime_picks_the_fastest_passing(net, compiled):
    rep = choose_runtime(net, HW, threads=1, bf16=False)
    assert set(rep["latency_ms"]) == set(runtimes.FP32_RUNTIMES) and rep["rejected"] == {}
    assert rep["runtime"] == min(rep["latency_ms"], key=rep["latency_ms"].get)
    assert rep["parity"]["eager"] == 0 and max(rep["parity"].values()) <= 1e-4
    assert rep["cpu"] and rep["threads"] == 1 and rep["input_hw"] == list(HW) and rep["bf16"] is False
    json.dumps(rep)
    assert choose_runtime(net, HW, threads=1, bf16=False) == rep                            # cached
    r, info = runner_for(net, "auto", HW, threads=1, bf16=False)
    assert info["runtime"] == rep["runtime"] and info["runtime_choice"] == rep


def test_a_runtime_failing_parity_is_refused_or_rejected(net, monkeypatch):
    class Broken(runtimes.OrtRunner):
        def forward(self, x):
            return super().forward(x) + 1e-3

    monkeypatch.setattr(runtimes, "OrtRunner", Broken)
    monkeypatch.setattr(runtimes, "_RUNNERS", type(runtimes._RUNNERS)())
    monkeypatch.setattr(runtimes, "_CHOICES", {})
    with pytest.raises(ConfigError, match=r"runtime 'ort' fails parity on this model: .* above 0.0001 absolute"):
        make_runner(net, "ort", HW, threads=1)
    rep = choose_runtime(net, HW, threads=1, candidates=("eager", "ort"))
    assert rep["runtime"] == "eager" and "parity" in rep["rejected"]["ort"] and rep["parity"]["ort"] >= 1e-3


def test_missing_onnxruntime_compiler_and_cuda_are_clear_errors(net, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "onnxruntime" else real(n, *a))
    assert "onnxruntime not installed" in runtime_available("ort")
    with pytest.raises(ConfigError, match=r"runtime 'ort' is not available here: onnxruntime not installed.*"
                                          r"available: \['eager', 'compiled'\]"):
        make_runner(net, "ort", HW)
    with pytest.warns(RuntimeWarning, match="ran eager"):
        r, info = runner_for(net, "ort", HW, fallback=True)
    assert r is net and info["runtime"] == "eager" and "onnxruntime" in info["runtime_warning"]
    import torch._inductor.cpp_builder as cb

    monkeypatch.setattr(cb, "get_cpp_compiler", lambda: (_ for _ in ()).throw(RuntimeError("no cc")))
    monkeypatch.setattr(runtimes.shutil, "which", lambda name: None)
    assert "needs a C++ compiler" in runtime_available("compiled")
    meta = build_model(net.spec, generator=None).to("meta")     # weights off the CPU, as on a GPU
    for rt in ("ort", "compiled"):
        with pytest.raises(ConfigError, match="runtimes ort/compiled are CPU paths; on CUDA use eager"):
            make_runner(meta, rt, HW)
    assert runner_for(meta, "auto", HW)[1]["runtime"] == "eager"
    with pytest.raises(ConfigError, match="runtime 'trt' is unknown"):
        make_runner(net, "trt", HW)


def test_profiler_times_the_runner(net, compiled):
    lat = measure_latency(net, HW, threads=1, min_run_time=0.05, warmup=1, runtime="compiled")
    assert lat["runtime"] == "compiled" and lat["latency_ms"] > 0 and lat["bf16"] is False
    p = profile_model(net, HW, threads=1, min_run_time=0.05, runtime="ort")
    assert p["runtime"] == "ort" and p["latency_ms"] > 0 and p["macs"] > 0
    assert profile_model(net, HW, latency=False, runtime="ort")["runtime"] is None
    assert measure_latency(net, HW, min_run_time=0.05, warmup=0)["runtime"] == "eager"


def test_evaluation_same_keypoints_and_ap_for_every_runtime(net, compiled, val_set, monkeypatch):
    """fp32 runtimes: the keypoints of eager within 0.01 px, AP within 0.002 (batch 1, flip test)."""
    monkeypatch.setattr("posenas_core.machine.cpu_info", lambda: {"model": "test", "native_bf16": False})
    out = {rt: pipeline.evaluate_model(net, val_set, HW, runtime=rt, batch_size=1) for rt in runtimes.FP32_RUNTIMES}
    assert len(val_set.records) >= 4 and {m["runtime"] for m in out.values()} == set(runtimes.FP32_RUNTIMES)
    for rt in ("ort", "compiled"):
        assert abs(out[rt]["coco"]["AP"] - out["eager"]["coco"]["AP"]) <= 0.002
        assert abs(out[rt]["pck@0.2"] - out["eager"]["pck@0.2"]) <= 0.002
    from posenas_core.train.predict import predict

    ds = pipeline.make_dataset(val_set, HW, train=False, stride=net.spec.output_stride)
    eager = predict(net, ds, batch_size=1)[1]
    for r in (make_runner(net, "ort", HW, threads=1), compiled):
        got = predict(r, ds, batch_size=1)[1]
        assert np.abs(got - eager)[..., :2].max() <= 0.01 and np.abs(got - eager)[..., 2].max() <= 1e-3


def test_cli_profile_and_eval_take_runtime(net, data_dir, tmp_path, capsys):
    assert main(["profile", "evopose2d-xs", "--input", "64x64", "--min-run-time", "0.05", "--runtime", "ort"]) == 0
    assert json.loads(capsys.readouterr().out)["runtime"] == "ort"
    with pytest.raises(SystemExit) as exc:
        main(["profile", "evopose2d-xs", "--runtime", "tensorrt"])
    assert exc.value.code == 2
    assert "invalid choice: 'tensorrt'" in capsys.readouterr().err
    (tmp_path / "checkpoints").mkdir()
    torch.save({"spec": net.spec.to_dict(), "model": net.state_dict()}, tmp_path / "checkpoints" / "last.pt")
    (tmp_path / "pipeline.json").write_text(json.dumps({"input_hw": list(HW)}))
    ckpt = str(tmp_path / "checkpoints" / "last.pt")
    assert main(["eval", ckpt, "--data", str(data_dir), "--runtime", "ort"]) == 0
    got = json.loads(capsys.readouterr().out)
    want = pipeline.evaluate_checkpoint(ckpt, data_dir=data_dir)
    assert got["runtime"] == "ort" and want["runtime"] == "eager"
    assert abs(got["coco"]["AP"] - want["coco"]["AP"]) <= 0.002 and got["n_persons"] == want["n_persons"]
    kps = pipeline.predict_checkpoint(ckpt, pipeline.load_split(data_dir, "val", train=False), input_hw=HW,
                                      runtime="ort")
    assert kps.shape == (want["n_persons"], 17, 3)


def test_genotype_editor_measures_latency_through_its_runtime(env):
    from lab.genotype_editor import GenotypeEditor

    ed = GenotypeEditor("evopose2d-s", latency_min_run_time=0.05, latency_runtime="ort")
    ed.height.value, ed.width.value = 64, 64
    ed.latency_button.click()
    assert ed.latency_task.join(120) and ed.latency_task.state == "done", ed.errors.errors
    assert ed.latency["runtime"] == "ort" and ed.latency["latency_ms"] > 0 and ed.latency["input_hw"] == (64, 64)
    assert ", ort)" in ed.latency_label.value
