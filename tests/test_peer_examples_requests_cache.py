"""requests-cache's documented examples, run with the one-line change
(``import aiocache_http.sync as requests_cache`` / ``from aiocache_http.sync import ...``).

Each test is one example file (``examples/*.py``) or the code blocks of one user-guide
section (``docs/user_guide/*.md``), written as the docs write it and asserting what the
docs say happens. URLs stay ``httpbin.org`` and the other hosts the docs use, over plain
http: ``HTTP_PROXY`` points requests at a local stand-in (tests/httpbin.py). Caches are
created by name in a temporary working directory, ``~`` is a temporary home.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import datetime, timedelta, timezone
from hashlib import sha256
from importlib.metadata import version as pkg_version
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
import requests
import yaml
from requests import PreparedRequest, Request

import aiocache_http.sync as requests_cache
from aiocache_http.sync import (
    ALL_METHODS,
    DEFAULT_IGNORED_PARAMS,
    DO_NOT_CACHE,
    EXPIRE_IMMEDIATELY,
    NEVER_EXPIRE,
    CachedResponse,
    CachedSession,
    CacheMixin,
    CacheSettings,
    DynamoDbCache,
    FileCache,
    GridFSCache,
    MongoCache,
    RedisCache,
    SerializerPipeline,
    SQLiteCache,
    Stage,
    create_key,
    json_serializer,
    pickle_serializer,
    safe_pickle_serializer,
    utf8_encoder,
)
from aiocache_http.sync.session import OriginalSession, set_response_defaults

from .aws_servers import DUMMY_CREDENTIALS, REGION, MotoServer
from .httpbin import HttpBin, running_httpbin
from .mongo_fakes import enable_fake_gridfs, fake_client
from .redis_servers import RedisServer


@pytest.fixture(scope="module")
def httpbin() -> Iterator[HttpBin]:
    with running_httpbin() as server:
        yield server


@pytest.fixture(autouse=True)
def _as_documented(httpbin: HttpBin, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """httpbin.org and every other host through the local stand-in; a fresh working
    directory and home; no cache left installed."""
    for name in ("HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(name, httpbin.base)
    for name in ("NO_PROXY", "no_proxy"):  # local servers (moto) directly
        monkeypatch.setenv(name, "127.0.0.1,localhost")
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    httpbin.counts.clear()
    httpbin.failing.clear()
    yield
    requests_cache.uninstall_cache()


# -- examples/ ----------------------------------------------------------------------------


def test_basic_sessions(httpbin: HttpBin) -> None:
    """examples/basic_sessions.py"""
    session = CachedSession('example_cache', backend='sqlite')
    for _ in range(5):
        response = session.get('http://httpbin.org/get')
    for _ in range(5):
        response = session.get('http://httpbin.org/delay/2')
    with session.cache_disabled():
        assert json.loads(session.get('http://httpbin.org/ip').text) == {'origin': '127.0.0.1'}
    assert 'SQLite' in str(session.cache) or 'example_cache' in str(session.cache)
    urls = '\n'.join(session.cache.urls())
    # The real request is made once; afterward the cached response is used
    assert httpbin.count('httpbin.org/get') == 1 and httpbin.count('httpbin.org/delay/2') == 1
    assert response.from_cache
    assert urls.splitlines() == ['http://httpbin.org/delay/2', 'http://httpbin.org/get']
    assert Path('example_cache.sqlite').is_file()


def test_basic_patching(httpbin: HttpBin) -> None:
    """examples/basic_patching.py"""
    requests_cache.install_cache('example_cache', backend='sqlite')
    for _ in range(5):
        response = requests.get('http://httpbin.org/get')
    for _ in range(5):
        response = requests.get('http://httpbin.org/delay/2')
    assert response.from_cache
    with requests_cache.disabled():
        text = requests.get('http://httpbin.org/ip').text
        assert json.loads(text) == {'origin': '127.0.0.1'}
    cache = requests_cache.get_cache()
    assert cache is not None
    assert sorted(cache.urls()) == ['http://httpbin.org/delay/2', 'http://httpbin.org/get']
    requests_cache.uninstall_cache()
    assert not hasattr(requests.get('http://httpbin.org/get'), 'from_cache')
    assert httpbin.count('httpbin.org/get') == 2 and httpbin.count('httpbin.org/delay/2') == 1


def test_expiration_example() -> None:
    """examples/expiration.py"""
    URL = 'http://httpbin.org/get'
    session = CachedSession('example_cache', backend='sqlite')
    session.cache.clear()
    # By default, cached responses never expire
    response = session.get(URL)
    assert not response.from_cache
    response = session.get(URL)
    assert response.from_cache
    assert not response.expires
    # We can set default expiration for the session using expire_after
    session = CachedSession('example_cache', backend='sqlite', expire_after=60)
    session.cache.clear()
    response = session.get(URL)
    response = session.get(URL)
    assert response.expires is not None
    assert timedelta(seconds=50) < response.expires - datetime.now(timezone.utc) <= timedelta(seconds=60)
    # This can also be overridden for individual requests
    session.cache.clear()
    response = session.get(URL, expire_after=1)
    response = session.get(URL)
    assert response.from_cache
    # After 1 second, the cached value will expired
    time.sleep(1.1)
    assert response.is_expired
    response = session.get(URL)
    assert response.revalidated or not response.from_cache


def test_url_patterns_example(httpbin: HttpBin) -> None:
    """examples/url_patterns.py"""
    default_expire_after = 60 * 60
    urls_expire_after = {
        'httpbin.org/image': timedelta(days=7),
        '*.fillmurray.com': NEVER_EXPIRE,
        '*.placeholder.com/*': DO_NOT_CACHE,
    }
    urls = [
        'http://httpbin.org/get',
        'http://httpbin.org/image/jpeg',
        'http://www.fillmurray.com/460/300',
        'http://via.placeholder.com/350x150',
    ]

    def send_requests() -> list[Any]:
        session = CachedSession(
            cache_name='example_cache',
            expire_after=default_expire_after,
            urls_expire_after=urls_expire_after,
        )
        return [session.get(url) for url in urls]

    send_requests()
    hour, week, never, uncached = send_requests()
    now = datetime.now(timezone.utc)
    assert hour.from_cache and timedelta(minutes=59) < hour.expires - now <= timedelta(hours=1)
    assert week.from_cache and timedelta(days=6.9) < week.expires - now <= timedelta(days=7)
    assert never.from_cache and never.expires is None
    assert not uncached.from_cache
    assert httpbin.count('via.placeholder.com/350x150') == 2 and httpbin.count('httpbin.org/get') == 1


def test_custom_request_matcher() -> None:
    """examples/custom_request_matcher.py: a key_fn that reads more than the request (library
    versions) is called for every request, so a new version is a new key."""
    from requests.help import info as get_requests_info

    state = {'info': get_requests_info}

    def create_custom_key(request: PreparedRequest, **kwargs: Any) -> str:
        base_key = create_key(request, **kwargs)
        key = sha256()
        key.update(base_key.encode('utf-8'))
        requests_info = state['info']()
        for lib in ['requests', 'urllib3']:
            key.update(requests_info[lib]['version'].encode('utf-8'))
        key.update(pkg_version('aiocache-http').encode('utf-8'))
        return key.hexdigest()

    session = CachedSession('key-test', key_fn=create_custom_key)
    session.cache.clear()
    session.get('http://httpbin.org/get')
    response = session.get('http://httpbin.org/get')
    assert response.from_cache is True
    # Simulate a major version change
    new_versions = {'requests': {'version': '3.0.0'}, 'urllib3': {'version': '2.0.0'}}
    state['info'] = lambda: new_versions
    response = session.get('http://httpbin.org/get')
    assert response.from_cache is False


def test_threads(httpbin: HttpBin) -> None:
    """examples/threads.py: one session, five threads, twice."""
    URLS = [
        'http://en.wikipedia.org/wiki/Python_(programming_language)',
        'http://en.wikipedia.org/wiki/Requests_(software)',
        'http://en.wikipedia.org/wiki/Cache_(computing)',
        'http://en.wikipedia.org/wiki/SQLite',
        'http://en.wikipedia.org/wiki/Redis',
        'http://en.wikipedia.org/wiki/MongoDB',
    ]

    def send_requests() -> dict[str, bool]:
        session = CachedSession('example_cache')
        seen = {}
        with ThreadPoolExecutor(max_workers=5) as executor:
            future_to_url = {executor.submit(session.get, url): url for url in URLS}
            for future in as_completed(future_to_url):
                url = future_to_url[future]
                response = future.result()
                assert len(response.content) > 0
                seen[url] = response.from_cache
        return seen

    assert not any(send_requests().values())
    assert all(send_requests().values())
    assert sum(httpbin.counts.values()) == len(URLS)


def test_log_requests() -> None:
    """examples/log_requests.py: mock the real send, count what reaches it."""
    real_response = set_response_defaults(requests.get('http://httpbin.org/get'))
    with patch.object(OriginalSession, 'send', return_value=real_response) as mock_send:
        session = CachedSession('cache-test', backend='sqlite')
        session.cache.clear()
        for _ in range(10):
            session.get('http://httpbin.org/get')
        cached_responses = session.cache.responses.values()
    assert len(list(cached_responses)) == 1
    assert mock_send.call_count == 1
    assert real_response.from_cache is False and real_response.expires is None


def test_external_config(tmp_path: Path) -> None:
    """examples/external_config.py (+ external_config.yml): ``session.settings = ...``."""
    CONFIG_FILE = tmp_path / 'external_config.yml'
    CONFIG_FILE.write_text(
        'cache_settings:\n  expire_after: 360\n  cache_control: True\n  stale_if_error: True\n'
        '  allowable_methods:\n    - GET\n    - HEAD\n    - POST\n  allowable_codes:\n    - 200\n'
        '    - 400\n  ignored_parameters:\n    - api_key\n  match_headers:\n    - Accept-Language\n')

    def load_settings() -> CacheSettings:
        with open(CONFIG_FILE) as f:
            settings = yaml.safe_load(f)
        return CacheSettings(**settings['cache_settings'])

    session = CachedSession()
    session.settings = load_settings()
    assert session.settings.expire_after == 360 and session.settings.cache_control is True
    assert session.settings.allowable_methods == ('GET', 'HEAD', 'POST')
    assert session.settings.allowable_codes == (200, 400)
    assert session.settings.match_headers == ('Accept-Language',)
    session.post('http://httpbin.org/post', data=b'x')
    assert session.post('http://httpbin.org/post', data=b'x').from_cache  # POST is cached now
    with pytest.raises(AttributeError, match="serializer"):
        session.settings = CacheSettings(serializer='pickle')  # fixed with the backend


def test_pygithub_cache_setup(httpbin: HttpBin) -> None:
    """examples/pygithub.py, without PyGithub (not installed; no network): the cache it
    installs (Cache-Control, GitHub only) and its checks: non-GitHub requests are not
    cached, credentials are not in the cache."""
    requests_cache.install_cache(
        cache_control=True,
        urls_expire_after={'*.github.com': 360, '*': DO_NOT_CACHE},
    )
    response = requests.get('http://httpbin.org/json')
    response = requests.get('http://httpbin.org/json')
    assert not getattr(response, 'from_cache', False)
    headers = {'Authorization': 'token ghp_secret'}
    requests.get('http://api.github.com/user/repos', headers=headers)
    response = requests.get('http://api.github.com/user/repos', headers=headers)
    assert response.from_cache
    cache = requests_cache.get_cache()
    assert cache is not None
    assert cache.urls() == ['http://api.github.com/user/repos']
    for cached in cache.responses.values():
        assert 'ghp_secret' not in cached.request.headers.get('Authorization', '')


def test_benchmark_save_response_and_read() -> None:
    """examples/benchmark.py's write and read loops (3 responses, not 5000)."""
    from os import urandom

    BASE_RESPONSE = requests.get('http://httpbin.org/get')
    session = CachedSession('benchmark_cache', backend='sqlite', serializer='pickle')
    for i in range(3):
        new_response = CachedResponse.from_response(BASE_RESPONSE)
        new_response._content = urandom(100 + i)
        new_response.request.url += f'/response_{i}'
        session.cache.save_response(new_response)
    keys = list(session.cache.responses.keys())
    assert len(keys) == 3
    sizes = sorted(len(session.cache.get_response(key).content) for key in keys)
    assert sizes == [100, 101, 102]


