"""Per-key coalescing state, shared by every session on one backend.

Concurrent misses for one key make one origin request: the first caller leads, the
others wait for the response it stores (``inflight``). Each key also has a generation:
the sequence number of the last fill that finished for it, so a request that saw a miss
can tell whether a fill *for its key* finished while it was reading, and a stale hit
whether its key was just refreshed. Unrelated keys never disturb each other.

Generations are kept for the most recent ``MAX_GENERATIONS`` fills; an older one is
unknown, and an unknown generation counts as "may have changed" (one extra read, never
a wrong answer).

A leader's body may still be on its way to its caller (and to storage) when its
response is handed over: the waiters wait for the body to be stored (:class:`Lead`). If
no chunk of it passes for :data:`LEADER_STALL_SECONDS` (its caller stopped reading),
they stop waiting and fetch on their own; so they do once a body of unknown length
(chunked: it may be a stream that never ends, a watch or a feed) has flowed that long;
and a request never waits for a response of its own ``owner`` (its task; its thread in
the sync session): that one is not read yet. A waiter keeps its caller's own timeouts
(:class:`Patience`): it times out as its HTTP client would on a request of its own.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

Slot = tuple[asyncio.AbstractEventLoop, str]
MAX_GENERATIONS = 4096
LEADER_STALL_SECONDS = 5.0
IN_STORAGE: Any = object()
"""A leader's result: stored, but not in hand (a large body): read it back."""
OUT_OF_TIME: Any = object()
"""What :meth:`Lead.wait` gives a waiter whose own deadline passed."""
NOT_BEGUN: Any = object()
"""What :meth:`Lead.wait` gives a waiter whose own wait for an answer to begin ran out."""

logger = logging.getLogger("aiocache_http")


class Progress(Protocol):
    """A body on its way (``streaming.Tee``): when a chunk of it last passed, and its
    length if known (Content-Length)."""

    last_progress: float
    expected_length: int | None


class Lead:
    """The request fetching a key, as the requests waiting for it see it: once ``done``,
    ``result`` is what it stored (a response in hand, :data:`IN_STORAGE`, or None:
    nothing). The futures a waiter waits on are made when one first waits: a lead
    nobody waits for (most of them) costs none."""

    __slots__ = ("_finished", "_streaming", "body", "done", "handed", "loop", "owner", "result")

    def __init__(self, loop: asyncio.AbstractEventLoop, owner: object) -> None:
        self.loop, self.owner = loop, owner
        self.done = False
        self.result: Any = None
        self.body: Progress | None = None
        self.handed = 0.0  # when ``body`` was handed over (time.monotonic())
        self._finished: asyncio.Future[None] | None = None  # set once done
        self._streaming: asyncio.Future[None] | None = None  # set once ``body`` is

    def streams(self, body: Progress) -> None:
        """Its response is handed over; its body follows (stored when complete)."""
        self.body, self.handed = body, time.monotonic()
        if self._streaming is not None and not self._streaming.done():
            self._streaming.set_result(None)

    def finish(self, result: Any) -> None:
        """What it stored is known: wake the waiters."""
        if self.done:
            return
        self.done, self.result = True, result
        if self._finished is not None and not self._finished.done():
            self._finished.set_result(None)

    async def wait(self, deadline: float | None = None, first_byte: float | None = None) -> Any:
        """What the leader stored; None if nothing, or once its body stalls (then it is
        not ``done``: the caller fetches on its own). The waiter's own timeouts: by
        ``deadline`` (``time.monotonic()``) it gets :data:`OUT_OF_TIME`; if the leader's
        answer has not begun within ``first_byte`` seconds, :data:`NOT_BEGUN`."""
        begun_by = None if first_byte is None else time.monotonic() + first_byte
        while not self.done:
            if self._finished is None:
                self._finished = self.loop.create_future()
            now = time.monotonic()
            if self.body is None:  # still waiting for the origin: as long as the waiter may
                if self._streaming is None:
                    self._streaming = self.loop.create_future()
                either: list[asyncio.Future[None]] = [self._finished, self._streaming]
                limit = _earliest(deadline, begun_by)
            else:
                until = self.body.last_progress
                if self.body.expected_length is None:  # it may never end: not longer than a stall
                    until = min(until, self.handed)
                stalls_at = until + LEADER_STALL_SECONDS
                if stalls_at <= now:
                    logger.debug("the leader's body stalled, or has no end in sight: not waiting for it")
                    return None
                either, limit = [self._finished], _earliest(deadline, stalls_at)
            if limit is not None and limit <= now:
                return OUT_OF_TIME if deadline is not None and deadline <= now else NOT_BEGUN
            await asyncio.wait(either, timeout=None if limit is None else limit - now,
                               return_when=asyncio.FIRST_COMPLETED)
        return self.result


