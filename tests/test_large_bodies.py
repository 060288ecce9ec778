"""Large bodies in storage: verified before they are trusted, stored as they pass,
shared with the requests that waited for them, bounded by ``max_body_size``, and never
held in memory whole when read in chunks."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import threading
import time
import tracemalloc
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests
from aiohttp import ClientPayloadError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from aiocache_http import CacheBackend, CachedClientSession, coalescing
from aiocache_http.backends.filesystem import FileBackend
from aiocache_http.backends.parts import PART_SIZE, ItemReader
from aiocache_http.backends.sqlite import SQLiteBackend
from aiocache_http.content import ReplayStream
from aiocache_http.events import CacheEvent
from aiocache_http.models import CachedRequest, CachedResponse, StoredBody, StoredBodyError
from aiocache_http.serializers import Serializer
from aiocache_http.serializers.integrity import Checksum
from aiocache_http.sync import CachedSession
from aiocache_http.sync.serializers import backend_format

from .backends import FACTORIES
from .conftest import BackendMaker
from .origin import Origin, payload
from .test_e2e import MakeClient
from .test_streaming import body_url

MB = 1024 * 1024
T = TypeVar("T")


SPILLING = ["sqlite", "filesystem", "sqlite-json", "filesystem-json"]


def spilling_backend(kind: str, tmp_path: Path, **settings: Any) -> CacheBackend:
    """A backend that writes large items in parts, whose raw bytes the test can reach.
    ``-json``: with the sync layer's JSON format (the FileCache's default), written whole,
    whose large bodies are stored as envelope items, in parts all the same."""
    if kind.endswith("-json"):
        settings["serializer"] = backend_format("json")
    if kind.startswith("sqlite"):
        return SQLiteBackend(tmp_path / f"{kind}.sqlite", **settings)
    return FileBackend(tmp_path / f"{kind}-files", **settings)


async def flip_body_byte(backend: CacheBackend, key: str, offset: int) -> None:
    """Corrupt one byte of a stored body where it lies: a file, or a SQLite part row."""
    if isinstance(backend, FileBackend):
        path = backend.raw_responses.path(key)
        data = bytearray(path.read_bytes())
        data[-offset] ^= 0x01
        path.write_bytes(bytes(data))
        return
    assert isinstance(backend, SQLiteBackend)
    conn = await backend.database.connection()
    rows = await conn.execute_fetchall(
        "SELECT p.id, p.seq, p.data FROM responses r JOIN responses_parts p ON p.id = r.parts "
        "WHERE r.key = ? ORDER BY p.seq DESC LIMIT 1", (key,))
    parts_id, seq, data = next(iter(rows))
    flipped = bytearray(data)
    flipped[len(flipped) // 2] ^= 0x01
    await conn.execute("UPDATE responses_parts SET data = ? WHERE id = ? AND seq = ?",
                       (bytes(flipped), parts_id, seq))
    await conn.commit()


# -- integrity ------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", SPILLING)
@pytest.mark.parametrize("secret", [None, "s3cret"], ids=["checksum", "signed"])
async def test_corrupt_large_body_fails_before_its_last_chunk(
        origin: Origin, tmp_path: Path, kind: str, secret: str | None) -> None:
    size = 3 * MB
    url = body_url(origin, "corrupt", size, chunked=False, pause=0.01)
    async with CachedClientSession(cache=spilling_backend(kind, tmp_path, secret_key=secret)) as s:
        async with s.get(url) as r:
            assert await r.read() == payload(size)
        await flip_body_byte(s.cache, r.cache_key, offset=1000)
        received = 0
        async with s.get(url) as r:
            assert r.from_cache  # the head is intact: verified, served
            with pytest.raises(ClientPayloadError):
                async for chunk in r.content.iter_chunked(64 * 1024):
                    received += len(chunk)
        assert 0 < received < size  # the last chunk waited for the digest, and never came
        assert not await s.cache.raw_responses.contains(r.cache_key)  # discarded
        async with s.get(url) as r:
            assert not r.from_cache and await r.read() == payload(size)
        async with s.get(url) as r:
            assert r.from_cache and await r.read() == payload(size)


@pytest.mark.parametrize("kind", SPILLING)
async def test_corrupt_large_body_read_whole_is_an_error(origin: Origin, tmp_path: Path, kind: str) -> None:
    size = 3 * MB
    url = body_url(origin, "corrupt-whole", size, chunked=True, pause=0.01)
    async with CachedClientSession(cache=spilling_backend(kind, tmp_path)) as s:
        async with s.get(url) as r:
            await r.read()
        await flip_body_byte(s.cache, r.cache_key, offset=size // 2)
        async with s.get(url) as r:
            with pytest.raises(ClientPayloadError):
                await r.read()  # never the corrupt bytes
        assert await s.cache.get_record(r.cache_key) is None


@pytest.mark.parametrize("kind", SPILLING)
async def test_large_item_at_another_key_or_with_another_secret_is_a_miss(
        origin: Origin, tmp_path: Path, kind: str) -> None:
    size = 2 * MB
    backend = spilling_backend(kind, tmp_path, secret_key="one")
    url = body_url(origin, "moved", size, chunked=False, pause=0.01)
    async with CachedClientSession(cache=backend, autoclose=False) as s, s.get(url) as r:
        await r.read()
    reader = await backend.raw_responses.open_read(r.cache_key)
    assert reader is not None and reader.whole is None  # stored in parts
    item = b"".join([part async for part in reader.parts()])
    await reader.close()
    writer = await backend.raw_responses.open_write("elsewhere", None, 10)  # a copy, in parts
    await writer.write(item[10:])
    await writer.commit(item[:10])
    assert await backend.get_record("elsewhere") is None  # bound to its key
    other = spilling_backend(kind, tmp_path, secret_key="two")
    assert await other.get_record(r.cache_key) is None  # signed with another secret
    await backend.close()
    await other.close()


# -- stored as it passes: renewals, variants, background refreshes --------------------------
async def test_large_body_renewed_by_304_and_varied(make_backend: BackendMaker, origin: Origin) -> None:
    """A 304 renews an entry whose body stays in storage: it is copied into the renewed
    item, at its key and its Vary variant's, and replayed."""
    backend = make_backend(cache_control=True)
    size = 2 * MB
    if (limit := backend.raw_responses.max_item_size) is not None and size > limit // 2:
        pytest.skip(f"{backend!r} stores no item of {size} bytes (its README row)")
    url = body_url(origin, "renew", size, chunked=False, pause=0.01, etag="v1", h_Vary="Accept",
                   **{"h_Cache-Control": "max-age=0"})
    async with CachedClientSession(cache=backend) as s:
        for _ in range(3):  # a miss, then two 304s (max-age=0: revalidated every time)
            async with s.get(url, headers={"Accept": "a"}) as r:
                assert r.status == 200 and await r.read() == payload(size)
    assert origin.count("/body/renew") == 3


