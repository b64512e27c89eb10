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

.PHONY: all venv test demo demo-sweep lab bench clean

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

LAB_PORT ?= 8888
lab: $(STAMP)
	@TOKEN=$$($(BIN)/python -c "import secrets; print(secrets.token_hex(16))"); \
	echo "PoseNAS Lab: http://127.0.0.1:$(LAB_PORT)/lab/tree/notebooks/00_quickstart.ipynb?token=$$TOKEN"; \
	$(BIN)/jupyter lab --no-browser --ip=127.0.0.1 --port=$(LAB_PORT) --ServerApp.token=$$TOKEN \
	  --ServerApp.root_dir=$(CURDIR) --ServerApp.allow_root=True

demo-sweep: $(STAMP)
	$(BIN)/posenas batch sweeps/demo.yaml

clean:
	rm -rf $(VENV) reports/demo
