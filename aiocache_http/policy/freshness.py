"""Response-header semantics of RFC 9111: storability (§3), freshness and age (§4.2),
validators (§4.3). Used when ``cache_control=True``; the age and validator helpers
apply in every mode.

Everything here is a pure function of a response's headers and times.
"""

from __future__ import annotations

from collections.abc import Container
from datetime import datetime

from multidict import CIMultiDict

from ..models import CachedRequest, CachedResponse
from .directives import (
    MAX_DELTA_SECONDS,
    delta_seconds,
    field_names,
    parse_cache_control,
    parse_http_date,
    seconds,
    split_list,
)

# §15.1: statuses a cache may give heuristic freshness to.
HEURISTICALLY_CACHEABLE = frozenset({200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501})
HEURISTIC_FRACTION = 0.1  # §4.2.2: "10% of the interval since Last-Modified"
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "te", "trailer",
                        "transfer-encoding", "upgrade", "proxy-authenticate"})
# One user's session: replayed from a cache it would log the next user in as them.
NEVER_STORED = frozenset({"set-cookie", "set-cookie2"})


def cache_control(headers: CIMultiDict[str]) -> dict[str, str | None]:
    return parse_cache_control(headers.getall("Cache-Control", ()))


def _date(headers: CIMultiDict[str]) -> datetime | None:
    return parse_http_date(headers.get("Date"))


def _age_header(headers: CIMultiDict[str]) -> float:
    return float(delta_seconds(headers.get("Age", "").strip()) or 0)


def initial_age(headers: CIMultiDict[str], request_time: datetime, response_time: datetime) -> float:
    """corrected_initial_age of §4.2.3: what the response's age was on arrival."""
    date = _date(headers)
    apparent_age = max(0.0, (response_time - date).total_seconds()) if date else 0.0
    response_delay = max(0.0, (response_time - request_time).total_seconds())
    return min(max(apparent_age, _age_header(headers) + response_delay), float(MAX_DELTA_SECONDS))


def current_age(cached: CachedResponse, now: datetime) -> float:
    """current_age of §4.2.3: initial age plus the time the entry has been resident."""
    response_time = cached.response_time or cached.created_at
    request_time = cached.request_time or response_time
    resident = max(0.0, (now - response_time).total_seconds())
    return initial_age(cached.headers, request_time, response_time) + resident


def lifetime(
    status: int, headers: CIMultiDict[str], received: datetime, heuristic_max: float | bool
) -> float | None:
    """freshness_lifetime of §4.2.1 in seconds; None when the response has none.

    max-age beats Expires - Date, which beats the Last-Modified heuristic. s-maxage is
    for shared caches and ignored here. An invalid Expires means already expired. A
    response without Date is dated when it was ``received`` (§6.6.1 of RFC 9110).
    """
    found = _lifetime(status, headers, received, heuristic_max)
    return None if found is None else min(found, float(MAX_DELTA_SECONDS))  # dates can be absurd


def _lifetime(
    status: int, headers: CIMultiDict[str], received: datetime, heuristic_max: float | bool
) -> float | None:
    cc = cache_control(headers)
    max_age = seconds(cc, "max-age")
    if max_age is not None:
        return float(max_age)
    date = _date(headers) or received
    if "Expires" in headers:
        expires = parse_http_date(headers["Expires"])
        return 0.0 if expires is None else max(0.0, (expires - date).total_seconds())
    if status in HEURISTICALLY_CACHEABLE and heuristic_max is not False:
        last_modified = parse_http_date(headers.get("Last-Modified"))
        if last_modified is not None and last_modified < date:
            heuristic = (date - last_modified).total_seconds() * HEURISTIC_FRACTION
            return heuristic if heuristic_max is True else min(heuristic, float(heuristic_max))
    return None


def has_explicit_freshness(headers: CIMultiDict[str]) -> bool:
    cc = cache_control(headers)
    return "max-age" in cc or "Expires" in headers or "public" in cc or "private" in cc


def not_storable_reason(request: CachedRequest, status: int, headers: CIMultiDict[str]) -> str | None:
    """Why §3 forbids storing this response, or None when it may be stored."""
    cc = cache_control(headers)
    if "no-store" in cc:
        return "response no-store (RFC 9111 §3)"
    if status in (206, 304) or status < 200:
        return f"status {status} is never stored (RFC 9111 §3)"
    if status not in HEURISTICALLY_CACHEABLE and not has_explicit_freshness(headers):
        return f"status {status} without explicit freshness (RFC 9111 §3, §4.2.2)"
    return None


