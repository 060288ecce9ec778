"""The decision core: given the request, the settings, the clock and what storage
returned, say what to do next (a value from :mod:`.decisions`) and why.

Pure: no IO, no awaiting, no HTTP library. Keys come from the ``identify`` function the
caller passes in (the backend's key function: pure too). The driver carries the
decisions out; this module is the one place where they are made, so an event, a
metric or ``show --why`` reads them from one place.

Without ``cache_control`` the requests-cache semantics hold: expiry comes from the
``expire_after`` settings, and request directives (``no-store``, ``no-cache``,
``max-age=0``, ``only-if-cached``) are honoured all the same.
"""

from __future__ import annotations

import enum
import functools
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from urllib.parse import urljoin, urlsplit

from multidict import CIMultiDict, MultiMapping

from ..models import CachedRequest, CachedResponse, Facts
from ..models.frozen import fast_init
from . import freshness
from .decisions import (
    Decision,
    DontStore,
    Fetch,
    Fresh,
    GatewayTimeout,
    Invalidate,
    Lookup,
    PassThrough,
    Renew,
    Revalidate,
    Serve,
    ServeStale,
    Store,
    gateway_timeout,
)
from .directives import has_pragma_no_cache, parse_cache_control, seconds
from .expiration import (
    DO_NOT_CACHE,
    EXPIRE_IMMEDIATELY,
    NEVER_EXPIRE,
    ExpirationTime,
    expiration_datetime,
    expire_after_for_url,
    normalize_expire_after,
)
from .keys import CREDENTIAL_HEADERS, redact_url, unkeyed_credentials, variant_key
from .settings import CacheSettings

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
"""RFC 9110 §9.2.1. Any other method is unsafe, known or not (RFC 9111 §4.4)."""

# A 304 must not change how the stored body is decoded (RFC 9111 §3.2 lets a cache keep them).
_KEEP_ON_304 = frozenset({"content-length", "content-encoding", "content-type",
                          "transfer-encoding"})
_INF = float("inf")
# Representation metadata a 304 does not repeat (RFC 9110 §15.4.5).
_NOT_IN_304 = frozenset({"content-length", "content-type", "content-encoding", "content-range",
                         "transfer-encoding", "content-language"})

Identify = Callable[[CachedRequest], tuple[str, CachedRequest]]
"""The backend's key function: request -> (cache key, the request as it may be stored)."""


class _Unset(enum.Enum):
    UNSET = enum.auto()


UNSET = _Unset.UNSET


@fast_init
@dataclass(frozen=True, slots=True)
class RequestOptions:
    """Per-request cache options, as given to ``session.get(url, ...)``.

    ``refresh`` revalidates a fresh entry (a conditional request when it has validators);
    ``force_refresh`` ignores the stored entry and fetches a new one. ``disabled`` (the
    session's ``cache_disabled()``) and ``keyable=False`` (a streamed request body) make
    the request pass the cache by.
    """

    expire_after: ExpirationTime | _Unset = UNSET
    refresh: bool = False
    force_refresh: bool = False
    only_if_cached: bool = False
    disabled: bool = False
    keyable: bool = True
    header_rule: str = "always"
    """When the request's Cache-Control applies, where the two peers differ: ``"always"``
    (requests-cache's rule, the sync session's) or ``"cache_control"`` (aiohttp-client-
    cache's, the async session's): only with ``cache_control=True``, and then a request
    ``max-age=0`` passes the cache by, ``no-cache`` fetches anew, and a request
    ``max-age`` outranks the response's own freshness."""


_NO_OPTIONS = RequestOptions()


@dataclass(slots=True)
class Plan:
    """What the request asks of the cache, worked out once by :func:`plan` (RFC 9111
    §5.2.1). Not changed afterwards.

    ``request`` is the request as it may be stored (credentials redacted); ``original``
    has the real credentials and only serves to derive keys. ``bypass`` is set when the
    cache is not used at all.
    """

    key: str
    request: CachedRequest
    original: CachedRequest
    settings: CacheSettings
    identify: Identify
    options: RequestOptions
    bypass: PassThrough | None = None
    skip_read: bool = False
    refresh: bool = False
    no_cache: bool = False
    only_if_cached: bool = False
    max_stale: float | None = None
    min_fresh: float = 0.0
    max_age: float | None = None
    why: tuple[str, str] = ("", "")  # (reason, rfc) of skip_read / refresh
    expire_from_request: bool = False  # a request max-age outranks the response's (header_rule)
    conditional: bool = False  # the client's own If-None-Match / If-Modified-Since (cache_control)
    store_expire_after: ExpirationTime | _Unset = UNSET
    """The ``expire_after`` a response stored for it gets (see :func:`_expire_after`)."""


@fast_init
@dataclass(frozen=True, slots=True)
class Received:
    """The origin's answer as the core needs it (the body comes later, if at all)."""

    status: int
    reason: str
    url: str
    headers: CIMultiDict[str]
    request_time: datetime
    response_time: datetime
    encoding: str | None = None
    history: Sequence[tuple[str, str, int, str, CIMultiDict[str]]] = ()
    """Redirect hops as (method, url, status, reason, headers)."""
    sent_headers: MultiMapping[str] | None = None
    """The headers of the request that got this answer (after redirects and auth handlers)."""


