"""Reading an event (``aiocache_http.events.CacheEvent``): what every exporter derives
from it the same way."""

from __future__ import annotations

from ..events import CacheEvent
from ..policy.decisions import Revalidate

RESULTS = ("hit", "stale", "revalidated", "miss", "bypassed", "gateway_timeout", "error")
"""Every ``event.kind``: the ``result`` label of the exporters."""


def revalidation(event: CacheEvent) -> str | None:
    """``"not_modified"`` (a 304 renewed the entry), ``"full"`` (a conditional request got
    a full response) or None (no revalidation)."""
    if event.kind == "revalidated":
        return "not_modified"
    if event.kind == "miss" and isinstance(event.lookup, Revalidate):
        return "full"
    return None


def is_timeout(fault: str) -> bool:
    """A storage fault (``"op: ErrorType: message"``) that is a deadline, not an error."""
    _op, _sep, rest = fault.partition(": ")
    return "Timeout" in rest.partition(":")[0]
