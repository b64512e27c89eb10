import json
import os

import pytest
import torch

from posenas_core.runs.io import append_jsonl, atomic_torch_save, atomic_write_json, read_jsonl


def test_atomic_write_json_sorted_and_no_temp_left(tmp_path):
    p = atomic_write_json(tmp_path / "a" / "b.json", {"b": 1, "a": [1, 2]})
    assert json.loads(p.read_text()) == {"a": [1, 2], "b": 1}
    assert p.read_text().index('"a"') < p.read_text().index('"b"')
    assert os.listdir(p.parent) == ["b.json"]


def test_failed_write_keeps_old_content(tmp_path):
    p = atomic_write_json(tmp_path / "c.json", {"v": 1})
    with pytest.raises(TypeError):
        atomic_write_json(p, {"v": object()})  # not serialisable: fails before the rename
    assert json.loads(p.read_text()) == {"v": 1}
    assert os.listdir(tmp_path) == ["c.json"]


def test_torch_save_round_trip(tmp_path):
    p = atomic_torch_save(tmp_path / "ck.pt", {"w": torch.arange(3), "spec": {"kind": "x"}})
    d = torch.load(p, weights_only=True)
    assert torch.equal(d["w"], torch.arange(3)) and d["spec"] == {"kind": "x"}


def test_jsonl_ignores_torn_last_line(tmp_path):
    p = tmp_path / "log.jsonl"
    append_jsonl(p, {"i": 0})
    append_jsonl(p, {"i": 1})
    with open(p, "a") as f:
        f.write('{"i": 2, "trunc')  # a kill in the middle of a write
    assert read_jsonl(p) == [{"i": 0}, {"i": 1}]
    assert read_jsonl(tmp_path / "missing.jsonl") == []


def test_jsonl_corrupt_middle_line_raises(tmp_path):
    p = tmp_path / "log.jsonl"
    p.write_text('{"i": 0}\nnot json\n{"i": 2}\n')
    with pytest.raises(json.JSONDecodeError):
        read_jsonl(p)