async def test_stale_while_revalidate_drains_a_large_body(make_backend: BackendMaker, origin: Origin) -> None:
    backend = make_backend(expire_after=0.2, stale_while_revalidate=60)
    backend.clock = origin.clock  # the refreshed copy is fresh until the test moves the clock
    size = 300_000  # not all there when the refresh's response arrives; DynamoDB takes it
    url = body_url(origin, "swr", size, chunked=True, pause=0.01)
    async with CachedClientSession(cache=backend) as s:
        async with s.get(url) as r:
            await r.read()
        origin.clock.advance(0.3)
        async with s.get(url) as r:
            assert r.from_cache and await r.read() == payload(size)  # stale, at once
        await backend.wait_for_refreshes()
        assert origin.count("/body/swr") == 2
        async with s.get(url) as r:
            assert r.from_cache and await r.read() == payload(size)
        assert origin.count("/body/swr") == 2  # the refresh read and stored the body


# -- coalescing on a body on its way ---------------------------------------------------------
async def test_waiters_share_a_large_body_once_stored(make_backend: BackendMaker, origin: Origin) -> None:
    size = 300_000
    url = body_url(origin, "herd", size, chunked=False, pause=0.1)
    async with CachedClientSession(cache=make_backend()) as s:
        async def get() -> bytes:
            async with s.get(url) as r:
                return await r.read()

        bodies = await asyncio.gather(*(get() for _ in range(10)))
    assert origin.count("/body/herd") == 1
    assert all(body == payload(size) for body in bodies)


async def test_waiters_do_not_hang_on_an_abandoned_body(make_backend: BackendMaker, origin: Origin) -> None:
    size = 300_000
    url = body_url(origin, "abandoned", size, chunked=False, pause=0.2)
    async with CachedClientSession(cache=make_backend()) as s:
        leader = await s.get(url)
        await leader.content.read(1000)

        async def get() -> bytes:
            async with s.get(url) as r:
                return await r.read()

        followers = [asyncio.create_task(get()) for _ in range(5)]
        await asyncio.sleep(0.05)
        assert not any(f.done() for f in followers)  # waiting for the leader's body
        leader.release()  # abandoned half-way
        bodies = await asyncio.wait_for(asyncio.gather(*followers), 30)
    assert all(body == payload(size) for body in bodies)
    assert origin.count("/body/abandoned") == 2  # the leader's, then one for all five


