"""SQLite rows for benchmarks/bench.py: hit and miss latency of our SQLiteBackend against
aiohttp-client-cache's SQLiteBackend and hishel's async SQLite storage (httpx), and
against the memory backend (the "memory" group's rows, measured in the same run).

    .venv/bin/python benchmarks/bench.py --only memory --only sqlite
"""

from __future__ import annotations

from typing import Any

from aiocache_http.backends.sqlite import SQLiteBackend
from benchmarks.bench import Context, Row, concurrent_hits, hit_and_miss, median_latency, scenario

OURS_HIT, OURS_MISS = "aiocache-http sqlite hit", "aiocache-http sqlite miss"
OURS_TASKS = "aiocache-http sqlite hit, 100 tasks"
PEER_HIT, PEER_TASKS = "aiohttp-client-cache sqlite hit", "aiohttp-client-cache sqlite hit, 100 tasks"


@scenario("sqlite")
async def sqlite_rows(ctx: Context) -> list[Row]:
    from aiocache_http import CachedClientSession

    async with CachedClientSession(cache=SQLiteBackend(ctx.tmp / "ours.sqlite")) as ours:
        hit, miss = await hit_and_miss(ctx, ours, "ours-sqlite")
        tasks = await concurrent_hits(ctx, ours)
    rows = [Row("sqlite", OURS_MISS, miss, "aiocache-http memory miss"),
            Row("sqlite", OURS_HIT, hit, (PEER_HIT, "hishel sqlite hit (httpx)")),
            Row("sqlite", OURS_TASKS, tasks, PEER_TASKS)]
    try:
        from aiohttp_client_cache import CachedSession as PeerSession
        from aiohttp_client_cache import SQLiteBackend as PeerSQLite
    except ImportError:
        return rows
    async with PeerSession(cache=PeerSQLite(str(ctx.tmp / "peer.sqlite"))) as peer:
        peer_hit, peer_miss = await hit_and_miss(ctx, peer, "peer-sqlite")
        peer_tasks = await concurrent_hits(ctx, peer)
    rows += [Row("sqlite", "aiohttp-client-cache sqlite miss", peer_miss, OURS_MISS),
             Row("sqlite", PEER_HIT, peer_hit),
             Row("sqlite", PEER_TASKS, peer_tasks)]
    rows += await hishel_rows(ctx)
    return rows


async def hishel_rows(ctx: Context) -> list[Row]:
    try:
        import hishel
        from hishel.httpx import AsyncCacheClient
    except ImportError:
        return []
    storage = hishel.AsyncSqliteStorage(database_path=str(ctx.tmp / "hishel.sqlite"))
    async with AsyncCacheClient(storage=storage) as client:
        async def get(i: int) -> Any:
            response = await client.get(ctx.url("hot"))
            return response.content

        await get(0)
        return [Row("sqlite", "hishel sqlite hit (httpx)", await median_latency(get, ctx.n))]
