"""In-process storage: a dict, optionally bounded with least-recently-used eviction.

Inside a :class:`CacheBackend` the responses storage keeps decoded responses (immutable
:class:`CachedResponse` objects): nothing outside the process can touch them, so a hit
costs a dict lookup, with no decoding, checksum or signature. Through the byte-level
interface (``read``, ``values``...) an object is encoded on demand with the backend's
serializer, so tools see what any other storage would show.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import datetime
from typing import Any

from ..models import CachedResponse
from .base import BaseCache, check_storage_options
from .values import Value, decode_value, encode_value

Item = bytes | CachedResponse


class MemoryCache(BaseCache):
    """Items live in this process only. ``max_entries`` bounds it (LRU eviction).

    ``cache_name`` and ``collection_name`` are accepted for aiohttp-client-cache's
    ``DictCache(name, collection)`` and mean nothing here: every instance is its own dict.
    """

    holds_objects = True
    in_process = True

    def __init__(self, cache_name: str | None = None, collection_name: str | None = None, *,
                 max_entries: int | None = None, **serializer_options: Any) -> None:
        check_storage_options(type(self).__name__, serializer_options)
        if not all(isinstance(name, (str, type(None))) for name in (cache_name, collection_name)):
            raise TypeError("MemoryCache takes names, then max_entries by keyword: "
                            "MemoryCache(max_entries=100)")
        if max_entries is not None and max_entries < 1:
            raise ValueError(f"max_entries must be >= 1 or None, not {max_entries!r}")
        self.max_entries = max_entries
        # key -> item; the expiry apart, only for the items that have one: a stored
        # response is then one object the garbage collector tracks, not two
        self.data: OrderedDict[str, Item] = OrderedDict()
        self.expiry: dict[str, datetime] = {}
        self.encode: Callable[[CachedResponse], bytes] | None = None  # set by the backend
        # key -> (the item stored, the object a user wrote for it through the responses
        # view): handed back as written, as aiohttp-client-cache's DictCache does
        self.written: dict[str, tuple[Item, Any]] = {}

    # -- objects (the backend's hot path: synchronous, nothing to wait for) ------------
    def get_item(self, key: str) -> Item | None:
        item = self.data.get(key)
        if item is not None and self.max_entries is not None:
            with contextlib.suppress(KeyError):  # evicted meanwhile by another thread
                self.data.move_to_end(key)
        return item

    def put_item(self, key: str, value: Item, expires: datetime | None) -> None:
        self.data[key] = value
        if expires is not None:
            self.expiry[key] = expires
        elif self.expiry:
            self.expiry.pop(key, None)
        if self.max_entries is not None:
            self.data.move_to_end(key)
            while len(self.data) > self.max_entries:
                evicted, _item = self.data.popitem(last=False)
                self.expiry.pop(evicted, None)
                self.written.pop(evicted, None)

    def keep_written(self, key: str, obj: Any, before: Item | None) -> None:
        """Remember that the item now at ``key`` was stored from ``obj`` (if one was: the
        item is not ``before``, the one there ahead of the write)."""
        item = self.data.get(key)
        if item is not None and item is not before:
            self.written[key] = (item, obj)

    def written_object(self, key: str, item: Item) -> Any:
        """The object ``item`` was stored from, if it is still the one at ``key``."""
        found = self.written.get(key)
        if found is None or found[0] is not item:
            return None
        return found[1]

    def _bytes(self, value: Item) -> bytes:
        if isinstance(value, bytes):
            return value
        if self.encode is None:
            raise TypeError("this MemoryCache holds responses but has no encoder")
        return self.encode(value)

    # -- the byte-level storage interface -----------------------------------------------
    async def read(self, key: str) -> Value | None:
        value = self.get_item(key)
        if value is None:
            return None
        return self._bytes(value) if isinstance(value, CachedResponse) else decode_value(value)

    _fast_read = read  # the backend reads objects directly only while ``read`` is this one

    async def write(self, key: str, value: Value, expires: datetime | None = None) -> None:
        self.put_item(key, encode_value(value), expires)

    async def delete(self, key: str) -> None:
        self.data.pop(key, None)
        self.expiry.pop(key, None)
        self.written.pop(key, None)

    async def bulk_delete(self, keys: Iterable[str]) -> None:
        for key in keys:
            self.data.pop(key, None)
            self.expiry.pop(key, None)
            self.written.pop(key, None)

    async def contains(self, key: str) -> bool:
        return key in self.data

    async def iter_keys(self) -> AsyncIterator[str]:
        for key in list(self.data):
            yield key

    async def iter_values(self) -> AsyncIterator[Value]:
        for value in list(self.data.values()):
            yield self._bytes(value) if isinstance(value, CachedResponse) else decode_value(value)

    async def iter_items(self) -> AsyncIterator[tuple[str, bytes]]:
        for key, value in list(self.data.items()):
            yield key, self._bytes(value)

    async def size(self) -> int:
        return len(self.data)

    async def clear(self) -> None:
        self.data.clear()
        self.expiry.clear()
        self.written.clear()

    async def delete_expired(self, now: datetime) -> int:
        expired = [k for k, exp in self.expiry.items() if exp <= now]
        await self.bulk_delete(expired)
        return len(expired)


DictCache = MemoryCache  # aiohttp-client-cache's name
