"""Body streams of the requests layer (``response.raw``).

:class:`TeeRaw` wraps a miss's urllib3 response read with ``stream=True``: ``read``,
``stream`` (what ``iter_content``, ``iter_lines`` and ``content`` use), ``read_chunked``,
``readinto`` and line iteration return what urllib3 returns, and what they return is
copied to the tee on the bridge loop, in batches of :data:`PART_SIZE` (so reading byte
by byte does not cost a loop round trip per byte). An exception, ``close()`` or
``release_conn()`` before the end, or the response dropped unread abandons the tee.

:class:`ReplayRaw` is a hit's body as a file-like ``raw`` with urllib3's reading methods:
from memory, or for a large body left in storage, read in chunks through the bridge loop.
"""

from __future__ import annotations

import io
import time
import weakref
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

from ..backends.parts import PART_SIZE
from ..models import StoredBody
from ..policy.freshness import content_encoded
from ..streaming import Tee

Run = Callable[[Coroutine[Any, Any, Any]], Any]


class TeeRaw:
    """A urllib3 response whose body is copied to a tee as it is read (see the module
    docstring). Everything else is the wrapped response's."""

    def __init__(self, raw: Any, tee: Tee, run: Run) -> None:
        self._raw = raw
        self._tee = tee
        self._run = run
        self._batch = bytearray()
        self._seen = 0
        self._encoded = content_encoded(raw.headers)
        self._finalizer = weakref.finalize(self, tee.abandon_soon, "response dropped unread")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)

    def __repr__(self) -> str:
        return f"<TeeRaw {self._raw!r}>"

    # -- what passes --------------------------------------------------------------------
    def _passed(self, data: bytes, end: bool) -> None:
        if not self._tee.active:
            return
        if data:  # the body flows, batched or not: a request coalesced onto it waits on
            self._tee.last_progress = time.monotonic()
        self._batch += data
        self._seen += len(data)
        end = end or self._seen == self._tee.expected_length
        if len(self._batch) >= PART_SIZE or (end and self._batch):
            batch, self._batch = bytes(self._batch), bytearray()
            self._run(self._tee.feed(batch))
        if end:
            self._finalizer.detach()
            self._run(self._tee.finish())

    def _abandon(self, reason: str) -> None:
        self._finalizer.detach()
        self._batch = bytearray()
        self._tee.abandon_soon(reason)

    def _call(self, read: Callable[[], Any]) -> Any:
        try:
            return read()
        except BaseException as e:
            self._abandon(f"reading the body failed: {type(e).__name__}")
            raise

    def _decoding(self, decode_content: bool | None) -> None:
        """The cache stores decoded bodies: a content-coded body read as is is not one."""
        decode = self._raw.decode_content if decode_content is None else decode_content
        if self._encoded and not decode and self._tee.active:
            self._abandon("body read without decoding its Content-Encoding")

    # -- reading --------------------------------------------------------------------------
    def read(self, amt: int | None = None, decode_content: bool | None = None,
             *args: Any, **kwargs: Any) -> bytes:
        self._decoding(decode_content)
        data: bytes = self._call(lambda: self._raw.read(amt, decode_content, *args, **kwargs))
        self._passed(data, end=amt is None or amt < 0 or (amt > 0 and not data))
        return data

    def readinto(self, b: bytearray | memoryview) -> int:
        self._decoding(None)
        n: int = self._call(lambda: self._raw.readinto(b))
        self._passed(bytes(b[:n]), end=n == 0 and len(b) > 0)
        return n

    def stream(self, amt: int | None = 2**16, decode_content: bool | None = None) -> Iterator[bytes]:
        self._decoding(decode_content)
        return self._iterate(self._raw.stream(amt, decode_content=decode_content))

    def read_chunked(self, amt: int | None = None, decode_content: bool | None = None) -> Iterator[bytes]:
        self._decoding(decode_content)
        return self._iterate(self._raw.read_chunked(amt, decode_content=decode_content))

    def _iterate(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        while True:
            try:
                data = next(chunks)
            except StopIteration:
                self._passed(b"", end=True)
                return
            except BaseException as e:
                self._abandon(f"reading the body failed: {type(e).__name__}")
                raise
            self._passed(data, end=False)
            yield data

    def __iter__(self) -> Iterator[bytes]:
        """Lines, as urllib3 yields them."""
        buffer: list[bytes] = []
        for chunk in self.stream(decode_content=True):
            *lines, rest = chunk.split(b"\n")
            if lines:
                yield b"".join(buffer) + lines[0] + b"\n"
                yield from (line + b"\n" for line in lines[1:])
                buffer = []
            if rest:
                buffer.append(rest)
        if buffer:
            yield b"".join(buffer)

    # -- the end ------------------------------------------------------------------------
    def close(self) -> None:
        if self._tee.active:
            self._abandon("response closed before the end of its body")
        self._raw.close()

    def release_conn(self) -> None:
        if self._tee.active:
            self._abandon("response released before the end of its body")
        self._raw.release_conn()


def read_content(response: Any) -> None:
    """What requests does for ``stream=False`` (``response.content``), through the tee if
    any, and without its final join: the body grows in one buffer (about 1.1x the body,
    not 2x)."""
    if response._content is not False or response._content_consumed:
        return
    if response.status_code == 0 or response.raw is None:
        response._content = None
    else:
        body = io.BytesIO()
        for chunk in response.iter_content(PART_SIZE):
            body.write(chunk)
        response._content = body.getvalue()
    response._content_consumed = True


class ReplayRaw:
    """A replayed body as the file-like ``raw`` of a response, with urllib3's reading
    methods: from memory, or in chunks from storage through the bridge loop (``stored``).
    """

    def __init__(self, body: bytes = b"", stored: StoredBody | None = None, *,
                 run: Run | None = None, error: type[Exception] = OSError) -> None:
        self._buffer = body
        self._pos = 0
        self._stored = stored
        self._run = run
        self._error = error
        self._chunks = stored.chunks() if stored is not None else None
        self._finalizer = (weakref.finalize(self, _close_soon, stored, run)
                           if stored is not None and run is not None else None)
        self.decode_content = True

    def _fill(self) -> bool:
        while self._pos >= len(self._buffer):
            if self._chunks is None or self._run is None:
                return False
            try:
                chunk = self._run(anext(self._chunks, None))
            except Exception as e:
                self._chunks = None
                raise self._error(f"reading the stored body failed: {e}") from e
            if chunk is None:
                self.close()
                return False
            self._buffer, self._pos = chunk, 0
        return True

    def read(self, amt: int | None = None, decode_content: bool | None = None,
             cache_content: bool = False) -> bytes:
        if amt is None or amt < 0:
            body = io.BytesIO()  # grows in place: no second copy of a large body, as join would
            while data := self.read(PART_SIZE):
                body.write(data)
            return body.getvalue()
        if amt == 0 or not self._fill():
            return b""
        data = self._buffer[self._pos : self._pos + amt]
        self._pos += len(data)
        return data

    def stream(self, amt: int | None = 2**16, decode_content: bool | None = None) -> Iterator[bytes]:
        while data := self.read(amt or PART_SIZE):
            yield data

    def readable(self) -> bool:
        return True

    def rewind(self) -> None:
        """Back to the start of a body held in memory."""
        if self._stored is None:
            self._pos = 0

    @property
    def closed(self) -> bool:
        return self._chunks is None and self._pos >= len(self._buffer)

    def close(self) -> None:
        self._chunks = None
        if self._finalizer is not None and self._finalizer.detach() is not None:
            assert self._stored is not None and self._run is not None
            self._run(self._stored.close())

    def release_conn(self) -> None:
        self.close()


def _close_soon(stored: StoredBody, run: Run) -> None:
    try:
        run(stored.close())
    except Exception:  # at interpreter exit the loop may be gone; so is what it held
        return


__all__ = ["ReplayRaw", "TeeRaw", "read_content"]
