"""Response bodies that need not fit in memory, at the backend level.

:class:`ResponseWriter` stores one response while its body arrives (the sink of the tee
in :mod:`aiocache_http.streaming`): the item is encoded in parts (head, body chunks,
trailer with checksum and signature) into one storage writer per key, and appears at
its keys only once committed. Every storage call passes the backend's gate: a failing
storage drops the entry, never the caller's stream.

:class:`StoredBodyReader` is a verified body left in storage (a large hit): the lookup
has already read the whole item once and checked it, so the body is read again, in
chunks, only when the caller reads it.
"""

from __future__ import annotations

import io
import logging
import zlib
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from ..models import CachedResponse, StoredBodyError
from ..serializers import ItemEncoder
from .parts import INLINE_LIMIT, Data, ItemReader, ItemWriter

if TYPE_CHECKING:
    from .base import CacheBackend

logger = logging.getLogger("aiocache_http")

_FAILED: Any = object()


class ResponseWriter:
    """Stores ``response`` at ``keys`` while its body is written in chunks.

    Create with :meth:`CacheBackend.open_response`. Calls must not overlap (the tee
    serializes them). A small body is also kept, so the stored response can be shared
    (:meth:`shareable`) with requests that waited for it. A format that cannot be
    written in parts (pickle, a custom serializer) has its body collected, then stored
    whole on commit.
    """

    def __init__(self, backend: CacheBackend, response: CachedResponse, keys: Sequence[str]) -> None:
        self.backend = backend
        self.response = response
        self.keys = list(keys)
        self._writers: list[tuple[ItemEncoder, ItemWriter]] = []
        self._whole: io.BytesIO | None = None if backend.serializer.streams else io.BytesIO()
        self._kept: list[bytes] | None = []
        self._kept_size = 0
        self._state = "new"  # new -> open -> committed | aborted

    @property
    def open(self) -> bool:
        return self._state in ("new", "open")

    async def _open(self) -> bool:
        self._state = "open"
        if self._whole is not None:
            return True
        backend = self.backend
        for key in self.keys:
            writer = await backend._guard(
                "write", backend.raw_responses.open_write(key, self.response.expires), _FAILED)
            if writer is _FAILED:
                return await self._fail()
            encoder = backend.serializer.encoder(self.response)
            assert encoder is not None
            self._writers.append((encoder, writer))
            if not await self._store(writer.write(encoder.head)):
                return False
        return True

    async def _store(self, call: Any) -> bool:
        if await self.backend._guard("write", call, _FAILED) is _FAILED:
            return await self._fail()
        return True

    async def _fail(self) -> bool:
        await self.abort()
        return False

    async def write(self, chunk: Data) -> None:
        """Store the next body chunk (the caller keeps ownership of it)."""
        if self._state == "new" and not await self._open():
            return
        if self._state != "open" or not len(chunk):
            return
        if self._kept is not None:
            self._kept_size += len(chunk)
            if self._kept_size <= INLINE_LIMIT:
                self._kept.append(bytes(chunk))
            else:
                self._kept = None
        if self._whole is not None:
            self._whole.write(chunk)
            return
        for encoder, writer in self._writers:
            if not await self._store(writer.write(encoder.body(chunk))):
                return

    async def commit(self) -> bool:
        """Store the item at every key (the body is complete). False if it was not stored."""
        if self._state == "new" and not await self._open():
            return False
        if self._state != "open":
            return False
        backend, response = self.backend, self.response
        if self._whole is not None:
            response.body = self._whole.getvalue()
            self._whole = None
            for key in self.keys:
                data = backend.serializer.dumps(response)
                if not await self._store(backend.raw_responses.write(key, data, response.expires)):
                    return False
            response.body = b""
        else:
            for encoder, writer in self._writers:
                if not await self._store(writer.write(encoder.tail())):
                    return False
            for _, writer in self._writers:
                if not await self._store(writer.commit()):
                    return False
        self._state = "committed"
        response.cache_key = self.keys[0]
        return True

    def shareable(self) -> CachedResponse | None:
        """The stored response with its body, when the body was small enough to keep."""
        if self._state != "committed" or self._kept is None:
            return None
        self.response.body = b"".join(self._kept)
        return self.response

    async def abort(self) -> None:
        """Drop everything written so far; nothing appears at the keys."""
        if self._state in ("committed", "aborted"):
            return
        self._state = "aborted"
        self._kept = self._whole = None
        for _, writer in self._writers:
            await self.backend._guard("abort write", writer.abort(), None)


class StoredBodyReader:
    """The body of a verified item, read again from storage in chunks (see the module
    docstring). Each :meth:`chunks` call is a new pass over the same snapshot."""

    __slots__ = ("_closed", "_compressed", "_end", "_reader", "_start")

    def __init__(self, reader: ItemReader, start: int, end: int, compressed: bool) -> None:
        self._reader, self._start, self._end, self._compressed = reader, start, end, compressed
        self._closed = False

    async def chunks(self) -> AsyncIterator[bytes]:
        if self._closed:
            raise StoredBodyError("the stored body was closed")
        remaining = self._end - self._start
        inflater = zlib.decompressobj() if self._compressed else None
        parts = self._reader.parts(self._start)
        try:
            while remaining > 0:
                try:
                    part = await anext(parts)
                except StopAsyncIteration:
                    break
                except Exception as e:
                    raise StoredBodyError(f"reading the stored body failed: {type(e).__name__}: {e}") from e
                if len(part) > remaining:
                    part = part[:remaining]
                remaining -= len(part)
                out = inflater.decompress(part) if inflater is not None else part
                if out:
                    yield out
        finally:
            await parts.aclose()  # type: ignore[attr-defined]
        if remaining:
            raise StoredBodyError("the stored body ended early (deleted meanwhile?)")
        if inflater is not None:
            rest = inflater.flush()
            if rest:
                yield rest

    async def read(self) -> bytes:
        body = io.BytesIO()  # grows in place: no second copy of a large body
        async for chunk in self.chunks():
            body.write(chunk)
        return body.getvalue()

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self._reader.close()


__all__ = ["ResponseWriter", "StoredBodyReader"]
