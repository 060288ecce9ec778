"""A sick Redis while traffic runs: hung (SIGSTOP), killed and restarted, one cluster
master hung. Each test has its own redis-server(s), so no other test is affected.

What the caller sees is measured (tests/reliability/load.py): an async and a sync
session share one RedisBackend with the default settings; every request must complete
with the origin's body, a request during the hang costs at most one deadline more than
the bare client, and the cache is used again within 2 s once the server is back.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from aiocache_http import CachedClientSession, RedisBackend

from ..origin import Origin
from ..redis_servers import RedisServer, cluster_of, system_binary
from .load import RECOVERY, Traffic, baseline, check

pytestmark = pytest.mark.real_deadlines  # the documented defaults, not the suite's


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(system_binary(), tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        if server.proc is not None:
            os.kill(server.proc.pid, signal.SIGCONT)
        server.stop()


async def hang(pid: int, seconds: float, marks: dict[str, float]) -> None:
    await asyncio.sleep(1.0)  # traffic on a healthy cache first
    marks["start"] = time.monotonic()
    os.kill(pid, signal.SIGSTOP)
    try:
        await asyncio.sleep(seconds)
    finally:
        os.kill(pid, signal.SIGCONT)
        marks["end"] = time.monotonic()
    await asyncio.sleep(RECOVERY + 1.0)


@pytest.mark.parametrize(("seconds", "lanes"), [(5, False), (15, False), (5, True)],
                         ids=["5s", "15s", "5s-every-lane"])
async def test_sigstop(seconds: float, lanes: bool, own_redis: RedisServer, origin: Origin,
                       caplog: pytest.LogCaptureFixture) -> None:
    """``lanes``: plain GETs (the fast lanes) and requests that take the full way (Vary, a
    credential, a request Cache-Control, a body streamed in chunks) in the same traffic."""
    caplog.set_level(logging.WARNING, "aiocache_http")
    backend = RedisBackend(f"stop-{uuid.uuid4().hex[:8]}", own_redis.url)
    base = await baseline(origin)
    traffic = Traffic(backend, origin, f"stop{seconds}", lanes=lanes or None)
    marks: dict[str, float] = {}
    assert own_redis.proc is not None
    pid = own_redis.proc.pid
    try:
        await traffic.run(seconds + 15, lambda: hang(pid, seconds, marks))
    finally:
        await backend.close()
    report = check(traffic, base, marks["start"], marks["end"], caplog, hits_during=False)
    health = backend.health
    assert health.opened >= 2 and health.timeouts >= 2, health  # each loop's circuit opened
    print(f"\nSIGSTOP {seconds}s: {report}; {health}")


async def test_sigkill_and_restart(own_redis: RedisServer, origin: Origin,
                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "aiocache_http")
    backend = RedisBackend(f"kill-{uuid.uuid4().hex[:8]}", own_redis.url)
    base = await baseline(origin)
    traffic = Traffic(backend, origin, "kill")
    marks: dict[str, float] = {}

    async def crash() -> None:
        await asyncio.sleep(1.0)
        marks["start"] = time.monotonic()
        own_redis.kill()
        await asyncio.sleep(4.0)
        await asyncio.to_thread(own_redis.start)  # same port, empty (no persistence)
        marks["end"] = time.monotonic()
        await asyncio.sleep(RECOVERY + 1.0)

    try:
        await traffic.run(20, crash)
    finally:
        await backend.close()
    # The restarted server is empty: "used again" is a hit of a URL stored after the restart.
    report = check(traffic, base, marks["start"], marks["end"], caplog, hits_during=False)
    print(f"\nSIGKILL + restart: {report}; {backend.health}")


async def test_cluster_with_one_master_stopped(tmp_path: Path, origin: Origin,
                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "aiocache_http")
    with cluster_of(tmp_path, node_timeout_ms=15_000) as cluster:  # Redis' default node timeout
        namespace = f"cluster-{uuid.uuid4().hex[:8]}"
        backend = RedisBackend(namespace, cluster.url, cluster=True)
        # the master holding this backend's responses
        with cluster.nodes[0].client() as c:
            slot = c.execute_command("CLUSTER KEYSLOT", f"{namespace}:responses")
            owner = next(n for n in cluster.nodes if any(
                start <= slot <= end and int(shard[2][1]) == n.port
                for shard in c.execute_command("CLUSTER SLOTS")
                for start, end in [(shard[0], shard[1])]))
        assert owner.proc is not None
        base = await baseline(origin)
        traffic = Traffic(backend, origin, "cluster")
        marks: dict[str, float] = {}
        try:
            await traffic.run(20, lambda: hang(owner.proc.pid, 5, marks))  # type: ignore[union-attr]
        finally:
            await backend.close()
        report = check(traffic, base, marks["start"], marks["end"], caplog, hits_during=False)
        print(f"\ncluster master SIGSTOP 5s: {report}; {backend.health}")


@pytest.mark.parametrize("refusal", ["OOM", "READONLY"])
async def test_a_server_refusing_writes(refusal: str, own_redis: RedisServer, origin: Origin,
                                        caplog: pytest.LogCaptureFixture) -> None:
    """maxmemory reached (OOM) or a read-only replica (READONLY): a runtime fault. Hits
    go on, misses are served from the origin unstored, writes resume when it accepts them."""
    caplog.set_level(logging.WARNING, "aiocache_http")
    backend = RedisBackend(f"refuse-{uuid.uuid4().hex[:8]}", own_redis.url)
    admin = own_redis.client()
    refuse, accept = {
        "OOM": (("CONFIG", "SET", "maxmemory", "1"), ("CONFIG", "SET", "maxmemory", "0")),
        "READONLY": (("REPLICAOF", "127.0.0.1", "1"), ("REPLICAOF", "NO", "ONE")),
    }[refusal]
    async with CachedClientSession(cache=backend) as s:
        async def get(name: str) -> bool:
            async with s.get(origin.url(f"/r/{refusal}-{name}")) as r:
                assert r.status == 200
                await r.read()
                return bool(r.from_cache)

        assert not await get("stored") and await get("stored")
        admin.execute_command(*refuse)
        for i in range(20):
            start = time.monotonic()
            assert await get("stored")  # hits go on
            assert not await get(f"new{i}") and not await get(f"new{i}")  # not stored
            assert time.monotonic() - start < 1.0
        error = {"OOM": "OutOfMemoryError", "READONLY": "ReadOnlyError"}[refusal]
        assert error in (backend.health.last_error or ""), backend.health
        assert backend.health.write_state.value == "open" and backend.health.state.value == "closed"
        admin.execute_command(*accept)
        await asyncio.sleep(backend.settings.breaker_cooldown)
        assert not await get("after") and await get("after")  # writes resume
    admin.close()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) <= 3, warnings


@pytest.mark.parametrize("refusal", ["OOM", "READONLY", "NOREPLICAS"])
async def test_writes_refused_while_traffic_runs(refusal: str, own_redis: RedisServer, origin: Origin,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    """The same refusals (and ``min-replicas-to-write`` with no replica: NOREPLICAS) for 4 s
    under traffic on every lane, both sessions: hits go on, misses come from the origin
    unstored, no exception, at most one deadline added, the writes circuit opens, and
    each session stores again once the server accepts writes."""
    caplog.set_level(logging.WARNING, "aiocache_http")
    backend = RedisBackend(f"refuse-{uuid.uuid4().hex[:8]}", own_redis.url)
    admin = own_redis.client()
    refuse, accept = {
        "OOM": (("CONFIG", "SET", "maxmemory", "1"), ("CONFIG", "SET", "maxmemory", "0")),
        "READONLY": (("REPLICAOF", "127.0.0.1", "1"), ("REPLICAOF", "NO", "ONE")),
        "NOREPLICAS": (("CONFIG", "SET", "min-replicas-to-write", "1"),
                       ("CONFIG", "SET", "min-replicas-to-write", "0")),
    }[refusal]
    base = await baseline(origin)
    traffic = Traffic(backend, origin, f"refuse{refusal}", lanes=True)
    marks: dict[str, float] = {}
    resumed: dict[str, float | None] = {}

    async def fault() -> None:
        await asyncio.sleep(1.0)
        admin.execute_command(*refuse)
        marks["start"] = time.monotonic()
        await asyncio.sleep(4.0)
        admin.execute_command(*accept)
        marks["end"] = time.monotonic()
        await asyncio.sleep(backend.settings.breaker_cooldown)
        resumed.update(await traffic.time_to_store())

    try:
        await traffic.run(20, fault)
    finally:
        await backend.close()
        admin.close()
    report = check(traffic, base, marks["start"], marks["end"], caplog, hits_during=True,
                   circuit="writes")
    assert all(took is not None for took in resumed.values()), resumed
    print(f"\n{refusal}: {report}; writes again after {resumed}; {backend.health}")
