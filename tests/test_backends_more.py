"""Backend-specific behaviour of the MongoDB, GridFS, DynamoDB and filesystem backends
(the shared contract and end-to-end suites cover the rest; see tests/backends.py)."""

from __future__ import annotations

import asyncio
import builtins
import hashlib
import logging
import math
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from multidict import CIMultiDict

from aiocache_http import CacheBackend, init_backend, utcnow
from aiocache_http.backends.dynamodb import ITEM_LIMIT, DynamoDBBackend, DynamoDBCache, ItemTooLargeError
from aiocache_http.backends.filesystem import NEVER, FileBackend, FileCache, filename
from aiocache_http.backends.gridfs import GridFSBackend
from aiocache_http.backends.lru import INDEX_FILE, LRUIndex
from aiocache_http.backends.mongodb import TTL_INDEX, MongoDBBackend
from aiocache_http.models import CachedRequest, CachedResponse

from .aws_servers import MotoServer
from .mongo_fakes import AsyncMongoMockClient, enabled_gridfs_integration

ROOT = Path(__file__).resolve().parent.parent


def response(body: bytes = b"hello", expires: datetime | None = None,
             url: str = "http://127.0.0.1/a") -> CachedResponse:
    return CachedResponse(200, "OK", url, CIMultiDict({"Content-Type": "text/plain"}), body,
                          CachedRequest("GET", url), expires=expires)


# -- filesystem ----------------------------------------------------------------------

_WRITER = textwrap.dedent("""
    import asyncio, hashlib, os, sys
    from multidict import CIMultiDict
    from aiocache_http.models import CachedRequest, CachedResponse
    from aiocache_http.backends.filesystem import FileBackend

    def body(n):
        payload = os.urandom(64) * (n // 64)
        return hashlib.sha256(payload).digest() + payload

    async def main():
        backend = FileBackend(sys.argv[1])
        i = 0
        while True:
            url = f"http://127.0.0.1/k{i % 6}"
            size = (1 + i % 4) << 20
            r = CachedResponse(200, "OK", url, CIMultiDict(), body(size), CachedRequest("GET", url))
            await backend.save_response(r, f"k{i % 6}")
            await backend.raw_responses.write(f"raw{i % 3}", body((1 + i % 3) << 20))
            if i == 2:
                print("writing", flush=True)
            i += 1

    asyncio.run(main())
""")


def _self_checked(data: bytes) -> bool:
    return len(data) > 32 and hashlib.sha256(data[32:]).digest() == data[:32]


async def _check_complete(cache_dir: Path) -> None:
    """Every entry present reads back whole."""
    backend = FileBackend(cache_dir, strict=True)
    keys = sorted(await backend.raw_responses.keys())
    assert set(keys) <= {"k0", "k1", "k2", "k3", "k4", "k5", "raw0", "raw1", "raw2"}
    assert len(keys) >= 3 and await backend.raw_responses.size() == len(keys)
    for key in keys:
        if key.startswith("raw"):
            data = await backend.raw_responses.read(key)
            assert data is not None and _self_checked(data), key
        else:
            loaded = await backend.get_record(key)  # a torn envelope would be a miss
            assert loaded is not None and _self_checked(loaded.body), key
            assert loaded.url == f"http://127.0.0.1/{key}"


def test_filesystem_sigkill_mid_write_leaves_no_torn_entry(tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    leftovers = 0
    for delay in (0.05, 0.13, 0.29):
        proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(cache_dir)], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"writing\n", proc.stderr.read() if proc.stderr else b""
        time.sleep(delay)
        deadline = time.monotonic() + 10
        while not any(p.name.startswith(".tmp-") for p in cache_dir.iterdir()):  # aim for mid-write
            assert time.monotonic() < deadline, "the writer never wrote"
            time.sleep(0.0005)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
        proc.stdout.close()
        if proc.stderr:
            proc.stderr.close()
        leftovers += sum(1 for p in cache_dir.iterdir() if p.name.startswith(".tmp-"))
        asyncio.run(_check_complete(cache_dir))
    # Killed mid-write at least once: a temp file was left behind, and it was never an entry.
    assert leftovers >= 1
    asyncio.run(FileBackend(cache_dir).clear())  # clear() also removes the leftovers
    assert not [p.name for p in cache_dir.iterdir() if not p.name.startswith("redirects.sqlite")]


