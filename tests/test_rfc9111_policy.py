"""The 36 conformance cases of shared/RFC9111.md against the decision core itself
(``policy.core``: pure functions, a fake clock, no IO, no driver), with
``cache_control=True``. Test names carry the case number."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import hypothesis
import hypothesis.strategies as st
import pytest
from multidict import CIMultiDict

from aiocache_http import CachedRequest
from aiocache_http.models import CachedResponse
from aiocache_http.policy import CacheSettings, RequestOptions, core, create_key, freshness
from aiocache_http.policy.core import Received, invalidated_urls
from aiocache_http.policy.decisions import (
    Decision,
    Fetch,
    GatewayTimeout,
    Invalidate,
    Lookup,
    Renew,
    Revalidate,
    Serve,
    ServeStale,
    Store,
)
from aiocache_http.policy.keys import CREDENTIAL_HEADERS, variant_key

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
ALL_CODES = range(100, 600)
URL = "https://example.com/r"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def http_date(when: datetime) -> str:
    return format_datetime(when, usegmt=True)


def H(**headers: str) -> CIMultiDict[str]:
    return CIMultiDict((k.replace("_", "-"), v) for k, v in headers.items())


def req(method: str = "GET", **headers: str) -> CachedRequest:
    return CachedRequest(method, URL, H(**headers))


def identify(request: CachedRequest) -> tuple[str, CachedRequest]:
    return create_key(request), request


def received(status: int = 200, headers: CIMultiDict[str] | None = None, at_: datetime = T0,
             sent: datetime | None = None) -> Received:
    return Received(status, "", URL, headers if headers is not None else H(), sent or at_, at_)


class Cache:
    """Settings plus shorthands for the core's pure functions."""

    def __init__(self, **kw: object) -> None:
        self.settings = CacheSettings(cache_control=True, allowed_codes=ALL_CODES, **kw)

    def plan(self, request: CachedRequest | None = None,
             options: RequestOptions | None = None) -> core.Plan:
        return core.plan(request or req(), self.settings, options, identify)

    def respond(self, status: int = 200, headers: CIMultiDict[str] | None = None,
                request: CachedRequest | None = None, sent: Decision | None = None,
                received_at: datetime = T0) -> Decision:
        p = self.plan(request)
        return core.on_response(p, sent or p.bypass or Fetch("miss"),
                                received(status, headers, received_at))

    def store(self, status: int = 200, headers: CIMultiDict[str] | None = None,
              request: CachedRequest | None = None, received_at: datetime = T0,
              sent_at: datetime | None = None) -> CachedResponse | None:
        p = self.plan(request)
        got = received(status, headers, received_at, sent_at)
        decision = core.on_response(p, p.bypass or Fetch("miss"), got)
        if not isinstance(decision, Store):
            return None
        stored = core.to_store(p, decision, got, b"body")
        return stored if isinstance(stored, CachedResponse) else None

    def decide(self, cached: CachedResponse | None, now: datetime,
               request: CachedRequest | None = None, **options: object) -> Decision:
        return core.on_lookup(self.plan(request, RequestOptions(**options)),  # type: ignore[arg-type]
                              cached, now)


@pytest.fixture
def cache() -> Cache:
    return Cache()


# -- Storage ---------------------------------------------------------------------------------
def test_01_max_age_served_with_age(cache: Cache) -> None:
    entry = cache.store(headers=H(Cache_Control="max-age=60", Date=http_date(T0)))
    assert entry is not None
    assert cache.decide(entry, at(59)).name == "Serve"
    assert freshness.current_age(entry, at(59)) == 59
    assert cache.decide(entry, at(61)).name == "Fetch"


def test_02_response_no_store_not_stored_and_invalidates(cache: Cache) -> None:
    headers = H(Cache_Control="no-store, max-age=60")
    assert cache.store(headers=headers) is None
    decision = cache.respond(headers=headers)
    assert isinstance(decision, Invalidate) and decision.keys == (cache.plan().key,)
    assert decision.rfc == "RFC 9111 §3" and decision.then is not None
    assert decision.then.name == "DontStore" and "no-store" in decision.then.why()


def test_03_request_no_store_not_stored(cache: Cache) -> None:
    assert cache.store(headers=H(Cache_Control="max-age=60"), request=req(Cache_Control="no-store")) is None


def test_04_no_freshness_no_validators_never_served_fresh(cache: Cache) -> None:
    entry = cache.store(headers=H(Date=http_date(T0)))
    assert entry is not None and entry.expires == T0
    assert cache.decide(entry, at(0)).name == "Fetch"
    assert cache.decide(entry, at(1)).name == "Fetch"


@pytest.mark.parametrize("status", [200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501])
def test_05_heuristically_cacheable_with_last_modified_stored(cache: Cache, status: int) -> None:
    headers = H(Date=http_date(T0), Last_Modified=http_date(at(-86400)))
    assert cache.store(status, headers) is not None


@pytest.mark.parametrize("status", [302, 307, 500])
def test_05_other_statuses_without_explicit_freshness_not_stored(cache: Cache, status: int) -> None:
    assert cache.store(status, H(Date=http_date(T0), Last_Modified=http_date(at(-86400)))) is None


