"""Cache keys and credential redaction.

A key is a SHA-256 digest (64 hex digits) of length-prefixed parts: the method, the
normalised URL, then how and what the body, the matched headers and the credentials
are. A plain request (no body, no matched header, no credential, redirects followed) has
aiohttp-client-cache's key for it: its parts are that library's. Credentials never reach
storage in clear: they are replaced by ``REDACTED`` (requests-cache's placeholder) in the
stored request and enter the key only as a keyed hash, so two users with different
tokens never share an entry.

What is a credential (:func:`is_credential`), for header, query, form and JSON field
names alike: the exact names in :data:`CREDENTIAL_NAMES`, and any name matching a glob
in :data:`CREDENTIAL_PATTERNS`, plus the ``credential_names`` setting. A name is
compared lower-cased, with ``-``, ``.`` and camelCase boundaries read as ``_``
(``X-Amz-Signature`` is ``x_amz_signature``, ``apiKey`` is ``api_key``). The patterns
lean towards safety: a false positive (``page_token``, a pagination cursor) still keys
by a hash of its value, so caching stays correct, and only shows as ``REDACTED`` in
stored URLs; a false negative would store a secret in clear and share an entry. So
``*_key`` matches ``api_key`` and ``sort_key`` but not ``monkey`` or ``keyword``.

URL user info is a credential too, and cookies however they were sent: the sessions put
the cookies they will send (explicit header, per-request ``cookies=``, the session jar)
into one ``Cookie`` header of the request they hand to the cache.

``ignored_params`` is the user's explicit opt-out: a name listed there is left out of
the key (one shared entry, requests-cache semantics) and still redacted in storage.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
from collections.abc import Callable, Iterable, Sequence
from fnmatch import fnmatchcase
from functools import lru_cache
from http.cookies import CookieError, SimpleCookie
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from multidict import CIMultiDict, MultiMapping

from ..models import NO_HEADERS, CachedRequest

REDACTED = "REDACTED"
"""What a credential is replaced by in storage: requests-cache's placeholder."""

CREDENTIAL_NAMES = frozenset({
    # headers
    "authorization", "proxy_authorization", "cookie", "x_api_key", "api_key", "x_auth_token",
    # query, form and JSON fields
    "key", "sig", "code", "jwt", "auth", "passwd", "pwd", "apikey", "access_token",
    "client_secret", "password", "secret", "signature", "token", "credentials",
})
"""Normalised names (see the module docstring) that are credentials."""

CREDENTIAL_PATTERNS = ("*token*", "*secret*", "*signature*", "*passw*", "*session*", "*sessid*",
                       "*credential*", "*_key", "*apikey", "*_auth", "*_sig")
"""Globs over normalised names; ``*token*`` also covers ``auth_token``, ``X-Auth-Token``,
``refresh_token``, ``id_token``, ``private_token``; ``*_key`` covers ``Api-Key``."""

_DEFAULT_PORTS = {"http": 80, "https": 443}
# An http(s) URL already in normal form (lower-case scheme and host, no user info, query
# or fragment, a port without leading zeros): its key URL is itself, path "/" if none.
_PLAIN_URL = re.compile(r"(https?)://([a-z0-9.-]+)(?::([1-9][0-9]{0,4}))?"
                        r"(/[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*)?\Z")
_OURS = b"\x00aiocache-http"  # third part of every key that is not a plain request's
_ANON_HASH_KEY = b"aiocache-http credential"
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SEPARATORS = re.compile(r"[-.\s]")

KeyFunction = Callable[..., str]


@lru_cache(maxsize=4096)
def normalise_name(name: str) -> str:
    """``X-Amz-Signature`` -> ``x_amz_signature``, ``apiKey`` -> ``api_key``."""
    return _SEPARATORS.sub("_", _CAMEL.sub("_", name)).lower()


@lru_cache(maxsize=4096)
def _matches(normalised: str, extra: tuple[str, ...]) -> bool:
    if normalised in CREDENTIAL_NAMES:
        return True
    return any(fnmatchcase(normalised, p) for p in (*CREDENTIAL_PATTERNS, *extra))


