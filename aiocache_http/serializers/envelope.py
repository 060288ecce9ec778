"""The default stored format: a versioned binary envelope, no pickle, no base64.

Version 2::

    magic b"ACH" | version u8 | flags u8 | meta_len u32 | req_body_len u32 | body_len u32
    | body_digest (16 bytes) | tag (16 bytes, or 32 when FLAG_SIGNED)
    | meta (compact JSON, ASCII) | request body | response body

``body_digest`` is BLAKE2b-128 of the response body as stored (after compression):
:func:`body_hasher` gives the hash object, so a writer that streams a body updates it
chunk by chunk and never holds the body twice (:class:`EnvelopeEncoder`: the head, which
holds the body's length and digest, is known last and goes in front of the body).
``tag`` (see :mod:`.integrity`) covers the cache key, the fixed header (``body_digest``
included, so the body too), the metadata and the request body: a checksum without a
``secret_key``, a signature with one. The tag is checked before a byte of metadata is
parsed, then the body digest; only then is the JSON decoded, and every field is type-
and range-checked, so an item is either a valid response or a
:class:`DeserializationError` (a miss), whatever its bytes.

Metadata JSON is ASCII (``ensure_ascii``): header text from the wire, surrogate-escaped
bytes included, round-trips exactly.

A large item is read in two steps (:func:`head_length`, :func:`loads_head`): its head
is verified and decoded first, without the body; the body's digest is then checked as
the body is read (``backends/bodies.py``).

``version`` lets later releases keep reading items written by this one: add a reader to
``_READERS``, never change an existing one. Version 1 items (no checksum) are not read:
they are misses, deleted and fetched again once.
"""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from multidict import CIMultiDict

from ..models import CachedRequest, CachedResponse, Facts, shared_facts
from .errors import DeserializationError
from .integrity import Checksum, Integrity, key_part

MAGIC = b"ACH"
VERSION = 2
FLAG_ZLIB = 0x01
FLAG_SIGNED = 0x02
_KNOWN_FLAGS = FLAG_ZLIB | FLAG_SIGNED
_HEADER = struct.Struct("!3sBBIII16s")
_DOMAIN = b"aiocache-http envelope\x00"
_DIGEST_SIZE = 16
_CHECKSUM = Checksum()
_MAX_BODY = 2**32 - 1  # body_len is a u32

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)


def body_hasher() -> Any:
    """The hash object whose digest is ``body_digest``: feed it the stored body's chunks."""
    return hashlib.blake2b(digest_size=_DIGEST_SIZE)


def _ts(value: datetime | None) -> int | None:
    """Integer microseconds since the epoch: exact, unlike a float timestamp."""
    return None if value is None else (value - _EPOCH) // _MICROSECOND


_MIN_TS = _ts(datetime.min.replace(tzinfo=timezone.utc))
_MAX_TS = _ts(datetime.max.replace(tzinfo=timezone.utc))


def _facts_meta(r: CachedResponse) -> list[Any] | None:
    f = r.facts
    if f is None or r.initial_age is None:  # (kept together, or not at all)
        return None
    flags = f.no_cache | f.must_revalidate << 1 | f.immutable << 2
    return [r.initial_age, flags, list(f.vary), f.stale_while_revalidate, f.stale_if_error]


def _facts(meta: object) -> tuple[Facts | None, float | None]:
    """The facts and initial age kept at store time; typed and bounded like every field
    (absent: None, and the policy parses them from the headers)."""
    if meta is None:
        return None, None
    if type(meta) is not list or len(meta) != 5:
        raise TypeError("facts must be a list of 5")
    initial_age, flags, vary, swr, sie = meta
    if type(flags) is not int or type(vary) is not list:
        raise TypeError("facts: bad flags or vary")
    return shared_facts(bool(flags & 1), bool(flags & 2), bool(flags & 4),
                        tuple(_str(v) for v in vary), None if swr is None else _seconds(swr),
                        None if sie is None else _seconds(sie)), _seconds(initial_age)


def _seconds(value: object) -> float:
    if type(value) not in (int, float) or not 0 <= value <= 2**31:  # type: ignore[operator]
        raise ValueError(f"seconds {value!r} out of range")
    return float(value)  # type: ignore[arg-type]


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

    def encoder(self, r: CachedResponse, key: str = "", integrity: Integrity = _CHECKSUM) -> EnvelopeEncoder:
        """Encode ``r`` whose body will arrive in chunks (its ``body`` is not read)."""
        return EnvelopeEncoder(self, r, key, integrity)

    def dumps(self, r: CachedResponse, key: str = "", integrity: Integrity = _CHECKSUM) -> bytes:
        encoder = self.encoder(r, key, integrity)
        body = encoder.body(r.body)
        rest = encoder.end()
        return b"".join((encoder.head(), body, rest))

    def loads(self, data: bytes, key: str = "", integrity: Integrity = _CHECKSUM) -> CachedResponse:
        if data[:3] != MAGIC or len(data) < 4:
            raise DeserializationError("not an aiocache-http envelope")
        reader = _READERS.get(data[3])
        if reader is None:
            old = " (written before checksums: fetched again)" if data[3] == 1 else ""
            raise DeserializationError(f"unreadable envelope version {data[3]}{old}")
        return reader(memoryview(data), key, integrity)


