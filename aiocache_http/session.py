"""CachedClientSession: an ``aiohttp.ClientSession`` that answers from a cache."""

from __future__ import annotations

import asyncio
import base64
import functools
import inspect
import logging
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from http.cookies import CookieError, SimpleCookie
from types import TracebackType
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import (
    BasicAuth,
    ClientConnectionError,
    ClientResponse,
    ClientSession,
    ClientTimeout,
    CookieJar,
    ServerTimeoutError,
)
from aiohttp.client import _BaseRequestContextManager
from aiohttp.helpers import sentinel
from multidict import CIMultiDict
from yarl import URL

from .backends import CacheBackend, init_backend
from .backends.base import _disabled as _disabled_ids  # CacheBackend.disabled's own
from .cache_keys import JsonSerialize, NotKeyable, request_body
from .coalescing import Patience
from .content import ReplayStream, arrived_body, whole_body
from .driver import HitMemo, OriginResponse, Outcome, fetch, serve_inline
from .memo import Memo
from .models import NO_HEADERS, CachedRequest
from .models.frozen import fast_init
from .policy import core
from .policy.core import UNSET, RequestOptions
from .policy.settings import CacheSettings
from .response import CachedClientResponse, OriginClientResponse, attach_tee, drain, naive

if TYPE_CHECKING:
    from aiohttp.client import _RequestOptions
    from typing_extensions import Self, Unpack

    from .policy.expiration import ExpirationTime

    class CachedRequestOptions(_RequestOptions, total=False):
        """What ``session.get()`` & co. accept: aiohttp's keywords and the cache's own."""

        expire_after: ExpirationTime
        refresh: bool
        force_refresh: bool
        only_if_cached: bool

logger = logging.getLogger("aiocache_http")

_NETWORK_ERRORS = (ClientConnectionError, asyncio.TimeoutError, OSError)
# aiohttp-client-cache's rule for request Cache-Control (see RequestOptions.header_rule).
_OPTIONS = RequestOptions(header_rule="cache_control")
_URL_MEMO_SIZE = 4096  # as the backend's key memo: a working set of URLs about that size is parsed once
_PLAIN = frozenset({"allow_redirects"})  # what get() & co. pass on their own


