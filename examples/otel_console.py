"""OpenTelemetry metrics and span attributes of the cache, printed by the console
exporters (swap in an OTLP exporter for a real collector).

Each request runs inside a span (an aiohttp instrumentation would make that client span
for you); the cache adds http.cache.hit, http.cache.result, http.cache.reason... to it,
and counts http.cache.requests & co. by result.

    pip install 'aiocache-http[opentelemetry]' opentelemetry-sdk
    python examples/otel_console.py
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, PeriodicExportingMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

from aiocache_http import CacheBackend, CachedClientSession
from aiocache_http.metrics.opentelemetry import OpenTelemetryMetrics


async def main() -> None:
    async def item(request: web.Request) -> web.Response:
        return web.json_response({"item": request.match_info["name"]}, headers={"ETag": '"v1"'})

    app = web.Application()
    app.router.add_get("/items/{name}", item)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"

    # Your application's providers (here: print everything to the console).
    reader = PeriodicExportingMetricReader(ConsoleMetricExporter(), export_interval_millis=60_000)
    meters = MeterProvider(metric_readers=[reader])
    tracers = TracerProvider()
    tracers.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    tracer = tracers.get_tracer("example")

    backend = CacheBackend("example", expire_after=60)
    OpenTelemetryMetrics(meter_provider=meters).observe(backend)
    async with CachedClientSession(cache=backend) as session:
        for name in ("apple", "apple", "pear"):
            with tracer.start_as_current_span(f"GET /items/{name}"):
                async with session.get(f"{base}/items/{name}") as r:
                    await r.read()
    await runner.cleanup()
    meters.shutdown()  # exports the metrics once more, then stops
    tracers.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
