"""Size-bounded directories: the LRU index of :class:`~.filesystem.FileCache`.

With ``max_cache_bytes`` a FileCache keeps the total size of its files under that bound,
evicting the least recently used entries to make room, and refuses a single file over
``max_file_bytes`` (requests-cache's ``LRUFileDict``). Sizes are counted in blocks of
``block_bytes``, as a filesystem allocates them.

The index is a SQLite file in the directory (``.lru-index.sqlite``; names starting with
``.`` are never entries), so every process and every FileCache on the directory shares
one order. Access order is a counter, not a clock: two writes in the same microsecond
still have an order. Every call here blocks; FileCache runs them in its executor.

The total size is kept in the index itself (table ``lru_total``, maintained by triggers,
so every writer of the file keeps it right), so a write costs the same with a million
entries as with ten: no ``SUM`` over the table, and eviction reads the oldest entries
through the ``used`` index only until there is room. An index written before the total
existed gets it, summed once, when first opened.
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
            if not _has_total(conn):
                _add_total(conn)
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
            total = db.execute("SELECT total - COALESCE((SELECT size FROM lru WHERE key = ?), 0) "
                               "FROM lru_total", (key,)).fetchone()[0]
            evicted: list[str] = []
            if total + need > self.max_cache_bytes:
                oldest = db.execute("SELECT key, size FROM lru WHERE key != ? ORDER BY used", (key,))
                try:
                    for old, old_size in oldest:  # read through the index, only as far as needed
                        evicted.append(old)
                        total -= old_size
                        if total + need <= self.max_cache_bytes:
                            break
                finally:
                    oldest.close()
                self.forget(evicted)
            return evicted

    def record(self, key: str, size: int) -> None:
        """``key`` now holds ``size`` bytes and is the most recently used."""
        with self.lock:
            self._db().execute("INSERT OR REPLACE INTO lru (key, size, used) VALUES "
                               "(?, ?, (SELECT COALESCE(MAX(used), 0) + 1 FROM lru))",
                               (key, self.on_disk(size)))

    def record_many(self, sizes: Iterable[tuple[str, int]]) -> None:
        """:meth:`record` for many keys in one transaction (one commit, not one per key:
        indexing a directory of existing files)."""
        with self.lock:
            db = self._db()
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany("INSERT OR REPLACE INTO lru (key, size, used) VALUES "
                               "(?, ?, (SELECT COALESCE(MAX(used), 0) + 1 FROM lru))",
                               ((key, self.on_disk(size)) for key, size in sizes))
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def touch(self, key: str) -> None:
        """``key`` was just read."""
        with self.lock:
            self._db().execute("UPDATE lru SET used = (SELECT MAX(used) + 1 FROM lru) WHERE key = ?",
                               (key,))

    def forget(self, keys: Iterable[str]) -> None:
        with self.lock:
            self._db().executemany("DELETE FROM lru WHERE key = ?", [(k,) for k in keys])

    def forget_some(self, batch: int = 20_000) -> bool:
        """Forget up to ``batch`` entries (a clear in steps, each far under a deadline:
        every deleted row fires the total's trigger); False once none was left."""
        with self.lock:
            cursor = self._db().execute(
                "DELETE FROM lru WHERE rowid IN (SELECT rowid FROM lru LIMIT ?)", (batch,))
            return cursor.rowcount > 0

    def total_bytes(self) -> int:
        with self.lock:
            return int(self._db().execute("SELECT total FROM lru_total").fetchone()[0])

    def close(self) -> None:
        with self.lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


__all__ = ["INDEX_FILE", "LRUIndex"]


# The running total. INSERT OR REPLACE deletes the row it replaces without firing delete
# triggers (recursive_triggers is off), so the insert trigger takes the old size off itself.
_TOTAL_SCHEMA = (
    "CREATE TABLE lru_total (id INTEGER PRIMARY KEY CHECK (id = 0), total INTEGER NOT NULL)",
    "INSERT INTO lru_total VALUES (0, (SELECT COALESCE(SUM(size), 0) FROM lru))",
    "CREATE TRIGGER lru_total_insert BEFORE INSERT ON lru BEGIN UPDATE lru_total SET total = total "
    "+ NEW.size - COALESCE((SELECT size FROM lru WHERE key = NEW.key), 0); END",
    "CREATE TRIGGER lru_total_delete AFTER DELETE ON lru BEGIN "
    "UPDATE lru_total SET total = total - OLD.size; END",
    "CREATE TRIGGER lru_total_update AFTER UPDATE OF size ON lru BEGIN "
    "UPDATE lru_total SET total = total - OLD.size + NEW.size; END",
)


def _has_total(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'lru_total'"
                        ).fetchone() is not None


def _add_total(conn: sqlite3.Connection) -> None:
    """Add the running total to an index that has none (new, or written by an older
    version): once, in one transaction that other processes wait for."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        if not _has_total(conn):  # another process may have added it meanwhile
            for statement in _TOTAL_SCHEMA:
                conn.execute(statement)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
