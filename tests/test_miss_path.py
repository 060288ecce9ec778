"""The memory miss + store path: what it builds, keeps and calls, counted (issue 20's
miss row). Each test pins a structural saving; the behaviour is the e2e suites'."""

from __future__ import annotations

import dataclasses
import gc
import types
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone

import pytest
from multidict import CIMultiDict

from aiocache_http import CacheBackend, CachedClientSession, CachedRequest
from aiocache_http.models import CachedResponse, Facts, utcnow
from aiocache_http.models.frozen import fast_init
from aiocache_http.policy import core
from aiocache_http.policy.decisions import DontStore, Fetch, Renew, Revalidate, Serve, Store
from aiocache_http.policy.keys import Chunks, hash_key
from aiocache_http.policy.settings import CacheSettings

from .origin import Origin
from .waiting import until


async def test_a_plain_miss_is_memoized_once_in_the_plan_memo(origin: Origin) -> None:
    """A first-seen plain request that stores its response is not memoized at all (a URL
    seen once costs no memo); seen again (a hit), its URL and key are kept by its plan
    memo only (not also in the backend's URL and key memos), and the memo answers from
    then on. A request the plan memo cannot keep (headers given) still memoizes its key.
    Both are hits the second time."""
    async with CachedClientSession(cache=CacheBackend()) as session:
        cache = session.cache
        async with session.get(origin.url("/r/plain-once")) as r:
            await r.read()
        assert len(cache._identities) == 0 and len(cache._urls) == 0
        assert len(session._plans) == 0
        async with session.get(origin.url("/r/plain-once")) as r:
            assert r.from_cache  # type: ignore[union-attr]
        assert len(cache._identities) == 0 and len(cache._urls) == 0
        (memo,) = session._plans.values()
        assert memo.send.parsed is None  # type: ignore[attr-defined]  # (unsent: not kept)
        async with session.get(origin.url("/r/plain-once")) as r:
            assert r.from_cache  # type: ignore[union-attr]
        assert memo.hit.last is not None  # answered by the memo
        for _ in range(2):
            async with session.get(origin.url("/r/with-headers"), headers={"X-A": "1"}) as r:
                await r.read()
        assert len(cache._identities) == 1 and len(cache._urls) == 1
        assert r.from_cache  # type: ignore[union-attr]
        assert origin.counts["/r/plain-once"] == 1 and origin.counts["/r/with-headers"] == 1


async def test_an_answer_not_stored_is_memoized_at_once(origin: Origin) -> None:
    """A plain request whose answer is not stored (here no-store) keeps its plan at once:
    the next one, a miss again, does not work out its key and plan anew."""
    async with CachedClientSession(cache=CacheBackend(), cache_control=True) as session:
        url = origin.url("/r/not-stored?h_Cache-Control=no-store")
        async with session.get(url) as r:
            await r.read()
        assert r.from_cache is False  # type: ignore[union-attr]
        (memo,) = session._plans.values()
        assert memo.request.url == url
        async with session.get(url) as r:
            await r.read()
        assert session._plans["GET", url, True] is memo and origin.counts["/r/not-stored"] == 2


async def test_a_memory_miss_reads_the_clock_twice_and_stores_at_once(origin: Origin) -> None:
    """One reading for the lookup and the request time, one for the response time; the
    body, whole and small, is put in memory at once (no save_response_at())."""
    readings: list[datetime] = []

    def clock() -> datetime:
        readings.append(utcnow())
        return readings[-1]

    class Counted(CacheBackend):
        saves = 0

        async def save_response_at(self, *args: object, **kwargs: object) -> bool:
            Counted.saves += 1
            return await super().save_response_at(*args, **kwargs)  # type: ignore[arg-type]

    cache = Counted()
    cache.clock = clock
    async with CachedClientSession(cache=cache) as session:
        async with session.get(origin.url("/r/clocked")) as r:
            await r.read()
        assert len(readings) == 2 and Counted.saves == 0
        stored = cache.raw_responses.get_item(r.cache_key)  # type: ignore[attr-defined, union-attr]
        assert stored is not None and stored.request_time == readings[0]
        assert stored.response_time == stored.created_at == readings[1]
        assert cache.events.stats is not None and cache.events.stats.stores == 1


