"""The values the decision core returns: what to do next, and why.

Every decision is an immutable value carrying its ``reason`` and the ``rfc`` section it
follows (empty for a requests-cache setting). The driver carries decisions out; it
never makes one. The lifecycle of one request:

    plan()        -> PassThrough, or a Plan
    on_lookup()   -> Lookup (read one more entry: a Vary variant, the GET for a HEAD),
                     Serve, ServeStale, Revalidate, Fetch or GatewayTimeout
    on_response() -> Store, Renew, ServeStale, DontStore, Fetch (again), each maybe
                     wrapped in Invalidate (delete these keys first)
    on_error()    -> ServeStale or GatewayTimeout (None: the error is the answer)
"""

from __future__ import annotations

from dataclasses import dataclass

from multidict import CIMultiDict

from ..models import CachedRequest, CachedResponse
from ..models.frozen import fast_init


@fast_init
@dataclass(frozen=True, slots=True)
class Decision:
    """``reason`` is a %-template of ``args``, formatted only when read (:meth:`why`):
    a hit never pays for a message nobody logs."""

    reason: str
    rfc: str = ""
    args: tuple[object, ...] = ()

    def why(self) -> str:
        text = self.reason % self.args if self.args else self.reason
        return f"{text} ({self.rfc})" if self.rfc else text

    @property
    def name(self) -> str:
        return type(self).__name__


# -- before the origin --------------------------------------------------------------------
@fast_init
@dataclass(frozen=True, slots=True)
class PassThrough(Decision):
    """Bypass the cache: send the request as is, read and store nothing."""


@fast_init
@dataclass(frozen=True, slots=True)
class Lookup(Decision):
    """Read one more stored entry and decide again: a Vary variant (§4.1) or, for a HEAD,
    the GET's entry (§4.3.5). ``base`` is the key variants of that entry derive from."""

    key: str = ""
    base: str = ""
    head_from_get: bool = False
    variant: bool = False
    vary_generation: str = ""


@fast_init
@dataclass(frozen=True, slots=True)
class Serve(Decision):
    """Answer from the cache, no origin request. ``age`` is the Age to show (cache_control)."""

    response: CachedResponse | None = None
    age: float | None = None


@fast_init
@dataclass(frozen=True, slots=True)
class Fresh:
    """A :class:`Serve` that holds for one plan and one stored entry (the very object)
    until ``until`` (a POSIX timestamp; inf: it never expires): RFC 9111 §4.2 decided
    once, for the later hits on that entry, where nothing but the clock can change the
    verdict (no request directive). ``aged``: the answer shows Age (cache_control), which
    moves with the clock: each hit takes it from ``core.age_at`` (``serve.age`` is None).
    See ``core.fresh_verdict``."""

    serve: Serve
    stored: CachedResponse
    until: float
    aged: bool = False


@dataclass(frozen=True, slots=True)
class ServeStale(Decision):
    """Answer with a stale stored response (max-stale, stale-while-revalidate,
    stale-if-error). ``refresh``: the request to send in the background, if any."""

    response: CachedResponse | None = None
    age: float | None = None
    refresh: Revalidate | Fetch | None = None


@fast_init
@dataclass(frozen=True, slots=True)
class Revalidate(Decision):
    """A conditional request for the stored ``cached`` (§4.3.1); a matching 304 renews it."""

    cached: CachedResponse | None = None
    headers: tuple[tuple[str, str], ...] = ()
    vary_generation: str = ""


@fast_init
@dataclass(frozen=True, slots=True)
class Fetch(Decision):
    """A plain origin request. ``cached`` is the stale entry, kept for stale-if-error."""

    cached: CachedResponse | None = None
    vary_generation: str = ""


@fast_init
@dataclass(frozen=True, slots=True)
class GatewayTimeout(Decision):
    """Answer 504 without asking the origin (only-if-cached §5.2.1.7, must-revalidate
    with the origin unreachable §5.2.2.2)."""

    response: CachedResponse | None = None


# -- after the origin ----------------------------------------------------------------------
@fast_init
@dataclass(frozen=True, slots=True)
class Store(Decision):
    """Store the origin's response, once its body is complete, under ``keys`` (the
    request's key, then its Vary variant's), with ``aliases`` (redirect hops' keys)
    pointing at the first. ``headers`` and ``expires`` are what to store."""

    headers: CIMultiDict[str] | None = None
    keys: tuple[str, ...] = ()
    vary_generation: str = ""
    aliases: tuple[str, ...] = ()
    request: CachedRequest | None = None
    """The request to store it for, when not the one sent (a POST stored for GET)."""


@fast_init
@dataclass(frozen=True, slots=True)
class Renew(Decision):
    """A 304 validated the stored entry: store the renewed ``response`` under ``keys`` and
    answer with ``answer`` (§4.3.4): the renewed response, or a 304 when the client's own
    conditional request matches it (§4.3.2)."""

    response: CachedResponse | None = None
    keys: tuple[str, ...] = ()
    age: float | None = None
    answer: CachedResponse | None = None


@fast_init
@dataclass(frozen=True, slots=True)
class DontStore(Decision):
    """Hand the origin's response to the caller; store nothing."""


@fast_init
@dataclass(frozen=True, slots=True)
class Invalidate(Decision):
    """Delete the entries at ``keys`` (and ``urls``, for the record), then do ``then``."""

    keys: tuple[str, ...] = ()
    urls: tuple[str, ...] = ()
    then: Decision | None = None


def gateway_timeout(request: CachedRequest) -> CachedResponse:
    """The synthetic 504 of only-if-cached (§5.2.1.7) and of must-revalidate (§5.2.2.2);
    "Not Cached", requests-cache's reason phrase (its users' logs and docs show it)."""
    return CachedResponse(504, "Not Cached", request.url, CIMultiDict(), b"", request)


__all__ = ["Decision", "DontStore", "Fetch", "Fresh", "GatewayTimeout", "Invalidate", "Lookup",
           "PassThrough", "Renew", "Revalidate", "Serve", "ServeStale", "Store", "gateway_timeout"]
