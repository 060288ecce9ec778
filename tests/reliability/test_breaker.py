"""The gate to storage (CacheBackend._guard, backends/health.py): deadlines, the circuit
breaker, strict mode, rate-limited logs, and every path through it, on real parts: a
listener that accepts connections and never answers (a hung server), a redis-server we
stop with SIGSTOP or slow with DEBUG SLEEP, and the local origin.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from aiocache_http import CacheBackend, CachedClientSession, CachedRequest, RedisBackend
from aiocache_http.backends.health import BackendTimeoutError, BackendUnavailableError, CircuitState
from aiocache_http.policy.settings import CacheSettings
from aiocache_http.sync import CachedSession

from ..aws_servers import DUMMY_CREDENTIALS, REGION
from ..origin import Origin
from ..redis_servers import RedisServer, system_binary

DEADLINE = 0.1
# What a storage call on a hung server would wait without the gate: the clients' own
# timeouts here (MongoDB's server selection is the shortest). A call the gate cuts ends
# long before: within CUT, a bound a loaded 2-core machine meets (it stalls a process for
# a second now and then), not the deadline plus a small margin, which it missed. That
# each cut is one deadline, no more, the tests prove by counting (health.timeouts).
HANG = 30.0
CUT = HANG / 6
# the clients' own timeouts of the backends on own_redis, which the tests stop (SIGSTOP)
HUNG_CLIENT = {"socket_timeout": HANG, "socket_connect_timeout": HANG}

pytestmark = pytest.mark.real_deadlines  # the documented defaults, not the suite's


@pytest.fixture
def hung_port() -> Iterator[int]:
    """A port whose kernel completes TCP handshakes, but nobody ever answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(128)
        yield s.getsockname()[1]


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(system_binary(), tmp_path / "redis", None, "--enable-debug-command", "yes")
    server.start()
    try:
        yield server
    finally:
        if server.proc is not None:
            os.kill(server.proc.pid, signal.SIGCONT)
        server.stop()


def hung_backends(port: int) -> dict[str, Callable[..., CacheBackend]]:
    """Each backend kind with a network client, pointed at a server that never answers,
    with the clients' own (long) timeouts: only the gate bounds them."""
    from aiocache_http.backends.dynamodb import DynamoDBBackend
    from aiocache_http.backends.mongodb import MongoDBBackend

    return {
        "redis": lambda **kw: RedisBackend(f"hung-{uuid.uuid4().hex[:6]}", f"redis://127.0.0.1:{port}",
                                           **HUNG_CLIENT, **kw),
        "mongodb": lambda **kw: MongoDBBackend("hung", host="127.0.0.1", port=port, **kw),
        "dynamodb": lambda **kw: DynamoDBBackend("hung", endpoint_url=f"http://127.0.0.1:{port}",
                                                 region_name=REGION, **DUMMY_CREDENTIALS, **kw),
    }


async def timed(coro: Any) -> tuple[Any, float]:
    start = time.monotonic()
    result = await coro
    return result, time.monotonic() - start


# -- settings -------------------------------------------------------------------------------
def test_settings_have_documented_defaults_and_are_validated() -> None:
    s = CacheSettings()
    assert (s.backend_timeout, s.write_timeout, s.connect_timeout) == (0.1, 2.0, 10.0)
    assert (s.breaker_threshold, s.breaker_cooldown) == (5, 1.0)
    s.backend_timeout = None  # no deadline
    s.breaker_threshold = 0  # never open
    for name, bad in [("backend_timeout", 0), ("write_timeout", -1), ("connect_timeout", "1"),
                      ("breaker_threshold", 1.5), ("breaker_threshold", -1), ("breaker_cooldown", None),
                      ("breaker_cooldown", True)]:
        with pytest.raises(ValueError, match=name):
            setattr(s, name, bad)
    with pytest.raises(ValueError, match="backend_timeout"):
        RedisBackend("x", backend_timeout=0)


