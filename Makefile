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

# Until bundled models ship, the demo trains a tiny model (sloppy, not for real use).
demo: $(VENV)/.installed
	rm -rf $(DEMO_DIR)
	$(VENV)/bin/harmonize-bids-phantom $(DEMO_DIR)/bids --subjects 2 --seed 1 --size tiny \
		--lesion-fraction 0.5
	$(VENV)/bin/harmonize-bids-train $(DEMO_DIR)/bids $(DEMO_DIR)/demo-model-1p5T-to-3T \
		--source-field 1.5 --target-field 3 -w $(DEMO_DIR)/work/train --sloppy --iterations 40
	$(VENV)/bin/harmonize-bids $(DEMO_DIR)/bids $(DEMO_DIR)/out participant \
		-w $(DEMO_DIR)/work --model $(DEMO_DIR)/demo-model-1p5T-to-3T --sloppy
	$(VENV)/bin/harmonize-bids $(DEMO_DIR)/bids $(DEMO_DIR)/out group -w $(DEMO_DIR)/work --sloppy
	@echo "Demo dataset: $(DEMO_DIR)/bids (ground truth in $(DEMO_DIR)/bids/derivatives/phantom)"
	@echo "Outputs: $(DEMO_DIR)/out (reports: $(DEMO_DIR)/out/sub-01.html, $(DEMO_DIR)/out/group_T1w.html)"
	@echo "The demo model is tiny and barely trained: it shows the pipeline, not the quality."

test: $(VENV)/.installed-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest

clean-demo:
	rm -rf $(DEMO_DIR)