# -- 1. the request ------------------------------------------------------------------------
def plan(request: CachedRequest, settings: CacheSettings, options: RequestOptions | None,
         identify: Identify, identity: tuple[str, CachedRequest] | None = None) -> Plan:
    """Read the request's own directives and the settings; name the key to look up.
    ``identity``: ``identify(request)``, when the caller has it already."""
    options = options or _NO_OPTIONS
    aiohttp_rule = options.header_rule == "cache_control"
    honoured = not aiohttp_rule or settings.cache_control
    value = expire_after(request.url, settings, options)
    bypass = _bypass(request, settings, options, honoured, value)
    if bypass is not None:
        return Plan("", request, request, settings, identify, options, bypass)
    key, stored = identify(request) if identity is None else identity
    p = Plan(key, stored, request, settings, identify, options)
    if not settings.urls_expire_after:  # the same for every URL: the stored one's too
        p.store_expire_after = value
    if not request.headers and not (options.force_refresh or options.refresh
                                    or options.only_if_cached):
        return p  # the commonest case: no header, nothing asked (what the way below gives)
    if settings.cache_control and ("If-None-Match" in request.headers
                                   or "If-Modified-Since" in request.headers):
        p.conditional = True
    cc_lines = request.headers.getall("Cache-Control", ()) if honoured else ()
    cc = parse_cache_control(cc_lines) if cc_lines else {}
    if honoured and "Pragma" in request.headers and has_pragma_no_cache(
            cc_lines, request.headers.getall("Pragma")):
        cc.setdefault("no-cache", None)  # §5.4: only without Cache-Control
    if not cc and not (options.force_refresh or options.refresh or options.only_if_cached):
        return p  # the common case: nothing asked
    p.only_if_cached = options.only_if_cached or "only-if-cached" in cc
    if "max-stale" in cc:  # bare max-stale accepts any staleness (§5.2.1.2)
        p.max_stale = _INF if cc["max-stale"] is None else _float(seconds(cc, "max-stale"))
    p.min_fresh = float(seconds(cc, "min-fresh") or 0)
    max_age = seconds(cc, "max-age")
    p.max_age = None if max_age is None else float(max_age)
    p.expire_from_request = aiohttp_rule and bool(max_age)
    if options.force_refresh:
        p.skip_read, p.why = True, ("force_refresh: fetching a new response", "")
    elif "no-cache" in cc:
        p.refresh = p.no_cache = True
        p.why = ("request no-cache", "RFC 9111 §5.2.1.4")
    elif options.refresh or max_age == 0:
        p.refresh = True
        p.why = ("refresh requested", "RFC 9111 §5.2.1.1")
    return p


_MISS = Fetch("miss: nothing stored")


def _float(value: int | None) -> float | None:
    return None if value is None else float(value)


def _bypass(request: CachedRequest, settings: CacheSettings, options: RequestOptions,
            honoured: bool, expires_after: ExpirationTime) -> PassThrough | None:
    if options.disabled:
        return PassThrough("cache disabled for this request (cache_disabled())")
    if request.method not in settings.allowed_methods:
        return PassThrough("method %s not in allowed_methods", args=(request.method,))
    if not options.keyable:
        return PassThrough("the request body is a stream: it cannot be part of a key")
    if expires_after == DO_NOT_CACHE:
        return PassThrough("expire_after is DO_NOT_CACHE")
    if not request.headers:  # (no Cache-Control, no Range)
        return None
    cc_lines = request.headers.getall("Cache-Control", ()) if honoured else ()
    cc = parse_cache_control(cc_lines) if cc_lines else {}
    if "no-store" in cc:
        return PassThrough("request Cache-Control: no-store", "RFC 9111 §5.2.1.5")
    if request.headers.get("Range"):
        return PassThrough("Range request: partial content is not cached")
    return None


def expire_after(url: str, settings: CacheSettings, options: RequestOptions) -> ExpirationTime:
    """The request's ``expire_after``: its own, else the first ``urls_expire_after`` match,
    else the setting."""
    if options.expire_after is not UNSET:
        return normalize_expire_after(options.expire_after)
    if not settings.urls_expire_after:
        return settings.expire_after
    return expire_after_for_url(url, settings.urls_expire_after, settings.expire_after)


def _expire_after(p: Plan) -> ExpirationTime:
    """:func:`expire_after` of the stored request, memoised on the plan: the store step
    asks for it more than once, a hit never. (Callers read ``p.store_expire_after``
    first: set, it costs no call.)"""
    value = p.store_expire_after
    if value is UNSET:
        value = p.store_expire_after = expire_after(p.request.url, p.settings, p.options)
    return value


