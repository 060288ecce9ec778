"""requests-cache's models: what the sync session hands out, as ``requests`` objects.

:class:`CachedResponse` (a replayed ``requests.Response``) and :class:`OriginalResponse`
(the origin's, with the cache attributes) are what ``session.get()`` returns;
:class:`CachedRequest` is the request a cached response carries. Each can be built by
keyword, as in requests-cache (``CachedResponse(status_code=200, expires=...)``), and
turned into the library-neutral stored record (``__cache_record__``).
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urljoin

import requests
from multidict import CIMultiDict
from requests.exceptions import ChunkedEncodingError
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers
from urllib3 import HTTPResponse
from urllib3._collections import HTTPHeaderDict

from .. import models
from ..models import utcnow
from ..models.convert import aware
from ..policy.expiration import ExpirationTime, expiration_datetime
from .bridge import run
from .stream import ReplayRaw

_CACHE_ATTRS = ["from_cache", "created_at", "expires", "cache_key", "revalidated"]


# Header text: http.client decodes header bytes as Latin-1, aiohttp as UTF-8 with
# surrogateescape. The cache keeps aiohttp's form (one stored form, lossless for any
# bytes); the requests layer converts at its edges so each session shows what its bare
# library shows for the same bytes.
def from_latin1(text: str) -> str:
    """A header as http.client decoded it -> the stored form."""
    if text.isascii():
        return text
    try:
        return text.encode("latin-1").decode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # not from the wire (a str header set by code): keep it
        return text


def to_latin1(text: str) -> str:
    """The stored form -> the header as http.client would have decoded its bytes."""
    if text.isascii():
        return text
    try:
        return text.encode("utf-8", "surrogateescape").decode("latin-1")
    except UnicodeEncodeError:
        return text


class CachedRequest(requests.PreparedRequest):
    """The request of a cached response (a ``requests.PreparedRequest``)."""

    def __init__(self, method: str | None = None, url: str | None = None,
                 headers: Mapping[str, str] | None = None, body: bytes | str | None = None,
                 cookies: Any = None) -> None:
        super().__init__()
        self.method = method.upper() if method else method
        self.url = url
        self.headers = CaseInsensitiveDict(headers or {})
        self.body = body
        self._cookies = cookies

    @classmethod
    def from_request(cls, request: requests.PreparedRequest | requests.Request) -> CachedRequest:
        """A copy of ``request`` (prepared first, if it is a ``requests.Request``)."""
        prepared = request.prepare() if isinstance(request, requests.Request) else request
        return cls(prepared.method, prepared.url, prepared.headers, prepared.body)

    @classmethod
    def from_record(cls, record: models.CachedRequest) -> CachedRequest:
        return cls(record.method, record.url, dict(record.headers), record.body)

    def record(self) -> models.CachedRequest:
        body = self.body
        data = body.encode() if isinstance(body, str) else body if isinstance(body, bytes) else b""
        return models.CachedRequest((self.method or "GET").upper(), self.url or "",
                                    CIMultiDict((str(k), str(v)) for k, v in self.headers.items()), data)

    def __repr__(self) -> str:
        return f"<CachedRequest [{self.method}]: {self.url}>"


class CachedHTTPResponse(HTTPResponse):
    """``response.raw`` of a cached response: a urllib3 ``HTTPResponse``, as requests-cache's
    is and a live one is (``version``, ``data``, ``getheader()``, ``isinstance`` checks),
    whose body is a :class:`ReplayRaw` (from memory, or from storage with ``replay``). The
    stored body is already decoded: read as it is, never decoded again."""

    def __init__(self, body: bytes = b"", headers: Mapping[str, str] | None = None,
                 status: int = 0, reason: str | None = None, *, replay: ReplayRaw | None = None,
                 request_url: str | None = None) -> None:
        self._replay = replay or ReplayRaw(body)
        super().__init__(self._replay,  # type: ignore[arg-type]  # file-like: urllib3 keeps it as _fp
                         HTTPHeaderDict(headers or {}), status, 11, reason=reason,
                         preload_content=False, request_url=request_url)
        self.version_string = "HTTP/1.1"  # (urllib3 2's; 1.26 has only the number)

    def read(self, amt: int | None = None, decode_content: bool | None = None,
             cache_content: bool = False) -> bytes:
        data = self._replay.read(amt)
        self._fp_bytes_read += len(data)
        if self.length_remaining is not None:
            self.length_remaining = max(0, self.length_remaining - len(data))
        if cache_content and amt is None:  # .data
            self._body = data
        return data

    def stream(self, amt: int | None = 2**16, decode_content: bool | None = None
               ) -> Generator[bytes, None, None]:
        yield from self._replay.stream(amt)

    def reset(self) -> None:
        """Rewind a body held in memory, so it can be read again."""
        self._replay.rewind()
        self._fp_bytes_read = 0

    def release_conn(self) -> None:
        self._replay.release_conn()  # a body left in storage lets go of it


class _CacheInfo(requests.Response):
    from_cache: bool = False
    created_at: datetime | None = None
    expires: datetime | None = None
    cache_key: str = ""
    revalidated: bool = False
    __attrs__ = [*requests.Response.__attrs__, *_CACHE_ATTRS]

    @property
    def is_expired(self) -> bool:
        return self.expires is not None and utcnow() >= self.expires

    def _set_cache_info(self, record: models.CachedResponse | None) -> None:
        if record is not None:
            self.created_at, self.expires, self.cache_key = (
                record.created_at, record.expires, record.cache_key)


class CachedResponse(_CacheInfo):
    """A response replayed from the cache (requests-cache's ``CachedResponse``).

    Build one by keyword (``CachedResponse(status_code=200, content=b"...",
    expires=...)``) or from a response with :meth:`from_response`.
    """

    from_cache = True
    # Built on first use (most hits never look): ``raw`` from the body and headers,
    # ``request`` from the stored request record.
    _raw: Any = None
    _request: requests.PreparedRequest | None = None
    _request_record: models.CachedRequest | None = None

    @property
    def raw(self) -> Any:
        if self._raw is None:
            self._raw = CachedHTTPResponse(self._content or b"", self.headers, self.status_code,
                                           self.reason, request_url=self.url)
        return self._raw

    @raw.setter
    def raw(self, value: Any) -> None:
        self._raw = value

    def close(self) -> None:
        # requests' close() reads self.raw: one never built (a body in memory) holds
        # nothing to release, and building it costs a urllib3 HTTPResponse per `with`.
        if self._raw is not None:
            super().close()

    @property
    def request(self) -> requests.PreparedRequest:
        if self._request is None:
            record = self._request_record
            self._request = CachedRequest() if record is None else CachedRequest.from_record(record)
        return self._request

    @request.setter
    def request(self, value: requests.PreparedRequest | None) -> None:
        self._request = value

    def __init__(self, status_code: int = 200, url: str | None = None,
                 headers: Mapping[str, str] | None = None, content: bytes | None = None,
                 reason: str | None = None, encoding: str | None = None,
                 request: requests.PreparedRequest | None = None,
                 created_at: datetime | None = None, expires: datetime | None = None,
                 history: list[CachedResponse] | None = None, cache_key: str = "",
                 revalidated: bool = False, **kwargs: Any) -> None:
        super().__init__()
        self.status_code = status_code
        self.url, self.reason = url, reason  # type: ignore[assignment]  # None until set, as requests-cache's
        self.headers = CaseInsensitiveDict(headers or {})
        body = kwargs.pop("_content", content)
        self._content = body if body is not None else b""
        self._content_consumed = True
        self.raw = None  # built on first use
        self.encoding = encoding or get_encoding_from_headers(self.headers)
        self.request = request  # None: built on first use
        self.created_at = aware(created_at) if created_at else utcnow()
        self.expires = aware(expires) if expires else None
        self.history: list[requests.Response] = [*(history or [])]
        self.cache_key, self.revalidated = cache_key, revalidated
        self.elapsed = timedelta(0)
        if kwargs:
            raise TypeError(f"CachedResponse() got unexpected keyword arguments {sorted(kwargs)}")

    @classmethod
    def from_record(cls, record: models.CachedResponse,
                    request: requests.PreparedRequest | None = None, *,
                    from_cache: bool = True, age: float | None = None,
                    stream: bool = False) -> CachedResponse:
        """The stored ``record`` as a response (``age``, seconds, becomes the Age header).

        A large body left in storage (``record.stored_body``) is read from there in
        chunks with ``stream=True`` (``raw`` then reads it through the bridge loop), or
        whole at once without, as requests reads a live body."""
        joined: dict[str, tuple[str, str]] = {}  # lowercase name -> (name, value)
        for name, value in record.headers.items():  # requests joins repeated headers
            name, value = to_latin1(name), to_latin1(value)
            prior = joined.get(lower := name.lower())
            joined[lower] = (name, value if prior is None else f"{prior[1]}, {value}")
        if age is not None:
            joined["age"] = ("Age", str(int(age)))
        headers = dict(joined.values())  # made case-insensitive once, by __init__
        stored = record.stored_body
        body = record.body if stored is None or stream else _load(stored)
        r = cls(record.status, record.url, headers, body, record.reason, record.encoding, request,
                record.created_at, record.expires,
                [cls.from_record(hop) for hop in record.history], record.cache_key)
        if request is None:
            r._request_record = record.request
        if stored is not None and stream:
            r._content = False  # type: ignore[assignment]  # requests: "not read yet"
            r._content_consumed = False
            r.raw = CachedHTTPResponse(b"", r.headers, r.status_code, r.reason, request_url=r.url,
                                       replay=ReplayRaw(stored=stored, run=run, error=ChunkedEncodingError))
        r.from_cache = from_cache
        return r

    @classmethod
    def from_response(cls, response: requests.Response, **kwargs: Any) -> CachedResponse:
        """A cached copy of ``response`` (any ``requests.Response``); ``kwargs`` (``expires``,
        ``cache_key``...) override its attributes."""
        if isinstance(response, models.CachedResponse):
            return cls.from_record(response)
        fields: dict[str, Any] = {
            "status_code": response.status_code, "url": response.url,
            "headers": response.headers, "content": response.content, "reason": response.reason,
            "encoding": response.encoding,
            "request": CachedRequest.from_request(response.request) if response.request else None,
            "created_at": getattr(response, "created_at", None),
            "expires": getattr(response, "expires", None),
            "history": [cls.from_response(hop) for hop in response.history],
            "cache_key": getattr(response, "cache_key", "") or "",
        }
        fields.update(kwargs)
        return cls(**fields)

    def __cache_record__(self) -> models.CachedResponse:
        request = self.request
        stored_request = (request.record() if isinstance(request, CachedRequest)
                          else CachedRequest.from_request(request).record() if request is not None
                          else models.CachedRequest("GET", self.url or ""))
        return models.CachedResponse(
            self.status_code, self.reason or "", self.url or "",
            CIMultiDict((str(k), str(v)) for k, v in self.headers.items()), self.content or b"",
            stored_request, self.encoding, self.created_at or utcnow(), self.expires,
            history=tuple(hop.__cache_record__() if isinstance(hop, CachedResponse)
                          else CachedResponse.from_response(hop).__cache_record__()
                          for hop in self.history),
            cache_key=self.cache_key or "",
        )

    # -- requests-cache's cache attributes -------------------------------------------
    @property
    def expires_delta(self) -> int | None:
        """Seconds until expiry (negative once expired), or None."""
        return None if self.expires is None else round((self.expires - utcnow()).total_seconds())

    @property
    def expires_unix(self) -> int | None:
        return None if self.expires is None else round(self.expires.timestamp())

    @property
    def size(self) -> int:
        """The body's size in bytes."""
        return len(self._content or b"")

    def is_older_than(self, older_than: ExpirationTime) -> bool:
        """Was it stored more than ``older_than`` (seconds or a timedelta, negative ones
        too, or before a datetime) ago?"""
        if older_than is None:
            return False
        if isinstance(older_than, datetime):
            cutoff = aware(older_than)
        elif isinstance(older_than, timedelta):
            cutoff = utcnow() - older_than
        elif isinstance(older_than, (int, float)) and not isinstance(older_than, bool):
            cutoff = utcnow() - timedelta(seconds=older_than)
        else:
            raise TypeError(f"older_than must be seconds, a timedelta or a datetime, not {older_than!r}")
        return self.created_at is not None and self.created_at < cutoff

    def reset_expiration(self, expire_after: ExpirationTime) -> bool:
        """Expire ``expire_after`` from now (or at that datetime); True if that is past."""
        self.expires = expiration_datetime(expire_after, utcnow())
        return self.is_expired

    @property
    def next(self) -> requests.PreparedRequest | None:
        """The next request of a redirect this response is, as requests gives it."""
        location = self.headers.get("Location")
        if not self.is_redirect or not location:
            return None
        method = self.request.method if self.request is not None else "GET"
        return CachedRequest(method, urljoin(self.url or "", location))

    def __repr__(self) -> str:
        return f"<CachedResponse [{self.status_code}]>"


def _load(stored: models.StoredBody) -> bytes:
    try:
        return run(stored.read())
    except models.StoredBodyError as e:
        raise ChunkedEncodingError(f"reading the stored body failed: {e}") from e
    finally:
        run(stored.close())


class OriginalResponse(_CacheInfo):
    """A response that came from the origin, with the cache attributes."""

    @classmethod
    def wrap(cls, response: requests.Response,
             record: models.CachedResponse | None) -> OriginalResponse:
        response.__class__ = cls  # same layout: requests.Response has no __slots__
        assert isinstance(response, OriginalResponse)
        response.from_cache = False
        response._set_cache_info(record)
        return response


# What a session answers (requests-cache's ``AnyResponse``): replayed or from the origin.
AnyResponse = OriginalResponse | CachedResponse

__all__ = ["AnyResponse", "CachedHTTPResponse", "CachedRequest", "CachedResponse", "OriginalResponse"]