@pytest.mark.parametrize("status", [302, 404])
def test_06_explicit_freshness_makes_status_storable(cache: Cache, status: int) -> None:
    entry = cache.store(status, H(Cache_Control="max-age=60"))
    assert entry is not None and cache.decide(entry, at(30)).name == "Serve"


@pytest.mark.parametrize("status", [100, 101, 206, 304])
def test_07_never_stored(cache: Cache, status: int) -> None:
    assert cache.store(status, H(Cache_Control="max-age=60")) is None


def test_08_qualified_no_cache_strips_field(cache: Cache) -> None:
    entry = cache.store(headers=H(Cache_Control='no-cache="Set-Cookie", max-age=60',
                                  Set_Cookie="sid=1", X_Keep="1"))
    assert entry is not None and "Set-Cookie" not in entry.headers and entry.headers["X-Keep"] == "1"
    assert cache.decide(entry, at(10)).name == "Serve"  # no revalidation needed


def test_09_hop_by_hop_and_connection_listed_fields_not_stored(cache: Cache) -> None:
    entry = cache.store(headers=H(Cache_Control="max-age=60", Connection="close, X-Foo", X_Foo="1",
                                  Keep_Alive="timeout=5", Transfer_Encoding="chunked", X_Bar="2"))
    assert entry is not None
    assert set(entry.headers) == {"Cache-Control", "X-Bar"}


def test_10_wrong_length_body_not_usable(cache: Cache) -> None:
    p = cache.plan()

    def kept(headers: CIMultiDict[str], body: bytes) -> bool:
        store = Store("stored", headers=headers, keys=(p.key,))
        return isinstance(core.to_store(p, store, received(200, headers), body), CachedResponse)

    assert not kept(H(Content_Length="10"), b"short")
    assert kept(H(Content_Length="5"), b"exact")
    assert kept(H(Content_Length="10", Content_Encoding="gzip"), b"decoded")
    short = core.to_store(p, Store("stored", headers=H(Content_Length="10"), keys=(p.key,)),
                          received(200, H(Content_Length="10")), b"short")
    assert short.name == "DontStore" and short.rfc == "RFC 9111 §3.3"  # type: ignore[union-attr]


# -- Freshness and age -----------------------------------------------------------------------
def test_11_max_age_beats_expires_then_expires_minus_date(cache: Cache) -> None:
    both = cache.store(headers=H(Cache_Control="max-age=10", Date=http_date(T0),
                                 Expires=http_date(at(3600))))
    assert both is not None and both.expires == at(10)
    only_expires = cache.store(headers=H(Date=http_date(at(-100)), Expires=http_date(at(500))))
    assert only_expires is not None and only_expires.expires == at(600 - 100)


@pytest.mark.parametrize("expires", ["0", "not a date", "-1"])
def test_12_invalid_expires_is_stale(cache: Cache, expires: str) -> None:
    entry = cache.store(headers=H(Date=http_date(T0), Expires=expires))
    assert entry is not None and entry.expires == T0
    assert cache.decide(entry, at(1)).name == "Fetch"


def test_13_s_maxage_ignored_by_a_private_cache(cache: Cache) -> None:
    entry = cache.store(headers=H(Cache_Control="s-maxage=0, max-age=3600", Date=http_date(T0)))
    assert entry is not None and cache.decide(entry, at(100)).name == "Serve"


def test_14_upstream_age_counts(cache: Cache) -> None:
    entry = cache.store(headers=H(Cache_Control="max-age=3600", Age="5000", Date=http_date(T0)))
    assert entry is not None
    assert cache.decide(entry, at(0)).name == "Fetch"  # stale on arrival


def test_15_age_accumulates_resident_time_and_no_date(cache: Cache) -> None:
    entry = cache.store(headers=H(Cache_Control="max-age=60", Date=http_date(T0)), sent_at=at(-2))
    assert entry is not None and freshness.current_age(entry, at(30)) >= 30
    no_date = cache.store(headers=H(Cache_Control="max-age=60"))
    assert no_date is not None
    assert cache.decide(no_date, at(59)).name == "Serve"
    assert cache.decide(no_date, at(61)).name == "Fetch"


def test_16_heuristic_ten_percent_capped() -> None:
    headers = H(Date=http_date(T0), Last_Modified=http_date(at(-10 * 86400)))
    entry = Cache().store(headers=headers)
    assert entry is not None and entry.expires == at(86400)
    capped = Cache(max_heuristic_age=3600).store(headers=headers)
    assert capped is not None and capped.expires == at(3600)


def test_17_no_heuristic_with_explicit_expiry_or_unknown_status(cache: Cache) -> None:
    entry = cache.store(headers=H(Cache_Control="max-age=5", Date=http_date(T0),
                                  Last_Modified=http_date(at(-10 * 86400))))
    assert entry is not None and entry.expires == at(5)
    assert freshness.lifetime(299, H(Date=http_date(T0), Last_Modified=http_date(at(-864000))),
                              T0, 7 * 86400) is None


# -- Request directives ----------------------------------------------------------------------
def test_18_request_max_age_0_revalidates_and_304_updates(cache: Cache) -> None:
    entry = cache.store(headers=H(Cache_Control="max-age=60", ETag='"v1"', X_Version="1"))
    assert entry is not None
    a = cache.decide(entry, at(5), req(Cache_Control="max-age=0"))
    assert isinstance(a, Revalidate) and dict(a.headers)["If-None-Match"] == '"v1"'
    renew = cache.respond(304, H(X_Version="2", Cache_Control="max-age=60"), sent=a, received_at=at(6))
    assert isinstance(renew, Renew) and renew.response is not None and renew.rfc == "RFC 9111 §4.3.4"
    renewed = renew.response
    assert renewed.body == b"body" and renewed.headers["X-Version"] == "2"
    assert renewed.expires == at(66)


