"""Cache keys and credential redaction.

A key is a SHA-256 digest (64 hex digits) of length-prefixed parts: the method, the
normalised URL, then how and what the body and the matched headers and credentials
are. A plain request (no body, no matched header, no credential, redirects followed)
has aiohttp-client-cache's key for it: its parts are that library's.

Credentials (auth headers, cookies, API-key parameters, URL user info) never reach
storage in clear: they are replaced by ``REDACTED`` in the stored request and enter the
key only as a keyed hash, so two users with different tokens never share an entry.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from multidict import CIMultiDict

from ..models import CachedRequest

REDACTED = "REDACTED"

CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-key"})
CREDENTIAL_PARAMS = frozenset(
    {"access_token", "api_key", "apikey", "api-key", "x-api-key", "token", "client_secret",
     "password", "secret", "auth", "authorization", "signature"}
)
"""Query / form / JSON fields treated as secrets wherever they appear."""

_DEFAULT_PORTS = {"http": 80, "https": 443}
_OURS = b"\x00aiocache-http"  # third part of every key that is not a plain request's
_ANON_HASH_KEY = b"aiocache-http credential"

KeyFunction = Callable[..., str]


def _credential_hash(value: str, secret: bytes | None) -> str:
    # Keyed so that, with a secret_key, a key cannot be brute-forced back to a token.
    return hashlib.blake2b(value.encode(), digest_size=16, key=secret or _ANON_HASH_KEY).hexdigest()


def _is_credential(name: str) -> bool:
    return name.lower() in CREDENTIAL_PARAMS


class _Normaliser:
    """Splits a request into what identifies it (for the key) and what may be stored."""

    __slots__ = ("ignored", "secret", "secrets")

    def __init__(self, ignored: Iterable[str], secret: bytes | None) -> None:
        self.ignored = frozenset(p.lower() for p in ignored)
        self.secret = secret
        self.secrets: list[str] = []

    def params(self, pairs: list[tuple[str, str]]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """Return (pairs for the key, pairs for storage)."""
        keyed: list[tuple[str, str]] = []
        stored: list[tuple[str, str]] = []
        for name, value in pairs:
            if _is_credential(name):
                self.secrets.append(f"{name}={_credential_hash(value, self.secret)}")
                stored.append((name, REDACTED))
            elif name.lower() in self.ignored:
                stored.append((name, REDACTED))
            else:
                keyed.append((name, value))
                stored.append((name, value))
        return sorted(keyed), stored

    def url(self, url: str) -> tuple[str, str]:
        """Return (normalised URL for the key, redacted URL for storage)."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        host = (parts.hostname or "").lower()
        if ":" in host:  # IPv6 literal
            host = f"[{host}]"
        try:
            port = parts.port
        except ValueError:
            port = None
        netloc = host if port is None or _DEFAULT_PORTS.get(scheme) == port else f"{host}:{port}"
        stored_netloc = netloc
        if parts.username is not None or parts.password is not None:
            self.secrets.append(
                "userinfo=" + _credential_hash(f"{parts.username}:{parts.password}", self.secret)
            )
            stored_netloc = f"{REDACTED}@{netloc}"
        keyed, stored = self.params(parse_qsl(parts.query, keep_blank_values=True))
        path = parts.path or "/"
        key_url = urlunsplit((scheme, netloc, path, urlencode(keyed, quote_via=quote), ""))
        stored_query = urlencode(stored, quote_via=quote) if stored else ""
        stored_url = urlunsplit((parts.scheme, stored_netloc, parts.path, stored_query, ""))
        return key_url, stored_url

    def body(self, body: bytes, content_type: str) -> tuple[bytes, bytes]:
        """Return (normalised body for the key, redacted body for storage)."""
        if not body:
            return b"", b""
        ctype = content_type.split(";", 1)[0].strip().lower()
        if ctype == "application/x-www-form-urlencoded":
            try:
                pairs = parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=True)
            except (UnicodeDecodeError, ValueError):
                return body, body
            keyed, stored = self.params(pairs)
            return urlencode(keyed).encode(), urlencode(stored).encode()
        if ctype == "application/json" or ctype.endswith("+json"):
            try:
                data = json.loads(body)
            except ValueError:
                return body, body
            if isinstance(data, dict):
                keyed_d, stored_d = self.params_dict(data)
                return _dump(keyed_d), _dump(stored_d)
            return _dump(data), body
        return body, body

    def params_dict(self, data: dict[str, object]) -> tuple[dict[str, object], dict[str, object]]:
        keyed: dict[str, object] = {}
        stored: dict[str, object] = {}
        for name, value in data.items():
            if _is_credential(name):
                self.secrets.append(f"{name}={_credential_hash(json.dumps(value), self.secret)}")
                stored[name] = REDACTED
            elif name.lower() in self.ignored:
                stored[name] = REDACTED
            else:
                keyed[name] = stored[name] = value
        return keyed, stored

    def headers(
        self, headers: CIMultiDict[str], match_headers: bool | Iterable[str]
    ) -> tuple[list[str], CIMultiDict[str]]:
        """Return (matched header lines for the key, redacted headers for storage)."""
        if match_headers is True:
            wanted: frozenset[str] | None = None
        elif match_headers:
            wanted = frozenset(h.lower() for h in match_headers)
        else:
            wanted = frozenset()
        matched: list[str] = []
        stored: CIMultiDict[str] = CIMultiDict()
        for name, value in headers.items():
            lname = name.lower()
            if lname in CREDENTIAL_HEADERS:
                self.secrets.append(f"{lname}={_credential_hash(value, self.secret)}")
                stored.add(name, REDACTED)
            elif lname in self.ignored:
                stored.add(name, REDACTED)
            else:
                stored.add(name, value)
                if wanted is None or lname in wanted:
                    matched.append(f"{lname}:{value}")
        return sorted(matched), stored


