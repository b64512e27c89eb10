"""Atomic file writes: write to a temporary file in the same directory, fsync, then rename.

A reader (or a process killed mid-write) never sees a half-written file: either the old
content or the new one. The file gets the mode `open()` would give a new one (0o666 less the
umask: 0o644 with the usual umask 022, group-writable with 002), not the temporary file's 0o600,
so that a run's outputs are readable by the people it is shared with.

`read_torch_file` is the one way checkpoints and weights are read: `torch.load(weights_only=True)`,
every failure a one-line CheckpointError naming the file.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from posenas_core.errors import CheckpointError


def new_file_mode() -> int:
    """0o666 less this process's umask: the mode `open()` gives a new file (mkstemp's is 0o600)."""
    try:  # Linux: read it without changing it (os.umask would race with other threads)
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` atomically; create parent directories. Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, new_file_mode())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> Path:
    """JSON with sorted keys so the same object always gives the same bytes."""
    return atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=True) + "\n")


def atomic_torch_save(path: str | os.PathLike, obj: Any) -> Path:
    """`torch.save` to memory, then an atomic write (checkpoints are never half-written)."""
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return atomic_write_bytes(path, buf.getvalue())


def read_torch_file(path: str | os.PathLike, *, what: str = "checkpoint", map_location: Any = "cpu") -> Any:
    """`torch.load(path, weights_only=True)`; CheckpointError in one line naming the file when it is missing,
    not a torch file, or holds Python objects beyond tensors and plain values (never unpickled: a file from
    someone else could run code). torch's own advice (retry with weights_only=False) is not passed on."""
    import pickle
    import re
    import warnings

    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} not found: {path}")
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4 ... weights_only Unpickler ..."
            warnings.simplefilter("ignore")
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"GLOBAL (\S+) was not an allowed global", str(e))
        why = (f"it holds a Python object ({found.group(1)}) beyond tensors and plain values, which is not loaded"
               if found else "not a torch file, or a pickle that only loads by running code, which is refused")
    except Exception as e:  # not a zip / a zip that is not torch's / a truncated file, ...
        first = str(e).splitlines()[0] if str(e) else ""
        first = first if len(first) <= 100 else first.split(". ")[0]  # miniz adds a paragraph of advice
        why = f"not a readable torch file ({type(e).__name__}{': ' + first if first else ''})"
    raise CheckpointError(f"{what} {path}: {why}; expected a file PoseNAS wrote (torch.save of tensors and "
                          f"plain values)")


def append_jsonl(path: str | os.PathLike, record: dict, *, fsync: bool = True) -> None:
    """Append one JSON line and fsync: an append-only archive that survives a kill.

    A kill during the write can leave a truncated last line; `read_jsonl` drops it. fsync=False for
    logs that a resume rebuilds anyway (training metrics): a few ms saved per line.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record, sort_keys=True) + "\n"
    with open(path, "a", encoding="utf-8") as f:
        f.write(line)
        if fsync:
            f.flush()
            os.fsync(f.fileno())


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Read an append-only JSON-lines archive, ignoring a truncated final line."""
    path = Path(path)
    if not path.exists():
        return []
    out = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:  # torn last write from a kill: drop it
                break
            raise
    return out