def test_19_request_max_age(cache: Cache) -> None:
    entry = cache.store(headers=H(Cache_Control="max-age=60", ETag='"v"'))
    assert cache.decide(entry, at(30), req(Cache_Control="max-age=10")).name == "Revalidate"
    assert cache.decide(entry, at(30), req(Cache_Control="max-age=40")).name == "Serve"
    # A large max-age does not make a stale entry fresh.
    assert cache.decide(entry, at(70), req(Cache_Control="max-age=1000")).name == "Revalidate"


def test_20_max_stale(cache: Cache) -> None:
    entry = cache.store(headers=H(Cache_Control="max-age=60", ETag='"v"'))
    assert cache.decide(entry, at(65), req(Cache_Control="max-stale=10")).name == "ServeStale"
    assert cache.decide(entry, at(80), req(Cache_Control="max-stale=10")).name == "Revalidate"
    far = at(365 * 86400)
    assert cache.decide(entry, far, req(Cache_Control="max-stale")).name == "ServeStale"


def test_21_min_fresh(cache: Cache) -> None:
    entry = cache.store(headers=H(Cache_Control="max-age=60", ETag='"v"'))
    assert cache.decide(entry, at(50), req(Cache_Control="min-fresh=20")).name == "Revalidate"
    assert cache.decide(entry, at(30), req(Cache_Control="min-fresh=20")).name == "Serve"


def test_22_request_no_cache_revalidates_fresh_entry(cache: Cache) -> None:
    entry = cache.store(headers=H(Cache_Control="max-age=60", ETag='"v"'))
    assert cache.decide(entry, at(1), req(Cache_Control="no-cache")).name == "Revalidate"


def test_23_only_if_cached_gateway_timeout(cache: Cache) -> None:
    request = req(Cache_Control="only-if-cached")
    assert cache.decide(None, at(0), request).name == "GatewayTimeout"
    entry = cache.store(headers=H(Cache_Control="max-age=60"))
    assert cache.decide(entry, at(1), request).name == "Serve"
    assert cache.decide(entry, at(100), request).name == "GatewayTimeout"


def test_24_pragma_no_cache_only_without_cache_control(cache: Cache) -> None:
    entry = cache.store(headers=H(Cache_Control="max-age=60", ETag='"v"'))
    assert cache.decide(entry, at(1), req(Pragma="no-cache")).name == "Revalidate"
    both = req(Pragma="no-cache", Cache_Control="max-stale=5")
    assert cache.decide(entry, at(1), both).name == "Serve"  # fresh: max-stale unused


# -- Response directives / RFC 5861 ------------------------------------------------------------
def test_25_response_no_cache_revalidated_every_use(cache: Cache) -> None:
    entry = cache.store(headers=H(Cache_Control="no-cache, max-age=3600", ETag='"v"'))
    assert entry is not None and cache.decide(entry, at(1)).name == "Revalidate"


def test_26_must_revalidate_never_stale() -> None:
    c = Cache(stale_if_error=True, stale_while_revalidate=True)
    entry = c.store(headers=H(Cache_Control="max-age=60, must-revalidate, stale-if-error=999"))
    assert entry is not None
    assert c.decide(entry, at(30)).name == "Serve"  # fresh: no revalidation
    stale = c.decide(entry, at(61), req(Cache_Control="max-stale=1000"))
    assert stale.name == "Revalidate" or stale.name == "Fetch"
    p = c.plan()
    assert not core.stale_if_error_ok(p, entry, at(61))
    instead = core.on_error(p, stale, "ConnectionError", at(61))
    assert isinstance(instead, GatewayTimeout) and instead.rfc == "RFC 9111 §5.2.2.2"


def test_27_immutable_skips_soft_refresh_while_fresh(cache: Cache) -> None:
    entry = cache.store(headers=H(Cache_Control="max-age=60, immutable", ETag='"v"'))
    assert cache.decide(entry, at(1), refresh=True).name == "Serve"
    assert cache.decide(entry, at(1), req(Cache_Control="max-age=0")).name == "Serve"
    assert cache.decide(entry, at(61), refresh=True).name == "Revalidate"


def test_28_stale_while_revalidate(cache: Cache) -> None:
    entry = cache.store(headers=H(Cache_Control="max-age=60, stale-while-revalidate=30", ETag='"v"'))
    within = cache.decide(entry, at(80))
    assert isinstance(within, ServeStale) and isinstance(within.refresh, Revalidate)
    assert within.rfc == "RFC 5861 §3"
    past = cache.decide(entry, at(100))
    assert past.name == "Revalidate"


