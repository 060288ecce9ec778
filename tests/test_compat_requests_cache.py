"""requests-cache's public API, as its users call it (issue 19): names, arguments,
defaults, return types and behaviours that code written for it relies on."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

import aiocache_http.sync as requests_cache
from aiocache_http.sync import (
    CachedResponse,
    CachedSession,
    DynamoDbCache,
    FileCache,
    LRUFileDict,
    SQLiteCache,
    SQLiteDict,
    utcnow,
)
from aiocache_http.sync.cache_keys import normalize_headers, normalize_request
from aiocache_http.sync.serializers import SERIALIZERS, SerializerPipeline, Stage, json_serializer

from .aws_servers import MotoServer
from .origin import Origin


def test_serializers_by_name_and_object(thread_origin: Origin, tmp_path: Path) -> None:
    """SERIALIZERS and the pipeline objects; a FileCache names its files after the
    serializer, as requests-cache does (<key>.ach.json: still recognisably its own)."""
    assert {"json", "yaml", "bson", "pickle"} <= set(SERIALIZERS)
    assert isinstance(json_serializer, SerializerPipeline) and isinstance(json_serializer.stages[-1], Stage)
    url = thread_origin.url("/r/ser")
    for name in ("json", "yaml", "bson"):
        session = CachedSession(backend=FileCache(tmp_path / name, serializer=name))
        session.get(url)
        assert session.get(url).from_cache
        assert [p.suffix for p in session.cache.paths()] == [f".{name}"]
        assert [p.suffixes[-2] for p in session.cache.paths()] == [".ach"]
        session.close()


def test_backend_instance_with_backend_options(thread_origin: Origin, tmp_path: Path) -> None:
    """CachedSession(backend=<instance>, use_temp=True, ...): options are ignored, settings
    applied, and session.cache is the instance."""
    backend = SQLiteCache(tmp_path / "inst")
    session = CachedSession(backend=backend, use_temp=True, decode_content=False, expire_after=60)
    assert session.cache is backend and session.settings.expire_after == 60
    session.get(thread_origin.url("/r/inst"))
    assert session.get(thread_origin.url("/r/inst")).from_cache
    session.close()


def test_storages_return_responses_and_values(thread_origin: Origin, tmp_path: Path) -> None:
    session = CachedSession(backend=SQLiteCache(tmp_path / "views"))
    session.get(thread_origin.url("/r/view"))
    [stored] = list(session.cache.responses.values())
    assert isinstance(stored, CachedResponse) and stored.cache_key in session.cache.responses
    assert session.cache.responses[stored.cache_key].url == thread_origin.url("/r/view")
    table = SQLiteDict(tmp_path / "plain", "t", serializer="pickle")
    table["when"] = {"a": [1, 2]}
    assert table["when"] == {"a": [1, 2]} and str(table) == "['when']"
    lru = LRUFileDict(tmp_path / "lru", max_cache_bytes=100, serializer=None)
    for i in range(4):
        lru[f"k{i}"] = "x" * 30
    assert lru.keys() == ["k1", "k2", "k3"] and lru.size() == 90  # the oldest made room
    session.close()


def test_cache_api(thread_origin: Origin, tmp_path: Path) -> None:
    """filter(), reset_expiration(), delete(older_than=, invalid=, requests=), cache_name,
    save_response(expires=), revalidated."""
    session = CachedSession(tmp_path / "api", backend="sqlite", expire_after=60)
    cache = session.cache
    assert cache.cache_name == str(tmp_path / "api")
    first = session.get(thread_origin.url("/r/api1?etag=v1"))
    session.get(thread_origin.url("/r/api2"))
    assert len(list(cache.filter())) == 2 and not list(cache.filter(valid=False, expired=True))
    cache.reset_expiration(-1)
    assert all(r.expires is None for r in cache.filter())
    cache.save_response(first, expires=utcnow() - timedelta(seconds=1))
    assert [r.url for r in cache.filter(valid=False, expired=True)] == [first.url]
    revalidated = session.get(thread_origin.url("/r/api1?etag=v1"))
    assert revalidated.from_cache and revalidated.revalidated
    cache.delete(requests=[requests.Request("GET", thread_origin.url("/r/api2"))])
    assert not cache.contains(url=thread_origin.url("/r/api2"))
    cache.responses["junk"] = b"not a response"
    cache.delete(invalid=True)
    assert "junk" not in cache.responses
    cache.delete(older_than=timedelta(seconds=-1))
    assert len(cache.responses) == 0
    session.close()


def test_redirect_target_is_a_hit(thread_origin: Origin) -> None:
    session = CachedSession(backend="memory")
    session.get(thread_origin.url("/redirect/hop"))
    assert session.get(thread_origin.url("/r/hop")).from_cache
    assert len(session.cache.redirects) == 1


def test_read_only_and_verify(thread_origin: Origin) -> None:
    session = CachedSession(backend="memory")
    url = thread_origin.url("/r/ro")
    session.get(url)
    assert not session.get(url, verify=False).from_cache  # sent unverified: another entry
    session.settings.read_only = True
    assert session.get(url).from_cache
    session.get(thread_origin.url("/r/ro2"))
    assert not session.cache.contains(url=thread_origin.url("/r/ro2"))


def test_cache_keys_helpers() -> None:
    request = requests.Request("GET", "https://x.test/?b=2&a=1", headers={"Content-Type": "application/json"},
                               data=b'{"b": 1, "secret": "s"}')
    norm = normalize_request(request, ignored_parameters=["secret"])
    assert norm.url == "https://x.test/?a=1&b=2" and norm.body == b'{"b": 1, "secret": "REDACTED"}'
    assert normalize_headers({"Accept": b"gzip,  deflate"}) == {"Accept": "deflate, gzip"}


def test_dynamodb_creates_its_table(moto_server: MotoServer, thread_origin: Origin) -> None:
    """requests-cache's DynamoDbCache creates the table when it is missing."""
    cache = DynamoDbCache("compat-created", **moto_server.client_options())
    session = CachedSession(backend=cache)
    session.get(thread_origin.url("/r/dyn"))
    assert session.get(thread_origin.url("/r/dyn")).from_cache
    session.close()


