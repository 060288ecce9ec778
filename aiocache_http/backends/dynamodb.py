"""DynamoDB storage (:class:`DynamoDBCache`) and backend (:class:`DynamoDBBackend`) on
aiobotocore.

One table (``cache_name``) with a composite primary key: ``namespace`` (hash key, e.g.
``http_cache:responses``) and ``key`` (range key), so many caches can share a table and
listing a cache is a Query, never a Scan. Each item holds ``value`` (Binary), ``expires``
(the HTTP expiry, epoch seconds; absent = never) and, with ``ttl=True``, ``ttl`` =
expires + ``ttl_offset`` (epoch seconds), the attribute DynamoDB's TTL deletes by.

Expiry: DynamoDB's TTL sweeper may take days to delete an item, so reads filter on the
same ``ttl`` attribute: an item past its ``ttl`` is never returned by read / contains /
keys / values / size, even while it still exists. An item that is merely stale (past
``expires`` but within ``ttl_offset``) is still returned, so it can be revalidated.

Item size: DynamoDB rejects items over 400 KB. A write whose item would exceed that
raises :class:`ItemTooLargeError` (a ``ValueError`` naming the key and sizes) before
anything is sent, after deleting the key's previous item so no outdated version is left
behind. Through :class:`CacheBackend` that is the usual fail-open path: a warning is
logged and the response is served uncached (``strict=True`` raises it). Use GridFS, S3 or
the filesystem backend for larger responses.

``create_table=True`` creates the table (on-demand capacity, ``PAY_PER_REQUEST``) if it
is missing, waits until it is active, and enables TTL on ``ttl`` if it is disabled, once
per backend on first use. Reads are strongly consistent (an overwrite is read back at
once). Clients belong to an event loop: one aiobotocore client per running loop.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import time
import weakref
from collections.abc import AsyncIterator, Iterable
from contextlib import AsyncExitStack
from datetime import datetime, timedelta, timezone
from typing import Any

from aiobotocore.session import get_session
from botocore.exceptions import ClientError

from ..policy.settings import CacheSettings
from .base import PEER_STORAGE_OPTIONS, BaseCache, CacheBackend, check_storage_options
from .values import Value, decode_value, encode_value

ITEM_LIMIT = 400 * 1024
_BATCH = 25  # BatchWriteItem's maximum
_NUMBER_SIZE = 21  # DynamoDB's upper bound for a number attribute
_NAMES = {"#ns": "namespace", "#k": "key", "#v": "value", "#e": "expires", "#t": "ttl"}


class ItemTooLargeError(ValueError):
    """The item would exceed DynamoDB's 400 KB limit."""

    def __init__(self, key: str, size: int) -> None:
        super().__init__(f"DynamoDB item for key {key!r} would be {size} bytes, over the {ITEM_LIMIT}-byte "
                         "item limit; not stored (use the GridFS or filesystem backend for large responses)")
        self.key, self.size = key, size

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.key, self.size)


def _epoch(moment: datetime) -> float:
    if moment.tzinfo is None:  # naive datetimes are UTC, as everywhere in the cache
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