with warnings.catch_warnings():
    # aiohttp discourages subclassing ClientSession; overriding _request is the one
    # hook it has, and aiohttp-client-cache relies on it the same way.
    warnings.simplefilter("ignore", DeprecationWarning)

    class CacheMixin(ClientSession):
        """The cache, for any ``aiohttp.ClientSession`` subclass: ``class MySession(CacheMixin,
        ClientSession)`` (aiohttp-client-cache's mixin). :class:`CachedClientSession` is
        the ready-made one; see it for the arguments."""

        ATTRS = ClientSession.ATTRS | frozenset({"_cache", "_plans", "expire_after"})
        # aiohttp < 3.10 has no session-wide proxy_auth: none (a later aiohttp's own wins)
        _default_proxy_auth: BasicAuth | None = None

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
            # (method, URL as given) -> the request and its plan, for a plain request
            self._plans: Memo[tuple[str, str | URL, Any], _Memo] = Memo(_URL_MEMO_SIZE)
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
            for name in dropped:  # dropped as aiohttp-client-cache does, but a typo is said
                close = CacheSettings.close_to(name)
                if close is not None:
                    warnings.warn(f"{type(self).__name__}: ignoring unknown argument {name!r}; "
                                  f"did you mean the cache setting {close!r}?", stacklevel=4)
            return {k: v for k, v in kwargs.items() if k in params}

        @property
        def cache(self) -> CacheBackend:
            return self._cache

        @property
        def settings(self) -> CacheSettings:
            return self._cache.settings

        @property
        def expire_after(self) -> ExpirationTime:
            """``settings.expire_after`` (requests-cache's session attribute)."""
            return self._cache.settings.expire_after

        @expire_after.setter
        def expire_after(self, value: ExpirationTime) -> None:
            self._cache.settings.expire_after = value

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
            key = self._cache.create_key(self._cached_request(method.upper(), url, kwargs))
            return await self._cache.responses.contains(key)

        async def delete_url(self, url: str | URL, method: str = "GET", **kwargs: Any) -> None:
            """Delete the stored response for this request."""
            await self._cache.delete(self._cache.create_key(
                self._cached_request(method.upper(), url, kwargs)))

        async def delete_expired_responses(self) -> None:
            await self._cache.delete_expired_responses()

        if TYPE_CHECKING:
            # For type checkers: aiohttp's keywords and the cache's own, checked (aiohttp's
            # signatures take **kwargs: Any before Python 3.11: hence the ignores).
            async def __aenter__(self) -> Self: ...  # aiohttp's says ClientSession

            def request(self, method: str, url: str | URL,  # type: ignore[override]
                        **kwargs: Unpack[CachedRequestOptions]) -> _Call: ...

            def get(self, url: str | URL,  # type: ignore[override]
                    **kwargs: Unpack[CachedRequestOptions]) -> _Call: ...

            def options(self, url: str | URL,  # type: ignore[override]
                        **kwargs: Unpack[CachedRequestOptions]) -> _Call: ...

            def head(self, url: str | URL,  # type: ignore[override]
                     **kwargs: Unpack[CachedRequestOptions]) -> _Call: ...

            def post(self, url: str | URL,  # type: ignore[override]
                     **kwargs: Unpack[CachedRequestOptions]) -> _Call: ...

            def put(self, url: str | URL,  # type: ignore[override]
                    **kwargs: Unpack[CachedRequestOptions]) -> _Call: ...

            def patch(self, url: str | URL,  # type: ignore[override]
                      **kwargs: Unpack[CachedRequestOptions]) -> _Call: ...

            def delete(self, url: str | URL,  # type: ignore[override]
                       **kwargs: Unpack[CachedRequestOptions]) -> _Call: ...

        else:
            # aiohttp's own, each answering with _Call instead of _RequestContextManager:
            # that one is a generic alias, and calling an alias costs a failed setattr (its
            # __orig_class__ on a slotted object: an AttributeError made and dropped) per request.
            def request(self, method: str, url: str | URL, **kwargs: Any) -> _Call:
                return _Call(self._request(method, url, **kwargs))

            def get(self, url: str | URL, *, allow_redirects: bool = True,
                    **kwargs: Any) -> _Call:
                return _Call(self._request("GET", url, allow_redirects=allow_redirects, **kwargs))

            def options(self, url: str | URL, *, allow_redirects: bool = True,
                        **kwargs: Any) -> _Call:
                return _Call(self._request("OPTIONS", url, allow_redirects=allow_redirects, **kwargs))

            def head(self, url: str | URL, *, allow_redirects: bool = False,
                     **kwargs: Any) -> _Call:
                return _Call(self._request("HEAD", url, allow_redirects=allow_redirects, **kwargs))

            def post(self, url: str | URL, *, data: Any = None, **kwargs: Any) -> _Call:
                return _Call(self._request("POST", url, data=data, **kwargs))

            def put(self, url: str | URL, *, data: Any = None, **kwargs: Any) -> _Call:
                return _Call(self._request("PUT", url, data=data, **kwargs))

            def patch(self, url: str | URL, *, data: Any = None, **kwargs: Any) -> _Call:
                return _Call(self._request("PATCH", url, data=data, **kwargs))

            def delete(self, url: str | URL, **kwargs: Any) -> _Call:
                return _Call(self._request("DELETE", url, **kwargs))

        async def _request(  # type: ignore[override]
            self, method: str, str_or_url: str | URL, *,
            expire_after: Any = UNSET, refresh: bool = False, force_refresh: bool = False,
            only_if_cached: bool = False, **kwargs: Any,
        ) -> ClientResponse | CachedClientResponse:
            method = method.upper()
            plain = (not (refresh or force_refresh or only_if_cached) and expire_after is UNSET
                     and (not kwargs or kwargs.keys() == _PLAIN))
            if plain:
                memo = self._plans[method, str_or_url, kwargs.get("allow_redirects", True)]
                if memo is not None and memo.holds(self):
                    # A plain request seen before: its key and plan are worked out already.
                    outcome = serve_inline(self._cache, memo.plan, None, memo.hit) or await fetch(
                        self._cache, memo.request, _OPTIONS, memo.send, _NETWORK_ERRORS,
                        plan=memo.plan, inline_tried=True)
                    check = self._raise_for_status
                    if outcome.raw is None and outcome.response is not None:  # (_respond's first way)
                        result: ClientResponse | CachedClientResponse = CachedClientResponse.replay(
                            outcome.response, method, outcome.from_cache, outcome.age,
                            outcome.cache_status)
                    else:
                        result = self._respond(outcome, method)
                    return await self._checked(result, check) if check else result
            keyable = True
            disabled = self._cache.disabled
            settings = self._cache.settings
            # A plain request whose plan _remember() keeps (the default options, no headers,
            # nothing read per request): that memo answers it next time, so its URL and key
            # are not memoized a second time (cheaper misses).
            remembered = (plain and not disabled and method in settings.allowed_methods
                          and not settings.urls_expire_after and settings.key_fn is None
                          and not len(self._cookie_jar) and self._auto_decompress)
            keep = not remembered
            identity = None  # the key, worked out once (a disabled cache needs none)
            try:
                url = self._url(str_or_url, keep)
                # The body enters the key of a method that may be stored only: another one
                # passes the cache by (its json= is serialized once, by aiohttp).
                request = self._cached_request(method, str_or_url, kwargs,
                                               body=method in settings.allowed_methods, parsed=url,
                                               plain=remembered)
                if not disabled:
                    identity = self._cache.identify(request, keep)
            except ValueError:
                # A URL we cannot parse: aiohttp decides (and raises its own
                # InvalidUrlClientError & co.).
                return await super()._request(method, str_or_url, **kwargs)
            except NotKeyable:  # a streamed body: the core lets it pass the cache by
                request = self._cached_request(method, str_or_url, kwargs, body=False, parsed=url)
                keyable = False
            options = _OPTIONS  # the defaults: the common case, kept cheap
            if (expire_after is not UNSET or refresh or force_refresh or only_if_cached or disabled
                    or not keyable):
                options = RequestOptions(expire_after, refresh, force_refresh, only_if_cached,
                                         disabled, keyable, header_rule="cache_control")
            headers = None
            # Checked below, once the answer is stored: a cached 404 raises like a live one.
            check = self._raise_for_status
            if not plain:
                headers = kwargs.pop("headers", None)
                given = kwargs.pop("raise_for_status", None)
                check = check if given is None else given

            send = _Sender(self, method, str_or_url, url if isinstance(str_or_url, str) else None,
                           headers, kwargs or _NO_KWARGS)
            plan = core.plan(request, settings, options, self._cache.identify_bound, identity)
            if remembered and plan.bypass is None:
                # What the plan was made from, as it is now (the memo holds while it does).
                made_from = (settings.version, tuple(self._default_headers.items()),
                             self._default_auth, self._default_proxy_auth)
                outcome = await fetch(self._cache, request, options, send, _NETWORK_ERRORS, plan=plan)
                # Kept unless this request just stored its response: a URL seen once (most
                # misses) costs no memo; seen again, it is a hit, and kept then.
                if outcome.from_cache or outcome.response is None:
                    self._remember(method, str_or_url, request, plan, send, made_from)
            else:
                outcome = await fetch(self._cache, request, options, send, _NETWORK_ERRORS, plan=plan)
            result = self._respond(outcome, method)
            return await self._checked(result, check) if check else result

        async def _checked(self, result: ClientResponse | CachedClientResponse,
                           check: Any) -> ClientResponse | CachedClientResponse:
            """Raise for a cached 4xx/5xx as for a live one (``raise_for_status``)."""
            if check is True:
                result.raise_for_status()
            elif callable(check):
                await check(result)  # replayed responses quack alike
            return result

        def _remember(self, method: str, str_or_url: str | URL, request: CachedRequest,
                      plan: core.Plan, send: Callable[[dict[str, str]], Awaitable[OriginResponse]],
                      made_from: tuple[int, tuple[tuple[str, str], ...], BasicAuth | None,
                                       BasicAuth | None]) -> None:
            """Keep a plain request's plan while what it was made from holds (see _Memo):
            ``made_from``, the settings' version, default headers and auth when it was made;
            ``send``: its sender (no headers, only ``allow_redirects``: the same for every hit).
            Only for a request that passes no bypass and reads nothing per request (per-URL
            expiry patterns, cookies): the caller checks."""
            if isinstance(send, _Sender):
                send.parsed = None  # (unsent, a hit's: not kept, see _Sender)
            self._plans = self._plans.with_entry((method, str_or_url, request.follow_redirects), _Memo(
                request, plan, plan.settings, *made_from, send))

        def _respond(self, outcome: Outcome, method: str) -> ClientResponse | CachedClientResponse:
            cached = outcome.response
            if outcome.raw is None:
                assert cached is not None
                return CachedClientResponse.replay(cached, method, outcome.from_cache, outcome.age,
                                                   outcome.cache_status)
            raw = outcome.raw
            if cached is not None and not isinstance(raw, CachedClientResponse):
                # (a CachedClientResponse from the origin: a test double, as in
                # aiohttp-client-cache's examples; it has its own)
                raw.created_at = naive(cached.created_at)
                raw.expires = None if cached.expires is None else naive(cached.expires)
                raw.cache_key = cached.cache_key
            if isinstance(raw, ClientResponse) and raw._body is not None:
                raw.content = ReplayStream(raw._body)  # type: ignore[assignment]  # streams again
            if outcome.cache_status is not None:
                raw.add_header("Cache-Status", outcome.cache_status)
            return raw  # type: ignore[no-any-return]

        def _cached_request(self, method: str, str_or_url: str | URL, kwargs: Mapping[str, Any],
                            body: bool = True, parsed: tuple[URL, str] | None = None,
                            plain: bool = False) -> CachedRequest:
            """The request as the cache sees it: full URL, merged headers (the cookies aiohttp
            will send among them), body bytes. ValueError for a URL aiohttp would refuse.
            ``parsed``: ``self._url(str_or_url)``, when the caller has it already; ``plain``:
            the caller found ``kwargs`` plain (only ``allow_redirects``) and the jar empty."""
            url, url_text = self._url(str_or_url) if parsed is None else parsed
            if ((plain or (not kwargs.keys() - _PLAIN and not len(self._cookie_jar)))
                    and not self._default_headers
                    and self._default_auth is None and self._default_proxy_auth is None
                    and url.user is None and self._auto_decompress):
                # nothing to merge in: what the way below gives
                return CachedRequest(method, url_text, NO_HEADERS, b"",
                                     follow_redirects=kwargs.get("allow_redirects", True))
            if kwargs.get("params"):
                url = url.extend_query(kwargs["params"])
                url_text = str(url)
            given = kwargs.get("headers")
            if not given and not self._default_headers:
                headers: CIMultiDict[str] = CIMultiDict()
            else:
                headers = self._prepare_headers(given)
            auth = kwargs.get("auth") or self._default_auth
            if isinstance(auth, BasicAuth) and "Authorization" not in headers:
                headers["Authorization"] = auth.encode()
            elif auth is None and url.user is not None and "Authorization" not in headers:
                headers["Authorization"] = _basic_auth(url.user, url.password or "")  # as aiohttp
            proxy_auth = kwargs.get("proxy_auth") or self._default_proxy_auth
            if isinstance(proxy_auth, BasicAuth) and "Proxy-Authorization" not in headers:
                headers["Proxy-Authorization"] = proxy_auth.encode()
            cookie = self._cookie_header(url, headers.getall("Cookie", ()), kwargs.get("cookies"))
            if cookie:
                headers.popall("Cookie", None)
                headers["Cookie"] = cookie
            content, content_type = (request_body(kwargs.get("data"), kwargs.get("json"),
                                                  self._json_serializer())
                                     if body else (b"", None))
            if content_type and "Content-Type" not in headers:
                headers["Content-Type"] = content_type
            verify = kwargs.get("ssl", True) is not False and kwargs.get("verify_ssl") is not False
            decoded = kwargs.get("auto_decompress")
            return CachedRequest(method, url_text, headers, content,
                                 follow_redirects=kwargs.get("allow_redirects", True), verify=verify,
                                 decoded=self._auto_decompress if decoded is None else bool(decoded))

        def _json_serializer(self) -> JsonSerialize:
            as_bytes = getattr(self, "_json_serialize_bytes", None)
            return as_bytes if callable(as_bytes) else self._json_serialize

        def _url(self, str_or_url: str | URL, keep: bool = True) -> tuple[URL, str]:
            """The full URL as aiohttp builds it, and as text; memoized for a hot URL string
            (with ``keep``: not for one whose plan the session keeps). ValueError for a URL
            aiohttp would refuse."""
            memo = self._cache._urls
            # (without keep, neither kept nor looked up: a plan memo keeps it)
            memo_key = (self._base_url, str_or_url) if keep and isinstance(str_or_url, str) else None
            found = memo[memo_key] if memo_key is not None else None
            if found is None:
                url = self._build_url(str_or_url)
                if not url.absolute or url.scheme not in ("http", "https"):
                    raise ValueError(f"not an http(s) URL: {str_or_url!r}")
                found = (url, str(url))
                if memo_key is not None and keep:
                    self._cache._urls = memo.with_entry(memo_key, found)
            return found

        def _cookie_header(self, url: URL, explicit: Iterable[str], cookies: Any) -> str:
            """Every cookie aiohttp will send with this request: the Cookie header, the
            session jar's cookies for ``url``, the per-request ``cookies=``. They identify
            the user, so they are part of the key (hashed; redacted in storage)."""
            explicit = list(explicit)
            jar_size = len(self._cookie_jar)
            if not (explicit or jar_size or cookies):
                return ""
            found: SimpleCookie = SimpleCookie()
            unparsed = []  # kept as they are: in the key all the same
            for line in explicit:
                try:
                    found.load(line)
                except CookieError:
                    unparsed.append(line)
            if jar_size:
                found.load(self._cookie_jar.filter_cookies(url))
            if cookies:
                jar = CookieJar(unsafe=True, quote_cookie=getattr(self._cookie_jar, "quote_cookie", True))
                jar.update_cookies(cookies)
                found.load(jar.filter_cookies(url))
            pairs = [f"{name}={morsel.coded_value}" for name, morsel in found.items()]
            return "; ".join([*pairs, *unparsed])


