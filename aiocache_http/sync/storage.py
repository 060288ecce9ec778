"""Synchronous dict views (``MutableMapping[str, bytes]``) over the async storages,
under requests-cache's storage names. Each call runs on the bridge loop.

``SQLiteDict(...)``, ``RedisHashDict(...)``... take the arguments of the async storage
they wrap (``aiocache_http.SQLiteCache``, ``aiocache_http.RedisCache``...), which is
imported on first use, so a missing optional dependency only fails there.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, MutableMapping
from datetime import datetime
from typing import Any, TypeVar

from ..backends.base import BaseCache, CacheBackend
from ..backends.health import Kind
from ..backends.memory import MemoryCache
from .bridge import run

T = TypeVar("T")


async def _collect(items: AsyncIterator[str]) -> list[str]:
    return [item async for item in items]


class BaseStorage(MutableMapping[str, bytes]):
    """A dict view of one async storage (key -> bytes; a ``str`` value is stored UTF-8).

    Besides the mapping protocol it has the async storage's methods, synchronous:
    ``read``, ``write``, ``delete``, ``bulk_delete``, ``contains``, ``size``, ``clear``.

    A view of a backend's storage (``session.cache.responses``) calls it through the
    backend's gate: deadlines, circuit breaker, fail-open (``strict`` raises).
    """

    def __init__(self, storage: BaseCache | None = None, backend: CacheBackend | None = None) -> None:
        self.storage: BaseCache = storage if storage is not None else MemoryCache()
        self.backend = backend

    def _call(self, op: str, call: Callable[[], Awaitable[T]], default: T, kind: Kind = Kind.READ) -> T:
        """Run ``call()`` on the bridge loop, through the backend's gate if there is one.
        The storage coroutine is made there: if the bridge refuses, none is left unawaited."""
        backend = self.backend

        async def gated() -> T:
            if backend is None:
                return await call()
            if kind is Kind.WRITE:
                await backend._guard_write(op, self.storage, call())  # type: ignore[arg-type]
                return default
            return await backend._guard(op, call(), default, kind)

        return run(gated())

    # -- the async storage's methods, synchronous ----------------------------------
    def read(self, key: str) -> bytes | None:
        return self._call("read", lambda: self.storage.read(key), None)

    def write(self, key: str, value: bytes | str, expires: datetime | None = None) -> None:
        self._call("write", lambda: self.storage.write(key, value, expires), None, Kind.WRITE)

    def delete(self, key: str) -> None:
        """Delete ``key`` if present (``del view[key]`` raises KeyError instead)."""
        self._call("delete", lambda: self.storage.delete(key), None, Kind.DELETE)

    def bulk_delete(self, keys: Iterable[str]) -> None:
        keys = list(keys)
        self._call("delete", lambda: self.storage.bulk_delete(keys), None, Kind.DELETE)

    def contains(self, key: str) -> bool:
        return bool(self._call("contains", lambda: self.storage.contains(key), False))

    def size(self) -> int:
        return int(self._call("size", self.storage.size, 0, Kind.MAINTENANCE))

    def clear(self) -> None:
        self._call("clear", self.storage.clear, None, Kind.MAINTENANCE)

    def close(self) -> None:
        self._call("close", self.storage.close, None, Kind.CLOSE)

    # -- MutableMapping --------------------------------------------------------------
    def __getitem__(self, key: str) -> bytes:
        value = self.read(key)
        if value is None:
            raise KeyError(key)
        return value

    def __setitem__(self, key: str, value: bytes | str) -> None:
        self.write(key, value)

    def __delitem__(self, key: str) -> None:
        if not self.contains(key):
            raise KeyError(key)
        self.delete(key)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.contains(key)

    def __iter__(self) -> Iterator[str]:
        backend = self.backend

        async def keys() -> list[str]:
            found = self.storage.iter_keys()
            if backend is not None:
                found = backend._guard_iter("list keys", found)
            return await _collect(found)

        return iter(run(keys()))  # one round trip, then a list

    def __len__(self) -> int:
        return self.size()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.storage!r})"


class DictStorage(BaseStorage):
    """An in-process dict (requests-cache's memory storage)."""

    def __init__(self, max_entries: int | None = None) -> None:
        super().__init__(MemoryCache(max_entries))


class _LazyStorage(BaseStorage):
    """A view over an optional async storage class, imported when first constructed."""

    _wraps: tuple[str, str] = ("", "")  # (module in aiocache_http.backends, class)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        module, name = self._wraps
        try:
            cls = getattr(importlib.import_module(f"aiocache_http.backends.{module}"), name)
        except (ImportError, AttributeError) as e:
            raise ImportError(f"{type(self).__name__} needs aiocache_http.backends.{module}.{name}: "
                              f"pip install 'aiocache-http[{module}]' ({e})") from e
        super().__init__(cls(*args, **kwargs))


class SQLiteDict(_LazyStorage):
    _wraps = ("sqlite", "SQLiteCache")


class RedisDict(_LazyStorage):
    """One Redis key per item (``{namespace:collection_name}:key``)."""

    _wraps = ("redis", "RedisCache")
    _layout = "keys"

    def __init__(self, namespace: str = "http_cache", collection_name: str = "responses",
                 *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("layout", self._layout)
        super().__init__(namespace, collection_name, *args, **kwargs)


class RedisHashDict(RedisDict):
    """One Redis hash at ``namespace:collection_name``."""

    _layout = "hash"


class MongoDict(_LazyStorage):
    _wraps = ("mongodb", "MongoDBCache")


class GridFSDict(_LazyStorage):
    _wraps = ("gridfs", "GridFSCache")


class DynamoDbDict(_LazyStorage):
    _wraps = ("dynamodb", "DynamoDBCache")


class FileDict(_LazyStorage):
    _wraps = ("filesystem", "FileCache")


__all__ = [
    "BaseStorage",
    "DictStorage",
    "DynamoDbDict",
    "FileDict",
    "GridFSDict",
    "MongoDict",
    "RedisDict",
    "RedisHashDict",
    "SQLiteDict",
]
