"""CachedSession: a ``requests.Session`` answered from the same cache as the async one.

``send()`` turns the PreparedRequest into a :class:`CachedRequest` and runs the shared
driver (:func:`aiocache_http.driver.fetch`) on the bridge loop, so keys, stored format
and every decision are the async session's. The origin request is the real
``requests.Session.send``, run in the calling thread while the driver waits for it.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, cast

import requests
from requests.hooks import dispatch_hook

from ..backends import CacheBackend
from ..coalescing import Patience
from ..driver import OriginResponse, Outcome, fetch, serve_inline
from ..policy import core
from ..policy.core import UNSET, RequestOptions
from ..policy.expiration import ExpirationTime
from ..policy.settings import CONSTRUCTION_ONLY, CacheSettings, Default, default
from .backends import DEFAULT_CACHE_NAME, BackendSpecifier, init_backend
from .bridge import BRIDGE, Offload, serve
from .cache import BaseCache
from .convert import NotKeyable, cached_request, origin_response
from .models import AnyResponse, CachedResponse, OriginalResponse
from .stream import read_content

if TYPE_CHECKING:
    from typing_extensions import Self

# Per thread/context: sessions with caching off, what request() hands to send() (the
# options, the environment settings still to merge), and "inside the origin request"
# (redirect hops go straight to the origin).
_disabled: ContextVar[frozenset[int]] = ContextVar("aiocache_http_sync_disabled", default=frozenset())
_pending: ContextVar[_Pending | None] = ContextVar("aiocache_http_sync_pending", default=None)
_in_origin: ContextVar[bool] = ContextVar("aiocache_http_sync_in_origin", default=False)

# "Origin unreachable" (for stale-if-error and must-revalidate): not every RequestException.
_NETWORK_ERRORS = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)

# Defaults of the settings named in the signature: "not given" (a backend's own value stays).
_GIVEN_NOT: dict[str, Any] = {name: default(name) for name in (
    "serializer", "expire_after", "urls_expire_after", "cache_control", "allowable_codes",
    "allowable_methods", "always_revalidate", "ignored_parameters", "match_headers", "filter_fn",
    "key_fn", "stale_if_error")}


class _Pending:
    """One request() call on its way to send(): its cache options, and requests'
    environment merge (proxies and CA bundle from os.environ, a scan of the whole
    environment costing more than a hit) left for the origin request to do."""

    __slots__ = ("environment", "options")

    def __init__(self, options: RequestOptions) -> None:
        self.options = options
        self.environment: Callable[[], dict[str, Any]] | None = None


class CacheMixin(requests.Session):
    """The cache of :class:`CachedSession`, to put in front of another ``requests.Session``
    subclass, as requests-cache's ``CacheMixin``: ``class CachedOAuth2Session(CacheMixin,
    OAuth2Session)``. Keyword arguments that the other class's ``__init__`` names are
    passed to it; the rest are cache settings and backend options (see CachedSession).
    """

    def __init__(
        self,
        cache_name: str | Path = DEFAULT_CACHE_NAME,
        backend: BackendSpecifier = None,
        serializer: Any = _GIVEN_NOT["serializer"],
        expire_after: ExpirationTime = _GIVEN_NOT["expire_after"],
        urls_expire_after: Mapping[str, ExpirationTime] | None = _GIVEN_NOT["urls_expire_after"],
        cache_control: bool = _GIVEN_NOT["cache_control"],
        allowable_codes: Iterable[int] = _GIVEN_NOT["allowable_codes"],
        allowable_methods: Iterable[str] = _GIVEN_NOT["allowable_methods"],
        always_revalidate: bool = _GIVEN_NOT["always_revalidate"],
        ignored_parameters: Iterable[str] | None = _GIVEN_NOT["ignored_parameters"],
        match_headers: bool | Iterable[str] = _GIVEN_NOT["match_headers"],
        filter_fn: Callable[[Any], Any] | None = _GIVEN_NOT["filter_fn"],
        key_fn: Callable[..., str] | None = _GIVEN_NOT["key_fn"],
        stale_if_error: bool | float = _GIVEN_NOT["stale_if_error"],
        autoclose: bool = True,
        **kwargs: Any,
    ) -> None:
        session_kwargs = _session_kwargs(super().__init__, kwargs)
        named = {
            "serializer": serializer, "expire_after": expire_after,
            "urls_expire_after": urls_expire_after, "cache_control": cache_control,
            "allowable_codes": allowable_codes, "allowable_methods": allowable_methods,
            "always_revalidate": always_revalidate, "ignored_parameters": ignored_parameters,
            "match_headers": match_headers, "filter_fn": filter_fn, "key_fn": key_fn,
            "stale_if_error": stale_if_error,
        }
        settings = {k: v for k, v in named.items() if not isinstance(v, Default)}
        more_settings, backend_kwargs = CacheSettings.split(kwargs)
        more_settings.pop("autoclose", None)  # a session's choice, not the shared backend's
        settings.update(more_settings)
        self._cache = init_backend(cache_name, backend, **settings, **backend_kwargs)
        super().__init__(**session_kwargs)
        self._backend = self._cache.backend
        self._autoclose = autoclose
        self._closed = False

    @classmethod
    def wrap(cls, original_session: requests.Session, **kwargs: Any) -> Self:
        """A CachedSession with the settings (headers, auth, adapters...) of ``original_session``."""
        session = cls(**kwargs)
        for attr in ("adapters", "auth", "cert", "cookies", "headers", "hooks", "max_redirects",
                     "params", "proxies", "stream", "trust_env", "verify"):
            setattr(session, attr, getattr(original_session, attr))
        return session

    # -- the cache --------------------------------------------------------------------
    @property
    def cache(self) -> BaseCache:
        """The backend, with synchronous methods (``clear()``, ``delete(urls=...)``...)."""
        return self._cache

    @cache.setter
    def cache(self, value: object) -> NoReturn:
        _fixed("cache")

    @property
    def backend(self) -> CacheBackend:
        """The async backend itself (shareable with a CachedClientSession)."""
        return self._backend

    @backend.setter
    def backend(self, value: object) -> NoReturn:
        _fixed("backend")

    @property
    def settings(self) -> CacheSettings:
        """The backend's settings; assign to their attributes to change them."""
        return self._backend.settings

    @settings.setter
    def settings(self, value: CacheSettings) -> None:
        """``session.settings = CacheSettings(...)`` (requests-cache's external config
        example): every setting takes the new object's value, on the backend (so in every
        session that shares it). Those fixed when the backend was created (serializer,
        secret_key...) must be left out or unchanged."""
        if not isinstance(value, CacheSettings):
            raise TypeError(f"session.settings must be a CacheSettings, not {type(value).__name__}")
        current = self._backend.settings
        fixed = sorted(name for name in CONSTRUCTION_ONLY
                       if value.is_given(name) and getattr(value, name) != getattr(current, name))
        if fixed:
            raise AttributeError(f"{', '.join(fixed)}: fixed when the backend is created; create a "
                                 f"new CachedSession(...) to change it")
        for name in CacheSettings._DEFAULTS:
            if name not in CONSTRUCTION_ONLY:
                setattr(current, name, getattr(value, name))
        current.given.intersection_update(CONSTRUCTION_ONLY)
        current.given.update(value.given)

    @property
    def expire_after(self) -> ExpirationTime:
        return self.settings.expire_after

    @expire_after.setter
    def expire_after(self, value: ExpirationTime) -> None:
        self.settings.expire_after = value

    @contextmanager
    def cache_disabled(self) -> Iterator[None]:
        """Within this block (in this thread/context) requests bypass the cache."""
        token = _disabled.set(_disabled.get() | {id(self)})
        try:
            yield
        finally:
            _disabled.reset(token)

    disabled = cache_disabled

    def close(self) -> None:
        """Close the session, and the backend unless ``autoclose`` is off (here or in the
        backend's settings)."""
        super().close()
        if self._closed:
            return
        self._closed = True
        if self._autoclose and self.settings.autoclose:
            self._cache.close()

    # -- requests ---------------------------------------------------------------------
    def request(
        self, method: str | bytes, url: str | bytes, *args: Any,
        expire_after: ExpirationTime = None, only_if_cached: bool = False,
        refresh: bool = False, force_refresh: bool = False, **kwargs: Any,
    ) -> AnyResponse:
        """``requests.Session.request`` with the per-request cache options.

        ``expire_after=None`` means "the session's setting" (as in requests-cache); pass
        -1 for never."""
        token = _pending.set(_Pending(_options(expire_after, refresh, force_refresh, only_if_cached)))
        try:
            return cast(AnyResponse, super().request(method, url, *args, **kwargs))  # our send()'s
        finally:
            _pending.reset(token)

    if TYPE_CHECKING:
        # For type checkers (requests' own verbs run): the cache's per-request options and
        # the cache attributes of what they answer, as requests-cache types them.
        def get(self, url: str | bytes, params: Any = None, *, expire_after: ExpirationTime = None,
                only_if_cached: bool = False, refresh: bool = False,
                force_refresh: bool = False, **kwargs: Any) -> AnyResponse: ...

        def options(self, url: str | bytes, *, expire_after: ExpirationTime = None,
                    only_if_cached: bool = False, refresh: bool = False,
                    force_refresh: bool = False, **kwargs: Any) -> AnyResponse: ...

        def head(self, url: str | bytes, *, expire_after: ExpirationTime = None,
                 only_if_cached: bool = False, refresh: bool = False,
                 force_refresh: bool = False, **kwargs: Any) -> AnyResponse: ...

        def post(self, url: str | bytes, data: Any = None, json: Any = None, *,
                 expire_after: ExpirationTime = None, only_if_cached: bool = False, refresh: bool = False,
                 force_refresh: bool = False, **kwargs: Any) -> AnyResponse: ...

        def put(self, url: str | bytes, data: Any = None, *, expire_after: ExpirationTime = None,
                only_if_cached: bool = False, refresh: bool = False,
                force_refresh: bool = False, **kwargs: Any) -> AnyResponse: ...

        def patch(self, url: str | bytes, data: Any = None, *, expire_after: ExpirationTime = None,
                  only_if_cached: bool = False, refresh: bool = False,
                  force_refresh: bool = False, **kwargs: Any) -> AnyResponse: ...

        def delete(self, url: str | bytes, *, expire_after: ExpirationTime = None,
                   only_if_cached: bool = False, refresh: bool = False,
                   force_refresh: bool = False, **kwargs: Any) -> AnyResponse: ...

    def merge_environment_settings(self, url: Any, proxies: Any, stream: Any, verify: Any,
                                cert: Any) -> Any:
        """requests' merge; called by :meth:`request`, the environment part (proxies,
        ``REQUESTS_CA_BUNDLE``) waits until a request goes to the origin: a hit needs
        none of it. ``verify`` can only become a CA path there, never False, so the
        cache key (which sees only "verify is off") is the same either way."""
        pending = _pending.get()
        if pending is None or pending.environment is not None or not self.trust_env:
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        merge = super().merge_environment_settings
        pending.environment = lambda: dict(merge(url, proxies, stream, verify, cert))
        # requests' merge_setting for these scalars; the proxies only the origin uses.
        return {"proxies": proxies, "stream": self.stream if stream is None else stream,
                "verify": self.verify if verify is None else verify,
                "cert": self.cert if cert is None else cert}

    def send(
        self, request: requests.PreparedRequest, *,
        expire_after: ExpirationTime = None, only_if_cached: bool = False,
        refresh: bool = False, force_refresh: bool = False, **kwargs: Any,
    ) -> AnyResponse:
        """Send a prepared request, answering from the cache when allowed."""
        if _in_origin.get():  # a redirect hop of the origin request: straight through
            return OriginalResponse.wrap(super().send(request, **kwargs), None)
        pending = _pending.get()
        _pending.set(None)  # consumed: a send() from a hook is a request of its own
        environment = pending.environment if pending is not None else None
        if pending is None or expire_after is not None or only_if_cached or refresh or force_refresh:
            options = _options(expire_after, refresh, force_refresh, only_if_cached)
        else:
            options = pending.options
        follow = kwargs.get("allow_redirects", True)
        identity = None  # the key, worked out once (raises for a URL we cannot parse)
        try:
            # The Cookie header holds the jar's and cookies= cookies too: they identify the
            # user, so they are part of the key (hashed; redacted in storage).
            record = cached_request(request, follow_redirects=follow,
                                    verify=kwargs.get("verify", self.verify))
            identity = self._backend.identify(record)
        except ValueError:  # a URL we cannot parse: requests decides
            return OriginalResponse.wrap(super().send(request, **_merged(kwargs, environment)), None)
        except NotKeyable:  # a streamed body: the core lets it pass the cache by
            record = cached_request(request, body=False, follow_redirects=follow,
                                    verify=kwargs.get("verify", self.verify))
            options = replace(options, keyable=False)
        if id(self) in _disabled.get() or self._backend.disabled:
            options = replace(options, disabled=True)
        backend = self._backend
        plan = core.plan(record, backend.settings, options, backend.identify, identity)
        loop = BRIDGE.running()
        if loop is not None:
            # A hit to be had at once (memory; SQLite's inline verified read) is answered
            # on this thread with the bridge loop's connections and breaker; anything
            # else (a miss, a busy file, an open circuit, a listener) goes to the loop.
            hit = serve_inline(backend, plan, loop)
            if hit is not None:
                return self._respond(hit, request, kwargs, environment)
        owner = threading.get_ident()  # who reads the response: this thread

        async def work(offload: Offload) -> Outcome:
            async def send_to_origin(extra: dict[str, str]) -> OriginResponse:
                prepared = request.copy()
                prepared.headers.update(extra)
                # The caller's hooks see a response with the cache attributes, as on a hit.
                prepared.hooks = {**request.hooks,
                                  "response": [_as_original, *request.hooks.get("response", ())]}
                # Always streamed: the body is read by the caller (or by _respond, for
                # stream=False), through the tee that stores it.
                response = await offload(lambda: self._send_origin(
                    prepared, {**_merged(kwargs, environment), "stream": True}))
                return origin_response(response, offload, stream=bool(kwargs.get("stream")))

            read_timeout = _read_timeout(kwargs.get("timeout"))
            send = send_to_origin if read_timeout is None else _Patient(send_to_origin, read_timeout)
            # With the loop running, serve_inline was tried on this thread: no second read.
            return await fetch(backend, record, options, send, _NETWORK_ERRORS,
                               owner=owner, plan=plan, inline_tried=loop is not None)

        return self._respond(serve(work), request, kwargs, environment)

    def _send_origin(self, request: requests.PreparedRequest, kwargs: dict[str, Any]) -> requests.Response:
        token = _in_origin.set(True)
        try:
            return super().send(request, **kwargs)
        finally:
            _in_origin.reset(token)

    def _respond(self, outcome: Outcome, request: requests.PreparedRequest, kwargs: dict[str, Any],
                 environment: Callable[[], dict[str, Any]] | None) -> AnyResponse:
        if outcome.raw is not None:
            original = OriginalResponse.wrap(outcome.raw, outcome.response)  # hooks already ran
            if outcome.cache_status is not None:
                original.headers["Cache-Status"] = outcome.cache_status
            if not kwargs.get("stream"):
                read_content(original)
            return original
        assert outcome.response is not None
        # The stored request, as requests-cache shows it: credentials redacted.
        response = CachedResponse.from_record(outcome.response, from_cache=outcome.from_cache,
                                              age=outcome.age, stream=bool(kwargs.get("stream")))
        response.revalidated = outcome.revalidated
        if outcome.cache_status is not None:
            response.headers["Cache-Status"] = outcome.cache_status
        if not request.hooks.get("response"):
            return response
        result: AnyResponse = dispatch_hook(  # type: ignore[no-untyped-call]
            "response", request.hooks, response, **_merged(kwargs, environment))
        return result  # what the caller's hook returned, as requests does

    def __getstate__(self) -> NoReturn:
        raise NotImplementedError("a CachedSession holds backend connections and cannot be pickled")

    def __repr__(self) -> str:
        return f"<{type(self).__name__}(cache={self._backend!r}, settings={self.settings!r})>"


