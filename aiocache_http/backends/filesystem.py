"""Filesystem storage (:class:`FileCache`) and backend (:class:`FileBackend`), on aiofiles.

One file per key, holding exactly the stored bytes. Responses live in the cache
directory, redirect aliases in a SQLite table beside them (``redirects.sqlite``).

File names: an entry is ``<name>.ach``. ``<name>`` is the key itself when it is made of
lowercase letters, digits, ``_``, ``-`` and ``.`` (such as the hex digests the cache
makes); any other key is ``~`` + its base32 encoding, so no key can reach outside the
directory (``../x``, ``/etc``, NUL...) and two keys never share a file, even on a
case-insensitive filesystem. A key too long for a file name is stored as ``~~`` + its
SHA-256, with the key itself in a small ``.key-<sha256>`` file written first.

The directory may hold other files (a user's ``report.docx``): the storage owns only
names it can recognise (an entry whose name decodes back to it, a ``.key-`` file, a
``.tmp-`` file of its own pattern), and lists, deletes and clears nothing else.

Atomic writes: the value goes to a temporary file ``.tmp-<uuid hex>`` in the same
directory, is fsynced, then ``os.replace``\\ d over the entry. A reader therefore sees
the old file or the new one, never a part. A writer killed at any point leaves at most
a temporary file: never listed, removed by :meth:`FileCache.clear`, and swept once it is
an hour old by :meth:`FileCache.delete_expired` and by the first write of each process.

Expiry: the file's modification time *is* the entry's HTTP expiry (set on the temp file
before the rename, so it is atomic with the content); an entry that never expires gets a
far-future time. So :meth:`FileCache.delete_expired` and ``keys()`` / ``size()`` only
list the directory and ``stat`` it, never read a body. (A tool that rewrites modification
times, such as a copy without ``-p``, makes ``delete(expired=True)`` over-delete; the
response itself still carries its expiry.)

Each operation is one blocking function run in aiofiles' executor (``aiofiles.os.wrap``)
rather than a chain of per-call aiofiles hops: a hit costs one thread hop, not three.

Large items (over :data:`.parts.INLINE_LIMIT`) are written in parts: the temporary file
is filled part by part as the body arrives, then fsynced and renamed as above, so an
item appears whole or not at all. Read in parts, an item is one open file read with
``pread`` at any offset: a later write renames a new file over the name and leaves the
open one as it was.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO

from aiofiles.os import wrap

from .base import BaseCache, CacheBackend, cache_path, check_storage_options
from .lru import LRUIndex
from .parts import INLINE_LIMIT, PART_SIZE, ItemReader, SpillingWriter, WholeReader
from .sqlite import SQLiteCache
from .values import Value, decode_value, encode_value

NEVER = float(2**33)  # mtime of entries that never expire (year 2242)
REDIRECTS_DIR = "redirects"
REDIRECTS_FILE = "redirects.sqlite"
SUFFIX = ".ach"
STALE_TMP_SECONDS = 3600.0  # a temp file this old belongs to a writer that died
_CLEAR_STEP = 0.05  # seconds a clear() step aims at (far under write_timeout, even loaded)
_PLAIN = re.compile(r"[0-9a-z_-][0-9a-z_.-]{0,199}")  # lowercase only: case-insensitive FS safe
# the subdirectory, and names Windows reserves
_RESERVED = ({REDIRECTS_DIR, "con", "prn", "aux", "nul"}
             | {f"{d}{i}" for d in ("com", "lpt") for i in range(10)})
_MAX_ENCODED = 200
_TMP_PREFIX = ".tmp-"
_KEY_PREFIX = ".key-"
_TMP_NAME = re.compile(r"\.tmp-[0-9a-f]{32}")
_KEY_NAME = re.compile(r"\.key-[0-9a-f]{64}")
_HASHED_NAME = re.compile(r"~~([0-9a-f]{64})" + re.escape(SUFFIX))


def filename(key: str, suffix: str = SUFFIX) -> str:
    """The file name of ``key`` (see the module docstring)."""
    if _PLAIN.fullmatch(key) and key not in _RESERVED and not key.endswith("."):
        return key + suffix
    encoded = base64.b32encode(key.encode("utf-8", "surrogatepass")).decode().rstrip("=").lower()
    if len(encoded) <= _MAX_ENCODED:
        return "~" + encoded + suffix
    return "~~" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest() + suffix


def _decode(name: str, suffix: str = SUFFIX) -> str | None:
    """The key stored under file ``name``; None if ``name`` is not an entry we wrote (or is a
    hashed one, whose key is in its ``.key-`` file)."""
    if not name.endswith(suffix):
        return None
    key: str | None = name[: -len(suffix)]
    if key and key.startswith("~"):
        encoded = key[1:].upper()
        try:
            key = base64.b32decode(encoded + "=" * (-len(encoded) % 8)).decode("utf-8", "surrogatepass")
        except (binascii.Error, ValueError):
            key = None
    return key if key is not None and filename(key, suffix) == name else None


def _hashed_name(suffix: str) -> re.Pattern[str]:
    return _HASHED_NAME if suffix == SUFFIX else re.compile(r"~~([0-9a-f]{64})" + re.escape(suffix))


def _owned(name: str, suffix: str = SUFFIX) -> bool:
    """Is ``name`` a file this storage writes (entry, key file or temp file)?"""
    return (_decode(name, suffix) is not None or _hashed_name(suffix).fullmatch(name) is not None
            or _KEY_NAME.fullmatch(name) is not None or _TMP_NAME.fullmatch(name) is not None)


def _mtime(expires: datetime | None) -> float:
    if expires is None:
        return NEVER
    if expires.tzinfo is None:  # naive datetimes are UTC, as everywhere in the cache
        expires = expires.replace(tzinfo=timezone.utc)
    return min(max(expires.timestamp(), 1.0), NEVER)


def _write_atomic(path: Path, data: bytes, mtime: float | None) -> None:
    tmp = path.with_name(f"{_TMP_PREFIX}{uuid.uuid4().hex}")
    try:
        with open(tmp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if mtime is not None:
            os.utime(tmp, (time.time(), mtime))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _read(path: Path) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except (FileNotFoundError, NotADirectoryError):
        return None


def _open_item(path: Path) -> tuple[BinaryIO, int] | bytes | None:
    """A small item's bytes, or a large one's open file and size, or None."""
    try:
        f = open(path, "rb", buffering=0)  # noqa: SIM115 - closed here or by the reader
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        size = os.fstat(f.fileno()).st_size
        if size <= INLINE_LIMIT:
            with f:
                return f.read()
    except BaseException:
        f.close()
        raise
    return f, size


def _pread(f: BinaryIO, size: int, offset: int) -> bytes:
    return os.pread(f.fileno(), size, offset)


def _close(f: BinaryIO | None) -> None:
    if f is not None:
        f.close()


def _unlink(path: Path) -> bool:
    try:
        path.unlink()
        return True
    except FileNotFoundError:
        return False


def get_cache_dir(cache_name: str | Path, use_cache_dir: bool = False, use_temp: bool = False) -> Path:
    """The directory for ``cache_name``: as given, in the user cache dir, or in the temp dir
    (the last two are ignored for an absolute path)."""
    return cache_path(cache_name, use_cache_dir, use_temp)


class _FileReader(ItemReader):
    """A large item: its open file (a snapshot: see the module docstring)."""

    def __init__(self, f: BinaryIO, size: int) -> None:
        self.file: BinaryIO | None = f
        self.size = size

    async def parts(self, start: int = 0) -> AsyncIterator[bytes]:
        for offset in range(start, self.size, PART_SIZE):
            if self.file is None:
                raise ValueError("read from a closed item")
            part = await _wrapped_pread(self.file, PART_SIZE, offset)
            if not part:
                return
            yield part

    async def close(self) -> None:
        f, self.file = self.file, None
        await _wrapped_close(f)


_wrapped_pread = wrap(_pread)
_wrapped_close = wrap(_close)


class _FileWriter(SpillingWriter):
    """Spills a large item into a temporary file (room left for its head at the start),
    renamed over the entry on commit."""

    storage: FileCache

    def __init__(self, storage: FileCache, key: str, expires: datetime | None, head_size: int) -> None:
        super().__init__(storage, key, expires, head_size)
        self._file: BinaryIO | None = None
        self._tmp: Path | None = None

    async def _spill(self, part: bytes) -> None:
        if self._file is None:
            self._tmp, self._file = await self.storage._create_tmp(self.head_size)
        await self.storage._append(self._file, part)

    async def _publish(self, head: bytes) -> None:
        f, tmp = self._file, self._tmp
        self._file = None
        assert f is not None and tmp is not None
        await self.storage._publish(self.key, f, tmp, head, _mtime(self.expires))

    async def _discard(self) -> None:
        f, tmp = self._file, self._tmp
        self._file = self._tmp = None
        if tmp is not None:
            await self.storage._discard(f, tmp)


class FileCache(BaseCache):
    """A directory as key -> bytes storage (see the module docstring).

    Args:
        cache_dir: The directory; created (with its parents) now, so a path that cannot
            be used fails here, naming it.
        use_cache_dir, use_temp: Put it in the user cache dir or the temp dir.
        max_cache_bytes: Keep the files' total size under this, evicting the least
            recently used (see :mod:`.lru`); ``max_file_bytes``, ``block_bytes`` and
            ``lock`` tune it. A file over ``max_file_bytes`` is not stored.
        sync_index: With ``max_cache_bytes``, first bring the index up to date with files
            added or removed by other means.
        extension: requests-cache's file extension (``json``, ``yaml``...): files are then
            ``<name>.ach.<extension>``, still recognisably the cache's own.
    """

    def __init__(self, cache_dir: str | Path, *, use_cache_dir: bool = False, use_temp: bool = False,
                 max_cache_bytes: int | None = None, max_file_bytes: int | None = None,
                 block_bytes: int = 1, lock: Any = None, sync_index: bool = False,
                 extension: str | None = None, **serializer_options: Any) -> None:
        check_storage_options("FileCache", serializer_options)
        self.suffix = SUFFIX + ("." + extension.lstrip(".") if extension else "")
        self._hashed = _hashed_name(self.suffix)
        self.directory = get_cache_dir(cache_dir, use_cache_dir, use_temp)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OSError(e.errno, f"cannot use {str(self.directory)!r} as a cache directory: "
                                   f"{e.strerror or e}") from e
        self._swept = False  # stale temp files are swept by this instance's first write
        self.lru = (LRUIndex(self.directory, max_cache_bytes, max_file_bytes, block_bytes, lock)
                    if max_cache_bytes else None)
        if self.lru is not None and sync_index:
            self._sync_index()
        self._read = wrap(self._read_sync)
        self._open_item = wrap(self._open_sync)
        self._create_tmp = wrap(self._create_tmp_sync)
        self._append = wrap(self._append_sync)
        self._publish = wrap(self._publish_sync)
        self._discard = wrap(self._discard_sync)
        self._write = wrap(self._write_sync)
        self._delete = wrap(self._delete_sync)
        self._scan = wrap(self._scan_sync)
        self._delete_expired = wrap(self._delete_expired_sync)
        self._clear_some = wrap(self._clear_some_sync)

    def __repr__(self) -> str:
        return f"FileCache({str(self.directory)!r})"

    @property
    def cache_dir(self) -> str:
        """The cache directory as a string, as aiohttp-client-cache has it (a
        ``pathlib.Path``: :attr:`directory`)."""
        return str(self.directory)

    def path(self, key: str) -> Path:
        """The file of ``key``."""
        return self.directory / filename(key, self.suffix)

    async def paths(self) -> AsyncIterator[Path]:
        """The file of every entry."""
        for key in await self._scan():
            yield self.path(key)

    @property
    def lock(self) -> Any:
        """The lock guarding the LRU index (with ``max_cache_bytes``)."""
        return self.lru.lock if self.lru is not None else None

    def __getattr__(self, name: str) -> Any:  # max_cache_bytes, max_file_bytes, block_bytes
        if name in ("max_cache_bytes", "max_file_bytes", "block_bytes") and self.lru is not None:
            return getattr(self.lru, name)
        raise AttributeError(f"'FileCache' object has no attribute {name!r}")

    # -- blocking parts (run in the executor) ----------------------------------------
    def _read_sync(self, key: str) -> bytes | None:
        data = _read(self.path(key))
        if data is not None and self.lru is not None:
            self.lru.touch(key)
        return data

    def _sync_index(self) -> None:
        assert self.lru is not None
        sizes = []
        for key, _mtime in self._entries():
            with contextlib.suppress(FileNotFoundError):
                sizes.append((key, self.path(key).stat().st_size))
        self.lru.record_many(sizes)

    def _write_sync(self, key: str, data: bytes, mtime: float) -> None:
        if self.lru is not None:
            if not self.lru.fits(len(data)):
                self._delete_sync([key])  # an older, smaller version must not stay behind
                return
            evicted = self.lru.make_room(key, len(data))
            if evicted:
                self._delete_sync(evicted)
        self._write_file(key, data, mtime)
        if self.lru is not None:
            self.lru.record(key, len(data))

    def _write_file(self, key: str, data: bytes, mtime: float) -> None:
        name = filename(key, self.suffix)
        try:
            if not self._swept:
                self._swept = True
                self._sweep_sync(time.time())
            hashed = self._hashed.fullmatch(name)
            if hashed:  # key file first: an entry is never listed without its key
                _write_atomic(self.directory / (_KEY_PREFIX + hashed.group(1)),
                              key.encode("utf-8", "surrogatepass"), None)
            _write_atomic(self.directory / name, data, mtime)
        except FileNotFoundError:  # the directory was removed under us: recreate it once
            self.directory.mkdir(parents=True, exist_ok=True)
            self._write_file(key, data, mtime)

    def _create_tmp_sync(self, head_size: int) -> tuple[Path, BinaryIO]:
        tmp = self.directory / f"{_TMP_PREFIX}{uuid.uuid4().hex}"
        try:
            f = open(tmp, "xb")  # noqa: SIM115 - closed by the writer
        except FileNotFoundError:  # the directory was removed under us: recreate it once
            self.directory.mkdir(parents=True, exist_ok=True)
            f = open(tmp, "xb")  # noqa: SIM115
        f.seek(head_size)  # the head is written there on commit
        return tmp, f

    @staticmethod
    def _append_sync(f: BinaryIO, part: bytes) -> None:
        f.write(part)

    def _publish_sync(self, key: str, f: BinaryIO, tmp: Path, head: bytes, mtime: float) -> None:
        try:
            with f:
                f.flush()
                os.pwrite(f.fileno(), head, 0)
                os.fsync(f.fileno())
                size = os.fstat(f.fileno()).st_size
            if self.lru is not None:
                if not self.lru.fits(size):
                    self._delete_sync([key])  # an older, smaller version must not stay behind
                    self._discard_sync(None, tmp)
                    return
                evicted = self.lru.make_room(key, size)
                if evicted:
                    self._delete_sync(evicted)
            os.utime(tmp, (time.time(), mtime))
            name = filename(key, self.suffix)
            hashed = self._hashed.fullmatch(name)
            if hashed:  # key file first: an entry is never listed without its key
                _write_atomic(self.directory / (_KEY_PREFIX + hashed.group(1)),
                              key.encode("utf-8", "surrogatepass"), None)
            os.replace(tmp, self.directory / name)
            if self.lru is not None:
                self.lru.record(key, size)
        except BaseException:
            self._discard_sync(f, tmp)
            raise

    def _open_sync(self, key: str) -> tuple[BinaryIO, int] | bytes | None:
        found = _open_item(self.path(key))
        if found is not None and self.lru is not None:
            self.lru.touch(key)
        return found

    @staticmethod
    def _discard_sync(f: BinaryIO | None, tmp: Path) -> None:
        if f is not None:
            f.close()
        with contextlib.suppress(OSError):
            tmp.unlink()

    def _delete_sync(self, keys: list[str]) -> int:
        if self.lru is not None:
            self.lru.forget(keys)
        deleted = 0
        for key in keys:
            name = filename(key, self.suffix)
            deleted += _unlink(self.directory / name)
            hashed = self._hashed.fullmatch(name)
            if hashed:
                _unlink(self.directory / (_KEY_PREFIX + hashed.group(1)))
        return deleted

    def _entries(self) -> list[tuple[str, float]]:
        """(key, mtime) of every entry: one directory listing plus a ``stat`` each."""
        found = []
        try:
            scan = os.scandir(self.directory)
        except FileNotFoundError:
            return []
        with scan:
            for entry in scan:
                try:
                    if not entry.is_file():
                        continue
                    key = _decode(entry.name, self.suffix)
                    hashed = self._hashed.fullmatch(entry.name)
                    if key is None and hashed:
                        raw = _read(self.directory / (_KEY_PREFIX + hashed.group(1)))
                        key = None if raw is None else raw.decode("utf-8", "surrogatepass")
                        if key is not None and filename(key, self.suffix) != entry.name:
                            key = None  # a key file that does not match its entry
                    if key is not None:
                        found.append((key, entry.stat().st_mtime))
                except FileNotFoundError:  # deleted while we listed
                    continue
        return found

    def _scan_sync(self) -> list[str]:
        return [key for key, _mtime in self._entries()]

    def _delete_expired_sync(self, now: float) -> int:
        self._sweep_sync(time.time())
        return self._delete_sync([key for key, mtime in self._entries() if mtime <= now])

    def _sweep_sync(self, now: float) -> None:
        """Remove temp files of writers that died (older than STALE_TMP_SECONDS). One
        listing that looks only at temp file names: with a million entries it runs in a
        fraction of a second, where decoding every name would take seconds."""
        try:
            with os.scandir(self.directory) as scan:
                stale = [e for e in scan if e.name.startswith(_TMP_PREFIX) and _TMP_NAME.fullmatch(e.name)
                         and e.is_file(follow_symlinks=False)]
        except (FileNotFoundError, NotADirectoryError):
            return
        for entry in stale:
            with contextlib.suppress(OSError):
                if now - entry.stat(follow_symlinks=False).st_mtime > STALE_TMP_SECONDS:
                    _unlink(Path(entry.path))

    def _clear_some_sync(self, scan: Iterator[os.DirEntry[str]]) -> tuple[bool, int]:
        """Unlink the entries ``scan`` lists for about :data:`_CLEAR_STEP` seconds (never
        anything else a user keeps here): (is the listing at its end?, files unlinked)."""
        until, unlinked = time.monotonic() + _CLEAR_STEP, 0
        for entry in scan:
            if _owned(entry.name, self.suffix) and entry.is_file(follow_symlinks=False):
                with contextlib.suppress(OSError):
                    _unlink(Path(entry.path))
                    unlinked += 1
            if time.monotonic() >= until:
                return False, unlinked
        return True, unlinked

    # -- the storage API -------------------------------------------------------------
    async def read(self, key: str) -> Value | None:
        data = await self._read(key)
        return None if data is None else decode_value(data)

    async def contains(self, key: str) -> bool:
        return await wrap(os.path.isfile)(self.path(key))

    async def open_write(self, key: str, expires: datetime | None = None, head_size: int = 0) -> _FileWriter:
        return _FileWriter(self, key, expires, head_size)

    async def open_read(self, key: str) -> ItemReader | None:
        found = await self._open_item(key)
        if found is None or isinstance(found, bytes):
            return None if found is None else WholeReader(decode_value(found))
        return _FileReader(*found)

    async def write(self, key: str, value: Value, expires: datetime | None = None) -> None:
        await self._write(key, encode_value(value), _mtime(expires))

    async def delete(self, key: str) -> None:
        await self._delete([key])

    async def bulk_delete(self, keys: Iterable[str]) -> None:
        await self._delete(list(keys))

    async def delete_expired(self, now: datetime) -> int:
        """Entries whose modification time (= expiry) is past: a listing, no body read."""
        return await self._delete_expired(_mtime(now))

    async def iter_keys(self) -> AsyncIterator[str]:
        for key in await self._scan():
            yield key

    async def size(self) -> int:
        return len(await self._scan())

    async def clear(self) -> None:
        """Delete every entry (and any temp file a killed writer left); nothing else."""
        async for _ in self.clear_steps():
            pass

    async def clear_steps(self) -> AsyncIterator[None]:
        """Clear in steps of about :data:`_CLEAR_STEP` seconds: unlinking a million files
        outlasts ``write_timeout`` as one call, a step does not. The listing runs until
        one pass finds nothing to unlink (a directory changed while it is read may
        list an entry late, or not at all)."""
        while True:
            try:
                scan = await wrap(os.scandir)(self.directory)
            except (FileNotFoundError, NotADirectoryError):
                break
            unlinked = 0
            try:
                at_end = False
                while not at_end:
                    at_end, some = await self._clear_some(scan)
                    unlinked += some
                    yield
            finally:
                scan.close()
            if not unlinked:
                break
        if self.lru is not None:
            while await wrap(self.lru.forget_some)():
                yield

    async def total_bytes(self) -> int:
        """The entries' size in bytes (in blocks, with ``max_cache_bytes``)."""
        if self.lru is not None:
            return await wrap(self.lru.total_bytes)()
        return sum(await wrap(self._sizes)())

    def _sizes(self) -> list[int]:
        sizes = []
        for key, _mtime in self._entries():
            with contextlib.suppress(FileNotFoundError):
                sizes.append(self.path(key).stat().st_size)
        return sizes

    async def close(self) -> None:
        if self.lru is not None:
            self.lru.close()


