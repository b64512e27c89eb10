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


# ------------------------------------------------------------------------- failures that say so

FIXTURE_NB = __import__("pathlib").Path(__file__).parent / "runs" / "fixtures" / "compute.ipynb"


def _posenas(*argv, cwd=None):
    import os
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "posenas_core.cli", *map(str, argv)], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=300)


def test_run_exits_nonzero_when_the_notebook_fails_and_the_kernel_does_not_warn(tmp_path):
    out = tmp_path / "run"
    p = _posenas("run", FIXTURE_NB, "-p", "a", "7", "-p", "fail", "true", "--out", out, "--no-html")
    assert p.returncode == 1, p.stderr
    assert json.loads(p.stdout)["status"] == "failed"
    assert f"posenas run: the notebook failed: ValueError: boom a=7 (cell 2, In [3]); see {out}" in p.stderr
    assert json.loads((out / "run.json").read_text())["status"] == "failed"
    assert "without encryption" not in p.stderr and "TCP" not in p.stderr  # ipykernel's warning at each start


def test_batch_exits_nonzero_when_a_run_failed(tmp_path, capsys, monkeypatch):
    """run_batch goes on after a failed run (tests/runs/test_batch.py); the command then exits 1, naming it."""
    from posenas_core.runs import batch
    from posenas_core.runs.notebooks import RunRecord

    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(f"name: s\nnotebook: {FIXTURE_NB}\nruns:\n  - {{id: bad, params: {{fail: true}}}}\n"
                     f"  - {{id: good, params: {{a: 3}}}}\n")

    def fake_run_batch(sw, reports_root, **kw):
        rec = dict(notebook=str(FIXTURE_NB), params={}, started="", finished="", duration_s=1.0, metrics={}, files=[])
        res = batch.BatchResult(sw.name, reports_root / sw.name, ran=["bad", "good"])
        res.records = {"bad": RunRecord(status="failed", error={"ename": "ValueError", "evalue": "boom a=2",
                                                                "cell_index": 2, "exec_count": 3}, **rec),
                       "good": RunRecord(status="ok", error=None, **rec)}
        res.index_html = reports_root / sw.name / "index.html"
        return res

    monkeypatch.setattr(batch, "run_batch", fake_run_batch)
    code, out, err = run(capsys, "batch", str(sweep), "--reports", str(tmp_path / "reports"))
    assert code == 1
    assert json.loads(out)["failed"] == 1 and json.loads(out)["ran"] == 2
    assert err.startswith("posenas batch: 1 of 2 runs failed: bad (ValueError: boom a=2")
    assert str(tmp_path / "reports" / "s" / "index.html") in err


def _subcommands(parser, path=()):
    import argparse

    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _subcommands(sub, path + (name,))


def test_every_option_of_every_subcommand_has_help():
    import argparse

    from posenas_core.cli import build_parser

    missing = [" ".join(path + (a.option_strings[0] if a.option_strings else a.dest,))
               for path, parser in _subcommands(build_parser()) for a in parser._actions
               if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction))
               and not (a.help or "").strip()]
    assert missing == []


def test_help_does_not_import_the_heavy_modules():
    import subprocess
    import sys

    code = ("import sys\nfrom posenas_core.cli import main\n"
            "for argv in (['--help'], ['train', '--help'], ['evolve', 'run', '--help'], ['batch', '--help']):\n"
            "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
            "print([m for m in ('torch', 'pandas', 'cv2', 'papermill', 'posenas_core.pipeline') if m in sys.modules],"
            " file=sys.stderr)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stderr.strip().splitlines()[-1] == "[]"
    assert "posenas train" in p.stdout


def test_a_mistyped_preset_gets_a_did_you_mean(capsys, tmp_path):
    code, out, err = run(capsys, "profile", "baseline-resnt", "--no-latency")
    assert code == 2 and out == ""
    assert "'baseline-resnt' is neither a model preset (did you mean 'baseline-resnet'" in err
    code, _, err = run(capsys, "train", "--data", str(tmp_path / "d"), "--out", str(tmp_path / "r"),
                       "--model", "evopose2d-sm")
    assert code == 2 and "did you mean 'evopose2d-s'" in err and "known presets" in err
    assert not (tmp_path / "r").exists()
    from posenas_core.errors import ConfigError
    from posenas_core.models.registry import get_preset

    with pytest.raises(ConfigError, match=r"unknown model preset 'baseline-mbv4' \(did you mean 'baseline-mbv3'\?\)"):
        get_preset("baseline-mbv4")
    with pytest.raises(ConfigError, match=r"unknown model preset 'xyz'; known presets"):
        get_preset("xyz")


def test_train_with_a_missing_image_writes_nothing(capsys, tmp_path):
    from posenas_core.data.synthpose import write_synthpose

    write_synthpose(tmp_path / "d", 2, 1, progress=False)
    ann = json.loads((tmp_path / "d" / "annotations" / "person_keypoints_train.json").read_text())
    im = ann["images"][-1]
    aid = min(a["id"] for a in ann["annotations"] if a["image_id"] == im["id"])
    (tmp_path / "d" / "images" / im["file_name"]).unlink()
    code, out, err = run(capsys, "train", "--data", str(tmp_path / "d"), "--out", str(tmp_path / "r"),
                         "--epochs", "1", "--quiet")
    assert code == 2 and out == ""
    assert err.startswith(f"posenas train: error: person_keypoints_train.json: image id {im['id']} "
                          f"(annotation id {aid}) file_name {im['file_name']!r} not found at ")
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()