class CachedSession(CacheMixin):
    """A ``requests.Session`` with a cache (requests-cache's ``CachedSession``).

    Args:
        cache_name: Cache path, namespace or table, depending on the backend.
        backend: A name (``"sqlite"``, ``"redis"``, ``"mongodb"``, ``"gridfs"``,
            ``"dynamodb"``, ``"filesystem"``, ``"memory"``), a backend instance
            (``SQLiteCache()``, ``RedisBackend()``... shareable with async sessions) or
            None (SQLite).
        autoclose: Close the backend when this session closes (set False to share it).
        **kwargs: Cache settings under requests-cache's or aiohttp-client-cache's names
            (see :class:`CacheSettings`), then backend arguments (``wal``, ``host``...).

    With a backend instance, only the settings passed here are changed on it (a setting
    given with its default value is given: it is applied). Per
    request, ``get()`` & co. also take ``expire_after``, ``refresh``, ``force_refresh``
    and ``only_if_cached``.
    """


def _session_kwargs(init: Callable[..., None], kwargs: dict[str, Any]) -> dict[str, Any]:
    """Take out of ``kwargs`` the arguments that the next session class's ``__init__``
    names (none for ``requests.Session`` itself): requests-cache's ``CacheMixin`` rule."""
    try:
        params = inspect.signature(init).parameters.values()
    except (TypeError, ValueError):  # pragma: no cover - a builtin without a signature
        return {}
    names = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return {name: kwargs.pop(name) for name in names & kwargs.keys()}


