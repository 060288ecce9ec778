"""The body streams the async session hands out as ``response.content``.

:class:`TeeStreamReader` wraps a miss's live aiohttp stream: every reading style
(``read``, ``readany``, ``readline``, ``readexactly``, ``readchunk``, ``iter_chunked``,
``iter_any``, ``iter_chunks``, ``async for line``; ``response.read/text/json`` go through
``content.read()``) returns exactly what the bare stream returns, and what it returns is
fed to a :class:`~aiocache_http.streaming.Tee`. A failed read, a release before the end,
a reader cancelled with data in hand, or the response dropped unread abandons the tee.
A body that has arrived whole by the time the response is handed over (a small one) is
stored at once, whether the caller reads it or not.

:class:`ReplayStream` is a hit's body with the same reading styles, from memory or, for
a large body left in storage, read in chunks from there (a failure mid-way raises
``ClientPayloadError``, as a connection cut would).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import io
import warnings
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import ClientPayloadError, ClientSession, StreamReader
from aiohttp.http_exceptions import LineTooLong
from aiohttp.streams import AsyncStreamIterator, ChunkTupleAsyncStreamIterator

from .models import StoredBody, StoredBodyError
from .streaming import Tee

WAIT_FOR_BODY = 64 * 1024
"""A miss's body up to this size (aiohttp's read buffer) is read in before the response
is handed over, so it is stored read or not."""


LINE_LIMIT = 2 * int(inspect.signature(ClientSession.__init__).parameters["read_bufsize"].default)
"""aiohttp's longest line: its StreamReader's high-water mark at the session's default
``read_bufsize`` (2**16 until aiohttp 3.12, 2**18 since). ``readline()`` / ``readuntil()``
of a longer one raise, on a hit as from the network."""
_LINE_LENGTH_ARG = "max_line_length" in inspect.signature(StreamReader.readline).parameters


def line_too_long(line: bytes, limit: int) -> Exception:
    """The error aiohttp's ``readuntil`` raises for a line over ``limit`` bytes: LineTooLong
    since aiohttp 3.12 (which added ``max_line_length``), ValueError before."""
    if _LINE_LENGTH_ARG:
        return LineTooLong(line[:100] + b"...", limit)  # as aiohttp raises it
    return ValueError("Chunk too big")


async def whole_body(source: StreamReader, expected: int | None) -> bytes | None:
    """The body of a live response if it has arrived whole (waited for when it is small,
    by Content-Length: as :meth:`TeeStreamReader.start`), without taking it from the
    stream: the caller reads it from aiohttp's own stream as it would without a cache.
    None if it has not (or cannot be seen): then it streams through a tee."""
    if (expected is not None and expected <= WAIT_FOR_BODY and not source.is_eof()
            and source.exception() is None):  # (a failed stream never ends: no wait)
        with contextlib.suppress(Exception):  # the caller sees the failure as it reads
            await source.wait_eof()
    return arrived_body(source)


def arrived_body(source: StreamReader) -> bytes | None:
    """:func:`whole_body` without waiting: the body if it has arrived whole already (a
    small one, in the packets of its head), else None. A body arrived in one chunk is
    that chunk itself, not a copy."""
    if not source.is_eof() or source.exception() is not None:
        return None
    if source.at_eof():  # nothing to read (HEAD, 204, an empty body)
        return b""
    buffer = getattr(source, "_buffer", None)  # peeked: what read() will return, in order
    offset = getattr(source, "_buffer_offset", None)
    if buffer is None or offset is None:
        return None  # not a StreamReader we know: the tee sees what is read
    body = b"".join(buffer)
    return body[offset:] if offset else body


class _Iterators:
    """aiohttp's ``StreamReader`` iterators, over the subclass's own read methods."""

    async def read(self, n: int = -1) -> bytes:
        raise NotImplementedError

    async def readany(self) -> bytes:
        raise NotImplementedError

    async def readline(self, *, max_line_length: int | None = None) -> bytes:
        raise NotImplementedError

    def iter_chunked(self, n: int) -> AsyncStreamIterator[bytes]:
        return AsyncStreamIterator(lambda: self.read(n))

    def iter_any(self) -> AsyncStreamIterator[bytes]:
        return AsyncStreamIterator(self.readany)

    def iter_chunks(self) -> ChunkTupleAsyncStreamIterator:
        return ChunkTupleAsyncStreamIterator(self)  # type: ignore[arg-type]  # calls readchunk()

    def __aiter__(self) -> AsyncStreamIterator[bytes]:
        return AsyncStreamIterator(self.readline)


class TeeStreamReader(_Iterators):
    """A live ``aiohttp.StreamReader`` whose data is copied to a tee as it is read.
    Anything not about reading (``at_eof()``, ``exception()``...) is the wrapped stream's."""

    def __init__(self, source: StreamReader, tee: Tee) -> None:
        self._source = source
        self._tee = tee
        self._unfed: list[bytes] = []  # taken by read_nowait(): fed at the next await
        self._finalizer = weakref.finalize(self, tee.abandon_soon, "response dropped unread")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._source, name)

    def __repr__(self) -> str:
        return f"<TeeStreamReader {self._source!r}>"

    # -- what passes --------------------------------------------------------------------
    async def _take(self, read: Callable[[], Awaitable[bytes]]) -> bytes:
        try:
            data = await read()
        except asyncio.IncompleteReadError as e:  # readexactly(): the body ended first, whole
            await self._passed(e.partial)
            raise
        except BaseException as e:
            if not isinstance(e, asyncio.CancelledError):  # a cancelled read lost nothing
                self._abandon(f"reading the body failed: {type(e).__name__}")
            raise
        await self._passed(data)
        return data

    async def _passed(self, data: bytes) -> None:
        """``data`` reached the caller: feed it; store the body if it has ended."""
        tee = self._tee
        if not tee.active:
            return
        try:
            for early in self._unfed:
                await tee.feed(early)
            self._unfed.clear()
            await tee.feed(data)
            if self._source.at_eof() and self._source.exception() is None:
                self._finalizer.detach()
                await tee.finish()
        except BaseException:  # cancelled while storing: the caller keeps its data
            self._abandon("reader cancelled")
            if data and not self._source.at_eof():
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)
                    self._source.unread_data(data)
            raise

    def _abandon(self, reason: str) -> None:
        self._finalizer.detach()
        self._tee.abandon_soon(reason)

    async def start(self) -> None:
        """A body that has already arrived whole (HEAD, 204, any small body) is stored at
        once, read or not, as the driver did before it streamed: peeked, then put back.
        A small body (by Content-Length) still on its way is waited for first: as with
        aiohttp-client-cache, which reads it before ``get()`` returns, a response the
        caller never reads is stored (aiohttp buffers that much without a reader)."""
        data = await whole_body(self._source, self._tee.expected_length)
        if data is None:  # still on its way (or cannot be peeked): stored once read
            return
        self._finalizer.detach()
        await self._tee.feed(data)
        await self._tee.finish()

    # -- reading --------------------------------------------------------------------------
    async def read(self, n: int = -1) -> bytes:
        if n >= 0:
            return await self._take(lambda: self._source.read(n))
        # Unlike aiohttp's read(-1), flow control stays on: the copy to storage may be
        # slower than the network, and the body must not pile up in aiohttp's buffer.
        body = io.BytesIO()  # grows in place: no second copy of the body, as join would
        while chunk := await self._take(self._source.readany):
            body.write(chunk)
        return body.getvalue()

    async def readany(self) -> bytes:
        return await self._take(self._source.readany)

    async def readline(self, *args: Any, **kwargs: Any) -> bytes:
        return await self._take(lambda: self._source.readline(*args, **kwargs))

    async def readuntil(self, *args: Any, **kwargs: Any) -> bytes:
        return await self._take(lambda: self._source.readuntil(*args, **kwargs))

    async def readexactly(self, n: int) -> bytes:
        return await self._take(lambda: self._source.readexactly(n))

    async def readchunk(self) -> tuple[bytes, bool]:
        result: tuple[bytes, bool] = (b"", False)

        async def read() -> bytes:
            nonlocal result
            result = await self._source.readchunk()
            return result[0]

        await self._take(read)
        return result

    def read_nowait(self, n: int = -1) -> bytes:
        data = self._source.read_nowait(n)
        if data and self._tee.active:
            self._unfed.append(data)
        return data

    def unread_data(self, data: bytes) -> None:
        self._abandon("unread_data() called")  # what was fed would pass twice
        self._source.unread_data(data)

    def set_exception(self, *args: Any, **kwargs: Any) -> None:
        """aiohttp calls this on release()/close(): before the end, the body is abandoned."""
        self._abandon("response released before the end of its body")
        self._source.set_exception(*args, **kwargs)

    def iter_chunked(self, n: int) -> AsyncStreamIterator[bytes]:
        set_size = getattr(self._source, "set_read_chunk_size", None)
        if set_size is not None:
            set_size(n)
        return super().iter_chunked(n)


