"""The default stored format: a versioned binary envelope, no pickle, no base64.

    magic b"ACH" | version u8 | flags u8 | meta_len u32 | req_body_len u32 | body_len u32
    | meta (compact JSON) | request body | response body

Bodies are stored raw; only the small metadata is JSON. The exact lengths make a
truncated or padded item detectable. ``version`` lets later releases keep reading items
written by this one: add a reader to ``_READERS``, never change an existing one.
"""

from __future__ import annotations

import json
import struct
import zlib
from datetime import datetime, timedelta, timezone
from typing import Any

from multidict import CIMultiDict

from ..models import CachedRequest, CachedResponse, Facts
from .errors import DeserializationError

MAGIC = b"ACH"
VERSION = 1
FLAG_ZLIB = 0x01
_HEADER = struct.Struct("!3sBBIII")


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)


def _ts(value: datetime | None) -> int | None:
    """Integer microseconds since the epoch: exact, unlike a float timestamp."""
    return None if value is None else (value - _EPOCH) // _MICROSECOND


def _dt(value: int | None) -> datetime | None:
    return None if value is None else _EPOCH + timedelta(microseconds=value)


def _facts_meta(f: Facts | None) -> list[Any] | None:
    if f is None:
        return None
    flags = f.no_cache | f.must_revalidate << 1 | f.immutable << 2
    return [f.initial_age, flags, list(f.vary), f.stale_while_revalidate, f.stale_if_error]


def _facts(meta: list[Any] | None) -> Facts | None:
    if meta is None:
        return None
    initial_age, flags, vary, swr, sie = meta
    return Facts(float(initial_age), bool(flags & 1), bool(flags & 2), bool(flags & 4),
                 tuple(str(v) for v in vary), None if swr is None else float(swr),
                 None if sie is None else float(sie))


def _history_meta(r: CachedResponse) -> dict[str, Any]:
    return {"s": r.status, "r": r.reason, "u": r.url, "h": list(r.headers.items()),
            "m": r.request.method}


class EnvelopeFormat:
    """Encodes a :class:`CachedResponse` to bytes and back. ``compress`` zlib-compresses
    the response body (worth it for large text bodies; a hit then pays to inflate)."""

    name = "envelope"

    def __init__(self, compress: bool = False, level: int = 6) -> None:
        self.compress = compress
        self.level = level

    def dumps(self, r: CachedResponse) -> bytes:
        q = r.request
        meta = {
            "s": r.status, "r": r.reason, "u": r.url, "h": list(r.headers.items()),
            "e": r.encoding, "c": _ts(r.created_at), "x": _ts(r.expires),
            "qt": _ts(r.request_time), "rt": _ts(r.response_time),
            "qm": q.method, "qu": q.url, "qh": list(q.headers.items()),
            "hi": [_history_meta(h) for h in r.history], "vg": r.vary_generation,
            "f": _facts_meta(r.facts),
        }
        meta_b = json.dumps(meta, separators=(",", ":"), ensure_ascii=False).encode()
        body, flags = r.body, 0
        if self.compress:
            body, flags = zlib.compress(body, self.level), FLAG_ZLIB
        header = _HEADER.pack(MAGIC, VERSION, flags, len(meta_b), len(q.body), len(body))
        return b"".join((header, meta_b, q.body, body))

    def loads(self, data: bytes) -> CachedResponse:
        if len(data) < _HEADER.size:
            raise DeserializationError("item shorter than the envelope header")
        magic, version, flags, meta_len, qbody_len, body_len = _HEADER.unpack_from(data)
        if magic != MAGIC:
            raise DeserializationError("not an aiocache-http envelope")
        reader = _READERS.get(version)
        if reader is None:
            raise DeserializationError(f"unknown envelope version {version}")
        if len(data) != _HEADER.size + meta_len + qbody_len + body_len:
            raise DeserializationError("item length does not match its header (truncated?)")
        try:
            return reader(memoryview(data), flags, meta_len, qbody_len)
        except (ValueError, KeyError, TypeError, IndexError, zlib.error) as e:
            raise DeserializationError(f"corrupt envelope: {e}") from e


def _read_v1(data: memoryview, flags: int, meta_len: int, qbody_len: int) -> CachedResponse:
    start = _HEADER.size
    meta = json.loads(str(data[start : start + meta_len], "utf-8"))
    qbody_start = start + meta_len
    body = bytes(data[qbody_start + qbody_len :])
    if flags & FLAG_ZLIB:
        body = zlib.decompress(body)
    request = CachedRequest(meta["qm"], meta["qu"], CIMultiDict(meta["qh"]),
                            bytes(data[qbody_start : qbody_start + qbody_len]))
    history = [
        CachedResponse(h["s"], h["r"], h["u"], CIMultiDict(h["h"]), b"",
                       CachedRequest(h["m"], h["u"]))
        for h in meta["hi"]
    ]
    created_at = _dt(meta["c"])
    assert created_at is not None
    return CachedResponse(
        status=meta["s"], reason=meta["r"], url=meta["u"], headers=CIMultiDict(meta["h"]),
        body=body, request=request, encoding=meta["e"], created_at=created_at,
        expires=_dt(meta["x"]), request_time=_dt(meta["qt"]), response_time=_dt(meta["rt"]),
        history=history, vary_generation=meta.get("vg", ""), facts=_facts(meta.get("f")),
    )


_READERS = {1: _read_v1}
