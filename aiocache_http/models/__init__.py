"""Library-neutral request and response records: what the cache stores and replays.

Neither aiohttp nor requests appears here, so the policy layer, the serializers and
every backend work on the same objects for the async and the sync session.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

from multidict import CIMultiDict

from .frozen import fast_init

_now_utc = functools.partial(datetime.now, timezone.utc)
# A partial, not a function of ours: the clock a miss reads twice, without a Python frame.
_now_utc.__doc__ = """The current time as an aware UTC datetime (requests-cache's helper of
that name)."""
utcnow: Callable[[], datetime] = _now_utc


class _NoHeaders(CIMultiDict[str]):
    """The empty headers every stored request without headers shares (one object, not one
    per entry: a memory cache holds many). Read-only: a copy is an ordinary CIMultiDict."""

    __slots__ = ()

    def _refuse(self, *_args: Any, **_kwargs: Any) -> Any:
        raise TypeError("NO_HEADERS is shared and read-only: copy it first (headers.copy())")

    __setitem__ = __delitem__ = add = extend = update = merge = setdefault = _refuse
    pop = popone = popall = popitem = clear = _refuse

    def copy(self) -> CIMultiDict[str]:
        return CIMultiDict()

    def __copy__(self) -> CIMultiDict[str]:
        return CIMultiDict()

    def __deepcopy__(self, _memo: Any) -> CIMultiDict[str]:
        return CIMultiDict()

    def __reduce__(self) -> Any:
        return (CIMultiDict, ())


NO_HEADERS: CIMultiDict[str] = _NoHeaders()
"""Shared, read-only empty request headers (see :class:`_NoHeaders`)."""


@dataclass(slots=True)
class CachedRequest:
    """The request as the cache sees it: credentials already redacted from ``headers``."""

    method: str
    url: str
    headers: CIMultiDict[str] = field(default_factory=CIMultiDict)
    body: bytes = b""
    follow_redirects: bool = True
    """False for ``allow_redirects=False``: a 3xx is then the answer, a different entry."""
    verify: bool = True
    """False for a request sent without TLS certificate verification: its answer may come
    from anyone, so it never serves a verified request (a different entry)."""
    decoded: bool = True
    """False for a request whose body is read as sent (aiohttp's ``auto_decompress=False``):
    stored bodies are decoded, so it is never served, nor stores, a content-encoded one."""


class StoredBody(Protocol):
    """A body left in storage because it is large, its head verified: read it whole or in
    chunks (its digest is checked before the last chunk is handed over), as many times
    as needed, then close it. A read fails with :class:`StoredBodyError` if the body does
    not check out, the entry goes away or the storage fails meanwhile."""

    def chunks(self) -> AsyncIterator[bytes]: ...

    async def read(self) -> bytes: ...

    async def close(self) -> None: ...


class StoredBodyError(Exception):
    """A body left in storage could not be read to its end."""


@fast_init
@dataclass(frozen=True, slots=True)
class Facts:
    """What answering from a stored response needs from its headers, parsed once when it
    is stored (RFC 9111 §4.2, §5.2.2) instead of on every hit.

    ``no_cache`` is an unqualified response ``no-cache`` or ``Vary: *``; ``vary`` the
    lower-cased field names it varies on; the two windows are the response's own RFC 5861
    directives (None: absent). Nothing here is particular to one response, so responses
    with the same directives share one Facts (the entry's age is on the response).
    """

    no_cache: bool = False
    must_revalidate: bool = False
    immutable: bool = False
    vary: tuple[str, ...] = ()
    stale_while_revalidate: float | None = None
    stale_if_error: float | None = None


@functools.lru_cache(maxsize=256)
def shared_facts(no_cache: bool, must_revalidate: bool, immutable: bool, vary: tuple[str, ...],
                 stale_while_revalidate: float | None, stale_if_error: float | None) -> Facts:
    """The Facts of these values, one object for each set in use: most responses share a
    few, so a memory cache holds one for them all, not one per entry (less for the
    garbage collector to walk)."""
    return Facts(no_cache, must_revalidate, immutable, vary, stale_while_revalidate,
                 stale_if_error)


@fast_init
@dataclass(frozen=True, slots=True)
class CachedResponse:
    """A stored response: status line, multi-value headers, raw body and cache metadata.

    Immutable: one stored object may answer many requests at once (the memory backend
    hands out the very object it keeps); use ``dataclasses.replace`` to derive another.
    ``request_time`` and ``response_time`` are when the request was sent and the response
    received (RFC 9111 §4.2.3 needs both); ``created_at`` is when this entry was stored
    or last renewed by a 304.
    """

    status: int
    reason: str
    url: str
    headers: CIMultiDict[str]
    body: bytes
    request: CachedRequest
    encoding: str | None = None
    created_at: datetime = field(default_factory=utcnow)
    expires: datetime | None = None
    request_time: datetime | None = None
    response_time: datetime | None = None
    history: tuple[CachedResponse, ...] = ()
    """The redirect hops that led here (a tuple: immutable, and the empty one is shared)."""
    cache_key: str = ""
    vary_generation: str = ""
    """For a response with Vary: the id its variants' keys share (RFC 9111 §4.1). A new
    one starts when the entry was gone, so variants of an invalidated URL are orphaned."""
    facts: Facts | None = None
    """Parsed at store time; None for an entry written before they were kept."""
    stored_body: StoredBody | None = None
    """Set when a large body was left in storage (``body`` is then empty): only lookups
    that ask for it (``get_record(stream=True)``) get one."""
    initial_age: float | None = None
    """The corrected initial age of RFC 9111 §4.2.3 (seconds), kept with ``facts`` at store
    time; None: parsed from the headers when needed."""

    @property
    def is_expired(self) -> bool:
        return self.expires is not None and utcnow() >= self.expires

    @property
    def ttl(self) -> int | None:
        """Seconds of freshness left (0 once expired), or None if it never expires."""
        if self.expires is None:
            return None
        return max(0, int((self.expires - utcnow()).total_seconds()))


__all__ = ["NO_HEADERS", "CachedRequest", "CachedResponse", "Facts", "StoredBody", "StoredBodyError",
           "shared_facts", "utcnow"]
