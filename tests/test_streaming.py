"""Bodies stream: every session, every backend, every way users read a body, on a miss
(the tee) and on a hit, for empty, tiny, just-over-64-KiB and 5 MB bodies, with a
Content-Length and chunked. Bytes must be the origin's, and the second read a hit.
Then the ways a body does not complete: nothing is stored, and the next request is a
miss that stores the whole body."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest

from aiocache_http import CachedClientSession
from aiocache_http.backends.dynamodb import DynamoDBBackend

from .clients import AsyncClient, Client, canonical_json
from .conftest import BackendMaker
from .origin import Origin, payload
from .test_e2e import MakeClient

SIZES = (0, 1, 64 * 1024 + 1)
LARGE = 5 * 1000 * 1000


def body_url(origin: Origin, name: str, size: int, chunked: bool, **query: Any) -> str:
    params = {"size": size, **query}
    if chunked:
        params["chunked"] = 1
    return origin.url(f"/body/{name}?" + "&".join(f"{k}={v}" for k, v in params.items()))


def expected(style: str, size: int) -> bytes:
    return canonical_json(payload(size)) if style == "json" else payload(size)


def storable(client: Client, size: int) -> bool:
    """DynamoDB items stop at 400 KB: larger bodies pass through uncached (its README row)."""
    return not (isinstance(client.cache, DynamoDBBackend) and size > 300_000)


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


@pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
async def test_five_megabytes_streamed_and_whole(make_client: MakeClient, origin: Origin,
                                                 chunked: bool) -> None:
    c = make_client()
    streamed, whole = ("iter_chunked", "read") if isinstance(c, AsyncClient) else ("iter_content", "content")
    for style in (streamed, whole):
        url = body_url(origin, f"large-{style}", LARGE, chunked)
        miss = await c.read(url, style)
        again = await c.read(url, style)
        assert miss.body == payload(LARGE) and again.body == payload(LARGE), style
        assert not miss.from_cache and again.from_cache == storable(c, LARGE), style


# -- bodies that do not complete ---------------------------------------------------------
async def assert_nothing_stored_then_whole(c: Client, origin: Origin, name: str, size: int,
                                           **query: Any) -> None:
    """Nothing was stored for /body/NAME; the next request is a miss that stores it whole."""
    assert await c.cache.raw_responses.size() == 0
    url = body_url(origin, name, size, chunked=False, **query)
    retry = await c.read(url, "read" if isinstance(c, AsyncClient) else "content")
    assert not retry.from_cache and retry.body == payload(size)
    hit = await c.read(url, "iter_chunked" if isinstance(c, AsyncClient) else "iter_content")
    assert hit.from_cache == storable(c, size) and hit.body == payload(size)


@pytest.mark.parametrize("size", [10_000, 2 * 1024 * 1024], ids=["10kB", "2MB"])
async def test_connection_cut_mid_body(make_client: MakeClient, origin: Origin, size: int) -> None:
    c = make_client()
    for chunked in (False, True):
        url = body_url(origin, f"cut-{size}", size, chunked, cut=size // 2)
        with pytest.raises(Exception) as cut:  # the bare client's error
            await c.read(url, "read" if isinstance(c, AsyncClient) else "iter_content")
        assert "Payload" in type(cut.value).__name__ or "Chunked" in type(cut.value).__name__, cut.value
    await assert_nothing_stored_then_whole(c, origin, f"cut-{size}", size)


async def test_read_half_then_release(make_client: MakeClient, origin: Origin) -> None:
    c = make_client()
    size = 3 * 1024 * 1024
    for chunked in (False, True):
        url = body_url(origin, "half", size, chunked, pause=0.05)
        if isinstance(c, AsyncClient):
            r = await c.session.get(url)
            half = await r.content.readexactly(size // 2)
            r.release()
        else:
            def half_then_close(url: str = url) -> bytes:
                with c.session.get(url, stream=True) as r:  # type: ignore[attr-defined]
                    chunks, parts = r.iter_content(64 * 1024), []
                    while sum(map(len, parts)) < size // 2:
                        parts.append(next(chunks))
                    return b"".join(parts)

            half = await asyncio.to_thread(half_then_close)
        assert half == payload(size)[: len(half)] and 0 < len(half) < size
    await asyncio.sleep(0.05)  # the abandoned tee drops its parts on the loop
    await assert_nothing_stored_then_whole(c, origin, "half", size)


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
        await asyncio.sleep(0.05)
        assert await backend.raw_responses.size() == 0
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
        await asyncio.sleep(0.05)
        assert await backend.raw_responses.size() == 0


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
