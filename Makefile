# The project's few commands. Everything installs into .venv (uv, from PyPI).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test unit faults-heavy lint format schemas demo dev-up dev-down deploy-check bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## create .venv with the project and its dev tools

test: $(STAMP) ## every test tier on a real Kafka broker and PostgreSQL (started if needed)
	$(BIN)/pytest

unit: $(STAMP) ## the unit tests only (no services needed)
	$(BIN)/pytest tests/unit

faults-heavy: $(STAMP) ## fault scenarios 2-4 at 10,000 events (slow; see docs/reliability.md)
	FAULTS_EVENTS=10000 $(BIN)/pytest tests/faults -m heavy

lint: $(STAMP) ## ruff (lint and format check), mypy --strict, schemas/ up to date
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/programmes schemas --check

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

deploy-check: $(STAMP) ## Dockerfile, Kubernetes manifests, compose file and image lock, offline
	deploy/check.sh

schemas: $(STAMP) ## regenerate schemas/ from the event models
	$(BIN)/programmes schemas

BENCH_ARGS ?= --scale full
bench: $(STAMP) ## the figures of README "Benchmarks" (BENCH_ARGS="--scale smoke" for a quick check)
	$(BIN)/python -m bench $(BENCH_ARGS)

demo: $(STAMP) ## the whole flow on the local stack, ending with a verification URL
	$(BIN)/programmes demo

dev-up: $(STAMP) ## start the local Kafka broker and PostgreSQL, and migrate its database
	$(BIN)/programmes dev up
	eval "$$($(BIN)/programmes dev up --env 2>/dev/null)" && $(BIN)/programmes migrate

dev-down: $(STAMP)
	$(BIN)/programmes dev down

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