# -- 2. what storage returned --------------------------------------------------------------
def on_lookup(p: Plan, stored: CachedResponse | None, now: datetime,
              via: Lookup | None = None) -> Decision:
    """Decide from the entry read at ``p.key`` (or at ``via.key``; None: nothing there)."""
    settings = p.settings
    if p.skip_read:
        return _fetch(p, None, p.why[0], p.why[1])
    generation = "" if via is None else via.vary_generation
    if stored is None:
        if via is None and p.request.method == "HEAD" and settings.cache_control:
            get_key = p.identify(replace(p.original, method="GET"))[0]
            return Lookup("HEAD: looking for the stored GET response", "RFC 9111 §4.3.5",
                          key=get_key, base=get_key, head_from_get=True)
        if via is not None and via.variant:
            return _fetch(p, None, "no stored variant matches the request", "RFC 9111 §4.1",
                          generation=generation)
        if generation or p.only_if_cached:
            return _fetch(p, None, "miss: nothing stored", "", generation=generation)
        return _MISS  # the common decision, made once
    if via is None or (via.head_from_get and not via.variant):
        generation = "" if via is not None else stored.vary_generation
    facts = stored.facts if stored.facts is not None else freshness.facts_of(stored)
    mismatch = _vary_mismatch(p, stored, facts) if facts.vary else None
    if mismatch is _CREDENTIAL_LEFT_OUT:
        return _fetch(p, None, mismatch, "RFC 9111 §4.1", generation=generation)
    if mismatch is not None:
        if via is not None and via.variant:
            return _fetch(p, None, "no stored variant matches the request", "RFC 9111 §4.1",
                          generation=generation)
        base = p.key if via is None else via.base
        values = freshness.vary_values(facts.vary, p.request.headers, settings.cache_control)
        return Lookup("the stored response varies on %s: reading the matching variant",
                      "RFC 9111 §4.1", (",".join(facts.vary),),
                      key=variant_key(base, stored.vary_generation, values), base=base,
                      head_from_get=via is not None and via.head_from_get, variant=True,
                      vary_generation=generation)
    if not p.original.decoded and freshness.content_encoded(stored.headers):
        return _fetch(p, None, _ENCODED, "", generation=generation)
    if via is not None and via.head_from_get:
        stored = replace(stored, body=b"", stored_body=None, cache_key=p.key)
    return _fresh_or_not(p, stored, facts, now, generation)


# Stored bodies are decoded (what aiohttp and requests read by default); a request that
# reads its body as sent (auto_decompress=False) must not get, nor store, another form.
_ENCODED = "a body read as sent (auto_decompress=False) and a content-encoded one stored decoded"


_LIVE = frozenset({"text/event-stream", "multipart/x-mixed-replace"})  # server push, no end


def fresh_verdict(p: Plan, stored: CachedResponse, now: datetime) -> Fresh | Decision:
    """:func:`on_lookup`'s decision for ``stored``; a fresh hit that only the clock can end
    (RFC 9111 §4.2: a plan without request directives) comes as a :class:`Fresh`, the
    same Serve held for this very entry until it expires (its Age, with cache_control,
    from :func:`age_at` per hit)."""
    decision = on_lookup(p, stored, now)
    if (type(decision) is not Serve or p.only_if_cached or p.refresh or p.max_age is not None
            or p.min_fresh):
        return decision
    expires = stored.expires
    if expires is None:
        serve = Serve("hit: fresh, no expiry", decision.rfc, (), decision.response)
        return Fresh(serve, stored, _INF, decision.age is not None)
    serve = Serve("hit: fresh until %s", decision.rfc, (expires.isoformat(),), decision.response)
    return Fresh(serve, stored, expires.timestamp(), decision.age is not None)


def age_at(fresh: Fresh, now: datetime) -> float:
    """The Age a hit from ``fresh`` shows at ``now`` (RFC 9111 §4.2.3, shown per §5.1)."""
    return freshness.current_age(fresh.stored, now)


class _KeyedCredentials:
    """The credential headers the key holds: the built-in ones less those ignored."""

    def __init__(self, ignored: set[str]) -> None:
        self.ignored = ignored

    def __contains__(self, name: object) -> bool:
        return (isinstance(name, str) and name.lower() not in self.ignored
                and name in CREDENTIAL_HEADERS)


