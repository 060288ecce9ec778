"""requests-cache's ``create_key`` over the shared key function."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import requests

from ..models import CachedRequest
from ..policy import keys
from .convert import cached_request, prepared


def create_key(
    request: requests.PreparedRequest | requests.Request | CachedRequest,
    ignored_parameters: Iterable[str] | None = None,
    match_headers: bool | Iterable[str] = False,
    serializer: Any = None,
    *,
    secret_key: str | bytes | None = None,
    ignored_params: Iterable[str] | None = None,
    **request_kwargs: Any,
) -> str:
    """The cache key a session with these settings gives ``request``.

    ``ignored_params`` (aiohttp-client-cache's name) is accepted too, so this can be
    called from a ``key_fn``. ``secret_key`` must be the backend's when it has one
    (credentials enter the key as a hash keyed with it). ``serializer`` and extra
    request arguments do not change the key here.
    """
    if not isinstance(request, CachedRequest):
        request = cached_request(prepared(request))
    ignored = ignored_parameters if ignored_parameters is not None else ignored_params
    secret = secret_key.encode() if isinstance(secret_key, str) else secret_key
    return keys.create_key(request, ignored or (), match_headers, secret)


__all__ = ["create_key"]
