"""The executor both sessions share: it carries out the decision core's decisions.

A session translates its request into a :class:`CachedRequest`, supplies a ``send``
coroutine that talks to the origin, and gets back an :class:`Outcome`. What to do at
each step (serve, revalidate, fetch, store, renew, invalidate...) is decided by
:mod:`aiocache_http.policy.core`; this module only does the IO, coalesces concurrent
misses per key, and emits one :class:`~aiocache_http.events.CacheEvent` per request.

Concurrent misses for the same key share one origin request: the first becomes the
leader, the others wait for the response it stores and answer with it (no second read,
unless its body was too large to keep in memory). A leader that fails or stores nothing
hands over to the next caller.

A miss hands the caller the live response; its body is stored as the caller reads it
(a tee, :mod:`.streaming`), once complete: the store step begins with the response's
head and ends with its body. Its event is emitted then. Waiters wait for the body to be
stored, within the limits of :class:`~aiocache_http.coalescing.Lead`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from multidict import CIMultiDict, MultiMapping

from .backends.base import CacheBackend
from .backends.health import request_budget
from .coalescing import IN_STORAGE, NOT_BEGUN, OUT_OF_TIME, Patience
from .events import CacheEvent, Counts, Kind, start_collecting_faults, stop_collecting_faults
from .metrics.cache_status import cache_status
from .models import CachedRequest, CachedResponse, StoredBody, utcnow
from .policy import core, freshness
from .policy.core import UNSET, Plan, Received, RequestOptions
from .policy.decisions import (
    Decision,
    DontStore,
    Fetch,
    Fresh,
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
from .streaming import Tee

logger = logging.getLogger("aiocache_http")
_INF = float("inf")

STORAGE_ERROR = "storage error: the write failed or was dropped at its deadline"
"""The event's ``not_stored_reason`` when the store decided on did not reach storage."""


@dataclass(slots=True)
class OriginResponse:
    """A live origin response as the driver needs it, whatever the HTTP library."""

    status: int
    reason: str
    url: str
    headers: CIMultiDict[str]
    raw: Any
    tee: Callable[[Tee], Awaitable[Any]]
    """Pass the body through the tee as the caller reads it; returns what the caller gets."""
    drain: Callable[[Any], Awaitable[None]]
    """Read what ``tee`` returned to its end, for nobody (a background refresh)."""
    release: Callable[[], Any]
    encoding: str | None = None
    history: Sequence[tuple[str, str, int, str, CIMultiDict[str]]] = ()
    """Redirect hops as (method, url, status, reason, headers)."""
    sent_headers: MultiMapping[str] | None = None
    """The headers of the request that got this answer (after redirects and auth handlers)."""
    whole: Callable[[int | None], Awaitable[bytes | None]] | None = None
    """The body if it has arrived whole (waited for up to this Content-Length), left for
    the caller to read; None if it has not: it then passes through ``tee``."""
    arrived: bytes | None = None
    """The body, if it had arrived whole with the head already (``whole`` without waiting)."""


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
    tee: Tee | None = None  # the body of ``raw`` is on its way to storage
    drain: Callable[[], Awaitable[None]] | None = None  # reads ``raw``'s body for nobody


def fetch(
    backend: CacheBackend, request: CachedRequest, options: RequestOptions | None, send: Send,
    network_errors: tuple[type[BaseException], ...] = (OSError, asyncio.TimeoutError),
    owner: object = None, plan: Plan | None = None, inline_tried: bool = False,
) -> Coroutine[Any, Any, Outcome]:
    """Answer ``request`` from the cache or the origin, storing what may be stored.

    ``request`` carries real credentials; only its redacted copy is ever stored.
    ``network_errors`` are the HTTP library's "origin unreachable" exceptions, for which
    stale-if-error and must-revalidate apply. ``owner`` is who will read the response
    (default: the current task; the sync session passes its calling thread): a request
    never waits for a response its owner has not read yet. ``plan`` is
    ``core.plan(request, ...)`` when the session has it already (a plain request seen
    before); ``inline_tried``: the session called :func:`serve_inline` with it already.

    Returns the coroutine to await: a miss known at once (:func:`_known_miss`) is
    :meth:`_Run.plain_miss` itself, one coroutine less on its way to the origin.
    """
    if plan is None:
        plan = core.plan(request, backend.settings, options, backend.identify_bound)
    if (not backend.events.listeners and not backend.settings.cache_status_header
            and plan.bypass is None and not plan.skip_read and not plan.refresh
            and _known_miss(backend, plan.key)):
        run = _Run(backend, plan, send, network_errors)
        run.owner = owner  # (None: the current task, looked up when coalescing needs it)
        return run.plain_miss()
    return _fetch(backend, plan, send, network_errors, owner, inline_tried)


