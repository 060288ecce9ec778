"""A sick cache directory while traffic runs (the filesystem backend): made read-only, the
disk full, a writer of another process killed mid-write. Runtime faults, as for SQLite
(test_sqlite_faults.py): no exception reaches the caller, each request costs at most
one deadline more than the bare client, stored responses are still served, and the cache
stores again once the fault is over. Real mounts (a read-only bind mount, a small tmpfs):
the tests run as root, as CI does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from aiocache_http import CachedClientSession
from aiocache_http.backends.filesystem import FileBackend

from ..origin import Origin
from .load import check
from .test_sqlite_faults import check_resumed, disk_filled, read_only, small_disk, through_a_fault

pytestmark = pytest.mark.real_deadlines  # the documented defaults, not the suite's


async def test_directory_read_only(tmp_path: Path, origin: Origin, caplog: pytest.LogCaptureFixture) -> None:
    """Stored responses are still served; writes fail (EROFS) and are dropped, the writes
    circuit opens; once writable again the cache stores again."""
    caplog.set_level(logging.WARNING, "aiocache_http")
    directory = tmp_path / "ro"
    backend = FileBackend(directory)

    @contextlib.asynccontextmanager
    async def made_read_only() -> AsyncIterator[None]:
        with read_only(directory):
            yield

    traffic, base, marks, resumed = await through_a_fault(backend, origin, "fs-ro", made_read_only)
    assert marks["dropped"] > 0
    report = check(traffic, base, marks["start"], marks["end"], caplog, hits_during=True,
                   circuit="writes")
    check_resumed(traffic, marks["end"], resumed)
    assert "Read-only file system" in caplog.text, caplog.text
    print(f"\nfilesystem read-only: {report}; writes again after {resumed}; {backend.health}")


async def test_disk_full(tmp_path: Path, origin: Origin, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "aiocache_http")
    directory = tmp_path / "small"
    with small_disk(directory, "32m"):
        backend = FileBackend(directory / "cache")
        traffic, base, marks, resumed = await through_a_fault(backend, origin, "fs-full",
                                                              lambda: disk_filled(directory))
        leftovers = sorted(p.name for p in (directory / "cache").iterdir() if p.name.startswith(".tmp-"))
    report = check(traffic, base, marks["start"], marks["end"], caplog, hits_during=True,
                   circuit="writes")
    check_resumed(traffic, marks["end"], resumed)
    assert backend.health.dropped_writes > 0, backend.health
    assert "No space left on device" in caplog.text, caplog.text
    assert not leftovers, f"a failed write left its temporary file: {leftovers[:3]}"
    print(f"\nfilesystem disk full: {report}; writes again after {resumed}; {backend.health}")


WRITER = """
import asyncio, sys
from aiocache_http import CachedClientSession
from aiocache_http.backends.filesystem import FileBackend

async def main():
    backend = FileBackend(sys.argv[1], backend_timeout=30, write_timeout=30)
    async with CachedClientSession(cache=backend) as s:
        print("ready", flush=True)
        i = 0
        while True:  # until killed: new large bodies, written in parts as they arrive
            print(i, flush=True)
            async with s.get(sys.argv[2] + f"/body/{sys.argv[3]}-{i}?size=3000000&pause=0.05") as r:
                await r.read()
            i += 1

asyncio.run(main())
"""


async def test_a_writer_killed_mid_write(tmp_path: Path, origin: Origin) -> None:
    """Another process writing large entries into the directory is killed (SIGKILL) at
    random points: this process reads every one of those URLs as a whole body or a miss
    (never a part, never an exception), and the killed writer's temporary files are
    neither listed nor left forever (swept by clear())."""
    directory = tmp_path / "shared"
    backend = FileBackend(directory, backend_timeout=30.0, write_timeout=30.0)
    killed_mid_write = 0  # rounds that left a temporary file: the writer died inside a write
    async with CachedClientSession(cache=backend) as s:
        for round_ in range(4):
            writer = await asyncio.create_subprocess_exec(
                sys.executable, "-c", WRITER, str(directory), origin.url(""), f"killed{round_}",
                stdout=asyncio.subprocess.PIPE)
            assert writer.stdout is not None
            assert await asyncio.wait_for(writer.stdout.readline(), 30) == b"ready\n"
            await asyncio.sleep(0.3 + 0.2 * round_)
            writer.send_signal(signal.SIGKILL)
            written = len((await writer.stdout.read()).split())  # the URLs it began
            await writer.wait()
            killed_mid_write += any(p.name.startswith(".tmp-") for p in directory.iterdir())
            for i in range(written + 1):
                url = origin.url(f"/body/killed{round_}-{i}?size=3000000&pause=0.05")
                async with s.get(url) as r:
                    body = await r.read()
                    assert len(body) == 3_000_000 and body.endswith(b"]"), (url, len(body), r.from_cache)
        keys = [k async for k in backend.raw_responses.iter_keys()]
        assert all(not k.startswith(".tmp-") for k in keys), keys
        await backend.clear()
    assert killed_mid_write, "the writer was never killed inside a write: the test proves nothing"
    assert not [p.name for p in directory.iterdir() if p.name.startswith(".tmp-")]
