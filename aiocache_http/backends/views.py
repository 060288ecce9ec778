"""What users reach as ``backend.responses`` and ``backend.redirects``.

Both peers hand out storages whose values are responses (and redirect targets), not
bytes, so code that inspects a peer's cache keeps working. These views decode through
the backend (its serializer, its gate to storage); the byte-level storages stay
reachable as ``backend.raw_responses`` / ``backend.raw_redirects`` for tools.
Attributes a view does not define (``connection``, ``table_name``...) are the storage's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any

from ..models import CachedResponse
from .base import AsyncResults, BaseCache
from .health import Kind

if TYPE_CHECKING:
    from .base import CacheBackend


class _View:
    __slots__ = ("backend",)

    def __init__(self, backend: CacheBackend) -> None:
        self.backend = backend

    @property
    def storage(self) -> BaseCache:
        raise NotImplementedError

    async def delete(self, key: str) -> None:
        await self.backend._guard("delete", self.storage.delete(key), None, Kind.DELETE)

    async def bulk_delete(self, keys: Iterable[str]) -> None:
        await self.backend._guard("delete", self.storage.bulk_delete(list(keys)), None, Kind.DELETE)

    async def contains(self, key: str) -> bool:
        return bool(await self.backend._guard("contains", self.storage.contains(key), False))

    async def size(self) -> int:
        return int(await self.backend._guard("size", self.storage.size(), 0, Kind.MAINTENANCE))

    async def clear(self) -> None:
        await self.backend._guard("clear", self.storage.clear(), None, Kind.MAINTENANCE)

    def keys(self) -> AsyncResults[str]:
        return AsyncResults(self.backend._guard_iter("list keys", self.storage.iter_keys()))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.storage, name)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.storage!r})"


class ResponsesView(_View):
    """``key -> CachedResponse``: the responses storage, decoded."""

    __slots__ = ()

    @property
    def storage(self) -> BaseCache:
        return self.backend.raw_responses

    async def read(self, key: str) -> CachedResponse | None:
        return await self.backend.get_response(key, follow_redirects=False)

    async def write(self, key: str, response: CachedResponse) -> None:
        await self.backend.save_response(response, key)

    def values(self) -> AsyncResults[CachedResponse]:
        return AsyncResults(self._values())

    async def _values(self) -> AsyncIterator[CachedResponse]:
        async for key in self.backend._guard_iter("list keys", self.storage.iter_keys()):
            response = await self.read(key)
            if response is not None:
                yield response


class RedirectsView(_View):
    """``alias key -> target key``: the redirects storage, decoded."""

    __slots__ = ()

    @property
    def storage(self) -> BaseCache:
        return self.backend.raw_redirects

    async def read(self, key: str) -> str | None:
        return await self.backend.get_redirect(key)

    async def write(self, key: str, target: str) -> None:
        await self.backend.save_redirect(key, target)

    def values(self) -> AsyncResults[str]:
        return AsyncResults(self._values())

    async def _values(self) -> AsyncIterator[str]:
        async for key in self.backend._guard_iter("list keys", self.storage.iter_keys()):
            target = await self.read(key)
            if target is not None:
                yield target


__all__ = ["RedirectsView", "ResponsesView"]
