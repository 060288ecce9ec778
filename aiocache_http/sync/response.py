"""Responses as the sync session hands them out: ``requests.Response`` objects with
the cache attributes (requests-cache's ``CachedResponse`` / ``OriginalResponse``)."""

from __future__ import annotations

import io
from datetime import datetime, timedelta

import requests
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers

from .. import models
from ..models import utcnow

_CACHE_ATTRS = ["from_cache", "created_at", "expires", "cache_key"]


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


class _CacheInfo(requests.Response):
    from_cache: bool = False
    created_at: datetime | None = None
    expires: datetime | None = None
    cache_key: str = ""
    __attrs__ = [*requests.Response.__attrs__, *_CACHE_ATTRS]

    @property
    def is_expired(self) -> bool:
        return self.expires is not None and utcnow() >= self.expires

    def _set_cache_info(self, record: models.CachedResponse | None) -> None:
        if record is not None:
            self.created_at, self.expires, self.cache_key = (
                record.created_at, record.expires, record.cache_key)


class CachedResponse(_CacheInfo):
    """A response replayed from a stored entry."""

    from_cache = True

    @classmethod
    def from_record(cls, record: models.CachedResponse,
                    request: requests.PreparedRequest | None = None, *,
                    from_cache: bool = True, age: float | None = None) -> CachedResponse:
        r = cls()
        r.status_code, r.reason, r.url = record.status, record.reason, record.url
        headers: CaseInsensitiveDict[str] = CaseInsensitiveDict()
        for name, value in record.headers.items():  # requests joins repeated headers
            name, value = to_latin1(name), to_latin1(value)
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        if age is not None:
            headers["Age"] = str(int(age))
        r.headers = headers
        r._content = record.body
        r._content_consumed = True  # type: ignore[attr-defined]
        r.raw = io.BytesIO(record.body)
        r.encoding = record.encoding or get_encoding_from_headers(headers)
        r.elapsed = timedelta(0)
        r.request = request if request is not None else _prepared(record.request)
        r.history = [cls.from_record(hop) for hop in record.history]
        r.from_cache = from_cache
        r._set_cache_info(record)
        return r

    def __repr__(self) -> str:
        return f"<CachedResponse [{self.status_code}]>"


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


def _prepared(request: models.CachedRequest) -> requests.PreparedRequest:
    prepared = requests.PreparedRequest()
    prepared.method, prepared.url = request.method, request.url
    prepared.headers = CaseInsensitiveDict(dict(request.headers))
    prepared.body = request.body or None
    return prepared


__all__ = ["CachedResponse", "OriginalResponse"]
