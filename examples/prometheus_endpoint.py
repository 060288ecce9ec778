"""Prometheus metrics of the cache, on a /metrics endpoint.

A service (aiohttp) calls a local origin through a CachedClientSession; its /metrics
endpoint shows aiocache_http_requests_total{result=...} & co. next to your own metrics.
Run it: it makes a few requests, prints its /metrics, and exits (``--serve`` keeps it
up for a real Prometheus to scrape).

    pip install 'aiocache-http[prometheus]'
    python examples/prometheus_endpoint.py [--serve]
"""

from __future__ import annotations

import asyncio
import sys

from aiohttp import ClientSession, web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from aiocache_http import CacheBackend, CachedClientSession
from aiocache_http.metrics.prometheus import PrometheusMetrics


async def start(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


async def main(serve: bool) -> None:
    async def item(request: web.Request) -> web.Response:
        return web.json_response({"item": request.match_info["name"]},
                                 headers={"Cache-Control": "max-age=60"})

    origin_app = web.Application()
    origin_app.router.add_get("/items/{name}", item)
    origin, origin_url = await start(origin_app)

    registry = CollectorRegistry()  # or leave it out: prometheus_client's default REGISTRY
    backend = CacheBackend("example", cache_control=True)
    PrometheusMetrics(registry).observe(backend)

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    service_app = web.Application()
    service_app.router.add_get("/metrics", metrics)
    service, service_url = await start(service_app)

    async with CachedClientSession(cache=backend) as session:
        for name in ("apple", "pear", "apple", "apple", "pear"):
            async with session.get(f"{origin_url}/items/{name}") as r:
                await r.read()
        async with ClientSession() as scraper, scraper.get(f"{service_url}/metrics") as r:
            text = await r.text()
        print("\n".join(line for line in text.splitlines()
                        if line.startswith("aiocache_http_") and "_bucket" not in line))
        if serve:
            print(f"\nserving {service_url}/metrics (Ctrl-C to stop)")
            await asyncio.Event().wait()
    await service.cleanup()
    await origin.cleanup()


if __name__ == "__main__":
    asyncio.run(main("--serve" in sys.argv))