# -- a hung server: one deadline, then nothing ------------------------------------------------
@pytest.mark.parametrize("kind", ["redis", "mongodb", "dynamodb"])
async def test_a_hung_server_costs_one_deadline_then_nothing(kind: str, hung_port: int) -> None:
    """Client defaults are 30-60 s (MongoDB server selection, botocore reads, the Redis
    socket timeout here): the gate bounds each call, and the open circuit skips storage."""
    backend = hung_backends(hung_port)[kind](connect_timeout=0.3)
    health = backend.health
    try:
        # The first call creates the client (botocore loads its service model, blocking the
        # loop a moment: nothing a deadline can cut), then waits connect_timeout.
        first, took = await timed(backend.get_response("k"))
        assert first is None and took < CUT
        for _ in range(health.settings.breaker_threshold - 1):
            _, took = await timed(backend.get_response("k"))
            assert took < CUT  # never warm: each is a connection attempt, cut at connect_timeout
        assert health.state is CircuitState.OPEN and health.opened == 1
        skipped = health.skipped
        times = []
        for _ in range(50):
            _, took = await timed(backend.get_response("k"))
            times.append(took)
            await backend.save_response(
                await _response(), backend.create_key(CachedRequest("GET", "http://127.0.0.1/x")))
        # no storage call: microseconds (the median: a loaded machine stalls now and then)
        assert statistics.median(times) < DEADLINE / 2 and max(times) < CUT, times
        assert health.skipped >= skipped + 100 and health.timeouts == health.settings.breaker_threshold
    finally:
        await backend.close()


async def _response() -> Any:
    from multidict import CIMultiDict

    from aiocache_http.models import CachedResponse

    return CachedResponse(200, "OK", "http://127.0.0.1/x", CIMultiDict(), b"x",
                          CachedRequest("GET", "http://127.0.0.1/x"))


async def test_a_request_spends_at_most_one_deadline(own_redis: RedisServer, origin: Origin) -> None:
    """A miss makes several storage calls (read, redirect read, write): on a server that
    hangs after it was warm, only the first waits; the others are skipped."""
    backend = RedisBackend(f"one-{uuid.uuid4().hex[:6]}", own_redis.url, breaker_threshold=100,
                           **HUNG_CLIENT)
    assert own_redis.proc is not None
    async with CachedClientSession(cache=backend) as s:
        await (await s.get(origin.url("/r/warm"))).read()
        os.kill(own_redis.proc.pid, signal.SIGSTOP)
        try:
            for i in range(5):
                start = time.monotonic()
                r = await s.get(origin.url(f"/r/hung{i}"))
                assert r.status == 200 and not r.from_cache
                assert time.monotonic() - start < CUT
            assert backend.health.timeouts == 5 and backend.health.state is CircuitState.CLOSED
        finally:
            os.kill(own_redis.proc.pid, signal.SIGCONT)


async def test_strict_raises_on_timeout_and_while_open(hung_port: int) -> None:
    backend = hung_backends(hung_port)["redis"](strict=True, connect_timeout=0.2, breaker_threshold=2)
    try:
        for _ in range(2):
            with pytest.raises(BackendTimeoutError, match=r"took longer than 0\.2s"):
                await backend.get_response("k")
        with pytest.raises(BackendUnavailableError, match="circuit is open"):
            await backend.get_response("k")
        with pytest.raises(BackendUnavailableError):
            await backend.save_response(await _response(), "k")
        assert isinstance(BackendTimeoutError(), TimeoutError)
        assert isinstance(BackendUnavailableError(), ConnectionError)
    finally:
        await backend.close()


def _gate_frames() -> list[str]:
    """The gate's frames (health.py, base.py) between the caller and this storage call."""
    frame = sys._getframe(1)
    names = []
    while frame is not None:
        if frame.f_code.co_filename.endswith(("backends/health.py", "backends/base.py")):
            names.append(frame.f_code.co_name)
        frame = frame.f_back  # type: ignore[assignment]
    return names


