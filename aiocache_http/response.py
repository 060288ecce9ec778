"""Responses as the async session hands them out.

:class:`CachedClientResponse` replays a stored response with the interface of
``aiohttp.ClientResponse``; :class:`OriginClientResponse` is aiohttp's own response
class with the same cache attributes, for answers that came from the origin (on a miss
its ``content`` is a :class:`~aiocache_http.content.TeeStreamReader`: what the caller
reads is stored). A replayed large body left in storage is read from there: whole by
``read()``, in chunks through ``content``.
"""

from __future__ import annotations

import asyncio
import codecs
import json as _json
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from http.cookies import SimpleCookie
from types import MappingProxyType, TracebackType
from typing import Any

from aiohttp import (
    ClientPayloadError,
    ClientResponse,
    ClientResponseError,
    ContentTypeError,
    RequestInfo,
    multipart,
)
from aiohttp.client_reqrep import ContentDisposition
from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy
from yarl import URL

from .backends import base as _base
from .backends.views import ResponsesView
from .content import ReplayStream, TeeStreamReader
from .models import NO_HEADERS, CachedRequest, StoredBodyError, utcnow
from .models import CachedResponse as Record
from .models.convert import as_record, aware
from .streaming import Tee

_JSON_TYPE = re.compile(r"^application/(?:[\w.+-]+?\+)?json")
_LINK = re.compile(r"\s*<(.*)>(.*)")
_LINK_PARAM = re.compile(r"^(?P<key>[^=]+)=(?:\"(?P<quoted>[^\"]*)\"|(?P<plain>[^;]*))$")


def naive(value: datetime) -> datetime:
    """UTC without tzinfo: how aiohttp-client-cache reports cache times."""
    if value.tzinfo is timezone.utc:  # (the clock's own: no conversion)
        return value.replace(tzinfo=None)
    return value.astimezone(timezone.utc).replace(tzinfo=None)


def expected_content_type(actual: str, expected: str) -> bool:
    """aiohttp's rule for ``json(content_type=...)``: ``application/json`` accepts any
    ``application/*+json`` type too."""
    if expected == "application/json":
        return _JSON_TYPE.match(actual) is not None
    return expected in actual


def parse_links(values: Iterable[str], base: URL) -> MultiDictProxy[MultiDictProxy[str | URL]]:
    """Link headers (RFC 8288) as aiohttp's ``ClientResponse.links`` gives them."""
    links: MultiDict[MultiDictProxy[str | URL]] = MultiDict()
    for value in re.split(r",(?=\s*<)", ", ".join(values)):
        match = _LINK.match(value)
        if match is None:
            continue
        target, params = match.groups()
        link: MultiDict[str | URL] = MultiDict()
        for param in params.split(";")[1:]:
            found = _LINK_PARAM.match(param.strip())
            if found is not None:
                link.add(found["key"].strip(), found["quoted"] if found["quoted"] is not None
                         else found["plain"].strip())
        key = link.get("rel", target)
        link.add("url", base.join(URL(target)))
        links.add(str(key), MultiDictProxy(link))
    return MultiDictProxy(links)


