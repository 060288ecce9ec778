"""aiohttp-client-cache's public API, as its users call it (issue 19): names, arguments,
return types and behaviours that code written for it relies on."""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path

from yarl import URL

from aiocache_http import CacheBackend, CachedResponse, CachedSession, CacheMixin, DictCache
from aiocache_http.backends.sqlite import SQLiteBackend, SQLiteCache
from aiocache_http.cache_keys import create_key
from aiocache_http.models import CachedRequest

from .origin import Origin


async def test_cached_response_is_the_replayed_response(origin: Origin) -> None:
    """``isinstance(r, CachedResponse)`` tells a hit, as in aiohttp-client-cache; it can be
    built by keyword; times are naive UTC; links are parsed; it rewinds."""
    url = origin.url("/r/replay?h_Link=%3C%2Fnext%3E%3B%20rel%3D%22next%22")
    async with CachedSession(cache=CacheBackend(), expire_after=60) as session:
        live = await session.get(url)
        hit = await session.get(url)
    assert not isinstance(live, CachedResponse) and isinstance(hit, CachedResponse)
    assert hit.expires is not None and hit.expires.tzinfo is None and live.expires == hit.expires
    assert str(hit.links["next"]["url"]) == origin.url("/next")
    assert (await hit.json())["path"] == "/r/replay"
    assert await hit.content.read() and hit.content.at_eof()
    hit.reset()
    assert not hit.content.at_eof()
    built = CachedResponse(method="GET", reason="OK", status=200, url="https://x.test/a", version="1.1",
                           body=b"{}", headers={"Content-Type": "application/vnd.api+json"})
    assert built.status == 200 and built.url == URL("https://x.test/a")
    assert await built.json() == {}  # any application/*+json type, as aiohttp


async def test_session_drops_what_client_session_does_not_take(origin: Origin, tmp_path: Path) -> None:
    """aiohttp-client-cache passes the same keyword arguments to the backend and the
    session; the session keeps what ClientSession takes."""
    cache = SQLiteBackend(tmp_path / "c", use_temp=False, allowed_methods=["GET", "POST"])
    async with CachedSession(cache=cache, use_temp=True, create_if_not_exists=True,
                             allowed_methods=["GET", "POST"]) as session:
        assert (await session.get(origin.url("/r/kw"))).status == 200
        assert (await session.get(origin.url("/r/kw"))).from_cache

    class Mine(CacheMixin):
        pass

    async with Mine(cache=CacheBackend()) as session:
        await session.get(origin.url("/r/mixin"))
        assert (await session.get(origin.url("/r/mixin"))).from_cache


async def test_create_key_signature_and_value() -> None:
    """``create_key(method, url, **request_kwargs)``; a plain request gets aiohttp-client-
    cache's own key (SHA-256 of length-prefixed method and normalised URL)."""
    digest = hashlib.sha256()
    for part in (b"GET", b"https://example.com/?foo=bar&param=1", b"", b"", b""):
        digest.update(len(part).to_bytes(8, "big") + part)
    assert create_key("GET", "https://example.com?param=1", params={"foo": "bar"}) == digest.hexdigest()
    assert create_key("POST", "https://x.test", data=b"x") != create_key("POST", "https://x.test", data="x")
    assert create_key("POST", "https://x.test", json={"a": 1, "b": 2}) == create_key(
        "POST", "https://x.test", json={"b": 2, "a": 1})
    cache = CacheBackend(ignored_params=["t"])
    assert cache.create_key("GET", "https://x.test", params={"t": "1"}) == cache.create_key(
        "GET", "https://x.test", params={"t": "2"})


