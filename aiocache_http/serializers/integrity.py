"""Integrity tags: what makes a stored item trustworthy, bound to the key it is stored at.

Every stored item carries a tag over the cache key and its own bytes. Without a
``secret_key`` the tag is a checksum (BLAKE2b-128): corruption, truncation and an item
moved to another key are detected, though anyone who can write to the storage can forge
one. With a ``secret_key`` it is a signature (HMAC-SHA256, key derived by itsdangerous
from the secret and the ``salt``): signed with the first secret, accepted with any, so
keys rotate. A checksum-tagged item is never accepted when a secret is set, nor the
other way round.

Tags are computed incrementally over parts (``hashlib``/``hmac`` ``update``), so a
writer that streams a body can feed it chunk by chunk.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Iterable, Sequence
from typing import Protocol

from itsdangerous import Signer

_CHECKSUM_PERSON = b"aiocache-http"  # domain separation from any other BLAKE2b use


class Integrity(Protocol):
    signed: bool
    size: int

    def tag(self, parts: Iterable[bytes | memoryview]) -> bytes: ...

    def verify(self, tag: bytes | memoryview, parts: Iterable[bytes | memoryview]) -> bool: ...


class Checksum:
    """BLAKE2b-128: detects accidents (bit flips, truncation, a swapped item), not forgery."""

    signed = False
    size = 16

    def tag(self, parts: Iterable[bytes | memoryview]) -> bytes:
        h = hashlib.blake2b(digest_size=self.size, person=_CHECKSUM_PERSON)
        for part in parts:
            h.update(part)
        return h.digest()

    def verify(self, tag: bytes | memoryview, parts: Iterable[bytes | memoryview]) -> bool:
        return hmac.compare_digest(self.tag(parts), tag)


class Signature:
    """HMAC-SHA256 with keys derived by itsdangerous from each secret and the salt."""

    signed = True
    size = 32

    def __init__(self, secret_keys: Sequence[bytes], salt: bytes = b"") -> None:
        if not secret_keys:
            raise ValueError("Signature needs at least one secret key")
        self._keys = [Signer(secret, salt=salt, digest_method=hashlib.sha256).derive_key()
                      for secret in secret_keys]

    def _mac(self, key: bytes, parts: Iterable[bytes | memoryview]) -> bytes:
        mac = hmac.new(key, digestmod=hashlib.sha256)
        for part in parts:
            mac.update(part)
        return mac.digest()

    def tag(self, parts: Iterable[bytes | memoryview]) -> bytes:
        return self._mac(self._keys[0], parts)

    def verify(self, tag: bytes | memoryview, parts: Iterable[bytes | memoryview]) -> bool:
        parts = list(parts)
        return any(hmac.compare_digest(self._mac(key, parts), tag) for key in self._keys)


def key_part(key: str) -> bytes:
    """The cache key as the first tagged part: length-prefixed, so no two (key, item)
    pairs feed the same bytes."""
    raw = key.encode("utf-8", "surrogatepass")
    return struct.pack("!I", len(raw)) + raw


def integrity_for(secret_keys: Sequence[bytes], salt: bytes = b"") -> Integrity:
    return Signature(secret_keys, salt) if secret_keys else Checksum()


__all__ = ["Checksum", "Integrity", "Signature", "integrity_for", "key_part"]
