"""requests-cache's backend classes: ``SQLiteCache``, ``RedisCache``, ``MongoCache``,
``GridFSCache``, ``DynamoDbCache``, ``FileCache``, each a :class:`BaseCache` (synchronous
methods) over the async backend of that database, with requests-cache's constructor
arguments. ``serializer=`` takes requests-cache's serializers (a name or a pipeline).
The async backend is imported when a class is first constructed, so one whose optional
dependency is missing fails there, naming it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, NoReturn

from ..backends import BACKEND_CLASSES as ASYNC_BACKEND_CLASSES
from ..backends import CacheBackend, default_backend_alias
from ..backends import init_backend as init_async_backend
from ..backends.registry import BY_ALIAS
from ..policy.expiration import ExpirationTime
from ..policy.settings import CacheSettings
from .cache import DEFAULT_CACHE_NAME, BaseCache
from .models import CachedResponse
from .serializers import backend_format
from .storage import BaseStorage, DictStorage

logger = logging.getLogger("aiocache_http")

BackendSpecifier = str | BaseCache | CacheBackend | type[BaseCache] | type[CacheBackend] | None


class _Backend(BaseCache):
    """A requests-cache backend class over the async backend ``_alias``."""

    _alias = "memory"

    def __init__(self, cache_name: str | Path = DEFAULT_CACHE_NAME, **kwargs: Any) -> None:
        decode_content = kwargs.pop("decode_content", True)
        kwargs["serializer"] = backend_format(kwargs.get("serializer"), decode_content)
        if kwargs["serializer"] is None:
            del kwargs["serializer"]
        try:
            cls = ASYNC_BACKEND_CLASSES[self._alias]
        except ImportError as e:
            raise ImportError(f"{type(self).__name__} needs an optional dependency: "
                              f"pip install 'aiocache-http[{self._alias}]' ({e})") from e
        backend = cls(str(cache_name), **kwargs)
        backend.settings.decode_content = decode_content
        self._attach(backend)


class SQLiteCache(_Backend):
    """SQLite: ``SQLiteCache(db_path, use_cache_dir=, use_temp=, use_memory=, busy_timeout=,
    fast_save=, wal=, serializer=, **settings)``."""

    _alias = "sqlite"

    def __init__(self, db_path: str | Path = DEFAULT_CACHE_NAME, **kwargs: Any) -> None:
        kwargs.pop("timeout", None)  # sqlite3.connect's; busy_timeout here
        if kwargs.get("busy_timeout") is not None:  # milliseconds in requests-cache
            kwargs["busy_timeout"] = kwargs["busy_timeout"] / 1000
        super().__init__(db_path, **kwargs)

    @property
    def db_path(self) -> Path | str:
        return self.backend.db_path  # type: ignore[no-any-return]

    def count(self, expired: bool = True) -> int:
        """How many responses; with ``expired=False``, only those not expired."""
        return self.responses.count(expired=expired)  # type: ignore[no-any-return]

    def sorted(self, key: str = "expires", reversed: bool = False, limit: int | None = None,
               expired: bool = True) -> Iterator[CachedResponse]:
        """Responses sorted by ``"expires"``, ``"size"`` or ``"key"``."""
        return self.responses.sorted(key, reversed, limit, expired)  # type: ignore[no-any-return]

    def filter(self, valid: bool = True, expired: bool = True, invalid: bool = False,
               older_than: ExpirationTime = None) -> Iterator[CachedResponse]:
        if valid and not invalid and older_than is None:
            return self.responses.sorted(expired=expired)  # type: ignore[no-any-return]
        return super().filter(valid, expired, invalid, older_than)

    def delete(self, *keys: str, expired: bool = False, vacuum: bool = True,
               **kwargs: Any) -> None:
        """As :meth:`BaseCache.delete`; after more than one key (or a purge) the file is
        vacuumed, returning the freed space to the OS, unless ``vacuum=False``."""
        super().delete(*keys, expired=expired, **kwargs)
        if vacuum and (expired or kwargs or len(keys) > 1):
            self.responses.vacuum()


class RedisCache(_Backend):
    """Redis: ``RedisCache(namespace, connection=None, serializer=None, ttl=True,
    ttl_offset=3600, host=, port=, **settings_and_redis_options)``."""

    _alias = "redis"

    def __init__(self, namespace: str = DEFAULT_CACHE_NAME, connection: Any = None,
                 serializer: Any = None, ttl: bool = True, ttl_offset: float = 3600, *,
                 host: str | None = None, port: int | None = None, **kwargs: Any) -> None:
        if (host is not None or port is not None) and "address" not in kwargs:
            kwargs["address"] = (host or "localhost", int(port or 6379))
        if connection is not None:
            kwargs["connection"] = connection
        super().__init__(namespace, serializer=serializer, ttl=ttl, ttl_offset=ttl_offset, **kwargs)


class MongoCache(_Backend):
    """MongoDB: ``MongoCache(db_name, connection=None, **settings)``."""

    _alias = "mongodb"

    def __init__(self, db_name: str = DEFAULT_CACHE_NAME, connection: Any = None,
                 **kwargs: Any) -> None:
        if connection is not None:
            kwargs["connection"] = connection
        super().__init__(db_name, **kwargs)

    def set_ttl(self, ttl: Any, overwrite: bool = False) -> NoReturn:
        """requests-cache's TTL index on ``created_at``: not here. The backend keeps a TTL
        index of its own, relative to each response's expiry (so a stale response stays
        for revalidation a while): ``MongoCache(ttl_offset=...)``, ``ttl=False`` for none."""
        raise NotImplementedError(
            "MongoCache.set_ttl() is not supported: MongoDB deletes each response ttl_offset "
            "after it expires (a TTL index the backend creates itself); pass "
            "MongoCache(ttl_offset=timedelta(days=7)) to keep expired responses that long, or "
            "MongoCache(ttl=False) for no TTL index")


class GridFSCache(MongoCache):
    """GridFS: ``GridFSCache(db_name, connection=None, **settings)``."""

    _alias = "gridfs"


class DynamoDbCache(_Backend):
    """DynamoDB: ``DynamoDbCache(table_name, namespace=, region_name=, endpoint_url=,
    create_table=True, ttl=True, **settings_and_boto_options)``. The table is created if
    missing, as in requests-cache."""

    _alias = "dynamodb"

    def __init__(self, table_name: str = DEFAULT_CACHE_NAME, **kwargs: Any) -> None:
        kwargs.setdefault("create_table", True)
        if kwargs.get("connection") is None:
            kwargs.pop("connection", None)
        super().__init__(table_name, **kwargs)


class FileCache(_Backend):
    """A directory: ``FileCache(cache_name, use_cache_dir=, use_temp=, serializer=,
    extension=, max_cache_bytes=, **settings)``. As in requests-cache, responses are JSON
    files by default, with the serializer's extension: ``<key>.ach.json`` (the ``.ach``
    keeps them recognisably the cache's own). A body over 1 MiB is stored as an envelope
    item instead, written and read in parts (see ``aiocache_http.serializers``)."""

    _alias = "filesystem"

    def __init__(self, cache_name: str | Path = DEFAULT_CACHE_NAME, **kwargs: Any) -> None:
        if kwargs.get("serializer") is None:
            kwargs["serializer"] = "json"  # requests-cache's default here: readable files, no pickle
        if "extension" not in kwargs:
            kwargs["extension"] = _extension(kwargs.get("serializer"))
        super().__init__(cache_name, **kwargs)

    @property
    def cache_dir(self) -> Path:
        return self.backend.cache_dir  # type: ignore[no-any-return]

    def paths(self) -> list[Path]:
        """The file of every stored response."""
        return self.responses.paths()  # type: ignore[no-any-return]


def _extension(serializer: Any) -> str | None:
    """requests-cache's file extension for a serializer: its name, ``pkl`` for pickle,
    ``json`` for every JSON library."""
    name = serializer if isinstance(serializer, str) else getattr(serializer, "name", None)
    if not name:
        return None
    name = name.replace("pickle", "pkl")
    return "json" if "json" in name else name


_BY_NAME: dict[str, type[BaseCache]] = {cls.__name__: cls for cls in (
    BaseCache, SQLiteCache, RedisCache, MongoCache, GridFSCache, DynamoDbCache, FileCache)}
# alias -> requests-cache class, from the one registry of backends.
_CLASSES: dict[str, type[BaseCache]] = {alias: _BY_NAME[info.requests_cache_name]
                                        for alias, info in BY_ALIAS.items()}


class _Classes(Mapping[str, type[BaseCache]]):
    def __getitem__(self, alias: str) -> type[BaseCache]:
        return _CLASSES[alias]

    def __iter__(self) -> Iterator[str]:
        return iter(_CLASSES)

    def __len__(self) -> int:
        return len(_CLASSES)


BACKEND_CLASSES: Mapping[str, type[BaseCache]] = _Classes()


def init_backend(cache_name: str | Path = DEFAULT_CACHE_NAME, backend: BackendSpecifier = None,
                 **kwargs: Any) -> BaseCache:
    """A backend from an alias (``"sqlite"``, ``"redis"``... with requests-cache's
    arguments), a class, an instance, or None (the default: SQLite).

    Given an instance, ``kwargs`` cache settings are applied to it and backend options
    (``use_temp``, ``endpoint_url``...) are ignored, as in requests-cache: the instance
    is already built. An async backend (``SQLiteBackend()``...) is accepted too.
    """
    if isinstance(backend, (BaseCache, CacheBackend)):
        cache = backend if isinstance(backend, BaseCache) else BaseCache.wrap(backend)
        settings, ignored = CacheSettings.split(kwargs)
        settings.pop("serializer", None)  # fixed with the backend: it decides how items are read
        settings.pop("decode_content", None)
        if ignored:
            logger.debug("%r: ignoring %s: the backend is already built", cache, sorted(ignored))
        cache.settings.update(**settings)
        return cache
    if isinstance(backend, type) and issubclass(backend, BaseCache):
        return backend(str(cache_name), **kwargs)
    if isinstance(backend, type) and issubclass(backend, CacheBackend):
        return BaseCache.wrap(init_async_backend(str(cache_name), backend, **_async_kwargs(kwargs)))
    alias = default_backend_alias() if backend is None else backend
    if not isinstance(alias, str):
        raise TypeError(f"backend must be a name, a backend or None, not {backend!r}")
    cls = _CLASSES.get(alias.lower())
    if cls is None:
        raise ValueError(f"unknown backend {alias!r}; choose one of {sorted(_CLASSES)}, "
                         "or pass a backend instance (SQLiteCache(), RedisBackend()...)")
    first: Callable[..., Any] = cls.__init__
    name_arg = next(iter(list(_parameters(first))[1:2]), None)
    if name_arg is not None and name_arg in kwargs and name_arg != "cache_name":
        # The backend's own name for cache_name (table_name=, db_path=...) wins over it, as
        # in CachedSession("api_cache", backend="dynamodb", table_name="my-cache-table").
        return cls(**kwargs)
    return cls(str(cache_name), **kwargs)


def _parameters(fn: Callable[..., Any]) -> list[str]:
    import inspect

    return list(inspect.signature(fn).parameters)


def _async_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    decode_content = kwargs.pop("decode_content", True)
    serializer = backend_format(kwargs.pop("serializer", None), decode_content)
    return {**kwargs, **({"serializer": serializer} if serializer is not None else {})}


__all__ = [
    "BACKEND_CLASSES",
    "DEFAULT_CACHE_NAME",
    "BackendSpecifier",
    "BaseCache",
    "BaseStorage",
    "DictStorage",
    "DynamoDbCache",
    "FileCache",
    "GridFSCache",
    "MongoCache",
    "RedisCache",
    "SQLiteCache",
    "init_backend",
]
