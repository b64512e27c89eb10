"""Atomic file writes: write to a temporary file in the same directory, fsync, then rename.

A reader (or a process killed mid-write) never sees a half-written file: either the old
content or the new one. The file gets the mode `open()` would give a new one (0o666 less the
umask: 0o644 with the usual umask 022, group-writable with 002), not the temporary file's 0o600,
so that a run's outputs are readable by the people it is shared with.

`read_torch_file` is the one way checkpoints and weights are read: `torch.load(weights_only=True)`,
every failure a one-line CheckpointError naming the file.

JSON lines: `append_jsonl` writes one record per line; `parse_jsonl` is the one parser, used by
`read_jsonl` (a whole file; a torn last line dropped, optionally repaired) and `JsonlTail` (a growing
file, read incrementally by a monitor).
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from posenas_core.errors import CheckpointError

__all__ = [
    "new_file_mode", "atomic_write_bytes", "atomic_write_text", "atomic_write_json", "atomic_torch_save",
    "read_torch_file", "append_jsonl", "parse_jsonl", "read_jsonl", "JsonlTail",
]


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


def parse_jsonl(data: bytes, first_line: int = 1) -> tuple[list[dict], list[tuple[int, str]]]:
    """The JSON-lines parser: complete lines (`data` ends with a newline, or is empty) -> (JSON objects,
    bad lines [(line number, why)]), lines numbered from `first_line`. Blank lines are skipped; a line that
    is not JSON or not a JSON object is a bad line."""
    records, bad = [], []
    for n, raw in enumerate(data.split(b"\n")[:-1], start=first_line):
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            bad.append((n, f"not valid JSON ({e})"))
            continue
        if not isinstance(rec, dict):
            bad.append((n, f"a JSON {type(rec).__name__}, not an object"))
            continue
        records.append(rec)
    return records, bad


def read_jsonl(path: str | os.PathLike, *, repair: bool = False) -> list[dict]:
    """The records of an append-only JSON-lines file ([] when it does not exist).

    A bad last line is a torn write (a kill during `append_jsonl`) and is dropped; a last line without
    its newline is kept when it is a JSON object. Any other bad line raises json.JSONDecodeError naming
    the file and the line. repair=True also rewrites the file (atomically) as exactly the records read,
    one per line, so that the next append starts on a fresh line."""
    path = Path(path)
    if not path.exists():
        return []
    raw = path.read_bytes()
    data = raw if raw.endswith(b"\n") or not raw else raw + b"\n"   # the last line is judged like the others
    records, bad = parse_jsonl(data)
    last = data.count(b"\n")
    for n, why in bad:
        if n != last:
            text = data.decode("utf-8", "replace")
            pos = sum(len(line) + 1 for line in text.split("\n")[:n - 1])
            raise json.JSONDecodeError(f"{path}: line {n} is {why}; only a torn last line is dropped", text, pos)
    if repair:
        canonical = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records).encode("utf-8")
        if raw != canonical:
            atomic_write_bytes(path, canonical)
    return records


class JsonlTail:
    """Incremental reader of a growing JSON-lines file: `poll()` reads only the bytes appended since the last one.

    `.records` holds every record read so far; `poll()` returns (new records, reset), reset True when the
    file was replaced (new inode), truncated or deleted and `.records` started over. A last line without
    its newline is a write in progress and waits for the next poll. Bad lines (`parse_jsonl`) are
    skipped; those of the latest poll are in `.bad_lines` [(line number, why)]. `.mtime` is the file's
    modification time at the latest poll (None while it does not exist)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.offset = 0
        self.ident: tuple[int, int] | None = None
        self.records: list[dict] = []
        self.lines_read = 0
        self.bad_lines: list[tuple[int, str]] = []
        self.mtime: float | None = None

    def _reset(self) -> None:
        self.offset, self.lines_read, self.records = 0, 0, []

    @property
    def exists(self) -> bool:
        return self.ident is not None

    def poll(self) -> tuple[list[dict], bool]:
        self.bad_lines = []
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            reset = self.ident is not None
            self.ident, self.mtime = None, None
            self._reset()
            return [], reset
        ident = (st.st_dev, st.st_ino)
        reset = False
        if ident != self.ident or st.st_size < self.offset:
            reset = self.ident is not None
            self._reset()
            self.ident = ident
        self.mtime = st.st_mtime
        if st.st_size <= self.offset:
            return [], reset
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read(st.st_size - self.offset)
        end = data.rfind(b"\n") + 1
        if end == 0:  # only a line in progress
            return [], reset
        self.offset += end
        new, self.bad_lines = parse_jsonl(data[:end], first_line=self.lines_read + 1)
        self.lines_read += data.count(b"\n", 0, end)
        self.records.extend(new)
        return new, reset
