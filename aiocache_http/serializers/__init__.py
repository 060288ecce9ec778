"""How responses become bytes: a format (envelope by default), then optional signing.

Signing wraps the whole item, and the signature is checked before a single byte is
decoded, so a tampered item never reaches the decoder (nor, if opted in, pickle).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from typing import Any, Protocol

from itsdangerous import BadSignature, Signer

from ..models import CachedResponse
from .envelope import EnvelopeFormat
from .errors import DeserializationError
from .pickle_format import PickleFormat

logger = logging.getLogger("aiocache_http")


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
            Signer(list(reversed(secret_keys)), salt=salt, digest_method=hashlib.sha256)
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


__all__ = ["DeserializationError", "EnvelopeFormat", "Format", "PickleFormat", "Serializer",
           "get_format"]
