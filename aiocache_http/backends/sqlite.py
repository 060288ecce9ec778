"""SQLite storage (the default backend), on aiosqlite.

One :class:`SQLiteDatabase` per file holds one connection per event loop (an async
session's loop and a sync bridge loop may share a backend); its tables are
:class:`SQLiteCache` storages. Each table is ``key PRIMARY KEY, value BLOB,
expires REAL, parts TEXT`` (expires: epoch seconds, NULL = never) with an index on
``expires``. The key column has no type, as aiohttp-client-cache's: a key written as an
int reads back as one.

Large items (over :data:`.parts.INLINE_LIMIT`) are written and read in parts: rows of
``<table>_parts (id, seq, data, created)``, each :data:`.parts.PART_SIZE` bytes, written
under a fresh id as the body arrives; the commit is one transaction that writes the
entry with the item's head as ``value`` and that id as ``parts`` (the item is the value
followed by its parts), and only if every part is still there. Triggers delete an
entry's parts with the entry (replaced, deleted, expired); parts no entry points at (a
writer that died) go with ``clear()`` or, once an hour old, with ``delete_expired()``.
A reader of a large item reads its parts by id: a later write to the key makes new parts
and deletes these, so such a reader fails rather than mixing two items.

Concurrency: writes on a connection are serialized by an ``asyncio.Lock`` and
multi-statement writes run in ``BEGIN IMMEDIATE`` transactions; across processes, WAL,
``busy_timeout`` and a retry with backoff on SQLITE_BUSY / SQLITE_LOCKED.

Faults: through the backend's gate, a lock wait never outlasts the call's deadline (the
gate cannot interrupt SQLite's wait, so the wait itself is shortened). A file that is
read-only, deleted, on a full disk or locked is a runtime fault (:class:`SQLiteUnavailableError`,
fail-open); only a file that is not a database (or has a foreign schema) is a
configuration error (:class:`SQLiteFileError`). A file deleted while open is noticed and
re-created.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import sqlite3
import threading
import time
import uuid
import warnings
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from .base import PEER_STORAGE_OPTIONS, BaseCache, CacheBackend, ConfigurationError, cache_path
from .health import lock_wait
from .parts import PART_SIZE, ItemReader, SpillingWriter, WholeReader
from .values import TAG, Value, decode_value, encode_value

logger = logging.getLogger("aiocache_http")

T = TypeVar("T")
Step = tuple[str, Sequence[Sequence[Any]] | None]  # (sql, executemany rows or None: run once)
MEMORY = ":memory:"
# Per task: {id(storage): writes waiting for the end of its bulk_commit block}.
_BULK: ContextVar[dict[int, dict[str, tuple[bytes, float | None]]] | None] = ContextVar(
    "aiocache_http_sqlite_bulk", default=None)
# sqlite3.connect's arguments, which aiohttp-client-cache passes through to it.
_CONNECT_ARGS = frozenset({"detect_types", "isolation_level", "check_same_thread", "factory",
                           "cached_statements", "uri", "autocommit"})
_HEADER = b"SQLite format 3\x00"
_RETRIES = 10
_KEY_PAGE = 500
_VALUE_PAGE = 100  # values can be large: fewer per page
_CLEAR_STEP = 0.1  # seconds a clear() batch aims at (far under write_timeout, even loaded)
_CLEAR_FIRST, _CLEAR_MOST = 1000, 200_000  # rows in its first and largest batch
_ORPHAN_AGE = 3600  # seconds before parts no entry points at are swept (a writer died)
_CHECK_EVERY = 0.25  # seconds between two checks that the file is still the one we opened
# The inline reader's page cache (KiB; SQLite's default is 2 MB): the pages on the way to a
# hot set of entries stay in it at any file size, so a hit costs no read() of the file.
# Pages are taken as they are read: a small file uses no more than its size.
_READER_CACHE_KIB = 32 * 1024
_WAITED = 0.05  # a busy error after this long came from a real lock wait: not retried
_BAD_FILE = (11, 26)  # SQLITE_CORRUPT, SQLITE_NOTADB: the file itself is wrong
# SQLITE_READONLY, SQLITE_IOERR, SQLITE_CANTOPEN: this connection's view of the file may be
# stale (opened read-only, file moved): the next call opens a new one
_REOPEN = (8, 10, 14)


class SQLiteFileError(ConfigurationError, OSError, ValueError):
    """The cache file cannot be used (cannot be created, not a SQLite database...)."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"cannot use {str(path)!r} as a SQLite cache: {reason}")
        self.path, self.reason = str(path), reason


class _ParentNotADirectory(SQLiteFileError, FileExistsError):
    """A parent of the cache file exists and is not a directory."""

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.path, self.reason)


class SQLiteUnavailableError(OSError):
    """The cache file cannot be used right now (read-only, deleted, disk full, locked): a
    runtime fault, so requests go to the origin (fail-open) until it is usable again."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"SQLite cache {str(path)!r} unavailable: {reason}")
        self.path, self.reason = str(path), reason

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.path, self.reason)


def _is_bad_file(e: sqlite3.Error) -> bool:
    code = getattr(e, "sqlite_errorcode", None)  # Python >= 3.11
    if code is not None:
        return code & 0xFF in _BAD_FILE
    text = str(e)
    return "not a database" in text or "malformed" in text


def _needs_reopen(e: sqlite3.Error) -> bool:
    code = getattr(e, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in _REOPEN
    text = str(e)
    return "readonly" in text or "disk I/O" in text or "unable to open" in text


def get_cache_path(cache_name: str | Path, use_cache_dir: bool = False, use_temp: bool = False) -> Path:
    """The database file for ``cache_name``: ``.sqlite`` added when it has no suffix, in the
    user cache dir or the temp dir if asked (ignored for an absolute path)."""
    path = cache_path(cache_name, use_cache_dir, use_temp)
    return path if path.suffix else path.with_name(path.name + ".sqlite")


def _epoch(expires: datetime | None) -> float | None:
    if expires is None:
        return None
    if expires.tzinfo is None:  # naive datetimes are UTC here, as everywhere in the cache
        expires = expires.replace(tzinfo=timezone.utc)
    return expires.timestamp()


def _is_busy(e: sqlite3.OperationalError) -> bool:
    code = getattr(e, "sqlite_errorcode", None)  # Python >= 3.11
    if code is not None:
        return code & 0xFF in (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED
    return "locked" in str(e) or "busy" in str(e)


def _retrieved(task: asyncio.Future[Any]) -> None:
    """Mark a shielded transaction's outcome as read: its caller may have stopped waiting
    (it failed open), and it was rolled back; otherwise asyncio logs "Task exception was
    never retrieved" later, at random."""
    if not task.cancelled() and (e := task.exception()) is not None:
        logger.debug("a transaction whose caller stopped waiting failed: %r", e)


