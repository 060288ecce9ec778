"""Storage backends. Each module holds one database's storage and backend class.

Backends whose client library is an optional extra are imported on first use, so
``import aiocache_http`` never requires redis, pymongo or aiobotocore.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from .base import BaseCache, CacheBackend
from .memory import DictCache, MemoryCache
from .registry import BACKENDS, BY_ALIAS, DEFAULT, BackendInfo

# alias -> "module:Class"; a module is imported the first time its class is asked for.
_SPECS: dict[str, str] = {alias: f"{info.module}:{info.backend}" for alias, info in BY_ALIAS.items()}


class LazyClasses(Mapping[str, type[CacheBackend]]):
    """``{alias: backend class}`` whose classes are made (imported) on first access."""

    def __init__(self, specs: Mapping[str, str], load: Callable[[str], type[CacheBackend]]) -> None:
        self._specs, self._load = specs, load

    def __getitem__(self, alias: str) -> type[CacheBackend]:
        return self._load(self._specs[alias])

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)



def _load(spec: str) -> type[CacheBackend]:
    module, _, name = spec.partition(":")
    return load_class(module, name)  # type: ignore[no-any-return]


def load_class(module: str, name: str) -> Any:
    """``name`` from ``aiocache_http.backends.<module>``; a missing client library is an
    ImportError that names the extra to install."""
    try:
        mod = importlib.import_module(f"{__name__}.{module}")
    except ImportError as e:
        extra = next((i.extra for i in BACKENDS if i.module == module and i.extra), module)
        raise ImportError(
            f"{name} needs an optional dependency: pip install 'aiocache-http[{extra}]' ({e})"
        ) from e
    return getattr(mod, name)


BACKEND_CLASSES: Mapping[str, type[CacheBackend]] = LazyClasses(_SPECS, _load)


def default_backend_alias() -> str:
    return DEFAULT


def init_backend(
    cache_name: str = "aiohttp-cache", backend: str | CacheBackend | type[CacheBackend] | None = None,
    **kwargs: Any,
) -> CacheBackend:
    """A backend from a name/alias, a class, an instance (returned as is), or None (the
    default: SQLite)."""
    if isinstance(backend, CacheBackend):
        if kwargs:
            backend.settings.update(**kwargs)
        return backend
    if isinstance(backend, type) and issubclass(backend, CacheBackend):
        return backend(cache_name, **kwargs)
    alias = default_backend_alias() if backend is None else backend
    if not isinstance(alias, str):
        raise TypeError(f"backend must be a name, a CacheBackend or None, not {backend!r}")
    spec = _SPECS.get(alias.lower())
    if spec is None:
        raise ValueError(f"unknown backend {alias!r}; choose one of {sorted(_SPECS)} "
                         "or pass a CacheBackend instance")
    return _load(spec)(cache_name, **kwargs)


__all__ = ["BACKENDS", "BACKEND_CLASSES", "BackendInfo", "BaseCache", "CacheBackend", "DictCache",
           "MemoryCache", "init_backend", "load_class"]
