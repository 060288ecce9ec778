"""The sync layer: aiocache_http.sync.CachedSession, install_cache & co., the loop bridge,
requests-cache's names. (The end-to-end suite also runs for the sync session: see the
"sync" client in tests/clients.py.)

Sync-style tests use ``thread_origin``: the local origin on its own loop in a thread,
so a test can block on ``requests`` calls while it serves.
"""

from __future__ import annotations

import asyncio
import faulthandler
import gc
import inspect
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any

import pytest
import requests

import aiocache_http.sync as requests_cache
from aiocache_http import CacheBackend, CachedClientSession
from aiocache_http.backends import BACKEND_CLASSES as ASYNC_BACKEND_CLASSES
from aiocache_http.backends.health import CircuitState
from aiocache_http.backends.sqlite import SQLiteBackend
from aiocache_http.models import CachedResponse as StoredResponse
from aiocache_http.sync import (
    BACKEND_CLASSES,
    CachedResponse,
    CachedSession,
    DictStorage,
    LoopBridge,
    SQLiteDict,
    create_key,
)

from .origin import Origin
from .redis_servers import RedisServer
from .waiting import until, until_sync

BackendMaker = Callable[..., CacheBackend]


def n(response: requests.Response) -> int:
    return int(response.json()["n"])


@pytest.fixture(autouse=True)
def _restore_requests() -> Iterator[None]:
    yield
    requests_cache.uninstall_cache()


