"""Redis rows for bench.py: hit/miss latency of our RedisBackend vs aiohttp-client-cache's,
both on one redis-server this module starts on a free 127.0.0.1 port (and stops).

    .venv/bin/python benchmarks/bench.py --only redis
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis

from aiocache_http import CachedClientSession
from aiocache_http.backends.redis import RedisBackend
from benchmarks.bench import (
    Context,
    Row,
    concurrent_hits,
    get_body,
    hit_and_miss,
    median_latency,
    scenario,
)

PEER_HIT = "aiohttp-client-cache redis hit"
PEER_TASKS = "aiohttp-client-cache redis hit, 100 tasks"
BARE = "bare aiohttp (redis group)"
FLOOR = "redis-py GET of the same item (floor)"


@contextmanager
def redis_server(directory: Path) -> Iterator[str | None]:
    """A throwaway redis-server on loopback; yields its URL, or None if it is not installed."""
    binary = shutil.which("redis-server")
    if binary is None:
        print("redis rows skipped: redis-server is not installed (`make bench` installs it)")
        yield None
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    directory.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(directory)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        with redis.Redis(host="127.0.0.1", port=port) as c:
            while True:
                try:
                    c.ping()
                    break
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


async def measure(ctx: Context, session: Any, label: str) -> tuple[float, float, float]:
    async with session:
        await session.cache.clear()
        hit, miss = await hit_and_miss(ctx, session, label)
        return hit, miss, await concurrent_hits(ctx, session)


async def floor_row(url: str, backend: RedisBackend, ctx: Context) -> Row:
    """A bare redis-py GET of the bytes our hit reads: the round trip no cache can beat."""
    from redis.asyncio import Redis

    async with CachedClientSession(cache=backend, autoclose=False) as s:
        await get_body(s, ctx.url("floor"))
        key = s.cache.create_key(s._cached_request("GET", ctx.url("floor"), {}))
    value = await backend.raw_responses.read(key)
    assert value is not None
    client = Redis.from_url(url)
    await client.set("bench-floor", value)
    try:
        return Row("redis", FLOOR, await median_latency(lambda i: client.get("bench-floor"), ctx.n))
    finally:
        await client.aclose()
        await backend.close()


@scenario("redis")
async def redis_rows(ctx: Context) -> list[Row]:
    with redis_server(ctx.tmp / "redis") as url:
        if url is None:
            return []
        import aiohttp

        async with aiohttp.ClientSession() as bare:
            bare_latency = await median_latency(lambda i: get_body(bare, ctx.url("bare")), ctx.n // 4)
        rows = [Row("redis", BARE, bare_latency),
                await floor_row(url, RedisBackend("bench-floor", url, ttl=False), ctx)]
        ours = {
            "auto layout, ttl": RedisBackend("bench-auto", url),
            "hash layout, ttl=False": RedisBackend("bench-hash", url, ttl=False),
        }
        for name, backend in ours.items():
            hit, miss, tasks = await measure(ctx, CachedClientSession(cache=backend), f"ours-{name}")
            rows += [Row("redis", f"aiocache-http redis miss ({name})", miss, BARE),
                     Row("redis", f"aiocache-http redis hit ({name})", hit, (FLOOR, PEER_HIT)),
                     Row("redis", f"aiocache-http redis hit, 100 tasks ({name})", tasks, PEER_TASKS)]
        try:
            from aiohttp_client_cache import CachedSession as PeerSession
            from aiohttp_client_cache import RedisBackend as PeerRedis
        except ImportError:
            return rows
        hit, miss, tasks = await measure(ctx, PeerSession(cache=PeerRedis("bench-peer", address=url)),
                                         "peer")
        rows += [Row("redis", "aiohttp-client-cache redis miss", miss, BARE),
                 Row("redis", PEER_HIT, hit),
                 Row("redis", PEER_TASKS, tasks)]
        return rows
