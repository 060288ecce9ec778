"""Sync rows for bench.py: hit latency of aiocache_http.sync.CachedSession against
requests-cache's CachedSession, on memory, SQLite and Redis (a throwaway redis-server from
bench_redis), in the same run. Each timed loop runs in a worker thread so the origin keeps
serving on the benchmark's loop.

    .venv/bin/python benchmarks/bench.py --only sync
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from typing import Any

import requests

from aiocache_http.sync import CachedSession, RedisCache, SQLiteCache
from benchmarks.bench import Context, Row, scenario
from benchmarks.bench_redis import redis_server

BARE = "bare requests (no cache)"
CACHECONTROL = "CacheControl memory hit"


def cachecontrol_row(url: str, n: int) -> list[Row]:
    """CacheControl's in-memory cache (its default DictCache) on a requests.Session."""
    try:
        from cachecontrol import CacheControl
    except ImportError:
        return []
    with CacheControl(requests.Session()) as session:
        session.get(url)
        return [Row("sync", CACHECONTROL, sync_median(lambda: session.get(url).content, n))]


def sync_median(call: Callable[[], Any], n: int, warmup: int = 50) -> float:
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def hit_latency(session: requests.Session, url: str, n: int) -> float:
    session.get(url)  # the one miss
    assert getattr(session.get(url), "from_cache", True)
    return sync_median(lambda: session.get(url).content, n)


def _rows(ctx: Context, redis_url: str | None) -> list[Row]:
    import requests_cache
    from redis import Redis

    url = ctx.url("sync-hot")
    with requests.Session() as bare:
        rows = [Row("sync", BARE, sync_median(lambda: bare.get(ctx.url("sync-bare")).content, ctx.n // 4))]
    pairs: list[tuple[str, Any, Any]] = [
        ("memory", requests_cache.CachedSession(backend="memory"), CachedSession(backend="memory")),
        ("sqlite", requests_cache.CachedSession(str(ctx.tmp / "rc-sync"), backend="sqlite"),
         CachedSession(backend=SQLiteCache(ctx.tmp / "ours-sync"))),
    ]
    if redis_url is not None:
        port = int(redis_url.rsplit(":", 1)[1])
        pairs.append(("redis",
                      requests_cache.CachedSession(backend=requests_cache.RedisCache(
                          "rc-sync", connection=Redis(host="127.0.0.1", port=port))),
                      CachedSession(backend=RedisCache("ours-sync", host="127.0.0.1", port=port))))
    cachecontrol = cachecontrol_row(url, ctx.n)
    rows += cachecontrol
    for name, peer, ours in pairs:
        peer_name = f"requests-cache {name} hit"
        baselines = (peer_name, CACHECONTROL) if cachecontrol else peer_name
        rows += [Row("sync", peer_name, hit_latency(peer, url, ctx.n)),
                 Row("sync", f"aiocache-http sync {name} hit", hit_latency(ours, url, ctx.n), baselines)]
        ours.cache.clear()
        peer.cache.clear()
        ours.close()
        peer.close()
    return rows


@scenario("sync")
async def sync_rows(ctx: Context) -> list[Row]:
    with redis_server(ctx.tmp / "redis-sync") as redis_url:
        return await asyncio.to_thread(_rows, ctx, redis_url)


if __name__ == "__main__":
    import sys

    print("run it through bench.py: .venv/bin/python benchmarks/bench.py --only sync", file=sys.stderr)