def is_credential(name: str, extra: Iterable[str] = ()) -> bool:
    """Does a header or parameter called ``name`` carry a credential? ``extra``: more
    names or globs (the ``credential_names`` setting), normalised the same way."""
    return _matches(normalise_name(name), tuple(map(normalise_name, extra)) if extra else ())


class _CredentialFields:
    """The header names :func:`is_credential` accepts, as a container (``name in ...``)."""

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and is_credential(name)


CREDENTIAL_HEADERS = _CredentialFields()
"""``name in CREDENTIAL_HEADERS``: is this header a credential (keyed, redacted)?"""


def _credential_hash(value: str, secret: bytes | None) -> str:
    # Keyed so that, with a secret_key, a key cannot be brute-forced back to a token.
    return hashlib.blake2b(value.encode("utf-8", "surrogatepass"), digest_size=16,
                           key=secret or _ANON_HASH_KEY).hexdigest()


def canonical_cookie(header: str) -> str:
    """A Cookie header as sorted ``name=value`` pairs: the same cookies, however ordered
    or sent, give the same key."""
    cookie: SimpleCookie = SimpleCookie()
    try:
        cookie.load(header)
    except CookieError:
        return header
    if not cookie:
        return header
    return "; ".join(sorted(f"{name}={morsel.value}" for name, morsel in cookie.items()))


def unkeyed_credentials(keyed: CIMultiDict[str], sent: MultiMapping[str], ignored: Iterable[str] = (),
                        credential_names: Iterable[str] = ()) -> list[str]:
    """Credential headers the origin received (``sent``, the final request) that the key
    (made from ``keyed``) does not hold: an auth handler that answered a 401 (digest
    auth), a cookie set by a redirect hop. A response to such a request may be personal
    while its key is not, so it is not stored. Names in ``ignored`` are the user's opt-out.
    """
    found = _credentials_among(tuple(sent), tuple(credential_names))
    if not found:  # the usual case: no credential sent at all
        return []
    skip = {name.lower() for name in ignored}
    extra = []
    for name in found:
        if name in skip:
            continue
        values = sent.getall(name)
        if name == "cookie":
            held = set(_cookie_pairs(keyed.getall(name, ())))
            if not set(_cookie_pairs(values)) <= held:  # fewer cookies (another domain) is fine
                extra.append(name)
        elif not set(values) <= set(keyed.getall(name, ())):
            extra.append(name)
    return sorted(extra)


@lru_cache(maxsize=256)  # a client sends the same few header names request after request
def _credentials_among(names: tuple[str, ...], extra: tuple[str, ...]) -> tuple[str, ...]:
    """The credentials among these names, lower-cased, each once (in the key of the
    cache: the names as sent, not a set of them lower-cased, made anew each time)."""
    lowered = dict.fromkeys(name.lower() for name in names)
    return tuple(name for name in lowered if is_credential(name, extra))


def _cookie_pairs(lines: Iterable[str]) -> list[str]:
    return [pair for line in lines for pair in canonical_cookie(line).split("; ") if pair]


def _plain_url(url: str) -> tuple[str, str] | None:
    """:meth:`_Normaliser.url` of a URL of the common shape, already normal (no query, no
    user info: nothing to redact), without parsing it; None for any other URL. The URL is
    its own normal form (the key's with a "/" for an empty path)."""
    plain = _PLAIN_URL.match(url)
    if plain is None:
        return None
    port = plain[3]  # (digits without a leading zero: compared as text, same length)
    if port is not None and ((len(port) == 5 and port > "65535") or port == _DEFAULT_PORT_TEXT[plain[1]]):
        return None  # out of range or the default: the parsing way says what it means
    return (url, url) if plain[4] else (url + "/", url)


_DEFAULT_PORT_TEXT = {"http": "80", "https": "443"}


