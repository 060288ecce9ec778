"""Issue 17's guarantees on the fast lanes, not only through the decoder.

A repeated plain GET is answered without the full way: the session's plan memo and
``serve_inline`` (memory, SQLite's inline read, on the async session and on the sync
session's calling thread), the Redis hot lane (``RedisBackend._get_hot``, a key read
before). test_corruption.py fuzzes what ``get_record`` makes of hostile bytes; here the
same bytes are read by a *warm* lane, as a caller would meet them: whatever a storage
holds, the caller gets the origin's body for its URL (a hit, or a miss that fetches it
again), never an exception, never another URL's body.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiocache_http import CacheBackend, CachedClientSession, CachedRequest
from aiocache_http.backends.base import BaseCache
from aiocache_http.models import CachedResponse
from aiocache_http.serializers import Serializer
from aiocache_http.serializers.envelope import EnvelopeFormat
from aiocache_http.sync import CachedSession

from ..backends import FACTORIES
from ..origin import Origin
from .test_credentials import BACKENDS, WAYS, Client, Creds, _files, raw_storage, user

# aiohttp 3.14 deprecates auth=BasicAuth(...); users still pass it, so it is tested.
pytestmark = pytest.mark.filterwarnings("ignore:.*BasicAuth|.*'auth' parameter:DeprecationWarning")
T = TypeVar("T")
PATIENT = {"backend_timeout": 30.0, "write_timeout": 30.0}
SECRETS: dict[str, bytes | None] = {"checksum": None, "signed": b"s3cret"}
FUZZ = settings(max_examples=25, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
# (backend, session): the lanes a warm plain GET takes there
LANES = [("memory", "async"), ("sqlite", "async"), ("redis", "async"), ("redis-keys", "async"),
         ("filesystem", "async"), ("memory", "sync"), ("sqlite", "sync"), ("redis", "sync")]


class Lane:
    """A backend, a session of one kind over it, and a loop of our own for raw storage
    calls (the origin runs in its own thread: hypothesis calls the test many times)."""

    def __init__(self, backend: CacheBackend, kind: str) -> None:
        self.backend, self.kind = backend, kind
        self.loop = asyncio.new_event_loop()
        self.session: CachedClientSession | None = None
        self.sync: CachedSession | None = None
        if kind == "async":
            self.session = self.run(self._open())
        else:
            self.sync = CachedSession(backend=backend, autoclose=False)

    async def _open(self) -> CachedClientSession:
        return CachedClientSession(cache=self.backend, autoclose=False)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def get(self, url: str) -> tuple[bytes, bool, str | None]:
        """(body, from_cache, cache_key), as the caller sees them."""
        if self.sync is not None:
            r = self.sync.get(url)
            return r.content, bool(r.from_cache), getattr(r, "cache_key", None)
        assert self.session is not None
        session = self.session

        async def get() -> tuple[bytes, bool, str | None]:
            async with session.get(url) as r:
                return await r.read(), bool(r.from_cache), r.cache_key

        return self.run(get())

    def close(self) -> None:
        if self.sync is not None:
            self.sync.close()
        if self.session is not None:
            self.run(self.session.close())
        self.run(self.backend.close())
        self.loop.close()


def path_in(body: bytes) -> str | None:
    try:
        return str(json.loads(body)["path"])
    except (ValueError, KeyError, TypeError):
        return None


@pytest.fixture(params=[(b, k, s) for b, k in LANES for s in sorted(SECRETS)],
                ids=lambda p: "-".join(p))
def lane(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Lane]:
    name, kind, secret = request.param
    backend = FACTORIES[name](request, tmp_path, {"secret_key": SECRETS[secret], **PATIENT})
    made = Lane(backend, kind)
    made.run(backend.clear())
    try:
        yield made
    finally:
        made.close()


def warm(lane: Lane, url: str) -> str:
    """``url`` stored and answered by the warm lane (its plan memo, inline or hot read)."""
    for _ in range(5):
        _, hit, key = lane.get(url)
        if hit and key:
            return key
    raise AssertionError(f"{url} is not a hit")


def _flip(item: bytes, index: int, bit: int) -> bytes:
    flipped = bytearray(item)
    flipped[index % len(flipped)] ^= 1 << bit
    return bytes(flipped)


@st.composite
def item_mutations(draw: st.DrawFn) -> tuple[str, Any]:
    """(kind, f(item, other item, key, other key) -> the bytes stored at key)."""
    kind = draw(st.sampled_from(["flip", "truncate", "extend", "swap", "replace", "forge-here",
                                 "forge-other-key", "forge-other-secret"]))
    if kind == "flip":
        position, bit = draw(st.integers(0, 10**6)), draw(st.integers(0, 7))
        return kind, lambda item, other, key, other_key: _flip(item, position, bit)
    if kind == "truncate":
        n = draw(st.integers(0, 10**6))
        return kind, lambda item, other, key, other_key: item[: n % len(item)]
    if kind == "extend":
        junk = draw(st.binary(min_size=1, max_size=32))
        return kind, lambda item, other, key, other_key: item + junk
    if kind == "swap":
        return kind, lambda item, other, key, other_key: other
    if kind == "replace":
        junk = draw(st.binary(max_size=300))
        return kind, lambda *_: junk
    secrets = [b"not the secret"] if kind == "forge-other-secret" else None
    forger = Serializer(EnvelopeFormat(), secrets)

    def forge(item: bytes, other: bytes, key: str, other_key: str) -> bytes:
        forged = CachedResponse(200, "OK", "http://x.test/", {"Content-Type": "application/json"},
                                b'{"path": "/forged"}', CachedRequest("GET", "http://x.test/"))
        return forger.dumps(forged, other_key if kind == "forge-other-key" else key)

    return kind, forge


def raw_write(lane: Lane, storage: BaseCache, key: str, value: bytes) -> None:
    lane.run(storage.write(key, value))


def raw_read(lane: Lane, storage: BaseCache, key: str) -> bytes:
    value = lane.run(storage.read(key))
    assert isinstance(value, bytes), value
    return value


@FUZZ
@given(mutation=item_mutations())
def test_hostile_items_on_the_warm_lanes(lane: Lane, thread_origin: Origin,
                                         mutation: tuple[str, Any]) -> None:
    kind, mutate = mutation
    if kind == "forge-here" and not lane.backend.serializer.integrity.signed:
        return  # without a secret, a well-formed item at its own key is no forgery
    a, b = thread_origin.url("/r/lane-a"), thread_origin.url("/r/lane-b")
    key, other_key = warm(lane, a), warm(lane, b)
    storage = lane.backend.raw_responses
    item, other = raw_read(lane, storage, key), raw_read(lane, storage, other_key)
    bad = mutate(item, other, key, other_key)
    raw_write(lane, storage, key, bad)
    for n in range(2):  # the warm lane, then whatever it left behind (its memos)
        body, hit, _ = lane.get(a)
        assert path_in(body) == "/r/lane-a", f"{kind}: {body[:80]!r} served for {a}"
        assert n or not hit or bad == item, f"{kind}: a tampered item was served"
    warm(lane, a)  # and the cache works again


@st.composite
def alias_mutations(draw: st.DrawFn) -> tuple[str, Any]:
    kind = draw(st.sampled_from(["garbage", "flip", "truncate", "plain-key", "other-alias", "non-utf8"]))
    if kind == "garbage":
        junk = draw(st.binary(max_size=100))
        return kind, lambda *_: junk
    if kind == "flip":
        position, bit = draw(st.integers(0, 10**6)), draw(st.integers(0, 7))
        return kind, lambda item, other, other_target: _flip(item, position, bit)
    if kind == "truncate":
        n = draw(st.integers(0, 10**6))
        return kind, lambda item, other, other_target: item[: n % len(item)]
    if kind == "plain-key":  # the old, untagged format pointing at another URL's entry
        return kind, lambda item, other, other_target: other_target.encode()
    if kind == "non-utf8":
        tail = draw(st.binary(max_size=20))
        return kind, lambda *_: b"\xff\xfe" + tail
    return kind, lambda item, other, other_target: other  # another URL's alias, copied here


@FUZZ
@given(mutation=alias_mutations())
def test_hostile_aliases_on_the_warm_lanes(lane: Lane, thread_origin: Origin,
                                           mutation: tuple[str, Any]) -> None:
    """A lookup that finds no response at its key follows the redirect alias stored there
    (a redirect hop's key -> the response's). With the response gone, a hostile alias at
    the key is a miss, never the body of the URL it was made to point at."""
    kind, mutate = mutation
    a, b = thread_origin.url("/redirect/alias-a"), thread_origin.url("/redirect/alias-b")
    key, other_key = warm(lane, a), warm(lane, b)
    aliases = lane.backend.raw_redirects
    item, other = raw_read(lane, aliases, key), raw_read(lane, aliases, other_key)
    bad = mutate(item, other, other_key)
    lane.run(lane.backend.raw_responses.delete(key))
    raw_write(lane, aliases, key, bad)
    for n in range(2):
        body, hit, _ = lane.get(a)
        assert path_in(body) == "/r/alias-a", f"{kind}: {body[:80]!r} served for {a}"
        assert n or not hit, f"{kind}: a tampered alias was followed"
    warm(lane, a)


async def _keys(storage: BaseCache) -> list[str]:
    return [k async for k in storage.iter_keys()]


# -- credentials on the warm lanes ---------------------------------------------------------
# test_credentials.py sends every request with its keyword arguments, so none of them takes
# the plan memo (a plain request: no keywords). Here the session-level ways (and a URL's
# userinfo) are sent as plain requests, many times, so every hit after the first is served
# by the warm lane, and concurrently, so that a user's requests coalesce.

MEMO_WAYS = [w for w in WAYS if w.session_level or w.name == "url-userinfo"]


async def plain_get(client: Client, url: str) -> tuple[bytes, bool]:
    if client.kind == "async":
        async with client.aio.get(url) as r:
            return await r.read(), bool(r.from_cache)
    response = await asyncio.to_thread(client.req.get, url)
    return response.content, bool(response.from_cache)


def personal(url: str, creds: Creds) -> str:
    if creds.userinfo is None:
        return url
    user_name, password = creds.userinfo
    return url.replace("http://", f"http://{user_name}:{quote(password)}@")


@pytest.mark.parametrize("kind", ["async", "sync"])
@pytest.mark.parametrize("backend_name", BACKENDS)
async def test_no_bleed_on_the_warm_lanes(backend_name: str, kind: str, origin: Origin, tmp_path: Path,
                                          request: pytest.FixtureRequest) -> None:
    """Users A and B, each with its own session, the same URL as plain requests: in turns
    (the plan memo and the hit memo warm), then all at once on a URL not yet stored (a
    user's requests coalesce; the other user's never join them). B never gets A's body,
    and the raw storage holds neither secret."""
    backend = FACTORIES[backend_name](request, tmp_path, {"autoclose": False, **PATIENT})
    await backend.clear()
    secrets: list[str] = []
    try:
        for way in MEMO_WAYS:
            if kind not in way.clients:
                continue
            a_secret, b_secret = (f"sekrit{uuid.uuid4().hex}" for _ in range(2))
            secrets += [a_secret, b_secret]
            async with user(kind, backend, way, a_secret, origin) as (a, a_creds), \
                       user(kind, backend, way, b_secret, origin) as (b, b_creds):
                where = f"{kind} {way.name}"
                url = origin.url(f"/r/turns-{kind}-{way.name}")
                a_url, b_url = personal(url, a_creds), personal(url, b_creds)
                seen: dict[str, set[bytes]] = {"a": set(), "b": set()}
                for turn in range(6):
                    for name, client, at in (("a", a, a_url), ("b", b, b_url)):
                        body, hit = await plain_get(client, at)
                        seen[name].add(body)
                        assert hit == (turn > 0), f"{where}: {name}'s turn {turn}: from_cache={hit}"
                assert len(seen["a"]) == len(seen["b"]) == 1 and seen["a"] != seen["b"], f"{where}: {seen}"
                url = origin.url(f"/r/together-{kind}-{way.name}?delay=0.3")
                a_url, b_url = personal(url, a_creds), personal(url, b_creds)
                replies = await asyncio.gather(*(plain_get(a, a_url) for _ in range(4)),
                                               *(plain_get(b, b_url) for _ in range(4)))
                a_bodies, b_bodies = {r[0] for r in replies[:4]}, {r[0] for r in replies[4:]}
                assert len(a_bodies) == len(b_bodies) == 1 and a_bodies != b_bodies, \
                    f"{where}: A got {a_bodies}, B got {b_bodies}"
    finally:
        dump = await raw_storage(backend, backend_name, tmp_path, request)
        await backend.close()
    assert dump and secrets
    leaked = [s for s in secrets if s.encode() in dump or base64.b64encode(f"user:{s}".encode()) in dump]
    assert not leaked, f"{len(leaked)} secrets stored in clear"


@pytest.mark.parametrize("first", ["async", "sync"])
async def test_no_bleed_between_the_async_and_the_sync_session_on_one_file(
        first: str, origin: Origin, tmp_path: Path) -> None:
    """An async service and a sync script on one SQLite file (a backend each): for every
    session-level way, the user of one session never gets the other's response, warm lanes
    on both sides; and the file holds neither secret."""
    from aiocache_http.backends.sqlite import SQLiteBackend

    path = tmp_path / "shared.sqlite"
    backends = {kind: SQLiteBackend(path, autoclose=False, **PATIENT) for kind in ("async", "sync")}
    second = "sync" if first == "async" else "async"
    secrets: list[str] = []
    try:
        for way in MEMO_WAYS:
            if second not in way.clients or first not in way.clients:
                continue
            a_secret, b_secret = (f"sekrit{uuid.uuid4().hex}" for _ in range(2))
            secrets += [a_secret, b_secret]
            url = origin.url(f"/r/shared-{first}-{way.name}")
            async with user(first, backends[first], way, a_secret, origin) as (a, a_creds), \
                       user(second, backends[second], way, b_secret, origin) as (b, b_creds):
                a_bodies, b_bodies = set(), set()
                for turn in range(4):
                    body, hit = await plain_get(a, personal(url, a_creds))
                    a_bodies.add(body)
                    assert hit == (turn > 0), f"{way.name}: A's turn {turn}"
                    body, hit = await plain_get(b, personal(url, b_creds))
                    b_bodies.add(body)
                    assert hit == (turn > 0), f"{way.name}: B's turn {turn}: from_cache={hit}"
                assert len(a_bodies) == len(b_bodies) == 1 and a_bodies != b_bodies, way.name
    finally:
        for backend in backends.values():
            await backend.close()
    dump = _files(tmp_path, "shared.sqlite*")
    assert dump and not [s for s in secrets if s.encode() in dump]


@pytest.mark.parametrize("backend_name", BACKENDS)
async def test_a_warm_plan_memo_follows_the_sessions_credentials(
        backend_name: str, origin: Origin, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """One session whose default headers and cookie jar change between plain requests to
    one URL (a user logs in, another takes over the session): the memoized plan of the
    previous identity is never used for the next one."""
    backend = FACTORIES[backend_name](request, tmp_path, {"autoclose": False, **PATIENT})
    await backend.clear()
    url = origin.url(f"/r/identity-{backend_name}")
    async with CachedClientSession(cache=backend, cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
        async def get() -> tuple[bytes, bool]:
            async with s.get(url) as r:
                return await r.read(), bool(r.from_cache)

        bodies: dict[str, bytes] = {}

        async def as_(identity: str) -> None:
            first, hit = await get()
            again, hit_again = await get()
            assert hit_again and again == first, f"{identity}: not cached"
            if identity in bodies:
                assert hit and first == bodies[identity], f"{identity}: lost its entry"
            else:
                assert not hit and first not in bodies.values(), f"{identity}: got {first!r}"
                bodies[identity] = first

        await as_("anonymous")
        s.headers["Authorization"] = "Bearer user-a"
        await as_("a")
        s.headers["Authorization"] = "Bearer user-b"
        await as_("b")
        del s.headers["Authorization"]
        s.headers["X-Auth-Token"] = "token-c"
        await as_("c")
        del s.headers["X-Auth-Token"]
        await as_("anonymous")
        s.cookie_jar.update_cookies({"sid": "user-d"})
        await as_("d")
        s.cookie_jar.clear()
        await as_("anonymous")
        s.headers["Authorization"] = "Bearer user-a"
        await as_("a")
    await backend.close()