def _dump(data: object) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def normalize_request(
    request: CachedRequest,
    ignored_params: Iterable[str] = (),
    match_headers: bool | Iterable[str] = False,
    secret: bytes | None = None,
) -> tuple[list[bytes], CachedRequest]:
    """Return (the key material, as parts, and the request as it may be stored).

    The stored request keeps every header and parameter, with credentials and ignored
    parameters replaced by ``REDACTED``.
    """
    n = _Normaliser(ignored_params, secret)
    key_url, stored_url = n.url(request.url)
    key_body, stored_body = n.body(request.body, request.headers.get("Content-Type", ""))
    matched, stored_headers = n.headers(request.headers, match_headers)
    redirects = [] if request.follow_redirects else ["no-redirects"]
    if not request.verify:
        redirects.append("tls-unverified")
    # How the body is encoded is part of it: b"x" sent as text or as octets, or a form with
    # and without a file field, are different requests even where the bytes agree.
    content_type = request.headers.get("Content-Type")
    body_type = [] if content_type is None else [f"body-type:{content_type.lower()}"]
    method, url = request.method.upper().encode(), key_url.encode("utf-8", "surrogatepass")
    extras = [*redirects, *body_type, *matched, "", *sorted(n.secrets)]
    if extras == [""] and not key_body:
        material = [method, url, b"", b"", b""]  # aiohttp-client-cache's parts
    else:
        material = [method, url, _OURS, "\n".join(extras).encode("utf-8", "surrogatepass"), key_body]
    stored = CachedRequest(request.method.upper(), stored_url, stored_headers, stored_body,
                           request.follow_redirects, request.verify)
    return material, stored


def create_key(
    request: CachedRequest,
    ignored_params: Iterable[str] = (),
    match_headers: bool | Iterable[str] = False,
    secret: bytes | None = None,
    **_: object,
) -> str:
    """A stable 64-hex-digit (256-bit) cache key for ``request``."""
    material, _stored = normalize_request(request, ignored_params, match_headers, secret)
    return hash_key(material)


def hash_key(parts: Iterable[bytes]) -> str:
    """SHA-256 of the parts, each prefixed by its length (so parts never run together).
    A large body is hashed where it is, not copied."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(memoryview(part).nbytes.to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def redact_request(
    request: CachedRequest, ignored_params: Iterable[str] = ()
) -> CachedRequest:
    """The request with credentials and ignored parameters replaced by ``REDACTED``."""
    return normalize_request(request, ignored_params)[1]


def redact_url(url: str, ignored_params: Iterable[str] = ()) -> str:
    """``url`` with credential and ignored query parameters and user info redacted."""
    return _Normaliser(ignored_params, None).url(url)[1]


def variant_key(key: str, generation: str, vary_values: list[tuple[str, str | None]]) -> str:
    """The secondary key of one Vary variant of the response stored at ``key``."""
    lines = [key, generation,
             *(f"{name}:{'' if value is None else 'v' + value}" for name, value in vary_values)]
    return hash_key([b"vary", "\n".join(lines).encode("utf-8", "surrogatepass")])
