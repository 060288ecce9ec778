"""The local origin used by end-to-end tests: every answer is scripted by the URL.

``/r/NAME?status=404&h_Cache-Control=max-age%3D60&etag=v1&delay=0.1`` answers with that
status and headers, a JSON body naming the path and how often it was requested, honours
If-None-Match against ``etag`` with a 304, and waits ``delay`` seconds first; ``gzip=1``
sends the body gzip-compressed (``Content-Encoding: gzip``).
An ``X-Status`` request header overrides ``status`` (same URL, another answer).
``/redirect/NAME`` redirects (302) to ``/r/NAME``. ``/ws`` is a WebSocket echo.
``/events/NAME?count=600&interval=0.05`` is an event stream (``text/event-stream``):
``data: N-i`` events, N the request's number. ``/echo`` returns the request headers.
``/broken/NAME`` promises 100 bytes and hangs up after 10. While ``origin.down`` is set,
every request is answered by closing the connection.

``/body/NAME?size=N`` answers ``payload(N)`` (JSON, newline every 64 bytes) in 64 KiB
writes, with Content-Length, or chunked with ``chunked=1``; ``cut=K`` hangs up after K
bytes; ``pause=S`` waits S seconds half-way through; ``h_Name=value`` adds headers;
``etag=v1`` answers If-None-Match with a 304. ``/lines/NAME?lengths=10,200000`` answers
lines of those lengths (newline included), cacheable for a minute.
"""

from __future__ import annotations

import asyncio
import gzip
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

from aiohttp import web

_UNIT = b"1," + b" " * 61 + b"\n"  # 64 bytes: one line of the payload
_WRITE = 64 * 1024


def payload_chunks(size: int) -> Iterator[bytes]:
    """``payload(size)`` in pieces of about 64 KiB, without building it whole."""
    if size <= 1:
        yield b"0"[:size]
        return
    units, pad = divmod(size - 3, len(_UNIT)) if size > 2 else (0, -1)
    yield b"["
    batch = _WRITE // len(_UNIT)
    for start in range(0, units, batch):
        yield _UNIT * min(batch, units - start)
    yield b"]" if pad < 0 else b"1" + b" " * pad + b"]"


def payload(size: int) -> bytes:
    """``size`` bytes of valid JSON (but for 0), a newline every 64 bytes."""
    return b"".join(payload_chunks(size))