def test_vcr_export(tmp_path: Path) -> None:
    """examples/vcr.py with the difference the migration guide lists: the preconf stage is
    in ``aiocache_http.sync.serializers``; its dict has ``content`` and [name, value]
    header pairs (repeated headers kept)."""
    from aiocache_http.sync.serializers import yaml_preconf_stage

    session = CachedSession(str(tmp_path / 'example_cache' / 'http_cache.sqlite'))
    session.get('http://httpbin.org/get')
    session.get('http://httpbin.org/json')
    episodes = []
    for response in session.cache.responses.values():
        d = yaml_preconf_stage.dumps(response)
        episodes.append({'request': {'method': d['request']['method'], 'uri': d['request']['url']},
                         'response': {'status': {'code': d['status_code'], 'message': d['reason']},
                                      'body': {'string': d['content'], 'encoding': d['encoding']}},
                         'recorded_at': d['created_at']})
    path = tmp_path / 'example_cache' / 'http_cache.yaml'
    path.write_text(yaml.safe_dump({'http_interactions': episodes}))
    loaded = yaml.safe_load(path.read_text())['http_interactions']
    assert sorted(e['request']['uri'] for e in loaded) == ['http://httpbin.org/get', 'http://httpbin.org/json']


# -- docs/user_guide ----------------------------------------------------------------------


