"""install_cache & co.: patch ``requests.Session`` globally, as requests-cache does, so
plain ``requests.get()`` is cached. Not thread-safe by nature (a global patch)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
import requests.sessions

from ..backends import CacheBackend
from .backends import DEFAULT_CACHE_NAME, BackendSpecifier
from .cache import BaseCache
from .session import CachedSession

OriginalSession = requests.Session  # as imported, before any patch


def install_cache(cache_name: str | Path = DEFAULT_CACHE_NAME, backend: BackendSpecifier = None,
                  session_factory: type[CachedSession] = CachedSession, **kwargs: Any) -> None:
    """Make every ``requests.Session()`` (so ``requests.get()`` too) a ``session_factory``
    on one backend built here from ``cache_name``, ``backend`` and ``kwargs``, which take
    the same arguments as :class:`CachedSession`."""
    settings_and_backend = {k: v for k, v in kwargs.items() if k != "autoclose"}
    probe = session_factory(cache_name, backend, **settings_and_backend, autoclose=False)
    shared = probe.cache  # every patched session uses this one backend...
    shared.settings.autoclose = False  # ...which none of them closes
    probe.close()

    class _ConfiguredCachedSession(session_factory):  # type: ignore[valid-type,misc]
        def __init__(self) -> None:
            # Sessions come and go with each requests.get(); the backend stays open.
            super().__init__(cache_name, shared, autoclose=False)

    _ConfiguredCachedSession.__name__ = session_factory.__name__
    _ConfiguredCachedSession.__qualname__ = session_factory.__qualname__
    _patch(_ConfiguredCachedSession)


def uninstall_cache() -> None:
    """Restore ``requests.Session`` (the backend stays open: sessions may still hold it)."""
    _patch(OriginalSession)


@contextmanager
def enabled(*args: Any, **kwargs: Any) -> Iterator[None]:
    """Install the cache for the duration of the block (arguments of :func:`install_cache`).
    A backend built here is closed at the end (unless ``autoclose=False``); a backend
    instance passed in stays open."""
    install_cache(*args, **kwargs)
    cache = get_cache()
    given = kwargs.get("backend", args[1] if len(args) > 1 else None)
    try:
        yield
    finally:
        uninstall_cache()
        built_here = not isinstance(given, (CacheBackend, BaseCache))
        if cache is not None and built_here and kwargs.get("autoclose", True):
            cache.close()  # else each block would leave a connection (and its thread) open


@contextmanager
def disabled() -> Iterator[None]:
    """Uninstall the cache for the duration of the block, then restore what was there."""
    previous = requests.Session
    uninstall_cache()
    try:
        yield
    finally:
        _patch(previous)


def is_installed() -> bool:
    return isinstance(requests.Session, type) and issubclass(requests.Session, CachedSession)


def get_cache() -> BaseCache | None:
    """The installed cache, or None."""
    return requests.Session().cache if is_installed() else None  # type: ignore[attr-defined]


def clear() -> None:
    """Clear the installed cache, if any."""
    cache = get_cache()
    if cache is not None:
        cache.clear()


def delete(*keys: str, **kwargs: Any) -> None:
    """``delete()`` on the installed cache, if any (same arguments as ``BaseCache.delete``)."""
    cache = get_cache()
    if cache is not None:
        cache.delete(*keys, **kwargs)


def _patch(session_factory: type[requests.Session]) -> None:
    requests.Session = requests.sessions.Session = session_factory  # type: ignore[misc]


__all__ = ["clear", "delete", "disabled", "enabled", "get_cache", "install_cache", "is_installed",
           "uninstall_cache"]