async def _fetch(backend: CacheBackend, plan: Plan, send: Send,
                 network_errors: tuple[type[BaseException], ...], owner: object,
                 inline_tried: bool) -> Outcome:
    """:func:`fetch` for any request but a miss known at once."""
    hub = backend.events
    status_header = backend.settings.cache_status_header
    if not inline_tried:
        hit = serve_inline(backend, plan)
        if hit is not None:
            return hit
    run = _Run(backend, plan, send, network_errors)
    run.owner = owner  # (None: the current task, looked up when coalescing needs it)
    with request_budget():  # a sick backend costs this request at most one deadline
        if hub.stats is None and not hub.listeners and not status_header:  # (not hub, inline)
            outcome = await run.execute()
            return await run.finish(outcome) if run.opened else outcome
        listening = bool(hub.listeners) or status_header
        if listening:
            run.observe()
        faults, token = start_collecting_faults()
        try:
            first = None
            mark = backend.coalescing.mark()
            if not listening and plan.bypass is None and not plan.skip_read:
                # A plain request nobody listens to, on storage read with IO: the lookup's
                # first read here, and a fresh whole entry served at once (counted; no
                # event built); anything else goes on the full way from what was read.
                stored = run.opening(await backend.read_hot(plan.key))
                now = backend.clock()
                decision = core.on_lookup(plan, stored, now)
                if type(decision) is Serve and not faults and not run.opened:
                    return _counted_hit(plan, decision, hub.stats)
                first = (decision, now)
            outcome = await run.execute(first, mark)
            if run.opened:
                outcome = await run.finish(outcome)
        except BaseException:
            run.emit(None, faults, error=True)
            raise
        finally:
            stop_collecting_faults(token)
        return run.report(outcome, faults, listening)


def _patience(send: Send) -> Patience:
    """The caller's own timeouts: what its sender knows of them (``send.patience()``)."""
    patience = getattr(send, "patience", None)
    return patience() if patience is not None else _UNBOUNDED


_UNBOUNDED = Patience(None, None, lambda total: asyncio.TimeoutError())


async def _within(deadline: float | None, work: Coroutine[Any, Any, Outcome]) -> Outcome:
    """``work`` within what is left of a waiter's total timeout (asyncio.TimeoutError,
    as aiohttp's own total timeout raises, once it is spent)."""
    if deadline is None:
        return await work
    return await asyncio.wait_for(work, max(deadline - time.monotonic(), 0.0))


class HitMemo:
    """One plan's last fresh verdict (:func:`core.fresh_verdict`) and the answer made
    from it, as one tuple: reused while storage hands back the very entry it was made
    for and the clock has not reached its end (the session keeps one per plain URL)."""

    __slots__ = ("last",)

    def __init__(self) -> None:
        self.last: tuple[Fresh, Outcome, int] | None = None  # the verdict, its answer, bytes served


