"""An unreadable or foreign checkpoint gives one line naming the file, never torch's advice to retry with
weights_only=False (load_checkpoint, the trainer's resume, `posenas eval`, pipeline.load_exported)."""

from __future__ import annotations

import collections

import pytest
import torch

from posenas_core.cli import main
from posenas_core.errors import CheckpointError
from posenas_core.train.checkpoints import load_checkpoint


class Foreign:
    """Any class: unpickling it needs weights_only=False (it could run code), so it is refused."""


def write(kind: str, path):
    if kind == "garbage":
        path.write_bytes(bytes(range(256)) * 4)
    elif kind == "truncated":
        torch.save({"spec": {}, "model": {"w": torch.zeros(64)}}, path)
        path.write_bytes(path.read_bytes()[:300])
    elif kind == "pickle_object":
        torch.save({"spec": {}, "model": Foreign()}, path)
    elif kind == "state_dict":
        torch.save(collections.OrderedDict(w=torch.zeros(2)), path)
    elif kind == "tensor":
        torch.save(torch.zeros(2), path)
    return path


CASES = {
    "garbage": "not a torch file",
    "truncated": "not a readable torch file",
    "pickle_object": "holds a Python object (test_checkpoint_load.Foreign) beyond tensors and plain values",
    "state_dict": "is a dict with keys ['w'], not a PoseNAS checkpoint",
    "tensor": "is Tensor, not a PoseNAS checkpoint",
}


@pytest.mark.parametrize("kind", sorted(CASES))
def test_load_checkpoint_names_the_file_in_one_line(tmp_path, kind):
    p = write(kind, tmp_path / f"{kind}.pt")
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(p)
    msg = str(e.value)
    assert str(p) in msg and CASES[kind].split("(test_")[0] in msg
    assert len(msg.splitlines()) == 1
    assert "weights_only" not in msg and "trust" not in msg


def test_posenas_eval_of_a_foreign_checkpoint_is_one_line(tmp_path, capsys):
    p = write("pickle_object", tmp_path / "other.pt")
    assert main(["eval", str(p), "--data", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.strip()
    assert err.startswith(f"posenas eval: error: checkpoint {p}: it holds a Python object")
    assert len(err.splitlines()) == 1 and "weights_only" not in err


def test_load_exported_with_unreadable_weights(tmp_path):
    from posenas_core.models.registry import get_preset
    from posenas_core.pipeline import load_exported

    (tmp_path / "spec.json").write_text(get_preset("evopose2d-xs").spec.to_json())
    write("garbage", tmp_path / "weights.pt")
    with pytest.raises(CheckpointError) as e:
        load_exported(tmp_path)
    msg = str(e.value)
    assert msg.startswith(f"weights file {tmp_path / 'weights.pt'}: not a torch file")
    assert len(msg.splitlines()) == 1 and "weights_only" not in msg
    write("tensor", tmp_path / "weights.pt")
    with pytest.raises(CheckpointError, match="holds a Tensor, not a state dict"):
        load_exported(tmp_path)
