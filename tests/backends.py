"""How the shared suites build each backend. Add a backend here and it runs the
contract suite (test_contract.py) and the end-to-end suite (test_e2e.py).

A factory gets the pytest ``request`` (to pull in server fixtures such as a
redis-server) and a fresh ``tmp_path``, and returns an unopened backend; ``**settings``
are cache settings. Backends whose server cannot run here are gated by an environment
variable named in the README, never skipped silently in CI.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from aiocache_http import CacheBackend

Factory = Callable[[pytest.FixtureRequest, Path, dict[str, Any]], CacheBackend]


def _memory(request: pytest.FixtureRequest, tmp_path: Path, settings: dict[str, Any]) -> CacheBackend:
    return CacheBackend(**settings)


def _sqlite(request: pytest.FixtureRequest, tmp_path: Path, settings: dict[str, Any]) -> CacheBackend:
    from aiocache_http.backends.sqlite import SQLiteBackend

    return SQLiteBackend(tmp_path / "cache.sqlite", **settings)


FACTORIES: dict[str, Factory] = {
    "memory": _memory,
    "sqlite": _sqlite,
}