@pytest.mark.parametrize("key", ["../escape", "/etc/passwd", "a/b\\c", "..", ".", "", "x\x00y", "UPPER",
                                 "redirects", "con", "é" * 10, "k" * 600, "trailing."])
async def test_filesystem_any_key_stays_inside_and_round_trips(tmp_path: Path, key: str) -> None:
    store = FileCache(tmp_path / "c")
    await store.write(key, b"v:" + key.encode("utf-8", "surrogatepass"))
    assert await store.read(key) == b"v:" + key.encode("utf-8", "surrogatepass")
    assert await store.keys() == [key]
    assert await store.contains(key)
    assert store.path(key).parent == tmp_path / "c"
    tree = _tree(tmp_path)
    assert f"c/{filename(key)}" in tree
    assert all(name == "c" or (name.startswith("c/") and name.count("/") == 1) for name in tree)
    await store.delete(key)
    assert await store.keys() == [] and _tree(tmp_path) == ["c"]


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


async def test_filesystem_names_are_plain_for_digests_and_distinct_otherwise(tmp_path: Path) -> None:
    digest = hashlib.sha256(b"x").hexdigest()
    assert filename(digest) == digest + ".ach"
    names = {filename(k) for k in ["abc", "ABC", "Abc", "a/bc", "redirects", "~abc"]}
    assert len(names) == 6  # no two keys share a file, even on a case-insensitive filesystem