class _Normaliser:
    """Splits a request into what identifies it (for the key) and what may be stored.

    For every name: listed in ``ignored_params`` -> left out of the key, redacted; a
    credential -> in the key as a keyed hash, redacted; anything else -> kept."""

    __slots__ = ("extra", "ignored", "secret", "secrets")

    def __init__(self, ignored: Iterable[str], secret: bytes | None, extra: Iterable[str] = ()) -> None:
        self.ignored = frozenset(map(str.lower, ignored))
        self.secret = secret
        self.extra = tuple(extra)
        self.secrets: list[str] = []

    def _credential(self, name: str, value: str) -> bool:
        if not is_credential(name, self.extra):
            return False
        self.secrets.append(f"{name}={_credential_hash(value, self.secret)}")
        return True

    def params(self, pairs: list[tuple[str, str]]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """Return (pairs for the key, pairs for storage)."""
        keyed: list[tuple[str, str]] = []
        stored: list[tuple[str, str]] = []
        for name, value in pairs:
            if name.lower() in self.ignored or self._credential(name, value):
                stored.append((name, REDACTED))
            else:
                keyed.append((name, value))
                stored.append((name, value))
        return sorted(keyed), stored

    def url(self, url: str) -> tuple[str, str]:
        """Return (normalised URL for the key, redacted URL for storage). A URL that
        cannot be parsed raises ValueError (the sessions then leave it to the client)."""
        return _plain_url(url) or self.parsed_url(url)

    def parsed_url(self, url: str) -> tuple[str, str]:
        """:meth:`url` for any URL: parsed, then put back together normalised."""
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
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        keyed, stored = self.params(pairs)
        path = parts.path or "/"
        key_url = urlunsplit((scheme, netloc, path, urlencode(keyed, quote_via=quote), ""))
        # Nothing redacted: the query as sent, so a response's url is the client's
        # (re-encoding turned "a=x;y" into "a=x%3By", "+" into "%20", "flag" into "flag=").
        stored_query = parts.query if stored == pairs else urlencode(stored, quote_via=quote)
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
                keyed_json, stored_json = self.json(json.loads(body))
            except ValueError:
                return body, body
            except RecursionError:  # too deep to look into: key on it, store none of it
                return body, REDACTED.encode()
            return _dump(keyed_json), _dump(stored_json)
        return body, body

    def json(self, value: object) -> tuple[object, object]:
        """(keyed, stored) forms of a JSON value: credentials found at any depth."""
        if isinstance(value, dict):
            keyed: dict[str, object] = {}
            stored: dict[str, object] = {}
            for name, item in value.items():
                if name.lower() in self.ignored or self._credential(name, _dump(item).decode()):
                    stored[name] = REDACTED
                else:
                    keyed[name], stored[name] = self.json(item)
            return keyed, stored
        if isinstance(value, list):
            pairs = [self.json(item) for item in value]
            return [k for k, _ in pairs], [s for _, s in pairs]
        return value, value

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
            if lname == "cookie":
                value = canonical_cookie(value)
            if lname in self.ignored or self._credential(lname, value):
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
    credential_names: Iterable[str] = (),
) -> tuple[list[bytes], CachedRequest]:
    """Return (the key material, as parts, and the request as it may be stored).

    The stored request keeps every header and parameter, with credentials and ignored
    parameters replaced by ``REDACTED``. ValueError for a URL that cannot be parsed.
    """
    plain = _plain_request(request)
    if plain is not None:  # a plain request, nothing to redact: what the way below gives
        return [plain[0], plain[1], b"", b"", b""], plain[2]
    n = _Normaliser(ignored_params, secret, credential_names)
    key_url, stored_url = n.url(request.url)
    if (not request.body and not request.headers and not n.secrets and request.follow_redirects
            and request.verify):  # plain, of another shape
        upper = request.method.upper()
        return ([upper.encode(), key_url.encode("utf-8", "surrogatepass"), b"", b"", b""],
                CachedRequest(upper, stored_url, NO_HEADERS, b"", True, True))
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


def _plain_request(request: CachedRequest) -> tuple[bytes, bytes, CachedRequest] | None:
    """A request without body, headers or options and of a URL of the common shape
    (:func:`_plain_url`): its key's method and URL parts, and the request as it may be
    stored (itself, when it is normal already); None for any other request."""
    if request.body or request.headers or not request.follow_redirects or not request.verify:
        return None
    plain = _plain_url(request.url)
    if plain is None:
        return None
    key_url, stored_url = plain
    upper = request.method.upper()
    stored = request if stored_url == request.url and upper == request.method \
        else CachedRequest(upper, stored_url, NO_HEADERS, b"", True, True)  # (the same: shared)
    return upper.encode(), key_url.encode("utf-8", "surrogatepass"), stored


