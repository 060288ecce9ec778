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

from aiocache_http import RedisBackend
from aiocache_http.backends.health import CircuitState
from aiocache_http.policy.settings import CacheSettings

from ..origin import Origin
from ..redis_servers import RedisServer, cluster_of, system_binary
from .load import Baseline, Traffic, baseline, percentile, summary

DEADLINE = CacheSettings().backend_timeout or 0.0  # the documented default
MARGIN = 0.25  # seconds: scheduling noise of a loaded 2-core machine
RECOVERY = 2.0  # the cache is used again this soon after the server is back
OPEN_ADDED = 0.03  # while the circuit is open a request costs the bare client's time + this


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


def check(traffic: Traffic, base: Baseline, start: float, end: float,
          caplog: pytest.LogCaptureFixture) -> dict[str, str]:
    """The caller's view of a fault between ``start`` and ``end`` (monotonic)."""
    samples = traffic.samples
    errors = [s.error for s in samples if s.error]
    assert not errors, errors[:5]
    assert not [s.url for s in samples if s.wrong]
    report = {}
    for client in ("async", "sync"):
        during = traffic.between(start, end, client)
        assert len(during) >= 10, f"{client}: too little traffic during the fault: {summary(during)}"
        added = percentile([s.latency for s in during], 99) - base.p90(client)
        assert added <= DEADLINE + MARGIN, (
            f"{client}: p99 added latency {added * 1000:.0f} ms > one deadline; {summary(during)}")
        open_ = [s.latency for s in during if s.state == CircuitState.OPEN.value]
        assert len(open_) >= 5, f"{client}: the circuit never opened: {summary(during)}"
        assert percentile(open_, 50) <= base.p50(client) + OPEN_ADDED and (
            percentile(open_, 90) <= base.p90(client) + OPEN_ADDED), (
            f"{client}: with the circuit open, p50 {percentile(open_, 50) * 1000:.1f} ms / p90 "
            f"{percentile(open_, 90) * 1000:.1f} ms vs bare {base.p50(client) * 1000:.1f} / "
            f"{base.p90(client) * 1000:.1f} ms")
        back = traffic.first_hit_after(end, client)
        assert back is not None and back <= RECOVERY, f"{client}: cache used again after {back}s"
        assert not [s for s in during if s.from_cache and s.at > start + 0.5], (
            f"{client}: a hit while the server hangs? {summary(during)}")
        report[client] = (f"{summary(during)}; open p50 {percentile(open_, 50) * 1000:.1f} ms; "
                          f"hits again after {back:.2f}s")
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING and r.name == "aiocache_http"]
    # per loop (async + sync bridge): first failure, circuit open, circuit closed
    assert len(warnings) <= 8, [r.getMessage() for r in warnings]
    return report


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


@pytest.mark.parametrize("seconds", [5, 15])
async def test_sigstop(seconds: float, own_redis: RedisServer, origin: Origin,
                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "aiocache_http")
    backend = RedisBackend(f"stop-{uuid.uuid4().hex[:8]}", own_redis.url)
    base = await baseline(origin)
    traffic = Traffic(backend, origin, f"stop{seconds}")
    marks: dict[str, float] = {}
    assert own_redis.proc is not None
    pid = own_redis.proc.pid
    try:
        await traffic.run(seconds + 15, lambda: hang(pid, seconds, marks))
    finally:
        await backend.close()
    report = check(traffic, base, marks["start"], marks["end"], caplog)
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
    report = check(traffic, base, marks["start"], marks["end"], caplog)
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
        report = check(traffic, base, marks["start"], marks["end"], caplog)
        print(f"\ncluster master SIGSTOP 5s: {report}; {backend.health}")
