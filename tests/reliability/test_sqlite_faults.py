"""A sick SQLite file while traffic runs: a lock held by another process, the file
read-only, the file deleted, the disk full. Runtime faults, so: no exception reaches the
caller, each request costs at most one deadline more than the bare client, and the cache
works again once the fault is over (tests/reliability/load.py measures it).

Read-only and disk full use real mounts (a read-only bind mount, a small tmpfs): the
tests run as root (CI does), where permission bits stop nobody. A machine that cannot
mount fails these tests, naming the command.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest

from aiocache_http import CacheBackend, CachedClientSession
from aiocache_http.backends.sqlite import SQLiteBackend, SQLiteUnavailableError

from ..origin import Origin
from .load import Baseline, Traffic, baseline, check

RESUME = 3.0  # writes resume within this (a probe a second; the first may find a stale connection)

LOCKER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
"""

pytestmark = pytest.mark.real_deadlines  # the documented defaults, not the suite's


def check_resumed(traffic: Traffic, end: float, resumed: dict[str, float | None]) -> None:
    """Each session stored again within RESUME of the process's own time after ``end``:
    the probe interval is a constant, the requests around it are as slow as the machine
    (a fixed 3 s was missed at load 12-15 on 2 cores; see Traffic.slack)."""
    for client, took in resumed.items():
        slack = traffic.slack(end, end + (took or 0.0))
        assert took is not None and took <= RESUME + slack, (
            f"{client}: stored again after {took} s (> {RESUME} s + {slack:.2f} s of load): {resumed}")


def run(*args: str, while_busy: float = 0.0) -> None:
    """Run a mount command; with ``while_busy``, try again for up to that many seconds while
    it answers "busy" (a remount read-only waits for files open for writing to close)."""
    deadline = time.monotonic() + while_busy
    while True:
        done = subprocess.run(args, capture_output=True, text=True, timeout=30)
        if done.returncode == 0 or "busy" not in done.stderr or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    if done.returncode != 0:
        pytest.fail(f"`{' '.join(args)}` failed ({done.returncode}): {done.stderr.strip()}; these "
                    "tests need root and mount (CI runs them as root)", pytrace=False)


@contextlib.contextmanager
def read_only(directory: Path) -> Iterator[None]:
    """``directory`` read-only for every new open, as a read-only remount makes it."""
    run("mount", "--bind", str(directory), str(directory))
    try:
        # traffic runs meanwhile: a write in flight through the new mount keeps it busy
        run("mount", "-o", "remount,ro,bind", str(directory), while_busy=10.0)
        yield
    finally:
        run("umount", "-l", str(directory))


