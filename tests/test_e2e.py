"""End-to-end: a session (each kind in tests/clients.py) over a backend (each kind in
tests/backends.py) against a local origin that counts requests. Every claim about
caching is proven by the origin's count."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Callable
from datetime import timedelta

import pytest

from aiocache_http import DO_NOT_CACHE, EXPIRE_IMMEDIATELY, CacheEvent

from .clients import Client
from .origin import Clock, Origin
from .waiting import until

MakeClient = Callable[..., Client]


def n(reply_body: bytes) -> int:
    """Which origin request produced this body."""
    return int(json.loads(reply_body)["n"])


def on_clock(c: Client, origin: Origin) -> Clock:
    """Puts the backend on the origin's clock, which the test moves by hand: an entry is
    fresh until the test moves the clock past its expiry, however slow the machine (a
    0.3 s lifetime measured by the wall clock ran out between two requests under load)."""
    c.cache.clock = origin.clock
    return origin.clock


async def test_second_get_is_a_hit(make_client: MakeClient, origin: Origin) -> None:
    c = make_client()
    first = await c.get(origin.url("/r/a"))
    second = await c.get(origin.url("/r/a"))
    assert (first.from_cache, second.from_cache) == (False, True)
    assert second.body == first.body and second.status == 200
    assert second.headers["Content-Type"].startswith("application/json")
    assert origin.count("/r/a") == 1
    assert second.cache_key and second.cache_key == first.cache_key


async def test_query_order_does_not_matter(make_client: MakeClient, origin: Origin) -> None:
    c = make_client()
    await c.get(origin.url("/r/q?x=1&y=2"))
    hit = await c.get(origin.url("/r/q?y=2&x=1"))
    assert hit.from_cache and origin.count("/r/q") == 1


async def test_response_url_is_the_query_as_sent(make_client: MakeClient, origin: Origin) -> None:
    """A response's url keeps the query as the client sent it, miss and hit: the stored
    URL was rebuilt from parsed pairs ("a=x;y" -> "a=x%3By", "+" -> "%20", "flag" ->
    "flag="), so r.url differed from aiohttp's and requests' own (links resolved against it,
    comparisons with the URL asked for)."""
    c = make_client()
    url = origin.url("/r/u?a=x;y&p=1+2&flag")
    miss, hit = await c.get(url), await c.get(url)
    assert hit.from_cache and (miss.url, hit.url) == (url, url)


async def test_expire_after(make_client: MakeClient, origin: Origin) -> None:
    c = make_client(expire_after=0.4)
    clock = on_clock(c, origin)
    await c.get(origin.url("/r/e"))
    assert (await c.get(origin.url("/r/e"))).from_cache
    clock.advance(0.5)
    again = await c.get(origin.url("/r/e"))
    assert not again.from_cache and n(again.body) == 2


async def test_session_expire_after_attribute_is_the_setting(make_client: MakeClient,
                                                             origin: Origin) -> None:
    """``session.expire_after = ...`` (requests-cache's session attribute) changes the
    setting on both sessions; on the aiohttp one it used to set a plain attribute that
    nothing read."""
    c = make_client()
    clock = on_clock(c, origin)
    c.session.expire_after = 0.4
    assert c.session.expire_after == c.settings.expire_after == 0.4
    await c.get(origin.url("/r/attr"))
    assert (await c.get(origin.url("/r/attr"))).from_cache
    clock.advance(0.5)
    assert not (await c.get(origin.url("/r/attr"))).from_cache


async def test_expire_immediately_and_do_not_cache(make_client: MakeClient, origin: Origin) -> None:
    c = make_client(expire_after=EXPIRE_IMMEDIATELY)
    await c.get(origin.url("/r/imm?etag=v1"))  # a validator: stored, revalidated on every use
    await c.get(origin.url("/r/imm?etag=v1"))
    assert origin.count("/r/imm") == 2  # stored, but never served fresh
    assert await c.cache.raw_responses.size() == 1
    c.settings.expire_after = DO_NOT_CACHE
    await c.get(origin.url("/r/dnc"))
    await c.get(origin.url("/r/dnc"))
    assert origin.count("/r/dnc") == 2
    assert await c.cache.raw_responses.size() == 1


async def test_urls_expire_after_first_match_wins(make_client: MakeClient, origin: Origin) -> None:
    c = make_client(expire_after=-1, urls_expire_after={
        "127.0.0.1*/r/short*": 0.3,
        "*/r/nocache*": DO_NOT_CACHE,
        "*/r/*": timedelta(hours=1),
    })
    clock = on_clock(c, origin)
    for path in ("/r/short", "/r/nocache", "/r/long"):
        await c.get(origin.url(path))
    clock.advance(0.4)
    for path in ("/r/short", "/r/nocache", "/r/long"):
        await c.get(origin.url(path))
    assert origin.count("/r/short") == 2
    assert origin.count("/r/nocache") == 2
    assert origin.count("/r/long") == 1


async def test_per_request_expire_after(make_client: MakeClient, origin: Origin) -> None:
    c = make_client(expire_after=3600)
    clock = on_clock(c, origin)
    r = await c.get(origin.url("/r/p"), expire_after=0.3)
    assert r.expires is not None
    clock.advance(0.4)
    assert not (await c.get(origin.url("/r/p"))).from_cache
    assert origin.count("/r/p") == 2


async def test_refresh_revalidates_with_304(make_client: MakeClient, origin: Origin) -> None:
    c = make_client()
    url = origin.url("/r/v?etag=v1")
    first = await c.get(url)
    refreshed = await c.get(url, refresh=True)
    assert origin.count("/r/v") == 2  # the conditional request reached the origin
    assert refreshed.status == 200 and refreshed.body == first.body  # 304 -> stored body
    assert (await c.get(url)).from_cache
    assert origin.count("/r/v") == 2


async def test_stale_entry_revalidated_with_304(make_client: MakeClient, origin: Origin) -> None:
    c = make_client(expire_after=0.3)
    clock = on_clock(c, origin)
    url = origin.url("/r/s?etag=v1")
    first = await c.get(url)
    clock.advance(0.4)
    second = await c.get(url)
    assert origin.count("/r/s") == 2
    assert second.status == 200 and n(second.body) == n(first.body) == 1
    third = await c.get(url)  # the 304 renewed the entry
    assert third.from_cache and origin.count("/r/s") == 2


async def test_force_refresh_fetches_and_stores(make_client: MakeClient, origin: Origin) -> None:
    c = make_client()
    url = origin.url("/r/f?etag=v1")
    await c.get(url)
    forced = await c.get(url, force_refresh=True)
    assert not forced.from_cache and n(forced.body) == 2  # unconditional: a full 200
    hit = await c.get(url)
    assert hit.from_cache and n(hit.body) == 2


async def test_only_if_cached(make_client: MakeClient, origin: Origin) -> None:
    c = make_client()
    miss = await c.get(origin.url("/r/o"), only_if_cached=True)
    assert miss.status == 504 and origin.count("/r/o") == 0
    await c.get(origin.url("/r/o"))
    hit = await c.get(origin.url("/r/o"), only_if_cached=True)
    assert hit.status == 200 and hit.from_cache and origin.count("/r/o") == 1


async def test_request_cache_control_directives(make_client: MakeClient, origin: Origin) -> None:
    # cache_control: the async session (aiohttp-client-cache) reads a request's own
    # Cache-Control only then; the sync one (requests-cache) in every mode
    c = make_client(cache_control=True)
    await c.get(origin.url("/r/ns"), headers={"Cache-Control": "no-store"})
    await c.get(origin.url("/r/ns"))
    assert origin.count("/r/ns") == 2  # the first was not stored
    url = origin.url("/r/nc?etag=x")
    await c.get(url, headers={"Cache-Control": "no-cache"})  # stores
    revalidated = await c.get(url, headers={"Cache-Control": "no-cache"})
    assert origin.count("/r/nc") == 2 and revalidated.status == 200
    await c.get(url, headers={"Cache-Control": "max-age=0"})
    assert origin.count("/r/nc") == 3


async def test_concurrent_misses_make_one_origin_request(
    make_client: MakeClient, origin: Origin
) -> None:
    c = make_client()
    url = origin.url("/r/c?delay=0.2")
    replies = await asyncio.gather(*(c.get(url) for _ in range(50)))
    assert origin.count("/r/c") == 1
    assert {r.body for r in replies} == {replies[0].body}
    assert all(r.status == 200 for r in replies)


async def test_credentials_separate_entries_and_are_not_stored(
    make_client: MakeClient, origin: Origin
) -> None:
    c = make_client()
    url = origin.url("/r/auth")
    a = await c.get(url, headers={"Authorization": "Bearer token-AAA"})
    b = await c.get(url, headers={"Authorization": "Bearer token-BBB"})
    assert not b.from_cache and origin.count("/r/auth") == 2
    assert await c.cache.raw_responses.size() == 2
    assert (await c.get(url, headers={"Authorization": "Bearer token-AAA"})).body == a.body
    for raw in await c.cache.raw_responses.values():
        assert b"token-AAA" not in raw and b"token-BBB" not in raw
    stored = await c.cache.get_record(a.cache_key)
    assert stored is not None and stored.request.headers["Authorization"] == "REDACTED"


async def test_api_key_param_redacted_but_keyed(make_client: MakeClient, origin: Origin) -> None:
    c = make_client()
    one = await c.get(origin.url("/r/k?api_key=secret1"))
    await c.get(origin.url("/r/k?api_key=secret2"))
    assert origin.count("/r/k") == 2
    stored = await c.cache.get_record(one.cache_key)
    assert stored is not None and "secret1" not in stored.url and "secret1" not in stored.request.url
    for raw in await c.cache.raw_responses.values():
        assert b"secret1" not in raw


async def test_tampered_item_is_a_miss(
    make_client: MakeClient, origin: Origin, caplog: pytest.LogCaptureFixture
) -> None:
    c = make_client(secret_key="s3cret")
    first = await c.get(origin.url("/r/t"))
    raw = await c.cache.raw_responses.read(first.cache_key)
    assert raw is not None
    flipped = bytearray(raw)
    flipped[len(flipped) // 2] ^= 0x01
    await c.cache.raw_responses.write(first.cache_key, bytes(flipped))
    with caplog.at_level(logging.WARNING, "aiocache_http"):
        again = await c.get(origin.url("/r/t"))
    assert not again.from_cache and n(again.body) == 2
    assert "signature" in caplog.text
    assert (await c.get(origin.url("/r/t"))).from_cache  # stored again, valid


async def test_redirects_cached_with_history(make_client: MakeClient, origin: Origin) -> None:
    c = make_client()
    first = await c.get(origin.url("/redirect/x"))
    hit = await c.get(origin.url("/redirect/x"))
    assert hit.from_cache and hit.status == 200
    assert hit.url.endswith("/r/x") and hit.history == first.history
    assert [h.rsplit("/", 2)[-2:] for h in hit.history] == [["redirect", "x"]]
    assert origin.count("/redirect/x") == 1 and origin.count("/r/x") == 1


async def test_allow_redirects_false_is_its_own_entry(make_client: MakeClient, origin: Origin) -> None:
    c = make_client(allowed_codes=(200, 302))
    followed = await c.get(origin.url("/redirect/nf"))
    assert followed.status == 200
    unfollowed = await c.get(origin.url("/redirect/nf"), allow_redirects=False)
    assert unfollowed.status == 302 and not unfollowed.from_cache
    again = await c.get(origin.url("/redirect/nf"), allow_redirects=False)
    assert again.status == 302 and again.from_cache
    assert (await c.get(origin.url("/redirect/nf"))).status == 200
    assert origin.count("/redirect/nf") == 2
    await c.cache.delete(urls=[origin.url("/redirect/nf")])  # both entries
    assert not (await c.get(origin.url("/redirect/nf"), allow_redirects=False)).from_cache


async def test_cache_disabled(make_client: MakeClient, origin: Origin) -> None:
    c = make_client()
    async with c.disabled():  # type: ignore[attr-defined]
        await c.get(origin.url("/r/d"))
        await c.get(origin.url("/r/d"))
    assert origin.count("/r/d") == 2
    assert await c.cache.raw_responses.size() == 0


async def test_filter_fn_allowed_codes_and_methods(make_client: MakeClient, origin: Origin) -> None:
    c = make_client(filter_fn=lambda r: "skip" not in str(r.url))
    for _ in range(2):
        await c.get(origin.url("/r/skip"))
        await c.get(origin.url("/r/missing?status=404"))
        await c.request("POST", origin.url("/r/post"), data=b"x")
    assert origin.count("/r/skip") == 2
    assert origin.count("/r/missing") == 2
    assert origin.count("/r/post") == 2
    c.settings.allowed_codes = (200, 404)
    c.settings.allowed_methods = ("GET", "POST")
    for _ in range(2):
        await c.get(origin.url("/r/missing?status=404"))
        await c.request("POST", origin.url("/r/post"), data=b"x")
    await c.request("POST", origin.url("/r/post"), data=b"other body")
    assert origin.count("/r/missing") == 3
    assert origin.count("/r/post") == 4  # one per distinct body


async def test_json_body_key_order_independent(make_client: MakeClient, origin: Origin) -> None:
    c = make_client(allowed_methods=("GET", "POST"))
    await c.request("POST", origin.url("/r/j"), json={"a": 1, "b": 2})
    hit = await c.request("POST", origin.url("/r/j"), json={"b": 2, "a": 1})
    assert hit.from_cache and origin.count("/r/j") == 1


async def test_ignored_params_and_match_headers(make_client: MakeClient, origin: Origin) -> None:
    c = make_client(ignored_params=["utm"], match_headers=["Accept-Language"])
    await c.get(origin.url("/r/i?utm=1"), headers={"Accept-Language": "en"})
    assert (await c.get(origin.url("/r/i?utm=2"), headers={"Accept-Language": "en"})).from_cache
    assert not (await c.get(origin.url("/r/i?utm=2"), headers={"Accept-Language": "fr"})).from_cache
    assert origin.count("/r/i") == 2


async def test_stale_if_error_serves_stale_on_5xx(make_client: MakeClient, origin: Origin) -> None:
    # The key ignores ?status=, so the same entry is asked for while the origin fails.
    c = make_client(expire_after=0.2, stale_if_error=True, ignored_params=["status"])
    clock = on_clock(c, origin)
    first = await c.get(origin.url("/r/sie?status=200"))
    clock.advance(0.3)
    stale = await c.get(origin.url("/r/sie?status=503"))
    assert stale.status == 200 and stale.from_cache and stale.body == first.body
    c.settings.stale_if_error = False
    failed = await c.get(origin.url("/r/sie?status=503"))
    assert failed.status == 503


async def test_stale_while_revalidate(make_client: MakeClient, origin: Origin) -> None:
    c = make_client(expire_after=0.2, stale_while_revalidate=60)
    clock = on_clock(c, origin)
    await c.get(origin.url("/r/swr"))
    clock.advance(0.3)
    stale = await c.get(origin.url("/r/swr"))
    assert stale.from_cache and n(stale.body) == 1  # served at once
    # the background refresh (on the sync bridge's loop for the sync session) fetches and stores
    await until(lambda: origin.count("/r/swr") == 2 and not c.cache.background,
                "the background refresh fetched and stored")
    fresh = await c.get(origin.url("/r/swr"))
    assert fresh.from_cache and n(fresh.body) == 2 and origin.count("/r/swr") == 2


async def test_settings_mutable_at_run_time(make_client: MakeClient, origin: Origin) -> None:
    c = make_client()
    c.settings.expire_after = DO_NOT_CACHE
    await c.get(origin.url("/r/m"))
    c.settings.expire_after = 60
    await c.get(origin.url("/r/m"))
    assert (await c.get(origin.url("/r/m"))).from_cache
    assert origin.count("/r/m") == 2
    with pytest.raises(AttributeError, match="secret_key"):
        c.settings.secret_key = "new"


async def test_delete_by_url_and_clear(make_client: MakeClient, origin: Origin) -> None:
    c = make_client()
    await c.get(origin.url("/r/x1"))
    await c.get(origin.url("/r/x2"))
    await c.cache.delete(urls=[origin.url("/r/x1")])
    assert not (await c.get(origin.url("/r/x1"))).from_cache
    assert (await c.get(origin.url("/r/x2"))).from_cache
    await c.cache.clear()
    assert await c.cache.raw_responses.size() == 0


async def test_one_event_per_request_says_what_happened_and_why(
    make_client: MakeClient, origin: Origin
) -> None:
    c = make_client()
    events: list[CacheEvent] = []
    unsubscribe = c.cache.events.subscribe(events.append)
    await c.get(origin.url("/r/ev"))  # miss, stored
    await c.get(origin.url("/r/ev"))  # hit
    await c.get(origin.url("/r/ev404?status=404"))  # miss, not stored
    await c.request("POST", origin.url("/r/ev"))  # bypassed
    unsubscribe()
    await c.get(origin.url("/r/ev"))
    assert [e.kind for e in events] == ["miss", "hit", "miss", "bypassed"]
    miss, hit, not_found, post = events
    assert miss.stored is True and miss.decision.name == "Store" and miss.bytes_stored > 0
    assert miss.lookup is not None and miss.lookup.name == "Fetch" and not miss.from_cache
    assert miss.origin_time > 0 and miss.duration >= miss.origin_time and miss.status == 200
    assert hit.from_cache and hit.decision.name == "Serve" and "fresh" in hit.why
    assert hit.key == miss.key and hit.bytes_served == miss.bytes_stored and hit.origin_time == 0
    assert not_found.stored is False and "404 not in allowed_codes" in not_found.not_stored_reason
    assert post.stored is None and "POST not in allowed_methods" in post.why
    assert post.status == 200 and post.lookup is None
    assert all(e.method in ("GET", "POST") and e.url.startswith("http") for e in events)
    assert not any(e.storage_errors for e in events)


async def test_cache_status_header(make_client: MakeClient, origin: Origin) -> None:
    """RFC 9211 Cache-Status on every response, with cache_status_header=True."""
    c = make_client(cache_status_header=True, expire_after=60, allowed_codes=(200,))
    miss = await c.get(origin.url("/r/cs"))
    assert miss.headers["Cache-Status"] == "aiocache-http; fwd=miss; fwd-status=200; stored; ttl=59" \
        or miss.headers["Cache-Status"] == "aiocache-http; fwd=miss; fwd-status=200; stored; ttl=60"
    hit = await c.get(origin.url("/r/cs"))
    assert hit.headers["Cache-Status"].startswith("aiocache-http; hit; ttl=")
    await c.get(origin.url("/r/cs-etag?etag=v1"), expire_after=0)
    revalidated = await c.get(origin.url("/r/cs-etag?etag=v1"), expire_after=0)
    assert revalidated.headers["Cache-Status"].startswith(
        "aiocache-http; fwd=stale; fwd-status=304; stored; ttl=")
    refreshed = await c.get(origin.url("/r/cs"), refresh=True)
    assert refreshed.headers["Cache-Status"].startswith("aiocache-http; fwd=request; fwd-status=200")
    error = await c.get(origin.url("/r/cs-error?status=500"))
    assert error.headers["Cache-Status"] == "aiocache-http; fwd=miss; fwd-status=500"
    posted = await c.request("POST", origin.url("/r/cs-post"))
    assert posted.headers["Cache-Status"] == "aiocache-http; fwd=method; fwd-status=200"
    c.settings.cache_control = True  # the async session reads a request's Cache-Control only
    no_store = await c.get(origin.url("/r/cs"), headers={"Cache-Control": "no-store"})  # then
    assert no_store.headers["Cache-Status"] == "aiocache-http; fwd=bypass; fwd-status=200"
    c.settings.cache_control = False
    c.settings.stale_while_revalidate = True
    await c.get(origin.url("/r/cs-swr?etag=v1"), expire_after=0)
    stale = await c.get(origin.url("/r/cs-swr?etag=v1"), expire_after=0)
    assert re.fullmatch(r"aiocache-http; hit; detail=stale-while-revalidate; ttl=-\d+",
                        stale.headers["Cache-Status"]), stale.headers["Cache-Status"]
    c.settings.cache_status_header = False
    assert "Cache-Status" not in (await c.get(origin.url("/r/cs"))).headers


async def test_cache_status_of_coalesced_requests(make_client: MakeClient, origin: Origin) -> None:
    """Concurrent misses for one URL: one goes to the origin, the others are collapsed
    into it (RFC 9211 §2.7), and the stats count them."""
    c = make_client(cache_status_header=True)
    replies = await asyncio.gather(*(c.get(origin.url("/r/cs-slow?delay=0.5")) for _ in range(4)))
    statuses = sorted(r.headers["Cache-Status"] for r in replies)
    assert origin.count("/r/cs-slow") == 1
    assert statuses == ["aiocache-http; fwd=miss; collapsed"] * 3 + [
        "aiocache-http; fwd=miss; fwd-status=200; stored"]
    assert c.cache.stats.coalesced == 3


@pytest.mark.parametrize("cache_control", [False, True])
async def test_coalesced_requests_get_their_own_variant(make_client: MakeClient, origin: Origin,
                                                       cache_control: bool) -> None:
    """Concurrent requests for one URL that vary on a request header (RFC 9111 §4.1): a
    request whose header differs from the leader's is not handed the leader's response
    (it fetches its own variant), and each variant is a hit afterwards."""
    c = make_client(cache_control=cache_control)
    url = origin.url("/r/co-vary?delay=0.4&h_Vary=X-Lang&h_Cache-Control=max-age%3D60")
    langs = ["en", "fr", "en", None]
    replies = await asyncio.gather(*(c.get(url, headers={"X-Lang": lang} if lang else {})
                                     for lang in langs))
    bodies: dict[str | None, set[bytes]] = {}
    for lang, reply in zip(langs, replies, strict=True):
        bodies.setdefault(lang, set()).add(reply.body)
    assert len(bodies) == 3 and not bodies["en"] & bodies["fr"] and not bodies[None] & (
        bodies["en"] | bodies["fr"]), bodies  # nobody got another variant's response
    assert 3 <= origin.count("/r/co-vary") <= 4  # (the two "en" share one unless one leads)
    for lang in langs:  # each variant's entry is its own (unless a loaded machine dropped
        again = await c.get(url, headers={"X-Lang": lang} if lang else {})  # its write)
        assert not again.from_cache or again.body in bodies[lang], (lang, again.body, bodies)
