# Two commands on a fresh machine: `make run` (demo) and `make test` (everything CI runs).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: run test lint typecheck unit floor servers bench conformance clean

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

unit: $(VENV)/.dev servers
	$(BIN)/python -m pytest -q -p no:cacheprovider

# The oldest versions pyproject.toml allows of the libraries whose behaviour the sessions
# build on (aiohttp; requests with urllib3 1.26; aiosqlite), on the suites that drive them.
FLOOR      := .venv-floor
FLOOR_PINS := aiohttp==3.9.5 requests==2.28.0 urllib3==1.26.20 aiosqlite==0.20.0

$(FLOOR)/.dev: pyproject.toml Makefile
	$(PYTHON) -m venv $(FLOOR)
	$(FLOOR)/bin/pip install -q -e '.[sync,filesystem,redis,mongodb,dynamodb]' \
		pytest pytest-asyncio hypothesis $(FLOOR_PINS)
	touch $@

floor: $(FLOOR)/.dev
	$(FLOOR)/bin/python -m pytest -q -p no:cacheprovider tests/test_session.py tests/test_e2e.py \
		tests/test_sync.py tests/test_streaming.py \
		-k 'not (redis or dynamodb or mongodb or gridfs or storage_views)'

test: lint typecheck unit floor

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
	rm -rf $(VENV) $(FLOOR) .mypy_cache .ruff_cache .pytest_cache
