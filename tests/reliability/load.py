"""Traffic for fault tests: concurrent requests through an async and a sync session
sharing one backend, recorded as the caller sees them (latency, body, exceptions).

Every loop is bounded in count and time. The bare clients (plain aiohttp and requests
against the same origin) are measured in the same test, so latencies are compared with a
baseline of the same machine at the same moment, never with a constant.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import requests

from aiocache_http import CacheBackend, CachedClientSession
from aiocache_http.backends.health import CircuitState
from aiocache_http.sync import CachedSession

from ..origin import Origin

PAUSE = 0.005  # between two requests of a worker: traffic, not a CPU hog on 2 shared cores
MAX_REQUESTS = 20_000  # per worker: a bound whatever the clock does
HOT = 4  # URLs per worker stored before the fault (each worker has its own: a hit is
# then a read from storage, never a coalesced follower of another worker's request)


@dataclass(slots=True)
class Sample:
    client: str  # "async" / "sync"
    at: float  # monotonic start
    latency: float
    url: str
    from_cache: bool = False
    error: str | None = None
    wrong: bool = False
    state: str = ""  # the circuit state of that client's loop when the request started


def percentile(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def path_of(url: str) -> str:
    return "/" + url.split("/", 3)[3].split("?")[0]


def is_wrong(url: str, body: bytes) -> bool:
    """The origin's body names the path it answered: anything else is a wrong body."""
    try:
        return bool(json.loads(body)["path"] != path_of(url))
    except (ValueError, KeyError):
        return True


@dataclass
class Traffic:
    """Runs ``async_workers`` tasks and ``sync_workers`` threads until :meth:`stop`."""

    backend: CacheBackend
    origin: Origin
    name: str
    async_workers: int = 3
    sync_workers: int = 2
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _counter: itertools.count[int] = field(default_factory=itertools.count)

    def hot(self, worker: str, i: int) -> str:
        return self.origin.url(f"/r/{self.name}-{worker}-hot{i}")

    def fresh(self) -> str:
        return self.origin.url(f"/r/{self.name}-new{next(self._counter)}")

    def url(self, worker: str, n: int) -> str:
        return self.hot(worker, n // 2 % HOT) if n % 2 == 0 else self.fresh()

    def workers(self) -> list[str]:
        return [f"a{i}" for i in range(self.async_workers)] + [f"s{i}" for i in range(self.sync_workers)]

    async def warm(self, session: CachedClientSession) -> None:
        """Store the hot URLs, and check they are hits."""
        urls = [self.hot(w, i) for w in self.workers() for i in range(HOT)]
        for url in urls:
            async with session.get(url) as r:
                await r.read()
        for url in urls:
            async with session.get(url) as r:
                await r.read()
                assert r.from_cache, "the cache does not work before the fault"

    async def run(self, seconds: float, during: Callable[[], Any] | None = None) -> None:
        """Run traffic for at most ``seconds`` (or until stop()), calling ``during`` (a
        coroutine function) meanwhile; the workers stop when it returns."""
        session = CachedClientSession(cache=self.backend, autoclose=False)
        sync = CachedSession(backend=self.backend, autoclose=False)
        deadline = time.monotonic() + seconds
        try:
            await self.warm(session)
            workers = [asyncio.create_task(self._async_worker(session, i, deadline))
                       for i in range(self.async_workers)]
            threads = [asyncio.create_task(asyncio.to_thread(self._sync_worker, sync, i, deadline))
                       for i in range(self.sync_workers)]
            try:
                if during is not None:
                    await during()
            finally:
                self._stop.set()
                await asyncio.gather(*workers, *threads)
        finally:
            sync.close()
            await session.close()

    async def _async_worker(self, session: CachedClientSession, w: int, deadline: float) -> None:
        for n in range(MAX_REQUESTS):
            if self._stop.is_set() or time.monotonic() > deadline:
                return
            url = self.url(f"a{w}", n)
            state = self.backend.health.state.value
            start = time.monotonic()
            sample = Sample("async", start, 0.0, url, state=state)
            try:
                async with session.get(url) as r:
                    body = await r.read()
                    sample.from_cache, sample.wrong = bool(r.from_cache), is_wrong(url, body)
            except Exception as e:
                sample.error = f"{type(e).__name__}: {e}"
            sample.latency = time.monotonic() - start
            self.samples.append(sample)
            await asyncio.sleep(PAUSE)

    def _sync_worker(self, session: CachedSession, w: int, deadline: float) -> None:
        for n in range(MAX_REQUESTS):
            if self._stop.is_set() or time.monotonic() > deadline:
                return
            url = self.url(f"s{w}", n)
            start = time.monotonic()
            sample = Sample("sync", start, 0.0, url, state=_bridge_state(self.backend))
            try:
                r = session.get(url)
                sample.from_cache, sample.wrong = bool(r.from_cache), is_wrong(url, r.content)
            except Exception as e:
                sample.error = f"{type(e).__name__}: {e}"
            sample.latency = time.monotonic() - start
            self.samples.append(sample)
            time.sleep(PAUSE)

    # -- what the caller saw -------------------------------------------------------------
    def between(self, start: float, end: float, client: str | None = None) -> list[Sample]:
        return [s for s in self.samples
                if start <= s.at < end and (client is None or s.client == client)]

    def first_hit_after(self, moment: float, client: str) -> float | None:
        """Seconds from ``moment`` to the end of the first hit by ``client`` (a read from
        storage: no two workers share a URL, so no hit is a coalesced follower)."""
        hits = [s.at + s.latency for s in self.samples
                if s.client == client and s.at >= moment and s.from_cache]
        return min(hits) - moment if hits else None


def _bridge_state(backend: CacheBackend) -> str:
    from aiocache_http.sync.bridge import BRIDGE

    loop = BRIDGE._loop
    breaker = backend.health._breakers.get(loop) if loop is not None else None
    return breaker.state.value if breaker is not None else CircuitState.CLOSED.value


@dataclass
class Baseline:
    """Latency of the bare clients for the same kind of request, measured now."""

    async_p50: float
    async_p90: float
    sync_p50: float
    sync_p90: float

    def p50(self, client: str) -> float:
        return self.async_p50 if client == "async" else self.sync_p50

    def p90(self, client: str) -> float:
        return self.async_p90 if client == "async" else self.sync_p90


async def baseline(origin: Origin, n: int = 60) -> Baseline:
    async_times: list[float] = []
    async with aiohttp.ClientSession() as bare:
        for i in range(n):
            start = time.monotonic()
            async with bare.get(origin.url(f"/r/bare{i}")) as r:
                await r.read()
            async_times.append(time.monotonic() - start)

    def sync_run() -> list[float]:
        times = []
        with requests.Session() as s:
            for i in range(n):
                start = time.monotonic()
                s.get(origin.url(f"/r/bare-sync{i}")).content  # noqa: B018
                times.append(time.monotonic() - start)
        return times

    sync_times = await asyncio.to_thread(sync_run)
    return Baseline(statistics.median(async_times), percentile(async_times, 90),
                    statistics.median(sync_times), percentile(sync_times, 90))


def summary(samples: list[Sample]) -> str:
    lat = [s.latency for s in samples]
    return (f"{len(samples)} requests, p50 {percentile(lat, 50) * 1000:.1f} ms, "
            f"p99 {percentile(lat, 99) * 1000:.1f} ms, max {max(lat, default=0) * 1000:.1f} ms, "
            f"{sum(s.from_cache for s in samples)} hits, "
            f"{sum(s.error is not None for s in samples)} errors, {sum(s.wrong for s in samples)} wrong")
