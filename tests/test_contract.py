"""The storage contract every backend passes (parametrized over tests/backends.py)."""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta

from multidict import CIMultiDict
from yarl import URL

from aiocache_http import CacheBackend, utcnow
from aiocache_http.backends.base import BaseCache
from aiocache_http.backends.parts import INLINE_LIMIT, PART_SIZE
from aiocache_http.models import CachedRequest, CachedResponse


def response(url: str = "http://127.0.0.1/a", body: bytes = b"hello", **kw: object) -> CachedResponse:
    return CachedResponse(200, "OK", url, CIMultiDict({"Content-Type": "text/plain"}), body,
                          CachedRequest("GET", url), **kw)  # type: ignore[arg-type]


async def test_write_read_bytes_and_str(backend: CacheBackend) -> None:
    store = backend.raw_responses
    await store.write("k1", b"\x00\xffbinary")
    await store.write("k2", "text é")
    assert await store.read("k1") == b"\x00\xffbinary"
    assert await store.read("k2") == "text é"  # a value reads back as written (the peers' storages)
    assert await store.read("missing") is None


async def test_overwrite_and_delete(backend: CacheBackend) -> None:
    store = backend.raw_responses
    await store.write("k", b"1")
    await store.write("k", b"2")
    assert await store.read("k") == b"2"
    assert await store.size() == 1
    await store.delete("k")
    await store.delete("k")  # deleting a missing key is not an error
    assert await store.read("k") is None
    assert not await store.contains("k")


async def test_keys_values_size_both_styles(backend: CacheBackend) -> None:
    store = backend.raw_responses
    for i in range(25):
        await store.write(f"k{i}", f"v{i}")
    assert await store.size() == 25
    assert sorted(await store.keys()) == sorted(f"k{i}" for i in range(25))
    assert sorted([k async for k in store.keys()]) == sorted(f"k{i}" for i in range(25))
    assert sorted(await store.values()) == sorted(f"v{i}" for i in range(25))
    assert await store.contains("k3")


async def test_bulk_delete_and_clear(backend: CacheBackend) -> None:
    store = backend.raw_responses
    for i in range(10):
        await store.write(f"k{i}", b"x")
    await store.bulk_delete([f"k{i}" for i in range(5)] + ["never-written"])
    assert sorted(await store.keys()) == [f"k{i}" for i in range(5, 10)]
    await store.clear()
    assert await store.size() == 0
    assert await store.keys() == []


async def test_response_round_trip(backend: CacheBackend) -> None:
    original = response(body=b"\x00" * 10 + b"payload", expires=utcnow() + timedelta(hours=1))
    original.headers.add("Link", "</a>; rel=a")
    original.headers.add("Link", "</b>; rel=b")
    original.headers.add("Set-Cookie", "sid=secret")
    await backend.save_response(original, "key")
    loaded = await backend.get_record("key")
    assert loaded is not None
    assert loaded.body == original.body
    assert loaded.headers.getall("Link") == ["</a>; rel=a", "</b>; rel=b"]
    assert "Set-Cookie" not in loaded.headers  # never stored
    assert loaded.expires == original.expires
    assert loaded.cache_key == "key"
    assert loaded.request.url == original.request.url


async def test_redirect_alias(backend: CacheBackend) -> None:
    await backend.save_response(response(), "final")
    await backend.save_redirect("hop", "final")
    loaded = await backend.get_record("hop")
    assert loaded is not None and loaded.cache_key == "final"


async def test_delete_by_url_and_expired(backend: CacheBackend) -> None:
    url = "http://127.0.0.1/x"
    key = backend.create_key(CachedRequest("GET", url))
    await backend.save_response(response(url), key)
    await backend.save_response(response(expires=utcnow() - timedelta(seconds=1)), "old")
    await backend.save_response(response(expires=utcnow() + timedelta(hours=1)), "new")
    await backend.delete(expired=True)
    assert await backend.get_record("old") is None
    assert await backend.get_record("new") is not None
    await backend.delete(urls=[url])
    assert await backend.get_record(key) is None
    await backend.delete("new")
    assert await backend.raw_responses.size() == 0


async def test_corrupt_item_is_a_miss_and_deleted(backend: CacheBackend) -> None:
    await backend.raw_responses.write("bad", b"ACH\x01garbage")
    assert await backend.get_record("bad") is None
    assert not await backend.raw_responses.contains("bad")


