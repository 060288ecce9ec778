"""The ``Cache-Status`` response header (RFC 9211) of one request, from its event.

    aiocache-http; hit; ttl=52                        fresh from the cache
    aiocache-http; hit; detail=stale-while-revalidate; ttl=-8
    aiocache-http; fwd=stale; fwd-status=304; stored; ttl=60   revalidated and renewed
    aiocache-http; fwd=miss; fwd-status=200; stored; ttl=300
    aiocache-http; fwd=request; fwd-status=200; stored          the request asked to refresh
    aiocache-http; fwd=bypass; fwd-status=200                  the cache was not used
    aiocache-http; fwd=miss; collapsed; ttl=300                 shared another request's fetch

Parameters (RFC 9211 §2): ``hit`` (not forwarded, answered from the cache), ``fwd`` (why
it was forwarded: ``bypass``, ``method``, ``miss``, ``request``, ``stale``),
``fwd-status``, ``stored``, ``collapsed``, ``ttl`` (seconds of freshness left; negative
when stale), ``detail`` (which stale rule applied).
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from ..events import CacheEvent
from ..policy.decisions import Fetch, GatewayTimeout, Revalidate

NAME = "aiocache-http"


def _ttl(expires: datetime | None, now: datetime) -> str | None:
    if expires is None:
        return None
    return f"ttl={math.floor((expires - now).total_seconds())}"


def _forward_reason(event: CacheEvent, now: datetime) -> str:
    """Why a request that reached the origin did (§2.2)."""
    lookup = event.lookup
    cached: Any = getattr(lookup, "cached", None)
    if cached is None:
        return "request" if lookup is None else "miss"
    fresh = cached.expires is None or cached.expires > now
    return "request" if fresh else "stale"


def cache_status(event: CacheEvent, expires: datetime | None, now: datetime, name: str = NAME) -> str | None:
    """The header value for the response of ``event`` (``expires``: the served or stored
    response's expiry), or None when there is no response (the request failed)."""
    kind, params = event.kind, [name]
    ttl = _ttl(expires, now)
    if kind == "error":
        return None
    if event.coalesced and kind == "hit":  # answered by another request's origin fetch
        params += [f"fwd={_forward_reason(event, now)}", "collapsed"]
    elif kind in ("hit", "stale"):
        if kind == "stale" and isinstance(event.lookup, (Fetch, Revalidate)):
            params += ["fwd=stale", "detail=stale-if-error"]  # the origin failed; the stale one answered
        else:
            params.append("hit")
            if kind == "stale":
                rule = "stale-while-revalidate" if getattr(event.decision, "refresh", None) else "max-stale"
                params.append(f"detail={rule}")
    elif kind == "revalidated":
        params += ["fwd=stale", "fwd-status=304", "stored"]
    elif kind == "bypassed":
        params.append("fwd=method" if "method" in event.decision.reason else "fwd=bypass")
        if event.status is not None:
            params.append(f"fwd-status={event.status}")
        ttl = None
    elif kind == "gateway_timeout":
        if isinstance(event.lookup, GatewayTimeout):
            return f"{name}; detail=only-if-cached"
        return f"{name}; fwd=stale; detail=must-revalidate"
    else:
        params.append(f"fwd={_forward_reason(event, now)}")
        if event.status is not None:
            params.append(f"fwd-status={event.status}")
        if event.stored:
            params.append("stored")
        else:
            ttl = None
    if ttl is not None:
        params.append(ttl)
    return "; ".join(params)
