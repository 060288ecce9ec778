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
import json
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

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
