"""Integrity of every stored byte: whatever a storage holds, a read is a miss or the
response that was stored at that key, never an exception, never another body.

Two levels, both property-based (hypothesis, bounded example counts):

- the decoder: any bytes, and envelopes forged with a *valid* checksum around hostile
  metadata (null created_at, deep nesting, absurd numbers, wrong types), decode to a
  usable response or a DeserializationError;
- the storages (memory, SQLite, filesystem, Redis on a real server), with and without
  ``secret_key``: bit flips, truncation, extension, swapped items, forged envelopes and
  garbage redirect aliases written through the raw storage are misses (0 exceptions, 0
  wrong bodies).

Without a secret anyone who can write to the storage can write a well-formed item; the
checksum is there for accidents (bit rot, torn writes, an item copied to another key),
the signature for attackers. "Forged" below means without the right key material.
"""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import Callable, Coroutine, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from aiocache_http import CacheBackend, CachedRequest, utcnow
from aiocache_http.models import CachedResponse
from aiocache_http.response import CachedClientResponse
from aiocache_http.serializers import DeserializationError, Serializer
from aiocache_http.serializers.envelope import _HEADER, MAGIC, EnvelopeFormat, body_hasher
from aiocache_http.serializers.integrity import Checksum, Signature, key_part
from aiocache_http.sync.models import CachedResponse as SyncCachedResponse

from ..backends import FACTORIES

T = TypeVar("T")
# Correctness, not latency: deadlines no loaded CI machine reaches, so every storage call
# (the delete of a discarded item included) completes before the next assertion.
PATIENT = {"backend_timeout": 30.0, "write_timeout": 30.0}
KEY, OTHER, ALIAS = "k" * 32, "o" * 32, "a" * 32
BODY, OTHER_BODY = b"the body stored at KEY \x00\xff" * 8, b"another body at OTHER" * 8
SECRETS: dict[str, list[bytes]] = {"checksum": [], "signed": [b"s3cret"]}
FUZZ = settings(max_examples=120, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def sample(body: bytes = BODY, url: str = "https://x.test/a") -> CachedResponse:
    now = utcnow()
    request = CachedRequest("GET", url, CIMultiDict({"Accept": "*/*", "X-Bin": "caf\udce9"}))
    hop = CachedResponse(302, "Found", url + "?old", CIMultiDict({"Location": "/a"}), b"",
                         CachedRequest("GET", url + "?old"))
    return CachedResponse(200, "OK", url, CIMultiDict([("Content-Type", "text/plain"), ("X-Bin", "\udcff")]),
                          body, request, encoding="utf-8", created_at=now,
                          expires=now + timedelta(hours=1), history=[hop])


def usable(response: CachedResponse) -> None:
    """Whatever the decoder accepts must replay through both sessions' response types."""
    replay = CachedClientResponse.replay(response, response.request.method)
    assert replay.raw_headers is not None and replay.get_encoding()
    _ = (replay.url, replay.history, replay.request_info, replay.content_length, replay.ttl)
    asyncio.run(replay.text(errors="replace"))
    SyncCachedResponse.from_record(response).text  # noqa: B018 - decoding is the check


def forge(meta: object, key: str = KEY, body: bytes = b"body", version: int = 2) -> bytes:
    """An envelope with a valid checksum around ``meta``: reaches the JSON decoder."""
    meta_b = json.dumps(meta).encode()
    digest = body_hasher()
    digest.update(body)
    header = _HEADER.pack(MAGIC, version, 0, len(meta_b), 0, len(body), digest.digest())
    tag = Checksum().tag((b"aiocache-http envelope\x00", key_part(key), header, meta_b, b""))
    return header + tag + meta_b + body


def good_meta() -> dict[str, Any]:
    return {"s": 200, "r": "OK", "u": "https://x.test/", "h": [["A", "b"]], "e": None, "c": 0,
            "x": None, "qt": None, "rt": None, "qm": "GET", "qu": "https://x.test/", "qh": [],
            "hi": [], "vg": ""}


# -- the decoder -------------------------------------------------------------------------
@pytest.mark.parametrize("meta", [
    {**good_meta(), "c": None},  # null created_at (was an AssertionError)
    {**good_meta(), "x": 10**30},  # huge expiry (was an OverflowError)
    {**good_meta(), "x": -(10**30)},
    {**good_meta(), "c": 1.5},
    {**good_meta(), "s": "200"},
    {**good_meta(), "s": 10**20},
    {**good_meta(), "h": [["A"]]},
    {**good_meta(), "h": [["A", 1]]},
    {**good_meta(), "h": [["A", "\ud800"]]},  # a lone surrogate no wire could carry
    {**good_meta(), "hi": [{"s": 301}]},
    {**good_meta(), "hi": {"s": 301}},
    {**good_meta(), "e": 3},
    {k: v for k, v in good_meta().items() if k != "qm"},
    [1, 2, 3],
    "just a string",
    None,
])
def test_forged_metadata_is_a_miss(meta: object) -> None:
    with pytest.raises(DeserializationError):
        Serializer(EnvelopeFormat()).loads(forge(meta), KEY)


def test_deeply_nested_metadata_is_a_miss() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000  # was a RecursionError
    digest = body_hasher()
    header = _HEADER.pack(MAGIC, 2, 0, len(deep), 0, 0, digest.digest())
    tag = Checksum().tag((b"aiocache-http envelope\x00", key_part(KEY), header, deep, b""))
    with pytest.raises(DeserializationError):
        Serializer(EnvelopeFormat()).loads(header + tag + deep, KEY)


def test_good_forged_metadata_decodes() -> None:  # the forge helper itself is right
    usable(Serializer(EnvelopeFormat()).loads(forge(good_meta()), KEY))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner, max_size=4),
    max_leaves=12)
