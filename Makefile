# `make demo` and `make test` do all the set-up: a virtual environment in .venv with
# jobops installed, and (for the tests) a local Redis if none answers.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test chaos bench install

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/.installed

demo: $(BIN)/.installed
	$(BIN)/jobops demo

# The quality gate: lint, types, then every test (unit and integration).
test: $(BIN)/.installed
	scripts/ensure-redis
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest

# Thousands of URNs while workers are killed, Redis restarts and the API misbehaves.
chaos: $(BIN)/.installed
	scripts/ensure-redis
	$(BIN)/pytest -m slow

# jobops against a naive baseline and Celery's floor (about 40 minutes), then the cost of
# the shared token and limits per call. Results and charts go to bench/results/.
bench: $(BIN)/.installed
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	scripts/ensure-redis
	$(BIN)/python -m bench.compare
	$(BIN)/python -m bench.limits_overhead