async def test_the_plan_memo_keeps_a_sender_without_the_parsed_url(origin: Origin) -> None:
    """The sender a plain request's plan memo keeps lets go of the parsed URL once sent;
    sent again (a revalidation, here a refresh), it sends the URL as given."""
    async with CachedClientSession(cache=CacheBackend(), expire_after=60) as session:
        for _ in range(2):  # (a miss, then a hit: kept)
            async with session.get(origin.url("/r/sender")) as r:
                await r.read()
        (memo,) = session._plans.values()
        assert memo.send.parsed is None  # type: ignore[attr-defined]
        async with session.get(origin.url("/r/sender"), refresh=True) as r:
            assert await r.read() and str(r.url) == origin.url("/r/sender")
        assert origin.counts["/r/sender"] == 2


def test_a_miss_decision_is_made_once() -> None:
    """Nothing stored, nothing asked: the same (immutable) Fetch every time."""
    settings = CacheSettings()
    backend = CacheBackend()
    request = CachedRequest("GET", "http://example.com/a")
    plan = core.plan(request, settings, None, backend.identify)
    first = core.on_lookup(plan, None, utcnow())
    assert type(first) is Fetch and first is core.on_lookup(plan, None, utcnow())
    assert first.why() == "miss: nothing stored"


def test_a_plain_key_hashes_as_its_length_prefixed_parts() -> None:
    """hash_key's one-call ways give the digest of the parts, each after its length."""
    import hashlib

    def reference(parts: list[bytes]) -> str:
        digest = hashlib.sha256()
        for part in parts:
            digest.update(len(part).to_bytes(8, "big"))
            digest.update(part)
        return digest.hexdigest()

    for parts in ([b"GET", b"http://a/", b"", b"", b""], [b"GET", b"http://a/", b"x", b"", b""],
                  [b"vary", b"k\ng"], [b"a", b"b" * (200 * 1024)]):
        assert hash_key(parts) == reference(parts)
    assert hash_key([b"a", Chunks([b"x", b"y"])]) == reference([b"a", b"xy"])


@pytest.mark.parametrize("cls", [CachedResponse, Facts, Store, Fetch, Revalidate, Serve, Renew,
                                 DontStore, core.Received, core.RequestOptions])
def test_fast_init_builds_the_same_frozen_values(cls: type) -> None:
    """fast_init's __init__ binds the setter once (no attribute looked up per field) and
    takes and sets what the dataclass's own would: defaults, factories, frozen."""
    assert "__setattr__" not in cls.__init__.__code__.co_names
    assert "__dataclass_builtins_object__" not in cls.__init__.__code__.co_names
    fields = dataclasses.fields(cls)
    required = [f for f in fields if f.default is dataclasses.MISSING
                and f.default_factory is dataclasses.MISSING]
    samples = {"status": 200, "reason": "OK", "url": "http://a/", "headers": CIMultiDict(),
               "body": b"x", "request": CachedRequest("GET", "http://a/"),
               "request_time": utcnow(), "response_time": utcnow()}
    value = cls(*(samples.get(f.name, f"v-{f.name}") for f in required))
    for f in fields:
        if f.default is not dataclasses.MISSING and f not in required:
            assert getattr(value, f.name) == f.default
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(value, fields[0].name, None)
    changed = dataclasses.replace(value, **{fields[0].name: samples.get(fields[0].name, "other")})
    assert dataclasses.fields(changed) == fields


