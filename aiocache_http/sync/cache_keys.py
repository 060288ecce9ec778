"""requests-cache's ``cache_keys``: ``create_key()`` and the normalizers it documents for
custom key functions.

``create_key`` gives the key a session gives a request (the shared key function, the same
for the async session). The ``normalize_*`` helpers return requests' objects normalized
as requests-cache does: sorted parameters and headers, JSON and form bodies re-encoded,
``ignored_parameters`` replaced by ``"REDACTED"``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests
from requests.structures import CaseInsensitiveDict

from ..models import CachedRequest
from ..policy import keys
from ..policy.keys import REDACTED
from .convert import cached_request, prepared

logger = logging.getLogger("aiocache_http")

MAX_NORM_BODY_SIZE = 10 * 1024 * 1024  # larger JSON bodies are keyed as they are
ParamList = Iterable[str] | None


def create_key(
    request: requests.PreparedRequest | requests.Request | CachedRequest,
    ignored_parameters: ParamList = None,
    match_headers: bool | Iterable[str] | None = False,
    serializer: Any = None,
    *,
    secret_key: str | bytes | None = None,
    ignored_params: ParamList = None,
    **request_kwargs: Any,
) -> str:
    """The cache key a session with these settings gives ``request``.

    ``ignored_params`` (aiohttp-client-cache's name) is accepted too, so this can be
    called from a ``key_fn``. ``secret_key`` must be the backend's when it has one
    (credentials enter the key as a hash keyed with it). ``serializer`` and extra
    request arguments (``verify``...) do not change the key here.
    """
    if not isinstance(request, CachedRequest):
        request = cached_request(prepared(request))
    ignored = ignored_parameters if ignored_parameters is not None else ignored_params
    secret = secret_key.encode() if isinstance(secret_key, str) else secret_key
    return keys.create_key(request, ignored or (), match_headers or False, secret)


def normalize_request(request: requests.PreparedRequest | requests.Request,
                      ignored_parameters: ParamList = None) -> requests.PreparedRequest:
    """A normalized copy of ``request``: method upper-cased, URL, headers and body
    normalized, ``ignored_parameters`` redacted."""
    # A Session prepares it as one would send it (a header set to None is left out).
    norm = (requests.Session().prepare_request(request) if isinstance(request, requests.Request)
            else request.copy())
    norm.method = (norm.method or "").upper()
    norm.url = normalize_url(norm.url or "", ignored_parameters)
    norm.headers = normalize_headers(norm.headers, ignored_parameters)
    norm.body = normalize_body(norm, ignored_parameters)
    return norm


def normalize_headers(headers: Mapping[str, Any],
                      ignored_parameters: ParamList = None) -> CaseInsensitiveDict[str]:
    """Headers sorted, ignored ones redacted, multi-value headers (``a, b``) lower-cased
    and sorted."""
    decoded = {k: v.decode() if isinstance(v, bytes) else str(v) for k, v in headers.items()}
    if ignored_parameters:
        decoded = _redact_sorted(decoded, ignored_parameters)
    for name, value in decoded.items():
        if "," in value:
            decoded[name] = ", ".join(sorted(v.strip() for v in value.lower().split(",") if v.strip()))
    return CaseInsensitiveDict(decoded)


def normalize_url(url: str, ignored_parameters: ParamList = None) -> str:
    """``url`` with its query parameters sorted and ignored ones redacted."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path,
                       normalize_params(parts.query, ignored_parameters), parts.fragment))


def normalize_body(request: requests.PreparedRequest, ignored_parameters: ParamList = None) -> bytes:
    """The body of ``request``: JSON and form bodies sorted and filtered, others as they
    are. A file-like body is read (and rewound when it can be)."""
    body: Any = request.body
    if not body:
        return b""
    if hasattr(body, "read"):
        data = body.read() or b""
        try:
            body.seek(0)
        except AttributeError:
            logger.warning("cannot rewind the request body after reading it (no seek())")
        body = data
    content_type = (request.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if content_type == "application/json" or (content_type.startswith("application/")
                                              and content_type.endswith("+json")):
        body = _normalize_json(body, ignored_parameters)
    elif content_type == "application/x-www-form-urlencoded":
        body = normalize_params(body, ignored_parameters)
    return body.encode() if isinstance(body, str) else bytes(body)


def normalize_params(value: str | bytes, ignored_parameters: ParamList = None) -> str:
    """A query string or form body with its parameters sorted and ignored ones redacted
    (parameters without a value kept, after the others)."""
    text = value.decode() if isinstance(value, bytes) else value
    params = sorted(parse_qsl(text))
    ignored = set(ignored_parameters or ())
    query = urlencode([(k, REDACTED if k in ignored else v) for k, v in params])
    bare = sorted(p for p in text.split("&") if p and "=" not in p)
    return "&".join(filter(None, [query, *bare]))


def _normalize_json(body: str | bytes, ignored_parameters: ParamList) -> str | bytes:
    if len(body) <= 2 or len(body) > MAX_NORM_BODY_SIZE:
        return body
    try:
        data = json.loads(body)
    except ValueError:
        return body
    if isinstance(data, Mapping):
        return json.dumps(_redact_sorted(data, ignored_parameters or ()))
    if isinstance(data, list):
        ignored = set(ignored_parameters or ())
        try:
            return json.dumps([v for v in sorted(data) if v not in ignored])
        except TypeError:  # mixed types do not sort
            return body
    return body


def _redact_sorted(data: Mapping[str, Any], ignored_parameters: Iterable[str]) -> dict[str, Any]:
    ignored = set(ignored_parameters)
    return {k: REDACTED if k in ignored else v for k, v in sorted(data.items())}


__all__ = [
    "create_key",
    "normalize_body",
    "normalize_headers",
    "normalize_params",
    "normalize_request",
    "normalize_url",
]
