"""The sessions the end-to-end suite drives. Each adapter exposes the same small async
API over one session kind, so every end-to-end test runs against each of them.

``STYLES`` names the ways each session's users read a body; ``read(url, style)`` reads
one that way (the streaming suite reads every body every way).

Add a session kind to CLIENTS and the whole end-to-end suite runs against it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from aiocache_http import CacheBackend, CachedClientSession
from aiocache_http.policy.settings import CacheSettings
from aiocache_http.sync import CachedSession
from aiocache_http.sync.cache import BaseCache as SyncCache


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


def canonical_json(body: bytes) -> bytes:
    """What the ``json`` style returns: the parsed value, encoded again (None if empty)."""
    return json.dumps(json.loads(body) if body.strip() else None).encode()


class Client(Protocol):
    cache: CacheBackend
    STYLES: tuple[str, ...]
    session: Any  # the session itself, for what users do to it directly

    @property
    def settings(self) -> CacheSettings: ...

    async def request(self, method: str, url: str, **kwargs: Any) -> Reply: ...

    async def get(self, url: str, **kwargs: Any) -> Reply: ...

    async def read(self, url: str, style: str, **kwargs: Any) -> Reply: ...

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

    STYLES = ("read", "text", "json", "content.read", "readany", "readline", "readexactly",
              "iter_chunked", "iter_any", "iter_chunks", "async for", "read, release")

    async def read(self, url: str, style: str, **kwargs: Any) -> Reply:
        """GET ``url`` and read its body in ``style`` (one of STYLES)."""
        if style == "read, release":  # no context manager: read, then release by hand
            r = await self.session.get(url, **kwargs)
            body = await r.read()
            r.release()
        else:
            async with self.session.get(url, **kwargs) as r:
                body = await ASYNC_STYLES[style](r)
        return Reply(r.status, body, r.from_cache, dict(r.headers), str(r.url),
                     [str(h.url) for h in r.history], r.expires, r.cache_key)

    def disabled(self) -> Any:
        return self.session.cache_disabled()

    async def close(self) -> None:
        await self.session.close()


async def _readany(r: Any) -> bytes:
    parts = []
    while chunk := await r.content.readany():
        parts.append(chunk)
    return b"".join(parts)


async def _readline(r: Any) -> bytes:
    parts = []
    while line := await r.content.readline():
        parts.append(line)
    return b"".join(parts)


async def _readexactly(r: Any) -> bytes:
    length = int(r.headers.get("Content-Length") or 0)
    head = await r.content.readexactly(length) if length else b""
    return head + await r.content.read()  # the rest of a chunked body, and its end


async def _text(r: Any) -> bytes:
    text: str = await r.text()
    return text.encode()


async def _json(r: Any) -> bytes:
    return json.dumps(await r.json()).encode()


ASYNC_STYLES: dict[str, Callable[[Any], Awaitable[bytes]]] = {
    "read": lambda r: r.read(),
    "text": _text,
    "json": _json,
    "content.read": lambda r: r.content.read(),
    "readany": _readany,
    "readline": _readline,
    "readexactly": _readexactly,
    "iter_chunked": lambda r: _join(r.content.iter_chunked(1000)),
    "iter_any": lambda r: _join(r.content.iter_any()),
    "iter_chunks": lambda r: _join(chunk async for chunk, _ in r.content.iter_chunks()),
    "async for": lambda r: _join(r.content),
}


async def _join(chunks: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in chunks])


class SyncClient:
    """aiocache_http.sync.CachedSession, the requests session. Each call runs in a worker
    thread (asyncio.to_thread) so the test's origin keeps serving on the test loop; the
    context is copied, so cache_disabled() set here is seen there."""

    def __init__(self, backend: CacheBackend | SyncCache, **settings: Any) -> None:
        # (A requests-cache backend class too: FileCache("x") as users build it.)
        self.cache = backend.backend if isinstance(backend, SyncCache) else backend
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

    STYLES = ("content", "text", "json", "stream, content", "iter_content", "iter_lines",
              "raw.read", "raw.read(n)")

    async def read(self, url: str, style: str, **kwargs: Any) -> Reply:
        """GET ``url`` and read its body in ``style`` (one of STYLES)."""
        def get() -> Reply:
            stream = style not in ("content", "text", "json")
            with self.session.get(url, stream=stream, **kwargs) as r:
                body = SYNC_STYLES[style](r)
            return Reply(r.status_code, body, r.from_cache, dict(r.headers), r.url,
                         [h.url for h in r.history], r.expires, r.cache_key)

        return await asyncio.to_thread(get)

    @asynccontextmanager
    async def disabled(self) -> AsyncIterator[None]:
        with self.session.cache_disabled():
            yield

    async def close(self) -> None:
        await asyncio.to_thread(self.session.close)


def _raw_read_n(r: Any) -> bytes:
    return b"".join(iter(lambda: r.raw.read(1000), b""))


SYNC_STYLES: dict[str, Callable[[Any], bytes]] = {
    "content": lambda r: r.content,
    "text": lambda r: r.text.encode(),
    "json": lambda r: json.dumps(r.json() if r.content.strip() else None).encode(),
    "stream, content": lambda r: r.content,
    "iter_content": lambda r: b"".join(r.iter_content(1000)),
    "iter_lines": lambda r: b"\n".join(r.iter_lines()),
    "raw.read": lambda r: r.raw.read(),
    "raw.read(n)": _raw_read_n,
}

ClientFactory = Callable[..., Client]
CLIENTS: dict[str, Callable[..., Client]] = {
    "async": AsyncClient,
    "sync": SyncClient,
}
