"""The filesystem backend owns only its own files: a user's files in the cache directory
survive clear() and maintenance and are never listed; the directory never escapes the
base it is resolved against; temp files left by killed writers are swept."""

from __future__ import annotations

import os
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import pytest
from multidict import CIMultiDict

from aiocache_http import CachedRequest, utcnow
from aiocache_http.backends.filesystem import STALE_TMP_SECONDS, FileBackend, FileCache, filename
from aiocache_http.models import CachedResponse

USER_FILES = ["report.docx", "notes", "abc", "deadbeef" * 4, ".hidden", "~weird", ".tmp-mine",
              ".key-" + "0" * 63, "x.ach.bak", "UPPER.ach"]


def response(expires_in: float | None = 60) -> CachedResponse:
    expires = None if expires_in is None else utcnow() + timedelta(seconds=expires_in)
    return CachedResponse(200, "OK", "https://x.test/", CIMultiDict(), b"body",
                          CachedRequest("GET", "https://x.test/"), expires=expires)


def user_files(directory: Path) -> dict[str, bytes]:
    for name in USER_FILES:
        (directory / name).write_bytes(f"mine: {name}".encode())
    (directory / "subdir").mkdir(exist_ok=True)
    (directory / "subdir" / "deep.txt").write_bytes(b"mine too")
    return {name: f"mine: {name}".encode() for name in USER_FILES}


def assert_untouched(directory: Path, files: dict[str, bytes]) -> None:
    for name, content in files.items():
        assert (directory / name).read_bytes() == content, name
    assert (directory / "subdir" / "deep.txt").read_bytes() == b"mine too"


async def test_user_files_survive_clear_and_maintenance(tmp_path: Path) -> None:
    backend = FileBackend(tmp_path / "cache", backend_timeout=30.0, write_timeout=30.0)
    files = user_files(backend.cache_dir)
    long_key = "k" * 500  # stored under a hashed name with a .key- file
    for key in ("a" * 32, "Mixed/Key", long_key):
        await backend.save_response(response(expires_in=-10), key)
    await backend.save_response(response(), "fresh")
    await backend.save_redirect("alias", "fresh")
    assert sorted(await backend.raw_responses.keys()) == sorted(["a" * 32, "Mixed/Key", long_key, "fresh"])
    assert await backend.raw_responses.size() == 4

    await backend.delete(expired=True)
    assert await backend.raw_responses.keys() == ["fresh"]
    assert_untouched(backend.cache_dir, files)

    await backend.clear()
    assert await backend.raw_responses.keys() == [] and await backend.raw_redirects.keys() == []
    assert_untouched(backend.cache_dir, files)
    # the redirects live in redirects.sqlite (and its -wal/-shm), as in aiohttp-client-cache
    left = sorted(p.name for p in backend.cache_dir.iterdir()
                  if not p.name.startswith("redirects.sqlite"))
    assert left == sorted([*files, "subdir"])
    assert (backend.cache_dir / "redirects.sqlite").is_file()


async def test_entries_have_recognisable_names(tmp_path: Path) -> None:
    store = FileCache(tmp_path / "c")
    for key in ("a" * 32, "report.docx", "../escape", "k" * 500):
        await store.write(key, b"x")
        assert filename(key).endswith(".ach")
    names = sorted(p.name for p in store.directory.iterdir())
    assert all(n.endswith(".ach") or n.startswith(".key-") for n in names), names
    assert not (tmp_path / "escape").exists()


@pytest.mark.parametrize("use", ["use_temp", "use_cache_dir"])
@pytest.mark.parametrize("name", ["../x", "a/../../x", "..", ".", "", "a/.."])
def test_cache_dir_never_escapes_its_base(name: str, use: str, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    with pytest.raises(ValueError, match="outside"):
        FileBackend(name, **{use: True})
    with pytest.raises(ValueError, match="outside"):
        FileCache(name, **{use: True})
    assert not (tmp_path / "x").exists()


def test_cache_dir_inside_its_base_and_absolute_paths(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    assert FileBackend("a/../b", use_temp=True).cache_dir == tmp_path / "tmp" / "b"
    assert FileBackend(tmp_path / "abs", use_temp=True).cache_dir == tmp_path / "abs"


async def test_stale_temp_files_are_swept(tmp_path: Path) -> None:
    cache_dir = tmp_path / "c"
    cache_dir.mkdir()
    stale, fresh = cache_dir / (".tmp-" + "a" * 32), cache_dir / (".tmp-" + "b" * 32)
    for path in (stale, fresh):
        path.write_bytes(b"half a write")
    old = time.time() - STALE_TMP_SECONDS - 60
    os.utime(stale, (old, old))
    store = FileCache(cache_dir)
    await store.write("k", b"v")  # a process's first write sweeps
    assert not stale.exists() and fresh.exists()  # a live writer's temp file stays
    os.utime(fresh, (old, old))
    await store.delete_expired(utcnow())  # maintenance sweeps too
    assert not fresh.exists()
    assert await store.keys() == ["k"]
