"""``get URL``: one request through the cache, and what the cache did with it."""

from __future__ import annotations

from typing import Any, cast

from ..backends.base import CacheBackend
from ..models import utcnow
from .output import Output, moment
from .report import body_preview


async def get(backend: CacheBackend, out: Output, url: str, method: str, headers: dict[str, str],
              options: dict[str, Any]) -> int:
    from ..response import CachedClientResponse, OriginClientResponse
    from ..session import CachedClientSession

    async with (CachedClientSession(cache=backend, autoclose=False) as session,
                session.request(method, url, headers=headers, **options) as live):
        r = cast("CachedClientResponse | OriginClientResponse", live)
        body = await r.read()
        result = "hit" if r.from_cache else "miss"
        info = {"result": result, "status": r.status, "url": str(r.url), "from_cache": r.from_cache,
                "cache_key": r.cache_key, "expires": r.expires, "bytes": len(body)}
        cached = await backend.get_response(r.cache_key) if r.cache_key else None
    if out.json:
        out.emit(info)
        return 0
    now = utcnow()
    out.pairs([("result", out.paint(result)), ("status", f"{r.status} {r.reason or ''}".rstrip()),
               ("url", info["url"]), ("key", r.cache_key or "-"),
               ("expires", moment(r.expires, now) if r.cache_key else "not stored"),
               ("body", f"{len(body):,} bytes")])
    if cached is not None:
        preview = body_preview(cached, 300)
        if preview:
            out.line("\n" + preview)
    return 0
