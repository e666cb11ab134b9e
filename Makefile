# Every target does its own set-up from a clean clone: it creates .venv and installs the project into it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-dev
SHOWROOM_MODEL_DIR ?= $(abspath ../shared/models)
export SHOWROOM_MODEL_DIR

.PHONY: test lint format bench clean demo

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,postgres]'
	touch $@

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Long measurements against the peers named in the issues; results go into BENCHMARKS.md.
bench: $(STAMP)
	$(PY) -m pip install -q -e '.[dev,postgres,bench]'
	$(PY) -m pip install -q --no-deps 'norfair==2.1.1'
	@for f in bench/bench_*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

# The whole product on this machine: broker, simulated stores' nodes, aggregator, dashboard (Ctrl-C stops).
demo: $(STAMP)
	$(VENV)/bin/showroom demo $(DEMO_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
