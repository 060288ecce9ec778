from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from aiocache_http import CacheBackend

from .backends import FACTORIES
from .origin import Origin, make_app


@pytest.fixture
async def origin() -> AsyncIterator[Origin]:
    """A local aiohttp origin on a free loopback port that counts requests per path."""
    counts: Counter[str] = Counter()
    runner = web.AppRunner(make_app(counts))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield Origin(f"http://127.0.0.1:{port}", counts)
    finally:
        await runner.cleanup()


BackendMaker = Callable[..., CacheBackend]


@pytest.fixture(params=sorted(FACTORIES))
async def make_backend(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[BackendMaker]:
    """Builds backends of one kind (parametrized over every backend); closes them after."""
    made: list[CacheBackend] = []
    factory = FACTORIES[request.param]

    def make(**settings: Any) -> CacheBackend:
        backend = factory(request, tmp_path, settings)
        made.append(backend)
        return backend

    yield make
    for backend in made:
        await backend.close()


@pytest.fixture
async def backend(make_backend: BackendMaker) -> CacheBackend:
    b = make_backend()
    await b.clear()
    return b


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


__all__ = ["asyncio"]