_NO_KWARGS: dict[str, Any] = {}  # (never changed: a plain request's, shared)


class _Sender:
    """Sends a request to the origin: the caller's ``headers`` plus the ones the cache adds
    (``extra``: validators), aiohttp's own ``raise_for_status`` held back. ``url``: the URL
    as given; ``parsed``: it parsed as aiohttp's own _build_url would, and as text (the URL
    the key was made from), for the first call (aiohttp does not parse it again).

    An object, not a closure: a plain request's plan memo keeps it (one object where a
    closure keeps a function, its cells and the parsed URL: what the garbage collector
    goes through grows with each URL kept). The parsed URL serves the first call only;
    sent again (a revalidation), the URL as given is parsed again, by aiohttp."""

    __slots__ = ("given", "headers", "kwargs", "method", "parsed", "session")

    def __init__(self, session: CacheMixin, method: str, given: str | URL,
                 parsed: tuple[URL, str] | None, headers: Any, kwargs: dict[str, Any]) -> None:
        self.session, self.method, self.given, self.parsed = session, method, given, parsed
        self.headers, self.kwargs = headers, kwargs

    def patience(self) -> Patience:
        """How long this request may wait for a concurrent one's answer: its own
        timeout (``timeout=``, else the session's), as aiohttp would apply it."""
        timeout = self.kwargs.get("timeout", sentinel)
        if timeout is sentinel:
            timeout = self.session._timeout
        if isinstance(timeout, ClientTimeout):
            return Patience(timeout.total, timeout.sock_read, _timed_out)
        return Patience(None if timeout is None else float(timeout), None, _timed_out)

    async def __call__(self, extra: dict[str, str]) -> OriginResponse:
        merged: Any = extra or None
        headers = self.headers
        if headers is not None:
            merged = CIMultiDict(headers)
            merged.update(extra)
        target: str | URL = self.given
        text = None
        if self.parsed is not None:
            (target, text), self.parsed = self.parsed, None  # (not kept: see above)
        # The next _request after the cache's: aiohttp's, or a mixin's in between
        # (class S(CacheMixin, OtherMixin, ClientSession), as both peers document).
        response = await super(CacheMixin, self.session)._request(
            self.method, target, headers=merged, raise_for_status=False, **self.kwargs)
        # The URL answered, as text: the one sent unless redirected (or rewritten).
        return _origin(response, text if response.url is target else None)


