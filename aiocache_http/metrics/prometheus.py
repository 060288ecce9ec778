"""Prometheus metrics of the cache (extra: ``pip install 'aiocache-http[prometheus]'``).

    from aiocache_http.metrics.prometheus import PrometheusMetrics
    metrics = PrometheusMetrics()            # prometheus_client's default registry
    metrics.observe(session.cache)           # every session on this backend is counted

| metric | labels | meaning |
|---|---|---|
| ``aiocache_http_requests_total`` | ``cache``, ``result``, ``method`` | requests, by event kind |
| ``aiocache_http_request_duration_seconds`` | ``cache``, ``result`` | time in the cache flow (histogram) |
| ``aiocache_http_revalidations_total`` | ``cache``, ``outcome`` | ``not_modified`` (304) or ``full`` |
| ``aiocache_http_stores_total`` | ``cache`` | responses stored or renewed |
| ``aiocache_http_not_stored_total`` | ``cache``, ``reason`` | responses not stored, and why |
| ``aiocache_http_storage_errors_total`` | ``cache``, ``type`` | failed storage calls: error or timeout |
| ``aiocache_http_response_bytes_total`` | ``cache``, ``source`` | bodies served, ``cache`` or ``origin`` |
| ``aiocache_http_breaker_open`` | ``cache`` | 1 while the storage circuit is open |

``result`` is one of ``hit``, ``stale``, ``revalidated``, ``miss``, ``bypassed``,
``gateway_timeout``, ``error``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from ..events import CacheEvent
from .event import is_timeout, revalidation

BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class PrometheusMetrics:
    """One set of metrics in ``registry``; :meth:`observe` any number of backends (the
    ``cache`` label tells them apart)."""

    def __init__(self, registry: CollectorRegistry | None = REGISTRY, prefix: str = "aiocache_http",
                 buckets: tuple[float, ...] = BUCKETS) -> None:
        def make(kind: Any, name: str, doc: str, labels: list[str], **kw: Any) -> Any:
            return kind(f"{prefix}_{name}", doc, ["cache", *labels], registry=registry, **kw)

        self.requests = make(Counter, "requests", "HTTP requests through the cache, by result",
                             ["result", "method"])
        self.duration = make(Histogram, "request_duration_seconds",
                             "Time a request spent in the cache flow, origin included", ["result"],
                             buckets=buckets)
        self.revalidations = make(Counter, "revalidations", "Conditional requests, by outcome",
                                  ["outcome"])
        self.stores = make(Counter, "stores", "Responses stored or renewed", [])
        self.not_stored = make(Counter, "not_stored", "Responses not stored, by reason", ["reason"])
        self.storage_errors = make(Counter, "storage_errors", "Storage calls that failed open",
                                   ["type"])
        self.bytes = make(Counter, "response_bytes", "Response body bytes served, by source",
                          ["source"])
        self.breaker = make(Gauge, "breaker_open", "1 while the storage circuit is open", [])

    def observe(self, backend: Any) -> Callable[[], None]:
        """Count every request on ``backend``; returns the function that stops it."""
        name = str(getattr(backend, "name", "default"))
        health = getattr(backend, "health", None)

        def record(event: CacheEvent) -> None:
            self.record(event, name)
            state = getattr(health, "state", None)
            if state is not None:
                self.breaker.labels(name).set(1 if getattr(state, "value", state) == "open" else 0)

        unsubscribe: Callable[[], None] = backend.events.subscribe(record)
        return unsubscribe

    def record(self, event: CacheEvent, cache: str = "default") -> None:
        self.requests.labels(cache, event.kind, event.method).inc()
        self.duration.labels(cache, event.kind).observe(event.duration)
        outcome = revalidation(event)
        if outcome is not None:
            self.revalidations.labels(cache, outcome).inc()
        if event.stored:
            self.stores.labels(cache).inc()
        elif event.stored is False:
            self.not_stored.labels(cache, event.not_stored_reason or "unknown").inc()
        for fault in event.storage_errors:
            self.storage_errors.labels(cache, "timeout" if is_timeout(fault) else "error").inc()
        if event.bytes_served:
            self.bytes.labels(cache, "cache" if event.from_cache else "origin").inc(event.bytes_served)
