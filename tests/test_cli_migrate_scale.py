"""``aiocache-http migrate`` at scale: 100,000 entries SQLite -> Redis and back, each
direction interrupted halfway (Ctrl-C one way, SIGKILL the other) and resumed, verified
entry by entry, then served as hits by both sessions.

The source is bulk-filled with envelopes made by the backend's own serializer (100,000
HTTP requests would only slow CI down; the sessions' part is in test_cli.py)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import pytest
from multidict import CIMultiDict

from aiocache_http import CachedRequest, utcnow
from aiocache_http.backends.redis import RedisBackend
from aiocache_http.backends.sqlite import SQLiteBackend
from aiocache_http.models import CachedResponse

from .backends import _redis_namespace
from .cli_helpers import cli
from .clients import AsyncClient, SyncClient
from .origin import Origin
from .redis_servers import RedisServer

N = 100_000
SAMPLE = range(0, N, N // 25)


def expiry_rows(path: Path) -> dict[str, float | None]:
    with sqlite3.connect(path) as db:
        return dict(db.execute("SELECT key, expires FROM responses"))


async def interrupt_halfway(args: list[str], progress: Callable[[], Awaitable[int]],
                            sig: int) -> tuple[int, str]:
    """Start ``aiocache-http ARGS``; once ``await progress()`` says half the entries are at
    DST, send ``sig``. Returns the exit code and stderr."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aiocache_http", *args, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env={**os.environ, "NO_COLOR": "1"})
    try:
        while proc.returncode is None and await progress() < N // 2:  # noqa: ASYNC110 - polls another process
            await asyncio.sleep(0.02)
        assert proc.returncode is None, "the migration finished before it could be interrupted"
        proc.send_signal(sig)
        _out, err = await asyncio.wait_for(proc.communicate(), 120)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, err.decode()


async def test_migrate_100k_sqlite_to_redis_and_back(
        tmp_path: Path, origin: Origin, request: pytest.FixtureRequest,
        redis_server_hfe: RedisServer) -> None:
    src = SQLiteBackend(tmp_path / "src.sqlite", secret_key="k")  # signed: signatures must survive
    now, items, urls = utcnow(), [], []
    headers = CIMultiDict({"Content-Type": "application/json"})
    for i in range(N):
        url = origin.url(f"/r/{i}")
        # 1 in 10 expired ten minutes ago (still kept by Redis's ttl_offset); the rest
        # expire at a different second each.
        expires = now - timedelta(minutes=10) if i % 10 == 1 else now + timedelta(hours=1, seconds=i)
        body = json.dumps({"path": f"/r/{i}", "n": 0, "pad": "x" * (i % 300)}).encode()
        response = CachedResponse(200, "OK", url, headers, body, CachedRequest("GET", url),
                                  created_at=now, expires=expires)
        key = src.create_key(CachedRequest("GET", url))
        items.append((key, src.serializer.dumps(response, key), expires))
        urls.append(url)
    for i in range(0, N, 10_000):
        await src.raw_responses.bulk_write(items[i:i + 10_000])
    alias = items[1][0] + "-alias"
    await src.raw_redirects.write(alias, src.serializer.dumps_redirect(alias, items[0][0]))
    del items

    namespace = _redis_namespace(request)
    redis_url = f"{redis_server_hfe.url}/0?namespace={namespace}&layout=hash"
    src_url = f"sqlite://{tmp_path}/src.sqlite"
    counter = redis_server_hfe.client()

    async def in_redis() -> int:
        return int(await asyncio.to_thread(counter.hlen, f"{namespace}:responses"))

    # SQLite -> Redis, Ctrl-C halfway, then the same command again.
    code, err = await interrupt_halfway(["migrate", src_url, redis_url], in_redis, signal.SIGINT)
    assert code == 130 and "interrupted" in err and "run the same command again" in err, err
    assert "Traceback" not in err
    done = await in_redis()
    assert N // 2 <= done < N
    resumed = await cli("migrate", src_url, redis_url, "--json")
    assert resumed.code == 0, resumed.err
    counts = resumed.json
    assert (counts["skipped"], counts["copied"], counts["failed"]) == (done, N - done, 0)
    assert counts["redirects_copied"] == 1
    print(f"\nSQLite -> Redis, resumed half: {counts['entries_per_second']:,.0f} entries/s")

    dst = RedisBackend(namespace, redis_server_hfe.url, layout="hash", secret_key="k")
    batch: list[tuple[str, bytes]] = []
    seen = 0

    async def check(batch: list[tuple[str, bytes]]) -> None:
        there = await dst.raw_responses.read_many([k for k, _v in batch])
        assert there == [v for _k, v in batch]

    async for pair in src.raw_responses.iter_items():
        batch.append(pair)
        if len(batch) == 1000:
            await check(batch)
            seen, batch = seen + len(batch), []
    await check(batch)
    assert seen + len(batch) == N == await dst.raw_responses.size()
    for i in SAMPLE:  # the same expiry at the storage level: Redis's TTL is expiry + ttl_offset
        key = src.create_key(CachedRequest("GET", urls[i]))
        stored = await src.get_record(key)
        assert stored is not None and stored.expires is not None
        ttl_ms = counter.execute_command("HPTTL", f"{namespace}:responses", "FIELDS", 1, key)[0]
        expected = (stored.expires - utcnow()).total_seconds() + dst.raw_responses.ttl_offset
        assert abs(ttl_ms / 1000 - expected) < 60

    # Redis -> a new SQLite file, killed (SIGKILL) halfway, then resumed.
    back_path = tmp_path / "back.sqlite"
    back_url = f"sqlite://{back_path}"

    async def in_sqlite() -> int:
        if not back_path.exists():
            return 0
        try:
            return await asyncio.to_thread(lambda: len(expiry_rows(back_path)))
        except sqlite3.OperationalError:  # the table is not there yet, or locked
            return 0

    code, err = await interrupt_halfway(["migrate", redis_url, back_url], in_sqlite, signal.SIGKILL)
    assert code == -signal.SIGKILL
    done = await in_sqlite()
    resumed = await cli("migrate", redis_url, back_url, "--json")
    assert resumed.code == 0, resumed.err
    assert (resumed.json["skipped"], resumed.json["copied"]) == (done, N - done)
    print(f"Redis -> SQLite, resumed half: {resumed.json['entries_per_second']:,.0f} entries/s")
    original, copied = expiry_rows(tmp_path / "src.sqlite"), expiry_rows(back_path)
    assert copied == original  # every key, with the same expiry
    back = SQLiteBackend(back_path, secret_key="k")
    with sqlite3.connect(tmp_path / "src.sqlite") as a, sqlite3.connect(back_path) as b:
        assert (a.execute("SELECT key, value FROM responses ORDER BY key").fetchall()
                == b.execute("SELECT key, value FROM responses ORDER BY key").fetchall())
        assert b.execute("SELECT key, value FROM redirects").fetchall() == \
            a.execute("SELECT key, value FROM redirects").fetchall()

    # Hits for both sessions, from both copies; nothing reaches the origin.
    for backend in (dst, back):
        a, s = AsyncClient(backend), SyncClient(backend)
        for i in SAMPLE:
            if i % 10 != 1:  # fresh ones
                assert (await a.get(urls[i])).from_cache
                assert (await s.get(urls[i])).from_cache
        await a.close()
        await s.close()
    assert origin.total == 0
    await src.close()
    counter.close()
