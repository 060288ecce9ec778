"""In-process MongoDB for the suites (no server here): mongomock-motor's client.

It fakes motor's API, which is the subset of pymongo's AsyncMongoClient our MongoDB
storages use, so the fake exercises the same code as a motor client passed as
``connection=``. One fake client per test, shared by the backends that test makes (as
the SQLite file or Redis namespace is for those backends).

GridFS on the fake (TEST-ONLY GLUE): our GridFSCache uses motor's real
AsyncIOMotorGridFSBucket for a motor client, which drives pymongo's *sync* gridfs module
over the database's delegate. mongomock's databases are not pymongo ``Database``
instances, so mongomock-motor's ``enabled_gridfs_integration()`` patches the type
checks in pymongo's gridfs module for the duration of a test. The GridFS logic itself
(upload, versions, chunk deletion) is pymongo's and motor's, unmodified. The
pymongo-native AsyncGridFSBucket path runs only against a real server
(``AIOCACHE_HTTP_MONGO_URL``).
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import pytest
from mongomock_motor import AsyncMongoMockClient, enabled_gridfs_integration

MONGO_URL_ENV = "AIOCACHE_HTTP_MONGO_URL"
_CLIENT = pytest.StashKey[Any]()
_GRIDFS = pytest.StashKey[bool]()
_REAL_DB = pytest.StashKey[str]()


def fake_client(request: pytest.FixtureRequest) -> Any:
    """This test's fake client (created on first use)."""
    stash = request.node.stash
    if _CLIENT not in stash:
        stash[_CLIENT] = AsyncMongoMockClient()
    return stash[_CLIENT]


def enable_fake_gridfs(request: pytest.FixtureRequest) -> None:
    """Let motor's GridFS bucket run on mongomock until this test ends (see above)."""
    stash = request.node.stash
    if stash.get(_GRIDFS, False):
        return
    patch = enabled_gridfs_integration()
    patch.__enter__()
    stash[_GRIDFS] = True

    def stop() -> None:
        patch.__exit__(None, None, None)
        stash[_GRIDFS] = False

    request.node.addfinalizer(stop)


def real_mongo_url() -> str | None:
    return os.environ.get(MONGO_URL_ENV) or None


def real_db_name(request: pytest.FixtureRequest) -> str:
    """A fresh database on the real server for this test, dropped when it ends."""
    stash = request.node.stash
    if _REAL_DB not in stash:
        name = f"aiocache_http_test_{uuid.uuid4().hex[:12]}"
        stash[_REAL_DB] = name

        def drop() -> None:
            import pymongo

            with pymongo.MongoClient(real_mongo_url(), serverSelectionTimeoutMS=5000) as client:
                client.drop_database(name)

        request.node.addfinalizer(drop)
    return stash[_REAL_DB]