async def test_a_warm_read_is_gated_in_one_frame_under_the_same_deadline(own_redis: RedisServer) -> None:
    """A hit's read on a warm loop passes the gate in one frame (Health.read), not four
    (_guard, call, _run, _within): and still under its deadline, counted, failing open,
    raising with strict."""
    backend = RedisBackend(f"frame-{uuid.uuid4().hex[:6]}", own_redis.url, backend_timeout=DEADLINE,
                           **HUNG_CLIENT)
    strict = RedisBackend(f"frame-{uuid.uuid4().hex[:6]}", own_redis.url, backend_timeout=DEADLINE,
                          strict=True, breaker_threshold=0, **HUNG_CLIENT)
    health = backend.health
    assert own_redis.proc is not None

    async def storage_call() -> list[str]:
        await asyncio.sleep(0)
        return _gate_frames()

    cold = await backend._guard("read", storage_call(), [])  # the first call opens connections
    assert cold[0] == "_within"
    assert await backend._guard("read", storage_call(), []) == ["read"]  # warm: one frame
    for each in (backend, strict):
        await each.raw_responses.write("k", b"v")
        assert await each._guard("read", each.raw_responses.read("k"), None) == b"v"
    os.kill(own_redis.proc.pid, signal.SIGSTOP)
    try:
        found, took = await timed(backend._guard("read", backend.raw_responses.read("k"), b"default"))
        assert found == b"default" and took < CUT
        assert health.timeouts == 1 and health.consecutive_failures == 1
        with pytest.raises(BackendTimeoutError, match="completed no call"):
            await strict._guard("read", strict.raw_responses.read("k"), None)
    finally:
        os.kill(own_redis.proc.pid, signal.SIGCONT)
    assert await backend._guard("read", backend.raw_responses.read("k"), None) == b"v"
    assert health.consecutive_failures == 0 and health.state is CircuitState.CLOSED
    await backend.close()
    await strict.close()


async def test_half_open_probes_with_one_call(own_redis: RedisServer) -> None:
    backend = RedisBackend(f"probe-{uuid.uuid4().hex[:6]}", own_redis.url, breaker_cooldown=0.3)
    health = backend.health
    assert own_redis.proc is not None
    await backend.raw_responses.write("k", b"v")
    assert await backend._guard("read", backend.raw_responses.read("k"), None) == b"v"  # warm
    os.kill(own_redis.proc.pid, signal.SIGSTOP)
    try:
        while health.state is not CircuitState.OPEN:
            await backend.get_response("k")
        timeouts = health.timeouts
        await asyncio.sleep(0.35)
        results = await asyncio.gather(*(timed(backend.get_response("k")) for _ in range(20)))
        assert health.timeouts == timeouts + 1  # one probe; 19 skipped, at once
        assert sorted(t for _, t in results)[-2] < 0.05
        assert health.state is CircuitState.OPEN
    finally:
        os.kill(own_redis.proc.pid, signal.SIGCONT)
    await asyncio.sleep(0.35)
    assert await backend._guard("read", backend.raw_responses.read("k"), None) == b"v"  # the probe
    assert health.state is CircuitState.CLOSED and health.consecutive_failures == 0
    await backend.close()


async def test_one_circuit_per_event_loop(own_redis: RedisServer, origin: Origin) -> None:
    """An async service and a sync script share the backend; each loop finds out for
    itself: the async loop's open circuit does not stop the sync session's hits."""
    backend = RedisBackend(f"loops-{uuid.uuid4().hex[:6]}", own_redis.url, breaker_cooldown=30)
    sync = CachedSession(backend=backend, autoclose=False)
    assert own_redis.proc is not None
    url = origin.url("/r/per-loop")
    async with CachedClientSession(cache=backend, autoclose=False) as s:
        await (await s.get(url)).read()
        assert (await asyncio.to_thread(sync.get, url)).from_cache
        os.kill(own_redis.proc.pid, signal.SIGSTOP)
        try:
            for i in range(backend.settings.breaker_threshold):
                await (await s.get(origin.url(f"/r/per-loop{i}"))).read()
        finally:
            os.kill(own_redis.proc.pid, signal.SIGCONT)
        assert backend.health.state is CircuitState.OPEN  # seen from this loop
        assert not (await s.get(url)).from_cache  # open for 30 s here: straight to the origin
        assert (await asyncio.to_thread(sync.get, url)).from_cache  # the bridge loop's is closed
        assert {b.state for b in backend.health._breakers.values()} == {
            CircuitState.OPEN, CircuitState.CLOSED}
    sync.close()
    await backend.close()


