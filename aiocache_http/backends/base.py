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
import logging
import os
import tempfile
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from multidict import CIMultiDict

from ..coalescing import Coalescing
from ..events import EventHub
from ..metrics.stats import CacheStats
from ..models import CachedRequest, CachedResponse, utcnow
from ..policy.freshness import NEVER_STORED
from ..policy.keys import create_key, hash_key, normalize_request, redact_url
from ..policy.settings import CacheSettings
from ..serializers import DeserializationError, Serializer, get_format
from .health import Health, Kind, request_budget

if TYPE_CHECKING:
    from .views import RedirectsView, ResponsesView

logger = logging.getLogger("aiocache_http")

T = TypeVar("T")
_IDENTITY_MEMO_SIZE = 4096
# Hot entries, decoded: a hit whose stored bytes are the very bytes decoded last time
# (checked in full: a changed, renewed or tampered item is decoded and verified again)
# skips the decoding. Immutable responses make sharing them safe.
_DECODED_SIZE = 256
_DECODED_MAX_BYTES = 64 * 1024
_END: Any = object()


class AsyncResults(Generic[T]):
    """The result of ``keys()`` / ``values()``: iterate it with ``async for``, or
    ``await`` it for a list (both peers' styles work)."""

    __slots__ = ("_iterator",)

    def __init__(self, iterator: AsyncIterator[T]) -> None:
        self._iterator = iterator

    def __aiter__(self) -> AsyncIterator[T]:
        return self._iterator

    async def _collect(self) -> list[T]:
        return [item async for item in self._iterator]

    def __await__(self) -> Generator[Any, None, list[T]]:
        return self._collect().__await__()