async def test_filesystem_keys_and_size_do_not_read_bodies(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    store = FileCache(tmp_path / "c")
    for i in range(5):
        await store.write(f"k{i}", b"x" * 1000)
    opened: list[str] = []
    real_open = builtins.open

    def spy(file: Any, *args: Any, **kwargs: Any) -> Any:
        opened.append(str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", spy)
    assert sorted(await store.keys()) == [f"k{i}" for i in range(5)]
    assert await store.size() == 5
    assert await store.delete_expired(utcnow()) == 0
    assert not [p for p in opened if p.startswith(str(tmp_path))]


async def test_filesystem_expiry_is_the_mtime_and_delete_expired_uses_it(tmp_path: Path) -> None:
    backend = FileBackend(tmp_path / "c")
    now = utcnow()
    await backend.save_response(response(expires=now - timedelta(minutes=1)), "old")
    await backend.save_response(response(expires=now + timedelta(hours=1)), "new")
    await backend.save_response(response(), "never")
    new_mtime = os.stat(backend.raw_responses.path("new")).st_mtime
    assert new_mtime == pytest.approx((now + timedelta(hours=1)).timestamp())
    assert os.stat(backend.raw_responses.path("never")).st_mtime == NEVER
    assert await backend.raw_responses.delete_expired(utcnow()) == 1
    assert sorted(await backend.raw_responses.keys()) == ["never", "new"]


async def test_filesystem_redirects_persist_on_disk(tmp_path: Path) -> None:
    first = FileBackend(tmp_path / "c")
    await first.save_response(response(), "final")
    await first.save_redirect("hop", "final")
    # the redirects live in <cache_dir>/redirects.sqlite, as aiohttp-client-cache keeps them
    assert (tmp_path / "c" / "redirects.sqlite").is_file()
    data = await first.raw_redirects.read("hop")
    assert isinstance(data, bytes) and first.serializer.loads_redirect("hop", data) == "final"
    assert await first.raw_responses.keys() == ["final"]  # the subdirectory is not an entry
    second = FileBackend(tmp_path / "c")  # e.g. another process
    loaded = await second.get_record("hop")
    assert loaded is not None and loaded.cache_key == "final"


def test_filesystem_bad_directory_fails_at_construction(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(OSError, match="file"):
        FileBackend(tmp_path / "file")
    with pytest.raises(ValueError, match="mutually exclusive"):
        FileBackend("x", use_cache_dir=True, use_temp=True)
    with pytest.raises(TypeError, match="expire_afer"):
        FileBackend(tmp_path / "c", expire_afer=3)


def test_filesystem_cache_dir_and_temp_locations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    assert FileBackend("mine", use_cache_dir=True).cache_dir == tmp_path / "xdg" / "mine"
    assert FileBackend("mine", use_temp=True).cache_dir == tmp_path / "tmp" / "mine"
    assert FileBackend(tmp_path / "abs", use_temp=True).cache_dir == tmp_path / "abs"
    assert FileCache("store", use_temp=True).directory == tmp_path / "tmp" / "store"


def _instructions(index: LRUIndex, call: Any) -> int:
    """SQLite VM instructions ``call`` runs on the index: deterministic, unlike time."""
    count = 0

    def tick() -> int:
        nonlocal count
        count += 1
        return 0

    db = index._db()
    db.set_progress_handler(tick, 1)
    try:
        call()
    finally:
        db.set_progress_handler(None, 1)
    return count


def test_filesystem_lru_write_cost_does_not_grow_with_entries(tmp_path: Path) -> None:
    """A write to a size-bounded FileCache with 20,000 indexed entries costs what it
    costs with 200: the total is kept, not summed, and eviction reads only the oldest."""
    costs = []
    for entries in (200, 20_000):
        (tmp_path / str(entries)).mkdir()
        index = LRUIndex(tmp_path / str(entries), max_cache_bytes=entries * 100)
        db = index._db()
        db.execute("BEGIN")
        db.executemany("INSERT INTO lru (key, size, used) VALUES (?, 100, ?)",
                       ((f"k{i}", i) for i in range(entries)))
        db.execute("COMMIT")
        assert index.total_bytes() == entries * 100
        write = _instructions(index, lambda index=index: (index.make_room("new", 300),
                                                           index.record("new", 300)))
        assert index.total_bytes() == entries * 100  # three oldest evicted for the 300 bytes
        assert _instructions(index, lambda index=index: index.make_room("k5", 100)) > 0
        costs.append(write)
        index.close()
    assert costs[1] < costs[0] * 3, costs  # a scan would be ~100x


def test_filesystem_lru_total_stays_exact(tmp_path: Path) -> None:
    index = LRUIndex(tmp_path, max_cache_bytes=10_000, block_bytes=10)
    index.record("a", 95)
    index.record("b", 10)
    index.record("a", 5)  # replaced: its old size leaves the total
    index.touch("b")
    assert index.total_bytes() == 20
    assert index.make_room("c", 9_985) == ["a"]  # the least recently used goes first
    assert index.total_bytes() == 10
    index.forget(["b"])
    index.record("d", 1)
    while index.forget_some(batch=1):
        pass
    assert index.total_bytes() == 0
    index.close()


async def test_filesystem_sync_index_records_existing_files_in_one_transaction(tmp_path: Path) -> None:
    """``sync_index=True`` indexes the files already in the directory, with their sizes,
    in one commit (one per file made opening a big directory take minutes)."""
    plain = FileCache(tmp_path)
    for i in range(300):
        await plain.write(f"k{i}", b"x" * (i + 1))
    cache = FileCache(tmp_path, max_cache_bytes=10**9, sync_index=True)
    assert cache.lru is not None
    assert cache.lru.total_bytes() == sum(range(1, 301))
    cache.lru.close()
    header = (tmp_path / INDEX_FILE).read_bytes()[:28]
    commits = int.from_bytes(header[24:28], "big")  # the header's file change counter
    assert commits < 20, commits  # creating the schema, then one for the 300 files


def test_filesystem_lru_index_without_total_gets_it(tmp_path: Path) -> None:
    """An index written before the running total existed (or by another version)."""
    import sqlite3

    conn = sqlite3.connect(tmp_path / INDEX_FILE)
    conn.execute("CREATE TABLE lru (key TEXT PRIMARY KEY, size INTEGER NOT NULL, used INTEGER NOT NULL)")
    conn.executemany("INSERT INTO lru VALUES (?, ?, ?)", [("a", 40, 1), ("b", 60, 2)])
    conn.commit()
    conn.close()
    index = LRUIndex(tmp_path, max_cache_bytes=150)
    assert index.total_bytes() == 100
    assert index.make_room("c", 80) == ["a"]
    index.record("c", 80)
    assert index.total_bytes() == 140
    index.close()
    assert LRUIndex(tmp_path, max_cache_bytes=150).total_bytes() == 140  # added once



def _fill_files(store: FileCache, model: Path, count: int) -> None:
    data = model.read_bytes()
    for i in range(count):  # links: an entry each, in a fraction of the time of a write
        if i % 50_000 == 0:  # a file takes at most 65,000 links (ext4)
            model = store.path(f"bulk-{i}")
            model.write_bytes(data)
        else:
            os.link(model, store.path(f"bulk-{i}"))


async def test_filesystem_clear_of_a_big_cache_finishes_past_write_timeout(tmp_path: Path) -> None:
    """clear() unlinked every file in one call under ``write_timeout``: with many files it
    failed open half done. Now it runs in steps of about 0.05 s, each under the deadline:
    100k files take ~2 s on an idle machine, far past the 1 s here, and are all
    cleared. (At 0.3 s, one step on a loaded machine outlasted it: the test is that no
    single step must, not how fast the machine is. The LRU index is forgotten in batches
    too: test_filesystem_lru_total_stays_exact.)"""
    backend = FileBackend(tmp_path / "cache", write_timeout=1.0)
    store = backend.raw_responses
    await backend.save_response(response(b"x" * 500))
    [model] = [p for p in (tmp_path / "cache").iterdir() if not p.name.startswith(".")
               and p.is_file()]
    await asyncio.to_thread(_fill_files, store, model, 100_000)
    keep = tmp_path / "cache" / "notes.txt"  # not an entry: a user's file is never touched
    keep.write_text("mine")
    assert await store.size() == 100_001
    started = time.monotonic()
    await backend.clear()
    took = time.monotonic() - started
    assert await store.size() == 0, f"half cleared after {took:.1f}s"
    assert took > 1.0, took  # the whole clear outlasted the deadline; no step did
    assert keep.read_text() == "mine"
    assert backend.health.timeouts == 0 and backend.health.errors == 0
    await backend.close()

# -- DynamoDB ----------------------------------------------------------------------------

@pytest.fixture
async def dynamo(moto_server: MotoServer, request: pytest.FixtureRequest) -> AsyncIterator[DynamoDBBackend]:
    table = "more-" + hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:10] + f"-{time.time_ns()}"
    backend = DynamoDBBackend(table, create_table=True, **moto_server.client_options())
    yield backend
    await backend.close()


async def raw_item(backend: DynamoDBBackend, key: str) -> dict[str, Any] | None:
    """The item as stored, read with the backend's own aiobotocore client."""
    client = await backend.table.client()
    reply = await client.get_item(TableName=backend.table.name, Key=backend.raw_responses._key(key),
                                  ConsistentRead=True)
    item: dict[str, Any] | None = reply.get("Item")
    return item


async def test_dynamodb_expired_entry_not_served_before_the_sweeper(dynamo: DynamoDBBackend) -> None:
    now = utcnow()
    await dynamo.save_response(response(expires=now - timedelta(hours=2)), "gone")  # ttl = now - 1 h
    await dynamo.save_response(response(expires=now - timedelta(minutes=5)), "stale")  # within offset
    stored = await raw_item(dynamo, "gone")
    assert stored is not None  # still in the table: moto, like DynamoDB, has not swept it yet
    assert int(stored["ttl"]["N"]) == math.ceil((now - timedelta(hours=2)).timestamp() + 3600)
    assert await dynamo.get_record("gone") is None
    assert await dynamo.raw_responses.read("gone") is None
    assert not await dynamo.raw_responses.contains("gone")
    assert await dynamo.raw_responses.keys() == ["stale"]
    assert await dynamo.raw_responses.size() == 1
    stale = await dynamo.get_record("stale")
    assert stale is not None and stale.is_expired  # stale but kept for revalidation


async def test_dynamodb_without_ttl_keeps_expired_entries(moto_server: MotoServer) -> None:
    backend = DynamoDBBackend(f"nottl-{time.time_ns()}", create_table=True, ttl=False,
                              **moto_server.client_options())
    try:
        await backend.save_response(response(expires=utcnow() - timedelta(days=2)), "old")
        item = await raw_item(backend, "old")
        assert item is not None and "ttl" not in item
        assert await backend.get_record("old") is not None
        await backend.delete(expired=True)
        assert await backend.get_record("old") is None
    finally:
        await backend.close()


async def test_dynamodb_items_over_400kb_are_a_clear_error(dynamo: DynamoDBBackend,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    store = dynamo.raw_responses
    await store.write("big", b"small old version")
    with pytest.raises(ItemTooLargeError, match=r"'big'.*409600") as raised:
        await store.write("big", b"x" * ITEM_LIMIT)
    assert isinstance(raised.value, ValueError)
    assert await store.read("big") is None  # the outdated version is not left behind
    # (moto counts a Binary by its base64 length, unlike DynamoDB, so "large but fine" is 290 KB)
    large = b"y" * 290_000
    await store.write("large", large)
    assert await store.read("large") == large

    with caplog.at_level(logging.WARNING, logger="aiocache_http"):  # fail-open through the backend
        await dynamo.save_response(response(body=b"z" * ITEM_LIMIT), "resp")
    assert await dynamo.get_record("resp") is None
    assert "ItemTooLargeError" in caplog.text
    dynamo.settings.strict = True
    with pytest.raises(ItemTooLargeError):
        await dynamo.save_response(response(body=b"z" * ITEM_LIMIT), "resp")


async def test_dynamodb_create_table_is_idempotent_with_ttl(dynamo: DynamoDBBackend,
                                                            moto_server: MotoServer) -> None:
    await dynamo.raw_responses.write("k", b"v")
    again = DynamoDBBackend(dynamo.table.name, create_table=True, **moto_server.client_options())
    try:
        assert await again.raw_responses.read("k") == b"v"
        client = await again.table.client()
        table = (await client.describe_table(TableName=dynamo.table.name))["Table"]
        assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
        assert {(k["AttributeName"], k["KeyType"]) for k in table["KeySchema"]} == {
            ("namespace", "HASH"), ("key", "RANGE")}
        ttl = (await client.describe_time_to_live(TableName=dynamo.table.name))["TimeToLiveDescription"]
        assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "ttl")
    finally:
        await again.close()


async def test_dynamodb_namespaces_share_a_table_and_queries_paginate(dynamo: DynamoDBBackend,
                                                                      moto_server: MotoServer) -> None:
    await dynamo.raw_responses.size()  # creates the table
    other = DynamoDBCache(dynamo.table.name, "other", **moto_server.client_options())
    try:
        await other.write("k", b"other")
        values = {f"k{i:02}": bytes([i]) * 150_000 for i in range(15)}  # > 1 MB: several Query pages
        for key, value in values.items():
            await dynamo.raw_responses.write(key, value)
        assert sorted(await dynamo.raw_responses.keys()) == sorted(values)
        assert sorted(await dynamo.raw_responses.values()) == sorted(values.values())
        assert await dynamo.raw_responses.size() == 15
        await dynamo.clear()
        assert await dynamo.raw_responses.size() == 0
        assert await other.read("k") == b"other"  # another namespace is untouched
    finally:
        await other.close()


async def test_dynamodb_missing_table_fails_open_or_strict(moto_server: MotoServer,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    from botocore.exceptions import ClientError

    backend = DynamoDBBackend(f"missing-{time.time_ns()}", **moto_server.client_options())
    try:
        with caplog.at_level(logging.WARNING, logger="aiocache_http"):
            assert await backend.get_record("k") is None
        assert "ResourceNotFoundException" in caplog.text
        backend.settings.strict = True
        with pytest.raises(ClientError):
            await backend.get_record("k")
    finally:
        await backend.close()


def test_dynamodb_bad_client_option_fails_at_construction() -> None:
    with pytest.raises(TypeError, match="aws_acess_key_id"):
        DynamoDBBackend("t", aws_acess_key_id="x")


# -- MongoDB and GridFS (on the fake; see tests/mongo_fakes.py) --------------------------

@pytest.fixture
def fake_gridfs() -> Iterator[None]:
    with enabled_gridfs_integration():
        yield


async def test_mongodb_ttl_index_and_purge_at() -> None:
    client = AsyncMongoMockClient()
    backend = MongoDBBackend("db", connection=client, ttl_offset=timedelta(minutes=10))
    expires = utcnow() + timedelta(hours=1)
    await backend.save_response(response(expires=expires), "k")
    await backend.save_response(response(), "forever")
    indexes = await client["db"]["responses"].index_information()
    assert indexes[TTL_INDEX]["key"] == [("purge_at", 1)]
    assert indexes[TTL_INDEX]["expireAfterSeconds"] == 0
    doc = await client["db"]["responses"].find_one({"_id": "k"})
    assert abs(doc["purge_at"] - (expires + timedelta(minutes=10)).replace(tzinfo=None)) < timedelta(
        milliseconds=1)
    assert "purge_at" not in await client["db"]["responses"].find_one({"_id": "forever"})
    # Idempotent: another backend on the same database creates it again without error.
    again = MongoDBBackend("db", connection=client, ttl_offset=timedelta(minutes=10))
    await again.raw_responses.write("k2", b"v", expires)
    assert TTL_INDEX in await client["db"]["responses"].index_information()
    assert TTL_INDEX not in await client["db"]["redirects"].index_information()  # redirects never expire


async def test_mongodb_ttl_index_removes_items_past_purge_at() -> None:
    """mongomock applies TTL indexes on read, like the server's sweeper does eventually."""
    client = AsyncMongoMockClient()
    backend = MongoDBBackend("db", connection=client, ttl_offset=60)
    await backend.save_response(response(expires=utcnow() - timedelta(minutes=5)), "gone")
    await backend.save_response(response(expires=utcnow() - timedelta(seconds=5)), "stale")
    assert await backend.get_record("gone") is None
    assert await backend.get_record("stale") is not None


async def test_mongodb_without_ttl_has_no_index() -> None:
    client = AsyncMongoMockClient()
    backend = MongoDBBackend("db", connection=client, ttl=False)
    await backend.save_response(response(expires=utcnow() - timedelta(days=1)), "k")
    assert TTL_INDEX not in await client["db"]["responses"].index_information()
    assert await backend.get_record("k") is not None
    await backend.delete(expired=True)
    assert await backend.get_record("k") is None


async def test_gridfs_replace_leaves_no_orphan_chunks(fake_gridfs: None) -> None:
    client = AsyncMongoMockClient()
    store = GridFSBackend("db", connection=client).raw_responses
    files, chunks = client["db"]["fs.files"], client["db"]["fs.chunks"]
    for size in (1_000_000, 600_000, 10, 300_000):  # 4, 3, 1, 2 chunks of 255 KiB
        await store.write("k", bytes([size % 251]) * size)
    await store.write("other", b"o" * 300_000)
    assert await store.read("k") == bytes([300_000 % 251]) * 300_000
    assert await files.count_documents({}) == 2
    ids = {doc["_id"] async for doc in files.find({}, {"_id": 1})}
    assert {doc["files_id"] async for doc in chunks.find({}, {"files_id": 1})} == ids
    assert await chunks.count_documents({}) == 4  # 2 + 2: only the live versions' chunks
    await store.delete("k")
    assert await chunks.count_documents({}) == 2
    await store.write("exp", b"e" * 300_000, utcnow() - timedelta(seconds=1))
    assert await store.delete_expired(utcnow()) == 1
    assert await chunks.count_documents({}) == 2 and await store.keys() == ["other"]


async def test_gridfs_large_response_round_trip(fake_gridfs: None) -> None:
    backend = GridFSBackend("db", connection=AsyncMongoMockClient())
    body = os.urandom(1024) * 3 * 1024  # 3 MB: many chunks
    await backend.save_response(response(body=body), "big")
    loaded = await backend.get_record("big")
    assert loaded is not None and loaded.body == body


@pytest.mark.parametrize("backend_class", [MongoDBBackend, GridFSBackend])
async def test_mongo_clients_passed_in_are_not_closed_ours_are(
        backend_class: type[CacheBackend], caplog: pytest.LogCaptureFixture) -> None:
    """Real pymongo clients pointed at a closed loopback port: no server needed to see who
    owns which client, and a backend without a server fails open."""
    from pymongo import AsyncMongoClient

    from .redis_servers import free_port

    port = free_port()
    options = {"host": "127.0.0.1", "port": port, "serverSelectionTimeoutMS": 50}
    theirs: AsyncMongoClient[Any] = AsyncMongoClient(**options)  # type: ignore[arg-type]
    passed = backend_class("db", connection=theirs)
    with caplog.at_level(logging.WARNING, logger="aiocache_http"):
        assert await passed.get_record("k") is None  # fail-open: no server
    assert "ServerSelectionTimeoutError" in caplog.text
    await passed.close()
    assert not theirs._closed
    await theirs.close()

    ours = backend_class("db", **options)
    assert await ours.get_record("k") is None
    mine = ours.clients.get()  # type: ignore[attr-defined]
    assert isinstance(mine, AsyncMongoClient) and mine is not theirs
    await ours.close()
    assert mine._closed


def test_mongodb_one_client_per_event_loop() -> None:
    backend = MongoDBBackend("db", host="127.0.0.1", port=1, serverSelectionTimeoutMS=50)
    seen: list[Any] = []

    async def use() -> None:
        seen.append(backend.clients.get())
        assert backend.clients.get() is seen[-1]  # stable within a loop

    asyncio.run(use())
    thread = threading.Thread(target=lambda: asyncio.run(use()))
    thread.start()
    thread.join()
    assert len(seen) == 2 and seen[0] is not seen[1]
    asyncio.run(backend.close())


def test_loop_clients_first_use_from_two_loops_at_once() -> None:
    """An async session's loop and the sync bridge loop racing for the client made at
    construction: each loop still gets a client of its own (one is bound to its loop)."""
    from aiocache_http.backends.clients import LoopClients

    class Client:
        def __bool__(self) -> bool:  # slow to inspect: widens the race window
            time.sleep(0.05)
            return True

    async def close(client: Client) -> None:
        pass

    clients = LoopClients(Client, close)
    ready = threading.Barrier(2)
    seen: list[Client] = []

    async def use() -> None:
        ready.wait(5)
        seen.append(clients.get())

    threads = [threading.Thread(target=asyncio.run, args=(use(),)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(seen) == 2 and seen[0] is not seen[1]


def test_mongodb_bad_connection_and_options_fail_at_construction() -> None:
    with pytest.raises(TypeError, match="connection must be"):
        MongoDBBackend("db", connection="mongodb://127.0.0.1")
    from pymongo.errors import ConfigurationError

    with pytest.raises(ConfigurationError):
        MongoDBBackend("db", no_such_option=1)


# -- selection by name ---------------------------------------------------------------------

async def test_init_backend_aliases(tmp_path: Path, moto_server: MotoServer) -> None:
    client = AsyncMongoMockClient()
    made = {
        "mongodb": init_backend("db", "mongodb", connection=client),
        "mongo": init_backend("db", "mongo", connection=client),
        "gridfs": init_backend("db", "gridfs", connection=client),
        "dynamodb": init_backend("t", "dynamodb", **moto_server.client_options()),
        "filesystem": init_backend(str(tmp_path / "a"), "filesystem", expire_after=5),
        "file": init_backend(str(tmp_path / "b"), "FILE"),
    }
    assert {k: type(v).__name__ for k, v in made.items()} == {
        "mongodb": "MongoDBBackend", "mongo": "MongoDBBackend", "gridfs": "GridFSBackend",
        "dynamodb": "DynamoDBBackend", "filesystem": "FileBackend", "file": "FileBackend"}
    assert made["filesystem"].settings.expire_after == 5
    for backend in made.values():
        await backend.close()


def test_sync_layer_selects_the_backends_by_name(tmp_path: Path) -> None:
    from aiocache_http.sync import CachedSession

    session = CachedSession(str(tmp_path / "fs"), backend="filesystem")
    try:
        assert isinstance(session.cache.backend, FileBackend)
        assert session.cache.backend.cache_dir == tmp_path / "fs"
    finally:
        session.close()
    mongo = CachedSession("db", backend="mongodb", connection=AsyncMongoMockClient())
    try:
        assert isinstance(mongo.cache.backend, MongoDBBackend)
    finally:
        mongo.close()


def test_sync_storage_views(tmp_path: Path) -> None:
    from aiocache_http.sync import FileDict, MongoDict

    files = FileDict(tmp_path / "views")  # JSON files by default, as in requests-cache
    files["../k"] = "v"
    assert files["../k"] == "v" and list(files) == ["../k"] and len(files) == 1
    mongo = MongoDict("db", "c", connection=AsyncMongoMockClient())
    mongo["a"] = b"1"
    assert mongo["a"] == b"1" and list(mongo) == ["a"]
