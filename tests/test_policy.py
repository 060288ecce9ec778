"""The sans-IO policy layer: settings, expiration, keys, and the decision core on a fake clock."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from aiocache_http import DO_NOT_CACHE, EXPIRE_IMMEDIATELY, NEVER_EXPIRE, CachedRequest
from aiocache_http.models import CachedResponse
from aiocache_http.policy import CacheSettings, RequestOptions, core, create_key
from aiocache_http.policy.decisions import (
    Decision,
    DontStore,
    Fetch,
    Fresh,
    PassThrough,
    Renew,
    Revalidate,
    Serve,
    ServeStale,
    Store,
)
from aiocache_http.policy.expiration import (
    expiration_datetime,
    expire_after_for_url,
    normalize_expire_after,
    url_match,
)
from aiocache_http.policy.keys import _PLAIN_URL, REDACTED, _Normaliser, normalize_request
from aiocache_http.policy.settings import SETTINGS, settings_table

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)


def req(url: str = "https://example.com/a", method: str = "GET", body: bytes = b"",
        **headers: str) -> CachedRequest:
    return CachedRequest(method, url, CIMultiDict({k.replace("_", "-"): v for k, v in headers.items()}),
                         body)


def stored(expires: datetime | None, at: datetime = T0, **headers: str) -> CachedResponse:
    return CachedResponse(200, "OK", "https://example.com/a",
                          CIMultiDict({k.replace("_", "-"): v for k, v in headers.items()}),
                          b"body", req(), created_at=at, expires=expires, request_time=at,
                          response_time=at)


# -- settings ---------------------------------------------------------------------------
def test_settings_defaults_and_aliases() -> None:
    s = CacheSettings(allowable_codes=[200, 404], allowable_methods=["get", "post"],
                      ignored_parameters=["token"], include_headers=True)
    assert s.allowed_codes == (200, 404)  # tuples, as the peers show them
    assert s.allowed_methods == ("GET", "POST")
    assert s.ignored_params == ("token",)
    assert s.match_headers is True
    assert s.allowable_codes == s.allowed_codes  # aliases read too
    assert CacheSettings().expire_after == NEVER_EXPIRE


@pytest.mark.parametrize(("kwargs", "error", "names"), [
    ({"expire_after": "soon"}, ValueError, "expire_after"),
    ({"expire_after": float("nan")}, ValueError, "expire_after"),  # -5: expired 5 s ago (requests-cache)
    ({"expire_after": object()}, TypeError, "expire_after"),
    ({"allowed_methods": ["FETCH"]}, ValueError, "allowed_methods"),
    ({"allowed_codes": [999]}, ValueError, "allowed_codes"),
    ({"filter_fn": "yes"}, TypeError, "filter_fn"),
    ({"key_fn": 3}, TypeError, "key_fn"),
    ({"expire_aftr": 3}, TypeError, "expire_after"),  # typo: suggests the right name
    ({"stale_if_error": -1}, ValueError, "stale_if_error"),
    ({"urls_expire_after": {"*": "bad"}}, ValueError, "urls_expire_after"),
    ({"secret_key": 123}, TypeError, "secret_key must be .* not int"),  # was: 'int' object is not iterable
    ({"secret_key": ["k", 5]}, TypeError, "secret_key must be .* holding 5"),
])
def test_settings_validation_names_the_setting(kwargs: dict[str, object], error: type[Exception],
                                               names: str) -> None:
    with pytest.raises(error, match=names):
        CacheSettings(**kwargs)


def test_settings_mutable_and_validated_on_assignment() -> None:
    s = CacheSettings()
    s.expire_after = timedelta(minutes=1)
    assert s.expire_after == 60.0
    with pytest.raises(ValueError, match="allowed_methods"):
        s.allowed_methods = ["NOPE"]
    with pytest.raises(AttributeError, match="fixed"):
        s.serializer = "pickle"


# -- expiration ---------------------------------------------------------------------------
@pytest.mark.parametrize(("value", "expected"), [
    (None, NEVER_EXPIRE), (-1, NEVER_EXPIRE), (0, 0.0), (EXPIRE_IMMEDIATELY, 0.0),
    ("EXPIRE_IMMEDIATELY", 0.0), ("DO_NOT_CACHE", DO_NOT_CACHE), (DO_NOT_CACHE, DO_NOT_CACHE),
    (30, 30.0), (1.5, 1.5), (timedelta(hours=1), 3600.0),
])
def test_expire_after_forms(value: object, expected: object) -> None:
    assert normalize_expire_after(value) == expected  # type: ignore[arg-type]


def test_expiration_datetime() -> None:
    assert expiration_datetime(NEVER_EXPIRE, T0) is None
    assert expiration_datetime(60, T0) == T0 + timedelta(seconds=60)
    assert expiration_datetime(0, T0) == T0
    absolute = datetime(2030, 1, 1)  # naive = UTC
    assert expiration_datetime(absolute, T0) == absolute.replace(tzinfo=timezone.utc)
    with pytest.raises(ValueError):
        expiration_datetime(DO_NOT_CACHE, T0)


def test_url_patterns_with_and_without_scheme_first_match_wins() -> None:
    patterns = {"https://site.com/api/*": 1, "site.com/api": 2, "*.org/static/*": 3,
                re.compile(r"/v\d+/"): 4}
    assert expire_after_for_url("https://site.com/api/x", patterns, 9) == 1
    assert expire_after_for_url("http://site.com/api/x", patterns, 9) == 2  # scheme differs
    assert expire_after_for_url("http://cdn.example.org/static/a.js", patterns, 9) == 3
    assert expire_after_for_url("http://other.com/v2/x", patterns, 9) == 4
    assert expire_after_for_url("http://other.com/", patterns, 9) == 9
    assert url_match("http://a.com/x", "a.com")
    assert not url_match("http://b.com/x", "a.com")


# -- keys -----------------------------------------------------------------------------------
def test_key_normalisation() -> None:
    base = create_key(req("https://example.com/a?b=2&a=1"))
    assert len(base) == 64 and int(base, 16) >= 0  # SHA-256, hex
    assert create_key(req("HTTPS://EXAMPLE.com:443/a?a=1&b=2")) == base
    assert create_key(req("https://example.com/a?a=1&b=2#frag")) == base
    assert create_key(req("https://example.com/a?a=1&b=3")) != base
    assert create_key(req("https://example.com/a?a=1&b=2", method="HEAD")) != base
    assert create_key(req("https://example.com:8443/a?a=1&b=2")) != base


def test_key_ignored_params_and_bodies() -> None:
    a = req("https://x.com/?q=1&utm=a")
    b = req("https://x.com/?q=1&utm=b")
    assert create_key(a, ["utm"]) == create_key(b, ["utm"]) != create_key(a)
    j1 = req(method="POST", body=b'{"a": 1, "b": 2, "nonce": 5}', Content_Type="application/json")
    j2 = req(method="POST", body=b'{"b":2,"a":1,"nonce":6}', Content_Type="application/json")
    assert create_key(j1, ["nonce"]) == create_key(j2, ["nonce"])
    f1 = req(method="POST", body=b"a=1&b=2", Content_Type="application/x-www-form-urlencoded")
    f2 = req(method="POST", body=b"b=2&a=1", Content_Type="application/x-www-form-urlencoded")
    assert create_key(f1) == create_key(f2)
    assert create_key(req(method="POST", body=b"x")) != create_key(req(method="POST", body=b"y"))


def test_key_match_headers() -> None:
    en = req(Accept_Language="en", Accept="text/html")
    fr = req(Accept_Language="fr", Accept="text/html")
    assert create_key(en) == create_key(fr)
    by_language = create_key(en, match_headers=["Accept-Language"])
    assert by_language != create_key(fr, match_headers=["accept-language"])
    assert create_key(en, match_headers=True) != create_key(fr, match_headers=True)


@pytest.mark.parametrize("header", ["Authorization", "Cookie", "Proxy-Authorization", "X-API-Key"])
def test_credentials_keyed_and_redacted(header: str) -> None:
    one, two = req(**{header.replace("-", "_"): "secret-1"}), req(**{header.replace("-", "_"): "secret-2"})
    assert create_key(one) != create_key(two) != create_key(req())
    _, redacted = normalize_request(one)
    assert redacted.headers[header] == REDACTED


def test_credential_params_user_info_and_secret_keyed_hash() -> None:
    one = req("https://u:pw@x.com/a?access_token=t1&q=1")
    two = req("https://u:pw@x.com/a?access_token=t2&q=1")
    assert create_key(one) != create_key(two)
    _, redacted = normalize_request(one)
    assert "t1" not in redacted.url and "pw" not in redacted.url and "q=1" in redacted.url
    # ignored_params is the user's explicit opt-out: one shared entry, still redacted.
    assert create_key(one, ["access_token"]) == create_key(two, ["access_token"])
    assert "t1" not in normalize_request(one, ["access_token"])[1].url
    assert create_key(one, secret=b"k1") != create_key(one, secret=b"k2")
    body = req(method="POST", body=b"password=hunter2&u=me",
               Content_Type="application/x-www-form-urlencoded")
    assert b"hunter2" not in normalize_request(body)[1].body


_URL_PIECES = st.sampled_from(["a", "Z", "0", "-", ".", "_", "~", "%2F", "%", "@", ":", ";", "=",
                                "+", "!", "*", "'", "(", "/", "//", "?", "#", "&", " ", "\t",
                                "\u00e9", "\\", "[", "q=1"])


@settings(max_examples=400, deadline=None)
@given(scheme=st.sampled_from(["http", "https", "HTTP", "ftp"]),
       host=st.sampled_from(["x.com", "X.com", "127.0.0.1", "a-b.c", "[::1]", "u:p@h", "h", ""]),
       port=st.sampled_from(["", ":80", ":443", ":8080", ":080", ":0", ":65535", ":65536", ":99999",
                             ":"]),
       path=st.lists(_URL_PIECES, max_size=8).map("".join))
def test_key_url_shortcut_matches_the_general_normalisation(scheme: str, host: str, port: str,
                                                            path: str) -> None:
    """A URL already in normal form skips parsing: the key and the stored URL are the
    same as parsed and put back together (or the shortcut is not taken)."""
    url = f"{scheme}://{host}{port}{('/' if path and path[0] not in '/?#' else '') + path}"
    normaliser = _Normaliser((), None)
    try:
        general = normaliser.parsed_url(url)
    except ValueError:
        with pytest.raises(ValueError):
            normaliser.url(url)
        return
    assert normaliser.url(url) == general


def test_key_url_shortcut_is_taken_for_the_common_shape() -> None:
    assert _PLAIN_URL.match("http://127.0.0.1:8080/item/1") is not None
    assert _PLAIN_URL.match("https://x.com/a?b=1") is None  # queries are normalised in full
    assert _Normaliser((), None).url("http://x.com:80") == ("http://x.com/", "http://x.com")


@pytest.mark.parametrize("url", ["http://x.com:8080/a/b", "https://X.com/a?q=1", "http://u:p@x.com/"])
def test_plain_request_key_and_stored_request(url: str) -> None:
    """A plain request (no header, body or credential) keys as aiohttp-client-cache does
    (the shortcut and the full way agree); the stored request is the redacted URL alone."""
    material, stored = normalize_request(CachedRequest("get", url))
    key_url = _Normaliser((), None).url(url)[0].encode()
    if "@" in url:  # user info is a credential: hashed into the key, redacted in storage
        assert material[2] != b"" and "p@" not in stored.url
    else:
        assert material == [b"GET", key_url, b"", b"", b""]
    assert (stored.method, stored.body, len(stored.headers)) == ("GET", b"", 0)
    assert stored.follow_redirects and stored.verify
    # A credential header makes it another request, with our own parts; a header the
    # key does not match leaves the key alone but is stored.
    assert normalize_request(CachedRequest("GET", url, CIMultiDict(Authorization="x")))[0][2] != b""
    other, stored = normalize_request(CachedRequest("GET", url, CIMultiDict(Accept="x")))
    assert other == material and stored.headers["Accept"] == "x"


# -- the decision core (fake clock) ----------------------------------------------------------
def identify(request: CachedRequest) -> tuple[str, CachedRequest]:
    return create_key(request), request


def plan(request: CachedRequest | None = None, options: RequestOptions | None = None,
         **settings: object) -> core.Plan:
    return core.plan(request or req(), CacheSettings(**settings), options, identify)


def decide(cached: CachedResponse | None, now: datetime = T0, request: CachedRequest | None = None,
           options: RequestOptions | None = None, **settings: object) -> Decision:
    return core.on_lookup(plan(request, options, **settings), cached, now)


def respond(p: core.Plan, status: int, headers: CIMultiDict[str] | None = None,
            sent: Decision | None = None, at: datetime = T0) -> Decision:
    got = core.Received(status, "OK", p.request.url, headers or CIMultiDict(), at, at)
    return core.on_response(p, sent or p.bypass or Fetch("miss"), got)


def test_fresh_hit_stale_refetch_and_validators() -> None:
    entry = stored(T0 + timedelta(seconds=60))
    assert decide(entry, T0 + timedelta(seconds=59)).name == "Serve"
    assert decide(entry, T0 + timedelta(seconds=61)).name == "Fetch"
    with_etag = stored(T0 + timedelta(seconds=60), ETag='"v1"', Last_Modified="Mon, 01 Jan 2024 00:00:00 GMT")
    stale = decide(with_etag, T0 + timedelta(seconds=61))
    assert isinstance(stale, Revalidate)
    assert dict(stale.headers) == {"If-None-Match": '"v1"',
                                   "If-Modified-Since": "Mon, 01 Jan 2024 00:00:00 GMT"}
    assert "stale by 1s" in stale.why()
    assert decide(stored(None), T0 + timedelta(days=999)).name == "Serve"


def test_request_options_and_directives() -> None:
    entry = stored(T0 + timedelta(hours=1), ETag='"v"')
    assert decide(entry, options=RequestOptions(refresh=True)).name == "Revalidate"
    forced = plan(options=RequestOptions(force_refresh=True))
    assert forced.skip_read and core.on_lookup(forced, entry, T0).name == "Fetch"
    assert decide(None, options=RequestOptions(only_if_cached=True)).name == "GatewayTimeout"
    assert decide(entry, options=RequestOptions(only_if_cached=True)).name == "Serve"
    for cc in ("no-cache", "max-age=0"):
        assert decide(entry, request=req(Cache_Control=cc)).name == "Revalidate"
    no_store = plan(req(Cache_Control="no-store"))
    assert isinstance(no_store.bypass, PassThrough) and no_store.bypass.rfc == "RFC 9111 §5.2.1.5"
    assert decide(entry, request=req(Pragma="no-cache")).name == "Revalidate"
    assert plan(req(Range="bytes=0-1")).bypass is not None
    assert decide(entry, always_revalidate=True).name == "Revalidate"
    assert plan(options=RequestOptions(disabled=True)).bypass is not None
    assert plan(options=RequestOptions(keyable=False)).bypass is not None


def test_per_request_expire_after_beats_url_pattern_beats_default() -> None:
    settings = CacheSettings(expire_after=10, urls_expire_after={"example.com/a": 20})
    assert core.expire_after(req().url, settings, RequestOptions(expire_after=30)) == 30.0
    assert core.expire_after(req().url, settings, RequestOptions()) == 20.0
    assert core.expire_after("https://other.com/", settings, RequestOptions()) == 10.0


def test_the_plan_works_out_a_stores_expire_after_once() -> None:
    """Without URL patterns the value is the same for every URL: worked out with the plan
    and used by the store step as is; with patterns, from the stored URL when a store
    first asks (a hit never does)."""
    p = plan(expire_after=60)
    assert p.store_expire_after == 60.0
    assert core.expires(p, 200, CIMultiDict(), T0, T0) == T0 + timedelta(seconds=60)
    per_request = plan(options=RequestOptions(expire_after=5), expire_after=60)
    assert per_request.store_expire_after == 5.0
    patterned = plan(expire_after=60, urls_expire_after={"example.com/a": 20})
    assert patterned.store_expire_after is core.UNSET
    assert core.expires(patterned, 200, CIMultiDict(), T0, T0) == T0 + timedelta(seconds=20)
    assert patterned.store_expire_after == 20.0


def test_storable_and_expires() -> None:
    p = plan(expire_after=60)
    assert isinstance(respond(p, 200), Store)
    not_stored = respond(p, 404)
    assert isinstance(not_stored, DontStore) and "allowed_codes" in not_stored.why()
    assert respond(p, 206).name == "DontStore"
    assert core.expires(p, 200, CIMultiDict(), T0, T0) == T0 + timedelta(seconds=60)
    post = plan(req(method="POST"))
    assert post.bypass is not None and respond(post, 200).name == "DontStore"


def test_304_renews_and_keeps_representation_headers() -> None:
    entry = stored(T0, Content_Type="text/plain", Content_Length="4", ETag='"v1"', X_Old="1")
    p = plan(expire_after=60)
    sent = core.on_lookup(p, entry, T0 + timedelta(seconds=5))
    assert sent.name == "Revalidate"
    later = T0 + timedelta(seconds=10)
    renew = respond(p, 304, CIMultiDict({"Content-Type": "text/html", "Content-Length": "0",
                                         "X-Old": "2", "Cache-Control": "max-age=5"}), sent, later)
    assert isinstance(renew, Renew) and renew.response is not None
    renewed = renew.response
    assert renewed.headers["Content-Type"] == "text/plain"
    assert renewed.headers["Content-Length"] == "4"
    assert renewed.headers["X-Old"] == "2" and renewed.status == 200 and renewed.body == b"body"
    assert renewed.expires == later + timedelta(seconds=60)
    assert entry.headers["X-Old"] == "1"  # the stored object itself is never changed


def test_stale_if_error_and_stale_while_revalidate_bounds() -> None:
    entry = stored(T0)
    late = T0 + timedelta(seconds=30)
    bounded = plan(stale_if_error=10)
    assert not core.stale_if_error_ok(bounded, entry, late)
    assert core.stale_if_error_ok(bounded, entry, T0 + timedelta(seconds=5))
    assert core.stale_if_error_ok(plan(stale_if_error=True), entry, late)
    swr = decide(entry, T0 + timedelta(seconds=5), stale_while_revalidate=10)
    assert isinstance(swr, ServeStale) and isinstance(swr.refresh, Fetch)
    assert decide(entry, late, stale_while_revalidate=10).name == "Fetch"


def test_decisions_are_immutable_and_format_their_reason_lazily() -> None:
    decision = decide(stored(T0 + timedelta(seconds=60)), T0)
    assert isinstance(decision, Serve)
    with pytest.raises(AttributeError):
        decision.reason = "changed"  # type: ignore[misc]
    assert decision.reason == "hit: fresh for %.0fs more" and decision.args == (60.0,)
    assert decision.why() == "hit: fresh for 60s more"


def test_a_hit_without_expiry_says_so() -> None:
    """An entry that never expires: the lookup's reason read "hit: fresh for infs more"
    (the CLI's `get`, events, debug logs)."""
    decision = decide(stored(None), T0)
    assert isinstance(decision, Serve) and decision.why() == "hit: fresh, no expiry"


def test_a_fresh_verdict_is_the_lookup_decision_until_the_entry_expires() -> None:
    """core.fresh_verdict: on_lookup's decision; a fresh hit for a plan without request
    directives comes as a Fresh, the Serve held until the entry expires (with
    cache_control, its Age taken per hit from core.age_at)."""
    entry = stored(T0 + timedelta(seconds=60))
    p = plan()
    fresh = core.fresh_verdict(p, entry, T0)
    assert isinstance(fresh, Fresh) and fresh.stored is entry and not fresh.aged
    assert fresh.until == (T0 + timedelta(seconds=60)).timestamp()
    assert isinstance(fresh.serve, Serve) and fresh.serve.response is entry
    assert fresh.serve.age is None and fresh.serve.why().startswith("hit: fresh until 2026-01-01T12:01")
    assert core.on_lookup(p, entry, T0 + timedelta(seconds=59)).name == "Serve"  # what it stands for
    never = core.fresh_verdict(p, stored(None), T0)
    assert isinstance(never, Fresh) and never.until == float("inf")
    stale = core.fresh_verdict(p, entry, T0 + timedelta(seconds=61))
    assert not isinstance(stale, Fresh) and stale == core.on_lookup(p, entry, T0 + timedelta(seconds=61))
    aged = core.fresh_verdict(plan(cache_control=True), entry, T0)
    assert isinstance(aged, Fresh) and aged.aged and aged.serve.age is None
    assert aged.serve.rfc == "RFC 9111 §4.2"
    assert core.age_at(aged, T0 + timedelta(seconds=10)) == 10.0  # moves with the clock
    for options in (RequestOptions(only_if_cached=True), RequestOptions(refresh=True)):
        assert not isinstance(core.fresh_verdict(plan(options=options), entry, T0), Fresh)
    directive = plan(req(Cache_Control="max-age=10"), RequestOptions(header_rule="cache_control"),
                     cache_control=True)
    assert not isinstance(core.fresh_verdict(directive, entry, T0), Fresh)


# -- the settings table ---------------------------------------------------------------------------
def test_readme_settings_table_is_made_from_the_table() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert settings_table() in readme
    assert {s.name for s in SETTINGS} | {a for s in SETTINGS for a in s.aliases} == CacheSettings.NAMES


def test_every_setting_validates_and_splits_from_the_table() -> None:
    for setting in SETTINGS:
        default = CacheSettings._DEFAULTS[setting.name]  # the suite may tune a deadline
        assert getattr(CacheSettings(), setting.name) == setting.validate(default)
        for alias in setting.aliases:
            ours, rest = CacheSettings.split({alias: setting.default, "timeout": 3})
            assert ours == {alias: setting.default} and rest == {"timeout": 3}


@pytest.mark.parametrize("cache_control", [False, True])
def test_an_event_stream_is_never_stored(cache_control: bool) -> None:
    """An event stream (or a multipart/x-mixed-replace one, a camera's) is live: whatever
    its headers say, it is not stored (with or without cache_control), so nothing waits
    for it to end."""
    p = plan(cache_control=cache_control)
    for content_type in ("text/event-stream", "Text/Event-Stream; charset=utf-8",
                         "multipart/x-mixed-replace; boundary=frame"):
        decision = respond(p, 200, CIMultiDict({"Content-Type": content_type,
                                                "Cache-Control": "max-age=60"}))
        assert isinstance(decision, DontStore) and "live stream" in decision.why()
    assert isinstance(respond(p, 200, CIMultiDict({"Content-Type": "text/plain",
                                                   "Cache-Control": "max-age=60"})), Store)