def test_general(httpbin: HttpBin) -> None:
    """docs/user_guide/general.md"""
    session = CachedSession()
    session.get('http://httpbin.org/get')
    session.request('GET', 'http://httpbin.org/get')
    session.head('http://httpbin.org/get')
    with session.cache_disabled():
        session.get('http://httpbin.org/get')
    assert httpbin.count('httpbin.org/get') == 3  # the first GET, the HEAD, the disabled GET
    session.cache.clear()
    assert len(session.cache.responses) == 0

    requests_cache.install_cache()
    requests.get('http://httpbin.org/get')
    assert requests.get('http://httpbin.org/get').from_cache
    session = requests.Session()
    assert session.get('http://httpbin.org/get').from_cache
    requests_cache.install_cache(expire_after=360, allowable_methods=('GET', 'POST'))
    requests.post('http://httpbin.org/post', data=b'1')
    assert requests.post('http://httpbin.org/post', data=b'1').from_cache
    requests_cache.uninstall_cache()
    with requests_cache.enabled():
        requests.get('http://httpbin.org/get')  # Will be cached
        assert requests.get('http://httpbin.org/get').from_cache
    requests_cache.install_cache()
    with requests_cache.disabled():
        response = requests.get('http://httpbin.org/get')  # Will not be cached
        assert not getattr(response, 'from_cache', False)
    requests_cache.uninstall_cache()
    assert not hasattr(requests.get('http://httpbin.org/get'), 'from_cache')

    session = CachedSession()
    session.settings.expire_after = 360
    session.settings.stale_if_error = True
    assert session.get('http://httpbin.org/json').expires is not None


