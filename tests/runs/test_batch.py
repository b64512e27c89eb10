"""posenas_core.runs.batch: sweep files, run ids, batches with resume, index tables.

One test executes notebooks (5 kernel starts: 3 runs with 2 workers, then a resume that redoes 2).
"""

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from posenas_core.errors import ConfigError
from posenas_core.runs import index_page as ip
from posenas_core.search.pareto import pareto_order
from posenas_core.runs.batch import collect_runs, load_sweep, make_run_id, run_batch, write_index

FIXTURE = (Path(__file__).parent / "fixtures" / "compute.ipynb").resolve()


def write_sweep(tmp_path: Path, text: str, name: str = "sweep.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text.replace("NB", str(FIXTURE)))
    return p


# ---------------------------------------------------------------- load_sweep


def test_grid_expansion_and_ids(tmp_path):
    other = tmp_path / "other.ipynb"
    other.write_bytes(FIXTURE.read_bytes())
    p = write_sweep(tmp_path, """
name: demo
notebook: NB
workers: 2
base: {a: 3, scale: 1}
runs:
  - {id: small, params: {a: 1}}
  - {params: {name: "n800"}, notebook: other.ipynb}   # resolved next to the sweep file
grid:
  a: [0, 1]
  name: ["128x96", "256x192"]
  flag: [true]
""")
    sw = load_sweep(p)
    assert (sw.name, sw.workers, sw.base) == ("demo", 2, {"a": 3, "scale": 1})
    assert len(sw.runs) == 2 + 2 * 2 * 1
    assert [r.id for r in sw.runs] == [
        "small", "other_name-n800",
        "a-0_name-128x96_flag-true", "a-0_name-256x192_flag-true",
        "a-1_name-128x96_flag-true", "a-1_name-256x192_flag-true",
    ]
    assert sw.runs[0].params == {"a": 1, "scale": 1.0}  # own params over base, checked (int -> float)
    assert sw.runs[1].notebook == other.as_posix()
    assert sw.runs[5].params == {"a": 1, "scale": 1.0, "name": "256x192", "flag": True}
    assert all(r.notebook == str(FIXTURE) for r in sw.runs if r.id != "other_name-n800")


def test_make_run_id():
    assert make_run_id({"seed": 0, "input_size": "128x96"}) == "seed-0_input_size-128x96"
    assert make_run_id({}) == "default"
    long = make_run_id({"spec": "x" * 200})
    assert len(long) <= 64 and long == make_run_id({"spec": "x" * 200})
    assert long != make_run_id({"spec": "x" * 199 + "y"})  # hash of the exact params
    a, b = make_run_id({"p": "a/b"}), make_run_id({"p": "a b"})  # lossy sanitizing -> hash suffix
    assert a != b and a.startswith("p-a-b-") and "/" not in a


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    p = write_sweep(tmp_path, "name: demo\nnotebook: NB\nbase: {a: 1\ngrid:\n  a: [1, 2]\n")
    with pytest.raises(ConfigError) as ei:
        load_sweep(p)
    msg = str(ei.value)
    assert str(p) in msg and "YAML syntax error at line 4" in msg


@pytest.mark.parametrize(
    "text, match",
    [
        ("notebook: NB\nworker: 2\ngrid: {a: [1]}\n", "unknown key 'worker'; allowed: name, notebook, workers"),
        ("notebook: NB\nworkers: two\ngrid: {a: [1]}\n", "'workers' must be an integer >= 1; got 'two'"),
        ("notebook: NB\nworkers: 0\ngrid: {a: [1]}\n", "'workers' must be an integer"),
        ("notebook: NB\nbase: [1]\ngrid: {a: [1]}\n", "'base' must be a mapping"),
        ("notebook: NB\ngrid: {a: 1}\n", "grid.a must be a non-empty list"),
        ("notebook: NB\nruns: [{param: {a: 1}}]\n", r"runs\[0\]: unknown key 'param'; allowed: id, params, notebook"),
        ("notebook: NB\nruns: [{params: [1]}]\n", r"runs\[0\]: 'params' must be a mapping"),
        ("notebook: NB\n", "no runs"),
        ("grid: {a: [1]}\n", "'grid' needs the top-level 'notebook'"),
        ("notebook: missing.ipynb\ngrid: {a: [1]}\n", "'notebook': notebook not found: missing.ipynb"),
        ("name: ../up\nnotebook: NB\ngrid: {a: [1]}\n", "'name' must be a folder name"),
        ("notebook: NB\ngrid: {a: [1], epochs: [1]}\n", r"grid point 0 .*unknown parameter 'epochs'.*known: a, scale"),
        ("notebook: NB\nbase: {a: 1x}\ngrid: {scale: [1]}\n", r"parameter 'a' must be int \(default 2\), got str '1x'"),
        ("notebook: NB\nruns: [{id: r1, params: {a: 1}}, {id: r1, params: {a: 2}}]\n",
         r"duplicate run id 'r1' \(runs\[0\] and runs\[1\]\)"),
        ("notebook: NB\nruns: [{params: {a: 1}}]\ngrid: {a: [1]}\n", "duplicate run id 'a-1'"),
        ("- 1\n- 2\n", "must be a mapping"),
    ],
)
def test_bad_sweeps_rejected_with_file_and_key(tmp_path, text, match):
    p = write_sweep(tmp_path, text)
    with pytest.raises(ConfigError, match=match) as ei:
        load_sweep(p)
    assert str(p) in str(ei.value)


def test_missing_sweep_file(tmp_path):
    with pytest.raises(ConfigError, match="sweep file not found: .*nope.yaml"):
        load_sweep(tmp_path / "nope.yaml")


def test_invalid_sweep_runs_nothing(tmp_path):
    p = write_sweep(tmp_path, "name: x\nnotebook: NB\ngrid: {a: [1, 2], a_typo: [0]}\n")
    with pytest.raises(ConfigError, match="unknown parameter 'a_typo'"):
        run_batch(p, reports_root=tmp_path / "reports", progress=False)
    assert not (tmp_path / "reports").exists()


# ---------------------------------------------------------------- run_batch (executes notebooks)


def _counter_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_batch_failure_resume_and_index(tmp_path):
    counter = tmp_path / "counter.jsonl"
    reports = tmp_path / "reports"
    p = write_sweep(tmp_path, f"""
name: demo
notebook: NB
workers: 2
base: {{counter: "{counter}", scale: 0.5}}
runs:
  - {{id: bad, params: {{a: 9, fail: true}}}}
grid:
  a: [2, 4]
""")
    done = []
    res = run_batch(p, reports_root=reports, progress=False, on_run_done=lambda rid, rec: done.append(rid))
    batch = reports / "demo"
    assert sorted(res.ran) == ["a-2", "a-4", "bad"] and res.skipped == [] and sorted(done) == sorted(res.ran)
    assert list(res.records) == ["bad", "a-2", "a-4"]  # sweep order
    assert res.failed == ["bad"] and not res.ok
    assert res.records["bad"].error["evalue"] == "boom a=9"
    assert res.records["a-4"].metrics["y"] == 2.0  # the batch went on after the failure
    assert len(_counter_lines(counter)) == 3

    df = pd.read_csv(batch / "index.csv")
    assert len(df) == 3 and set(df["run_id"]) == {"bad", "a-2", "a-4"}
    for col in ["notebook", "status", "error", "duration_s", "params.a", "params.scale", "params.fail",
                "metrics.y", "metrics.loss.train", "metrics.loss.val", "notebook_ipynb", "notebook_html"]:
        assert col in df.columns, col
    assert "metrics.hist" not in df.columns  # non-scalar metrics stay in run.json only
    row = df.set_index("run_id")
    assert row.loc["a-2", "metrics.y"] == 1.0 and row.loc["a-2", "params.a"] == 2
    assert row.loc["bad", "status"] == "failed" and "ValueError: boom a=9" in row.loc["bad", "error"]
    assert row.loc["a-2", "notebook_html"] == "a-2/notebook.html"
    page = (batch / "index.html").read_text()
    assert 'href="a-2/notebook.html"' in page and 'class="status-failed"' in page
    assert "3 runs: 2 ok, 1 failed" in page
    # no known headline metric (AP, ...) here: the first numeric metrics lead, then wall time, status, and
    # the parameters that differ between runs
    head = _headers(page, "headline")
    assert head[:5] == ["run", "loss.train", "loss.val", "y", "wall time"] and head[5:] == ["status", "a", "fail"]
    assert page.count("window.PlotlyConfig") == 1 and 'id="runs-bar"' in page  # y per run

    # resume: ok runs are skipped, the failed one is redone, and one whose run.json is missing
    # (killed in flight) is redone too
    mtime = (batch / "a-4" / "run.json").stat().st_mtime_ns
    (batch / "a-2" / "run.json").unlink()
    res2 = run_batch(p, reports_root=reports, workers=1, progress=False)
    assert res2.skipped == ["a-4"] and sorted(res2.ran) == ["a-2", "bad"]
    assert (batch / "a-4" / "run.json").stat().st_mtime_ns == mtime
    again = _counter_lines(counter)[3:]
    assert sorted(d["a"] for d in again) == [2, 9]
    assert len(pd.read_csv(batch / "index.csv")) == 3
    assert res2.records["a-2"].ok and res2.failed == ["bad"]

    # collect_runs over the reports root: paths relative to it
    runs = collect_runs(reports)
    assert sorted(runs["run_dir"]) == ["demo/a-2", "demo/a-4", "demo/bad"]
    assert runs.set_index("run_dir").loc["demo/a-4", "notebook_html"] == "demo/a-4/notebook.html"


def test_collect_runs_single_and_empty(tmp_path):
    assert list(collect_runs(tmp_path / "none").columns)[:3] == ["run_id", "run_dir", "notebook"]
    # a single run's record, written by hand in run_notebook's format (no kernel needed here)
    d = tmp_path / "reports" / "single"
    d.mkdir(parents=True)
    rec = {"notebook": "nb.ipynb", "params": {"a": 1, "tags": [1, 2]}, "status": "ok", "error": None,
           "started": "2026-01-01T00:00:00+00:00", "finished": "2026-01-01T00:00:01+00:00", "duration_s": 1.0,
           "metrics": {"ap": 0.5, "per_joint": {"nose": 0.9}}, "files": []}
    (d / "run.json").write_text(json.dumps(rec))
    (tmp_path / "reports" / "torn").mkdir()
    (tmp_path / "reports" / "torn" / "run.json").write_text("{")
    with pytest.warns(UserWarning, match="torn"):
        df = collect_runs(tmp_path / "reports")
    assert len(df) == 1
    r = df.iloc[0]
    assert (r["run_id"], r["params.a"], r["params.tags"], r["metrics.ap"], r["metrics.per_joint.nose"]) == (
        "single", 1, "[1, 2]", 0.5, 0.9)
    assert r["notebook_html"] == ""


# ---------------------------------------------------------------- index.html (hand-written run records, no kernel)


def _soup(page: str):
    from bs4 import BeautifulSoup

    return BeautifulSoup(page, "html.parser")


def _headers(page: str, table_id: str) -> list[str]:
    return [th.get_text(strip=True) for th in _soup(page).find("table", id=table_id).find("thead").find_all("th")]


def _rows(page: str, table_id: str) -> list[list]:
    return [tr.find_all("td") for tr in _soup(page).find("table", id=table_id).find("tbody").find_all("tr")]


def _figures(page: str) -> dict:
    """{div id: figure JSON} of the page's plotly figures."""
    out = {}
    for div_id, body in re.findall(r'<div id="([^"]+)" class="plotly-graph-div".*?newPlot\(el, (\{.*?\})\);', page, re.S):
        out[div_id] = json.loads(body)
    return out


SPEC = json.dumps({"kind": "evopose2d", "genotype": [[3, 1, 2, 1]] * 7, "head_channels": 128})


def _record(params: dict, metrics: dict, status: str = "ok", duration: float = 83.24, error=None) -> dict:
    return {"notebook": "notebooks/02_evopose2d.ipynb", "params": params, "status": status, "error": error,
            "started": "2026-11-28T23:05:01.123+00:00", "finished": "2026-11-28T23:06:24+00:00",
            "duration_s": duration, "metrics": metrics, "files": []}


def make_batch(root: Path) -> Path:
    """A batch directory of three EvoPose2D-like runs (two with an evolution archive) and a failed one."""
    batch = root / "evo-sweep"
    for i, gamma in enumerate([0.0, -0.07]):
        d = batch / f"gamma-{gamma}"
        (d / "evolution").mkdir(parents=True)
        metrics = {"AP": 0.123456 + i / 10, "coco": {"AP": 0.123456 + i / 10, "AP50": 0.4567891},
                   "pck@0.2": 0.27272727, "best_val_loss": 0.0437173097, "best_params": 3673949,
                   "best_macs": 42161024, "best_genotype": "k3b1c2s1-" * 7, "candidates": 3}
        (d / "run.json").write_text(json.dumps(_record({"gamma": gamma, "lam": 2, "spec": SPEC}, metrics)))
        (d / "notebook.html").write_text("<html>run</html>")
        (d / "notebook.ipynb").write_text("{}")
        rows = [{"id": k, "generation": k // 2, "genotype": f"g{k}", "macs": 40e6 + 1e6 * k * (1 + i),
                 "val_loss": 0.05 - 0.002 * k + 0.003 * (k == 2), "ap": None, "status": "ok"} for k in range(4)]
        rows.append({"id": 9, "macs": 1.0, "val_loss": None, "status": "failed"})  # not drawn
        (d / "evolution" / "archive.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    d = batch / "gamma--0.2"
    d.mkdir()
    err = {"ename": "RuntimeError", "evalue": "out of memory", "cell_index": 7, "exec_count": 5, "traceback": ""}
    (d / "run.json").write_text(json.dumps(_record({"gamma": -0.2, "lam": 2, "spec": SPEC}, {}, "failed", 7.25, err)))
    return batch


def test_index_page_headline_links_rounding_and_charts(tmp_path):
    batch = make_batch(tmp_path)
    _, html_path = write_index(batch)
    page = html_path.read_text()
    assert "3 runs: 2 ok, 1 failed" in page
    # headline first: the run (link), the headline metrics, wall time, status, then what the sweep varies
    assert _headers(page, "headline") == ["run", "AP", "AP50", "PCK@0.2", "val loss", "params (M)", "GMACs",
                                          "wall time", "status", "gamma"]
    rows = {r[0].get_text().removesuffix(" ipynb"): r for r in _rows(page, "headline")}
    assert list(rows) == ["gamma--0.07", "gamma--0.2", "gamma-0.0"]  # by run directory
    ok = rows["gamma-0.0"]
    assert ok[0].find("a")["href"] == "gamma-0.0/notebook.html"
    assert [a["href"] for a in ok[0].find_all("a")] == ["gamma-0.0/notebook.html", "gamma-0.0/notebook.ipynb"]
    assert [c.get_text() for c in ok[1:]] == ["0.123", "0.457", "0.273", "0.04372", "3.67", "0.042", "1m 23s",
                                             "ok", "0"]
    assert ok[1].find("span")["data-v"] == "0.123456"  # sorted by the exact value
    bad = rows["gamma--0.2"]
    assert bad[0].find("a") is None and bad[0].get_text() == "gamma--0.2"  # no notebook.html: no link
    assert [c.get_text() for c in bad[1:7]] == [""] * 6 and bad[7].get_text() == "7.2s"
    status = bad[8].find("span")
    assert status["class"] == ["status-failed"] and status["title"] == "RuntimeError: out of memory (cell 7, In [5])"
    # every column in the collapsed details table; long values cut, the full value in a tooltip
    details = _soup(page).find("details")
    assert details is not None and details.find("table", id="details") is not None and not details.has_attr("open")
    heads = _headers(page, "details")
    assert heads[0] == "run" and "params.spec" in heads and "metrics.best_genotype" in heads
    spec_cell = _rows(page, "details")[2][heads.index("params.spec")]
    assert spec_cell.find("span")["title"] == SPEC and len(spec_cell.get_text()) == ip.CUT_DETAILS
    assert _rows(page, "details")[2][heads.index("metrics.best_params")].get_text() == "3,673,949"
    # charts: plotly.js embedded once (offline), before the figures
    assert page.count("window.PlotlyConfig") == 1 and not re.search(r"<script[^>]+src=", page)
    assert page.index("window.PlotlyConfig") < page.index('id="runs-bar"') < page.index('id="runs-fronts"')
    figs = _figures(page)
    bar = figs["runs-bar"]
    assert [t["name"] for t in bar["data"]] == ["AP", "AP50", "PCK@0.2", "val loss", "params (M)", "GMACs",
                                                 "wall time (min)"]
    assert bar["data"][0]["x"] == ["gamma--0.07", "gamma--0.2", "gamma-0.0"]
    assert bar["data"][0]["y"] == [pytest.approx(0.223456), None, pytest.approx(0.123456)]
    assert [t["visible"] for t in bar["data"]] == [True] + [False] * 6
    assert len(bar["layout"]["updatemenus"][0]["buttons"]) == 7
    fronts = figs["runs-fronts"]
    names = [t["name"] for t in fronts["data"]]
    assert names == ["gamma--0.07", "gamma--0.07 front", "gamma-0.0", "gamma-0.0 front"]
    cands, front = fronts["data"][2], fronts["data"][3]
    assert len(cands["x"]) == 4 and cands["x"][0] == pytest.approx(0.040)  # GMACs; the failed row left out
    assert front["x"] == pytest.approx([0.040, 0.041, 0.043])  # candidate 2 is dominated by candidate 1
    assert "updatemenus" not in fronts["layout"]  # no AP in these archives: val loss only


def test_index_page_without_plotly_and_without_runs(tmp_path, monkeypatch):
    from posenas_core.runs import plotly_html

    batch = make_batch(tmp_path)
    monkeypatch.setattr(plotly_html, "plotlyjs_path", lambda: None)
    page = write_index(batch)[1].read_text()
    assert "charts not shown: plotly.js was not found" in page and "PlotlyConfig" not in page
    assert _headers(page, "headline")[0] == "run"  # the tables stand
    empty = tmp_path / "empty"
    empty.mkdir()
    page = write_index(empty)[1].read_text()
    assert "0 runs: 0 ok, 0 failed" in page and "<table" not in page


def test_index_helpers():
    assert ip.fmt_duration(7.25) == "7.2s" and ip.fmt_duration(83.2) == "1m 23s" and ip.fmt_duration(4000) == "1h 07m"
    assert ip.fmt_duration(None) == "" and ip.fmt_number(3673949) == "3,673,949"
    assert ip.fmt_number(3673949, ".2f", 1e-6) == "3.67" and ip.fmt_number(0.0437173097) == "0.04372"
    assert ip.fmt_number(float("nan")) == "" and ip.fmt_number(True) == "True"
    pts = [(1.0, 0.5, "a"), (2.0, 0.4, "b"), (2.5, 0.45, "c"), (3.0, 0.3, "d"), (0.5, 0.9, "e")]
    # the index page's front lines come from search.pareto (one implementation)
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    assert [pts[i][2] for i in pareto_order(xs, ys)] == ["e", "a", "b", "d"]
    assert [pts[i][2] for i in pareto_order(xs, [-y for y in ys])] == ["e"]