def _fresh_or_not(p: Plan, stored: CachedResponse, facts: Facts, now: datetime,
                  generation: str) -> Decision:
    """RFC 9111 §4.2 (and requests-cache's expire_after): serve, or go to the origin."""
    settings = p.settings
    cc = settings.cache_control
    expires = stored.expires
    fresh_left = _INF if expires is None else (expires - now).total_seconds()
    if p.only_if_cached and fresh_left > 0:
        return Serve("hit: fresh, and only-if-cached outranks refresh", "RFC 9111 §5.2.1.7",
                     response=_for_client(p, stored), age=_age(p, stored, now))
    if p.only_if_cached and settings.stale_if_error and stale_if_error_ok(p, stored, now):
        # the alternative is a 504, an error the user's stale_if_error setting covers
        return ServeStale("only-if-cached, stale by %.0fs: served under stale_if_error",
                          "RFC 9111 §5.2.1.7", (-fresh_left,), response=_for_client(p, stored),
                          age=_age(p, stored, now))
    if p.refresh:
        if cc and not p.no_cache and fresh_left > 0 and facts.immutable:
            return Serve("fresh and immutable: a refresh is not needed", "RFC 8246 §2",
                         response=_for_client(p, stored), age=_age(p, stored, now))
        return _revalidate(p, stored, p.why[0], p.why[1], (), generation)
    if settings.always_revalidate:
        return _revalidate(p, stored, "always_revalidate is set", "", (), generation)
    if cc and facts.no_cache:
        return _revalidate(p, stored, "response no-cache (or Vary: *): revalidated on every use",
                           "RFC 9111 §5.2.2.4", (), generation)
    if p.max_age is not None:
        age = freshness.current_age(stored, now)
        if age > p.max_age:
            return _revalidate(p, stored, "age %.0fs > the request's max-age", "RFC 9111 §5.2.1.1",
                               (age,), generation)
    if fresh_left > p.min_fresh or (fresh_left > 0 and not p.min_fresh):
        # Every hit: _for_client and _age inline, positional arguments (a frozen dataclass
        # takes keywords at twice the cost).
        response = _for_client(p, stored) if p.conditional else stored
        shown_age = freshness.current_age(stored, now) if cc else None
        rfc = "RFC 9111 §4.2" if cc else ""
        if fresh_left == _INF:  # no expiry (its reason read "fresh for infs more")
            return Serve("hit: fresh, no expiry", rfc, (), response, shown_age)
        return Serve("hit: fresh for %.0fs more", rfc, (fresh_left,), response, shown_age)
    if fresh_left > 0:
        return _revalidate(p, stored, "less fresh than the request's min-fresh",
                           "RFC 9111 §5.2.1.3", (), generation)
    staleness = -fresh_left
    if cc and facts.must_revalidate:
        return _revalidate(p, stored, "stale by %.0fs, must-revalidate", "RFC 9111 §5.2.2.2",
                           (staleness,), generation)
    if p.max_stale is not None and staleness <= p.max_stale:
        return ServeStale("stale by %.0fs, within the request's max-stale", "RFC 9111 §5.2.1.2",
                          (staleness,), response=_for_client(p, stored), age=_age(p, stored, now))
    window = _window(settings.stale_while_revalidate, facts.stale_while_revalidate, cc)
    if window > 0 and staleness <= window and not p.only_if_cached:
        refresh = _revalidate(p, stored, "stale-while-revalidate refresh", "RFC 5861 §3", (),
                              generation)
        assert isinstance(refresh, (Revalidate, Fetch))
        return ServeStale("stale by %.0fs, within stale-while-revalidate: served, refreshed "
                          "in the background", "RFC 5861 §3", (staleness,), response=_for_client(p, stored),
                          age=_age(p, stored, now), refresh=refresh)
    return _revalidate(p, stored, "stale by %.0fs", "RFC 9111 §4.2", (staleness,), generation)


def _for_client(p: Plan, stored: CachedResponse) -> CachedResponse:
    """The stored response as this request gets it: a 304 when the client's own
    conditional request matches it (RFC 9111 §4.3.2), else the response itself."""
    if not p.conditional or stored.status != 200:
        return stored
    if not freshness.client_validators_match(p.request.headers, stored):
        return stored
    kept = CIMultiDict((k, v) for k, v in stored.headers.items()
                       if k.lower() not in _NOT_IN_304)
    return replace(stored, status=304, reason="Not Modified", headers=kept, body=b"", stored_body=None)


def _age(p: Plan, stored: CachedResponse, now: datetime) -> float | None:
    """The Age an answer from the cache shows (§5.1), with cache_control."""
    return freshness.current_age(stored, now) if p.settings.cache_control else None


def _window(setting: float | bool, own: float | None, cache_control: bool) -> float:
    """Seconds past expiry a stale response may be used for (RFC 5861): the setting
    (True: unbounded), widened by the response's own directive with cache_control."""
    window = _INF if setting is True else float(setting)
    if cache_control and own is not None:
        window = max(window, own)
    return window


def _revalidate(p: Plan, stored: CachedResponse, reason: str, rfc: str, args: tuple[object, ...],
                generation: str) -> Decision:
    headers = tuple(freshness.validators(stored).items())
    if p.only_if_cached:
        return GatewayTimeout("only-if-cached, and " + reason, "RFC 9111 §5.2.1.7", args,
                              response=gateway_timeout(p.request))
    if headers:
        return Revalidate(reason + ": conditional request", rfc or "RFC 9111 §4.3.1", args,
                          cached=stored, headers=headers, vary_generation=generation)
    return Fetch(reason + ", no validators: full request", rfc, args, cached=stored,
                 vary_generation=generation)


