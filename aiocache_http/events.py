"""One event per finished request: what the cache did, why, and what it cost.

The driver emits exactly one :class:`CacheEvent` per request, from one place, once the
answer is known (and stored, if it is). Subscribe on a backend to feed metrics, a
``Cache-Status`` header or a log::

    unsubscribe = backend.events.subscribe(lambda e: print(e.kind, e.why, e.duration))

A listener runs synchronously in the request's task: keep it quick. An exception in a
listener is logged and swallowed; it never fails the request. Nothing is built when
nobody listens.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Literal, Protocol

from .policy.decisions import Decision

logger = logging.getLogger("aiocache_http")

Kind = Literal["hit", "stale", "revalidated", "miss", "bypassed", "gateway_timeout", "error"]
"""hit: fresh from the cache; stale: a stale answer (max-stale, stale-while-revalidate,
stale-if-error); revalidated: a 304 renewed the entry; miss: the origin answered (see
``stored``); bypassed: the cache was not used; gateway_timeout: a 504 without the origin;
error: the origin request failed and nothing could answer in its place."""


@dataclass(frozen=True, slots=True)
class CacheEvent:
    """What happened to one request.

    ``decision`` is the last decision carried out and ``lookup`` the one made from what
    storage returned (None when storage was not read). ``stored`` is True when a response
    was stored (or renewed), False when one could have been but was not
    (``not_stored_reason`` says why), None when nothing came from the origin.
    ``storage_errors`` lists the storage calls that failed open during the request.
    Times are seconds; ``bytes_served`` is the body length handed to the caller when
    known, ``bytes_stored`` the body length stored.
    """

    kind: Kind
    method: str
    url: str
    key: str
    status: int | None
    decision: Decision
    lookup: Decision | None
    from_cache: bool
    stored: bool | None
    not_stored_reason: str
    coalesced: bool
    duration: float
    origin_time: float
    storage_time: float
    bytes_served: int | None
    bytes_stored: int
    storage_errors: tuple[str, ...] = ()

    @property
    def why(self) -> str:
        """The reason of the decision that settled the answer, with its RFC section."""
        return (self.lookup if self.kind in ("hit", "stale") and self.lookup else self.decision).why()


Listener = Callable[[CacheEvent], object]

# The storage calls that failed open during the current request (only while someone listens).
_faults: ContextVar[list[str] | None] = ContextVar("aiocache_http_faults", default=None)


@contextmanager
def collect_faults() -> Iterator[list[str]]:
    """Within this block, every storage call that fails open is listed (``op: error``)."""
    faults: list[str] = []
    token = _faults.set(faults)
    try:
        yield faults
    finally:
        _faults.reset(token)


def start_collecting_faults() -> tuple[list[str], Token[list[str] | None]]:
    """:func:`collect_faults` without a generator (the driver's per-request path)."""
    faults: list[str] = []
    return faults, _faults.set(faults)


def stop_collecting_faults(token: Token[list[str] | None]) -> None:
    _faults.reset(token)


def note_fault(fault: str) -> None:
    """Called by the gate to storage when a call fails open (or is not attempted)."""
    faults = _faults.get()
    if faults is not None:
        faults.append(fault)


class Counts(Protocol):
    """What :class:`EventHub` feeds first: ``backend.stats``."""

    def record(self, event: CacheEvent) -> None: ...

    def count_hit(self, bytes_served: int) -> None: ...

    def count_stored_miss(self, bytes_served: int) -> None: ...

    def count_bypass(self) -> None: ...


class EventHub:
    """The listeners of one backend's events, and its counters (``backend.stats``), which
    count every event before the listeners see it.

    A plain hit (fresh, no storage error, nothing coalesced) is counted with
    :meth:`Counts.count_hit` when nobody listens, a plain miss stored whole with
    :meth:`Counts.count_stored_miss`, a request that passed the cache by with
    :meth:`Counts.count_bypass`: the event is built only for listeners.
    """

    __slots__ = ("listeners", "stats")

    def __init__(self, stats: Counts | None = None) -> None:
        self.listeners: tuple[Listener, ...] = ()
        self.stats = stats

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(event)`` after every request; returns the unsubscribe function."""
        self.listeners = (*self.listeners, listener)

        def unsubscribe() -> None:
            self.listeners = tuple(item for item in self.listeners if item is not listener)

        return unsubscribe

    def emit(self, event: CacheEvent) -> None:
        stats = self.stats
        for listener in self.listeners if stats is None else (stats.record, *self.listeners):
            try:
                listener(event)
            except Exception:
                logger.exception("aiocache_http: an event listener failed (ignored)")

    def __bool__(self) -> bool:
        """Does anyone take events (listeners or the counters)?"""
        return bool(self.listeners) or self.stats is not None


__all__ = ["CacheEvent", "Counts", "EventHub", "Kind", "Listener", "collect_faults", "note_fault",
           "start_collecting_faults", "stop_collecting_faults"]
