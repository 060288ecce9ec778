"""Stored entries as the CLI sees them: raw bytes, decoded for display and selection.

Decoding goes through the backend's serializer, so a signed cache is verified when the
secret key is given. Without it a signed item is still shown, read from its envelope
and marked unverified: the tool inspects, it never serves, so nothing is trusted.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import re
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from ..backends.base import CacheBackend
from ..models import CachedResponse
from ..serializers import DeserializationError, Serializer
from ..serializers.envelope import EnvelopeFormat
from ..serializers.integrity import Checksum, Signature
from .errors import CLIError


@dataclass(frozen=True, slots=True)
class Entry:
    key: str
    size: int  # stored bytes
    response: CachedResponse | None  # None: not an item this cache can read
    verified: bool  # the serializer accepted it (signature checked, if the cache signs)
    problem: str = ""  # why it is unreadable or unverified

    def state(self, now: datetime) -> str:
        """``fresh``, ``stale`` (expired, can be revalidated: it has a validator),
        ``expired`` (expired, a full request replaces it) or ``unreadable``."""
        r = self.response
        if r is None:
            return "unreadable"
        if r.expires is None or r.expires > now:
            return "fresh"
        return "stale" if revalidatable(r) else "expired"

    @property
    def url(self) -> str:
        return self.response.url if self.response is not None else ""

    @property
    def host(self) -> str:
        return (urlsplit(self.url).hostname or "") if self.response is not None else ""


def revalidatable(response: CachedResponse) -> bool:
    """Has a validator for a conditional request (RFC 9111 §4.3.1): a 304 can renew it."""
    return "ETag" in response.headers or "Last-Modified" in response.headers


class _Unverified:
    """An integrity check that accepts any tag: to *read* an item signed with a key we were
    not given (for display and migration), never to serve it."""

    def __init__(self, signed: bool) -> None:
        self.signed = signed
        self.size = Signature.size if signed else Checksum.size

    def tag(self, parts: Iterable[bytes | memoryview]) -> bytes:
        raise NotImplementedError("an unverified reader never writes")

    def verify(self, tag: bytes | memoryview, parts: Iterable[bytes | memoryview]) -> bool:
        return True


def peek(data: bytes, key: str) -> CachedResponse | None:
    """Read an envelope whose signature we cannot check (no or another secret key); the
    body checksum is still checked."""
    for signed in (True, False):
        try:
            return EnvelopeFormat().loads(data, key, _Unverified(signed))
        except DeserializationError:
            continue
    return None


def decode(serializer: Serializer, key: str, data: bytes) -> Entry:
    try:
        response = serializer.loads(data, key)
    except DeserializationError as e:
        unverified = peek(data, key)
        if unverified is None:
            return Entry(key, len(data), None, False, str(e))
        why = "signed: give --secret-key to verify" if not serializer.integrity.signed else str(e)
        return Entry(key, len(data), dataclasses.replace(unverified, cache_key=key), False, why)
    except Exception as e:  # a custom serializer's own error: still one unreadable entry
        return Entry(key, len(data), None, False, f"{type(e).__name__}: {e}")
    return Entry(key, len(data), dataclasses.replace(response, cache_key=key), True)


def redirect_target(serializer: Serializer, alias: str, value: bytes) -> str | None:
    """The key a stored redirect alias points at (read unverified if need be), or None."""
    try:
        return serializer.loads_redirect(alias, value)
    except DeserializationError:
        pass
    reader = Serializer(EnvelopeFormat())
    for signed in (True, False):
        reader.integrity = _Unverified(signed)
        try:
            return reader.loads_redirect(alias, value)
        except DeserializationError:
            continue
    return None


async def entries(backend: CacheBackend) -> AsyncIterator[Entry]:
    async for key, data in backend.raw_responses.iter_items():
        yield decode(backend.serializer, key, data)


_AGE = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_age(text: str) -> timedelta:
    """``90``, ``90s``, ``15m``, ``2h``, ``7d``, ``1w``."""
    match = _AGE.fullmatch(text.strip().lower())
    if match is None:
        raise CLIError(f"not an age: {text!r} (examples: 90s, 15m, 2h, 7d, 1w)")
    return timedelta(seconds=float(match[1]) * _UNITS[match[2]])


@dataclass(frozen=True, slots=True)
class Selection:
    """Which entries a command works on; every given criterion must hold."""

    url: str | None = None  # glob on the stored URL
    host: str | None = None
    expired: bool | None = None  # True: expired only (stale included); False: fresh only
    older_than: timedelta | None = None  # by when the entry was stored (or last renewed)

    @property
    def everything(self) -> bool:
        return self == Selection()

    def matches(self, entry: Entry, now: datetime) -> bool:
        r = entry.response
        if r is None:
            return self.everything
        if self.url is not None and not fnmatch.fnmatchcase(r.url, self.url):
            return False
        if self.host is not None and entry.host != self.host.lower():
            return False
        if self.expired is not None and (entry.state(now) != "fresh") != self.expired:
            return False
        return self.older_than is None or now - r.created_at > self.older_than

