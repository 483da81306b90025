# The two commands a newcomer runs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
HOST ?= 127.0.0.1
PORT ?= 5000

.PHONY: run test lint types pytest venv clean worker

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	touch $@ $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	RELGOV_ENV=$${RELGOV_ENV:-development} $(BIN)/relgov db upgrade
	RELGOV_ENV=$${RELGOV_ENV:-development} $(BIN)/relgov demo --if-empty
	RELGOV_ENV=$${RELGOV_ENV:-development} $(BIN)/relgov run --host $(HOST) --port $(PORT)

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

types: $(TEST_STAMP)
	$(BIN)/mypy

pytest: $(TEST_STAMP)
	$(BIN)/pytest -q $(PYTEST_ARGS)

test: lint types pytest

worker: $(STAMP)
	$(BIN)/relgov worker

clean:
	rm -rf $(VENV) instance .pytest_cache .mypy_cache .ruff_cache
