"""Items written and read in parts: the incremental side of the storage contract.

:meth:`BaseCache.open_write` returns an :class:`ItemWriter`: parts go in one after the
other and the item appears at its key only on :meth:`ItemWriter.commit`, whole, at once;
:meth:`ItemWriter.abort` (or a writer never committed) leaves the key as it was. The
item's first bytes (its head: the envelope's header holds the body's length and digest)
are known only at the end: they are given to ``commit(head)``, and the item is the head
followed by the parts; ``open_write(..., head_size)`` tells how long it will be.
:meth:`BaseCache.open_read` returns an :class:`ItemReader` that hands the item out in
parts, from any offset, as many times as asked (one snapshot: a later write to the key
does not change what an open reader reads).

The defaults here buffer: :class:`BufferedWriter` keeps the parts and writes the item
whole on commit, and :class:`WholeReader` reads it whole. Storages that can do better
(filesystem, SQLite, GridFS) subclass :class:`SpillingWriter` and :class:`ItemReader`:
an item up to :data:`INLINE_LIMIT` is still written and read in one piece (one round
trip, as before), a larger one goes to storage in :data:`PART_SIZE` parts and is read
back the same way, so its size never has to fit in memory.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .base import BaseCache

PART_SIZE = 256 * 1024
"""The unit of incremental storage IO: parts are written and read in this size."""

INLINE_LIMIT = 1024 * 1024
"""Items up to this size are written and read in one piece."""

Data = bytes | bytearray | memoryview


class ItemWriter(ABC):
    """Writes one item in parts (see the module docstring)."""

    @abstractmethod
    async def write(self, data: Data) -> None: ...

    @abstractmethod
    async def commit(self, head: bytes = b"") -> None:
        """Make ``head`` + the written parts the item at its key, whole, at once."""

    @abstractmethod
    async def abort(self) -> None:
        """Drop what was written; the key keeps its previous item. Safe to call twice."""


class BufferedWriter(ItemWriter):
    """The default writer: parts kept in memory, the item written whole on commit."""

    __slots__ = ("_expires", "_key", "_parts", "_size", "_storage")

    def __init__(self, storage: BaseCache, key: str, expires: datetime | None) -> None:
        self._storage, self._key, self._expires = storage, key, expires
        self._parts: list[Data] | None = []
        self._size = 0

    async def write(self, data: Data) -> None:
        if self._parts is None:
            return
        self._size += len(data)
        limit = self._storage.max_item_size
        if limit is not None and self._size > limit:
            self._parts = None
            raise ValueError(f"the item for {self._key!r} passes {self._storage!r}'s limit of "
                             f"{limit} bytes: not stored")
        self._parts.append(data)

    async def commit(self, head: bytes = b"") -> None:
        if self._parts is None:
            raise RuntimeError("commit() after abort() or commit()")
        value, self._parts = b"".join([head, *self._parts]), None
        await self._storage.write(self._key, value, self._expires)

    async def abort(self) -> None:
        self._parts = None


class SpillingWriter(ItemWriter):
    """Buffers an item up to :data:`INLINE_LIMIT`; a small item is written whole on
    commit, a larger one spills into storage in parts of exactly :data:`PART_SIZE`
    bytes (the last one shorter), through the three storage-specific methods; its head
    goes to :meth:`_publish`."""

    def __init__(self, storage: BaseCache, key: str, expires: datetime | None, head_size: int = 0) -> None:
        self.storage, self.key, self.expires, self.head_size = storage, key, expires, head_size
        self._buffer = bytearray()
        self._spilled = False
        self._done = False

    @abstractmethod
    async def _spill(self, part: bytes) -> None:
        """Store the next part where nothing reads it yet."""

    @abstractmethod
    async def _publish(self, head: bytes) -> None:
        """Make ``head`` + the spilled parts the item at the key, at once."""

    @abstractmethod
    async def _discard(self) -> None:
        """Delete the spilled parts."""

    async def write(self, data: Data) -> None:
        view = memoryview(data)
        for start in range(0, len(view), PART_SIZE):  # the buffer stays bounded
            if self._done:
                return
            self._buffer += view[start : start + PART_SIZE]
            if len(self._buffer) > INLINE_LIMIT or (self._spilled and len(self._buffer) >= PART_SIZE):
                await self._flush(whole_parts_only=True)

    async def _flush(self, whole_parts_only: bool) -> None:
        self._spilled = True
        end = len(self._buffer)
        if whole_parts_only:
            end -= end % PART_SIZE
        for start in range(0, end, PART_SIZE):
            with memoryview(self._buffer) as view:
                part = bytes(view[start : min(start + PART_SIZE, end)])
            await self._spill(part)
        del self._buffer[:end]

    async def commit(self, head: bytes = b"") -> None:
        if self._done:
            raise RuntimeError("commit() after abort() or commit()")
        if len(head) != self.head_size:
            raise ValueError(f"a head of {len(head)} bytes where {self.head_size} were announced")
        try:
            if not self._spilled:
                value = head + self._buffer
                self._buffer = bytearray()
                await self.storage.write(self.key, bytes(value), self.expires)
            else:
                if self._buffer:
                    await self._flush(whole_parts_only=False)
                await self._publish(head)
        except BaseException:
            await self.abort()
            raise
        self._done = True

    async def abort(self) -> None:
        if self._done:
            return
        self._done = True
        self._buffer = bytearray()
        if self._spilled:
            await self._discard()


class ItemReader(ABC):
    """One stored item, read in parts (see the module docstring). ``whole`` is the item
    itself when it was read in one piece (small items), else None."""

    size: int
    whole: bytes | None = None

    @abstractmethod
    def parts(self, start: int = 0) -> AsyncIterator[bytes]:
        """The item's bytes from offset ``start`` to its end, in parts."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release what the reader holds open (a file, a cursor)."""


class WholeReader(ItemReader):
    """An item already in memory, handed out in :data:`PART_SIZE` parts."""

    __slots__ = ("size", "whole")

    def __init__(self, data: bytes) -> None:
        self.whole: bytes | None = data
        self.size = len(data)

    async def parts(self, start: int = 0) -> AsyncIterator[bytes]:
        data = self.whole or b""
        for offset in range(start, len(data), PART_SIZE):
            yield data[offset : offset + PART_SIZE]


__all__ = ["INLINE_LIMIT", "PART_SIZE", "BufferedWriter", "ItemReader", "ItemWriter",
           "SpillingWriter", "WholeReader"]
