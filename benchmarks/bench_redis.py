"""Redis rows for bench.py: hit/miss latency of our RedisBackend vs aiohttp-client-cache's,
both on one redis-server this module starts on a free 127.0.0.1 port (and stops).

    .venv/bin/python benchmarks/bench.py --only redis
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, contextmanager
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
    interleaved,
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


async def measure(ctx: Context, session: Any, label: str) -> tuple[float, float]:
    """(miss, 100-task hit) latency; the single hit is measured with the floor, interleaved."""
    miss = await median_latency(lambda i: get_body(session, ctx.url(f"{label}-{i}")), ctx.n // 4,
                                warmup=5)
    return miss, await concurrent_hits(ctx, session)


async def floor_get(url: str, backend: RedisBackend, ctx: Context,
                    stack: AsyncExitStack) -> Callable[[int], Awaitable[Any]]:
    """A bare redis-py GET of the bytes our hit reads: the round trip no cache can beat."""
    from redis.asyncio import Redis

    async with CachedClientSession(cache=backend, autoclose=False) as s:
        await get_body(s, ctx.url("floor"))
        key = s.cache.create_key(s._cached_request("GET", ctx.url("floor"), {}))
    value = await backend.raw_responses.read(key)
    assert value is not None
    await backend.close()
    client = Redis.from_url(url)
    stack.push_async_callback(client.aclose)
    await client.set("bench-floor", value)
    return lambda i: client.get("bench-floor")


@scenario("redis")
async def redis_rows(ctx: Context) -> list[Row]:
    """The single-hit rows and the floor are measured in alternating rounds (their ratio
    then compares like with like on a machine whose load moves); the rest row by row."""
    with redis_server(ctx.tmp / "redis") as url:
        if url is None:
            return []
        import aiohttp

        async with aiohttp.ClientSession() as bare:
            bare_latency = await median_latency(lambda i: get_body(bare, ctx.url("bare")), ctx.n // 4)
        rows = [Row("redis", BARE, bare_latency)]
        async with AsyncExitStack() as stack:
            hits = {FLOOR: await floor_get(url, RedisBackend("bench-floor", url, ttl=False), ctx, stack)}
            sessions: dict[str, Any] = {
                "auto layout, ttl": CachedClientSession(cache=RedisBackend("bench-auto", url)),
                "hash layout, ttl=False": CachedClientSession(
                    cache=RedisBackend("bench-hash", url, ttl=False)),
            }
            try:
                from aiohttp_client_cache import CachedSession as PeerSession
                from aiohttp_client_cache import RedisBackend as PeerRedis
            except ImportError:
                pass
            else:
                sessions["peer"] = PeerSession(cache=PeerRedis("bench-peer", address=url))
            for name, session in sessions.items():
                await stack.enter_async_context(session)
                await session.cache.clear()
                await get_body(session, ctx.url("hot"))
                hits[name] = _hit(session, ctx.url("hot"))
            measured = await interleaved(hits, ctx.n)
            rows.append(Row("redis", FLOOR, measured[FLOOR]))
            for name, session in sessions.items():
                miss, tasks = await measure(ctx, session, "peer" if name == "peer" else f"ours-{name}")
                if name == "peer":
                    rows += [Row("redis", "aiohttp-client-cache redis miss", miss, BARE),
                             Row("redis", PEER_HIT, measured[name]),
                             Row("redis", PEER_TASKS, tasks)]
                    continue
                rows += [Row("redis", f"aiocache-http redis miss ({name})", miss, BARE),
                         Row("redis", f"aiocache-http redis hit ({name})", measured[name],
                             (FLOOR, PEER_HIT)),
                         Row("redis", f"aiocache-http redis hit, 100 tasks ({name})", tasks, PEER_TASKS)]
        return rows


def _hit(session: Any, url: str) -> Callable[[int], Awaitable[Any]]:
    return lambda i: get_body(session, url)