def _meta(r: CachedResponse) -> bytes:
    q = r.request
    meta = {
        "s": r.status, "r": r.reason, "u": r.url, "h": list(r.headers.items()),
        "e": r.encoding, "c": _ts(r.created_at), "x": _ts(r.expires),
        "qt": _ts(r.request_time), "rt": _ts(r.response_time),
        "qm": q.method, "qu": q.url, "qh": list(q.headers.items()),
        "hi": [_history_meta(h) for h in r.history], "vg": r.vary_generation,
        "f": _facts_meta(r),
    }
    return json.dumps(meta, separators=(",", ":")).encode("ascii")


class EnvelopeEncoder:
    """One item whose body arrives in chunks: write what :meth:`body` returns for each
    chunk, then what :meth:`end` returns; :meth:`head` (``head_size`` bytes, known from
    the start) then goes in front of all that. Nothing is buffered but zlib's window."""

    __slots__ = ("_compressor", "_digest", "_flags", "_integrity", "_key", "_length", "_meta",
                 "_request_body", "head_size")

    def __init__(self, fmt: EnvelopeFormat, r: CachedResponse, key: str, integrity: Integrity) -> None:
        self._meta, self._request_body = _meta(r), r.request.body
        self._key, self._integrity = key, integrity
        self._flags = (FLAG_ZLIB if fmt.compress else 0) | (FLAG_SIGNED if integrity.signed else 0)
        self._compressor = zlib.compressobj(fmt.level) if fmt.compress else None
        self._digest = body_hasher()
        self._length = 0
        self.head_size = _HEADER.size + integrity.size + len(self._meta) + len(self._request_body)

    def body(self, chunk: bytes | bytearray | memoryview) -> bytes | bytearray | memoryview:
        """The stored bytes of the next body chunk (the chunk itself unless compressed)."""
        out = chunk if self._compressor is None else self._compressor.compress(chunk)
        self._digest.update(out)
        self._length += len(out)
        return out

    def end(self) -> bytes:
        """The last stored bytes of the body (what compression held back)."""
        if self._compressor is None:
            return b""
        rest = self._compressor.flush()
        self._digest.update(rest)
        self._length += len(rest)
        return rest

    def head(self) -> bytes:
        if self._length > _MAX_BODY:
            raise ValueError(f"a body of {self._length} bytes does not fit the envelope")
        header = _HEADER.pack(MAGIC, VERSION, self._flags, len(self._meta), len(self._request_body),
                              self._length, self._digest.digest())
        tag = self._integrity.tag((_DOMAIN, key_part(self._key), header, self._meta,
                                   self._request_body))
        return b"".join((header, tag, self._meta, self._request_body))


@dataclass(slots=True)
class Head:
    """A verified head (:func:`loads_head`): the response without its body, and where the
    body lies in the item, with the digest it must have."""

    response: CachedResponse
    body_start: int
    body_length: int
    body_digest: bytes
    compressed: bool


HEAD_PREFIX = _HEADER.size
"""The first bytes of an item that tell how long its head is (:func:`head_length`)."""


def head_length(prefix: bytes | bytearray | memoryview, integrity: Integrity = _CHECKSUM) -> int:
    """The length of the head of the item starting with ``prefix`` (at least
    :data:`HEAD_PREFIX` bytes): fixed header, tag, metadata and request body."""
    if len(prefix) < _HEADER.size or bytes(prefix[:3]) != MAGIC:
        raise DeserializationError("not an aiocache-http envelope")
    if prefix[3] != VERSION:
        old = " (written before checksums: fetched again)" if prefix[3] == 1 else ""
        raise DeserializationError(f"unreadable envelope version {prefix[3]}{old}")
    _magic, _version, _flags, meta_len, qbody_len, _body_len, _digest = _HEADER.unpack_from(prefix)
    return int(_HEADER.size + integrity.size + meta_len + qbody_len)


def _check_head(data: memoryview, size: int, key: str,
                integrity: Integrity) -> tuple[int, int, int, int, bytes]:
    """Verify the head at the start of ``data`` for an item of ``size`` bytes:
    (flags, meta start, meta end, body start, body digest). Nothing is parsed yet."""
    if len(data) < _HEADER.size:
        raise DeserializationError("item shorter than the envelope header")
    _magic, _version, flags, meta_len, qbody_len, body_len, body_digest = _HEADER.unpack_from(data)
    if flags & ~_KNOWN_FLAGS:
        raise DeserializationError(f"unknown envelope flags {flags:#x}")
    if bool(flags & FLAG_SIGNED) != integrity.signed:
        raise DeserializationError("bad or missing signature" if integrity.signed
                                   else "signed item, but no secret_key is set")
    start = _HEADER.size + integrity.size
    meta_end = start + meta_len
    body_start = meta_end + qbody_len
    if size != body_start + body_len or len(data) < body_start:
        raise DeserializationError("item length does not match its header (truncated?)")
    parts = (_DOMAIN, key_part(key), data[: _HEADER.size], data[start:meta_end],
             data[meta_end:body_start])
    if not integrity.verify(data[_HEADER.size : start], parts):
        raise DeserializationError("bad or missing signature" if integrity.signed
                                   else "checksum mismatch (corrupt, or stored at another key)")
    return flags, start, meta_end, body_start, body_digest


