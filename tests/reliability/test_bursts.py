"""Bursts on a healthy backend, with the documented default deadlines: 500 concurrent
misses on distinct keys, then 500 concurrent hits, through the async and the sync
session, on SQLite, Redis and the filesystem (real files, a real redis-server).

Storage calls queue behind a busy but healthy backend (aiosqlite's one thread, a Redis
connection pool, a file thread pool). Waiting its turn is not a timeout: every miss is
stored, every hit is served from the cache, no deadline passes, no circuit opens
(``backend.health``), and every request's event says so (no storage error).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from aiocache_http import CacheBackend
from aiocache_http.events import CacheEvent

from ..backends import FACTORIES
from ..clients import CLIENTS, AsyncClient, Client, SyncClient
from ..origin import Origin
from .load import is_wrong

pytestmark = pytest.mark.real_deadlines  # the documented defaults, not the suite's

BURST = 500
BOUND = 120.0  # seconds: a whole burst, on a loaded 2-core machine

Fetch = Callable[[list[str]], Awaitable[list[tuple[int, bytes, bool]]]]


def burst_of(client: Client) -> Fetch:
    """GETs every URL at once: one task each (async), one thread each (sync)."""
    if isinstance(client, AsyncClient):
        session = client.session

        async def get(url: str) -> tuple[int, bytes, bool]:
            async with session.get(url) as r:
                return r.status, await r.read(), bool(r.from_cache)

        async def fetch_async(urls: list[str]) -> list[tuple[int, bytes, bool]]:
            return list(await asyncio.gather(*(get(url) for url in urls)))

        return fetch_async
    assert isinstance(client, SyncClient)
    sync = client.session

    def fetch_threads(urls: list[str]) -> list[tuple[int, bytes, bool]]:
        start = threading.Barrier(len(urls))

        def get(url: str) -> tuple[int, bytes, bool]:
            start.wait(BOUND)  # every thread in flight before the first request
            r = sync.get(url)
            return r.status_code, r.content, bool(r.from_cache)

        with ThreadPoolExecutor(max_workers=len(urls)) as pool:
            return list(pool.map(get, urls))

    async def fetch_sync(urls: list[str]) -> list[tuple[int, bytes, bool]]:
        return await asyncio.to_thread(fetch_threads, urls)

    return fetch_sync


async def run_burst(client: Client, urls: list[str]) -> tuple[list[tuple[int, bytes, bool]], list[CacheEvent],
                                                              float]:
    events: list[CacheEvent] = []
    unsubscribe = client.cache.events.subscribe(events.append)
    start = time.monotonic()
    try:
        replies = await asyncio.wait_for(burst_of(client)(urls), BOUND)
    finally:
        unsubscribe()
    return replies, events, time.monotonic() - start


def healthy(backend: CacheBackend) -> None:
    """Nothing timed out, failed, was skipped or dropped; no circuit opened."""
    h = backend.health
    assert (h.timeouts, h.errors, h.skipped, h.dropped_writes, h.opened) == (0, 0, 0, 0, 0), h
    assert h.state.value == h.write_state.value == "closed", h


def check_replies(urls: list[str], replies: list[tuple[int, bytes, bool]]) -> None:
    assert len(replies) == len(urls)
    assert all(status == 200 for status, _, _ in replies)
    assert not [url for url, (_, body, _) in zip(urls, replies, strict=True) if is_wrong(url, body)]


@pytest.fixture(params=["sqlite", "redis", "filesystem"])
def backend_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=sorted(CLIENTS))
async def burst_client(request: pytest.FixtureRequest, backend_kind: str, tmp_path: Path) -> Client:
    backend = FACTORIES[backend_kind](request, tmp_path, {})
    await backend.clear()
    client = CLIENTS[request.param](backend)
    yield client  # type: ignore[misc]
    await client.close()


async def test_a_burst_of_misses_is_stored(burst_client: Client, origin: Origin) -> None:
    urls = [origin.url(f"/r/miss-{i}") for i in range(BURST)]
    replies, events, took = await run_burst(burst_client, urls)
    check_replies(urls, replies)
    assert not any(from_cache for _, _, from_cache in replies)
    assert len(events) == BURST
    assert {e.kind for e in events} == {"miss"}
    assert not [e.storage_errors for e in events if e.storage_errors]
    assert not [e.not_stored_reason for e in events if e.stored is not True]  # stored, all of them
    await burst_client.cache.wait_for_refreshes()
    healthy(burst_client.cache)
    assert await burst_client.cache.raw_responses.size() == BURST
    print(f"\n{BURST} concurrent misses in {took:.2f}s: {burst_client.cache.health}")


async def test_a_burst_of_hits_is_served_from_the_cache(burst_client: Client, origin: Origin) -> None:
    urls = [origin.url(f"/r/hit-{i}") for i in range(BURST)]
    async with asyncio.timeout(BOUND):
        for i in range(0, BURST, 25):  # stored first, a few at a time
            await asyncio.gather(*(burst_client.get(url) for url in urls[i:i + 25]))
    healthy(burst_client.cache)
    assert sum(origin.counts.values()) == BURST
    replies, events, took = await run_burst(burst_client, urls)
    check_replies(urls, replies)
    assert [from_cache for _, _, from_cache in replies] == [True] * BURST
    assert len(events) == BURST
    assert {e.kind for e in events} == {"hit"}
    assert not [e.storage_errors for e in events if e.storage_errors]
    assert sum(origin.counts.values()) == BURST  # the origin saw none of them
    healthy(burst_client.cache)
    print(f"\n{BURST} concurrent hits in {took:.2f}s: {burst_client.cache.health}")
