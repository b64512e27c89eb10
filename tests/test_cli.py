"""The `posenas` command line: one clear error for bad input, JSON on success."""

import json

import pytest

from posenas_core.cli import main, parse_hw


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_unknown_option_is_rejected(capsys):
    with pytest.raises(SystemExit) as e:
        main(["data", "synth", "--out", "x", "--colour", "red"])
    assert e.value.code == 2
    assert "unrecognized arguments: --colour red" in capsys.readouterr().err


def test_bad_values_name_the_option(capsys):
    with pytest.raises(SystemExit):
        main(["data", "synth", "--out", "x", "--train", "-3"])
    assert "--train" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["profile", "baseline-resnet", "--input", "256by192"])
    err = capsys.readouterr().err
    assert "--input" in err and "HxW" in err
    with pytest.raises(SystemExit):
        main(["train", "--data", "d", "--out", "o", "--aug", "rotation_deg=15"])
    err = capsys.readouterr().err
    assert "--aug" in err and "expected a JSON object" in err


def test_train_aug_field_names_are_checked(capsys, tmp_path):
    from posenas_core.data.synthpose import write_synthpose

    write_synthpose(tmp_path / "d", 2, 1, progress=False)
    code, out, err = run(capsys, "train", "--data", str(tmp_path / "d"), "--out", str(tmp_path / "r"),
                         "--epochs", "1", "--aug", '{"rotation": 15}', "--quiet")
    assert code != 0 and "aug: unknown field(s) ['rotation']" in err and "rotation_deg" in err


@pytest.mark.parametrize("text, hw", [("256x192", (256, 192)), ("128X96", (128, 96))])
def test_parse_hw(text, hw):
    assert parse_hw(text) == hw


def test_parse_hw_rejects_non_multiples_of_32():
    import argparse

    with pytest.raises(argparse.ArgumentTypeError, match="multiples of 32"):
        parse_hw("250x190")


def test_missing_config_file_is_one_line_error(capsys, tmp_path):
    code, out, err = run(capsys, "data", "synth", "--out", str(tmp_path / "d"), "--config", str(tmp_path / "nope.json"))
    assert code == 2 and out == ""
    assert err.strip() == f"posenas data: error: --config: file not found: {tmp_path / 'nope.json'}"
    assert not (tmp_path / "d").exists()


def test_eval_missing_checkpoint(capsys, tmp_path):
    code, _, err = run(capsys, "eval", str(tmp_path / "none.pt"), "--data", str(tmp_path))
    assert code == 2 and "checkpoint file not found" in err


def test_evolve_missing_data_is_one_line_error(capsys, tmp_path):
    rc = main(["evolve", "run", "--out", str(tmp_path / "run"), "--data", str(tmp_path / "nowhere"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("posenas evolve: error:") and "nowhere" in err
    assert len(err.strip().splitlines()) == 1


def test_profile_evopose_preset_prints_published_params(capsys):
    assert main(["profile", "evopose2d-s", "--no-latency"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["params"], out["params_with_bn_stats"], out["input"]) == (2_496_239, 2_531_199, "256x192")
    assert abs(out["macs"] / 1.0641e9 - 1) < 1e-3
