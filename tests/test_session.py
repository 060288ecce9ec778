"""CachedClientSession specifics: the replayed response behaves like aiohttp's, verbs,
autoclose, coalescing under cancellation, and fail-open when storage breaks."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
from collections.abc import AsyncIterator, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from yarl import URL

from aiocache_http import (
    BaseCache,
    CacheBackend,
    CachedClientResponse,
    CachedClientSession,
    CachedRequest,
    CachedSession,
    CacheEvent,
    MemoryCache,
    SQLiteBackend,
)
from aiocache_http.driver import STORAGE_ERROR
from aiocache_http.models import CachedResponse
from aiocache_http.sync import CachedSession as SyncSession

from .origin import Origin
from .redis_servers import RedisServer
from .waiting import until


async def test_replayed_response_matches_live_response(origin: Origin) -> None:
    url = origin.url("/r/api?h_Set-Cookie=sid%3Dabc&h_X-Multi=1")
    async with CachedClientSession(cache=CacheBackend(), expire_after=60) as s:
        async with s.get(url) as live:
            live_body = await live.read()
            assert live.cookies["sid"].value == "abc"
            live_headers = {k: v for k, v in live.headers.items() if k != "Set-Cookie"}
            live_view = (live.status, live.reason, live.ok, str(live.url), str(live.real_url),
                         live.content_type, live.charset, live_headers)
            assert live.from_cache is False and live.cache_key and live.expires is not None
        async with s.get(url) as hit:
            assert isinstance(hit, CachedClientResponse) and hit.from_cache
            assert (hit.status, hit.reason, hit.ok, str(hit.url), str(hit.real_url), hit.content_type,
                    hit.charset, dict(hit.headers)) == live_view
            assert not hit.cookies  # Set-Cookie is never stored: it would log the next user in
            assert await hit.read() == live_body
            assert await hit.text() == live_body.decode()
            assert (await hit.json())["path"] == "/r/api"
            assert await hit.content.read(3) == live_body[:3]
            assert await hit.content.read() == live_body[3:]
            assert hit.content.at_eof()
            hit.raise_for_status()
            hit.release()
            assert hit.cache_key == live.cache_key and not hit.is_expired
            assert hit.expires == live.expires and isinstance(hit.created_at, datetime)
            assert hit.request_info.method == "GET" and hit.method == "GET"
            mine = hit.request_info.headers.copy()  # a copy is the caller's, as aiohttp's is
            mine["X-Retry"] = "1"
            assert mine["X-Retry"] == "1" and "X-Retry" not in hit.request_info.headers
        plain = await s.get(url)  # awaited without a context manager
        assert plain.from_cache and plain.status == 200
    assert origin.count("/r/api") == 1


async def test_replayed_error_status_raises_like_aiohttp(origin: Origin) -> None:
    async with CachedClientSession(cache=CacheBackend(), allowed_codes=(200, 404)) as s:
        await s.get(origin.url("/r/gone?status=404"))
        hit = await s.get(origin.url("/r/gone?status=404"))
        assert hit.from_cache and not hit.ok
        with pytest.raises(aiohttp.ClientResponseError) as info:
            hit.raise_for_status()
        assert info.value.status == 404
        with pytest.raises(aiohttp.ContentTypeError):
            await CachedClientResponse.replay(hit._cached, "GET").json(content_type="text/xml")  # type: ignore[union-attr]


async def test_every_verb_and_passthrough(origin: Origin) -> None:
    async with CachedClientSession(cache=CacheBackend()) as s:
        for verb in ("get", "post", "put", "patch", "delete", "options", "head"):
            async with getattr(s, verb)(origin.url("/r/v")) as r:
                assert r.status == 200
        assert origin.count("/r/v") == 7  # GET and HEAD are two different entries
        async with s.get(origin.url("/r/v")) as r:
            assert r.from_cache
        form = aiohttp.FormData({"a": "1"})
        for _ in range(2):  # a multipart/stream body cannot be keyed: bypasses the cache
            async with s.post(origin.url("/echo"), data=form) as r:
                assert r.status == 200
            form = aiohttp.FormData({"a": "1"})
    assert CachedSession is CachedClientSession


async def test_autoclose(origin: Origin) -> None:
    shared = CacheBackend()
    async with CachedClientSession(cache=shared, autoclose=False) as s:
        await s.get(origin.url("/r/ac"))
    async with CachedClientSession(cache=shared) as s2:  # still usable
        assert (await s2.get(origin.url("/r/ac"))).from_cache


async def test_disabled_alias_is_per_task(origin: Origin) -> None:
    async with CachedClientSession(cache=CacheBackend()) as s:
        await s.get(origin.url("/r/dt"))

        async def other_task() -> bool:
            await asyncio.sleep(0.01)
            return bool((await s.get(origin.url("/r/dt"))).from_cache)

        task = asyncio.ensure_future(other_task())  # started outside the block
        async with s.disabled():
            assert not (await s.get(origin.url("/r/dt"))).from_cache
        assert await task  # the other task was not affected


async def test_cancelled_leader_does_not_hang_or_poison_followers(origin: Origin) -> None:
    url = origin.url("/r/slow?hold=slow")  # at the origin until released
    async with CachedClientSession(cache=CacheBackend()) as s:
        leader = asyncio.ensure_future(s.get(url))
        await until(lambda: origin.count("/r/slow") == 1, "the leader's request reached the origin")
        followers = [asyncio.ensure_future(s.get(url)) for _ in range(10)]
        await asyncio.sleep(0.05)
        leader.cancel()
        origin.release("slow")  # the next leader's request is answered
        replies = await asyncio.wait_for(asyncio.gather(*followers), timeout=5)
        assert all(r.status == 200 for r in replies)
        assert len({await r.read() for r in replies}) == 1
        assert origin.count("/r/slow") == 2  # the cancelled one, then one new leader
        assert not s.cache.inflight


async def test_leader_error_hands_over(origin: Origin) -> None:
    async with CachedClientSession(cache=CacheBackend()) as s:
        bad = asyncio.ensure_future(s.get("http://127.0.0.1:1/r/x"))  # nothing listens there
        with pytest.raises(aiohttp.ClientConnectionError):
            await bad
        assert not s.cache.inflight


class BrokenStorage(BaseCache):
    """A storage whose server is down: every call fails like a dropped connection."""

    async def read(self, key: str) -> bytes | None:
        raise ConnectionError("server down")

    async def write(self, key: str, value: bytes | str, expires: datetime | None = None) -> None:
        raise ConnectionError("server down")

    async def delete(self, key: str) -> None:
        raise ConnectionError("server down")

    async def iter_keys(self) -> AsyncIterator[str]:
        raise ConnectionError("server down")
        yield ""

    async def size(self) -> int:
        raise ConnectionError("server down")

    async def clear(self) -> None:
        raise ConnectionError("server down")

    async def bulk_delete(self, keys: Iterable[str]) -> None:
        raise ConnectionError("server down")


async def test_backend_outage_fails_open(origin: Origin, caplog: pytest.LogCaptureFixture) -> None:
    backend = CacheBackend()
    backend.raw_responses = backend.raw_redirects = BrokenStorage()
    async with CachedClientSession(cache=backend) as s:
        with caplog.at_level(logging.WARNING, "aiocache_http"):
            for _ in range(2):
                r = await s.get(origin.url("/r/down"))
                assert r.status == 200 and not r.from_cache
        assert origin.count("/r/down") == 2
        assert "server down" in caplog.text
        s.settings.strict = True
        with pytest.raises(ConnectionError):
            await s.get(origin.url("/r/down"))


class SickWrites(BaseCache):
    """A storage that reads (an empty dict) but whose writes fail (``hang=False``: like a
    full disk) or never finish (``hang=True``: a stalled server, dropped at the deadline)."""

    def __init__(self, hang: bool = False) -> None:
        self.items: dict[str, bytes | str] = {}
        self.hang, self.writes = hang, 0

    async def read(self, key: str) -> bytes | str | None:
        return self.items.get(key)

    async def write(self, key: str, value: bytes | str, expires: datetime | None = None) -> None:
        self.writes += 1
        if self.hang:
            await asyncio.Event().wait()
        raise ConnectionError("disk full")

    async def delete(self, key: str) -> None:
        self.items.pop(key, None)

    async def iter_keys(self) -> AsyncIterator[str]:
        for key in list(self.items):
            yield key

    async def size(self) -> int:
        return len(self.items)

    async def clear(self) -> None:
        self.items.clear()


@pytest.mark.parametrize("hang", [False, True], ids=["write fails", "write dropped at deadline"])
async def test_a_write_that_did_not_land_is_reported_not_stored(origin: Origin, hang: bool) -> None:
    """The event and the stats say 'not stored' (storage error), not 'stored', when the
    store decided on did not reach storage; the caller still gets the origin's answer."""
    backend = CacheBackend(backend_timeout=0.05, write_timeout=0.3)
    storage = SickWrites(hang)
    backend.raw_responses = backend.raw_redirects = storage
    events: list[CacheEvent] = []
    backend.events.subscribe(events.append)
    async with CachedClientSession(cache=backend) as s:
        r = await s.get(origin.url("/r/sick-write?h_Cache-Control=max-age%3D60"))
        assert r.status == 200 and not r.from_cache and await r.read()
        await backend.wait_for_refreshes()
    assert storage.writes == 1 and not storage.items
    [event] = events
    assert event.kind == "miss" and event.stored is False
    assert event.not_stored_reason == STORAGE_ERROR and event.bytes_stored == 0
    assert event.storage_errors  # which call failed, and how
    assert backend.stats.stores == 0 and backend.stats.not_stored == {STORAGE_ERROR: 1}


