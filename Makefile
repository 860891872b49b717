# `make` sets up .venv with the test extras; `make demo` runs the app end to end; the tests:
#   make test               ruff and the fast suite (minutes)
#   make test-slow          the slow tests: end-to-end runs, training, packaging, reports
#   make test-integration   the container image built and smoke-tested, and a real SLURM
#                           cluster running docs/hpc (root on Debian 12 with apt; ci/)
# CI (.ci/run) runs all three.
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build of torch; on a CUDA machine install your torch into .venv first.
TORCH_SPEC ?= torch==2.13.0
DEMO_DIR ?= demo
export NIPYPE_NO_ET := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.DEFAULT_GOAL := dev
.PHONY: dev demo test test-slow test-integration test-tools clean-demo

dev: $(VENV)/.installed-test

$(PY):
	python3 -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(PY)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

# One full-size phantom subject (with lesions) scanned at 1.5 T and 3 T; the bundled
# 1.5 T->3 T model harmonizes the 1.5 T session. Minutes on 2 CPU cores.
demo: $(VENV)/.installed
	rm -rf $(DEMO_DIR)
	$(VENV)/bin/harmonize-bids-phantom $(DEMO_DIR)/bids --subjects 1 --seed 3000 --size full \
		--lesion-fraction 1
	$(VENV)/bin/harmonize-bids $(DEMO_DIR)/bids $(DEMO_DIR)/out participant -w $(DEMO_DIR)/work
	$(VENV)/bin/harmonize-bids $(DEMO_DIR)/bids $(DEMO_DIR)/out group -w $(DEMO_DIR)/work
	@echo "Demo dataset: $(DEMO_DIR)/bids (ground truth in $(DEMO_DIR)/bids/derivatives/phantom)"
	@echo "Outputs: $(DEMO_DIR)/out (reports: $(DEMO_DIR)/out/sub-01.html, $(DEMO_DIR)/out/group_T1w.html)"

test: $(VENV)/.installed-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest -m "not slow"

# What the slow tests need beyond the test extras: Chromium renders the HTML reports.
# Installed here (root with apt-get), never by a test; elsewhere those tests skip and say so.
test-tools:
	@if command -v chromium >/dev/null || command -v chromium-browser >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			chromium >/dev/null; \
	else echo "chromium is missing: install it (apt-get install chromium) or the report tests skip"; fi

test-slow: $(VENV)/.installed-test test-tools
	$(VENV)/bin/pytest -m slow

test-integration: $(VENV)/.installed-test
	ci/container-smoke.sh
	ci/slurm-integration.sh

clean-demo:
	rm -rf $(DEMO_DIR)