async def test_concurrent_writers(backend: CacheBackend) -> None:
    async def write(i: int) -> None:
        await backend.save_response(response(body=str(i).encode()), f"k{i}")

    await asyncio.gather(*(write(i) for i in range(50)))
    for i in range(50):
        loaded = await backend.get_record(f"k{i}")
        assert loaded is not None and loaded.body == str(i).encode()


async def test_concurrent_lookups_of_one_key(backend: CacheBackend) -> None:
    """Lookups of one key at the same time (which may share one storage read) each get
    the stored response; a large one each its own body reader."""
    await backend.save_response(response(body=b"small"), "hot")
    found = await asyncio.gather(*(backend.get_record("hot") for _ in range(20)))
    assert [r.body if r is not None else None for r in found] == [b"small"] * 20
    large = os.urandom(3 * PART_SIZE + 11)
    limit = backend.raw_responses.max_item_size
    if limit is None or len(large) + 1000 <= limit:
        await backend.save_response(response(body=large), "big")
        streamed = await asyncio.gather(*(backend.get_record("big", stream=True) for _ in range(5)))
        bodies = []
        for r in streamed:
            assert r is not None
            if r.stored_body is None:
                bodies.append(r.body)
            else:
                bodies.append(await r.stored_body.read())
                await r.stored_body.close()
        assert bodies == [large] * 5
    assert await backend.get_record("absent") is None
    assert not backend._reads  # nothing left behind


# -- items written and read in parts (backends/parts.py) ------------------------------------
def sizes_for(store: BaseCache) -> list[int]:
    """Empty, small, just over the inline limit, several parts: what the storage takes."""
    limit = store.max_item_size
    sizes = [0, 100, INLINE_LIMIT + 1, 3 * PART_SIZE + INLINE_LIMIT + 7]
    return [s for s in sizes if limit is None or s + 100 <= limit]


async def write_in_parts(store: BaseCache, key: str, head: bytes, body: bytes) -> None:
    writer = await store.open_write(key, None, len(head))
    for start in range(0, len(body), 100_000):
        await writer.write(body[start : start + 100_000])
    await writer.commit(head)


async def test_write_and_read_in_parts(backend: CacheBackend) -> None:
    store = backend.raw_responses
    for size in sizes_for(store):
        head, body = b"head:%d|" % size, os.urandom(size)
        writer = await store.open_write("k", None, len(head))
        await writer.write(body)
        assert await store.read("k") is None, size  # nothing visible before the commit
        await writer.commit(head)
        assert await store.read("k") == head + body, size
        reader = await store.open_read("k")
        assert reader is not None and reader.size == len(head) + size
        assert b"".join([part async for part in reader.parts()]) == head + body
        assert b"".join([part async for part in reader.parts(len(head) + 5)]) == body[5:]
        assert b"".join([part async for part in reader.parts(2)]) == (head + body)[2:]  # again
        await reader.close()
        await store.delete("k")
        assert await store.read("k") is None and await store.open_read("k") is None


async def test_aborted_write_leaves_the_previous_item(backend: CacheBackend) -> None:
    store = backend.raw_responses
    for size in sizes_for(store):
        await store.write("k", b"old")
        writer = await store.open_write("k", None, 4)
        await writer.write(os.urandom(size))
        await writer.abort()
        await writer.abort()  # twice is fine
        assert await store.read("k") == b"old", size
    assert await store.size() == 1


async def test_large_items_replaced_deleted_cleared_expired(backend: CacheBackend) -> None:
    store = backend.raw_responses
    size = sizes_for(store)[-1]
    first, second = os.urandom(size), os.urandom(size)
    await write_in_parts(store, "k", b"h1", first)
    reader = await store.open_read("k")
    await write_in_parts(store, "k", b"h2", second)  # replaces it while a reader is open
    assert await store.read("k") == b"h2" + second
    assert await store.size() == 1 and await store.keys() == ["k"]
    assert reader is not None
    try:  # an open reader reads the item it opened, or fails: never a mix of two
        assert b"".join([part async for part in reader.parts()]) == b"h1" + first
    except Exception as e:
        assert not isinstance(e, AssertionError)
    await store.delete("k")
    assert await store.read("k") is None
    await write_in_parts(store, "k", b"h", first)
    await store.clear()
    assert await store.read("k") is None and await store.size() == 0
    past = utcnow() - timedelta(seconds=1)
    writer = await store.open_write("old", past, 1)
    await writer.write(first)
    await writer.commit(b"h")
    if await store.delete_expired(utcnow()) is not None:  # the storage records expiry
        assert await store.read("old") is None