def plain_identity(request: CachedRequest) -> tuple[str, CachedRequest] | None:
    """:func:`normalize_request` and :func:`hash_key` for a plain request (no body,
    headers or options; a URL of the common shape: nothing in it to redact, whatever
    the settings), in one step: its key and the request as it may be stored. None for
    any other request."""
    plain = _plain_request(request)
    if plain is None:
        return None
    method, url, stored = plain
    if len(url) > _JOINED:
        return hash_key([method, url, b"", b"", b""]), stored
    return hashlib.sha256(b"".join((_LENGTH(len(method)), method, _LENGTH(len(url)), url, _EMPTY_PARTS))
                          ).hexdigest(), stored


_LENGTH = struct.Struct(">Q").pack  # a key part's length, as its 8-byte prefix


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


def hash_key(parts: Sequence[bytes | Chunks]) -> str:
    """SHA-256 of the parts, each prefixed by its length (so parts never run together).
    A large body is hashed where it is, not copied; a part given as :class:`Chunks`
    hashes as the bytes they join into."""
    if len(parts) == 5 and parts[2:] == _NO_EXTRAS:  # a plain request's: method and URL only
        method, url = parts[0], parts[1]
        if type(method) is bytes and type(url) is bytes and len(url) <= _JOINED:
            return hashlib.sha256(b"".join((len(method).to_bytes(8, "big"), method,
                                            len(url).to_bytes(8, "big"), url, _EMPTY_PARTS))
                                  ).hexdigest()
    joined: list[bytes] = []
    for part in parts:
        if type(part) is not bytes or len(part) > _JOINED:
            break
        joined += (len(part).to_bytes(8, "big"), part)
    else:  # the usual key: a few short parts, hashed in one call (an update() of a hash
        return hashlib.sha256(b"".join(joined)).hexdigest()  # costs what hashing them does)
    digest = hashlib.sha256()
    for part in parts:
        if type(part) is bytes:  # no view needed for its length
            digest.update(len(part).to_bytes(8, "big"))
            digest.update(part)
            continue
        chunks = part.buffers if isinstance(part, Chunks) else (part,)
        digest.update(sum(memoryview(c).nbytes for c in chunks).to_bytes(8, "big"))
        for chunk in chunks:
            digest.update(chunk)
    return digest.hexdigest()


_NO_EXTRAS = [b"", b"", b""]
_EMPTY_PARTS = bytes(24)  # three empty parts: each its length, 0, in 8 bytes
_JOINED = 64 * 1024  # parts up to this size are copied into one input; a larger body is not


class Chunks:
    """A key part still in pieces (a multipart body around a user's buffers): hashed
    piece by piece, never joined."""

    __slots__ = ("buffers",)

    def __init__(self, buffers: Iterable[bytes | bytearray | memoryview]) -> None:
        self.buffers = tuple(buffers)


def redact_request(
    request: CachedRequest, ignored_params: Iterable[str] = (), credential_names: Iterable[str] = ()
) -> CachedRequest:
    """The request with credentials and ignored parameters replaced by ``REDACTED``."""
    return normalize_request(request, ignored_params, credential_names=credential_names)[1]


def redact_url(url: str, ignored_params: Iterable[str] = (), credential_names: Iterable[str] = ()
               ) -> str:
    """``url`` with credential and ignored query parameters and user info redacted."""
    try:
        return _Normaliser(ignored_params, None, credential_names).url(url)[1]
    except ValueError:  # unparsable: nothing in it can be trusted to be harmless
        return REDACTED


def variant_key(key: str, generation: str, vary_values: list[tuple[str, str | None]]) -> str:
    """The secondary key of one Vary variant of the response stored at ``key``."""
    lines = [key, generation,
             *(f"{name}:{'' if value is None else 'v' + value}" for name, value in vary_values)]
    return hash_key([b"vary", "\n".join(lines).encode("utf-8", "surrogatepass")])