def _decoded(raw: Iterable[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    return [(k.decode("utf-8", "surrogateescape"), v.decode("utf-8", "surrogateescape"))
            for k, v in raw]


def _mimetype(headers: CIMultiDictProxy[str] | CIMultiDict[str]) -> tuple[str, dict[str, str]]:
    raw = headers.get("Content-Type", "")
    mime, *params = raw.split(";")
    parsed = {}
    for param in params:
        name, _, value = param.partition("=")
        parsed[name.strip().lower()] = value.strip().strip('"')
    return mime.strip().lower() or "application/octet-stream", parsed


class OriginClientResponse(ClientResponse):
    """aiohttp's response, answered by the origin, with the cache attributes (naive UTC
    times, as on :class:`CachedClientResponse`)."""

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
        return self.expires is not None and naive(utcnow()) >= self.expires


async def attach_tee(response: ClientResponse, tee: Tee) -> ClientResponse:
    """Make what the caller reads of ``response``'s body pass through ``tee``."""
    content = TeeStreamReader(response.content, tee)
    response.content = content  # type: ignore[assignment]  # a StreamReader in all it does
    await content.start()
    return response


async def drain(response: ClientResponse) -> None:
    """Read ``response``'s body to its end for nobody (so its tee stores it)."""
    try:
        async for _ in response.content.iter_any():
            pass
    finally:
        response.release()


_closing: set[asyncio.Task[None]] = set()


class CachedClientResponse:
    """A stored response replayed with the interface of ``aiohttp.ClientResponse``
    (aiohttp-client-cache's ``CachedResponse``).

    Sessions build it with :meth:`replay`, lazily: a hit costs one object; URL, headers
    proxy and body stream are made only when asked for. The constructor takes
    aiohttp-client-cache's keyword arguments, for code that builds responses itself.
    ``created_at`` and ``expires`` are naive UTC datetimes, as in aiohttp-client-cache.
    """

    __slots__ = (
        "_age",
        "_cache_status",
        "_cached",
        "_content",
        "_headers",
        "_history",
        "_loaded",
        "_url",
        "from_cache",
        "method",
    )

    def __init__(
        self, method: str, reason: str, status: int, url: str | URL, version: str = "1.1",
        body: bytes | None = None, *, headers: Mapping[str, str] | None = None,
        raw_headers: Iterable[tuple[bytes, bytes]] = (),
        request_raw_headers: Iterable[tuple[bytes, bytes]] = (), real_url: str | URL | None = None,
        encoding: str | None = None, created_at: datetime | None = None,
        expires: datetime | None = None, history: Iterable[CachedClientResponse] = (),
        **_ignored: Any,
    ) -> None:
        stored: CIMultiDict[str] = CIMultiDict(_decoded(raw_headers))
        stored.extend(headers or {})
        request = CachedRequest(method.upper(), str(real_url or url),
                                CIMultiDict(_decoded(request_raw_headers)))
        record = Record(
            status, reason, str(url), stored, body or b"", request, encoding,
            aware(created_at) if created_at else utcnow(), aware(expires) if expires else None,
            history=tuple(hop._cached for hop in history),
        )
        self._init(record, method.upper(), True, None)

    @classmethod
    def replay(cls, cached: Record, method: str, from_cache: bool = True,
               age: float | None = None, cache_status: str | None = None) -> CachedClientResponse:
        """The stored ``cached`` as the answer to a ``method`` request; ``age`` (seconds)
        becomes the Age header, ``cache_status`` the Cache-Status one."""
        response = cls.__new__(cls)
        # (_init inline: every hit replays; keep the two alike)
        response._cached = cached
        response.method = method
        response.from_cache = from_cache
        response._age = age
        response._cache_status = cache_status
        response._headers = None
        response._url = None
        response._content = None
        response._history = None
        response._loaded = None
        return response

    def _init(self, cached: Record, method: str, from_cache: bool,
              age: float | None, cache_status: str | None = None) -> None:
        self._cached = cached
        self.method = method
        self.from_cache = from_cache
        self._age = age
        self._cache_status = cache_status
        self._headers: CIMultiDictProxy[str] | None = None
        self._url: URL | None = None
        self._content: ReplayStream | None = None
        self._history: tuple[CachedClientResponse, ...] | None = None
        self._loaded: bytes | None = None  # a body read from storage

    @classmethod
    async def from_client_response(cls, response: ClientResponse,
                                   expires: datetime | None = None) -> CachedClientResponse:
        """A live aiohttp response (its body is read here) as a replayable one."""
        await response.read()
        record = as_record(response, expires)
        return cls.replay(record, response.method)

    def __cache_record__(self) -> Record:
        return self._cached

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
            self._history = tuple(CachedClientResponse.replay(h, h.request.method, self.from_cache)
                                  for h in self._cached.history)
        return self._history

    @property
    def request_info(self) -> RequestInfo:
        request = self._cached.request
        url = URL(request.url)
        # (the shared NO_HEADERS would make a proxy's copy() read-only too: a user's copy is theirs)
        headers = request.headers if request.headers is not NO_HEADERS else CIMultiDict()
        return RequestInfo(url, request.method, CIMultiDictProxy(headers), url)

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
    def links(self) -> MultiDictProxy[MultiDictProxy[str | URL]]:
        """The Link header, parsed as aiohttp parses it."""
        return parse_links(self.headers.getall("Link", ()), self.url)

    @property
    def content_disposition(self) -> ContentDisposition | None:
        raw = self.headers.get("Content-Disposition")
        if raw is None:
            return None
        kind, params = multipart.parse_content_disposition(raw)
        return ContentDisposition(kind, MappingProxyType(params),
                                  multipart.content_disposition_filename(params))

    # -- cache information ---------------------------------------------------------
    @property
    def created_at(self) -> datetime:
        return naive(self._cached.created_at)

    @property
    def expires(self) -> datetime | None:
        return None if self._cached.expires is None else naive(self._cached.expires)

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
    # A large body may be left in storage (``stored_body``): read() loads it, content
    # streams it in chunks.
    @property
    def content(self) -> ReplayStream:
        if self._content is None:
            stored = self._cached.stored_body
            self._content = ReplayStream(self._cached.body) if stored is None else ReplayStream(stored=stored)
        return self._content

    def reset(self) -> None:
        """Rewind :attr:`content`, so the body can be streamed again."""
        self._content = None

    @property
    def _body(self) -> bytes:
        return self.body

    @property
    def body(self) -> bytes:
        """The stored body, as the record (:class:`aiocache_http.models.CachedResponse`) has
        it (a body left in storage: once read)."""
        if self._cached.stored_body is not None:
            return self._loaded or b""
        return self._cached.body

    async def read(self) -> bytes:
        stored = self._cached.stored_body
        if stored is None:
            return self._cached.body
        if self._loaded is None:
            try:
                self._loaded = await stored.read()
            except StoredBodyError as e:
                raise ClientPayloadError(f"Response payload is not completed: {e}") from e
        return self._loaded

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
        return (await self.read()).decode(encoding or self.get_encoding(), errors=errors)

    async def json(
        self,
        *,
        encoding: str | None = None,
        loads: Callable[[str], Any] = _json.loads,
        content_type: str | None = "application/json",
    ) -> Any:
        if content_type and not expected_content_type(self.content_type, content_type):
            raise ContentTypeError(
                self.request_info, self._error_history(), status=self.status,
                headers=self.headers,
                message=f"Attempt to decode JSON with unexpected mimetype: {self.content_type}",
            )
        stripped = (await self.read()).strip()
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

    # -- life cycle (only a body left in storage holds anything) ------------------------
    @property
    def closed(self) -> bool:
        return True

    def release(self) -> Any:
        self._close_stored()
        return None

    def close(self) -> None:
        self._close_stored()

    def _close_stored(self) -> None:
        stored = self._cached.stored_body
        if stored is None:
            return
        try:
            task = asyncio.get_running_loop().create_task(stored.close())
        except RuntimeError:  # no loop here: what it holds is freed with it
            return
        _closing.add(task)
        task.add_done_callback(_closing.discard)

    async def wait_for_close(self) -> None:
        if self._cached.stored_body is not None:
            await self._cached.stored_body.close()

    async def __aenter__(self) -> CachedClientResponse:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        stored = self._cached.stored_body  # (wait_for_close(), inline: every hit passes here)
        if stored is not None:
            await stored.close()

    def __repr__(self) -> str:
        return f"<CachedClientResponse({self._cached.url}) [{self.status} {self.reason}]>"


CachedResponse = CachedClientResponse  # aiohttp-client-cache's name



def _present(record: Record) -> CachedClientResponse:
    return CachedClientResponse.replay(record, record.request.method)


# backend.responses hands out replayed responses, as aiohttp-client-cache's storages do.
ResponsesView.present = staticmethod(_present)


def _replayed(record: Record) -> CachedClientResponse:
    return CachedClientResponse.replay(record, record.request.method)


_base.replay_response = _replayed  # backend.get_response(key) answers with a replayed response

__all__ = ["CachedClientResponse", "CachedResponse", "OriginClientResponse", "attach_tee", "drain"]