def test_general_shared_backend(redis_server: RedisServer) -> None:
    """docs/user_guide/general.md: two sessions on one backend (``autoclose=False``)."""
    backend = RedisCache(port=redis_server.port)
    session1 = CachedSession(backend=backend, autoclose=False)
    session2 = CachedSession(backend=backend, autoclose=False)
    session1.cache.clear()
    session1.get('http://httpbin.org/get')
    session1.close()
    assert session2.get('http://httpbin.org/get').from_cache  # still open, same cache
    session2.close()


def test_expiration_values() -> None:
    """docs/user_guide/expiration.md: expire_after values and urls_expire_after."""
    session = CachedSession(expire_after=360)
    session = CachedSession(expire_after=60)
    session = CachedSession(expire_after=timedelta(days=30))
    assert session.settings.expire_after == 30 * 86400
    session = CachedSession(expire_after=datetime(2023, 1, 1, 0, 0))
    session.settings.expire_after = NEVER_EXPIRE
    assert session.get('http://httpbin.org/get').expires is None
    session = CachedSession('dnc', expire_after=DO_NOT_CACHE)
    session.get('http://httpbin.org/get')
    assert not session.get('http://httpbin.org/get').from_cache
    # Override for a single request: cache the response if it can be revalidated
    session.get('http://httpbin.org/etag/v1', expire_after=EXPIRE_IMMEDIATELY)
    response = session.get('http://httpbin.org/etag/v1', expire_after=EXPIRE_IMMEDIATELY)
    assert response.from_cache and response.revalidated

    urls_expire_after = {
        '*.site_1.com': 30,
        'site_2.com/resource_1': 60 * 2,
        'site_2.com/resource_2': 60 * 60 * 24,
        re.compile(r'site_2.com/resource_\d'): 60 * 60 * 24 * 7,
        'site_2.com/resource_*': 60 * 60,
        'site_2.com/static': NEVER_EXPIRE,
    }
    session = CachedSession('patterns', urls_expire_after=urls_expire_after)
    now = datetime.now(timezone.utc)
    expected = {'http://www.site_1.com/a': 30, 'http://site_2.com/resource_1': 120,
                'http://site_2.com/resource_2': 86400, 'http://site_2.com/resource_3': 7 * 86400,
                'http://site_2.com/resource_x': 3600, 'http://site_2.com/static/a.png': None}
    for url, seconds in expected.items():
        expires = session.get(url).expires
        if seconds is None:
            assert expires is None, url
        else:
            assert abs((expires - now).total_seconds() - seconds) < 30, url


def test_expiration_errors_and_stale(httpbin: HttpBin) -> None:
    """docs/user_guide/expiration.md: stale_if_error, only_if_cached, refresh, per-request
    expire_after, removal."""
    session = CachedSession(stale_if_error=True)
    session.get('http://httpbin.org/get', expire_after=1)
    time.sleep(1.1)
    httpbin.failing['httpbin.org/get'] = 500  # the site is experiencing downtime
    response = session.get('http://httpbin.org/get')
    assert (response.from_cache, response.is_expired) == (True, True)
    httpbin.failing.clear()

    session = CachedSession(stale_if_error=timedelta(minutes=5))
    session = CachedSession(stale_while_revalidate=True)
    session = CachedSession(stale_while_revalidate=timedelta(minutes=5))
    assert session.settings.stale_while_revalidate == 300

    session = CachedSession(expire_after=300)
    response = session.get('http://httpbin.org/json', expire_after=60)  # cached for 60 s, not 300
    assert response.expires - datetime.now(timezone.utc) <= timedelta(seconds=60)
    response_1 = session.get('http://httpbin.org/get')
    response_2 = session.get('http://httpbin.org/get', refresh=True)
    assert response_2.from_cache is False
    session = CachedSession(always_revalidate=True)
    assert session.settings.always_revalidate

    session = CachedSession()
    session.cache.clear()
    response = session.get('http://httpbin.org/get', only_if_cached=True)
    assert response.status_code == 504
    with pytest.raises(requests.HTTPError, match='504 Server Error: Not Cached'):
        response.raise_for_status()

    session = CachedSession(expire_after=1, stale_if_error=True)
    session.get('http://httpbin.org/get')
    time.sleep(1.1)
    response = session.get('http://httpbin.org/get', only_if_cached=True)
    assert response.status_code == 200
    assert response_1 is not None


def test_expiration_removal() -> None:
    """docs/user_guide/expiration.md: removing responses."""
    session = CachedSession(expire_after=60)
    for url in ('http://httpbin.org/json', 'http://httpbin.org/get?key=value', 'http://httpbin.org/get',
                'http://httpbin.org/ip'):
        session.get(url, headers={'header': 'value'} if url.endswith('/get') else None)
    session.cache.reset_expiration(timedelta(days=30))
    session.cache.delete(expired=True)
    requests_cache.install_cache(expire_after=60)
    requests_cache.delete(expired=True)
    session.cache.delete(older_than=timedelta(days=7))
    assert len(session.cache.responses) == 4
    session.cache.delete(urls=['http://httpbin.org/json'])
    request_1 = Request('GET', 'http://httpbin.org/get', params={'key': 'value'})
    request_2 = Request('GET', 'http://httpbin.org/get', headers={'header': 'value'})
    session.cache.delete(requests=[request_1, request_2])
    assert session.cache.urls() == ['http://httpbin.org/ip']
    [key] = session.cache.responses.keys()
    session.cache.delete(key)
    assert len(session.cache.responses) == 0
    session.cache.clear()


