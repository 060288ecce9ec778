"""In-process storage: a dict, optionally bounded with least-recently-used eviction."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable
from datetime import datetime
from typing import Any

from .base import BaseCache, check_storage_options
from .values import Value, decode_value, encode_value


class MemoryCache(BaseCache):
    """Items live in this process only. ``max_entries`` bounds it (LRU eviction).

    ``cache_name`` and ``collection_name`` are accepted for aiohttp-client-cache's
    ``DictCache(name, collection)`` and mean nothing here: every instance is its own dict.
    """

    def __init__(self, cache_name: str | None = None, collection_name: str | None = None, *,
                 max_entries: int | None = None, **serializer_options: Any) -> None:
        check_storage_options(type(self).__name__, serializer_options)
        if not all(isinstance(name, (str, type(None))) for name in (cache_name, collection_name)):
            raise TypeError("MemoryCache takes names, then max_entries by keyword: "
                            "MemoryCache(max_entries=100)")
        if max_entries is not None and max_entries < 1:
            raise ValueError(f"max_entries must be >= 1 or None, not {max_entries!r}")
        self.max_entries = max_entries
        self.data: OrderedDict[str, tuple[bytes, datetime | None]] = OrderedDict()

    async def read(self, key: str) -> Value | None:
        item = self.data.get(key)
        if item is None:
            return None
        if self.max_entries is not None:
            self.data.move_to_end(key)
        return decode_value(item[0])

    async def write(self, key: str, value: Value, expires: datetime | None = None) -> None:
        self.data[key] = (encode_value(value), expires)
        if self.max_entries is not None:
            self.data.move_to_end(key)
            while len(self.data) > self.max_entries:
                self.data.popitem(last=False)

    async def delete(self, key: str) -> None:
        self.data.pop(key, None)

    async def bulk_delete(self, keys: Iterable[str]) -> None:
        for key in keys:
            self.data.pop(key, None)

    async def contains(self, key: str) -> bool:
        return key in self.data

    async def iter_keys(self) -> AsyncIterator[str]:
        for key in list(self.data):
            yield key

    async def iter_values(self) -> AsyncIterator[Value]:
        for value, _expires in list(self.data.values()):
            yield decode_value(value)

    async def size(self) -> int:
        return len(self.data)

    async def clear(self) -> None:
        self.data.clear()

    async def delete_expired(self, now: datetime) -> int:
        expired = [k for k, (_v, exp) in self.data.items() if exp is not None and exp <= now]
        await self.bulk_delete(expired)
        return len(expired)


DictCache = MemoryCache  # aiohttp-client-cache's name
