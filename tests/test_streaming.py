"""Bodies stream: every session, every backend, every way users read a body, on a miss
(the tee) and on a hit, for empty, tiny, just-over-64-KiB and 5 MB bodies, with a
Content-Length and chunked. Bytes must be the origin's, and the second read a hit.
Then the ways a body does not complete: nothing is stored, and the next request is a
miss that stores the whole body."""

from __future__ import annotations

import asyncio
import gc
import inspect
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import requests
from aiohttp.http_exceptions import LineTooLong

from aiocache_http import CacheBackend, CachedClientSession, coalescing
from aiocache_http.backends.dynamodb import DynamoDBBackend
from aiocache_http.backends.filesystem import FileCache
from aiocache_http.backends.gridfs import GridFSCache
from aiocache_http.backends.sqlite import SQLiteBackend
from aiocache_http.content import LINE_LIMIT
from aiocache_http.sync import FileCache as SyncFileCache

from .clients import ASYNC_STYLES, SYNC_STYLES, AsyncClient, Client, Reply, SyncClient, canonical_json
from .conftest import BackendMaker
from .origin import Origin, payload
from .test_e2e import MakeClient

AIOHTTP_VERSION = tuple(int(part) for part in aiohttp.__version__.split(".")[:2])

SIZES = (0, 1, 64 * 1024 + 1)
LARGE = 5 * 1000 * 1000
MB = 1024 * 1024


def body_url(origin: Origin, name: str, size: int, chunked: bool, **query: Any) -> str:
    params = {"size": size, **query}
    if chunked:
        params["chunked"] = 1
    return origin.url(f"/body/{name}?" + "&".join(f"{k}={v}" for k, v in params.items()))


def expected(style: str, size: int) -> bytes:
    return canonical_json(payload(size)) if style == "json" else payload(size)


def storable(client: Client, size: int) -> bool:
    """A storage with an item limit (DynamoDB 400 KB, Redis 4 MiB: their README rows)
    passes larger bodies through uncached."""
    limit = client.cache.raw_responses.max_item_size
    return limit is None or size <= limit * 3 // 4


async def test_every_reading_style_miss_then_hit(make_client: MakeClient, origin: Origin) -> None:
    c = make_client()
    for style in c.STYLES:
        for size in SIZES:
            for chunked in (False, True):
                name = f"{style.replace(' ', '_').replace(',', '')}-{size}-{chunked}"
                # A pause half-way: the body is not all there when the response is handed
                # over, so what the caller reads is what gets stored.
                url = body_url(origin, name, size, chunked, pause=0.01 if size > 1 else 0)
                miss = await c.read(url, style)
                hit = await c.read(url, style)
                case = f"{style}, {size} B, {'chunked' if chunked else 'Content-Length'}"
                assert miss.body == expected(style, size), case
                assert hit.body == expected(style, size), case
                assert (miss.from_cache, hit.from_cache) == (False, True), case
                assert origin.count(f"/body/{name}") == 1, case


async def test_small_miss_stored_at_handover_read_from_aiohttps_own_stream(
        origin: Origin, tmp_path: Path) -> None:
    """A small body that arrives with its head is stored before ``get()`` returns, read
    or not, and the caller reads it from aiohttp's own stream: no tee in between."""
    for cache in (CacheBackend(), SQLiteBackend(tmp_path / "small.sqlite")):
        async with CachedClientSession(cache=cache) as session:
            url = body_url(origin, f"small-{type(cache).__name__}", 1000, False)
            response = await session.get(url)
            assert type(response.content) is aiohttp.StreamReader
            assert await cache.raw_responses.size() == 1  # stored, not read yet
            assert await response.read() == payload(1000)
            response.release()
            again = await session.get(url)
            assert again.from_cache and await again.read() == payload(1000)
            assert origin.count(f"/body/small-{type(cache).__name__}") == 1


async def test_five_megabytes_every_reading_style(make_client: MakeClient, origin: Origin) -> None:
    """5 MB (stored in parts by the filesystem, SQLite and GridFS, read back in chunks on a
    hit): every style on a miss and on a hit with a Content-Length; chunked, the two
    styles that matter for large bodies (whole, and in chunks)."""
    await five_megabytes_every_reading_style(make_client(), origin)


async def test_five_megabytes_sync_file_cache_defaults(origin: Origin, tmp_path: Path) -> None:
    """The same through the sync ``FileCache`` as users build it: JSON files by default,
    whose large bodies are stored in parts all the same (test_large_bodies.py)."""
    c = SyncClient(SyncFileCache(tmp_path / "fc"))
    await five_megabytes_every_reading_style(c, origin)
    await c.close()


