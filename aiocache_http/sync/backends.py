"""requests-cache's backend names over the async backend classes.

``SQLiteCache``, ``RedisCache``, ``MongoCache``, ``GridFSCache``, ``DynamoDbCache`` and
``FileCache`` are subclasses of ``SQLiteBackend``, ``RedisBackend``... that take
requests-cache's constructor arguments. Each is built the first time it is asked for,
so a backend whose optional dependency is missing only fails when used, naming it.
``BaseCache`` is the in-memory backend (requests-cache's ``backend='memory'``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..backends import BACKEND_CLASSES as ASYNC_BACKEND_CLASSES
from ..backends import BACKENDS, CacheBackend, LazyClasses, default_backend_alias
from ..backends import init_backend as init_async_backend
from ..backends.registry import BY_ALIAS

DEFAULT_CACHE_NAME = "http_cache"
Adapted = tuple[str, dict[str, Any]]

BackendSpecifier = str | CacheBackend | type[CacheBackend] | None


class BaseCache(CacheBackend):
    """The in-memory backend under requests-cache's name (``backend='memory'``)."""

    def __init__(self, cache_name: str | Path = DEFAULT_CACHE_NAME, **kwargs: Any) -> None:
        super().__init__(str(cache_name), **kwargs)


# Each adapter maps requests-cache's constructor arguments to the async backend's
# (cache_name, keyword arguments). Options left out keep the async backend's default.
def _sqlite(db_path: str | Path = DEFAULT_CACHE_NAME, **kwargs: Any) -> Adapted:
    return str(db_path), kwargs


def _redis(namespace: str = DEFAULT_CACHE_NAME, connection: Any = None, ttl: bool = True,
           ttl_offset: int = 3600, *, host: str | None = None, port: int | None = None,
           **kwargs: Any) -> Adapted:
    if (host is not None or port is not None) and "address" not in kwargs:
        kwargs["address"] = (host or "localhost", int(port or 6379))
    if connection is not None:
        kwargs["connection"] = connection
    return namespace, {"ttl": ttl, "ttl_offset": ttl_offset, **kwargs}


def _mongo(db_name: str = DEFAULT_CACHE_NAME, connection: Any = None, **kwargs: Any) -> Adapted:
    if connection is not None:
        kwargs["connection"] = connection
    return db_name, kwargs


def _dynamodb(table_name: str = DEFAULT_CACHE_NAME, **kwargs: Any) -> Adapted:
    return table_name, kwargs


def _file(cache_name: str | Path = DEFAULT_CACHE_NAME, **kwargs: Any) -> Adapted:
    return str(cache_name), kwargs


_ADAPTERS: dict[str, Callable[..., Adapted]] = {
    "sqlite": _sqlite, "redis": _redis, "mongodb": _mongo, "gridfs": _mongo, "dynamodb": _dynamodb,
    "filesystem": _file,
}
# requests-cache name -> (backend alias, adapter), from the one registry of backends.
_SPECS: dict[str, tuple[str, Callable[..., Adapted]]] = {
    info.requests_cache_name: (info.name, _ADAPTERS[info.name]) for info in BACKENDS
    if info.name in _ADAPTERS
}
ALIASES: dict[str, str] = {alias: info.requests_cache_name for alias, info in BY_ALIAS.items()}
_built: dict[str, type[CacheBackend]] = {"BaseCache": BaseCache}


def backend_class(name: str) -> type[CacheBackend]:
    """The requests-cache-style class ``name`` (e.g. ``"RedisCache"``), built on first use."""
    cls = _built.get(name)
    if cls is not None:
        return cls
    alias, adapt = _SPECS[name]
    try:
        base = ASYNC_BACKEND_CLASSES[alias]
    except KeyError:
        raise ImportError(f"{name} needs the {alias!r} backend, which this installation of "
                          "aiocache-http does not have") from None

    def __init__(self: CacheBackend, *args: Any, **kwargs: Any) -> None:
        cache_name, options = adapt(*args, **kwargs)
        base.__init__(self, cache_name, **options)

    params = list(inspect.signature(adapt).parameters.values())
    self_param = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    __init__.__signature__ = inspect.Signature([self_param, *params])  # type: ignore[attr-defined]
    cls = type(name, (base,), {
        "__init__": __init__, "__module__": __name__, "__qualname__": name,
        "__doc__": f"{base.__name__} with requests-cache's constructor arguments.\n\n{base.__doc__}",
    })
    _built[name] = cls
    return cls


# {alias: requests-cache-style class}, each built on first access.
BACKEND_CLASSES: Mapping[str, type[CacheBackend]] = LazyClasses(ALIASES, backend_class)


def init_backend(cache_name: str | Path = DEFAULT_CACHE_NAME, backend: BackendSpecifier = None,
                 **kwargs: Any) -> CacheBackend:
    """A backend from an alias (``"sqlite"``, ``"redis"``... with requests-cache's
    arguments), a class, an instance (returned as is, with ``kwargs`` applied to its
    settings) or None (the default: SQLite)."""
    if backend is None:
        backend = default_backend_alias()
    if isinstance(backend, str):
        name = ALIASES.get(backend.lower())
        if name is None:
            raise ValueError(f"unknown backend {backend!r}; choose one of {sorted(ALIASES)}, "
                             "or pass a backend instance (SQLiteCache(), RedisBackend()...)")
        if name in _SPECS and next(iter(inspect.signature(_SPECS[name][1]).parameters)) in kwargs:
            # The backend's own name for cache_name (table_name=, db_path=...) wins over it, as
            # in CachedSession("api_cache", backend="dynamodb", table_name="my-cache-table").
            return backend_class(name)(**kwargs)
        return backend_class(name)(str(cache_name), **kwargs)
    return init_async_backend(str(cache_name), backend, **kwargs)


def __getattr__(name: str) -> Any:
    if name in _SPECS:
        return backend_class(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BACKEND_CLASSES",
    "DEFAULT_CACHE_NAME",
    "BackendSpecifier",
    "BaseCache",
    "DynamoDbCache",  # noqa: F822 - built on first access (module __getattr__)
    "FileCache",  # noqa: F822
    "GridFSCache",  # noqa: F822
    "MongoCache",  # noqa: F822
    "RedisCache",  # noqa: F822
    "SQLiteCache",  # noqa: F822
    "init_backend",
]
