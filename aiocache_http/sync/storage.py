"""requests-cache's storages: synchronous dicts over the async storages.

``session.cache.responses`` is ``key -> CachedResponse`` and ``session.cache.redirects``
``alias -> key``, as in requests-cache; a storage built on its own (``SQLiteDict("db",
"table")``, ``RedisDict("ns")``...) holds any value: responses, text, bytes, numbers,
datetimes, lists and dicts, or anything its ``serializer`` takes (``serializer="pickle"``
is an opt-in). Each call runs on the bridge loop.
"""

from __future__ import annotations

import contextlib
import importlib
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from ..backends.base import BaseCache, CacheBackend
from ..backends.health import Kind
from ..backends.memory import MemoryCache
from ..backends.values import PLAIN_TYPES
from ..models import CachedResponse as Record
from ..serializers import DeserializationError, Serializer, get_format
from .bridge import run
from .models import CachedResponse
from .serializers import PipelineFormat, SerializerPipeline, init_serializer, json_serializer, utf8_serializer

T = TypeVar("T")
_SORT_KEYS = ("expires", "size", "key")
_JSON = object()  # FileDict's default serializer (requests-cache's), set apart from None


async def _collect(items: AsyncIterator[Any]) -> list[Any]:
    return [item async for item in items]


def _is_response(value: Any) -> bool:
    return isinstance(value, Record) or (not isinstance(value, PLAIN_TYPES) and (
        hasattr(value, "__cache_record__") or hasattr(value, "status_code")))


class Codec:
    """How a storage's values are stored: responses through ``serializer`` (the
    backend's, for ``session.cache.responses``), other values through ``pipeline`` if
    there is one, else as they are."""

    def __init__(self, serializer: Serializer, pipeline: SerializerPipeline | None = None,
                 backend: CacheBackend | None = None) -> None:
        self.serializer, self.pipeline, self.backend = serializer, pipeline, backend

    @classmethod
    def of(cls, serializer: Any = None, decode_content: bool = False) -> Codec:
        """The codec of a storage built on its own, from requests-cache's ``serializer``."""
        pipeline = init_serializer(serializer, decode_content)
        fmt = get_format(PipelineFormat(pipeline) if pipeline is not None else None)
        return cls(Serializer(fmt), pipeline)

    @classmethod
    def of_backend(cls, backend: CacheBackend) -> Codec:
        fmt = backend.serializer.format
        return cls(backend.serializer, fmt.pipeline if isinstance(fmt, PipelineFormat) else None,
                   backend)

    def dumps(self, key: str, value: Any) -> Any:
        if _is_response(value):
            record = value if isinstance(value, Record) else value.__cache_record__() if hasattr(
                value, "__cache_record__") else CachedResponse.from_response(value).__cache_record__()
            return self.serializer.dumps(replace(record, cache_key=key), key)
        if self.pipeline is None:
            return value
        data = self.pipeline.dumps(value)  # the pipeline reads it back: text is kept as bytes
        return data.encode() if isinstance(data, str) else data

    def loads(self, key: str, stored: Any) -> Any:
        if isinstance(stored, bytes):
            try:
                record = self.serializer.loads(stored, key)
            except DeserializationError:
                pass
            else:
                return CachedResponse.from_record(replace(record, cache_key=key))
        if self.pipeline is None:
            return None if isinstance(stored, bytes) and self.backend is not None else stored
        try:
            value = self.pipeline.loads(stored)
        except Exception:  # whatever the format raises: an unusable item
            return None
        if isinstance(value, Record):
            return CachedResponse.from_record(replace(value, cache_key=key))
        return value


