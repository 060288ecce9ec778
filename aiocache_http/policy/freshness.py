"""Response-header semantics of RFC 9111: storability (§3), freshness and age (§4.2),
validators (§4.3). Used when ``cache_control=True``; the age and validator helpers
apply in every mode.

Everything here is a pure function of a response's headers and times.
"""

from __future__ import annotations

import functools
from collections.abc import Container, Mapping, Sequence
from datetime import datetime
from types import MappingProxyType

from multidict import CIMultiDict

from ..models import CachedRequest, CachedResponse, Facts, shared_facts
from . import negotiation
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
# §5.2.2.3: the status codes whose caching rules this cache implements.
UNDERSTOOD = (HEURISTICALLY_CACHEABLE - {206}) | {302, 303, 307, 500, 502, 503, 504}
HEURISTIC_FRACTION = 0.1  # §4.2.2: "10% of the interval since Last-Modified"
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "te", "trailer",
                        "transfer-encoding", "upgrade", "proxy-authenticate"})
# One user's session: replayed from a cache it would log the next user in as them.
NEVER_STORED = frozenset({"set-cookie", "set-cookie2"})
_NEVER_KEPT = HOP_BY_HOP | NEVER_STORED


def cache_control(headers: CIMultiDict[str]) -> Mapping[str, str | None]:
    """The response's directives (read-only: parsed once per distinct header value)."""
    lines = headers.getall("Cache-Control", ())
    if not lines:
        return _NO_DIRECTIVES
    return _parsed(tuple(lines))


@functools.lru_cache(maxsize=512)
def _parsed(lines: tuple[str, ...]) -> Mapping[str, str | None]:
    return MappingProxyType(parse_cache_control(lines))


_NO_DIRECTIVES: Mapping[str, str | None] = MappingProxyType({})


def _date(headers: CIMultiDict[str]) -> datetime | None:
    return parse_http_date(headers.get("Date"))


def _age_header(headers: CIMultiDict[str]) -> float:
    """The Age field (RFC 9111 §5.1): the first value of the first line counts, so a list
    (``Age: 7200, 0``) is not read as 0."""
    age = headers.get("Age")
    if age is None:  # the usual case
        return 0.0
    return float(delta_seconds(age.split(",", 1)[0].strip()) or 0)


def initial_age(headers: CIMultiDict[str], request_time: datetime, response_time: datetime) -> float:
    """corrected_initial_age of §4.2.3: what the response's age was on arrival."""
    date = _date(headers)
    apparent_age = max(0.0, (response_time - date).total_seconds()) if date else 0.0
    response_delay = max(0.0, (response_time - request_time).total_seconds())
    return min(max(apparent_age, _age_header(headers) + response_delay), float(MAX_DELTA_SECONDS))


def current_age(cached: CachedResponse, now: datetime) -> float:
    """current_age of §4.2.3: initial age plus the time the entry has been resident."""
    response_time = cached.response_time or cached.created_at
    resident = max(0.0, (now - response_time).total_seconds())
    return initial_age_of(cached) + resident


def facts(headers: CIMultiDict[str]) -> Facts:
    """Everything a hit needs from the stored directives, parsed once (at store time):
    a function of the Cache-Control and Vary lines alone, worked out once for each."""
    return _facts(tuple(headers.getall("Cache-Control", ())), tuple(headers.getall("Vary", ())))


@functools.lru_cache(maxsize=512)
def _facts(cc_lines: tuple[str, ...], vary_lines: tuple[str, ...]) -> Facts:
    cc = _parsed(cc_lines) if cc_lines else _NO_DIRECTIVES
    vary = tuple(name.lower() for value in vary_lines for name in split_list(value))
    swr = seconds(cc, "stale-while-revalidate") if "stale-while-revalidate" in cc else None
    sie = seconds(cc, "stale-if-error") if "stale-if-error" in cc else None
    return shared_facts(
        ("no-cache" in cc and not cc["no-cache"]) or "*" in vary,  # no_cache
        "must-revalidate" in cc,  # must_revalidate
        "immutable" in cc,  # immutable
        vary,
        None if swr is None else float(swr),  # stale_while_revalidate
        None if sie is None else float(sie),  # stale_if_error
    )


def facts_of(cached: CachedResponse) -> Facts:
    """The entry's facts: kept since it was stored, or parsed now for an older entry."""
    return cached.facts if cached.facts is not None else facts(cached.headers)


