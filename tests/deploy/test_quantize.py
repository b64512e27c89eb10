"""int8 (deploy.quantize): ONNX Runtime static quantization calibrated on crops, its file and cache, its wiring
into make_runner / evaluate_model / eval / profile, and its errors. One tiny EvoPose2D network at 64x64 with
non-trivial BN (`parity_model`); whether int8 keeps AP on trained networks is benchmarks/deploy_accuracy.py's."""

import json

import numpy as np
import pytest
import torch

from posenas_core import pipeline
from posenas_core.cli import main
from posenas_core.deploy import runtimes
from posenas_core.deploy.onnx_export import onnx_spec, parity_model, read_onnx_metadata
from posenas_core.deploy.quantize import INT8_AP_DROP, calibration_crops, int8_verdict, quantize_onnx
from posenas_core.deploy.runtimes import choose_runtime, make_runner
from posenas_core.errors import ConfigError
from posenas_core.models.registry import build_model

HW = (64, 64)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    from posenas_core.data.synthpose import write_synthpose

    root = tmp_path_factory.mktemp("sp")
    write_synthpose(root, 12, 4, 0, seed=3, progress=False)
    return root


@pytest.fixture(scope="module")
def crops(data_dir):
    return calibration_crops(pipeline.load_split(data_dir, "train", train=False), HW, n=16)


def test_calibration_crops_are_seeded_normalised_person_crops(data_dir, crops):
    train = pipeline.load_split(data_dir, "train", train=False)
    assert crops.shape == (16, 3, *HW) and crops.dtype == torch.float32
    assert abs(float(crops.mean())) < 1.5 and 0.2 < float(crops.std()) < 3       # normalised, not raw pixels
    torch.testing.assert_close(calibration_crops(train, HW, n=16), crops)        # same seed, same crops
    assert not torch.equal(calibration_crops(train, HW, n=16, seed=1), crops)
    assert len(calibration_crops(train, HW, n=10_000)) == len(train.records)     # all when fewer


