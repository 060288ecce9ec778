"""The storage contract (BaseCache) and the backend built on it (CacheBackend).

``BaseCache`` is a plain async key -> bytes store; each backend module implements it
for one database. ``CacheBackend`` holds the settings and the serializer, owns a
``responses`` and a ``redirects`` storage, and is the single place where storage is
called: every call goes through :meth:`CacheBackend._guard`, under a deadline and a
circuit breaker (``health.py``), where a failing backend is logged and treated as a miss
(fail-open) unless ``strict=True``.

``CacheBackend()`` itself is the in-memory backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import inspect
import logging
import os
import tempfile
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from multidict import CIMultiDict

from ..coalescing import Coalescing, Lead
from ..events import EventHub
from ..memo import Memo
from ..metrics.stats import CacheStats
from ..models import CachedRequest, CachedResponse, StoredBodyError, utcnow
from ..models.convert import as_record
from ..policy.freshness import NEVER_STORED
from ..policy.keys import (
    CREDENTIAL_HEADERS,
    create_key,
    hash_key,
    normalize_request,
    plain_identity,
    redact_url,
)
from ..policy.settings import CacheSettings
from ..serializers import DeserializationError, Serializer, get_format
from .bodies import ResponseWriter, StoredBodyReader
from .health import CircuitState, Health, Kind, _discard, request_budget
from .parts import INLINE_LIMIT, PART_SIZE, BufferedWriter, ItemReader, ItemWriter, WholeReader
from .values import Value

if TYPE_CHECKING:
    from .views import RedirectsView, ResponsesView

logger = logging.getLogger("aiocache_http")

T = TypeVar("T")
_IDENTITY_MEMO_SIZE = 4096
# Hot entries, decoded: a hit whose stored bytes are the very bytes decoded last time
# (checked in full: a changed, renewed or tampered item is decoded and verified again)
# skips the decoding. Immutable responses make sharing them safe.
# Bounded by count and by bytes: at most 4,096 entries (a scale run's 1,000 hot keys
# fit) of at most 64 KiB each, 16 MiB of stored bytes in all (about twice that held, with
# the decoded bodies): then it starts over.
_DECODED_SIZE = 4096
_DECODED_MAX_BYTES = 64 * 1024
_DECODED_BUDGET = 16 * 1024 * 1024
_END: Any = object()
_AS_EXPIRES: Any = object()
_DROPPED: Any = object()  # what a gated write returns when it did not complete


class AsyncResults(Generic[T]):
    """The result of ``keys()`` / ``values()``: iterate it with ``async for``, or
    ``await`` it for a list (both peers' styles work)."""

    __slots__ = ("_iterator",)

    def __init__(self, iterator: AsyncIterator[T]) -> None:
        self._iterator = iterator

    def __aiter__(self) -> AsyncIterator[T]:
        return self._iterator

    async def collect(self) -> list[T]:
        """Every item, as a list (what awaiting this gives)."""
        return [item async for item in self._iterator]

    def __await__(self) -> Generator[Any, None, list[T]]:
        return self.collect().__await__()


async def _peer_keys(self: BaseCache) -> AsyncIterator[str]:
    found: Any = self.keys()
    if inspect.isawaitable(found):
        found = await found
    if hasattr(found, "__aiter__"):
        async for key in found:
            yield key
    else:
        for key in found:
            yield key


def _without_expiry(write: Callable[[Any, str, Any], Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    @functools.wraps(write)
    async def write_item(self: BaseCache, key: str, value: Value, expires: datetime | None = None) -> None:
        await write(self, key, value)

    return write_item


class BaseCache(ABC):
    """Async key -> bytes storage. A ``str`` value is stored UTF-8 encoded.

    ``expires`` passed to :meth:`write` is the entry's HTTP expiry; storages that can
    expire items themselves (Redis TTL, Mongo TTL index...) use it, others may ignore it.
    Subclasses implement the abstract methods; the rest have generic defaults that a
    subclass overrides when its database can do better.
    """

    holds_objects = False
    """True for the in-process storage, which keeps decoded responses (see memory.py)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # aiohttp-client-cache's storages (its docs' custom backend) list their keys with
        # keys(), an async generator: that is their iter_keys.
        if "keys" in cls.__dict__ and getattr(cls.iter_keys, "__isabstractmethod__", False):
            cls.iter_keys = _peer_keys  # type: ignore[method-assign]
        # ... and write(key, item), without the expiry (theirs is a read-time check).
        write = cls.__dict__.get("write")
        if write is not None and [p.kind for p in inspect.signature(write).parameters.values()] == [
                inspect.Parameter.POSITIONAL_OR_KEYWORD] * 3:
            cls.write = _without_expiry(write)  # type: ignore[method-assign,assignment]
    in_process = False
    """True when calls never wait on IO (the gate then never moves a write to the background)."""
    max_item_size: int | None = None
    """The largest item the database takes, if it has a limit: an item written in parts
    fails as soon as it passes it, rather than after buffering all of it."""

    @abstractmethod
    async def read(self, key: str) -> Value | None: ...

    def read_now(self, key: str, loop: asyncio.AbstractEventLoop | None = None) -> bytes | None:
        """The bytes of a whole item at ``key`` if they can be had at once, without waiting
        on anything (no IO that can hang, no lock): the hot path then needs no deadline.
        None when they cannot (or nothing is there): :meth:`open_read` decides. ``loop``:
        the loop whose connections to use when called from another thread (default: the
        running loop)."""
        return None

    @abstractmethod
    async def write(self, key: str, value: Value, expires: datetime | None = None) -> None:
        ...

    @abstractmethod
    async def delete(self, key: str) -> None: ...

    @abstractmethod
    def iter_keys(self) -> AsyncIterator[str]: ...

    @abstractmethod
    async def size(self) -> int: ...

    @abstractmethod
    async def clear(self) -> None: ...

    async def clear_steps(self) -> AsyncIterator[None]:
        """:meth:`clear` in steps, each yielded when done: a storage whose clear grows with
        its size deletes in batches, so each step fits the gate's per-step deadline
        (``write_timeout``) however large the cache. One step by default."""
        await self.clear()
        yield

    async def bulk_delete(self, keys: Iterable[str]) -> None:
        for key in list(keys):
            await self.delete(key)

    async def contains(self, key: str) -> bool:
        return await self.read(key) is not None

    async def iter_values(self) -> AsyncIterator[bytes]:
        async for key in self.iter_keys():
            value = await self.read(key)
            if value is not None:
                yield value

    async def iter_items(self) -> AsyncIterator[tuple[str, bytes]]:
        """``(key, value)`` pairs, for tools that walk a whole storage (the CLI, migration)."""
        async for key in self.iter_keys():
            value = await self.read(key)
            if value is not None:
                yield key, value

    async def read_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """The values of ``keys``, in order (None where absent)."""
        return [await self.read(key) for key in keys]

    async def bulk_write(self, items: Iterable[tuple[str, Value, datetime | None]]) -> None:
        """Write ``(key, value, expires)`` items (in one round trip where the database can)."""
        for key, value, expires in items:
            await self.write(key, value, expires)

    def keys(self) -> AsyncResults[str]:
        return AsyncResults(self.iter_keys())

    def values(self) -> AsyncResults[Value]:
        return AsyncResults(self.iter_values())

    async def pop(self, key: str, default: Value = None) -> Value:
        """Delete ``key`` and return its value (``default`` if absent)."""
        value = await self.read(key)
        await self.delete(key)
        return default if value is None else value

    async def delete_expired(self, now: datetime) -> int | None:
        """Delete items whose ``expires`` is before ``now`` and return how many, or None if
        this storage does not record expiry (the backend then decodes items to find them)."""
        return None

    async def open_write(self, key: str, expires: datetime | None = None, head_size: int = 0) -> ItemWriter:
        """Write the item at ``key`` in parts (see :mod:`.parts`): it appears whole on
        ``commit(head)``, or not at all. Opening does no IO (writes do). This default
        buffers the item and calls :meth:`write`."""
        return BufferedWriter(self, key, expires)

    async def open_read(self, key: str) -> ItemReader | None:
        """The item at ``key``, to read in parts (see :mod:`.parts`), or None. This
        default reads it whole."""
        data = await self.read(key)
        return None if data is None else WholeReader(data)

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections this storage opened (not ones passed in by the user)."""


# aiohttp-client-cache's storages sign and serialize items themselves; here the backend
# does, so these options of a storage used on its own are accepted and have no effect.
PEER_STORAGE_OPTIONS = frozenset({"secret_key", "salt", "serializer"})


def check_storage_options(storage: str, options: dict[str, Any]) -> None:
    unknown = sorted(set(options) - PEER_STORAGE_OPTIONS)
    if unknown:
        raise TypeError(f"{storage}() got unexpected keyword arguments {unknown}")


class ConfigurationError(Exception):
    """A backend that cannot work as configured (a file that is not a database, an option
    the server does not support...). Raised even where runtime faults fail open."""


def without_set_cookie(response: CachedResponse) -> CachedResponse:
    """``response`` (and its redirect hops) without Set-Cookie headers; itself if none."""
    if NEVER_STORED.isdisjoint(map(str.lower, response.headers)) and not response.history:
        return response  # the common case, checked without a call of our own

    def clean(headers: CIMultiDict[str]) -> CIMultiDict[str]:
        if NEVER_STORED.isdisjoint(map(str.lower, headers)):
            return headers
        return CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in NEVER_STORED)

    headers = clean(response.headers)
    history = tuple(h if clean(h.headers) is h.headers else dataclasses.replace(h, headers=clean(h.headers))
                    for h in response.history)
    if headers is response.headers and all(a is b for a, b in zip(history, response.history, strict=True)):
        return response
    return dataclasses.replace(response, headers=headers, history=history)


def to_bytes(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else value


def cache_path(cache_name: str | Path, use_cache_dir: bool = False, use_temp: bool = False) -> Path:
    """Where a file-based cache lives: ``cache_name`` as given, or under the user cache dir
    or the temp dir if asked (ignored for an absolute path), as requests-cache does. A
    relative name never leaves the directory it is resolved against: ValueError."""
    if use_cache_dir and use_temp:
        raise ValueError("use_cache_dir and use_temp are mutually exclusive")
    path = Path(cache_name).expanduser()
    if path.is_absolute() or not (use_cache_dir or use_temp):
        return path.absolute()
    if use_cache_dir:
        from platformdirs import user_cache_dir

        base = Path(user_cache_dir()).absolute()
    else:
        base = Path(tempfile.gettempdir()).absolute()
    resolved = Path(os.path.normpath(base / path))
    if resolved == base or base not in resolved.parents:
        where = "use_cache_dir" if use_cache_dir else "use_temp"
        raise ValueError(f"cache_name={str(cache_name)!r} with {where}=True resolves to "
                         f"{str(resolved)!r}, outside {str(base)!r}: name a path inside it")
    return resolved


# ``backend.serializer`` is the backend's Serializer, not the setting it was built from.
_SETTING_ATTRS = CacheSettings.NAMES - {"serializer"}


class _ThenChanged(Generic[T]):
    """A storage call, then ``changed()`` once it has completed. Closed without being
    awaited (the gate did not admit it), it closes the call: nothing changed."""

    __slots__ = ("call", "changed")

    def __init__(self, call: Awaitable[T], changed: Callable[[], None]) -> None:
        self.call, self.changed = call, changed

    def __await__(self) -> Generator[Any, None, T]:
        try:
            return (yield from self.call.__await__())
        finally:
            self.changed()

    def close(self) -> None:
        _discard(self.call)


class _SharedRead:
    """A read under way that concurrent lookups of its key share (``_read_shared``); its
    ``future`` is made by the first lookup that waits for it."""

    __slots__ = ("future",)

    def __init__(self) -> None:
        self.future: asyncio.Future[tuple[bytes | None, str] | None] | None = None


class CacheBackend:
    """Settings + serializer + two storages. ``CacheBackend()`` keeps everything in memory.

    Args:
        cache_name: Name of the cache (a file, a database, a namespace... per backend).
        max_entries: In-memory only: keep at most this many responses, evicting the
            least recently used.
        **kwargs: Any cache setting (see :class:`CacheSettings`).
    """

    def __init__(self, cache_name: str = "aiohttp-cache", *, max_entries: int | None = None,
                 **kwargs: Any) -> None:
        from .memory import MemoryCache

        if max_entries is not None and type(self) is not CacheBackend:
            raise TypeError(f"max_entries is only supported by the in-memory CacheBackend, "
                            f"not {type(self).__name__}")
        self.name = cache_name
        self.settings = CacheSettings(**kwargs)
        # (A body over INLINE_LIMIT is stored as an envelope item, in parts, whatever the
        # format: see serializers/__init__.py.)
        self.serializer = Serializer(
            get_format(self.settings.serializer), self.settings.secret_key, self.settings.salt,
            large_body=INLINE_LIMIT,
        )
        responses = MemoryCache(max_entries=max_entries)
        responses.encode = lambda response: self.serializer.dumps(response, response.cache_key)
        self.raw_responses: BaseCache = responses
        self.raw_redirects: BaseCache = MemoryCache(max_entries=max_entries)
        # Per-key coalescing of concurrent misses and background refreshes (see driver.py).
        self.coalescing = Coalescing()
        self.background: set[asyncio.Task[Any]] = set()
        self.stats = CacheStats(self)  # counts them (metrics/stats.py)
        self.events = EventHub(self.stats)  # one CacheEvent per finished request
        self._identities: Memo[tuple[Any, ...], tuple[str, CachedRequest]] = Memo(_IDENTITY_MEMO_SIZE)
        self._urls: Memo[tuple[Any, str], Any] = Memo(_IDENTITY_MEMO_SIZE)  # sessions' URL memo
        self._decoded: dict[str, tuple[bytes, CachedResponse]] = {}
        self._decoded_bytes = 0
        # Reads under way, shared by concurrent lookups of the same key (see _read_shared).
        self._reads: dict[tuple[asyncio.AbstractEventLoop, str, bool], _SharedRead] = {}
        self.clock: Callable[[], datetime] = utcnow  # replaceable: tests use a fake clock
        # identify, bound once: the plan of every request holds it (the session's plan
        # memo keeps a plan per URL: one bound method each, otherwise)
        self.identify_bound: Callable[..., tuple[str, CachedRequest]] = self.identify
        self.health = Health(repr(self), self.settings)
        """Circuit state and fault counters of the storage calls (see ``backends/health.py``)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    @property
    def cache_name(self) -> str:
        return self.name

    # Both peers' backends carry their settings as attributes: backend.expire_after = 60.
    # Each is a property (see _setting_property, below the class): no __getattr__ or
    # __setattr__ hook, which would slow every attribute of the backend, read or set.
    if TYPE_CHECKING:
        def __getattr__(self, name: str) -> Any: ...  # (the settings, as typed before)

    # -- cache_disabled() / aiohttp-client-cache's ``cache.disabled = True`` ------------
    @property
    def disabled(self) -> bool:
        """True where requests bypass this backend (in the current task or thread)."""
        return id(self) in _disabled.get()

    @disabled.setter
    def disabled(self, value: bool) -> None:
        current = _disabled.get()
        _disabled.set(current | {id(self)} if value else current - {id(self)})

    @contextmanager
    def disabled_here(self) -> Iterator[None]:
        """``disabled`` within this block, then as it was."""
        token = _disabled.set(_disabled.get() | {id(self)})
        try:
            yield
        finally:
            _disabled.reset(token)

    @property
    def inflight(self) -> dict[tuple[asyncio.AbstractEventLoop, str], Lead]:
        """Keys with an origin request under way (a leader and maybe waiters)."""
        return self.coalescing.inflight

    # -- storages -------------------------------------------------------------------
    @property
    def responses(self) -> ResponsesView:
        """The responses storage as the peers show it: ``key -> CachedResponse``.
        Assigning a storage (``self.responses = MyCache()``) sets ``raw_responses``."""
        from .views import ResponsesView

        return ResponsesView(self)

    @responses.setter
    def responses(self, storage: BaseCache) -> None:
        self.raw_responses = storage

    @property
    def redirects(self) -> RedirectsView:
        """The redirects storage as the peers show it: ``alias key -> target key``."""
        from .views import RedirectsView

        return RedirectsView(self)

    @redirects.setter
    def redirects(self, storage: BaseCache) -> None:
        self.raw_redirects = storage

    # -- keys ---------------------------------------------------------------------
    def identify(self, request: CachedRequest, keep: bool = True) -> tuple[str, CachedRequest]:
        """The cache key of ``request`` and the request as it may be stored.

        Memoized: a hot URL is normalised once, not on every hit. The memo key holds
        every input of the result, settings included, so a settings change is a new entry.
        ``keep=False``: neither looked up nor kept (the caller keeps it: the session's
        plan memo). A ``key_fn`` is called for every request, as requests-cache does: it
        may read more than the request (a library version, a tenant in a context variable).
        """
        s = self.settings
        if not keep and s.key_fn is None:  # (the caller keeps it: nothing looked up)
            plain = plain_identity(request)
            if plain is not None:
                return plain
        memo_key = None
        if keep and s.key_fn is None:
            memo_key = (request.method, request.url, request.body, tuple(request.headers.items()),
                        request.follow_redirects, request.verify, s.ignored_params, s.match_headers,
                        s.key_fn, s.credential_names)
            found = self._identities[memo_key]
            if found is not None:
                return found
        secret = s.secret_key[0] if s.secret_key else None
        material, stored = normalize_request(request, s.ignored_params, s.match_headers, secret,
                                             s.credential_names)
        if s.key_fn is not None:
            key = s.key_fn(request, ignored_params=s.ignored_params, match_headers=s.match_headers)
            if not isinstance(key, str) or not key:
                raise TypeError(f"key_fn must return a non-empty str, not {key!r}")
        else:
            key = hash_key(material)
        if memo_key is not None:
            self._identities = self._identities.with_entry(memo_key, (key, stored))
        return key, stored

    def create_key(self, request: CachedRequest | str, url: Any = None, **kwargs: Any) -> str:
        """The key of ``request``; or, as aiohttp-client-cache calls it, of the request
        ``create_key(method, url, params=..., data=..., json=..., headers=...)``."""
        if not isinstance(request, CachedRequest):
            from ..cache_keys import request_for

            request = request_for(request, url, kwargs.get("params"), kwargs.get("data"),
                                  kwargs.get("json"), kwargs.get("headers"),
                                  kwargs.get("json_serialize") or self.settings.json_serialize)
        return self.identify(request)[0]

    # -- the one gate to storage --------------------------------------------------
    def _guard(self, op: str, call: Awaitable[T], default: T, kind: Kind = Kind.READ) -> Awaitable[T]:
        """Run one storage call under its deadline and the circuit breaker (await the
        result). A failure or a timeout is counted, logged (rate-limited) and ``default``
        returned (fail-open), or raised with ``strict=True``; with the circuit open,
        storage is not called at all. A configuration error is always raised: falling
        back to the origin would hide it. (A plain function: no coroutine layer of its own.)"""
        if self.raw_responses.in_process and self.raw_redirects.in_process:
            return self.health.call_inline(op, call, default, kind)
        if kind is Kind.READ:
            return self.health.read(op, call, default)
        return self.health.call(op, call, default, kind)

    async def _guard_write(self, op: str, storage: BaseCache, call: Awaitable[None]) -> bool:
        """A write: the caller waits for it at most ``backend_timeout``, then it finishes in
        the background (awaited by :meth:`wait_for_refreshes` and :meth:`close`). True if
        it was written; False if it failed, was refused (circuit open, budget spent) or was
        still under way when the wait ended (it may yet land: the caller cannot count on it)."""
        if storage.in_process:
            done = await self._guard(op, call, _DROPPED, Kind.WRITE)
        else:
            done = await self.health.call(op, call, _DROPPED, Kind.WRITE, self.background)
        return done is not _DROPPED

    async def _guard_iter(self, op: str, iterator: AsyncIterator[T]) -> AsyncIterator[T]:
        """``iterator`` with each step through the gate (a maintenance deadline per step).
        A failed step ends the iteration early (fail-open), or raises with ``strict``."""
        try:
            while True:
                item = await self._guard(op, anext(iterator, _END), _END, Kind.MAINTENANCE)
                if item is _END:
                    return
                yield item
        finally:
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()

    # -- responses ------------------------------------------------------------------
    async def get_response(self, key: str, follow_redirects: bool = True, *,
                           stream: bool = False) -> Any:
        """The stored response for ``key`` (following a stored redirect) as a replayed
        response, or None: aiohttp-client-cache's ``get_response``, so ``resp.status``,
        ``resp.headers``, ``resp.url``, ``resp.is_expired``, ``await resp.read()`` /
        ``text()`` / ``json()`` all work. From an in-process storage, a response a user
        wrote through ``backend.responses`` is handed back as the very object written (as
        aiohttp-client-cache's in-memory cache does), unless replaced since. The stored
        record itself: :meth:`get_record`."""
        record = await self.get_record(key, follow_redirects, stream=stream)
        if record is None:
            return None
        written = getattr(self.raw_responses, "written_object", None)
        found = written(record.cache_key, record) if written is not None else None
        if found is not None and not isinstance(found, CachedResponse):
            return found
        return replay_response(record)

    def read_inline(self, key: str, loop: asyncio.AbstractEventLoop | None = None) -> CachedResponse | None:
        """The response at ``key`` when it can be had without waiting: kept decoded in
        this process, or whole bytes the storage reads at once (:meth:`BaseCache.read_now`,
        verified here as always). None for anything else (nothing there, an alias, a large
        item, a busy file): :meth:`get_record` then reads it the full way, within the gate.
        ``loop``: whose breaker and connections, when called off that loop's thread."""
        storage = self.raw_responses
        kind = type(storage)
        if getattr(kind, "_fast_read", None) is not kind.read:  # ``read`` replaced: its way
            return None
        if storage.holds_objects:
            value = storage.get_item(key)  # type: ignore[attr-defined]
            if not isinstance(value, CachedResponse):
                return None
            return value if value.cache_key == key else dataclasses.replace(value, cache_key=key)
        if kind.read_now is BaseCache.read_now:  # a storage that cannot (a network database)
            return None
        if self.health.breaker(loop).reads.state is not CircuitState.CLOSED:
            return None  # the gate decides each call (probes) until the backend answers again
        data = storage.read_now(key, loop)
        if data is None:
            return None
        try:
            return self._decode(key, data)
        except DeserializationError:
            return None  # get_record() reads it again and discards it

    async def get_record(self, key: str, follow_redirects: bool = True, *,
                         stream: bool = False) -> CachedResponse | None:
        """The stored record for ``key`` (following a stored redirect), or None.

        An item that cannot be used (corrupt, tampered, stored at another key, unknown
        format) is deleted and reported as a miss. An item is verified before it is used:
        a small one whole; a large one's head first, then its body as it is read, against
        the digest in the verified head. With ``stream=True`` a large body is left in
        storage: the response's ``stored_body`` reads it (its last chunk is handed over
        only once the whole body has checked out) and must be closed.
        """
        storage = self.raw_responses
        # in-process: the decoded response itself, no IO (unless ``read`` was replaced)
        kind = type(storage)
        if storage.holds_objects and getattr(kind, "_fast_read", None) is kind.read:
            value = storage.get_item(key)  # type: ignore[attr-defined]
            if value is None and follow_redirects:
                target = await self.get_redirect(key)
                if target is not None:
                    key, value = target, storage.get_item(target)  # type: ignore[attr-defined]
            if value is None:
                return None
            if isinstance(value, CachedResponse):
                return value if value.cache_key == key else dataclasses.replace(value, cache_key=key)
            data: bytes | None = value
        else:
            with request_budget():  # a hung backend costs one deadline, not one per call
                found, key = await self._read_shared(key, follow_redirects)
                if found is not None and type(found) is not bytes and isinstance(found, ItemReader):
                    if found.whole is None:  # too large to read whole
                        return await self._large(key, found, stream)
                    found = found.whole
                data = found
        if data is None:
            return None
        try:
            return self._decode(key, data)
        except DeserializationError as e:  # whatever a user's serializer raises: unusable
            await self._discard(key, e)
            return None

    def read_hot(self, key: str) -> Awaitable[CachedResponse | None]:
        """``get_record(key, stream=True)``, the lookup's first read: a storage with a
        cheaper way to read a key it has read before (a hot key) overrides this. (A plain
        function: no coroutine layer of its own.)"""
        return self.get_record(key, stream=True)

    def _decode(self, key: str, data: bytes) -> CachedResponse:
        """``data`` loaded (verified: checksum or signature bound to the key); the very
        bytes decoded before are not decoded again. Raises DeserializationError."""
        decoded = self._decoded.get(key)
        if decoded is not None and decoded[0] == data:
            return decoded[1]
        response = self.load(key, data)
        if len(data) <= _DECODED_MAX_BYTES:
            if len(self._decoded) >= _DECODED_SIZE or self._decoded_bytes >= _DECODED_BUDGET:
                # start over rather than evict one: no iteration, so safe while another
                # thread (the sync layer's loop) uses the same backend
                self._decoded, self._decoded_bytes = {}, 0
            self._decoded[key] = (data, response)
            self._decoded_bytes += len(data)  # (a replaced entry counts twice: a bound, not a tally)
        return response

    async def _read_shared(self, key: str, follow_redirects: bool) -> tuple[bytes | ItemReader | None, str]:
        """:meth:`_read_item`, shared by the lookups of one key that run at the same time on
        one loop: a hot key read by many tasks at once costs one storage round trip, not
        one per task. What the first read found is shared: an item read whole, or nothing
        (a miss, or a read that failed open within its deadline, so a sick backend still
        costs each request at most one deadline). A large item (each reader reads its
        own) or a read that raised or was cancelled: the others read on their own. Only
        while the reads circuit is closed: a probe of a sick backend is not waited for."""
        loop = asyncio.get_running_loop()
        if self.health.breaker(loop).reads.state is not CircuitState.CLOSED:
            return await self._read_item(key, follow_redirects)  # the gate decides each call
        slot = (loop, key, follow_redirects)
        reads = self._reads
        entry = reads.get(slot)
        if entry is not None:
            pending = entry.future
            if pending is None:  # the first waiter makes the future (most reads have none)
                pending = entry.future = loop.create_future()
            shared = await asyncio.shield(pending)
            if shared is not None:
                return shared
            return await self._read_item(key, follow_redirects)
        entry = reads[slot] = _SharedRead()
        shared = None
        try:
            found, at = await self._read_item(key, follow_redirects)
            if found is None or isinstance(found, bytes):
                shared = (found, at)
            elif found.whole is not None:
                shared = (found.whole, at)
            return found, at
        finally:
            self._shared(slot, entry, shared)

    def _shared(self, slot: tuple[asyncio.AbstractEventLoop, str, bool], entry: _SharedRead,
                shared: tuple[bytes | None, str] | None) -> None:
        """The shared read ``entry`` at ``slot`` ended: what it found (None: each waiter
        reads on its own) goes to its waiters; a lookup that starts now reads anew."""
        reads = self._reads
        if reads.get(slot) is entry:  # (a write may have let go of it already)
            reads.pop(slot, None)
        if entry.future is not None:
            entry.future.set_result(shared)

    def _changed(self, keys: Iterable[str] | None) -> None:
        """``keys`` (None: any key) changed in storage: a lookup that starts now must not
        join a read that began before, which may find what was there before (a key just
        stored read as a miss: a second origin request; a deleted entry served)."""
        reads = self._reads
        if reads:
            changed = None if keys is None else set(keys)
            for slot in list(reads):
                if changed is None or slot[1] in changed:
                    reads.pop(slot, None)

    def _then_changed(self, call: Awaitable[T], keys: Iterable[str] | None) -> Awaitable[T]:
        """``call`` (a write or delete), then :meth:`_changed` once it has completed (also
        when it completes in the background, after its caller stopped waiting)."""
        return _ThenChanged(call, lambda: self._changed(keys))

    async def _read_item(self, key: str, follow_redirects: bool) -> tuple[bytes | ItemReader | None, str]:
        """The item stored at ``key``, else (following a redirect alias) at its target, with
        the key it was found at: its bytes, or a reader for an item read in parts (see
        :meth:`BaseCache.open_read`). A storage that can do both in one round trip
        overrides this (a miss then costs one read)."""
        found = await self._guard("read", self.raw_responses.open_read(key), None)
        if found is None and follow_redirects:
            target = await self.get_redirect(key)
            if target is not None:
                key = target
                found = await self._guard("read", self.raw_responses.open_read(key), None)
        return found, key

    async def _discard(self, key: str, error: object) -> None:
        logger.warning("%r: discarding unusable item %s: %s", self, key, error)
        await self._guard("delete", self._then_changed(self.raw_responses.delete(key), (key,)), None,
                          Kind.DELETE)

    async def _large(self, key: str, reader: ItemReader, stream: bool) -> CachedResponse | None:
        """A large item: its head verified and decoded now; its body left in storage
        (``stream``) or read now, checked against the digest in the head."""
        body = StoredBodyReader(self, key, reader)
        try:
            head = await body.head()
            if isinstance(head, str):  # "whole": an item in a format read whole (pickle, an older JSON item)
                data = await body.item()
                return None if data is None else self.load(key, data)
        except DeserializationError as e:
            await body.close()
            await self._discard(key, e)
            return None
        if head is None:  # the storage failed (logged)
            await body.close()
            return None
        response = dataclasses.replace(head.response, cache_key=key)
        if stream and head.body_length:
            return dataclasses.replace(response, stored_body=body)
        try:
            return dataclasses.replace(response, body=await body.read())
        except StoredBodyError:
            return None  # logged; a corrupt body was discarded
        finally:
            await body.close()

    def load(self, key: str, data: Any) -> CachedResponse:
        """The response stored as ``data`` at ``key``; DeserializationError if it is none."""
        if not isinstance(data, bytes):
            raise DeserializationError(f"a stored response is bytes, not {type(data).__name__}")
        try:
            response = self.serializer.loads(data, key)
        except DeserializationError:
            raise
        except Exception as e:  # a user's serializer: whatever it raises, the item is unusable
            raise DeserializationError(f"{type(e).__name__}: {e}") from e
        return response if response.cache_key == key else dataclasses.replace(response, cache_key=key)

    def dump(self, key: str, response: CachedResponse) -> bytes:
        """The stored form of ``response`` at ``key``."""
        return self.serializer.dumps(response, key)

    async def save_response(self, response: Any, cache_key: str | None = None,
                            expires: datetime | None = None) -> None:
        """Store ``response`` under ``cache_key`` (default: its request's key, the peers'
        argument order), with ``expires`` if given. Set-Cookie is never stored: replayed,
        it would hand one user's session to the next.

        ``response`` is a stored record (a session saves those), or one a user hands in: a
        replayed or a live response (an aiohttp one is read first), stored as a session
        stores it, credentials redacted, with its redirect hops aliased to it, as both
        peers do."""
        by_user = not isinstance(response, CachedResponse) or cache_key is None
        if not isinstance(response, CachedResponse):
            read = getattr(response, "read", None)
            if getattr(response, "_body", b"") is None and callable(read):  # aiohttp, not read
                await read()
        if by_user or expires is not None:
            response = as_record(response, expires)
        key = cache_key or self.create_key(response.request)
        if by_user:
            ignored, names = self.settings.ignored_params, self.settings.credential_names
            response = dataclasses.replace(
                response, request=self.identify(response.request)[1],
                url=redact_url(response.url, ignored, names),
                history=tuple(dataclasses.replace(hop, url=redact_url(hop.url, ignored, names))
                              for hop in response.history))
        response = without_set_cookie(response)
        if response.cache_key != key:
            response = dataclasses.replace(response, cache_key=key)
        # Saved by hand already expired, it is kept for revalidation as if expiring now
        # (a TTL from a past expiry would drop it at once).
        keep_until = (max(response.expires, utcnow()) if by_user and response.expires
                      else response.expires)
        await self.save_response_at(response, [key], keep_until)
        if by_user and not _has_credentials(response.request):
            # (A hop alias carries no credentials: it must not lead to a user's response.)
            for hop in response.history:
                await self.save_redirect(self.create_key(CachedRequest(hop.request.method, hop.url)),
                                         key)

    async def save_response_at(self, response: CachedResponse, keys: Sequence[str],
                               keep_until: datetime | object | None = _AS_EXPIRES) -> bool:
        """Store the record ``response`` under each of ``keys`` (until ``keep_until``:
        default, its expiry). A large body, in memory or left in storage, is written in
        parts, in one pass for all keys (a body left in storage is read before any key is
        replaced: afterwards, read it again from the new item). Fail-open: True if it was
        stored at every key, False if a write failed or was dropped (see :meth:`_guard_write`)."""
        response = without_set_cookie(response)
        until = response.expires if keep_until is _AS_EXPIRES else keep_until
        assert until is None or isinstance(until, datetime)
        if self.put_now(response, keys, until):
            return True
        stored = response.stored_body
        storage = self.raw_responses
        if stored is None and (len(response.body) <= INLINE_LIMIT or not self.serializer.streams):
            written = True
            for key in keys:
                if response.cache_key != key:
                    response = dataclasses.replace(response, cache_key=key)
                if not await self._guard_write("write", storage, self._then_changed(
                        storage.write(key, self.dump(key, response), until), (key,))):
                    written = False
            return written
        writer = await self.open_response(dataclasses.replace(response, body=b"", stored_body=None), keys)
        try:
            if stored is not None:
                async for chunk in stored.chunks():
                    await writer.write(chunk)
            else:
                with memoryview(response.body) as view:
                    for start in range(0, len(view), PART_SIZE):
                        await writer.write(view[start : start + PART_SIZE])
            return await writer.commit()
        except StoredBodyError as e:  # the body we copy from went away: nothing stored
            if self.settings.strict:
                raise
            logger.warning("%r: write failed, continuing without the cache: %s", self, e)
            return False
        finally:
            await writer.abort()  # a no-op once committed

    def put_now(self, response: CachedResponse, keys: Sequence[str],
                until: datetime | object | None = _AS_EXPIRES) -> bool:
        """:meth:`save_response_at` done at once when nothing can wait: the responses
        storage keeps objects in this process (memory) and the body is whole and small.
        True if stored; False if not tried (then await :meth:`save_response_at`).
        ``response`` has no Set-Cookie (see :func:`without_set_cookie`)."""
        storage = self.raw_responses
        if (not storage.holds_objects or storage.encode is None  # type: ignore[attr-defined]
                or response.stored_body is not None
                or (len(response.body) > INLINE_LIMIT and self.serializer.streams)):
            return False
        if until is _AS_EXPIRES:
            until = response.expires
        for key in keys:
            if response.cache_key != key:
                response = dataclasses.replace(response, cache_key=key)
            storage.put_item(key, response, until)  # type: ignore[attr-defined]
            self._changed((key,))
        return True

    async def open_response(self, response: CachedResponse, keys: Sequence[str]) -> ResponseWriter:
        """Store ``response`` at ``keys`` as its body arrives: ``write()`` each chunk, then
        ``commit()`` once it is complete, or ``abort()`` (see :class:`ResponseWriter`).
        ``response.body`` is not read: the chunks are the body. Set-Cookie is dropped."""
        return ResponseWriter(self, without_set_cookie(response), keys)

    async def get_redirect(self, alias: str) -> str | None:
        """The key a redirect alias points at, or None (an unusable alias is deleted)."""
        data = await self._guard("read redirect", self.raw_redirects.read(alias), None)
        if data is None:
            return None
        try:
            return self.serializer.loads_redirect(alias, data)
        except DeserializationError as e:
            logger.warning("%r: discarding unusable redirect alias %s: %s", self, alias, e)
            await self._guard("delete redirect", self.raw_redirects.delete(alias), None, Kind.DELETE)
            return None

    async def save_redirect(self, alias: str, key: str) -> None:
        """Make a lookup of ``alias`` (a redirect hop's key) find the response at ``key``."""
        data = self.dump_redirect(alias, key)
        await self._guard_write("write redirect", self.raw_redirects,
                                self._then_changed(self.raw_redirects.write(alias, data), (alias,)))

    def dump_redirect(self, alias: str, key: str) -> bytes:
        """The stored form of the alias ``alias`` -> ``key``."""
        return self.serializer.dumps_redirect(alias, key)

    def load_redirect(self, alias: str, data: Any) -> str | None:
        """The key the alias stored as ``data`` points at; None if it is unusable (a text
        value a user stored there is shown as it is)."""
        if isinstance(data, str):
            return data
        try:
            return self.serializer.loads_redirect(alias, data)
        except DeserializationError:
            return None

    async def delete(self, *keys: str, urls: Iterable[str] = (), expired: bool = False,
                     methods: Iterable[str] = ("GET", "HEAD")) -> None:
        """Delete responses by key, by URL (for each of ``methods``), and/or all expired.
        The aliases of a deleted response's redirect hops go with it."""
        targets, urls = set(keys), list(urls)
        for url in urls:
            targets.update(self.create_key(CachedRequest(m, url, follow_redirects=follow))
                           for m in methods for follow in (True, False))
        if targets:  # by URL: the caller's maintenance; by key: the request path (invalidation)
            aliases = await self._hop_aliases(targets)
            await self._guard("delete", self._then_changed(self.raw_responses.bulk_delete(targets), targets),
                              None, Kind.MAINTENANCE if urls else Kind.DELETE)
            if aliases:
                await self._guard("delete redirects", self._then_changed(
                    self.raw_redirects.bulk_delete(aliases), aliases), None, Kind.DELETE)
        if expired:
            removed = await self._guard("delete expired", self._then_changed(
                self.raw_responses.delete_expired(utcnow()), None), None, Kind.MAINTENANCE)
            if removed is None:  # the storage keeps no expiry: find them by decoding
                expired_keys = await self._expired_keys()
                await self._guard("delete", self._then_changed(
                    self.raw_responses.bulk_delete(expired_keys), expired_keys), None, Kind.MAINTENANCE)
            await self.prune_redirects()

    async def _hop_aliases(self, keys: Iterable[str]) -> list[str]:
        """The redirect aliases the responses at ``keys`` were saved with (by their hops)."""
        aliases = []
        for key in keys:
            response = await self.get_record(key, follow_redirects=False)
            for hop in response.history if response is not None else ():
                alias = self.create_key(CachedRequest(hop.request.method, hop.url))
                if await self.get_redirect(alias) == key:
                    aliases.append(alias)
        return aliases

    async def _expired_keys(self) -> list[str]:
        expired = []
        async for key in self._guard_iter("list keys", self.raw_responses.iter_keys()):
            data = await self._guard("read", self.raw_responses.read(key), None, Kind.MAINTENANCE)
            if data is None:
                continue
            try:
                if self.serializer.loads(data, key).is_expired:
                    expired.append(key)
            except DeserializationError:
                expired.append(key)  # unusable anyway
        return expired

    async def prune_redirects(self) -> None:
        """Delete the aliases whose response is gone. (A dangling alias is only a miss, so
        plain deletes leave them; ``delete(expired=True)`` sweeps them too.)"""
        dangling = []
        async for alias in self._guard_iter("list redirects", self.raw_redirects.iter_keys()):
            data = await self._guard("read redirect", self.raw_redirects.read(alias), None,
                                     Kind.MAINTENANCE)
            if data is None:
                continue  # gone meanwhile, or the read failed: keep it for the next pass
            try:
                target: str | None = self.serializer.loads_redirect(alias, data)
            except DeserializationError:
                target = None
            found = None if target is None else await self._guard(
                "contains", self.raw_responses.contains(target), None, Kind.MAINTENANCE)
            if target is None or found is False:
                dangling.append(alias)
        if dangling:
            await self._guard("delete redirects", self.raw_redirects.bulk_delete(dangling), None,
                              Kind.MAINTENANCE)

    # aiohttp-client-cache spellings
    async def delete_url(self, url: Any, method: str = "GET", **kwargs: Any) -> None:
        """Delete the response for this request (with ``params=``, ``json=``... if given;
        a bare URL drops its GET and HEAD entries)."""
        if method.upper() == "GET" and not kwargs:
            await self.delete(urls=[str(url)])
        else:
            await self.delete(self.create_key(method, str(url), **kwargs))

    async def delete_expired_responses(self) -> None:
        await self.delete(expired=True)

    async def has_url(self, url: Any, method: str = "GET", **kwargs: Any) -> bool:
        """Is there a response for this request (``params=``, ``json=``... as for a
        request)?"""
        key = self.create_key(method, str(url), **kwargs)
        return bool(await self._guard("contains", self.raw_responses.contains(key), False))

    def get_urls(self) -> AsyncResults[str]:
        """Redacted URLs of all stored responses: ``async for url in backend.get_urls()``,
        or ``await backend.get_urls()`` for a list."""
        return AsyncResults(self._iter_urls())

    async def _iter_urls(self) -> AsyncIterator[str]:
        async for key in self._guard_iter("list keys", self.raw_responses.iter_keys()):
            data = await self._guard("read", self.raw_responses.read(key), None, Kind.MAINTENANCE)
            try:
                if data is not None:
                    yield redact_url(self.load(key, data).url,
                                     credential_names=self.settings.credential_names)
            except DeserializationError:
                continue

    async def clear(self) -> None:
        """Delete every response and redirect. An explicit bulk operation: it runs in steps
        (see :meth:`BaseCache.clear_steps`), each bounded by ``write_timeout``, so a large
        cache is cleared whole while a hung backend still fails (open) at its first step."""
        try:
            for storage in (self.raw_responses, self.raw_redirects):
                async for _ in self._guard_iter("clear", storage.clear_steps()):
                    pass
        finally:
            self._changed(None)

    async def wait_for_refreshes(self) -> None:
        """Wait for the stale-while-revalidate refreshes and the writes still finishing in
        the background on this loop (each bounded by its deadline). (Another loop's end on
        their own: their storages fail open once closed.)"""
        loop = asyncio.get_running_loop()
        mine = [task for task in self.background if task.get_loop() is loop]
        if mine:
            await asyncio.gather(*mine, return_exceptions=True)

    async def close(self) -> None:
        """Wait for this loop's background refreshes, then close the storages."""
        await self.wait_for_refreshes()
        await self._guard("close", self.raw_responses.close(), None, Kind.CLOSE)
        await self._guard("close", self.raw_redirects.close(), None, Kind.CLOSE)


def _setting_property(name: str) -> property:
    def get(self: CacheBackend) -> Any:
        return getattr(self.settings, name)

    def put(self: CacheBackend, value: Any) -> None:
        setattr(self.settings, name, value)

    return property(get, put, doc=f"``settings.{name}``")


for _name in sorted(_SETTING_ATTRS):
    setattr(CacheBackend, _name, _setting_property(_name))


def _has_credentials(request: CachedRequest) -> bool:
    return any(name.lower() in CREDENTIAL_HEADERS for name in request.headers)


def replay_response(record: CachedResponse) -> Any:
    """``record`` as the response ``get_response`` hands out; the response layer (which
    imports the backends, not the reverse) puts its replayed response here."""
    return record


_disabled: ContextVar[frozenset[int]] = ContextVar("aiocache_http_disabled", default=frozenset())

__all__ = ["AsyncResults", "BaseCache", "CacheBackend", "ConfigurationError", "create_key"]
