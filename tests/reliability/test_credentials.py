"""No cross-user bleed, by construction: every way a client can send a credential
(per request and per session, aiohttp and requests) on memory, SQLite, Redis and the
filesystem. Users A and B share one backend; B must never receive A's response, A must
still get hits, and a scan of the raw storage (the SQLite file and its WAL, every Redis
value through a raw client, every file) finds none of the secrets and no Set-Cookie.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
import requests

from aiocache_http import CacheBackend, CachedClientSession
from aiocache_http.policy.keys import REDACTED, is_credential, normalize_request
from aiocache_http.sync import CachedSession

from ..backends import FACTORIES
from ..origin import Origin

# aiohttp 3.14 deprecates auth=BasicAuth(...); users still pass it, so it is tested.
pytestmark = pytest.mark.filterwarnings("ignore:.*BasicAuth|.*'auth' parameter:DeprecationWarning")

BACKENDS = ["memory", "sqlite", "redis", "filesystem"]
QUERY_NAMES = ["key", "sig", "auth_token", "private_token", "X-Amz-Signature", "jwt", "session_id",
               "refresh_token", "id_token", "code", "passwd", "access_token", "api_key", "apiKey"]
HEADER_NAMES = ["Authorization", "Proxy-Authorization", "Cookie", "cookie", "COOKIE", "X-Auth-Token",
                "Api-Key", "X-API-Key"]


@dataclass
class Creds:
    """One way of sending a credential, abstract; each client kind applies it its own way."""

    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    cookies: dict[str, str] = field(default_factory=dict)
    auth: tuple[str, str] | None = None
    userinfo: tuple[str, str] | None = None
    form: dict[str, str] | None = None
    json: Any = None
    login: str | None = None  # the origin sets this cookie value on a login request first


@dataclass
class Way:
    name: str
    make: Callable[[str], Creds]
    session_level: bool = False
    clients: tuple[str, ...] = ("async", "sync")


def _cookie_header(secret: str) -> str:
    return f"theme=dark; sid={secret}"


WAYS: list[Way] = [
    *(Way(f"header-{h}", lambda s, h=h: Creds(headers={h: _cookie_header(s) if h.lower() == "cookie"
                                                         else f"Bearer {s}"}))
      for h in HEADER_NAMES),
    *(Way(f"query-{p}", lambda s, p=p: Creds(params={p: s, "page": "1"})) for p in QUERY_NAMES),
    Way("cookies-per-request", lambda s: Creds(cookies={"sid": s})),
    Way("basic-auth-per-request", lambda s: Creds(auth=("user", s))),
    Way("url-userinfo", lambda s: Creds(userinfo=("user", s))),
    Way("form-password", lambda s: Creds(form={"user": "u", "password": s})),
    Way("json-nested-password", lambda s: Creds(json={"user": {"name": "u", "password": s}})),
    Way("session-cookies", lambda s: Creds(cookies={"sid": s}), session_level=True),
    Way("session-authorization", lambda s: Creds(headers={"Authorization": f"Bearer {s}"}),
        session_level=True),
    Way("session-x-auth-token", lambda s: Creds(headers={"X-Auth-Token": s}), session_level=True),
    Way("session-api-key", lambda s: Creds(headers={"Api-Key": s}), session_level=True),
    Way("session-basic-auth", lambda s: Creds(auth=("user", s)), session_level=True),
    Way("session-jar-after-login", lambda s: Creds(login=s), session_level=True),
    Way("session-params", lambda s: Creds(params={"api_key": s}), session_level=True,
        clients=("sync",)),  # aiohttp sessions have no default params
]


class Client:
    """One user's session (async or sync) over the shared backend."""

    def __init__(self, kind: str, backend: CacheBackend, session: Creds) -> None:
        self.kind = kind
        if kind == "async":
            self.aio = CachedClientSession(
                cache=backend, headers=session.headers or None, cookies=session.cookies or None,
                auth=aiohttp.BasicAuth(*session.auth) if session.auth else None,
                cookie_jar=aiohttp.CookieJar(unsafe=True))  # accept cookies from 127.0.0.1
        else:
            self.req = CachedSession(backend=backend, autoclose=False)
            self.req.headers.update(session.headers)
            self.req.cookies.update(session.cookies)
            self.req.params = dict(session.params)
            if session.auth:
                self.req.auth = session.auth

    async def get(self, url: str, creds: Creds) -> tuple[bytes, bool]:
        if creds.userinfo:
            user, password = creds.userinfo
            url = url.replace("http://", f"http://{user}:{quote(password)}@")
        method = "POST" if creds.form is not None or creds.json is not None else "GET"
        if self.kind == "async":
            kwargs: dict[str, Any] = {"headers": creds.headers or None, "params": creds.params or None,
                                      "cookies": creds.cookies or None, "data": creds.form,
                                      "json": creds.json}
            if creds.auth:
                kwargs["auth"] = aiohttp.BasicAuth(*creds.auth)
            async with self.aio.request(method, url, **kwargs) as r:
                return await r.read(), bool(r.from_cache)
        response = await asyncio.to_thread(
            self.req.request, method, url, headers=creds.headers, params=creds.params,
            cookies=creds.cookies, auth=creds.auth, data=creds.form, json=creds.json)
        return response.content, bool(response.from_cache)

    async def login(self, url: str) -> None:
        """Not through the cache: the login URL itself carries the cookie in this test."""
        if self.kind == "async":
            async with self.aio.cache_disabled(), self.aio.get(url) as r:
                assert r.cookies["sid"]
        else:
            with self.req.cache_disabled():
                await asyncio.to_thread(self.req.get, url)

    async def close(self) -> None:
        if self.kind == "async":
            await self.aio.close()
        else:
            self.req.close()