def serve_inline(backend: CacheBackend, plan: Plan,
                 loop: asyncio.AbstractEventLoop | None = None,
                 memo: HitMemo | None = None) -> Outcome | None:
    """The answer to ``plan`` when it is a hit to be had at once, else None (then
    :func:`fetch` the full way). An in-process or inline-read hit nobody listens to: no
    IO that can wait, no deadline, no coalescing, no event; the same decision the full
    way would make, only counted. ``loop``: whose connections and breaker to use, when
    called off that loop (the sync session answers a hit on its calling thread).
    ``memo``: where to keep a verdict that holds until the entry expires."""
    hub = backend.events
    if plan.bypass is not None or plan.skip_read or hub.listeners or backend.settings.cache_status_header:
        return None
    stored = backend.read_inline(plan.key, loop)  # every hit reads: a deleted entry is gone
    if stored is None:
        if memo is not None:
            memo.last = None  # (nor kept alive by its verdict)
        return None
    if memo is None:
        decision = core.on_lookup(plan, stored, backend.clock())
        if type(decision) is not Serve:
            return None
        return _counted_hit(plan, decision, hub.stats)
    last = memo.last
    if last is not None and last[0].stored is stored:
        fresh, outcome, served = last
        if not fresh.aged:
            if fresh.until == _INF or _before(backend, fresh.until):
                # (_counted_hit inline: every repeated hit)
                if logger.isEnabledFor(logging.DEBUG):
                    _debug(plan, fresh.serve)
                if hub.stats is not None:
                    hub.stats.count_hit(served)
                return outcome
        else:
            now = backend.clock()
            if now.timestamp() < fresh.until:
                return _counted_hit(plan, fresh.serve, hub.stats,
                                    Outcome(fresh.serve.response, None, None, True, core.age_at(fresh, now)))
    now = backend.clock()
    verdict = core.fresh_verdict(plan, stored, now)
    if type(verdict) is Fresh:
        response = verdict.serve.response
        outcome = Outcome(response, None, None, True, core.age_at(verdict, now) if verdict.aged else None)
        memo.last = (verdict, outcome, len(response.body) if response is not None else 0)
        return _counted_hit(plan, verdict.serve, hub.stats, outcome)
    memo.last = None
    if type(verdict) is not Serve:
        return None
    return _counted_hit(plan, verdict, hub.stats)


def _before(backend: CacheBackend, until: float) -> bool:
    """Is the backend's clock before ``until`` (a POSIX timestamp)? The system clock
    read as a float, unless a test replaced the clock."""
    if backend.clock is utcnow:
        return time.time() < until
    return backend.clock().timestamp() < until


def _counted_hit(plan: Plan, decision: Serve, stats: Counts | None,
                 outcome: Outcome | None = None) -> Outcome:
    """A plain hit nobody listens to, answered: counted, no event built. ``outcome``:
    the answer made for this decision already."""
    if logger.isEnabledFor(logging.DEBUG):  # (_debug's test inline: every hit)
        _debug(plan, decision)
    assert decision.response is not None
    if stats is not None:
        stats.count_hit(len(decision.response.body))
    if outcome is not None:
        return outcome
    return Outcome(decision.response, None, None, True, decision.age)  # (positional: cheaper)


def _known_miss(backend: CacheBackend, key: str) -> bool:
    """Is it known at once, without IO, that nothing is stored at ``key``, under it or as
    a redirect alias? So for in-process object storage (memory) read its own way."""
    responses, redirects = backend.raw_responses, backend.raw_redirects
    one, other = type(responses), type(redirects)  # (unrolled: every first-seen request asks)
    if not (responses.holds_objects and redirects.holds_objects
            and getattr(one, "_fast_read", None) is one.read
            and getattr(other, "_fast_read", None) is other.read):
        return False
    return (responses.get_item(key) is None  # type: ignore[attr-defined]
            and redirects.get_item(key) is None)  # type: ignore[attr-defined]


