"""Scale rows for bench.py (opt-in): hit latency with 1,000 stored entries and with
``--scale`` entries (1,000,000 is the figure that matters), on SQLite, Redis and the
filesystem, measured in the same run on random keys.

    .venv/bin/python benchmarks/bench.py --only scale --scale 1000000

The entries are real stored responses (each serialised for its own key: the checksum is
bound to it) bulk-loaded through the storage in batches, not made one request at a time.
1,000,000 entries of 1 KB take ~2 GB on disk for SQLite and as much again as files, and
~1.5 GB of Redis memory; building them takes minutes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import shutil
import statistics
from collections.abc import Awaitable, Callable
from typing import Any

from aiocache_http import CacheBackend, CachedClientSession, CachedRequest
from benchmarks.bench import Context, Row, get_body, median_latency, scenario

BATCH = 10_000
SAMPLES = 2_000
DISTINCT = 1_000
ROUNDS = 5


async def load(backend: CacheBackend, ctx: Context, entries: int, prefix: str) -> list[str]:
    """Store ``entries`` responses for URLs ``prefix-<i>``: one real miss, then copies of
    its response bulk-written under each URL's own key. Returns the URLs."""
    async with CachedClientSession(cache=backend, autoclose=False) as s:
        await get_body(s, ctx.url(f"{prefix}-0"))
        template = await backend.get_response(s.cache.create_key(s._cached_request(
            "GET", ctx.url(f"{prefix}-0"), {})))
    assert template is not None
    urls = [ctx.url(f"{prefix}-{i}") for i in range(entries)]
    storage = backend.raw_responses
    for start in range(1, entries, BATCH):
        items = []
        for url in urls[start:start + BATCH]:
            request = CachedRequest("GET", url)
            key = backend.create_key(request)
            response = dataclasses.replace(template, url=url, request=request, cache_key=key)
            items.append((key, backend.serializer.dumps(response, key), response.expires))
        await bulk_write(storage, items)
    return urls


async def bulk_write(storage: Any, items: list[tuple[str, bytes, Any]]) -> None:
    bulk: Callable[[list[tuple[str, bytes, Any]]], Awaitable[None]] | None = getattr(
        storage, "bulk_write", None)
    if bulk is not None:  # SQLite: one transaction
        await bulk(items)
        return
    client = getattr(storage, "clients", None)
    if client is not None:  # Redis: pipelined
        redis = client.get()
        pipe = redis.pipeline(transaction=False)
        for key, value, _expires in items:
            if storage._per_key:
                pipe.execute_command("SET", storage.prefix + key, value)
            else:
                pipe.execute_command("HSET", storage.name, key, value)
        await pipe.execute()
        return
    for start in range(0, len(items), 200):  # files: 200 writes at a time
        await asyncio.gather(*(storage.write(k, v, e) for k, v, e in items[start:start + 200]))


def working_set(urls: list[str]) -> list[str]:
    """The same working set at every size: DISTINCT keys spread over the whole store, each
    read SAMPLES // DISTINCT times in random order. The in-process memos (URL, key,
    decoded item) then help equally at 1,000 and at 1,000,000 entries, so the ratio shows
    what the number of stored entries costs the storage lookup."""
    rng = random.Random(1)
    hot = rng.sample(urls, min(DISTINCT, len(urls)))
    sample = [hot[i % len(hot)] for i in range(SAMPLES)]
    rng.shuffle(sample)
    return sample


async def compare(small: CacheBackend, large: CacheBackend, ctx: Context, entries: int,
                  name: str) -> tuple[float, float]:
    """Hit latency on ``small`` (1,000 entries) and on ``large`` (``entries``), measured in
    alternating rounds (a loaded machine drifts: both sizes see the same drift); the
    median of the rounds' medians."""
    samples = [working_set(await load(small, ctx, 1_000, f"s-{name}")),
               working_set(await load(large, ctx, entries, f"l-{name}"))]
    per_round = SAMPLES // ROUNDS
    medians: list[list[float]] = [[], []]
    async with (CachedClientSession(cache=small, autoclose=False) as a,
                CachedClientSession(cache=large, autoclose=False) as b):
        sessions = (a, b)
        for s, sample in zip(sessions, samples, strict=True):
            await get_body(s, sample[0])
            assert (await s.get(sample[1])).from_cache  # type: ignore[attr-defined]
        for r in range(ROUNDS):
            for which, (s, sample) in enumerate(zip(sessions, samples, strict=True)):
                part = sample[r * per_round:(r + 1) * per_round]
                medians[which].append(await median_latency(
                    lambda i, s=s, part=part: get_body(s, part[i % len(part)]), per_round,
                    warmup=20))
    return statistics.median(medians[0]), statistics.median(medians[1])


def backends(ctx: Context, tag: str, redis_url: str | None) -> dict[str, Callable[[], CacheBackend]]:
    from aiocache_http.backends.filesystem import FileBackend
    from aiocache_http.backends.sqlite import SQLiteBackend

    made: dict[str, Callable[[], CacheBackend]] = {
        "sqlite": lambda: SQLiteBackend(ctx.tmp / f"scale-{tag}.sqlite"),
        "filesystem": lambda: FileBackend(ctx.tmp / f"scale-{tag}-files"),
    }
    if redis_url is not None:
        from aiocache_http.backends.redis import RedisBackend

        made["redis"] = lambda: RedisBackend(f"scale-{tag}", redis_url)
    return made


async def cleanup(few: CacheBackend, many: CacheBackend, ctx: Context) -> None:
    """Free the files before the next stores are built (Redis memory goes with the
    throwaway server; clearing a million entries through the backend would outlast its
    maintenance deadline)."""
    for backend in (few, many):
        await backend.close()
    for path in ctx.tmp.glob("scale-*"):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


@scenario("scale")
async def scale_rows(ctx: Context) -> list[Row]:
    if not ctx.scale:
        return []
    from benchmarks.bench_redis import redis_server

    rows: list[Row] = []
    with redis_server(ctx.tmp / "redis-scale") as redis_url:
        small, large = backends(ctx, "small", redis_url), backends(ctx, "large", redis_url)
        for name in small:
            if ctx.scale_on and name not in ctx.scale_on:
                continue
            base = f"{name} hit, 1,000 entries"
            few_store, many_store = small[name](), large[name]()
            few, many = await compare(few_store, many_store, ctx, ctx.scale, name)
            rows.append(Row("scale", base, few))
            rows.append(Row("scale", f"{name} hit, {ctx.scale:,} entries", many, base))
            print(f"scale: {name}: {few * 1e6:.1f}µs at 1,000 entries, "
                  f"{many * 1e6:.1f}µs at {ctx.scale:,}", flush=True)  # a long run
            await cleanup(few_store, many_store, ctx)
    return rows
