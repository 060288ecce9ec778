"""How the shared suites build each backend. Add a backend here and it runs the
contract suite (test_contract.py) and the end-to-end suite (test_e2e.py).

A factory gets the pytest ``request`` (to pull in server fixtures such as a
redis-server) and a fresh ``tmp_path``, and returns an unopened backend; ``**settings``
are cache settings. Backends whose server cannot run here are gated by an environment
variable named in the README, never skipped silently in CI.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from aiocache_http import BACKENDS, CacheBackend

Factory = Callable[[pytest.FixtureRequest, Path, dict[str, Any]], CacheBackend]


def _memory(request: pytest.FixtureRequest, tmp_path: Path, settings: dict[str, Any]) -> CacheBackend:
    return CacheBackend(**settings)


def _sqlite(request: pytest.FixtureRequest, tmp_path: Path, settings: dict[str, Any]) -> CacheBackend:
    from aiocache_http.backends.sqlite import SQLiteBackend

    return SQLiteBackend(tmp_path / "cache.sqlite", **settings)


def _redis_namespace(request: pytest.FixtureRequest) -> str:
    """One namespace per test (shared by the backends a test makes), unique per run."""
    return f"t{_RUN}-{hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:12]}"


def _redis(request: pytest.FixtureRequest, tmp_path: Path, settings: dict[str, Any]) -> CacheBackend:
    from aiocache_http.backends.redis import RedisBackend

    server = request.getfixturevalue("redis_server_hfe")  # hash-field TTL needs Redis >= 7.4
    return RedisBackend(_redis_namespace(request), server.url, layout="hash", **settings)


def _redis_keys(request: pytest.FixtureRequest, tmp_path: Path, settings: dict[str, Any]) -> CacheBackend:
    from aiocache_http.backends.redis import RedisBackend

    server = request.getfixturevalue("redis_server")
    return RedisBackend(_redis_namespace(request), server.url, layout="keys", **settings)


def _redis_cluster(request: pytest.FixtureRequest, tmp_path: Path, settings: dict[str, Any]) -> CacheBackend:
    from aiocache_http.backends.redis import RedisBackend

    cluster = request.getfixturevalue("redis_cluster")
    return RedisBackend(_redis_namespace(request), cluster.url, cluster=True, **settings)


_RUN = uuid.uuid4().hex[:6]


def _test_id(request: pytest.FixtureRequest) -> str:
    """Unique per test and run, shared by the backends one test makes."""
    return f"t{_RUN}-{hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:12]}"


def _mongodb(request: pytest.FixtureRequest, tmp_path: Path, settings: dict[str, Any]) -> CacheBackend:
    from aiocache_http.backends.mongodb import MongoDBBackend

    from .mongo_fakes import fake_client

    return MongoDBBackend("aiocache_http_test", connection=fake_client(request), **settings)


def _gridfs(request: pytest.FixtureRequest, tmp_path: Path, settings: dict[str, Any]) -> CacheBackend:
    from aiocache_http.backends.gridfs import GridFSBackend

    from .mongo_fakes import enable_fake_gridfs, fake_client

    enable_fake_gridfs(request)
    return GridFSBackend("aiocache_http_test", connection=fake_client(request), **settings)


def _mongodb_real(request: pytest.FixtureRequest, tmp_path: Path, settings: dict[str, Any]) -> CacheBackend:
    from aiocache_http.backends.mongodb import MongoDBBackend

    from .mongo_fakes import real_db_name, real_mongo_url

    return MongoDBBackend(real_db_name(request), host=real_mongo_url(), **settings)


def _gridfs_real(request: pytest.FixtureRequest, tmp_path: Path, settings: dict[str, Any]) -> CacheBackend:
    from aiocache_http.backends.gridfs import GridFSBackend

    from .mongo_fakes import real_db_name, real_mongo_url

    return GridFSBackend(real_db_name(request), host=real_mongo_url(), **settings)


def _dynamodb(request: pytest.FixtureRequest, tmp_path: Path, settings: dict[str, Any]) -> CacheBackend:
    from aiocache_http.backends.dynamodb import DynamoDBBackend

    server = request.getfixturevalue("moto_server")
    return DynamoDBBackend("aiocache-http-test", namespace=_test_id(request), create_table=True,
                           **server.client_options(), **settings)


def _filesystem(request: pytest.FixtureRequest, tmp_path: Path, settings: dict[str, Any]) -> CacheBackend:
    from aiocache_http.backends.filesystem import FileBackend

    return FileBackend(tmp_path / "http_cache", **settings)

# One factory per backend of the registry (a backend added there without one here fails
# at import), then the variants of a backend worth running the suites against too.
_BUILDERS: dict[str, Factory] = {
    "memory": _memory,
    "sqlite": _sqlite,
    "redis": _redis,
    "mongodb": _mongodb,
    "gridfs": _gridfs,
    "dynamodb": _dynamodb,
    "filesystem": _filesystem,
}
FACTORIES: dict[str, Factory] = {info.name: _BUILDERS[info.name] for info in BACKENDS}
FACTORIES |= {"redis-keys": _redis_keys, "redis-cluster": _redis_cluster}
if os.environ.get("AIOCACHE_HTTP_MONGO_URL"):  # a real MongoDB server (see the README)
    FACTORIES["mongodb-real"] = _mongodb_real
    FACTORIES["gridfs-real"] = _gridfs_real