class _Run:
    """One request's way through the cache: carries out the core's decisions."""

    # What the event reports; class-level defaults, so a hit sets only what it uses.
    last: Decision | None = None  # the last decision carried out
    lookup_decision: Decision | None = None
    stored: bool | None = None
    stored_response: Any = None  # what this request stored, to share: a response or IN_STORAGE
    not_stored_reason = ""
    coalesced = False
    bytes_stored = 0
    owner: object = None  # who reads the response (see fetch(); None until coalesce())
    opened: list[StoredBody] | None = None  # large stored bodies read by lookups
    observing = False
    started = 0.0
    origin_time = 0.0
    storage_time = 0.0

    def __init__(self, backend: CacheBackend, plan: Plan, send: Send,
                 network_errors: tuple[type[BaseException], ...]) -> None:
        self.backend, self.plan, self.send, self.network_errors = backend, plan, send, network_errors

    async def execute(self, first: tuple[Decision, datetime] | None = None,
                      mark: int | None = None) -> Outcome:
        """``first``: the core's decision on the entry at the plan's key (and the time it
        was made), when the caller read it already, with ``mark`` taken before."""
        plan = self.plan
        if plan.bypass is not None:
            return await self.origin(plan.bypass)
        coalescing = self.backend.coalescing
        if mark is None:
            mark = coalescing.mark()
        decision = await self.lookup(first)
        if isinstance(decision, ServeStale) and decision.refresh is not None:
            slot = (asyncio.get_running_loop(), plan.key)
            if slot not in coalescing.inflight and not coalescing.finished_since(slot, mark):
                self.refresh_in_background(slot, decision.refresh)
        if not isinstance(decision, (Fetch, Revalidate)):
            return self.answer(decision)
        if plan.refresh or plan.skip_read:
            return await self.origin(decision)  # the caller asked for its own origin request
        return await self.coalesce(decision, mark)

    async def plain_miss(self) -> Outcome:
        """A plain request nobody listens to, with nothing stored for it, known without IO
        (:func:`_known_miss`): what :meth:`execute` does for it, without the layers a read
        that waits needs (its deadline, a second read, re-checking the key's fills)."""
        plan, backend = self.plan, self.backend
        now = backend.clock()
        decision = core.on_lookup(plan, None, now)
        self.lookup_decision = decision
        slot = (asyncio.get_running_loop(), plan.key)
        coalescing = backend.coalescing
        if type(decision) is not Fetch or slot in coalescing.inflight:  # another leads, a HEAD...
            return await self.plain_other(decision, now)
        stats = backend.events.stats  # (nobody listens: the counters, if any)
        faults, token = start_collecting_faults() if stats is not None else ([], None)
        lead = coalescing.claim(slot, self.reader())  # (lead() inline: a coroutine less)
        try:
            outcome = await self.origin(decision, now)  # sent at the lookup's time
        except BaseException:
            coalescing.release(slot, lead, None)
            if stats is not None:
                self.emit(None, faults, error=True)
            raise
        finally:
            if token is not None:
                stop_collecting_faults(token)
        self.hand_over(slot, lead, outcome)
        if stats is None:
            return outcome
        stored = outcome.response
        if (stored is not None and not faults and type(self.last) is Store and outcome.tee is None
                and self.stored):  # (report()'s way for a plain miss stored whole, inline)
            stats.count_stored_miss(len(stored.body))
            return outcome
        return self.report(outcome, faults, False)

    async def plain_other(self, decision: Decision, now: datetime) -> Outcome:
        """:meth:`plain_miss` when another request leads for the key, or the core asks
        for more than the origin (a HEAD looks for the GET's entry)."""
        counting = bool(self.backend.events)
        faults, token = start_collecting_faults() if counting else ([], None)
        try:
            outcome = await self.execute((decision, now))
            if self.opened:  # (the way through execute() may have read a large body)
                outcome = await self.finish(outcome)
        except BaseException:
            if counting:
                self.emit(None, faults, error=True)
            raise
        finally:
            if token is not None:
                stop_collecting_faults(token)
        return self.report(outcome, faults, False) if counting else outcome

    def report(self, outcome: Outcome, faults: list[str], listening: bool) -> Outcome:
        """Count or emit what this request did, once its answer is known (see fetch())."""
        hub = self.backend.events
        if not listening and not faults and not self.coalesced and hub.stats is not None:
            # Nobody listening: the common answers are counted, no event built (the hot
            # paths): a plain hit, a plain miss stored whole, a request that passed the
            # cache by (disabled, a method not cached...).
            response = outcome.response
            if response is None:
                if self.plan.bypass is not None and self.stored is None:
                    hub.stats.count_bypass()
                    return outcome
            elif type(self.last) is Serve:
                hub.stats.count_hit(len(response.body))
                return outcome
            elif (type(self.last) is Store and outcome.tee is None and self.stored
                    and type(self.lookup_decision) is Fetch):
                hub.stats.count_stored_miss(len(response.body))
                return outcome
        tee = outcome.tee
        pending = tee is not None and not tee.done.done()
        event = self.emit(outcome, faults, publish=not pending)
        if tee is not None and pending:  # the event is the body's: once it is stored or not
            # Not the outcome: it holds the live response, which the storage's in-flight
            # entry would then keep alive, so that one dropped half-read never abandons
            # its tee (its finalizer would never run).
            ended = Outcome(outcome.response, from_cache=outcome.from_cache, tee=tee)
            tee.done.add_done_callback(lambda _: self.emit(ended, faults))
        if self.backend.settings.cache_status_header:
            served = outcome.response
            outcome.cache_status = cache_status(
                event, None if served is None else served.expires, self.backend.clock())
        return outcome

    async def finish(self, outcome: Outcome) -> Outcome:
        """Close the large stored bodies the lookups opened that the answer does not use."""
        if self.opened:
            used = None if outcome.response is None else outcome.response.stored_body
            for body in self.opened:
                if body is not used:
                    await body.close()
        return outcome

    # -- storage ------------------------------------------------------------------------
    async def read(self, key: str) -> CachedResponse | None:
        """The entry at ``key``; a large body stays in storage until it is read."""
        return self.opening(await self.backend.get_record(key, stream=True))

    def opening(self, stored: CachedResponse | None) -> CachedResponse | None:
        """``stored``, its large body (left in storage) kept to close (see finish())."""
        if stored is not None and stored.stored_body is not None:
            self.opened = [*(self.opened or ()), stored.stored_body]
        return stored

    async def lookup(self, first: tuple[Decision, datetime] | None = None) -> Decision:
        """Read what the core asks for until it can decide from it (``first``: the
        decision on the entry at the plan's key, read already; see execute())."""
        plan, backend = self.plan, self.backend
        start = time.perf_counter() if self.observing else 0.0
        if first is None:
            stored = self.opening(await backend.get_record(plan.key, stream=True))  # (read())
            now = backend.clock()
            decision = core.on_lookup(plan, stored, now)
        else:
            decision, now = first
        while isinstance(decision, Lookup):
            _debug(plan, decision)
            stored = await self.read(decision.key)
            decision = core.on_lookup(plan, stored, now, via=decision)
        if self.observing:
            self.storage_time += time.perf_counter() - start
        self.lookup_decision = decision
        return decision

    async def save(self, response: CachedResponse, keys: tuple[str, ...],
                   aliases: tuple[str, ...] = ()) -> CachedResponse:
        """Store ``response``; returns it, or for a body left in storage, the stored copy
        (the item the body was read from is replaced)."""
        start = time.perf_counter() if self.observing else 0.0
        backend = self.backend
        self.stored_response = response  # in hand: shared with the waiters even if not stored
        if not await backend.save_response_at(response, keys):  # failed or dropped (fail-open)
            self.stored, self.not_stored_reason = False, STORAGE_ERROR
            if response.stored_body is not None:
                self.stored_response = None  # nothing in hand to share: each waiter on its own
            if self.observing:
                self.storage_time += time.perf_counter() - start
            return response
        for alias in aliases:
            await backend.save_redirect(alias, keys[0])
        self.stored = True
        if response.stored_body is not None:
            self.stored_response = IN_STORAGE  # each reader reads its own
            # Its own key (with Vary, the variant's): the first, shared by the variants,
            # may hold another variant's renewal saved meanwhile.
            copy = await self.read(keys[-1])
            if copy is not None:  # else not stored (fail-open): the old item, still in place
                response = copy
        if self.observing:
            self.storage_time += time.perf_counter() - start
        return response

    async def store(self, decision: Store, received: Received, origin: OriginResponse,
                    whole: CachedResponse | None = None) -> Outcome:
        """The store step, begun with the response's head and ended with its body: the
        caller gets the live response, whose body passes through a tee that stores it
        once complete (not at all if it is larger than ``max_body_size``). ``whole``:
        :meth:`keep_whole`'s response to save, when the caller has it."""
        backend, plan = self.backend, self.plan
        settings = backend.settings
        if whole is None:
            length = freshness.expected_length(origin.headers)
            limit = settings.max_body_size
            if limit is not None and length is not None and length > limit:
                self.not_stored(DontStore("Content-Length %d > max_body_size %d", "", (length, limit)))
                return Outcome(None, raw=origin.raw, release=origin.release)
            body = origin.arrived
            if body is None and origin.whole is not None:
                body = await origin.whole(length)
            if body is not None:
                kept = self.keep_whole(decision, received, origin, body, length)
                if type(kept) is Outcome:
                    return kept
                whole = kept  # type: ignore[assignment]
        if whole is not None:
            await self.save(whole, decision.keys, decision.aliases)
            return self.kept(decision, whole, origin)
        length = freshness.expected_length(origin.headers)
        limit = settings.max_body_size
        response = core.stored_response(plan, decision, received)
        writer = await backend.open_response(response, decision.keys)
        tee: Tee

        async def stored() -> None:
            for alias in decision.aliases:
                await backend.save_redirect(alias, decision.keys[0])
            self.stored, self.bytes_stored, self.last = True, tee.size, decision
            _debug(plan, decision)

        incomplete: DontStore | None = None

        def complete(size: int) -> bool:
            nonlocal incomplete
            incomplete = core.body_incomplete(plan, decision, size)
            return incomplete is None

        def ended(_: object) -> None:
            if not self.stored:
                self.not_stored(incomplete or DontStore("not stored: %s", "", (tee.reason,)))

        tee = Tee(writer, complete=complete, expected_length=length, max_size=limit,
                  on_stored=stored, label=f"{plan.request.method} {plan.request.url}")
        tee.done.add_done_callback(ended)
        raw = await origin.tee(tee)
        return Outcome(response, raw=raw, release=origin.release, tee=tee,
                       drain=lambda: origin.drain(raw))

    def keep_whole(self, decision: Store, received: Received, origin: OriginResponse, body: bytes,
                   length: int | None) -> Outcome | CachedResponse:
        """A body that arrived with its head (most small ones): the answer once it is
        stored at once (in memory) or not stored at all; else the response to save. The
        caller reads the body from the HTTP library's own stream, as it would without a
        cache: nothing to tee."""
        backend, plan = self.backend, self.plan
        limit = backend.settings.max_body_size
        if limit is not None:
            if length is not None and length > limit:
                self.not_stored(DontStore("Content-Length %d > max_body_size %d", "", (length, limit)))
                return Outcome(None, raw=origin.raw, release=origin.release)
            if len(body) > limit:
                self.not_stored(DontStore("body of %d bytes > max_body_size %d", "",
                                          (len(body), limit)))
                return Outcome(None, raw=origin.raw, release=origin.release)
        whole = core.to_store(plan, decision, received, body,
                              length if decision.headers is origin.headers else UNSET)
        if isinstance(whole, DontStore):
            self.not_stored(whole)
            return Outcome(None, raw=origin.raw, release=origin.release)
        # Its headers are headers_to_store()'s: no Set-Cookie (what save_response_at drops).
        if not decision.aliases and not self.observing and backend.put_now(whole, decision.keys):
            # (save(), in memory: at once; then kept(), inline)
            self.stored_response, self.stored, self.bytes_stored, self.last = whole, True, len(body), decision
            if logger.isEnabledFor(logging.DEBUG):
                _debug(plan, decision)
            return Outcome(whole, raw=origin.raw, release=origin.release)
        return whole

    def kept(self, decision: Store, whole: CachedResponse, origin: OriginResponse) -> Outcome:
        """The answer once ``whole`` is stored (or failed to be: fail-open)."""
        self.bytes_stored, self.last = (len(whole.body) if self.stored else 0), decision
        if logger.isEnabledFor(logging.DEBUG):  # (_debug's test inline: every miss)
            _debug(self.plan, decision)
        return Outcome(whole, raw=origin.raw, release=origin.release)

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
    def reader(self) -> object:
        """Who reads the response: the owner given to fetch(), else the current task
        (looked up only when coalescing needs it)."""
        if self.owner is None:
            self.owner = asyncio.current_task()
        return self.owner

    async def coalesce(self, decision: Fetch | Revalidate, mark: int) -> Outcome:
        """Lead the origin request for this key, or share the running leader's answer.
        A request that waits keeps its caller's own timeouts (:class:`Patience`): what
        it waited counts against its total when it then goes to the origin itself."""
        coalescing = self.backend.coalescing
        slot = (asyncio.get_running_loop(), self.plan.key)
        patience: Patience | None = None
        deadline: float | None = None
        while True:
            if slot in coalescing.inflight:
                leader = coalescing.lead_of(slot)  # (made for its first waiter)
                if leader.owner == self.reader():  # its own unread response: waiting would hang
                    return await self.origin(decision)
                self.coalesced = True
                if patience is None:  # (looked up only to wait: most requests never do)
                    patience = _patience(self.send)
                    if patience.total is not None:
                        deadline = time.monotonic() + patience.total
                result = await leader.wait(deadline, patience.first_byte)
                if result is OUT_OF_TIME or result is NOT_BEGUN:
                    raise patience.error(result is OUT_OF_TIME)
                if result is IN_STORAGE:  # stored, too large to be handed round: read it
                    mark = coalescing.mark()
                    again = await self.lookup()
                    if not isinstance(again, (Fetch, Revalidate)):
                        return self.answer(again)
                    decision = again
                    continue
                if result is not None:  # in hand: no need to read it back
                    now = self.backend.clock()
                    shared = core.shared(self.plan, result, now)
                    if isinstance(shared, Lookup):  # another variant: read this request's own
                        shared = await self.lookup((shared, now))
                    if isinstance(shared, (Fetch, Revalidate)):  # on its own: variants of one
                        return await _within(deadline, self.origin(shared))  # key never wait for each other
                    return self.answer(shared)
                if not leader.done:  # its body stalled: on our own
                    return await _within(deadline, self.origin(decision))
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
            return await self.lead(slot, decision, deadline=deadline)

    async def lead(self, slot: tuple[asyncio.AbstractEventLoop, str],
                   decision: Fetch | Revalidate, request_time: datetime | None = None,
                   deadline: float | None = None) -> Outcome:
        """Fetch for everyone waiting on ``slot`` (claimed at once, before any wait);
        ``deadline``: what is left of this request's own total timeout, if it waited."""
        coalescing = self.backend.coalescing
        lead = coalescing.claim(slot, self.reader())
        try:
            if deadline is None:
                outcome = await self.origin(decision, request_time)
            else:
                outcome = await _within(deadline, self.origin(decision, request_time))
        except BaseException:
            coalescing.release(slot, lead, None)
            raise
        self.hand_over(slot, lead, outcome)
        return outcome

    def hand_over(self, slot: tuple[asyncio.AbstractEventLoop, str], claim: object,
                  outcome: Outcome) -> None:
        """Give the waiters what was stored (only stored responses are shared): now, or once
        the body on its way is stored. ``claim``: the leader's (see Coalescing.claim)."""
        coalescing, tee = self.backend.coalescing, outcome.tee
        if tee is None:
            coalescing.release(slot, claim, self.stored_response)
            return
        coalescing.lead_of(slot).streams(tee)  # (a waiter may come while the body streams)

        def stored(done: asyncio.Future[CachedResponse | bool]) -> None:
            result = done.result()
            shared = result if isinstance(result, CachedResponse) else (IN_STORAGE if result else None)
            coalescing.release(slot, claim, shared)

        tee.done.add_done_callback(stored)

    def refresh_in_background(self, slot: tuple[asyncio.AbstractEventLoop, str],
                              decision: Revalidate | Fetch) -> None:
        """Stale-while-revalidate (RFC 5861 §3): one background refresh per key. The slot
        is claimed before the task starts, so concurrent stale hits start exactly one."""
        refresh = _Run(self.backend, self.plan, self.send, self.network_errors)
        lead = self.backend.coalescing.claim(slot)  # a task of its own: nobody's response
        plan = self.plan

        async def run() -> None:
            try:
                outcome = await refresh.finish(await refresh.origin(decision))
            except Exception as e:
                self.backend.coalescing.release(slot, lead, None)
                logger.warning("%s %s: background refresh failed: %s: %s", plan.request.method,
                               plan.request.url, type(e).__name__, e)
                return
            refresh.hand_over(slot, lead, outcome)
            try:
                if outcome.drain is not None:
                    await outcome.drain()  # nobody reads this body: read it to store it
                elif outcome.release is not None:
                    outcome.release()
            except Exception as e:
                logger.warning("%s %s: background refresh failed: %s: %s", plan.request.method,
                               plan.request.url, type(e).__name__, e)

        task = slot[0].create_task(run())
        self.backend.background.add(task)
        task.add_done_callback(self.backend.background.discard)

    # -- the origin ---------------------------------------------------------------------
    async def origin(self, sent: Decision, request_time: datetime | None = None) -> Outcome:
        """Send the request (conditional for a Revalidate) and carry out what the core
        decides from the answer. ``request_time``: the clock's reading just taken, if any
        (one reading serves the lookup and the request)."""
        plan, backend = self.plan, self.backend
        self.last = sent
        if logger.isEnabledFor(logging.DEBUG):  # (_debug's test inline: every miss)
            _debug(plan, sent)
        if request_time is None:
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
        decision = core.on_response(plan, sent, received)
        if type(decision) is Store and backend.settings.filter_fn is None:  # the usual one
            if origin.arrived is not None:  # (store()'s first step, without its coroutine)
                kept = self.keep_whole(decision, received, origin, origin.arrived,
                                       freshness.expected_length(origin.headers))
                if type(kept) is Outcome:
                    return kept
                return await self.store(decision, received, origin, kept)  # type: ignore[arg-type]
            return await self.store(decision, received, origin)
        return await self.carry_out(decision, origin, received)

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
            answer = decision.answer or decision.response
            if not self.backend.settings.read_only:
                saved = await self.save(decision.response, decision.keys)
                if answer.stored_body is not None:  # read its body from the renewed item
                    answer = dataclasses.replace(answer, stored_body=saved.stored_body)
            self.last = decision
            _debug(self.plan, decision)
            return Outcome(answer, from_cache=True, age=decision.age, revalidated=True)
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
        if self.backend.settings.filter_fn is not None and not await self.passes_filter(origin):
            self.not_stored(core.filtered_out(self.plan))
            return Outcome(None, raw=origin.raw, release=origin.release)
        return await self.store(decision, received, origin)

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

    def emit(self, outcome: Outcome | None, faults: list[str], error: bool = False,
             publish: bool = True) -> CacheEvent:
        plan, last = self.plan, self.last
        if last is None:
            last = plan.bypass or self.lookup_decision or Fetch("failed before a decision")
        kind = _kind(plan, last, error)
        response = None if outcome is None else outcome.response
        status = None
        served: int | None = None
        if outcome is not None and outcome.tee is not None:  # the body that passed the tee
            status = None if response is None else response.status
            served = outcome.tee.size
        elif response is not None:
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
        if publish:
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


__all__ = ["OriginResponse", "Outcome", "Send", "fetch", "serve_inline"]
