"""What this package reads from an event (``aiocache_http.events.CacheEvent``): typed as
a protocol so exporters stay decoupled from how the driver builds it."""

from __future__ import annotations

from typing import Protocol


class Decided(Protocol):
    reason: str

    def why(self) -> str: ...


class Event(Protocol):
    @property
    def kind(self) -> str: ...
    @property
    def method(self) -> str: ...
    @property
    def status(self) -> int | None: ...
    @property
    def decision(self) -> Decided: ...
    @property
    def lookup(self) -> Decided | None: ...
    @property
    def from_cache(self) -> bool: ...
    @property
    def stored(self) -> bool | None: ...
    @property
    def not_stored_reason(self) -> str: ...
    @property
    def coalesced(self) -> bool: ...
    @property
    def duration(self) -> float: ...
    @property
    def bytes_served(self) -> int | None: ...
    @property
    def bytes_stored(self) -> int: ...
    @property
    def storage_errors(self) -> tuple[str, ...]: ...
    @property
    def why(self) -> str: ...


RESULTS = ("hit", "stale", "revalidated", "miss", "bypassed", "gateway_timeout", "error")
"""Every ``event.kind``: the ``result`` label of the exporters."""


def revalidation(event: Event) -> str | None:
    """``"not_modified"`` (a 304 renewed the entry), ``"full"`` (a conditional request got
    a full response) or None (no revalidation)."""
    if event.kind == "revalidated":
        return "not_modified"
    if event.kind == "miss" and type(event.lookup).__name__ == "Revalidate":
        return "full"
    return None


def is_timeout(fault: str) -> bool:
    """A storage fault (``"op: ErrorType: message"``) that is a deadline, not an error."""
    _op, _sep, rest = fault.partition(": ")
    return "Timeout" in rest.partition(":")[0]