def test_28_max_age_0_with_a_stale_window_is_stored(cache: Cache) -> None:
    """max-age=0 without a validator is not stored (nothing could serve it), unless a
    stale-while-revalidate or stale-if-error window lets it be served stale."""
    assert cache.store(headers=H(Cache_Control="max-age=0", Date=http_date(T0))) is None
    for cc in ("max-age=0, stale-while-revalidate=30", "max-age=0, stale-if-error=30"):
        assert cache.store(headers=H(Cache_Control=cc, Date=http_date(T0))) is not None
    entry = cache.store(headers=H(Cache_Control="max-age=0, stale-while-revalidate=30",
                                  Date=http_date(T0)))
    within = cache.decide(entry, at(10))
    assert isinstance(within, ServeStale) and within.rfc == "RFC 5861 §3"
    for setting in ("stale_while_revalidate", "stale_if_error"):
        assert Cache(**{setting: 60}).store(headers=H(Cache_Control="max-age=0",
                                                      Date=http_date(T0))) is not None


def test_29_stale_if_error(cache: Cache) -> None:
    entry = cache.store(headers=H(Cache_Control="max-age=60, stale-if-error=30"))
    assert entry is not None
    p = cache.plan()
    assert core.stale_if_error_ok(p, entry, at(80))
    assert not core.stale_if_error_ok(p, entry, at(100))
    sent = cache.decide(entry, at(80))
    served = core.on_error(p, sent, "ConnectionError", at(80))
    assert isinstance(served, ServeStale) and served.rfc == "RFC 5861 §4"
    on_500 = core.on_response(p, sent, received(500, H(), at(80)))
    assert isinstance(on_500, ServeStale) and on_500.response is entry
    assert core.on_error(p, sent, "ConnectionError", at(100)) is None  # the error is the answer


# -- Vary --------------------------------------------------------------------------------------
def test_30_vary_variants_side_by_side(cache: Cache) -> None:
    json_entry = cache.store(headers=H(Cache_Control="max-age=60", Vary="Accept"),
                             request=req(Accept="application/json"))
    assert json_entry is not None
    assert freshness.vary_matches(json_entry, req(Accept="application/json"), CREDENTIAL_HEADERS)
    assert not freshness.vary_matches(json_entry, req(Accept="text/html"), CREDENTIAL_HEADERS)
    names = freshness.vary_names(json_entry.headers)
    keys = {variant_key("k", "g", freshness.vary_values(names, H(Accept=v))) for v in ("a/json", "t/html")}
    assert len(keys) == 2
    assert variant_key("k", "g", freshness.vary_values(names, H(Accept="a/b,  c/d"))) == variant_key(
        "k", "g", freshness.vary_values(names, H(Accept="a/b,c/d")))  # values normalised
    assert variant_key("k", "g2", freshness.vary_values(names, H(Accept="a/json"))) not in keys


def test_30_vary_selection_is_decided_by_the_core(cache: Cache) -> None:
    """The core names the variant to read, then decides from what was read there."""
    html = req(Accept="text/html")
    store = cache.respond(headers=H(Cache_Control="max-age=60", Vary="Accept"), request=html)
    assert isinstance(store, Store) and len(store.keys) == 2 and store.vary_generation
    json_entry = cache.store(headers=H(Cache_Control="max-age=60", Vary="Accept"),
                             request=req(Accept="application/json"))
    assert json_entry is not None
    p = cache.plan(html)
    read_variant = core.on_lookup(p, json_entry, at(1))
    assert isinstance(read_variant, Lookup) and read_variant.variant
    assert read_variant.rfc == "RFC 9111 §4.1" and read_variant.key != p.key
    assert core.on_lookup(p, None, at(1), via=read_variant).name == "Fetch"
    assert core.on_lookup(p, json_entry, at(1), via=read_variant).name == "Fetch"  # still no match


def test_31_vary_star_always_revalidated(cache: Cache) -> None:
    entry = cache.store(headers=H(Cache_Control="max-age=60", Vary="*", ETag='"v"'))
    assert entry is not None and cache.decide(entry, at(1)).name == "Revalidate"


def test_32_vary_absent_in_both_matches_present_in_one_does_not(cache: Cache) -> None:
    entry = cache.store(headers=H(Cache_Control="max-age=60", Vary="Accept-Language"))
    assert entry is not None
    assert freshness.vary_matches(entry, req(), CREDENTIAL_HEADERS)
    assert not freshness.vary_matches(entry, req(Accept_Language="fr"), CREDENTIAL_HEADERS)


# -- Validation / 304 ---------------------------------------------------------------------------
def test_33_both_validators_and_304_merge(cache: Cache) -> None:
    lm = http_date(at(-3600))
    entry = cache.store(headers=H(Cache_Control="max-age=1", ETag='"v1"', Last_Modified=lm,
                                  Content_Type="text/plain", Content_Encoding="identity",
                                  Content_Length="4"))
    assert entry is not None
    a = cache.decide(entry, at(5))
    assert isinstance(a, Revalidate)
    assert dict(a.headers) == {"If-None-Match": '"v1"', "If-Modified-Since": lm}
    renew = cache.respond(304, H(Cache_Control="max-age=100", Date=http_date(at(5)),
                                 Content_Type="text/html", Content_Length="0",
                                 Content_Encoding="gzip"), sent=a, received_at=at(5))
    assert isinstance(renew, Renew) and renew.response is not None
    renewed = renew.response
    assert (renewed.headers["Content-Type"], renewed.headers["Content-Length"],
            renewed.headers["Content-Encoding"]) == ("text/plain", "4", "identity")
    assert renewed.status == 200 and renewed.expires == at(105)
    assert cache.decide(renewed, at(50)).name == "Serve"


