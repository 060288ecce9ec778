from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from aiocache_http import CacheBackend
from aiocache_http.policy.settings import CONSTRUCTION_ONLY, CacheSettings

from .aws_servers import moto_server  # noqa: F401
from .backends import FACTORIES
from .clients import CLIENTS, Client
from .origin import Clock, Origin, make_app
from .redis_servers import redis_cluster, redis_server, redis_server_hfe  # noqa: F401


@pytest.fixture
async def origin() -> AsyncIterator[Origin]:
    """A local aiohttp origin on a free loopback port that counts requests per path."""
    counts: Counter[str] = Counter()
    state: dict[str, bool] = {}
    last_headers: dict[str, dict[str, str]] = {}
    clock = Clock()
    gates: dict[str, asyncio.Event] = {}
    runner = web.AppRunner(make_app(counts, state, last_headers, clock, gates))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield Origin(f"http://127.0.0.1:{port}", counts, last_headers, state, clock, gates)
    finally:
        for gate in gates.values():  # a test that failed before releasing: nothing hangs
            gate.set()
        await runner.cleanup()


BackendMaker = Callable[..., CacheBackend]

# Tests test behaviour, not deadlines: they run with storage deadlines a loaded 2-core
# machine always meets, so a slow moment (moto, a busy thread pool, six test runs at once)
# is never a miss, a dropped write (then a second origin request) or, with strict=True,
# an error. The first call on a loop (it opens connections; on DynamoDB, botocore loads
# its service model first) has a plain clock deadline, connect_timeout: at load 13 on 2
# cores that CPU work alone takes seconds. Tests marked ``real_deadlines`` (the fault
# tests in tests/reliability/) run with the documented defaults.
SUITE_DEADLINES = {"backend_timeout": 5.0, "write_timeout": 30.0, "connect_timeout": 60.0}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "real_deadlines: run with the documented storage deadlines")


@pytest.fixture(autouse=True)
def _suite_deadlines(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.node.get_closest_marker("real_deadlines") is None:
        for name, value in SUITE_DEADLINES.items():
            monkeypatch.setitem(CacheSettings._DEFAULTS, name, value)


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




@pytest.fixture(params=sorted(CLIENTS))
async def make_client(
    request: pytest.FixtureRequest, make_backend: BackendMaker
) -> AsyncIterator[Callable[..., Client]]:
    """Builds a session of one kind (async, sync...) over a fresh backend of one kind."""
    made: list[Client] = []

    def make(**settings: Any) -> Client:
        fixed = {k: settings.pop(k) for k in CONSTRUCTION_ONLY & settings.keys()}
        client = CLIENTS[request.param](make_backend(**fixed), **settings)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()


@pytest.fixture
def thread_origin() -> Iterator[Origin]:
    """The local origin, served by a loop in its own thread."""
    origin = Origin("", Counter())
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(make_app(origin.counts, origin.state, origin.last_headers, origin.clock))
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", 0).start())
    origin.base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield origin
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
