"""aiocache-http: correct, fast HTTP caching for aiohttp, with a requests layer on the
same backends (``aiocache_http.sync``)."""

from __future__ import annotations

from typing import Any

from .backends import BACKEND_CLASSES, BACKENDS, CacheBackend, init_backend, load_class
from .backends.base import BaseCache, ConfigurationError
from .backends.health import BackendTimeoutError, BackendUnavailableError, CircuitState
from .backends.memory import DictCache, MemoryCache
from .events import CacheEvent
from .models import CachedRequest, utcnow
from .policy import (
    ALL_METHODS,
    DO_NOT_CACHE,
    EXPIRE_IMMEDIATELY,
    NEVER_EXPIRE,
    CacheSettings,
    create_key,
)
from .response import CachedClientResponse, CachedResponse, OriginClientResponse
from .serializers import DeserializationError, Serializer
from .session import CachedClientSession, CachedSession, CacheMixin

# Backends whose client library is an optional extra load on first use.
_LAZY = {name: info.module for info in BACKENDS for name in (info.backend, info.storage)
         if info.module != "base"} | {"DynamoDbCache": "dynamodb"}  # aiohttp-client-cache's spelling


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return load_class(_LAZY[name], name)
    raise AttributeError(f"module 'aiocache_http' has no attribute {name!r}")


__all__ = [
    "ALL_METHODS",
    "BACKENDS",
    "BACKEND_CLASSES",
    "DO_NOT_CACHE",
    "EXPIRE_IMMEDIATELY",
    "NEVER_EXPIRE",
    "BackendTimeoutError",
    "BackendUnavailableError",
    "BaseCache",
    "CacheBackend",
    "CacheEvent",
    "CacheMixin",
    "CacheSettings",
    "CachedClientResponse",
    "CachedClientSession",
    "CachedRequest",
    "CachedResponse",
    "CachedSession",
    "CircuitState",
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
