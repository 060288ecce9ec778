"""GridFS storage (:class:`GridFSCache`) and backend (:class:`GridFSBackend`), for
responses larger than MongoDB's 16 MB document limit.

One GridFS file per key: ``filename`` = key, ``metadata.expires`` = the HTTP expiry. A
write uploads a new file and then deletes every older version of that filename (files
and chunks), so replacing leaves no orphan chunks; a reader always takes the newest
version, and a version deleted under a reader is a miss. There is no TTL index: MongoDB
would delete the ``files`` documents and leave their chunks behind, so expired entries go
by ``delete(expired=True)`` (:meth:`GridFSCache.delete_expired`).

The bucket is pymongo's ``AsyncGridFSBucket`` for a pymongo client, motor's
``AsyncIOMotorGridFSBucket`` for a motor client. Listing reads the bucket's ``.files``
collection directly (the GridFS spec's layout), never the chunks. Redirects are a plain
:class:`MongoDBCache` collection in the same database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from datetime import datetime
from typing import Any

from gridfs import AsyncGridFSBucket
from gridfs.errors import CorruptGridFile, NoFile
from pymongo.asynchronous.database import AsyncDatabase

from ..policy.settings import CacheSettings
from .base import BaseCache, CacheBackend
from .mongodb import MongoClients, MongoDBCache, utc_naive
from .values import Value, decode_value, encode_value

_NEWEST_FIRST = [("uploadDate", -1), ("_id", -1)]


class GridFSCache(BaseCache):
    """A GridFS bucket as key -> bytes storage.

    Args:
        db_name: Database name.
        connection: An existing client (see :mod:`.mongodb`), or a :class:`MongoClients`.
        bucket_name: GridFS bucket (collections ``<bucket>.files`` and ``<bucket>.chunks``).
        **kwargs: ``AsyncMongoClient`` options (host, port, username, password...).
    """

    def __init__(self, db_name: str, connection: Any = None, *, bucket_name: str = "fs",
                 **kwargs: Any) -> None:
        self.db_name, self.bucket_name = db_name, bucket_name
        self.clients = (connection if isinstance(connection, MongoClients)
                        else MongoClients(connection, kwargs))

    def __repr__(self) -> str:
        return f"GridFSCache({self.db_name!r}, bucket_name={self.bucket_name!r})"

    def _db(self) -> Any:
        return self.clients.get()[self.db_name]

    def _bucket(self) -> Any:
        """This loop's bucket (cheap to build: it only names two collections)."""
        db = self._db()
        if isinstance(db, AsyncDatabase):
            return AsyncGridFSBucket(db, self.bucket_name)
        from motor.motor_asyncio import AsyncIOMotorGridFSBucket  # a motor client was passed in

        return AsyncIOMotorGridFSBucket(db, self.bucket_name)

    def _files(self) -> Any:
        return self._db()[f"{self.bucket_name}.files"]

    async def read(self, key: str) -> Value | None:
        doc = await self._files().find_one({"filename": key}, {"_id": True}, sort=_NEWEST_FIRST)
        if doc is None:
            return None
        try:
            stream = await self._bucket().open_download_stream(doc["_id"])
            data: bytes = await stream.read()
        except (NoFile, CorruptGridFile):  # replaced or deleted while we read it
            return None
        return decode_value(data)

    async def contains(self, key: str) -> bool:
        return await self._files().find_one({"filename": key}, {"_id": True}) is not None

    async def write(self, key: str, value: Value, expires: datetime | None = None) -> None:
        metadata = {"expires": None if expires is None else utc_naive(expires)}
        await self._bucket().upload_from_stream(key, encode_value(value), metadata=metadata)
        # Keep only the newest version: concurrent writers of one key all agree on it.
        old = [doc["_id"] async for doc in self._files().find({"filename": key}, {"_id": True},
                                                             sort=_NEWEST_FIRST).skip(1)]
        await self._delete_ids(old)

    async def _delete_ids(self, ids: Iterable[Any]) -> int:
        bucket, deleted = self._bucket(), 0
        for file_id in ids:
            try:
                await bucket.delete(file_id)  # the files document and its chunks
                deleted += 1
            except NoFile:  # deleted concurrently
                continue
        return deleted

    async def _delete_where(self, query: dict[str, Any]) -> int:
        return await self._delete_ids([doc["_id"] async for doc in self._files().find(query, {"_id": True})])

    async def delete(self, key: str) -> None:
        await self._delete_where({"filename": key})

    async def bulk_delete(self, keys: Iterable[str]) -> None:
        keys = list(keys)
        for i in range(0, len(keys), 1000):
            await self._delete_where({"filename": {"$in": keys[i:i + 1000]}})

    async def delete_expired(self, now: datetime) -> int:
        return await self._delete_where({"metadata.expires": {"$lte": utc_naive(now)}})

    async def iter_keys(self) -> AsyncIterator[str]:
        seen: set[str] = set()  # a key has two versions only for a moment during a write
        async for doc in self._files().find({}, {"filename": True, "_id": False}).batch_size(1000):
            if doc["filename"] not in seen:
                seen.add(doc["filename"])
                yield doc["filename"]

    async def size(self) -> int:
        return len(await self._files().distinct("filename"))

    async def clear(self) -> None:
        db = self._db()
        await db[f"{self.bucket_name}.files"].delete_many({})  # files first: no half-visible file
        await db[f"{self.bucket_name}.chunks"].delete_many({})

    async def close(self) -> None:
        await self.clients.close()


class GridFSBackend(CacheBackend):
    """Cache backend on GridFS: responses in the ``fs`` bucket of database ``cache_name``,
    redirects in its ``redirects`` collection.

    Args:
        cache_name: Database name.
        connection: An existing client (async pymongo, motor, or sync pymongo).
        **kwargs: Cache settings (expire_after, secret_key...) and ``AsyncMongoClient``
            options (host, port, username, password...).
    """

    def __init__(self, cache_name: str = "aiohttp-cache", connection: Any = None, **kwargs: Any) -> None:
        settings, client_options = CacheSettings.split(kwargs)
        super().__init__(cache_name, **settings)
        self.clients = MongoClients(connection, client_options)
        self.raw_responses: GridFSCache = GridFSCache(cache_name, self.clients)
        self.raw_redirects: MongoDBCache = MongoDBCache(cache_name, "redirects", self.clients, ttl=False)


__all__ = ["GridFSBackend", "GridFSCache"]
