"""Sync rows for bench.py: hit latency of aiocache_http.sync.CachedSession against
requests-cache's CachedSession (memory, SQLite and Redis: a throwaway redis-server from
bench_redis), CacheControl's in-memory hit and bare requests, all measured in the same
alternating rounds. The timed loops run in a worker thread so the origin keeps serving on
the benchmark's loop.

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
ROUNDS = 5


def interleaved(calls: dict[str, Callable[[], Any]], n: int, warmup: int = 50) -> dict[str, float]:
    """Median latency of each call, measured in ``ROUNDS`` alternating rounds of
    ``n // ROUNDS`` (a loaded machine drifts: every row sees the same drift): the median
    of the rounds' medians."""
    for call in calls.values():
        for _ in range(warmup):
            call()
    medians: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(ROUNDS):
        for name, call in calls.items():
            samples = []
            for _ in range(max(n // ROUNDS, 1)):
                start = time.perf_counter()
                call()
                samples.append(time.perf_counter() - start)
            medians[name].append(statistics.median(samples))
    return {name: statistics.median(m) for name, m in medians.items()}


def hit(session: requests.Session, url: str) -> Callable[[], Any]:
    """A hit on ``url`` (stored by its first request)."""
    session.get(url)  # the one miss
    assert getattr(session.get(url), "from_cache", True)
    return lambda: session.get(url).content


def _rows(ctx: Context, redis_url: str | None) -> list[Row]:
    import requests_cache
    from redis import Redis

    url = ctx.url("sync-hot")
    bare = requests.Session()
    sessions: list[Any] = [bare]
    calls: dict[str, Callable[[], Any]] = {BARE: lambda: bare.get(ctx.url("sync-bare")).content}
    try:
        from cachecontrol import CacheControl  # its default DictCache, on a requests.Session
    except ImportError:
        cachecontrol = None
    else:
        cachecontrol = CacheControl(requests.Session())
        sessions.append(cachecontrol)
        calls[CACHECONTROL] = hit(cachecontrol, url)
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
    rows: list[Row] = []
    try:
        for name, peer, ours in pairs:
            sessions += [peer, ours]
            calls[f"requests-cache {name} hit"] = hit(peer, url)
            calls[f"aiocache-http sync {name} hit"] = hit(ours, url)
        latencies = interleaved(calls, ctx.n)
        for row, latency in latencies.items():
            baseline: str | tuple[str, ...] | None = None
            if row.startswith("aiocache-http sync "):
                peer_name = "requests-cache " + row.removeprefix("aiocache-http sync ")
                baseline = (peer_name, CACHECONTROL) if cachecontrol is not None else peer_name
            rows.append(Row("sync", row, latency, baseline))
    finally:
        for _name, peer, ours in pairs:
            ours.cache.clear()
            peer.cache.clear()
        for session in sessions:
            session.close()
    return rows


@scenario("sync")
async def sync_rows(ctx: Context) -> list[Row]:
    with redis_server(ctx.tmp / "redis-sync") as redis_url:
        return await asyncio.to_thread(_rows, ctx, redis_url)


if __name__ == "__main__":
    import sys

    print("run it through bench.py: .venv/bin/python benchmarks/bench.py --only sync", file=sys.stderr)