class BaseCache(ABC):
    """Async key -> bytes storage. A ``str`` value is stored UTF-8 encoded.

    ``expires`` passed to :meth:`write` is the entry's HTTP expiry; storages that can
    expire items themselves (Redis TTL, Mongo TTL index...) use it, others may ignore it.
    Subclasses implement the abstract methods; the rest have generic defaults that a
    subclass overrides when its database can do better.
    """

    holds_objects = False
    """True for the in-process storage, which keeps decoded responses (see memory.py)."""
    in_process = False
    """True when calls never wait on IO (the gate then never moves a write to the background)."""

    @abstractmethod
    async def read(self, key: str) -> bytes | None: ...

    @abstractmethod
    async def write(self, key: str, value: bytes | str, expires: datetime | None = None) -> None:
        ...

    @abstractmethod
    async def delete(self, key: str) -> None: ...

    @abstractmethod
    def iter_keys(self) -> AsyncIterator[str]: ...

    @abstractmethod
    async def size(self) -> int: ...

    @abstractmethod
    async def clear(self) -> None: ...

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

    async def bulk_write(self, items: Iterable[tuple[str, bytes | str, datetime | None]]) -> None:
        """Write ``(key, value, expires)`` items (in one round trip where the database can)."""
        for key, value, expires in items:
            await self.write(key, value, expires)

    def keys(self) -> AsyncResults[str]:
        return AsyncResults(self.iter_keys())

    def values(self) -> AsyncResults[bytes]:
        return AsyncResults(self.iter_values())

    async def delete_expired(self, now: datetime) -> int | None:
        """Delete items whose ``expires`` is before ``now`` and return how many, or None if
        this storage does not record expiry (the backend then decodes items to find them)."""
        return None

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections this storage opened (not ones passed in by the user)."""


class ConfigurationError(Exception):
    """A backend that cannot work as configured (a file that is not a database, an option
    the server does not support...). Raised even where runtime faults fail open."""


def without_set_cookie(response: CachedResponse) -> CachedResponse:
    """``response`` (and its redirect hops) without Set-Cookie headers; itself if none."""
    def clean(headers: CIMultiDict[str]) -> CIMultiDict[str]:
        if not any(name.lower() in NEVER_STORED for name in headers):
            return headers
        return CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in NEVER_STORED)

    headers = clean(response.headers)
    history = [h if clean(h.headers) is h.headers else dataclasses.replace(h, headers=clean(h.headers))
               for h in response.history]
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
        self.serializer = Serializer(
            get_format(self.settings.serializer), self.settings.secret_key, self.settings.salt
        )
        responses = MemoryCache(max_entries)
        responses.encode = lambda response: self.serializer.dumps(response, response.cache_key)
        self.raw_responses: BaseCache = responses
        self.raw_redirects: BaseCache = MemoryCache(max_entries)
        # Per-key coalescing of concurrent misses and background refreshes (see driver.py).
        self.coalescing = Coalescing()
        self.background: set[asyncio.Task[Any]] = set()
        self.events = EventHub()  # one CacheEvent per finished request
        self.stats = CacheStats(self)  # counts them (metrics/stats.py)
        self.events.subscribe(self.stats.record)
        self._identities: dict[tuple[Any, ...], tuple[str, CachedRequest]] = {}
        self._urls: dict[tuple[Any, str], Any] = {}  # a session's URL memo (session.py)
        self._decoded: dict[str, tuple[bytes, CachedResponse]] = {}
        self.clock: Callable[[], datetime] = utcnow  # replaceable: tests use a fake clock
        self.health = Health(repr(self), self.settings)
        """Circuit state and fault counters of the storage calls (see ``backends/health.py``)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    @property
    def inflight(self) -> dict[tuple[asyncio.AbstractEventLoop, str], asyncio.Future[Any]]:
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
    def identify(self, request: CachedRequest) -> tuple[str, CachedRequest]:
        """The cache key of ``request`` and the request as it may be stored.

        Memoized: a hot URL is normalised once, not on every hit. The memo key holds
        every input of the result, settings included, so a settings change is a new entry.
        """
        s = self.settings
        memo_key = (request.method, request.url, request.body, tuple(request.headers.items()),
                    request.follow_redirects, s.ignored_params, s.match_headers, s.key_fn,
                    s.credential_names)
        found = self._identities.get(memo_key)
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
        if len(self._identities) >= _IDENTITY_MEMO_SIZE:
            # Start over rather than evict one: no iteration, so it is safe while another
            # thread (the sync layer's loop) uses the same backend.
            self._identities = {}
        self._identities[memo_key] = (key, stored)
        return key, stored

    def create_key(self, request: CachedRequest) -> str:
        return self.identify(request)[0]

    # -- the one gate to storage --------------------------------------------------
    async def _guard(self, op: str, call: Awaitable[T], default: T, kind: Kind = Kind.READ) -> T:
        """Run one storage call under its deadline and the circuit breaker. A failure or a
        timeout is counted, logged (rate-limited) and ``default`` returned (fail-open), or
        raised with ``strict=True``; with the circuit open, storage is not called at all.
        A configuration error is always raised: falling back to the origin would hide it."""
        if self.raw_responses.in_process and self.raw_redirects.in_process:
            return await self.health.call_inline(op, call, default, kind)
        return await self.health.call(op, call, default, kind)

    async def _guard_write(self, op: str, storage: BaseCache, call: Awaitable[None]) -> None:
        """A write: the caller waits for it at most ``backend_timeout``, then it finishes in
        the background (awaited by :meth:`wait_for_refreshes` and :meth:`close`)."""
        if storage.in_process:
            await self._guard(op, call, None, Kind.WRITE)
        else:
            await self.health.call(op, call, None, Kind.WRITE, self.background)

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
    async def get_response(self, key: str, follow_redirects: bool = True) -> CachedResponse | None:
        """The stored response for ``key`` (following a stored redirect), or None.

        An item that cannot be used (corrupt, tampered, stored at another key, unknown
        format) is deleted and reported as a miss.
        """
        storage = self.raw_responses
        if storage.holds_objects:  # in-process: the decoded response itself, no IO
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
                data, key = await self._read_item(key, follow_redirects)
        if data is None:
            return None
        decoded = self._decoded.get(key)
        if decoded is not None and decoded[0] == data:  # the very bytes decoded before
            return decoded[1]
        try:
            response = self.serializer.loads(data, key)
        except DeserializationError as e:
            logger.warning("%r: discarding unusable item %s: %s", self, key, e)
            await self._guard("delete", self.raw_responses.delete(key), None, Kind.DELETE)
            return None
        if response.cache_key != key:
            response = dataclasses.replace(response, cache_key=key)
        if len(data) <= _DECODED_MAX_BYTES:
            if len(self._decoded) >= _DECODED_SIZE:
                self._decoded = {}  # start over rather than evict one (thread-safe, see identify)
            self._decoded[key] = (data, response)
        return response

    async def _read_item(self, key: str, follow_redirects: bool) -> tuple[bytes | None, str]:
        """The bytes stored at ``key``, else (following a redirect alias) at its target, with
        the key they were found at. A storage that can do both in one round trip
        overrides this (a miss then costs one read)."""
        data = await self._guard("read", self.raw_responses.read(key), None)
        if data is None and follow_redirects:
            target = await self.get_redirect(key)
            if target is not None:
                key = target
                data = await self._guard("read", self.raw_responses.read(key), None)
        return data, key

    async def save_response(self, response: CachedResponse, cache_key: str) -> None:
        """Store ``response`` under ``cache_key`` (the peers' argument order). Set-Cookie is
        never stored: replayed, it would hand one user's session to the next."""
        response = without_set_cookie(response)
        if response.cache_key != cache_key:
            response = dataclasses.replace(response, cache_key=cache_key)
        storage = self.raw_responses
        if storage.holds_objects and storage.encode is not None:  # type: ignore[attr-defined]
            storage.put_item(cache_key, response, response.expires)  # type: ignore[attr-defined]
            return
        data = self.serializer.dumps(response, cache_key)
        await self._guard_write("write", storage, storage.write(cache_key, data, response.expires))

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
        data = self.serializer.dumps_redirect(alias, key)
        await self._guard_write("write redirect", self.raw_redirects, self.raw_redirects.write(alias, data))

    async def delete(self, *keys: str, urls: Iterable[str] = (), expired: bool = False,
                     methods: Iterable[str] = ("GET", "HEAD")) -> None:
        """Delete responses by key, by URL (for each of ``methods``), and/or all expired."""
        targets, urls = set(keys), list(urls)
        for url in urls:
            targets.update(self.create_key(CachedRequest(m, url, follow_redirects=follow))
                           for m in methods for follow in (True, False))
        if targets:  # by URL: the caller's maintenance; by key: the request path (invalidation)
            await self._guard("delete", self.raw_responses.bulk_delete(targets), None,
                              Kind.MAINTENANCE if urls else Kind.DELETE)
        if expired:
            removed = await self._guard("delete expired", self.raw_responses.delete_expired(utcnow()),
                                        None, Kind.MAINTENANCE)
            if removed is None:  # the storage keeps no expiry: find them by decoding
                await self._guard("delete", self.raw_responses.bulk_delete(await self._expired_keys()),
                                  None, Kind.MAINTENANCE)
            await self._delete_dangling_redirects()

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

    async def _delete_dangling_redirects(self) -> None:
        """Aliases whose response is gone. (A dangling alias is only a miss, so plain
        deletes leave them and this maintenance pass sweeps them.)"""
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
    async def delete_url(self, url: str) -> None:
        await self.delete(urls=[url])

    async def delete_expired_responses(self) -> None:
        await self.delete(expired=True)

    async def has_url(self, url: str, method: str = "GET") -> bool:
        key = self.create_key(CachedRequest(method, url))
        return bool(await self._guard("contains", self.raw_responses.contains(key), False))

    async def get_urls(self) -> list[str]:
        """Redacted URLs of all stored responses."""
        urls = []
        async for key in self._guard_iter("list keys", self.raw_responses.iter_keys()):
            data = await self._guard("read", self.raw_responses.read(key), None, Kind.MAINTENANCE)
            try:
                if data is not None:
                    urls.append(redact_url(self.serializer.loads(data, key).url,
                                           credential_names=self.settings.credential_names))
            except DeserializationError:
                continue
        return urls

    async def clear(self) -> None:
        await self._guard("clear", self.raw_responses.clear(), None, Kind.MAINTENANCE)
        await self._guard("clear", self.raw_redirects.clear(), None, Kind.MAINTENANCE)

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


__all__ = ["AsyncResults", "BaseCache", "CacheBackend", "ConfigurationError", "create_key"]
