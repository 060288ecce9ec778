"""The 36 conformance cases of shared/RFC9111.md against the sans-IO policy, on a fake
clock (``cache_control=True``). Test names carry the case number."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
from multidict import CIMultiDict

from aiocache_http.models import CachedRequest, CachedResponse
from aiocache_http.policy import CacheActions, CacheSettings, Decision, RequestOptions, freshness
from aiocache_http.policy.actions import invalidated_urls
from aiocache_http.policy.keys import CREDENTIAL_HEADERS, variant_key

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
ALL_CODES = range(100, 600)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def http_date(when: datetime) -> str:
    return format_datetime(when, usegmt=True)


def H(**headers: str) -> CIMultiDict[str]:
    return CIMultiDict((k.replace("_", "-"), v) for k, v in headers.items())


def req(method: str = "GET", **headers: str) -> CachedRequest:
    return CachedRequest(method, "https://example.com/r", H(**headers))


def settings(**kw: object) -> CacheSettings:
    return CacheSettings(cache_control=True, allowed_codes=ALL_CODES, **kw)


class Cache:
    """Drives CacheActions the way the driver does, minus the IO."""

    def __init__(self, **kw: object) -> None:
        self.settings = settings(**kw)

    def actions(self, request: CachedRequest | None = None,
                options: RequestOptions | None = None) -> CacheActions:
        return CacheActions.from_request("k", request or req(), self.settings, options)

    def store(self, status: int = 200, headers: CIMultiDict[str] | None = None,
              request: CachedRequest | None = None, received: datetime = T0,
              sent: datetime | None = None) -> CachedResponse | None:
        a = self.actions(request)
        headers = headers if headers is not None else H()
        if not a.storable(status, headers):
            return None
        kept = a.headers_to_store(headers)
        return CachedResponse(status, "", "https://example.com/r", kept, b"body", a.request,
                              created_at=received, request_time=sent or received,
                              response_time=received,
                              expires=a.expires(status, kept, sent or received, received))

    def decide(self, cached: CachedResponse | None, now: datetime,
               request: CachedRequest | None = None, **options: object) -> CacheActions:
        a = self.actions(request, RequestOptions(**options))  # type: ignore[arg-type]
        a.on_cached(cached, now)
        return a


@pytest.fixture
def cache() -> Cache:
    return Cache()


# -- Storage ---------------------------------------------------------------------------------
def test_01_max_age_served_with_age(cache: Cache) -> None:
    entry = cache.store(headers=H(Cache_Control="max-age=60", Date=http_date(T0)))
    assert entry is not None
    assert cache.decide(entry, at(59)).decision is Decision.SERVE
    assert freshness.current_age(entry, at(59)) == 59
    assert cache.decide(entry, at(61)).decision is Decision.FETCH


def test_02_response_no_store_not_stored_and_invalidates(cache: Cache) -> None:
    headers = H(Cache_Control="no-store, max-age=60")
    assert cache.store(headers=headers) is None
    assert cache.actions().invalidates_stored(headers)


def test_03_request_no_store_not_stored(cache: Cache) -> None:
    assert cache.store(headers=H(Cache_Control="max-age=60"), request=req(Cache_Control="no-store")) is None


def test_04_no_freshness_no_validators_never_served_fresh(cache: Cache) -> None:
    entry = cache.store(headers=H(Date=http_date(T0)))
    assert entry is not None and entry.expires == T0
    assert cache.decide(entry, at(0)).decision is Decision.FETCH
    assert cache.decide(entry, at(1)).decision is Decision.FETCH


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
    assert entry is not None and cache.decide(entry, at(30)).decision is Decision.SERVE


@pytest.mark.parametrize("status", [100, 101, 206, 304])
def test_07_never_stored(cache: Cache, status: int) -> None:
    assert cache.store(status, H(Cache_Control="max-age=60")) is None


def test_08_qualified_no_cache_strips_field(cache: Cache) -> None:
    entry = cache.store(headers=H(Cache_Control='no-cache="Set-Cookie", max-age=60',
                                  Set_Cookie="sid=1", X_Keep="1"))
    assert entry is not None and "Set-Cookie" not in entry.headers and entry.headers["X-Keep"] == "1"
    assert cache.decide(entry, at(10)).decision is Decision.SERVE  # no revalidation needed


def test_09_hop_by_hop_and_connection_listed_fields_not_stored(cache: Cache) -> None:
    entry = cache.store(headers=H(Cache_Control="max-age=60", Connection="close, X-Foo", X_Foo="1",
                                  Keep_Alive="timeout=5", Transfer_Encoding="chunked", X_Bar="2"))
    assert entry is not None
    assert set(entry.headers) == {"Cache-Control", "X-Bar"}


def test_10_wrong_length_body_not_usable(cache: Cache) -> None:
    a = cache.actions()
    assert not a.complete(H(Content_Length="10"), b"short")
    assert a.complete(H(Content_Length="5"), b"exact")
    assert a.complete(H(Content_Length="10", Content_Encoding="gzip"), b"decoded")


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
    assert cache.decide(entry, at(1)).decision is Decision.FETCH


def test_13_s_maxage_ignored_by_a_private_cache(cache: Cache) -> None:
    entry = cache.store(headers=H(Cache_Control="s-maxage=0, max-age=3600", Date=http_date(T0)))
    assert entry is not None and cache.decide(entry, at(100)).decision is Decision.SERVE


def test_14_upstream_age_counts(cache: Cache) -> None:
    entry = cache.store(headers=H(Cache_Control="max-age=3600", Age="5000", Date=http_date(T0)))
    assert entry is not None
    assert cache.decide(entry, at(0)).decision is Decision.FETCH  # stale on arrival


def test_15_age_accumulates_resident_time_and_no_date(cache: Cache) -> None:
    entry = cache.store(headers=H(Cache_Control="max-age=60", Date=http_date(T0)), sent=at(-2))
    assert entry is not None and freshness.current_age(entry, at(30)) >= 30
    no_date = cache.store(headers=H(Cache_Control="max-age=60"))
    assert no_date is not None
    assert cache.decide(no_date, at(59)).decision is Decision.SERVE
    assert cache.decide(no_date, at(61)).decision is Decision.FETCH


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
    assert a.decision is Decision.REVALIDATE and a.validation_headers["If-None-Match"] == '"v1"'
    renewed = a.renew(entry, H(X_Version="2", Cache_Control="max-age=60"), at(6), at(6))
    assert renewed.body == b"body" and renewed.headers["X-Version"] == "2"
    assert renewed.expires == at(66)


def test_19_request_max_age(cache: Cache) -> None:
    entry = cache.store(headers=H(Cache_Control="max-age=60", ETag='"v"'))
    assert cache.decide(entry, at(30), req(Cache_Control="max-age=10")).decision is Decision.REVALIDATE
    assert cache.decide(entry, at(30), req(Cache_Control="max-age=40")).decision is Decision.SERVE
    # A large max-age does not make a stale entry fresh.
    assert cache.decide(entry, at(70), req(Cache_Control="max-age=1000")).decision is Decision.REVALIDATE


def test_20_max_stale(cache: Cache) -> None:
    entry = cache.store(headers=H(Cache_Control="max-age=60", ETag='"v"'))
    assert cache.decide(entry, at(65), req(Cache_Control="max-stale=10")).decision is Decision.SERVE
    assert cache.decide(entry, at(80), req(Cache_Control="max-stale=10")).decision is Decision.REVALIDATE
    far = at(365 * 86400)
    assert cache.decide(entry, far, req(Cache_Control="max-stale")).decision is Decision.SERVE


def test_21_min_fresh(cache: Cache) -> None:
    entry = cache.store(headers=H(Cache_Control="max-age=60", ETag='"v"'))
    assert cache.decide(entry, at(50), req(Cache_Control="min-fresh=20")).decision is Decision.REVALIDATE
    assert cache.decide(entry, at(30), req(Cache_Control="min-fresh=20")).decision is Decision.SERVE


def test_22_request_no_cache_revalidates_fresh_entry(cache: Cache) -> None:
    entry = cache.store(headers=H(Cache_Control="max-age=60", ETag='"v"'))
    assert cache.decide(entry, at(1), req(Cache_Control="no-cache")).decision is Decision.REVALIDATE


def test_23_only_if_cached_gateway_timeout(cache: Cache) -> None:
    request = req(Cache_Control="only-if-cached")
    assert cache.decide(None, at(0), request).decision is Decision.GATEWAY_TIMEOUT
    entry = cache.store(headers=H(Cache_Control="max-age=60"))
    assert cache.decide(entry, at(1), request).decision is Decision.SERVE
    assert cache.decide(entry, at(100), request).decision is Decision.GATEWAY_TIMEOUT


def test_24_pragma_no_cache_only_without_cache_control(cache: Cache) -> None:
    entry = cache.store(headers=H(Cache_Control="max-age=60", ETag='"v"'))
    assert cache.decide(entry, at(1), req(Pragma="no-cache")).decision is Decision.REVALIDATE
    both = req(Pragma="no-cache", Cache_Control="max-stale=5")
    assert cache.decide(entry, at(1), both).decision is Decision.SERVE


# -- Response directives / RFC 5861 ------------------------------------------------------------
def test_25_response_no_cache_revalidated_every_use(cache: Cache) -> None:
    entry = cache.store(headers=H(Cache_Control="no-cache, max-age=3600", ETag='"v"'))
    assert entry is not None and cache.decide(entry, at(1)).decision is Decision.REVALIDATE


def test_26_must_revalidate_never_stale() -> None:
    c = Cache(stale_if_error=True, stale_while_revalidate=True)
    entry = c.store(headers=H(Cache_Control="max-age=60, must-revalidate, stale-if-error=999"))
    assert entry is not None
    assert c.decide(entry, at(30)).decision is Decision.SERVE  # fresh: no revalidation
    stale = c.decide(entry, at(61), req(Cache_Control="max-stale=1000"))
    assert stale.decision is Decision.FETCH and not stale.background_refresh
    assert not stale.stale_if_error_ok(entry, at(61))
    assert stale.error_instead_of_stale()


def test_27_immutable_skips_soft_refresh_while_fresh(cache: Cache) -> None:
    entry = cache.store(headers=H(Cache_Control="max-age=60, immutable", ETag='"v"'))
    assert cache.decide(entry, at(1), refresh=True).decision is Decision.SERVE
    assert cache.decide(entry, at(1), req(Cache_Control="max-age=0")).decision is Decision.SERVE
    assert cache.decide(entry, at(61), refresh=True).decision is Decision.REVALIDATE


def test_28_stale_while_revalidate(cache: Cache) -> None:
    entry = cache.store(headers=H(Cache_Control="max-age=60, stale-while-revalidate=30", ETag='"v"'))
    within = cache.decide(entry, at(80))
    assert within.decision is Decision.SERVE and within.background_refresh
    past = cache.decide(entry, at(100))
    assert past.decision is Decision.REVALIDATE and not past.background_refresh


def test_29_stale_if_error(cache: Cache) -> None:
    entry = cache.store(headers=H(Cache_Control="max-age=60, stale-if-error=30"))
    assert entry is not None
    a = cache.actions()
    assert a.stale_if_error_ok(entry, at(80))
    assert not a.stale_if_error_ok(entry, at(100))


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


def test_31_vary_star_always_revalidated(cache: Cache) -> None:
    entry = cache.store(headers=H(Cache_Control="max-age=60", Vary="*", ETag='"v"'))
    assert entry is not None and cache.decide(entry, at(1)).decision is Decision.REVALIDATE


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
    assert a.validation_headers == {"If-None-Match": '"v1"', "If-Modified-Since": lm}
    renewed = a.renew(entry, H(Cache_Control="max-age=100", Date=http_date(at(5)),
                               Content_Type="text/html", Content_Length="0",
                               Content_Encoding="gzip"), at(5), at(5))
    assert (renewed.headers["Content-Type"], renewed.headers["Content-Length"],
            renewed.headers["Content-Encoding"]) == ("text/plain", "4", "identity")
    assert renewed.status == 200 and renewed.expires == at(105)
    assert cache.decide(renewed, at(50)).decision is Decision.SERVE


def test_34_304_etag_selection_weak_comparison(cache: Cache) -> None:
    entry = cache.store(headers=H(Cache_Control="max-age=1", ETag='W/"x"'))
    a = cache.decide(entry, at(5))
    assert a.selects_stored(H(ETag='"x"'))
    assert not a.selects_stored(H(ETag='"y"'))
    assert a.selects_stored(H())  # no ETag in the 304: Last-Modified validated it


# -- Invalidation / HEAD / Range -------------------------------------------------------------------
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_35_unsafe_methods_invalidate(method: str) -> None:
    url = "https://example.com/r"
    headers = H(Location="/r/new", Content_Location="https://other.com/x")
    assert invalidated_urls(method, url, 201, headers) == [url, "https://example.com/r/new"]
    assert invalidated_urls(method, url, 404, headers) == []
    assert invalidated_urls(method, url, 500, headers) == []
    assert invalidated_urls("GET", url, 200, headers) == []


def test_36_range_bypasses_and_206_not_stored(cache: Cache) -> None:
    ranged = cache.actions(req(Range="bytes=0-10"))
    assert ranged.skip_read and ranged.skip_write
    assert cache.store(206, H(Cache_Control="max-age=60")) is None