async def test_a_slow_write_finishes_in_the_background(own_redis: RedisServer, origin: Origin) -> None:
    """The caller waits for a write at most backend_timeout; the write still lands once
    the server answers again (the cap, write_timeout, is not the subject: lifted), and
    close() waits for it: nothing lost. The server stops answering with CLIENT PAUSE,
    which is in force once it returns (a DEBUG SLEEP sent from a thread 50 ms earlier
    may not have reached the server yet on a loaded machine)."""
    backend = RedisBackend(f"slow-{uuid.uuid4().hex[:6]}", own_redis.url, write_timeout=60)
    pause = 3.0  # seconds the server answers nothing: the hang the caller must not wait for

    def paused() -> None:
        with own_redis.client() as admin:
            admin.execute_command("CLIENT", "PAUSE", int(pause * 1000), "ALL")

    async with CachedClientSession(cache=backend) as s:
        await (await s.get(origin.url("/r/warm-slow"))).read()
        await asyncio.to_thread(paused)
        start = time.monotonic()
        r = await s.get(origin.url("/r/slow-write"))
        took = time.monotonic() - start
        # the read timed out, so this request's write was skipped: one deadline
        assert r.status == 200 and took < pause / 2
        assert (backend.health.timeouts, backend.health.dropped_writes) == (1, 1), backend.health
        await asyncio.sleep(max(0.0, start + pause - time.monotonic()))  # the pause is over
        r2 = await s.get(origin.url("/r/slow-write-2"))  # the server answers again: stored
        await r2.read()
        await asyncio.to_thread(paused)
        key = backend.create_key(CachedRequest("GET", origin.url("/r/slow-write-3")))
        dropped = backend.health.dropped_writes  # the first request's write was skipped
        start = time.monotonic()
        await backend.save_response(await _response(), key)
        assert time.monotonic() - start < pause / 2  # the caller moved on
        assert backend.background  # the write goes on
        await backend.wait_for_refreshes()
        assert await backend.raw_responses.read(key) is not None
        assert backend.health.dropped_writes == dropped


async def test_every_path_goes_through_the_gate(hung_port: int, origin: Origin) -> None:
    """Maintenance, views, sync views, close: bounded and fail-open on a hung server."""
    backend = hung_backends(hung_port)["redis"](connect_timeout=0.3, breaker_threshold=1000,
                                                write_timeout=0.3)
    sync = CachedSession(backend=backend, autoclose=False)
    calls: list[tuple[str, Any]] = [
        ("delete expired", backend.delete(expired=True)),
        ("delete urls", backend.delete(urls=[origin.url("/r/x")])),
        ("get_urls", backend.get_urls()),
        ("has_url", backend.has_url(origin.url("/r/x"))),
        ("clear", backend.clear()),
        ("view keys", backend.responses.keys()),
        ("view values", backend.responses.values()),
        ("view size", backend.responses.size()),
        ("view contains", backend.redirects.contains("k")),
        ("view read", backend.redirects.read("k")),
    ]
    for name, call in calls:
        _, took = await timed(call)
        assert took < CUT, name  # each step bounded; a few steps per call
    view = sync.cache.responses

    def sync_calls() -> None:
        assert len(view) == 0 and "k" not in view and list(view) == []
        with pytest.raises(KeyError):
            view["k"]
        view["k"] = b"v"
        assert not sync.cache.contains("k") and sync.cache.get_urls() == []

    _, took = await timed(asyncio.to_thread(sync_calls))
    assert took < 2 * CUT
    timeouts = backend.health.timeouts
    assert timeouts >= 10
    sync.close()
    _, took = await timed(backend.close())
    assert took < CUT


async def test_warnings_are_rate_limited(tmp_path: Path, origin: Origin,
                                         caplog: pytest.LogCaptureFixture) -> None:
    """A Redis outage used to log one WARNING per storage call (5,125 lines in 30 s):
    now one line for the first failure, one when the circuit opens, one when it closes."""
    server = RedisServer(system_binary(), tmp_path / "redis")
    server.start()
    caplog.set_level(logging.DEBUG, "aiocache_http")
    try:
        backend = RedisBackend(f"logs-{uuid.uuid4().hex[:6]}", server.url, breaker_cooldown=0.2)
        async with CachedClientSession(cache=backend) as s:
            await (await s.get(origin.url("/r/logs"))).read()
            server.kill()
            # a count of requests through the outage, not as many as 2 s allow (a loaded
            # machine made 67); a few cooldowns pass meanwhile, so probes fail too
            deadline = time.monotonic() + 60  # a bound, not an expectation
            requests = 0
            cooldowns = backend.settings.breaker_cooldown * 3
            start = time.monotonic()
            while requests < 500 or time.monotonic() < start + cooldowns:
                assert time.monotonic() < deadline, f"{requests} requests in 60 s"
                r = await s.get(origin.url(f"/r/logs{requests % 50}"))
                assert r.status == 200
                requests += 1
            await asyncio.to_thread(server.start)
            while backend.health.state is not CircuitState.CLOSED:
                assert time.monotonic() < deadline + 60, "the circuit did not close"
                await (await s.get(origin.url("/r/logs-back"))).read()
                await asyncio.sleep(0.05)
        warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(warnings) == 3, warnings
        assert "continuing without the cache" in warnings[0] and "ConnectionError" in warnings[0]
        assert "circuit open after 5 consecutive" in warnings[1]
        assert "circuit closed" in warnings[2] and "were skipped" in warnings[2]
    finally:
        server.stop()


