"""In-process storage: a dict, optionally bounded with least-recently-used eviction."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable
from datetime import datetime

from .base import BaseCache, to_bytes


class MemoryCache(BaseCache):
    """Items live in this process only. ``max_entries`` bounds it (LRU eviction)."""

    in_process = True

    def __init__(self, max_entries: int | None = None) -> None:
        if max_entries is not None and max_entries < 1:
            raise ValueError(f"max_entries must be >= 1 or None, not {max_entries!r}")
        self.max_entries = max_entries
        self.data: OrderedDict[str, tuple[bytes, datetime | None]] = OrderedDict()

    async def read(self, key: str) -> bytes | None:
        item = self.data.get(key)
        if item is None:
            return None
        if self.max_entries is not None:
            self.data.move_to_end(key)
        return item[0]

    async def write(self, key: str, value: bytes | str, expires: datetime | None = None) -> None:
        self.data[key] = (to_bytes(value), expires)
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

    async def iter_values(self) -> AsyncIterator[bytes]:
        for value, _expires in list(self.data.values()):
            yield value

    async def iter_items(self) -> AsyncIterator[tuple[str, bytes]]:
        for key, (value, _expires) in list(self.data.items()):
            yield key, value

    async def size(self) -> int:
        return len(self.data)

    async def clear(self) -> None:
        self.data.clear()

    async def delete_expired(self, now: datetime) -> int:
        expired = [k for k, (_v, exp) in self.data.items() if exp is not None and exp <= now]
        await self.bulk_delete(expired)
        return len(expired)
