"""MongoDB storage (:class:`MongoDBCache`) and backend (:class:`MongoDBBackend`) on
pymongo's ``AsyncMongoClient``.

Each item is one document ``{_id: key, value: Binary, expires: datetime | None}``. With
``ttl=True`` it also holds ``purge_at`` = expires + ``ttl_offset``, and a TTL index on
``purge_at`` (created once, on first use; creating it again is a no-op) lets the server
delete the item that long after its HTTP expiry, so a stale entry can still be
revalidated meanwhile. Entries that never expire have no ``purge_at`` and stay until
deleted. ``delete_expired`` is one ``delete_many`` on ``expires``.

Clients
-------
``connection=`` takes a pymongo ``AsyncMongoClient`` or a motor ``AsyncIOMotorClient``
(used as is, never closed by us; only the API both share is used), or a sync
``pymongo.MongoClient`` whose settings are reused for async clients we create. Without
one, ``**kwargs`` (host, port, username...) build the client. Async clients belong to
one event loop, so the clients we create are kept one per running loop and closed by
:meth:`MongoDBCache.close`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from datetime import datetime, timedelta, timezone
from typing import Any

import pymongo
from bson import Binary
from pymongo import AsyncMongoClient

from ..policy.settings import CacheSettings
from .base import BaseCache, CacheBackend
from .clients import LoopClients
from .values import Value, decode_value, encode_value

# pymongo's AsyncMongoClient or motor's AsyncIOMotorClient: typed loosely because motor
# is optional and untyped; only the API subset both share is called.
Client = Any
TTL_INDEX = "aiocache_http_purge_at"
_BATCH = 1000


def utc_naive(moment: datetime) -> datetime:
    """BSON datetimes are UTC; naive-UTC values compare the same on every driver and fake."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment


class MongoClients(LoopClients[Client]):
    """The client for the running loop: the user's async connection, or one we create
    per loop (from options, or from a sync ``MongoClient``'s settings)."""

    def __init__(self, connection: Any = None, options: dict[str, Any] | None = None) -> None:
        options = options or {}
        if isinstance(connection, pymongo.MongoClient):
            base = dict(connection._init_kwargs)
            super().__init__(lambda: AsyncMongoClient(**{**base, **options}), _close)
        elif connection is not None:
            if not callable(getattr(connection, "get_database", None)):
                raise TypeError("connection must be a pymongo AsyncMongoClient, a motor AsyncIOMotorClient "
                                f"or a pymongo MongoClient, not {type(connection).__name__}")
            super().__init__(None, _close, shared=connection)
        else:
            super().__init__(lambda: AsyncMongoClient(**options), _close)


async def _close(client: Client) -> None:
    await client.close()


class MongoDBCache(BaseCache):
    """One MongoDB collection as key -> bytes storage.

    Args:
        db_name: Database name.
        collection_name: Collection name.
        connection: An existing client (see the module docstring), or a
            :class:`MongoClients` to share another storage's clients.
        ttl: Let MongoDB delete each item ``ttl_offset`` after its HTTP expiry (TTL index).
        ttl_offset: Seconds (or a timedelta) an item is kept after its HTTP expiry.
        **kwargs: ``AsyncMongoClient`` options (host, port, username, password, tls...).
    """

    def __init__(self, db_name: str, collection_name: str, connection: Any = None, *, ttl: bool = True,
                 ttl_offset: float | timedelta = 3600, **kwargs: Any) -> None:
        self.db_name, self.collection_name = db_name, collection_name
        self.ttl = ttl
        self.ttl_offset = ttl_offset if isinstance(ttl_offset, timedelta) else timedelta(seconds=ttl_offset)
        self.clients = (connection if isinstance(connection, MongoClients)
                        else MongoClients(connection, kwargs))
        self._indexed = not ttl  # TTL index created? (once per storage: it lives on the server)

    def __repr__(self) -> str:
        return f"MongoDBCache({self.db_name!r}, {self.collection_name!r})"

    def get_connection(self) -> Client:
        """The client for the running loop."""
        return self.clients.get()

    async def collection(self) -> Any:
        """This loop's collection object, with the TTL index in place."""
        collection = self.clients.get()[self.db_name][self.collection_name]
        if not self._indexed:
            await collection.create_index("purge_at", expireAfterSeconds=0, name=TTL_INDEX)
            self._indexed = True
        return collection

    async def read(self, key: str) -> Value | None:
        doc = await (await self.collection()).find_one({"_id": key}, {"value": True})
        return None if doc is None else decode_value(bytes(doc["value"]))

    async def contains(self, key: str) -> bool:
        return await (await self.collection()).find_one({"_id": key}, {"_id": True}) is not None

    async def write(self, key: str, value: Value, expires: datetime | None = None) -> None:
        doc: dict[str, Any] = {"_id": key, "value": Binary(encode_value(value)),
                               "expires": None if expires is None else utc_naive(expires)}
        if self.ttl and expires is not None:
            doc["purge_at"] = utc_naive(expires + self.ttl_offset)
        await (await self.collection()).replace_one({"_id": key}, doc, upsert=True)

    async def delete(self, key: str) -> None:
        await (await self.collection()).delete_one({"_id": key})

    async def bulk_delete(self, keys: Iterable[str]) -> None:
        collection, keys = await self.collection(), list(keys)
        for i in range(0, len(keys), _BATCH):
            await collection.delete_many({"_id": {"$in": keys[i:i + _BATCH]}})

    async def delete_expired(self, now: datetime) -> int:
        result = await (await self.collection()).delete_many({"expires": {"$lte": utc_naive(now)}})
        return int(result.deleted_count)

    async def iter_keys(self) -> AsyncIterator[str]:
        async for doc in (await self.collection()).find({}, {"_id": True}).batch_size(_BATCH):
            yield doc["_id"]

    async def iter_values(self) -> AsyncIterator[Value]:
        async for doc in (await self.collection()).find({}, {"_id": False, "value": True}).batch_size(100):
            yield decode_value(bytes(doc["value"]))

    async def size(self) -> int:
        return int(await (await self.collection()).count_documents({}))

    async def clear(self) -> None:
        await (await self.collection()).delete_many({})

    async def close(self) -> None:
        await self.clients.close()


class MongoDBBackend(CacheBackend):
    """Cache backend on MongoDB: database ``cache_name``, collections ``responses`` and
    ``redirects`` (see the module docstring for expiry and clients).

    Args:
        cache_name: Database name.
        connection: An existing client (async pymongo, motor, or sync pymongo).
        ttl: Let MongoDB delete each response ``ttl_offset`` after it expires.
        ttl_offset: Seconds (or timedelta) a response is kept after it expires, for
            revalidation and stale-if-error.
        **kwargs: Cache settings (expire_after, secret_key...) and ``AsyncMongoClient``
            options (host, port, username, password...).
    """

    def __init__(self, cache_name: str = "aiohttp-cache", connection: Any = None, ttl: bool = True,
                 ttl_offset: float | timedelta = 3600, **kwargs: Any) -> None:
        settings, client_options = CacheSettings.split(kwargs)
        super().__init__(cache_name, **settings)
        self.clients = MongoClients(connection, client_options)
        self.raw_responses: MongoDBCache = MongoDBCache(cache_name, "responses", self.clients, ttl=ttl,
                                                    ttl_offset=ttl_offset)
        self.raw_redirects: MongoDBCache = MongoDBCache(cache_name, "redirects", self.clients, ttl=False)


__all__ = ["MongoClients", "MongoDBBackend", "MongoDBCache"]
