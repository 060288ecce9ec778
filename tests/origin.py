"""The local origin used by end-to-end tests: every answer is scripted by the URL.

``/r/NAME?status=404&h_Cache-Control=max-age%3D60&etag=v1&delay=0.1`` answers with that
status and headers, a JSON body naming the path and how often it was requested, honours
If-None-Match against ``etag`` with a 304, and waits ``delay`` seconds first.
``/redirect/NAME`` redirects (302) to ``/r/NAME``. ``/echo`` returns the request headers.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class Origin:
    base: str
    counts: Counter[str]
    last_headers: dict[str, dict[str, str]] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    def count(self, path: str) -> int:
        return self.counts[path]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def make_app(counts: Counter[str]) -> web.Application:
    async def scripted(request: web.Request) -> web.StreamResponse:
        counts[request.path] += 1
        q = request.query
        if "delay" in q:
            await asyncio.sleep(float(q["delay"]))
        headers = {k[2:]: v for k, v in q.items() if k.startswith("h_")}
        etag = q.get("etag")
        if etag:
            headers["ETag"] = f'"{etag}"'
            if request.headers.get("If-None-Match") == f'"{etag}"':
                return web.Response(status=304, headers=headers)
        body = json.dumps({"path": request.path, "n": counts[request.path]})
        return web.Response(status=int(q.get("status", 200)), text=body,
                            content_type="application/json", headers=headers)

    async def redirect(request: web.Request) -> web.StreamResponse:
        counts[request.path] += 1
        raise web.HTTPFound(f"/r/{request.match_info['name']}")

    async def echo(request: web.Request) -> web.StreamResponse:
        counts[request.path] += 1
        body = await request.read()
        return web.json_response({"headers": dict(request.headers), "body": body.decode()})

    app = web.Application()
    app.router.add_route("*", "/r/{name}", scripted)
    app.router.add_get("/redirect/{name}", redirect)
    app.router.add_route("*", "/echo", echo)
    return app
