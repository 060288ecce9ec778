"""The sans-IO cache policy: settings, keys, expiry and the decision core built on them.

Nothing in this package performs IO or imports aiohttp, requests or a backend.
"""

from . import core, decisions
from .core import RequestOptions
from .expiration import DO_NOT_CACHE, EXPIRE_IMMEDIATELY, NEVER_EXPIRE
from .keys import create_key
from .settings import ALL_METHODS, CacheSettings

__all__ = [
    "ALL_METHODS",
    "DO_NOT_CACHE",
    "EXPIRE_IMMEDIATELY",
    "NEVER_EXPIRE",
    "CacheSettings",
    "RequestOptions",
    "core",
    "create_key",
    "decisions",
]
