"""A tiny HTTP/1.1 origin on a raw asyncio socket: it answers with exactly the bytes a
test scripts, so headers no framework would write (non-UTF-8 bytes, absurd numbers,
thousands of fields) reach the client as they would from a hostile server."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field


def response(headers: list[tuple[bytes, bytes]], body: bytes = b"hello", status: bytes = b"200 OK",
             ) -> bytes:
    """A complete response: status line, the headers as given, Content-Length, body."""
    lines = [b"HTTP/1.1 " + status, *(name + b": " + value for name, value in headers),
             b"Content-Length: " + str(len(body)).encode(), b"Connection: close", b"", b""]
    return b"\r\n".join(lines) + body


@dataclass
class RawOrigin:
    base: str
    scripts: dict[str, bytes]
    counts: Counter[str] = field(default_factory=Counter)

    def url(self, path: str) -> str:
        return self.base + path


@asynccontextmanager
async def raw_origin(scripts: dict[str, bytes]) -> AsyncIterator[RawOrigin]:
    """Serve ``scripts`` (path -> raw response bytes) on a free loopback port; one
    request per connection."""
    origin = RawOrigin("", scripts)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            path = head.split(b" ", 2)[1].decode("latin-1").split("?", 1)[0]
            origin.counts[path] += 1
            writer.write(origin.scripts.get(path, response([], b"not found", b"404 Not Found")))
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    origin.base = f"http://127.0.0.1:{port}"
    try:
        yield origin
    finally:
        server.close()
        await server.wait_closed()