def test_fast_init_keeps_factories_and_refuses_what_it_does_not_handle() -> None:
    first = CachedResponse(200, "OK", "http://a/", CIMultiDict(), b"", CachedRequest("GET", "http://a/"))
    second = CachedResponse(200, "OK", "http://a/", CIMultiDict(), b"", CachedRequest("GET", "http://a/"))
    assert first.history == () and first.created_at is not second.created_at  # a factory each
    assert abs(first.created_at - datetime.now(timezone.utc)) < timedelta(minutes=1)

    @dataclasses.dataclass(frozen=True)
    class Later:
        a: int

        def __post_init__(self) -> None:
            pass

    with pytest.raises(TypeError, match="fast_init"):
        fast_init(Later)


def test_fast_init_sets_fields_without_a_setattr_call_each() -> None:
    """A frozen value is built with one object.__setattr__ call (its class switched to a
    twin of the same slots, fields assigned plainly, the class switched back), not one
    per field; it is of its class after, frozen. A subclass's instance keeps its class."""
    calls: list[str] = []
    namespace = CachedResponse.__init__.__globals__  # the generated __init__'s own
    setter = namespace["_set"]

    def counted(obj: object, name: str, value: object) -> None:
        calls.append(name)
        setter(obj, name, value)

    request = CachedRequest("GET", "http://a/")
    namespace["_set"] = counted
    try:
        value = CachedResponse(200, "OK", "http://a/", CIMultiDict(), b"x", request)
    finally:
        namespace["_set"] = setter
    assert calls == ["__class__"] and type(value) is CachedResponse
    assert (value.status, value.body, value.request, value.history) == (200, b"x", request, ())
    with pytest.raises(dataclasses.FrozenInstanceError):
        value.status = 404  # type: ignore[misc]
    assert dataclasses.replace(value, status=404).status == 404

    @fast_init
    @dataclasses.dataclass(frozen=True, slots=True)
    class Base:
        a: int
        b: str = "b"

    @dataclasses.dataclass(frozen=True, slots=True)
    class Sub(Base):
        c: int = 0

    sub = Sub(1, "x", 3)
    assert type(sub) is Sub and (sub.a, sub.b, sub.c) == (1, "x", 3)
    base = Base(2)
    assert type(base) is Base and (base.a, base.b) == (2, "b")
    with pytest.raises(dataclasses.FrozenInstanceError):
        base.a = 3  # type: ignore[misc]


def _tracked_objects(roots: list[object]) -> int:
    """The objects the garbage collector tracks, reachable from ``roots`` (classes and
    modules aside: they are not per entry)."""
    seen: set[int] = set()
    stack = list(roots)
    while stack:
        obj = stack.pop()
        if id(obj) in seen or not gc.is_tracked(obj) or isinstance(obj, (type, types.ModuleType)):
            continue
        seen.add(id(obj))
        stack.extend(gc.get_referents(obj))
    return len(seen)


async def test_a_stored_memory_entry_is_at_most_three_tracked_objects(origin: Origin) -> None:
    """What a stored plain miss leaves in memory the collector must walk on every full
    collection: the response, its headers and its request (shared: the empty request
    headers, the empty history, the Facts of the same directives; the expiry kept apart,
    no (item, expiry) pair per entry). On main before this: 7 per entry."""
    n = 500
    async with CachedClientSession(cache=CacheBackend(), expire_after=3600) as session:
        for i in range(n):
            async with session.get(origin.url(f"/r/gc{i}")) as r:
                await r.read()
        storage = session.cache.raw_responses
        data = storage.data  # type: ignore[attr-defined]
        assert len(data) == n
        gc.collect()  # (untracks the tuples of atoms, as a collection would)
        per_entry = _tracked_objects([data, getattr(storage, "expiry", None)]) / n
        assert per_entry <= 3.01, per_entry
        stored = next(iter(data.values()))
        assert type(stored) is CachedResponse and stored.history == ()
        async with session.get(origin.url("/r/gc0")) as r:  # the entry answers as before
            assert r.from_cache and r.history == ()  # type: ignore[union-attr]
            assert isinstance(r.request_info.headers, Mapping)


