"""Responses as the async session hands them out.

:class:`CachedClientResponse` replays a stored response with the interface of
``aiohttp.ClientResponse``; :class:`OriginClientResponse` is aiohttp's own response
class with the same cache attributes, for answers that came from the origin.
"""

from __future__ import annotations

import codecs
import json as _json
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from http.cookies import SimpleCookie
from types import TracebackType
from typing import Any

from aiohttp import ClientResponse, ClientResponseError, ContentTypeError, RequestInfo
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from .models import CachedResponse, utcnow


def _mimetype(headers: CIMultiDictProxy[str] | CIMultiDict[str]) -> tuple[str, dict[str, str]]:
    raw = headers.get("Content-Type", "")
    mime, *params = raw.split(";")
    parsed = {}
    for param in params:
        name, _, value = param.partition("=")
        parsed[name.strip().lower()] = value.strip().strip('"')
    return mime.strip().lower() or "application/octet-stream", parsed


class OriginClientResponse(ClientResponse):
    """aiohttp's response, answered by the origin, with the cache attributes."""

    from_cache: bool = False
    created_at: datetime | None = None
    expires: datetime | None = None
    cache_key: str = ""

    def add_header(self, name: str, value: str) -> None:
        """Add a header the cache tells (``Cache-Status``) to what the origin sent."""
        headers = CIMultiDict(self._headers)
        headers.add(name, value)
        self._headers = CIMultiDictProxy(headers)
        self._raw_headers = (*self._raw_headers, (name.encode(), value.encode("latin-1")))
        for reified in ("headers", "raw_headers"):  # aiohttp caches them on first read
            self._cache.pop(reified, None)

    @property
    def is_expired(self) -> bool:
        return self.expires is not None and utcnow() >= self.expires


class _BodyStream:
    """The subset of aiohttp's StreamReader API that reads a body already in memory."""

    __slots__ = ("_body", "_pos")

    def __init__(self, body: bytes) -> None:
        self._body = body
        self._pos = 0

    def at_eof(self) -> bool:
        return self._pos >= len(self._body)

    async def read(self, n: int = -1) -> bytes:
        end = len(self._body) if n < 0 else self._pos + n
        chunk = self._body[self._pos : end]
        self._pos += len(chunk)
        return chunk

    async def readany(self) -> bytes:
        return await self.read()

    async def readexactly(self, n: int) -> bytes:
        chunk = await self.read(n)
        if len(chunk) < n:
            raise EOFError(f"{n} bytes expected, {len(chunk)} left")
        return chunk

    async def readline(self) -> bytes:
        end = self._body.find(b"\n", self._pos)
        return await self.read(-1 if end < 0 else end + 1 - self._pos)

    async def iter_chunked(self, n: int) -> AsyncIterator[bytes]:
        while not self.at_eof():
            yield await self.read(n)

    async def iter_any(self) -> AsyncIterator[bytes]:
        if not self.at_eof():
            yield await self.read()

    async def iter_chunks(self) -> AsyncIterator[tuple[bytes, bool]]:
        if not self.at_eof():
            yield await self.read(), True

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._lines()

    async def _lines(self) -> AsyncIterator[bytes]:
        while not self.at_eof():
            yield await self.readline()