def test_34_304_etag_selection_weak_comparison(cache: Cache) -> None:
    entry = cache.store(headers=H(Cache_Control="max-age=1", ETag='W/"x"'))
    a = cache.decide(entry, at(5))
    assert cache.respond(304, H(ETag='"x"'), sent=a, received_at=at(5)).name == "Renew"
    assert cache.respond(304, H(), sent=a, received_at=at(5)).name == "Renew"  # Last-Modified did
    unmatched = cache.respond(304, H(ETag='"y"'), sent=a, received_at=at(5))
    assert isinstance(unmatched, Invalidate) and unmatched.keys == (cache.plan().key,)
    assert isinstance(unmatched.then, Fetch) and unmatched.rfc == "RFC 9111 §4.3.4"


# -- Invalidation / HEAD / Range -------------------------------------------------------------------
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_35_unsafe_methods_invalidate(method: str) -> None:
    url = "https://example.com/r"
    headers = H(Location="/r/new", Content_Location="https://other.com/x")
    assert invalidated_urls(method, url, 201, headers) == [url, "https://example.com/r/new"]
    assert invalidated_urls(method, url, 404, headers) == []
    assert invalidated_urls(method, url, 500, headers) == []
    assert invalidated_urls("GET", url, 200, headers) == []
    cache = Cache()
    decision = cache.respond(201, headers, request=req(method))
    assert isinstance(decision, Invalidate) and decision.rfc == "RFC 9111 §4.4"
    assert decision.urls == (url, "https://example.com/r/new")
    get_key = identify(CachedRequest("GET", url))[0]
    assert get_key in decision.keys and len(decision.keys) == 8  # GET/HEAD, with/without redirects
    assert not isinstance(cache.respond(500, headers, request=req(method)), Invalidate)


def test_35_unknown_methods_are_unsafe_and_invalidate() -> None:
    cache = Cache()
    decision = cache.respond(200, H(), request=req("M-SEARCH"))
    assert isinstance(decision, Invalidate) and decision.urls == (URL,)


def test_head_answered_from_the_stored_get(cache: Cache) -> None:
    entry = cache.store(headers=H(Cache_Control="max-age=60"))
    p = cache.plan(req("HEAD"))
    read_get = core.on_lookup(p, None, at(1))
    assert isinstance(read_get, Lookup) and read_get.head_from_get
    assert read_get.key == identify(req("GET"))[0] and read_get.rfc == "RFC 9111 §4.3.5"
    served = core.on_lookup(p, entry, at(1), via=read_get)
    assert served.name == "Serve" and served.response.body == b""  # type: ignore[attr-defined]


def test_36_range_bypasses_and_206_not_stored(cache: Cache) -> None:
    ranged = cache.plan(req(Range="bytes=0-10"))
    assert ranged.bypass is not None and "Range" in ranged.bypass.why()
    assert cache.store(206, H(Cache_Control="max-age=60")) is None


# -- cache-tests conformance fixes (issue 21), each with its section ---------------------------
@pytest.mark.parametrize("expires", [
    "Thu, 18 Aug 2050 02:01:18 UTC", "Thu, 18 Aug 2050 02:01:18 AEST", "Thu, 18 Aug 50 02:01:18 GMT",
    "Thu 18 Aug 2050 02:01:18 GMT", "Thu, 18  Aug  2050 02:01:18 GMT", "Thu, 18-Aug-2050 02:01:18 GMT",
    "Thu, 18 Aug 2050 02.01.18 GMT", "Thu, 18 Aug 2050 2:01:18 GMT"])
def test_rfc9111_5_3_an_invalid_expires_means_already_expired(cache: Cache, expires: str) -> None:
    entry = cache.store(headers=H(Date=http_date(T0), Expires=expires))
    assert entry is not None and entry.expires == T0


def test_rfc9111_5_3_several_expires_lines_are_invalid(cache: Cache) -> None:
    headers = H(Date=http_date(T0))
    headers.add("Expires", http_date(at(3600)))
    headers.add("Expires", http_date(at(3601)))
    entry = cache.store(headers=headers)
    assert entry is not None and entry.expires == T0


@pytest.mark.parametrize("value", [
    "Thu, 18 Aug 2050 02:01:18 GMT", "Thursday, 18-Aug-50 02:01:18 GMT", "Thu Aug 18 02:01:18 2050",
    "thu, 18 aug 2050 02:01:18 gmt"])
def test_rfc9110_5_6_7_the_three_date_formats_are_read(value: str) -> None:
    from aiocache_http.policy.directives import parse_http_date

    assert parse_http_date(value) == datetime(2050, 8, 18, 2, 1, 18, tzinfo=timezone.utc)


def test_rfc9111_5_1_an_age_list_counts_its_first_value(cache: Cache) -> None:
    entry = cache.store(headers=H(Cache_Control="max-age=3600", Age="7200, 0", Date=http_date(T0)))
    assert entry is not None and cache.decide(entry, at(1)).name == "Fetch"


@pytest.mark.parametrize("vary", ["*", "Accept, *", "*, Accept", "*, *"])
def test_rfc9111_4_1_a_vary_list_with_a_star_never_matches(cache: Cache, vary: str) -> None:
    entry = cache.store(headers=H(Cache_Control="max-age=3600", Vary=vary, ETag='"v"'))
    assert entry is not None and cache.decide(entry, at(1)).name == "Revalidate"


