"""The sans-IO cache policy: settings, keys, expiry and the decisions built on them.

Nothing in this package performs IO or imports aiohttp, requests or a backend.
"""

from .actions import CacheActions, Decision, RequestOptions
from .expiration import DO_NOT_CACHE, EXPIRE_IMMEDIATELY, NEVER_EXPIRE
from .keys import create_key
from .settings import ALL_METHODS, CacheSettings

__all__ = [
    "ALL_METHODS",
    "DO_NOT_CACHE",
    "EXPIRE_IMMEDIATELY",
    "NEVER_EXPIRE",
    "CacheActions",
    "CacheSettings",
    "Decision",
    "RequestOptions",
    "create_key",
]
