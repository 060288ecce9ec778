"""``get URL``: one request through the cache, and what the cache did with it and why
(the request's event: its kind and the decision's reason, with the RFC section)."""

from __future__ import annotations

from typing import Any, cast

from ..backends.base import CacheBackend
from ..events import CacheEvent
from ..models import utcnow
from .output import Output, moment
from .report import body_preview


async def get(backend: CacheBackend, out: Output, url: str, method: str, headers: dict[str, str],
              options: dict[str, Any]) -> int:
    from ..response import CachedClientResponse, OriginClientResponse
    from ..session import CachedClientSession

    events: list[CacheEvent] = []
    unsubscribe = backend.events.subscribe(events.append)
    try:
        async with (CachedClientSession(cache=backend, autoclose=False) as session,
                    session.request(method, url, headers=headers, **options) as live):
            r = cast("CachedClientResponse | OriginClientResponse", live)
            body = await r.read()
    finally:
        unsubscribe()
    event = events[-1]
    # Why the cache answered or went to the origin (the lookup), then what it did after.
    why = (event.lookup or event.decision).why()
    then = event.decision.why() if event.lookup is not None and event.decision != event.lookup else ""
    stored = ("stored" if event.stored else
              f"not stored: {event.not_stored_reason}" if event.stored is False else "")
    info = {"result": event.kind, "why": why, "then": then or None, "status": r.status, "url": str(r.url),
            "from_cache": r.from_cache, "stored": event.stored,
            "not_stored_reason": event.not_stored_reason or None, "cache_key": r.cache_key or None,
            "expires": r.expires, "bytes": len(body), "seconds": round(event.duration, 6),
            "storage_errors": list(event.storage_errors)}
    if out.json:
        out.emit(info)
        return 0
    now = utcnow()
    rows = [("result", out.paint(event.kind)), ("why", why), *([("then", then)] if then else []),
            ("status", f"{r.status} {r.reason or ''}".rstrip()), ("url", info["url"])]
    if stored:
        rows.append(("stored", stored))
    if r.cache_key:
        rows += [("key", r.cache_key), ("expires", moment(r.expires, now))]
    rows += [("body", f"{len(body):,} bytes"), ("time", f"{event.duration * 1000:.1f} ms")]
    rows += [("storage error", fault) for fault in event.storage_errors]
    out.pairs(rows)
    cached = await backend.get_record(r.cache_key) if r.cache_key else None
    preview = None if cached is None else body_preview(cached, 300)
    if preview:
        out.line("\n" + preview)
    return 0
