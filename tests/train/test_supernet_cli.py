"""`posenas supernet train | resume | extract` on a tiny SynthPose split: a run with validation of the largest and
smallest sub-networks, its resume, a calibrated extraction that loads as a model directory, and one-line errors."""

import json

import pytest
import torch

from posenas_core.cli import main
from posenas_core.pipeline import load_exported
from posenas_core.spaces import get_space

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from posenas_core.data.synthpose import write_synthpose

    d = tmp_path_factory.mktemp("synth") / "d"
    write_synthpose(d, 16, 3, progress=False)
    return d


def test_train_resume_extract(tmp_path, data, capsys):
    rundir = tmp_path / "run"
    code, out, err = run(capsys, "supernet", "train", "--space", "vipnas-res50", "--data", data, "--out", rundir,
                         "--input", "64x64", "--epochs", "1", "--batch-size", "8", "--num-random", "1",
                         "--calib-batches", "1", "--max-val-images", "2", "--quiet")
    assert code == 0, err
    res = json.loads(out)
    assert res["stop_reason"] == "completed" and res["step"] == res["total_steps"] >= 2 and res["ranks"] == 1
    assert {"AP", "max/AP", "min/AP"} <= set(res["last_val"]) and res["last_val"]["AP"] == res["last_val"]["max/AP"]
    assert json.loads((rundir / "supernet_run.json").read_text())["input"] == [64, 64]
    assert json.loads((rundir / "config.json").read_text())["spec"]["kind"] == "supernet"

    code, out, err = run(capsys, "supernet", "resume", rundir, "--quiet")
    assert code == 0, err
    assert json.loads(out)["stop_reason"] == "already_complete"

    space = get_space("vipnas-res50")
    code, out, err = run(capsys, "supernet", "extract", rundir, "--arch", "released", "--out", tmp_path / "sub",
                         "--calib-batches", "1")
    assert code == 0, err
    info = json.loads(out)
    assert info["arch"] == space.released().to_short() and info["params"] == 7286772
    net = load_exported(tmp_path / "sub")
    assert net.spec == space.released() and not net.training
    assert float(net.stem.bn.running_var.mean()) != pytest.approx(1.0)   # recalibrated, not the init's
    assert net(torch.zeros(1, 3, 64, 64)).shape == (1, 17, 16, 16)

    arch_file = tmp_path / "arch.json"
    arch_file.write_text(space.min().to_json())
    code, out, err = run(capsys, "supernet", "extract", rundir, "--arch", arch_file, "--out", tmp_path / "sub2",
                         "--calib-batches", "1")
    assert code == 0, err and json.loads(out)["arch"] == space.min().to_short()

    # one-line errors: an arch outside the space, a spec of another space, not a supernet run, a missing GPU
    bad = space.released().to_short().replace("d4w80k3g16a1", "d4w80k7g16a1")
    code, out, err = run(capsys, "supernet", "extract", rundir, "--arch", bad, "--out", tmp_path / "x")
    assert code == 2 and "stages[0].kernel = 7 is not allowed; allowed: [3, 5]" in err
    code, out, err = run(capsys, "supernet", "extract", rundir, "--arch", get_space("vipnas-mbv3").released().to_json(),
                         "--out", tmp_path / "x")
    assert code == 2 and "holds ViPNASResSpecs, got ViPNASMbv3Spec" in err
    code, out, err = run(capsys, "supernet", "extract", tmp_path, "--arch", "max", "--out", tmp_path / "x")
    assert code == 2 and "is not a supernet run" in err
    if not torch.cuda.is_available():
        code, out, err = run(capsys, "supernet", "train", "--space", "vipnas-mbv3", "--data", data, "--out",
                             tmp_path / "gpu", "--device", "cuda")
        assert code == 2 and "CUDA is not available" in err and not (tmp_path / "gpu").exists()