def test_headers_cache_control(httpbin: HttpBin) -> None:
    """docs/user_guide/headers.md: Cache-Control and conditional requests."""
    session = CachedSession(cache_control=True)
    response = session.get('http://httpbin.org/cache/60')
    response = session.get('http://httpbin.org/cache/60')
    assert response.from_cache
    session.get('http://httpbin.org/etag/abc', expire_after=1)
    time.sleep(1.1)
    response = session.get('http://httpbin.org/etag/abc')
    assert response.from_cache and response.revalidated
    assert httpbin.count('httpbin.org/etag/abc') == 2
    session = CachedSession(cache_control=True)
    response = session.get('http://httpbin.org/get', headers={'Cache-Control': 'no-store'})
    assert not session.get('http://httpbin.org/get').from_cache


def test_filtering() -> None:
    """docs/user_guide/filtering.md"""
    session = CachedSession(allowable_codes=(200, 418))
    session = CachedSession(allowable_methods=['GET', 'POST'])
    session.post('http://httpbin.org/post', json={'param': 'value'})
    assert session.post('http://httpbin.org/post', json={'param': 'value'}).from_cache
    # ('GET') in the docs is a str: one method
    session = CachedSession('get_only', allowable_methods=('GET'))
    session.post('http://httpbin.org/post', headers={'X-HTTP-Method-Override': 'GET'})
    assert not session.post('http://httpbin.org/post', headers={'X-HTTP-Method-Override': 'GET'}).from_cache
    session = CachedSession(urls_expire_after={
        'httpbin.org/get': DO_NOT_CACHE,  # Don't cache this
        '*.github.com': 360,
        '*': DO_NOT_CACHE,
    })
    session.get('http://httpbin.org/get')
    assert not session.get('http://httpbin.org/get').from_cache

    from sys import getsizeof

    def filter_by_size(response: requests.Response) -> bool:
        """Don't cache responses with a body over 1 MB"""
        return getsizeof(response.content) <= 1024 * 1024

    session = CachedSession('sized', filter_fn=filter_by_size)
    session.get('http://httpbin.org/bytes/2000000')
    assert not session.get('http://httpbin.org/bytes/2000000').from_cache
    session.get('http://httpbin.org/bytes/100')
    assert session.get('http://httpbin.org/bytes/100').from_cache


def test_matching(httpbin: HttpBin) -> None:
    """docs/user_guide/matching.md"""
    session = CachedSession(ignored_parameters=['auth-token'])
    session.get('http://httpbin.org/get', params={'auth-token': '2F63E5DF4F44'})
    response = session.get('http://httpbin.org/get', params={'auth-token': 'D9FAEB3449D3'})
    assert response.from_cache
    session = CachedSession('headers', match_headers=True)
    session.get('http://httpbin.org/headers', headers={'Accept': 'application/json'})
    assert not session.get('http://httpbin.org/headers', headers={'Accept': 'text/xml'}).from_cache
    session = CachedSession('some', match_headers=['Accept-Language'])
    session.get('http://httpbin.org/headers', headers={'Accept-Language': 'en', 'Accept': 'a/b'})
    response = session.get('http://httpbin.org/headers', headers={'Accept-Language': 'en', 'Accept': 'c/d'})
    assert response.from_cache

    def create_key_with_versions(request: requests.PreparedRequest, **kwargs: Any) -> str:
        return create_key(request, **kwargs) + '-' + requests.__version__

    session = CachedSession('custom', key_fn=create_key_with_versions)
    session.get('http://httpbin.org/get')
    response = session.get('http://httpbin.org/get')
    assert response.from_cache and response.cache_key.endswith(requests.__version__)


def test_inspection() -> None:
    """docs/user_guide/inspection.md"""
    session = CachedSession(expire_after=timedelta(days=1))
    response = session.get('http://httpbin.org/get')
    assert not response.from_cache and not response.is_expired
    response = session.get('http://httpbin.org/get')
    assert response.from_cache and not response.is_expired
    assert response.created_at <= datetime.now(timezone.utc) < response.expires
    assert isinstance(response, CachedResponse) and 'CachedResponse' in repr(response)
    session.get('http://httpbin.org/json')
    urls = session.cache.urls()
    assert urls == ['http://httpbin.org/get', 'http://httpbin.org/json']
    responses = list(session.cache.responses.values())
    assert all(isinstance(r, CachedResponse) for r in responses)
    assert set(session.cache.responses.keys()) == {r.cache_key for r in responses}
    assert session.cache.contains(url='http://httpbin.org/json')
    assert session.cache.contains(request=Request('GET', 'http://httpbin.org/get'))
    post_requests = list(session.cache.filter(valid=True, expired=False))
    assert len(post_requests) == 2
    for response in session.cache.filter():
        assert response.url.startswith('http://httpbin.org/')


