"""An httpbin.org stand-in on 127.0.0.1, for the peers' documented examples
(tests/test_peer_examples_*.py): the routes those examples call, answering as httpbin
does in what the examples look at. It also answers absolute-form (proxy) requests, so a
requests example keeps its ``http://httpbin.org/...`` URLs with ``HTTP_PROXY`` set to it.

``/delay/N`` waits N/100 seconds (not N), so the examples stay fast.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any

from aiohttp import web


@contextmanager
def running_httpbin() -> Iterator[HttpBin]:
    """The stand-in, served by a loop in its own thread."""
    bin = HttpBin("", Counter(), {})
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(make_httpbin_app(bin.counts, bin.failing))
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", 0).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    bin.base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield bin
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@dataclass
class HttpBin:
    base: str
    counts: Counter[str]  # requests per host + path ("httpbin.org/get")
    failing: dict[str, int]  # host + path -> the error status it answers with for now

    def count(self, host_path: str) -> int:
        return self.counts[host_path]


async def _info(request: web.Request) -> dict[str, Any]:
    body = await request.read()
    info: dict[str, Any] = {"args": dict(request.query), "headers": dict(request.headers),
                            "origin": "127.0.0.1", "url": str(request.url), "method": request.method}
    if body:
        info["data"] = body.decode("utf-8", "replace")
    return info


def make_httpbin_app(counts: Counter[str], failing: dict[str, int]) -> web.Application:
    @web.middleware
    async def count(request: web.Request, handler: Any) -> web.StreamResponse:
        where = f"{request.host}{request.path}"
        counts[where] += 1
        if where in failing:
            return web.Response(status=failing[where])
        response: web.StreamResponse = await handler(request)
        return response

    async def echo(request: web.Request) -> web.Response:
        return web.json_response(await _info(request))

    async def delay(request: web.Request) -> web.Response:
        await asyncio.sleep(min(float(request.match_info["n"]), 10) / 100)
        return web.json_response(await _info(request))

    async def ip(request: web.Request) -> web.Response:
        return web.json_response({"origin": "127.0.0.1"})

    async def json_doc(request: web.Request) -> web.Response:
        return web.json_response({"slideshow": {"author": "Yours Truly", "title": "Sample Slide Show"}})

    async def headers(request: web.Request) -> web.Response:
        return web.json_response({"headers": dict(request.headers)})

    async def cache(request: web.Request) -> web.Response:
        """``/cache``: 304 to a conditional request, else Last-Modified + ETag;
        ``/cache/N``: ``Cache-Control: public, max-age=N``."""
        n = request.match_info.get("n")
        if n is not None:
            return web.json_response(await _info(request), headers={"Cache-Control": f"public, max-age={n}"})
        if request.headers.get("If-None-Match") or request.headers.get("If-Modified-Since"):
            return web.Response(status=304)
        return web.json_response(await _info(request), headers={
            "Last-Modified": formatdate(usegmt=True), "ETag": '"httpbin"'})

    async def etag(request: web.Request) -> web.Response:
        tag = f'"{request.match_info["etag"]}"'
        if request.headers.get("If-None-Match") == tag:
            return web.Response(status=304, headers={"ETag": tag})
        return web.json_response(await _info(request), headers={"ETag": tag})

    async def status(request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["code"]))

    async def redirect(request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        raise web.HTTPFound("/get" if n <= 1 else f"/relative-redirect/{n - 1}")

    async def response_headers(request: web.Request) -> web.Response:
        return web.json_response(dict(request.query), headers=dict(request.query))

    async def image(request: web.Request) -> web.Response:
        return web.Response(body=b"\xff\xd8\xff" + bytes(100), content_type="image/jpeg")

    async def data(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * int(request.match_info["n"]), content_type="application/octet-stream")

    async def html(request: web.Request) -> web.Response:
        return web.Response(text="<html><body><h1>Moby Dick</h1></body></html>", content_type="text/html")

    async def teapot(request: web.Request) -> web.Response:
        return web.Response(status=418, text="-=[ teapot ]=-")

    async def links(request: web.Request) -> web.Response:
        """A page linking to three others (aiohttp-client-cache's precache.py)."""
        page = '<a href="/get">get</a> <a href="json">json</a> <a href="/html">html</a>'
        return web.Response(text=page, content_type="text/html")

    async def repos(request: web.Request) -> web.Response:
        """GitHub's repository list: an ETag, a rate-limit counter that a 304 leaves alone."""
        used = counts["ratelimit"]
        tag = '"repos-v1"'
        if request.headers.get("If-None-Match") == tag:
            return web.Response(status=304, headers={"ETag": tag, "x-ratelimit-used": str(used)})
        counts["ratelimit"] += 1
        return web.json_response([{"name": "aiohttp-client-cache"}], headers={
            "ETag": tag, "Cache-Control": "private, max-age=60", "x-ratelimit-used": str(used + 1)})

    async def stream(request: web.Request) -> web.StreamResponse:
        """``/stream/N``: N JSON lines, chunked."""
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for i in range(int(request.match_info["n"])):
            await response.write(b'{"id": %d}\n' % i)
        await response.write_eof()
        return response

    async def repo(request: web.Request) -> web.Response:
        """A GitHub repository: an ETag, no Cache-Control (headers.md)."""
        tag = '"repo-v1"'
        if request.headers.get("If-None-Match") == tag:
            return web.Response(status=304, headers={"ETag": tag})
        name = request.match_info["owner"] + "/" + request.match_info["name"]
        return web.json_response({"full_name": name},
                                 headers={"ETag": tag})

    app = web.Application(middlewares=[count])
    add = app.router.add_route
    for path in ("/get", "/post", "/put", "/patch", "/delete", "/anything", "/anything/{rest:.*}"):
        add("*", path, echo)
    add("GET", "/delay/{n}", delay)
    add("GET", "/ip", ip)
    add("GET", "/json", json_doc)
    add("GET", "/headers", headers)
    add("GET", "/cache", cache)
    add("GET", "/cache/{n}", cache)
    add("GET", "/etag/{etag}", etag)
    add("*", "/status/{code}", status)
    add("GET", "/redirect/{n}", redirect)
    add("GET", "/relative-redirect/{n}", redirect)
    add("GET", "/response-headers", response_headers)
    add("GET", "/image/{kind}", image)
    add("GET", "/bytes/{n}", data)
    add("GET", "/html", html)
    add("GET", "/teapot", teapot)
    add("GET", "/links", links)
    add("GET", "/orgs/{org}/repos", repos)
    add("GET", "/repos/{owner}/{name}", repo)
    add("GET", "/stream/{n}", stream)
    add("*", "/{rest:.*}", echo)  # other hosts' pages (via the proxy form): an echo
    return app