async def test_backend_helpers(origin: Origin) -> None:
    """get_urls() is an async iterator; settings are attributes; save_response() takes a
    response and aliases its redirect hops; delete() drops those aliases; disabled."""
    cache = CacheBackend()
    async with CachedSession(cache=cache) as session:
        r = await session.get(origin.url("/redirect/helpers"))
        assert [u async for u in cache.get_urls()] and await session.has_url(origin.url("/r/helpers"))
        cache.expire_after = 60
        assert cache.settings.expire_after == 60
        async with session.disabled():
            assert cache.disabled
            assert not (await session.get(origin.url("/r/helpers"))).from_cache
        assert not cache.disabled
        await cache.clear()
        await cache.save_response(r)
        assert await cache.redirects.size() == 1 and await cache.responses.size() == 1
        key = next(iter(await cache.responses.keys()))
        assert isinstance(await cache.responses.read(key), CachedResponse)
        await cache.delete(key)
        assert await cache.redirects.size() == 0
        await session.get(origin.url("/r/helpers"))
        await session.delete_url(origin.url("/r/helpers"))
        assert not await session.has_url(origin.url("/r/helpers"))


async def test_storages_keep_values(tmp_path: Path) -> None:
    """A storage on its own keeps text, numbers and datetimes as written (no pickle)."""
    when = datetime(2021, 8, 14)
    for storage in (DictCache("name", "table"), SQLiteCache(tmp_path / "db", "t", use_temp=False)):
        await storage.write("text", "value")
        await storage.write("when", when)
        await storage.write("raw", b"\xffACVs not text")  # bytes that look like a tag stay bytes
        assert await storage.read("text") == "value" and await storage.read("when") == when
        assert await storage.read("raw") == b"\xffACVs not text"
        assert sorted(await storage.values(), key=str) == sorted(["value", when, b"\xffACVs not text"],
                                                                  key=str)
    sqlite = SQLiteCache(tmp_path / "bulk", "t")
    async with sqlite.bulk_commit():
        for i in range(50):
            await sqlite.write(f"k{i}", f"v{i}")
        assert await sqlite.read("k3") == "v3"  # visible within the block
    assert await sqlite.size() == 50 and sqlite.filename.endswith("bulk.sqlite")


async def test_request_cache_control_needs_cache_control(origin: Origin) -> None:
    """aiohttp-client-cache's rule: request directives apply only with cache_control=True;
    then a request max-age sets the expiry and max-age=0 skips the cache."""
    url = origin.url("/r/rule?h_Cache-Control=max-age%3D60")
    async with CachedSession(cache=CacheBackend()) as session:
        await session.get(url, headers={"Cache-Control": "no-cache"})
        assert (await session.get(url, headers={"Cache-Control": "no-cache"})).from_cache
    async with CachedSession(cache=CacheBackend(), cache_control=True) as session:
        await session.get(url, headers={"Cache-Control": "max-age=360"})
        hit = await session.get(url, headers={"Cache-Control": "max-age=360"})
        assert hit.from_cache and hit.expires is not None
        assert 350 < (hit.expires - hit.created_at).total_seconds() <= 361
        await session.get(url, headers={"Cache-Control": "max-age=0"})
        assert await session.cache.responses.size() == 1  # max-age=0: neither read nor stored


async def test_streaming_a_stored_miss(origin: Origin) -> None:
    """A response read to be stored still streams to the caller."""
    async with CachedSession(cache=CacheBackend(), expire_after=0) as session:
        response = await session.get(origin.url("/r/stream?etag=v1"))
        assert b"".join([line async for line in response.content])


def test_record_is_not_the_public_response() -> None:
    from aiocache_http import models

    assert models.CachedResponse is not CachedResponse
    assert CachedRequest("GET", "https://x.test").verify  # the stored record's request


def test_create_key_does_not_copy_a_binary_body() -> None:
    """A 10 MiB bytearray or a multipart form's buffer is hashed in place (as in
    aiohttp-client-cache), and the key is the one the session computes from the body."""
    import tracemalloc

    from aiocache_http.cache_keys import request_for
    from aiocache_http.policy import keys

    size = 10 * 1024 * 1024
    body = bytes(size)
    for data in (bytearray(body), {"a": memoryview(body)}, [("f", body), ("n", "1")]):
        tracemalloc.start()
        try:
            key = create_key("POST", "https://example.com", data=data)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < size // 10, type(data)
        assert key == keys.create_key(request_for("POST", "https://example.com", data=data))
    assert create_key("POST", "https://e.test", data=bytearray(b"x")) != \
        create_key("POST", "https://e.test", data={"a": b"x"})


