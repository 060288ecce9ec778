"""The RFC 9111 / 5861 cases that involve the network, end to end: every session kind
(tests/clients.py) over every backend, ``cache_control=True``, a local origin scripted by
the URL (tests/origin.py), and the backend's clock replaced by a fake one."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import timedelta
from email.utils import format_datetime
from urllib.parse import quote

import pytest

from aiocache_http import utcnow

from .clients import Client
from .origin import Clock, Origin
from .waiting import until

MakeClient = Callable[..., Client]


@pytest.fixture
def clock(origin: Origin) -> Clock:
    return origin.clock


@pytest.fixture
def rfc(make_client: MakeClient, clock: Clock) -> Callable[..., Client]:
    def make(**settings: object) -> Client:
        client = make_client(cache_control=True, allowed_codes=range(100, 600), **settings)
        client.cache.clock = clock
        return client

    return make


def path(name: str, **headers: str) -> str:
    """``/r/NAME`` answering with these response headers (``etag`` and ``status`` too)."""
    query = []
    for key, value in headers.items():
        if key in ("etag", "status", "delay"):
            query.append(f"{key}={quote(value)}")
        else:
            query.append(f"h_{key.replace('_', '-')}={quote(value)}")
    return f"/r/{name}" + ("?" + "&".join(query) if query else "")


async def idle(c: Client) -> None:
    """Wait (bounded) until no background refresh is running."""
    await until(lambda: not c.cache.background, "the background refresh finished")


def n(body: bytes) -> int:
    return int(json.loads(body)["n"])


async def test_01_fresh_hit_with_age(rfc: Callable[..., Client], origin: Origin, clock: Clock) -> None:
    c = rfc()
    url = origin.url(path("a", Cache_Control="max-age=60"))
    await c.get(url)
    clock.advance(30)
    hit = await c.get(url)
    assert hit.from_cache and origin.count("/r/a") == 1
    assert int(hit.headers["Age"]) >= 30
    clock.advance(31)
    assert not (await c.get(url)).from_cache


async def test_02_03_no_store(rfc: Callable[..., Client], origin: Origin) -> None:
    c = rfc()
    await c.get(origin.url(path("ns", Cache_Control="no-store")))
    await c.get(origin.url(path("ns", Cache_Control="no-store")))
    assert origin.count("/r/ns") == 2
    url = origin.url(path("req", Cache_Control="max-age=60"))
    await c.get(url, headers={"Cache-Control": "no-store"})
    await c.get(url)
    assert origin.count("/r/req") == 2
    # A no-store answer removes the entry stored before it (the key ignores ?h_...).
    c.settings.ignored_params = ["h_Cache-Control"]
    await c.get(origin.url(path("rm", Cache_Control="max-age=60")))
    await c.get(origin.url(path("rm", Cache_Control="no-store")), headers={"Cache-Control": "no-cache"})
    assert not (await c.get(origin.url(path("rm", Cache_Control="max-age=60")))).from_cache
    assert origin.count("/r/rm") == 3


async def test_04_no_freshness_not_served_fresh(rfc: Callable[..., Client], origin: Origin) -> None:
    c = rfc()
    for _ in range(3):
        await c.get(origin.url("/r/plain"))
    assert origin.count("/r/plain") == 3


async def test_05_06_07_storable_statuses(rfc: Callable[..., Client], origin: Origin, clock: Clock) -> None:
    c = rfc()
    last_modified = format_datetime(clock.now - timedelta(days=10), usegmt=True)
    cases = {"h404": ("404", {"Last_Modified": last_modified}, 1),
             "h500": ("500", {"Last_Modified": last_modified}, 2),
             "e302": ("302", {"Cache_Control": "max-age=60", "Location": "/r/x"}, 1),
             "p206": ("206", {"Cache_Control": "max-age=60"}, 2)}
    for name, (status, headers, _) in cases.items():
        for _ in range(2):
            await c.get(origin.url(path(name, status=status, **headers)), allow_redirects=False)
    for name, (_status, _headers, expected) in cases.items():
        assert origin.count(f"/r/{name}") == expected, name


async def test_08_09_fields_not_stored(rfc: Callable[..., Client], origin: Origin) -> None:
    c = rfc()
    url = origin.url(path("f", Cache_Control='max-age=60, no-cache="Set-Cookie"', Set_Cookie="sid=1",
                          Connection="close, X-Foo", X_Foo="secret", X_Bar="kept"))
    await c.get(url)
    await c.get(url)  # requests' jar took sid=1 (aiohttp's refuses an IP host): a new key
    hit = await c.get(url)
    assert hit.from_cache and hit.headers["X-Bar"] == "kept"
    assert "Set-Cookie" not in hit.headers and "X-Foo" not in hit.headers


async def test_10_aborted_body_not_stored(rfc: Callable[..., Client], origin: Origin) -> None:
    c = rfc()
    for _ in range(2):
        with pytest.raises(Exception):  # noqa: B017 - each library has its own payload error
            await c.get(origin.url("/broken/b"))
    assert origin.count("/broken/b") == 2
    assert await c.cache.responses.size() == 0


async def test_11_to_15_freshness_from_headers(rfc: Callable[..., Client], origin: Origin,
                                               clock: Clock) -> None:
    c = rfc()
    in_an_hour = format_datetime(utcnow() + timedelta(hours=1), usegmt=True)
    urls = {
        "mx": path("mx", Cache_Control="max-age=10", Expires=in_an_hour),  # max-age wins: 10 s
        "ex": path("ex", Expires=in_an_hour),  # Expires - Date: ~1 h
        "e0": path("e0", Expires="0"),  # stale at once
        "sm": path("sm", Cache_Control="s-maxage=0, max-age=3600"),  # private: 1 h
        "ag": path("ag", Cache_Control="max-age=3600", Age="5000"),  # stale on arrival
    }
    for url in urls.values():
        await c.get(origin.url(url))
    clock.advance(20)
    for url in urls.values():
        await c.get(origin.url(url))
    assert {name: origin.count(f"/r/{name}") for name in urls} == {
        "mx": 2, "ex": 1, "e0": 2, "sm": 1, "ag": 2}


async def test_16_heuristic_freshness(rfc: Callable[..., Client], origin: Origin, clock: Clock) -> None:
    c = rfc()
    ten_days_ago = format_datetime(utcnow() - timedelta(days=10), usegmt=True)
    url = origin.url(path("h", Last_Modified=ten_days_ago))
    await c.get(url)
    clock.advance(20 * 3600)
    assert (await c.get(url)).from_cache  # ~1 day of heuristic freshness
    clock.advance(5 * 3600)
    assert not (await c.get(url)).from_cache


async def test_18_to_24_request_directives(rfc: Callable[..., Client], origin: Origin,
                                           clock: Clock) -> None:
    c = rfc()
    url = origin.url(path("d", Cache_Control="max-age=60", etag="v1"))
    first = await c.get(url)
    for directive in ("max-age=0", "no-cache"):
        r = await c.get(url, headers={"Cache-Control": directive})
        assert r.status == 200 and r.body == first.body  # a 304 served the stored body
    await c.get(url, headers={"Pragma": "no-cache"})
    assert origin.count("/r/d") == 4
    assert origin.last_headers["/r/d"]["If-None-Match"] == '"v1"'
    clock.advance(50)
    await c.get(url, headers={"Cache-Control": "min-fresh=20"})
    assert origin.count("/r/d") == 5  # the 304 renewed it: fresh for 60 s from here
    clock.advance(70)
    assert (await c.get(url, headers={"Cache-Control": "max-stale=30"})).from_cache
    assert origin.count("/r/d") == 5
    r = await c.get(origin.url("/r/none"), headers={"Cache-Control": "only-if-cached"})
    assert r.status == 504 and origin.count("/r/none") == 0


async def test_25_response_no_cache_revalidates(rfc: Callable[..., Client], origin: Origin) -> None:
    c = rfc()
    url = origin.url(path("nc", Cache_Control="no-cache, max-age=3600", etag="v"))
    for _ in range(3):
        assert (await c.get(url)).status == 200
    assert origin.count("/r/nc") == 3


async def test_26_must_revalidate_gives_504_not_stale(rfc: Callable[..., Client], origin: Origin,
                                                      clock: Clock) -> None:
    c = rfc(stale_if_error=True)
    url = origin.url(path("mr", Cache_Control="max-age=60, must-revalidate"))
    await c.get(url)
    clock.advance(30)
    assert (await c.get(url)).from_cache
    clock.advance(60)
    origin.down = True
    assert (await c.get(url)).status == 504


async def test_27_immutable(rfc: Callable[..., Client], origin: Origin) -> None:
    c = rfc()
    url = origin.url(path("im", Cache_Control="max-age=60, immutable", etag="v"))
    await c.get(url)
    assert (await c.get(url, refresh=True)).from_cache
    assert origin.count("/r/im") == 1


async def test_28_stale_while_revalidate(rfc: Callable[..., Client], origin: Origin,
                                         clock: Clock) -> None:
    c = rfc()
    url = origin.url(path("swr", Cache_Control="max-age=60, stale-while-revalidate=30"))
    await c.get(url)
    clock.advance(70)
    stale = await c.get(url)
    assert stale.from_cache and n(stale.body) == 1  # served at once; a refresh started
    # Stale hits meanwhile start no second refresh; each gets the old body or the new one.
    more = await asyncio.gather(*(c.get(url) for _ in range(5)))
    assert all(r.from_cache and n(r.body) in (1, 2) for r in more)
    await until(lambda: origin.count("/r/swr") >= 2 and not c.cache.background,
                "the background revalidation finished")
    assert origin.count("/r/swr") == 2  # exactly one background revalidation
    assert n((await c.get(url)).body) == 2
    await idle(c)
    clock.advance(200)
    before = origin.count("/r/swr")
    blocking = await c.get(url)
    assert not blocking.from_cache and n(blocking.body) == before + 1


async def test_29_stale_if_error(rfc: Callable[..., Client], origin: Origin, clock: Clock) -> None:
    c = rfc()
    url = origin.url(path("sie", Cache_Control="max-age=60, stale-if-error=30"))
    await c.get(url)
    clock.advance(70)
    origin.down = True
    assert (await c.get(url)).from_cache
    clock.advance(100)
    with pytest.raises(Exception):  # noqa: B017 - the library's own connection error surfaces
        await c.get(url)


async def test_30_32_vary(rfc: Callable[..., Client], origin: Origin) -> None:
    c = rfc()
    url = origin.url(path("v", Cache_Control="max-age=60", Vary="Accept"))
    a = await c.get(url, headers={"Accept": "application/json"})
    b = await c.get(url, headers={"Accept": "text/html"})
    assert (n(a.body), n(b.body)) == (1, 2)
    assert n((await c.get(url, headers={"Accept": "application/json"})).body) == 1
    assert n((await c.get(url, headers={"Accept": "text/html"})).body) == 2
    assert origin.count("/r/v") == 2
    star = origin.url(path("vs", Cache_Control="max-age=60", Vary="*"))
    await c.get(star)
    await c.get(star)
    assert origin.count("/r/vs") == 2


async def test_30_35_invalidation_orphans_every_variant(rfc: Callable[..., Client],
                                                      origin: Origin) -> None:
    c = rfc()
    url = origin.url(path("vi", Cache_Control="max-age=600", Vary="Accept"))
    for accept in ("a/json", "t/html"):
        await c.get(url, headers={"Accept": accept})
    await c.request("POST", url, headers={"X-Status": "204"})
    # After the POST, neither variant may come back, even once the URL is cached again.
    assert not (await c.get(url, headers={"Accept": "a/json"})).from_cache
    assert not (await c.get(url, headers={"Accept": "t/html"})).from_cache
    assert (await c.get(url, headers={"Accept": "t/html"})).from_cache
    assert origin.count("/r/vi") == 5


async def test_33_304_merges_headers_keeps_status(rfc: Callable[..., Client], origin: Origin,
                                                  clock: Clock) -> None:
    c = rfc()
    url = origin.url(path("m", Cache_Control="max-age=1", etag="v1", status="203"))
    first = await c.get(url)
    clock.advance(5)
    second = await c.get(url)
    assert second.status == 203 and second.body == first.body
    assert second.headers["Content-Type"].startswith("application/json")
    assert "If-None-Match" in origin.last_headers["/r/m"]


async def test_34_304_with_other_etag_invalidates(rfc: Callable[..., Client], origin: Origin,
                                                  clock: Clock) -> None:
    c = rfc()
    c.settings.ignored_params = ["etag"]  # same key, the origin changes its ETag
    await c.get(origin.url(path("et", Cache_Control="max-age=1", etag="old")))
    clock.advance(5)
    # The stored ETag is "old"; the origin answers 304 only for "new", so sends a 200.
    r = await c.get(origin.url(path("et", Cache_Control="max-age=1", etag="new")))
    assert r.status == 200 and n(r.body) == 2


async def test_35_unsafe_methods_invalidate(rfc: Callable[..., Client], origin: Origin) -> None:
    c = rfc()
    url = origin.url(path("inv", Cache_Control="max-age=600"))
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        await c.get(url)
        assert (await c.get(url)).from_cache
        await c.request(method, url, headers={"X-Status": "500"})
        assert (await c.get(url)).from_cache  # an error answer keeps the entry
        await c.request(method, url, headers={"X-Status": "201"})
        assert not (await c.get(url)).from_cache, method


async def test_35_invalidation_when_post_is_cached_too(rfc: Callable[..., Client],
                                                      origin: Origin) -> None:
    c = rfc(allowed_methods=("GET", "HEAD", "POST"))
    url = origin.url(path("pc", Cache_Control="max-age=600"))
    await c.get(url)
    await c.request("POST", url, data=b"x", headers={"X-Status": "200"})
    assert not (await c.get(url)).from_cache and origin.count("/r/pc") == 3


async def test_36_range_and_head(rfc: Callable[..., Client], origin: Origin) -> None:
    c = rfc()
    url = origin.url(path("rg", Cache_Control="max-age=60"))
    await c.get(url)
    ranged = await c.get(url, headers={"Range": "bytes=0-3"})
    assert not ranged.from_cache and origin.count("/r/rg") == 2
    head = await c.request("HEAD", url)
    assert head.from_cache and head.body == b"" and origin.count("/r/rg") == 2


# -- SHOULD / MAY beyond the 36 cases (issue 21) ---------------------------------------------------
async def test_rfc9111_4_1_accept_language_normalised_and_selected(rfc: Callable[..., Client],
                                                                  origin: Origin) -> None:
    """Same preferences written otherwise match (§4.1); a response in the language the
    request prefers to all others answers it (RFC 9110 §12.5.4)."""
    c = rfc()
    url = origin.url(path("lang", Cache_Control="max-age=600", Vary="Accept-Language"))
    await c.get(url, headers={"Accept-Language": "en, de"})
    for same in ("EN,DE", "en;q=1.0, de", "en ,  de"):
        assert (await c.get(url, headers={"Accept-Language": same})).from_cache, same
    assert not (await c.get(url, headers={"Accept-Language": "en;q=0.5, de"})).from_cache
    assert not (await c.get(url, headers={"Accept-Language": "de, en"})).from_cache  # a tie
    assert origin.count("/r/lang") == 3
    selected = origin.url(path("sel", Cache_Control="max-age=600", Vary="Accept-Language",
                               Content_Language="de"))
    await c.get(selected, headers={"Accept-Language": "en, de"})
    hit = await c.get(selected, headers={"Accept-Language": "fr;q=0.5, de;q=1.0"})
    assert hit.from_cache and hit.headers["Content-Language"] == "de"
    assert not (await c.get(selected, headers={"Accept-Language": "fr, de"})).from_cache  # a tie
    assert origin.count("/r/sel") == 2


async def test_rfc9111_4_1_without_cache_control_order_still_counts(make_client: MakeClient,
                                                                    origin: Origin) -> None:
    c = make_client()  # the default (peers') mode: values compared as written
    url = origin.url(path("dflt", Vary="Accept-Language"))
    await c.get(url, headers={"Accept-Language": "en, de"})
    assert not (await c.get(url, headers={"Accept-Language": "de, en"})).from_cache
    assert (await c.get(url, headers={"Accept-Language": "en, de"})).from_cache


async def test_rfc9111_5_2_2_9_public_599_heuristically_fresh(rfc: Callable[..., Client],
                                                             origin: Origin, clock: Clock) -> None:
    c = rfc()
    a_day_ago = format_datetime(clock.now - timedelta(days=1), usegmt=True)
    public = origin.url(path("p599", status="599", Cache_Control="public", Last_Modified=a_day_ago))
    private = origin.url(path("n599", status="599", Last_Modified=a_day_ago))
    for url in (public, private, public, private):
        assert (await c.get(url)).status == 599
    assert origin.count("/r/p599") == 1 and origin.count("/r/n599") == 2
    clock.advance(2 * 3600)  # 10% of a day: 2.4 hours
    assert (await c.get(public)).from_cache
    clock.advance(3600)
    assert not (await c.get(public)).from_cache


async def test_rfc9111_4_3_2_if_modified_since_by_date(rfc: Callable[..., Client], origin: Origin,
                                                      clock: Clock) -> None:
    """No Last-Modified: the stored response's Date dates it."""
    c = rfc()
    url = origin.url(path("ims", Cache_Control="max-age=100000"))
    await c.get(url)
    later = format_datetime(clock.now + timedelta(seconds=60), usegmt=True)
    earlier = format_datetime(clock.now - timedelta(seconds=3000), usegmt=True)
    not_modified = await c.get(url, headers={"If-Modified-Since": later})
    assert not_modified.status == 304 and not_modified.from_cache and not_modified.body == b""
    modified = await c.get(url, headers={"If-Modified-Since": earlier})
    assert modified.status == 200 and modified.from_cache and n(modified.body) == 1
    assert origin.count("/r/ims") == 1
