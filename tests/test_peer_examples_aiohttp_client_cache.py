"""aiohttp-client-cache's documented examples, run with the one-line change
(``from aiocache_http import CachedSession, SQLiteBackend``).

Each test is one example file (``examples/*.py``), the README's code blocks or one section
of the docs (``docs/user_guide.md``, ``docs/backends.md``, ``docs/security.md``), written
as the docs write it and asserting what the docs say happens. aiohttp does not read
``HTTP_PROXY`` unless told, so ``https://httpbin.org`` (and the other hosts) become the
local stand-in's base URL (``BIN``); caches are created by name in a temporary working
directory, ``~`` is a temporary home.
"""

from __future__ import annotations

import asyncio
import re
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
from aiohttp import ClientResponse, ClientSession

from aiocache_http import (
    CacheBackend,
    CachedResponse,
    CachedSession,
    CacheMixin,
    FileBackend,
    RedisBackend,
    SQLiteBackend,
)

from .httpbin import HttpBin, running_httpbin
from .redis_servers import RedisServer


@pytest.fixture(scope="module")
def httpbin() -> Iterator[HttpBin]:
    with running_httpbin() as server:
        yield server


@pytest.fixture
def BIN(httpbin: HttpBin, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """``https://httpbin.org`` in the docs; a fresh working directory and home."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    httpbin.counts.clear()
    return httpbin.base


def sent(httpbin: HttpBin, path: str) -> int:
    return sum(n for where, n in httpbin.counts.items() if where.endswith(path))


# -- README.md ----------------------------------------------------------------------------


async def test_readme_quickstart(BIN: str, httpbin: HttpBin) -> None:
    """README.md: replace ClientSession with CachedSession(cache=SQLiteBackend('demo_cache'))."""
    async with ClientSession() as session:
        await session.get(f'{BIN}/delay/1')
    async with CachedSession(cache=SQLiteBackend('demo_cache')) as session:
        await session.get(f'{BIN}/delay/1')
        response = await session.get(f'{BIN}/delay/1')
        assert response.from_cache
    assert sent(httpbin, '/delay/1') == 2 and Path('demo_cache.sqlite').is_file()  # noqa: ASYNC240


async def test_readme_configuration(BIN: str) -> None:
    """README.md: every option of the SQLiteBackend example, ``timeout`` included."""
    cache = SQLiteBackend(
        cache_name='~/.cache/aiohttp-requests.db',  # For SQLite, this will be used as the filename
        expire_after=60 * 60,                         # By default, cached responses expire in an hour
        urls_expire_after={'*.fillmurray.com': -1},   # Requests for any subdomain: never expire
        allowed_codes=(200, 418),                     # Cache responses with these status codes
        allowed_methods=['GET', 'POST'],              # Cache requests with these HTTP methods
        include_headers=True,                         # Cache requests with different headers separately
        ignored_params=['auth_token'],                # Keep using the cached response if this changes
        timeout=2.5,                                  # Connection timeout for SQLite backend
    )
    assert cache.db_path == Path.home() / '.cache' / 'aiohttp-requests.db'
    assert cache.database.busy_timeout == 2.5
    assert cache.expire_after == 3600 and cache.allowed_codes == (200, 418)
    async with CachedSession(cache=cache) as session:
        await session.post(f'{BIN}/post', data=b'x', params={'auth_token': 'a'})
        response = await session.post(f'{BIN}/post', data=b'x', params={'auth_token': 'b'})
        assert response.from_cache


# -- docs/user_guide.md -------------------------------------------------------------------


async def test_user_guide_general(BIN: str, httpbin: HttpBin) -> None:
    """docs/user_guide.md: sessions, requests, disabling, clearing."""
    async with CachedSession() as session:
        await session.get(f'{BIN}/delay/1')
        await session.request('GET', f'{BIN}/get')
        await session.head(f'{BIN}/get')
        async with session.disabled():
            await session.get(f'{BIN}/get')
        assert sent(httpbin, '/get') == 3  # GET, HEAD, the disabled GET
        assert (await session.get(f'{BIN}/get')).from_cache
        await session.cache.clear()
        assert await session.cache.responses.size() == 0


async def test_user_guide_filtering(BIN: str, httpbin: HttpBin) -> None:
    """docs/user_guide.md: allowed_methods, allowed_codes, ignored_parameters, include_headers."""
    cache = SQLiteBackend(allowed_methods=('GET', 'POST'))
    async with CachedSession(cache=cache) as session:
        await session.post(f'{BIN}/post', json={'param': 'value'})
        assert (await session.post(f'{BIN}/post', json={'param': 'value'})).from_cache
    cache = SQLiteBackend('codes', allowed_codes=(200, 418))
    async with CachedSession(cache=cache) as session:
        await session.get(f'{BIN}/teapot')
        response = await session.get(f'{BIN}/teapot')
        assert response.status == 418 and response.from_cache
    cache = SQLiteBackend('params', ignored_parameters=['auth-token'])
    async with CachedSession(cache=cache) as session:
        # Only the first request will be sent
        await session.get(f'{BIN}/get', params={'auth-token': '2F63E5DF4F44'})
        await session.get(f'{BIN}/get', params={'auth-token': 'D9FAEB3449D3'})
    assert sent(httpbin, '/get') == 1
    cache = SQLiteBackend('headers', include_headers=True)
    async with CachedSession(cache=cache) as session:
        # Both of these requests will be sent and cached separately (the docs pass the
        # headers positionally, which aiohttp's get() refuses, with either library)
        await session.get(f'{BIN}/headers', headers={'Accept': 'text/plain'})
        await session.get(f'{BIN}/headers', headers={'Accept': 'application/json'})
    assert sent(httpbin, '/headers') == 2

    async def filter_by_size(response: Any) -> bool:
        """Don't cache responses with a body over 1 MB"""
        from sys import getsizeof

        return getsizeof(response._body) <= 1024 * 1024

    cache = SQLiteBackend('sized', filter_fn=filter_by_size)
    async with CachedSession(cache=cache) as session:
        await session.get(f'{BIN}/bytes/2000000')
        assert not (await session.get(f'{BIN}/bytes/2000000')).from_cache
        await session.get(f'{BIN}/bytes/100')
        assert (await session.get(f'{BIN}/bytes/100')).from_cache


async def test_user_guide_expiration(BIN: str) -> None:
    """docs/user_guide.md: expire_after, urls_expire_after, cache_control, removal."""
    cache = SQLiteBackend(expire_after=360)
    cache = SQLiteBackend(expire_after=timedelta(days=30))
    assert cache.expire_after == 30 * 86400
    cache = SQLiteBackend(
        urls_expire_after={
            '*.site_1.com': 30,
            'site_2.com/resource_1': 60 * 2,
            'site_2.com/resource_2': 60 * 60 * 24,
            'site_2.com/static': -1,
        }
    )
    cache = SQLiteBackend('cc', cache_control=True)
    async with CachedSession(cache=cache) as session:
        await session.get(f'{BIN}/cache/60')
        response = await session.get(f'{BIN}/cache/60')
        assert response.from_cache and response.expires is not None
        await session.get(f'{BIN}/get', expire_after=1)
        await asyncio.sleep(1.1)
        await session.delete_expired_responses()
        assert not await session.has_url(f'{BIN}/get') and await session.has_url(f'{BIN}/cache/60')


async def test_user_guide_inspection(BIN: str) -> None:
    """docs/user_guide.md: placeholders for a new response, values for a cached one; URLs
    and responses in the cache."""
    session = CachedSession(cache=CacheBackend(), expire_after=timedelta(days=1))
    # The docs show placeholders (None) for a new response; here a stored one already
    # carries its times (see the migration guide), and is_expired is False, not None
    r = await session.get(f'{BIN}/get')
    assert r.from_cache is False and r.is_expired is False
    assert r.expires is not None and r.created_at is not None
    r = await session.get(f'{BIN}/get')
    assert r.from_cache and not r.is_expired
    assert isinstance(r.created_at, datetime) and r.expires > r.created_at
    await session.post(f'{BIN}/post', data=b'1')
    urls = [url async for url in session.cache.get_urls()]
    assert urls == [f'{BIN}/get']
    post_urls = [
        response.url async for response in session.cache.responses.values()
        if response.method == 'POST'
    ]
    assert post_urls == []  # POST is not cached by default
    await session.close()


async def test_user_guide_cache_mixin(BIN: str) -> None:
    """docs/user_guide.md: CacheMixin with another mixin and ClientSession."""

    class CustomMixin:
        async def _request(self, *args: Any, **kwargs: Any) -> Any:
            response = await super()._request(*args, **kwargs)  # type: ignore[misc]
            response.seen_by_custom = True
            return response

    class CustomSession(CacheMixin, CustomMixin, ClientSession):
        """Session with features from both aiohttp_client_cache and some_other_library"""

    async with CustomSession(cache=CacheBackend()) as session:
        response = await session.get(f'{BIN}/get')
        assert response.seen_by_custom and not response.from_cache
        assert (await session.get(f'{BIN}/get')).from_cache


# -- docs/backends.md, docs/security.md --------------------------------------------------


async def test_backends_redis_and_security(BIN: str, httpbin: HttpBin, redis_server: RedisServer) -> None:
    """docs/backends.md and docs/security.md: RedisBackend, signed items; an item written
    under another key is refused (the request goes to the origin)."""
    address = redis_server.url
    async with CachedSession(cache=RedisBackend(address=address)) as session:
        await session.cache.clear()
        await session.get(f'{BIN}/get')
        assert (await session.get(f'{BIN}/get')).from_cache
        await session.cache.clear()
    secret_key = 'my secret key'
    cache = RedisBackend(secret_key=secret_key, address=address)
    async with CachedSession(cache=cache) as session:
        await session.get(f'{BIN}/get')
    cache_2 = RedisBackend(secret_key='a different key', address=address)
    async with CachedSession(cache=cache_2) as session_2:
        cache_key = list(await session_2.cache.responses.keys())[0]  # noqa: RUF015  (as the docs write it)
        await session_2.cache.responses.write(cache_key, 'exploit!')
    cache = RedisBackend(secret_key=secret_key, address=address)
    async with CachedSession(cache=cache) as session:
        before = sent(httpbin, '/get')
        response = await session.get(f'{BIN}/get')
        assert not response.from_cache and sent(httpbin, '/get') == before + 1
        await session.cache.clear()


async def test_backends_shared_by_sessions(BIN: str) -> None:
    """docs/backends.md: one backend for several sessions, closed by the user."""
    cache_backend = CacheBackend(autoclose=False)
    sessions_pool = [CachedSession(cache=cache_backend) for _ in range(2)]
    await sessions_pool[0].get(f'{BIN}/json')
    assert (await sessions_pool[1].get(f'{BIN}/json')).from_cache
    for session in sessions_pool:
        await session.close()
    await cache_backend.close()


async def test_backends_custom(BIN: str) -> None:
    """docs/backends.md: a custom backend, its storage written to aiohttp-client-cache's
    interface (keys() / values() async generators, write(key, item)); ``BaseCache`` is the
    storage base here, ``CacheBackend`` the backend (the docs' ``BaseStorage`` does not exist
    in aiohttp-client-cache either)."""
    from aiocache_http.backends.base import BaseCache

    class CustomCache(CacheBackend):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.redirects = CustomStorage()
            self.responses = CustomStorage()

    class CustomStorage(BaseCache):
        """interface for lower-level backend storage operations"""
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.data: dict[str, Any] = {}

        async def contains(self, key: str) -> bool:
            return key in self.data

        async def clear(self) -> None:
            self.data.clear()

        async def delete(self, key: str) -> None:
            self.data.pop(key, None)

        async def keys(self) -> AsyncIterator[str]:  # type: ignore[override]
            for key in list(self.data):
                yield key

        async def read(self, key: str) -> Any:
            return self.data.get(key)

        async def size(self) -> int:
            return len(self.data)

        async def values(self) -> AsyncIterator[Any]:  # type: ignore[override]
            for value in list(self.data.values()):
                yield value

        async def write(self, key: str, item: Any) -> None:  # type: ignore[override]
            self.data[key] = item

    async with CachedSession(cache=CustomCache()) as session:
        await session.get(f'{BIN}/get')
        assert (await session.get(f'{BIN}/get')).from_cache
        assert [url async for url in session.cache.get_urls()] == [f'{BIN}/get']
        await session.cache.clear()
        assert await session.cache.responses.size() == 0


# -- examples/ ----------------------------------------------------------------------------


async def test_example_url_patterns(BIN: str) -> None:
    """examples/url_patterns.py (other hosts: paths of the stand-in)."""
    host = BIN.split('://')[1]
    default_expire_after = 60 * 60
    urls_expire_after = {
        f'{host}/image': timedelta(days=7),
        f'{host}/fillmurray': -1,
    }
    urls = [f'{BIN}/get', f'{BIN}/image/jpeg', f'{BIN}/fillmurray/460/300']

    async def main() -> list[Any]:
        cache = SQLiteBackend(
            cache_name='~/.cache/aiohttp-requests.db',
            expire_after=default_expire_after,
            urls_expire_after=urls_expire_after,
        )
        async with CachedSession(cache=cache) as session:
            tasks = [asyncio.create_task(session.get(url)) for url in urls]
            return await asyncio.gather(*tasks)

    await main()
    hour, week, never = await main()
    now = datetime.utcnow()
    assert all(r.from_cache for r in (hour, week, never))
    assert timedelta(minutes=59) < hour.expires - now <= timedelta(hours=1)
    assert timedelta(days=6.9) < week.expires - now <= timedelta(days=7)
    assert never.expires is None


async def test_example_log_requests(BIN: str) -> None:
    """examples/log_requests.py: ClientSession._request mocked with a CachedResponse."""
    async def mock_response(*args: Any, **kwargs: Any) -> CachedResponse:
        return CachedResponse(method='GET', reason='OK', status=200, url='url', version='1.1')

    with patch.object(ClientSession, '_request', side_effect=mock_response) as mock_request:
        async with CachedSession(cache=SQLiteBackend('cache-test.sqlite')) as session:
            await session.cache.clear()
            for _ in range(10):
                await session.get(f'{BIN}/get')
            cached_responses = [v async for v in session.cache.responses.values()]
    assert len(cached_responses) == 1
    assert mock_request.call_count == 1


async def test_example_precache(BIN: str, httpbin: HttpBin) -> None:
    """examples/precache.py: a page and every page it links to, twice."""
    HREF_PATTERN = re.compile(r'href="(.*?)"')

    async def precache_page_links(parent_url: str) -> list[Any]:
        async with CachedSession(cache=SQLiteBackend()) as session:
            urls = await get_page_links(session, parent_url)
            tasks = [asyncio.create_task(cache_url(session, url)) for url in urls]
            return list(await asyncio.gather(*tasks))

    async def get_page_links(session: CachedSession, url: str) -> set[str]:
        links = set()
        response = await session.get(url)
        response.raise_for_status()
        html = await response.text()
        for link in HREF_PATTERN.findall(html):
            links.add(urllib.parse.urljoin(url, link))
        return links

    async def cache_url(session: CachedSession, url: str) -> Any:
        return await session.get(url)

    first = await precache_page_links(f'{BIN}/links')
    second = await precache_page_links(f'{BIN}/links')
    assert len(first) == 3 and not any(r.from_cache for r in first)
    assert all(r.from_cache for r in second)
    assert sum(httpbin.counts.values()) == 4 and Path('aiohttp-cache.sqlite').is_file()  # noqa: ASYNC240


async def test_example_github(BIN: str, httpbin: HttpBin) -> None:
    """examples/github.py: refresh=True revalidates; a 304 does not count against the limit."""
    CACHE_DIR = "~/.cache/aiohttp-requests"
    cache = FileBackend(cache_name=CACHE_DIR, use_temp=True)
    await cache.clear()
    org = "requests-cache"
    url = f"{BIN}/orgs/{org}/repos"
    async with CachedSession(cache=cache) as session:
        response = await session.get(url)
        assert response.headers['x-ratelimit-used'] == '1'
        response = await session.get(url, refresh=True)
        assert response.status == 200 and response.headers['x-ratelimit-used'] == '1'
        assert sent(httpbin, '/repos') == 2 and httpbin.counts['ratelimit'] == 1
        assert isinstance(response, (ClientResponse, CachedResponse))


def test_names_the_docs_import() -> None:
    """The names the docs import from aiohttp_client_cache."""
    import aiocache_http

    for name in ('CachedSession', 'CacheBackend', 'CachedResponse', 'CacheMixin', 'SQLiteBackend',
                 'RedisBackend', 'MongoDBBackend', 'GridFSBackend', 'DynamoDBBackend', 'FileBackend',
                 'DictCache'):
        assert hasattr(aiocache_http, name), name