class Clock:
    """A clock the test moves by hand. The origin dates its responses with it and a
    backend can use it too, so both sides agree on the time (RFC 9111 §4.2.3)."""

    def __init__(self) -> None:
        self.now = datetime.now(timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Origin:
    base: str
    counts: Counter[str]
    last_headers: dict[str, dict[str, str]] = field(default_factory=dict)
    state: dict[str, bool] = field(default_factory=dict)
    clock: Clock = field(default_factory=Clock)
    # ``?hold=NAME`` answers once the test calls release(NAME) (the origin of the
    # ``origin`` fixture, on the test's loop): a request kept at the origin for exactly as
    # long as a test needs it there, where a ``delay`` raced a loaded machine
    gates: dict[str, asyncio.Event] = field(default_factory=dict)

    def release(self, name: str) -> None:
        self.gates.setdefault(name, asyncio.Event()).set()

    @property
    def down(self) -> bool:
        return self.state.get("down", False)

    @down.setter
    def down(self, value: bool) -> None:
        self.state["down"] = value

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    def count(self, path: str) -> int:
        return self.counts[path]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def make_app(counts: Counter[str], state: dict[str, bool],
             last_headers: dict[str, dict[str, str]], clock: Clock,
             gates: dict[str, asyncio.Event] | None = None) -> web.Application:
    held = {} if gates is None else gates

    @web.middleware
    async def outage(request: web.Request, handler: Any) -> web.StreamResponse:
        last_headers[request.path] = dict(request.headers)
        if state.get("down"):
            counts[request.path] += 1
            assert request.transport is not None
            request.transport.close()
            raise ConnectionResetError("origin is down")
        response: web.StreamResponse = await handler(request)
        return response

    async def scripted(request: web.Request) -> web.StreamResponse:
        counts[request.path] += 1
        n = counts[request.path]  # this request's number, whatever arrives during a delay
        q = request.query
        if "delay" in q:
            await asyncio.sleep(float(q["delay"]))
        if "hold" in q:
            await held.setdefault(q["hold"], asyncio.Event()).wait()
        headers = {"Date": format_datetime(clock(), usegmt=True)}
        headers.update((k[2:], v) for k, v in q.items() if k.startswith("h_"))
        etag = q.get("etag")
        if etag:
            headers["ETag"] = f'"{etag}"'
            if request.headers.get("If-None-Match") == f'"{etag}"':
                return web.Response(status=304, headers=headers)
        body = json.dumps({"path": request.path, "n": n})
        status = int(request.headers.get("X-Status", q.get("status", 200)))
        if q.get("gzip"):  # sent compressed: Content-Encoding: gzip
            headers["Content-Encoding"] = "gzip"
            return web.Response(status=status, body=gzip.compress(body.encode()),
                                content_type="application/json", headers=headers)
        return web.Response(status=status, text=body,
                            content_type="application/json", headers=headers)

    async def redirect(request: web.Request) -> web.StreamResponse:
        counts[request.path] += 1
        raise web.HTTPFound(f"/r/{request.match_info['name']}")

    async def echo(request: web.Request) -> web.StreamResponse:
        counts[request.path] += 1
        body = await request.read()
        return web.json_response({"headers": dict(request.headers), "body": body.decode()})

    async def broken(request: web.Request) -> web.StreamResponse:
        counts[request.path] += 1
        response = web.StreamResponse(headers={"Cache-Control": "max-age=60"})
        response.content_length = 100
        await response.prepare(request)
        await response.write(b"x" * 10)
        assert request.transport is not None
        request.transport.close()
        return response

    async def body(request: web.Request) -> web.StreamResponse:
        counts[request.path] += 1
        q = request.query
        size = int(q.get("size", "0"))
        cut = int(q["cut"]) if "cut" in q else None
        pause = float(q.get("pause", "0"))
        headers = {"Content-Type": "application/json"}
        headers.update((k[2:], v) for k, v in q.items() if k.startswith("h_"))
        if "etag" in q:
            headers["ETag"] = f'"{q["etag"]}"'
            if request.headers.get("If-None-Match") == headers["ETag"]:
                return web.Response(status=304, headers=headers)
        response = web.StreamResponse(headers=headers)
        if q.get("chunked"):
            response.enable_chunked_encoding()
        else:
            response.content_length = size
        await response.prepare(request)
        sent = 0
        for chunk in payload_chunks(size):
            if cut is not None:
                chunk = chunk[: max(0, cut - sent)]
            if pause and sent <= size // 2 < sent + len(chunk):
                half = size // 2 - sent
                await response.write(chunk[:half])
                await asyncio.sleep(pause)
                chunk, sent = chunk[half:], sent + half
            if chunk:
                await response.write(chunk)
            sent += len(chunk)
            if cut is not None and sent >= cut:
                assert request.transport is not None
                request.transport.close()
                return response
        await response.write_eof()
        return response

    async def lines(request: web.Request) -> web.Response:
        counts[request.path] += 1
        lengths = [int(n) for n in request.query["lengths"].split(",")]
        text = b"".join(b"x" * (n - 1) + b"\n" for n in lengths)
        return web.Response(body=text, content_type="text/plain", headers={"Cache-Control": "max-age=60"})

    async def events(request: web.Request) -> web.StreamResponse:
        counts[request.path] += 1
        n = counts[request.path]
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for i in range(int(request.query.get("count", 600))):
            await response.write(f"data: {n}-{i}\n\n".encode())
            await asyncio.sleep(float(request.query.get("interval", 0.05)))
        await response.write_eof()
        return response

    async def websocket(request: web.Request) -> web.WebSocketResponse:
        counts[request.path] += 1
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for message in ws:
            await ws.send_str(f"echo {message.data}")
        return ws

    app = web.Application(middlewares=[outage])
    app.router.add_get("/ws", websocket)
    app.router.add_get("/events/{name}", events)
    app.router.add_route("*", "/r/{name}", scripted)
    app.router.add_get("/broken/{name}", broken)
    app.router.add_route("*", "/body/{name}", body)
    app.router.add_get("/redirect/{name}", redirect)
    app.router.add_route("*", "/echo", echo)
    app.router.add_get("/lines/{name}", lines)
    return app