def initial_age_of(cached: CachedResponse) -> float:
    """The entry's corrected initial age (§4.2.3): kept since it was stored, or computed
    now for an older entry."""
    if cached.initial_age is not None:
        return cached.initial_age
    response_time = cached.response_time or cached.created_at
    return initial_age(cached.headers, cached.request_time or response_time, response_time)


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
        lines = headers.getall("Expires")  # several lines: no single valid date (§5.3)
        expires = parse_http_date(lines[0]) if len(lines) == 1 else None
        return 0.0 if expires is None else max(0.0, (expires - date).total_seconds())
    # §4.2.2; a public response without explicit freshness is heuristically cacheable
    # whatever its status (§5.2.2.9)
    if heuristic_max is not False and (status in HEURISTICALLY_CACHEABLE or "public" in cc):
        last_modified = parse_http_date(headers.get("Last-Modified"))
        if last_modified is not None and last_modified < date:
            heuristic = (date - last_modified).total_seconds() * HEURISTIC_FRACTION
            return heuristic if heuristic_max is True else min(heuristic, float(heuristic_max))
    return None


def has_explicit_freshness(headers: CIMultiDict[str]) -> bool:
    cc = cache_control(headers)
    return "max-age" in cc or "Expires" in headers or "public" in cc or "private" in cc


def forbids_storing(status: int, headers: CIMultiDict[str]) -> bool:
    """Response no-store (§5.2.2.5), unless must-understand and this cache understands the
    status code (§5.2.2.3); must-understand with a status it does not: not stored either."""
    cc = cache_control(headers)
    if "must-understand" in cc:
        return status not in UNDERSTOOD
    return "no-store" in cc


def not_storable_reason(request: CachedRequest, status: int, headers: CIMultiDict[str]) -> str | None:
    """Why §3 forbids storing this response, or None when it may be stored."""
    if forbids_storing(status, headers):
        return "response no-store (or must-understand with an unknown status)"
    if status in (206, 304) or status < 200:
        return f"status {status} is never stored"
    if status not in HEURISTICALLY_CACHEABLE and not has_explicit_freshness(headers):
        return f"status {status} without explicit freshness (§4.2.2)"
    return None


def headers_to_store(headers: CIMultiDict[str]) -> CIMultiDict[str]:
    """Drop hop-by-hop fields, fields named in Connection, fields named by a qualified
    ``no-cache="..."`` (RFC 9111 §3.1, §5.2.2.4), and Set-Cookie (never stored)."""
    drop: frozenset[str] | set[str] = _NEVER_KEPT
    connection = headers.getall("Connection", ())
    no_cache = cache_control(headers).get("no-cache")
    if connection or no_cache:
        more = set(drop)
        for value in connection:
            more.update(name.lower() for name in split_list(value))
        if no_cache:
            more.update(field_names(no_cache))
        drop = more
    if headers.keys().isdisjoint(drop):  # (case-insensitive: a view of the headers' names)
        return headers
    return CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in drop)


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


def expected_length(headers: CIMultiDict[str]) -> int | None:
    """The body length Content-Length promises, or None when it says nothing usable:
    absent, malformed, or a content coding (the body is stored decoded, of another length)."""
    length = headers.get("Content-Length", "").strip()
    if not (length.isascii() and length.isdigit()):
        return None
    if headers.get("Content-Encoding", "identity") != "identity":
        return None
    return int(length) if len(length) <= 19 else 10**19  # 20 digits: no body is that long


def complete(headers: CIMultiDict[str], body_length: int) -> bool:
    """A body shorter or longer than its Content-Length is not a usable entry (§3.3).
    Only checked for an identity encoding: a decoded body has another length."""
    expected = expected_length(headers)
    return expected is None or expected == body_length


def etag_matches(stored: CIMultiDict[str], fresh: CIMultiDict[str]) -> bool:
    """Does a 304 select this stored response? (§4.3.4, weak comparison: W/"x" == "x")"""
    new_etag = fresh.get("ETag")
    if new_etag is None:
        return True  # validated by Last-Modified, or the origin did not say
    old_etag = stored.get("ETag")
    return old_etag is not None and old_etag.removeprefix("W/") == new_etag.removeprefix("W/")


