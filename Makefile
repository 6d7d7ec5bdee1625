# CoreC: `make run` runs the demo node; `make test` runs every check CI runs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
CONFIG ?= configs/demo.yaml

.PHONY: run test lint bench bench-bus bench-pipeline bench-exchange-sync bench-ledger bench-alerts clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(VENV)/.installed $@

run: $(VENV)/.installed
	$(BIN)/corec run --config $(CONFIG)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/lint-imports

test: lint
	$(BIN)/pytest

bench: bench-bus bench-pipeline bench-exchange-sync bench-ledger bench-alerts

bench-bus: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/bench_bus.py

bench-pipeline: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/bench_pipeline.py

bench-exchange-sync: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/bench_exchange_sync.py

bench-ledger: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/bench_ledger.py

bench-alerts: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/bench_alerts.py

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
