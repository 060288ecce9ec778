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
they stop waiting and fetch on their own; and a request never waits for a response of
its own ``owner`` (its task; its thread in the sync session): that one is not read yet.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Protocol

Slot = tuple[asyncio.AbstractEventLoop, str]
MAX_GENERATIONS = 4096
LEADER_STALL_SECONDS = 5.0
IN_STORAGE: Any = object()
"""A leader's result: stored, but not in hand (a large body): read it back."""

logger = logging.getLogger("aiocache_http")


class Progress(Protocol):
    """A body on its way (``streaming.Tee``): when a chunk of it last passed."""

    last_progress: float


class Lead:
    """The request fetching a key, as the requests waiting for it see it: ``future`` gets
    what it stored (a response in hand, :data:`IN_STORAGE`, or None: nothing)."""

    __slots__ = ("body", "future", "owner", "streaming")

    def __init__(self, loop: asyncio.AbstractEventLoop, owner: object) -> None:
        self.future: asyncio.Future[Any] = loop.create_future()
        self.owner = owner
        self.streaming: asyncio.Future[None] = loop.create_future()  # once ``body`` is set
        self.body: Progress | None = None

    def streams(self, body: Progress) -> None:
        """Its response is handed over; its body follows (stored when complete)."""
        self.body = body
        self.streaming.set_result(None)

    async def wait(self) -> Any:
        """What the leader stored; None if nothing, or once its body stalls (then
        ``future`` is not done: the caller fetches on its own)."""
        while not self.future.done():
            if self.body is None:  # still waiting for the origin: as long as it takes
                either: list[asyncio.Future[Any]] = [self.future, self.streaming]
                await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
                continue
            timeout = self.body.last_progress + LEADER_STALL_SECONDS - time.monotonic()
            if timeout <= 0:
                logger.debug("the leader's body stalled: not waiting for it")
                return None
            await asyncio.wait([self.future], timeout=timeout)
        return self.future.result()


class Coalescing:
    __slots__ = ("generations", "inflight", "pruned", "seq")

    def __init__(self) -> None:
        self.inflight: dict[Slot, Lead] = {}
        self.generations: dict[Slot, int] = {}
        self.seq = 0  # fills finished, all keys
        self.pruned = 0  # the newest generation forgotten

    def mark(self) -> int:
        """Taken before reading storage; see :meth:`finished_since`."""
        return self.seq

    def finished_since(self, slot: Slot, mark: int) -> bool:
        """Did a fill for ``slot`` finish after ``mark`` was taken?"""
        generation = self.generations.get(slot)
        if generation is not None:
            return generation > mark
        return self.pruned > mark

    def claim(self, slot: Slot, owner: object = None) -> Lead:
        lead = Lead(slot[0], owner if owner is not None else object())
        self.inflight[slot] = lead
        return lead

    def release(self, slot: Slot, lead: Lead, result: Any) -> None:
        """The leader of ``slot`` is done: bump the key's generation, wake the waiters."""
        if self.inflight.get(slot) is lead:
            del self.inflight[slot]
        self.seq += 1
        self.generations.pop(slot, None)
        self.generations[slot] = self.seq
        if len(self.generations) > MAX_GENERATIONS:
            oldest = next(iter(self.generations))
            self.pruned = max(self.pruned, self.generations.pop(oldest))
        if not lead.future.done():
            lead.future.set_result(result)


__all__ = ["IN_STORAGE", "LEADER_STALL_SECONDS", "MAX_GENERATIONS", "Coalescing", "Lead", "Slot"]