async def test_a_stored_miss_leaves_nothing_tracked_but_its_entry(origin: Origin) -> None:
    """Besides its entry (three tracked objects, above), a plain miss stored in memory
    leaves nothing the collector walks in the session's and the backend's state: no plan
    memo (a URL seen once), no coalescing generation (kept by key, a str; it was a
    (loop, key) tuple)."""
    async with CachedClientSession(cache=CacheBackend(), expire_after=3600) as session:
        cache = session.cache

        def state() -> int:
            gc.collect()
            return _tracked_objects([session._plans, cache.coalescing.generations,
                                     cache.coalescing.inflight, cache._urls, cache._identities])

        before = state()
        for i in range(100):
            async with session.get(origin.url(f"/r/left{i}")) as r:
                await r.read()
        assert state() == before
        assert len(cache.coalescing.generations) == 100


def test_the_shared_empty_request_headers_are_read_only_and_copy_as_ordinary() -> None:
    """Every stored request without headers shares NO_HEADERS: writing to it would change
    them all, so it refuses; a copy (how code derives headers) is an ordinary one."""
    import copy
    import pickle

    from aiocache_http.models import NO_HEADERS
    request = core.plan(CachedRequest("GET", "http://example.com/a?q=1"), CacheSettings(), None,
                        CacheBackend().identify).request
    assert request.headers is NO_HEADERS and not NO_HEADERS
    with pytest.raises(TypeError, match="read-only"):
        NO_HEADERS["X-A"] = "1"
    with pytest.raises(TypeError, match="read-only"):
        NO_HEADERS.extend({"X-A": "1"})
    for derived in (NO_HEADERS.copy(), copy.copy(NO_HEADERS), copy.deepcopy(NO_HEADERS),
                    pickle.loads(pickle.dumps(NO_HEADERS))):
        assert type(derived) is CIMultiDict
        derived["X-A"] = "1"
    assert not NO_HEADERS


def test_backend_and_settings_attributes_without_a_getattr_hook() -> None:
    """A __getattr__ hook slows every attribute read of its class (no specialised reads),
    and the backend's and the settings' are read on every request: the settings a backend
    carries (both peers') and the settings' aliases are properties instead, the same
    to read and assign."""
    from aiocache_http.policy.settings import CacheSettings as Settings

    for cls in (CacheBackend, Settings):
        assert "__getattr__" not in vars(cls)
    assert "__setattr__" not in vars(CacheBackend)
    backend = CacheBackend(allowable_codes=(200, 203))
    assert backend.allowable_codes == backend.allowed_codes == (200, 203)  # type: ignore[attr-defined]
    assert backend.settings.allowable_codes == (200, 203)
    backend.expire_after = 60  # type: ignore[attr-defined]
    assert backend.settings.expire_after == backend.expire_after == 60  # type: ignore[attr-defined]
    backend.settings.include_get_headers = True
    assert backend.settings.match_headers is True and backend.include_get_headers is True  # type: ignore[attr-defined]
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        backend.nope  # type: ignore[attr-defined]  # noqa: B018
    with pytest.raises(AttributeError):
        backend.settings.nope  # noqa: B018


async def test_a_plan_kept_after_its_request_holds_what_it_was_made_from(origin: Origin) -> None:
    """The plan memo is kept once the answer is known: it records the settings' version
    from before the request, so a settings change meanwhile makes it not hold."""
    import asyncio

    async with CachedClientSession(cache=CacheBackend(), cache_control=True) as session:
        url = origin.url("/r/changed-meanwhile?h_Cache-Control=no-store&hold=changed")

        async def get() -> None:
            async with session.get(url) as r:
                await r.read()

        task = asyncio.ensure_future(get())
        await until(lambda: origin.count("/r/changed-meanwhile") == 1, "the request reached the origin")
        session.settings.expire_after = 60  # while the request is at the origin
        origin.release("changed")
        await task
        (memo,) = session._plans.values()
        assert not memo.holds(session)