def test_missing_sync_extra_names_it() -> None:
    code = textwrap.dedent("""
        import sys
        sys.modules["requests"] = None  # as if the sync extra were not installed
        try:
            import aiocache_http.sync
        except ImportError as e:
            print(e)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "aiocache-http[sync]" in out


def test_module_names() -> None:
    assert requests_cache.CachedSession is CachedSession and requests_cache.BaseCache
    with pytest.raises(ImportError, match="serializers"):
        SERIALIZERS["ujson"].dumps({}) if not hasattr(SERIALIZERS["ujson"], "stages") else (
            _raise_import_error())


def _raise_import_error() -> None:
    raise ImportError("serializers installed: nothing to check")


def test_stale_if_error_covers_error_statuses(thread_origin: Origin) -> None:
    """requests-cache's ``stale_if_error``: a 4xx not in allowable_codes is an error too
    (a stale response answers it, within the window); a 404 in allowable_codes is an
    answer; a negative expire_after stores a response already expired that long."""
    url = thread_origin.url("/r/sie")
    session = CachedSession(backend="memory", stale_if_error=True, expire_after=-5)
    assert session.get(url).status_code == 200
    stale = session.get(url, headers={"X-Status": "404"})
    assert (stale.status_code, stale.from_cache, stale.is_expired) == (200, True, True)
    session.settings.stale_if_error = timedelta(seconds=2)  # stale by 5 s: too old
    assert session.get(url, headers={"X-Status": "404"}).status_code == 404
    session.settings.stale_if_error = True
    session.settings.allowable_codes = (200, 404)
    answer = session.get(url, headers={"X-Status": "404"})
    assert (answer.status_code, answer.from_cache) == (404, False)
    session.close()


def test_only_if_cached_serves_stale_under_stale_if_error(thread_origin: Origin) -> None:
    url = thread_origin.url("/r/oic")
    session = CachedSession(backend="memory", expire_after=timedelta(seconds=-2))
    session.get(url)
    assert session.get(url, only_if_cached=True).status_code == 504
    session.settings.stale_if_error = True
    response = session.get(url, only_if_cached=True)
    assert (response.status_code, response.from_cache, response.is_expired) == (200, True, True)
    assert thread_origin.count("/r/oic") == 1
    session.close()


def test_stale_while_revalidate_window_with_negative_expire_after(thread_origin: Origin) -> None:
    session = CachedSession(backend="memory", stale_while_revalidate=timedelta(seconds=3))
    recent, old = thread_origin.url("/r/swr1?etag=a"), thread_origin.url("/r/swr2?etag=b")
    session.get(recent, expire_after=timedelta(seconds=-2))
    session.get(old, expire_after=-4)
    served = session.get(recent)
    assert served.from_cache and served.is_expired  # within the window: served stale
    fetched = session.get(old)  # past the window: revalidated first (a 304 renews it)
    assert fetched.revalidated and not fetched.is_expired and thread_origin.count("/r/swr2") == 2
    with pytest.raises(ValueError, match="expire_after"):
        CachedSession(backend="memory", expire_after=float("nan"))
    session.close()


async def test_key_fn_is_called_for_every_request(origin: Origin) -> None:
    """requests-cache calls key_fn for every request (its custom_request_matcher.py example
    keys on library versions): neither the key memo nor the async session's plan memo may
    keep its result."""
    from aiocache_http import CacheBackend, CachedClientSession

    salt = ["v1"]
    calls: list[str] = []

    def key_fn(request: Any, **kwargs: Any) -> str:
        calls.append(request.url)
        return f"{request.method}:{request.url}:{salt[0]}"

    url = origin.url("/r/keyfn")
    async with CachedClientSession(cache=CacheBackend(key_fn=key_fn)) as session:
        await session.get(url)
        assert (await session.get(url)).from_cache
        salt[0] = "v2"  # a new version: a new key
        assert not (await session.get(url)).from_cache
    assert len(calls) == 3 and origin.count("/r/keyfn") == 2


def test_a_hits_raw_is_a_urllib3_response(thread_origin: Origin, tmp_path: Path) -> None:
    """``response.raw`` of a hit is a urllib3 ``HTTPResponse``, as requests-cache's and a
    live one are: it was a BytesIO without ``version``, ``data``, ``getheader()``,
    ``isclosed()``, ``tell()``, ``headers.getlist()``... (requests-toolbelt's dump reads
    ``raw.version``). A body held in memory and a large one streamed from storage alike;
    the stored body is read as it is (decoded already), gzip'ed at the origin or not."""
    import urllib3

    session = CachedSession(backend=SQLiteCache(tmp_path / "raw"))
    small = thread_origin.url("/r/raw?gzip=1")
    large = thread_origin.url("/body/raw?size=3000000")
    expected_small = session.get(small).content
    for url, stream in ((small, False), (small, True), (large, True)):
        miss = session.get(url, stream=stream)
        expected = miss.content
        hit = session.get(url, stream=stream)
        assert hit.from_cache and isinstance(hit.raw, urllib3.HTTPResponse)
        assert (hit.raw.version, hit.raw.status) == (11, 200)
        assert hit.raw.headers.getlist("Content-Type") == [miss.headers["Content-Type"]]
        assert hit.raw.read(10) == expected[:10] and hit.raw.tell() == 10
        assert hit.raw.data == expected[10:]
        assert hit.raw.read() == b"" and hit.raw.closed
    with session.get(small) as hit:  # closed without building a raw it never needed
        assert hit.from_cache and hit.content == expected_small
    assert hit._raw is None
    session.close()