# -- requests-cache's "General usage" page, ported: only the imports differ ------------------
def test_general_usage_port(thread_origin: Origin, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the default cache is ./http_cache.sqlite
    url = thread_origin.url("/r/get")

    # Sessions
    from aiocache_http.sync import CachedSession

    session = CachedSession()
    first = session.get(url)
    session.request("GET", url)
    head = session.head(url)
    with session.cache_disabled():
        uncached = session.get(url)
    assert not first.from_cache and head.status_code == 200 and not uncached.from_cache
    assert thread_origin.count("/r/get") == 3  # GET once, HEAD once, disabled once
    assert (tmp_path / "http_cache.sqlite").exists()
    session.cache.clear()
    assert len(session.cache.responses) == 0

    # Patching
    import requests

    import aiocache_http.sync as requests_cache

    requests_cache.install_cache()
    requests.get(url)
    assert requests.get(url).from_cache
    session2 = requests.Session()
    assert session2.get(url).from_cache
    requests_cache.install_cache(expire_after=360, allowable_methods=("GET", "POST"))
    requests.post(url, data=b"x")
    assert requests.post(url, data=b"x").from_cache

    requests_cache.uninstall_cache()
    with requests_cache.enabled():
        requests.get(url)  # Will be cached
        assert requests.get(url).from_cache
    assert not requests_cache.is_installed()
    requests_cache.install_cache()
    with requests_cache.disabled():
        before = thread_origin.count("/r/get")
        requests.get(url)  # Will not be cached
        assert thread_origin.count("/r/get") == before + 1
    assert requests_cache.is_installed()
    requests_cache.clear()
    requests_cache.uninstall_cache()
    plain = requests.get(url)
    assert not hasattr(plain, "from_cache") and not requests_cache.is_installed()

    # Settings
    session = CachedSession()
    session.settings.expire_after = 360
    session.settings.stale_if_error = True
    assert session.settings.expire_after == 360 and session.settings.stale_if_error is True
    with pytest.raises(AttributeError, match="serializer"):
        session.settings.serializer = "pickle"


def test_autoclose_with_a_shared_backend(thread_origin: Origin, redis_server: RedisServer) -> None:
    from aiocache_http.sync import CachedSession, RedisCache

    backend = RedisCache(host="127.0.0.1", port=redis_server.port)
    session1 = CachedSession(backend=backend, autoclose=False)
    session2 = CachedSession(backend=backend, autoclose=False)
    url = thread_origin.url("/r/shared-redis")
    session1.get(url)
    session1.close()
    assert session2.get(url).from_cache and thread_origin.count("/r/shared-redis") == 1
    session2.cache.clear()
    session2.close()


def test_redis_page_examples(thread_origin: Origin, redis_server: RedisServer) -> None:
    """requests-cache's Redis page: by alias with connection kwargs, and connection=Redis()."""
    from redis import Redis

    from aiocache_http.sync import CachedSession, RedisCache

    url = thread_origin.url("/r/redis-page")
    session = CachedSession("http_cache_page", backend="redis", host="127.0.0.1", port=redis_server.port)
    session.get(url)
    connection = Redis(host="127.0.0.1", port=redis_server.port)
    other = CachedSession("http_cache_page", backend=RedisCache("http_cache_page", connection=connection))
    assert other.get(url).from_cache and thread_origin.count("/r/redis-page") == 1
    assert RedisCache(ttl=False).name == "http_cache" and BACKEND_CLASSES["redis"] is RedisCache
    other.cache.clear()
    for s in (session, other):
        s.close()
    connection.close()


# -- requests' environment merge (proxies, CA bundle) -------------------------------------------
class _RecordingAdapter(requests.adapters.HTTPAdapter):
    """Records what requests hands the transport (proxies, verify), then sends directly:
    the proxy named in the environment does not exist."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[Any, Any]] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        self.seen.append((dict(kwargs["proxies"]), kwargs["verify"]))
        return super().send(request, **{**kwargs, "proxies": {}, "verify": True})


def test_environment_merged_for_the_origin_not_for_a_hit(
        thread_origin: Origin, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A hit skips requests' scan of os.environ (it costs more than the hit itself); the
    origin request and the response hooks still get the proxies and CA bundle from it."""
    for name in ("no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "ca.pem"))
    scans: list[str] = []
    environ_proxies = requests.sessions.get_environ_proxies
    monkeypatch.setattr(requests.sessions, "get_environ_proxies",
                        lambda url, no_proxy=None: scans.append(url) or environ_proxies(url, no_proxy))
    adapter = _RecordingAdapter()
    hooked: list[tuple[bool, Any, Any]] = []
    with CachedSession(backend=SQLiteBackend(tmp_path / "env"), expire_after=60) as session:
        session.mount("http://", adapter)
        session.hooks["response"].append(
            lambda r, **kw: hooked.append((r.from_cache, kw["proxies"].get("http"), kw["verify"])))
        url = thread_origin.url("/r/env")
        assert not session.get(url).from_cache
        assert adapter.seen == [({"http": "http://proxy.invalid:3128"}, str(tmp_path / "ca.pem"))]
        assert len(scans) == 1
        session.hooks["response"].clear()
        assert session.get(url).from_cache and len(scans) == 1  # the hit: no scan
        session.hooks["response"].append(
            lambda r, **kw: hooked.append((r.from_cache, kw["proxies"].get("http"), kw["verify"])))
        assert session.get(url).from_cache  # a hook asks for them: merged for it
        assert hooked == [(False, "http://proxy.invalid:3128", str(tmp_path / "ca.pem")),
                          (True, "http://proxy.invalid:3128", str(tmp_path / "ca.pem"))]
        # verify=False is its own key (never the environment's doing), and reaches the origin.
        assert not session.get(url, verify=False).from_cache
        assert adapter.seen[-1][1] is False and thread_origin.count("/r/env") == 2
        # Called directly, the method is requests' own.
        settings = session.merge_environment_settings(url, {}, None, None, None)
        assert settings["proxies"]["http"] == "http://proxy.invalid:3128"
        assert settings["verify"] == str(tmp_path / "ca.pem")


# -- the response ------------------------------------------------------------------------------
def test_response_is_a_requests_response(thread_origin: Origin) -> None:
    hooked: list[bool] = []
    session = CachedSession(backend="memory", expire_after=60)
    session.hooks["response"].append(lambda r, **kw: hooked.append(r.from_cache))
    url = thread_origin.url("/r/resp?x=1")
    live = session.get(url, headers={"Authorization": "Bearer t"})
    hit = session.get(url, headers={"Authorization": "Bearer t"})
    assert isinstance(hit, requests.Response) and isinstance(hit, CachedResponse)
    assert hit.from_cache and not live.from_cache and hooked == [False, True]
    assert hit.json() == live.json() and hit.text == live.text and hit.ok
    assert hit.headers["content-type"] == live.headers["Content-Type"]
    assert hit.encoding == live.encoding == "utf-8"
    assert hit.created_at is not None and hit.expires is not None and not hit.is_expired
    assert hit.cache_key == live.cache_key == create_key(live.request)
    assert hit.request.headers["Authorization"] == "REDACTED"  # the stored request, as requests-cache
    assert hit.elapsed.total_seconds() == 0 and next(iter(hit.iter_content(4))) == hit.content[:4]
    streamed = session.get(url, headers={"Authorization": "Bearer t"}, stream=True)
    assert b"".join(streamed.iter_content(3)) == live.content
    # A different credential is a different entry; the key hashes it, storage redacts it.
    assert not session.get(url, headers={"Authorization": "Bearer u"}).from_cache
    for key in session.cache.responses:
        assert b"Bearer" not in requests_cache.BRIDGE.run(session.backend.raw_responses.read(key))


def test_create_key_matches_both_sessions(thread_origin: Origin) -> None:
    url = thread_origin.url("/r/key?b=2&a=1")
    session = CachedSession(backend="memory", ignored_parameters=["a"])
    response = session.get(url)
    request = requests.Request("GET", url)
    assert create_key(request, ignored_parameters=["a"]) == response.cache_key
    assert create_key(request.prepare(), ignored_params=["a"]) == response.cache_key
    assert session.cache.create_key(request) == response.cache_key
    assert create_key(request) != response.cache_key  # "a" is part of this one

    def key_fn(request: Any, **kwargs: Any) -> str:  # a requests-cache style key_fn
        return "custom-" + create_key(request, **kwargs)

    custom = CachedSession(backend="memory", key_fn=key_fn)
    assert custom.get(url).cache_key.startswith("custom-") and custom.get(url).from_cache


def test_per_request_options(thread_origin: Origin) -> None:
    session = CachedSession(backend="memory", expire_after=3600)
    url = thread_origin.url("/r/opt?etag=v1")
    assert session.get(url, only_if_cached=True).status_code == 504
    session.get(url, expire_after=None)  # requests-cache: None = the session's setting
    assert session.get(url).expires is not None and session.get(url).from_cache
    refreshed = session.get(url, refresh=True)
    assert refreshed.from_cache and thread_origin.count("/r/opt") == 2  # 304
    forced = session.get(url, force_refresh=True)
    assert not forced.from_cache and n(forced) == 3
    prepared = session.prepare_request(requests.Request("GET", url))
    assert session.send(prepared, only_if_cached=True).from_cache


def test_explicit_cookie_header_is_keyed_whatever_its_case(thread_origin: Origin) -> None:
    """Header names are case-insensitive: an explicit ``cookie:`` header is a credential
    in the key like ``Cookie:``, so two users never share an entry."""
    session = CachedSession(backend="memory")
    url = thread_origin.url("/echo")
    for name in ("Cookie", "cookie", "COOKIE"):
        session.cache.clear()
        alice = session.get(url, headers={name: "session=alice"})
        bob = session.get(url, headers={name: "session=bob"})
        assert not bob.from_cache, name
        assert alice.json()["headers"]["Cookie"] == "session=alice"
        assert bob.json()["headers"]["Cookie"] == "session=bob"
        assert session.get(url, headers={name: "session=alice"}).from_cache


def test_multipart_body_is_keyed_without_its_random_boundary(thread_origin: Origin) -> None:
    session = CachedSession(backend="memory", allowable_methods=["GET", "POST"])
    url = thread_origin.url("/r/upload")
    session.post(url, files={"f": ("a.txt", b"hello")})
    assert session.post(url, files={"f": ("a.txt", b"hello")}).from_cache
    assert not session.post(url, files={"f": ("a.txt", b"other")}).from_cache


# -- the async and the sync session on one backend ---------------------------------------------
async def test_cross_compat_both_directions(make_backend: BackendMaker, origin: Origin) -> None:
    backend = make_backend()
    await backend.clear()
    sync = CachedSession(backend=backend, autoclose=False)
    auth = {"Authorization": "Bearer one"}
    async with CachedClientSession(cache=backend, autoclose=False) as aio:
        async with aio.get(origin.url("/r/a2s"), params={"q": "1"}, headers=auth) as r:
            assert not r.from_cache
        hit = await asyncio.to_thread(sync.get, origin.url("/r/a2s"), params={"q": "1"}, headers=auth)
        assert hit.from_cache and origin.count("/r/a2s") == 1

        stored = await asyncio.to_thread(sync.get, origin.url("/r/s2a?q=1"), headers=auth)
        assert not stored.from_cache
        async with aio.get(origin.url("/r/s2a"), params={"q": "1"}, headers=auth) as r:
            assert r.from_cache and await r.read() == stored.content and r.cache_key == stored.cache_key
        assert origin.count("/r/s2a") == 1

        # Both at the same time, from the app loop and from threads through the bridge.
        urls = [origin.url(f"/r/both{i}?delay=0.02") for i in range(5)]

        async def via_async(url: str) -> bytes:
            async with aio.get(url) as r:
                return await r.read()

        def via_sync(url: str) -> bytes:
            return sync.get(url).content

        results = await asyncio.gather(*(via_async(u) for u in urls),
                                       *(asyncio.to_thread(via_sync, u) for u in urls))
        assert all(json.loads(body)["path"].startswith("/r/both") for body in results)
        # Coalescing is per event loop: at most one origin request per URL and loop.
        assert all(origin.count(f"/r/both{i}") <= 2 for i in range(5))
        for url in urls:  # and afterwards both read the one stored entry
            hit = await asyncio.to_thread(sync.get, url)
            async with aio.get(url) as r:
                assert hit.from_cache and r.from_cache and await r.read() == hit.content
    sync.close()


async def test_many_threads_one_session(make_backend: BackendMaker, origin: Origin) -> None:
    """16 threads x 100 GETs on one session: no errors, one origin request per URL."""
    session = CachedSession(backend=make_backend(), autoclose=False)
    urls = [origin.url(f"/r/t{i}?delay=0.05") for i in range(10)]

    def worker(t: int) -> list[int]:
        return [session.get(urls[(t + i) % len(urls)]).status_code for i in range(100)]

    def hammer() -> list[int]:
        with ThreadPoolExecutor(16) as pool:
            return [s for statuses in pool.map(worker, range(16)) for s in statuses]

    statuses = await asyncio.to_thread(hammer)
    assert statuses == [200] * 1600
    assert [origin.count(f"/r/t{i}") for i in range(10)] == [1] * 10
    session.close()


def _needs_the_loop(session: CachedSession, url: str) -> tuple[bool, requests.Response]:
    """Whether ``session.get(url)`` waits for the bridge loop: it is made while that loop
    is blocked (answered within 0.3 s: it did not need it), then the loop is let go."""
    blocked, release = threading.Event(), threading.Event()

    def block() -> None:
        blocked.set()
        release.wait(60)

    requests_cache.BRIDGE.loop().call_soon_threadsafe(block)
    try:
        assert blocked.wait(30)
        with ThreadPoolExecutor(1) as pool:
            call = pool.submit(session.get, url)
            try:
                response = call.result(0.3)
            except FutureTimeout:  # (not the builtin TimeoutError before Python 3.11)
                waited = True
            else:
                return False, response
            release.set()
            return waited, call.result(30)
    finally:
        release.set()


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_a_hit_is_answered_on_the_calling_thread(thread_origin: Origin, tmp_path: Path, kind: str) -> None:
    """A plain hit (memory; SQLite's inline verified read) makes no hop to the bridge
    loop: it is answered while that loop is busy, and counted. A request that needs the
    loop (a listener on events) still goes there."""
    backend = "memory" if kind == "memory" else requests_cache.SQLiteCache(tmp_path / "here")
    session = CachedSession(backend=backend)
    url = thread_origin.url("/r/here")
    first = session.get(url)
    assert not first.from_cache
    stats = session.backend.stats
    assert stats is not None
    hits_before = stats.hits
    for _ in range(3):
        waited, hit = _needs_the_loop(session, url)
        assert not waited and hit.from_cache and hit.content == first.content
    assert stats.hits == hits_before + 3
    heard: list[str] = []
    session.backend.events.subscribe(lambda e: heard.append(str(e.kind)))
    waited, hit = _needs_the_loop(session, url)
    assert waited and hit.from_cache and len(heard) == 1  # its event is emitted on the loop
    session.close()


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_a_request_reads_inline_once(thread_origin: Origin, tmp_path: Path, kind: str) -> None:
    """The calling thread's inline read is the only one: a miss goes to the loop without
    reading inline again there, and a hit needs no second read."""
    backend = "memory" if kind == "memory" else requests_cache.SQLiteCache(tmp_path / "once")
    session = CachedSession(backend=backend)
    session.get(thread_origin.url("/r/warm"))  # the bridge loop runs from here on
    cache = session.backend
    reads: list[str] = []
    read_inline = cache.read_inline

    def counted(key: str, loop: asyncio.AbstractEventLoop | None = None) -> StoredResponse | None:
        reads.append(key)
        return read_inline(key, loop)

    cache.read_inline = counted  # type: ignore[method-assign]
    url = thread_origin.url("/r/once")
    assert not session.get(url).from_cache
    assert len(reads) == 1
    assert session.get(url).from_cache
    assert len(reads) == 2
    session.close()


def test_a_sync_request_is_keyed_once(thread_origin: Origin) -> None:
    """The sync session works a request's key out once (the decision core is handed it,
    not left to find it again in the backend's memo), with the bridge loop running or not."""
    session = CachedSession(backend="memory")
    cache = session.backend
    keyed: list[str] = []
    identify = cache.identify

    def counted(request: Any) -> tuple[str, Any]:
        keyed.append(request.url)
        return identify(request)

    cache.identify = cache.identify_bound = counted  # type: ignore[method-assign]
    for path in ("/r/keyed-1", "/r/keyed-2"):  # the first starts the bridge loop
        assert not session.get(thread_origin.url(path)).from_cache
    assert keyed == [thread_origin.url("/r/keyed-1"), thread_origin.url("/r/keyed-2")]
    assert session.get(thread_origin.url("/r/keyed-1")).from_cache
    assert len(keyed) == 3
    session.close()


def test_a_hit_off_the_loop_keeps_the_loops_rules(thread_origin: Origin, tmp_path: Path) -> None:
    """Off the loop, SQLite's inline read follows the loop's rules, else the request goes
    to the loop: not while the loop's reads circuit is open, nor while another thread
    reads on the shared inline connection (never wait), nor after the file was replaced
    (the loop reopens it)."""
    db = tmp_path / "rules.sqlite"
    session = CachedSession(backend=requests_cache.SQLiteCache(db))
    url = thread_origin.url("/r/rules")
    session.get(url)
    backend = session.backend
    loop = requests_cache.BRIDGE.loop()
    assert _needs_the_loop(session, url)[0] is False
    breaker = backend.health.breaker(loop)
    breaker.reads.state = CircuitState.OPEN
    try:
        assert _needs_the_loop(session, url)[0] is True
    finally:
        breaker.reads.state = CircuitState.CLOSED
    assert _needs_the_loop(session, url)[0] is False
    assert isinstance(backend, SQLiteBackend)
    handle = backend.database.handles[loop]
    with handle.reading:
        waited, hit = _needs_the_loop(session, url)
    assert waited and hit.from_cache  # read the gated way
    other = tmp_path / "other.sqlite"
    sqlite3.connect(other).close()
    os.replace(other, db)
    handle.check_at = 0.0  # due for its check now
    waited, fresh = _needs_the_loop(session, url)
    assert waited and not fresh.from_cache  # the loop found the new (empty) file
    session.close()


async def test_sync_call_inside_a_running_loop(thread_origin: Origin) -> None:
    """Legacy code called from ``async def``: blocks this loop, but never deadlocks."""
    session = CachedSession(backend="memory")
    faulthandler.dump_traceback_later(30, exit=True)  # a deadlock fails loudly, not forever
    try:
        first = session.get(thread_origin.url("/r/in-loop"))
        second = session.get(thread_origin.url("/r/in-loop"))
        assert len(session.cache.responses) == 1
        session.close()
    finally:
        faulthandler.cancel_dump_traceback_later()
    assert (first.from_cache, second.from_cache) == (False, True)
    await asyncio.sleep(0)  # this loop still runs


def test_cache_disabled_is_per_thread(thread_origin: Origin) -> None:
    session = CachedSession(backend="memory")
    url = thread_origin.url("/r/per-thread")
    session.get(url)
    with session.cache_disabled():
        assert not session.get(url).from_cache
        with ThreadPoolExecutor(1) as pool:
            assert pool.submit(session.get, url).result().from_cache
    assert session.get(url).from_cache


def test_sync_call_from_the_bridge_loop_is_refused(thread_origin: Origin) -> None:
    session = CachedSession(backend="memory")
    session.settings.filter_fn = lambda r: len(session.cache.responses) >= 0
    with pytest.raises(RuntimeError, match="bridge loop"):
        session.get(thread_origin.url("/r/reentrant"))


def test_a_refused_call_leaves_no_coroutine_unawaited() -> None:
    """A sync cache call made on the bridge loop is refused before any storage coroutine
    is made: none is left to warn "coroutine ... was never awaited" at a later gc (which
    pytest pins on whichever test is running then)."""
    session = CachedSession(backend="memory")
    cache = session.cache
    calls: list[Callable[[], object]] = [
        lambda: len(cache.responses), lambda: bool(cache.redirects), lambda: cache.responses.get("k"),
        lambda: cache.contains(key="k"), lambda: cache.get_response("k"), lambda: list(cache.filter()),
        lambda: cache.has_url("http://127.0.0.1/x"),
    ]

    async def on_the_bridge() -> list[str]:
        refused = []
        for call in calls:
            with pytest.raises(RuntimeError, match="bridge loop") as e:
                call()
            refused.append(str(e.value))
        return refused

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert len(requests_cache.BRIDGE.run(on_the_bridge())) == len(calls)
        gc.collect()
    assert not [str(w.message) for w in caught if "never awaited" in str(w.message)]
    session.close()


# -- session.cache, storages, backends ------------------------------------------------------
def test_session_cache_is_synchronous(thread_origin: Origin) -> None:
    session = CachedSession(backend="memory")
    urls = [thread_origin.url(f"/r/c{i}") for i in range(3)]
    for url in urls:
        session.get(url)
    cache = session.cache
    assert isinstance(cache, requests_cache.BaseCache) and len(cache.responses) == 3
    keys = list(cache.responses.keys())
    assert len(keys) == 3 and keys[0] in cache.responses and cache.responses.contains(keys[0])
    assert cache.contains(url=urls[0]) and cache.has_url(urls[0]) and len(cache.get_urls()) == 3
    stored = cache.get_response(keys[0])
    assert stored is not None and stored.status_code == 200 and stored.from_cache
    cache.delete(urls=[urls[0]])
    assert not cache.has_url(urls[0]) and len(cache.responses) == 2
    cache.delete(requests=[requests.Request("GET", urls[1])])
    assert len(cache.responses) == 1
    cache.delete(expired=True)
    assert len(cache.responses) == 1
    cache.clear()
    assert len(cache.responses) == 0 and len(cache.redirects) == 0


def test_storage_views(tmp_path: Path, redis_server: RedisServer, redis_server_hfe: RedisServer) -> None:
    from aiocache_http.sync import RedisDict, RedisHashDict

    views = [DictStorage(), SQLiteDict(tmp_path / "d.sqlite", "t"),
             RedisDict("views", "a", redis_server.url), RedisHashDict("views", "b", redis_server_hfe.url)]
    for view in views:
        view.clear()
        view["k"] = b"\x00v"
        view["s"] = "text"  # values come back as written (a storage on its own holds any)
        assert view["k"] == b"\x00v" and view.read("s") == "text" and len(view) == 2
        assert sorted(view) == ["k", "s"] and "k" in view and "nope" not in view
        assert dict(view.items()) == {"k": b"\x00v", "s": "text"}
        del view["k"]
        with pytest.raises(KeyError):
            del view["k"]
        with pytest.raises(KeyError):
            view["k"]
        view.update({"a": b"1", "b": b"2"})
        assert len(view) == 3
        view.clear()
        assert len(view) == 0
        view.close()


def test_requests_cache_backend_names(tmp_path: Path) -> None:
    from aiocache_http.sync import SQLiteCache

    backend = SQLiteCache(tmp_path / "named", use_memory=False)
    assert isinstance(backend.backend, SQLiteBackend) and isinstance(backend, requests_cache.BaseCache)
    assert backend.db_path == tmp_path / "named.sqlite"
    assert BACKEND_CLASSES["sqlite"] is SQLiteCache and BACKEND_CLASSES["memory"] is requests_cache.BaseCache
    session = CachedSession(tmp_path / "by_alias", backend="sqlite", wal=True, busy_timeout=5)
    assert isinstance(session.cache, SQLiteCache) and session.cache.db_path.name == "by_alias.sqlite"
    session.close()
    for alias, name in [("filesystem", "FileCache"), ("mongodb", "MongoCache"),
                        ("gridfs", "GridFSCache"), ("dynamodb", "DynamoDbCache")]:
        if alias in ASYNC_BACKEND_CLASSES:  # over the async backend of that name
            assert getattr(requests_cache, name)._alias in (alias, "mongodb")
        else:  # not there: fails when used, naming it
            with pytest.raises(ImportError, match=name):
                getattr(requests_cache, name)


def test_backend_specific_name_argument(tmp_path: Path) -> None:
    """The seeds' example: the backend's own name for the cache (``table_name=``,
    ``db_path=``...) is the one used, not a TypeError."""
    dynamo = CachedSession(cache_name="api_cache", backend="dynamodb", table_name="my-cache-table",
                           region_name="us-west-2")
    assert dynamo.backend.table.name == "my-cache-table"
    sqlite = CachedSession(backend="sqlite", db_path=tmp_path / "own.sqlite")
    assert sqlite.backend.db_path == tmp_path / "own.sqlite"
    sqlite.close()


def test_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown backend 'nosuch'.*sqlite"):
        CachedSession(backend="nosuch")
    with pytest.raises(TypeError, match="backend must be"):
        CachedSession(backend=42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="did you mean 'expire_after'"):
        CachedSession(backend="memory", expire_afer=60)
    backend = CacheBackend()
    session = CachedSession(backend=backend, wal=True, serializer="pickle")  # as requests-cache:
    assert session.backend is backend and session.settings.serializer is None  # already built
    session = CachedSession(backend=backend)
    for name in ("cache", "backend"):
        with pytest.raises(AttributeError, match=f"session.{name}"):
            setattr(session, name, CacheBackend())
    with pytest.raises(TypeError, match=r"session\.settings must be a CacheSettings"):
        session.settings = CacheBackend()  # type: ignore[assignment]  # (CacheSettings(...) replaces)
    with pytest.raises(AttributeError, match="secret_key"):
        session.settings.secret_key = "new"
    with pytest.raises(ValueError, match="not a SQLite database"):
        (tmp_path / "junk.sqlite").write_bytes(b"not sqlite at all")
        CachedSession(tmp_path / "junk.sqlite", backend="sqlite")


def test_settings_only_given_ones_change_a_shared_backend() -> None:
    backend = CacheBackend(expire_after=60, allowed_codes=(200, 404))
    session = CachedSession(backend=backend, cache_control=True)
    assert session.settings.expire_after == 60 and session.settings.allowed_codes == (200, 404)
    assert session.settings.cache_control is True and session.expire_after == 60


def test_a_setting_given_with_its_default_value_is_given() -> None:
    """"Was it given?" is a sentinel, not a comparison with the default value."""
    backend = CacheBackend(expire_after=60, allowed_codes=(200, 404), cache_control=True)
    session = CachedSession(backend=backend, expire_after=-1, allowable_codes=(200,),
                            cache_control=False)
    assert session.settings.expire_after == -1 and session.settings.allowed_codes == (200,)
    assert session.settings.cache_control is False
    shown = inspect.signature(CachedSession).parameters
    assert repr(shown["expire_after"].default) == "-1"  # the table's default, as requests-cache's


# -- autoclose, threads, loops, exit -----------------------------------------------------------
def test_autoclose(thread_origin: Origin, tmp_path: Path) -> None:
    url = thread_origin.url("/r/close")
    backend = SQLiteBackend(tmp_path / "auto.sqlite")
    keeper = CachedSession(backend=backend, autoclose=False)
    keeper.get(url)
    assert len(backend.database.handles) == 1  # the bridge loop's connection
    keeper.close()
    assert len(backend.database.handles) == 1  # still open for the others
    closer = CachedSession(backend=backend)
    assert closer.get(url).from_cache
    closer.close()
    assert backend.database.handles == {}
    backend.settings.autoclose = False  # the backend's own setting is honoured too
    session = CachedSession(backend=backend)
    assert session.get(url).from_cache
    session.close()
    assert len(backend.database.handles) == 1
    requests_cache.BRIDGE.run(backend.close())


def _open_loops() -> int:
    return sum(isinstance(o, asyncio.AbstractEventLoop) and not o.is_closed() for o in gc.get_objects())


def test_no_thread_or_loop_leak(thread_origin: Origin, tmp_path: Path) -> None:
    url = thread_origin.url("/r/leak")
    CachedSession(backend="memory").get(url)  # the bridge is up
    gc.collect()
    threads, loops = threading.active_count(), _open_loops()
    for i in range(30):
        with CachedSession(tmp_path / f"leak{i}", backend="sqlite" if i % 2 else "memory") as session:
            session.get(url)
            session.get(url)
    deadline = time.monotonic() + 5
    while threading.active_count() > threads and time.monotonic() < deadline:
        time.sleep(0.02)  # closed aiosqlite connections end their threads
    gc.collect()
    assert threading.active_count() == threads and _open_loops() == loops
    assert [t.name for t in threading.enumerate()].count("aiocache-http-bridge") == 1


def test_enabled_closes_the_backend_it_built(thread_origin: Origin, tmp_path: Path) -> None:
    """``with enabled(...)`` blocks do not leave a connection (and its thread) behind each."""
    url = thread_origin.url("/r/enabled")
    CachedSession(backend="memory").get(thread_origin.url("/r/warm"))  # the bridge is up
    gc.collect()
    threads = threading.active_count()
    for _ in range(5):
        with requests_cache.enabled(tmp_path / "enabled", backend="sqlite"):
            assert requests.get(url).status_code == 200
    deadline = time.monotonic() + 5
    while threading.active_count() > threads and time.monotonic() < deadline:
        time.sleep(0.02)  # closed aiosqlite connections end their threads
    assert threading.active_count() == threads
    assert thread_origin.count("/r/enabled") == 1  # the file is still the cache
    backend = SQLiteBackend(tmp_path / "given")
    with requests_cache.enabled(backend=backend):
        requests.get(url)
    assert len(backend.database.handles) == 1  # a backend passed in is the caller's to close
    requests_cache.BRIDGE.run(backend.close())


def test_bridge_starts_lazily_and_stops() -> None:
    bridge = LoopBridge()
    assert bridge.thread is None

    async def where() -> str:
        await asyncio.sleep(0)
        return threading.current_thread().name

    assert bridge.run(where()) == "aiocache-http-bridge"
    thread = bridge.thread
    assert thread is not None and thread.daemon and thread.is_alive()
    bridge.stop()
    assert not thread.is_alive() and bridge.thread is None
    assert bridge.run(where()) == "aiocache-http-bridge"  # started again on demand
    bridge.stop()


def test_bridge_hands_back_results_errors_context_and_cancellation() -> None:
    """What a caller gets from the bridge: the result, the coroutine's own error, its
    context variables (changes made there stay there), a CancelledError when the loop
    stops under it; a coroutine that raises after the caller left is not waited for."""
    import concurrent.futures
    import contextvars

    bridge = LoopBridge()
    span: contextvars.ContextVar[str] = contextvars.ContextVar("span", default="none")

    async def seen() -> str:
        value = span.get()
        span.set("changed on the loop")
        return value

    async def fails() -> None:
        raise KeyError("boom")

    token = span.set("caller's")
    try:
        assert bridge.run(seen()) == "caller's" and span.get() == "caller's"
        assert bridge.serve(lambda offload: seen()) == "caller's"
    finally:
        span.reset(token)
    with pytest.raises(KeyError, match="boom"):
        bridge.run(fails())

    async def offloaded(offload: Any) -> int:
        return int(await offload(lambda: threading.current_thread() is threading.main_thread()))

    assert bridge.serve(offloaded) == 1  # blocking work runs in the calling thread

    async def forever() -> None:
        await asyncio.sleep(3600)

    threading.Timer(0.2, bridge.stop).start()
    with pytest.raises(concurrent.futures.CancelledError):
        bridge.run(forever())
    assert bridge.run(seen()) == "none"  # a new loop on demand
    bridge.stop()


def test_use_at_interpreter_exit(thread_origin: Origin, tmp_path: Path) -> None:
    """An unclosed SQLite session does not hang the exit, and the cache still works from
    atexit handlers registered before and after the bridge started."""
    script = textwrap.dedent(f"""
        import atexit
        from aiocache_http.sync import CachedSession

        url = {thread_origin.url('/r/exit')!r}
        session = CachedSession({str(tmp_path / 'exit')!r}, backend="sqlite")
        atexit.register(lambda: print("early", session.get(url, only_if_cached=True).from_cache))
        print("first", session.get(url).from_cache)
        atexit.register(lambda: print("late", session.get(url).from_cache))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:3] == ["first False", "late True", "early True"]
    assert thread_origin.count("/r/exit") == 1


def test_a_refresh_in_flight_at_exit_finishes(thread_origin: Origin, tmp_path: Path) -> None:
    """A script that ends right after a stale-while-revalidate hit (no close()) still gets
    its background refresh stored, as requests-cache's thread pool would, instead of a
    'cannot schedule new futures after interpreter shutdown' warning and a lost refresh."""
    url = thread_origin.url("/r/exit-swr?delay=0.3"
                            "&h_Cache-Control=max-age%3D0%2C%20stale-while-revalidate%3D600")
    script = textwrap.dedent(f"""
        import logging, sys
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
        from aiocache_http.sync import CachedSession

        session = CachedSession({str(tmp_path / 'swr')!r}, backend="sqlite", cache_control=True)
        print(session.get({url!r}).json()["n"], session.get({url!r}).json()["n"])
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "1"]  # a miss, then the stale one while it refreshes
    assert "refresh failed" not in done.stderr, done.stderr
    assert thread_origin.count("/r/exit-swr") == 2
    with CachedSession(tmp_path / "swr", backend="sqlite", cache_control=True) as session:
        (stored,) = session.cache.responses.values()
        assert json.loads(stored.content)["n"] == 2  # the refresh was stored


def test_an_event_stream_read_in_two_threads(thread_origin: Origin) -> None:
    """A second thread subscribing to an event stream gets its own while the first still
    reads it (it used to wait for the first's stream to end), and nothing is stored."""
    session = CachedSession(backend="memory")
    url = thread_origin.url("/events/sync-feed?count=1200")  # a minute long
    first_line, second_done = threading.Event(), threading.Event()
    got: dict[str, str] = {}

    def first() -> None:
        with session.get(url, stream=True) as r:
            lines = r.iter_lines()
            got["first"] = next(line for line in lines if line).decode()
            first_line.set()
            while not second_done.is_set():
                next(lines)

    def second() -> None:
        first_line.wait(20)
        try:
            with session.get(url, stream=True) as r:
                got["second"] = next(line for line in r.iter_lines() if line).decode()
        finally:
            second_done.set()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    second_done.wait(20)
    assert got.get("second") == "data: 2-0", got
    for t in threads:
        t.join(20)
    assert got["first"] == "data: 1-0" and not list(session.cache.responses.keys())
    session.close()


@pytest.mark.parametrize("timeout", [0.5, (5, 0.5)])
def test_a_coalesced_request_keeps_its_read_timeout(thread_origin: Origin, timeout: Any) -> None:
    """A thread waiting for a concurrent request's answer raises requests' ReadTimeout
    once its own read timeout passes with no answer begun, as it would on its own
    connection, while the leader (no timeout) still waits for the origin's 3 s."""
    session = CachedSession(backend="memory")
    url = thread_origin.url("/r/sync-slow-for-some?delay=3")
    leader_started = threading.Event()
    outcome: dict[str, Any] = {}

    def lead() -> None:
        leader_started.set()
        outcome["leader"] = session.get(url).json()["n"]

    def follow() -> None:
        leader_started.wait(20)
        until_sync(lambda: thread_origin.count("/r/sync-slow-for-some") == 1,
                   "the leader's request reached the origin")
        try:
            session.get(url, timeout=timeout)
        except requests.exceptions.ReadTimeout:
            outcome["follower"] = "ReadTimeout, leader " + ("done" if "leader" in outcome else "waiting")

    threads = [threading.Thread(target=lead), threading.Thread(target=follow)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert outcome == {"follower": "ReadTimeout, leader waiting", "leader": 1}
    assert session.get(url).from_cache and thread_origin.count("/r/sync-slow-for-some") == 1
    session.close()


def test_response_pickles(thread_origin: Origin) -> None:
    import pickle

    session = CachedSession(backend="memory")
    session.get(thread_origin.url("/r/pickle"))
    hit = pickle.loads(pickle.dumps(session.get(thread_origin.url("/r/pickle"))))
    assert hit.from_cache and hit.cache_key and json.loads(hit.content)["n"] == 1
    with pytest.raises(NotImplementedError):
        pickle.dumps(session)


async def test_sync_close_while_async_refresh_pending(origin: Origin) -> None:
    """Closing a shared backend from the sync layer leaves another loop's background
    refreshes alone instead of failing with 'attached to a different loop'."""
    backend = CacheBackend(expire_after=0.1, stale_while_revalidate=60)
    url = origin.url("/r/shared-close?hold=refresh")
    origin.release("refresh")  # the first request is answered at once
    async with CachedClientSession(cache=backend) as aio:
        await aio.get(url)
        await asyncio.sleep(0.15)
        origin.gates["refresh"].clear()  # the refresh is kept at the origin until released
        assert (await aio.get(url)).from_cache  # stale: a background refresh is running
        assert backend.background
        sync = CachedSession(backend=backend, autoclose=True)
        await asyncio.to_thread(sync.close)  # closes the backend from the bridge loop
        origin.release("refresh")
        await until(lambda: not backend.background, "the refresh ended")
