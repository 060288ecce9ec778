"""Running the ``aiocache-http`` command as a user would: a subprocess, on a cache that
the sessions (async and sync) filled, named by the URL the CLI takes."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from multidict import CIMultiDict

from aiocache_http import CacheBackend, CachedRequest, utcnow
from aiocache_http.models import CachedResponse

from .backends import FACTORIES, _redis_namespace
from .clients import AsyncClient, SyncClient
from .origin import Origin

CLI_BACKENDS = ("sqlite", "redis", "filesystem")
PNG = bytes(range(256)) * 4


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def json(self) -> Any:
        return json.loads(self.out)


async def cli(*args: str, stdin: str = "", env: dict[str, str] | None = None,
              timeout: float = 300) -> Result:
    """``python -m aiocache_http ARGS`` in a subprocess (the test loop keeps serving the
    origin meanwhile)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aiocache_http", *args, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "NO_COLOR": "1", **(env or {})})
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode()), timeout)
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())


def cache(kind: str, request: pytest.FixtureRequest, directory: Path,
          name: str = "") -> tuple[str, CacheBackend]:
    """A backend of ``kind`` for this test and the URL the CLI names it by; ``name``
    makes another one of the same kind (a Redis namespace, or use another directory)."""
    if kind == "redis":
        from aiocache_http.backends.redis import RedisBackend

        server = request.getfixturevalue("redis_server_hfe")
        namespace = _redis_namespace(request) + name
        return (f"{server.url}/0?namespace={namespace}&layout=hash",
                RedisBackend(namespace, server.url, layout="hash"))
    backend = FACTORIES[kind](request, directory, {})
    if kind == "sqlite":
        return f"sqlite://{directory}/cache.sqlite", backend
    if kind == "filesystem":
        return f"file://{directory}/http_cache", backend
    raise AssertionError(kind)


@dataclass
class Filled:
    """A cache filled through both sessions, and what is in it."""

    kind: str
    url: str
    backend: CacheBackend
    origin: Origin
    fresh: list[str]  # URLs of fresh entries
    stale: str  # expired, has an ETag: revalidatable
    expired: str  # expired, no validator
    image: str  # a binary body on another host
    a: AsyncClient
    s: SyncClient

    async def close(self) -> None:
        await self.a.close()
        await self.s.close()


async def fill(kind: str, request: pytest.FixtureRequest, tmp_path: Path, origin: Origin) -> Filled:
    cli_url, backend = cache(kind, request, tmp_path)
    await backend.clear()
    backend.settings.allowed_codes = (200, 404)
    a, s = AsyncClient(backend), SyncClient(backend)
    fresh = [origin.url("/r/one"), origin.url("/r/two?x=1"), origin.url("/r/missing?status=404")]
    for url in fresh[:2]:
        assert not (await a.get(url)).from_cache
    assert (await s.get(fresh[2])).status == 404
    sync_url = origin.url("/r/from-sync")
    await s.get(sync_url)
    assert (await a.get(sync_url)).from_cache  # one store, both sessions read it
    hop = await s.get(origin.url("/redirect/hop"))
    assert hop.history
    # stored under its key and, as requests-cache does, its final URL's (/r/hop); the hop
    # is an alias of the first
    fresh += [sync_url, origin.url("/redirect/hop")]
    # A redirect alias, as a two-hop redirect leaves: /r/alias -> /r/one's entry.
    one_key = backend.create_key(CachedRequest("GET", fresh[0]))
    await backend.save_redirect(backend.create_key(CachedRequest("GET", origin.url("/r/alias"))), one_key)
    stale, expired = origin.url("/r/stale?etag=v1"), origin.url("/r/expired")
    await a.get(stale, expire_after=1)
    await s.get(expired, expire_after=1)
    image = "https://img.example.com/logo.png"
    headers = CIMultiDict({"Content-Type": "image/png"})
    await backend.save_response(
        CachedResponse(200, "OK", image, headers, PNG, CachedRequest("GET", image),
                       expires=utcnow() + timedelta(days=1)),
        backend.create_key(CachedRequest("GET", image)))
    await asyncio.sleep(1.2)  # stale and expired are now past their expiry
    return Filled(kind, cli_url, backend, origin, fresh, stale, expired, image, a, s)