def _timed_out(total: bool) -> BaseException:
    """What aiohttp raises when a request's total timeout, or its ``sock_read``, runs out."""
    if total:
        return asyncio.TimeoutError()
    return _SocketTimeoutError("Timeout on reading data from socket")


# aiohttp >= 3.10 raises a subclass of ServerTimeoutError for sock_read
_SocketTimeoutError: type[ServerTimeoutError] = getattr(aiohttp, "SocketTimeoutError", ServerTimeoutError)


class _Call(_BaseRequestContextManager[OriginClientResponse]):
    """What ``session.get()`` & co. return: aiohttp's request context manager (awaitable,
    ``async with``), as a class of its own rather than a generic alias (see request()).
    Typed as answering an :class:`OriginClientResponse` (aiohttp's response with the cache
    attributes: ``from_cache``, ``expires``...); a hit's :class:`CachedClientResponse`
    quacks alike."""

    __slots__ = ()

    def __init__(self, coro: Coroutine[Any, Any, ClientResponse | CachedClientResponse]) -> None:
        self._coro = coro  # type: ignore[assignment]  # a replayed response quacks alike

    async def __aenter__(self) -> OriginClientResponse:
        response: Any = await self._coro
        self._resp = response
        if type(response) is CachedClientResponse:  # its __aenter__ is itself: one coroutine less
            return response  # type: ignore[return-value]
        return await response.__aenter__()  # type: ignore[no-any-return]

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        response: Any = self._resp
        if type(response) is CachedClientResponse and response._cached.stored_body is None:
            return  # nothing to close (what its __aexit__ would find): one coroutine less
        await response.__aexit__(exc_type, exc, tb)


