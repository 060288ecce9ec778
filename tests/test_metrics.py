"""Metrics: after a scripted mix of 1,000 requests from an async and a sync session sharing
one backend, ``backend.stats``, the Prometheus registry and the OpenTelemetry reader all
say what the origin's own request counter implies."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from aiocache_http import CacheBackend, driver
from aiocache_http.metrics.opentelemetry import OpenTelemetryMetrics
from aiocache_http.metrics.prometheus import PrometheusMetrics

from .backends import FACTORIES
from .clients import AsyncClient, Client, SyncClient
from .origin import Origin

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@dataclass
class Script:
    """1,000 requests: fresh hits, 304 revalidations, full refetches of stale entries
    without validators, uncacheable 500s, request no-store, and POSTs."""

    sent: Counter[str] = field(default_factory=Counter)  # path -> requests made
    groups: dict[str, set[str]] = field(default_factory=lambda: {
        g: set() for g in ("fresh", "etag", "noval", "error", "nostore", "post")})

    def step(self, i: int) -> tuple[str, str, str, dict[str, Any]]:
        r = i % 10
        if r < 4:
            group, path, kw = "fresh", f"/r/fresh{i % 25}", {}
        elif r < 6:  # stored, then revalidated on every use: the origin answers 304
            group, path, kw = "etag", f"/r/etag{i % 8}", {"expire_after": 0}
        elif r == 6:  # stale at once, no validator: never stored (requests-cache's rule), fetched in full
            group, path, kw = "noval", f"/r/noval{i % 4}", {"expire_after": 0}
        elif r == 7:
            group, path, kw = "error", f"/r/error{i % 3}", {}
        elif r == 8:
            group, path, kw = "nostore", f"/r/nostore{i % 5}", {"headers": {"Cache-Control": "no-store"}}
        else:
            group, path, kw = "post", f"/r/post{i % 5}", {}
        self.groups[group].add(path)
        self.sent[path] += 1
        query = {"etag": "?etag=v1", "error": "?status=500"}.get(group, "")
        return group, "POST" if group == "post" else "GET", path + query, kw

    async def run(self, clients: list[Client], origin: Origin, n: int = 1000) -> None:
        for i in range(n):
            group, method, path, kw = self.step(i)
            # A request's own Cache-Control: the sync session honours it in every mode, as
            # requests-cache does; the async one only with cache_control (aiohttp-client-cache).
            client = clients[-1] if group == "nostore" else clients[i % len(clients)]
            await client.request(method, origin.url(path), **kw)

    def origin_count(self, origin: Origin, group: str) -> int:
        return sum(origin.count(p) for p in self.groups[group])


def prometheus_value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    total = 0.0
    for metric in registry.collect():
        for sample in metric.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def otel_points(reader: InMemoryMetricReader, name: str) -> dict[tuple[tuple[str, Any], ...], float]:
    data = reader.get_metrics_data()
    assert data is not None
    points: dict[tuple[tuple[str, Any], ...], float] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == name:
                    for point in metric.data.data_points:
                        points[tuple(sorted(point.attributes.items()))] = getattr(point, "value", None) \
                            if hasattr(point, "value") else point.count
    return points


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
async def test_counters_match_the_origin_for_both_sessions(
        kind: str, request: pytest.FixtureRequest, tmp_path: Path, origin: Origin) -> None:
    backend: CacheBackend = FACTORIES[kind](request, tmp_path, {})
    await backend.clear()
    stats = backend.stats
    registry = CollectorRegistry()
    PrometheusMetrics(registry).observe(backend)
    reader = InMemoryMetricReader()
    OpenTelemetryMetrics(MeterProvider(metric_readers=[reader])).observe(backend)
    clients: list[Client] = [AsyncClient(backend), SyncClient(backend)]
    script = Script()
    await script.run(clients, origin)

    total, sent = origin.total, script.sent
    count = lambda group: script.origin_count(origin, group)  # noqa: E731
    assert stats.requests == 1000
    assert stats.misses + stats.revalidated + stats.bypassed == total  # every origin request
    assert stats.hits == 1000 - total  # the rest came from the cache
    assert stats.hits == sum(sent[p] for p in script.groups["fresh"]) - count("fresh")
    assert count("fresh") == len(script.groups["fresh"])  # one miss each
    assert stats.revalidated == count("etag") - len(script.groups["etag"])  # all but the first
    assert stats.revalidated_full == 0
    assert stats.bypassed == count("nostore") + count("post")
    assert stats.misses == count("fresh") + len(script.groups["etag"]) + count("noval") + count("error")
    assert stats.stores == stats.misses - count("error") - count("noval") + stats.revalidated
    assert sorted(stats.not_stored.values()) == sorted([count("error"), count("noval")])
    assert any("500" in reason for reason in stats.not_stored)
    assert any("validator" in reason for reason in stats.not_stored)
    assert stats.stale == stats.gateway_timeouts == stats.errors == stats.storage_errors == 0
    assert stats.bytes_from_cache > 0 and stats.bytes_from_origin > 0
    assert stats.breaker == "closed"
    as_dict = stats.as_dict()
    assert as_dict["hits"] == stats.hits and as_dict["hit_ratio"] == pytest.approx(
        (stats.hits + stats.revalidated) / 1000, abs=1e-4)

    results = {"hit": stats.hits, "revalidated": stats.revalidated, "miss": stats.misses,
               "bypassed": stats.bypassed}
    for result, n in results.items():
        assert prometheus_value(registry, "aiocache_http_requests_total", result=result) == n
        assert prometheus_value(registry, "aiocache_http_request_duration_seconds_count",
                                result=result) == n
    assert prometheus_value(registry, "aiocache_http_requests_total") == 1000
    assert prometheus_value(registry, "aiocache_http_stores_total") == stats.stores
    assert prometheus_value(registry, "aiocache_http_not_stored_total") == count("error") + count("noval")
    assert prometheus_value(registry, "aiocache_http_revalidations_total", outcome="not_modified") == \
        stats.revalidated
    assert prometheus_value(registry, "aiocache_http_response_bytes_total", source="cache") == \
        stats.bytes_from_cache
    assert prometheus_value(registry, "aiocache_http_breaker_open") == 0

    requests = otel_points(reader, "http.cache.requests")
    by_result: Counter[str] = Counter()
    for attributes, value in requests.items():
        by_result[dict(attributes)["http.cache.result"]] += int(value)
    assert by_result == Counter({k: v for k, v in results.items() if v})
    assert sum(otel_points(reader, "http.cache.stores").values()) == stats.stores
    durations = otel_points(reader, "http.cache.request.duration")
    assert sum(durations.values()) == 1000  # histogram counts
    for client in clients:
        await client.close()


async def test_storage_errors_and_the_breaker_are_counted(tmp_path: Path, origin: Origin,
                                                          request: pytest.FixtureRequest) -> None:
    """A Redis server that is gone: requests still succeed (fail-open), the stats say why."""
    from aiocache_http.backends.redis import RedisBackend

    from .redis_servers import free_port

    backend = RedisBackend("gone", f"redis://127.0.0.1:{free_port()}", breaker_threshold=3)
    stats = backend.stats
    registry = CollectorRegistry()
    PrometheusMetrics(registry).observe(backend)
    client = AsyncClient(backend)
    for i in range(10):
        assert (await client.get(origin.url(f"/r/down{i}"))).status == 200
    assert stats.requests == 10 and stats.misses == 10 and stats.hits == 0
    assert stats.storage_errors >= 3
    assert stats.breaker == "open"
    assert prometheus_value(registry, "aiocache_http_storage_errors_total") == stats.storage_errors
    assert prometheus_value(registry, "aiocache_http_breaker_open") == 1
    await client.close()


async def test_span_attributes(origin: Origin) -> None:
    spans = InMemorySpanExporter()
    tracers = TracerProvider()
    tracers.add_span_processor(SimpleSpanProcessor(spans))
    tracer = tracers.get_tracer("test")
    backend = CacheBackend()
    OpenTelemetryMetrics(MeterProvider(metric_readers=[InMemoryMetricReader()])).observe(backend)
    client = AsyncClient(backend)
    for name in ("first", "second"):
        with tracer.start_as_current_span(name):
            await client.get(origin.url("/r/span"))
    first, second = (dict(s.attributes or {}) for s in spans.get_finished_spans())
    assert (first["http.cache.hit"], first["http.cache.result"], first["http.cache.stored"]) == \
        (False, "miss", True)
    assert (second["http.cache.hit"], second["http.cache.result"]) == (True, "hit")
    assert str(second["http.cache.reason"]).startswith("hit")
    assert first["http.cache.key"] == second["http.cache.key"] != ""
    await client.close()


async def test_event_hook_and_stats_reset(origin: Origin) -> None:
    backend = CacheBackend()
    stats = backend.stats
    seen: list[tuple[str, str]] = []
    unsubscribe = backend.events.subscribe(lambda e: seen.append((e.kind, e.why)))
    client = AsyncClient(backend)
    await client.get(origin.url("/r/hook"))
    await client.get(origin.url("/r/hook"))
    unsubscribe()
    await client.get(origin.url("/r/hook"))
    assert [k for k, _why in seen] == ["miss", "hit"]
    assert stats.requests == 3 and backend.stats is stats
    stats.reset()
    assert stats.requests == 0 and stats.as_dict()["not_stored"] == {}
    await client.close()


def _heard(backend: CacheBackend, listening: bool) -> list[str]:
    """The kinds of the events ``backend`` emits from now on, when ``listening`` (else a
    list that stays empty: nobody subscribed)."""
    seen: list[str] = []
    if listening:
        backend.events.subscribe(lambda e: seen.append(e.kind))
    return seen


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_hits_are_counted_alike_with_and_without_listeners(
        kind: str, request: pytest.FixtureRequest, tmp_path: Path, origin: Origin) -> None:
    """With nobody listening a plain hit is counted without building its event (the hot
    path); the counters are the same as when a listener sees every event."""
    counted = []
    for listening in (False, True):
        backend: CacheBackend = FACTORIES[kind](request, tmp_path / str(listening), {})
        await backend.clear()
        seen = _heard(backend, listening)
        client = AsyncClient(backend)
        replies = [await client.get(origin.url("/r/counted")) for _ in range(5)]
        await client.close()
        assert [r.from_cache for r in replies] == [False, True, True, True, True]
        counts = backend.stats.as_dict()
        counts.pop("since")
        assert counts["hits"] == 4 and counts["misses"] == 1 and counts["requests"] == 5
        assert counts["bytes_from_cache"] == sum(len(r.body) for r in replies[1:]) > 0
        counted.append(counts)
        assert seen == (["miss"] + ["hit"] * 4 if listening else [])
    assert counted[0] == counted[1]


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_misses_are_counted_alike_with_and_without_listeners(
        kind: str, request: pytest.FixtureRequest, tmp_path: Path, origin: Origin,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """With nobody listening a plain miss stored whole is counted without building its
    event; the counters are the same as when a listener sees every event (misses stored
    and not stored, and the hits after them)."""
    built = Counter[bool]()

    class CountedEvent(driver.CacheEvent):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            built[listening] += 1
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(driver, "CacheEvent", CountedEvent)
    counted = []
    for listening in (False, True):
        backend: CacheBackend = FACTORIES[kind](request, tmp_path / str(listening), {})
        await backend.clear()
        seen = _heard(backend, listening)
        client = AsyncClient(backend)
        urls = [origin.url(f"/r/miss-{i}") for i in range(3)] + [origin.url("/r/nostore?status=404")]
        replies = [await client.get(url) for url in urls + urls[:1]]
        await client.close()
        assert [r.from_cache for r in replies] == [False] * 4 + [True]
        counts = backend.stats.as_dict()
        counts.pop("since")
        assert (counts["misses"], counts["stores"], counts["hits"], counts["requests"]) == (4, 3, 1, 5)
        assert counts["bytes_from_origin"] == sum(len(r.body) for r in replies[:3]) > 0
        counted.append(counts)
        assert seen == (["miss"] * 4 + ["hit"] if listening else [])
    assert counted[0] == counted[1]
    assert built[False] == 1  # only the miss that was not stored built its event
    assert built[True] == 5


@pytest.mark.parametrize("example", ["prometheus_endpoint.py", "otel_console.py"])
async def test_examples_run(example: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(EXAMPLES / example), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(EXAMPLES.parent)})
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    text = out.decode()
    if example == "prometheus_endpoint.py":
        assert 'aiocache_http_requests_total{cache="example",method="GET",result="hit"} 3.0' in text
        assert 'aiocache_http_requests_total{cache="example",method="GET",result="miss"} 2.0' in text
    else:
        assert '"http.cache.requests"' in text and '"http.cache.result": "hit"' in text
        assert '"http.cache.hit": true' in text and '"http.cache.hit": false' in text


@pytest.mark.parametrize("client_class", [AsyncClient, SyncClient])
async def test_bypasses_are_counted_alike_with_and_without_listeners(
        client_class: type[Client], origin: Origin, monkeypatch: pytest.MonkeyPatch) -> None:
    """With nobody listening a request that passes the cache by (a disabled cache, a
    method not cached, a request no-store) is counted without building its event; the
    counters are the same as when a listener sees every event."""
    built = Counter[tuple[bool, str]]()

    class CountedEvent(driver.CacheEvent):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            built[listening, self.kind] += 1

    monkeypatch.setattr(driver, "CacheEvent", CountedEvent)
    counted = []
    for listening in (False, True):
        backend = CacheBackend(cache_control=True)
        seen = _heard(backend, listening)
        client = client_class(backend)
        url = origin.url("/r/bypassed")
        await client.request("POST", url)
        await client.get(url, headers={"Cache-Control": "no-store"})
        await client.get(url)  # a miss, stored
        backend.disabled = True  # (the sync client's calls run in a copy of this context)
        try:
            replies = [await client.get(url) for _ in range(2)]
        finally:
            backend.disabled = False
        await client.close()
        assert [r.from_cache for r in replies] == [False, False]
        counts = backend.stats.as_dict()
        counts.pop("since")
        assert (counts["bypassed"], counts["misses"], counts["stores"], counts["requests"]) == (4, 1, 1, 5)
        counted.append(counts)
        assert seen == (["bypassed", "bypassed", "miss", "bypassed", "bypassed"] if listening else [])
    assert counted[0] == counted[1]
    assert built[False, "bypassed"] == 0
    assert built[True, "bypassed"] == 4
