"""SQLite rows for benchmarks/bench.py: hit and miss latency of our SQLiteBackend against
aiohttp-client-cache's SQLiteBackend, and against the memory backend (the "memory" group's
rows, measured in the same run).

    .venv/bin/python benchmarks/bench.py --only memory --only sqlite
"""

from __future__ import annotations

from aiocache_http.backends.sqlite import SQLiteBackend
from benchmarks.bench import Context, Row, hit_and_miss, scenario

OURS_HIT, OURS_MISS = "aiocache-http sqlite hit", "aiocache-http sqlite miss"


@scenario("sqlite")
async def sqlite_rows(ctx: Context) -> list[Row]:
    from aiocache_http import CachedClientSession

    async with CachedClientSession(cache=SQLiteBackend(ctx.tmp / "ours.sqlite")) as ours:
        hit, miss = await hit_and_miss(ctx, ours, "ours-sqlite")
    rows = [Row("sqlite", OURS_MISS, miss, "aiocache-http memory miss"),
            Row("sqlite", OURS_HIT, hit, "aiocache-http memory hit")]
    try:
        from aiohttp_client_cache import CachedSession as PeerSession
        from aiohttp_client_cache import SQLiteBackend as PeerSQLite
    except ImportError:
        return rows
    async with PeerSession(cache=PeerSQLite(str(ctx.tmp / "peer.sqlite"))) as peer:
        peer_hit, peer_miss = await hit_and_miss(ctx, peer, "peer-sqlite")
    # The peer's rows are compared with ours: "3.00x" means the peer takes 3 times as long.
    rows += [Row("sqlite", "aiohttp-client-cache sqlite miss", peer_miss, OURS_MISS),
             Row("sqlite", "aiohttp-client-cache sqlite hit", peer_hit, OURS_HIT)]
    return rows
