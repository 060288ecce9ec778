"""The one list of backends. Everything that names backends is derived from it:
``BACKEND_CLASSES`` and ``init_backend`` (here and in ``aiocache_http.sync``), the lazy
names of ``aiocache_http``, the requests-cache names of ``aiocache_http.sync``, the
"install this extra" errors, the README backends table and the test factories.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BackendInfo:
    name: str
    """The alias passed as ``backend="..."``."""
    module: str
    """The module of ``aiocache_http.backends`` holding the classes."""
    backend: str
    """The async backend class."""
    storage: str
    """The byte-level storage class (``BaseCache`` subclass)."""
    requests_cache_name: str
    """The requests-cache-style class in ``aiocache_http.sync``."""
    extra: str = ""
    """``pip install 'aiocache-http[extra]'`` brings its client library ("": none needed)."""
    aliases: tuple[str, ...] = ()
    """Other names accepted for ``backend=``."""


BACKENDS: tuple[BackendInfo, ...] = (
    BackendInfo("sqlite", "sqlite", "SQLiteBackend", "SQLiteCache", "SQLiteCache"),
    BackendInfo("redis", "redis", "RedisBackend", "RedisCache", "RedisCache", "redis"),
    BackendInfo("mongodb", "mongodb", "MongoDBBackend", "MongoDBCache", "MongoCache", "mongodb",
                ("mongo",)),
    BackendInfo("gridfs", "gridfs", "GridFSBackend", "GridFSCache", "GridFSCache", "gridfs"),
    BackendInfo("dynamodb", "dynamodb", "DynamoDBBackend", "DynamoDBCache", "DynamoDbCache",
                "dynamodb"),
    BackendInfo("filesystem", "filesystem", "FileBackend", "FileCache", "FileCache", "filesystem",
                ("file",)),
    BackendInfo("memory", "base", "CacheBackend", "MemoryCache", "BaseCache"),
)
DEFAULT = "sqlite"

BY_ALIAS: dict[str, BackendInfo] = {alias: info for info in BACKENDS
                                    for alias in (info.name, *info.aliases)}

__all__ = ["BACKENDS", "BY_ALIAS", "DEFAULT", "BackendInfo"]