def _earliest(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


class Patience:
    """How long a request may wait for a concurrent one's answer: its caller's own
    timeouts, as its HTTP client would apply them to a request of its own. ``total``:
    seconds for the whole answer (aiohttp's ``ClientTimeout.total``); ``first_byte``:
    seconds for an answer to begin (aiohttp's ``sock_read``, requests' read timeout);
    ``error(total)``: what that client raises when one runs out."""

    __slots__ = ("error", "first_byte", "total")

    def __init__(self, total: float | None, first_byte: float | None,
                 error: Callable[[bool], BaseException]) -> None:
        self.total, self.first_byte, self.error = total, first_byte, error


class Coalescing:
    """``inflight``: each key being fetched -> its leader's claim (who reads its response,
    see :meth:`claim`) while nobody waits for it, its :class:`Lead` once somebody does
    (:meth:`lead_of`): a miss nobody waits for (most of them) makes no Lead."""

    __slots__ = ("generations", "inflight", "pruned", "seq")

    def __init__(self) -> None:
        self.inflight: dict[Slot, Any] = {}
        # by key alone, not slot: a str keeps nothing for the garbage collector to visit
        # (a fill of the key on another loop counts too: one extra read, never a wrong answer)
        self.generations: dict[str, int] = {}
        self.seq = 0  # fills finished, all keys
        self.pruned = 0  # the newest generation forgotten

    def mark(self) -> int:
        """Taken before reading storage; see :meth:`finished_since`."""
        return self.seq

    def finished_since(self, slot: Slot, mark: int) -> bool:
        """Did a fill for ``slot`` finish after ``mark`` was taken?"""
        generation = self.generations.get(slot[1])
        if generation is not None:
            return generation > mark
        return self.pruned > mark

    def claim(self, slot: Slot, owner: object = None) -> object:
        """Lead the fetch of ``slot`` for ``owner`` (None: nobody's: a background task);
        returns the claim, for :meth:`release` (the owner, or a new object)."""
        claim = owner if owner is not None else object()
        self.inflight[slot] = claim
        return claim

    def lead_of(self, slot: Slot) -> Lead:
        """The :class:`Lead` of the fetch running for ``slot`` (in ``inflight``), made
        when first asked for: by a waiter, or by a leader whose body streams on."""
        entry = self.inflight[slot]
        if type(entry) is Lead:
            return entry
        lead = self.inflight[slot] = Lead(slot[0], entry)
        return lead

    def release(self, slot: Slot, claim: object, result: Any) -> None:
        """The leader of ``slot`` (its ``claim``) is done: bump the key's generation, wake
        the waiters, if any."""
        entry = self.inflight.get(slot)
        lead = None
        if entry is claim:
            del self.inflight[slot]
        elif type(entry) is Lead and entry.owner is claim:
            del self.inflight[slot]
            lead = entry
        self.seq += 1
        key = slot[1]
        self.generations.pop(key, None)
        self.generations[key] = self.seq
        if len(self.generations) > MAX_GENERATIONS:
            oldest = next(iter(self.generations))
            self.pruned = max(self.pruned, self.generations.pop(oldest))
        if lead is not None:
            lead.finish(result)


__all__ = ["IN_STORAGE", "LEADER_STALL_SECONDS", "MAX_GENERATIONS", "NOT_BEGUN", "OUT_OF_TIME", "Coalescing",
           "Lead", "Patience", "Slot"]
