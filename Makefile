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

demo: $(VENV)/.installed
	rm -rf $(DEMO_DIR)
	$(VENV)/bin/harmonize-bids-phantom $(DEMO_DIR)/bids --subjects 2 --seed 1 --size tiny --lesions
	$(VENV)/bin/harmonize-bids $(DEMO_DIR)/bids $(DEMO_DIR)/out participant \
		-w $(DEMO_DIR)/work --sloppy --dry-run
	@echo "Demo dataset: $(DEMO_DIR)/bids (ground truth in $(DEMO_DIR)/bids/derivatives/phantom)"
	@echo "The run above validated it and logged its plan; outputs will go to $(DEMO_DIR)/out."

test: $(VENV)/.installed-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest

clean-demo:
	rm -rf $(DEMO_DIR)