class CachedClientResponse:
    """A stored response replayed with the interface of ``aiohttp.ClientResponse``.

    Built lazily: a hit costs one object; URL, headers proxy and body stream are made
    only when asked for.
    """

    __slots__ = (
        "_age",
        "_cache_status",
        "_cached",
        "_content",
        "_headers",
        "_history",
        "_url",
        "from_cache",
        "method",
    )

    def __init__(self, cached: CachedResponse, method: str, from_cache: bool = True,
                 age: float | None = None, cache_status: str | None = None) -> None:
        self._cached = cached
        self.method = method
        self.from_cache = from_cache
        self._age = age
        self._cache_status = cache_status
        self._headers: CIMultiDictProxy[str] | None = None
        self._url: URL | None = None
        self._content: _BodyStream | None = None
        self._history: tuple[CachedClientResponse, ...] | None = None

    # -- status line and headers ------------------------------------------------
    @property
    def status(self) -> int:
        return self._cached.status

    @property
    def reason(self) -> str:
        return self._cached.reason

    @property
    def ok(self) -> bool:
        return self._cached.status < 400

    @property
    def headers(self) -> CIMultiDictProxy[str]:
        if self._headers is None:
            headers = self._cached.headers
            if self._age is not None or self._cache_status is not None:
                headers = CIMultiDict(headers)
                if self._age is not None:
                    headers["Age"] = str(int(self._age))
                if self._cache_status is not None:
                    headers["Cache-Status"] = self._cache_status
            self._headers = CIMultiDictProxy(headers)
        return self._headers

    @property
    def raw_headers(self) -> tuple[tuple[bytes, bytes], ...]:
        # aiohttp decodes header bytes as UTF-8 with surrogateescape: this gives them back.
        return tuple((k.encode("utf-8", "surrogateescape"), v.encode("utf-8", "surrogateescape"))
                     for k, v in self.headers.items())

    @property
    def url(self) -> URL:
        if self._url is None:
            self._url = URL(self._cached.url)
        return self._url

    @property
    def real_url(self) -> URL:
        return self.url

    @property
    def host(self) -> str:
        return self.url.host or ""

    @property
    def version(self) -> Any:
        from aiohttp import HttpVersion11

        return HttpVersion11

    @property
    def history(self) -> tuple[CachedClientResponse, ...]:
        if self._history is None:
            self._history = tuple(CachedClientResponse(h, h.request.method, self.from_cache)
                                  for h in self._cached.history)
        return self._history

    @property
    def request_info(self) -> RequestInfo:
        request = self._cached.request
        url = URL(request.url)
        return RequestInfo(url, request.method, CIMultiDictProxy(request.headers), url)

    @property
    def content_type(self) -> str:
        return _mimetype(self.headers)[0]

    @property
    def charset(self) -> str | None:
        return _mimetype(self.headers)[1].get("charset")

    @property
    def content_length(self) -> int | None:
        raw = self.headers.get("Content-Length")
        return int(raw) if raw and len(raw) <= 19 and raw.isascii() and raw.isdigit() else None

    @property
    def cookies(self) -> SimpleCookie:
        cookies: SimpleCookie = SimpleCookie()
        for header in self.headers.getall("Set-Cookie", ()):
            cookies.load(header)
        return cookies

    @property
    def links(self) -> Any:
        return {}

    # -- cache information ---------------------------------------------------------
    @property
    def created_at(self) -> datetime:
        return self._cached.created_at

    @property
    def expires(self) -> datetime | None:
        return self._cached.expires

    @property
    def is_expired(self) -> bool:
        return self._cached.is_expired

    @property
    def cache_key(self) -> str:
        return self._cached.cache_key

    @property
    def ttl(self) -> int | None:
        return self._cached.ttl

    # -- body -----------------------------------------------------------------------
    @property
    def content(self) -> _BodyStream:
        if self._content is None:
            self._content = _BodyStream(self._cached.body)
        return self._content

    @property
    def _body(self) -> bytes:
        return self._cached.body

    async def read(self) -> bytes:
        return self._cached.body

    def get_encoding(self) -> str:
        """The charset named by Content-Type if Python knows it (as aiohttp: an unknown
        or garbled one is ignored), else the stored encoding, else UTF-8."""
        for name in (self.charset, self._cached.encoding):
            if name:
                try:
                    return codecs.lookup(name).name
                except (LookupError, ValueError):  # ValueError: a name with surrogates or NUL
                    continue
        return "utf-8"

    async def text(self, encoding: str | None = None, errors: str = "strict") -> str:
        return self._cached.body.decode(encoding or self.get_encoding(), errors=errors)

    async def json(
        self,
        *,
        encoding: str | None = None,
        loads: Callable[[str], Any] = _json.loads,
        content_type: str | None = "application/json",
    ) -> Any:
        if content_type and content_type not in self.content_type:
            raise ContentTypeError(
                self.request_info, self._error_history(), status=self.status,
                headers=self.headers,
                message=f"Attempt to decode JSON with unexpected mimetype: {self.content_type}",
            )
        stripped = self._cached.body.strip()
        if not stripped:
            return None
        return loads(stripped.decode(encoding or self.get_encoding()))

    def raise_for_status(self) -> None:
        if self.status >= 400:
            raise ClientResponseError(self.request_info, self._error_history(),
                                      status=self.status, message=self.reason,
                                      headers=self.headers)

    def _error_history(self) -> tuple[ClientResponse, ...]:
        # aiohttp types this as ClientResponse; the replayed hops quack the same.
        return self.history  # type: ignore[return-value]

    # -- life cycle (nothing to release: the body is in memory) ------------------------
    @property
    def closed(self) -> bool:
        return True

    def release(self) -> Any:
        return None

    def close(self) -> None:
        return None

    async def wait_for_close(self) -> None:
        return None

    async def __aenter__(self) -> CachedClientResponse:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        return None

    def __repr__(self) -> str:
        return f"<CachedClientResponse({self._cached.url}) [{self.status} {self.reason}]>"
