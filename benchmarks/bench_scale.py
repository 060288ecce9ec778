"""Scale rows for bench.py (opt-in): hit latency with 1,000 stored entries, with 100,000
(when ``--scale`` is larger) and with ``--scale`` entries (1,000,000 is the figure that
matters), on SQLite, Redis and the filesystem, measured in the same run on random keys.

    .venv/bin/python benchmarks/bench.py --only scale --scale 1000000

The entries are real stored responses (each serialised for its own key: the checksum is
bound to it) bulk-written straight into the storage, not made one request at a time:
one transaction per batch on SQLite, a pipeline on Redis, and on the filesystem the
envelope bytes written in the backend's own layout (file name from the key, expiry as
the modification time) without the per-file fsync a real write pays. 1,000,000 entries
of 1 KB take ~2 GB on disk for SQLite, ~4 GB as files (one block each) and ~2 GB of
Redis memory; building them takes a few minutes per backend.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import random
import shutil
import statistics
import time
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
        key = s.cache.create_key(s._cached_request("GET", ctx.url(f"{prefix}-0"), {}))
        for _ in range(10):  # a write past its deadline on a busy disk is skipped (fail-open)
            await get_body(s, ctx.url(f"{prefix}-0"))
            template = await backend.get_record(key)
            if template is not None:
                break
            await asyncio.sleep(0.5)
    assert template is not None, f"{backend!r} stored nothing"
    urls = [ctx.url(f"{prefix}-{i}") for i in range(entries)]
    storage = backend.raw_responses
    began = time.monotonic()
    for start in range(1, entries, BATCH):
        items = []
        for url in urls[start:start + BATCH]:
            request = CachedRequest("GET", url)
            key = backend.create_key(request)
            response = dataclasses.replace(template, url=url, request=request, cache_key=key)
            items.append((key, backend.serializer.dumps(response, key), response.expires))
        await bulk_write(storage, items)
    from aiocache_http.backends.sqlite import SQLiteCache

    if isinstance(storage, SQLiteCache):  # the bulk load's log into the file: a settled cache
        async with storage.get_connection() as conn:
            await conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    if entries >= 100_000:
        print(f"scale: {entries:,} entries loaded in {time.monotonic() - began:.0f}s", flush=True)
    return urls


async def bulk_write(storage: Any, items: list[tuple[str, bytes, Any]]) -> None:
    from aiocache_http.backends.filesystem import FileCache

    if isinstance(storage, FileCache):  # files: the backend's layout, in a worker thread
        await asyncio.to_thread(write_files, storage, items)
        return
    bulk: Callable[[list[tuple[str, bytes, Any]]], Awaitable[None]] | None = getattr(
        storage, "bulk_write", None)
    if bulk is not None:  # SQLite: one transaction per batch
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
    raise TypeError(f"no bulk load for {storage!r}")


def write_files(storage: Any, items: list[tuple[str, bytes, Any]]) -> None:
    """What ``FileCache.write`` leaves on disk (the entry's file, its expiry as mtime),
    minus the temporary file and fsync that make a real write atomic and durable."""
    from aiocache_http.backends.filesystem import _mtime

    for key, value, expires in items:
        path = storage.path(key)
        with open(path, "wb") as f:
            f.write(value)
        mtime = _mtime(expires)
        os.utime(path, (mtime, mtime))


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


def sizes(scale: int) -> list[int]:
    """1,000, 100,000 (between them and ``scale``) and ``scale``."""
    return sorted({1_000, *(n for n in (100_000,) if n < scale), scale})


def floor(store: CacheBackend, sample: list[str]) -> Callable[[int], Awaitable[Any]] | None:
    """Redis (keys layout): a bare GET of each sampled entry with the backend's own client,
    what the server's side of a hit costs at this size; None for other storages."""
    from aiocache_http.backends.redis import RedisCache

    storage = store.raw_responses
    if not isinstance(storage, RedisCache) or not storage._per_key:
        return None
    client = storage.clients.get()
    names = [storage.prefix + store.create_key(CachedRequest("GET", url)) for url in sample]
    return lambda i: client.execute_command("GET", names[i % len(names)])


async def compare(stores: list[CacheBackend], ctx: Context, entries: list[int],
                  name: str) -> tuple[list[float], list[float]]:
    """Hit latency on each store (``entries[i]`` entries in ``stores[i]``), and the
    storage's bare read where there is one (Redis), measured in alternating rounds (a
    loaded machine drifts: every size sees the same drift); the median of the rounds'
    medians."""
    samples = [working_set(await load(store, ctx, n, f"{name}-{n}"))
               for store, n in zip(stores, entries, strict=True)]
    per_round = SAMPLES // ROUNDS
    sessions = [CachedClientSession(cache=store, autoclose=False) for store in stores]
    calls: list[list[Callable[[int], Awaitable[Any]]]] = [[], []]
    try:
        for s, sample in zip(sessions, samples, strict=True):
            # Every distinct URL read twice before timing: the in-process memos (URL ->
            # key, bounded) then hold each working set alike. Loading fills them with the
            # store's last keys: all of the 1,000-entry store, little of the others'.
            for _ in range(2):
                for url in dict.fromkeys(sample):
                    await get_body(s, url)
            assert (await s.get(sample[1])).from_cache  # type: ignore[attr-defined]
        for r in range(ROUNDS):
            for s, store, sample in zip(sessions, stores, samples, strict=True):
                part = sample[r * per_round:(r + 1) * per_round]
                calls[0].append(lambda i, s=s, part=part: get_body(s, part[i % len(part)]))
                bare = floor(store, part)
                if bare is not None:
                    calls[1].append(bare)
        medians: list[list[list[float]]] = [[[] for _ in stores], [[] for _ in stores]]
        for r in range(ROUNDS):
            for which in range(len(stores)):
                for kind in (0, 1):
                    if calls[kind]:
                        call = calls[kind][r * len(stores) + which]
                        medians[kind][which].append(await median_latency(call, per_round, warmup=20))
    finally:
        for s in sessions:
            await s.close()
    hit, bare = ([statistics.median(m) for m in kind if m] for kind in medians)
    return hit, bare


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


async def cleanup(stores: list[CacheBackend], ctx: Context) -> None:
    """Free the files before the next stores are built (Redis memory goes with the
    throwaway server; clearing a million entries through the backend would outlast its
    maintenance deadline)."""
    for backend in stores:
        await backend.close()
    for path in ctx.tmp.glob("scale-*"):
        if path.is_dir():
            await asyncio.to_thread(shutil.rmtree, path, True)
        else:
            path.unlink(missing_ok=True)


@scenario("scale")
async def scale_rows(ctx: Context) -> list[Row]:
    if not ctx.scale:
        return []
    from benchmarks.bench_redis import redis_server

    rows: list[Row] = []
    entries = sizes(ctx.scale)
    with redis_server(ctx.tmp / "redis-scale") as redis_url:
        made = [backends(ctx, f"{n}", redis_url) for n in entries]
        for name in made[0]:
            if ctx.scale_on and name not in ctx.scale_on:
                continue
            stores = [by_name[name]() for by_name in made]
            start = time.monotonic()
            latencies, bare = await compare(stores, ctx, entries, name)
            for label, figures in ((f"{name} hit", latencies), (f"{name} bare GET (redis-py)", bare)):
                if not figures:
                    continue
                base = f"{label}, {entries[0]:,} entries"
                for n, latency in zip(entries, figures, strict=True):
                    rows.append(Row("scale", f"{label}, {n:,} entries", latency,
                                    None if n == entries[0] else base))
                print(f"scale: {label}: " + ", ".join(
                    f"{latency * 1e6:.1f}µs at {n:,}" for n, latency in zip(entries, figures, strict=True))
                    + f" ({time.monotonic() - start:.0f}s, load average "
                    + " ".join(f"{x:.1f}" for x in os.getloadavg()) + ")", flush=True)  # a long run
            await cleanup(stores, ctx)
    return rows
