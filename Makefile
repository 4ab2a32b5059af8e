# Every target works on a fresh machine with Python >= 3.11 and make: the venv is built here.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_DIR ?= demo-node

.PHONY: demo test lint unit slow bench deb rpm packages package-check clean

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,package]'
	touch $@

## demo: write a realistic demo node PKI and check it (the agent's main job, zero setup)
demo: $(VENV)/.installed
	rm -rf $(DEMO_DIR)
	$(BIN)/kubelet-cert-agent demo $(DEMO_DIR)
	@$(BIN)/kubelet-cert-agent check --offline --no-probe --cert-dir $(DEMO_DIR)/pki \
	  --kubelet-config $(DEMO_DIR)/config.yaml --node-name demo-node-1; \
	  echo "(check exited $$?: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN)"

## test: lint, type-check and run the whole test suite (unit tests, then the slow ones)
test: lint unit slow

lint: $(VENV)/.installed
	@echo "== lint: ruff and mypy =="
	$(BIN)/ruff check .
	$(BIN)/mypy

# Everything but the soak and the large property runs: the suite a developer runs often.
unit: $(VENV)/.installed
	@echo "== unit: pytest -m 'not slow' =="
	$(BIN)/pytest -q -m "not slow"

# The soak (1,000 real kubelet swaps), the 10,000-input property runs and the reduced
# alert simulation (real Prometheus), on their own.
slow: $(VENV)/.installed
	@echo "== slow: pytest -m slow (soak, properties, alert simulation) =="
	$(BIN)/pytest -q -m slow

## bench: run every benchmark and print its figures
bench: $(VENV)/.installed
	for b in bench/bench_*.py; do $(BIN)/python $$b || exit 1; done

## deb / rpm / packages: build dist/*.deb and dist/*.rpm with nfpm (see packaging/README.md)
# VERSION: the one in pyproject.toml unless overridden (package-check builds VERSION=<v>+1).
ifndef VERSION
VERSION := $(shell $(PY) -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
endif
# ARCH in Go's naming (amd64, arm64): nfpm translates it to x86_64 / aarch64 for rpm.
ARCH ?= $(shell dpkg --print-architecture 2>/dev/null || echo amd64)
# The target distribution's interpreter the packaged venv is built for and runs with.
PKG_PYTHON ?= /usr/bin/python3.11
NFPM := $(BIN)/nfpm
NFPM_CONFIG ?= packaging/nfpm.yaml
DIST ?= dist
export VERSION ARCH

build/venv.stamp: pyproject.toml packaging/build-venv.sh $(shell find agent -name '*.py')
	PYTHON=$(PKG_PYTHON) packaging/build-venv.sh build/venv
	touch $@

build/changelog.gz: packaging/deb/changelog
	mkdir -p build
	gzip -9nc $< > $@

deb: $(VENV)/.installed build/venv.stamp build/changelog.gz
	mkdir -p $(DIST)
	$(NFPM) package --config $(NFPM_CONFIG) --packager deb --target $(DIST)/

rpm: $(VENV)/.installed build/venv.stamp
	mkdir -p $(DIST)
	$(NFPM) package --config $(NFPM_CONFIG) --packager rpm --target $(DIST)/

packages: deb rpm

## package-check: build both packages, install/upgrade/purge the .deb here, lint both (needs root)
package-check: $(VENV)/.installed
	packaging/check-packages.sh

clean:
	rm -rf $(VENV) build dist $(DEMO_DIR) .pytest_cache .mypy_cache .ruff_cache .hypothesis
