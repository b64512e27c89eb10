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
	$(BIN)/python -m pip install --quiet "torch==2.13.0" -e ".[fast,lab,test,search,deploy]"
	$(BIN)/python -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__"
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

# make demo: set up, then the demo sweep (the quickstart notebook: SynthPose, 6.5 minutes of training, OKS AP next to
# the mean-pose baseline; see sweeps/demo.yaml) -> reports/demo-sweep/{index.html,index.csv,demo/...}.
# Re-running skips a finished run. reports/demo/metrics.json is a copy of its metrics (the headline numbers).
DEMO_REPORT := reports/demo-sweep
demo: $(STAMP)
	$(BIN)/posenas batch sweeps/demo.yaml
	@test -f $(DEMO_REPORT)/demo/metrics.json || { \
	  echo "make demo: the demo run wrote no metrics.json; see $(DEMO_REPORT)/index.html"; exit 1; }
	@mkdir -p reports/demo && cp $(DEMO_REPORT)/demo/metrics.json reports/demo/metrics.json
	@echo ""
	@$(BIN)/python -c "import json; m = json.load(open('reports/demo/metrics.json')); print(f\"\nOKS AP on the SynthPose val split: {m['AP']:.3f} (mean pose in the box: {m['mean_pose_AP']:.3f})\")"
	@echo "Demo report: $(CURDIR)/$(DEMO_REPORT)/index.html"
	@echo "  runs:      $(DEMO_REPORT)/<run>/notebook.html (executed notebooks), index.csv"
	@echo "  metrics:   reports/demo/metrics.json (AP, mean-pose AP, per-joint AP)"

demo-sweep: demo

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

LAB_PORT ?= 8888
lab: $(STAMP)
	@TOKEN=$$($(BIN)/python -c "import secrets; print(secrets.token_hex(16))"); \
	echo "PoseNAS Lab: http://127.0.0.1:$(LAB_PORT)/lab/tree/notebooks/00_quickstart.ipynb?token=$$TOKEN"; \
	$(BIN)/jupyter lab --no-browser --ip=127.0.0.1 --port=$(LAB_PORT) --ServerApp.token=$$TOKEN \
	  --ServerApp.root_dir=$(CURDIR) --ServerApp.allow_root=True

clean:
	rm -rf $(VENV) reports/demo reports/demo-sweep
