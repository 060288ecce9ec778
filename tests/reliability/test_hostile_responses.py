"""Responses and requests plain aiohttp / requests handle must not become exceptions
here: header bytes that are not UTF-8, numbers that overflow, ten thousand headers,
malformed URLs. Each case runs against the bare client in the same test, and the cached
session must show exactly what it shows (headers byte for byte, from a raw socket
origin), on the miss and on the hit that follows, with the response cached where it may
be."""

from __future__ import annotations

import asyncio
import http.client
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import aiohttp
import pytest
import requests
from multidict import CIMultiDict

from aiocache_http import CacheBackend, CachedClientSession, CachedRequest
from aiocache_http.models import CachedResponse
from aiocache_http.policy import core, create_key, freshness
from aiocache_http.policy.directives import MAX_DELTA_SECONDS
from aiocache_http.policy.freshness import HOP_BY_HOP
from aiocache_http.policy.settings import CacheSettings
from aiocache_http.sync import CachedSession

from .raw_origin import RawOrigin, raw_origin, response

OLD = b"Mon, 01 Jan 0001 00:00:00 GMT"
CASES: dict[str, tuple[list[tuple[bytes, bytes]], bytes, bool]] = {
    # name: (headers, body, a hit with cache_control=True)
    "non-utf8-value": ([(b"X-Bin", b"caf\xe9")], b"hello", True),
    "utf8-value": ([(b"X-Utf8", b"caf\xc3\xa9")], b"hello", True),
    "garbled-charset": ([(b"Content-Type", b"text/plain; charset=\xe9t\xe9")], b"caf\xe9", True),
    "latin1-charset": ([(b"Content-Type", b"text/plain; charset=latin-1")], b"caf\xe9", True),
    "odd-vary": ([(b"Vary", b"X-\xff, X-Other")], b"hello", True),
    "max-age-overflow": ([(b"Cache-Control", b"max-age=99999999999999999999")], b"hello", True),
    "s-maxage-overflow": ([(b"Cache-Control", b"s-maxage=99999999999999999999, max-age=60")],
                          b"hello", True),
    "stale-overflow": ([(b"Cache-Control", b"max-age=60, stale-while-revalidate=99999999999999999999"
                         b", stale-if-error=99999999999999999999")], b"hello", True),
    "age-overflow": ([(b"Cache-Control", b"max-age=60"), (b"Age", b"99999999999999999999")],
                     b"hello", False),  # older than its max-age: stored stale
    "non-ascii-digits": ([(b"Cache-Control", b"max-age=\xc2\xb2"), (b"Age", b"\xd9\xa3")], b"hello",
                         True),  # invalid: no freshness, expire_after applies
    "dates-at-the-ends": ([(b"Date", OLD), (b"Expires", b"Fri, 31 Dec 9999 23:59:59 GMT")], b"hello",
                          True),
    "ancient-last-modified": ([(b"Last-Modified", OLD)], b"hello", True),
    "set-cookie": ([(b"Set-Cookie", b"sid=\xe9secret; Path=/nowhere")], b"hello", True),
}
NOT_REPLAYED = HOP_BY_HOP | {"age", "set-cookie"}  # dropped on store (RFC 9111 §3.1), Age added


@dataclass
class Seen:
    status: int
    headers: list[tuple[Any, Any]]
    body: bytes
    text: str
    from_cache: bool = False

    def comparable(self) -> tuple[Any, ...]:
        kept = [(k, v) for k, v in self.headers if _name(k).lower() not in NOT_REPLAYED]
        return self.status, kept, self.body, self.text


def _name(name: str | bytes) -> str:
    return name.decode("latin-1") if isinstance(name, bytes) else name


async def fetch_async(session: aiohttp.ClientSession, url: str) -> Seen:
    async with session.get(url) as r:
        body = await r.read()
        # raw_headers: the bytes on the wire; headers: aiohttp's decoding of them.
        seen = Seen(r.status, [*r.raw_headers, *r.headers.items()], body,
                    await r.text(errors="replace"), getattr(r, "from_cache", False))
        return seen


async def fetch_sync(session: requests.Session, url: str) -> Seen:
    r = await asyncio.to_thread(session.get, url)
    return Seen(r.status_code, list(r.headers.items()), r.content, r.text,
                getattr(r, "from_cache", False))


