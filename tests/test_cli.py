"""The ``aiocache-http`` command, end to end: a subprocess against SQLite, Redis and the
filesystem, on caches the async and the sync sessions filled."""

from __future__ import annotations

import re
import shutil
import sqlite3
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from aiocache_http import CachedRequest
from aiocache_http.cli import COMMANDS, build_parser

from .cli_helpers import CLI_BACKENDS, PNG, Filled, cache, cli, fill
from .clients import AsyncClient, SyncClient
from .origin import Origin
from .redis_servers import free_port


@pytest.fixture(params=CLI_BACKENDS)
async def filled(request: pytest.FixtureRequest, tmp_path: Path, origin: Origin) -> AsyncIterator[Filled]:
    cache = await fill(request.param, request, tmp_path, origin)
    yield cache
    await cache.close()


def no_traceback(err: str) -> None:
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err


# -- help ---------------------------------------------------------------------------


def test_help_says_what_each_command_does_in_one_screen(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    for argv in (["--help"], *([name, "--help"] for name in COMMANDS)):
        with pytest.raises(SystemExit) as exit_:
            parser.parse_args(argv)
        assert exit_.value.code == 0
        text = capsys.readouterr().out
        lines = text.splitlines()
        assert len(lines) <= 45, (argv, len(lines))
        assert max(len(line) for line in lines) <= 100, argv
        if argv[0] in COMMANDS:
            assert COMMANDS[argv[0]][1:] in text  # its one-line purpose, as the description
    main_help = parser.format_help()
    for name, purpose in COMMANDS.items():
        assert name in main_help and purpose in main_help


async def test_console_script_and_module_are_installed() -> None:
    script = Path(sys.executable).with_name("aiocache-http")
    assert script.exists() or shutil.which("aiocache-http")
    result = await cli("--help")
    assert result.code == 0 and "migrate" in result.out


# -- stats / list / show ---------------------------------------------------------------


async def test_stats(filled: Filled) -> None:
    result = await cli("-c", filled.url, "stats", "--json")
    assert result.code == 0, result.err
    stats = result.json
    assert stats["entries"] == 9  # the redirected request: its entry and its final URL's
    assert (stats["fresh"], stats["expired"], stats["stale_revalidatable"]) == (7, 2, 1)
    assert stats["unreadable"] == 0 and stats["redirects"] == 2  # its hop alias, /r/alias
    assert stats["by_host"]["127.0.0.1"]["entries"] == 8
    assert stats["by_host"]["img.example.com"] == {"entries": 1, "bytes": pytest.approx(len(PNG), rel=0.5)}
    assert stats["by_status"] == {"200": 8, "404": 1}
    assert stats["bytes"] == sum(h["bytes"] for h in stats["by_host"].values())
    if filled.url.startswith("sqlite"):
        assert stats["sqlite"]["file_bytes"] > 0 and stats["sqlite"]["free_pages"] >= 0
    else:
        assert stats["sqlite"] is None
    table = await cli("stats", env={"AIOCACHE_HTTP_CACHE": filled.url})
    assert table.code == 0
    assert "entries" in table.out and "img.example.com" in table.out and "404" in table.out
    assert "\x1b[" not in table.out  # no colours when not a terminal


async def test_list_filters(filled: Filled) -> None:
    async def urls(*args: str) -> list[str]:
        result = await cli("-c", filled.url, "list", "--json", *args)
        assert result.code == 0, result.err
        return sorted(e["url"] for e in result.json)

    everything = await urls()
    assert len(everything) == 9
    assert await urls("--expired") == sorted([filled.stale, filled.expired])
    assert len(await urls("--fresh")) == 7
    assert await urls("--host", "img.example.com") == [filled.image]
    assert await urls("--url", "*/r/two*") == [filled.origin.url("/r/two?x=1")]
    assert await urls("--url", "*/r/*", "--expired") == sorted([filled.stale, filled.expired])
    assert await urls("--older-than", "1h") == []
    assert len(await urls("--older-than", "1s")) == 9
    assert len(await urls("--limit", "3")) == 3
    table = await cli("-c", filled.url, "list", "--expired")
    assert table.code == 0
    assert "stale" in table.out and "expired" in table.out and "/r/stale" in table.out
    bad = await cli("-c", filled.url, "list", "--older-than", "yesterday")
    assert bad.code == 2 and "not an age" in bad.err
    no_traceback(bad.err)


async def test_show_by_url_and_key(filled: Filled) -> None:
    url = filled.origin.url("/r/one")
    result = await cli("-c", filled.url, "show", url, "--json")
    assert result.code == 0, result.err
    one = result.json
    assert one["status"] == 200 and one["url"] == url and one["state"] == "fresh"
    assert one["decision"] == "serve" and one["why"].startswith("hit: fresh")
    assert ["Content-Type", "application/json; charset=utf-8"] in one["headers"]
    assert '"path": "/r/one"' in one["body_preview"] and one["verified"]
    by_key = await cli("-c", filled.url, "show", one["key"], "--json")
    assert by_key.json["url"] == url
    # The short key `list` prints (12 characters) finds it too: it said "nothing stored".
    listed = (await cli("-c", filled.url, "list", "--url", url)).out
    assert one["key"][:12] in listed
    by_short_key = await cli("-c", filled.url, "show", one["key"][:12], "--json")
    assert by_short_key.code == 0, by_short_key.err
    assert by_short_key.json["url"] == url

    stale = (await cli("-c", filled.url, "show", filled.stale, "--json")).json
    assert stale["state"] == "stale" and stale["revalidatable"]
    assert stale["decision"] == "revalidate" and "conditional request" in stale["why"]
    expired = (await cli("-c", filled.url, "show", filled.expired, "--json")).json
    assert expired["decision"] == "fetch" and "no validators" in expired["why"]

    image = await cli("-c", filled.url, "show", filled.image)
    assert image.code == 0
    assert f"body: {len(PNG):,} bytes of image/png (binary, not shown)" in image.out
    text = await cli("-c", filled.url, "show", url)
    assert "now" in text.out and "hit: fresh" in text.out and "Content-Type:" in text.out

    redirected = (await cli("-c", filled.url, "show", filled.origin.url("/redirect/hop"), "--json")).json
    assert redirected["url"] == filled.origin.url("/r/hop")
    assert redirected["history"] == [filled.origin.url("/redirect/hop")]
    aliased = (await cli("-c", filled.url, "show", filled.origin.url("/r/alias"), "--json")).json
    assert aliased["url"] == url  # found through the redirect alias
    missing = await cli("-c", filled.url, "show", filled.origin.url("/r/never"))
    assert missing.code == 2 and "nothing stored" in missing.err
    no_traceback(missing.err)


# -- purge ------------------------------------------------------------------------------


async def test_purge_counts_asks_and_deletes(filled: Filled) -> None:
    refused = await cli("-c", filled.url, "purge", "--expired", stdin="n\n")
    assert refused.code == 1 and "2 entries" in refused.err and "aborted" in refused.err
    assert await filled.backend.raw_responses.size() == 9
    no_answer = await cli("-c", filled.url, "purge", "--expired")  # stdin closed: no
    assert no_answer.code == 1 and await filled.backend.raw_responses.size() == 9

    accepted = await cli("-c", filled.url, "purge", "--expired", stdin="y\n")
    assert accepted.code == 0, accepted.err
    assert "deleted 2 entries" in accepted.out
    assert await filled.backend.raw_responses.size() == 7

    by_url = await cli("-c", filled.url, "purge", "--url", "*/r/two*", "--yes", "--json")
    assert by_url.code == 0 and by_url.json["deleted"] == 1
    by_host = await cli("-c", filled.url, "purge", "--host", "img.example.com", "--yes")
    assert by_host.code == 0 and "deleted 1 entries" in by_host.out
    none = await cli("-c", filled.url, "purge", "--older-than", "1d", "--yes")
    assert none.code == 0 and "nothing matches" in none.out

    # What was purged is a miss for both sessions; what was kept, a hit for both.
    a, s, origin = filled.a, filled.s, filled.origin
    before = origin.total
    assert not (await a.get(origin.url("/r/two?x=1"))).from_cache
    assert not (await s.get(filled.expired)).from_cache
    assert (await a.get(origin.url("/r/one"))).from_cache
    assert (await s.get(origin.url("/r/from-sync"))).from_cache
    assert origin.total == before + 2

    # The redirect alias goes with its target.
    one = await cli("-c", filled.url, "purge", "--url", "*/r/one", "--yes", "--json")
    assert one.json == {"deleted": 1, "bytes": one.json["bytes"], "redirects_deleted": 1}
    assert await filled.backend.raw_redirects.size() == 1  # the redirected request's hop

    everything = await cli("-c", filled.url, "purge", "--all", "--yes")
    assert everything.code == 0 and await filled.backend.raw_responses.size() == 0
    asked = await cli("-c", filled.url, "purge")
    assert asked.code == 2 and "purge what?" in asked.err


# -- migrate ----------------------------------------------------------------------------


async def test_migrate_to_every_other_backend_keeps_entries_serving(
        filled: Filled, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    src = filled.backend
    for kind in CLI_BACKENDS:
        if kind == filled.kind:
            continue
        (tmp_path / kind).mkdir()
        dst_url, dst = cache(kind, request, tmp_path / kind, "-dst")
        await dst.clear()
        result = await cli("migrate", filled.url, dst_url, "--json")
        assert result.code == 0, result.err
        assert (result.json["copied"], result.json["failed"], result.json["redirects_copied"]) == (9, 0, 2)
        again = await cli("migrate", filled.url, dst_url, "--json")
        assert (again.json["copied"], again.json["skipped"], again.json["redirects_skipped"]) == (0, 9, 2)
        async for key, data in src.raw_responses.iter_items():
            assert await dst.raw_responses.read(key) == data  # the same bytes: signatures hold
            original, copy = await src.get_record(key), await dst.get_record(key)
            assert original is not None and copy is not None and copy.expires == original.expires

        (tmp_path / f"{kind}-fresh").mkdir()
        fresh_url, fresh = cache(kind, request, tmp_path / f"{kind}-fresh", "-fresh")
        await fresh.clear()
        fresh_only = await cli("migrate", filled.url, fresh_url, "--no-expired", "--json")
        assert (fresh_only.json["copied"], fresh_only.json["expired"]) == (7, 2)
        await fresh.close()

        before = filled.origin.total
        a, s = AsyncClient(dst), SyncClient(dst)
        for url in filled.fresh:
            assert (await a.get(url)).from_cache and (await s.get(url)).from_cache
        assert (await a.get(filled.origin.url("/r/alias"))).from_cache
        assert filled.origin.total == before
        await a.close()
        await s.close()


# -- vacuum, get --------------------------------------------------------------------------


async def test_vacuum(filled: Filled) -> None:
    result = await cli("-c", filled.url, "vacuum", "--json")
    if not filled.url.startswith("sqlite"):
        assert result.code == 2 and "only SQLite" in result.err
        no_traceback(result.err)
        return
    assert result.code == 0, result.err
    purge = await cli("-c", filled.url, "purge", "--all", "--yes")
    assert purge.code == 0
    before = (await cli("-c", filled.url, "stats", "--json")).json["sqlite"]
    vacuumed = await cli("-c", filled.url, "vacuum", "--json")
    assert vacuumed.code == 0
    after = vacuumed.json["after"]
    assert after["free_pages"] == 0 and after["pages"] <= before["pages"]


async def test_get_fetches_through_the_cache(filled: Filled) -> None:
    url = filled.origin.url("/r/by-cli")
    first = await cli("-c", filled.url, "get", url, "--json")
    assert first.code == 0, first.err
    assert (first.json["result"], first.json["status"], first.json["stored"]) == ("miss", 200, True)
    assert first.json["why"].startswith("miss: nothing stored")
    second = await cli("-c", filled.url, "get", url)
    assert second.code == 0 and '"path": "/r/by-cli"' in second.out
    assert re.search(r"^result +hit$", second.out, re.M) and re.search(r"^why +hit: fresh", second.out, re.M)
    stale = await cli("-c", filled.url, "get", filled.stale, "--json")
    assert (stale.json["result"], stale.json["status"]) == ("revalidated", 200)
    assert "conditional request" in stale.json["why"] and "RFC 9111" in stale.json["why"]
    error = await cli("-c", filled.url, "get", filled.origin.url("/r/broke?status=500"), "--json")
    assert error.json["stored"] is False and "500" in error.json["not_stored_reason"]
    assert filled.origin.count("/r/by-cli") == 1
    assert (await filled.a.get(url)).from_cache  # stored by the CLI, a hit for the session


# -- errors: one line, exit 2, no traceback -----------------------------------------------


@pytest.mark.parametrize(("url", "message"), [
    ("ftp://example.com/x", "not a cache URL"),
    ("/tmp", "write file:///tmp"),
    ("sqlite://", "no path given"),
    ("sqlite:///tmp/x.sqlite?colour=blue", "unknown option 'colour'"),
    ("redis://127.0.0.1:6379/0?layout=diagonal", "layout='diagonal' is not valid"),
    ("dynamodb://?region=eu-west-1", "no table given"),
])
async def test_bad_urls(url: str, message: str) -> None:
    result = await cli("-c", url, "stats")
    assert result.code == 2 and message in result.err, result.err
    no_traceback(result.err)


async def test_unreachable_missing_and_not_a_cache(tmp_path: Path) -> None:
    port = free_port()
    down = await cli("-c", f"redis://:hunter2@127.0.0.1:{port}/0", "stats")
    assert down.code == 2 and "cannot reach" in down.err and "is the server running" in down.err
    assert "hunter2" not in down.err
    no_traceback(down.err)
    mongo = await cli("-c", f"mongodb://127.0.0.1:{port}/db?serverSelectionTimeoutMS=300", "stats")
    assert mongo.code == 2 and "cannot reach" in mongo.err, mongo.err
    no_traceback(mongo.err)
    nothing = await cli("-c", f"sqlite://{tmp_path}/typo.sqlite", "list")
    assert nothing.code == 2 and "no cache at" in nothing.err
    assert not (tmp_path / "typo.sqlite").exists()  # inspecting never creates a cache
    (tmp_path / "notes.txt").write_text("not a database, " * 100)
    junk = await cli("-c", f"sqlite://{tmp_path}/notes.txt", "stats")
    assert junk.code == 2 and "not a SQLite database" in junk.err
    no_traceback(junk.err)


async def test_missing_extra_names_the_install_command(tmp_path: Path) -> None:
    """Without the redis package, the one line says which extra to install."""
    blocker = tmp_path / "site" / "redis"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError(\"No module named 'redis'\")\n")
    result = await cli("-c", "redis://127.0.0.1:1/0", "stats", env={"PYTHONPATH": str(tmp_path / "site")})
    assert result.code == 2 and "pip install 'aiocache-http[redis]'" in result.err, result.err
    no_traceback(result.err)


async def test_signed_cache_is_read_without_the_key_and_verified_with_it(
        tmp_path: Path, origin: Origin) -> None:
    from aiocache_http.backends.sqlite import SQLiteBackend

    backend = SQLiteBackend(tmp_path / "signed.sqlite", secret_key="s3cret")
    client = AsyncClient(backend)
    await client.get(origin.url("/r/signed"))
    url = f"sqlite://{tmp_path}/signed.sqlite"
    unverified = (await cli("-c", url, "show", origin.url("/r/signed"), "--json")).json
    assert unverified["status"] == 200 and not unverified["verified"]
    assert "--secret-key" in unverified["problem"]
    verified = await cli("-c", url, "show", origin.url("/r/signed"), "--json",
                         env={"AIOCACHE_HTTP_SECRET_KEY": "s3cret"})
    assert verified.json["verified"] and verified.json["problem"] is None
    wrong = (await cli("-c", url, "show", origin.url("/r/signed"), "--json", "--secret-key", "nope")).json
    assert not wrong["verified"] and "signature" in wrong["problem"]
    key = backend.create_key(CachedRequest("GET", origin.url("/r/signed")))
    await backend.raw_responses.write(key + "x", b"garbage")
    stats = (await cli("-c", url, "stats", "--json", "--secret-key", "s3cret")).json
    assert (stats["entries"], stats["unreadable"]) == (2, 1)
    await client.close()


def test_the_library_never_imports_the_cli() -> None:
    import subprocess

    code = ("import aiocache_http, aiocache_http.sync, sys; "
            "from aiocache_http.backends import sqlite, redis, filesystem; "
            "print(sorted(m for m in sys.modules if m.startswith(('aiocache_http.cli', 'tqdm'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_sqlite_url_forms(tmp_path: Path) -> None:
    from aiocache_http.cli.urls import parse

    assert parse(f"sqlite://{tmp_path}/a.sqlite").location == tmp_path / "a.sqlite"
    assert parse(f"sqlite://{tmp_path}/b").location == tmp_path / "b.sqlite"  # as SQLiteBackend names it
    assert parse("sqlite:rel.db").location == Path("rel.db").absolute()
    sqlalchemy_form = parse(f"sqlite:///{tmp_path}/d.sqlite").location  # four slashes
    assert str(sqlalchemy_form) == f"{tmp_path}/d.sqlite"
    assert parse("file:rel").location == Path("rel").absolute()
    sqlite3.connect(tmp_path / "c.sqlite").close()


async def test_other_backends_by_url(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """Redis Cluster, Redis's keys layout, DynamoDB (a local moto server): `stats` and
    `migrate` reach each by its URL."""
    from multidict import CIMultiDict

    from aiocache_http import utcnow
    from aiocache_http.backends.dynamodb import DynamoDBBackend
    from aiocache_http.backends.redis import RedisBackend
    from aiocache_http.models import CachedResponse

    from .aws_servers import DUMMY_CREDENTIALS
    from .backends import _redis_namespace

    namespace = _redis_namespace(request)
    cluster, plain = request.getfixturevalue("redis_cluster"), request.getfixturevalue("redis_server")
    moto = request.getfixturevalue("moto_server")
    backends = {
        f"redis+cluster://127.0.0.1:{cluster.ports[0]}?namespace={namespace}":
            RedisBackend(namespace, cluster.url, cluster=True),
        f"{plain.url}/0?namespace={namespace}&layout=keys": RedisBackend(namespace, plain.url, layout="keys"),
        f"dynamodb://cli-test?region=us-east-1&endpoint_url={moto.endpoint_url}&namespace={namespace}"
        "&create_table=true": DynamoDBBackend("cli-test", namespace=namespace, create_table=True,
                                              **moto.client_options()),
    }
    env = {"AWS_ACCESS_KEY_ID": DUMMY_CREDENTIALS["aws_access_key_id"],
           "AWS_SECRET_ACCESS_KEY": DUMMY_CREDENTIALS["aws_secret_access_key"]}
    for n, (url, backend) in enumerate(backends.items()):
        await backend.clear()
        for i in range(3):
            page = f"https://example.org/{n}/{i}"
            await backend.save_response(
                CachedResponse(200, "OK", page, CIMultiDict(), b"x", CachedRequest("GET", page),
                               expires=utcnow() + timedelta(hours=1)),
                backend.create_key(CachedRequest("GET", page)))
        stats = await cli("-c", url, "stats", "--json", env=env)
        assert stats.code == 0, stats.err
        assert stats.json["entries"] == 3 and stats.json["by_host"]["example.org"]["entries"] == 3
        copied = await cli("migrate", url, f"sqlite://{tmp_path}/from-{n}.sqlite", "--json", env=env)
        assert copied.code == 0 and copied.json["copied"] == 3, copied.err
        await backend.close()