def content_encoded(headers: Mapping[str, str]) -> bool:
    """Has this body a Content-Encoding other than identity (gzip, br...)? ``headers``:
    any mapping with ``get`` (a CIMultiDict, urllib3's HTTPHeaderDict)."""
    coding = headers.get("Content-Encoding")
    return coding is not None and coding.strip().lower() not in ("", "identity")


def client_validators_match(request_headers: CIMultiDict[str], stored: CachedResponse) -> bool:
    """Does the client's own conditional request match the stored response, so that a
    304 answers it (RFC 9111 §4.3.2, RFC 9110 §13.1)? If-None-Match wins over
    If-Modified-Since; the stored Last-Modified, else its Date, else the time it was
    received, dates it (the order §4.3.2 gives)."""
    if_none_match = request_headers.getall("If-None-Match", ())
    if if_none_match:
        etag = stored.headers.get("ETag")
        tags = [t for line in if_none_match for t in split_list(line)]
        if "*" in tags:
            return True
        return etag is not None and any(_weak(t) == _weak(etag) for t in tags)
    since = parse_http_date(request_headers.get("If-Modified-Since"))
    if since is None:
        return False
    modified = (parse_http_date(stored.headers.get("Last-Modified")) or _date(stored.headers)
                or stored.response_time or stored.created_at)
    return modified <= since


def _weak(tag: str) -> str:
    return tag.strip().removeprefix("W/")


# -- Vary (§4.1) ---------------------------------------------------------------------------
def vary_names(headers: CIMultiDict[str]) -> list[str]:
    """The request fields a response varies on, lower-cased; ``["*"]`` for Vary: *."""
    names: list[str] = []
    for value in headers.getall("Vary", ()):
        names.extend(name.lower() for name in split_list(value))
    return names


def _field(headers: CIMultiDict[str], name: str, negotiated: bool = False) -> str | None:
    values = headers.getall(name, ())
    if not values:
        return None
    # §4.1: normalise by combining lines and dropping optional whitespace around commas;
    # language tags and codings are case-insensitive.
    joined = ",".join(",".join(p.strip() for p in v.split(",")) for v in values)
    if negotiated and name in negotiation.NEGOTIATION_FIELDS:
        same = negotiation.canonical(joined)  # order and spelling of weights too
        if same is not None:
            return same
    return joined.lower() if name in _CASELESS_VALUES else joined


_CASELESS_VALUES = frozenset({"accept-language", "accept-encoding", "accept-charset"})


def vary_values(names: Sequence[str], request_headers: CIMultiDict[str], negotiated: bool = False
                ) -> list[tuple[str, str | None]]:
    """The request's values of the fields ``names``, normalised (``negotiated``: the
    content negotiation fields by meaning, see :mod:`.negotiation`)."""
    return [(name, _field(request_headers, name, negotiated)) for name in sorted(set(names))]


def vary_matches(cached: CachedResponse, request: CachedRequest, credential_fields: Container[str],
                 negotiated: bool = False) -> bool:
    """Do the fields the stored response varies on have the same values in ``request``?

    Absent in both counts as a match. ``Vary: *`` is left to ``Facts.no_cache``.
    Credential fields are already part of the key (and redacted in storage). With
    ``negotiated`` (cache_control) the content negotiation fields compare by meaning, and
    a response in the one language the request prefers to all others answers it.
    """
    for name in facts_of(cached).vary:
        if name == "*" or name in credential_fields:
            continue
        if _field(cached.request.headers, name, negotiated) == _field(request.headers, name,
                                                                       negotiated):
            continue
        selected = negotiated and name == "accept-language" and _in_preferred_language(
            cached.headers, request.headers)
        if not selected:
            return False
    return True


def _in_preferred_language(stored: CIMultiDict[str], request_headers: CIMultiDict[str]) -> bool:
    """Is the stored response in the language the request prefers to every other? Then
    it is what negotiation on Accept-Language selects for it, whatever the other
    languages listed (RFC 9111 §4.1, RFC 9110 §12.5.4): ``de`` answers ``fr;q=0.5, de``."""
    languages = stored.getall("Content-Language", ())
    wanted = _field(request_headers, "accept-language")
    if len(languages) != 1 or "," in languages[0] or wanted is None:
        return False
    return negotiation.preferred(wanted) == languages[0].strip().lower()
