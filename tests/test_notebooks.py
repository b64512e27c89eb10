"""Every notebook under notebooks/ runs under papermill with tiny parameters (what `posenas run` does)."""

import json
from pathlib import Path

import pytest

from posenas_core.errors import ConfigError
from posenas_core.runs.notebooks import run_notebook
from posenas_core.runs.params import read_parameters

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

# Tiny parameters per notebook: each must finish in well under a minute.
TINY = {
    "00_quickstart.ipynb": {"n_train": 24, "n_val": 6, "minutes": 0.05, "epochs": 1},
    "02_evopose2d.ipynb": {"n_train": 24, "n_val": 4, "input_size": "64x64", "lam": 2, "mu": 1, "generations": 1,
                           "e0": 1, "e": 1, "threads": 1},
}


def test_every_notebook_has_tiny_parameters():
    assert NOTEBOOKS, "no notebooks found"
    assert {p.name for p in NOTEBOOKS} == set(TINY), "add tiny parameters for every notebook to TINY"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_under_papermill(nb, tmp_path):
    rec = run_notebook(nb, tmp_path / "run", TINY[nb.name], cwd=ROOT / "notebooks", timeout=600)
    assert rec.ok, rec.error
    assert (tmp_path / "run" / "notebook.html").stat().st_size > 10_000
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert 0.0 <= metrics["AP"] <= 1.0
    executed = json.loads((tmp_path / "run" / "notebook.ipynb").read_text())
    outputs = [o for c in executed["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    mimes = {m for o in outputs for m in o.get("data", {})}
    # the widgets and the plotly figure were displayed
    assert "application/vnd.jupyter.widget-view+json" in mimes
    assert "application/vnd.plotly.v1+json" in mimes


def test_quickstart_refuses_unknown_and_mistyped_parameters(tmp_path):
    nb = ROOT / "notebooks" / "00_quickstart.ipynb"
    assert {"n_train", "n_val", "input_size", "epochs", "model", "seed", "out_dir"} <= set(read_parameters(nb))
    with pytest.raises(ConfigError, match="unknown parameter 'epoch'"):
        run_notebook(nb, tmp_path / "a", {"epoch": 3})
    with pytest.raises(ConfigError, match="parameter 'n_train' must be int"):
        run_notebook(nb, tmp_path / "b", {"n_train": "many"})
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.mark.parametrize("sweep", sorted((ROOT / "sweeps").glob("*.yaml")), ids=lambda p: p.name)
def test_every_sweep_file_loads_against_its_notebooks(sweep):
    """Each shipped sweep parses and its parameters exist in (and type-check against) its notebooks."""
    from posenas_core.runs.batch import load_sweep

    s = load_sweep(sweep)
    assert s.runs and all((ROOT / r.notebook).is_file() or Path(r.notebook).is_file() for r in s.runs)


# What JupyterLab writes when it saves a notebook: opening a shipped notebook must not mark it modified.
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
LANGUAGE_INFO_FIXED = {"name": "python", "mimetype": "text/x-python", "file_extension": ".py",
                       "codemirror_mode": {"name": "ipython", "version": 3}, "nbconvert_exporter": "python",
                       "pygments_lexer": "ipython3"}


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_shipped_notebooks_carry_jupyterlab_metadata(nb):
    import re

    d = json.loads(nb.read_text(encoding="utf-8"))
    assert (d["nbformat"], d["nbformat_minor"]) == (4, 5)
    assert d["metadata"]["kernelspec"] == KERNELSPEC
    info = dict(d["metadata"]["language_info"])
    version = info.pop("version")
    assert info == LANGUAGE_INFO_FIXED and re.fullmatch(r"3\.\d+\.\d+", version), d["metadata"]["language_info"]
    ids = [c.get("id") for c in d["cells"]]
    assert all(isinstance(i, str) and re.fullmatch(r"[a-zA-Z0-9-_]{1,64}", i) for i in ids) and len(set(ids)) == len(ids)
    # shipped clean: no outputs, no execution counts
    for c in d["cells"]:
        if c["cell_type"] == "code":
            assert c["outputs"] == [] and c["execution_count"] is None, c["id"]


def test_evopose_notebook_ancestor_parameter_takes_what_the_editor_sends():
    """GenotypeEditor "send to notebook" -> the `ancestor` parameter (CLI or JSON) -> the evolution's ancestor."""
    from posenas_core.runs.params import check_parameters, coerce_cli_value
    from posenas_core.spaces.evopose import ANCESTOR, GENOTYPE_S, EvoPoseSpec, genotype_to_str

    from lab.genotype_editor import spec_from_text

    nb = ROOT / "notebooks" / "02_evopose2d.ipynb"
    params = read_parameters(nb)
    assert spec_from_text(params["ancestor"].default).genotype == ANCESTOR     # the default: today's ancestor
    text = EvoPoseSpec(genotype=GENOTYPE_S).to_json()
    for given in (text, genotype_to_str(GENOTYPE_S)):
        value = check_parameters(nb, {"ancestor": coerce_cli_value(given, params["ancestor"])})["ancestor"]
        assert value == given and spec_from_text(value).genotype == GENOTYPE_S