def _decoded(flags: int, meta: memoryview, request_body: memoryview, body: bytes) -> CachedResponse:
    try:
        if flags & FLAG_ZLIB:
            body = zlib.decompress(body)
        return _response(json.loads(str(meta, "ascii")), bytes(request_body), body)
    except (ValueError, KeyError, TypeError, IndexError, RecursionError, OverflowError,
            zlib.error) as e:
        raise DeserializationError(f"corrupt envelope: {type(e).__name__}: {e}") from e


def loads_head(head: bytes | memoryview, size: int, key: str = "",
               integrity: Integrity = _CHECKSUM) -> Head:
    """Verify and decode the head of an item of ``size`` bytes; the body is not needed
    (its digest is in the verified head: check it as the body is read)."""
    data = memoryview(head)
    flags, start, meta_end, body_start, digest = _check_head(data, size, key, integrity)
    response = _decoded(flags & ~FLAG_ZLIB, data[start:meta_end], data[meta_end:body_start], b"")
    return Head(response, body_start, size - body_start, digest, bool(flags & FLAG_ZLIB))


def _read_v2(data: memoryview, key: str, integrity: Integrity) -> CachedResponse:
    flags, start, meta_end, body_start, body_digest = _check_head(data, len(data), key, integrity)
    digest = body_hasher()
    digest.update(data[body_start:])
    if digest.digest() != body_digest:
        raise DeserializationError("body checksum mismatch (corrupt)")
    return _decoded(flags, data[start:meta_end], data[meta_end:body_start], bytes(data[body_start:]))


_READERS: dict[int, Callable[..., CachedResponse]] = {2: _read_v2}


# -- typed, bounded fields: anything else is a corrupt item ---------------------------------
def _str(value: object) -> str:
    if type(value) is not str:
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _wire_text(text: str) -> None:
    """Header text as the wire can give it: any bytes, surrogate-escaped (a lone
    surrogate outside U+DC80..U+DCFF raises UnicodeEncodeError, a ValueError)."""
    text.encode("utf-8", "surrogateescape")


def _status(value: object) -> int:
    # 0-99 too: no HTTP response has one, but a record a user built may (requests-cache's
    # CachedResponse(status_code=0) and its tests); three digits at most either way
    if type(value) is not int or not 0 <= value <= 999:
        raise ValueError(f"status {value!r} out of range")
    return value


def _time(value: object) -> datetime | None:
    if value is None:
        return None
    if type(value) is not int or not _MIN_TS <= value <= _MAX_TS:  # type: ignore[operator]
        raise ValueError(f"timestamp {value!r} out of range")
    return _EPOCH + timedelta(microseconds=value)


def _headers(value: object) -> CIMultiDict[str]:
    if type(value) is not list:
        raise TypeError("headers must be a list")
    for pair in value:  # on every hit: a tight loop, then one C-level construction
        if type(pair) is not list or len(pair) != 2:
            raise TypeError("a header must be a [name, value] pair")
        name, text = pair
        if type(name) is not str or type(text) is not str:
            raise TypeError("a header name and value must be strings")
        if not (name.isascii() and text.isascii()):
            _wire_text(name)
            _wire_text(text)
    return CIMultiDict(value)


def _response(meta: dict[str, Any], request_body: bytes, body: bytes) -> CachedResponse:
    if type(meta) is not dict:
        raise TypeError("metadata must be an object")
    history_meta = meta["hi"]
    if type(history_meta) is not list:
        raise TypeError("history must be a list")
    history = []
    for hop in history_meta:
        if type(hop) is not dict:
            raise TypeError("a history hop must be an object")
        url = _str(hop["u"])
        history.append(CachedResponse(_status(hop["s"]), _str(hop["r"]), url, _headers(hop["h"]),
                                      b"", CachedRequest(_str(hop["m"]), url)))
    created_at = _time(meta["c"])
    if created_at is None:
        raise ValueError("created_at missing")
    encoding = meta["e"]
    request = CachedRequest(_str(meta["qm"]), _str(meta["qu"]), _headers(meta["qh"]), request_body)
    facts, initial_age = _facts(meta.get("f"))
    return CachedResponse(
        status=_status(meta["s"]), reason=_str(meta["r"]), url=_str(meta["u"]),
        headers=_headers(meta["h"]), body=body, request=request,
        encoding=None if encoding is None else _str(encoding), created_at=created_at,
        expires=_time(meta["x"]), request_time=_time(meta["qt"]),
        response_time=_time(meta["rt"]), history=tuple(history),
        vary_generation=_str(meta.get("vg", "")), facts=facts, initial_age=initial_age,
    )
