"""Per-key coalescing state, shared by every session on one backend.

Concurrent misses for one key make one origin request: the first caller leads, the
others wait for the response it stores (``inflight``). Each key also has a generation:
the sequence number of the last fill that finished for it, so a request that saw a miss
can tell whether a fill *for its key* finished while it was reading, and a stale hit
whether its key was just refreshed. Unrelated keys never disturb each other.

Generations are kept for the most recent ``MAX_GENERATIONS`` fills; an older one is
unknown, and an unknown generation counts as "may have changed" (one extra read, never
a wrong answer).
"""

from __future__ import annotations

import asyncio
from typing import Any

Slot = tuple[asyncio.AbstractEventLoop, str]
MAX_GENERATIONS = 4096


class Coalescing:
    __slots__ = ("generations", "inflight", "pruned", "seq")

    def __init__(self) -> None:
        self.inflight: dict[Slot, asyncio.Future[Any]] = {}
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

    def claim(self, slot: Slot) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = slot[0].create_future()
        self.inflight[slot] = future
        return future

    def release(self, slot: Slot, future: asyncio.Future[Any], result: Any) -> None:
        """The leader of ``slot`` is done: bump the key's generation, wake the waiters."""
        del self.inflight[slot]
        self.seq += 1
        self.generations.pop(slot, None)
        self.generations[slot] = self.seq
        if len(self.generations) > MAX_GENERATIONS:
            oldest = next(iter(self.generations))
            self.pruned = max(self.pruned, self.generations.pop(oldest))
        future.set_result(result)


__all__ = ["MAX_GENERATIONS", "Coalescing", "Slot"]