def test_security(httpbin: HttpBin) -> None:
    """docs/user_guide/security.md: signed pickles, credentials out of storage."""
    secret_key = 'my secret key'
    serializer = safe_pickle_serializer(secret_key=secret_key)
    session = CachedSession(serializer=serializer)
    session.get('http://httpbin.org/get')
    serializer_2 = safe_pickle_serializer(secret_key='a different key')
    session_2 = CachedSession(serializer=serializer_2)
    cache_key = list(session_2.cache.responses.keys())[0]  # noqa: RUF015  (as the docs write it)
    # With another key, the stored item does not verify: a new request is sent
    response = session_2.get('http://httpbin.org/get')
    assert not response.from_cache and httpbin.count('httpbin.org/get') == 2
    assert cache_key == response.cache_key

    ignored_parameters = list(DEFAULT_IGNORED_PARAMS) + ['X-Nonstandard-Credential']  # noqa: RUF005
    session = CachedSession('secrets', ignored_parameters=ignored_parameters)
    auth = {'Authorization': 'Bearer t1'}
    session.get('http://httpbin.org/get', params={'api_key': 'k1'}, headers=auth)
    # A credential stays in the key, even with requests-cache's list spread in
    other = session.get('http://httpbin.org/get', params={'api_key': 'k2'}, headers=auth)
    assert not other.from_cache
    for stored in session.cache.responses.values():
        assert 'k1' not in stored.request.url and 't1' not in stored.request.headers.get('Authorization', '')


def test_serializers(tmp_path: Path) -> None:
    """docs/user_guide/serializers.md"""
    import gzip

    session = CachedSession('my_cache', serializer='json')
    session = CachedSession('my_cache', serializer=json_serializer)
    session.get('http://httpbin.org/get')
    assert session.get('http://httpbin.org/get').from_cache
    session = CachedSession('my_cache_yaml', backend='filesystem', serializer='yaml')
    session.get('http://httpbin.org/get')
    [path] = session.cache.paths()
    assert path.name.endswith('.yaml')
    backend = FileCache('http_cache', serializer=json_serializer)
    session = CachedSession(backend=backend)
    session.get('http://httpbin.org/json')

    compressed_serializer = SerializerPipeline(
        [pickle_serializer, Stage(dumps=gzip.compress, loads=gzip.decompress)],
        is_binary=True,
    )
    session = CachedSession('gz', serializer=compressed_serializer)
    session.get('http://httpbin.org/get')
    assert session.get('http://httpbin.org/get').from_cache
    comp_json_serializer = SerializerPipeline([
        json_serializer,  # Serialize to a JSON string
        utf8_encoder,  # Encode to bytes
        Stage(dumps=gzip.compress, loads=gzip.decompress),  # Compress
    ])
    session = CachedSession('gzjson', serializer=comp_json_serializer)
    session.get('http://httpbin.org/get')
    assert session.get('http://httpbin.org/get').from_cache


def test_backends_sqlite() -> None:
    """docs/user_guide/backends/sqlite.md"""
    backend = SQLiteCache()
    session = CachedSession(backend=backend)
    session = CachedSession(backend='sqlite')
    for backend in (SQLiteCache(timeout=30), SQLiteCache('cache/http_cache.sqlite'),
                    SQLiteCache(use_memory=True), SQLiteCache(':memory:'),
                    SQLiteCache(fast_save=True), SQLiteCache(wal=True)):
        session = CachedSession(backend=backend)
        session.get('http://httpbin.org/get')
        assert session.get('http://httpbin.org/get').from_cache
    assert Path('cache/http_cache.sqlite').is_file()


def test_backends_filesystem() -> None:
    """docs/user_guide/backends/filesystem.md"""
    session = CachedSession(backend=FileCache())
    session = CachedSession(backend='filesystem')
    session = CachedSession('~/http_cache', backend='filesystem', serializer='yaml')
    session.get('http://httpbin.org/get')
    paths = list(session.cache.paths())
    assert len(paths) == 1 and paths[0].parent == Path.home() / 'http_cache'
    session = CachedSession(
        '~/http_cache_lru',
        backend='filesystem',
        max_cache_bytes=200 * 1024 * 1024,  # 200MB
        max_file_bytes=50 * 1024 * 1024,  # 50MB
        block_bytes=4096,  # 4KB blocks
        sync_index=True,  # Check for manual changes on disk since last use
    )
    session.get('http://httpbin.org/get')
    assert session.get('http://httpbin.org/get').from_cache
    lock = threading.RLock()
    session1 = CachedSession(backend='filesystem', cache_name='cache_dir', max_cache_bytes=10**6, lock=lock)
    session2 = CachedSession(backend='filesystem', cache_name='cache_dir', max_cache_bytes=10**6, lock=lock)
    session1.get('http://httpbin.org/json')
    assert session2.get('http://httpbin.org/json').from_cache


def test_backends_redis(redis_server: RedisServer) -> None:
    """docs/user_guide/backends/redis.md (the server on its test port, not 6379)."""
    from redis import Redis

    port = redis_server.port
    session = CachedSession(backend=RedisCache(port=port))
    session.cache.clear()
    backend = RedisCache(host='127.0.0.1', port=port)
    session = CachedSession('http_cache', backend=backend)
    session.get('http://httpbin.org/get')
    assert session.get('http://httpbin.org/get').from_cache
    connection = Redis(host='127.0.0.1', port=port)
    backend = RedisCache(connection=connection)
    session = CachedSession('http_cache', backend=backend)
    assert session.get('http://httpbin.org/get').from_cache
    backend = RedisCache(ttl_offset=3600, port=port)
    backend = RedisCache('no_ttl', ttl=False, port=port)  # (a namespace of its own, to look at)
    session = CachedSession(backend=backend, expire_after=60)
    session.get('http://httpbin.org/json')
    keys = connection.keys('no_ttl*')
    assert keys and all(connection.ttl(k) == -1 for k in keys)
    session.cache.clear()