async def test_a_streamed_small_body_whose_write_fails_is_not_stored(origin: Origin) -> None:
    """A small body that came through the tee (chunked, read as it arrived) and was kept
    in memory: its write failing ends as 'not stored', not as stored."""
    backend = CacheBackend()
    backend.raw_responses = backend.raw_redirects = SickWrites()
    events: list[CacheEvent] = []
    backend.events.subscribe(events.append)
    async with CachedClientSession(cache=backend) as s:
        r = await s.get(origin.url("/body/sick-stream?size=3000&chunked=1&pause=0.05"
                                   "&h_Cache-Control=max-age%3D60"))
        assert len(await r.read()) == 3000
        await asyncio.sleep(0)
    [event] = events
    assert event.stored is False and "the storage failed" in event.not_stored_reason
    assert backend.stats.stores == 0


async def test_waiters_get_the_leaders_response_when_its_write_fails(origin: Origin) -> None:
    """Coalesced waiters are handed the leader's response, in hand although not stored (no
    second origin request); the leader's event says not stored, theirs coalesced."""
    backend = CacheBackend()
    backend.raw_responses = backend.raw_redirects = SickWrites()
    events: list[CacheEvent] = []
    backend.events.subscribe(events.append)
    url = origin.url("/r/sick-shared?h_Cache-Control=max-age%3D60&delay=0.2")
    async with CachedClientSession(cache=backend) as s:
        replies = await asyncio.gather(*(s.get(url) for _ in range(3)))
        assert [r.status for r in replies] == [200] * 3
        assert len({await r.read() for r in replies}) == 1
    assert origin.count("/r/sick-shared") == 1
    leader = [e for e in events if not e.coalesced]
    assert len(leader) == 1 and leader[0].stored is False
    assert leader[0].not_stored_reason == STORAGE_ERROR
    assert sum(e.coalesced for e in events) == 2


async def test_plain_miss_with_stats_only_counts_a_failed_write_as_not_stored(origin: Origin) -> None:
    """The counted fast path (stats on, no listener) tells the same truth."""
    backend = CacheBackend()
    backend.raw_responses = backend.raw_redirects = SickWrites()
    async with CachedClientSession(cache=backend) as s:
        await (await s.get(origin.url("/r/sick-plain?h_Cache-Control=max-age%3D60"))).read()
    assert backend.stats.stores == 0 and backend.stats.not_stored == {STORAGE_ERROR: 1}