async def test_waiters_stop_waiting_for_a_stalled_body(make_backend: BackendMaker, origin: Origin,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(coalescing, "LEADER_STALL_SECONDS", 0.3)
    size = 3 * MB
    url = body_url(origin, "stalled", size, chunked=False, pause=0.2)
    async with CachedClientSession(cache=make_backend()) as s:
        leader = await s.get(url)
        await leader.content.read(1000)  # then never reads on, never releases
        async with s.get(url) as r:
            assert not r.from_cache and await r.read() == payload(size)
        leader.release()
    assert origin.count("/body/stalled") == 2


@pytest.mark.parametrize("leader", ["closes half-read", "stalls"])
async def test_sync_waiters_on_a_leader_that_never_finishes(origin: Origin, tmp_path: Path, leader: str,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The sync session (one thread each): a leader that reads a little of a large body,
    then closes its response or holds it unread. Its waiters neither hang nor fail: they
    go to the origin once it gives up, or once its body has stalled."""
    monkeypatch.setattr(coalescing, "LEADER_STALL_SECONDS", 0.5)
    size = 3 * MB
    url = body_url(origin, f"sync-{leader.split()[0]}", size, chunked=False, pause=0.2)
    session = CachedSession(backend=SQLiteBackend(tmp_path / "cache.sqlite"))
    started, followers_done = threading.Event(), threading.Event()

    def lead() -> None:
        r = session.get(url, stream=True)
        assert r.raw.read(64 * 1024) == payload(size)[: 64 * 1024]
        started.set()
        if leader == "stalls":
            followers_done.wait(30)  # holds it unread until the others are served
        else:
            time.sleep(0.2)  # the others are waiting for it by then
        r.close()

    def follow() -> bytes:
        started.wait(30)
        return session.get(url).content

    async with asyncio.timeout(30):  # nobody hangs
        leading = asyncio.create_task(asyncio.to_thread(lead))
        bodies = await asyncio.gather(*(asyncio.to_thread(follow) for _ in range(3)))
        followers_done.set()
        await leading
    assert all(body == payload(size) for body in bodies)
    assert 2 <= origin.count(f"/body/sync-{leader.split()[0]}") <= 4  # the leader's, then the others'
    assert (await asyncio.to_thread(session.get, url)).from_cache  # one of them stored it, whole
    await asyncio.to_thread(session.close)


async def test_sync_waiters_wait_for_a_body_read_slowly(origin: Origin, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A sync leader reading a body of known length in small pieces, slower than the stall
    limit per batch copied to storage: the body flows, so its waiters wait for it and are
    served the stored copy (they used to count it as stalled and each went to the origin)."""
    monkeypatch.setattr(coalescing, "LEADER_STALL_SECONDS", 0.5)
    size = 2 * PART_SIZE
    url = body_url(origin, "sync-slow-reader", size, chunked=False)
    session = CachedSession(backend=SQLiteBackend(tmp_path / "cache.sqlite"))
    started = threading.Event()

    def lead() -> bytes:
        with session.get(url, stream=True) as r:
            parts = [r.raw.read(16 * 1024)]
            started.set()
            while part := r.raw.read(16 * 1024):
                parts.append(part)
                time.sleep(0.05)  # 32 reads: 1.6 s, a batch for storage every 0.8 s
            return b"".join(parts)

    def follow() -> tuple[bytes, bool]:
        started.wait(30)
        r = session.get(url)
        return r.content, r.from_cache

    async with asyncio.timeout(30):
        read, (body, from_cache) = await asyncio.gather(asyncio.to_thread(lead), asyncio.to_thread(follow))
    assert read == body == payload(size) and from_cache
    assert origin.count("/body/sync-slow-reader") == 1
    await asyncio.to_thread(session.close)


async def test_waiters_do_not_wait_for_a_body_of_unknown_length(origin: Origin,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A chunked body (no Content-Length) may be a stream that never ends (a watch, a
    feed): however it flows, a request coalesced onto it waits no longer than the stall
    limit, then fetches on its own. (It used to wait for the stream to end.)"""
    monkeypatch.setattr(coalescing, "LEADER_STALL_SECONDS", 0.3)
    size = 2 * MB
    url = body_url(origin, "unknown-length", size, chunked=True)
    follower_done = asyncio.Event()
    async with CachedClientSession(cache=CacheBackend()) as s:
        async def lead() -> bytes:
            async with s.get(url) as r:
                parts = [await r.content.read(16 * 1024)]
                started.set()
                while part := await r.content.read(16 * 1024):
                    parts.append(part)
                    if not follower_done.is_set():
                        await asyncio.sleep(0.05)  # 8 s for the whole body, unless served
                return b"".join(parts)

        async def follow() -> tuple[bytes, bool]:
            await started.wait()
            try:
                async with s.get(url) as r:
                    return await r.read(), r.from_cache
            finally:
                follower_done.set()

        started = asyncio.Event()
        async with asyncio.timeout(30):
            read, (body, from_cache) = await asyncio.gather(lead(), follow())
    assert read == body == payload(size) and not from_cache
    assert origin.count("/body/unknown-length") == 2


async def test_own_unread_response_is_not_waited_for(origin: Origin) -> None:
    size = 3 * MB
    url = body_url(origin, "own", size, chunked=False, pause=0.2)
    async with CachedClientSession(cache=CacheBackend()) as s:
        first = await s.get(url)  # not read yet: the same task asks again
        async with asyncio.timeout(5):  # (wait_for would run it in another task on 3.11)
            second = await s.get(url)
        assert await second.read() == payload(size) == await first.read()
    session = CachedSession(backend=CacheBackend())

    def same_thread() -> bytes:
        first = session.get(url, stream=True)
        second = session.get(url, stream=True)
        assert second.content == payload(size)
        return first.content

    assert await asyncio.wait_for(asyncio.to_thread(same_thread), 10) == payload(size)
    await asyncio.to_thread(session.close)


# -- max_body_size ------------------------------------------------------------------------------
async def test_max_body_size(make_client: MakeClient, origin: Origin) -> None:
    c = make_client(max_body_size=100_000)
    reading = "iter_chunked" if "iter_chunked" in c.STYLES else "iter_content"
    for chunked in (False, True):  # over the limit by Content-Length, or once it passes it
        url = body_url(origin, f"big-{chunked}", 300_000, chunked, pause=0.01)
        for _ in range(2):
            reply = await c.read(url, reading)
            assert not reply.from_cache and reply.body == payload(300_000)
        assert origin.count(f"/body/big-{chunked}") == 2
    assert await c.cache.raw_responses.size() == 0
    small = body_url(origin, "small", 100_000, chunked=True, pause=0.01)
    await c.read(small, reading)
    assert (await c.read(small, reading)).from_cache
    c.settings.max_body_size = None
    url = body_url(origin, "unlimited", 300_000, chunked=True, pause=0.01)
    await c.read(url, reading)
    assert (await c.read(url, reading)).from_cache


def test_max_body_size_is_validated() -> None:
    assert CacheBackend().settings.max_body_size == 64 * MB
    for bad in (-1, 1.5, "10", True):
        with pytest.raises(ValueError, match="max_body_size"):
            CacheBackend(max_body_size=bad)


# -- memory: read in chunks, a body is never whole in memory -----------------------------------
@pytest.mark.parametrize("kind", SPILLING)
async def test_memory_of_large_bodies(origin: Origin, tmp_path: Path, kind: str) -> None:
    """Peak Python memory (tracemalloc) while one 20 MB body goes by: read in chunks, under
    0.2x the body on a miss and on a hit; read whole, under 1.5x (the body itself is 1x)."""
    size = 20 * MB
    async with CachedClientSession(cache=spilling_backend(kind, tmp_path)) as s:
        async def peak(name: str, whole: bool) -> tuple[float, bool]:
            url = body_url(origin, name, size, chunked=False)
            gc.collect()
            tracemalloc.start()
            try:
                async with s.get(url) as r:
                    if whole:
                        body = await r.read()
                        assert len(body) == size
                        del body
                    else:
                        assert sum([len(c) async for c in r.content.iter_chunked(64 * 1024)]) == size
                    from_cache = r.from_cache
                return tracemalloc.get_traced_memory()[1] / size, from_cache
            finally:
                tracemalloc.stop()

        for whole, bound in ((False, 0.2), (True, 1.5)):
            name = f"mem-{whole}"
            miss, miss_cached = await peak(name, whole)
            hit, hit_cached = await peak(name, whole)
            assert (miss_cached, hit_cached) == (False, True)
            assert miss < bound and hit < bound, (whole, miss, hit)


@pytest.mark.parametrize("files", ["envelope", "FileCache defaults"])
async def test_memory_of_a_large_sync_hit_read_by_raw_read(origin: Origin, tmp_path: Path,
                                                         files: str) -> None:
    """requests' ``raw.read()`` of a 20 MB hit left in storage: the body once, not twice;
    the same from the sync FileCache's default JSON files."""
    size = 20 * MB
    session = (CachedSession(backend=FileBackend(tmp_path / "files")) if files == "envelope"
               else CachedSession(tmp_path / "fc", backend="filesystem"))
    url = body_url(origin, "raw-read", size, chunked=False)
    assert len(await asyncio.to_thread(lambda: session.get(url).content)) == size

    expected = payload(size)

    def hit() -> float:
        gc.collect()
        tracemalloc.start()
        try:
            with session.get(url, stream=True) as r:
                assert r.from_cache
                body = r.raw.read()
                assert body == expected
                del body
            return tracemalloc.get_traced_memory()[1] / size
        finally:
            tracemalloc.stop()

    peak = await asyncio.to_thread(hit)
    assert peak < 1.5, peak
    await asyncio.to_thread(session.close)


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_max_body_size_streams_through_unbuffered(origin: Origin, tmp_path: Path, kind: str) -> None:
    """100 MB through a 10 MB limit, read in chunks: peak memory under 0.2x the body
    (an in-memory storage holds at most the limit before it gives up), nothing stored."""
    size, limit = 100 * MB, 10 * MB
    backend = CacheBackend() if kind == "memory" else SQLiteBackend(tmp_path / "cache.sqlite")
    async with CachedClientSession(cache=backend, max_body_size=limit) as s:
        url = body_url(origin, "limited", size, chunked=True)  # the limit is found on the way
        gc.collect()
        tracemalloc.start()
        try:
            async with s.get(url) as r:
                received = sum([len(c) async for c in r.content.iter_chunked(64 * 1024)])
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert received == size and not r.from_cache
        assert peak < 0.2 * size, peak / size
        assert await backend.raw_responses.size() == 0
        async with s.get(url) as r:
            assert not r.from_cache
            r.release()


# -- the sync FileCache's JSON files: large bodies in parts, small ones JSON ---------------------
def envelope_item(data: bytes) -> bool:
    return data[:4] == b"ACH\x02"  # the envelope's magic and version


def json_document(data: bytes) -> Any:
    """A JSON-format item: the JSON document, then its checksum (16 bytes, bound to the key)."""
    return json.loads(data[:-Checksum.size])


def large_response(key: str, body: bytes) -> CachedResponse:
    return CachedResponse(status=200, reason="OK", url=f"https://x.test/{key}",
                          headers=CIMultiDict({"Content-Type": "application/octet-stream"}),
                          body=body, request=CachedRequest("GET", f"https://x.test/{key}"),
                          cache_key=key)


async def test_sync_file_cache_stores_a_large_body_in_parts_a_small_one_as_json(
        origin: Origin, tmp_path: Path) -> None:
    """``CachedSession(backend="filesystem")`` as is (JSON files): a small response is a JSON
    document, as in requests-cache; a 5 MB one an envelope item stored and read in parts.
    Both are hits, read whole or streamed."""
    session = CachedSession(tmp_path / "fc", backend="filesystem")
    storage = session.cache.backend.raw_responses
    small, large = 2000, 5 * 1000 * 1000
    urls = {size: body_url(origin, f"fc-{size}", size, chunked=False) for size in (small, large)}

    def read(url: str, stream: bool) -> tuple[bytes, bool]:
        with session.get(url, stream=stream) as r:
            return (b"".join(r.iter_content(64 * 1024)) if stream else r.content), r.from_cache

    def same(size: int, body: bytes) -> bool:
        # decode_content (on by default, as in requests-cache) stores a small JSON body as
        # JSON in the file: its hit is the same JSON, re-encoded. A large body is kept as is.
        return body == payload(size) if size == large else json.loads(body) == json.loads(payload(size))

    for size, url in urls.items():
        for stream, from_cache in ((False, False), (True, True), (False, True)):
            body, hit = await asyncio.to_thread(read, url, stream)
            assert same(size, body) and hit == from_cache, (size, stream)
        assert origin.count(f"/body/fc-{size}") == 1
    files = {p.stat().st_size > MB: p.read_bytes() for p in session.cache.paths()}
    assert all(p.name.endswith(".ach.json") for p in session.cache.paths())
    document = json_document(files[False])  # small: requests-cache's readable JSON
    assert document["status_code"] == 200 and document["url"] == urls[small]
    assert envelope_item(files[True]) and not envelope_item(files[False])
    [key] = [k for k in [key async for key in storage.iter_keys()] if storage.path(k).stat().st_size > MB]
    reader = await storage.open_read(key)
    assert reader is not None and reader.whole is None  # read in parts
    await reader.close()
    await asyncio.to_thread(session.close)


class PartsSpy:
    """Records the parts a storage's readers hand out (the storage itself unchanged)."""

    def __init__(self, storage: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        self.parts: list[int] = []
        real_open = storage.open_read

        async def open_read(key: str) -> ItemReader | None:
            reader = await real_open(key)
            if reader is not None and reader.whole is None:
                real_parts = reader.parts

                async def parts(start: int = 0) -> AsyncIterator[bytes]:
                    async for part in real_parts(start):
                        self.parts.append(len(part))
                        yield part

                reader.parts = parts  # type: ignore[method-assign]
            return reader

        monkeypatch.setattr(storage, "open_read", open_read)


async def test_a_large_json_configured_hit_streams_in_bounded_reads(
        origin: Origin, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``stream=True`` on a hit of the sync FileCache's default format: the first chunk
    reaches the caller after a few part reads, not the whole item; no read passes
    PART_SIZE; the body is read once."""
    session = CachedSession(tmp_path / "fc", backend="filesystem")
    size = 5 * 1000 * 1000
    url = body_url(origin, "spied", size, chunked=True)
    assert len(await asyncio.to_thread(lambda: session.get(url).content)) == size
    spy = PartsSpy(session.cache.backend.raw_responses, monkeypatch)

    def stream() -> tuple[int, int, bytes]:
        with session.get(url, stream=True) as r:
            assert r.from_cache
            chunks = r.iter_content(64 * 1024)
            first = next(chunks)
            at_first = sum(spy.parts)
            return len(first), at_first, first + b"".join(chunks)

    first, at_first, body = await asyncio.to_thread(stream)
    assert body == payload(size)
    assert first > 0 and at_first <= 4 * PART_SIZE < size // 4, at_first
    assert max(spy.parts) <= PART_SIZE
    assert size <= sum(spy.parts) <= size + 2 * PART_SIZE  # the head, then the body once
    await asyncio.to_thread(session.close)


@pytest.mark.parametrize("damage", ["flip", "truncate", "cut the head"])
async def test_a_damaged_large_json_configured_entry_is_a_miss(
        origin: Origin, tmp_path: Path, damage: str) -> None:
    """A large entry of the sync FileCache's default format, bit-flipped or truncated on
    disk: a streamed read ends in an error before its last chunk, a read whole is a miss;
    the item is deleted and the next request stores it again."""
    session = CachedSession(tmp_path / "fc", backend="filesystem")
    size = 3 * MB
    url = body_url(origin, f"damaged-{damage.replace(' ', '-')}", size, chunked=False)
    assert len(await asyncio.to_thread(lambda: session.get(url).content)) == size
    [path] = session.cache.paths()
    data = bytearray(path.read_bytes())
    assert envelope_item(bytes(data))
    if damage == "flip":
        data[len(data) // 2] ^= 0x01
    elif damage == "truncate":
        del data[-1000:]
    else:
        del data[100:]
    path.write_bytes(bytes(data))

    def read(stream: bool) -> tuple[int, bool]:
        with session.get(url, stream=stream) as r:
            received = 0
            if stream:
                with contextlib.suppress(requests.exceptions.ChunkedEncodingError):
                    for chunk in r.iter_content(64 * 1024):
                        received += len(chunk)
                return received, r.from_cache
            return len(r.content), r.from_cache

    if damage == "flip":
        received, from_cache = await asyncio.to_thread(read, True)
        assert from_cache and 0 < received < size  # the last chunk waited for the digest
    else:
        assert await asyncio.to_thread(read, False) == (size, False)  # a miss, stored again
        path.write_bytes(bytes(data))
        received, from_cache = await asyncio.to_thread(read, True)
        assert (received, from_cache) == (size, False)
    assert not path.exists() or path.read_bytes() != bytes(data)  # the damaged item is gone
    assert await asyncio.to_thread(read, False) == (size, damage != "flip")
    assert await asyncio.to_thread(read, True) == (size, True)
    await asyncio.to_thread(session.close)


@pytest.mark.parametrize("stream", [False, True])
async def test_large_whole_json_entries_written_before_still_read(tmp_path: Path, stream: bool) -> None:
    """A large body stored whole in JSON (as before envelope items for large bodies) is
    still a hit: recognised as the format's own item, not by its size."""
    backend = spilling_backend("filesystem-json", tmp_path)
    body = payload(3 * MB)
    old = Serializer(backend.serializer.format)  # no large_body: every item in the format
    item = old.dumps(large_response("old", body), "old")
    assert json_document(item)["url"] == "https://x.test/old" and len(item) > 3 * MB
    await backend.raw_responses.write("old", item)
    reader = await backend.raw_responses.open_read("old")
    assert reader is not None and reader.whole is None  # large: opened in parts
    await reader.close()
    got = await backend.get_record("old", stream=stream)
    assert got is not None and got.stored_body is None and got.body == body
    tampered = bytearray(item)
    tampered[len(tampered) // 2] ^= 0x01
    await backend.raw_responses.write("old", bytes(tampered))
    assert await backend.get_record("old", stream=stream) is None  # its checksum fails
    assert not await backend.raw_responses.contains("old")
    await backend.close()


async def test_pickle_keeps_large_bodies_whole(tmp_path: Path) -> None:
    """``whole_items`` formats (pickle) keep every item their own, large ones too."""
    backend = FileBackend(tmp_path / "pkl", serializer="pickle", secret_key="s3cret")
    body = payload(2 * MB)
    await backend.save_response_at(large_response("p", body), ["p"])
    data = backend.raw_responses.path("p").read_bytes()
    assert data[:1] == b"\x80" and not envelope_item(data)  # a pickle
    for stream in (False, True):
        got = await backend.get_record("p", stream=stream)
        assert got is not None and got.body == body
    await backend.close()


# -- the event of a streamed miss --------------------------------------------------------------
async def test_a_streamed_miss_has_its_event_once_its_body_is_stored_or_not(
        make_backend: BackendMaker, origin: Origin) -> None:
    """One event per request: for a miss whose body streams, it comes when the body is
    stored (with the bytes stored) or given up (with why), not when the response is
    handed over."""
    backend = make_backend()
    events: list[CacheEvent] = []
    backend.events.subscribe(events.append)
    size = 300_000  # not all there when the response is handed over
    async with CachedClientSession(cache=backend) as s:
        async with s.get(body_url(origin, "ev-stored", size, chunked=True, pause=0.05)) as r:
            assert events == []  # the body is still on its way
            assert len(await r.read()) == size
        async with s.get(body_url(origin, "ev-released", size, chunked=True, pause=0.05)) as r:
            await r.content.read(1000)
        await asyncio.sleep(0.05)  # the abandoned body is dropped on the loop
    stored, released = events
    assert (stored.kind, stored.stored, stored.status) == ("miss", True, 200)
    assert stored.bytes_served == stored.bytes_stored == size
    assert (released.kind, released.stored) == ("miss", False)
    assert "released before the end of its body" in released.not_stored_reason


# -- the decoder of items in parts, fuzzed ------------------------------------------------------
class Loop:
    """One event loop for all the examples of a test (hypothesis calls it many times);
    ``item``: what the test stored (kept out of hypothesis' reports: 1.5 MB)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.item = b""

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)


FUZZ_KEY = "f" * 64
FUZZ_BODY = bytes(range(256)) * (6 * 1024)  # 1.5 MiB: stored in parts, read in chunks


@pytest.fixture(params=[(b, s) for b in ("sqlite", "filesystem", "gridfs") for s in ("checksum", "signed")]
                + [("filesystem-json", "signed")], ids=lambda p: f"{p[0]}-{p[1]}")
def large_item(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Loop, CacheBackend]]:
    """A backend holding a large response at FUZZ_KEY, and that item's bytes."""
    name, secret = request.param
    loop = Loop()
    options = {"secret_key": "s3cret" if secret == "signed" else None,
               "backend_timeout": 30.0, "write_timeout": 30.0}
    backend = (spilling_backend(name, tmp_path, **options) if name == "filesystem-json"
               else FACTORIES[name](request, tmp_path, options))
    response = CachedResponse(status=200, reason="OK", url="https://x.test/large",
                              headers=CIMultiDict({"Content-Type": "application/octet-stream"}),
                              body=FUZZ_BODY, request=CachedRequest("GET", "https://x.test/large"),
                              cache_key=FUZZ_KEY)

    async def setup() -> bytes:
        await backend.save_response_at(response, [FUZZ_KEY])
        reader = await backend.raw_responses.open_read(FUZZ_KEY)
        assert reader is not None and reader.whole is None  # in parts
        item = b"".join([part async for part in reader.parts()])
        await reader.close()
        return item

    loop.item = loop.run(setup())
    yield loop, backend
    loop.run(backend.close())
    loop.loop.close()


@st.composite
def item_mutations(draw: st.DrawFn) -> tuple[str, Callable[[bytes], bytes]]:
    kind = draw(st.sampled_from(["flip head", "flip", "truncate", "extend", "zero a part", "replace"]))
    if kind in ("flip head", "flip"):
        position = draw(st.integers(0, 600) if kind == "flip head" else st.integers(0, 2 * MB))
        bit = draw(st.integers(0, 7))
        return kind, lambda item: _flip(item, position % len(item), bit)
    if kind == "truncate":
        n = draw(st.integers(0, 2 * MB))
        return kind, lambda item: item[: n % len(item)]
    if kind == "extend":
        junk = draw(st.binary(min_size=1, max_size=PART_SIZE + 1))
        return kind, lambda item: item + junk
    if kind == "zero a part":
        start = draw(st.integers(0, 2 * MB))
        return kind, lambda item: (item[: start % len(item)] + bytes(PART_SIZE)
                                   + item[start % len(item) + PART_SIZE :])
    junk = draw(st.binary(max_size=2000))
    return kind, lambda _: junk


def _flip(item: bytes, index: int, bit: int) -> bytes:
    flipped = bytearray(item)
    flipped[index] ^= 1 << bit
    return bytes(flipped)


async def _write_parts(backend: CacheBackend, key: str, data: bytes) -> None:
    writer = await backend.raw_responses.open_write(key, None, 0)
    for start in range(0, len(data), PART_SIZE):
        await writer.write(data[start : start + PART_SIZE])
    await writer.commit(b"")


@settings(max_examples=100, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(mutation=item_mutations())
def test_fuzzed_large_items_are_misses_or_errors(large_item: tuple[Loop, CacheBackend],
                                                mutation: tuple[str, Callable[[bytes], bytes]]) -> None:
    """Whatever the bytes of an item stored in parts, a lookup is a miss, or a streamed hit
    whose chunks are the stored body or end in StoredBodyError before its last chunk:
    never other bytes handed over as a complete body; read whole, a miss or the body."""
    loop, backend = large_item
    item, (kind, mutate) = loop.item, mutation

    async def check() -> None:
        bad = mutate(item)
        await _write_parts(backend, FUZZ_KEY, bad)
        got = await backend.get_record(FUZZ_KEY, stream=True)
        if got is not None and got.stored_body is None:
            assert got.body == FUZZ_BODY, kind  # decoded whole (a short item): verified
        elif got is not None:
            received, failed = [], False
            try:
                async for chunk in got.stored_body.chunks():
                    received.append(chunk)
            except StoredBodyError:
                failed = True
            finally:
                await got.stored_body.close()
            body = b"".join(received)
            if failed:  # what came before may be wrong: the documented choice is that the
                # error comes before the last chunk, so no wrong body is ever complete
                assert len(body) < len(FUZZ_BODY), kind
            else:
                assert body == FUZZ_BODY, f"{kind}: wrong bytes handed over as the body"
        if got is None or failed:
            assert not await backend.raw_responses.contains(FUZZ_KEY) or bad == item, kind  # discarded
        whole = await backend.get_record(FUZZ_KEY)  # read whole: verified first
        assert whole is None or whole.body == FUZZ_BODY, kind
        await _write_parts(backend, FUZZ_KEY, item)  # the next example starts from the good item

    loop.run(check())


@pytest.mark.parametrize("kind", SPILLING)
async def test_readuntil_finds_a_separator_split_between_stored_chunks(tmp_path: Path, kind: str) -> None:
    """A hit read from storage comes in parts: ``content.readuntil(b"\\r\\n")`` finds a
    separator whose bytes lie in two of them, as aiohttp's does on the wire."""
    backend = spilling_backend(kind, tmp_path)
    size = 2 * MB

    opened: list[StoredBody] = []

    async def store_and_open(body: bytes) -> ReplayStream:
        request = CachedRequest("GET", "https://x.test/lines")
        await backend.save_response_at(CachedResponse(200, "OK", "https://x.test/lines", CIMultiDict(), body,
                                                      request, cache_key="k"), ["k"])
        stored = await backend.get_record("k", stream=True)
        assert stored is not None and stored.stored_body is not None
        opened.append(stored.stored_body)
        return ReplayStream(stored=stored.stored_body)

    plain = await store_and_open(b"a" * size)  # where the chunks of a body this long end
    ends, offset = [], 0
    while chunk := await plain.readany():
        offset += len(chunk)
        ends.append(offset)
    assert len(ends) > 2
    body = bytearray(b"a" * size)
    for end in ends[:-1]:
        body[end - 1 : end + 1] = b"\r\n"  # split: "\r" ends one chunk, "\n" starts the next
    stream = await store_and_open(bytes(body))
    lines = []
    while line := await stream.readuntil(b"\r\n"):
        lines.append(line)
    assert b"".join(lines) == body
    assert lines[:-1] == [bytes(line) + b"\r\n" for line in bytes(body).split(b"\r\n")[:-1]]
    for stored_body in opened:
        await stored_body.close()
    await backend.close()
