"""requests-cache's ``BaseCache``: the synchronous face of an async backend.

``session.cache`` is one. It holds the async backend as :attr:`BaseCache.backend` (share
it with a ``CachedClientSession``), runs each backend coroutine on the bridge loop, and
has requests-cache's methods: ``get_response``, ``save_response``, ``contains``,
``delete``, ``filter``, ``reset_expiration``, ``recreate_keys``, ``urls``... Its
``responses`` and ``redirects`` are dicts of :class:`CachedResponse` and of keys. A
backend coroutine method not spelled out here is still reachable: ``cache.<name>(...)``
runs it synchronously (``cache.vacuum()``).
"""

from __future__ import annotations

import functools
import inspect
import logging
import warnings
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any, TypeVar

import requests

from ..backends import CacheBackend
from ..backends.base import BaseCache as Storage
from ..models import CachedRequest as Record
from ..models import CachedResponse as ResponseRecord
from ..policy.expiration import ExpirationTime
from ..policy.keys import REDACTED
from ..policy.settings import CacheSettings
from ..serializers import DeserializationError
from .bridge import run
from .convert import cached_request, prepared
from .models import CachedResponse, OriginalResponse
from .storage import (
    BaseStorage,
    Codec,
    DictStorage,
    DynamoDbDict,
    FileDict,
    GridFSDict,
    LRUFileDict,
    MongoDict,
    RedisDict,
    RedisHashDict,
    SQLiteDict,
    async_storage,
)

logger = logging.getLogger("aiocache_http")
T = TypeVar("T")

AnyRequest = requests.PreparedRequest | requests.Request | Record
DEFAULT_CACHE_NAME = "http_cache"

# The requests-cache storage class that shows each async storage.
_VIEWS: dict[str, type[BaseStorage]] = {
    "MemoryCache": DictStorage, "SQLiteCache": SQLiteDict, "RedisCache": RedisDict,
    "MongoDBCache": MongoDict, "GridFSCache": GridFSDict, "DynamoDBCache": DynamoDbDict,
    "FileCache": FileDict,
}


class RedirectCodec(Codec):
    """Redirect targets (keys) in the backend's stored form."""

    def __init__(self, backend: CacheBackend) -> None:
        super().__init__(backend.serializer, None, backend)

    def dumps(self, key: str, value: Any) -> Any:
        assert self.backend is not None
        return self.backend.dump_redirect(key, value) if isinstance(value, str) else value

    def loads(self, key: str, stored: Any) -> Any:
        assert self.backend is not None
        return self.backend.load_redirect(key, stored) if isinstance(stored, bytes) else stored


def _view(storage: Storage, codec: Codec) -> BaseStorage:
    cls = _VIEWS.get(type(storage).__name__, BaseStorage)
    if cls is RedisDict and getattr(storage, "layout", None) == "hash":
        cls = RedisHashDict
    elif cls is FileDict and getattr(storage, "lru", None) is not None:
        cls = LRUFileDict
    return cls.bound(storage, codec)