async def _retry(op: Callable[[], Awaitable[T]]) -> T:
    """Run ``op``, retrying with jittered exponential backoff while the database is busy.

    ``busy_timeout`` already waits for most locks; this covers the cases SQLite reports
    without waiting (WAL recovery, shared-cache table locks, deadlock avoidance). A busy
    error that came after a real wait is raised: retrying would multiply the wait."""
    delay = 0.002
    for attempt in range(_RETRIES):
        started = time.monotonic()
        try:
            return await op()
        except sqlite3.OperationalError as e:
            if not _is_busy(e) or attempt == _RETRIES - 1 or time.monotonic() - started > _WAITED:
                raise
            left = lock_wait()
            if left is not None and left < delay:
                raise  # the gate's deadline comes first
        await asyncio.sleep(delay * (0.5 + random.random()))
        delay = min(delay * 2, 0.5)
    raise AssertionError("unreachable")


@dataclass(eq=False)
class _Handle:
    """One connection, used from one event loop."""

    conn: aiosqlite.Connection
    loop: asyncio.AbstractEventLoop
    tables: set[str] = field(default_factory=set)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one writer at a time
    reader: sqlite3.Connection | None = None  # point reads, inline (see SQLiteDatabase.reader)
    # Held for one point read on ``reader``: the loop's thread and sync callers' threads
    # (a sync hit) share it; a thread that finds it taken reads the gated way instead.
    reading: threading.Lock = field(default_factory=threading.Lock)
    closed: bool = False
    file: tuple[int, int] | None = None  # (st_dev, st_ino) of the file it opened
    stale: bool = False  # another connection found the file's state changed: reopen
    check_at: float = 0.0  # monotonic time of the next check that the file is still there

    def close_reader(self) -> None:
        """The handle is done with: no reader is opened for it again."""
        with self.reading:  # not under another thread's point read
            self.closed = True
            if self.reader is not None:
                with contextlib.suppress(sqlite3.Error):
                    self.reader.close()
                self.reader = None

    def current(self, path: Path | str) -> bool:
        """Not known to be stale, and its file checked within ``_CHECK_EVERY`` (checked
        now, one stat, if due: a replaced file is left for the loop to reopen)."""
        if self.stale:
            return False
        now = time.monotonic()
        if self.check_at > now:
            return True
        if self.file is not None and isinstance(path, Path) and _file_id(path) != self.file:
            return False
        self.check_at = now + _CHECK_EVERY
        return True

    def point_read(self, db: SQLiteDatabase, sql: str, key: str) -> list[Any] | None:
        """The rows of ``sql`` by ``key`` on the inline reader; None if they cannot be had
        at once (another thread is reading, the file is busy or sick)."""
        if not self.reading.acquire(blocking=False):
            return None
        try:
            if self.closed:  # dropped by its loop after the caller found it
                return None
            return (self.reader or db.reader(self)).execute(sql, (key,)).fetchall()
        except sqlite3.Error:
            return None
        finally:
            self.reading.release()


def _file_id(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


async def _bounded(conn: aiosqlite.Connection, wait: float | None, normal_ms: int, sql: str,
                   params: Sequence[Any] = ()) -> list[Any]:
    """``execute_fetchall`` whose lock wait is at most ``wait`` seconds (None: the
    connection's own ``busy_timeout``), in one trip to the connection's thread."""
    if wait is None or wait * 1000 >= normal_ms:
        return list(await conn.execute_fetchall(sql, params))
    rows, _ = await _bounded_run(conn, wait, normal_ms, sql, params)
    return rows


async def _bounded_run(conn: aiosqlite.Connection, wait: float, normal_ms: int, sql: str,
                       params: Sequence[Any]) -> tuple[list[Any], int]:
    """Rows and rowcount of ``sql``, its lock wait at most ``wait`` seconds."""
    def run() -> tuple[list[Any], int]:
        raw = conn._conn
        raw.execute(f"PRAGMA busy_timeout={max(1, int(wait * 1000))}")
        try:
            cursor = raw.execute(sql, params)
            return cursor.fetchall(), cursor.rowcount
        finally:
            raw.execute(f"PRAGMA busy_timeout={normal_ms}")

    # aiosqlite runs a function on its thread through _execute (its public methods are
    # built on it); one trip, so no other statement runs with the shortened wait.
    result: tuple[list[Any], int] = await conn._execute(run)  # type: ignore[no-untyped-call]
    return result


def _quote(name: str) -> str:
    return '"' + name + '"'


_DATABASES: weakref.WeakSet[SQLiteDatabase] = weakref.WeakSet()
_INHERITED: list[_Handle] = []


def _forget_connections() -> None:
    """In a forked child the parent's connections (and their threads) are unusable: set
    them aside, never used nor closed (SQLite forbids both), and let the child open its own."""
    for db in list(_DATABASES):
        _INHERITED.extend(db.handles.values())
        db.handles.clear()
        db._opening.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_connections)


