"""Response bodies that need not fit in memory, at the backend level.

:class:`ResponseWriter` stores one response while its body arrives (the sink of the tee
in :mod:`aiocache_http.streaming`): one item per key, encoded as the body goes by (body
chunks, then the head that holds the body's length and digest, written in front of it
on commit) into a storage writer that makes it appear at its key only once committed.
Every storage call passes the backend's gate: a failing storage drops the entry, never
the caller's stream.

:class:`StoredBodyReader` reads a large item back: its head first (verified before
anything of it is used), then its body in chunks as the caller reads it, hashed on the
way: the last chunk is handed over only once the whole body matches the digest in the
verified head. A body that does not is a ``StoredBodyError`` (as a cut connection would
be) and the item is deleted.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import zlib
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any, Literal

from ..models import CachedResponse, StoredBodyError
from ..serializers import DeserializationError, EnvelopeEncoder, Head
from .health import Kind, current_budget, spending
from .parts import INLINE_LIMIT, PART_SIZE, Data, ItemReader, ItemWriter

if TYPE_CHECKING:
    from .base import CacheBackend

logger = logging.getLogger("aiocache_http")

_FAILED: Any = object()


class ResponseWriter:
    """Stores ``response`` at ``keys`` while its body is written in chunks.

    Create with :meth:`CacheBackend.open_response`. Calls must not overlap (the tee
    serializes them). A body up to :data:`INLINE_LIMIT` is kept in memory and stored on
    commit as any response is (one write per key); it can then be shared
    (:meth:`shareable`) with the requests that waited for it. A larger one goes to
    storage in parts as it comes, through the storage's incremental writer (or, for a
    format that cannot be written in parts, is collected and stored whole on commit).
    """

    def __init__(self, backend: CacheBackend, response: CachedResponse, keys: Sequence[str]) -> None:
        self.backend = backend
        self.response = response
        self.keys = list(keys)
        self._kept: list[bytes] | None = []  # while the body is small
        self._kept_size = 0
        self._writers: list[tuple[EnvelopeEncoder, ItemWriter, bytearray]] = []  # once it is large
        self._whole: io.BytesIO | None = None  # once it is large, for a format read whole
        self._state = "open"  # -> committed | aborted
        # The budget of the request that opened it: its writes come as the caller reads the
        # body, after the driver returned, and still spend that request's one deadline (a
        # request whose read timed out does not wait for its write too).
        self._budget = current_budget()

    @property
    def open(self) -> bool:
        return self._state == "open"

    async def _store(self, call: Any) -> Any:
        result = await self.backend._guard("write", call, _FAILED, Kind.WRITE)
        if result is _FAILED:
            await self.abort()
        return result

    async def write(self, chunk: Data) -> None:
        """Store the next body chunk (the caller keeps ownership of it)."""
        if self._state != "open" or not len(chunk):
            return
        if self._kept is not None and self._kept_size + len(chunk) <= INLINE_LIMIT:
            self._kept_size += len(chunk)  # (kept in memory: no storage call, no budget)
            self._kept.append(bytes(chunk))
            return
        with spending(self._budget):
            await self._write_large(chunk)

    async def _write_large(self, chunk: Data) -> None:
        if self._kept is not None:  # past INLINE_LIMIT with this chunk: to storage from now on
            self._kept_size += len(chunk)
            kept, self._kept = self._kept, None
            if not await self._start():
                return
            for part in kept:
                if not await self._write(part):
                    return
        await self._write(chunk)

    async def _start(self) -> bool:
        backend = self.backend
        if not backend.serializer.streams:
            self._whole = io.BytesIO()
            return True
        for key in self.keys:
            encoder = backend.serializer.encoder(self.response, key)
            assert encoder is not None
            # Not through the gate: opening does no IO (the first write does), and the
            # circuit must count what the storage did, not what it buffered.
            writer = await backend.raw_responses.open_write(key, self.response.expires, encoder.head_size)
            self._writers.append((encoder, writer, bytearray()))
        return True

    async def _write(self, chunk: Data) -> bool:
        """Encode ``chunk`` for each key; hand the storage whole parts (each one IO)."""
        if self._whole is not None:
            self._whole.write(chunk)
            return True
        for encoder, writer, pending in self._writers:
            pending += encoder.body(chunk)
            if len(pending) >= PART_SIZE:
                part = bytes(pending)
                pending.clear()
                if await self._store(writer.write(part)) is _FAILED:
                    return False
        return True

    async def commit(self) -> bool:
        """Store the item at every key (the body is complete). False if it was not stored."""
        if self._state != "open":
            return False
        with spending(self._budget):
            return await self._commit()

    async def _commit(self) -> bool:
        backend = self.backend
        if self._kept is not None or self._whole is not None:  # the body is in memory
            if self._kept is not None:
                body = b"".join(self._kept)
            else:
                assert self._whole is not None
                body, self._whole = self._whole.getvalue(), None
            whole = dataclasses.replace(self.response, body=body)
            if not await backend.save_response_at(whole, self.keys):  # fail-open, as any store
                self._state, self._kept = "aborted", None
                return False
            if self._kept is not None:
                self.response = whole  # kept: shared with the requests that waited for it
        else:
            for encoder, writer, pending in self._writers:
                pending += encoder.end()
                if pending and await self._store(writer.write(bytes(pending))) is _FAILED:
                    return False
                try:
                    head = encoder.head()
                except ValueError as e:  # too large for the format
                    logger.warning("%r: not stored: %s", backend, e)
                    await self.abort()
                    return False
                if await self._store(writer.commit(head)) is _FAILED:
                    return False
            backend._changed(self.keys)
        self._state = "committed"
        return True

    def shareable(self) -> CachedResponse | None:
        """The stored response with its body, when the body was small enough to keep."""
        if self._state != "committed" or self._kept is None:
            return None
        return self.response

    async def abort(self) -> None:
        """Drop everything written so far; nothing appears at the keys."""
        if self._state != "open":
            return
        self._state = "aborted"
        self._kept = self._whole = None
        for _, writer, _pending in self._writers:  # clean-up: not judged by the circuit
            await self.backend._guard("abort write", writer.abort(), None, Kind.CLOSE)


class StoredBodyReader:
    """A large item read in parts (see the module docstring): :meth:`head` once, then the
    body with :meth:`chunks` or :meth:`read`, as many times as needed; then :meth:`close`."""

    __slots__ = ("_backend", "_closed", "_head", "_key", "_reader")

    def __init__(self, backend: CacheBackend, key: str, reader: ItemReader) -> None:
        self._backend, self._key, self._reader = backend, key, reader
        self._head: Head | None = None
        self._closed = False

    async def _next(self, parts: AsyncIterator[bytes], kind: Kind = Kind.READ) -> Any:
        """The next part through the gate: bytes, None at the end, _FAILED if it failed."""
        return await self._backend._guard("read", anext(parts, None), _FAILED, kind)

    async def head(self) -> Head | Literal["whole"] | None:
        """The verified head (DeserializationError if it is not); None if storage failed;
        ``"whole"`` for an item that is not read in parts (a format's own: :meth:`item`)."""
        serializer, parts = self._backend.serializer, self._reader.parts()
        data, wanted = bytearray(), serializer.head_prefix
        try:
            while len(data) < wanted:
                part = await self._next(parts)
                if part is _FAILED:
                    return None
                if part is None:
                    raise DeserializationError("item shorter than its head (truncated?)")
                data += part
                if wanted == serializer.head_prefix and len(data) >= wanted:
                    if not serializer.in_parts(data):
                        return "whole"
                    wanted = serializer.head_length(data)
        finally:
            await parts.aclose()  # type: ignore[attr-defined]
        self._head = serializer.loads_head(memoryview(data)[:wanted], self._reader.size, self._key)
        return self._head

    async def item(self) -> bytes | None:
        """The whole item (one not read in parts: see :meth:`head`); None if storage failed."""
        data, parts = io.BytesIO(), self._reader.parts()
        try:
            while (part := await self._next(parts)) is not None:
                if part is _FAILED:
                    return None
                data.write(part)
        finally:
            await parts.aclose()  # type: ignore[attr-defined]
            await self.close()
        return data.getvalue()

    async def chunks(self) -> AsyncIterator[bytes]:
        head = self._head
        if head is None or self._closed:
            raise StoredBodyError("the stored body is not open")
        remaining, digest = head.body_length, self._backend.serializer.body_hasher()
        inflater = zlib.decompressobj() if head.compressed else None
        parts = self._reader.parts(head.body_start)
        held = b""  # the last chunk waits for the digest
        try:
            while remaining > 0:
                # Mid-body a failed read cannot fall back to the origin: the longer deadline.
                part = await self._next(parts, Kind.MAINTENANCE)
                if part is _FAILED:
                    raise StoredBodyError("reading the stored body failed")
                if part is None:
                    raise StoredBodyError("the stored body ended early (deleted meanwhile?)")
                part = part[:remaining]
                remaining -= len(part)
                digest.update(part)
                out = inflater.decompress(part) if inflater is not None else part
                if out:
                    if held:
                        yield held
                    held = out
        finally:
            await parts.aclose()  # type: ignore[attr-defined]
        if digest.digest() != head.body_digest:
            await self._backend._discard(self._key, "body checksum mismatch (corrupt)")
            raise StoredBodyError("the stored body is corrupt")
        try:
            rest = inflater.flush() if inflater is not None else b""
        except zlib.error as e:
            await self._backend._discard(self._key, f"corrupt body: {e}")
            raise StoredBodyError("the stored body is corrupt") from e
        if held:
            yield held
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
            await self._backend._guard("close", self._reader.close(), None, Kind.CLOSE)


__all__ = ["ResponseWriter", "StoredBodyReader"]