async def test_the_charset_is_aiohttps_for_each_content_type(origin: Origin) -> None:
    """The charset stored with a response is what aiohttp reads from its Content-Type
    (worked out once per Content-Type value, then memoized): each response its own."""
    async with CachedClientSession(cache=CacheBackend(), expire_after=60) as session:
        for name, content_type in [("a", "text/plain; charset=latin-1"), ("b", "text/plain"),
                                   ("c", "text/html; charset=utf-16"), ("d", "text/plain; charset=latin-1")]:
            url = origin.url(f"/body/charset-{name}?size=10&h_Content-Type={content_type}"
                             "&h_Cache-Control=max-age%3D60")
            async with session.get(url) as r:
                live = r.charset
                await r.read()
            stored = await session.cache.get_response(r.cache_key)  # type: ignore[union-attr]
            assert stored is not None and stored._cached.encoding == live  # type: ignore[attr-defined]
            assert live == (None if "charset" not in content_type else content_type.split("=")[1])


def test_a_plain_identity_is_the_key_and_request_the_full_way_gives() -> None:
    """keys.plain_identity (what a first-seen plain request's key costs: one step) gives
    what normalize_request + hash_key give, whatever the settings; None for any request
    that is not plain (then the full way decides)."""
    from aiocache_http.policy.keys import normalize_request, plain_identity

    backend = CacheBackend(ignored_params=["token"], match_headers=True, secret_key="s")
    for url in ["http://a.example/x", "http://a.example", "https://h.example:8443/p/q",
                "http://a.example/%7Ex", "http://a.example/x?token=1", "http://A.example/x",
                "http://a.example:80/x", "http://u:p@a.example/x", "http://a.example/" + "x" * 70000]:
        for method in ["GET", "get", "HEAD"]:
            for request in [CachedRequest(method, url),
                            CachedRequest(method, url, CIMultiDict({"X-A": "1"})),
                            CachedRequest(method, url, follow_redirects=False)]:
                plain = plain_identity(request)
                if plain is None:
                    continue
                material, stored = normalize_request(request)
                assert plain == (hash_key(material), stored)
                assert backend.identify(request, keep=False) == backend.identify(request) == plain
    assert plain_identity(CachedRequest("GET", "http://a.example/x?token=1")) is None
    assert plain_identity(CachedRequest("GET", "http://a.example/x", CIMultiDict({"A": "1"}))) is None


async def test_a_miss_nobody_waits_for_makes_no_lead(origin: Origin) -> None:
    """A leader's claim is one dict entry; its Lead (the waiters' futures, the body's
    progress) is made when a second request for the key comes, and that one still waits
    for the leader's stored response."""
    import asyncio

    from aiocache_http.coalescing import Lead

    async with CachedClientSession(cache=CacheBackend(), expire_after=60) as session:
        inflight = session.cache.coalescing.inflight
        url = origin.url("/r/lead-lazily?hold=lazily")  # at the origin until released

        async def get() -> tuple[bool, bytes]:
            async with session.get(url) as r:
                return r.from_cache, await r.read()  # type: ignore[union-attr]

        first = asyncio.ensure_future(get())
        await until(lambda: origin.counts["/r/lead-lazily"] == 1, "the first request reached the origin")
        (entry,) = inflight.values()
        assert type(entry) is not Lead
        second = asyncio.ensure_future(get())
        await until(lambda: all(type(e) is Lead for e in inflight.values()), "the second one waits")
        (entry,) = inflight.values()
        assert type(entry) is Lead
        origin.release("lazily")
        (live, body), (shared, same) = await first, await second
        assert not live and shared and body == same and origin.counts["/r/lead-lazily"] == 1
        assert not inflight


