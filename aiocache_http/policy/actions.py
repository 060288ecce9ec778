"""CacheActions: every cache decision for one request, with the reason for it.

Sans-IO. A session builds the actions from the request, shows them the stored entry,
then the origin's answer, and does what they say. Each decision records a short reason
that is logged at DEBUG, so "why was this (not) served / stored?" has an answer.

Without ``cache_control`` the behaviour is requests-cache's: expiry comes from
``expire_after`` settings, and request directives (``no-store``, ``no-cache``,
``max-age=0``, ``only-if-cached``) are honoured all the same.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urljoin, urlsplit

from multidict import CIMultiDict

from ..models import CachedRequest, CachedResponse
from . import freshness
from .directives import has_pragma_no_cache, parse_cache_control, seconds
from .expiration import (
    DO_NOT_CACHE,
    EXPIRE_IMMEDIATELY,
    ExpirationTime,
    expiration_datetime,
    expire_after_for_url,
    normalize_expire_after,
)
from .settings import CacheSettings

logger = logging.getLogger("aiocache_http")

# A 304 must not change how the stored body is decoded (RFC 9111 §3.2 lets a cache keep them).
_KEEP_ON_304 = frozenset({"content-length", "content-encoding", "content-type",
                          "transfer-encoding"})


UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def invalidated_urls(method: str, url: str, status: int, headers: CIMultiDict[str]) -> list[str]:
    """URLs whose stored responses a non-error answer to an unsafe request invalidates:
    the target URI and a same-origin Location / Content-Location (RFC 9111 §4.4)."""
    if method.upper() not in UNSAFE_METHODS or not 200 <= status < 400:
        return []
    origin = urlsplit(url)[:2]
    urls = [url]
    for name in ("Location", "Content-Location"):
        if name in headers:
            target = urljoin(url, headers[name])
            if urlsplit(target)[:2] == origin and target not in urls:
                urls.append(target)
    return urls


class _Unset(enum.Enum):
    UNSET = enum.auto()


UNSET = _Unset.UNSET


@dataclass(slots=True)
class RequestOptions:
    """Per-request cache options, as given to ``session.get(url, ...)``.

    ``refresh`` revalidates a fresh entry (a conditional request when it has validators);
    ``force_refresh`` ignores the stored entry and fetches a new one.
    """

    expire_after: ExpirationTime | _Unset = UNSET
    refresh: bool = False
    force_refresh: bool = False
    only_if_cached: bool = False
    header_rule: str = "always"
    """When the request's Cache-Control applies, as the two peers differ: ``"always"``
    (requests-cache's rule, the sync session's) or ``"cache_control"`` (aiohttp-client-
    cache's, the async session's): only with ``cache_control=True``, and then a request
    ``max-age=0`` skips the store too, ``no-cache`` fetches anew, and a request
    ``max-age`` outranks the response's own freshness."""


class Decision(enum.Enum):
    """What to do once the stored entry (or its absence) is known."""

    SERVE = "serve"  # answer from the cache, no origin request
    REVALIDATE = "revalidate"  # conditional request; on 304 serve the stored body
    FETCH = "fetch"  # plain origin request
    GATEWAY_TIMEOUT = "504"  # only-if-cached and nothing usable is stored