class FileBackend(CacheBackend):
    """Cache backend on the filesystem: one file per response in directory ``cache_name``,
    redirect aliases in ``redirects.sqlite`` in it (see the module docstring).

    Args:
        cache_name: Directory path.
        use_cache_dir: Put the directory in the user cache dir (platformdirs).
        use_temp: Put the directory in the temp dir.
        max_cache_bytes, max_file_bytes, block_bytes, lock, sync_index: Bound the
            responses' total size, evicting the least recently used (see :class:`FileCache`).
        **kwargs: Cache settings (expire_after, secret_key...).
    """

    def __init__(self, cache_name: str | Path = "http_cache", use_cache_dir: bool = False,
                 use_temp: bool = False, max_cache_bytes: int | None = None,
                 max_file_bytes: int | None = None, block_bytes: int = 1,
                 extension: str | None = None, lock: Any = None, sync_index: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(str(cache_name), **kwargs)
        self.cache_dir = get_cache_dir(cache_name, use_cache_dir, use_temp)
        self.raw_responses: FileCache = FileCache(
            self.cache_dir, max_cache_bytes=max_cache_bytes, max_file_bytes=max_file_bytes,
            block_bytes=block_bytes, extension=extension, lock=lock, sync_index=sync_index)
        # Redirect aliases are tiny: a table in the directory, as both peers keep them.
        self.raw_redirects: BaseCache = SQLiteCache(self.cache_dir / REDIRECTS_FILE, "redirects")


__all__ = ["FileBackend", "FileCache", "filename", "get_cache_dir"]