class BaseStorage(MutableMapping[str, Any]):
    """A dict view of one async storage. Besides the mapping protocol it has the
    storage's methods, synchronous: ``read``, ``write``, ``delete``, ``bulk_delete``,
    ``contains``, ``size``, ``clear``, ``close``.

    Args:
        storage: The async storage (default: a new in-memory one).
        serializer: requests-cache's serializer (a name or a pipeline) for the values;
            default: responses in the safe binary envelope, other values as they are.
        decode_content: Store JSON and text bodies decoded (text serializers only).
    """

    def __init__(self, storage: BaseCache | None = None, serializer: Any = None,
                 decode_content: bool = False, *, codec: Codec | None = None) -> None:
        self.storage: BaseCache = storage if storage is not None else MemoryCache()
        self.codec = codec or Codec.of(serializer, decode_content)
        self._local = threading.local()

    @classmethod
    def bound(cls, storage: BaseCache, codec: Codec) -> BaseStorage:
        """A view of a backend's storage (``session.cache.responses``)."""
        view = cls.__new__(cls)
        BaseStorage.__init__(view, storage, codec=codec)
        return view

    def _call(self, op: str, call: Callable[[], Awaitable[T]], default: T,
              kind: Kind = Kind.READ) -> T:
        """Run ``call()`` on the bridge loop, through the backend's gate if there is one
        (deadlines, circuit breaker, fail-open; ``strict`` raises). The storage coroutine
        is made there: if the bridge refuses, none is left unawaited."""
        backend = self.codec.backend

        async def gated() -> T:
            if backend is None:
                return await call()
            if kind is Kind.WRITE:
                await backend._guard_write(op, self.storage, call())  # type: ignore[arg-type]
                return default
            return await backend._guard(op, call(), default, kind)

        return run(gated())

    def _iter(self, op: str, iterator: Callable[[], AsyncIterator[T]]) -> list[T]:
        """Every item of ``iterator()``, each step through the backend's gate if any (a
        failed step ends the listing early: fail-open)."""
        backend = self.codec.backend

        async def collect() -> list[T]:
            found = iterator()
            return await _collect(found if backend is None else backend._guard_iter(op, found))

        return run(collect())

    @property
    def serializer(self) -> Any:
        """requests-cache's attribute: what reads and writes the values (the pipeline, if
        they go through one; else the response serializer)."""
        return self.codec.pipeline if self.codec.pipeline is not None else self.codec.serializer

    # -- the async storage's methods, synchronous ----------------------------------
    def read(self, key: str) -> Any:
        pending = self._pending()
        if pending is not None and key in pending:
            return self.codec.loads(key, pending[key])
        return self.deserialize(key, self._call("read", lambda: self.storage.read(key), None))

    def write(self, key: str, value: Any) -> None:
        stored = self.serialize(key, value)
        pending = self._pending()
        if pending is not None:
            pending[key] = stored
        else:
            self._call("write", lambda: self.storage.write(key, stored), None, Kind.WRITE)

    def serialize(self, key: str, value: Any) -> Any:
        return self.codec.dumps(key, value)

    def deserialize(self, key: str, stored: Any) -> Any:
        """The value stored as ``stored`` (None if absent or unusable)."""
        return None if stored is None else self.codec.loads(key, stored)

    def delete(self, key: str) -> None:
        """Delete ``key`` if present (``del view[key]`` raises KeyError instead)."""
        (self._pending() or {}).pop(key, None)
        self._call("delete", lambda: self.storage.delete(key), None, Kind.DELETE)

    def bulk_delete(self, keys: Iterable[str]) -> None:
        keys = list(keys)
        for key in keys:
            (self._pending() or {}).pop(key, None)
        self._call("delete", lambda: self.storage.bulk_delete(keys), None, Kind.DELETE)

    def contains(self, key: str) -> bool:
        pending = self._pending()
        return (pending is not None and key in pending) or bool(
            self._call("contains", lambda: self.storage.contains(key), False))

    def size(self) -> int:
        return int(self._call("size", self.storage.size, 0, Kind.MAINTENANCE))

    def clear(self) -> None:
        (self._pending() or {}).clear()
        self._call("clear", self.storage.clear, None, Kind.MAINTENANCE)

    def close(self) -> None:
        self._call("close", self.storage.close, None, Kind.CLOSE)

    @contextmanager
    def bulk_commit(self) -> Iterator[None]:
        """Writes in this block (in this thread) are stored together when it ends."""
        if self._pending() is not None:
            yield
            return
        pending: dict[str, Any] = {}
        self._local.pending = pending
        try:
            yield
        finally:
            self._local.pending = None
            if pending:
                run(self._write_all(pending))

    async def _write_all(self, items: dict[str, Any]) -> None:
        bulk_write = getattr(self.storage, "bulk_write", None)
        if bulk_write is not None:
            await bulk_write([(key, value, None) for key, value in items.items()])
        else:
            for key, value in items.items():
                await self.storage.write(key, value)

    def _pending(self) -> dict[str, Any] | None:
        return getattr(self._local, "pending", None)

    # -- MutableMapping --------------------------------------------------------------
    def __getitem__(self, key: str) -> Any:
        value = self.read(key)
        if value is None:
            raise KeyError(key)
        return value

    def __setitem__(self, key: str, value: Any) -> None:
        self.write(key, value)

    def __delitem__(self, key: str) -> None:
        if not self.contains(key):
            raise KeyError(key)
        self.delete(key)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.contains(key)

    def __iter__(self) -> Iterator[str]:
        keys = self._iter("list keys", self.storage.iter_keys)  # one round trip, then a list
        pending = self._pending()
        return iter([*keys, *(k for k in pending or () if k not in keys)])

    def __len__(self) -> int:
        return int(self._call("size", self.storage.size, 0, Kind.MAINTENANCE))

    def values(self) -> list[Any]:  # type: ignore[override]
        """The values that can be read (an unusable item is left out, not an error)."""
        return [value for _key, value in self.items()]

    def items(self) -> list[tuple[str, Any]]:  # type: ignore[override]
        items = []
        for key in self:
            value = self.read(key)
            if value is not None:
                items.append((key, value))
        return items

    def __bool__(self) -> bool:
        return len(self) > 0

    def __getattr__(self, name: str) -> Any:  # the storage's own attributes (table_name...)
        if name.startswith("_") or name in ("storage", "codec"):
            raise AttributeError(name)
        return getattr(self.storage, name)

    def __str__(self) -> str:
        return str(list(self))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.storage!r})"


