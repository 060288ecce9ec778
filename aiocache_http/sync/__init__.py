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
from .cache import DEFAULT_CACHE_NAME, BaseCache
from .cache_keys import (
    create_key,
    normalize_body,
    normalize_headers,
    normalize_params,
    normalize_request,
    normalize_url,
)
from .models import AnyResponse, CachedHTTPResponse, CachedRequest, CachedResponse, OriginalResponse
from .patch import clear, delete, disabled, enabled, get_cache, install_cache, is_installed, uninstall_cache
from .serializers import (
    SERIALIZERS,
    CattrStage,
    SerializerPipeline,
    Stage,
    bson_document_serializer,
    bson_serializer,
    dict_serializer,
    dynamodb_document_serializer,
    init_serializer,
    json_serializer,
    orjson_serializer,
    pickle_serializer,
    safe_pickle_serializer,
    ujson_serializer,
    utf8_encoder,
    utf8_serializer,
    yaml_serializer,
)
from .session import CachedSession, CacheMixin, OriginalSession, set_response_defaults
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

# requests-cache's defaults, under its names.
DEFAULT_METHODS = ("GET", "HEAD")
DEFAULT_STATUS_CODES = (200,)
DEFAULT_IGNORED_PARAMS: tuple[str, ...] = ()
"""Nothing is left out of the key by default: credentials (``Authorization``, ``api_key``,
``access_token``...) are always keyed as a keyed hash and redacted in storage, so a list
built on this (``[*DEFAULT_IGNORED_PARAMS, "X-Other"]``) never makes two users share an
entry. requests-cache's value lists the credentials, which it leaves out of the key."""

__all__ = [
    "ALL_METHODS",
    "BACKEND_CLASSES",
    "BRIDGE",
    "DEFAULT_CACHE_NAME",
    "DEFAULT_IGNORED_PARAMS",
    "DEFAULT_METHODS",
    "DEFAULT_STATUS_CODES",
    "DO_NOT_CACHE",
    "EXPIRE_IMMEDIATELY",
    "NEVER_EXPIRE",
    "SERIALIZERS",
    "AnyResponse",
    "BaseCache",
    "BaseStorage",
    "CacheMixin",
    "CacheSettings",
    "CachedHTTPResponse",
    "CachedRequest",
    "CachedResponse",
    "CachedSession",
    "CattrStage",
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
    "OriginalSession",
    "RedisCache",
    "RedisDict",
    "RedisHashDict",
    "SQLiteCache",
    "SQLiteDict",
    "SerializerPipeline",
    "Stage",
    "bson_document_serializer",
    "bson_serializer",
    "clear",
    "create_key",
    "delete",
    "dict_serializer",
    "disabled",
    "dynamodb_document_serializer",
    "enabled",
    "get_cache",
    "init_backend",
    "init_serializer",
    "install_cache",
    "is_installed",
    "json_serializer",
    "normalize_body",
    "normalize_headers",
    "normalize_params",
    "normalize_request",
    "normalize_url",
    "orjson_serializer",
    "pickle_serializer",
    "safe_pickle_serializer",
    "set_response_defaults",
    "ujson_serializer",
    "uninstall_cache",
    "utcnow",
    "utf8_encoder",
    "utf8_serializer",
    "yaml_serializer",
]