def _fetch(p: Plan, cached: CachedResponse | None, reason: str, rfc: str, args: tuple[object, ...] = (),
           generation: str = "") -> Decision:
    if p.only_if_cached:
        return GatewayTimeout("only-if-cached, and " + reason, "RFC 9111 §5.2.1.7", args,
                              response=gateway_timeout(p.request))
    return Fetch(reason, rfc, args, cached=cached, vary_generation=generation)


_CREDENTIAL_LEFT_OUT = "the stored response varies on a credential left out of the key"
_NOT_SELECTED = "the stored response's Vary fields do not match the request"


def _vary_mismatch(p: Plan, stored: CachedResponse, facts: Facts) -> str | None:
    """Why ``stored`` (which has Vary) cannot answer this request (§4.1), or None if it can."""
    settings = p.settings
    # A credential field left out of the key (ignored_params) cannot tell users apart: Vary
    # on it compares the stored (redacted) value, so it never matches a value sent.
    ignored = {name.lower() for name in settings.ignored_params} if settings.ignored_params else None
    if ignored and any(name in ignored and name in CREDENTIAL_HEADERS and name in p.request.headers
                       for name in facts.vary):
        return _CREDENTIAL_LEFT_OUT
    keyed = CREDENTIAL_HEADERS if not ignored else _KeyedCredentials(ignored)
    negotiated = settings.cache_control  # §4.1's normalisation by meaning
    if not freshness.vary_matches(stored, p.request, keyed, negotiated):
        return _NOT_SELECTED
    return None


def shared(p: Plan, response: CachedResponse, now: datetime) -> Decision:
    """A concurrent request for the same key stored ``response``: answer with it, unless
    its Vary fields do not match this request (then read this request's own variant:
    a Lookup of the key) or it must be revalidated on every use (then this request
    validates it on its own)."""
    facts = freshness.facts_of(response)
    if facts.vary and _vary_mismatch(p, response, facts) is not None:
        return Lookup("the concurrent request's response varies on %s and is not this "
                      "request's variant", "RFC 9111 §4.1", (",".join(facts.vary),),
                      key=p.key, base=p.key, vary_generation=response.vary_generation)
    if p.settings.cache_control and facts.no_cache:
        return _revalidate(p, response, "the concurrent request's response is no-cache",
                           "RFC 9111 §5.2.2.4", (), response.vary_generation)
    return Serve("coalesced: the concurrent request for this key stored this response",
                 response=_for_client(p, response), age=_age(p, response, now))


# -- 3. what the origin answered -----------------------------------------------------------
def on_response(p: Plan, sent: Decision, received: Received) -> Decision:
    """Decide what the origin's answer to ``sent`` (PassThrough, Fetch or Revalidate)
    does to the cache: store, renew, serve stale, invalidate, or nothing."""
    decision = _on_response(p, sent, received)
    method = p.original.method
    if (method not in SAFE_METHODS and p.settings.cache_control
            and 200 <= received.status < 400):
        urls = invalidated_urls(method, p.original.url, received.status, received.headers)
        headers = _without_body_fields(p.original.headers)
        keys = tuple(p.identify(CachedRequest(m, url, headers, follow_redirects=follow))[0]
                     for url in urls for m in ("GET", "HEAD") for follow in (True, False))
        return Invalidate("unsafe method %s answered %d: stored responses for %s invalidated",
                          "RFC 9111 §4.4", (method, received.status, urls), keys=keys,
                          urls=tuple(urls), then=decision)
    return decision


def _on_response(p: Plan, sent: Decision, received: Received) -> Decision:
    if isinstance(sent, PassThrough):
        return _post_for_get(p, received) or DontStore(sent.reason, sent.rfc, sent.args)
    status, headers = received.status, received.headers
    cached, generation = (sent.cached, sent.vary_generation) if isinstance(sent, (Fetch, Revalidate)) \
        else (None, "")
    if cached is not None:  # (a plain miss has nothing to renew or fall back on)
        answer = _on_response_to_stored(p, sent, received, cached)
        if answer is not None:
            return answer
    why = _not_storable(p, status, headers) or _unkeyed_credentials(p, received)
    if why is not None:
        not_stored = DontStore(*why)
        if p.settings.cache_control and freshness.forbids_storing(status, headers):
            return Invalidate("response no-store: the stored response is removed", "RFC 9111 §3",
                              keys=(p.key,), then=not_stored)
        return not_stored
    kept = freshness.headers_to_store(headers)
    if "Vary" not in kept and not received.history:  # the common case: the request's key
        return Store("stored", "RFC 9111 §3" if p.settings.cache_control else "", (), kept,
                     (p.key,))  # (positional: args, headers, keys)
    keys, generation = _store_keys(p, kept, generation)
    if received.history:  # the final URL answers a direct request too, as in requests-cache
        final = p.identify(CachedRequest(p.original.method, received.url, p.original.headers))[0]
        if final not in keys:
            keys = (*keys, final)
    return Store("stored", "RFC 9111 §3" if p.settings.cache_control else "", headers=kept,
                 keys=keys, vary_generation=generation, aliases=_alias_keys(p, received))


