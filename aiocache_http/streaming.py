"""The tee: a body on its way from the origin to the caller is copied into storage as
it passes, and stored only once it is complete.

Library-neutral. The HTTP library's wrapper (``response.TeeStreamReader`` for aiohttp,
``sync.stream.TeeRaw`` for requests) hands the caller exactly what the bare client
would, and tells the tee what passed: :meth:`Tee.feed` for every chunk the caller gets,
:meth:`Tee.finish` when the origin's body ended cleanly, :meth:`Tee.abandon` (or
:meth:`Tee.abandon_soon` from synchronous code) when it did not: an error, a release
before the end, a cancelled reader, a response dropped unread. An abandoned or
over-long body leaves nothing in storage: parts already written are dropped.

:attr:`Tee.done` resolves once the body is stored or given up: with the stored
response if it was small enough to keep in memory, True if it was stored but not kept,
False if nothing was stored (:attr:`Tee.reason` says why). Requests that coalesced on
this one wait for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from .models import CachedResponse

logger = logging.getLogger("aiocache_http")

Data = bytes | bytearray | memoryview
_running: set[asyncio.Task[None]] = set()


class BodySink(Protocol):
    """Where a tee stores the body (``backends.bodies.ResponseWriter``)."""

    @property
    def open(self) -> bool: ...

    async def write(self, chunk: Data) -> None: ...

    async def commit(self) -> bool: ...

    async def abort(self) -> None: ...

    def shareable(self) -> CachedResponse | None: ...


class Tee:
    """Stores the body that passes through it, once complete (see the module docstring).

    Args:
        sink: Where the body goes.
        complete: Is a body of this many bytes complete? (checks Content-Length)
        expected_length: The body's length if known (Content-Length): a wrapper that
            cannot see the end of the stream may finish once this much has passed.
        max_size: Bodies larger than this are passed through uncached (None: no limit).
        on_stored: Runs once the body is stored.
        label: Names the request in log messages.
    """

    def __init__(self, sink: BodySink, *, complete: Callable[[int], bool], expected_length: int | None,
                 max_size: int | None, on_stored: Callable[[], Awaitable[None]], label: str) -> None:
        self.loop = asyncio.get_running_loop()
        self.expected_length = expected_length
        self.done: asyncio.Future[CachedResponse | bool] = self.loop.create_future()
        self.reason = ""  # why nothing was stored
        self.size = 0
        self.last_progress = time.monotonic()
        self._sink = sink
        self._complete = complete
        self._max_size = max_size
        self._on_stored = on_stored
        self._label = label
        self._lock = asyncio.Lock()
        self._committing: asyncio.Task[None] | None = None

    @property
    def active(self) -> bool:
        """Still copying: neither stored nor given up."""
        return not self.done.done() and self._committing is None

    async def feed(self, data: Data) -> None:
        """``data`` was handed to the caller: copy it to storage."""
        if not len(data) or not self.active:
            return
        self.last_progress = time.monotonic()
        async with self._lock:
            if not self.active:
                return
            self.size += len(data)
            if self._max_size is not None and self.size > self._max_size:
                await self._drop(f"body larger than max_body_size ({self._max_size} bytes)")
                return
            await self._sink.write(data)
            if not self._sink.open:  # the storage failed (logged by the backend)
                self.reason = "the storage failed"
                self._resolve(False)

    async def finish(self) -> None:
        """The origin's body ended cleanly: store it (if it is complete). Storing goes on
        even if the caller is cancelled meanwhile: the body is whole."""
        if not self.active:
            return
        async with self._lock:
            if not self.active:
                return
            if not self._complete(self.size):
                await self._drop("incomplete body")
                return
            self._committing = self.loop.create_task(self._commit())
        await asyncio.shield(self._committing)

    async def _commit(self) -> None:
        try:
            stored = await self._sink.commit()
            if stored:
                await self._on_stored()
                self._resolve(self._sink.shareable() or True)
            else:
                self.reason = "the storage failed"
        finally:
            self._resolve(False)

    async def abandon(self, reason: str) -> None:
        """The body will not complete: store nothing."""
        if not self.active:
            return
        async with self._lock:
            await self._drop(reason)

    def abandon_soon(self, reason: str) -> None:
        """:meth:`abandon` from synchronous code, in any thread (a release, a finalizer)."""
        if not self.active:
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed: nothing left to do
            self.loop.call_soon_threadsafe(self._abandon_task, reason)

    def _abandon_task(self, reason: str) -> None:
        if self.active:
            task = self.loop.create_task(self.abandon(reason))
            _running.add(task)  # the loop keeps only a weak reference
            task.add_done_callback(_running.discard)

    async def _drop(self, reason: str) -> None:
        if not self.active:
            return
        logger.debug("%s: not stored: %s", self._label, reason)
        self.reason = reason
        try:
            await self._sink.abort()
        finally:
            self._resolve(False)

    def _resolve(self, stored: CachedResponse | bool) -> None:
        if not self.done.done():
            self.done.set_result(stored)


__all__ = ["BodySink", "Tee"]