def test_compatibility_cache_mixin() -> None:
    """docs/user_guide/compatibility.md: CacheMixin with another session class (requests-html,
    requests-oauthlib... are not installed: a session class of the same shape instead)."""

    class SomeOtherMixin:
        def request(self, *args: Any, **kwargs: Any) -> Any:
            response = super().request(*args, **kwargs)  # type: ignore[misc]
            response.seen_by_other = True
            return response

    class CustomSession(CacheMixin, SomeOtherMixin, requests.Session):
        """Session class with features from both some_other_lib and requests-cache"""

    session = CustomSession()
    response = session.get('http://httpbin.org/get')
    assert response.seen_by_other and not response.from_cache
    assert session.get('http://httpbin.org/get').from_cache

    class OAuth2Session(requests.Session):
        def __init__(self, client_id: str | None = None, token: dict[str, str] | None = None) -> None:
            super().__init__()
            self.client_id, self.token = client_id, token

    class CachedOAuth2Session(CacheMixin, OAuth2Session):
        """Session with features from both CachedSession and OAuth2Session"""

    session = CachedOAuth2Session(client_id='my_client_id', token={'a': 'b'}, expire_after=60)
    assert (session.client_id, session.token) == ('my_client_id', {'a': 'b'})
    assert session.settings.expire_after == 60
    assert isinstance(session, requests.Session) and 'CachedOAuth2Session' in repr(session)

    requests_cache.install_cache(session_factory=CustomSession)
    requests.get('http://httpbin.org/ip')
    response = requests.get('http://httpbin.org/ip')
    assert response.from_cache and response.seen_by_other


def test_top_level_names() -> None:
    """Names the docs import from ``requests_cache`` itself."""
    from aiocache_http.sync import DEFAULT_METHODS, DEFAULT_STATUS_CODES

    assert DEFAULT_METHODS == ('GET', 'HEAD') and DEFAULT_STATUS_CODES == (200,)
    assert 'POST' in ALL_METHODS and DEFAULT_IGNORED_PARAMS == ()
    from aiocache_http.sync.backends import BaseCache, BaseStorage  # noqa: F401
    from aiocache_http.sync.cache_keys import create_key as create_key_2

    assert create_key_2 is create_key