@asynccontextmanager
async def user(kind: str, backend: CacheBackend, way: Way, secret: str, origin: Origin
               ) -> AsyncIterator[tuple[Client, Creds]]:
    creds = way.make(secret)
    client = Client(kind, backend, creds if way.session_level else Creds())
    try:
        if creds.login:  # the origin's Set-Cookie puts the session cookie in the jar
            await client.login(origin.url(f"/r/login?h_Set-Cookie=sid%3D{creds.login}"))
        yield client, (Creds() if way.session_level else creds)
    finally:
        await client.close()


async def raw_storage(backend: CacheBackend, name: str, tmp_path: Path,
                      request: pytest.FixtureRequest) -> bytes:
    """Every byte the backend holds, read beneath it."""
    if name == "memory":
        values = [*await backend.raw_responses.values(), *await backend.raw_redirects.values()]
        return b"\n".join(values)
    if name == "sqlite":  # the database, its WAL and shared memory
        return _files(tmp_path, "cache.sqlite*")
    if name == "filesystem":
        return _files(tmp_path / "http_cache", "**/*")
    import redis

    server = request.getfixturevalue("redis_server_hfe")
    raw = redis.Redis.from_url(server.url)
    chunks: list[bytes] = []
    for key in raw.scan_iter(count=1000):
        kind = raw.type(key)
        if kind == b"hash":
            for field_name, value in raw.hgetall(key).items():
                chunks += [key, field_name, value]
        elif kind == b"string":
            chunks += [key, raw.get(key) or b""]
    raw.close()
    return b"\n".join(chunks)


def _files(root: Path, pattern: str) -> bytes:
    """The files' bytes; one removed while this reads (SQLite's -wal / -shm as the last
    connection closes, on the sync bridge's loop) is left out: its pages are in the
    database file then."""
    chunks = []
    for p in sorted(root.glob(pattern)):
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            chunks.append(p.read_bytes())
    return b"".join(chunks)