field_values = st.one_of(json_values, st.integers(min_value=-(2**70), max_value=2**70),
                         st.just([["X", "caf\udce9"]]), st.just(None))


@FUZZ
@given(overrides=st.dictionaries(st.sampled_from(sorted(good_meta())), field_values, max_size=4),
       dropped=st.sets(st.sampled_from(sorted(good_meta())), max_size=2))
def test_fuzzed_metadata_never_raises(overrides: dict[str, Any], dropped: set[str]) -> None:
    meta = {k: v for k, v in {**good_meta(), **overrides}.items() if k not in dropped}
    try:
        response = Serializer(EnvelopeFormat()).loads(forge(meta), KEY)
    except DeserializationError:
        return
    usable(response)


@FUZZ
@given(data=st.binary(max_size=600), signed=st.booleans())
def test_arbitrary_bytes_never_raise(data: bytes, signed: bool) -> None:
    s = Serializer(EnvelopeFormat(), SECRETS["signed" if signed else "checksum"])
    for raw in (data, MAGIC + data, MAGIC + b"\x02" + data):
        with pytest.raises(DeserializationError):
            s.loads(raw, KEY)
        with pytest.raises(DeserializationError):
            s.loads_redirect(ALIAS, raw)


@pytest.mark.parametrize("secret", sorted(SECRETS))
def test_every_single_bit_flip_is_a_miss(secret: str) -> None:
    """Exhaustive: every bit of a whole item (before: 96 of 150 flips were served, 55
    with a changed body)."""
    s = Serializer(EnvelopeFormat(), SECRETS[secret])
    item = s.dumps(sample(), KEY)
    served = 0
    for bit in range(len(item) * 8):
        flipped = bytearray(item)
        flipped[bit // 8] ^= 1 << (bit % 8)
        try:
            s.loads(bytes(flipped), KEY)
            served += 1
        except DeserializationError:
            pass
    assert served == 0, f"{served} of {len(item) * 8} flips served"
    assert s.loads(item, KEY).body == BODY


@pytest.mark.parametrize("fmt", ["envelope", "zlib", "pickle"])
@pytest.mark.parametrize("secret", sorted(SECRETS))
def test_item_bound_to_its_key(fmt: str, secret: str) -> None:
    backend = CacheBackend(serializer=fmt, secret_key=SECRETS[secret] or None)
    item = backend.serializer.dumps(sample(), KEY)
    assert backend.serializer.loads(item, KEY).body == BODY
    with pytest.raises(DeserializationError):
        backend.serializer.loads(item, OTHER)  # copied to another key
    alias = backend.serializer.dumps_redirect(ALIAS, KEY)
    assert backend.serializer.loads_redirect(ALIAS, alias) == KEY
    with pytest.raises(DeserializationError):
        backend.serializer.loads_redirect("another alias", alias)


def test_signed_items_need_the_secret() -> None:
    signed, other = Serializer(EnvelopeFormat(), [b"a"]), Serializer(EnvelopeFormat(), [b"b"])
    plain = Serializer(EnvelopeFormat())
    for reader, writer in [(signed, plain), (signed, other), (plain, signed)]:
        with pytest.raises(DeserializationError):
            reader.loads(writer.dumps(sample(), KEY), KEY)
        with pytest.raises(DeserializationError):
            reader.loads_redirect(ALIAS, writer.dumps_redirect(ALIAS, KEY))
    assert isinstance(signed.integrity, Signature) and isinstance(plain.integrity, Checksum)


def test_version_1_items_are_misses() -> None:
    """Items written before checksums (envelope v1) are not trusted: a miss, fetched again."""
    v1 = struct.pack("!3sBBIII", MAGIC, 1, 0, 2, 0, 0) + b"{}"
    with pytest.raises(DeserializationError, match="version 1"):
        Serializer(EnvelopeFormat()).loads(v1, KEY)


# -- the storages ------------------------------------------------------------------------
class Loop:
    """One event loop for all examples of a test (hypothesis calls the test many times)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)


@pytest.fixture(params=[(b, s) for b in ("memory", "sqlite", "filesystem", "redis") for s in sorted(SECRETS)],
                ids=lambda p: f"{p[0]}-{p[1]}")
def stored(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Loop, CacheBackend]]:
    """A backend holding a response at KEY, another at OTHER, and ALIAS -> KEY."""
    name, secret = request.param
    loop = Loop()
    backend = FACTORIES[name](request, tmp_path, {"secret_key": SECRETS[secret] or None, **PATIENT})

    async def setup() -> None:
        await backend.clear()
        await backend.save_response(sample(), KEY)
        await backend.save_response(sample(OTHER_BODY, "https://x.test/other"), OTHER)
        await backend.save_redirect(ALIAS, KEY)

    loop.run(setup())
    yield loop, backend
    loop.run(backend.close())
    loop.loop.close()


Mutation = Callable[[bytes, bytes], bytes]  # (the item, the other item) -> stored bytes


@st.composite
def mutations(draw: st.DrawFn) -> tuple[str, Mutation]:
    kind = draw(st.sampled_from(["flip", "truncate", "extend", "swap", "replace", "forge-other-key",
                                 "forge-unsigned", "forge-other-secret"]))
    if kind == "flip":
        position, bit = draw(st.integers(0, 10**6)), draw(st.integers(0, 7))
        return kind, lambda item, _: _flip(item, position % len(item), bit)
    if kind == "truncate":
        n = draw(st.integers(0, 10**6))
        return kind, lambda item, _: item[: n % len(item)]
    if kind == "extend":
        junk = draw(st.binary(min_size=1, max_size=32))
        return kind, lambda item, _: item + junk
    if kind == "swap":
        return kind, lambda _, other: other
    if kind == "replace":
        junk = draw(st.binary(max_size=300))
        return kind, lambda *_: junk
    forger = {"forge-other-key": Serializer(EnvelopeFormat()),
              "forge-unsigned": Serializer(EnvelopeFormat()),
              "forge-other-secret": Serializer(EnvelopeFormat(), [b"not the secret"])}[kind]
    at = OTHER if kind == "forge-other-key" else KEY
    return kind, lambda *_: forger.dumps(sample(b"forged body"), at)


def _flip(item: bytes, index: int, bit: int) -> bytes:
    flipped = bytearray(item)
    flipped[index] ^= 1 << bit
    return bytes(flipped)


@FUZZ
@given(mutation=mutations())
def test_corrupt_items_are_misses(stored: tuple[Loop, CacheBackend], mutation: tuple[str, Mutation]) -> None:
    loop, backend = stored
    kind, mutate = mutation

    async def check() -> None:
        item, other = await backend.raw_responses.read(KEY), await backend.raw_responses.read(OTHER)
        assert item is not None and other is not None
        if kind == "forge-unsigned" and not backend.serializer.integrity.signed:
            return  # without a secret, a well-formed item at its own key is no forgery
        bad = mutate(item, other)
        await backend.raw_responses.write(KEY, bad)
        got = await backend.get_record(KEY)
        assert got is None or got.body == BODY, f"{kind}: served a wrong body"
        assert got is None or bad == item
        assert await backend.raw_responses.read(KEY) is None or bad == item  # deleted
        await backend.save_response(sample(), KEY)  # restore for the next example

    loop.run(check())


@st.composite
def redirect_mutations(draw: st.DrawFn) -> tuple[str, Mutation]:
    kind = draw(st.sampled_from(["garbage", "flip", "truncate", "plain-key", "other-alias",
                                 "non-utf8"]))
    if kind == "garbage":
        junk = draw(st.binary(max_size=100))
        return kind, lambda *_: junk
    if kind == "flip":
        position, bit = draw(st.integers(0, 10**6)), draw(st.integers(0, 7))
        return kind, lambda item, _: _flip(item, position % len(item), bit)
    if kind == "truncate":
        n = draw(st.integers(0, 10**6))
        return kind, lambda item, _: item[: n % len(item)]
    if kind == "plain-key":  # the old, untagged format pointing elsewhere
        return kind, lambda *_: OTHER.encode()
    if kind == "non-utf8":  # was a UnicodeDecodeError
        return kind, lambda *_: b"\xff\xfe" + bytes(draw(st.binary(max_size=20)))
    return kind, lambda _, other: other  # an alias pointing at OTHER, copied here


@FUZZ
@given(mutation=redirect_mutations())
def test_garbage_redirects_are_misses(stored: tuple[Loop, CacheBackend],
                                      mutation: tuple[str, Mutation]) -> None:
    loop, backend = stored
    kind, mutate = mutation

    async def check() -> None:
        await backend.save_redirect("other alias", OTHER)
        item = await backend.raw_redirects.read(ALIAS)
        other = await backend.raw_redirects.read("other alias")
        assert item is not None and other is not None
        bad = mutate(item, other)
        await backend.raw_redirects.write(ALIAS, bad)
        got = await backend.get_record(ALIAS)
        assert got is None or (got.body == BODY and bad == item), f"{kind}: served a wrong body"
        assert await backend.redirects.read(ALIAS) in (None, KEY)
        await backend.save_redirect(ALIAS, KEY)

    loop.run(check())


def test_maintenance_survives_garbage(stored: tuple[Loop, CacheBackend]) -> None:
    """delete(expired=True), get_urls() and the views skip what they cannot read."""
    loop, backend = stored

    async def check() -> None:
        await backend.raw_responses.write("junk", b"\x00garbage")
        await backend.raw_redirects.write("junk alias", b"\xff\xfe")
        assert sorted(await backend.get_urls()) == ["https://x.test/a", "https://x.test/other"]
        bodies = sorted(r.body for r in await backend.responses.values())
        assert bodies == sorted([BODY, OTHER_BODY])
        await backend.delete(expired=True)
        assert not await backend.raw_responses.contains("junk")
        assert await backend.raw_redirects.read("junk alias") is None
        assert (await backend.get_record(ALIAS)) is not None  # a good alias stays

    loop.run(check())
