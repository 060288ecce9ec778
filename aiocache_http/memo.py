"""Memo: a bounded memo that keeps what is used (the hot-path memos of keys and plans)."""

from __future__ import annotations

from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Memo(dict[K, V]):
    """A dict of at most ``size`` entries in two generations, read with ``memo[key]``
    (None when absent: a hit costs a plain dict lookup).

    Entries are added with :meth:`with_entry`, to the current generation. When it holds
    ``size // 2`` entries, it turns: a new memo becomes the current one and this one its
    previous generation (the one before is dropped). A lookup that finds its key only in
    the previous generation copies it into the current one. So what was used since the
    last turn survives the next: a working set somewhat larger than ``size`` keeps its hot
    part, where starting over would recompute every key. Held at most: ``size`` entries in
    each of the two generations. No iteration and no lock: safe to share with another
    thread (the sync layer's loop); a race loses at most an entry.
    """

    __slots__ = ("previous", "size")

    def __init__(self, size: int, previous: dict[K, V] | None = None) -> None:
        super().__init__()
        if size < 2:
            raise ValueError(f"a Memo holds at least 2 entries, not {size}")
        self.size = size
        self.previous: dict[K, V] = {} if previous is None else previous

    def __missing__(self, key: K) -> V | None:
        found = self.previous.get(key)
        if found is not None and len(self) < self.size:
            self[key] = found  # used again: kept through the next turn
        return found

    def with_entry(self, key: K, value: V) -> Memo[K, V]:
        """This memo with ``key`` -> ``value``, or the memo that follows it once it is half
        full: assign the result back (``self._memo = self._memo.with_entry(k, v)``)."""
        if len(self) < self.size // 2:
            self[key] = value
            return self
        turned: Memo[K, V] = Memo(self.size, self)
        self.previous = {}  # dropped: two generations, no chain
        turned[key] = value
        return turned


__all__ = ["Memo"]
