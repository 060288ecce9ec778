"""``backend.stats`` (``session.cache.stats``): counters of what the cache did.

One :class:`CacheStats` per backend, fed by every session on it (async and sync alike),
from any thread: each event is counted under a lock.
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import datetime
from typing import Any

from ..events import CacheEvent
from ..models import utcnow
from .event import is_timeout, revalidation


class CacheStats:
    """Counters since the backend was made (or :meth:`reset`).

    ``requests`` = ``hits`` + ``stale`` + ``revalidated`` + ``misses`` + ``bypassed``
    + ``gateway_timeouts`` + ``errors``. Requests that reached the origin:
    ``revalidated`` + ``misses`` + ``bypassed`` (+ ``errors``, which failed there).
    """

    requests: int
    hits: int  # fresh from the cache
    stale: int  # a stale answer: max-stale, stale-while-revalidate, stale-if-error
    revalidated: int  # a conditional request answered 304: the entry was renewed
    revalidated_full: int  # a conditional request answered in full (counted in misses)
    misses: int  # the origin answered in full
    coalesced: int  # waited for another request's origin fetch (counted in hits or misses)
    bypassed: int  # the cache was not used (method, no-store, DO_NOT_CACHE...)
    gateway_timeouts: int  # 504 without the origin (only-if-cached, must-revalidate)
    errors: int  # the origin request failed and nothing could answer in its place
    stores: int  # responses stored or renewed
    not_stored: Counter[str]  # reason -> count
    storage_errors: int  # storage calls that failed open
    storage_timeouts: int  # of which deadlines
    bytes_from_cache: int
    bytes_from_origin: int  # bodies read through the cache (stored or not)
    since: datetime  # when counting started (the backend was made) or was reset

    def __init__(self, backend: Any = None) -> None:
        self._backend = backend
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.since = utcnow()
            self.requests = self.hits = self.stale = self.revalidated = 0
            self.revalidated_full = self.misses = self.coalesced = self.bypassed = 0
            self.gateway_timeouts = self.errors = self.stores = 0
            self.storage_errors = self.storage_timeouts = 0
            self.bytes_from_cache = self.bytes_from_origin = 0
            self.not_stored = Counter()

    def count_hit(self, bytes_served: int) -> None:
        """Count a plain hit: fresh, nothing coalesced, no storage error (what
        :meth:`record` counts for such an event, without the event)."""
        with self._lock:
            self.requests += 1
            self.hits += 1
            self.bytes_from_cache += bytes_served

    def count_stored_miss(self, bytes_served: int) -> None:
        """Count a plain miss: fetched in full (no revalidation), stored, nothing coalesced,
        no storage error (what :meth:`record` counts for such an event, without it)."""
        with self._lock:
            self.requests += 1
            self.misses += 1
            self.stores += 1
            self.bytes_from_origin += bytes_served

    def count_bypass(self) -> None:
        """Count a request that passed the cache by, its answer not read from storage nor
        stored, no storage error (what :meth:`record` counts for such an event)."""
        with self._lock:
            self.requests += 1
            self.bypassed += 1

    def record(self, event: CacheEvent) -> None:
        """Count one event (the listener ``backend.events`` calls)."""
        kind = event.kind
        with self._lock:
            self.requests += 1
            if kind == "hit":
                self.hits += 1
            elif kind == "stale":
                self.stale += 1
            elif kind == "revalidated":
                self.revalidated += 1
            elif kind == "miss":
                self.misses += 1
                self.revalidated_full += revalidation(event) == "full"
            elif kind == "bypassed":
                self.bypassed += 1
            elif kind == "gateway_timeout":
                self.gateway_timeouts += 1
            else:
                self.errors += 1
            self.coalesced += event.coalesced
            if event.stored:
                self.stores += 1
            elif event.stored is False:
                self.not_stored[event.not_stored_reason or "unknown"] += 1
            for fault in event.storage_errors:
                self.storage_errors += 1
                self.storage_timeouts += is_timeout(fault)
            if event.bytes_served is not None:
                if event.from_cache:
                    self.bytes_from_cache += event.bytes_served
                else:
                    self.bytes_from_origin += event.bytes_served

    @property
    def hit_ratio(self) -> float:
        """Answers without a full origin response, over all requests (0.0 when none)."""
        served = self.hits + self.stale + self.revalidated
        return served / self.requests if self.requests else 0.0

    @property
    def breaker(self) -> str | None:
        """The storage circuit (``closed``, ``open``, ``half-open``), where the backend has one."""
        health = getattr(self._backend, "health", None)
        state = getattr(health, "state", None)
        return None if state is None else str(getattr(state, "value", state))

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            data: dict[str, Any] = {
                name: getattr(self, name) for name in (
                    "requests", "hits", "stale", "revalidated", "revalidated_full", "misses",
                    "coalesced", "bypassed", "gateway_timeouts", "errors", "stores",
                    "storage_errors", "storage_timeouts", "bytes_from_cache", "bytes_from_origin")}
            data["not_stored"] = dict(self.not_stored)
            data["since"] = self.since.isoformat()
        data["hit_ratio"] = round(self.hit_ratio, 4)
        data["breaker"] = self.breaker
        return data

    def __repr__(self) -> str:
        d = self.as_dict()
        return (f"CacheStats(requests={d['requests']}, hits={d['hits']}, stale={d['stale']}, "
                f"revalidated={d['revalidated']}, misses={d['misses']}, bypassed={d['bypassed']}, "
                f"stores={d['stores']}, breaker={d['breaker']!r}, since={d['since']})")
