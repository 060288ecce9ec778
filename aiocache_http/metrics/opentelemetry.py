"""OpenTelemetry metrics and span attributes of the cache (extra:
``pip install 'aiocache-http[opentelemetry]'``; bring your own SDK and exporter).

    from aiocache_http.metrics.opentelemetry import OpenTelemetryMetrics
    OpenTelemetryMetrics().observe(session.cache)   # the global MeterProvider

Metrics (attributes: ``http.cache.result``, ``http.request.method``, ``aiocache_http.cache``):

| instrument | unit | meaning |
|---|---|---|
| ``http.cache.requests`` (counter) | ``{request}`` | requests, by result |
| ``http.cache.request.duration`` (histogram) | ``s`` | time in the cache flow, origin included |
| ``http.cache.revalidations`` (counter) | ``{request}`` | ``http.cache.revalidation``: 304 or full |
| ``http.cache.stores`` (counter) | ``{response}`` | responses stored or renewed |
| ``http.cache.not_stored`` (counter) | ``{response}`` | ``http.cache.not_stored.reason`` |
| ``http.cache.storage.errors`` (counter) | ``{call}`` | ``error.type``: ``error`` or ``timeout`` |
| ``http.cache.response.body.size`` (counter) | ``By`` | ``http.cache.source``: ``cache`` or ``origin`` |

Span attributes, set on the span current when the request is made (an aiohttp or
requests instrumentation's client span, or yours): ``http.cache.hit`` (bool: answered
from the cache), ``http.cache.result``, ``http.cache.reason`` (the decision, with its RFC
section), ``http.cache.stored`` (bool), ``http.cache.key``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opentelemetry import metrics, trace

from ..events import CacheEvent
from .event import is_timeout, revalidation


class OpenTelemetryMetrics:
    def __init__(self, meter_provider: Any = None, spans: bool = True) -> None:
        meter = metrics.get_meter("aiocache_http", meter_provider=meter_provider)
        self.spans = spans
        self.requests = meter.create_counter("http.cache.requests", "{request}",
                                             "HTTP requests through the cache, by result")
        self.duration = meter.create_histogram("http.cache.request.duration", "s",
                                               "Time a request spent in the cache flow")
        self.revalidations = meter.create_counter("http.cache.revalidations", "{request}",
                                                  "Conditional requests, by outcome")
        self.stores = meter.create_counter("http.cache.stores", "{response}", "Responses stored or renewed")
        self.not_stored = meter.create_counter("http.cache.not_stored", "{response}",
                                               "Responses not stored, by reason")
        self.storage_errors = meter.create_counter("http.cache.storage.errors", "{call}",
                                                   "Storage calls that failed open")
        self.bytes = meter.create_counter("http.cache.response.body.size", "By",
                                          "Response body bytes served, by source")

    def observe(self, backend: Any) -> Callable[[], None]:
        """Record every request on ``backend``; returns the function that stops it."""
        name = str(getattr(backend, "name", "default"))
        unsubscribe: Callable[[], None] = backend.events.subscribe(lambda e: self.record(e, name))
        return unsubscribe

    def record(self, event: CacheEvent, cache: str = "default") -> None:
        base = {"aiocache_http.cache": cache}
        attrs = {**base, "http.cache.result": event.kind, "http.request.method": event.method}
        self.requests.add(1, attrs)
        self.duration.record(event.duration, attrs)
        outcome = revalidation(event)
        if outcome is not None:
            self.revalidations.add(1, {**base, "http.cache.revalidation": outcome})
        if event.stored:
            self.stores.add(1, base)
        elif event.stored is False:
            self.not_stored.add(1, {**base, "http.cache.not_stored.reason": event.not_stored_reason})
        for fault in event.storage_errors:
            self.storage_errors.add(1, {**base, "error.type": "timeout" if is_timeout(fault) else "error"})
        if event.bytes_served:
            self.bytes.add(event.bytes_served, {**base, "http.cache.source":
                                                "cache" if event.from_cache else "origin"})
        if self.spans:
            span = trace.get_current_span()
            if span.is_recording():
                span.set_attributes({
                    "http.cache.hit": event.from_cache, "http.cache.result": event.kind,
                    "http.cache.reason": event.why, "http.cache.stored": bool(event.stored),
                    "http.cache.key": getattr(event, "key", ""),
                })