class MappingStorage(BaseCache):
    """The async storage over a user's dict-like ``BaseStorage`` subclass, as in
    requests-cache's custom backend (``self.responses = CustomStorage()``, its
    ``__getitem__`` & co. overridden): the items (bytes) go through those methods."""

    in_process = True  # (a user's mapping: called in place, never awaited)

    def __init__(self, mapping: MutableMapping[str, Any]) -> None:
        self.mapping = mapping

    async def read(self, key: str) -> Any:
        try:
            return self.mapping[key]
        except KeyError:
            return None

    async def write(self, key: str, value: Any, expires: Any = None) -> None:
        self.mapping[key] = value.encode() if isinstance(value, str) else value

    async def delete(self, key: str) -> None:
        with contextlib.suppress(KeyError):
            del self.mapping[key]

    async def iter_keys(self) -> AsyncIterator[str]:
        for key in list(self.mapping):
            yield key

    async def size(self) -> int:
        return len(self.mapping)

    async def clear(self) -> None:
        self.mapping.clear()


def async_storage(storage: Any) -> BaseCache:
    """What a backend keeps for ``cache.responses = storage``: an async storage as it is,
    a ``BaseStorage`` view's own, a user's mapping class through :class:`MappingStorage`."""
    if isinstance(storage, BaseCache):
        return storage
    if isinstance(storage, BaseStorage):
        mine = ("__getitem__", "__setitem__", "__delitem__", "__iter__", "__len__")
        if any(getattr(type(storage), name) is not getattr(BaseStorage, name) for name in mine):
            return MappingStorage(storage)
        return storage.storage
    raise TypeError(f"a cache's responses / redirects must be a BaseStorage (SQLiteDict(), "
                    f"DictStorage()...), not {type(storage).__name__}")


class DictStorage(BaseStorage):
    """An in-process dict (requests-cache's memory storage)."""

    def __init__(self, *args: Any, max_entries: int | None = None, serializer: Any = None,
                 decode_content: bool = False, **kwargs: Any) -> None:
        super().__init__(MemoryCache(max_entries=max_entries), serializer, decode_content)