@fast_init
@dataclass(frozen=True, slots=True)
class _Memo:
    """A plain request's key and plan (:func:`core.plan`), valid while what they were
    made from holds: the same settings, default headers and auth, an empty cookie jar."""

    request: CachedRequest
    plan: core.Plan
    settings: CacheSettings
    version: int
    headers: tuple[tuple[str, str], ...]
    auth: BasicAuth | None
    proxy_auth: BasicAuth | None
    send: Callable[[dict[str, str]], Awaitable[OriginResponse]]  # made once: the same for every hit
    hit: HitMemo = field(default_factory=HitMemo)  # its last fresh verdict (serve_inline)

    def holds(self, session: CacheMixin) -> bool:
        """And the cache is not disabled here (``cache.disabled``, read inline)."""
        cache = session._cache
        settings = cache.settings
        defaults = session._default_headers
        jar = session._cookie_jar
        disabled = _disabled_ids.get()
        return (settings is self.settings and settings.version == self.version
                # aiohttp's jar is empty when it keeps no domain (its __len__, without the call;
                # a later aiohttp without _cookies takes len())
                and ((type(jar) is CookieJar and not getattr(jar, "_cookies", True)) or not len(jar))
                and session._default_auth is self.auth
                and session._default_proxy_auth is self.proxy_auth
                and (tuple(defaults.items()) == self.headers if defaults or self.headers else True)
                and (not disabled or id(cache) not in disabled))