def test_rfc9111_5_2_2_4_a_no_cache_response_is_not_shared_with_a_concurrent_request(
        cache: Cache) -> None:
    entry = cache.store(headers=H(Cache_Control="no-cache", ETag='"def"'))
    assert entry is not None
    assert core.shared(cache.plan(), entry, at(0)).name == "Revalidate"
    fresh = cache.store(headers=H(Cache_Control="max-age=60"))
    assert fresh is not None and core.shared(cache.plan(), fresh, at(0)).name == "Serve"


def test_rfc9111_4_1_a_concurrent_request_gets_its_leaders_response_only_if_vary_matches(
        cache: Cache) -> None:
    entry = cache.store(headers=H(Cache_Control="max-age=60", Vary="Accept-Language"),
                        request=req(Accept_Language="en"))
    assert entry is not None
    same = core.shared(cache.plan(req(Accept_Language="en")), entry, at(0))
    assert same.name == "Serve" and isinstance(same, Serve) and same.response is not None
    for other in (req(Accept_Language="fr"), req()):
        plan = cache.plan(other)
        decision = core.shared(plan, entry, at(0))
        assert isinstance(decision, Lookup) and decision.rfc == "RFC 9111 §4.1"
        assert decision.key == plan.key and decision.vary_generation == entry.vary_generation
        # Reading the key again finds the leader's entry, then this request's variant.
        variant = core.on_lookup(plan, entry, at(0), via=decision)
        assert isinstance(variant, Lookup) and variant.variant and variant.key != plan.key
        assert core.on_lookup(plan, None, at(0), via=variant).name == "Fetch"


@pytest.mark.parametrize("status", [203, 204, 300, 301, 302, 307, 308, 404, 405, 410, 500, 503])
def test_rfc9111_3_any_final_status_with_explicit_freshness_is_stored(status: int) -> None:
    cache = Cache()
    cache.settings = CacheSettings(cache_control=True)  # allowed_codes not given
    assert cache.store(status, H(Cache_Control="max-age=60")) is not None
    assert cache.store(status, H()) is None or status in freshness.HEURISTICALLY_CACHEABLE
    cache.settings = CacheSettings(cache_control=True, allowed_codes=(200,))  # given: it filters
    assert cache.store(status, H(Cache_Control="max-age=60")) is None
    cache.settings = CacheSettings()  # without cache_control: requests-cache's default, 200 only
    assert cache.store(status, H(Cache_Control="max-age=60")) is None


@pytest.mark.parametrize(("conditional", "answered_304"), [
    ({"If-None-Match": '"v1"'}, True), ({"If-None-Match": 'W/"v1"'}, True),
    ({"If-None-Match": '"other", "v1"'}, True), ({"If-None-Match": "*"}, True),
    ({"If-None-Match": '"v2"'}, False),
    ({"If-Modified-Since": "Thu, 01 Jan 2026 11:00:00 GMT"}, True),  # = Last-Modified
    ({"If-Modified-Since": "Thu, 01 Jan 2026 10:00:00 GMT"}, False),  # modified since
])
def test_rfc9111_4_3_2_the_clients_own_conditional_request_is_answered_304(
        cache: Cache, conditional: dict[str, str], answered_304: bool) -> None:
    entry = cache.store(headers=H(Cache_Control="max-age=60", ETag='"v1"', Content_Type="text/plain",
                                  Last_Modified="Thu, 01 Jan 2026 11:00:00 GMT"))
    assert entry is not None
    served = cache.decide(entry, at(1), CachedRequest("GET", URL, CIMultiDict(conditional)))
    assert served.name == "Serve"
    response = served.response  # type: ignore[attr-defined]
    assert (response.status == 304) is answered_304
    if answered_304:
        assert response.body == b"" and "Content-Type" not in response.headers
        assert response.headers["ETag"] == '"v1"'


def test_rfc9111_5_2_2_3_must_understand_overrides_no_store_for_a_known_status(cache: Cache) -> None:
    headers = H(Cache_Control="max-age=3600, no-store, must-understand")
    assert cache.store(200, headers) is not None
    assert cache.store(299, headers) is None


def test_rfc9110_9_3_3_a_post_response_for_its_own_uri_is_stored_for_get(cache: Cache) -> None:
    post = req("POST")
    headers = H(Cache_Control="max-age=3600", Content_Location=URL)
    decision = cache.respond(200, headers, request=post)
    assert isinstance(decision, Invalidate)  # the POST invalidates the URI (§4.4), then...
    store = decision.then
    assert isinstance(store, Store) and store.rfc == "RFC 9110 §9.3.3"
    assert store.keys == (identify(req("GET"))[0],) and store.request is not None
    assert store.request.method == "GET"
    elsewhere = cache.respond(200, H(Cache_Control="max-age=3600", Content_Location="/other"),
                              request=post)
    assert isinstance(elsewhere, Invalidate) and elsewhere.then is not None
    assert elsewhere.then.name == "DontStore"


# -- SHOULD / MAY beyond the required (issue 21), each with its section --------------------------
def _varies_on_language(cache: Cache, sent: str, **response: str) -> CachedResponse:
    entry = cache.store(headers=H(Cache_Control="max-age=3600", Vary="Accept-Language", **response),
                        request=req(Accept_Language=sent))
    assert entry is not None
    return entry


