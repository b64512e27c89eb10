"""The device choice (cpu / cuda / cuda:N / auto) at every training and evaluation entry point: the CPU path
is the default and "auto" equals it here; "cuda" without a GPU is one ConfigError before anything is written;
the CUDA branches run on a GPU only (skipped with a message elsewhere)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from posenas_core import pipeline
from posenas_core.cli import main
from posenas_core.errors import ConfigError
from posenas_core.machine import resolve_device

pytestmark = pytest.mark.usefixtures("one_torch_thread")

HAS_CUDA = torch.cuda.is_available()
no_gpu = pytest.mark.skipif(HAS_CUDA, reason="checks the error for 'cuda' on a machine without a GPU; this one has one")
gpu = pytest.mark.skipif(not HAS_CUDA, reason=f"needs a CUDA GPU; torch {torch.__version__} sees none here")
NO_CUDA = r"device 'cuda' was asked for, but CUDA is not available here"
TINY = "k3b1c1s1-k3b1c1s2-k3b1c1s2-k3b1c1s2-k3b1c1s1-k3b1c1s2-k3b1c1s1"


def _spec_json() -> str:
    from posenas_core.spaces.evopose import EvoPoseSpec, genotype_from_str

    return EvoPoseSpec(genotype=genotype_from_str(TINY), head_channels=16).to_json()


def _files(d):
    return {p: p.read_bytes() for p in d.rglob("*") if p.is_file()} if d.exists() else {}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    from posenas_core.data.synthpose import write_synthpose

    d = tmp_path_factory.mktemp("dev") / "sp"
    write_synthpose(d, 6, 3, 0, seed=2, progress=False)
    return d


@pytest.fixture(scope="module")
def trained(data_dir, tmp_path_factory):
    """A tiny run trained with device='auto' (the CPU here): its run directory."""
    run = tmp_path_factory.mktemp("dev") / "run"
    pipeline.train_on_dataset(data_dir=data_dir, model=_spec_json(), run_dir=run, input_hw=(64, 64), epochs=1,
                              batch_size=4, validate=False, progress=False, cache_mb=0, bf16=False,
                              channels_last=False, device="auto")
    return run


def _evo_cfg(data_dir, **kw):
    from posenas_core.search.evolution import EvolutionConfig

    base = dict(data_dir=str(data_dir), input_size=(64, 64), lam=2, mu=1, generations=0, e0=1, e=1, ancestor=TINY,
                spec_overrides={"head_channels": 16}, batch_size=4, seed=1, max_val_images=2, ckpt_every_steps=None)
    return EvolutionConfig(**{**base, **kw})


# ----------------------------------------------------------------------------------- the CPU path


def test_auto_training_records_the_resolved_device(trained):
    info = json.loads((trained / "pipeline.json").read_text())
    assert info["device"] == str(resolve_device("auto")) == ("cuda" if HAS_CUDA else "cpu")
    train_cfg = json.loads((trained / "config.json").read_text())["train"]
    assert (train_cfg["device"], train_cfg["fp16"]) == (info["device"], False)


def test_evaluation_on_auto_equals_the_default(trained, data_dir):
    ckpt = trained / "checkpoints" / "last.pt"
    default = pipeline.evaluate_checkpoint(ckpt, data_dir=data_dir, flip_test=False)
    for device in ("cpu", "auto"):
        if device == "auto" and HAS_CUDA:
            continue                                  # auto is the GPU there: compared in the CUDA tests
        assert pipeline.evaluate_checkpoint(ckpt, data_dir=data_dir, flip_test=False, device=device) == default
    assert 0.0 <= default["coco"]["AP"] <= 1.0 and default["n_persons"] > 0
    person_set = pipeline.load_split(data_dir, "val", train=False)
    kps = pipeline.predict_checkpoint(ckpt, person_set, input_hw=(64, 64))
    assert kps.shape == (len(person_set.records), 17, 3) and kps.dtype == np.float32
    if not HAS_CUDA:
        np.testing.assert_array_equal(pipeline.predict_checkpoint(ckpt, person_set, input_hw=(64, 64),
                                                                  device="auto"), kps)


def test_cuda_autocast_choice(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert pipeline.cuda_autocast() == {"bf16": True, "fp16": False}
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert pipeline.cuda_autocast("auto") == {"bf16": False, "fp16": True}      # pre-Ampere: fp16 + scaler
    assert pipeline.cuda_autocast(False) == {"bf16": False, "fp16": False}     # --precision fp32
    assert pipeline.cuda_autocast(True) == {"bf16": True, "fp16": False}


def test_training_on_a_gpu_skips_the_cpu_measurement(data_dir, tmp_path, monkeypatch):
    """The CUDA branch of train_on_dataset, its device faked: no CPU format measurement, cuda_autocast's
    precision, NHWC, the device in pipeline.json and in the trainer's config."""
    import posenas_core.machine as machine
    import posenas_core.train.trainer as trainer

    seen = {}

    def fake_train(spec, ds, run_dir, config, **kw):
        seen["config"] = config
        return SimpleNamespace(step=0)

    monkeypatch.setattr(pipeline, "resolve_device", lambda name: torch.device("cuda"))
    monkeypatch.setattr(machine, "resolve_auto", lambda *a, **k: pytest.fail("measured the CPU format on a GPU"))
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    monkeypatch.setattr(trainer, "train", fake_train)
    pipeline.train_on_dataset(data_dir=data_dir, model=_spec_json(), run_dir=tmp_path / "r", input_hw=(64, 64),
                              epochs=1, batch_size=4, validate=False, progress=False, cache_mb=0, device="cuda")
    info = json.loads((tmp_path / "r" / "pipeline.json").read_text())
    assert info["device"] == "cuda"
    assert info["format"] == {"bf16": False, "fp16": True, "channels_last": True, "img_per_s": None, "measured": {}}
    c = seen["config"]
    assert (c.device, c.bf16, c.fp16, c.channels_last) == ("cuda", False, True, True)