async def test_large_response_round_trip(backend: CacheBackend) -> None:
    """The backend writes a large body in parts, and reads it back (whole, or left in
    storage) verified."""
    size = sizes_for(backend.raw_responses)[-1]
    original = response(body=os.urandom(size), expires=utcnow() + timedelta(hours=1))
    await backend.save_response(original, "key")
    loaded = await backend.get_record("key")
    assert loaded is not None and loaded.body == original.body and loaded.stored_body is None
    streamed = await backend.get_record("key", stream=True)
    assert streamed is not None
    if streamed.stored_body is not None:
        assert streamed.body == b""
        assert await streamed.stored_body.read() == original.body
        assert b"".join([c async for c in streamed.stored_body.chunks()]) == original.body
        await streamed.stored_body.close()
    else:
        assert streamed.body == original.body


async def test_get_response_reads_like_aiohttp_client_cache(backend: CacheBackend) -> None:
    """aiohttp-client-cache's ``get_response`` gives a response, not a storage record:
    ``status``, ``headers``, ``url`` (a URL), ``is_expired`` and awaited ``read()`` /
    ``text()`` / ``json()``, also through a redirect alias and for a body left in storage."""
    url = "http://127.0.0.1/api?q=1"
    body = b'{"answer": 42, "name": "caf\xc3\xa9"}'
    stored = CachedResponse(200, "OK", url, CIMultiDict({"Content-Type": "application/json"}),
                            body, CachedRequest("GET", url), expires=utcnow() + timedelta(hours=1))
    await backend.save_response(stored, "json")
    await backend.save_redirect("alias", "json")
    for key in ("json", "alias"):
        resp = await backend.get_response(key)
        assert resp is not None
        assert resp.status == 200 and resp.headers["Content-Type"] == "application/json"
        assert resp.url == URL(url) and resp.url.query["q"] == "1"
        assert resp.is_expired is False
        assert await resp.read() == body
        assert await resp.text() == body.decode()
        assert await resp.json() == {"answer": 42, "name": "café"}
    large = os.urandom(sizes_for(backend.raw_responses)[-1])
    await backend.save_response(response(body=large), "big")
    streamed = await backend.get_response("big", stream=True)
    assert streamed is not None
    async with streamed:
        assert await streamed.read() == large
    expired = response(expires=utcnow() - timedelta(seconds=1))
    await backend.save_response(expired, "old")
    old = await backend.get_response("old")
    assert old is None or old.is_expired  # a backend that records expiry may drop it


async def test_items_read_many_bulk_write(backend: CacheBackend) -> None:
    """The whole-storage calls tools use (CLI, migrate): every pair, in order, expiry kept."""
    store = backend.raw_responses
    # 700 crosses the page and batch sizes (500) of the storages that read and write in
    # batches; one that writes item by item (BaseCache's way: a round trip each, on moto or
    # mongomock 2 minutes for 700 under load) shows the same with 80 (DynamoDB's deletes
    # go 25 a batch: 40 expire)
    n = 700 if type(store).bulk_write is not BaseCache.bulk_write else 80
    soon, later = utcnow() + timedelta(hours=1), utcnow() + timedelta(days=1)
    items = [(f"k{i}", f"v{i}".encode(), soon if i % 2 else later) for i in range(n)]
    await store.bulk_write(items)
    await store.bulk_write([("k0", b"again", None)])  # overwrites, never expires
    assert sorted([pair async for pair in store.iter_items()]) == sorted(
        [("k0", b"again")] + [(k, v) for k, v, _e in items[1:]])
    middle = range(n // 7, n - n // 14)  # 100-649 of 700
    wanted = ["k5", "missing", "k0", *(f"k{i}" for i in middle)]
    assert await store.read_many(wanted) == [b"v5", None, b"again", *(f"v{i}".encode() for i in middle)]
    if await store.delete_expired(utcnow() + timedelta(hours=2)) is not None:
        assert sorted(await store.keys()) == sorted(["k0", *(f"k{i}" for i in range(2, n, 2))])