@pytest.mark.parametrize("again", ["EN,DE", " en ,   de", "en;q=1, de;q=1.000", "en;Q=1, de"])
def test_rfc9111_4_1_negotiation_fields_compare_by_meaning(cache: Cache, again: str) -> None:
    """§4.1: values that normalise to the same semantics match; in the content negotiation
    fields case, spaces, the spelling of q and the order of distinct weights carry no
    meaning (RFC 9110 §12.4.2); equal weights keep the order sent (origins break ties by
    it, RFC 9110 §12.5.4)."""
    entry = _varies_on_language(cache, "en, de")
    assert cache.decide(entry, at(1), req(Accept_Language=again)).name == "Serve"
    store = cache.respond(headers=H(Cache_Control="max-age=3600", Vary="Accept-Language"),
                          request=req(Accept_Language=again))
    first = cache.respond(headers=H(Cache_Control="max-age=3600", Vary="Accept-Language"),
                          request=req(Accept_Language="en, de"))
    assert isinstance(store, Store) and isinstance(first, Store)
    values = freshness.vary_values(["accept-language"], H(Accept_Language=again), negotiated=True)
    assert values == freshness.vary_values(["accept-language"], H(Accept_Language="en, de"),
                                           negotiated=True)  # one variant key for both


@pytest.mark.parametrize(("one", "other", "same"), [
    ("text/html;level=1, */*;q=0.1", "*/*; q=0.1 ,TEXT/HTML; level=1", True),
    ("gzip, deflate", "deflate, gzip", False),  # a tie: some origins decide it by order
    ("gzip;q=0.5, deflate", "deflate, gzip;q=0.5", True),
    ("text/html;charset=UTF-8", "text/html;charset=utf-8", False),  # a parameter value as written
    ('a;x="1, 2", b', 'b, a;x="1, 2"', False),  # quoted: unreadable, compared as written
    ("en;q=.5, de", "de, en;q=.5", False),      # not a qvalue (RFC 9110 §12.4.2): as written
    ("en;q=0.50", "en;q=0.5", True),
    ("en, en", "en", False),
])
def test_rfc9110_12_4_2_negotiation_values_normalised_only_where_the_meaning_is_known(
        one: str, other: str, same: bool) -> None:
    from aiocache_http.policy import negotiation

    for name in ("Accept", "Accept-Encoding"):
        values = [freshness.vary_values([name.lower()], H(**{name.replace("-", "_"): v}),
                                        negotiated=True) for v in (one, other)]
        assert (values[0] == values[1]) is same, (name, values)
    assert (negotiation.canonical(one) is None) is ('"' in one or "q=." in one)


@pytest.mark.parametrize("other", ["de, en", "en;q=0.5, de", "en", "de, en;q=0", "de;q=0.9, en", "de-CH, en",
                                   'en;foo="1", de'])
def test_rfc9111_4_1_different_preferences_do_not_match(cache: Cache, other: str) -> None:
    entry = _varies_on_language(cache, "en, de")  # no Content-Language: nothing to select by
    decision = cache.decide(entry, at(1), req(Accept_Language=other))
    assert isinstance(decision, Lookup) and decision.variant and decision.rfc == "RFC 9111 §4.1"


def test_rfc9111_4_1_without_cache_control_values_compare_as_written() -> None:
    """The default (requests-cache) mode keeps its comparison: order is significant."""
    entry = _varies_on_language(Cache(), "en, de")
    p = core.plan(req(Accept_Language="de, en"), CacheSettings(), None, identify)
    decision = core.on_lookup(p, entry, at(1))
    assert isinstance(decision, Lookup) and decision.variant
    assert core.on_lookup(core.plan(req(Accept_Language="en,de"), CacheSettings(), None, identify),
                          entry, at(1)).name == "Serve"


@pytest.mark.parametrize(("asked", "content_language", "served"), [
    ("fr;q=0.5, de;q=1.0", "de", True),   # de preferred to everything else
    ("de", "DE", True),
    ("de, fr;q=0.9, *;q=0.1", "de", True),
    ("fr, de", "de", False),              # a tie: the origin might pick fr
    ("fr;q=0.5, de;q=0.4", "de", False),  # fr preferred
    ("de-CH, de;q=0.9", "de", False),     # the most preferred tag is another one
    ("*", "de", False),
    ("de;q=0", "de", False),
    ("de", "de, en", False),              # a response in two languages: not selected by one
])
def test_rfc9111_4_1_rfc9110_12_5_4_the_preferred_language_selects_the_stored_response(
        cache: Cache, asked: str, content_language: str, served: bool) -> None:
    """A response in the one language the request prefers to all others is what
    negotiation on Accept-Language selects for it, whatever else the request lists."""
    entry = _varies_on_language(cache, "en, de", Content_Language=content_language)
    decision = cache.decide(entry, at(1), req(Accept_Language=asked))
    assert (decision.name == "Serve") is served, decision.why()


