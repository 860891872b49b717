# Two entry points: `make demo` and `make test` (README quick start). Both create .venv.
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build of torch; on a CUDA machine install your torch into .venv first.
TORCH_SPEC ?= torch==2.13.0
DEMO_DIR ?= demo
export NIPYPE_NO_ET := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test lint clean-demo

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
# 1.5 T->3 T model harmonizes the 1.5 T session. About 5 minutes on 2 CPU cores.
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
	$(VENV)/bin/pytest

clean-demo:
	rm -rf $(DEMO_DIR)
