"""The default stored format: a versioned binary envelope, no pickle, no base64.

Version 2 (written by this release) ends with a trailer, so it can be written while the
body is still arriving and read in parts, without holding the body in memory::

    magic b"ACH" | version u8 | flags u8 | meta_len u32 | req_body_len u32
    | meta (compact JSON) | request body | response body
    | body_len u64 | crc32 u32

``crc32`` covers every byte before it and ``body_len`` is the stored body's length, so
a truncated, padded or corrupted item is detected (a miss) even without a ``secret_key``;
both are computed incrementally, chunk by chunk (:class:`EnvelopeEncoder`,
:class:`EnvelopeDecoder`). Only the small metadata is JSON; bodies are stored raw (or
zlib-compressed, chunk by chunk, with ``compress``).

Version 1 (``... | req_body_len u32 | body_len u32 | meta | request body | body``, no
checksum) is still read. ``version`` lets later releases keep reading items written by
this one: add a reader, never change an existing one.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, NoReturn

from multidict import CIMultiDict

from ..models import CachedRequest, CachedResponse
from .errors import DeserializationError

MAGIC = b"ACH"
VERSION = 2
FLAG_ZLIB = 0x01
_HEAD = struct.Struct("!3sBBII")  # magic, version, flags, meta_len, req_body_len
_HEAD_V1 = struct.Struct("!3sBBIII")  # ... and body_len
_TRAILER = struct.Struct("!QI")  # body_len, crc32
_CRC = struct.Struct("!I")
_CRC_SPAN = _TRAILER.size - _CRC.size  # trailer bytes the checksum covers (body_len)

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)


def _ts(value: datetime | None) -> int | None:
    """Integer microseconds since the epoch: exact, unlike a float timestamp."""
    return None if value is None else (value - _EPOCH) // _MICROSECOND


def _dt(value: int | None) -> datetime | None:
    return None if value is None else _EPOCH + timedelta(microseconds=value)


def _history_meta(r: CachedResponse) -> dict[str, Any]:
    return {"s": r.status, "r": r.reason, "u": r.url, "h": list(r.headers.items()),
            "m": r.request.method}


def _meta(r: CachedResponse) -> bytes:
    q = r.request
    meta = {
        "s": r.status, "r": r.reason, "u": r.url, "h": list(r.headers.items()),
        "e": r.encoding, "c": _ts(r.created_at), "x": _ts(r.expires),
        "qt": _ts(r.request_time), "rt": _ts(r.response_time),
        "qm": q.method, "qu": q.url, "qh": list(q.headers.items()),
        "hi": [_history_meta(h) for h in r.history], "vg": r.vary_generation,
    }
    return json.dumps(meta, separators=(",", ":"), ensure_ascii=False).encode()


def _response(meta_bytes: bytes | memoryview, request_body: bytes, body: bytes) -> CachedResponse:
    meta = json.loads(str(meta_bytes, "utf-8"))
    request = CachedRequest(meta["qm"], meta["qu"], CIMultiDict(meta["qh"]), request_body)
    history = [
        CachedResponse(h["s"], h["r"], h["u"], CIMultiDict(h["h"]), b"",
                       CachedRequest(h["m"], h["u"]))
        for h in meta["hi"]
    ]
    created_at = _dt(meta["c"])
    if created_at is None:
        raise ValueError("no creation time")
    return CachedResponse(
        status=meta["s"], reason=meta["r"], url=meta["u"], headers=CIMultiDict(meta["h"]),
        body=body, request=request, encoding=meta["e"], created_at=created_at,
        expires=_dt(meta["x"]), request_time=_dt(meta["qt"]), response_time=_dt(meta["rt"]),
        history=history, vary_generation=meta.get("vg", ""),
    )


_DECODE_ERRORS = (ValueError, KeyError, TypeError, IndexError, zlib.error)


class EnvelopeFormat:
    """Encodes a :class:`CachedResponse` to bytes and back, whole or in parts.
    ``compress`` zlib-compresses the response body (worth it for large text bodies; a
    hit then pays to inflate)."""

    name = "envelope"

    def __init__(self, compress: bool = False, level: int = 6) -> None:
        self.compress = compress
        self.level = level

    def encoder(self, response: CachedResponse) -> EnvelopeEncoder:
        """Encode ``response``'s metadata now and its body as it arrives (its ``body``
        field is ignored)."""
        return EnvelopeEncoder(response, self.level if self.compress else None)

    def dumps(self, r: CachedResponse) -> bytes:
        encoder = self.encoder(r)
        return b"".join((encoder.head, encoder.body(r.body), encoder.tail()))

    def decoder(self, size: int, keep_body: bool = True) -> EnvelopeDecoder:
        """Decode an item of ``size`` bytes fed in parts (see :class:`EnvelopeDecoder`)."""
        return EnvelopeDecoder(size, keep_body)

    def loads(self, data: bytes) -> CachedResponse:
        """Decode a whole item (the fast path of :class:`EnvelopeDecoder`)."""
        size = len(data)
        if size < _HEAD.size or data[:3] != MAGIC:
            raise DeserializationError("not an aiocache-http envelope")
        version = data[3]
        if version != VERSION:
            decoder = self.decoder(size)  # older versions: the general reader
            decoder.feed(data)
            return decoder.finish().response
        _, _, flags, meta_len, qbody_len = _HEAD.unpack_from(data)
        body_start, body_end = _HEAD.size + meta_len + qbody_len, size - _TRAILER.size
        if body_start > body_end:
            raise DeserializationError("item length does not match its header (truncated?)")
        body_len, crc = _TRAILER.unpack_from(data, body_end)
        if body_len != body_end - body_start:
            raise DeserializationError("item length does not match its trailer (truncated?)")
        if zlib.crc32(memoryview(data)[: size - _CRC.size]) != crc:
            raise DeserializationError("checksum mismatch (corrupted item)")
        try:
            body = data[body_start:body_end]
            if flags & FLAG_ZLIB:
                body = zlib.decompress(body)
            return _response(memoryview(data)[_HEAD.size : _HEAD.size + meta_len],
                             data[_HEAD.size + meta_len : body_start], body)
        except _DECODE_ERRORS as e:
            raise DeserializationError(f"corrupt envelope: {e}") from e


class EnvelopeEncoder:
    """Writes one item in order: :attr:`head` (known up front), then what :meth:`body`
    returns for each body chunk, then :meth:`tail`. Nothing is buffered but zlib's own
    window; the checksum is updated as bytes go by."""

    __slots__ = ("_compressor", "_crc", "_length", "head")

    def __init__(self, response: CachedResponse, compress_level: int | None = None) -> None:
        meta = _meta(response)
        request_body = response.request.body
        flags = FLAG_ZLIB if compress_level is not None else 0
        self.head = b"".join((_HEAD.pack(MAGIC, VERSION, flags, len(meta), len(request_body)),
                              meta, request_body))
        self._compressor = zlib.compressobj(compress_level) if compress_level is not None else None
        self._crc = zlib.crc32(self.head)
        self._length = 0

    def body(self, chunk: bytes | bytearray | memoryview) -> bytes | bytearray | memoryview:
        """The stored bytes for the next body chunk (the chunk itself unless compressed)."""
        out = chunk if self._compressor is None else self._compressor.compress(chunk)
        self._crc = zlib.crc32(out, self._crc)
        self._length += len(out)
        return out

    def tail(self) -> bytes:
        rest = b"" if self._compressor is None else self._compressor.flush()
        self._length += len(rest)
        length = struct.pack("!Q", self._length)
        crc = zlib.crc32(length, zlib.crc32(rest, self._crc))
        return rest + length + _CRC.pack(crc)


@dataclass(slots=True)
class Decoded:
    """An item decoded by :class:`EnvelopeDecoder`: the response (with its body if it
    was kept), and where the stored body lies in the item."""

    response: CachedResponse
    body_start: int
    body_end: int
    compressed: bool


class EnvelopeDecoder:
    """Decodes one item of known size, fed in order in parts of any size. The head is
    parsed as soon as it is in; :meth:`finish` verifies length and checksum and raises
    :class:`DeserializationError` for anything that is not a whole, intact item.

    With ``keep_body=False`` the body only passes through the checksum: the caller
    reads it later from storage (``Decoded.body_start`` / ``body_end``).
    """

    def __init__(self, size: int, keep_body: bool = True) -> None:
        self.size = size
        self.keep_body = keep_body
        self._pos = 0
        self._head = bytearray()  # until the head is parsed
        self._meta = b""
        self._request_body = b""
        self._flags = 0
        self._version = 0
        self._body_start = -1
        self._body_end = -1
        self._crc = 0
        self._tail = bytearray()  # the bytes after the body (v2 trailer)
        self._body = io.BytesIO()

    def feed(self, part: bytes | memoryview) -> None:
        view = memoryview(part)
        if self._pos + len(view) > self.size:
            raise DeserializationError("item longer than its storage said")
        offset = self._pos
        self._pos += len(view)
        while self._body_start < 0:
            take = self._head_wanted() - len(self._head)
            if take <= 0:
                self._parse_head()
            elif not len(view):
                return
            else:
                self._head += view[:take]
                taken = min(take, len(view))
                view, offset = view[taken:], offset + taken
        if len(view):
            self._feed_rest(view, offset)

    def _feed_rest(self, view: memoryview, start: int) -> None:
        """Bytes from offset ``start`` on, the head already parsed."""
        body_part = view[: max(0, self._body_end - start)]
        if len(body_part):
            if self._version >= 2:
                self._crc = zlib.crc32(body_part, self._crc)
            if self.keep_body:
                self._body.write(body_part)
        rest = view[len(body_part):]
        if len(rest):
            self._tail += rest

    def _head_wanted(self) -> int:
        """How many bytes the head has: known in steps, as its fixed part comes in."""
        head = self._head
        if len(head) < 4:
            return _HEAD.size
        if bytes(head[:3]) != MAGIC:
            self._fail("not an aiocache-http envelope")
        version = head[3]
        if version == 1:
            fixed: struct.Struct = _HEAD_V1
        elif version == VERSION:
            fixed = _HEAD
        else:
            self._fail(f"unknown envelope version {version}")
        if len(head) < fixed.size:
            return fixed.size
        meta_len, qbody_len = fixed.unpack_from(head)[3:5]
        wanted = int(fixed.size + meta_len + qbody_len)
        if wanted > self.size:
            self._fail("item length does not match its header (truncated?)")
        return wanted

    def _parse_head(self) -> None:
        """The head is all in (``_head_wanted()`` bytes): parse its fixed part."""
        head = bytes(self._head)
        self._head = bytearray()
        version = head[3]
        if version == 1:
            _, _, flags, meta_len, qbody_len, body_len = _HEAD_V1.unpack_from(head)
            fixed = _HEAD_V1.size
            body_end = fixed + meta_len + qbody_len + body_len
            if body_end != self.size:
                self._fail("item length does not match its header (truncated?)")
        else:
            _, _, flags, meta_len, qbody_len = _HEAD.unpack_from(head)
            fixed = _HEAD.size
            body_end = self.size - _TRAILER.size
        body_start = fixed + meta_len + qbody_len
        if body_start > body_end:
            self._fail("item length does not match its header (truncated?)")
        self._version, self._flags = version, flags
        self._meta = head[fixed : fixed + meta_len]
        self._request_body = head[fixed + meta_len : body_start]
        self._body_start, self._body_end = body_start, body_end
        if version >= 2:
            self._crc = zlib.crc32(head)

    def _fail(self, reason: str) -> NoReturn:
        raise DeserializationError(reason)

    def finish(self) -> Decoded:
        if self._pos != self.size or self._body_start < 0:
            raise DeserializationError("item shorter than its storage said")
        if self._version >= 2:
            body_len, crc = _TRAILER.unpack(self._tail)
            if body_len != self._body_end - self._body_start:
                raise DeserializationError("item length does not match its trailer (truncated?)")
            if zlib.crc32(self._tail[:_CRC_SPAN], self._crc) != crc:
                raise DeserializationError("checksum mismatch (corrupted item)")
        compressed = bool(self._flags & FLAG_ZLIB)
        try:
            body = self._body.getvalue() if self.keep_body else b""
            if compressed and self.keep_body:
                body = zlib.decompress(body)
            response = _response(self._meta, self._request_body, body)
        except _DECODE_ERRORS as e:
            raise DeserializationError(f"corrupt envelope: {e}") from e
        return Decoded(response, self._body_start, self._body_end, compressed)
