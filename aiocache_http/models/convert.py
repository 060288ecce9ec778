"""Any response object a user hands to the cache, as the stored record.

Both peers let users save responses themselves (``save_response(response)``,
``cache.responses[key] = response``): an aiohttp ``ClientResponse`` that was read, a
``requests.Response``, a replayed response, or a stand-in with the same attributes. This
reads what a response exposes, by name, without importing either HTTP library, and
checks each value's type: what is missing or unusable gets its default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

from multidict import CIMultiDict

from . import CachedRequest, CachedResponse, utcnow


def as_record(response: Any, expires: datetime | None = None) -> CachedResponse:
    """``response`` as a :class:`CachedResponse`; ``expires`` replaces its expiry if given.

    An object with a ``__cache_record__()`` method (the replayed responses of both
    sessions) gives its own record; anything else is read attribute by attribute.
    """
    if isinstance(response, CachedResponse):
        record = response
    elif callable(getattr(type(response), "__cache_record__", None)):
        record = response.__cache_record__()
    else:
        record = _from_attributes(response)
    if expires is not None:
        record = replace(record, expires=aware(expires))
    return record


def aware(value: datetime) -> datetime:
    """A datetime in UTC; a naive one is taken as UTC (aiohttp-client-cache's convention)."""
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _from_attributes(response: Any) -> CachedResponse:
    status = _first(response, ("status", "status_code"), int, 200)
    url = str(_first(response, ("url",), object, "") or "")
    body = _first(response, ("_body", "body", "_content", "content"), (bytes, bytearray), b"")
    request = _request_of(response, url)
    history = getattr(response, "history", None) or ()
    return CachedResponse(
        status=status,
        reason=_first(response, ("reason",), str, ""),
        url=url,
        headers=_headers(getattr(response, "headers", None)),
        body=bytes(body),
        request=request,
        encoding=_first(response, ("encoding",), str, None),
        created_at=aware(_first(response, ("created_at",), datetime, None) or utcnow()),
        expires=_optional_time(getattr(response, "expires", None), response),
        history=tuple(as_record(hop) for hop in history if hop is not None) if _iterable(history) else (),
    )


def _request_of(response: Any, url: str) -> CachedRequest:
    """The request: ``request`` (requests), ``request_info`` (aiohttp), or the response's own
    ``method`` and URL."""
    method = _first(response, ("method",), str, "GET")
    for name in ("request", "request_info"):
        request = getattr(response, name, None)
        if request is None:
            continue
        req_url = str(_first(request, ("url", "real_url"), object, url) or url)
        body = _first(request, ("body",), (bytes, bytearray, str), b"")
        return CachedRequest(
            _first(request, ("method",), str, method).upper(), req_url,
            _headers(getattr(request, "headers", None)),
            body.encode() if isinstance(body, str) else bytes(body),
        )
    return CachedRequest(method.upper(), url)


def _first(obj: Any, names: tuple[str, ...], kind: Any, default: Any) -> Any:
    """The first attribute in ``names`` that exists with the right type (bool is no int)."""
    for name in names:
        try:
            value = getattr(obj, name)
        except Exception:  # a property that cannot answer (a released body...)
            continue
        if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
            return value
    return default


def _optional_time(value: Any, response: Any) -> datetime | None:
    if isinstance(value, datetime):
        return aware(value)
    # A stand-in that only says it is expired (no expiry time) is stored as expired now.
    return utcnow() if getattr(response, "is_expired", False) is True else None


def _headers(value: Any) -> CIMultiDict[str]:
    if not isinstance(value, Mapping):
        return CIMultiDict()
    items = value.items()
    return CIMultiDict((str(k), str(v)) for k, v in items if isinstance(k, str))


def _iterable(value: Any) -> bool:
    return isinstance(value, (list, tuple))


__all__ = ["as_record", "aware"]