class _Storage(BaseStorage):
    """A view over an optional async storage class, imported when first constructed."""

    _wraps: tuple[str, str] = ("", "")  # (module in aiocache_http.backends, class)
    _takes_connection = True

    def __init__(self, *args: Any, serializer: Any = None, decode_content: bool = False,
                 **kwargs: Any) -> None:
        if kwargs.get("connection", True) is None or not self._takes_connection:
            kwargs.pop("connection", None)  # requests-cache's test helpers pass it to every storage
        module, name = self._wraps
        try:
            cls = getattr(importlib.import_module(f"aiocache_http.backends.{module}"), name)
        except ImportError as e:
            raise ImportError(f"{type(self).__name__} needs an optional dependency: "
                              f"pip install 'aiocache-http[{module}]' ({e})") from e
        super().__init__(cls(*args, **kwargs), serializer, decode_content)


class SQLiteDict(_Storage):
    """One table of a SQLite file: ``SQLiteDict(db_path, table_name, use_temp=...)``."""

    _wraps = ("sqlite", "SQLiteCache")
    _takes_connection = False

    def __init__(self, db_path: str | Path, table_name: str = "http_cache", *args: Any,
                 **kwargs: Any) -> None:
        kwargs.pop("lock", None)  # requests-cache locks tables itself; the database does here
        if kwargs.pop("use_memory", False):
            db_path = ":memory:"
        if kwargs.get("busy_timeout") is not None:  # milliseconds in requests-cache
            kwargs["busy_timeout"] = kwargs["busy_timeout"] / 1000
        super().__init__(db_path, table_name, *args, **kwargs)

    @property
    def db_path(self) -> Path | str:
        return self.storage.db.path  # type: ignore[attr-defined, no-any-return]

    @contextmanager
    def connection(self) -> Iterator[_Connection]:
        """The storage's database connection, for queries (``execute(sql).fetchone()``)."""
        yield _Connection(self.storage)

    def size(self) -> int:
        """The database file's size in bytes."""
        path = self.db_path
        with self.connection() as conn:
            if not isinstance(path, Path):
                return int(conn.execute("PRAGMA page_count").fetchone()[0]
                           * conn.execute("PRAGMA page_size").fetchone()[0])
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")  # what the log holds, into the file
        return path.stat().st_size if path.exists() else 0

    def count(self, expired: bool = True) -> int:
        """How many items; with ``expired=False``, only responses that are not expired."""
        if expired:
            return len(self)
        return sum(1 for value in self.values() if not getattr(value, "is_expired", False))

    def sorted(self, key: str = "expires", reversed: bool = False, limit: int | None = None,
               expired: bool = True) -> Iterator[Any]:
        """Values sorted by ``"expires"``, ``"size"`` (stored bytes) or ``"key"``; unusable
        items are left out, and expired responses too with ``expired=False``."""
        if key not in _SORT_KEYS:
            raise ValueError(f"Invalid sort key: {key}; choose one of {list(_SORT_KEYS)}")
        items = []
        for item_key, stored in self._iter("list items", lambda: _items(self.storage)):
            value = self.deserialize(item_key, stored)
            if value is None or (not expired and getattr(value, "is_expired", False)):
                continue
            items.append((item_key, stored, value))

        def order(item: tuple[str, Any, Any]) -> Any:
            item_key, stored, value = item
            if key == "key":
                return item_key
            if key == "size":
                return len(stored) if isinstance(stored, (bytes, str)) else 0
            expires = getattr(value, "expires", None)
            return (expires is None, expires.timestamp() if expires else 0)

        items.sort(key=order, reverse=reversed)
        return iter([value for _k, _s, value in items[:limit]])

    def vacuum(self) -> None:
        run(self.storage.db.vacuum())  # type: ignore[attr-defined]


class _Connection:
    """A blocking face of a SQLite storage's connection: ``execute()`` runs a query on the
    bridge loop and returns its rows."""

    def __init__(self, storage: BaseCache) -> None:
        self.storage = storage

    def execute(self, sql: str, parameters: Iterable[Any] = ()) -> _Rows:
        return _Rows(run(self._fetch(sql, tuple(parameters))))

    async def _fetch(self, sql: str, parameters: tuple[Any, ...]) -> list[Any]:
        async with self.storage.get_connection() as conn:  # type: ignore[attr-defined]
            return list(await conn.execute_fetchall(sql, parameters))


