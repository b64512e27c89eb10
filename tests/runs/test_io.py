import json
import os

import pytest
import torch

from posenas_core.runs.io import JsonlTail, append_jsonl, atomic_torch_save, atomic_write_json, read_jsonl


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


def test_jsonl_tail_unit(tmp_path):
    p = tmp_path / "m.jsonl"
    t = JsonlTail(p)
    assert t.poll() == ([], False) and not t.exists
    p.write_text('{"a": 1}\n[1, 2]\n{"b"')
    new, reset = t.poll()
    assert new == [{"a": 1}] and not reset and t.bad_lines[0][0] == 2
    with open(p, "a") as f:
        f.write(': 2}\n')
    assert t.poll()[0] == [{"b": 2}] and t.records == [{"a": 1}, {"b": 2}]


def test_jsonl_tail_restarts_on_a_replaced_or_truncated_file_and_numbers_lines_across_polls(tmp_path):
    p = tmp_path / "m.jsonl"
    p.write_text('{"a": 1}\n\n')
    t = JsonlTail(p)
    assert t.poll() == ([{"a": 1}], False) and t.lines_read == 2
    with open(p, "a") as f:
        f.write('oops\n{"b": 2}\n')
    assert t.poll() == ([{"b": 2}], False) and t.bad_lines == [(3, t.bad_lines[0][1])]
    assert t.bad_lines[0][1].startswith("not valid JSON")
    assert t.poll() == ([], False) and t.bad_lines == []
    p.write_text('{"c": 3}\n')                      # shorter than what was read: read again from the start
    assert t.poll() == ([{"c": 3}], True) and t.records == [{"c": 3}]
    p.unlink()
    assert t.poll() == ([], True) and not t.exists and t.records == []


def test_read_jsonl_and_jsonl_tail_agree_on_the_same_file(tmp_path):
    p = tmp_path / "log.jsonl"
    for i in range(3):
        append_jsonl(p, {"i": i})
    t = JsonlTail(p)
    assert t.poll()[0] == read_jsonl(p) == [{"i": 0}, {"i": 1}, {"i": 2}]


def test_jsonl_last_line_without_newline_is_kept_when_complete_and_dropped_when_torn(tmp_path):
    p = tmp_path / "log.jsonl"
    p.write_text('{"i": 0}\n{"i": 1}')
    assert read_jsonl(p) == [{"i": 0}, {"i": 1}]
    p.write_text('{"i": 0}\n[1, 2]\n')            # a bad last line, even with its newline, is a torn write
    assert read_jsonl(p) == [{"i": 0}]


def test_jsonl_error_names_the_file_and_the_line(tmp_path):
    p = tmp_path / "log.jsonl"
    p.write_text('{"i": 0}\n[1, 2]\n{"i": 2}\n')
    with pytest.raises(json.JSONDecodeError, match=r"log\.jsonl: line 2 is a JSON list, not an object.*line 2 col"):
        read_jsonl(p)


def test_read_jsonl_repair_rewrites_a_torn_file_so_the_next_append_starts_a_line(tmp_path):
    p = tmp_path / "archive.jsonl"
    append_jsonl(p, {"i": 0})
    with open(p, "a") as f:
        f.write('{"i": 1, "tr')
    assert read_jsonl(p) == [{"i": 0}] and p.read_text().endswith('"tr')          # a plain read changes nothing
    assert read_jsonl(p, repair=True) == [{"i": 0}] and p.read_text() == '{"i": 0}\n'
    append_jsonl(p, {"i": 1})
    assert read_jsonl(p) == [{"i": 0}, {"i": 1}]
    mtime = p.stat().st_mtime_ns
    assert read_jsonl(p, repair=True) == [{"i": 0}, {"i": 1}] and p.stat().st_mtime_ns == mtime   # intact: untouched


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_atomic_writes_get_the_mode_open_would_give(tmp_path, umask, mode):
    import os
    import stat
    import tempfile

    from posenas_core.runs.io import atomic_torch_save, atomic_write_text, new_file_mode

    old = os.umask(umask)
    try:
        fd, tmp = tempfile.mkstemp(dir=tmp_path)  # the cause: mkstemp makes 0o600 files whatever the umask
        os.close(fd)
        assert stat.S_IMODE(os.stat(tmp).st_mode) == 0o600
        assert new_file_mode() == mode
        for path in (atomic_write_text(tmp_path / "a.json", "{}"), atomic_torch_save(tmp_path / "w.pt", {"x": 1})):
            assert stat.S_IMODE(path.stat().st_mode) == mode, path
    finally:
        os.umask(old)


def test_gitignore_ignores_notebook_checkpoints():
    from pathlib import Path

    lines = (Path(__file__).resolve().parents[2] / ".gitignore").read_text().split()
    assert ".ipynb_checkpoints/" in lines


@pytest.mark.parametrize("content, needle", [
    (b"\x00garbage bytes, not a torch file", "not a torch file"),
    (b"", "not a readable torch file (EOFError)"),
])
def test_read_torch_file_errors_are_one_line(tmp_path, content, needle):
    from posenas_core.errors import CheckpointError
    from posenas_core.runs.io import read_torch_file

    p = tmp_path / "bad.pt"
    p.write_bytes(content)
    with pytest.raises(CheckpointError) as e:
        read_torch_file(p, what="weights file")
    msg = str(e.value)
    assert msg.startswith(f"weights file {p}: ") and needle in msg
    assert len(msg.splitlines()) == 1 and "weights_only" not in msg
    with pytest.raises(CheckpointError, match="weights file not found: "):
        read_torch_file(tmp_path / "none.pt", what="weights file")