@pytest.mark.parametrize("backend_name", BACKENDS)
async def test_no_bleed_and_no_secret_in_storage(backend_name: str, origin: Origin, tmp_path: Path,
                                                 request: pytest.FixtureRequest) -> None:
    backend = FACTORIES[backend_name](request, tmp_path, {
        "expire_after": 300, "allowed_methods": ("GET", "HEAD", "POST"), "autoclose": False,
        "backend_timeout": 30.0, "write_timeout": 30.0})  # bleeds, not latency: no deadline hit under load
    await backend.clear()
    secrets: list[str] = []
    ways = 0
    try:
        for kind in ("async", "sync"):
            for way in WAYS:
                if kind not in way.clients:
                    continue
                ways += 1
                path = f"/r/{kind}-{way.name}?h_Set-Cookie=track%3D1%3B%20Path%3D%2Fnowhere"
                url = origin.url(path)
                a_secret, b_secret = (f"sekrit{uuid.uuid4().hex}" for _ in range(2))
                secrets += [a_secret, b_secret]
                async with user(kind, backend, way, a_secret, origin) as (a, a_creds):
                    first, first_cached = await a.get(url, a_creds)
                    again, again_cached = await a.get(url, a_creds)
                async with user(kind, backend, way, b_secret, origin) as (b, b_creds):
                    other, other_cached = await b.get(url, b_creds)
                where = f"{kind} {way.name}"
                assert not first_cached and again_cached and again == first, f"{where}: A not cached"
                assert not other_cached and other != first, f"{where}: B received A's response"
    finally:
        dump = await raw_storage(backend, backend_name, tmp_path, request)
        await backend.close()
    assert ways >= 40
    assert dump, "nothing was stored"
    leaked = [s for s in secrets if s.encode() in dump
              or base64.b64encode(f"user:{s}".encode()) in dump]
    assert not leaked, f"{len(leaked)} secrets stored in clear"
    # As a stored header name (the request URL scripts the origin with h_Set-Cookie=...).
    assert b'"set-cookie"' not in dump.lower() and b"track=1" not in dump


def test_credential_names_and_patterns() -> None:
    for name in [*QUERY_NAMES, *HEADER_NAMES, "X-Amz-Security-Token", "client_secret", "PHPSESSID",
                 "Ocp-Apim-Subscription-Key", "accessToken", "page_token", "X-Goog-Signature"]:
        assert is_credential(name), name
    for name in ["monkey", "keyword", "q", "page", "sort", "hockey", "Accept", "User-Agent", "id"]:
        assert not is_credential(name), name
    assert is_credential("tenant", ["tenant"]) and is_credential("X-Tenant-Id", ["*tenant*"])


async def test_credential_names_setting_extends_the_list(origin: Origin) -> None:
    async with CachedClientSession(cache=CacheBackend(credential_names=["X-Tenant"])) as s:
        for tenant in ("a", "b"):
            async with s.get(origin.url("/r/tenant"), headers={"X-Tenant": tenant}) as r:
                assert not r.from_cache
    stored = normalize_request(_request({"X-Tenant": "a"}), credential_names=["x-tenant"])[1]
    assert stored.headers["X-Tenant"] == REDACTED


def _request(headers: dict[str, str]) -> Any:
    from multidict import CIMultiDict

    from aiocache_http import CachedRequest

    return CachedRequest("GET", "https://x.test/", CIMultiDict(headers))


@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_ignored_params_opt_out_shares_one_entry_still_redacted(kind: str, origin: Origin) -> None:
    """requests-cache semantics: ignored_parameters=['api_key'] gives one shared entry."""
    backend = CacheBackend(ignored_params=["api_key"], autoclose=False)
    url = origin.url("/r/ignored")
    replies = []
    for secret in ("one-secret", "two-secret"):
        client = Client(kind, backend, Creds())
        replies.append(await client.get(url, Creds(params={"api_key": secret})))
        await client.close()
    assert replies[1] == (replies[0][0], True)  # the second user's request is a hit
    dump = b"".join(await backend.raw_responses.values())
    assert b"one-secret" not in dump and b"api_key=REDACTED" in dump