def test_int8_runner_follows_fp32_and_its_file_is_quantized(net, crops):
    import onnx

    r = make_runner(net, "int8", HW, threads=1, calibration=crops)
    assert r.runtime == "int8" and not list(r.parameters()) and r.spec == net.spec
    with torch.no_grad():
        want, got = net.eval()(crops[:8]), r(crops[:8])
    assert got.shape == want.shape and got.dtype == torch.float32
    corr = np.corrcoef(got.flatten().numpy(), want.flatten().numpy())[0, 1]
    assert corr > 0.9, f"int8 heatmaps do not follow fp32 (correlation {corr:.3f}): a broken graph"
    assert not torch.equal(got, want)                                            # it is quantized, not fp32
    with torch.no_grad():
        assert r.parity == pytest.approx(float((r(crops[:4]) - net(crops[:4])).abs().max()), rel=1e-5)
    model = onnx.load(str(r.path))
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("QuantizeLinear") > 5 and ops.count("DequantizeLinear") > 5
    int8_weights = [t for t in model.graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert len(int8_weights) >= sum(op == "Conv" for op in ops) - 1
    assert onnx_spec(r.path) == net.spec and read_onnx_metadata(r.path)["posenas.input_hw"] == "64x64"
    q = json.loads({p.key: p.value for p in model.metadata_props}["posenas.quantization"])
    assert q["calibration_crops"] == 16 and q["per_channel"] and q["method"] == "minmax"


def test_int8_file_is_cached_by_calibration(net, crops):
    runtimes._RUNNERS.clear()
    a = make_runner(net, "int8", HW, threads=1, calibration=crops)
    stamp = a.path.stat().st_mtime_ns
    runtimes._RUNNERS.clear()
    assert make_runner(net, "int8", HW, threads=1, calibration=crops).path.stat().st_mtime_ns == stamp
    b = make_runner(net, "int8", HW, threads=1, calibration=crops[:8])
    assert b.path != a.path and b.path.is_file()


@pytest.mark.parametrize("form", ["plain", "fast"])
def test_grouped_deconvs_stay_fp32(tmp_path, env, form):
    """Grouped convs stay fp32 (ONNX Runtime 1.32 cannot quantize a grouped ConvTranspose per channel, and its
    grouped int8 convs are slower than fp32); the dense ones are quantized. Both export forms."""
    import onnx

    from posenas_core.deploy.onnx_export import export_onnx
    from posenas_core.models import PRESETS

    net = parity_model(build_model(PRESETS["s-vipnas-res50"].spec, generator=torch.Generator().manual_seed(0)), 0, HW)
    fp32 = export_onnx(net, tmp_path / "n.onnx", HW, form=form)
    out = quantize_onnx(fp32, tmp_path / "q.onnx", torch.randn(4, 3, *HW))
    q = json.loads({p.key: p.value for p in onnx.load(str(out)).metadata_props}["posenas.quantization"])
    model = onnx.load(str(out))
    convs = [n for n in model.graph.node if n.op_type in ("Conv", "ConvTranspose")]
    grouped = [n.name for n in convs if any(a.name == "group" and a.i > 1 for a in n.attribute)]
    deconvs = [n.name for n in convs if n.op_type == "ConvTranspose"]
    assert deconvs and set(deconvs) <= set(grouped)     # its head's grouped deconvs (the fast form leaves them)
    assert sorted(q["fp32_nodes"]) == sorted(grouped) and len(grouped) < len(convs)
    assert ort_runs(out)


def ort_runs(path) -> bool:
    from posenas_core.deploy.onnx_export import ort_session

    y = ort_session(path).run(["heatmaps"], {"images": np.random.default_rng(0).normal(size=(1, 3, *HW)).astype(
        np.float32)})[0]
    return bool(np.isfinite(y).all())


def test_evaluate_model_int8_reports_its_ap_against_fp32(net, data_dir, crops):
    val = pipeline.load_split(data_dir, "val", train=False)
    out = pipeline.evaluate_model(net, val, HW, runtime="int8", calibration=crops, batch_size=4)
    c = out["int8_check"]
    assert out["runtime"] == "int8" and c["ap_int8"] == out["coco"]["AP"] and c["max_drop"] == INT8_AP_DROP
    fp32 = pipeline.evaluate_model(net, val, HW, runtime="ort", batch_size=4)
    assert c["ap_fp32"] == fp32["coco"]["AP"] and c["ok"] == (c["drop"] <= INT8_AP_DROP)
    assert int8_verdict(0.5, 0.495)["ok"] and not int8_verdict(0.5, 0.48)["ok"]


def test_auto_with_calibration_lets_int8_win_only_where_ap_holds_and_faster(net, data_dir, crops):
    val = pipeline.load_split(data_dir, "val", train=False)
    out = pipeline.evaluate_model(net, val, HW, runtime="auto", calibration=crops, batch_size=4)
    choice, check = out["runtime_choice"], out["int8_check"]
    lat = choice["latency_ms"]
    assert set(lat) >= {"eager", "ort", "int8"} and check["ap_fp32"] >= 0
    fastest_fp32 = min((k for k in lat if k != "int8"), key=lat.get)
    won = check["ok"] and lat["int8"] < lat[fastest_fp32]
    assert choice["int8"]["used"] == won and out["runtime"] == ("int8" if won else fastest_fp32)
    want = check["ap_int8"] if won else pipeline.evaluate_model(net, val, HW, batch_size=4)["coco"]["AP"]
    assert abs(out["coco"]["AP"] - want) <= 0.002          # the metrics are the chosen runtime's


def test_auto_with_calibration_evaluates_onnx_runtime_once(net, data_dir, crops, monkeypatch):
    """int8's AP is judged against ONNX Runtime fp32's: when auto picks ort, that evaluation is reused."""
    from posenas_core.deploy import runtimes as rt

    val = pipeline.load_split(data_dir, "val", train=False)
    real_latency, real_once, ran = rt._latency, pipeline.evaluate_once, []
    monkeypatch.setattr(rt, "_latency", lambda r, *a: real_latency(r, *a) * (0.01 if r.runtime == "ort" else 1))

    def once(*a, **kw):
        out = real_once(*a, **kw)
        ran.append(out["runtime"])
        return out

    monkeypatch.setattr(pipeline, "evaluate_once", once)
    out = pipeline.evaluate_model(net, val, HW, runtime="auto", calibration=crops, batch_size=4)
    assert out["runtime_choice"]["runtime"] == "ort" and sorted(ran) == ["int8", "ort"]
    assert out["int8_check"]["ap_fp32"] == pipeline.evaluate_model(net, val, HW, runtime="ort", batch_size=4)[
        "coco"]["AP"]


def test_cli_eval_and_profile_take_int8(net, data_dir, tmp_path, capsys):
    (tmp_path / "checkpoints").mkdir()
    torch.save({"spec": net.spec.to_dict(), "model": net.state_dict()}, tmp_path / "checkpoints" / "last.pt")
    (tmp_path / "pipeline.json").write_text(json.dumps({"input_hw": list(HW)}))
    assert main(["eval", str(tmp_path / "checkpoints" / "last.pt"), "--data", str(data_dir), "--runtime", "int8"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["runtime"] == "int8" and set(got["int8_check"]) >= {"ap_fp32", "ap_int8", "drop", "ok"}
    assert main(["profile", "evopose2d-xs", "--input", "64x64", "--min-run-time", "0.05", "--runtime", "int8"]) == 0
    prof = json.loads(capsys.readouterr().out)
    assert prof["runtime"] == "int8" and prof["latency_ms"] > 0 and "random crops" in prof["int8_note"]


def test_int8_errors(net, crops, tmp_path):
    with pytest.raises(ConfigError, match="runtime 'int8' needs calibration crops of real data"):
        make_runner(net, "int8", HW)
    with pytest.raises(ConfigError, match="calibration crops are 32x32; the network was exported at 64x64"):
        make_runner(net, "int8", HW, calibration=torch.randn(2, 3, 32, 32))
    with pytest.raises(ConfigError, match=r"calibration crops must be \(N, 3, H, W\) images; got shape \(3, 64, 64\)"):
        make_runner(net, "int8", HW, calibration=torch.randn(3, 64, 64))
    with pytest.raises(ConfigError, match="judge int8 by AP"):
        choose_runtime(net, HW, candidates=("ort", "int8"))
    with pytest.raises(ConfigError, match=r"calibration method 'kl' is unknown; choose one of \['minmax'"):
        quantize_onnx(tmp_path / "x.onnx", tmp_path / "y.onnx", crops, method="kl")
    empty = tmp_path / "sp"
    from posenas_core.data.synthpose import write_synthpose

    write_synthpose(empty, 0, 2, 0, seed=1, progress=False)
    (tmp_path / "checkpoints").mkdir()
    torch.save({"spec": net.spec.to_dict(), "model": net.state_dict()}, tmp_path / "checkpoints" / "last.pt")
    with pytest.raises(ConfigError, match="int8 calibrates on the training split of .*sp, which gives no crops: "
                                          "person_keypoints_train.json: no persons"):
        pipeline.evaluate_checkpoint(tmp_path / "checkpoints" / "last.pt", data_dir=empty, input_hw=HW,
                                     runtime="int8")


def test_a_skip_head_quantizes_where_symbolic_shape_inference_stops(tmp_path, env, monkeypatch):
    """baseline-resnet-skip's fast form (Col2Im feeding the skip Add) stops ONNX Runtime's symbolic shape
    inference; quantization falls back to ONNX's own, says so, and leaves nothing in the working directory (ONNX
    Runtime dumps its partial model there)."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    from posenas_core.deploy.onnx_export import export_onnx
    from posenas_core.models import PRESETS

    net = parity_model(build_model(PRESETS["baseline-resnet-skip"].spec, generator=torch.Generator().manual_seed(0)),
                       0, HW)
    out = quantize_onnx(export_onnx(net, tmp_path / "n.onnx", HW), tmp_path / "q.onnx", torch.randn(4, 3, *HW))
    q = json.loads(read_onnx_metadata(out)["posenas.quantization"])
    assert q["shape_inference"].startswith("onnx") and ort_runs(out)
    assert list(cwd.iterdir()) == []
