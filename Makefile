# Backdrop task runner. `make test` works on a fresh clone: it creates .venv and installs
# everything the suite needs (from PyPI only), then runs ruff, mypy (strict on chalicelib/ and
# app.py, configured in pyproject.toml) and pytest.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test test-fast lint install clean run demo bench

$(STAMP): pyproject.toml requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

# Unit + functional tests only (moto in-process, no state machine execution): well under a minute.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit tests/functional -m "not slow"

# The whole stack on 127.0.0.1 (moto + the real app; Bedrock and Rekognition are stand-ins).
run: $(STAMP)
	$(BIN)/python -m backend.local run

# Headless: sign in, upload the sample photos, submit, wait, print the report, stop.
demo: $(STAMP)
	$(BIN)/python -m backend.local demo

# Benchmarks: figures against targets, PASS/MISS (docs/performance.md); not part of `make test`.
bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
