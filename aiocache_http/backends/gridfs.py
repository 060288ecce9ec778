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

Large items (over :data:`.parts.INLINE_LIMIT`) are written through an upload stream as
the body arrives (the new version is complete before older ones are deleted; an aborted
upload deletes its chunks) and read back through a download stream of one file id, so
a later write does not change what an open reader reads. Their head, known last, is in
the files document (``head``): the item is that head followed by the file's content.
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
from .parts import INLINE_LIMIT, PART_SIZE, ItemReader, SpillingWriter, WholeReader
from .values import Value, decode_value, encode_value

_NEWEST_FIRST = [("uploadDate", -1), ("_id", -1)]
_ITEM_FIELDS = {"_id": True, "length": True, "head": True}


class _GridWriter(SpillingWriter):
    """Spills a large item into a GridFS upload stream (see the module docstring)."""

    storage: GridFSCache

    def __init__(self, storage: GridFSCache, key: str, expires: datetime | None, head_size: int) -> None:
        super().__init__(storage, key, expires, head_size)
        self._upload: Any = None

    async def _spill(self, part: bytes) -> None:
        if self._upload is None:
            self._upload = self.storage._bucket().open_upload_stream(
                self.key, metadata=self.storage._metadata(self.expires))
        await self._upload.write(part)

    async def _publish(self, head: bytes) -> None:
        await self._upload.set("head", head)  # written with the files document on close
        await self._upload.close()
        await self.storage._keep_newest(self.key)

    async def _discard(self) -> None:
        if self._upload is not None:
            await self._upload.abort()


class _GridReader(ItemReader):
    """A large item: its head, then one GridFS file id read through a download stream."""

    def __init__(self, storage: GridFSCache, file_id: Any, head: bytes, length: int) -> None:
        self.storage, self.file_id, self.head = storage, file_id, head
        self.size = len(head) + length

    async def parts(self, start: int = 0) -> AsyncIterator[bytes]:
        if start < len(self.head):
            yield self.head[start:]
        try:
            stream = await self.storage._bucket().open_download_stream(self.file_id)
        except NoFile as e:
            raise LookupError("the item was replaced or deleted meanwhile") from e
        skip = max(0, start - len(self.head))
        while True:
            part: bytes = await stream.read(PART_SIZE)
            if not part:
                return
            if skip:
                part, skip = part[skip:], max(0, skip - len(part))
                if not part:
                    continue
            yield part


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
        doc = await self._files().find_one({"filename": key}, _ITEM_FIELDS, sort=_NEWEST_FIRST)
        if doc is None:
            return None
        content = await self._download(doc["_id"])
        if content is None:
            return None
        head = doc.get("head")  # an item written in parts: raw bytes, head first
        return decode_value(content) if head is None else bytes(head) + content

    async def _download(self, file_id: Any) -> bytes | None:
        try:
            stream = await self._bucket().open_download_stream(file_id)
            data: bytes = await stream.read()
        except (NoFile, CorruptGridFile):  # replaced or deleted while we read it
            return None
        return data

    async def contains(self, key: str) -> bool:
        return await self._files().find_one({"filename": key}, {"_id": True}) is not None

    @staticmethod
    def _metadata(expires: datetime | None) -> dict[str, Any]:
        return {"expires": None if expires is None else utc_naive(expires)}

    async def write(self, key: str, value: Value, expires: datetime | None = None) -> None:
        await self._bucket().upload_from_stream(key, encode_value(value), metadata=self._metadata(expires))
        await self._keep_newest(key)

    async def _keep_newest(self, key: str) -> None:
        """Delete older versions: concurrent writers of one key all agree on the newest."""
        old = [doc["_id"] async for doc in self._files().find({"filename": key}, {"_id": True},
                                                             sort=_NEWEST_FIRST).skip(1)]
        await self._delete_ids(old)

    async def open_write(self, key: str, expires: datetime | None = None, head_size: int = 0) -> _GridWriter:
        return _GridWriter(self, key, expires, head_size)

    async def open_read(self, key: str) -> ItemReader | None:
        doc = await self._files().find_one({"filename": key}, _ITEM_FIELDS, sort=_NEWEST_FIRST)
        if doc is None:
            return None
        head = doc.get("head")
        if doc["length"] > INLINE_LIMIT:
            return _GridReader(self, doc["_id"], bytes(head or b""), doc["length"])
        data = await self._download(doc["_id"])
        if data is None:
            return None
        return WholeReader(decode_value(data) if head is None else bytes(head) + data)

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
