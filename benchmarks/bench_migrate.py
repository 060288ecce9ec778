"""Migration rows for bench.py: `aiocache-http migrate` throughput (the command's own code,
in process), SQLite -> Redis, Redis -> SQLite, and a resumed run where every entry is
already there (read and compared, not written). 1 KB bodies, signed envelopes.

    .venv/bin/python benchmarks/bench.py --only migrate (AIOCACHE_HTTP_BENCH_MIGRATE_N=20000)

The time column is per entry; the name carries entries per second.
"""

from __future__ import annotations

import io
import os
from datetime import timedelta

from multidict import CIMultiDict

from aiocache_http import CachedRequest, utcnow
from aiocache_http.backends.base import CacheBackend
from aiocache_http.backends.redis import RedisBackend
from aiocache_http.backends.sqlite import SQLiteBackend
from aiocache_http.cli.migrate import Counts, Migration
from aiocache_http.cli.output import Output
from aiocache_http.models import CachedResponse
from benchmarks.bench import BODY, Context, Row, scenario
from benchmarks.bench_redis import redis_server

ENTRIES = int(os.environ.get("AIOCACHE_HTTP_BENCH_MIGRATE_N", "20000"))


async def fill(backend: CacheBackend, n: int) -> None:
    now, headers, items = utcnow(), CIMultiDict({"Content-Type": "application/json"}), []
    for i in range(n):
        url = f"http://127.0.0.1/item/{i}"
        response = CachedResponse(200, "OK", url, headers, BODY, CachedRequest("GET", url),
                                  created_at=now, expires=now + timedelta(hours=1, seconds=i))
        key = backend.create_key(response.request)
        items.append((key, backend.serializer.dumps(response, key), response.expires))
    await backend.raw_responses.bulk_write(items)


async def timed(src: CacheBackend, dst: CacheBackend) -> Counts:
    counts = Counts()
    await Migration(src, dst, Output(stream=io.StringIO()), True, counts).run()
    return counts


def row(name: str, counts: Counts) -> Row:
    moved = counts.copied + counts.skipped
    return Row("migrate", f"{name}: {counts.rate:,.0f} entries/s", counts.seconds / moved)


@scenario("migrate")
async def migrate_rows(ctx: Context) -> list[Row]:
    with redis_server(ctx.tmp / "redis-migrate") as url:
        if url is None:
            return []
        src = SQLiteBackend(ctx.tmp / "migrate-src.sqlite", secret_key="bench")
        redis = RedisBackend("bench-migrate", url, secret_key="bench")
        back = SQLiteBackend(ctx.tmp / "migrate-back.sqlite", secret_key="bench")
        try:
            await fill(src, ENTRIES)
            await redis.clear()
            k = f"{ENTRIES // 1000}k"
            rows = [row(f"migrate {k} sqlite -> redis", await timed(src, redis)),
                    row(f"migrate {k} redis -> sqlite", await timed(redis, back)),
                    row(f"migrate {k} again, all skipped (resume)", await timed(src, redis))]
        finally:
            await redis.clear()
            for backend in (src, redis, back):
                await backend.close()
        return rows
