"""What users reach as ``backend.responses`` and ``backend.redirects``.

Both peers hand out storages whose values are responses (and redirect targets), not
bytes, so code that inspects a peer's cache keeps working. These views decode through
the backend (its serializer, its gate to storage); the byte-level storages stay
reachable as ``backend.raw_responses`` / ``backend.raw_redirects`` for tools.
Attributes a view does not define (``connection``, ``table_name``...) are the storage's.

A view also takes what a peer's storage takes: ``write(key, response)`` with any response
object (saved as the backend saves one), or a plain value (text, numbers...), kept as is.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar

from ..models import CachedResponse
from ..serializers import DeserializationError
from .base import AsyncResults, BaseCache, logger
from .health import Kind
from .values import PLAIN_TYPES

if TYPE_CHECKING:
    from .base import CacheBackend

def _as_is(response: CachedResponse) -> Any:
    return response


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
        async for _ in self.backend._guard_iter("clear", self.storage.clear_steps()):
            pass

    async def read(self, key: str) -> Any:
        raise NotImplementedError

    async def pop(self, key: str, default: Any = None) -> Any:
        value = await self.read(key)
        await self.delete(key)
        return default if value is None else value

    def keys(self) -> AsyncResults[str]:
        return AsyncResults(self.backend._guard_iter("list keys", self.storage.iter_keys()))

    def values(self) -> AsyncResults[Any]:
        return AsyncResults(self._values())

    async def _values(self) -> AsyncIterator[Any]:
        async for key in self.backend._guard_iter("list keys", self.storage.iter_keys()):
            value = await self.read(key)
            if value is not None:
                yield value

    def __getattr__(self, name: str) -> Any:
        return getattr(self.storage, name)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.storage!r})"


class ResponsesView(_View):
    """``key -> response``: the responses storage, decoded."""

    __slots__ = ()

    # How a stored response is handed out. aiocache_http.response sets it to its
    # CachedClientResponse (the backends layer does not import the HTTP-facing one).
    present: ClassVar[Callable[[CachedResponse], Any]] = staticmethod(_as_is)

    @property
    def storage(self) -> BaseCache:
        return self.backend.raw_responses

    async def read(self, key: str) -> Any:
        """The response at ``key`` (None if absent or unusable), or the plain value a user
        wrote there."""
        value = await self.backend._guard("read", self.storage.read(key), None)
        if value is None or not isinstance(value, bytes):
            return value
        try:
            return ResponsesView.present(self.backend.load(key, value))
        except DeserializationError as e:  # as get_response: unusable, so discarded
            logger.warning("%r: discarding unusable item %s: %s", self.backend, key, e)
            await self.backend._guard("delete", self.storage.delete(key), None, Kind.DELETE)
            return None

    async def write(self, key: str, value: Any) -> None:
        if isinstance(value, PLAIN_TYPES):
            await self.backend._guard_write("write", self.storage, self.storage.write(key, value))
        else:
            keep = getattr(self.storage, "keep_written", None)
            before = self.storage.get_item(key) if keep is not None else None  # type: ignore[attr-defined]
            await self.backend.save_response(value, key)
            if keep is not None:  # in-process: get_response hands this very object back
                keep(key, value, before)


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


__all__ = ["RedirectsView", "ResponsesView"]
