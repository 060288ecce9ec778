"""Size-bounded directories: the LRU index of :class:`~.filesystem.FileCache`.

With ``max_cache_bytes`` a FileCache keeps the total size of its files under that bound,
evicting the least recently used entries to make room, and refuses a single file over
``max_file_bytes`` (requests-cache's ``LRUFileDict``). Sizes are counted in blocks of
``block_bytes``, as a filesystem allocates them.

The index is a SQLite file in the directory (``.lru-index.sqlite``; names starting with
``.`` are never entries), so every process and every FileCache on the directory shares
one order. Access order is a counter, not a clock: two writes in the same microsecond
still have an order. Every call here blocks; FileCache runs them in its executor.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

INDEX_FILE = ".lru-index.sqlite"


class LRUIndex:
    """``key -> (size on disk, last use)`` for one directory.

    Args:
        directory: The directory whose files are indexed.
        max_cache_bytes: Bound on the total size.
        max_file_bytes: Bound on one file (default: ``max_cache_bytes``).
        block_bytes: Sizes are rounded up to a multiple of this.
        lock: A lock to share with other users of the directory in this process (a
            ``threading.RLock`` by default).
    """

    def __init__(self, directory: Path, max_cache_bytes: int, max_file_bytes: int | None = None,
                 block_bytes: int = 1, lock: Any = None) -> None:
        self.max_cache_bytes = max_cache_bytes
        self.max_file_bytes = max_file_bytes or max_cache_bytes
        self.block_bytes = block_bytes
        if self.max_file_bytes > max_cache_bytes:
            raise ValueError(f"max_file_bytes ({self.max_file_bytes}) must be at most "
                             f"max_cache_bytes ({max_cache_bytes})")
        if not 1 <= block_bytes <= self.max_file_bytes:
            raise ValueError(f"block_bytes must be between 1 and max_file_bytes "
                             f"({self.max_file_bytes}), not {block_bytes}")
        self.lock = lock if lock is not None else threading.RLock()
        self.path = directory / INDEX_FILE
        self._conn: sqlite3.Connection | None = None

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                   check_same_thread=False)
            conn.execute("CREATE TABLE IF NOT EXISTS lru (key TEXT PRIMARY KEY, size INTEGER NOT NULL, "
                         "used INTEGER NOT NULL)")
            conn.execute("CREATE INDEX IF NOT EXISTS lru_used ON lru (used)")
            self._conn = conn
        return self._conn

    def on_disk(self, size: int) -> int:
        """``size`` rounded up to whole blocks."""
        return -(-size // self.block_bytes) * self.block_bytes

    def fits(self, size: int) -> bool:
        return self.on_disk(size) <= self.max_file_bytes

    def make_room(self, key: str, size: int) -> list[str]:
        """The keys to evict, least recently used first, so ``key`` can take ``size`` bytes;
        they leave the index here, their files are the caller's to delete."""
        need = self.on_disk(size)
        with self.lock:
            db = self._db()
            total = db.execute("SELECT COALESCE(SUM(size), 0) FROM lru WHERE key != ?", (key,)).fetchone()[0]
            evicted: list[str] = []
            if total + need > self.max_cache_bytes:
                for old, old_size in db.execute("SELECT key, size FROM lru WHERE key != ? ORDER BY used",
                                                (key,)).fetchall():
                    evicted.append(old)
                    total -= old_size
                    if total + need <= self.max_cache_bytes:
                        break
                self.forget(evicted)
            return evicted

    def record(self, key: str, size: int) -> None:
        """``key`` now holds ``size`` bytes and is the most recently used."""
        with self.lock:
            self._db().execute("INSERT OR REPLACE INTO lru (key, size, used) VALUES "
                               "(?, ?, (SELECT COALESCE(MAX(used), 0) + 1 FROM lru))",
                               (key, self.on_disk(size)))

    def touch(self, key: str) -> None:
        """``key`` was just read."""
        with self.lock:
            self._db().execute("UPDATE lru SET used = (SELECT MAX(used) + 1 FROM lru) WHERE key = ?",
                               (key,))

    def forget(self, keys: Iterable[str]) -> None:
        with self.lock:
            self._db().executemany("DELETE FROM lru WHERE key = ?", [(k,) for k in keys])

    def clear(self) -> None:
        with self.lock:
            self._db().execute("DELETE FROM lru")

    def total_bytes(self) -> int:
        with self.lock:
            return int(self._db().execute("SELECT COALESCE(SUM(size), 0) FROM lru").fetchone()[0])

    def close(self) -> None:
        with self.lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


__all__ = ["INDEX_FILE", "LRUIndex"]