class ReplayStream(_Iterators):
    """A stored body with the reading API of ``aiohttp.StreamReader``: from memory, or in
    chunks from storage (``stored``)."""

    def __init__(self, body: bytes = b"", stored: StoredBody | None = None) -> None:
        self._buffer = body
        self._pos = 0
        self._chunks: AsyncIterator[bytes] | None = stored.chunks() if stored is not None else None
        self._error: BaseException | None = None

    def at_eof(self) -> bool:
        return self._chunks is None and self._pos >= len(self._buffer)

    def is_eof(self) -> bool:
        return self._chunks is None

    def exception(self) -> BaseException | None:
        return self._error

    def set_exception(self, exc: BaseException, exc_cause: BaseException | None = None) -> None:
        self._error = exc  # aiohttp's release() marks a stream it closes

    async def _fill(self) -> bool:
        """Make sure unread bytes are buffered; False at the end of the body."""
        while self._pos >= len(self._buffer):
            if self._chunks is None:
                return False
            try:
                chunk = await anext(self._chunks, None)
            except StoredBodyError as e:
                self._chunks = None
                raise ClientPayloadError(f"Response payload is not completed: {e}") from e
            if chunk is None:
                self._chunks = None
                return False
            self._buffer, self._pos = chunk, 0
        return True

    def _take(self, n: int) -> bytes:
        end = len(self._buffer) if n < 0 else self._pos + n
        chunk = self._buffer[self._pos : end]
        self._pos += len(chunk)
        return chunk

    async def read(self, n: int = -1) -> bytes:
        if n == 0 or not await self._fill():
            return b""
        if n > 0:
            return self._take(n)
        if self._chunks is None:
            return self._take(-1)
        body = io.BytesIO()
        while await self._fill():
            body.write(self._take(-1))
        return body.getvalue()

    async def readany(self) -> bytes:
        return self._take(-1) if await self._fill() else b""

    async def readchunk(self) -> tuple[bytes, bool]:
        return (await self.readany(), False)

    async def readexactly(self, n: int) -> bytes:
        parts = []
        while n > 0 and await self._fill():
            part = self._take(n)
            parts.append(part)
            n -= len(part)
        data = b"".join(parts)
        if n > 0:
            raise asyncio.IncompleteReadError(data, len(data) + n)
        return data

    async def readuntil(self, separator: bytes = b"\n", *, max_size: int | None = None) -> bytes:
        if not separator:
            raise ValueError("Separator should be at least one-byte string")
        line, width = bytearray(), len(separator)
        while await self._fill():
            if line and width > 1:  # one that begins in the chunk before (read from storage)
                tail = bytes(line[1 - width :])
                found = (tail + self._buffer[self._pos : self._pos + width - 1]).find(separator)
                if found >= 0:
                    line += self._take(found + width - len(tail))
                    break
            end = self._buffer.find(separator, self._pos)
            if end >= 0:
                line += self._take(end + width - self._pos)
                break
            line += self._take(-1)
        limit = max_size or LINE_LIMIT
        if len(line) > limit:
            raise line_too_long(bytes(line), limit)
        return bytes(line)

    async def readline(self, *, max_line_length: int | None = None) -> bytes:
        return await self.readuntil(b"\n", max_size=max_line_length)

    def read_nowait(self, n: int = -1) -> bytes:
        return self._take(n)


__all__ = ["ReplayStream", "TeeStreamReader"]
