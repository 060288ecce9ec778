"""One database client per running event loop.

Async clients are bound to the loop they were first used on, and a backend may serve an
async session's loop and the sync layer's bridge loop at once. A client the user passed
in (``shared``) is used as is and never closed; the ones created here are.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

C = TypeVar("C")


class LoopClients(Generic[C]):
    """``get()`` returns the client for the running loop, creating it on first use."""

    def __init__(self, new: Callable[[], C] | None, close: Callable[[C], Awaitable[Any]],
                 shared: C | None = None) -> None:
        if (new is None) == (shared is None):
            raise ValueError("give exactly one of new (to create clients) and shared")
        self.shared = shared
        self._new = new
        self._close = close
        self._lock = threading.Lock()  # loops in other threads share the spare and the map
        self._per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, C] = (
            weakref.WeakKeyDictionary())
        self._spare: C | None = new() if new is not None else None  # bad options fail here

    def get(self) -> C:
        if self.shared is not None:
            return self.shared
        loop = asyncio.get_running_loop()
        client = self._per_loop.get(loop)
        if client is None:
            assert self._new is not None
            with self._lock:  # two loops' first uses must not both take the spare
                spare, self._spare = self._spare, None
                client = spare if spare is not None else self._new()
                self._per_loop[loop] = client
        return client

    async def close(self) -> None:
        """Close the clients created here; one of another, still running loop is closed
        there (not awaited: that loop may be waiting on us)."""
        with self._lock:
            clients, self._per_loop = dict(self._per_loop), weakref.WeakKeyDictionary()
            spare, self._spare = self._spare, None
        if spare is not None:
            await self._close(spare)
        current = asyncio.get_running_loop()
        for loop, client in clients.items():
            if loop is current:
                await self._close(client)
            elif loop.is_running():
                asyncio.run_coroutine_threadsafe(_closing(self._close, client), loop)


async def _closing(close: Callable[[C], Awaitable[Any]], client: C) -> None:
    await close(client)
