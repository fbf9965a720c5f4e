# Everything runs from a project-local virtualenv so a fresh machine needs only python3 (3.11+).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install test lint run bench chaos clean

install: $(STAMP)

# The worker depends on the client distribution in client/ (headswap-client): both are
# installed editable, the client first so pip finds it here rather than on an index.
$(STAMP): pyproject.toml client/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ./client -e '.[dev]'
	touch $(STAMP)

# Two test processes, a file each at a time: the integration tests mostly wait on real
# processes (Redis, the sandbox, Celery), so two halve the wall time on 2 cores.
test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check worker tasks config client tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

run: $(STAMP)
	$(BIN)/headswap demo

bench: $(STAMP)
	$(BIN)/python -m bench.run

chaos: $(STAMP)
	$(BIN)/python -m tests.chaos.run
	HEADSWAP_MALFORMED_JOBS=10000 $(BIN)/python -m pytest -q tests/integration/test_malformed_volume.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info client/build client/*.egg-info
