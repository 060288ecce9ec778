# Two commands on a fresh machine: `make run` (demo) and `make test` (everything CI runs).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: run test lint typecheck unit floor newest servers bench conformance clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.base: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $@ $(VENV)/.base

run: $(VENV)/.base
	$(BIN)/python examples/demo.py

# Real servers the tests talk to (installed once; the fixtures start them on free ports).
servers:
	@command -v redis-server >/dev/null && command -v redis-cli >/dev/null || \
		{ apt-get update -qq && apt-get install -y -qq redis-server redis-tools >/dev/null; }

lint: $(VENV)/.dev
	$(BIN)/ruff check aiocache_http tests benchmarks examples

typecheck: $(VENV)/.dev
	$(BIN)/mypy --strict aiocache_http

# Two pytest-xdist workers (WORKERS=0: one process). Each worker starts its own servers on
# free ports and has its own temporary directories; most tests wait on IO (servers, the
# origin, deadlines), so two processes finish in a little over half the time.
WORKERS ?= 2
PYTEST   = -m pytest -q -p no:cacheprovider -n $(WORKERS)

unit: $(VENV)/.dev servers
	$(BIN)/python $(PYTEST)

# The suites that drive the sessions, on the other ends of what pyproject.toml allows:
# `floor`, the oldest versions of the libraries whose behaviour the sessions build on
# (aiohttp; requests with urllib3 1.26; aiosqlite) on the oldest Python; `newest`, the
# newest of everything on the newest Python. Each Python where this machine has it (on
# PATH or under pyenv), else the default one (the first line says which ran).
ENDS_SUITES  := tests/test_session.py tests/test_e2e.py tests/test_sync.py tests/test_streaming.py \
	-k 'not (redis or dynamodb or mongodb or gridfs or storage_views)'
ENDS_EXTRAS  := '.[sync,filesystem,redis,mongodb,dynamodb]' pytest pytest-asyncio pytest-xdist hypothesis
find_python   = $(shell for p in python$(1) $$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/$(1)*/bin/python \
	2>/dev/null) $(PYTHON); do $$p -c '' 2>/dev/null && echo $$p && break; done)

FLOOR         := .venv-floor
FLOOR_PINS    := aiohttp==3.9.5 requests==2.28.0 urllib3==1.26.20 aiosqlite==0.20.0
FLOOR_PYTHON  ?= $(call find_python,3.10)
NEWEST        := .venv-newest
NEWEST_PYTHON ?= $(call find_python,3.13)

$(FLOOR)/.dev: pyproject.toml Makefile
	@echo "make floor: $$($(FLOOR_PYTHON) --version) with $(FLOOR_PINS)"
	$(FLOOR_PYTHON) -m venv $(FLOOR)
	$(FLOOR)/bin/pip install -q -e $(ENDS_EXTRAS) $(FLOOR_PINS)
	touch $@

$(NEWEST)/.dev: pyproject.toml Makefile
	@echo "make newest: $$($(NEWEST_PYTHON) --version) with the newest libraries"
	$(NEWEST_PYTHON) -m venv $(NEWEST)
	$(NEWEST)/bin/pip install -q --upgrade -e $(ENDS_EXTRAS)
	touch $@

floor: $(FLOOR)/.dev
	$(FLOOR)/bin/python $(PYTEST) $(ENDS_SUITES)

newest: $(NEWEST)/.dev
	$(NEWEST)/bin/python $(PYTEST) $(ENDS_SUITES)

test: lint typecheck unit floor newest

bench: $(VENV)/.dev servers
	$(BIN)/python benchmarks/bench.py

# The public cache-tests suite through both sessions (cache_control=True); needs node.
CONFORMANCE ?= ../shared/conformance/run.py
conformance: $(VENV)/.dev
	@for adapter in aiocache_http aiocache_http-sync; do \
		$(BIN)/python $(CONFORMANCE) --adapter $$adapter --out /tmp/conformance-aiocache-http \
			| grep -E '^conformance|required fail' || exit 1; \
	done

clean:
	rm -rf $(VENV) $(FLOOR) $(NEWEST) .mypy_cache .ruff_cache .pytest_cache
