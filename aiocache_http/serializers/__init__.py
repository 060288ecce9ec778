"""How responses become bytes: a format (envelope by default) bound to its key by a tag.

Every item carries an integrity tag over its cache key and its bytes (see
:mod:`.integrity`): a checksum without ``secret_key``, a signature with one. The tag is
checked before a single byte is decoded, so a corrupt, tampered or moved item never
reaches the decoder (nor, if opted in, pickle). The envelope carries its tag inside
(:mod:`.envelope`); any other format gets it as a trailer. Redirect aliases are tagged
the same way, bound to the alias they are stored at.

Envelope items can also be written and read in parts, so a large body never has to be
in memory whole: :meth:`Serializer.encoder` encodes one whose body arrives in chunks,
:meth:`Serializer.head_length` and :meth:`Serializer.loads_head` verify and decode the
head of one without its body (whose digest the verified head holds).

Other formats (JSON, YAML... of the sync layer, a user's own) are written and read whole,
so a large body would be in memory several times over: with ``large_body`` set (backends
set it), a response whose body is larger is stored as an envelope item instead, in
parts. Reading, an item is recognised by its first bytes (the envelope's magic and
version: no JSON, YAML or pickle item starts so), never by its size, and verified as
every item is. A format that must keep every item its own (pickle: it may hold what the
envelope cannot) says so with ``whole_items = True``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

from ..models import CachedResponse
from .envelope import (
    HEAD_PREFIX,
    MAGIC,
    VERSION,
    EnvelopeEncoder,
    EnvelopeFormat,
    Head,
    body_hasher,
    head_length,
    loads_head,
)
from .errors import DeserializationError
from .integrity import Integrity, integrity_for, key_part
from .pickle_format import PickleFormat

logger = logging.getLogger("aiocache_http")

_TRAILER_DOMAIN = b"aiocache-http item\x00"
_REDIRECT_MAGIC = b"ACR\x01"
_REDIRECT_DOMAIN = b"aiocache-http redirect\x00"
_REDIRECT_SIGNED = 0x01
_MAX_KEY_BYTES = 4096
_ENVELOPE_START = MAGIC + bytes([VERSION])
_ENVELOPE = EnvelopeFormat()  # reads every envelope item (compressed or not: a flag says)


class Format(Protocol):
    """A response format. Optional: ``whole_items = True`` keeps every item in it, large
    bodies too (else a body over ``Serializer.large_body`` is stored as an envelope item)."""

    def dumps(self, response: CachedResponse) -> bytes: ...
    def loads(self, data: bytes) -> CachedResponse: ...


FORMATS: dict[str, Any] = {
    "envelope": EnvelopeFormat,
    "zlib": lambda: EnvelopeFormat(compress=True),
    "pickle": PickleFormat,
}


def get_format(serializer: Any) -> Format:
    """Resolve the ``serializer`` setting: None, a name in FORMATS, or a Format object."""
    if serializer is None:
        return EnvelopeFormat()
    if isinstance(serializer, str):
        if serializer not in FORMATS:
            raise ValueError(f"serializer={serializer!r}: choose one of {sorted(FORMATS)}")
        fmt: Format = FORMATS[serializer]()
        return fmt
    if callable(getattr(serializer, "dumps", None)) and callable(getattr(serializer, "loads", None)):
        return serializer  # type: ignore[no-any-return]
    raise TypeError("serializer must be None, a name, or an object with dumps() and loads()")


class Serializer:
    """A format plus an integrity tag bound to the key: a BLAKE2b checksum, or with
    ``secret_keys`` an HMAC-SHA256 signature (signed with the first key, any accepted).

    ``large_body``: a response whose body is larger is stored as an envelope item (in
    parts where the storage can) whatever the format, unless the format has
    ``whole_items`` (see the module docstring). None: every item in the format.
    """

    def __init__(self, fmt: Format, secret_keys: Sequence[bytes] = (), salt: bytes = b"",
                 large_body: int | None = None) -> None:
        self.format = fmt
        self.integrity: Integrity = integrity_for(secret_keys, salt)
        self._own_envelope = isinstance(fmt, EnvelopeFormat)  # every item an envelope
        # The envelope large items are written in: the format itself, or a plain one.
        self._envelope: EnvelopeFormat | None = (
            fmt if isinstance(fmt, EnvelopeFormat)
            else None if large_body is None or getattr(fmt, "whole_items", False)
            else EnvelopeFormat())
        self.large_body = large_body
        if not self.integrity.signed and isinstance(fmt, PickleFormat):
            logger.warning("serializer='pickle' without secret_key: anyone who can write to "
                           "the cache can run code in this process")

    # -- responses ------------------------------------------------------------------
    def dumps(self, response: CachedResponse, key: str = "") -> bytes:
        envelope = self._envelope
        if envelope is not None and (self._own_envelope or (
                self.large_body is not None and len(response.body) > self.large_body)):
            return envelope.dumps(response, key, self.integrity)
        data = self.format.dumps(response)
        return data + self.integrity.tag((_TRAILER_DOMAIN, key_part(key), data))

    def loads(self, data: bytes, key: str = "") -> CachedResponse:
        """The response stored at ``key``; DeserializationError for anything else."""
        if not isinstance(data, bytes):
            raise DeserializationError(f"a stored item must be bytes, not {type(data).__name__}")
        if self._own_envelope or data[:4] == _ENVELOPE_START:  # (a large item, see above)
            return _ENVELOPE.loads(data, key, self.integrity)
        size = self.integrity.size
        view = memoryview(data)
        if len(data) < size or not self.integrity.verify(
                view[-size:], (_TRAILER_DOMAIN, key_part(key), view[:-size])):
            raise DeserializationError("bad or missing signature" if self.integrity.signed
                                       else "checksum mismatch (corrupt, or stored at another key)")
        try:
            response = self.format.loads(data[:-size])
        except DeserializationError:
            raise
        except Exception as e:  # a user's format, or pickle: whatever it raises is a miss
            raise DeserializationError(f"{type(e).__name__}: {e}") from e
        if not isinstance(response, CachedResponse):
            raise DeserializationError(f"decoded a {type(response).__name__}, not a CachedResponse")
        return response

    # -- in parts (envelope items) -------------------------------------------------------
    @property
    def streams(self) -> bool:
        """Whether a large item can be written in parts (as an envelope item)."""
        return self._envelope is not None

    def encoder(self, response: CachedResponse, key: str = "") -> EnvelopeEncoder | None:
        """Encode ``response`` for ``key`` as its body arrives (see :class:`EnvelopeEncoder`);
        None when the format cannot (then collect the body and call :meth:`dumps`)."""
        if self._envelope is None:
            return None
        return self._envelope.encoder(response, key, self.integrity)

    def in_parts(self, prefix: bytes | bytearray | memoryview) -> bool:
        """Whether the item starting with ``prefix`` (``head_prefix`` bytes) is read in
        parts (an envelope item: :meth:`head_length`, :meth:`loads_head`); else it is
        read whole, with :meth:`loads`."""
        return self._own_envelope or bytes(prefix[:4]) == _ENVELOPE_START

    head_prefix = HEAD_PREFIX

    def head_length(self, prefix: bytes | bytearray | memoryview) -> int:
        """How long the head of the item starting with ``prefix`` (``head_prefix`` bytes) is."""
        return head_length(prefix, self.integrity)

    def loads_head(self, head: bytes | memoryview, size: int, key: str = "") -> Head:
        """Verify and decode the head of the item of ``size`` bytes stored at ``key``."""
        return loads_head(head, size, key, self.integrity)

    body_hasher = staticmethod(body_hasher)

    # -- redirect aliases -------------------------------------------------------------
    def dumps_redirect(self, alias: str, target: str) -> bytes:
        """``magic | flags | tag | target key``: the alias points at ``target`` only if the
        tag, bound to the alias, says so."""
        raw = target.encode("utf-8", "surrogatepass")
        flags = _REDIRECT_SIGNED if self.integrity.signed else 0
        tag = self.integrity.tag((_REDIRECT_DOMAIN, key_part(alias), bytes([flags]), raw))
        return b"".join((_REDIRECT_MAGIC, bytes([flags]), tag, raw))

    def loads_redirect(self, alias: str, data: bytes) -> str:
        """The key ``alias`` points at; DeserializationError for anything else."""
        if not isinstance(data, bytes):
            raise DeserializationError(f"a stored alias must be bytes, not {type(data).__name__}")
        head = len(_REDIRECT_MAGIC) + 1
        start = head + self.integrity.size
        if not data.startswith(_REDIRECT_MAGIC) or len(data) <= start:
            raise DeserializationError("not a redirect alias")
        flags = data[head - 1]
        if flags != (_REDIRECT_SIGNED if self.integrity.signed else 0):
            raise DeserializationError("bad or missing signature" if self.integrity.signed
                                       else "signed alias, but no secret_key is set")
        raw = data[start:]
        if len(raw) > _MAX_KEY_BYTES or not self.integrity.verify(
                data[head:start], (_REDIRECT_DOMAIN, key_part(alias), bytes([flags]), raw)):
            raise DeserializationError("redirect alias fails its checksum or signature")
        try:
            return raw.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError as e:
            raise DeserializationError("redirect target is not text") from e


__all__ = ["DeserializationError", "EnvelopeEncoder", "EnvelopeFormat", "Format", "Head",
           "PickleFormat", "Serializer", "get_format"]