async def five_megabytes_every_reading_style(c: Client, origin: Origin) -> None:
    streamed, whole = ("iter_chunked", "read") if isinstance(c, AsyncClient) else ("iter_content", "content")
    cases = [(style, False) for style in c.STYLES] + [(streamed, True), (whole, True)]
    for style, chunked in cases:
        name = f"large-{style.replace(' ', '_').replace(',', '')}"
        url = body_url(origin, name, LARGE, chunked, pause=0.01)
        miss = await c.read(url, style)
        hit = await c.read(url, style)
        case = f"{style}, {'chunked' if chunked else 'Content-Length'}"
        assert miss.body == expected(style, LARGE) and hit.body == expected(style, LARGE), case
        assert not miss.from_cache and hit.from_cache == storable(c, LARGE), case


# -- bodies that do not complete ---------------------------------------------------------
async def leftovers(backend: CacheBackend) -> int:
    """What an item written in parts leaves where no lookup sees it: SQLite part rows, the
    filesystem's temporary files, GridFS chunks (0 for storages that buffer)."""
    storage = backend.raw_responses
    if isinstance(backend, SQLiteBackend):
        conn = await backend.database.connection()
        table = storage.table_name  # type: ignore[attr-defined]
        rows = await conn.execute_fetchall(
            f'SELECT COUNT(*) FROM "{table}_parts" p WHERE NOT EXISTS '
            f'(SELECT 1 FROM "{table}" t WHERE t.parts = p.id)')
        return int(next(iter(rows))[0])
    if isinstance(storage, FileCache):
        return sum(1 for path in storage.directory.rglob(".tmp-*"))
    if isinstance(storage, GridFSCache):
        db = storage._db()
        files = [doc["_id"] async for doc in db[f"{storage.bucket_name}.files"].find({}, {"_id": 1})]
        return int(await db[f"{storage.bucket_name}.chunks"].count_documents({"files_id": {"$nin": files}}))
    return 0


async def assert_nothing_stored(backend: CacheBackend) -> None:
    """Not stored, not half-stored: no item, and no part of one left behind."""
    for _ in range(100):  # an abandoned tee drops its parts on the loop, soon
        if not await leftovers(backend):
            break
        await asyncio.sleep(0.05)
    assert await backend.raw_responses.size() == 0
    assert await leftovers(backend) == 0


async def assert_nothing_stored_then_whole(c: Client, origin: Origin, name: str, size: int,
                                           **query: Any) -> None:
    """Nothing was stored for /body/NAME; the next request is a miss that stores it whole."""
    await assert_nothing_stored(c.cache)
    url = body_url(origin, name, size, chunked=False, **query)
    retry = await c.read(url, "read" if isinstance(c, AsyncClient) else "content")
    assert not retry.from_cache and retry.body == payload(size)
    hit = await c.read(url, "iter_chunked" if isinstance(c, AsyncClient) else "iter_content")
    assert hit.from_cache == storable(c, size) and hit.body == payload(size)
    assert await leftovers(c.cache) == 0


async def bare_read(c: Client, url: str, style: str) -> bytes:
    """``url`` read in ``style`` by the bare client of ``c``'s kind (aiohttp, requests)."""
    if isinstance(c, AsyncClient):
        async with aiohttp.ClientSession() as session, session.get(url) as r:
            return await ASYNC_STYLES[style](r)

    def get() -> bytes:
        stream = style not in ("content", "text", "json")
        with requests.Session() as session, session.get(url, stream=stream) as r:
            return SYNC_STYLES[style](r)

    return await asyncio.to_thread(get)


CUT_STYLES = {AsyncClient: ("read", "json", "readany", "readline", "readexactly", "iter_chunked", "iter_any",
                            "iter_chunks", "async for"),
              SyncClient: ("content", "json", "iter_content", "iter_lines", "raw.read", "raw.read(n)")}


async def outcome(read: Awaitable[Any]) -> Any:
    """What a read gave: its result, or the exception it raised."""
    try:
        return await read
    except Exception as e:
        return e


