"""The requests layer: requests-cache's API over aiocache-http's async backends.

    from aiocache_http.sync import CachedSession, install_cache
    session = CachedSession("http_cache", backend="sqlite", expire_after=360)

Switching from requests-cache is a change of import. Backends are the async ones
(``SQLiteBackend``, ``RedisBackend``...) or their requests-cache spellings here
(``SQLiteCache``, ``RedisCache``...); one backend can serve an async
``CachedClientSession`` and a sync ``CachedSession`` at once. Backend calls run on one
private event loop in a daemon thread (see :mod:`aiocache_http.sync.bridge`).
"""

from __future__ import annotations

from typing import Any

from ..models import utcnow
from ..policy import ALL_METHODS, DO_NOT_CACHE, EXPIRE_IMMEDIATELY, NEVER_EXPIRE, CacheSettings
from . import backends as _backends
from .backends import BACKEND_CLASSES, BaseCache, init_backend
from .bridge import BRIDGE, LoopBridge
from .cache import SyncBackend
from .keys import create_key
from .patch import clear, delete, disabled, enabled, get_cache, install_cache, is_installed, uninstall_cache
from .response import CachedResponse, OriginalResponse
from .session import CachedSession
from .storage import (
    BaseStorage,
    DictStorage,
    DynamoDbDict,
    FileDict,
    GridFSDict,
    MongoDict,
    RedisDict,
    RedisHashDict,
    SQLiteDict,
)


def __getattr__(name: str) -> Any:  # SQLiteCache, RedisCache...: built on first use
    return getattr(_backends, name)


__all__ = [
    "ALL_METHODS",
    "BACKEND_CLASSES",
    "BRIDGE",
    "DO_NOT_CACHE",
    "EXPIRE_IMMEDIATELY",
    "NEVER_EXPIRE",
    "BaseCache",
    "BaseStorage",
    "CacheSettings",
    "CachedResponse",
    "CachedSession",
    "DictStorage",
    "DynamoDbCache",
    "DynamoDbDict",
    "FileCache",
    "FileDict",
    "GridFSCache",
    "GridFSDict",
    "LoopBridge",
    "MongoCache",
    "MongoDict",
    "OriginalResponse",
    "RedisCache",
    "RedisDict",
    "RedisHashDict",
    "SQLiteCache",
    "SQLiteDict",
    "SyncBackend",
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