def test_backends_dynamodb(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/user_guide/backends/dynamodb.md, unchanged: moto is reached through botocore's
    own ``AWS_ENDPOINT_URL``, credentials and region from the environment."""
    monkeypatch.setenv('AWS_ENDPOINT_URL', moto_server.endpoint_url)
    monkeypatch.setenv('AWS_DEFAULT_REGION', REGION)
    for name, value in DUMMY_CREDENTIALS.items():
        monkeypatch.setenv(name.upper(), value)
    session = CachedSession(backend=DynamoDbCache())
    session.get('http://httpbin.org/get')
    assert session.get('http://httpbin.org/get').from_cache
    session = CachedSession(backend='dynamodb')
    assert session.get('http://httpbin.org/get').from_cache
    backend = DynamoDbCache(region_name='us-west-2')
    session = CachedSession(backend=backend)
    session.get('http://httpbin.org/json')
    assert session.get('http://httpbin.org/json').from_cache
    backend = DynamoDbCache(ttl=False)
    backend = DynamoDbCache(create_table=False)
    session = CachedSession(backend=backend)
    assert session.get('http://httpbin.org/get').from_cache  # the table made above


def test_backends_mongodb(request: pytest.FixtureRequest) -> None:
    """docs/user_guide/backends/mongodb.md and gridfs.md, on the in-process fake client
    (``connection=``: no MongoDB server here)."""
    connection = fake_client(request)
    enable_fake_gridfs(request)
    backend = MongoCache(connection=connection)
    session = CachedSession(backend=backend)
    session.get('http://httpbin.org/get')
    assert session.get('http://httpbin.org/get').from_cache
    # set_ttl() is a documented difference: the error says what to write instead
    with pytest.raises(NotImplementedError, match=r"MongoCache\(ttl_offset="):
        backend.set_ttl(3600)
    backend = MongoCache(connection=connection, ttl_offset=timedelta(days=7))
    session = CachedSession(backend=backend, expire_after=timedelta(days=1))
    assert session.get('http://httpbin.org/get').from_cache
    backend = GridFSCache(connection=connection)
    session = CachedSession(backend=backend)
    session.get('http://httpbin.org/json')
    assert session.get('http://httpbin.org/json').from_cache


def test_advanced_requests(httpbin: HttpBin) -> None:
    """docs/user_guide/advanced_requests.md: a response hook that sees from_cache; streams."""
    slept = []

    def make_throttle_hook(timeout: float = 1.0) -> Any:
        """Make a request hook function that adds a custom delay for non-cached requests"""
        def hook(response: Any, *args: Any, **kwargs: Any) -> Any:
            if not getattr(response, 'from_cache', False):
                slept.append(timeout)
                time.sleep(timeout)
            return response
        return hook

    session = CachedSession()
    session.hooks['response'].append(make_throttle_hook(0.1))
    # The first (real) request will have an added delay
    session.get('http://httpbin.org/get')
    session.get('http://httpbin.org/get')
    assert slept == [0.1]

    lines = []
    for _ in range(2):
        response = session.get('http://httpbin.org/stream/20', stream=True)
        lines.append([chunk.decode('utf-8') for chunk in response.iter_lines()])
    assert lines[0] == lines[1] and len(lines[0]) == 20 and response.from_cache
    assert httpbin.count('httpbin.org/stream/20') == 1


def test_files(tmp_path: Path) -> None:
    """docs/user_guide/files.md: where the cache files go."""
    import tempfile

    session = CachedSession('http_cache', backend='sqlite')
    assert Path(session.cache.db_path) == tmp_path / 'http_cache.sqlite'
    session = CachedSession('http_cache', backend='filesystem')
    assert Path(session.cache.cache_dir) == tmp_path / 'http_cache'
    session = CachedSession('~/.myapp/http_cache', backend='sqlite')
    assert Path(session.cache.db_path) == tmp_path / '.myapp' / 'http_cache.sqlite'
    session = CachedSession('http_cache', backend='sqlite', use_temp=True)
    assert Path(session.cache.db_path) == Path(tempfile.gettempdir()) / 'http_cache.sqlite'
    session = CachedSession('http_cache', backend='filesystem', use_cache_dir=True)
    assert Path(session.cache.cache_dir).is_relative_to(tmp_path)  # the user cache dir, under ~
    assert Path(session.cache.cache_dir).name == 'http_cache'


def test_headers_conditional_requests(httpbin: HttpBin) -> None:
    """docs/user_guide/headers.md: an expired response with an ETag is revalidated."""
    url = 'http://api.github.com/repos/requests-cache/requests-cache'
    session = CachedSession(expire_after=1)
    session.get(url)
    time.sleep(1.1)
    # The cached response will still be used until the remote content actually changes
    response = session.get(url)
    assert response.from_cache
    assert httpbin.count('api.github.com/repos/requests-cache/requests-cache') == 2


def test_backends_export(redis_server: RedisServer) -> None:
    """docs/user_guide/backends.md: copy a Redis cache to JSON files."""
    src_session = CachedSession('my_cache', backend=RedisCache('my_cache', port=redis_server.port))
    src_session.cache.clear()
    src_session.get('http://httpbin.org/get')
    src_session.get('http://httpbin.org/json')
    dest_session = CachedSession('~/workspace/cache_dump', backend='filesystem', serializer='json')
    dest_session.cache.update(src_session.cache)
    paths = dest_session.cache.paths()
    assert len(paths) == 2 and all(p.suffix == '.json' for p in paths)
    assert dest_session.get('http://httpbin.org/json').from_cache
    src_cache = RedisCache('my_cache', port=redis_server.port)
    dest_cache = FileCache('~/workspace/cache_dump2', serializer='json')
    dest_cache.update(src_cache)
    assert len(dest_cache.paths()) == 2
    src_session.cache.clear()


def test_backends_custom() -> None:
    """docs/user_guide/backends.md: a custom backend, its storage a dict-like BaseStorage."""
    from aiocache_http.sync.backends import BaseCache, BaseStorage

    class CustomCache(BaseCache):
        """Wrapper for higher-level cache operations."""
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.redirects = CustomStorage(**kwargs)
            self.responses = CustomStorage(**kwargs)

    class CustomStorage(BaseStorage):
        """Dict-like interface for lower-level backend storage operations"""
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.data: dict[str, Any] = {}
            made.append(self)

        def __getitem__(self, key: str) -> Any:
            return self.data[key]

        def __setitem__(self, key: str, value: Any) -> None:
            self.data[key] = value

        def __delitem__(self, key: str) -> None:
            del self.data[key]

        def __iter__(self) -> Iterator[str]:
            return iter(list(self.data))

        def __len__(self) -> int:
            return len(self.data)

        def clear(self) -> None:
            self.data.clear()

    made: list[CustomStorage] = []
    session = CachedSession(backend=CustomCache())
    session.get('http://httpbin.org/get')
    assert session.get('http://httpbin.org/get').from_cache
    assert len(session.cache.responses) == 1
    _redirects, responses = made
    assert list(responses.data) == [session.get('http://httpbin.org/get').cache_key]
    session.cache.clear()
    assert responses.data == {}


def test_troubleshooting_logging(caplog: pytest.LogCaptureFixture) -> None:
    """docs/user_guide/troubleshooting.md: the library's logger, by the package's name."""
    import logging

    logging.getLogger('aiocache_http').setLevel('DEBUG')
    try:
        with caplog.at_level('DEBUG', logger='aiocache_http'):
            session = CachedSession()
            session.get('http://httpbin.org/get')
            session.get('http://httpbin.org/get')
    finally:
        logging.getLogger('aiocache_http').setLevel('NOTSET')
    assert any(r.name.startswith('aiocache_http') for r in caplog.records)
