"""Between requests' objects and the library-neutral records the shared driver uses."""

from __future__ import annotations

import re
from email.message import Message
from typing import Any

import requests
from multidict import CIMultiDict

try:
    from urllib3 import HTTPHeaderDict
except ImportError:  # urllib3 1.26 (requests >= 2.28 allows it): not exported at the top yet
    from urllib3._collections import HTTPHeaderDict

from ..backends.parts import PART_SIZE
from ..driver import OriginResponse
from ..models import CachedRequest
from ..streaming import Tee
from .bridge import Offload, run
from .models import OriginalResponse, from_latin1
from .stream import TeeRaw, read_content

_BOUNDARY = re.compile(r"boundary=\"?([^\";]+)\"?", re.IGNORECASE)
_FIXED_BOUNDARY = "aiocache-http-form-boundary"


class NotKeyable(Exception):
    """The request body cannot be part of a key (a stream, a file, a generator...)."""


def prepared(request: requests.PreparedRequest | requests.Request) -> requests.PreparedRequest:
    return request.prepare() if isinstance(request, requests.Request) else request


def cached_request(request: requests.PreparedRequest, body: bool = True,
                   follow_redirects: bool = True, verify: Any = True) -> CachedRequest:
    """The request as the cache sees it: method, full URL, every header (credentials
    included, cookies too: the key hashes them, storage redacts them), the body bytes,
    and whether redirects are followed."""
    headers: CIMultiDict[str] = CIMultiDict(
        (from_latin1(k), from_latin1(v)) for k, v in request.headers.items())
    content = request.body if body else None
    if content is None:
        data = b""
    elif isinstance(content, bytes):
        data = content
    elif isinstance(content, str):
        data = content.encode()
    else:
        raise NotKeyable
    match = _BOUNDARY.search(headers.get("Content-Type", ""))
    if match and headers.get("Content-Type", "").lower().startswith("multipart/"):
        # requests picks a random boundary per request; the key must not see it.
        boundary = match.group(1)
        data = data.replace(boundary.encode(), _FIXED_BOUNDARY.encode())
        headers["Content-Type"] = headers["Content-Type"].replace(boundary, _FIXED_BOUNDARY)
    return CachedRequest((request.method or "GET").upper(), request.url or "", headers, data,
                         follow_redirects, verify is not False)


def charset(headers: CIMultiDict[str]) -> str | None:
    """The charset named by Content-Type, as aiohttp reports it (requests' guessed
    ISO-8859-1 default is not stored, so both sessions replay an entry alike)."""
    content_type = headers.get("Content-Type")
    if not content_type:
        return None
    message = Message()
    message["Content-Type"] = content_type
    found = message.get_content_charset()
    return str(found) if found else None


def response_headers(response: requests.Response) -> CIMultiDict[str]:
    """Every header line (urllib3 keeps repeated headers apart, requests joins them), in
    the stored form (see :func:`from_latin1`)."""
    raw_headers = getattr(response.raw, "headers", None)
    items = raw_headers.iteritems() if isinstance(raw_headers, HTTPHeaderDict) else (
        response.headers or {}).items()
    return CIMultiDict((from_latin1(k), from_latin1(v)) for k, v in items)


def origin_response(response: requests.Response, offload: Offload, stream: bool = False) -> OriginResponse:
    """``response`` (always requested with ``stream=True``) for the driver; ``stream`` is
    what the caller asked for: without it the body is read here, as requests would."""
    async def tee(tee: Tee) -> requests.Response:
        if getattr(response, "_content_consumed", False):  # a hook read it: the body is in hand
            with memoryview(response.content or b"") as body:
                for start in range(0, len(body), PART_SIZE):
                    await tee.feed(body[start : start + PART_SIZE])
            await tee.finish()
            return response
        response.raw = TeeRaw(response.raw, tee, run)  # stored as it is read
        if not stream:
            await offload(lambda: read_content(response))
        return response

    async def drain(raw: requests.Response) -> None:
        def read_to_the_end() -> None:
            with raw:
                for _ in raw.iter_content(PART_SIZE):
                    pass

        await offload(read_to_the_end)

    headers = response_headers(response)
    return OriginResponse(
        status=response.status_code,
        reason=response.reason or "",
        url=response.url,
        headers=headers,
        raw=OriginalResponse.wrap(response, None),
        tee=tee,
        drain=drain,
        release=response.close,
        encoding=charset(headers),
        history=[((h.request.method or "GET") if h.request else "GET", h.url, h.status_code,
                  h.reason or "", response_headers(h)) for h in response.history],
        sent_headers=None if response.request is None else CIMultiDict(
            (from_latin1(k), from_latin1(v)) for k, v in response.request.headers.items()),
    )


__all__ = ["NotKeyable", "cached_request", "charset", "origin_response", "prepared"]