class _Rows:
    def __init__(self, rows: list[Any]) -> None:
        self.rows = rows

    def fetchone(self) -> Any:
        return self.rows[0] if self.rows else None

    def fetchall(self) -> list[Any]:
        return self.rows


async def _items(storage: BaseCache) -> AsyncIterator[tuple[str, Any]]:
    async for key in storage.iter_keys():
        value = await storage.read(key)
        if value is not None:
            yield key, value


class RedisDict(_Storage):
    """One Redis key per item."""

    _wraps = ("redis", "RedisCache")
    _layout = "keys"

    def __init__(self, namespace: str = "http_cache", collection_name: str | None = None,
                 *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("layout", self._layout)
        super().__init__(namespace, collection_name or "responses", *args, **kwargs)


class RedisHashDict(RedisDict):
    """One Redis hash per storage (``namespace:collection_name``), without expiry (as in
    requests-cache)."""

    _layout = "hash"

    def __init__(self, namespace: str = "http_cache", collection_name: str | None = None,
                 *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("ttl", False)
        super().__init__(namespace, collection_name, *args, **kwargs)


class MongoDict(_Storage):
    _wraps = ("mongodb", "MongoDBCache")


class GridFSDict(_Storage):
    _wraps = ("gridfs", "GridFSCache")


class DynamoDbDict(_Storage):
    """Items of one namespace of a DynamoDB table; the table is created if missing, as in
    requests-cache (``create_table=False`` to not)."""

    _wraps = ("dynamodb", "DynamoDBCache")

    def __init__(self, table_name: str = "http_cache", namespace: str = "http_cache",
                 *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("create_table", True)
        super().__init__(table_name, namespace, *args, **kwargs)


class FileDict(_Storage):
    """A directory, one file per item: ``FileDict(cache_name, use_temp=, use_cache_dir=,
    extension=, serializer=)``. As in requests-cache, items are JSON files by default
    (``serializer=None``: text as it is); files are ``<key>.ach.<extension>``, the extension
    following the serializer."""

    _wraps = ("filesystem", "FileCache")
    _takes_connection = False

    def __init__(self, cache_name: str | Path, *args: Any, serializer: Any = _JSON,
                 **kwargs: Any) -> None:
        if serializer is _JSON:
            serializer = json_serializer
        elif serializer is None:
            serializer = utf8_serializer
        kwargs.pop("plaintext", None)
        if "extension" not in kwargs and isinstance(serializer, SerializerPipeline):
            kwargs["extension"] = {"utf8": None, "pickle": "pkl"}.get(
                serializer.name or "", "json" if "json" in (serializer.name or "") else serializer.name)
        super().__init__(cache_name, *args, serializer=serializer, **kwargs)

    def keys(self) -> list[str]:  # type: ignore[override]
        return list(self)

    def size(self) -> int:
        """The files' total size in bytes."""
        return run(self.storage.total_bytes())  # type: ignore[attr-defined, no-any-return]

    @property
    def cache_dir(self) -> Path:
        return self.storage.directory  # type: ignore[attr-defined, no-any-return]

    def paths(self) -> list[Path]:
        """The file of every item."""
        return run(_collect(self.storage.paths()))  # type: ignore[attr-defined]


class LRUFileDict(FileDict):
    """A FileDict bounded in size: ``LRUFileDict(cache_name, max_cache_bytes=,
    max_file_bytes=, block_bytes=, lock=, sync_index=)`` evicts the least recently used
    files to stay under ``max_cache_bytes``; ``size()`` counts whole blocks."""

    def __init__(self, cache_name: str | Path, *args: Any, max_cache_bytes: int | None = None,
                 **kwargs: Any) -> None:
        super().__init__(cache_name, *args, max_cache_bytes=max_cache_bytes, **kwargs)


__all__ = [
    "BaseStorage",
    "Codec",
    "DictStorage",
    "DynamoDbDict",
    "FileDict",
    "GridFSDict",
    "LRUFileDict",
    "MongoDict",
    "RedisDict",
    "RedisHashDict",
    "SQLiteDict",
]
