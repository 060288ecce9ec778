"""CachedClientSession: an ``aiohttp.ClientSession`` that answers from a cache."""

from __future__ import annotations

import asyncio
import inspect
import logging
import warnings
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import BasicAuth, ClientConnectionError, ClientResponse, ClientSession
from multidict import CIMultiDict
from yarl import URL

from .backends import CacheBackend, init_backend
from .cache_keys import JsonSerialize, NotKeyable, request_for
from .driver import OriginResponse, Outcome, fetch, invalidate
from .models import CachedRequest
from .policy.actions import UNSAFE_METHODS, UNSET, RequestOptions
from .policy.settings import CacheSettings
from .response import BodyStream, CachedClientResponse, OriginClientResponse, naive

logger = logging.getLogger("aiocache_http")

_NETWORK_ERRORS = (ClientConnectionError, asyncio.TimeoutError, OSError)


with warnings.catch_warnings():
    # aiohttp discourages subclassing ClientSession; overriding _request is the one
    # hook it has, and aiohttp-client-cache relies on it the same way.
    warnings.simplefilter("ignore", DeprecationWarning)

    class CacheMixin(ClientSession):
        """The cache, for any ``aiohttp.ClientSession`` subclass: ``class MySession(CacheMixin,
        ClientSession)`` (aiohttp-client-cache's mixin). :class:`CachedClientSession` is
        the ready-made one; see it for the arguments."""

        ATTRS = ClientSession.ATTRS | frozenset({"_cache"})

        def __init_subclass__(cls) -> None:  # subclassing *this* class is fine
            pass

        def __init__(self, base_url: str | URL | None = None, *,
                     cache: CacheBackend | None = None, **kwargs: Any) -> None:
            settings, client_kwargs = CacheSettings.split(kwargs)
            if "json_serialize" in settings:  # a setting, and the session's own option too
                client_kwargs["json_serialize"] = settings["json_serialize"]
            if cache is None:
                self._cache = init_backend(**settings)
            else:
                self._cache = _backend_of(cache)
                self._cache.settings.update(**settings)
            client_kwargs.setdefault("response_class", OriginClientResponse)
            super().__init__(base_url, **self._session_kwargs(client_kwargs))

        def _session_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
            """What the session class above this one takes. Like aiohttp-client-cache, drop
            the rest: one set of keyword arguments can then serve backend and session."""
            params = inspect.signature(super().__init__).parameters
            if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
                return kwargs
            dropped = sorted(set(kwargs) - set(params))
            if dropped:
                logger.debug("%s: ignoring arguments the session does not take: %s",
                             type(self).__name__, dropped)
            return {k: v for k, v in kwargs.items() if k in params}

        @property
        def cache(self) -> CacheBackend:
            return self._cache

        @property
        def settings(self) -> CacheSettings:
            return self._cache.settings

        @asynccontextmanager
        async def cache_disabled(self) -> AsyncIterator[None]:
            """Within this block (in this task) requests bypass the cache entirely, as with
            ``cache.disabled = True``."""
            with self._cache.disabled_here():
                yield

        disabled = cache_disabled  # aiohttp-client-cache's name

        async def close(self) -> None:
            await super().close()
            await self._cache.wait_for_refreshes()  # even when the backend stays open
            if self._cache.settings.autoclose:
                await self._cache.close()

        # -- aiohttp-client-cache's helpers: same key as a request with these arguments --
        async def has_url(self, url: str | URL, method: str = "GET", **kwargs: Any) -> bool:
            """Is there a stored response for this request (session headers included)?"""
            key = self._cache.create_key(self._cached_request(method, url, kwargs))
            return await self._cache.responses.contains(key)

        async def delete_url(self, url: str | URL, method: str = "GET", **kwargs: Any) -> None:
            """Delete the stored response for this request."""
            await self._cache.delete(self._cache.create_key(self._cached_request(method, url, kwargs)))

        async def delete_expired_responses(self) -> None:
            await self._cache.delete_expired_responses()

        async def _request(  # type: ignore[override]
            self, method: str, str_or_url: str | URL, *,
            expire_after: Any = UNSET, refresh: bool = False, force_refresh: bool = False,
            only_if_cached: bool = False, **kwargs: Any,
        ) -> ClientResponse | CachedClientResponse:
            method = method.upper()
            if self._cache.disabled:
                return await super()._request(method, str_or_url, **kwargs)
            if method not in self.settings.allowed_methods:
                response = await super()._request(method, str_or_url, **kwargs)
                if self.settings.cache_control and method in UNSAFE_METHODS:
                    request = self._cached_request(method, str_or_url, kwargs, body=False)
                    await invalidate(self._cache, request, response.status,
                                     CIMultiDict(response.headers))
                return response
            try:
                request = self._cached_request(method, str_or_url, kwargs)
            except NotKeyable:
                return await super()._request(method, str_or_url, **kwargs)
            options = RequestOptions(expire_after, refresh, force_refresh, only_if_cached,
                                     header_rule="cache_control")  # aiohttp-client-cache's
            headers = kwargs.pop("headers", None)
            # Checked below, once the answer is stored: a cached 404 raises like a live one.
            check = kwargs.pop("raise_for_status", None)
            check = self._raise_for_status if check is None else check

            async def send(extra: dict[str, str]) -> OriginResponse:
                merged = CIMultiDict(headers or {})
                merged.update(extra)
                response = await ClientSession._request(self, method, str_or_url, headers=merged,
                                                        raise_for_status=False, **kwargs)
                return _origin(response)

            outcome = await fetch(self._cache, request, options, send, _NETWORK_ERRORS)
            result = self._respond(outcome, method)
            if check is True:
                result.raise_for_status()
            elif callable(check):
                await check(result)  # type: ignore[arg-type]  # replayed responses quack alike
            return result

        def _respond(self, outcome: Outcome, method: str) -> ClientResponse | CachedClientResponse:
            cached = outcome.response
            if outcome.raw is None:
                assert cached is not None
                return CachedClientResponse.replay(cached, method, outcome.from_cache, outcome.age)
            raw = outcome.raw
            if cached is not None:
                raw.created_at = naive(cached.created_at)
                raw.expires = None if cached.expires is None else naive(cached.expires)
                raw.cache_key = cached.cache_key
            if isinstance(raw, ClientResponse) and raw._body is not None:
                raw.content = BodyStream(raw._body)  # type: ignore[assignment]  # streams again
            return raw  # type: ignore[no-any-return]

        def _cached_request(self, method: str, str_or_url: str | URL,
                            kwargs: Mapping[str, Any], body: bool = True) -> CachedRequest:
            """The request as the cache sees it: full URL, merged headers, the body as aiohttp
            sends it (encoded with this session's JSON serializer)."""
            headers = self._prepare_headers(kwargs.get("headers"))
            auth = kwargs.get("auth") or self._default_auth
            if isinstance(auth, BasicAuth) and "Authorization" not in headers:
                headers["Authorization"] = auth.encode()
            data, json = (kwargs.get("data"), kwargs.get("json")) if body else (None, None)
            verify = kwargs.get("ssl", True) is not False and kwargs.get("verify_ssl") is not False
            return request_for(method, self._build_url(str_or_url), kwargs.get("params"), data,
                               json, headers, self._json_serializer(),
                               follow_redirects=kwargs.get("allow_redirects", True), verify=verify)

        def _json_serializer(self) -> JsonSerialize:
            as_bytes = getattr(self, "_json_serialize_bytes", None)
            return as_bytes if callable(as_bytes) else self._json_serialize

    class CachedClientSession(CacheMixin, ClientSession):
        """An ``aiohttp.ClientSession`` with a cache.

        Args:
            cache: The backend (default: ``SQLiteBackend("aiohttp-cache")``, a file in the
                working directory). One backend may be shared by several sessions, async
                and sync (a requests-cache-style backend from ``aiocache_http.sync`` is
                accepted too).
            **kwargs: Cache settings (``expire_after``, ``cache_control``...; see
                :class:`CacheSettings`) are applied to ``cache.settings``; what
                ``aiohttp.ClientSession`` takes goes to it; anything else is ignored, as
                aiohttp-client-cache does.

        Per request, ``get()`` & co. also take ``expire_after``, ``refresh``,
        ``force_refresh`` and ``only_if_cached``.
        """


def _backend_of(cache: Any) -> CacheBackend:
    """``cache``, or the async backend behind a requests-cache-style one."""
    if isinstance(cache, CacheBackend):
        return cache
    inner = getattr(cache, "backend", None)
    if isinstance(inner, CacheBackend):
        return inner
    raise TypeError(f"cache must be a CacheBackend (SQLiteBackend(), RedisBackend()...), "
                    f"not {cache!r}")


def _origin(response: ClientResponse) -> OriginResponse:
    return OriginResponse(
        status=response.status,
        reason=response.reason or "",
        url=str(response.url),
        headers=CIMultiDict(response.headers),
        raw=response,
        read=response.read,
        release=response.release,
        encoding=response.charset,
        history=[(r.method, str(r.url), r.status, r.reason or "", CIMultiDict(r.headers))
                 for r in response.history],
    )


CachedSession = CachedClientSession  # aiohttp-client-cache's name

__all__ = ["CacheMixin", "CachedClientSession", "CachedSession"]
