"""aiocache-http: correct, fast HTTP caching for aiohttp, with a requests layer on the
same backends (``aiocache_http.sync``)."""

from __future__ import annotations

from typing import Any

from .backends import BACKEND_CLASSES, CacheBackend, DictCache, init_backend
from .backends.base import BaseCache, ConfigurationError
from .backends.memory import MemoryCache
from .models import CachedRequest, utcnow
from .policy import (
    ALL_METHODS,
    DO_NOT_CACHE,
    EXPIRE_IMMEDIATELY,
    NEVER_EXPIRE,
    CacheActions,
    CacheSettings,
    create_key,
)
from .response import CachedClientResponse, CachedResponse, OriginClientResponse
from .serializers import DeserializationError, Serializer
from .session import CachedClientSession, CachedSession, CacheMixin

# Backends whose client library is an optional extra load on first use.
_LAZY = {
    "SQLiteBackend": ("sqlite", "SQLiteBackend"),
    "SQLiteCache": ("sqlite", "SQLiteCache"),
    "RedisBackend": ("redis", "RedisBackend"),
    "RedisCache": ("redis", "RedisCache"),
    "MongoDBBackend": ("mongodb", "MongoDBBackend"),
    "MongoDBCache": ("mongodb", "MongoDBCache"),
    "GridFSBackend": ("gridfs", "GridFSBackend"),
    "GridFSCache": ("gridfs", "GridFSCache"),
    "DynamoDBBackend": ("dynamodb", "DynamoDBBackend"),
    "DynamoDBCache": ("dynamodb", "DynamoDBCache"),
    "DynamoDbCache": ("dynamodb", "DynamoDbCache"),
    "FileBackend": ("filesystem", "FileBackend"),
    "FileCache": ("filesystem", "FileCache"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        try:
            return getattr(importlib.import_module(f".backends.{module}", __name__), attr)
        except ModuleNotFoundError as e:
            raise ImportError(
                f"{name} is not available: {e}. Install it with "
                f"pip install 'aiocache-http[{module}]'"
            ) from e
    raise AttributeError(f"module 'aiocache_http' has no attribute {name!r}")


__all__ = [
    "ALL_METHODS",
    "BACKEND_CLASSES",
    "DO_NOT_CACHE",
    "EXPIRE_IMMEDIATELY",
    "NEVER_EXPIRE",
    "BaseCache",
    "CacheActions",
    "CacheBackend",
    "CacheMixin",
    "CacheSettings",
    "CachedClientResponse",
    "CachedClientSession",
    "CachedRequest",
    "CachedResponse",
    "CachedSession",
    "ConfigurationError",
    "DeserializationError",
    "DictCache",
    "MemoryCache",
    "OriginClientResponse",
    "Serializer",
    "create_key",
    "init_backend",
    "utcnow",
]