async def test_connection_error_serves_stale_if_error(origin: Origin) -> None:
    backend = CacheBackend(expire_after=0.1, stale_if_error=True)
    async with CachedClientSession(cache=backend) as s:
        url = "http://127.0.0.1:1/r/unreachable"
        backend_key = s.cache.create_key(s._cached_request("GET", url, {}))
        fake = await s.get(origin.url("/r/src"))
        stored = await backend.get_record(fake.cache_key)
        assert stored is not None
        await backend.save_response(stored, backend_key)  # as if cached from that origin
        await asyncio.sleep(0.15)
        stale = await s.get(url)
        assert stale.from_cache and stale.status == 200


async def test_default_backend_is_sqlite(origin: Origin, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from aiocache_http import SQLiteBackend

    monkeypatch.chdir(tmp_path)
    async with CachedClientSession(expire_after=60, secret_key="k") as s:
        assert isinstance(s.cache, SQLiteBackend)
        await s.get(origin.url("/r/default"))
        assert (await s.get(origin.url("/r/default"))).from_cache
    assert (tmp_path / "aiohttp-cache.sqlite").exists()


async def test_max_entries_evicts_least_recently_used(origin: Origin) -> None:
    async with CachedClientSession(cache=CacheBackend(max_entries=2)) as s:
        for name in ("a", "b"):
            await s.get(origin.url(f"/r/lru-{name}"))
        assert (await s.get(origin.url("/r/lru-a"))).from_cache  # a is now the most recent
        await s.get(origin.url("/r/lru-c"))  # evicts b
        assert await s.cache.responses.size() == 2
        assert (await s.get(origin.url("/r/lru-a"))).from_cache
        assert not (await s.get(origin.url("/r/lru-b"))).from_cache
    with pytest.raises(ValueError, match="max_entries"):
        CacheBackend(max_entries=0)


async def test_key_fn_replaces_create_key(origin: Origin) -> None:
    def by_path_only(request: CachedRequest, **kwargs: object) -> str:
        return "path:" + request.url.split("?")[0]

    async with CachedClientSession(cache=CacheBackend(), key_fn=by_path_only) as s:
        first = await s.get(origin.url("/r/kf?v=1"))
        second = await s.get(origin.url("/r/kf?v=2"))
        assert second.from_cache and first.cache_key == second.cache_key == "path:" + origin.url("/r/kf")
        s.settings.key_fn = lambda request, **kw: ""
        with pytest.raises(TypeError, match="key_fn"):
            await s.get(origin.url("/r/kf"))


async def test_raise_for_status_applies_to_replayed_responses(origin: Origin) -> None:
    url = origin.url("/r/rfs?status=404")
    async with CachedClientSession(cache=CacheBackend(), allowed_codes=(200, 404),
                                   raise_for_status=True) as s:
        for _ in range(2):  # the origin's answer, then the replayed one
            with pytest.raises(aiohttp.ClientResponseError):
                await s.get(url)
        assert origin.count("/r/rfs") == 1
        r = await s.get(url, raise_for_status=False)
        assert r.from_cache and r.status == 404
        seen = []

        async def check(response: object) -> None:
            seen.append(response)

        await s.get(url, raise_for_status=check)
        assert len(seen) == 1


async def test_a_storage_fault_is_in_the_request_event(origin: Origin) -> None:
    backend = CacheBackend()
    backend.raw_responses = backend.raw_redirects = BrokenStorage()
    events: list[CacheEvent] = []
    backend.events.subscribe(events.append)
    async with CachedClientSession(cache=backend) as s:
        r = await s.get(origin.url("/r/fault-event"))
        assert r.status == 200
    (event,) = events
    assert event.kind == "miss" and event.storage_errors
    assert "server down" in event.storage_errors[0]  # then: not attempted, one deadline a request


class CountingStorage(MemoryCache):
    """In-memory storage that counts reads, and can hold the reads of one key."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0
        self.hold: tuple[str, asyncio.Event] | None = None

    async def read(self, key: str) -> bytes | None:
        self.reads += 1
        if self.hold is not None and self.hold[0] == key:
            await self.hold[1].wait()
        return await super().read(key)


async def test_concurrent_cold_misses_read_storage_once_each(origin: Origin) -> None:
    backend = CacheBackend()
    backend.raw_responses = storage = CountingStorage()
    backend.raw_redirects = CountingStorage()
    async with CachedClientSession(cache=backend) as s:
        replies = await asyncio.gather(*(s.get(origin.url("/r/cold?delay=0.2")) for _ in range(50)))
        assert all(r.status == 200 for r in replies) and origin.count("/r/cold") == 1
        # One lookup each; waiters take the leader's response, they do not read it back.
        assert storage.reads <= 50 + 5


class CountingItems(MemoryCache):
    """In-memory storage that counts lookups of its objects (its own hot path kept)."""

    def __init__(self) -> None:
        super().__init__()
        self.gets: list[str] = []

    def get_item(self, key: str) -> bytes | CachedResponse | None:
        self.gets.append(key)
        return super().get_item(key)


async def test_a_plain_memory_miss_looks_its_key_up_once(origin: Origin) -> None:
    """Nothing stored, known without IO: the miss goes to the origin from that one lookup
    (no second read of the same key), is stored, counted, and the next request hits."""
    backend = CacheBackend()
    backend.raw_responses = responses = CountingItems()
    backend.raw_redirects = redirects = CountingItems()
    async with CachedClientSession(cache=backend) as s:
        url = origin.url("/r/one-lookup?h_Cache-Control=max-age%3D60")
        r = await s.get(url)
        assert r.status == 200 and not r.from_cache and await r.read()
        key = r.cache_key
        assert responses.gets == [key] and redirects.gets == [key]
        assert backend.stats.stores == 1 and backend.stats.misses == 1
        assert (await s.get(url)).from_cache
    assert origin.count("/r/one-lookup") == 1


async def test_plain_memory_misses_still_coalesce(origin: Origin) -> None:
    """Concurrent plain misses for one key (nobody listening, memory): one origin request,
    the others answered with the leader's stored response."""
    backend = CacheBackend()
    async with CachedClientSession(cache=backend) as s:
        url = origin.url("/r/plain-coalesced?delay=0.1&h_Cache-Control=max-age%3D60")
        replies = await asyncio.gather(*(s.get(url) for _ in range(10)))
        assert len({await r.read() for r in replies}) == 1
        assert sum(not r.from_cache for r in replies) == 1
    assert origin.count("/r/plain-coalesced") == 1
    assert backend.stats.stores == 1


async def test_a_lead_makes_its_futures_only_for_a_waiter() -> None:
    """Most misses have no waiter: their lead costs no future; a waiter still wakes with
    what the leader stored."""
    from aiocache_http.coalescing import Lead

    loop = asyncio.get_running_loop()
    alone = Lead(loop, None)
    alone.finish("stored")
    assert alone.done and alone.result == "stored" and alone._finished is None
    awaited = Lead(loop, None)
    waiter = asyncio.ensure_future(awaited.wait())
    await asyncio.sleep(0)
    assert awaited._finished is not None and not waiter.done()
    awaited.finish("shared")
    assert await asyncio.wait_for(waiter, 1) == "shared"


async def test_an_unrelated_fill_does_not_suppress_a_stale_while_revalidate_refresh(
        origin: Origin) -> None:
    backend = CacheBackend(expire_after=0.05, stale_while_revalidate=60)
    backend.raw_responses = storage = CountingStorage()
    async with CachedClientSession(cache=backend) as s:
        stale_url = origin.url("/r/swr-unrelated")
        await s.get(stale_url)
        await asyncio.sleep(0.1)  # now stale, within stale-while-revalidate
        key = s.cache.create_key(s._cached_request("GET", stale_url, {}))
        storage.hold = (key, asyncio.Event())
        stale = asyncio.ensure_future(s.get(stale_url))  # its lookup waits
        await asyncio.sleep(0.02)
        await s.get(origin.url("/r/swr-other"))  # another key's fill finishes meanwhile
        storage.hold[1].set()
        assert (await stale).from_cache
        await s.cache.wait_for_refreshes()
        assert origin.count("/r/swr-unrelated") == 2  # the refresh ran


# -- the plain-request memo: a repeated request reuses its key and plan only while what
# they were made from holds --------------------------------------------------------------
@pytest.mark.parametrize("per", ["session", "request"])
async def test_a_body_read_as_sent_is_never_another_form(origin: Origin, tmp_path: Path,
                                                         per: str) -> None:
    """``auto_decompress=False`` reads a body as sent (gzip bytes); a default session, and
    the sync layer, read it decoded, and that is what is stored. A content-encoded
    response read as sent is neither stored nor served from the decoded entry; one sent
    without a Content-Encoding is cached for it as for anyone. (One shared cache used to
    hand the gzip bytes to every reader of the URL, and decoded bytes under
    ``Content-Encoding: gzip`` to the session that asked for them as sent.)"""
    backend = SQLiteBackend(tmp_path / "enc.sqlite")
    url, plain = origin.url("/r/enc?gzip=1"), origin.url("/r/identity")
    raw_session = {"auto_decompress": False} if per == "session" else {}
    raw_request = {"auto_decompress": False} if per == "request" else {}

    async def read_as_sent(s: CachedClientSession, target: str) -> tuple[bytes, bool]:
        async with s.get(target, **raw_request) as r:
            return await r.read(), r.from_cache

    async with CachedClientSession(cache=backend, autoclose=False, **raw_session) as raw:
        for n in (1, 2):
            body, from_cache = await read_as_sent(raw, url)
            assert json.loads(gzip.decompress(body))["n"] == n and not from_cache
        assert await backend.raw_responses.size() == 0
        async with CachedClientSession(cache=backend, autoclose=False) as s:
            for _ in range(2):
                async with s.get(url) as r:
                    assert (await r.json())["n"] == 3  # decoded, stored
            assert r.from_cache
        body, from_cache = await read_as_sent(raw, url)
        assert json.loads(gzip.decompress(body))["n"] == 4 and not from_cache
        for _ in range(2):
            body, from_cache = await read_as_sent(raw, plain)
            assert json.loads(body)["n"] == 1
        assert from_cache  # nothing to decode: cached as for anyone
    with SyncSession(backend=backend) as sync:
        hit = await asyncio.to_thread(sync.get, url)
        assert hit.from_cache and hit.json()["n"] == 3
    await backend.close()
    assert origin.count("/r/enc") == 4


@pytest.mark.parametrize("cache_control", [False, True])
async def test_a_websocket_passes_the_cache_by(origin: Origin, cache_control: bool) -> None:
    """One session for HTTP and WebSockets (``ws_connect`` sends its GET through
    ``_request``): each upgrade reaches the origin, nothing is stored."""
    backend = CacheBackend()
    async with CachedClientSession(cache=backend, cache_control=cache_control) as s:
        for i in range(2):
            async with s.ws_connect(origin.url("/ws")) as ws:
                await ws.send_str(f"hi {i}")
                assert (await asyncio.wait_for(ws.receive(), 5)).data == f"echo hi {i}"
        assert await backend.raw_responses.size() == 0
    assert origin.count("/ws") == 2


async def test_an_event_stream_is_neither_stored_nor_waited_for(origin: Origin) -> None:
    """Two subscribers to one event stream: the second gets its own stream while the
    first still reads (it used to be coalesced onto the first, and waited for a stream
    that may never end), and nothing is stored (a replay would be old events)."""
    backend = CacheBackend()
    url = origin.url("/events/feed?count=1200")
    first_event = asyncio.Event()
    second_done = asyncio.Event()

    async def first(s: CachedClientSession) -> str:
        async with s.get(url) as r:
            line = await r.content.readline()
            first_event.set()
            while not second_done.is_set():  # still reading: the stream goes on
                await r.content.readline()
            return line.decode().strip()

    async def second(s: CachedClientSession) -> str:
        await first_event.wait()
        try:
            async with s.get(url) as r:
                return (await r.content.readline()).decode().strip()
        finally:
            second_done.set()

    async with CachedClientSession(cache=backend) as s:
        # (the stream lasts a minute: a second subscriber waiting for it to end times out)
        got = await asyncio.wait_for(asyncio.gather(first(s), second(s)), 20)
        assert got == ["data: 1-0", "data: 2-0"]
        assert await backend.raw_responses.size() == 0


@pytest.mark.parametrize("given", ["per request", "per session"])
async def test_a_coalesced_request_keeps_its_own_timeout(origin: Origin, given: str) -> None:
    """A request waiting for a concurrent one's answer times out as it would on its own:
    ``timeout=ClientTimeout(total=0.5)`` against an origin that answers only after that
    (held until the followers timed out) raises
    asyncio.TimeoutError while the leader still waits (it used to wait the leader's 3 s,
    or time out only after the leader did and its own request did again); so does
    ``sock_read`` for an answer that has not begun. A leader without the limit still
    gets its answer, and stores it."""
    url = origin.url("/r/slow-for-some?hold=some")
    short = aiohttp.ClientTimeout(total=0.5)
    async with CachedClientSession(cache=CacheBackend(),
                                   timeout=short if given == "per session" else None) as s:
        leader_started = asyncio.Event()
        leader_done = False

        async def lead() -> bytes:
            nonlocal leader_done
            leader_started.set()
            async with s.get(url, timeout=aiohttp.ClientTimeout(total=30)) as r:
                body = await r.read()
            leader_done = True
            return body

        async def follow(timeout: aiohttp.ClientTimeout | None) -> bool:
            await leader_started.wait()
            await until(lambda: origin.count("/r/slow-for-some") == 1, "the leader reached the origin")
            with pytest.raises(asyncio.TimeoutError):
                await (s.get(url) if timeout is None else s.get(url, timeout=timeout))
            return leader_done

        async def followed() -> list[bool]:
            done = await asyncio.gather(follow(None if given == "per session" else short),
                                        follow(aiohttp.ClientTimeout(total=None, sock_read=0.5)))
            origin.release("some")  # the leader's answer, once they timed out
            return done

        body, leader_done_first = await asyncio.wait_for(asyncio.gather(lead(), followed()), 30)
        assert json.loads(body)["n"] == 1
        assert leader_done_first == [False, False]  # they did not wait for the leader's 3 s
        async with s.get(url) as r:
            assert r.from_cache
    assert origin.count("/r/slow-for-some") == 1


async def test_a_misspelt_setting_is_said_not_silently_dropped() -> None:
    """The session drops the arguments it does not take, as aiohttp-client-cache's does;
    one that looks like a cache setting's name gets a warning naming it."""
    with pytest.warns(UserWarning, match="'expire_atfer'; did you mean the cache setting 'expire_after'"):
        session = CachedClientSession(cache=CacheBackend(), expire_atfer=60)
    await session.close()


async def test_a_settings_change_reaches_a_request_seen_before(origin: Origin) -> None:
    url = origin.url("/r/memo-settings")
    async with CachedClientSession(cache=CacheBackend(), expire_after=60) as s:
        for _ in range(2):
            async with s.get(url) as r:
                await r.read()
        assert r.from_cache
        s.settings.allowed_methods = ("HEAD",)  # GET now passes the cache by
        async with s.get(url) as r:
            await r.read()
            assert not r.from_cache
        s.settings.allowed_methods = ("GET", "HEAD")
        async with s.get(url) as r:
            assert r.from_cache
    assert origin.count("/r/memo-settings") == 2


async def test_new_session_credentials_make_a_new_key_for_a_request_seen_before(origin: Origin) -> None:
    url = origin.url("/r/memo-auth")
    async with CachedClientSession(cache=CacheBackend(), expire_after=60,
                                   headers={"Authorization": "Bearer alice"},
                                   cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
        for _ in range(2):
            async with s.get(url) as r:
                await r.read()
        alice = r.cache_key
        assert r.from_cache
        s.headers["Authorization"] = "Bearer bob"  # a user's answer is never another's
        async with s.get(url) as r:
            await r.read()
            assert not r.from_cache and r.cache_key != alice
        s.cookie_jar.update_cookies({"sid": "carol"}, URL(url))  # cookies identify users too
        async with s.get(url) as r:
            await r.read()
            assert not r.from_cache
    assert origin.count("/r/memo-auth") == 3


async def test_cache_disabled_reaches_a_request_seen_before(origin: Origin) -> None:
    url = origin.url("/r/memo-disabled")
    async with CachedClientSession(cache=CacheBackend(), expire_after=60) as s:
        for _ in range(2):
            async with s.get(url) as r:
                await r.read()
        async with s.cache_disabled(), s.get(url) as r:
            await r.read()
            assert not r.from_cache
        async with s.get(url, allow_redirects=False) as r:  # another key: follow_redirects differs
            await r.read()
            assert not r.from_cache
    assert origin.count("/r/memo-disabled") == 3


@pytest.mark.parametrize("follow", [True, False])
async def test_plain_request_as_the_cache_sees_it_takes_the_short_way(follow: bool) -> None:
    """A request with nothing to merge in (no headers, auth, cookies or body) is built in
    short: the same request as the full way builds; anything to merge takes the full way."""
    async with CachedClientSession(cache=CacheBackend()) as s:
        url = "http://x.test/a"
        short = s._cached_request("GET", url, {"allow_redirects": follow})
        full = s._cached_request("GET", url, {"allow_redirects": follow, "params": None})
        assert short == full
        assert (short.url, short.body, len(short.headers), short.follow_redirects, short.verify) \
            == ("http://x.test/a", b"", 0, follow, True)
        with_user = s._cached_request("GET", "http://u:p@x.test/a", {})
        assert with_user.headers["Authorization"].startswith("Basic ")
    async with CachedClientSession(cache=CacheBackend(), headers={"Accept": "x"}) as s:
        assert s._cached_request("GET", url, {}).headers["Accept"] == "x"


# -- a hit's short ways: the same decisions, fewer steps ------------------------------------
async def test_a_plain_hit_read_without_waiting_makes_no_driver_coroutine(
        origin: Origin, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A plain request seen before whose entry is read without waiting (memory; SQLite's
    inline read) is answered by serve_inline: no fetch() coroutine, the hit counted."""
    import aiocache_http.session as session_module
    from aiocache_http.backends.sqlite import SQLiteBackend

    real_fetch = session_module.fetch
    fetched: list[str] = []

    async def counted_fetch(*args: object, **kwargs: object) -> object:
        fetched.append("fetch")
        return await real_fetch(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(session_module, "fetch", counted_fetch)
    url = origin.url("/r/inline-hit")
    for backend in (CacheBackend(), SQLiteBackend(tmp_path / "inline.sqlite")):
        async with CachedClientSession(cache=backend, expire_after=60) as s:
            for _ in range(2):  # a miss, then a hit that makes the plan memo
                async with s.get(url) as r:
                    await r.read()
            fetched.clear()
            hits = backend.stats.hits
            for _ in range(3):
                async with s.get(url) as r:
                    assert r.from_cache and await r.read()
            assert fetched == [] and backend.stats.hits == hits + 3
    assert origin.count("/r/inline-hit") == 2


@pytest.mark.parametrize(("kind", "most"), [("memory", 16), ("sqlite", 18)])
async def test_a_repeated_plain_hit_makes_few_python_calls(
        origin: Origin, tmp_path: Path, kind: str, most: int) -> None:
    """The hot hit's Python-level calls, counted (deterministic, unlike its time): the
    request context manager is a class of its own (not aiohttp's generic alias), and a
    fresh verdict made once is reused (no clock reading, no decision built per hit); on
    SQLite the inline read's checks are made in line."""
    import sys

    from aiocache_http.backends.sqlite import SQLiteBackend

    url = origin.url("/r/few-calls")
    backend = CacheBackend() if kind == "memory" else SQLiteBackend(tmp_path / "calls.sqlite")
    async with CachedClientSession(cache=backend) as s:
        async def one() -> bytes:
            async with s.get(url) as r:
                assert r.from_cache or len(calls) == 0
                return await r.read()

        calls: list[str] = []
        for _ in range(3):  # a miss, a hit that makes the plan memo, one making the verdict
            await one()

        def profile(frame: Any, event: str, arg: Any) -> None:
            if event == "call":
                calls.append(frame.f_code.co_qualname if sys.version_info >= (3, 11)
                             else frame.f_code.co_name)

        sys.setprofile(profile)
        try:
            body = await one()
        finally:
            sys.setprofile(None)
        assert body and s.cache.stats.hits == 3
    # Before this round: 26 on memory, 21 on SQLite. No longer called per hit: utcnow,
    # on_lookup, _fresh_or_not, Serve.__init__, Outcome.__init__, _counted_hit, the
    # response's __aenter__/__aexit__, _respond, _init, CacheBackend.disabled,
    # CookieJar.__len__; on SQLite _pending, _Handle.current, the reader, decode_value.
    # (The generic alias's extra C work is no Python call: see the test below.)
    assert len(calls) <= most, calls
    for name in ("on_lookup", "_fresh_or_not", "utcnow", "CachedClientResponse.__aenter__",
                 "CachedClientResponse.__aexit__", "_respond", "_init", "disabled", "__len__",
                 "_pending", "current", "reader", "decode_value"):
        assert not any(c.endswith(name) for c in calls), calls


async def test_session_get_answers_with_a_concrete_class() -> None:
    """get() & co. answer with aiohttp's request context manager, as a concrete class: a
    generic alias call sets __orig_class__ on the slotted object, an AttributeError made
    and dropped per request."""
    from aiohttp.client import _BaseRequestContextManager

    async with CachedClientSession(cache=CacheBackend()) as s:
        for call in (s.get("http://x.test/"), s.head("http://x.test/"), s.post("http://x.test/"),
                     s.request("GET", "http://x.test/"), s.delete("http://x.test/"),
                     s.put("http://x.test/"), s.patch("http://x.test/"), s.options("http://x.test/")):
            assert isinstance(call, _BaseRequestContextManager)
            assert type(call).__module__ == "aiocache_http.session" and not hasattr(call, "__dict__")
            call.close()  # never awaited: nothing sent


async def test_replay_and_the_constructor_set_every_slot(origin: Origin) -> None:
    """replay() sets the response's slots itself (inline, every hit), as the constructor
    does: none is left unset by either way."""
    url = origin.url("/r/slots")
    async with CachedClientSession(cache=CacheBackend()) as s:
        for _ in range(3):
            async with s.get(url) as replayed:
                await replayed.read()
    assert replayed.from_cache
    made = CachedClientResponse(method="GET", reason="OK", status=200, url=URL(url), body=b"x")
    for response in (replayed, made):
        assert all(hasattr(response, name) for name in CachedClientResponse.__slots__)


async def test_a_fresh_verdict_with_cache_control_shows_each_hits_age(origin: Origin) -> None:
    """With cache_control the verdict is reused too (on_lookup is not called again), and
    each hit's Age is its own, to the second (RFC 9111 §4.2.3, §5.1); it ends at expiry."""
    import sys

    clock = origin.clock  # the origin's Date and the backend agree
    backend = CacheBackend()
    backend.clock = clock
    url = origin.url("/r/aged?h_Cache-Control=max-age%3D60")
    async with CachedClientSession(cache=backend, cache_control=True) as s:
        async def age() -> str | None:
            async with s.get(url) as r:
                await r.read()
                return r.headers.get("Age") if r.from_cache else None

        assert await age() is None
        assert await age() == "0" and await age() == "0"
        clock.advance(10)
        called: list[str] = []

        def profile(frame: Any, event: str, arg: Any) -> None:
            if event == "call":
                called.append(frame.f_code.co_name)

        sys.setprofile(profile)
        try:
            assert await age() == "10"
        finally:
            sys.setprofile(None)
        assert "on_lookup" not in called and "age_at" in called
        clock.advance(5)  # (whole seconds: the origin's Date has no fraction, the clock has)
        assert await age() == "15"
        clock.advance(45.5)  # 60.5 s old: stale
        assert await age() is None
    assert origin.count("/r/aged") == 2


async def test_a_fresh_verdict_ends_with_the_entry(origin: Origin) -> None:
    """A fresh verdict reused across hits ends when the entry expires (the backend's
    clock), is deleted, or is replaced; per-URL settings and Cache-Status still apply."""
    from .origin import Clock

    clock = Clock()
    backend = CacheBackend()
    backend.clock = clock
    url = origin.url("/r/verdict")
    async with CachedClientSession(cache=backend, expire_after=60) as s:
        async def status() -> tuple[bool, bytes]:
            async with s.get(url) as r:
                return r.from_cache, await r.read()

        assert not (await status())[0]
        for _ in range(3):
            assert (await status())[0]
        clock.advance(59)
        assert (await status())[0]
        clock.advance(2)  # expired: the verdict made before does not hold
        assert not (await status())[0]
        assert (await status())[0]
        await s.cache.clear()  # deleted: gone, whatever the verdict said
        assert not (await status())[0]
        memo = next(iter(s._plans.values()))
        assert memo.hit.last is None  # the deleted entry is not kept alive by its verdict
        assert (await status())[0]
        async with s.get(url, refresh=True) as r:  # replaced: the new entry is served
            await r.read()
        replaced = await s.cache.get_response(r.cache_key)
        async with s.get(url) as r:
            assert r.from_cache and r._cached is replaced._cached
        s.settings.expire_after = 1  # a settings change reaches the request (version)
        async with s.get(url, refresh=True) as r:
            await r.read()
        clock.advance(2)
        assert not (await status())[0]
        s.settings.cache_status_header = True
        async with s.get(url) as r:
            assert r.from_cache and "hit" in r.headers["Cache-Status"]
    assert origin.count("/r/verdict") == 6


async def test_a_plain_redis_hit_is_served_before_the_full_way(
        origin: Origin, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """On storage read with IO (Redis), a plain fresh hit nobody listens to is decided
    from the first read in fetch() itself: the full way (_Run.execute) is not taken; a
    miss and a stale entry still are."""
    import uuid

    from aiocache_http import driver
    from aiocache_http.backends.redis import RedisBackend

    executed: list[str] = []
    real_execute = driver._Run.execute

    async def counted_execute(self: object, *args: object) -> object:
        executed.append("execute")
        return await real_execute(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(driver._Run, "execute", counted_execute)
    backend = RedisBackend(f"short-{uuid.uuid4().hex[:6]}", redis_server.url)
    backend.clock = origin.clock  # fresh until moved on (1 s of the wall clock ran out under load)
    url = origin.url("/r/redis-short")
    async with CachedClientSession(cache=backend, expire_after=1) as s:
        async with s.get(url) as r:
            await r.read()
        assert executed == ["execute"]  # the miss
        for _ in range(3):
            async with s.get(url) as r:
                assert r.from_cache and await r.read()
        assert executed == ["execute"] and backend.stats.hits == 3
        origin.clock.advance(1.1)  # stale now: revalidated the full way
        async with s.get(url) as r:
            await r.read()
        assert executed == ["execute", "execute"]
    assert origin.count("/r/redis-short") == 2


async def _three_hot_hits(s: CachedClientSession, url: str, log: list[Any]) -> None:
    """Make ``url``'s key hot (a miss, then a hit read the full way), clear ``log``, then
    three hits, each from the cache with its body."""
    for _ in range(2):
        async with s.get(url) as r:
            await r.read()
    log.clear()
    for _ in range(3):
        async with s.get(url) as r:
            assert r.from_cache and await r.read()


async def test_a_hot_redis_hit_is_one_gated_read_shared_by_concurrent_lookups(
        origin: Origin, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """A plain hit on a Redis key read before is one GET straight from fetch() (no
    get_record, no shared-read layer); concurrent hits of that key still share the one GET;
    a hot key deleted since is read again the full way (then a miss: one origin request)."""
    import uuid

    from aiocache_http.backends.base import CacheBackend as Base
    from aiocache_http.backends.redis import RedisBackend, RedisCache

    calls: list[str] = []
    real_get_record = Base.get_record
    real_read_bytes, real_read_hot_bytes = RedisCache.read_bytes, RedisCache.read_hot_bytes

    def counted_get_record(self: Base, *args: object, **kwargs: object) -> object:
        calls.append("get_record")
        return real_get_record(self, *args, **kwargs)  # type: ignore[arg-type]

    def counted_read_bytes(self: RedisCache, key: str) -> object:
        calls.append("GET")
        return real_read_bytes(self, key)

    def counted_read_hot_bytes(self: RedisCache, key: str) -> object:
        calls.append("GET")
        return real_read_hot_bytes(self, key)

    monkeypatch.setattr(Base, "get_record", counted_get_record)
    monkeypatch.setattr(RedisCache, "read_bytes", counted_read_bytes)
    monkeypatch.setattr(RedisCache, "read_hot_bytes", counted_read_hot_bytes)
    backend = RedisBackend(f"hot-{uuid.uuid4().hex[:6]}", redis_server.url)
    url = origin.url("/r/redis-hot")
    async with CachedClientSession(cache=backend, expire_after=60) as s:
        await _three_hot_hits(s, url, calls)
        assert calls == ["GET"] * 3 and backend.stats.hits == 4

        async def hit() -> bool:
            async with s.get(url) as r:
                await r.read()
                return r.from_cache

        calls.clear()
        assert all(await asyncio.gather(*(hit() for _ in range(20))))
        assert calls.count("GET") == 1  # the others joined it (through get_record)
        assert backend.stats.hits == 24

        await backend.raw_responses.clear()  # gone behind the cache's back
        calls.clear()
        async with s.get(url) as r:
            assert not r.from_cache and await r.read()
        assert calls[:2] == ["GET", "get_record"]  # then the script: the alias, or a miss
        assert calls.count("GET") == 1  # dropped from the hot keys: not read by GET again
    assert origin.count("/r/redis-hot") == 2


def test_a_memo_keeps_its_hot_entries_through_a_stream_of_new_ones() -> None:
    """Memo: entries used since its last turn survive the next; its size stays bounded."""
    from aiocache_http.memo import Memo

    memo: Memo[str, int] = Memo(100)
    for i in range(40):
        memo = memo.with_entry(f"hot{i}", i)
    for round_ in range(20):  # 40 hot keys used each round, 30 new ones: 640 keys in all
        for i in range(40):
            assert memo[f"hot{i}"] == i, (round_, i)
        for i in range(30):
            memo = memo.with_entry(f"new{round_}-{i}", i)
        assert len(memo) <= 100 and len(memo.previous) <= 100
    assert memo["never"] is None
    with pytest.raises(ValueError, match="at least 2"):
        Memo(1)


async def test_a_working_set_above_the_memo_size_keeps_its_hot_plans(
        origin: Origin, monkeypatch: pytest.MonkeyPatch) -> None:
    """The plain-request memo keeps the URLs in use when more URLs than it holds go by
    (it used to start over: every hot URL parsed and planned again)."""
    from aiocache_http import session as session_module

    monkeypatch.setattr(session_module, "_URL_MEMO_SIZE", 32)  # (read when a session starts)
    async with CachedClientSession(cache=CacheBackend(), expire_after=60) as s:
        hot = [origin.url(f"/r/hot-plan-{i}") for i in range(8)]
        for url in hot:  # seen twice: planned
            for _ in range(2):
                async with s.get(url) as r:
                    await r.read()
        for i in range(64):  # twice as many other URLs as the memo holds, each seen twice
            for _ in range(2):
                async with s.get(origin.url(f"/r/once-plan-{i}")) as r:
                    await r.read()
            if i % 8 == 0:
                for url in hot:  # the hot URLs stay in use
                    async with s.get(url) as r:
                        assert r.from_cache
        assert all(s._plans["GET", url, True] is not None for url in hot)
        assert len(s._plans) <= 32 and len(s._plans.previous) <= 32


async def test_a_hot_redis_read_uses_a_held_connection_and_survives_losing_it(
        origin: Origin, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a client the backend created, a hot key is read on the connection it keeps for
    hot reads (not through execute_command); when the server drops that connection, the
    next hot read is retried the usual way and still a hit; a user's client is left as is."""
    import uuid

    import redis.asyncio

    from aiocache_http.backends.redis import RedisBackend

    commands: list[tuple[object, ...]] = []
    real_execute = redis.asyncio.Redis.execute_command

    async def counted(self: redis.asyncio.Redis, *args: object, **options: object) -> object:
        commands.append(args)
        return await real_execute(self, *args, **options)  # type: ignore[no-untyped-call]

    monkeypatch.setattr(redis.asyncio.Redis, "execute_command", counted)
    for layout in ("keys", "hash"):
        backend = RedisBackend(f"held-{uuid.uuid4().hex[:6]}", redis_server.url, layout=layout,
                               ttl=False)
        url = origin.url(f"/r/redis-held-{layout}")
        async with CachedClientSession(cache=backend, expire_after=60) as s:
            await _three_hot_hits(s, url, commands)
            assert commands == []  # one held connection: no execute_command
            admin = redis.asyncio.Redis.from_url(redis_server.url)
            await real_execute(admin, "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
            await admin.aclose()
            async with s.get(url) as r:  # the held connection is gone: retried, still a hit
                assert r.from_cache and await r.read()
            async with s.get(url) as r:  # and connected again for the next
                assert r.from_cache and await r.read()
            assert backend.stats.hits == 6 and backend.health.errors == 0
        assert origin.count(f"/r/redis-held-{layout}") == 1
    user_client = redis.asyncio.Redis.from_url(redis_server.url)
    backend = RedisBackend(f"held-{uuid.uuid4().hex[:6]}", connection=user_client, ttl=False)
    url = origin.url("/r/redis-held-user")
    async with CachedClientSession(cache=backend, expire_after=60) as s:
        for _ in range(3):
            async with s.get(url) as r:
                await r.read()
        assert not backend.raw_responses._held  # the user's pool is theirs
    await user_client.aclose()


async def test_a_request_is_keyed_once(origin: Origin) -> None:
    """The key of a request not seen before is worked out once (not found again in the
    backend's memo by the decision core); a disabled cache works out none."""
    keyed: list[str] = []
    async with CachedClientSession(cache=CacheBackend()) as session:
        identify = session.cache.identify

        def counted(request: CachedRequest, keep: bool = True) -> tuple[str, CachedRequest]:
            keyed.append(request.url)
            return identify(request, keep)

        session.cache.identify = session.cache.identify_bound = counted  # type: ignore[method-assign]
        for path in ("/r/keyed-1", "/r/keyed-2"):
            async with session.get(origin.url(path), params={"a": "1"}) as r:
                await r.read()
        assert keyed == [origin.url("/r/keyed-1?a=1"), origin.url("/r/keyed-2?a=1")]
        async with session.disabled(), session.get(origin.url("/r/keyed-3")) as r:
            await r.read()
        assert len(keyed) == 2
        async with session.get(origin.url("/r/keyed-1"), params={"a": "1"}) as r:
            assert r.from_cache  # type: ignore[attr-defined]
        assert origin.counts["/r/keyed-1"] == 1