@pytest.fixture
async def origin() -> Any:
    async with raw_origin({f"/{name}": response(headers, body)
                           for name, (headers, body, _) in CASES.items()}) as o:
        yield o


@pytest.mark.parametrize("cache_control", [False, True], ids=["requests-cache-mode", "rfc9111"])
@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_hostile_headers_behave_as_the_bare_client(kind: str, cache_control: bool,
                                                         origin: RawOrigin) -> None:
    backend = CacheBackend(cache_control=cache_control, expire_after=600)
    for name, (_headers, _body, hit_with_rfc) in CASES.items():
        url = origin.url(f"/{name}")
        if kind == "async":
            async with aiohttp.ClientSession() as bare_session:
                bare = await fetch_async(bare_session, url)
            async with CachedClientSession(cache=backend, autoclose=False) as s:
                miss, hit = await fetch_async(s, url), await fetch_async(s, url)
        else:
            with requests.Session() as bare_session:
                bare = await fetch_sync(bare_session, url)
            with CachedSession(backend=backend, autoclose=False) as s:
                miss, hit = await fetch_sync(s, url), await fetch_sync(s, url)
        assert miss.comparable() == bare.comparable() and not miss.from_cache, name
        assert hit.comparable() == bare.comparable(), name
        assert hit.from_cache == (hit_with_rfc or not cache_control), name
    await backend.close()


async def test_stored_by_one_session_replayed_by_the_other(origin: RawOrigin) -> None:
    """One stored form: each session replays what its own bare library shows."""
    for writer, reader in [("async", "sync"), ("sync", "async")]:
        backend = CacheBackend(expire_after=600)
        for name in CASES:
            url = origin.url(f"/{name}")
            sessions = {"async": CachedClientSession(cache=backend, autoclose=False),
                        "sync": CachedSession(backend=backend, autoclose=False)}
            for kind in (writer, reader):
                session = sessions[kind]
                seen = await (fetch_async(session, url) if isinstance(session, aiohttp.ClientSession)
                              else fetch_sync(session, url))
                if kind == reader:
                    assert seen.from_cache, name
                    async with aiohttp.ClientSession() as bare_aio:
                        with requests.Session() as bare_req:
                            bare = await (fetch_async(bare_aio, url) if kind == "async"
                                          else fetch_sync(bare_req, url))
                    assert seen.comparable() == bare.comparable(), (writer, reader, name)
            await sessions["async"].close()
            sessions["sync"].close()
        await backend.close()