@dataclass(slots=True)
class CacheActions:
    key: str
    request: CachedRequest
    settings: CacheSettings
    expire_after: ExpirationTime
    skip_read: bool = False
    skip_write: bool = False
    refresh: bool = False
    no_cache: bool = False
    only_if_cached: bool = False
    max_stale: float | None = None
    min_fresh: float = 0.0
    max_age: float | None = None
    reason: str = ""
    decision: Decision = Decision.FETCH
    validation_headers: dict[str, str] = field(default_factory=dict)
    cached: CachedResponse | None = None
    background_refresh: bool = False
    expire_from_request: bool = False  # a request max-age outranks the response's (see header_rule)
    now: datetime | None = None  # when the stored entry was judged

    # -- 1. the request -----------------------------------------------------------
    @classmethod
    def from_request(
        cls,
        key: str,
        request: CachedRequest,
        settings: CacheSettings,
        options: RequestOptions | None = None,
    ) -> CacheActions:
        options = options or RequestOptions()
        aiohttp_rule = options.header_rule == "cache_control"
        honoured = not aiohttp_rule or settings.cache_control
        cc_lines = request.headers.getall("Cache-Control", ()) if honoured else ()
        cc = parse_cache_control(cc_lines) if cc_lines else {}
        pragma_no_cache = honoured and "Pragma" in request.headers and has_pragma_no_cache(
            cc_lines, request.headers.getall("Pragma")
        )
        max_age = seconds(cc, "max-age")
        if options.expire_after is not UNSET:
            expire_after = normalize_expire_after(options.expire_after)
        elif max_age:
            # Both peers store the answer to a request max-age=N for N seconds.
            expire_after = float(max_age)
        else:
            expire_after = expire_after_for_url(
                request.url, settings.urls_expire_after, settings.expire_after
            )
        actions = cls(key=key, request=request, settings=settings, expire_after=expire_after,
                      only_if_cached=options.only_if_cached or "only-if-cached" in cc,
                      expire_from_request=aiohttp_rule and bool(max_age))
        if "max-stale" in cc:
            # Bare max-stale accepts any staleness (RFC 9111 §5.2.1.2).
            actions.max_stale = float("inf") if cc["max-stale"] is None else seconds(cc, "max-stale")
        actions.min_fresh = float(seconds(cc, "min-fresh") or 0)
        actions.max_age = None if max_age is None else float(max_age)

        if request.method not in settings.allowed_methods:
            actions._skip(f"method {request.method} not in allowed_methods")
        elif expire_after == DO_NOT_CACHE:
            actions._skip("expire_after is DO_NOT_CACHE")
        elif "no-store" in cc:
            actions._skip("request Cache-Control: no-store (RFC 9111 §5.2.1.5)")
        elif request.headers.get("Range"):
            actions._skip("Range request: partial content is not cached")
        elif aiohttp_rule and max_age == 0:
            actions._skip("request max-age=0 (aiohttp-client-cache's rule)")
        elif options.force_refresh or (aiohttp_rule and ("no-cache" in cc or pragma_no_cache)):
            actions.skip_read = True
            actions.reason = "fetching a new response: force_refresh or request no-cache"
        elif "no-cache" in cc or pragma_no_cache:
            actions.refresh = actions.no_cache = True
            actions.reason = "request no-cache: revalidating (RFC 9111 §5.2.1.4)"
        elif options.refresh or max_age == 0:
            actions.refresh = True
            actions.reason = "refresh requested: revalidating (RFC 9111 §5.2.1.1)"
        return actions

    def _skip(self, reason: str) -> None:
        self.skip_read = self.skip_write = True
        self.reason = f"cache bypassed: {reason}"

    # -- 2. the stored entry -------------------------------------------------------
    def on_cached(self, cached: CachedResponse | None, now: datetime) -> Decision:
        """Decide from the stored entry (None when there is none) what to do."""
        self.now = now
        if self.skip_read:
            self.cached = None
            return self._decide(Decision.FETCH, self.reason)
        self.cached = cached
        if cached is None:
            return self._decide(Decision.FETCH, "miss: nothing stored")
        fresh_left = float("inf") if cached.expires is None else (
            cached.expires - now).total_seconds()
        cache_control = self.settings.cache_control
        if self.only_if_cached and fresh_left > 0:
            return self._decide(Decision.SERVE, "hit: fresh, and only-if-cached outranks refresh")
        if self.refresh:
            if (cache_control and not self.no_cache and fresh_left > 0
                    and freshness.immutable(cached)):
                return self._decide(Decision.SERVE, "hit: immutable and fresh, refresh not "
                                    "needed (RFC 8246)")
            return self._revalidate(cached, self.reason or "refresh requested")
        if self.settings.always_revalidate:
            return self._revalidate(cached, "always_revalidate is set")
        if cache_control and freshness.needs_revalidation(cached):
            return self._revalidate(cached, "response no-cache: revalidate every use (§5.2.2.4)")
        if self.max_age is not None:
            age = freshness.current_age(cached, now)
            if age > self.max_age:
                return self._revalidate(cached, f"age {age:.0f}s > request max-age (§5.2.1.1)")
        if fresh_left > self.min_fresh or (fresh_left > 0 and not self.min_fresh):
            return self._decide(Decision.SERVE, f"hit: fresh for {fresh_left:.0f}s more")
        if fresh_left > 0:
            return self._revalidate(cached, "less fresh than request min-fresh (§5.2.1.3)")
        staleness = -fresh_left
        if freshness.must_revalidate(cached, self.settings.cache_control):
            return self._revalidate(cached, f"stale by {staleness:.0f}s, must-revalidate")
        if self.max_stale is not None and staleness <= self.max_stale:
            return self._decide(Decision.SERVE, f"hit: stale {staleness:.0f}s <= max-stale")
        window = self._stale_window(cached, "stale-while-revalidate",
                                    self.settings.stale_while_revalidate)
        if window > 0 and staleness <= window and not self.only_if_cached:
            self.background_refresh = True
            self.validation_headers = freshness.validators(cached)
            return self._decide(Decision.SERVE, f"stale by {staleness:.0f}s, within "
                                "stale-while-revalidate: serving it, refreshing in background")
        return self._revalidate(cached, f"stale by {staleness:.0f}s")

    def _stale_window(self, cached: CachedResponse, directive: str,
                      setting: float | bool) -> float:
        """Seconds past expiry a stale response may be used for (RFC 5861): the setting
        (True: unbounded), widened by the response's own directive with cache_control."""
        window = float("inf") if setting is True else float(setting)
        if self.settings.cache_control:
            own = seconds(freshness.cache_control(cached.headers), directive)
            if own is not None:
                window = max(window, float(own))
        return window

    def stale_if_error_ok(self, cached: CachedResponse, now: datetime) -> bool:
        """May ``cached`` answer in place of an origin error? (RFC 5861 §4)"""
        if freshness.must_revalidate(cached, self.settings.cache_control):
            return False
        if cached.expires is None:
            return True
        staleness = (now - cached.expires).total_seconds()
        return staleness <= 0 or staleness <= self._stale_window(
            cached, "stale-if-error", self.settings.stale_if_error)

    def _revalidate(self, cached: CachedResponse, why: str) -> Decision:
        self.validation_headers = freshness.validators(cached)
        if self.only_if_cached:
            if (self.settings.stale_if_error and self.now is not None
                    and self.stale_if_error_ok(cached, self.now)):
                return self._decide(Decision.SERVE, f"only-if-cached and stale_if_error: "
                                    f"serving it ({why})")
            return self._decide(Decision.GATEWAY_TIMEOUT, f"only-if-cached, and {why}")
        if self.validation_headers:
            return self._decide(Decision.REVALIDATE, f"{why}: conditional request")
        return self._decide(Decision.FETCH, f"{why}, no validators: full request")

    def _decide(self, decision: Decision, reason: str) -> Decision:
        if decision is Decision.FETCH and self.only_if_cached:
            decision, reason = Decision.GATEWAY_TIMEOUT, f"only-if-cached, and {reason}"
        self.decision, self.reason = decision, reason
        logger.debug("%s %s: %s", self.request.method, self.request.url, reason)
        return decision

    # -- 3. the origin's answer ---------------------------------------------------
    def storable(self, status: int, headers: CIMultiDict[str]) -> bool:
        """May a response with this status and these headers be stored? (RFC 9111 §3)"""
        why = self._not_storable_reason(status, headers)
        if why:
            logger.debug("%s %s: not stored: %s", self.request.method, self.request.url, why)
            return False
        return True

    def _not_storable_reason(self, status: int, headers: CIMultiDict[str]) -> str | None:
        if self.skip_write:
            return self.reason
        if self.settings.read_only:
            return "read_only is set"
        if (self.expire_after == EXPIRE_IMMEDIATELY and not self.settings.cache_control
                and not ("ETag" in headers or "Last-Modified" in headers)):
            return "EXPIRE_IMMEDIATELY and no validator: it could never be served"
        if status not in self.settings.allowed_codes:
            return f"status {status} not in allowed_codes"
        if status == 206 or status < 200:
            return f"status {status} is never stored (RFC 9111 §3)"
        if self.settings.cache_control:
            return freshness.not_storable_reason(self.request, status, headers)
        return None

    def headers_to_store(self, headers: CIMultiDict[str]) -> CIMultiDict[str]:
        return freshness.headers_to_store(headers)

    def complete(self, headers: CIMultiDict[str], body: bytes) -> bool:
        if self.request.method == "HEAD" or freshness.complete(headers, body):
            return True  # a HEAD response's Content-Length is the GET body's (RFC 9110 §9.3.2)
        logger.debug("%s %s: not stored: body length %d does not match Content-Length (RFC 9111 "
                     "§3.3)", self.request.method, self.request.url, len(body))
        return False

    def invalidates_stored(self, headers: CIMultiDict[str]) -> bool:
        """A response no-store also removes what was stored for the request (§3)."""
        return self.settings.cache_control and "no-store" in freshness.cache_control(headers)

    def selects_stored(self, headers_304: CIMultiDict[str]) -> bool:
        """Does this 304 validate the stored entry? If not, the entry is invalid (§4.3.4)."""
        assert self.cached is not None
        if freshness.etag_matches(self.cached.headers, headers_304):
            return True
        logger.debug("%s %s: 304 ETag does not match the stored one: entry invalidated",
                     self.request.method, self.request.url)
        return False

    def error_instead_of_stale(self) -> bool:
        """A stale must-revalidate entry and an unreachable origin: answer 504 (§5.2.2.2)."""
        return self.cached is not None and freshness.must_revalidate(
            self.cached, self.settings.cache_control)

    def expires(self, status: int, headers: CIMultiDict[str], request_time: datetime,
                now: datetime) -> datetime | None:
        """Absolute expiry of a response received at ``now`` (None: never expires).

        With ``cache_control`` the response's own freshness wins (§4.2.1), less the age
        it arrived with (§4.2.3). A response without any freshness information then
        falls back to ``expire_after``, as in both peers (NEVER_EXPIRE included).
        """
        expire_after = self.expire_after
        if self.settings.cache_control and not self.expire_from_request:
            lifetime = freshness.lifetime(status, headers, now, self.settings.max_heuristic_age)
            if lifetime is not None:
                age = freshness.initial_age(headers, request_time, now)
                return now + timedelta(seconds=max(0.0, lifetime - age))
        if expire_after == DO_NOT_CACHE:
            expire_after = EXPIRE_IMMEDIATELY
        return expiration_datetime(expire_after, now)

    def renew(self, cached: CachedResponse, headers: CIMultiDict[str], now: datetime,
              request_time: datetime) -> CachedResponse:
        """Fold a 304's headers into the stored response and renew it (RFC 9111 §4.3.4)."""
        merged = CIMultiDict(cached.headers)
        for name in {n.lower() for n in headers}:
            if name in _KEEP_ON_304:
                continue
            merged.popall(name, None)
            for value in headers.getall(name):
                merged.add(name, value)
        cached.headers = merged
        cached.created_at = cached.response_time = now
        cached.request_time = request_time
        cached.expires = self.expires(cached.status, merged, request_time, now)
        logger.debug("%s %s: 304 renewed the stored response", self.request.method,
                     self.request.url)
        return cached
