"""What a user's type checker sees (mypy --strict on code written as the README shows):
the session from ``async with``, the cache attributes of a response, and the per-request
options checked like aiohttp's own keywords."""

from __future__ import annotations

from pathlib import Path

from mypy import api

ROOT = Path(__file__).resolve().parents[1]

USER_CODE = '''
import aiohttp
from aiocache_http import CachedClientSession


async def main() -> None:
    async with CachedClientSession() as session:
        await session.cache.clear()
        async with session.get("http://127.0.0.1/", expire_after=60, params={"a": "1"},
                               timeout=aiohttp.ClientTimeout(total=1)) as response:
            print(response.from_cache, response.expires, response.is_expired, response.cache_key)
            print(await response.read(), response.status, response.headers)
        again = await session.post("http://127.0.0.1/", data=b"x", refresh=True)
        print(again.from_cache)
        session.get("http://127.0.0.1/", expire_afterr=60)  # line 15: a misspelt option
        session.head("http://127.0.0.1/", only_if_cached="yes")  # line 16: a wrong type
'''


SYNC_USER_CODE = '''
from aiocache_http.sync import AnyResponse, CachedSession

session = CachedSession("demo", backend="memory", expire_after=60)
response = session.get("http://127.0.0.1/", params={"a": "1"}, expire_after=30, timeout=1)
print(response.from_cache, response.expires, response.is_expired, response.cache_key)
answer: AnyResponse = session.post("http://127.0.0.1/", json={"a": 1}, only_if_cached=True)
print(answer.created_at, session.request("GET", "http://127.0.0.1/", refresh=True).from_cache)
session.get("http://127.0.0.1/", refresh="yes")  # line 9: a wrong type
'''


def check(tmp_path: Path, code: str) -> list[str]:
    """mypy --strict's errors on ``code`` (the project's settings)."""
    user = tmp_path / "user.py"
    user.write_text(code)
    out, err, status = api.run(["--strict", "--config-file", str(ROOT / "pyproject.toml"),
                                "--cache-dir", str(ROOT / ".mypy_cache"), str(user)])
    assert status in (0, 1), out + err
    return [line for line in out.splitlines() if ": error:" in line]


def test_async_user_code_type_checks_and_bad_options_are_caught(tmp_path: Path) -> None:
    errors = check(tmp_path, USER_CODE)
    assert [line.split(":")[1] for line in errors] == ["15", "16"], errors
    assert '"expire_afterr"' in errors[0] and "did you mean" in errors[0]
    assert '"only_if_cached"' in errors[1] and "bool" in errors[1]


def test_sync_user_code_type_checks_and_bad_options_are_caught(tmp_path: Path) -> None:
    errors = check(tmp_path, SYNC_USER_CODE)
    assert [line.split(":")[1] for line in errors] == ["9"], errors
    assert '"refresh"' in errors[0] and "bool" in errors[0]
