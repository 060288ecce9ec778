"""Cache keys from aiohttp request arguments (aiohttp-client-cache's ``cache_keys``).

``create_key("GET", url, params=..., json=...)`` is the key a session gives that request
(with the same settings): the body is encoded as aiohttp would send it, so two requests
whose bodies differ on the wire (``data=b"x"`` and ``data="x"``, a form with a file field
and one without) never share an entry. The key itself is :func:`aiocache_http.policy.
keys.create_key`'s, shared with the requests layer.
"""

from __future__ import annotations

import io
import json as _json
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

from multidict import CIMultiDict

from .models import CachedRequest
from .policy import keys

JsonSerialize = Callable[[Any], "str | bytes"]
FORM_BOUNDARY = "aiocache-http-form-boundary"
_BYTES = (bytes, bytearray, memoryview)


class NotKeyable(Exception):
    """The body cannot be part of a key (a stream, a file, a FormData or payload object):
    such a request bypasses the cache."""


def create_key(
    method: str,
    url: object,
    params: Any = None,
    data: Any = None,
    json: Any = None,
    headers: Mapping[str, str] | None = None,
    include_headers: bool | Iterable[str] = False,
    ignored_params: Iterable[str] | None = None,
    json_serialize: JsonSerialize | None = None,
    **kwargs: Any,
) -> str:
    """The cache key of this request, for a backend without ``secret_key`` (with one,
    use ``backend.create_key(method, url, ...)``, as credentials are hashed with it)."""
    target = with_params(str(url), params) if params else str(url)
    merged: CIMultiDict[str] = CIMultiDict(headers or {})
    pieces, content_type = body_parts(data, json, json_serialize)
    if content_type and "Content-Type" not in merged:
        merged["Content-Type"] = content_type
    if not pieces or _parsed_for_key(merged.get("Content-Type", "")):
        request = CachedRequest(method.upper(), target, merged, b"".join(pieces))
        return keys.create_key(request, ignored_params or (), include_headers)
    # A binary body enters the key as it is: hashed in place, the user's buffers not copied.
    request = CachedRequest(method.upper(), target, merged, b"")
    material, _stored = keys.normalize_request(request, ignored_params or (), include_headers)
    return keys.hash_key([*material[:-1], keys.Chunks(pieces)])


def _parsed_for_key(content_type: str) -> bool:
    """Whether the key normalises a body of this type (form and JSON fields are parsed)."""
    ctype = content_type.split(";", 1)[0].strip().lower()
    return ctype in ("application/x-www-form-urlencoded", "application/json") or ctype.endswith("+json")


def request_for(
    method: str, url: object, params: Any = None, data: Any = None, json: Any = None,
    headers: Mapping[str, str] | None = None, json_serialize: JsonSerialize | None = None,
    follow_redirects: bool = True, verify: bool = True,
) -> CachedRequest:
    """The request as the cache sees it (``url``: a str or a yarl URL). Raises
    :class:`NotKeyable` for a streamed body."""
    target = with_params(str(url), params) if params else str(url)
    merged: CIMultiDict[str] = CIMultiDict(headers or {})
    body, content_type = request_body(data, json, json_serialize)
    if content_type and "Content-Type" not in merged:
        merged["Content-Type"] = content_type
    return CachedRequest(method.upper(), target, merged, body, follow_redirects, verify)


def with_params(url: str, params: Any) -> str:
    """``url`` with ``params`` appended to its query, as aiohttp's ``params=`` takes them:
    a mapping (a MultiDict keeps repeated names), pairs, or a query string."""
    if isinstance(params, str):
        query = params
    else:
        pairs = params.items() if isinstance(params, Mapping) else params
        query = urlencode([(str(k), _param(v)) for k, v in pairs])
    parts = urlsplit(url)
    joined = f"{parts.query}&{query}" if parts.query and query else parts.query or query
    return urlunsplit((parts.scheme, parts.netloc, parts.path, joined, parts.fragment))


def _param(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise TypeError(f"a query parameter value must be str, int or float, not {value!r}")
    return str(value)


def request_body(data: Any = None, json: Any = None,
                 json_serialize: JsonSerialize | None = None) -> tuple[bytes, str | None]:
    """(body bytes, Content-Type) as aiohttp sends ``data=`` / ``json=``. A form with a
    bytes value is multipart; its boundary is fixed so the key does not change."""
    pieces, content_type = body_parts(data, json, json_serialize)
    if len(pieces) == 1 and isinstance(pieces[0], bytes):
        return pieces[0], content_type
    return b"".join(pieces), content_type


Buffer = bytes | bytearray | memoryview


def body_parts(data: Any = None, json: Any = None,
               json_serialize: JsonSerialize | None = None) -> tuple[list[Buffer], str | None]:
    """:func:`request_body` in pieces that join into the body: the user's own buffers
    are among them, not copied."""
    if json is not None:
        text = (json_serialize or _json.dumps)(json)
        return [text.encode() if isinstance(text, str) else bytes(text)], "application/json"
    if data is None:
        return [], None
    if isinstance(data, _BYTES):
        return [data], "application/octet-stream"
    if isinstance(data, str):
        return [data.encode()], "text/plain; charset=utf-8"
    fields = _form_fields(data)
    if any(isinstance(value, _BYTES) for _, value in fields):
        return _multipart(fields), f"multipart/form-data; boundary={FORM_BOUNDARY}"
    return [urlencode(fields, doseq=True).encode()], "application/x-www-form-urlencoded"


def _form_fields(data: Any) -> list[tuple[str, Any]]:
    """aiohttp's form fields: a mapping (a MultiDict keeps repeated names) or pairs."""
    if isinstance(data, Mapping):
        items = list(data.items())
    elif isinstance(data, (list, tuple)) and all(
            isinstance(item, (list, tuple)) and len(item) == 2 for item in data):
        items = [(item[0], item[1]) for item in data]
    else:
        raise NotKeyable
    for _, value in items:
        if isinstance(value, io.IOBase) or not isinstance(value, (str, int, float, list, tuple,
                                                                  *_BYTES)):
            raise NotKeyable
    return [(str(name), value) for name, value in items]


def _multipart(fields: list[tuple[str, Any]]) -> list[Buffer]:
    parts: list[Buffer] = []
    for name, value in fields:
        if isinstance(value, _BYTES):  # sent as a file part, named after the field
            head = (f'Content-Disposition: form-data; name="{quote(name)}"; '
                    f'filename="{quote(name)}"\r\nContent-Type: application/octet-stream')
            content: Buffer = value
        else:
            head = f'Content-Disposition: form-data; name="{quote(name)}"'
            content = str(value).encode()
        parts += [f"--{FORM_BOUNDARY}\r\n{head}\r\n\r\n".encode(), content, b"\r\n"]
    return [*parts, f"--{FORM_BOUNDARY}--\r\n".encode()]


__all__ = ["NotKeyable", "create_key", "request_body", "request_for"]