def test_a_plain_url_is_its_own_normal_form_as_the_parsing_way_says() -> None:
    """keys._plain_url (no parsing) agrees with the parsing way (_Normaliser.url) on every
    URL it takes; the others (default port, out of range, upper case...) it leaves to it."""
    from aiocache_http.policy.keys import _Normaliser, _plain_url

    taken = 0
    for url in ["http://a.example/x", "http://a.example", "https://a.example/", "http://a.example:80/x",
                "https://a.example:443/x", "http://a.example:443/x", "https://a.example:80",
                "http://a.example:8080/p/q", "http://a.example:65535/x", "http://a.example:65536/x",
                "http://a.example:99999", "http://a.example:1/%7Ex~", "http://A.example/x",
                "http://a.example/x?q=1", "http://a.example/a b", "http://127.0.0.1:18092/item/1"]:
        plain = _plain_url(url)
        if plain is not None:
            taken += 1
            assert plain == _Normaliser((), None).url(url), url
    assert taken == 9


def test_headers_to_store_finds_the_fields_never_kept_in_any_case() -> None:
    """The names never stored are found case-insensitively (a view of the headers' names,
    not a lower-cased copy of each), as are those named by Connection and no-cache."""
    from aiocache_http.policy.freshness import headers_to_store

    kept = CIMultiDict({"A": "1"})
    assert headers_to_store(kept) is kept  # nothing to drop: the same object
    for headers, left in [({"SET-COOKIE": "a=1", "X": "y"}, {"X": "y"}), ({"keep-ALIVE": "x"}, {}),
                          ({"Connection": "X-Foo", "x-foo": "1", "B": "2"}, {"B": "2"}),
                          ({"Cache-Control": 'no-cache="X-Bar"', "x-BAR": "1"},
                           {"Cache-Control": 'no-cache="X-Bar"'})]:
        assert dict(headers_to_store(CIMultiDict(headers))) == left


def test_a_decisions_fields_are_set_without_a_python_level_setter() -> None:
    """fast_init's twin overrides both __setattr__ and __delattr__ with object's: they share
    one type slot, which stays the Python-level wrapper (a look-up and a call per field)
    while either is a Python function, as a frozen base's (Decision's) are. So the twin of
    a decision sets its fields with object's own setter, as the twin of a base class does."""
    for cls in (Store, Fetch, DontStore, CachedResponse):
        twin = cls.__init__.__globals__["_twin"]  # the generated __init__'s own
        assert twin.__setattr__ is object.__setattr__ and twin.__delattr__ is object.__delattr__
        assert cls.__setattr__ is not object.__setattr__  # (the class itself stays frozen)
    value = Store("stored", keys=("k",))
    assert type(value) is Store and value.keys == ("k",)
    with pytest.raises(dataclasses.FrozenInstanceError):
        value.keys = ()  # type: ignore[misc]


async def test_a_body_arrived_with_its_head_gets_no_waiter(origin: Origin) -> None:
    """The driver reads a body that arrived with its head as it is (``arrived``): no
    ``whole`` waiter is made for it; a body still on its way gets one."""
    import aiohttp

    from aiocache_http.session import _origin

    async with aiohttp.ClientSession() as plain:
        async with plain.get(origin.url("/r/arrived")) as r:
            await r.content.wait_eof()
            answer = _origin(r)
            assert answer.arrived == await r.read() and answer.whole is None
        async with plain.get(origin.url("/body/on-its-way?size=1000000&chunked=1")) as r:
            answer = _origin(r)
            assert answer.arrived is None and answer.whole is not None
            await r.read()


def test_the_live_stream_check_is_made_once_per_content_type() -> None:
    """Whether a Content-Type is a live stream's (never stored) is worked out once for
    each value, not for every response: the same answer, with its media type as sent."""
    assert core._live_stream("Text/Event-Stream; charset=utf-8") == "Text/Event-Stream"
    before = core._live_stream.cache_info().hits
    for _ in range(3):
        assert core._live_stream("application/json; charset=utf-8") is None
        assert core._live_stream(None) is None
    assert core._live_stream.cache_info().hits >= before + 4