def test_an_fp16_run_does_not_resume_on_the_cpu(trained, data_dir, tmp_path):
    import shutil

    run = tmp_path / "r"
    shutil.copytree(trained, run)
    info = json.loads((run / "pipeline.json").read_text())
    (run / "pipeline.json").write_text(json.dumps({**info, "format": {**info["format"], "fp16": True}}))
    before = _files(run)
    with pytest.raises(ConfigError, match=rf"cannot resume {run} on cpu: it trains with fp16 autocast, which "
                                          r"needs a GPU"):
        pipeline.train_on_dataset(data_dir=data_dir, model=_spec_json(), run_dir=run, input_hw=(64, 64), epochs=1,
                                  batch_size=4, validate=False, progress=False, cache_mb=0, device="cpu")
    assert _files(run) == before


def test_evolution_candidate_on_auto_equals_the_default(data_dir, tmp_path):
    from posenas_core.search.evolution import resume, run_evolution

    rows = {}
    for device in ("cpu", "auto"):
        run = tmp_path / device
        run_evolution(_evo_cfg(data_dir, device=device), run, progress=False)
        rows[device] = json.loads((run / "archive.jsonl").read_text().splitlines()[0])
        train_cfg = json.loads((run / "candidates" / "0" / "config.json").read_text())["train"]
        assert train_cfg["device"] == str(resolve_device(device)) and not train_cfg["bf16"]
    if not HAS_CUDA:
        strip = [{k: v for k, v in r.items() if k != "wall_time_s"} for r in rows.values()]
        assert strip[0] == strip[1] and strip[0]["status"] == "ok"
    # the device is not part of the resume check: a run continues on another one
    out = resume(tmp_path / "cpu", device="auto", progress=False)
    assert out["candidates"] == 1
    assert json.loads((tmp_path / "cpu" / "config.json").read_text())["device"] == "auto"


def test_evolution_device_errors(data_dir, tmp_path):
    with pytest.raises(ConfigError, match=r"EvolutionConfig.device = 'gpu' is invalid; allowed: 'cpu', 'cuda', "
                                          r"'cuda:N' or 'auto'"):
        _evo_cfg(data_dir, device="gpu")
    with pytest.raises(ConfigError, match="EvolutionConfig.device = 'cuda:x' is invalid"):
        _evo_cfg(data_dir, device="cuda:x")
    assert _evo_cfg(data_dir, device="cuda:1").device == "cuda:1"   # the form is fine; the GPU is checked at run time


# ---------------------------------------------------------------------- "cuda" without a GPU: refused first