async def test_health_is_observable(hung_port: int) -> None:
    backend = hung_backends(hung_port)["redis"](connect_timeout=0.2, breaker_threshold=2)
    try:
        assert backend.health.state is CircuitState.CLOSED and backend.health.last_error is None
        for _ in range(3):
            await backend.get_response("k")
        health = backend.health
        shown = health.as_dict()
        # A Redis lookup is one call (the item, else its redirect alias, in one script).
        # 1st lookup: it times out; 2nd: the same, and the circuit opens; 3rd: skipped
        assert shown["state"] == "open" and shown["timeouts"] == 2 and shown["skipped"] == 1
        assert shown["last_error"] == "read timed out" and shown["last_error_at"] is not None
        assert shown["write_state"] == "closed" and shown["opened"] == 1
        assert "state='open'" in repr(health)
    finally:
        await backend.close()
    assert backend.health.state is CircuitState.OPEN  # outside any loop: the worst loop's


async def test_a_configuration_error_is_raised_not_counted(tmp_path: Path) -> None:
    from aiocache_http.backends.sqlite import SQLiteBackend, SQLiteFileError

    path = tmp_path / "late.sqlite"
    backend = SQLiteBackend(path)
    path.write_bytes(b"not a database" * 500)
    for _ in range(3):
        with pytest.raises(SQLiteFileError):
            await backend.get_response("k")
    assert backend.health.errors == 0 and backend.health.state is CircuitState.CLOSED
    await backend.close()


def test_redis_client_keeps_its_own_timeout_as_a_backstop() -> None:
    """Beyond the gate, clients we create still time out on their own (a hung server
    must not leak waiting connections forever)."""
    import aiocache_http.backends.redis as redis_backend

    assert 0 < redis_backend.DEFAULT_TIMEOUT <= 5
    assert redis.__version__


@pytest.mark.parametrize("body", ["small", "streamed"])
@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_every_session_and_body_spends_at_most_one_deadline(
        kind: str, body: str, own_redis: RedisServer, origin: Origin) -> None:
    """As above, for both sessions and for a body stored as the caller reads it (over the
    64 KiB read at handover: its write comes when the caller reaches the end, after the
    driver returned): a miss on a hung server waits one storage deadline, its read's; the
    write that follows is not waited for. Counted, not timed: one timeout per request."""
    backend = RedisBackend(f"one-{uuid.uuid4().hex[:6]}", own_redis.url, breaker_threshold=100,
                           **HUNG_CLIENT)
    path = "/body/hung{}?size=100000" if body == "streamed" else "/r/hung{}"
    assert own_redis.proc is not None
    async with CachedClientSession(cache=backend) as s:
        sync = CachedSession(backend=backend, autoclose=False)

        async def get(url: str) -> tuple[int, bool, float]:
            start = time.monotonic()
            if kind == "async":
                async with s.get(url) as r:
                    await r.read()
                    return r.status, bool(r.from_cache), time.monotonic() - start
            response = await asyncio.to_thread(sync.get, url)
            return response.status_code, bool(response.from_cache), time.monotonic() - start

        for warm in ("/r/warm", path.format("-warm")):
            await get(origin.url(warm))
        os.kill(own_redis.proc.pid, signal.SIGSTOP)
        try:
            for i in range(5):
                status, hit, took = await get(origin.url(path.format(i)))
                assert status == 200 and not hit
                assert took < CUT
                # its read timed out; its write was skipped (the budget was spent), neither
                # waited for (up to a deadline more, then left running) nor tried
                health = backend.health
                assert (health.timeouts, health.skipped, health.dropped_writes) == (i + 1,) * 3, health
            assert backend.health.state is CircuitState.CLOSED, backend.health
        finally:
            os.kill(own_redis.proc.pid, signal.SIGCONT)
            sync.close()
