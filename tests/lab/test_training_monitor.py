"""TrainingMonitor on a run directory filled by hand, line by line (as the trainer writes it)."""

import json
import os
import time

import pytest

from posenas_core.runs.io import append_jsonl, atomic_write_json, atomic_write_text

from lab import TrainingMonitor
from lab.training_monitor import run_status

SPE = 4  # steps per epoch of the fake run


def step_line(step, epoch, loss=None):
    return {"step": step, "epoch": epoch, "loss": loss if loss is not None else 1.0 / step, "lr": 1e-3 * step / 8,
            "img_per_s": 50.0 + step, "time": 2.0 * step, "wall": 1e9 + step}


def val_line(epoch, ap, nested=False):
    val = {"coco": {"AP": ap, "AR": ap + 0.1}} if nested else {"AP": ap, "AP50": ap + 0.2}
    return {"epoch": epoch, "step": epoch * SPE, "val": val, "time": 2.0 * epoch * SPE + 1, "wall": 1e9}


def lens(mon):
    return [len(t.x) for t in mon.figure.data]


@pytest.fixture
def run_dir(tmp_path):
    d = tmp_path / "run"
    d.mkdir()
    return d


def test_waiting_then_curves_grow(run_dir):
    mon = TrainingMonitor(run_dir, autostart=False)
    assert "waiting for" in mon.status.value and lens(mon) == [0, 0, 0, 0]
    assert mon.summary["state"] == "waiting" and not mon.running

    atomic_write_json(run_dir / "config.json", {"train": {"epochs": 2, "batch_size": 8, "base_lr": 0.001},
                                                "spec": {"kind": "toy", "width": 16}})
    for s in (1, 2):
        append_jsonl(run_dir / "metrics.jsonl", step_line(s, 0))
    mon.refresh()
    assert lens(mon) == [2, 0, 2, 0]
    assert list(mon.figure.data[0].x) == [1, 2] and list(mon.figure.data[0].y) == [1.0, 0.5]
    assert list(mon.figure.data[2].y) == pytest.approx([1e-3 / 8, 2e-3 / 8])
    assert "running" in mon.status.value and "step 2" in mon.status.value and "epoch 1 / 2" in mon.status.value
    assert "batch_size" in mon.config.value and "width" in mon.config.value

    for s in (3, 4):
        append_jsonl(run_dir / "metrics.jsonl", step_line(s, 0))
    append_jsonl(run_dir / "metrics.jsonl", val_line(1, 0.25))
    append_jsonl(run_dir / "metrics.jsonl", step_line(5, 1))
    mon.refresh()
    assert lens(mon) == [5, 0, 5, 1]
    assert list(mon.figure.data[3].x) == [1] and list(mon.figure.data[3].y) == [0.25]
    assert mon.summary["steps_per_epoch"] == SPE and mon.summary["total_steps"] == 2 * SPE
    assert "step 5 / 8" in mon.status.value and "best AP 0.250" in mon.status.value
    assert mon.progress.value == 5 and mon.progress.max == 8
    assert len(mon.df) == 6 and list(mon.df["kind"]).count("val") == 1

    for s in (6, 7, 8):
        append_jsonl(run_dir / "metrics.jsonl", step_line(s, 1))
    append_jsonl(run_dir / "metrics.jsonl", val_line(2, 0.4, nested=True))
    mon.refresh()
    assert lens(mon) == [8, 0, 8, 2] and list(mon.figure.data[3].y) == [0.25, 0.4]
    assert mon.summary["state"] == "finished" and "finished" in mon.status.value and "epoch 2 / 2" in mon.status.value
    assert mon.errors.errors == []


def test_reads_only_new_bytes_and_waits_for_torn_line(run_dir):
    path = run_dir / "metrics.jsonl"
    append_jsonl(path, step_line(1, 0))
    mon = TrainingMonitor(run_dir, autostart=False)
    assert lens(mon)[0] == 1
    offset = mon.tail.offset
    assert offset == path.stat().st_size

    full = json.dumps(step_line(2, 0), sort_keys=True) + "\n"
    with open(path, "a") as f:  # a write in progress: half a line, no newline
        f.write(full[:20])
    mon.refresh()
    assert lens(mon)[0] == 1 and mon.tail.offset == offset and mon.errors.errors == []
    with open(path, "a") as f:
        f.write(full[20:])
    mon.refresh()
    assert lens(mon)[0] == 2 and list(mon.figure.data[0].x) == [1, 2]
    assert mon.tail.offset == path.stat().st_size


