# CoreC: `make run` runs the demo node; `make test` runs every check CI runs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
CONFIG ?= configs/demo.yaml
DASHBOARD := src/corec/api/dashboard

.PHONY: run test lint dashboard bench bench-bus bench-pipeline bench-exchange-sync bench-ledger bench-alerts bench-api clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(VENV)/.installed $@

# The dashboard (Vite + Chart.js, needs Node.js and npm): install the locked npm deps when
# the lock changed, build dist/ when a source changed. The API serves dist/ at /.
dashboard: $(DASHBOARD)/dist/index.html

$(DASHBOARD)/node_modules/.package-lock.json: $(DASHBOARD)/package.json $(DASHBOARD)/package-lock.json
	cd $(DASHBOARD) && npm ci --no-audit --no-fund

$(DASHBOARD)/dist/index.html: $(DASHBOARD)/node_modules/.package-lock.json $(DASHBOARD)/index.html $(DASHBOARD)/vite.config.js $(wildcard $(DASHBOARD)/src/*)
	cd $(DASHBOARD) && npm run build

# The demo: replays the recording, prints the summary, keeps the dashboard up until Ctrl-C.
run: $(VENV)/.installed dashboard
	$(BIN)/corec run --config $(CONFIG) --keep-serving

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/lint-imports

test: lint dashboard
	$(BIN)/pytest

bench: bench-bus bench-pipeline bench-exchange-sync bench-ledger bench-alerts bench-api

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

bench-api: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/bench_api.py

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache $(DASHBOARD)/dist $(DASHBOARD)/node_modules
