"""The executor both sessions share: it carries out the decision core's decisions.

A session translates its request into a :class:`CachedRequest`, supplies a ``send``
coroutine that talks to the origin, and gets back an :class:`Outcome`. What to do at
each step (serve, revalidate, fetch, store, renew, invalidate...) is decided by
:mod:`aiocache_http.policy.core`; this module only does the IO, coalesces concurrent
misses per key, and emits one :class:`~aiocache_http.events.CacheEvent` per request.

Concurrent misses for the same key share one origin request: the first becomes the
leader, the others wait for the response it stores and answer with it (no second read).
A leader that fails or stores nothing hands over to the next caller.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from multidict import CIMultiDict

from .backends.base import CacheBackend
from .backends.health import request_budget
from .events import CacheEvent, Kind, start_collecting_faults, stop_collecting_faults
from .metrics.cache_status import cache_status
from .models import CachedRequest, CachedResponse
from .policy import core
from .policy.core import Plan, Received, RequestOptions
from .policy.decisions import (
    Decision,
    DontStore,
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
from .policy.keys import redact_url

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
    sent_headers: CIMultiDict[str] | None = None
    """The headers of the request that got this answer (after redirects and auth handlers)."""


Send = Callable[[dict[str, str]], Awaitable[OriginResponse]]
"""Sends the request to the origin with these extra (conditional) headers."""


@dataclass(slots=True)
class Outcome:
    """What the session returns: a stored response to replay, or the live one.

    ``age`` is set for answers from the cache when ``cache_control`` is on: the
    session emits it as the ``Age`` header (RFC 9111 §5.1); ``cache_status`` likewise.
    """

    response: CachedResponse | None
    raw: Any = None
    release: Callable[[], Any] | None = None  # frees ``raw`` when nobody will read it
    from_cache: bool = False
    age: float | None = None
    revalidated: bool = False  # a 304 just confirmed the stored response
    cache_status: str | None = None  # the Cache-Status header, with cache_status_header (RFC 9211)


async def fetch(
    backend: CacheBackend, request: CachedRequest, options: RequestOptions | None, send: Send,
    network_errors: tuple[type[BaseException], ...] = (OSError, asyncio.TimeoutError),
) -> Outcome:
    """Answer ``request`` from the cache or the origin, storing what may be stored.

    ``request`` carries real credentials; only its redacted copy is ever stored.
    ``network_errors`` are the HTTP library's "origin unreachable" exceptions, for which
    stale-if-error and must-revalidate apply.
    """
    plan = core.plan(request, backend.settings, options, backend.identify)
    run = _Run(backend, plan, send, network_errors)
    with request_budget():  # a sick backend costs this request at most one deadline
        status_header = backend.settings.cache_status_header
        if not backend.events and not status_header:
            return await run.execute()
        run.observe()
        faults, token = start_collecting_faults()
        try:
            outcome = await run.execute()
        except BaseException:
            run.emit(None, faults, error=True)
            raise
        finally:
            stop_collecting_faults(token)
        event = run.emit(outcome, faults)
        if status_header:
            served = outcome.response
            outcome.cache_status = cache_status(
                event, None if served is None else served.expires, backend.clock())
        return outcome


class _Run:
    """One request's way through the cache: carries out the core's decisions."""

    # What the event reports; class-level defaults, so a hit sets only what it uses.
    last: Decision | None = None  # the last decision carried out
    lookup_decision: Decision | None = None
    stored: bool | None = None
    stored_response: CachedResponse | None = None  # what this request stored, to share
    not_stored_reason = ""
    coalesced = False
    bytes_stored = 0
    observing = False
    started = 0.0
    origin_time = 0.0
    storage_time = 0.0

    def __init__(self, backend: CacheBackend, plan: Plan, send: Send,
                 network_errors: tuple[type[BaseException], ...]) -> None:
        self.backend, self.plan, self.send, self.network_errors = backend, plan, send, network_errors

    async def execute(self) -> Outcome:
        plan = self.plan
        if plan.bypass is not None:
            return await self.origin(plan.bypass)
        coalescing = self.backend.coalescing
        mark = coalescing.mark()
        decision = await self.lookup()
        if isinstance(decision, ServeStale) and decision.refresh is not None:
            slot = (asyncio.get_running_loop(), plan.key)
            if slot not in coalescing.inflight and not coalescing.finished_since(slot, mark):
                self.refresh_in_background(slot, decision.refresh)
        if not isinstance(decision, (Fetch, Revalidate)):
            return self.answer(decision)
        if plan.refresh or plan.skip_read:
            return await self.origin(decision)  # the caller asked for its own origin request
        return await self.coalesce(decision, mark)

    # -- storage ------------------------------------------------------------------------
    async def lookup(self) -> Decision:
        """Read what the core asks for until it can decide from it."""
        plan, backend = self.plan, self.backend
        start = time.perf_counter() if self.observing else 0.0
        stored = await backend.get_response(plan.key)
        now = backend.clock()
        decision = core.on_lookup(plan, stored, now)
        while isinstance(decision, Lookup):
            _debug(plan, decision)
            stored = await backend.get_response(decision.key)
            decision = core.on_lookup(plan, stored, now, via=decision)
        if self.observing:
            self.storage_time += time.perf_counter() - start
        self.lookup_decision = decision
        return decision

    async def save(self, response: CachedResponse, keys: tuple[str, ...],
                   aliases: tuple[str, ...] = ()) -> None:
        start = time.perf_counter() if self.observing else 0.0
        backend = self.backend
        for key in keys:
            await backend.save_response(response, key)
        for alias in aliases:
            await backend.save_redirect(alias, keys[0])
        self.stored = True
        self.stored_response = response
        if self.observing:
            self.storage_time += time.perf_counter() - start

    async def store(self, decision: Store, received: Received, body: bytes) -> CachedResponse | None:
        """Store the origin's response once its body is complete (the one step a streamed
        body runs at its end). Returns what was stored, or None."""
        settings = self.backend.settings
        result = core.to_store(self.plan, decision, received, body, lambda url: redact_url(
            url, settings.ignored_params, settings.credential_names))
        if isinstance(result, DontStore):
            self.not_stored(result)
            return None
        await self.save(result, decision.keys, decision.aliases)
        self.bytes_stored = len(body)
        _debug(self.plan, decision)
        return result

    def not_stored(self, decision: DontStore) -> None:
        self.last = decision
        self.stored = False
        self.not_stored_reason = decision.why()
        _debug(self.plan, decision)

    # -- answers ---------------------------------------------------------------------------
    def answer(self, decision: Decision) -> Outcome:
        """Serve, ServeStale or GatewayTimeout: an answer without (more of) the origin."""
        self.last = decision
        _debug(self.plan, decision)
        if isinstance(decision, (Serve, ServeStale)):
            assert decision.response is not None
            return Outcome(decision.response, from_cache=True, age=decision.age)
        assert isinstance(decision, GatewayTimeout) and decision.response is not None
        return Outcome(decision.response)

    # -- coalescing ---------------------------------------------------------------------
    async def coalesce(self, decision: Fetch | Revalidate, mark: int) -> Outcome:
        """Lead the origin request for this key, or share the running leader's answer."""
        coalescing = self.backend.coalescing
        slot = (asyncio.get_running_loop(), self.plan.key)
        while True:
            leader = coalescing.inflight.get(slot)
            if leader is not None:
                self.coalesced = True
                result = await asyncio.shield(leader)
                if result is not None:  # in hand: no need to read it back
                    shared = core.shared(self.plan, result, self.backend.clock())
                    if isinstance(shared, (Fetch, Revalidate)):
                        return await self.origin(shared)
                    return self.answer(shared)
                mark = coalescing.mark()  # the leader stored nothing: elect another
                continue
            if coalescing.finished_since(slot, mark):
                # A fill for this key finished while we were reading: read again.
                mark = coalescing.mark()
                again = await self.lookup()
                if not isinstance(again, (Fetch, Revalidate)):
                    return self.answer(again)
                decision = again
                continue
            return await self.lead(slot, decision)

    async def lead(self, slot: tuple[asyncio.AbstractEventLoop, str],
                   decision: Fetch | Revalidate) -> Outcome:
        coalescing = self.backend.coalescing
        future = coalescing.claim(slot)
        shared: CachedResponse | None = None
        try:
            outcome = await self.origin(decision)
            shared = self.stored_response  # only stored responses are shared
            return outcome
        finally:
            coalescing.release(slot, future, shared)

    def refresh_in_background(self, slot: tuple[asyncio.AbstractEventLoop, str],
                              decision: Revalidate | Fetch) -> None:
        """Stale-while-revalidate (RFC 5861 §3): one background refresh per key. The slot
        is claimed before the task starts, so concurrent stale hits start exactly one."""
        refresh = _Run(self.backend, self.plan, self.send, self.network_errors)
        future = self.backend.coalescing.claim(slot)
        plan = self.plan

        async def run() -> None:
            shared: CachedResponse | None = None
            try:
                outcome = await refresh.origin(decision)
                shared = refresh.stored_response
                if outcome.release is not None:
                    outcome.release()
            except Exception as e:
                logger.warning("%s %s: background refresh failed: %s: %s", plan.request.method,
                               plan.request.url, type(e).__name__, e)
            finally:
                self.backend.coalescing.release(slot, future, shared)

        task = slot[0].create_task(run())
        self.backend.background.add(task)
        task.add_done_callback(self.backend.background.discard)

    # -- the origin ---------------------------------------------------------------------
    async def origin(self, sent: Decision) -> Outcome:
        """Send the request (conditional for a Revalidate) and carry out what the core
        decides from the answer."""
        plan, backend = self.plan, self.backend
        self.last = sent
        _debug(plan, sent)
        request_time = backend.clock()
        start = time.perf_counter() if self.observing else 0.0
        try:
            origin = await self.send(dict(sent.headers) if isinstance(sent, Revalidate) else {})
        except self.network_errors as e:
            if self.observing:
                self.origin_time += time.perf_counter() - start
            instead = core.on_error(plan, sent, f"{type(e).__name__}: {e}", backend.clock())
            if instead is None:
                raise
            logger.warning("%s %s: %s", plan.request.method, plan.request.url, instead.why())
            return self.answer(instead)
        if self.observing:
            self.origin_time += time.perf_counter() - start
        received = Received(origin.status, origin.reason, origin.url, origin.headers, request_time,
                            backend.clock(), origin.encoding, origin.history, origin.sent_headers)
        return await self.carry_out(core.on_response(plan, sent, received), origin, received)

    async def carry_out(self, decision: Decision, origin: OriginResponse,
                        received: Received) -> Outcome:
        while isinstance(decision, Invalidate):
            _debug(self.plan, decision)
            await self.backend.delete(*decision.keys)
            assert decision.then is not None
            decision = decision.then
        if isinstance(decision, Renew):
            origin.release()
            assert decision.response is not None
            if not self.backend.settings.read_only:
                await self.save(decision.response, decision.keys)
            self.last = decision
            _debug(self.plan, decision)
            return Outcome(decision.answer or decision.response, from_cache=True, age=decision.age,
                           revalidated=True)
        if isinstance(decision, Serve):  # a 304 to an unconditional request
            origin.release()
            return self.answer(decision)
        if isinstance(decision, ServeStale):
            origin.release()
            logger.warning("%s %s: %s", self.plan.request.method, self.plan.request.url,
                           decision.why())
            return self.answer(decision)
        if isinstance(decision, Fetch):  # the 304 matched nothing stored: ask in full
            origin.release()
            return await self.origin(decision)
        if isinstance(decision, DontStore):
            self.not_stored(decision)
            if self.plan.bypass is not None:
                self.stored = None  # nothing could have been stored
            return Outcome(None, raw=origin.raw, release=origin.release)
        assert isinstance(decision, Store)
        if not await self.passes_filter(origin):
            self.not_stored(core.filtered_out(self.plan))
            return Outcome(None, raw=origin.raw, release=origin.release)
        start = time.perf_counter() if self.observing else 0.0
        body = await origin.read()
        if self.observing:
            self.origin_time += time.perf_counter() - start  # the body is origin time too
        stored = await self.store(decision, received, body)
        if stored is not None:
            self.last = decision
        return Outcome(stored, raw=origin.raw, release=origin.release)

    async def passes_filter(self, origin: OriginResponse) -> bool:
        filter_fn = self.backend.settings.filter_fn
        if filter_fn is None:
            return True
        result = filter_fn(origin.raw)
        if inspect.isawaitable(result):
            result = await result
        return bool(result)

    # -- the event --------------------------------------------------------------------------
    def observe(self) -> None:
        self.observing = True
        self.started = time.perf_counter()

    def emit(self, outcome: Outcome | None, faults: list[str], error: bool = False) -> CacheEvent:
        plan, last = self.plan, self.last
        if last is None:
            last = plan.bypass or self.lookup_decision or Fetch("failed before a decision")
        kind = _kind(plan, last, error)
        response = None if outcome is None else outcome.response
        status = None
        served: int | None = None
        if response is not None:
            status, served = response.status, len(response.body)
        elif outcome is not None and outcome.raw is not None:
            status = getattr(outcome.raw, "status", getattr(outcome.raw, "status_code", None))
        settings = self.backend.settings
        url = plan.request.url if plan.bypass is None else redact_url(
            plan.request.url, settings.ignored_params, settings.credential_names)
        event = CacheEvent(
            kind=kind, method=plan.request.method, url=url, key=plan.key, status=status,
            decision=last, lookup=self.lookup_decision,
            from_cache=outcome is not None and outcome.from_cache,
            stored=self.stored, not_stored_reason=self.not_stored_reason, coalesced=self.coalesced,
            duration=time.perf_counter() - self.started, origin_time=self.origin_time,
            storage_time=self.storage_time, bytes_served=served, bytes_stored=self.bytes_stored,
            storage_errors=tuple(faults),
        )
        self.backend.events.emit(event)
        return event


def _kind(plan: Plan, last: Decision, error: bool) -> Kind:
    if plan.bypass is not None:
        return "bypassed"
    if error:
        return "error"
    if isinstance(last, ServeStale):
        return "stale"
    if isinstance(last, Serve):
        return "hit"
    if isinstance(last, Renew):
        return "revalidated"
    if isinstance(last, GatewayTimeout):
        return "gateway_timeout"
    return "miss"


def _debug(plan: Plan, decision: Decision) -> None:
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug("%s %s: %s: %s", plan.request.method, plan.request.url, decision.name,
                     decision.why())


__all__ = ["OriginResponse", "Outcome", "Send", "fetch"]
