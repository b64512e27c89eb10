"""ONNX export (deploy.onnx_export, deploy.sources, `posenas export`): ONNX Runtime equals eager PyTorch for
every registered model family, the spec read back from the file, every kind of source, one clear error each."""

import json

import onnx
import pytest
import torch
from onnx import TensorProto, helper
from torch import nn

from posenas_core.cli import main
from posenas_core.deploy.onnx_export import (PARITY_ATOL, export_onnx, onnx_parity, onnx_spec, ort_session,
                                             read_onnx_metadata)
from posenas_core.deploy.sources import load_source
from posenas_core.deploy.onnx_export import parity_model
from posenas_core.errors import CheckpointError, ConfigError
from posenas_core.genotype import registered_kinds
from posenas_core.models.registry import PRESETS, build_model
from posenas_core.spaces.supernet import SupernetSpec

HW = (64, 64)
CASES = {"baseline": "baseline-resnet-skip", "evopose2d": "evopose2d-xs", "vipnas-res": "s-vipnas-res50",
         "vipnas-mbv3": "s-vipnas-mbv3"}            # spec kind -> the preset exported for it


def nontrivial(model: nn.Module, seed: int = 0) -> nn.Module:
    return parity_model(model, seed, HW)


def test_every_exportable_family_has_a_case():
    families = {kind for kind, cls in registered_kinds().items()       # the library's (tests register toy kinds)
                if cls is not SupernetSpec and cls.__module__.startswith("posenas_core.")}
    assert families == set(CASES), "a model family without an export case (add one to CASES)"
    for kind, preset in CASES.items():
        assert PRESETS[preset].spec.KIND == kind


@pytest.fixture(scope="module", params=sorted(CASES))
def exported(request, tmp_path_factory):
    spec = PRESETS[CASES[request.param]].spec
    model = nontrivial(build_model(spec, generator=torch.Generator().manual_seed(0)))
    path = tmp_path_factory.mktemp(request.param) / "net.onnx"
    export_onnx(model, path, HW, metadata={"note": "test"})
    return model, spec, path


