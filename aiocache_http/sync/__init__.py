"""The requests layer: requests-cache's API over aiocache-http's async backends.

    from aiocache_http.sync import CachedSession, install_cache
    session = CachedSession("http_cache", backend="sqlite", expire_after=360)

Switching from requests-cache is a change of import. Backends are requests-cache's
classes (``SQLiteCache``, ``RedisCache``...), each over an async backend that can also
serve a ``CachedClientSession`` (``session.cache.backend``); the async backends
themselves (``SQLiteBackend()``...) are accepted too. Backend calls run on one private
event loop in a daemon thread (see :mod:`aiocache_http.sync.bridge`).
"""

from __future__ import annotations

try:
    import requests  # noqa: F401
except ImportError as e:  # pragma: no cover - depends on the installation
    raise ImportError(
        "aiocache_http.sync needs the requests library: pip install 'aiocache-http[sync]'"
    ) from e

from ..models import utcnow
from ..policy import ALL_METHODS, DO_NOT_CACHE, EXPIRE_IMMEDIATELY, NEVER_EXPIRE, CacheSettings
from .backends import (
    BACKEND_CLASSES,
    DynamoDbCache,
    FileCache,
    GridFSCache,
    MongoCache,
    RedisCache,
    SQLiteCache,
    init_backend,
)
from .bridge import BRIDGE, LoopBridge
from .cache import BaseCache
from .cache_keys import create_key
from .models import AnyResponse, CachedHTTPResponse, CachedRequest, CachedResponse, OriginalResponse
from .patch import clear, delete, disabled, enabled, get_cache, install_cache, is_installed, uninstall_cache
from .serializers import SERIALIZERS
from .session import CachedSession
from .storage import (
    BaseStorage,
    DictStorage,
    DynamoDbDict,
    FileDict,
    GridFSDict,
    LRUFileDict,
    MongoDict,
    RedisDict,
    RedisHashDict,
    SQLiteDict,
)

__all__ = [
    "ALL_METHODS",
    "BACKEND_CLASSES",
    "BRIDGE",
    "DO_NOT_CACHE",
    "EXPIRE_IMMEDIATELY",
    "NEVER_EXPIRE",
    "SERIALIZERS",
    "AnyResponse",
    "BaseCache",
    "BaseStorage",
    "CacheSettings",
    "CachedHTTPResponse",
    "CachedRequest",
    "CachedResponse",
    "CachedSession",
    "DictStorage",
    "DynamoDbCache",
    "DynamoDbDict",
    "FileCache",
    "FileDict",
    "GridFSCache",
    "GridFSDict",
    "LRUFileDict",
    "LoopBridge",
    "MongoCache",
    "MongoDict",
    "OriginalResponse",
    "RedisCache",
    "RedisDict",
    "RedisHashDict",
    "SQLiteCache",
    "SQLiteDict",
    "clear",
    "create_key",
    "delete",
    "disabled",
    "enabled",
    "get_cache",
    "init_backend",
    "install_cache",
    "is_installed",
    "uninstall_cache",
    "utcnow",
]