def _on_response_to_stored(p: Plan, sent: Decision, received: Received,
                           cached: CachedResponse) -> Decision | None:
    """What the origin's answer to a request sent with a stored response in hand decides
    about that response (renew it, serve it, serve it stale); None: as for a miss."""
    status, headers = received.status, received.headers
    if status == 304 and isinstance(sent, Revalidate):
        if freshness.etag_matches(cached.headers, headers):
            renewed = renew(p, cached, headers, received.request_time, received.response_time)
            keys, generation = _store_keys(p, renewed.headers, sent.vary_generation)
            renewed = replace(renewed, cache_key=p.key, vary_generation=generation)
            return Renew("304 Not Modified: the stored response is renewed", "RFC 9111 §4.3.4",
                         response=renewed, keys=keys, age=_age(p, renewed, received.response_time),
                         answer=_for_client(p, renewed))
        return Invalidate("the 304's ETag selects no stored response: entry invalidated",
                          "RFC 9111 §4.3.4", keys=(p.key,),
                          then=Fetch("asking in full after an unmatched 304", "RFC 9111 §4.3.4"))
    if status == 304 and isinstance(sent, Fetch):
        # a 304 to a request without validators (requests-cache): the stored response stands
        return Serve("304 to an unconditional request: the stored response is served as is",
                     "", response=_for_client(p, cached), age=_age(p, cached, received.response_time))
    if _is_error(p, status) and stale_if_error_ok(p, cached, received.response_time):
        return ServeStale("origin answered %d: serving the stale response (stale_if_error)",
                          "RFC 5861 §4" if status >= 500 else "", (status,),
                          response=_for_client(p, cached), age=_age(p, cached, received.response_time))
    return None


def _without_body_fields(headers: CIMultiDict[str]) -> CIMultiDict[str]:
    """The headers of a body-less request (a GET or HEAD) for the same URI as a request
    with a body: the fields that describe that body are not part of its key."""
    if not any(name in headers for name in _BODY_FIELDS):
        return headers
    kept = CIMultiDict(headers)
    for name in _BODY_FIELDS:
        kept.popall(name, None)
    return kept


_BODY_FIELDS = ("Content-Type", "Content-Length", "Content-Encoding")


def _post_for_get(p: Plan, received: Received) -> Store | None:
    """A POST response with explicit freshness and a Content-Location naming its own
    target URI answers a later GET of that URI (RFC 9110 §9.3.3), with cache_control."""
    headers, url = received.headers, p.original.url
    if (p.original.method != "POST" or not p.settings.cache_control or received.status != 200
            or p.options.disabled or "Vary" in headers):
        return None
    location = headers.get("Content-Location")
    if not location or urljoin(url, location) != url or not freshness.has_explicit_freshness(headers):
        return None
    if freshness.not_storable_reason(p.original, 200, headers) is not None:
        return None
    key, stored_request = p.identify(CachedRequest("GET", url,
                                                   _without_body_fields(p.original.headers)))
    return Store("POST response with Content-Location of its own URI: stored for GET",
                 "RFC 9110 §9.3.3", headers=freshness.headers_to_store(headers), keys=(key,),
                 request=stored_request)


def _not_storable(p: Plan, status: int, headers: CIMultiDict[str]
                  ) -> tuple[str, str, tuple[object, ...]] | None:
    settings = p.settings
    # With cache_control, the RFC decides which statuses are storable (§3, §4.2.2) unless
    # the user named allowed_codes; without it, allowed_codes (default: 200) does.
    if status not in settings.allowed_codes and (
            not settings.cache_control or settings.is_given("allowed_codes")):
        return "status %d not in allowed_codes", "", (status,)
    if status == 206 or status < 200:
        return "status %d is never stored", "RFC 9111 §3", (status,)
    live = _live_stream(headers.get("Content-Type"))
    if live is not None:
        # live: a replay would be old events, and a request coalesced onto it would wait
        # for a stream that may never end
        return "a live stream (%s) is never stored", "", (live,)
    if settings.read_only:
        return "read_only is set", "", ()
    if not p.original.decoded and freshness.content_encoded(headers):
        return _ENCODED, "", ()
    if (not settings.cache_control
            and (_expire_after(p) if p.store_expire_after is UNSET else p.store_expire_after)
            == EXPIRE_IMMEDIATELY and not ("ETag" in headers or "Last-Modified" in headers)):
        return "EXPIRE_IMMEDIATELY and no validator: it could never be served", "", ()
    if settings.cache_control and not ("ETag" in headers or "Last-Modified" in headers):
        cc = freshness.cache_control(headers)
        if seconds(cc, "max-age") == 0 and not (
                settings.stale_while_revalidate or settings.stale_if_error
                or seconds(cc, "stale-while-revalidate") or seconds(cc, "stale-if-error")):
            # both peers: stale on arrival and nothing to revalidate it with (requests-cache's
            # EXPIRE_IMMEDIATELY rule; aiohttp-client-cache's DO_NOT_CACHE is 0); a window
            # to serve it stale in keeps it (RFC 5861 §3, §4)
            return "max-age=0 and no validator: it could never be served", "", ()
    if settings.cache_control:
        why = freshness.not_storable_reason(p.request, status, headers)
        if why is not None:
            return why, "RFC 9111 §3", ()
    return None