@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_ten_thousand_headers(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the libraries' default limits both refuse the response, with their own
    exception; with the limits raised it is stored and replayed, all 10,000."""
    headers = [(f"X-H{i}".encode(), f"v{i}\xe9".encode("latin-1")) for i in range(10_000)]
    async with raw_origin({"/many": response(headers)}) as origin:
        url = origin.url("/many")
        if kind == "async":
            with pytest.raises(aiohttp.ClientResponseError) as bare_error:
                async with aiohttp.ClientSession() as bare_session:
                    await fetch_async(bare_session, url)
            with pytest.raises(type(bare_error.value)):
                async with CachedClientSession(cache=CacheBackend()) as s:
                    await fetch_async(s, url)
            limits = {"max_headers": 20_000, "max_field_size": 1 << 20}
            async with aiohttp.ClientSession(**limits) as bare_session:
                bare = await fetch_async(bare_session, url)
            async with CachedClientSession(cache=CacheBackend(), **limits) as s:
                miss, hit = await fetch_async(s, url), await fetch_async(s, url)
        else:
            with pytest.raises(requests.ConnectionError) as bare_error:
                await fetch_sync(requests.Session(), url)
            with pytest.raises(type(bare_error.value)):
                await fetch_sync(CachedSession(backend=CacheBackend()), url)
            monkeypatch.setattr(http.client, "_MAXHEADERS", 20_000)  # requests has no option
            bare = await fetch_sync(requests.Session(), url)
            s = CachedSession(backend=CacheBackend())
            miss, hit = await fetch_sync(s, url), await fetch_sync(s, url)
            s.close()
    assert len(bare.headers) >= 10_000
    assert miss.comparable() == bare.comparable() == hit.comparable()
    assert hit.from_cache and not miss.from_cache


MALFORMED = ["http://[::1", "http://127.0.0.1:99999/x", "http:///x", "127.0.0.1/x", "ftp://127.0.0.1/x",
             "http://127.0.0.1:abc/", "", "http://", "//127.0.0.1/x", "https://[::1]:80:1/",
             "http://user@[::1/"]


def _outcome(call: Any) -> Any:
    try:
        return call()
    except Exception as e:
        return type(e)


@pytest.mark.parametrize("url", MALFORMED)
async def test_malformed_urls_raise_what_the_bare_client_raises(url: str) -> None:
    async def aio(session: aiohttp.ClientSession) -> Any:
        try:
            async with session.get(url) as r:
                return r.status
        except Exception as e:
            return type(e)

    async with aiohttp.ClientSession() as bare_session:
        bare = await aio(bare_session)
    async with CachedClientSession(cache=CacheBackend()) as s:
        assert await aio(s) is bare
    assert bare is not int  # each of these is an error for aiohttp

    bare_sync = await asyncio.to_thread(_outcome, lambda: requests.get(url, timeout=5))
    cached = CachedSession(backend=CacheBackend())
    assert await asyncio.to_thread(_outcome, lambda: cached.get(url, timeout=5)) is bare_sync
    assert isinstance(bare_sync, type) and issubclass(bare_sync, requests.RequestException)
    cached.close()


async def test_request_header_with_a_surrogate(origin: RawOrigin) -> None:
    """aiohttp sends it (UTF-8, surrogateescape), requests refuses it: so do we, in each."""
    url, headers = origin.url("/utf8-value"), {"X-Name": "caf\udce9"}
    async with aiohttp.ClientSession() as bare_session, bare_session.get(url, headers=headers) as r:
        bare_status = r.status
    async with CachedClientSession(cache=CacheBackend()) as s:
        for expected_cached in (False, True):
            async with s.get(url, headers=headers) as r:
                assert (r.status, r.from_cache) == (bare_status, expected_cached)
    bare_sync = await asyncio.to_thread(_outcome, lambda: requests.get(url, headers=headers))
    cached = CachedSession(backend=CacheBackend())
    assert await asyncio.to_thread(_outcome, lambda: cached.get(url, headers=headers)) is bare_sync
    cached.close()


@pytest.mark.parametrize("headers", [
    {"Cache-Control": "max-age=" + "9" * 5000},  # past int()'s 4300-digit limit too
    {"Cache-Control": "max-age=60", "Age": "9" * 5000},
    {"Cache-Control": "max-age=²"},
    {"Expires": "Fri, 31 Dec 9999 23:59:59 GMT", "Date": "Mon, 01 Jan 0001 00:00:00 GMT"},
    {"Last-Modified": "Mon, 01 Jan 0001 00:00:00 GMT", "Date": "Fri, 31 Dec 9999 23:59:59 GMT"},
    {"Content-Length": "9" * 5000},
    {"Cache-Control": "stale-while-revalidate=" + "9" * 50 + ", stale-if-error=" + "9" * 50},
])
def test_every_header_number_is_bounded(headers: dict[str, str]) -> None:
    h = CIMultiDict(headers)
    now = datetime(2030, 1, 1, tzinfo=timezone.utc)
    request = CachedRequest("GET", "https://x.test/")
    # expire_after: for the responses whose number is unusable (no freshness information;
    # the default NEVER_EXPIRE would keep them fresh until deleted, as both peers do)
    plan = core.plan(request, CacheSettings(cache_control=True, stale_while_revalidate=True,
                                            expire_after=3600), None,
                     lambda r: (create_key(r), r))
    expires = core.expires(plan, 200, h, now, now)
    assert expires is not None and expires - now <= timedelta(seconds=MAX_DELTA_SECONDS)
    assert freshness.initial_age(h, now, now) <= MAX_DELTA_SECONDS
    assert freshness.complete(h, b"x") is ("Content-Length" not in h)
    stored = core.renew(plan, CachedResponse(200, "OK", request.url, h, b"x", request), h, now, now)
    assert core.on_lookup(plan, stored, now + timedelta(days=365 * 100)) is not None
