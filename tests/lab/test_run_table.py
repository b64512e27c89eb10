"""RunTable on a fake reports/ tree of run.json files (written as run_notebook writes them)."""

import re

import pandas as pd
import pytest

from posenas_core.runs.io import atomic_write_json
from posenas_core.runs.notebooks import RunRecord

from lab import RunTable
from lab.run_table import filter_runs, sort_runs


def write_run(root, rel, *, status="ok", params=None, metrics=None, duration=10.0, error=None, files=True):
    d = root / rel
    d.mkdir(parents=True, exist_ok=True)
    if files:
        (d / "notebook.ipynb").write_text("{}")
        (d / "notebook.html").write_text("<html></html>")
    rec = RunRecord(notebook="notebooks/00_quickstart.ipynb", params=params or {}, status=status, error=error,
                    started="2026-11-22T10:00:00+00:00", finished="2026-11-22T10:01:00+00:00",
                    duration_s=duration, metrics=metrics or {}, files=[])
    atomic_write_json(d / "run.json", rec.to_dict())


@pytest.fixture
def reports(tmp_path):
    root = tmp_path / "reports"
    write_run(root, "sweep/seed-0", params={"seed": 0, "input_size": "128x96"}, metrics={"coco": {"AP": 0.31}},
              duration=30.0)
    write_run(root, "sweep/seed-1", params={"seed": 1, "input_size": "256x192"}, metrics={"coco": {"AP": 0.52}},
              duration=12.5)
    write_run(root, "sweep/seed-2", status="failed", params={"seed": 2, "input_size": "128x96"}, duration=3.0,
              error={"ename": "ConfigError", "evalue": "bad <script>alert(1)</script> value", "cell_index": 2,
                     "traceback": []}, files=False)
    write_run(root, "single", params={"seed": "x"}, metrics={"coco": {"AP": 0.05}}, duration=99.0)
    return root


def rows(table):
    return list(table.df["run_id"])


def test_lists_every_run_with_links(reports):
    t = RunTable(reports)
    assert len(t.df) == 4 and set(rows(t)) == {"seed-0", "seed-1", "seed-2", "single"}
    assert "4 of 4 runs shown" in t.summary.value and "1 failed" in t.summary.value
    html = t.table.value
    base = reports.as_posix()
    assert f'href="{base}/sweep/seed-0/notebook.ipynb"' in html
    assert f'href="{base}/sweep/seed-1/notebook.html"' in html
    assert "sweep/seed-2/notebook" not in html  # no files -> no links
    # cell text from run.json is escaped, only our links / status markup are HTML
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert len(re.findall(r"<a href=", html)) == 6


def test_relative_link_base(reports):
    t = RunTable(reports, link_base="../reports")
    assert 'href="../reports/sweep/seed-0/notebook.html"' in t.table.value


def test_sort_by_metric_and_direction(reports):
    t = RunTable(reports)
    t.sort_dropdown.value = "metrics.coco.AP"
    assert rows(t) == ["single", "seed-0", "seed-1", "seed-2"]  # missing AP last
    t.ascending.value = False
    assert rows(t) == ["seed-1", "seed-0", "single", "seed-2"]  # missing still last
    t.sort_dropdown.value = "duration_s"
    assert rows(t) == ["single", "seed-0", "seed-1", "seed-2"]
    assert t.table.value.index("single") < t.table.value.index("seed-0")  # the HTML follows .df


def test_sort_mixed_types_by_text():
    df = pd.DataFrame({"run_id": list("abcd"), "params.seed": [10, "x", 2, None]})
    assert list(sort_runs(df, "params.seed")["run_id"]) == ["a", "c", "b", "d"]  # "10" < "2" < "x", None last
    df2 = pd.DataFrame({"run_id": list("abc"), "v": [10, 2, None]})
    assert list(sort_runs(df2, "v")["run_id"]) == ["b", "a", "c"]  # numeric
    with pytest.raises(KeyError, match="nope"):
        sort_runs(df, "nope")


def test_status_and_text_filters(reports):
    t = RunTable(reports)
    assert [o[1] for o in t.status_filter.options] == ["", "failed", "ok"]
    t.status_filter.value = "failed"
    assert rows(t) == ["seed-2"] and "1 of 4 runs shown" in t.summary.value
    t.status_filter.value = "ok"
    assert set(rows(t)) == {"seed-0", "seed-1", "single"}
    t.text_filter.value = "256X192"  # case-insensitive, any column
    assert rows(t) == ["seed-1"]
    t.status_filter.value = ""
    t.text_filter.value = "ConfigError"
    assert rows(t) == ["seed-2"]
    t.text_filter.value = "nothing matches this"
    assert len(t.df) == 0 and "no runs" in t.table.value
    assert filter_runs(t.all_runs, "", "")["run_id"].tolist() == t.all_runs["run_id"].tolist()


def test_refresh_picks_up_new_runs(reports):
    t = RunTable(reports)
    t.sort_dropdown.value = "run_id"
    write_run(reports, "sweep/seed-3", status="running?", params={"seed": 3}, metrics={"coco": {"AP": 0.9}})
    assert len(t.df) == 4
    t.refresh_button.click()
    assert len(t.df) == 5 and rows(t)[0] == "seed-0" and t.sort_dropdown.value == "run_id"
    assert "running?" in [o[1] for o in t.status_filter.options]


def test_empty_or_missing_root(tmp_path):
    t = RunTable(tmp_path / "nothing")
    assert len(t.df) == 0 and "no runs" in t.table.value and "0 of 0" in t.summary.value
    assert t.errors.errors == []