def _basic_auth(login: str, password: str) -> str:
    """The Authorization aiohttp sends for user info in a URL (latin-1, as BasicAuth)."""
    raw = f"{login}:{password}"
    try:
        encoded = raw.encode("latin-1")
    except UnicodeEncodeError:
        encoded = raw.encode("utf-8", "surrogatepass")
    return "Basic " + base64.b64encode(encoded).decode("ascii")


def _backend_of(cache: Any) -> CacheBackend:
    """``cache``, or the async backend behind a requests-cache-style one."""
    if isinstance(cache, CacheBackend):
        return cache
    inner = getattr(cache, "backend", None)
    if isinstance(inner, CacheBackend):
        return inner
    raise TypeError(f"cache must be a CacheBackend (SQLiteBackend(), RedisBackend()...), "
                    f"not {cache!r}")


_CHARSETS: Memo[str | None, tuple[str | None]] = Memo(256)
"""Content-Type -> (aiohttp's charset of it,): aiohttp parses it anew for each response."""


def _origin(response: ClientResponse, url: str | None = None) -> OriginResponse:
    """``response`` as the driver takes it; ``url``: its URL as text, when known."""
    global _CHARSETS
    headers = response.headers
    content_type = headers.get("Content-Type")
    charset = _CHARSETS[content_type]
    if charset is None:
        charset = (response.charset,)  # (a function of the Content-Type alone)
        _CHARSETS = _CHARSETS.with_entry(content_type, charset)
    arrived = arrived_body(response.content)
    return OriginResponse(
        status=response.status,
        reason=response.reason or "",
        url=str(response.url) if url is None else url,
        headers=CIMultiDict(headers),
        raw=response,
        tee=functools.partial(attach_tee, response),
        drain=drain,
        release=response.release,
        encoding=charset[0],
        history=[(r.method, str(r.url), r.status, r.reason or "", CIMultiDict(r.headers))
                 for r in response.history] if response.history else (),
        sent_headers=response.request_info.headers,  # (read only: not copied)
        # (no frame of ours; none needed for a body that arrived with the head)
        whole=None if arrived is not None else functools.partial(whole_body, response.content),
        arrived=arrived,
    )


with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)

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


CachedSession = CachedClientSession  # aiohttp-client-cache's name

__all__ = ["CacheMixin", "CachedClientSession", "CachedSession"]