@pytest.mark.parametrize("size", [10_000, 3 * MB], ids=["10kB", "3MB"])
async def test_connection_cut_mid_body(make_client: MakeClient, origin: Origin, size: int) -> None:
    """The origin hangs up after 3/4 of the body: with a Content-Length (a length
    mismatch: fewer bytes than announced) and chunked (no last chunk). The caller gets what
    the bare client gives, in every reading style: its exception, of the same type (or,
    where urllib3 < 2 does not enforce Content-Length, the same short body); nothing is
    stored, not even in part (3 MB: the cut comes after parts went to storage)."""
    c = make_client()
    styles = CUT_STYLES[type(c)]
    if size > 1 * MB:
        styles = styles[:1] + styles[-1:]
    for chunked in (False, True):
        url = body_url(origin, f"cut-{size}", size, chunked, cut=size * 3 // 4)
        for style in styles:
            bare, ours = await outcome(bare_read(c, url, style)), await outcome(c.read(url, style))
            ours = ours.body if isinstance(ours, Reply) else ours
            case = (style, "chunked" if chunked else "Content-Length")
            assert type(ours) is type(bare), (case, ours, bare)
            assert isinstance(bare, Exception) or ours == bare, case
            await assert_nothing_stored(c.cache)
    await assert_nothing_stored_then_whole(c, origin, f"cut-{size}", size)


@pytest.mark.parametrize("how", ["release", "close", "context exit", "dropped"])
async def test_read_half_then_release(make_client: MakeClient, origin: Origin, how: str,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The caller reads half a 3 MB body (past the first parts written to storage), then
    lets the response go: ``release()``, ``close()``, leaving ``async with`` / ``with``,
    or dropping the response half-read. Nothing stays behind, and the next request for
    the URL does not wait for the abandoned body (no stall timeout to sit out)."""
    c = make_client()
    if isinstance(c, SyncClient) and how == "release":
        pytest.skip("requests has no release(): close() is the sync way")
    if isinstance(c, AsyncClient) and how == "dropped" and AIOHTTP_VERSION < (3, 14):
        pytest.skip("aiohttp < 3.14 keeps a dropped response alive (its stream's eof callback "
                    "holds it) until the connection closes: nothing to collect yet")
    monkeypatch.setattr(coalescing, "LEADER_STALL_SECONDS", 60)  # a wait would show
    size = 3 * MB
    for chunked in (False, True):
        url = body_url(origin, "half", size, chunked, pause=0.05)
        if isinstance(c, AsyncClient):
            if how == "context exit":
                parts = []
                async with c.session.get(url) as r:
                    async for chunk in r.content.iter_chunked(64 * 1024):
                        parts.append(chunk)
                        if sum(map(len, parts)) >= size // 2:
                            break
                half = b"".join(parts)
            else:
                r = await c.session.get(url)
                half = await r.content.readexactly(size // 2)
                if how == "dropped":
                    del r
                    gc.collect()
                else:
                    r.release() if how == "release" else r.close()
        else:
            def half_then_close(url: str = url) -> bytes:
                if how == "context exit":
                    with c.session.get(url, stream=True) as r:  # type: ignore[attr-defined]
                        chunks, parts = r.iter_content(64 * 1024), []
                        while sum(map(len, parts)) < size // 2:
                            parts.append(next(chunks))
                        return b"".join(parts)
                r = c.session.get(url, stream=True)  # type: ignore[attr-defined]
                data = b"".join(r.raw.read(64 * 1024) for _ in range(size // 2 // (64 * 1024)))
                if how == "close":
                    r.close()
                else:
                    del r
                    gc.collect()
                return data

            half = await asyncio.to_thread(half_then_close)
        assert half == payload(size)[: len(half)] and size // 2 <= len(half) < size
        await assert_nothing_stored(c.cache)
    await asyncio.wait_for(assert_nothing_stored_then_whole(c, origin, "half", size), 30)


async def test_cancelled_reader(make_backend: BackendMaker, origin: Origin) -> None:
    backend = make_backend()
    size = 3 * 1024 * 1024
    async with CachedClientSession(cache=backend) as session:
        started = asyncio.Event()

        async def reader() -> None:
            async with session.get(body_url(origin, "cancel", size, False, pause=1)) as r:
                await r.content.read(1000)
                started.set()
                await r.read()  # waits in the pause, until cancelled

        task = asyncio.create_task(reader())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await assert_nothing_stored(backend)
        url = body_url(origin, "cancel", size, False)
        async with session.get(url) as r:
            assert not r.from_cache and await r.read() == payload(size)
        async with session.get(url) as r:
            assert r.from_cache == (size < 300_000 or not isinstance(backend, DynamoDBBackend))


async def test_large_response_dropped_unread_is_not_stored(make_backend: BackendMaker,
                                                           origin: Origin) -> None:
    backend = make_backend()
    size = 2 * 1024 * 1024
    async with CachedClientSession(cache=backend) as session:
        r = await session.get(body_url(origin, "dropped", size, True))
        assert not r.from_cache
        del r
        gc.collect()
        await assert_nothing_stored(backend)


async def test_small_body_arrived_whole_is_stored_unread(make_backend: BackendMaker,
                                                         origin: Origin) -> None:
    """As before bodies streamed: a body that is all there when the response is handed
    over is stored at once, read or not."""
    backend = make_backend()
    async with CachedClientSession(cache=backend) as session:
        url = body_url(origin, "small", 100, False)
        async with session.get(url) as r:
            assert not r.from_cache
        async with session.get(url) as r:
            assert r.from_cache and await r.read() == payload(100)


async def _lines(response: Any, **kwargs: Any) -> list[object]:
    """Each line's length, ending with the error ``readline`` raised, if any."""
    read: list[object] = []
    for _ in range(200):
        try:
            line = await response.content.readline(**kwargs)
        except Exception as e:
            return [*read, (type(e), str(e))]
        if not line:
            break
        read.append(len(line))
    return read


@pytest.mark.parametrize("size", ["small", "large"])
async def test_readline_of_a_line_too_long_raises_as_bare_aiohttp(
        origin: Origin, tmp_path: Path, size: str) -> None:
    """aiohttp's ``readline()`` raises for a line over its high-water mark (LineTooLong
    since 3.12, ValueError before), or over ``max_line_length``; a hit replayed from
    memory (small: one over 1 MiB still) or streamed from storage (large) raised nothing. The same lines, the
    same error, bare and miss and hit; a line of exactly the limit is read."""
    limit = LINE_LIMIT
    lengths = [10, limit, 5, limit + 1, 7] if size == "small" else [10, *[65536] * 24, limit, limit + 1, 7]
    url = origin.url(f"/lines/{size}?lengths={','.join(map(str, lengths))}")
    async with aiohttp.ClientSession() as bare, bare.get(url) as r:
        expected = await _lines(r)
    assert expected[-1][0] in (ValueError, LineTooLong)  # type: ignore[index]
    async with CachedClientSession(cache=SQLiteBackend(tmp_path / "lines.sqlite")) as session:
        async with session.get(url) as r:
            assert not r.from_cache and await _lines(r) == expected  # the origin's stream
        async with session.get(url) as r:
            await r.read()  # the body read whole: stored
        async with session.get(url) as r:
            assert r.from_cache and await _lines(r) == expected
        if "max_line_length" in inspect.signature(aiohttp.StreamReader.readline).parameters:
            async with aiohttp.ClientSession() as bare, bare.get(url) as r:
                shorter = await _lines(r, max_line_length=20)
            async with session.get(url) as r:
                assert r.from_cache and await _lines(r, max_line_length=20) == shorter
            assert shorter[-1][0] is LineTooLong  # type: ignore[index]


async def _chunk_reads(r: Any) -> list[object]:
    """``content.readchunk()`` to the end, then ``readexactly()`` past it: what each gave."""
    seen: list[object] = []
    while True:
        chunk, end = await r.content.readchunk()
        if not chunk and not end:
            break
        seen.append(chunk)
    try:
        await r.content.readexactly(1)
    except asyncio.IncompleteReadError as e:  # aiohttp's error (an EOFError) with what came
        seen.append(("IncompleteReadError", e.partial))
    return seen


async def test_readchunk_and_readexactly_past_the_end_on_a_hit_as_bare_aiohttp(
        origin: Origin) -> None:
    """A hit replayed from memory had no ``readchunk()`` (AttributeError), and its
    ``readexactly()`` past the end raised a bare EOFError, not aiohttp's
    ``asyncio.IncompleteReadError``. Bare, miss and hit read the same."""
    url = body_url(origin, "chunks", 1000, False)
    async with aiohttp.ClientSession() as bare, bare.get(url) as r:
        expected = await _chunk_reads(r)
    assert b"".join(c for c in expected if isinstance(c, bytes)) == payload(1000)
    async with CachedClientSession(cache=CacheBackend()) as session:
        async with session.get(url) as r:
            assert not r.from_cache and await _chunk_reads(r) == expected
        async with session.get(url) as r:
            assert r.from_cache and await _chunk_reads(r) == expected
