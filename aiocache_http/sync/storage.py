"""Synchronous dict views (``MutableMapping[str, bytes]``) over the async storages,
under requests-cache's storage names. Each call runs on the bridge loop.

``SQLiteDict(...)``, ``RedisHashDict(...)``... take the arguments of the async storage
they wrap (``aiocache_http.SQLiteCache``, ``aiocache_http.RedisCache``...), which is
imported on first use, so a missing optional dependency only fails there.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Iterable, Iterator, MutableMapping
from datetime import datetime
from typing import Any

from ..backends.base import BaseCache
from ..backends.memory import MemoryCache
from .bridge import run


async def _collect(items: AsyncIterator[str]) -> list[str]:
    return [item async for item in items]


class BaseStorage(MutableMapping[str, bytes]):
    """A dict view of one async storage (key -> bytes; a ``str`` value is stored UTF-8).

    Besides the mapping protocol it has the async storage's methods, synchronous:
    ``read``, ``write``, ``delete``, ``bulk_delete``, ``contains``, ``size``, ``clear``.
    """

    def __init__(self, storage: BaseCache | None = None) -> None:
        self.storage: BaseCache = storage if storage is not None else MemoryCache()

    # -- the async storage's methods, synchronous ----------------------------------
    def read(self, key: str) -> bytes | None:
        return run(self.storage.read(key))

    def write(self, key: str, value: bytes | str, expires: datetime | None = None) -> None:
        run(self.storage.write(key, value, expires))

    def delete(self, key: str) -> None:
        """Delete ``key`` if present (``del view[key]`` raises KeyError instead)."""
        run(self.storage.delete(key))

    def bulk_delete(self, keys: Iterable[str]) -> None:
        run(self.storage.bulk_delete(list(keys)))

    def contains(self, key: str) -> bool:
        return run(self.storage.contains(key))

    def size(self) -> int:
        return run(self.storage.size())

    def clear(self) -> None:
        run(self.storage.clear())

    def close(self) -> None:
        run(self.storage.close())

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
        return iter(run(_collect(self.storage.iter_keys())))  # one round trip, then a list

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
