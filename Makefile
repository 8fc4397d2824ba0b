# Two entry points: `make run` (the demo, end to end) and `make test` (lint, types, the whole suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: venv run test lint typecheck pytest browser-tools bench clean

venv: $(STAMP)

# CPU torch first, pinned to the wheel on the machine, so nothing pulls the CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/feedbackloop run --demo

lint: $(STAMP)
	$(BIN)/ruff check core plugins clustering api tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

# Chromium and the browser tests' npm packages (axe-core, oidc-provider), when missing.
browser-tools:
	bash tests/browser/install.sh

pytest: $(STAMP) browser-tools
	$(BIN)/pytest -q --durations=25

test: lint typecheck pytest

bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python bench/cluster_bench.py
	$(BIN)/python bench/generality_bench.py
	$(BIN)/python bench/incremental_bench.py
	$(BIN)/python bench/scale_bench.py
	$(BIN)/python bench/people_bench.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .mypy_cache .ruff_cache