def test_ort_equals_eager_at_batch_1_and_3(exported):
    model, spec, path = exported
    session = ort_session(path, threads=1)
    for batch in (1, 3):
        x = torch.randn(batch, 3, *HW, generator=torch.Generator().manual_seed(batch))
        got = torch.from_numpy(session.run(["heatmaps"], {"images": x.numpy()})[0])
        with torch.no_grad():
            want = model(x)
        s = spec.output_stride
        assert got.shape == want.shape == (batch, spec.num_joints, HW[0] // s, HW[1] // s)
        assert want.std() > 1e-3                      # a constant output would prove nothing
        assert (got - want).abs().max() <= PARITY_ATOL
    assert onnx_parity(model, path, HW, batch=3) <= PARITY_ATOL      # batch 3 again: eager reuses its kernels


def test_the_file_holds_its_spec_and_its_weights(exported):
    _, spec, path = exported
    assert onnx_spec(path) == spec
    meta = read_onnx_metadata(path)
    assert meta["posenas.input_hw"] == "64x64" and meta["posenas.output_stride"] == str(spec.output_stride)
    assert meta["posenas.format"] == "1" and meta["note"] == "test"
    assert [p.name for p in path.parent.iterdir()] == ["net.onnx"]     # no external data file
    inp, = ort_session(path).get_inputs()
    assert inp.name == "images" and isinstance(inp.shape[0], str) and inp.shape[1:] == [3, *HW]


# --- sources -------------------------------------------------------------------------------------------

SPEC = PRESETS["baseline-resnet"].spec           # the quickest to build and to export


def trained_state(spec=SPEC, seed=1) -> dict:
    return build_model(spec, generator=torch.Generator().manual_seed(seed)).state_dict()


def save_checkpoint(path, spec=SPEC, state=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": 1, "spec": spec.to_dict(), "model": trained_state(spec) if state is None else state},
               path)
    return path


def same_weights(model, state) -> bool:
    return all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


def test_preset_and_spec_sources_give_the_same_spec_and_initial_weights(tmp_path):
    f = tmp_path / "spec.json"
    f.write_text(SPEC.to_json())
    m0, spec0, info0 = load_source("baseline-resnet")
    assert spec0 == SPEC and info0["source_kind"] == "preset" and info0["input_hw"] == (256, 192)
    assert info0["weights"] == "initial" and not m0.training
    for source in (f, SPEC.to_json(), SPEC):
        m, spec, info = load_source(source)
        assert spec == SPEC and info["source_kind"] == "spec" and info["input_hw"] is None
        assert same_weights(m, m0.state_dict())     # seeded initial weights: the same network each time


def test_checkpoint_run_and_model_dir_sources_give_the_trained_weights(tmp_path):
    run = tmp_path / "run"
    save_checkpoint(run / "checkpoints" / "last.pt", state=trained_state(seed=2))
    best = save_checkpoint(run / "checkpoints" / "best.pt", state=trained_state(seed=1))
    (run / "pipeline.json").write_text(json.dumps({"input_hw": [128, 96]}))
    mdir = tmp_path / "best"
    mdir.mkdir()
    (mdir / "spec.json").write_text(SPEC.to_json())
    torch.save(trained_state(seed=1), mdir / "weights.pt")
    (mdir / "metrics.json").write_text(json.dumps({"input_size": [192, 160]}))
    for source, kind, hw in ((best, "checkpoint", (128, 96)), (run, "run", (128, 96)), (mdir, "model_dir", (192, 160))):
        model, spec, info = load_source(source)
        assert (spec, info["source_kind"], info["input_hw"], info["weights"]) == (SPEC, kind, hw, "trained")
        assert same_weights(model, trained_state(seed=1)) and not model.training
    assert load_source(run, input_hw=(64, 32))[2]["input_hw"] == (64, 32)


# --- one clear error each ---------------------------------------------------------------------------------

def foreign_onnx(path):
    """A valid ONNX file that no PoseNAS export wrote (one Relu, no metadata)."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    onnx.save(helper.make_model(graph), str(path))
    return path


def test_input_size_not_a_multiple_of_the_stride(tmp_path):
    model = build_model(SPEC)
    with pytest.raises(ConfigError, match=r"250x192 must be a multiple of the network stride 32.*256x192"):
        export_onnx(model, tmp_path / "x.onnx", (250, 192))
    with pytest.raises(ConfigError, match="stride 32"):
        load_source("baseline-resnet", input_hw=(250, 192))
    assert not list(tmp_path.iterdir())


def test_a_supernet_is_refused_pointing_to_extract(tmp_path):
    sn = SupernetSpec(space="vipnas-mbv3")
    f = tmp_path / "sn.json"
    f.write_text(sn.to_json())
    ckpt = tmp_path / "sn.pt"
    torch.save({"spec": sn.to_dict(), "model": {}}, ckpt)
    for source in (sn, f, ckpt):
        with pytest.raises(ConfigError, match="posenas supernet extract"):
            load_source(source)
    with pytest.raises(ConfigError, match="posenas supernet extract"):
        export_onnx(nn.Identity(), tmp_path / "x.onnx", HW, spec=sn)


def test_onnx_files_are_not_sources_and_foreign_ones_have_no_spec(tmp_path):
    other = foreign_onnx(tmp_path / "other.onnx")
    with pytest.raises(ConfigError, match=r"other\.onnx is an ONNX file; an ONNX file cannot be a source"):
        load_source(other)
    with pytest.raises(CheckpointError, match=r"other\.onnx is an ONNX file from another model.*no posenas\.spec"):
        onnx_spec(other)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\xff\xfe not protobuf" * 20)
    with pytest.raises(CheckpointError, match=r"garbage\.onnx is not an ONNX file"):
        onnx_spec(garbage)


def test_weights_that_do_not_fit_the_spec(tmp_path):
    wrong = trained_state(PRESETS["baseline-resnet18"].spec)
    ckpt = save_checkpoint(tmp_path / "c.pt", state=wrong)
    with pytest.raises(CheckpointError, match=r"c\.pt"):
        load_source(ckpt)
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "spec.json").write_text(SPEC.to_json())
    torch.save(wrong, tmp_path / "m" / "weights.pt")
    with pytest.raises(CheckpointError, match="weights.pt"):
        load_source(tmp_path / "m")


def test_bad_runtime_options():
    with pytest.raises(ConfigError, match="allowed: \\['disable', 'basic', 'extended', 'all'\\]"):
        ort_session("x.onnx", optimization="max")
    with pytest.raises(ConfigError, match="opset 12 is not supported; allowed: 18..23"):
        export_onnx(build_model(SPEC), "x.onnx", HW, opset=12)


# --- posenas export ---------------------------------------------------------------------------------------

def test_posenas_export_writes_a_checked_file(tmp_path, capsys):
    out = tmp_path / "f.onnx"
    assert main(["export", "baseline-resnet", "--input", "64x64", "--out", str(out)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["parity_max_abs_diff"] <= PARITY_ATOL and result["input"] == "64x64"
    assert result["bytes"] == out.stat().st_size and result["out"] == str(out)
    assert json.loads(result["spec"]) == SPEC.to_dict() and result["weights"] == "initial"
    meta = read_onnx_metadata(out)
    assert onnx_spec(out) == SPEC and meta["posenas.weights"] == "initial"
    with pytest.raises(ConfigError, match=r"f\.onnx is an ONNX file \(it holds the spec \{\"backbone\": \"resnet\""):
        load_source(out)
    assert main(["export", str(out), "--out", str(tmp_path / "g.onnx")]) == 2
    assert "an ONNX file cannot be a source" in capsys.readouterr().err


def test_posenas_export_bad_input_exits_2(tmp_path, capsys):
    out = tmp_path / "f.onnx"
    assert main(["export", "baseline-resnet", "--input", "250x192", "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "multiple of the network stride 32" in captured.err
    assert len(captured.err.strip().splitlines()) == 1 and not out.exists()


def test_an_onnx_file_where_a_spec_is_expected_is_named(tmp_path):
    from posenas_core.errors import SpecError
    from posenas_core.models.registry import load_spec

    f = tmp_path / "model.onnx"
    f.write_bytes(b"\x08\x07\x12\x00binary")
    with pytest.raises(SpecError, match=r"model.onnx is an ONNX file, not a spec: .*onnx_spec reads it"):
        load_spec(f)
