"""End to end on a tiny SynthPose: generate -> train -> evaluate -> metrics.json (what `make demo` runs)."""

import json

import pytest

from posenas_core import pipeline
from posenas_core.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    res = pipeline.run_demo(out, n_train=40, n_val=12, minutes=0.05, seed=3, epochs=2)
    return out, res


def test_demo_writes_metrics(demo):
    out, res = demo
    m = json.loads((out / "metrics.json").read_text())
    assert res["metrics"] == str(out / "metrics.json")
    for key in ("AP", "AP50", "AP75", "APm", "APl", "AR"):
        assert key in m["val"]["coco"]
    assert 0.0 <= m["AP"] <= 1.0 and m["AP"] == m["val"]["coco"]["AP"]
    assert set(m["val"]["per_joint_ap"]) >= {"Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "Total"}
    assert m["val"]["n_persons"] == m["mean_pose_baseline"]["n_persons"] > 0
    assert m["train"]["stop_reason"] in ("time_budget", "completed")
    assert (out / "run" / "checkpoints" / "last.pt").is_file()
    assert (out / "synthpose" / "synthpose.json").is_file()


def test_demo_rerun_reuses_dataset_and_resumes(demo):
    out, _ = demo
    before = (out / "synthpose" / "annotations" / "person_keypoints_train.json").stat().st_mtime_ns
    steps_before = json.loads((out / "metrics.json").read_text())["train"]["step"]
    pipeline.run_demo(out, n_train=40, n_val=12, minutes=0.05, seed=3, epochs=2)
    assert (out / "synthpose" / "annotations" / "person_keypoints_train.json").stat().st_mtime_ns == before
    assert json.loads((out / "metrics.json").read_text())["train"]["step"] >= steps_before


def test_mean_pose_baseline_scores_below_a_perfect_predictor(demo):
    out, _ = demo
    r = pipeline.mean_pose_baseline(out / "synthpose")
    assert 0.0 <= r["coco"]["AP"] < 0.9


def test_evaluate_checkpoint_reads_input_size_from_run(demo):
    out, _ = demo
    m = pipeline.evaluate_checkpoint(out / "run" / "checkpoints" / "last.pt", data_dir=out / "synthpose", flip_test=False)
    assert m["input_hw"] == [128, 96] and m["flip_test"] is False


def test_auto_epochs_need_a_budget(demo, tmp_path):
    out, _ = demo
    with pytest.raises(ConfigError, match="needs a time budget"):
        pipeline.train_on_dataset(data_dir=out / "synthpose", model="baseline-resnet", run_dir=tmp_path / "r",
                                  epochs="auto", max_minutes=None, validate=False)


def test_auto_schedule_fills_the_budget_and_resume_keeps_the_plan(demo, tmp_path, monkeypatch):
    import posenas_core.machine as machine

    out, _ = demo
    n = len(pipeline.load_split(out / "synthpose", "train", train=True).records)
    fmt = {"bf16": False, "channels_last": False, "img_per_s": 10.0, "measured": {"fp32-nchw": 10.0},
           "cpu": "test", "native_bf16": False}
    monkeypatch.setattr(machine, "resolve_auto", lambda *a, **k: dict(fmt))
    kw = dict(data_dir=out / "synthpose", model="baseline-resnet", run_dir=tmp_path / "r", input_hw=(64, 64),
              epochs="auto", max_minutes=0.1, validate=False, progress=False, batch_size=16)
    s = pipeline.train_on_dataset(**kw)
    info = json.loads((tmp_path / "r" / "pipeline.json").read_text())
    # first plan: 0.9 * 6 s * 10 img/s = 54 samples -> ceil(54 / n) epochs over all n persons
    assert (info["epochs"], info["train_persons"], info["fill_budget"]) == (-(-54 // n), n, True)
    assert info["format"] == fmt and info["recipe"] == "short-cpu"
    train_cfg = json.loads((tmp_path / "r" / "config.json").read_text())["train"]
    assert train_cfg["fill_budget"] and train_cfg["max_minutes"] == 0.1 and train_cfg["base_lr"] == 2e-3
    assert s["stop_reason"] in ("completed", "time_budget") and s["step"] >= 1
    fmt["bf16"] = True   # resuming: the format and plan chosen first stand, whatever a new measurement says
    s2 = pipeline.train_on_dataset(**kw)
    info2 = json.loads((tmp_path / "r" / "pipeline.json").read_text())
    assert info2["format"]["bf16"] is False and info2["epochs"] == info["epochs"]


def test_missing_split_names_the_file(tmp_path):
    with pytest.raises(DataError, match=r"person_keypoints_val\.json: annotation file not found"):
        pipeline.split_paths(tmp_path, "val")
    with pytest.raises(ConfigError, match="checkpoint file not found"):
        pipeline.evaluate_checkpoint(tmp_path / "x.pt", data_dir=tmp_path)


def test_heatmap_sigma_rule():
    assert pipeline.heatmap_sigma((256, 192), stride=4) == 2.0      # EvoPose2D's 2h'/64 at 64x48
    assert pipeline.heatmap_sigma((128, 96), stride=4) == 2.0       # floor of 2 heatmap px (2h'/64 would be 1)
    assert pipeline.heatmap_sigma((512, 384), stride=4) == 4.0
    assert pipeline.heatmap_sigma((128, 96), 1.5, stride=4) == 1.5


def test_aug_config_from_names_the_owner_the_unknown_fields_and_the_allowed_ones():
    from posenas_core.data.transforms import AugConfig, aug_config_from

    assert aug_config_from(None) == AugConfig() and aug_config_from({"flip_prob": 0.0}) == AugConfig(flip_prob=0.0)
    cfg = AugConfig(scale_factor=0.1)
    assert aug_config_from(cfg) is cfg
    with pytest.raises(ConfigError, match=r"^Run\.aug: unknown field\(s\) \['flip', 'rot'\]; allowed: \[.*'flip_prob'"):
        aug_config_from({"rot": 1, "flip": 0.5, "flip_prob": 0.5}, "Run.aug")
    with pytest.raises(ConfigError, match=r"^aug: AugConfig\.flip_prob = 2 is invalid"):
        aug_config_from({"flip_prob": 2})
    with pytest.raises(ConfigError, match=r"^aug = 3 is invalid; allowed: a mapping of AugConfig fields"):
        aug_config_from(3)


def test_make_dataset_aug_and_sigma(demo):
    out, _ = demo
    ps = pipeline.load_split(out / "synthpose", "val", train=False)
    ds = pipeline.make_dataset(ps, (128, 96), train=True, stride=4, sigma=3.0, aug={"rotation_prob": 0.0})
    assert ds.codec.sigma == 3.0 and ds.aug.rotation_prob == 0.0
    with pytest.raises(ConfigError, match=r"aug: unknown field\(s\) \['rot'\]"):
        pipeline.make_dataset(ps, (128, 96), train=True, stride=4, aug={"rot": 1})


def test_run_info_records_sigma(demo):
    out, _ = demo
    info = pipeline.run_info(out / "run" / "checkpoints" / "last.pt")
    assert info["sigma"] == 2.0 and info["input_hw"] == [128, 96] and info["aug"]["rotation_deg"] == 15.0  # short-cpu


def test_parse_input_size_and_quickstart_config_errors():
    assert pipeline.parse_input_size("256X192") == (256, 192)
    with pytest.raises(ConfigError, match="positive multiples of 32"):
        pipeline.parse_input_size("250x190")
    with pytest.raises(ConfigError, match="expected HxW"):
        pipeline.parse_input_size("256by192")
    with pytest.raises(ConfigError, match="quickstart parameter input_size: input size '100x1'"):
        pipeline.QuickstartConfig(input_size="100x1")
    assert pipeline.QuickstartConfig(input_size="128x96").input_hw == (128, 96)


def test_load_exported_round_trip_and_errors(tmp_path):
    import torch

    from posenas_core.errors import CheckpointError
    from posenas_core.models.registry import build_model, get_preset
    from posenas_core.pipeline import load_exported

    spec = get_preset("evopose2d-xs").spec
    model = build_model(spec).eval()
    (tmp_path / "spec.json").write_text(spec.to_json())
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    back = load_exported(tmp_path)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(back(x), model(x))
    other = build_model(get_preset("evopose2d-s").spec.replace(genotype=((3, 1, 2, 1),) + spec.genotype[1:6] +
                                                                ((3, 2, 9, 1),)))
    torch.save(other.state_dict(), tmp_path / "weights.pt")
    with pytest.raises(CheckpointError, match=r"weights.pt: parameter 'blocks\.6\.0\.project\.conv\.weight' has shape"):
        load_exported(tmp_path)
    (tmp_path / "spec.json").unlink()
    with pytest.raises(CheckpointError, match="spec.json is missing"):
        load_exported(tmp_path)


@pytest.fixture()
def tiny_data(tmp_path):
    from posenas_core.data.synthpose import write_synthpose

    write_synthpose(tmp_path / "sp", 4, 2, 0, seed=1, progress=False)
    return tmp_path / "sp"


def _tiny_spec(head_channels: int = 16) -> str:
    from posenas_core.spaces.evopose import EvoPoseSpec, genotype_from_str

    g = genotype_from_str("k3b1c1s1-k3b1c1s2-k3b1c1s2-k3b1c1s2-k3b1c1s1-k3b1c1s2-k3b1c1s1")
    return EvoPoseSpec(genotype=g, head_channels=head_channels).to_json()


def test_resume_with_another_input_size_or_model_is_refused_before_anything_is_written(tiny_data, tmp_path):
    run = tmp_path / "run"
    kw = dict(data_dir=tiny_data, model=_tiny_spec(), run_dir=run, input_hw=(64, 64), epochs=1, batch_size=2,
              validate=False, progress=False, cache_mb=0)
    pipeline.train_on_dataset(**kw)
    files = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in run.rglob("*") if p.is_file()}
    with pytest.raises(ConfigError, match=rf"cannot resume {run}: it was started with input size 64x64, not 96x64; "
                                          r"use the same values, --no-resume"):
        pipeline.train_on_dataset(**{**kw, "input_hw": (96, 64)})
    with pytest.raises(ConfigError, match=r"it was started with model .* \(spec field 'head_channels': 16, not 32\)"):
        pipeline.train_on_dataset(**{**kw, "model": _tiny_spec(32)})
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in run.rglob("*") if p.is_file()} == files
    assert json.loads((run / "pipeline.json").read_text())["input_hw"] == [64, 64]
    from posenas_core.models.registry import load_spec

    pipeline.check_run_dir(run, load_spec(_tiny_spec(32)), (96, 64), resume=False)  # starting over: anything goes


def test_training_refuses_a_missing_image_before_writing(tiny_data, tmp_path):
    ann = json.loads((tiny_data / "annotations" / "person_keypoints_val.json").read_text())
    im = ann["images"][0]
    (tiny_data / "images" / im["file_name"]).write_bytes(b"not an image")
    with pytest.raises(DataError, match=rf"person_keypoints_val.json: image id {im['id']} .*file_name "
                                        rf"'{im['file_name']}' is not an image OpenCV can read"):
        pipeline.train_on_dataset(data_dir=tiny_data, model=_tiny_spec(), run_dir=tmp_path / "run", input_hw=(64, 64),
                                  epochs=1, batch_size=2, progress=False)
    assert not (tmp_path / "run").exists()


def test_mean_pose_baseline_on_a_split_without_persons(tiny_data):
    f = tiny_data / "annotations" / "person_keypoints_val.json"
    ann = json.loads(f.read_text())
    f.write_text(json.dumps({**ann, "annotations": []}))
    with pytest.raises(DataError, match=r"person_keypoints_val.json: no persons: 2 images and 0 annotations"):
        pipeline.mean_pose_baseline(tiny_data)