def test_replaced_file_starts_over(run_dir):
    """The trainer rewrites metrics.jsonl atomically (new file) when it starts or resumes."""
    path = run_dir / "metrics.jsonl"
    for s in (1, 2, 3):
        append_jsonl(path, step_line(s, 0))
    mon = TrainingMonitor(run_dir, autostart=False)
    assert lens(mon)[0] == 3
    atomic_write_text(path, json.dumps(step_line(1, 0), sort_keys=True) + "\n")  # resume kept only step 1
    mon.refresh()
    assert lens(mon)[0] == 1 and len(mon.records) == 1
    atomic_write_text(path, "")  # a fresh start
    mon.refresh()
    assert lens(mon)[0] == 0
    os.unlink(path)
    mon.refresh()
    assert "waiting for" in mon.status.value


def test_bad_line_is_reported_once_and_skipped(run_dir):
    path = run_dir / "metrics.jsonl"
    append_jsonl(path, step_line(1, 0))
    with open(path, "a") as f:
        f.write("{not json}\n")
    append_jsonl(path, step_line(2, 0))
    mon = TrainingMonitor(run_dir, autostart=False)
    assert lens(mon)[0] == 2
    outs = mon.errors.widget.outputs
    assert len(outs) == 1 and "line 2 is not valid JSON" in outs[0]["evalue"]
    mon.refresh()
    assert len(mon.errors.widget.outputs) == 1  # not repeated


def test_polling_thread_updates_and_stops(run_dir):
    path = run_dir / "metrics.jsonl"
    mon = TrainingMonitor(run_dir, poll_seconds=0.05)
    try:
        assert mon.running and mon.live_button.value
        append_jsonl(path, step_line(1, 0))
        append_jsonl(path, step_line(2, 0))
        deadline = time.monotonic() + 5
        while lens(mon)[0] < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert lens(mon)[0] == 2
    finally:
        mon.stop()
    assert not mon.running and not mon.live_button.value
    polls = mon.polls
    time.sleep(0.2)
    assert mon.polls == polls
    mon.live_button.value = True  # the button restarts it
    try:
        assert mon.running
    finally:
        mon.stop()


def test_run_status_rules():
    cfg = {"train": {"epochs": 3}}
    recs = [step_line(s, 0) for s in (2, 4)] + [step_line(s, 1) for s in (6, 8)]
    s = run_status(recs, cfg)
    assert (s["state"], s["steps_per_epoch"], s["total_steps"], s["step"]) == ("running", 4, 12, 8)
    s = run_status(recs + [step_line(s, 2) for s in (10, 12)], cfg)
    assert s["state"] == "finished"
    s = run_status(recs + [val_line(3, 0.5)], cfg)
    assert s["state"] == "finished" and s["best_ap"] == 0.5
    assert run_status([], None, exists=False)["state"] == "waiting"
    assert run_status([step_line(1, 0)], None)["state"] == "running"


def test_bad_poll_seconds(run_dir):
    from posenas_core.errors import DataError

    with pytest.raises(DataError, match="poll_seconds must be a number > 0"):
        TrainingMonitor(run_dir, poll_seconds=0)


def test_run_status_follows_the_trainers_replanned_total():
    from lab.training_monitor import run_status

    cfg = {"train": {"epochs": 12}}
    recs = [{"step": 10, "epoch": 0, "loss": 1.0, "total_steps": 200}, {"step": 20, "epoch": 0, "loss": 0.9, "total_steps": 200},
            {"step": 30, "epoch": 1, "loss": 0.8, "total_steps": 55}]
    s = run_status(recs, cfg)
    assert (s["total_steps"], s["epochs"], s["state"]) == (55, 3, "running")      # 20 steps per epoch
    s = run_status(recs + [{"step": 55, "epoch": 2, "loss": 0.7, "total_steps": 55}], cfg)
    assert s["state"] == "finished" and s["step"] == 55