def test_rfc9111_4_1_a_vary_on_another_field_still_decides(cache: Cache) -> None:
    entry = cache.store(headers=H(Cache_Control="max-age=3600", Vary="Accept-Language, Accept",
                                  Content_Language="de"),
                        request=req(Accept_Language="en, de", Accept="text/html"))
    assert entry is not None
    asked = {"Accept-Language": "fr;q=0.5, de"}
    assert cache.decide(entry, at(1), CachedRequest("GET", URL, CIMultiDict(
        asked, Accept="text/html"))).name == "Serve"
    assert cache.decide(entry, at(1), CachedRequest("GET", URL, CIMultiDict(
        asked, Accept="application/json"))).name == "Lookup"


def test_rfc9111_5_2_2_9_public_makes_any_status_heuristically_cacheable(cache: Cache) -> None:
    """§5.2.2.9: a public response without explicit freshness is heuristically cacheable
    (§4.2.2), whatever its status; without public a 599 is not stored (§3)."""
    headers = H(Date=http_date(T0), Last_Modified=http_date(at(-86400)))
    assert cache.store(599, headers) is None
    headers["Cache-Control"] = "public"
    entry = cache.store(599, headers)
    assert entry is not None and entry.expires == at(8640)  # 10% of a day
    assert cache.decide(entry, at(8639)).name == "Serve"
    assert cache.decide(entry, at(8641)).name == "Revalidate"  # stale: If-Modified-Since
    bounded = Cache(max_heuristic_age=60).store(599, headers)
    assert bounded is not None and bounded.expires == at(60)
    unheuristic = Cache(max_heuristic_age=False).store(599, headers)  # public: still storable
    assert unheuristic is not None and unheuristic.expires == T0  # but never fresh


@pytest.mark.parametrize(("since", "answered_304"), [
    (0, True), (3000, True), (-1, False), (-3000, False)])
def test_rfc9111_4_3_2_if_modified_since_without_last_modified_uses_the_date(
        cache: Cache, since: int, answered_304: bool) -> None:
    """§4.3.2: without Last-Modified the stored response's Date dates it (the fresh
    response was generated at its Date: not modified since any later time)."""
    entry = cache.store(headers=H(Cache_Control="max-age=100000", Date=http_date(T0)))
    assert entry is not None
    asked = req(If_Modified_Since=http_date(at(since)))
    served = cache.decide(entry, at(10), asked)
    assert served.name == "Serve"
    assert (served.response.status == 304) is answered_304  # type: ignore[attr-defined]


def test_rfc9111_4_3_2_if_modified_since_without_any_date_uses_the_time_received(
        cache: Cache) -> None:
    entry = cache.store(headers=H(Cache_Control="max-age=100000"), received_at=at(100))
    assert entry is not None and "Date" not in entry.headers
    for since, status in ((at(100), 304), (at(99), 200)):
        served = cache.decide(entry, at(110), req(If_Modified_Since=http_date(since)))
        assert served.response.status == status  # type: ignore[attr-defined]


def test_rfc9111_4_4_invalidation_keys_leave_out_the_fields_of_the_request_body() -> None:
    """§4.4 invalidates the stored GET / HEAD responses of the target URI: the fields
    that describe the unsafe request's body are not in their keys, even when headers
    are matched."""
    def keyed(request: CachedRequest) -> tuple[str, CachedRequest]:
        return create_key(request, match_headers=True), request

    cache = Cache(match_headers=True)
    post = CachedRequest("POST", URL, H(Accept="text/html", Content_Type="application/json",
                                         Content_Length="2", Content_Encoding="gzip"))
    decision = core.on_response(core.plan(post, cache.settings, None, keyed), Fetch("miss"),
                                received(200, H()))
    assert isinstance(decision, Invalidate)
    assert keyed(CachedRequest("GET", URL, H(Accept="text/html")))[0] in decision.keys


_TAGS = st.sampled_from(["en", "de", "fr", "en-GB", "de-CH", "*", "gzip", "text/html", "*/*"])
_WEIGHTS = st.sampled_from([None, "1", "1.0", "1.000", "0.5", "0.50", "0.123", "0", "0.000"])


@hypothesis.settings(max_examples=200, deadline=None)
@hypothesis.given(st.lists(st.tuples(_TAGS, _WEIGHTS), min_size=1, max_size=6, unique_by=lambda e: e[0]),
                  st.randoms(use_true_random=False))
def test_rfc9111_4_1_negotiation_canonical_form_is_order_and_spelling_free(
        elements: list[tuple[str, str | None]], rnd: random.Random) -> None:
    from aiocache_http.policy import negotiation

    def spell(items: list[tuple[str, str | None]], upper: bool, space: str) -> str:
        return f",{space}".join((t.upper() if upper else t) + ("" if q is None else f";{space}q={q}")
                                for t, q in items)

    def weight(q: str | None) -> int:
        return 1000 if q is None else round(float(q) * 1000)

    # any order of the distinct weights; equal weights keep their relative order
    shuffled = list(elements)
    rnd.shuffle(shuffled)
    ties: dict[int, list[tuple[str, str | None]]] = {}
    for element in elements:
        ties.setdefault(weight(element[1]), []).append(element)
    in_order = {w: iter(group) for w, group in ties.items()}
    shuffled = [next(in_order[weight(q)]) for _, q in shuffled]
    first = negotiation.canonical(spell(elements, False, ""))
    assert first is not None
    assert negotiation.canonical(spell(shuffled, True, " ")) == first
    assert negotiation.canonical(first) == first  # a fixed point
    assert negotiation.preferred(spell(shuffled, False, " ")) == negotiation.preferred(first)