class DynamoDBTable:
    """A table and its clients, one per running loop; creates the table on first use if
    asked. Shared by the storages of one backend."""

    def __init__(self, table_name: str, region_name: str | None = "us-east-1",
                 endpoint_url: str | None = None, create_table: bool = False, ttl: bool = True,
                 **client_kwargs: Any) -> None:
        self.name, self.create_table, self.ttl = table_name, create_table, ttl
        self.session = get_session()
        self.options = {"region_name": region_name, "endpoint_url": endpoint_url, **client_kwargs}
        # A misspelt option fails here, not at the first request.
        inspect.signature(self.session._create_client).bind("dynamodb", **self.options)
        self._ready = not create_table
        self._per_loop: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[Any, AsyncExitStack]] = weakref.WeakKeyDictionary()

    async def client(self) -> Any:
        """This loop's client, the table created if asked."""
        loop = asyncio.get_running_loop()
        entry = self._per_loop.get(loop)
        if entry is None:
            stack = AsyncExitStack()
            client = await stack.enter_async_context(self.session.create_client("dynamodb", **self.options))
            entry = self._per_loop.get(loop)
            if entry is None:
                entry = self._per_loop[loop] = (client, stack)
            else:  # another task of this loop opened one meanwhile
                await stack.aclose()
        if not self._ready:
            await self._create(entry[0])
            self._ready = True
        return entry[0]

    async def _create(self, client: Any) -> None:
        """Create the table and enable TTL, each only if needed (idempotent)."""
        try:
            await client.create_table(
                TableName=self.name, BillingMode="PAY_PER_REQUEST",
                KeySchema=[{"AttributeName": "namespace", "KeyType": "HASH"},
                           {"AttributeName": "key", "KeyType": "RANGE"}],
                AttributeDefinitions=[{"AttributeName": "namespace", "AttributeType": "S"},
                                      {"AttributeName": "key", "AttributeType": "S"}])
        except ClientError as e:
            if e.response["Error"]["Code"] != "ResourceInUseException":  # exists (or being created)
                raise
        delay, deadline = 0.05, time.monotonic() + 300
        while (await client.describe_table(TableName=self.name))["Table"]["TableStatus"] != "ACTIVE":
            if time.monotonic() > deadline:
                raise TimeoutError(f"DynamoDB table {self.name!r} did not become active")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2)
        if self.ttl:
            described = await client.describe_time_to_live(TableName=self.name)
            if described["TimeToLiveDescription"]["TimeToLiveStatus"] in ("DISABLED", "DISABLING"):
                await client.update_time_to_live(
                    TableName=self.name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"})

    async def close(self) -> None:
        """Close our clients; one of another, still running loop is closed there."""
        entries, self._per_loop = dict(self._per_loop), weakref.WeakKeyDictionary()
        current = asyncio.get_running_loop()
        for loop, (_client, stack) in entries.items():
            if loop is current:
                await stack.aclose()
            elif loop.is_running():
                asyncio.run_coroutine_threadsafe(stack.aclose(), loop)


class DynamoDBCache(BaseCache):
    """Items of one namespace of a DynamoDB table as key -> bytes storage.

    Args:
        table_name: The table.
        namespace: Hash key value of this storage's items.
        region_name: AWS region.
        endpoint_url: Another endpoint (DynamoDB Local, moto, LocalStack...).
        create_table: Create the table and enable TTL on first use, if needed.
        ttl: Write the ``ttl`` attribute (expires + ``ttl_offset``) and hide items past it.
        ttl_offset: Seconds (or a timedelta) an item is kept after its HTTP expiry.
        table: A :class:`DynamoDBTable` to share (then the options above except
            ``namespace``, ``ttl`` and ``ttl_offset`` are its own).
        **client_kwargs: aiobotocore client options (aws_access_key_id, config...).
    """

    def __init__(self, table_name: str, namespace: str = "http_cache", region_name: str | None = "us-east-1",
                 endpoint_url: str | None = None, create_table: bool = False, ttl: bool = True, *,
                 ttl_offset: float | timedelta = 3600, table: DynamoDBTable | None = None,
                 **client_kwargs: Any) -> None:
        create_table = _peer_options(client_kwargs, create_table)
        check_storage_options("DynamoDBCache", {k: client_kwargs.pop(k) for k in list(client_kwargs)
                                                if k in PEER_STORAGE_OPTIONS})
        self.table = table or DynamoDBTable(table_name, region_name, endpoint_url, create_table, ttl,
                                            **client_kwargs)
        self.namespace, self.ttl = namespace, ttl
        self.ttl_offset = ttl_offset.total_seconds() if isinstance(ttl_offset, timedelta) else ttl_offset
        self._pk = {"namespace": {"S": namespace}}
        # Reads in flight, shared by concurrent readers of one key (a hot key's herd of
        # hits costs one GetItem); a write or delete makes later reads start afresh.
        self._reads: dict[tuple[asyncio.AbstractEventLoop, str], asyncio.Future[bytes | None]] = {}

    max_item_size = ITEM_LIMIT

    def __repr__(self) -> str:
        return f"DynamoDBCache({self.table.name!r}, {self.namespace!r})"

    def _key(self, key: str) -> dict[str, Any]:
        return {**self._pk, "key": {"S": key}}

    def _live(self, item: dict[str, Any]) -> bool:
        return not (self.ttl and "ttl" in item and float(item["ttl"]["N"]) <= time.time())

    async def read(self, key: str) -> Value | None:
        slot = (asyncio.get_running_loop(), key)
        pending = self._reads.get(slot)
        if pending is None:
            pending = self._reads[slot] = asyncio.ensure_future(self._get(key))
            pending.add_done_callback(lambda done: self._done(slot, done))
        data = await asyncio.shield(pending)
        return None if data is None else decode_value(data)

    def _done(self, slot: tuple[asyncio.AbstractEventLoop, str], done: asyncio.Future[bytes | None]) -> None:
        if self._reads.get(slot) is done:
            del self._reads[slot]
        if not done.cancelled():
            done.exception()  # retrieved: every waiter may have been cancelled

    def _forget(self, keys: Iterable[str] | None = None) -> None:
        """Later reads of ``keys`` (all if None) must not join a read that began earlier."""
        if keys is None:
            self._reads.clear()
            return
        forget = set(keys)
        for slot in [slot for slot in self._reads if slot[1] in forget]:
            del self._reads[slot]

    async def _get(self, key: str) -> bytes | None:
        client = await self.table.client()
        reply = await client.get_item(TableName=self.table.name, Key=self._key(key), ConsistentRead=True,
                                      ProjectionExpression="#v, #t",
                                      ExpressionAttributeNames=_pick("#v", "#t"))
        item = reply.get("Item")
        return bytes(item["value"]["B"]) if item and self._live(item) else None

    async def contains(self, key: str) -> bool:
        client = await self.table.client()
        reply = await client.get_item(TableName=self.table.name, Key=self._key(key), ConsistentRead=True,
                                      ProjectionExpression="#k, #t",
                                      ExpressionAttributeNames=_pick("#k", "#t"))
        item = reply.get("Item")
        return bool(item) and self._live(item)

    async def write(self, key: str, value: Value, expires: datetime | None = None) -> None:
        data = encode_value(value)
        item: dict[str, Any] = {**self._key(key), "value": {"B": data}}
        if expires is not None:
            item["expires"] = {"N": repr(_epoch(expires))}
            if self.ttl:
                item["ttl"] = {"N": str(math.ceil(_epoch(expires) + self.ttl_offset))}
        size = (len(data) + len(self.namespace.encode()) + len(key.encode())
                + sum(len(name) for name in item) + _NUMBER_SIZE * (len(item) - 3))
        if size > ITEM_LIMIT:
            await self.delete(key)
            raise ItemTooLargeError(key, size)
        client = await self.table.client()
        await client.put_item(TableName=self.table.name, Item=item)
        self._forget([key])

    async def delete(self, key: str) -> None:
        client = await self.table.client()
        await client.delete_item(TableName=self.table.name, Key=self._key(key))
        self._forget([key])

    async def bulk_delete(self, keys: Iterable[str]) -> None:
        keys = list(dict.fromkeys(keys))  # BatchWriteItem rejects duplicate keys
        client = await self.table.client()
        for i in range(0, len(keys), _BATCH):
            requests = [{"DeleteRequest": {"Key": self._key(k)}} for k in keys[i:i + _BATCH]]
            delay = 0.05
            while requests:
                reply = await client.batch_write_item(RequestItems={self.table.name: requests})
                requests = reply.get("UnprocessedItems", {}).get(self.table.name, [])
                if requests:  # throttled: back off, then retry the rest
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 2)
        self._forget(keys)

    async def _query(self, projection: str, condition: str | None = None, now: float | None = None,
                     **extra: Any) -> AsyncIterator[dict[str, Any]]:
        """Pages of a Query over this namespace (``ConsistentRead``), filtered by ``condition``."""
        client = await self.table.client()
        values: dict[str, Any] = {":ns": {"S": self.namespace}}
        names = ["#ns", *(n for n in _NAMES if n in projection or (condition and n in condition))]
        args: dict[str, Any] = {"TableName": self.table.name, "KeyConditionExpression": "#ns = :ns",
                                "ConsistentRead": True, **extra}
        if projection:
            args["ProjectionExpression"] = projection
        if condition:
            args["FilterExpression"] = condition
            values[":now"] = {"N": repr(time.time() if now is None else now)}
        args["ExpressionAttributeNames"] = _pick(*names)
        args["ExpressionAttributeValues"] = values
        while True:
            page = await client.query(**args)
            yield page
            if "LastEvaluatedKey" not in page:
                return
            args["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _live_filter(self) -> str | None:
        return "attribute_not_exists(#t) OR #t > :now" if self.ttl else None

    async def iter_keys(self) -> AsyncIterator[str]:
        async for page in self._query("#k", self._live_filter()):
            for item in page["Items"]:
                yield item["key"]["S"]

    async def iter_values(self) -> AsyncIterator[Value]:
        async for page in self._query("#v", self._live_filter()):
            for item in page["Items"]:
                yield decode_value(bytes(item["value"]["B"]))

    async def size(self) -> int:
        return sum([page["Count"] async for page in self._query("", self._live_filter(), Select="COUNT")])

    async def delete_expired(self, now: datetime) -> int:
        """One Query (keys only) for items whose ``expires`` is past, then batch deletes."""
        keys = [item["key"]["S"] async for page in self._query("#k", "#e <= :now", _epoch(now))
                for item in page["Items"]]
        await self.bulk_delete(keys)
        return len(keys)

    async def clear(self) -> None:
        keys = [item["key"]["S"] async for page in self._query("#k") for item in page["Items"]]
        await self.bulk_delete(keys)
        self._forget()

    async def close(self) -> None:
        await self.table.close()


def _peer_options(options: dict[str, Any], create_table: bool) -> bool:
    """Take aiohttp-client-cache's options out of ``options``: ``create_if_not_exists``
    is ``create_table``; the item attribute names are fixed here (see the module
    docstring), so ``key_attr_name`` and ``val_attr_name`` have no effect."""
    options.pop("key_attr_name", None)
    options.pop("val_attr_name", None)
    return bool(options.pop("create_if_not_exists", create_table))


def _pick(*names: str) -> dict[str, str]:
    return {name: _NAMES[name] for name in names}


class DynamoDBBackend(CacheBackend):
    """Cache backend on DynamoDB: table ``cache_name``, responses under namespace
    ``<namespace>:responses`` and redirects under ``<namespace>:redirects`` (see the module
    docstring for the key schema, expiry and the 400 KB limit).

    Args:
        cache_name: Table name.
        namespace: Prefix of the hash key values, so caches can share a table.
        region_name: AWS region.
        endpoint_url: Another endpoint (DynamoDB Local, moto, LocalStack...).
        create_table: Create the table (PAY_PER_REQUEST) and enable TTL if needed.
        ttl: Write the ``ttl`` attribute (expires + ``ttl_offset``) for DynamoDB's TTL.
        ttl_offset: Seconds (or timedelta) a response is kept after it expires, for
            revalidation and stale-if-error.
        **kwargs: Cache settings (expire_after, secret_key...) and aiobotocore client
            options (aws_access_key_id, aws_secret_access_key, config...).
    """

    def __init__(self, cache_name: str = "aiohttp-cache", namespace: str = "http_cache",
                 region_name: str | None = "us-east-1", endpoint_url: str | None = None,
                 create_table: bool = False, ttl: bool = True, ttl_offset: float | timedelta = 3600,
                 **kwargs: Any) -> None:
        settings, client_kwargs = CacheSettings.split(kwargs)
        super().__init__(cache_name, **settings)
        create_table = _peer_options(client_kwargs, create_table)
        self.table = DynamoDBTable(cache_name, region_name, endpoint_url, create_table, ttl, **client_kwargs)
        self.raw_responses: DynamoDBCache = DynamoDBCache(cache_name, f"{namespace}:responses", ttl=ttl,
                                                      ttl_offset=ttl_offset, table=self.table)
        self.raw_redirects: DynamoDBCache = DynamoDBCache(cache_name, f"{namespace}:redirects", ttl=False,
                                                      table=self.table)


DynamoDbCache = DynamoDBCache  # aiohttp-client-cache's spelling

__all__ = ["DynamoDBBackend", "DynamoDBCache", "DynamoDBTable", "DynamoDbCache", "ItemTooLargeError"]