class BaseCache:
    """A cache backend with synchronous methods (requests-cache's ``BaseCache``). Built
    on its own it keeps everything in memory; the subclasses (``SQLiteCache``,
    ``RedisCache``...) hold the other databases.

    Args:
        cache_name: Name of the cache.
        **kwargs: Cache settings (``expire_after``...; see :class:`CacheSettings`), and
            ``max_entries`` (keep at most this many responses).
    """

    backend: CacheBackend

    def __init__(self, cache_name: str = DEFAULT_CACHE_NAME, **kwargs: Any) -> None:
        self._attach(CacheBackend(str(cache_name), **kwargs))

    @classmethod
    def wrap(cls, backend: CacheBackend) -> BaseCache:
        """This face for an async backend built elsewhere (``SQLiteBackend(...)``...)."""
        cache = cls.__new__(cls)
        cache._attach(backend)
        return cache

    def _attach(self, backend: CacheBackend) -> None:
        self.backend = backend
        self._views: dict[str, tuple[Storage, BaseStorage]] = {}

    # -- what requests-cache users reach ---------------------------------------------
    @property
    def cache_name(self) -> str:
        return self.backend.name

    name = cache_name

    @property
    def settings(self) -> CacheSettings:
        return self.backend.settings

    @property
    def responses(self) -> BaseStorage:
        """``key -> CachedResponse``, a dict (values a user stored there as they are)."""
        return self._view_of("responses", self.backend.raw_responses, Codec.of_backend)

    @responses.setter
    def responses(self, storage: BaseStorage) -> None:
        """requests-cache's custom backend: ``self.responses = CustomStorage()``."""
        self.backend.raw_responses = async_storage(storage)

    @property
    def redirects(self) -> BaseStorage:
        """``alias key -> key`` of the response it leads to."""
        return self._view_of("redirects", self.backend.raw_redirects, RedirectCodec)

    @redirects.setter
    def redirects(self, storage: BaseStorage) -> None:
        self.backend.raw_redirects = async_storage(storage)

    def _view_of(self, name: str, storage: Storage, codec: Any) -> BaseStorage:
        known = self._views.get(name)
        if known is None or known[0] is not storage:  # the backend's storage was replaced
            known = self._views[name] = (storage, _view(storage, codec(self.backend)))
        return known[1]

    # -- responses -------------------------------------------------------------------
    def create_key(self, request: AnyRequest, match_headers: Iterable[str] | None = None,
                   verify: Any = True, **kwargs: Any) -> str:
        """The key this backend's settings give ``request`` (``match_headers``, if given,
        instead of the setting's; ``verify=False``: sent without TLS verification)."""
        if not isinstance(request, Record):
            request = cached_request(prepared(request), verify=verify)
        if match_headers is None:
            return self.backend.create_key(request)
        saved = self.settings.match_headers
        try:
            self.settings.update(match_headers=match_headers)
            return self.backend.create_key(request)
        finally:
            self.settings.update(match_headers=saved)

    def get_response(self, key: str, default: Any = None) -> CachedResponse | Any:
        """The response at ``key`` (following a redirect alias), or ``default``."""
        record = run(self.backend.get_record(key))
        return default if record is None else CachedResponse.from_record(record)

    def save_response(self, response: requests.Response | ResponseRecord, cache_key: str | None = None,
                      expires: Any = None) -> None:
        """Store ``response`` (credentials redacted, as the session stores one) under
        ``cache_key`` (default: its request's key), expiring at ``expires``, and alias
        its redirect hops to it."""
        if isinstance(response, OriginalResponse) or (
                isinstance(response, requests.Response) and not isinstance(response, CachedResponse)):
            response = CachedResponse.from_response(response)
        if cache_key is None and isinstance(response, requests.Response) and response.request is not None:
            cache_key = self.create_key(response.request)
        run(self.backend.save_response(response, cache_key, expires))

    def contains(self, key: str | None = None, request: AnyRequest | None = None,
                 url: str | None = None, verify: bool = True) -> bool:
        """Is there a response (or a redirect alias) for this key, request or GET URL?"""
        if url is not None:
            request = requests.Request("GET", url)
        if key is None:
            if request is None:
                raise TypeError("contains() needs a key, a request or a url")
            key = self.create_key(request, verify=verify)
        raw = self.backend.raw_responses, self.backend.raw_redirects
        return bool(self._gated("contains", lambda: raw[0].contains(key), False)
                    or self._gated("contains", lambda: raw[1].contains(key), False))

    def delete(self, *keys: str, expired: bool = False, invalid: bool = False,
               older_than: ExpirationTime = None, requests: Iterable[AnyRequest] | None = None,
               urls: Iterable[str] | None = None, verify: bool = True,
               methods: Iterable[str] = ("GET", "HEAD")) -> None:
        """Delete responses: by key, by request, by URL (each of ``methods``), all
        expired, all that cannot be read (``invalid``), and/or those stored more than
        ``older_than`` ago. Redirect aliases left pointing at nothing go too."""
        targets = [*keys, *(self.create_key(r, verify=verify) for r in requests or ())]
        if invalid or older_than is not None:
            targets += [r.cache_key for r in self.filter(valid=False, expired=False,
                                                           invalid=invalid, older_than=older_than)]
        run(self.backend.delete(*targets, urls=list(urls or ()), expired=expired, methods=list(methods)))
        self._prune_redirects()

    def _prune_redirects(self) -> None:
        run(self.backend.prune_redirects())

    def filter(self, valid: bool = True, expired: bool = True, invalid: bool = False,
               older_than: ExpirationTime = None) -> Iterator[CachedResponse]:
        """Stored responses: fresh ones (``valid``), expired ones, ones that cannot be read
        (``invalid``, as empty 504 responses with their ``cache_key``), and/or ones stored
        more than ``older_than`` ago."""
        if not (valid or expired or invalid or older_than is not None):
            return
        for key in list(self.responses):
            response = self._read(key)
            if response is None:
                if invalid:
                    yield CachedResponse(status_code=504, cache_key=key)
                continue
            if ((valid and not response.is_expired) or (expired and response.is_expired)
                    or (older_than is not None and response.is_older_than(older_than))):
                yield response

    def _gated(self, op: str, make: Callable[[], Awaitable[T]], default: T) -> T:
        """``make()`` through the backend's gate, on the bridge loop. The storage coroutine
        is made there: if the bridge refuses (a call from its own thread), none is left
        unawaited."""
        async def gated() -> T:
            return await self.backend._guard(op, make(), default)

        return run(gated())

    def _read(self, key: str) -> CachedResponse | None:
        stored = self._gated("read", lambda: self.backend.raw_responses.read(key), None)
        try:
            return CachedResponse.from_record(self.backend.load(key, stored))
        except DeserializationError:
            return None

    def reset_expiration(self, expire_after: ExpirationTime = None) -> None:
        """Give every stored response a new expiry, ``expire_after`` from now."""
        for response in self.filter():
            response.reset_expiration(expire_after)
            run(self.backend.save_response(response.__cache_record__(), response.cache_key))

    def recreate_keys(self) -> None:
        """Store every response under the key the current settings (``key_fn``,
        ``match_headers``...) give its request. A response whose request held
        credentials stays put: its key cannot be recomputed from the redacted copy."""
        for old_key in list(self.responses):
            response = self._read(old_key)
            if response is None or _redacted(response):
                continue
            record = response.__cache_record__()
            if record.request.body == b"None":  # stored by requests-cache < 1.0
                record.request.body = b""
            new_key = self.backend.create_key(record.request)
            if new_key != old_key:
                run(self.backend.save_response(record, new_key))
                run(self.backend.delete(old_key))

    def remove_expired_responses(self, expire_after: ExpirationTime = None) -> None:
        """Deprecated (requests-cache): use ``delete(expired=True)``."""
        warnings.warn("remove_expired_responses() is deprecated; please use delete(expired=True) "
                      "instead", DeprecationWarning, stacklevel=2)
        if expire_after:
            self.reset_expiration(expire_after)
        self.delete(expired=True, invalid=True)

    def update(self, other: BaseCache) -> None:
        """Copy every response and redirect of ``other`` into this cache."""
        self.responses.update(other.responses)
        self.redirects.update(other.redirects)

    def urls(self, **kwargs: Any) -> list[str]:
        """The URLs of the stored responses, sorted (``kwargs``: as for :meth:`filter`)."""
        return sorted({response.url for response in self.filter(**kwargs) if response.url})

    def clear(self) -> None:
        run(self.backend.clear())

    def close(self) -> None:
        run(self.backend.close())

    # aiohttp-client-cache's and earlier requests-cache spellings
    def has_url(self, url: str, method: str = "GET") -> bool:
        return run(self.backend.has_url(url, method))

    def delete_url(self, url: str) -> None:
        self.delete(urls=[url])

    def delete_urls(self, urls: Iterable[str]) -> None:
        self.delete(urls=urls)

    def delete_expired_responses(self) -> None:
        self.delete(expired=True)

    def get_urls(self) -> list[str]:
        return run(self.backend.get_urls().collect())

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name == "backend":
            raise AttributeError(name)
        attr = getattr(self.backend, name)
        if not inspect.iscoroutinefunction(attr):
            return attr

        @functools.wraps(attr)
        def call(*args: Any, **kwargs: Any) -> Any:
            return run(attr(*args, **kwargs))

        return call

    def __str__(self) -> str:
        return f"<{type(self).__name__}(name={self.cache_name})>"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.backend!r})"


def _redacted(response: CachedResponse) -> bool:
    request = response.request
    return REDACTED in (request.url or "") or any(v == REDACTED for v in request.headers.values())


__all__ = ["DEFAULT_CACHE_NAME", "BaseCache", "RedirectCodec"]