async def test_sqlite_storage_as_aiohttp_client_cache_builds_it(tmp_path: Path) -> None:
    """``SQLiteCache(name, table, timeout=..., other=...)``: sqlite3.connect gets the file
    and the timeout, an unknown argument is ignored with a warning; keys keep their type
    (the key column has no affinity, as in aiohttp-client-cache), over more than a page."""
    import sqlite3
    import warnings
    from unittest.mock import patch

    import pytest

    with patch("sqlite3.connect", wraps=sqlite3.connect) as connect:
        with pytest.warns(UserWarning, match="invalid_kwarg"):
            cache = SQLiteCache(tmp_path / "c", "t", timeout=0.5, invalid_kwarg="???")
        await cache.clear()
        connect.assert_called_with(cache.filename, timeout=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SQLiteCache(tmp_path / "c", "t", timeout=0.5, detect_types=0)  # sqlite3's own: no warning
    for i in range(1200):
        await cache.write(i, i)  # type: ignore[arg-type]
    await cache.write("s", "v")
    assert {k async for k in cache.keys()} == {*range(1200), "s"}
    assert {v async for v in cache.values()} == {*range(1200), "v"}
    assert await cache.read(7) == 7 and await cache.read("7") is None  # type: ignore[arg-type]
    await cache.close()


async def test_small_body_stored_before_get_returns(origin: Origin) -> None:
    """aiohttp-client-cache reads the body before ``get()`` returns, so a response the
    caller never reads is cached: so is a small one here, even when its body arrives
    after the headers; a large one is stored as the caller reads it (streaming)."""
    small = origin.url("/body/late?size=2000&pause=0.3")
    async with CachedSession(cache=CacheBackend()) as session:
        first = await session.get(small)
        second = await session.get(small)
        assert not first.from_cache and second.from_cache  # type: ignore[attr-defined]
        assert len(await first.read()) == 2000 and await second.read() == await first.read()
        large = origin.url("/body/big?size=300000&pause=0.3")
        async with session.get(large) as unread:
            assert unread.status == 200
        assert not (await session.get(large)).from_cache  # type: ignore[attr-defined]
    assert origin.count("/body/late") == 1 and origin.count("/body/big") == 2


async def test_in_memory_cache_hands_back_what_was_written(origin: Origin) -> None:
    """aiohttp-client-cache's in-memory cache holds the objects written to it:
    ``responses.write(key, r)`` then ``get_response(key)`` (also through a redirect alias)
    is ``r`` itself; a session still reads it as a record, and replacing or deleting the
    entry forgets the object."""
    url = origin.url("/r/written")
    async with CachedSession(cache=CacheBackend(), expire_after=60) as session:
        await session.get(url)
        hit = await session.get(url)
        cache = session.cache
        await cache.responses.write("mine", hit)
        await cache.redirects.write("alias", "mine")
        assert await cache.get_response("mine") is hit
        assert await cache.get_response("alias") is hit
        key = cache.create_key("GET", url)
        await cache.responses.write(key, hit)
        again = await session.get(url)  # the session reads the record, not the object
        assert again.from_cache and again is not hit  # type: ignore[attr-defined]
        assert await again.read() == await hit.read()
        await cache.save_response(hit, "mine")  # replaced: a record again
        assert await cache.get_response("mine") is not hit
        await cache.responses.write("mine", hit)
        await cache.responses.delete("mine")
        assert await cache.get_response("mine") is None
        assert not cache.raw_responses.written.get("mine")  # type: ignore[attr-defined]
