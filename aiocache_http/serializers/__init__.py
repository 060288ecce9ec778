"""How responses become bytes: a format (envelope by default), then optional signing.

Signing wraps the whole item, and the signature is checked before a single byte is
decoded, so a tampered item never reaches the decoder (nor, if opted in, pickle).

Items can also be written and read in parts, so a large body never has to be in memory
whole: :meth:`Serializer.encoder` writes an item as head, body chunks, tail, and
:meth:`Serializer.decoder` verifies one fed in parts. The signature (itsdangerous'
layout: ``item + b"." + base64(HMAC-SHA256)``) is a trailer, computed and checked
incrementally, like the envelope's checksum. Formats that cannot stream (pickle, custom
objects) are buffered whole by the caller.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import logging
from collections.abc import Sequence
from typing import Any, Protocol

from itsdangerous import BadSignature, Signer
from itsdangerous.encoding import base64_decode, base64_encode

from ..models import CachedResponse
from .envelope import Decoded, EnvelopeDecoder, EnvelopeEncoder, EnvelopeFormat
from .errors import DeserializationError
from .pickle_format import PickleFormat

logger = logging.getLogger("aiocache_http")


_SEP = b"."  # itsdangerous' separator before the signature


class Format(Protocol):
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
    """A format plus optional itsdangerous signing (HMAC-SHA256).

    ``secret_keys``: sign with the first, accept any (key rotation).
    """

    def __init__(self, fmt: Format, secret_keys: Sequence[bytes] = (), salt: bytes = b"") -> None:
        self.format = fmt
        # itsdangerous signs with the *last* key of a list and accepts all of them.
        self.signer = (
            Signer(list(reversed(secret_keys)), salt=salt, sep=_SEP, digest_method=hashlib.sha256)
            if secret_keys else None
        )
        if self.signer is None and isinstance(fmt, PickleFormat):
            logger.warning("serializer='pickle' without secret_key: anyone who can write to "
                           "the cache can run code in this process")

    def dumps(self, response: CachedResponse) -> bytes:
        data = self.format.dumps(response)
        return self.signer.sign(data) if self.signer else data

    def loads(self, data: bytes) -> CachedResponse:
        if self.signer is not None:
            try:
                data = self.signer.unsign(data)
            except BadSignature as e:
                raise DeserializationError("bad or missing signature") from e
        return self.format.loads(data)

    # -- in parts ---------------------------------------------------------------------
    @property
    def streams(self) -> bool:
        """Whether items can be written and read in parts (the envelope formats)."""
        return isinstance(self.format, EnvelopeFormat)

    def encoder(self, response: CachedResponse) -> ItemEncoder | None:
        """Write ``response`` as an item in parts, its body as it arrives; None when the
        format cannot (the caller then buffers the body and calls :meth:`dumps`)."""
        if not isinstance(self.format, EnvelopeFormat):
            return None
        return ItemEncoder(self.format.encoder(response), self._macs()[:1])

    def decoder(self, size: int, keep_body: bool = True) -> ItemDecoder:
        """Verify and decode an item of ``size`` bytes fed in parts. With
        ``keep_body=False`` the body is verified but not kept (for the envelope formats)."""
        return ItemDecoder(self, size, keep_body)

    def _macs(self) -> list[Any]:
        """One HMAC per accepted key, the signing key first (itsdangerous signs with
        the last of its list: ours, reversed)."""
        if self.signer is None:
            return []
        return [hmac.new(self.signer.derive_key(key), digestmod=self.signer.digest_method)
                for key in reversed(self.signer.secret_keys)]

    @property
    def _signature_size(self) -> int:
        if self.signer is None:
            return 0
        return len(_SEP) + len(base64_encode(b"\0" * self.signer.digest_method().digest_size))


class ItemEncoder:
    """Writes one item: :attr:`head`, then what :meth:`body` returns for each chunk,
    then :meth:`tail` (the envelope's trailer and the signature)."""

    __slots__ = ("_envelope", "_macs", "head")

    def __init__(self, envelope: EnvelopeEncoder, macs: list[Any]) -> None:
        self._envelope, self._macs = envelope, macs
        self.head = envelope.head
        for mac in macs:
            mac.update(self.head)

    def body(self, chunk: bytes | bytearray | memoryview) -> bytes | bytearray | memoryview:
        out = self._envelope.body(chunk)
        for mac in self._macs:
            mac.update(out)
        return out

    def tail(self) -> bytes:
        tail = self._envelope.tail()
        if not self._macs:
            return tail
        self._macs[0].update(tail)
        return tail + _SEP + base64_encode(self._macs[0].digest())


class ItemDecoder:
    """Verifies and decodes one item fed in parts, in order (see :meth:`Serializer.decoder`).

    The signature is checked in :meth:`finish` before anything of the item is used: an
    error the envelope found on the way is only reported once the signature is good."""

    def __init__(self, serializer: Serializer, size: int, keep_body: bool) -> None:
        self.size = size
        self._serializer = serializer
        self._macs = serializer._macs()
        self._payload_size = size - serializer._signature_size
        self._signature = bytearray()
        self._pos = 0
        self._error: DeserializationError | None = None
        self._envelope: EnvelopeDecoder | None = None
        self._whole: io.BytesIO | None = None
        if self._payload_size < 0:
            self._error = DeserializationError("bad or missing signature")
        elif isinstance(serializer.format, EnvelopeFormat):
            self._envelope = serializer.format.decoder(self._payload_size, keep_body)
        else:
            self._whole = io.BytesIO()

    def feed(self, part: bytes | memoryview) -> None:
        view = memoryview(part)
        payload = view[: max(0, self._payload_size - self._pos)]
        self._pos += len(view)
        if len(payload):
            for mac in self._macs:
                mac.update(payload)
            if self._whole is not None:
                self._whole.write(payload)
            elif self._envelope is not None and self._error is None:
                try:
                    self._envelope.feed(payload)
                except DeserializationError as e:
                    self._error = e
        if len(payload) < len(view):
            self._signature += view[len(payload):]

    def finish(self) -> Decoded:
        if self._pos != self.size:
            raise DeserializationError("item length does not match its storage (truncated?)")
        if self._macs and not self._signed():
            raise DeserializationError("bad or missing signature")
        if self._error is not None:
            raise self._error
        if self._whole is not None:
            response = self._serializer.format.loads(self._whole.getvalue())
            return Decoded(response, 0, 0, compressed=False)
        assert self._envelope is not None
        return self._envelope.finish()

    def _signed(self) -> bool:
        signer = self._serializer.signer
        assert signer is not None
        sep, signature = bytes(self._signature[: len(signer.sep)]), self._signature[len(signer.sep):]
        if sep != signer.sep:
            return False
        try:
            expected = base64_decode(bytes(signature))
        except Exception:
            return False
        return any(hmac.compare_digest(mac.digest(), expected) for mac in self._macs)


__all__ = ["Decoded", "DeserializationError", "EnvelopeFormat", "Format", "ItemDecoder", "ItemEncoder",
           "PickleFormat", "Serializer", "get_format"]
