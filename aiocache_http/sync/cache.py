"""SyncBackend: the synchronous face of a CacheBackend (what ``CachedSession.cache`` is).

Every method runs the backend's coroutine on the bridge loop and returns a plain value;
``responses`` and ``redirects`` are dict views. A backend coroutine method not spelled
out here is still reachable: ``session.cache.<name>(...)`` runs it synchronously.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Iterable
from typing import Any

import requests

from ..backends.base import CacheBackend
from ..models import CachedRequest
from ..policy.settings import CacheSettings
from .bridge import run
from .convert import cached_request, prepared
from .response import CachedResponse
from .storage import BaseStorage

AnyRequest = requests.PreparedRequest | requests.Request | CachedRequest


class SyncBackend:
    def __init__(self, backend: CacheBackend) -> None:
        self.backend = backend

    @property
    def settings(self) -> CacheSettings:
        return self.backend.settings

    @property
    def name(self) -> str:
        return self.backend.name

    @property
    def responses(self) -> BaseStorage:
        return BaseStorage(self.backend.raw_responses, self.backend)

    @property
    def redirects(self) -> BaseStorage:
        return BaseStorage(self.backend.raw_redirects, self.backend)

    def create_key(self, request: AnyRequest) -> str:
        """The key this backend's settings give ``request`` (key_fn and secret included)."""
        if not isinstance(request, CachedRequest):
            request = cached_request(prepared(request))
        return self.backend.create_key(request)

    def get_response(self, key: str) -> CachedResponse | None:
        record = run(self.backend.get_response(key))
        return None if record is None else CachedResponse.from_record(record)

    def contains(self, key: str | None = None, request: AnyRequest | None = None,
                 url: str | None = None) -> bool:
        """Is there a response for this key, request or (GET) URL?"""
        if key is None:
            if request is None and url is None:
                raise TypeError("contains() needs a key, a request or a url")
            key = self.create_key(request if request is not None else CachedRequest("GET", str(url)))
        return bool(run(self.backend._guard("contains", self.backend.raw_responses.contains(key), False)))

    def delete(self, *keys: str, urls: Iterable[str] = (), expired: bool = False,
               requests: Iterable[AnyRequest] = (),
               methods: Iterable[str] = ("GET", "HEAD")) -> None:
        """Delete responses by key, by request, by URL (for each of ``methods``), and/or
        all expired ones."""
        targets = [*keys, *(self.create_key(r) for r in requests)]
        run(self.backend.delete(*targets, urls=list(urls), expired=expired, methods=list(methods)))

    def clear(self) -> None:
        run(self.backend.clear())

    def close(self) -> None:
        run(self.backend.close())

    # requests-cache and aiohttp-client-cache spellings
    def has_url(self, url: str, method: str = "GET") -> bool:
        return run(self.backend.has_url(url, method))

    def delete_url(self, url: str) -> None:
        self.delete(urls=[url])

    def delete_urls(self, urls: Iterable[str]) -> None:
        self.delete(urls=urls)

    def delete_expired_responses(self) -> None:
        self.delete(expired=True)

    remove_expired_responses = delete_expired_responses

    def get_urls(self) -> list[str]:
        return run(self.backend.get_urls())

    def urls(self) -> list[str]:
        return sorted(self.get_urls())

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.backend, name)
        if not inspect.iscoroutinefunction(attr):
            return attr

        @functools.wraps(attr)
        def call(*args: Any, **kwargs: Any) -> Any:
            return run(attr(*args, **kwargs))

        return call

    def __repr__(self) -> str:
        return f"SyncBackend({self.backend!r})"


__all__ = ["SyncBackend"]