async def test_jar_cookies_enter_the_key(origin: Origin) -> None:
    """The README used to leave jar cookies out of the key; they identify the user."""
    backend = CacheBackend(autoclose=False)
    async with CachedClientSession(cache=backend, cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
        async with s.get(origin.url("/r/jar")) as r:
            assert not r.from_cache
        s.cookie_jar.update_cookies({"sid": "user-a"})
        async with s.get(origin.url("/r/jar")) as r:
            assert not r.from_cache  # another user now
        async with s.get(origin.url("/r/jar")) as r:
            assert r.from_cache
    with requests.Session() as plain:  # requests' jar, through the sync session, the same
        plain.cookies.set("sid", "user-b")
        session = CachedSession(backend=backend)
        session.cookies = plain.cookies
        first = await asyncio.to_thread(session.get, origin.url("/r/jar"))
        assert not first.from_cache
        session.close()


@asynccontextmanager
async def personal_origin() -> AsyncIterator[str]:
    """/private: 401 until an Authorization comes (as digest auth works); /login: sets a
    session cookie and redirects to /page, whose body is personal."""
    from aiohttp import web

    async def private(request: web.Request) -> web.StreamResponse:
        auth = request.headers.get("Authorization")
        if auth is None:
            return web.Response(status=401, headers={"WWW-Authenticate": 'Custom realm="x"'})
        return web.Response(text=f"private data of {auth}")

    async def login(request: web.Request) -> web.StreamResponse:
        response = web.HTTPFound("/page")
        response.set_cookie("sid", uuid.uuid4().hex)
        raise response

    async def page(request: web.Request) -> web.StreamResponse:
        return web.Response(text=f"page of {request.cookies.get('sid', 'nobody')}")

    app = web.Application()
    app.router.add_get("/private", private)
    app.router.add_get("/login", login)
    app.router.add_get("/page", page)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


class RetryWithToken(requests.auth.AuthBase):
    """Answers a 401 by resending with a token, as requests' HTTPDigestAuth does: the
    credential is added after the request was keyed."""

    def __init__(self, token: str) -> None:
        self.token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.register_hook("response", self.retry)
        return request

    def retry(self, response: requests.Response, **kwargs: Any) -> requests.Response:
        if response.status_code != 401:
            return response
        response.content  # noqa: B018 - drain before reusing the connection
        retry = response.request.copy()
        retry.headers["Authorization"] = f"Token {self.token}"
        again = response.connection.send(retry, **kwargs)
        again.history.append(response)
        again.request = retry
        return again


async def test_credentials_added_after_keying_are_never_stored() -> None:
    """An auth handler answering a 401 (digest auth), a cookie set by a redirect hop: the
    origin saw a credential the key does not hold, so the answer is not stored."""
    backend = CacheBackend(autoclose=False)
    async with personal_origin() as base:
        a = CachedSession(backend=backend, autoclose=False)
        first = await asyncio.to_thread(a.get, base + "/private", auth=RetryWithToken("token-a"))
        assert first.text == "private data of Token token-a"
        b = CachedSession(backend=backend, autoclose=False)
        other = await asyncio.to_thread(b.get, base + "/private")
        assert other.status_code == 401 and not other.from_cache
        for kind in ("async", "sync"):
            bodies = []
            for _ in range(2):  # two users, each logging in afresh
                if kind == "async":
                    async with CachedClientSession(cache=backend, cookie_jar=aiohttp.CookieJar(unsafe=True)
                                                   ) as s, s.get(base + "/login") as r:
                        bodies.append((await r.text(), r.from_cache))
                else:
                    session = CachedSession(backend=backend, autoclose=False)
                    r = await asyncio.to_thread(session.get, base + "/login")
                    bodies.append((r.text, r.from_cache))
            assert bodies[0][0] != bodies[1][0] and not bodies[1][1], kind
    assert await backend.raw_responses.size() == 0
