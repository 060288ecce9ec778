"""The main job in thirty lines: an aiohttp service calling an origin through the cache.

Starts a local origin on 127.0.0.1, fetches three URLs twice through a
CachedClientSession on the default backend (SQLite, a file in a temp dir), and shows
which answers were misses (origin) and which were hits (cache).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from aiohttp import web

from aiocache_http import CachedClientSession, init_backend


async def main() -> None:
    served = 0

    async def item(request: web.Request) -> web.Response:
        nonlocal served
        served += 1
        await asyncio.sleep(0.05)  # a slow origin
        return web.json_response({"item": request.match_info["name"]})

    app = web.Application()
    app.router.add_get("/items/{name}", item)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"

    with tempfile.TemporaryDirectory() as tmp:
        backend = init_backend(str(Path(tmp) / "demo-cache"), expire_after=300)
        print(f"backend: {type(backend).__name__} in {tmp}\n")
        async with CachedClientSession(cache=backend) as session:
            for round_ in (1, 2):
                for name in ("apple", "pear", "plum"):
                    start = time.perf_counter()
                    async with session.get(f"{base}/items/{name}") as r:
                        await r.json()
                        kind = "HIT " if r.from_cache else "MISS"
                    ms = (time.perf_counter() - start) * 1000
                    print(f"round {round_}  {kind}  {r.status}  /items/{name:<6} {ms:7.2f} ms")
            print(f"\norigin requests: {served} for 6 calls; "
                  f"stored responses: {await session.cache.responses.size()}")
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
