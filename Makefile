# Every target works on a fresh machine with Python >= 3.11 and make: the venv is built here.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_DIR ?= demo-node

.PHONY: demo test lint unit bench deb rpm packages package-check clean

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,package]'
	touch $@

## demo: write a realistic demo node PKI and check it (the agent's main job, zero setup)
demo: $(VENV)/.installed
	rm -rf $(DEMO_DIR)
	$(BIN)/kubelet-cert-agent demo $(DEMO_DIR)
	-$(BIN)/kubelet-cert-agent check --offline --cert-dir $(DEMO_DIR)/pki \
	  --kubelet-config $(DEMO_DIR)/config.yaml --node-name demo-node-1

## test: lint, type-check and run the whole test suite
test: lint unit

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/mypy

unit: $(VENV)/.installed
	$(BIN)/pytest -q

## bench: run every benchmark and print its figures
bench: $(VENV)/.installed
	for b in bench/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) build dist $(DEMO_DIR) .pytest_cache .mypy_cache .ruff_cache .hypothesis
