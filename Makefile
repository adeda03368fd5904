# Two entry points do all setup on a fresh Debian machine: `make demo` and `make test`.
# Both bootstrap .venv; `make test` also needs promtool, amtool and pdftoppm (see system-deps).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint typecheck unit system-deps bench soak clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Re-install when pyproject.toml changes; one stamp per extra.
$(VENV)/.sandbox-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[sandbox]'
	touch $@

$(VENV)/.test-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

demo: $(VENV)/.sandbox-installed
	scripts/system-deps --demo
	$(BIN)/drwatch demo

system-deps:
	scripts/system-deps

lint: $(VENV)/.test-installed
	$(BIN)/ruff check .

typecheck: $(VENV)/.test-installed
	$(BIN)/mypy

unit: $(VENV)/.test-installed system-deps
	$(BIN)/pytest -q

test: lint typecheck unit

# Every benchmark (fleets of 100 to 10,000 resources, history, report, Kafka), then one table
# of their figures; under 10 minutes on 2 cores. The per-service scripts (bench/*_poll.py)
# run on their own.
bench: $(VENV)/.test-installed
	$(BIN)/python bench/table.py

# About 10 minutes, outside `make test`: the exporter under injected AWS faults, checked for
# memory, thread and fd leaks and a verifying history afterwards (bench/soak.py).
soak: $(VENV)/.test-installed
	$(BIN)/python bench/soak.py --minutes 10

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
