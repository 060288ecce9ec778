"""Hit and miss latency against the bare client and the peers, measured in one run.

    make bench            # or: .venv/bin/python benchmarks/bench.py [--n 2000] [--only memory]
    .venv/bin/python benchmarks/bench.py --scale 1000000 --only scale   # hit latency at 1M entries

Everything talks to a local aiohttp origin on 127.0.0.1 and every loop is bounded.
Each row is the median of N timed requests after a warm-up; ratios are against bare
aiohttp (misses) and against the peer's equivalent (hits), measured in the same run.
"100 tasks" rows are wall time per request with 100 concurrent tasks (1 / throughput).
The origin answers ``Cache-Control: max-age=3600``, so RFC 9111 caches (CacheControl,
hishel) store it too.

Rows are registered with ``@scenario(...)``; a backend adds its own rows the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import logging
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiocache_http import CacheBackend, CachedClientSession

BODY = b'{"data": "' + b"x" * 1024 + b'"}'


@dataclass
class Row:
    group: str
    name: str
    seconds: float  # median latency of one request
    baseline: str | tuple[str, ...] | None = None  # the row(s) this one is compared with


Bench = Callable[["Context"], Awaitable[list[Row]]]
SCENARIOS: list[tuple[str, Bench]] = []


def scenario(group: str) -> Callable[[Bench], Bench]:
    def register(fn: Bench) -> Bench:
        SCENARIOS.append((group, fn))
        return fn

    return register


@dataclass
class Context:
    base_url: str
    n: int
    tmp: Path
    scale: int = 0  # --scale: entries for the scale group (0: the group is skipped)
    scale_on: tuple[str, ...] = ()  # --scale-on: only these backends in the scale group

    def url(self, i: int | str) -> str:
        return f"{self.base_url}/item/{i}"


async def median_latency(call: Callable[[int], Awaitable[Any]], n: int, warmup: int = 50) -> float:
    for i in range(warmup):
        await call(i)
    samples = []
    for i in range(n):
        start = time.perf_counter()
        await call(i)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


async def interleaved(calls: dict[str, Callable[[int], Awaitable[Any]]], n: int,
                      rounds: int = 10, warmup: int = 50,
                      quietest: dict[str, float] | None = None) -> dict[str, float]:
    """Median latency of each call over ``n`` requests, measured in alternating rounds:
    a ratio between two of them is not skewed by the machine's load moving between rows.

    After the warm-up, what exists is frozen out of the collector's way (``gc.freeze``),
    as in a long-running service, whose startup objects are old and seldom scanned (a
    fresh benchmark process would otherwise pay full collections of its imports in the
    samples); each call's garbage is still collected as it comes.

    ``quietest`` receives each call's lowest median of one round: what it costs while the
    machine's other work leaves it alone (on a shared machine a microsecond hit's median
    moves with the neighbours' load, 8-16 µs between runs of one commit, its quietest
    round much less)."""
    for call in calls.values():
        for i in range(warmup):
            await call(i)
    samples: dict[str, list[float]] = {name: [] for name in calls}
    per = max(n // rounds, 1)
    gc.collect()
    gc.freeze()
    lowest = dict.fromkeys(calls, float("inf"))
    try:
        for _ in range(rounds):
            for name, call in calls.items():
                found = samples[name]
                for i in range(per):
                    start = time.perf_counter()
                    await call(i)
                    found.append(time.perf_counter() - start)
                lowest[name] = min(lowest[name], statistics.median(found[-per:]))
    finally:
        gc.unfreeze()
    if quietest is not None:
        quietest.update(lowest)
    return {name: statistics.median(found) for name, found in samples.items()}


async def get_body(session: Any, url: str) -> bytes:
    async with session.get(url) as r:
        body: bytes = await r.read()
        return body


async def per_request_with_tasks(call: Callable[[int], Awaitable[Any]], total: int,
                                 tasks: int = 100) -> float:
    """Wall time per request with ``tasks`` concurrent workers (1 / throughput); best of 3."""
    best = float("inf")
    for _ in range(3):
        counter = iter(range(total))

        async def worker(numbers: Iterator[int]) -> None:
            for i in numbers:
                await call(i)

        start = time.perf_counter()
        await asyncio.gather(*(worker(counter) for _ in range(tasks)))
        best = min(best, (time.perf_counter() - start) / total)
    return best


async def concurrent_hits(ctx: Context, session: Any) -> float:
    await get_body(session, ctx.url("hot"))
    return await per_request_with_tasks(lambda i: get_body(session, ctx.url("hot")), ctx.n * 2)


async def hit_and_miss(ctx: Context, session: Any, label: str) -> tuple[float, float]:
    """Median latency of a hit (one URL, cached) and a miss (a new URL every time)."""
    await get_body(session, ctx.url("hot"))
    hit = await median_latency(lambda i: get_body(session, ctx.url("hot")), ctx.n)
    miss = await median_latency(lambda i: get_body(session, ctx.url(f"{label}-{i}")), ctx.n // 4,
                                warmup=5)
    return hit, miss


async def miss_and_bare(ctx: Context, bare: Any, session: Any,
                        label: str) -> tuple[float, float, float]:
    """Median latency of a miss + store (a new URL every time), of bare aiohttp on a new URL
    every time (the same request without the cache) and of bare aiohttp on one URL,
    alternating request by request (same origin, same warm-up): the ratios are not skewed
    by the machine's load moving between rows. A URL not seen before costs aiohttp and
    yarl more (their URL caches miss), with or without a cache in front."""
    fresh = itertools.count()
    measured = await interleaved(
        {"miss": lambda i: get_body(session, ctx.url(f"{label}-miss-{next(fresh)}")),
         "bare new": lambda i: get_body(bare, ctx.url(f"{label}-bare-{next(fresh)}")),
         "bare": lambda i: get_body(bare, ctx.url("bare"))},
        ctx.n // 2, rounds=ctx.n // 2)
    return measured["miss"], measured["bare new"], measured["bare"]


# An in-process hit takes microseconds: this many times ``--n`` samples, in this many
# rounds alternating with the peer's, so the row is not one short window of the machine.
MEMORY_HIT_SAMPLES = 5
MEMORY_HIT_ROUNDS = 50


@scenario("memory")
async def memory_rows(ctx: Context) -> list[Row]:
    try:
        from aiohttp_client_cache import CacheBackend as PeerMemory
        from aiohttp_client_cache import CachedSession as PeerSession
        with_peer = True
    except ImportError:
        with_peer = False
    async with AsyncExitStack() as stack:
        bare = await stack.enter_async_context(aiohttp.ClientSession())
        ours = await stack.enter_async_context(CachedClientSession(cache=CacheBackend()))
        miss, bare_new, bare_latency = await miss_and_bare(ctx, bare, ours, "ours-mem")
        hits: dict[str, Any] = {"ours": ours}
        if with_peer:
            hits["peer"] = await stack.enter_async_context(PeerSession(cache=PeerMemory()))
        for session in hits.values():
            await get_body(session, ctx.url("hot"))
        quiet: dict[str, float] = {}
        hit = await interleaved({name: _hot(session, ctx) for name, session in hits.items()},
                                ctx.n * MEMORY_HIT_SAMPLES, rounds=MEMORY_HIT_ROUNDS, quietest=quiet)
        tasks = await concurrent_hits(ctx, ours)
        rows = [Row("memory", "bare aiohttp (no cache)", bare_latency),
                Row("memory", "bare aiohttp (no cache), new URL each time", bare_new),
                Row("memory", "aiocache-http memory miss (interleaved with bare)", miss,
                    ("bare aiohttp (no cache), new URL each time", "bare aiohttp (no cache)")),
                Row("memory", "aiocache-http memory hit", hit["ours"], "aiohttp-client-cache memory hit"),
                Row("memory", "aiocache-http memory hit, quietest round", quiet["ours"],
                    "aiohttp-client-cache memory hit, quietest round"),
                Row("memory", "aiocache-http memory hit, 100 tasks", tasks,
                    "aiohttp-client-cache memory hit, 100 tasks")]
        if with_peer:
            peer = hits["peer"]
            peer_miss = await median_latency(lambda i: get_body(peer, ctx.url(f"peer-mem-{i}")),
                                             ctx.n // 4, warmup=5)
            peer_tasks = await concurrent_hits(ctx, peer)
            rows += [Row("memory", "aiohttp-client-cache memory miss", peer_miss, "bare aiohttp (no cache)"),
                     Row("memory", "aiohttp-client-cache memory hit", hit["peer"]),
                     Row("memory", "aiohttp-client-cache memory hit, quietest round", quiet["peer"]),
                     Row("memory", "aiohttp-client-cache memory hit, 100 tasks", peer_tasks)]
    return rows


def _hot(session: Any, ctx: Context) -> Callable[[int], Awaitable[Any]]:
    return lambda i: get_body(session, ctx.url("hot"))


@asynccontextmanager
async def local_origin(port: int = 0) -> AsyncIterator[str]:
    async def item(request: web.Request) -> web.Response:
        return web.Response(body=BODY, content_type="application/json",
                            headers={"Cache-Control": "max-age=3600"})

    app = web.Application()
    app.router.add_get("/item/{name}", item)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def print_table(rows: list[Row]) -> None:
    by_name = {r.name: r for r in rows}
    print(f"\n{'group':<10} {'scenario':<52} {'median':>10}  ratio")
    print("-" * 110)
    for r in rows:
        names = (r.baseline,) if isinstance(r.baseline, str) else (r.baseline or ())
        ratios = [f"{r.seconds / by_name[n].seconds:5.2f}x {n}" for n in names if n in by_name]
        print(f"{r.group:<10} {r.name:<52} {r.seconds * 1e6:8.1f}µs  {'; '.join(ratios)}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="timed requests per hit row")
    parser.add_argument("--only", action="append", help="run only these groups")
    parser.add_argument("--scale", type=int, default=0, metavar="ENTRIES",
                        help="also run the scale group: hit latency with ENTRIES stored "
                             "(1000000 builds ~2 GB of SQLite and files; off by default)")
    parser.add_argument("--scale-on", default="", metavar="BACKENDS",
                        help="scale group: only these backends (comma-separated: sqlite,redis,filesystem)")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        async with local_origin() as base_url:
            ctx = Context(base_url, max(args.n, 100), Path(tmp), args.scale,
                          tuple(name for name in args.scale_on.split(",") if name))
            for group, bench in SCENARIOS:
                if args.only and group not in args.only:
                    continue
                rows += await bench(ctx)
    if rows:  # groups such as "rss" print their own table
        print_table(rows)


def load_plugins() -> None:
    """Rows contributed by other modules in this folder (bench_*.py)."""
    import importlib

    for path in sorted(Path(__file__).parent.glob("bench_*.py")):
        importlib.import_module(f"benchmarks.{path.stem}")


if __name__ == "__main__":
    sys.modules.setdefault("benchmarks.bench", sys.modules["__main__"])
    load_plugins()
    asyncio.run(main())