class SQLiteDatabase:
    """A SQLite file (or a private in-memory database) and its connections, one per event
    loop, opened on first use from that loop.

    Args:
        db_path: File path, used as given, or ``":memory:"``. Its parent dirs are created.
        busy_timeout: Seconds to wait for another connection's lock before giving up. Through
            a backend's gate a wait never outlasts the call's deadline (``backend_timeout``
            on the request path): a write that cannot get the lock is dropped, not queued.
        fast_save: ``synchronous=OFF``: faster writes, but a power loss or OS crash may lose
            recent writes or corrupt the file. Trades durability for speed.
        wal: Use write-ahead logging (readers never block the writer; needed for many
            processes on one file). With WAL, ``synchronous=NORMAL`` (durable across
            application crashes; a power loss may drop the last writes).
    """

    def __init__(self, db_path: str | Path, *, busy_timeout: float = 30, fast_save: bool = False,
                 wal: bool = True) -> None:
        self.memory = str(db_path) == MEMORY
        self.path: Path | str = MEMORY if self.memory else Path(db_path).expanduser().absolute()
        self.busy_timeout = busy_timeout
        self._busy_ms = int(busy_timeout * 1000)
        self.fast_save = fast_save
        self.wal = wal and not self.memory
        self.tables: set[str] = set()
        self.handles: dict[asyncio.AbstractEventLoop, _Handle] = {}
        self._closing: set[asyncio.Task[None]] = set()  # closes handed to other loops
        self._opening: dict[asyncio.AbstractEventLoop, asyncio.Task[_Handle]] = {}
        _DATABASES.add(self)
        if self.memory:  # shared by this database's connections only, across loops
            self._target, self._uri = f"file:aiocache-http-{uuid.uuid4().hex}?mode=memory&cache=shared", True
        else:
            assert isinstance(self.path, Path)
            self._check_file(self.path)
            self._target, self._uri = str(self.path), False

    def __repr__(self) -> str:
        return f"SQLiteDatabase({str(self.path)!r})"

    @staticmethod
    def _check_file(path: Path) -> None:
        """Fail at construction, naming the path, rather than deep inside the first query."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except FileExistsError as e:  # a parent is a file (requests-cache raises this type)
            raise _ParentNotADirectory(path, f"a parent is not a directory: {e.strerror or e}") from e
        except OSError as e:
            raise SQLiteFileError(path, f"cannot create its directory: {e.strerror or e}") from e
        try:
            if path.is_dir():
                raise SQLiteFileError(path, "it is a directory")
            if not path.exists():
                if not os.access(path.parent, os.W_OK | os.X_OK):
                    raise SQLiteFileError(path, "its directory is not writable")
                return
            with path.open("rb") as f:
                header = f.read(len(_HEADER))
        except SQLiteFileError:
            raise
        except OSError as e:
            raise SQLiteFileError(path, f"cannot read it: {e.strerror or e}") from e
        if header and header != _HEADER:  # an empty file is a valid new database
            raise SQLiteFileError(path, "the file is not a SQLite database")

    # -- connections ------------------------------------------------------------------
    async def handle(self, table: str | None = None) -> _Handle:
        """This loop's connection (opened if needed), with ``table`` created."""
        loop = asyncio.get_running_loop()
        handle = self.handles.get(loop)
        if handle is not None and handle.check_at <= time.monotonic():
            handle = await self._still_there(handle)
        if handle is None:
            # One opening per loop, shared, and shielded: a caller whose deadline passes
            # leaves, the connection still opens for the next one.
            opening = self._opening.get(loop)
            if opening is None:
                opening = self._opening[loop] = loop.create_task(self._open_for(loop))
                opening.add_done_callback(self._opened)
            handle = await asyncio.shield(opening)
        if table is not None and table not in handle.tables:
            async with handle.lock:
                await self._create_tables(handle, [table])
        return handle

    async def _open_for(self, loop: asyncio.AbstractEventLoop) -> _Handle:
        handle = self.handles.get(loop)
        if handle is None:
            handle = await self._open(loop)
            self.handles[loop] = handle
            await self._close_dead_loops()  # after: an in-memory db survives
        return handle

    def _opened(self, task: asyncio.Task[_Handle]) -> None:
        loop = task.get_loop()
        if self._opening.get(loop) is task:
            del self._opening[loop]
        if not task.cancelled():
            task.exception()  # retrieved: every caller may have left

    def reader(self, handle: _Handle) -> sqlite3.Connection:
        """This loop's read-only connection for point reads run inline (on the loop's
        thread, or a sync caller's: used under ``handle.reading``). It never waits for a
        lock (busy_timeout 0): a busy database raises, and the caller reads through the
        aiosqlite thread instead."""
        if handle.reader is None:
            reader = sqlite3.connect(self._target, uri=self._uri, timeout=0, isolation_level=None,
                                     check_same_thread=False)
            reader.execute("PRAGMA query_only=1")
            reader.execute(f"PRAGMA cache_size=-{_READER_CACHE_KIB}")
            handle.reader = reader
        return handle.reader

    async def connection(self) -> aiosqlite.Connection:
        """This loop's aiosqlite connection (for inspection and maintenance)."""
        return (await self.handle()).conn

    async def _still_there(self, handle: _Handle) -> _Handle | None:
        """``handle``, or None (closed) if its file was deleted or replaced since it was
        opened: writing on would go into an unlinked file, lost to every other process."""
        handle.check_at = time.monotonic() + _CHECK_EVERY
        if handle.stale:
            await self._drop(handle)
            return None
        if handle.file is None or not isinstance(self.path, Path):
            return handle
        now = _file_id(self.path)
        if now == handle.file:
            return handle
        logger.warning("%r: the cache file was %s while in use; re-creating it (entries "
                       "stored before are gone)", self, "deleted" if now is None else "replaced")
        await self._drop(handle)
        return None

    async def _drop(self, handle: _Handle) -> None:
        if self.handles.get(handle.loop) is handle:
            del self.handles[handle.loop]
        handle.close_reader()
        with contextlib.suppress(Exception):
            await handle.conn.close()

    async def forget(self, handle: _Handle, error: BaseException) -> bool:
        """After ``error`` on ``handle``: if the error says the connection's view of the file
        is stale (read-only, I/O error), close it so the next call opens a fresh one.
        True if it did."""
        if not isinstance(error, sqlite3.Error) or not _needs_reopen(error):
            return False
        for other in list(self.handles.values()):  # other loops' connections: at their next use
            if other is not handle:
                other.stale, other.check_at = True, 0.0
        if self.handles.get(handle.loop) is handle:
            await self._drop(handle)
        return True

    def _fault(self, e: sqlite3.Error) -> SQLiteFileError | SQLiteUnavailableError:
        """A file that is not a database is a configuration error; the rest (read-only,
        cannot open, disk full, locked) are runtime faults."""
        if _is_bad_file(e):
            return SQLiteFileError(self.path, str(e))
        return SQLiteUnavailableError(self.path, str(e))

    async def _open(self, loop: asyncio.AbstractEventLoop) -> _Handle:
        if isinstance(self.path, Path):
            try:  # again: the directory may have been deleted with the file
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise SQLiteUnavailableError(self.path, f"cannot create its directory: {e}") from e
        conn = aiosqlite.Connection(self._connector, 64)
        # An unclosed cache must not keep the interpreter alive at exit (aiosqlite's
        # worker thread is not a daemon); committed data is safe either way.
        thread = getattr(conn, "_thread", None)
        if isinstance(thread, threading.Thread):
            thread.daemon = True
        handle = _Handle(await self._connect(conn), loop)
        if isinstance(self.path, Path):
            handle.file = _file_id(self.path)
            handle.check_at = time.monotonic() + _CHECK_EVERY
        try:
            if self.wal:
                mode = await self._fetch1(conn, "PRAGMA journal_mode")
                if str(mode).lower() != "wal":
                    await self._fetch1(conn, "PRAGMA journal_mode=WAL")
            if self.fast_save:
                await conn.execute_fetchall("PRAGMA synchronous=OFF")
            elif self.wal:
                await conn.execute_fetchall("PRAGMA synchronous=NORMAL")
            await self._create_tables(handle, sorted(self.tables))
        except BaseException as e:
            await conn.close()
            if isinstance(e, sqlite3.Error):
                raise self._fault(e) from e
            raise
        return handle

    def _connector(self) -> sqlite3.Connection:
        """Opens the connection in aiosqlite's thread. ``sqlite3.connect`` gets the file and
        the timeout only (``uri`` for the in-memory database), as aiohttp-client-cache calls it."""
        if self._uri:
            raw = sqlite3.connect(self._target, timeout=self.busy_timeout, uri=True)
        else:
            raw = sqlite3.connect(self._target, timeout=self.busy_timeout)
        raw.isolation_level = None  # autocommit: transactions are explicit
        return raw

    async def _connect(self, conn: aiosqlite.Connection) -> aiosqlite.Connection:
        try:
            return await conn
        except sqlite3.Error as e:
            raise self._fault(e) from e

    @staticmethod
    async def _rows(conn: aiosqlite.Connection, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return list(await _retry(lambda: conn.execute_fetchall(sql, params)))

    @classmethod
    async def _fetch1(cls, conn: aiosqlite.Connection, sql: str, params: Sequence[Any] = ()) -> Any:
        rows = await cls._rows(conn, sql, params)
        return rows[0][0] if rows else None

    async def _create_tables(self, handle: _Handle, tables: Sequence[str]) -> None:
        """Create (or upgrade) tables; a no-op read when they are already in shape."""
        conn = handle.conn
        for table in tables:
            index, parts = f"{table}_expires_idx", f"{table}_parts"
            columns = {row[1] for row in await self._rows(conn, f"PRAGMA table_info({_quote(table)})")}
            has_index = await self._fetch1(
                conn, "SELECT 1 FROM sqlite_master WHERE type='index' AND name=?", (index,))
            has_parts = await self._fetch1(
                conn, "SELECT 1 FROM sqlite_master WHERE type='trigger' AND name=?", (f"{parts}_update",))
            if columns and not {"key", "value"} <= columns:
                raise SQLiteFileError(self.path, f"table {table!r} has an unknown schema: {sorted(columns)}")
            if not {"expires", "parts"} <= columns or not has_index or not has_parts:
                steps = [f"CREATE TABLE IF NOT EXISTS {_quote(table)} "
                         "(key PRIMARY KEY, value BLOB NOT NULL, expires REAL, parts TEXT)"]
                for column, kind in (("expires", "REAL"), ("parts", "TEXT")):
                    if columns and column not in columns:  # a file made by aiohttp-client-cache
                        steps.append(f"ALTER TABLE {_quote(table)} ADD COLUMN {column} {kind}")
                steps.append(f"CREATE INDEX IF NOT EXISTS {_quote(index)} ON {_quote(table)} (expires)")
                steps += _parts_schema(table)
                await self._transaction(conn, [(sql, None) for sql in steps])
            handle.tables.add(table)

    async def _close_dead_loops(self) -> None:
        for loop, handle in list(self.handles.items()):
            if loop.is_closed():
                del self.handles[loop]
                self._opening.pop(loop, None)
                handle.close_reader()
                await handle.conn.close()

    async def close(self) -> None:
        """Close every connection: this loop's (and a stopped loop's) at once; another
        running loop's on that loop, once its writes in flight are done (closed from here,
        its calls in flight would fail). The next use on any loop opens a new one; an
        in-memory database is gone once all its connections are closed."""
        handles = list(self.handles.values())
        self.handles.clear()
        self._opening.clear()
        here = asyncio.get_running_loop()
        for handle in handles:
            if handle.loop is not here and handle.loop.is_running():
                with contextlib.suppress(RuntimeError):  # closed meanwhile: nothing runs there
                    handle.loop.call_soon_threadsafe(self._close_there, handle)
                    continue
            handle.close_reader()
            await handle.conn.close()

    def _close_there(self, handle: _Handle) -> None:
        async def close() -> None:
            async with handle.lock:  # writes in flight first; reads are queued before it
                handle.close_reader()
                with contextlib.suppress(Exception):
                    await handle.conn.close()

        task = handle.loop.create_task(close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    # -- writes -------------------------------------------------------------------------
    async def execute(self, table: str, sql: str, params: Sequence[Any] = (), *, count: bool = False) -> int:
        """One write statement; with ``count``, returns the number of rows changed.

        If the connection's view of the file is stale (opened read-only, file moved), the
        statement is tried once more on a fresh connection: the file may be writable now."""
        for attempt in (1, 2):
            handle = self.handles.get(asyncio.get_running_loop())
            if handle is None or table not in handle.tables or handle.check_at <= time.monotonic():
                handle = await self.handle(table)
            conn = handle.conn

            async def run(conn: aiosqlite.Connection = conn) -> int:
                wait = lock_wait()
                if not count:  # one round trip to the connection's thread
                    await _bounded(conn, wait, self._busy_ms, sql, params)
                    return -1
                if wait is not None and wait * 1000 < self._busy_ms:
                    return (await _bounded_run(conn, wait, self._busy_ms, sql, params))[1]
                async with conn.execute(sql, params) as cursor:
                    return cursor.rowcount

            async with handle.lock:
                try:
                    return await _retry(run)
                except (sqlite3.Error, ValueError) as e:
                    # ValueError: another call closed this stale connection meanwhile
                    stale = isinstance(e, ValueError) and self.handles.get(handle.loop) is not handle
                    if attempt == 2 or not (stale or await self.forget(handle, e)):
                        raise
        raise AssertionError("unreachable")

    async def transaction(self, table: str, steps: Sequence[Step]) -> None:
        """Run each ``(sql, rows)`` (``executemany``; rows None: once, without parameters) in
        one ``BEGIN IMMEDIATE`` transaction.

        Shielded: a cancelled caller never leaves a transaction open on the shared connection.
        """
        handle = await self.handle(table)
        wait = lock_wait()  # read here: the shielded task below has the same context anyway

        async def locked() -> None:
            async with handle.lock:
                try:
                    await self._transaction(handle.conn, steps, wait, self._busy_ms)
                except sqlite3.Error as e:
                    await self.forget(handle, e)
                    raise

        task = asyncio.ensure_future(locked())
        task.add_done_callback(_retrieved)  # a caller gone at its deadline never reads it
        await asyncio.shield(task)

    @staticmethod
    async def _transaction(conn: aiosqlite.Connection, steps: Sequence[Step], wait: float | None = None,
                           normal_ms: int = 0) -> None:
        async def run() -> None:
            # Only BEGIN IMMEDIATE waits for another writer (WAL); bound that wait.
            await _bounded(conn, wait, normal_ms or 1 << 30, "BEGIN IMMEDIATE")
            try:
                for sql, rows in steps:
                    if rows is None:
                        await conn.execute_fetchall(sql)
                    else:
                        await conn.executemany(sql, rows)
                await conn.execute_fetchall("COMMIT")
            except BaseException:
                with contextlib.suppress(Exception):  # the original error matters, not this one
                    if conn.in_transaction:
                        await conn.execute_fetchall("ROLLBACK")
                raise

        await _retry(run)

    async def vacuum(self) -> None:
        """Rebuild the file to return the space of deleted rows to the OS."""
        handle = await self.handle()
        async with handle.lock:
            await _retry(lambda: handle.conn.execute_fetchall("VACUUM"))
            if self.wal:
                await _retry(lambda: handle.conn.execute_fetchall("PRAGMA wal_checkpoint(TRUNCATE)"))


def _parts_schema(table: str) -> list[str]:
    t, parts = _quote(table), _quote(f"{table}_parts")
    gc = f"BEGIN DELETE FROM {parts} WHERE id = old.parts; END"
    return [
        f"CREATE TABLE IF NOT EXISTS {parts} (id TEXT NOT NULL, seq INTEGER NOT NULL, "
        "data BLOB NOT NULL, created REAL NOT NULL, PRIMARY KEY (id, seq))",
        f"CREATE INDEX IF NOT EXISTS {_quote(table + '_parts_idx')} ON {t} (parts) WHERE parts IS NOT NULL",
        f"CREATE TRIGGER IF NOT EXISTS {_quote(table + '_parts_delete')} AFTER DELETE ON {t} "
        f"WHEN old.parts IS NOT NULL {gc}",
        f"CREATE TRIGGER IF NOT EXISTS {_quote(table + '_parts_update')} AFTER UPDATE OF parts ON {t} "
        f"WHEN old.parts IS NOT NULL AND old.parts IS NOT new.parts {gc}",
    ]


class _PartsWriter(SpillingWriter):
    """Spills a large item into part rows under a fresh id; the commit points the entry
    at them (see the module docstring)."""

    storage: SQLiteCache

    def __init__(self, storage: SQLiteCache, key: str, expires: datetime | None, head_size: int) -> None:
        super().__init__(storage, key, expires, head_size)
        self._id = uuid.uuid4().hex
        self._count = 0

    async def _spill(self, part: bytes) -> None:
        storage = self.storage
        await storage.db.execute(storage.table_name, storage._put_part,
                                 (self._id, self._count, part, time.time()))
        self._count += 1

    async def _publish(self, head: bytes) -> None:
        storage = self.storage
        row = (self.key, head, _epoch(self.expires), self._id, self._id, self._count)
        await storage.db.transaction(storage.table_name, [(storage._publish, [row])])
        if not await storage._fetch(storage._contains_parts, (self.key, self._id)):
            raise sqlite3.OperationalError("the item's parts were deleted before it was stored "
                                           "(cleared meanwhile?)")

    async def _discard(self) -> None:
        storage = self.storage
        await storage.db.execute(storage.table_name, storage._delete_parts, (self._id,))


class _PartsReader(ItemReader):
    """A large item: its head (the entry's value), then its parts, read by id (see the
    module docstring)."""

    def __init__(self, storage: SQLiteCache, parts_id: str, head: bytes, parts_size: int) -> None:
        self.storage, self.parts_id, self.head = storage, parts_id, head
        self.size = len(head) + parts_size

    async def parts(self, start: int = 0) -> AsyncIterator[bytes]:
        if start < len(self.head):
            yield self.head[start:]
        first, skip = divmod(max(0, start - len(self.head)), PART_SIZE)
        for seq in range(first, -(-(self.size - len(self.head)) // PART_SIZE)):
            rows = await self.storage._fetch(self.storage._get_part, (self.parts_id, seq))
            if not rows:
                raise LookupError("the item's parts are gone (replaced or deleted meanwhile)")
            part = bytes(rows[0][0])
            yield part[skip:] if skip else part
            skip = 0


class SQLiteCache(BaseCache):
    """One table of a SQLite database as key -> bytes storage.

    Args:
        db_path: A file path (``.sqlite`` added when it has no suffix) or ``":memory:"``,
            or a :class:`SQLiteDatabase` to share its connections with other tables (then
            the options below are its own).
        table_name: The table; created on first use.
        use_cache_dir, use_temp: Put the file in the user cache dir or the temp dir.
        busy_timeout, fast_save, wal: See :class:`SQLiteDatabase`.
        timeout: ``sqlite3.connect``'s name for ``busy_timeout``. Its other arguments are
            accepted for aiohttp-client-cache's sake and have no effect: this storage
            manages its connections. Other unknown keyword arguments are ignored with a
            warning (aiohttp-client-cache drops them silently).
    """

    def __init__(self, db_path: str | Path | SQLiteDatabase, table_name: str = "responses", *,
                 use_cache_dir: bool = False, use_temp: bool = False, busy_timeout: float = 30,
                 fast_save: bool = False, wal: bool = True, timeout: float | None = None,
                 **options: Any) -> None:
        unknown = sorted(set(options) - _CONNECT_ARGS - PEER_STORAGE_OPTIONS)
        if unknown:  # aiohttp-client-cache drops what sqlite3.connect does not take
            warnings.warn(f"SQLiteCache() ignores the unknown keyword arguments {unknown}",
                          UserWarning, stacklevel=2)
        if not table_name or '"' in table_name or "\x00" in table_name:
            raise ValueError(f"invalid table name {table_name!r}")
        if isinstance(db_path, SQLiteDatabase):
            self.db = db_path
        else:
            path = db_path if str(db_path) == MEMORY else get_cache_path(db_path, use_cache_dir, use_temp)
            self.db = SQLiteDatabase(path, busy_timeout=busy_timeout if timeout is None else timeout,
                                     fast_save=fast_save, wal=wal)
        self.table_name = table_name
        self.db.tables.add(table_name)
        t = _quote(table_name)
        parts = _quote(f"{table_name}_parts")
        self._read = f"SELECT value, parts FROM {t} WHERE key=?"
        self._read_many = f"SELECT key, value, parts FROM {t} WHERE key IN "
        self._contains = f"SELECT 1 FROM {t} WHERE key=?"
        upsert = "ON CONFLICT(key) DO UPDATE SET value=excluded.value, expires=excluded.expires, " \
                 "parts=excluded.parts"
        self._write = f"INSERT INTO {t} (key, value, expires, parts) VALUES (?, ?, ?, NULL) {upsert}"
        self._delete = f"DELETE FROM {t} WHERE key=?"
        self._page = f"SELECT key, value, parts FROM {t} WHERE key > ? ORDER BY key LIMIT ?"
        self._first_page = f"SELECT key, value, parts FROM {t} ORDER BY key LIMIT ?"
        self._delete_expired = f"DELETE FROM {t} WHERE expires <= ?"
        # Large items (see the module docstring)
        self._put_part = f"INSERT INTO {parts} (id, seq, data, created) VALUES (?, ?, ?, ?)"
        self._get_part = f"SELECT data FROM {parts} WHERE id=? AND seq=?"
        self._parts_size = f"SELECT SUM(length(data)) FROM {parts} WHERE id=?"
        self._delete_parts = f"DELETE FROM {parts} WHERE id=?"
        self._publish = (f"INSERT INTO {t} (key, value, expires, parts) SELECT ?, ?, ?, ? "
                         f"WHERE (SELECT COUNT(*) FROM {parts} WHERE id=?) = ? {upsert}")
        self._contains_parts = f"SELECT 1 FROM {t} WHERE key=? AND parts=?"
        self._sweep_parts = (f"DELETE FROM {parts} WHERE created <= ? AND NOT EXISTS "
                             f"(SELECT 1 FROM {t} WHERE {t}.parts = {parts}.id)")

    def __repr__(self) -> str:
        return f"SQLiteCache({str(self.db.path)!r}, {self.table_name!r})"

    @property
    def filename(self) -> str:
        """The database file (aiohttp-client-cache's attribute)."""
        return str(self.db.path)

    @contextlib.asynccontextmanager
    async def get_connection(self) -> AsyncIterator[aiosqlite.Connection]:
        """This event loop's connection to the database (aiohttp-client-cache's helper)."""
        yield (await self._handle()).conn

    @contextlib.asynccontextmanager
    async def bulk_commit(self) -> AsyncIterator[None]:
        """Writes made in this block (in this task) are committed together, in one
        transaction, when it ends; reads in the block see them already."""
        if self._pending() is not None:  # nested: the outer block commits
            yield
            return
        pending: dict[str, tuple[bytes, float | None]] = {}
        token = _BULK.set({**(_BULK.get() or {}), id(self): pending})
        try:
            yield
        finally:
            _BULK.reset(token)
        if pending:
            rows = [(key, value, expires) for key, (value, expires) in pending.items()]
            await self.db.transaction(self.table_name, [(self._write, rows)])

    def _pending(self) -> dict[str, tuple[bytes, float | None]] | None:
        """Writes of the current task's ``bulk_commit`` block, if one is open."""
        return (_BULK.get() or {}).get(id(self))

    async def _handle(self) -> _Handle:
        handle = self.db.handles.get(asyncio.get_running_loop())
        if handle is None or self.table_name not in handle.tables or handle.check_at <= time.monotonic():
            handle = await self.db.handle(self.table_name)
        return handle

    async def _fetch(self, sql: str, params: Sequence[Any]) -> list[Any]:
        handle = await self._handle()
        conn = handle.conn
        # In WAL mode a reader never waits for a writer; without it, bound the wait.
        wait = None if self.db.wal else lock_wait()
        try:
            try:
                return await _bounded(conn, wait, self.db._busy_ms, sql, params)
            except sqlite3.OperationalError as e:
                if not _is_busy(e):
                    raise
                return await _retry(lambda: _bounded(conn, lock_wait(), self.db._busy_ms, sql, params))
        except sqlite3.Error as e:
            await self.db.forget(handle, e)
            raise

    async def read(self, key: str) -> Value | None:
        pending = self._pending()
        if pending is not None and key in pending:
            return decode_value(pending[key][0])
        row = await self._row(key)
        if row is None:
            return None
        value, parts_id = row
        if parts_id is None:
            return decode_value(bytes(value))
        return await self._join(parts_id, bytes(value))  # written in parts: raw bytes

    async def _row(self, key: str) -> tuple[bytes, str | None] | None:
        """One row by primary key, (value, parts id): run inline (a few µs on a WAL
        database, whose readers never wait for the writer); through the aiosqlite thread
        when the file is busy (WAL recovery, a shared in-memory table being written)."""
        handle = self.db.handles.get(asyncio.get_running_loop())
        if (handle is not None and self.table_name in handle.tables and not handle.stale
                and handle.check_at > time.monotonic()):  # else: the checked path below
            # Busy, locked or sick: never wait on the loop; the aiosqlite path below
            # waits within the gate's deadline, or reports it.
            found = handle.point_read(self.db, self._read, key)
            if found is not None:
                return (found[0][0], found[0][1]) if found else None
        rows = await self._fetch(self._read, (key,))
        return (rows[0][0], rows[0][1]) if rows else None

    _fast_read = read  # read_now() stands for read() only while ``read`` is this one

    def read_now(self, key: str, loop: asyncio.AbstractEventLoop | None = None) -> bytes | None:
        """A whole item by primary key on this loop's checked connection, inline: the
        reader never waits for a lock (busy_timeout 0); a busy or sick file, a pending
        bulk write, an item in parts, the reader in use by another thread: None, and the
        gated read decides."""
        bulk = _BULK.get()  # (_pending() inline, as the rest: every SQLite hit passes here)
        if bulk and key in bulk.get(id(self), ()):
            return None
        handle = self.db.handles.get(loop or asyncio.get_running_loop())
        if handle is None or self.table_name not in handle.tables:
            return None
        if (handle.stale or handle.check_at <= time.monotonic()) and not handle.current(self.db.path):
            return None  # (current()'s first two tests inline)
        found = handle.point_read(self.db, self._read, key)
        if not found or found[0][1] is not None:
            return None
        data = bytes(found[0][0])
        value = decode_value(data) if data.startswith(TAG) else data  # (its untagged case inline)
        return value if isinstance(value, bytes) else None

    async def _read_bytes(self, key: str) -> bytes | None:
        """The stored bytes (an inline value still tagged; a large item's parts joined)."""
        row = await self._row(key)
        if row is None:
            return None
        value, parts_id = row
        return bytes(value) if parts_id is None else await self._join(parts_id, bytes(value))

    async def _join(self, parts_id: str, head: bytes) -> bytes | None:
        reader = await self._parts_reader(parts_id, head)
        try:
            return b"".join([part async for part in reader.parts()])
        except LookupError:  # replaced or deleted while we read it
            return None

    async def _parts_reader(self, parts_id: str, head: bytes) -> _PartsReader:
        rows = await self._fetch(self._parts_size, (parts_id,))
        return _PartsReader(self, parts_id, head, int(rows[0][0] or 0))

    async def open_read(self, key: str) -> ItemReader | None:
        pending = self._pending()
        if pending is not None and key in pending:
            return WholeReader(decode_value(pending[key][0]))
        row = await self._row(key)
        if row is None:
            return None
        value, parts_id = row
        if parts_id is None:
            return WholeReader(decode_value(bytes(value)))
        return await self._parts_reader(parts_id, bytes(value))

    async def open_write(self, key: str, expires: datetime | None = None, head_size: int = 0) -> _PartsWriter:
        return _PartsWriter(self, key, expires, head_size)

    async def contains(self, key: str) -> bool:
        pending = self._pending()
        return (pending is not None and key in pending) or bool(await self._fetch(self._contains, (key,)))

    async def write(self, key: str, value: Value, expires: datetime | None = None) -> None:
        pending = self._pending()
        if pending is not None:
            pending[key] = (encode_value(value), _epoch(expires))
            return
        await self.db.execute(self.table_name, self._write, (key, encode_value(value), _epoch(expires)))

    async def bulk_write(self, items: Iterable[tuple[str, Value, datetime | None]]) -> None:
        """Write ``(key, value, expires)`` items in one transaction."""
        rows = [(key, encode_value(value), _epoch(expires)) for key, value, expires in items]
        if rows:
            await self.db.transaction(self.table_name, [(self._write, rows)])

    async def delete(self, key: str) -> None:
        (self._pending() or {}).pop(key, None)
        await self.db.execute(self.table_name, self._delete, (key,))

    async def bulk_delete(self, keys: Iterable[str]) -> None:
        keys, pending = list(keys), self._pending() or {}
        for key in keys:
            pending.pop(key, None)
        rows = [(key,) for key in keys]
        if rows:
            await self.db.transaction(self.table_name, [(self._delete, rows)])

    async def delete_expired(self, now: datetime) -> int:
        """One DELETE on the ``expires`` index (and a sweep of orphaned parts)."""
        deleted = await self.db.execute(self.table_name, self._delete_expired, (_epoch(now),), count=True)
        await self.db.execute(self.table_name, self._sweep_parts, (time.time() - _ORPHAN_AGE,))
        return deleted

    async def _pages(self, page_size: int) -> AsyncIterator[list[Any]]:
        """Keyset pagination: no long-lived read transaction, no OFFSET scans."""
        rows = await self._fetch(self._first_page, (page_size,))
        while rows:
            yield rows
            if len(rows) < page_size:
                return
            rows = await self._fetch(self._page, (rows[-1][0], page_size))

    async def iter_keys(self) -> AsyncIterator[str]:
        async for rows in self._pages(_KEY_PAGE):
            for key, _value, _parts in rows:
                yield key

    async def iter_values(self) -> AsyncIterator[Value]:
        async for rows in self._pages(_VALUE_PAGE):
            for _key, value, parts_id in rows:
                if parts_id is None:
                    yield decode_value(bytes(value))
                elif (joined := await self._join(parts_id, bytes(value))) is not None:
                    yield joined

    async def iter_items(self) -> AsyncIterator[tuple[str, bytes]]:
        async for rows in self._pages(_VALUE_PAGE):
            for key, value, parts_id in rows:
                if parts_id is None:
                    yield key, bytes(value)
                elif (joined := await self._join(parts_id, bytes(value))) is not None:
                    yield key, joined

    async def read_many(self, keys: Sequence[str]) -> list[bytes | None]:
        found: dict[str, bytes | None] = {}
        for i in range(0, len(keys), _KEY_PAGE):  # under SQLite's bound-parameter limit
            batch = keys[i:i + _KEY_PAGE]
            sql = f"{self._read_many}({','.join('?' * len(batch))})"
            for key, value, parts_id in await self._fetch(sql, batch):
                found[key] = (bytes(value) if parts_id is None
                              else await self._join(parts_id, bytes(value)))
        return [found.get(key) for key in keys]

    async def size(self) -> int:
        rows = await self._fetch(f"SELECT COUNT(*) FROM {_quote(self.table_name)}", ())
        return int(rows[0][0])

    async def clear(self) -> None:
        """Delete every entry, and every part (including those of writers still running:
        their commit then stores nothing)."""
        async for _ in self.clear_steps():
            pass

    async def clear_steps(self) -> AsyncIterator[None]:
        """Clear in batches of rows, one transaction each, sized to take about
        ``_CLEAR_STEP`` seconds: one ``DELETE`` of a million rows (each firing the parts
        trigger) outlasts ``write_timeout``, a batch does not."""
        (self._pending() or {}).clear()
        loop = asyncio.get_running_loop()
        for table in (self.table_name, self.table_name + "_parts"):
            t, batch = _quote(table), _CLEAR_FIRST
            while await self._fetch(f"SELECT 1 FROM {t} LIMIT 1", ()):
                started = loop.time()
                await self.db.transaction(self.table_name, [
                    (f"DELETE FROM {t} WHERE rowid IN (SELECT rowid FROM {t} LIMIT {batch})", None)])
                took = loop.time() - started
                if took < _CLEAR_STEP / 2:
                    batch = min(batch * 2, _CLEAR_MOST)
                elif took > _CLEAR_STEP * 2:
                    batch = max(batch // 2, _CLEAR_FIRST)
                yield

    async def close(self) -> None:
        """Close the database's connections (shared with its other tables)."""
        await self.db.close()


class SQLiteBackend(CacheBackend):
    """Responses and redirects in two tables of one SQLite file (the default backend).

    Args:
        cache_name: Database file path; ``.sqlite`` is added when it has no suffix.
        use_cache_dir: Put the file in the user cache dir (platformdirs).
        use_temp: Put the file in the temp dir.
        use_memory: Keep the database in memory (shared by this backend's loops; gone on
            :meth:`close`).
        busy_timeout: Seconds to wait for a lock held by another connection or process
            (maintenance; on the request path a wait is bounded by ``backend_timeout``).
        fast_save: ``synchronous=OFF``: trades durability for speed; a power loss or OS crash
            may lose recent writes or corrupt the file.
        wal: Write-ahead logging, so many processes can share the file.
        timeout: ``busy_timeout`` under aiohttp-client-cache's name (``sqlite3.connect``'s).
        **kwargs: Cache settings (see :class:`CacheSettings`).
    """

    def __init__(self, cache_name: str | Path = "aiohttp-cache", use_cache_dir: bool = False,
                 use_temp: bool = False, use_memory: bool = False, busy_timeout: float = 30,
                 fast_save: bool = False, wal: bool = True, timeout: float | None = None,
                 **kwargs: Any) -> None:
        if timeout is not None:
            busy_timeout = timeout
        super().__init__(str(cache_name), **kwargs)
        if use_memory and (use_cache_dir or use_temp):
            raise ValueError("use_memory excludes use_cache_dir and use_temp")
        if use_memory or str(cache_name) == MEMORY:
            self.db_path: Path | str = MEMORY
        else:
            self.db_path = get_cache_path(cache_name, use_cache_dir, use_temp)
        self.database = SQLiteDatabase(self.db_path, busy_timeout=busy_timeout, fast_save=fast_save,
                                       wal=wal)
        self.raw_responses = SQLiteCache(self.database, "responses")
        self.raw_redirects = SQLiteCache(self.database, "redirects")

    async def vacuum(self) -> None:
        """Return the space of deleted rows to the OS (worth it after a large purge)."""
        await self.database.vacuum()


__all__ = ["SQLiteBackend", "SQLiteCache", "SQLiteDatabase", "SQLiteFileError", "SQLiteUnavailableError",
           "get_cache_path"]