def set_response_defaults(response: requests.Response, cache_key: str | None = None) -> OriginalResponse:
    """Give a response from outside the cache the cache attributes (``from_cache=False``,
    ``expires=None``...), as requests-cache's function of that name does."""
    return OriginalResponse.wrap(response, None)


def _read_timeout(timeout: Any) -> float | None:
    """requests' read timeout, from ``timeout=`` (seconds, or a (connect, read) pair)."""
    if isinstance(timeout, tuple):
        timeout = timeout[1] if len(timeout) == 2 else None
    return float(timeout) if isinstance(timeout, (int, float)) else None


class _Patient:
    """The origin sender of a request with a read timeout: a request coalesced onto a
    concurrent one raises requests' ReadTimeout if that answer has not begun in time,
    as it would on its own connection (see coalescing.Patience)."""

    __slots__ = ("_read", "_send")

    def __init__(self, send: Callable[[dict[str, str]], Awaitable[OriginResponse]], read: float) -> None:
        self._send, self._read = send, read

    def __call__(self, extra: dict[str, str]) -> Awaitable[OriginResponse]:
        return self._send(extra)

    def patience(self) -> Patience:
        read = self._read
        return Patience(None, read, lambda total: requests.exceptions.ReadTimeout(
            f"Read timed out waiting for a concurrent request's answer. (read timeout={read})"))


def _merged(kwargs: dict[str, Any], environment: Callable[[], dict[str, Any]] | None) -> dict[str, Any]:
    """send()'s arguments with requests' environment merge done (see
    :meth:`CachedSession.merge_environment_settings`)."""
    return kwargs if environment is None else {**kwargs, **environment()}


def _as_original(response: requests.Response, **kwargs: Any) -> requests.Response:
    return OriginalResponse.wrap(response, None)


def _options(expire_after: ExpirationTime, refresh: bool, force_refresh: bool,
             only_if_cached: bool) -> RequestOptions:
    return RequestOptions(UNSET if expire_after is None else expire_after, refresh, force_refresh,
                          only_if_cached)


def _fixed(name: str) -> NoReturn:
    raise AttributeError(f"session.{name} is fixed when the session is created; create a new "
                         f"CachedSession(backend=...) to use another backend")


OriginalSession = requests.Session  # requests-cache's name for the class it patches

__all__ = ["CacheMixin", "CachedSession", "OriginalSession", "set_response_defaults"]
