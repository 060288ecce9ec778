"""The sessions the end-to-end suite drives. Each adapter exposes the same small async
API over one session kind, so every end-to-end test runs against each of them.

Add a session kind to CLIENTS and the whole end-to-end suite runs against it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from aiocache_http import CacheBackend, CachedClientSession
from aiocache_http.policy.settings import CacheSettings
from aiocache_http.sync import CachedSession


@dataclass
class Reply:
    status: int
    body: bytes
    from_cache: bool
    headers: dict[str, str]
    url: str
    history: list[str]
    expires: datetime | None
    cache_key: str


class Client(Protocol):
    cache: CacheBackend

    @property
    def settings(self) -> CacheSettings: ...

    async def request(self, method: str, url: str, **kwargs: Any) -> Reply: ...

    async def get(self, url: str, **kwargs: Any) -> Reply: ...

    async def close(self) -> None: ...


class AsyncClient:
    """CachedClientSession, the aiohttp session."""

    def __init__(self, backend: CacheBackend, **settings: Any) -> None:
        self.cache = backend
        self.session = CachedClientSession(cache=backend, **settings)

    @property
    def settings(self) -> CacheSettings:
        return self.session.settings

    async def request(self, method: str, url: str, **kwargs: Any) -> Reply:
        async with self.session.request(method, url, **kwargs) as r:
            body = await r.read()
            return Reply(r.status, body, r.from_cache, dict(r.headers), str(r.url),
                         [str(h.url) for h in r.history], r.expires, r.cache_key)

    async def get(self, url: str, **kwargs: Any) -> Reply:
        return await self.request("GET", url, **kwargs)

    def disabled(self) -> Any:
        return self.session.cache_disabled()

    async def close(self) -> None:
        await self.session.close()


class SyncClient:
    """aiocache_http.sync.CachedSession, the requests session. Each call runs in a worker
    thread (asyncio.to_thread) so the test's origin keeps serving on the test loop; the
    context is copied, so cache_disabled() set here is seen there."""

    def __init__(self, backend: CacheBackend, **settings: Any) -> None:
        self.cache = backend
        self.session = CachedSession(backend=backend, **settings)

    @property
    def settings(self) -> CacheSettings:
        return self.session.settings

    async def request(self, method: str, url: str, **kwargs: Any) -> Reply:
        r = await asyncio.to_thread(self.session.request, method, url, **kwargs)
        return Reply(r.status_code, r.content, r.from_cache, dict(r.headers), r.url,
                     [h.url for h in r.history], r.expires, r.cache_key)

    async def get(self, url: str, **kwargs: Any) -> Reply:
        return await self.request("GET", url, **kwargs)

    @asynccontextmanager
    async def disabled(self) -> AsyncIterator[None]:
        with self.session.cache_disabled():
            yield

    async def close(self) -> None:
        await asyncio.to_thread(self.session.close)


ClientFactory = Callable[..., Client]
CLIENTS: dict[str, Callable[..., Client]] = {
    "async": AsyncClient,
    "sync": SyncClient,
}
