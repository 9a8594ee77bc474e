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

# The long chaos run (600 URNs while pool processes and Redis are SIGKILLed, garbage lands
# on the queue and the API misbehaves), three times in a row; figures in
# bench/results/chaos.json. It starts its own Redis. `make test` runs the short one.
chaos: $(BIN)/.installed
	$(BIN)/python -m tests.chaos --profile long --repeat 3

# jobops against fair baselines, end to end (about 50 minutes), then the cost of
# the shared token and limits per call. Results and charts go to bench/results/.
bench: $(BIN)/.installed
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	scripts/ensure-redis
	$(BIN)/python -m bench.compare
	$(BIN)/python -m bench.limits_overhead