@functools.lru_cache(maxsize=256)  # a client gets the same few Content-Types over and over
def _live_stream(content_type: str | None) -> str | None:
    """The media type of ``content_type`` if it is a live stream's (server push), else None."""
    media_type = "" if content_type is None else content_type.partition(";")[0].strip()
    return media_type if media_type.lower() in _LIVE else None


def _unkeyed_credentials(p: Plan, received: Received) -> tuple[str, str, tuple[object, ...]] | None:
    """Did the origin receive credentials the key does not hold (an auth handler, a cookie
    set by a redirect hop)? Then the answer may be personal while its key is not."""
    if received.sent_headers is None:
        return None
    settings = p.settings
    extra = unkeyed_credentials(p.original.headers, received.sent_headers, settings.ignored_params,
                                settings.credential_names)
    if not extra:
        return None
    return "the origin received credentials the key does not hold (%s)", "", (", ".join(extra),)


def _store_keys(p: Plan, headers: CIMultiDict[str], generation: str) -> tuple[tuple[str, ...], str]:
    """The request's key, and with Vary its variant's key too: variants live side by
    side, and the latest one is found with a single read (§4.1)."""
    names = freshness.vary_names(headers) if "Vary" in headers else []
    if not names or "*" in names:
        return (p.key,), ""
    generation = generation or secrets.token_hex(8)  # nothing stored: a new generation
    values = freshness.vary_values(names, p.request.headers, p.settings.cache_control)
    return (p.key, variant_key(p.key, generation, values)), generation


def _alias_keys(p: Plan, received: Received) -> tuple[str, ...]:
    """Keys of the redirect hops' URLs, to point at the final response: a request for an
    intermediate URL is a hit too. Same headers: same credentials."""
    if not received.history:
        return ()
    # One alias per hop, as both peers keep them (the request's own key among them).
    return tuple(sorted({p.identify(CachedRequest(method, url, p.original.headers))[0]
                         for method, url, *_ in received.history}))


def filtered_out(p: Plan) -> DontStore:
    """``filter_fn`` said no."""
    return DontStore("filter_fn returned False")


def to_store(p: Plan, store: Store, received: Received, body: bytes,
             expected: int | _Unset | None = UNSET) -> CachedResponse | DontStore:
    """The response to store once its body is complete (§3.3: a body shorter or longer
    than its Content-Length is not stored). ``expected``: ``freshness.expected_length``
    of ``store.headers``, when the caller has it."""
    incomplete = body_incomplete(p, store, len(body), expected)
    if incomplete is not None:
        return incomplete
    return stored_response(p, store, received, body)


def body_incomplete(p: Plan, store: Store, length: int, expected: int | _Unset | None = UNSET
                    ) -> DontStore | None:
    """A body of ``length`` bytes that is not the whole of what was announced (§3.3), or
    None. (A streamed body is checked when it ends.) A HEAD response has no body (RFC
    9110 §9.3.2): its Content-Length is the GET's."""
    if p.request.method == "HEAD":
        return None
    if expected is UNSET:
        expected = freshness.expected_length(store.headers if store.headers is not None
                                             else CIMultiDict())
    if expected is None or expected == length:
        return None
    return DontStore("body length %d does not match Content-Length", "RFC 9111 §3.3", (length,))


def stored_response(p: Plan, store: Store, received: Received, body: bytes = b"") -> CachedResponse:
    """The response to store, with ``body``; without it for a body that streams (written
    to storage as it comes, checked with :func:`body_incomplete` at its end). URLs other
    than the request's (redirects) are stored redacted."""
    headers = store.headers if store.headers is not None else CIMultiDict()
    request = store.request or p.request
    history = tuple(
        CachedResponse(status, reason, _redacted(p, hop_url), freshness.headers_to_store(hop_headers),
                       b"", CachedRequest(method, _redacted(p, hop_url)))
        for method, hop_url, status, reason, hop_headers in received.history
    ) if received.history else ()
    request_time, response_time = received.request_time, received.response_time
    age = freshness.initial_age(headers, request_time, response_time)
    return CachedResponse(  # (positional: status, reason, url, headers, body, request,
        # encoding, created_at, expires, request_time, response_time, history, cache_key,
        # vary_generation, facts, stored_body, initial_age; cheaper than by name on every miss)
        received.status, received.reason,
        # Without redirects the final URL is the request's, already redacted.
        _redacted(p, received.url) if received.history else request.url,
        headers, body, request, received.encoding, response_time,
        expires(p, received.status, headers, request_time, response_time, age),
        request_time, response_time, history, store.keys[0], store.vary_generation,
        freshness.facts(headers), None, age,
    )


def _redacted(p: Plan, url: str) -> str:
    return redact_url(url, p.settings.ignored_params, p.settings.credential_names)