def headers_to_store(headers: CIMultiDict[str]) -> CIMultiDict[str]:
    """Drop hop-by-hop fields, fields named in Connection, fields named by a qualified
    ``no-cache="..."`` (RFC 9111 §3.1, §5.2.2.4), and Set-Cookie (never stored)."""
    drop = set(HOP_BY_HOP | NEVER_STORED)
    for value in headers.getall("Connection", ()):
        drop.update(name.lower() for name in split_list(value))
    no_cache = cache_control(headers).get("no-cache")
    if no_cache:
        drop.update(field_names(no_cache))
    if not any(name.lower() in drop for name in headers):
        return headers
    return CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in drop)


def needs_revalidation(cached: CachedResponse) -> bool:
    """Unqualified response no-cache (§5.2.2.4) or ``Vary: *`` (§4.1)."""
    cc = cache_control(cached.headers)
    return ("no-cache" in cc and not cc["no-cache"]) or cached.headers.get("Vary", "").strip() == "*"


def must_revalidate(cached: CachedResponse, honour_headers: bool) -> bool:
    """§5.2.2.2: once stale, never served without a successful revalidation."""
    return honour_headers and "must-revalidate" in cache_control(cached.headers)


def validators(cached: CachedResponse) -> dict[str, str]:
    """Conditional request headers from the stored validators (§4.3.1): both if present."""
    out: dict[str, str] = {}
    etag = cached.headers.get("ETag")
    if etag:
        out["If-None-Match"] = etag
    last_modified = cached.headers.get("Last-Modified")
    if last_modified:
        out["If-Modified-Since"] = last_modified
    return out


def immutable(cached: CachedResponse) -> bool:
    """RFC 8246: while fresh, not worth revalidating even on a reload."""
    return "immutable" in cache_control(cached.headers)


def complete(headers: CIMultiDict[str], body: bytes) -> bool:
    """A body shorter or longer than its Content-Length is not a usable entry (§3.3).
    Only checked for an identity encoding: a decoded body has another length."""
    length = headers.get("Content-Length", "").strip()
    if not (length.isascii() and length.isdigit()):
        return True
    if headers.get("Content-Encoding", "identity") != "identity":
        return True
    return len(length) <= 19 and int(length) == len(body)  # 20 digits: no body is that long


def etag_matches(stored: CIMultiDict[str], fresh: CIMultiDict[str]) -> bool:
    """Does a 304 select this stored response? (§4.3.4, weak comparison: W/"x" == "x")"""
    new_etag = fresh.get("ETag")
    if new_etag is None:
        return True  # validated by Last-Modified, or the origin did not say
    old_etag = stored.get("ETag")
    return old_etag is not None and old_etag.removeprefix("W/") == new_etag.removeprefix("W/")


# -- Vary (§4.1) ---------------------------------------------------------------------------
def vary_names(headers: CIMultiDict[str]) -> list[str]:
    """The request fields a response varies on, lower-cased; ``["*"]`` for Vary: *."""
    names: list[str] = []
    for value in headers.getall("Vary", ()):
        names.extend(name.lower() for name in split_list(value))
    return names


def _field(headers: CIMultiDict[str], name: str) -> str | None:
    values = headers.getall(name, ())
    if not values:
        return None
    # §4.1: normalise by combining lines and dropping optional whitespace around commas.
    return ",".join(",".join(p.strip() for p in v.split(",")) for v in values)


def vary_values(names: list[str], request_headers: CIMultiDict[str]) -> list[tuple[str, str | None]]:
    return [(name, _field(request_headers, name)) for name in sorted(set(names))]


def vary_matches(cached: CachedResponse, request: CachedRequest, credential_fields: Container[str]
                 ) -> bool:
    """Do the fields the stored response varies on have the same values in ``request``?

    Absent in both counts as a match. ``Vary: *`` is left to :func:`needs_revalidation`.
    Credential fields are already part of the key (and redacted in storage).
    """
    for name in vary_names(cached.headers):
        if name == "*" or name in credential_fields:
            continue
        if _field(cached.request.headers, name) != _field(request.headers, name):
            return False
    return True
