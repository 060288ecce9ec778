"""A noise-free yardstick: N sequential requests, to be counted in instructions.

    python benchmarks/one.py serve PORT          # the origin (bench.py's), in its own process
    valgrind --tool=cachegrind --cache-sim=no python benchmarks/one.py MODE N PORT

MODE: ``bare`` (a plain aiohttp.ClientSession, a new URL each request), ``miss`` (a
CachedClientSession on memory, a new URL each request: a miss + store), ``hit`` (one URL,
stored before the loop). Per request: (I(2N) - I(N)) / N, the start-up cancelled out
(``benchmarks/instructions.sh`` does it). The origin is a separate process, so only the
client is counted. Everything talks to 127.0.0.1; the loop is bounded by N.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiocache_http import CacheBackend, CachedClientSession
from benchmarks.bench import local_origin  # (the same origin as bench.py)


async def serve(port: int) -> None:
    async with local_origin(port):
        await asyncio.Event().wait()  # until killed


async def client(mode: str, n: int, port: int) -> None:
    base = f"http://127.0.0.1:{port}/item"
    if mode == "bare":
        session: aiohttp.ClientSession = aiohttp.ClientSession()
    elif mode in ("miss", "hit"):
        session = CachedClientSession(cache=CacheBackend())
    else:
        raise SystemExit(f"unknown mode {mode!r}: bare, miss or hit")
    async with session:
        for i in range(5):  # warm: connection, imports done lazily
            async with session.get(f"{base}/warm-{i}") as r:
                await r.read()
        for i in range(n):
            url = f"{base}/hot" if mode == "hit" else f"{base}/{mode}-{i}"
            async with session.get(url) as r:
                await r.read()


if __name__ == "__main__":
    logging.disable(logging.WARNING)
    if sys.argv[1] == "serve":
        asyncio.run(serve(int(sys.argv[2])))
    else:
        asyncio.run(client(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