def on_error(p: Plan, sent: Decision, error: str, now: datetime) -> Decision | None:
    """The origin could not be reached: a stale answer, a 504, or None (raise the error)."""
    cached = sent.cached if isinstance(sent, (Fetch, Revalidate)) else None
    if cached is None:
        return None
    if p.settings.cache_control and freshness.facts_of(cached).must_revalidate:
        return GatewayTimeout("origin unreachable (%s) and the stale entry must be revalidated",
                              "RFC 9111 §5.2.2.2", (error,), response=gateway_timeout(p.request))
    if not stale_if_error_ok(p, cached, now):
        return None
    return ServeStale("origin unreachable (%s): serving the stale response (stale_if_error)",
                      "RFC 5861 §4", (error,), response=_for_client(p, cached),
                      age=_age(p, cached, now))


def _is_error(p: Plan, status: int) -> bool:
    """An answer a stale response may replace: a 5xx (RFC 5861 §4); with the
    ``stale_if_error`` setting also a 4xx not in ``allowed_codes`` (requests-cache's rule)."""
    if status >= 500:
        return True
    return status >= 400 and bool(p.settings.stale_if_error) \
        and status not in p.settings.allowed_codes


def stale_if_error_ok(p: Plan, cached: CachedResponse, now: datetime) -> bool:
    """May ``cached`` answer in place of an origin error? (RFC 5861 §4)"""
    facts = freshness.facts_of(cached)
    cc = p.settings.cache_control
    if cc and facts.must_revalidate:
        return False
    if cached.expires is None:
        return True
    staleness = (now - cached.expires).total_seconds()
    return staleness <= 0 or staleness <= _window(p.settings.stale_if_error, facts.stale_if_error, cc)


def invalidated_urls(method: str, url: str, status: int, headers: CIMultiDict[str]) -> list[str]:
    """URLs whose stored responses a non-error answer to an unsafe request invalidates:
    the target URI and a same-origin Location / Content-Location (RFC 9111 §4.4)."""
    if method.upper() in SAFE_METHODS or not 200 <= status < 400:
        return []
    origin = urlsplit(url)[:2]
    urls = [url]
    for name in ("Location", "Content-Location"):
        if name in headers:
            target = urljoin(url, headers[name])
            if urlsplit(target)[:2] == origin and target not in urls:
                urls.append(target)
    return urls


# -- expiry ----------------------------------------------------------------------------------
def expires(p: Plan, status: int, headers: CIMultiDict[str], request_time: datetime,
            now: datetime, initial_age: float | None = None) -> datetime | None:
    """Absolute expiry of a response received at ``now`` (None: never expires).

    With ``cache_control`` the response's own freshness wins (§4.2.1), less the age it
    arrived with (§4.2.3). A response without any freshness information then falls back
    to ``expire_after``, unless that is the default NEVER_EXPIRE: such a response is
    stored but revalidated before use rather than trusted forever (RFC 9111 §4.2; both
    peers would serve it forever). A request ``max-age=N`` (both peers) is this
    request's ``expire_after``.
    """
    settings = p.settings
    if p.options.expire_after is UNSET and p.max_age:
        value: ExpirationTime = p.max_age
    else:
        stored = p.store_expire_after
        value = _expire_after(p) if stored is UNSET else stored
    if settings.cache_control and not p.expire_from_request:
        lifetime = freshness.lifetime(status, headers, now, settings.max_heuristic_age)
        if lifetime is None and value == NEVER_EXPIRE:
            lifetime = 0.0
        if lifetime is not None:
            age = freshness.initial_age(headers, request_time, now) if initial_age is None \
                else initial_age
            return now + timedelta(seconds=max(0.0, lifetime - age))
    if value == DO_NOT_CACHE:
        value = EXPIRE_IMMEDIATELY
    if value == NEVER_EXPIRE:  # (the default: no call for it)
        return None
    return expiration_datetime(value, now)


def renew(p: Plan, cached: CachedResponse, headers: CIMultiDict[str], request_time: datetime,
          now: datetime) -> CachedResponse:
    """Fold a 304's headers into the stored response and renew it (RFC 9111 §4.3.4)."""
    merged = CIMultiDict(cached.headers)
    for name in {n.lower() for n in headers}:
        if name in _KEEP_ON_304 or name in freshness.NEVER_STORED:
            continue
        merged.popall(name, None)
        for value in headers.getall(name):
            merged.add(name, value)
    age = freshness.initial_age(merged, request_time, now)
    return replace(cached, headers=merged, created_at=now, response_time=now,
                   request_time=request_time,
                   expires=expires(p, cached.status, merged, request_time, now, age),
                   facts=freshness.facts(merged), initial_age=age)


__all__ = ["SAFE_METHODS", "UNSET", "Identify", "Plan", "Received", "RequestOptions", "age_at",
           "body_incomplete", "expire_after", "expires", "filtered_out", "fresh_verdict",
           "invalidated_urls", "on_error", "on_lookup", "on_response", "plan", "renew", "shared",
           "stale_if_error_ok", "stored_response", "to_store"]