@no_gpu
def test_cuda_without_a_gpu_is_refused_before_anything_is_written(trained, data_dir, tmp_path):
    from posenas_core.search.evolution import resume, run_evolution
    from posenas_core.train.predict import heatmap_fn_from_checkpoint

    with pytest.raises(ConfigError, match=NO_CUDA):
        pipeline.train_on_dataset(data_dir=data_dir, model=_spec_json(), run_dir=tmp_path / "r", epochs=1,
                                  device="cuda")
    ckpt = trained / "checkpoints" / "last.pt"
    with pytest.raises(ConfigError, match=NO_CUDA):
        pipeline.evaluate_checkpoint(ckpt, data_dir=data_dir, out=tmp_path / "m.json", device="cuda")
    with pytest.raises(ConfigError, match=NO_CUDA):
        pipeline.run_demo(tmp_path / "demo", device="cuda")
    with pytest.raises(ConfigError, match=r"device 'cuda:0' was asked for"):
        pipeline.predict_checkpoint(ckpt, None, input_hw=(64, 64), device="cuda:0")
    with pytest.raises(ConfigError, match=NO_CUDA):
        heatmap_fn_from_checkpoint(ckpt, None, (64, 64), device="cuda")
    with pytest.raises(ConfigError, match=NO_CUDA):
        pipeline.load_exported(tmp_path / "nothing", device="cuda")
    with pytest.raises(ConfigError, match=NO_CUDA):
        run_evolution(_evo_cfg(data_dir, device="cuda"), tmp_path / "evo", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    run_evolution(_evo_cfg(data_dir), tmp_path / "evo", progress=False)
    before = _files(tmp_path / "evo")
    with pytest.raises(ConfigError, match=NO_CUDA):
        resume(tmp_path / "evo", device="cuda", progress=False)
    assert _files(tmp_path / "evo") == before


@no_gpu
def test_cli_device_cuda_without_a_gpu_exits_2_with_one_line(trained, data_dir, tmp_path, capsys):
    ckpt = str(trained / "checkpoints" / "last.pt")
    for argv in (["train", "--data", str(data_dir), "--out", str(tmp_path / "r"), "--device", "cuda", "--quiet"],
                 ["eval", ckpt, "--data", str(data_dir), "--out", str(tmp_path / "m.json"), "--device", "cuda"],
                 ["evolve", "run", "--data", str(data_dir), "--out", str(tmp_path / "e"), "--device", "cuda",
                  "--quiet"]):
        assert main(argv) == 2, argv
        out, err = capsys.readouterr()
        assert out == "" and len(err.strip().splitlines()) == 1
        assert err.startswith(f"posenas {argv[0]}: error: device 'cuda' was asked for, but CUDA is not available")
    assert list(tmp_path.iterdir()) == []


def test_cli_device_form_is_checked_by_argparse(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--data", "d", "--out", "o", "--device", "gpu"])
    assert e.value.code == 2
    assert "argument --device: expected cpu, cuda, cuda:N or auto (CUDA when present), got 'gpu'" in \
        capsys.readouterr().err
    from posenas_core.cli import build_parser

    p = build_parser()
    for argv in (["train", "--data", "d", "--out", "o"], ["eval", "c.pt", "--data", "d"], ["demo"]):
        assert p.parse_args(argv).device == "cpu"
    assert p.parse_args(["eval", "c.pt", "--data", "d", "--device", "cuda:1"]).device == "cuda:1"
    assert p.parse_args(["evolve", "resume", "RUN", "--device", "auto"]).device == "auto"
    assert p.parse_args(["evolve", "run", "--out", "o"]).device is None   # EvolutionConfig's default (cpu)


# ----------------------------------------------------------------------------------- on a GPU only


@pytest.fixture()
def exact_fp32(monkeypatch):
    """No TF32 on the GPU: convolutions and matmuls in full fp32, so GPU and CPU agree to ~1e-6."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)


@gpu
def test_gpu_prediction_equals_the_cpu(trained, data_dir, exact_fp32):
    from posenas_core.train.checkpoints import load_checkpoint
    from posenas_core.train.predict import heatmap_fn_from_model

    ckpt = trained / "checkpoints" / "last.pt"
    person_set = pipeline.load_split(data_dir, "val", train=False)
    cpu = pipeline.predict_checkpoint(ckpt, person_set, input_hw=(64, 64), flip_test=True)
    gpu_kps = pipeline.predict_checkpoint(ckpt, person_set, input_hw=(64, 64), flip_test=True, device="cuda")
    assert gpu_kps.dtype == np.float32 and isinstance(gpu_kps, np.ndarray)
    np.testing.assert_allclose(gpu_kps[..., 2], cpu[..., 2], atol=1e-4)            # joint scores
    assert np.mean(np.abs(gpu_kps[..., :2] - cpu[..., :2]) < 1e-3) > 0.99          # argmax ties may flip rarely
    model = load_checkpoint(ckpt)[0]
    h_cpu = heatmap_fn_from_model(model, person_set, (64, 64))(0)
    h_gpu = heatmap_fn_from_model(model.to("cuda"), person_set, (64, 64))(0)
    np.testing.assert_allclose(h_gpu, h_cpu, atol=1e-4)


@gpu
def test_gpu_training_step_and_evaluation(data_dir, tmp_path):
    run = tmp_path / "r"
    s = pipeline.train_on_dataset(data_dir=data_dir, model=_spec_json(), run_dir=run, input_hw=(64, 64), epochs=1,
                                  batch_size=4, validate=True, progress=False, cache_mb=0, device="cuda")
    info = json.loads((run / "pipeline.json").read_text())
    assert info["device"] == "cuda" and s["step"] >= 1
    assert info["format"]["bf16"] == torch.cuda.is_bf16_supported() != info["format"]["fp16"]
    ckpt = torch.load(run / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())
    m = pipeline.evaluate_checkpoint(run / "checkpoints" / "last.pt", data_dir=data_dir, device="cuda")
    assert 0.0 <= m["coco"]["AP"] <= 1.0


@gpu
def test_gpu_evolution_candidate(data_dir, tmp_path):
    from posenas_core.search.evolution import run_evolution

    out = run_evolution(_evo_cfg(data_dir, device="cuda", compute_ap=True), tmp_path / "e", progress=False)
    row = out["best"]
    assert row["status"] == "ok", row["error"]
    assert np.isfinite(row["val_loss"]) and 0.0 <= row["ap"] <= 1.0
