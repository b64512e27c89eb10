"""lab._util: the error area, background tasks with progress + stop, polling, display delegation."""

import threading
import time

import cv2
import numpy as np
import pytest

from lab import BackgroundTask, ErrorArea, png_bytes
from lab._util import DisplayMixin, Poller


def test_error_area_shows_and_clears():
    area = ErrorArea(max_errors=2)
    with area.catch("doing x"):
        raise KeyError("k1")
    assert area.widget.outputs[0]["ename"] == "KeyError" and "Error while doing x" in area.widget.outputs[0]["traceback"][0]
    for i in range(3):
        with area.catch():
            raise ValueError(f"v{i}")
    assert [o["evalue"] for o in area.widget.outputs] == ["v1", "v2"]  # only the latest stay on screen
    assert len(area.errors) == 4 and str(area.last_error) == "v2"
    area.clear()
    assert area.widget.outputs == () and area.last_error is None
    with area.catch():
        pass
    assert area.errors == []
    with pytest.raises(KeyboardInterrupt):  # not an Exception: propagates
        with area.catch():
            raise KeyboardInterrupt
    cb = area.wrap(lambda change: 1 / 0, "observing")
    cb({"new": 1})
    assert isinstance(area.last_error, ZeroDivisionError)


def test_background_task_progress_and_stop_button():
    started = threading.Event()
    n = [1000]

    def work(report, stop):
        for i in range(n[0]):
            report(i + 1, n[0], f"item {i + 1}")
            started.set()
            if stop.is_set():
                return i
            time.sleep(0.005)
        return "all"

    task = BackgroundTask(work, description="work")
    task.start()
    assert started.wait(5) and task.running and not task.stop_button.disabled
    task.stop_button.click()
    assert task.join(5)
    assert task.state == "stopped" and isinstance(task.result, int) and task.result < 999
    assert task.progress.max == 1000 and task.progress.value == task.result + 1
    assert task.label.value == f"item {task.result + 1}" and task.stop_button.disabled

    n[0] = 5
    task.start()  # restartable; runs to the end when not stopped
    assert task.join(10) and task.state == "done" and task.result == "all"
    assert task.progress.bar_style == "success"


def test_background_task_error_goes_to_output():
    def work(report, stop):
        report(1, 2)
        raise RuntimeError("boom in thread")

    done = []
    task = BackgroundTask(work, description="failing", on_done=lambda t: done.append(t.state))
    task.start()
    assert task.join(5)
    assert task.state == "failed" and str(task.error) == "boom in thread" and done == ["failed"]
    assert task.errors.widget.outputs[-1]["evalue"] == "boom in thread"
    assert task.progress.bar_style == "danger"


def test_poller_keeps_going_after_errors_and_stops():
    calls = []

    def fn():
        calls.append(1)
        if len(calls) <= 3:
            raise ValueError("same message")

    area = ErrorArea()
    p = Poller(fn, 0.01, area, name="poll")
    p.start()
    deadline = time.monotonic() + 5
    while len(calls) < 6 and time.monotonic() < deadline:
        time.sleep(0.01)
    p.stop()
    assert len(calls) >= 6 and not p.running
    assert len(area.errors) == 1  # a repeated message is shown once
    with pytest.raises(ValueError, match="interval"):
        Poller(fn, 0, area)


def test_display_mixin_and_png_bytes():
    import ipywidgets as W

    class Thing(DisplayMixin):
        def __init__(self):
            self.widget = W.Label("x")

    t = Thing()
    assert t._repr_mimebundle_()["application/vnd.jupyter.widget-view+json"]["model_id"] == t.widget.model_id
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[..., 0] = 200  # red
    back = cv2.imdecode(np.frombuffer(png_bytes(rgb), np.uint8), cv2.IMREAD_COLOR)
    assert back.shape == (4, 5, 3) and back[0, 0].tolist() == [0, 0, 200]  # BGR on disk = RGB in
    with pytest.raises(ValueError, match="uint8"):
        png_bytes(rgb.astype(np.float32))


def test_json_file_rereads_a_changed_config_and_keeps_the_last_good_one(tmp_path):
    from posenas_core.errors import DataError

    from lab._util import JsonFile

    p = tmp_path / "config.json"
    f = JsonFile(p)
    assert f.poll() is False and f.value is None                      # no file yet: nothing changed
    p.write_text('{"a": 1}')
    assert f.poll() is True and f.value == {"a": 1}
    assert f.poll() is False                                          # unchanged file: not re-read
    p.write_text("[1, 2]")
    with pytest.raises(DataError, match="must hold a JSON object, got list"):
        f.poll()
    assert f.value == {"a": 1}                                        # the last good one stays
    p.write_text("{oops")
    with pytest.raises(DataError, match="config.json is not valid JSON"):
        f.poll()
    p.unlink()
    assert f.poll() is True and f.value is None


def test_both_monitors_get_the_same_live_controls(tmp_path):
    from posenas_core.errors import DataError

    from lab import EvolutionMonitor, TrainingMonitor

    tm = TrainingMonitor(tmp_path, poll_seconds=3, autostart=False)
    em = EvolutionMonitor(tmp_path, poll_seconds=0.5, autostart=False)
    assert tm.live_button.tooltip == "poll metrics.jsonl every 3 s"
    assert em.live_button.tooltip == "poll the run directory every 0.5 s"
    assert (tm.refresh_button.layout.width, tm.live_button.layout.width) == ("90px", "80px")
    assert tm._poller.interval == 3.0 and em._poller.interval == 0.5 and not tm.running and not em.running
    assert tm._poller.name == f"reading {tmp_path / 'metrics.jsonl'}" and em._poller.name == f"reading {tmp_path}"
    em.live_button.value = True                                       # the button starts the poller
    assert em.running
    em.stop()
    assert not em.running and not em.live_button.value
    for cls in (TrainingMonitor, EvolutionMonitor):
        with pytest.raises(DataError, match=f"{cls.__name__}: poll_seconds must be a number > 0, got 0"):
            cls(tmp_path, poll_seconds=0)
