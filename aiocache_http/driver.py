"""The cache flow both sessions share: look up, decide, fetch, store, replay.

A session translates its request into a :class:`CachedRequest`, supplies a ``send``
coroutine that talks to the origin, and gets back an :class:`Outcome`. Every hit, miss,
revalidation and store is decided here (by :class:`CacheActions`), so this is the one
place to count them.

Concurrent misses for the same key share one origin request (coalescing): the first
becomes the leader, the others wait for the response it stores. A leader that fails or
is cancelled hands over to the next caller instead of failing it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from multidict import CIMultiDict

from .backends.base import CacheBackend
from .models import CachedRequest, CachedResponse
from .policy import freshness
from .policy.actions import UNSAFE_METHODS, CacheActions, Decision, RequestOptions, invalidated_urls
from .policy.keys import CREDENTIAL_HEADERS, redact_url, variant_key

logger = logging.getLogger("aiocache_http")


@dataclass(slots=True)
class OriginResponse:
    """A live origin response as the driver needs it, whatever the HTTP library."""

    status: int
    reason: str
    url: str
    headers: CIMultiDict[str]
    raw: Any
    read: Callable[[], Awaitable[bytes]]
    release: Callable[[], Any]
    encoding: str | None = None
    history: list[tuple[str, str, int, str, CIMultiDict[str]]] = field(default_factory=list)
    """Redirect hops as (method, url, status, reason, headers)."""


Send = Callable[[dict[str, str]], Awaitable[OriginResponse]]
"""Sends the request to the origin with these extra (conditional) headers."""


@dataclass(slots=True)
class Outcome:
    """What the session returns: a stored response to replay, or the live one.

    ``age`` is set for answers from the cache when ``cache_control`` is on: the
    session emits it as the ``Age`` header (RFC 9111 §5.1).
    """

    response: CachedResponse | None
    raw: Any = None
    release: Callable[[], Any] | None = None  # frees ``raw`` when nobody will read it
    from_cache: bool = False
    age: float | None = None
    revalidated: bool = False  # a 304 just confirmed the stored response


def gateway_timeout(request: CachedRequest) -> CachedResponse:
    """The synthetic 504 of only-if-cached (§5.2.1.7) and of must-revalidate (§5.2.2.2)."""
    return CachedResponse(504, "Gateway Timeout", request.url, CIMultiDict(), b"", request)


async def fetch(
    backend: CacheBackend, request: CachedRequest, options: RequestOptions, send: Send,
    network_errors: tuple[type[BaseException], ...] = (OSError, asyncio.TimeoutError),
) -> Outcome:
    """Answer ``request`` from the cache or the origin, storing what may be stored.

    ``request`` carries real credentials; only its redacted copy is ever stored.
    ``network_errors`` are the HTTP library's "origin unreachable" exceptions, for which
    stale-if-error and must-revalidate apply.
    """
    key, stored_request = backend.identify(request)
    actions = CacheActions.from_request(key, stored_request, backend.settings, options)
    return await _Flow(backend, actions, request, send, network_errors).run()


Slot = tuple[asyncio.AbstractEventLoop, str]


@dataclass(slots=True)
class _Flow:
    """One request's way through the cache: what it needs at every step, in one place."""

    backend: CacheBackend
    actions: CacheActions
    request: CachedRequest  # with real credentials: used for keys, never stored
    send: Send
    network_errors: tuple[type[BaseException], ...]
    vary_generation: str = ""  # of the entry found at the key, if any

    async def run(self) -> Outcome:
        if self.actions.skip_read:
            return await self.from_origin()
        fills = self.backend.fills
        answer = await self.answer_from_cache(fills)
        if answer is not None:
            return answer
        if self.actions.refresh:
            return await self.from_origin()  # the caller asked for its own origin request

        async def work() -> Outcome:
            if self.backend.fills != fills:
                # A fetch finished between our lookup and now; it may have stored our key.
                again = await self.answer_from_cache(self.backend.fills)
                if again is not None:
                    return again
            return await self.from_origin()

        return await self.coalesced(work)

    # -- the cache ------------------------------------------------------------------
    async def answer_from_cache(self, fills: int) -> Outcome | None:
        """Look up and decide: the answer when the cache has it, None when the origin must.

        ``fills`` is ``backend.fills`` before the lookup: if a fetch finished since, the
        stale entry we read may already be refreshed, so no background refresh starts.
        """
        cached = await self.lookup()
        decision = self.actions.on_cached(cached, self.backend.clock())
        if decision is Decision.SERVE:
            assert cached is not None
            if self.actions.background_refresh and self.backend.fills == fills:
                self.refresh_in_background()
            return self.from_cache(cached)
        if decision is Decision.GATEWAY_TIMEOUT:
            return Outcome(gateway_timeout(self.actions.request))
        return None

    async def lookup(self) -> CachedResponse | None:
        """The stored response for this request: the entry at its key, or the Vary variant
        that matches it (§4.1), or for a HEAD, the GET's (§4.3.5 lets HEAD use it)."""
        backend, actions = self.backend, self.actions
        cached = await backend.get_response(actions.key)
        if cached is None and actions.request.method == "HEAD" and backend.settings.cache_control:
            get_key = backend.identify(dataclasses.replace(self.request, method="GET"))[0]
            cached = await backend.get_response(get_key)
            if cached is not None:
                cached = dataclasses.replace(cached, body=b"", cache_key=actions.key)
        self.vary_generation = cached.vary_generation if cached is not None else ""
        # A credential field left out of the key (ignored_params) cannot tell users apart:
        # Vary on it compares the stored (redacted) value, so it never matches a sent one.
        keyed = CREDENTIAL_HEADERS - {p.lower() for p in backend.settings.ignored_params}
        if cached is None or freshness.vary_matches(cached, actions.request, keyed):
            return cached
        names = freshness.vary_names(cached.headers)
        variant = await backend.get_response(self.variant_key(names))
        if variant is not None and freshness.vary_matches(variant, actions.request, keyed):
            return variant
        logger.debug("%s %s: stored response varies on %s: no matching variant",
                     actions.request.method, actions.request.url, names)
        return None

    def variant_key(self, vary_names: list[str]) -> str:
        values = freshness.vary_values(vary_names, self.actions.request.headers)
        return variant_key(self.actions.key, self.vary_generation, values)

    def from_cache(self, cached: CachedResponse) -> Outcome:
        age = None
        if self.backend.settings.cache_control:
            age = freshness.current_age(cached, self.backend.clock())
        return Outcome(cached, from_cache=True, age=age)

    async def save(self, response: CachedResponse) -> None:
        """Store at the request's key; a response with Vary also at its variant's key, so
        variants live side by side and the latest one is found with a single read."""
        names = freshness.vary_names(response.headers)
        varies = bool(names) and "*" not in names
        if varies and not self.vary_generation:
            self.vary_generation = secrets.token_hex(8)  # nothing stored: a new generation
        response.vary_generation = self.vary_generation if varies else ""
        await self.backend.save_response(response, self.actions.key)
        if varies:
            await self.backend.save_response(dataclasses.replace(response), self.variant_key(names))
        response.cache_key = self.actions.key

    # -- coalescing ---------------------------------------------------------------------
    async def coalesced(self, work: Callable[[], Awaitable[Outcome]]) -> Outcome:
        """Run ``work`` as the leader for this key, or share the running leader's response."""
        slot = (asyncio.get_running_loop(), self.actions.key)
        leader = self.backend.inflight.get(slot)
        if leader is None:
            return await self.lead(slot, self.claim(slot), work)
        result = await asyncio.shield(leader)
        if result is not None:
            return self.from_cache(result)
        return await self.coalesced(work)  # the leader failed: elect another

    def claim(self, slot: Slot) -> asyncio.Future[CachedResponse | None]:
        future: asyncio.Future[CachedResponse | None] = slot[0].create_future()
        self.backend.inflight[slot] = future
        return future

    async def lead(self, slot: Slot, future: asyncio.Future[CachedResponse | None],
                   work: Callable[[], Awaitable[Outcome]]) -> Outcome:
        shared: CachedResponse | None = None
        try:
            outcome = await work()
            if outcome.response is not None and outcome.response.cache_key:
                shared = outcome.response  # only stored responses are shared
            return outcome
        finally:
            del self.backend.inflight[slot]
            self.backend.fills += 1
            future.set_result(shared)

    def refresh_in_background(self) -> None:
        """Stale-while-revalidate (RFC 5861 §3): one background refresh per key. The slot
        is claimed before the task starts, so concurrent stale hits start exactly one."""
        slot = (asyncio.get_running_loop(), self.actions.key)
        if slot in self.backend.inflight:
            return
        future = self.claim(slot)
        actions = self.actions
        actions.decision = Decision.REVALIDATE if actions.validation_headers else Decision.FETCH

        async def refresh() -> None:
            try:
                outcome = await self.lead(slot, future, self.from_origin)
                if outcome.release is not None:
                    outcome.release()
            except Exception as e:
                logger.warning("%s %s: background refresh failed: %s: %s", actions.request.method,
                               actions.request.url, type(e).__name__, e)

        task = slot[0].create_task(refresh())
        self.backend.background.add(task)
        task.add_done_callback(self.backend.background.discard)

    # -- the origin ---------------------------------------------------------------------
    async def from_origin(self) -> Outcome:
        backend, actions, cached = self.backend, self.actions, self.actions.cached
        revalidating = actions.decision is Decision.REVALIDATE
        request_time = backend.clock()
        try:
            origin = await self.send(actions.validation_headers if revalidating else {})
        except self.network_errors as e:
            if actions.error_instead_of_stale():
                logger.warning("%s %s: origin unreachable and the stale entry must be "
                               "revalidated: 504", actions.request.method, actions.request.url)
                return Outcome(gateway_timeout(actions.request))
            stale = self.stale_if_error(f"{type(e).__name__}: {e}")
            if stale is None:
                raise
            return stale
        response_time = backend.clock()
        if backend.settings.cache_control and self.request.method in UNSAFE_METHODS:
            await invalidate(backend, self.request, origin.status, origin.headers)  # cached POST

        if origin.status == 304 and cached is not None:
            origin.release()
            if not revalidating:  # a 304 to a plain request: the stored response stands as is
                return self.from_cache(cached)
            if actions.selects_stored(origin.headers):
                renewed = actions.renew(cached, origin.headers, response_time, request_time)
                if not backend.settings.read_only:
                    await self.save(renewed)
                return dataclasses.replace(self.from_cache(renewed), revalidated=True)
            await backend.delete(actions.key)
            actions.decision = Decision.FETCH  # the 304 matched nothing stored: ask in full
            return await self.from_origin()
        if origin.status >= 500:
            stale = self.stale_if_error(f"origin answered {origin.status}")
            if stale is not None:
                origin.release()
                return stale

        if not actions.storable(origin.status, origin.headers) or not await self.passes_filter(origin):
            if actions.invalidates_stored(origin.headers):
                await backend.delete(actions.key)
            return Outcome(None, raw=origin.raw, release=origin.release)
        body = await origin.read()
        if not actions.complete(origin.headers, body):
            return Outcome(None, raw=origin.raw, release=origin.release)
        response = self.to_cached(origin, body, request_time, response_time)
        await self.save(response)
        if origin.history:
            await self.save_redirect_aliases(origin, response)
        logger.debug("%s %s: stored, expires %s", actions.request.method, actions.request.url,
                     response.expires or "never")
        return Outcome(response, raw=origin.raw, release=origin.release)

    def stale_if_error(self, error: str) -> Outcome | None:
        cached = self.actions.cached
        if cached is None or not self.actions.stale_if_error_ok(cached, self.backend.clock()):
            return None
        logger.warning("%s %s: %s; serving the stale cached response (stale_if_error)",
                       self.actions.request.method, self.actions.request.url, error)
        return self.from_cache(cached)

    async def passes_filter(self, origin: OriginResponse) -> bool:
        filter_fn = self.backend.settings.filter_fn
        if filter_fn is None:
            return True
        result = filter_fn(origin.raw)
        if inspect.isawaitable(result):
            result = await result
        if not result:
            logger.debug("%s %s: not stored: filter_fn returned False",
                         self.actions.request.method, self.actions.request.url)
        return bool(result)

    def to_cached(self, origin: OriginResponse, body: bytes, request_time: datetime,
                  response_time: datetime) -> CachedResponse:
        actions, ignored = self.actions, self.backend.settings.ignored_params
        headers = actions.headers_to_store(origin.headers)
        history = [
            CachedResponse(status, reason, redact_url(hop_url, ignored), hop_headers, b"",
                           CachedRequest(method, redact_url(hop_url, ignored)))
            for method, hop_url, status, reason, hop_headers in origin.history
        ]
        return CachedResponse(
            status=origin.status, reason=origin.reason,
            # Without redirects the final URL is the request's, already redacted.
            url=redact_url(origin.url, ignored) if origin.history else actions.request.url,
            headers=headers, body=body, request=actions.request, encoding=origin.encoding,
            created_at=response_time,
            expires=actions.expires(origin.status, headers, request_time, response_time),
            request_time=request_time, response_time=response_time, history=history,
        )

    async def save_redirect_aliases(self, origin: OriginResponse, response: CachedResponse) -> None:
        """Point the keys of the redirect hops' URLs at the final response's key, so a
        request for an intermediate URL is a hit too (one alias per hop, as both peers
        keep them), and store the response at its final URL's key as well, so a direct
        request for it is a hit, as in requests-cache. Same headers: same credentials."""
        key = self.actions.key
        for alias in {self.backend.create_key(CachedRequest(method, url, self.request.headers))
                      for method, url, *_ in origin.history}:
            await self.backend.save_redirect(alias, key)
        final = self.backend.identify(CachedRequest(self.request.method, origin.url,
                                                    self.request.headers))
        if final[0] != key:
            await self.backend.save_response(
                dataclasses.replace(response, request=final[1], history=[]), final[0])


async def invalidate(backend: CacheBackend, request: CachedRequest, status: int,
                     headers: CIMultiDict[str]) -> None:
    """After a successful unsafe request, drop the stored GET/HEAD of the URLs it
    changed (RFC 9111 §4.4)."""
    urls = invalidated_urls(request.method, request.url, status, headers)
    if not urls:
        return
    keys = [backend.identify(CachedRequest(method, url, request.headers, follow_redirects=follow))[0]
            for url in urls for method in ("GET", "HEAD") for follow in (True, False)]
    logger.debug("%s %s answered %d: invalidating %s (RFC 9111 §4.4)", request.method,
                 request.url, status, urls)
    await backend.delete(*keys)
