# PoseNAS Lab. `make demo` and `make test` build .venv themselves on a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# Hermetic Jupyter / IPython state for notebook runs and tests.
export JUPYTER_CONFIG_DIR  := $(CURDIR)/$(VENV)/etc/jupyter-config
export JUPYTER_RUNTIME_DIR := $(CURDIR)/$(VENV)/var/jupyter-runtime
export IPYTHONDIR          := $(CURDIR)/$(VENV)/etc/ipython
export MPLBACKEND          := Agg

.PHONY: all venv test demo lab bench clean

all: test

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "torch==2.13.0" -e ".[fast,lab,test]"
	$(BIN)/python -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__"
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

demo: $(STAMP)
	$(BIN)/posenas demo --out reports/demo

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

lab: $(STAMP)
	@echo "lab: see issue 3 (JupyterLab launcher)"; exit 1

clean:
	rm -rf $(VENV) reports/demo