@contextlib.contextmanager
def small_disk(directory: Path, size: str) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    run("mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory))
    try:
        yield
    finally:
        run("umount", "-l", str(directory))


def fill(directory: Path) -> Path:
    """Take every free byte of the file system of ``directory``."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 20, 1 << 12, 1):
            with contextlib.suppress(OSError):  # ENOSPC: full at this granularity
                for _ in range(1 << 16):
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)
    return filler


async def through_a_fault(backend: CacheBackend, origin: Origin, label: str,
                          fault: Callable[[], AbstractAsyncContextManager[None]], *,
                          hold: float = 4.0, seconds: float = 20.0, lanes: bool | None = None,
                          ) -> tuple[Traffic, Baseline, dict[str, float], dict[str, float | None]]:
    """Traffic on ``backend`` (at most ``seconds``), within which ``fault()`` is entered and
    held ``hold`` s more than its own exit takes; then the backend is closed. Returns the
    traffic, its baseline, the fault's ``start`` and ``end`` (and the writes ``dropped``
    by then), and when each lane stored again."""
    base = await baseline(origin)
    traffic = Traffic(backend, origin, label, lanes=lanes)
    marks: dict[str, float] = {}
    resumed: dict[str, float | None] = {}

    async def during() -> None:
        await asyncio.sleep(1.0)
        async with fault():
            marks["start"] = time.monotonic()
            await asyncio.sleep(hold)
            marks["dropped"] = backend.health.dropped_writes
        marks["end"] = time.monotonic()
        resumed.update(await traffic.time_to_store())

    try:
        await traffic.run(seconds, during)
    finally:
        await backend.close()
    return traffic, base, marks, resumed


@contextlib.asynccontextmanager
async def lock_held(path: Path, seconds: float) -> AsyncIterator[None]:
    """BEGIN EXCLUSIVE on ``path`` held by another process for ``seconds``: entered once it
    holds the lock, left once it let go."""
    locker = await asyncio.create_subprocess_exec(
        sys.executable, "-c", LOCKER, str(path), str(seconds), stdout=asyncio.subprocess.PIPE)
    try:
        assert locker.stdout is not None
        assert await asyncio.wait_for(locker.stdout.readline(), 10) == b"locked\n"
        yield
        assert await asyncio.wait_for(locker.wait(), 2 * seconds) == 0
    finally:
        if locker.returncode is None:
            locker.kill()
            await locker.wait()


@contextlib.asynccontextmanager
async def disk_filled(directory: Path) -> AsyncIterator[None]:
    filler = await asyncio.to_thread(fill, directory)
    try:
        yield
    finally:
        filler.unlink()


@pytest.mark.parametrize("lanes", [False, True], ids=["plain", "every-lane"])
async def test_lock_held_by_another_process(lanes: bool, tmp_path: Path, origin: Origin,
                                            caplog: pytest.LogCaptureFixture) -> None:
    """BEGIN EXCLUSIVE held 15 s (default busy_timeout=30): a write that cannot get the
    lock is dropped and counted after one deadline; reads (WAL) go on; writes resume.
    ``lanes``: with requests that take the full way beside the plain ones (see LANES)."""
    caplog.set_level(logging.WARNING, "aiocache_http")
    path = tmp_path / "cache.sqlite"
    backend = SQLiteBackend(path)
    traffic, base, marks, resumed = await through_a_fault(
        backend, origin, "lock", lambda: lock_held(path, 15), hold=0.0, seconds=40, lanes=lanes or None)
    report = check(traffic, base, marks["start"], marks["end"], caplog, hits_during=True,
                   circuit="writes")
    check_resumed(traffic, marks["end"], resumed)
    assert backend.health.dropped_writes > 0, backend.health
    print(f"\nlock held 15s: {report}; writes again after {resumed}; {backend.health}")


async def test_file_read_only(tmp_path: Path, origin: Origin, caplog: pytest.LogCaptureFixture) -> None:
    """The file is read-only when the cache (re)opens it (a read-only remount; a new
    worker process): stored responses are still served, writes are dropped (never
    SQLiteFileError); writes resume once it is writable."""
    caplog.set_level(logging.WARNING, "aiocache_http")
    directory = tmp_path / "ro"
    directory.mkdir()
    backend = SQLiteBackend(directory / "cache.sqlite")

    @contextlib.asynccontextmanager
    async def reopened_read_only() -> AsyncIterator[None]:
        with read_only(directory):
            await backend.database.close()  # every connection opens again, read-only now
            yield

    traffic, base, marks, resumed = await through_a_fault(backend, origin, "ro", reopened_read_only)
    assert marks["dropped"] > 0
    report = check(traffic, base, marks["start"], marks["end"], caplog, hits_during=True,
                   circuit="writes")
    check_resumed(traffic, marks["end"], resumed)
    assert "readonly" in caplog.text, caplog.text
    print(f"\nread-only: {report}; writes again after {resumed}; {backend.health}")


async def test_read_only_at_construction_fails_open_and_strict_raises(
        tmp_path: Path, origin: Origin) -> None:
    directory = tmp_path / "ro-start"
    directory.mkdir()
    path = directory / "cache.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
    conn.close()
    with read_only(directory):
        backend = SQLiteBackend(path)  # not a configuration error: it may be writable later
        async with CachedClientSession(cache=backend, autoclose=False) as s:
            for _ in range(3):
                async with s.get(origin.url("/r/ro-start")) as r:
                    assert r.status == 200 and not r.from_cache
            backend.settings.strict = True
            with pytest.raises(SQLiteUnavailableError, match=r"cache\.sqlite"):
                await s.get(origin.url("/r/ro-start"))
            backend.settings.strict = False
    async with CachedClientSession(cache=backend) as s:  # writable again: the cache works
        await asyncio.sleep(backend.settings.breaker_cooldown)
        for expected in (False, True):
            async with s.get(origin.url("/r/ro-start-2")) as r:
                assert r.from_cache is expected


async def test_file_deleted(tmp_path: Path, origin: Origin, caplog: pytest.LogCaptureFixture) -> None:
    """Deleted while in use: noticed, re-created and logged, instead of writing into the
    unlinked file forever."""
    caplog.set_level(logging.WARNING, "aiocache_http")
    directory = tmp_path / "gone"
    path = directory / "cache.sqlite"
    backend = SQLiteBackend(path)
    base = await baseline(origin)
    traffic = Traffic(backend, origin, "deleted")
    marks: dict[str, float] = {}
    resumed: dict[str, float | None] = {}

    async def delete() -> None:
        await asyncio.sleep(1.0)
        marks["start"] = time.monotonic()
        for name in os.listdir(directory):
            os.remove(directory / name)
        os.rmdir(directory)  # the directory too
        await asyncio.sleep(2.0)
        marks["end"] = time.monotonic()
        resumed.update(await traffic.time_to_store())

    try:
        await traffic.run(20, delete)
    finally:
        await backend.close()
    report = check(traffic, base, marks["start"], marks["end"], caplog, hits_during=None,
                   circuit=None)
    check_resumed(traffic, marks["end"], resumed)
    recreated = [r.getMessage() for r in caplog.records if "deleted while in use" in r.getMessage()]
    assert recreated, [r.getMessage() for r in caplog.records]
    with sqlite3.connect(path) as conn:  # the new file holds what was stored since
        assert conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0] > 0
    conn.close()
    print(f"\ndeleted: {report}; stored again after {resumed}; logged: {recreated[0]!r}")


async def test_disk_full(tmp_path: Path, origin: Origin, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "aiocache_http")
    directory = tmp_path / "small"
    with small_disk(directory, "32m"):
        backend = SQLiteBackend(directory / "cache.sqlite")
        traffic, base, marks, resumed = await through_a_fault(backend, origin, "full",
                                                              lambda: disk_filled(directory))
    report = check(traffic, base, marks["start"], marks["end"], caplog, hits_during=True,
                   circuit="writes")
    check_resumed(traffic, marks["end"], resumed)
    assert backend.health.dropped_writes > 0, backend.health
    assert "database or disk is full" in caplog.text  # (a later, unrelated failure may be the last_error)
    print(f"\ndisk full: {report}; writes again after {resumed}; {backend.health}")


async def test_a_lock_wait_is_not_multiplied_by_retries(tmp_path: Path) -> None:
    """busy_timeout=0.2 used to cost 3 s (the retry loop waited the busy timeout again and
    again); directly on the storage, without the gate, a write now gives up after one wait."""
    from aiocache_http.backends.sqlite import SQLiteCache

    path = tmp_path / "cache.sqlite"
    store = SQLiteCache(path, busy_timeout=0.2)
    await store.write("k", b"v")
    locker = await asyncio.create_subprocess_exec(
        sys.executable, "-c", LOCKER, str(path), "10", stdout=asyncio.subprocess.PIPE)
    try:
        assert locker.stdout is not None
        assert await asyncio.wait_for(locker.stdout.readline(), 10) == b"locked\n"
        start = time.monotonic()
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            await store.write("k2", b"v")
        assert time.monotonic() - start < 1.0
        assert await store.read("k") == b"v"  # WAL: readers go on
    finally:
        locker.kill()
        await locker.wait()
        await store.close()
