"""Peak RSS growth while one large body goes through, as a multiple of the body: the bare
clients, aiocache-http (async and sync) and the peers, on a miss and on a hit, the body
read whole and read in chunks, over SQLite and the filesystem. Measured in one run.

    .venv/bin/python benchmarks/bench.py --only rss          (part of: make bench)
    .venv/bin/python benchmarks/bench_rss.py [--mb 50] [--only ours]

Each case runs in a fresh subprocess: it warms up (imports, connections, tables, one
small request), resets the kernel's peak-RSS mark, then makes the one request; the
growth is the peak (VmHWM) minus the RSS before it. A hit is measured in a second
subprocess, after another one stored the body. The origin (in this process) writes the
body in 64 KiB pieces of incompressible bytes, with a Content-Length. The last rows:
a body twice ``--mb`` through ``max_body_size`` of a fifth of it, read in chunks.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

SCRIPT = Path(__file__).resolve()
HERE = SCRIPT.parent
CHUNK = 64 * 1024
_BLOCK = os.urandom(CHUNK)


@dataclass(frozen=True)
class Case:
    client: str  # aiohttp, requests, ours, ours-sync, aiohttp-client-cache, requests-cache, hishel
    backend: str  # sqlite, filesystem, filesystem-envelope (ours-sync), filesystem-json (ours),
    # memory, "" (no cache)
    phase: str  # miss / hit
    reading: str  # whole / chunks
    size_factor: float = 1.0  # the body, in --mb
    limit_factor: float | None = None  # max_body_size, in --mb (the body is then chunked:
    # no Content-Length tells in advance that it is too large)

    @property
    def name(self) -> str:
        parts = [self.client, self.backend, self.phase, self.reading]
        if self.limit_factor is not None:
            parts.append(f"x{self.size_factor:g}-limit{self.limit_factor:g}")
        return "/".join(p for p in parts if p)


def cases() -> list[Case]:
    found = [Case(bare, "", "miss", reading) for bare in ("aiohttp", "requests")
             for reading in ("whole", "chunks")]
    for client in ("ours", "aiohttp-client-cache", "ours-sync", "requests-cache", "hishel"):
        for backend in ("sqlite", "filesystem", "filesystem-envelope", "filesystem-json"):
            if client == "hishel" and backend == "filesystem":
                continue  # hishel 2 stores in SQLite (or Redis) only
            if backend == "filesystem-envelope" and client != "ours-sync":
                continue  # the sync FileCache's files are JSON by default; ours-sync only
            if backend == "filesystem-json" and client != "ours":
                continue  # the async FileBackend with the sync layer's JSON serializer
            found += [Case(client, backend, phase, reading)
                      for phase in ("miss", "hit") for reading in ("whole", "chunks")]
    found += [Case("ours", backend, "miss", "chunks", 2.0, 0.2) for backend in ("sqlite", "memory")]
    return found


# -- the parent: origin, subprocesses, table ---------------------------------------------------
@asynccontextmanager
async def big_origin() -> AsyncIterator[str]:
    async def body(request: web.Request) -> web.StreamResponse:
        size = int(request.query["size"])
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        if request.query.get("chunked"):
            response.enable_chunked_encoding()
        else:
            response.content_length = size
        await response.prepare(request)
        for start in range(0, size, CHUNK):
            await response.write(_BLOCK[: min(CHUNK, size - start)])
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/big/{name}", body)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def run_case(case: Case, base_url: str, mb: float, tmp: Path) -> dict[str, Any]:
    size = int(mb * 1024 * 1024 * case.size_factor)
    url = f"{base_url}/big/{case.name.replace('/', '-')}?size={size}"
    if case.limit_factor is not None:
        url += "&chunked=1"
    args = ["--case", json.dumps(case.__dict__), "--url", url, "--dir", str(tmp), "--mb", str(mb)]
    if case.phase == "hit":  # another process stores it first
        await _child([*args, "--populate"])
    result = await _child(args)
    result["size"] = size
    return result


async def _child(args: list[str]) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(SCRIPT), *args,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 600)
    if process.returncode != 0:
        raise RuntimeError(f"{args}: {err.decode()[-2000:]}")
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


def print_table(results: list[tuple[Case, dict[str, Any]]], mb: float) -> None:
    bare = {c.reading: r["growth"] / r["size"] for c, r in results if c.client == "aiohttp"}
    print(f"\nPeak RSS growth for one {mb:g} MB body (x = multiple of the body; "
          "vs bare = against bare aiohttp reading the same way, same run)")
    print(f"{'case':<52} {'growth':>9} {'x body':>7} {'vs bare':>8}  cached")
    print("-" * 88)
    for case, r in results:
        ratio = r["growth"] / r["size"]
        vs = f"{ratio / bare[case.reading]:.2f}x" if bare.get(case.reading) else ""
        cached = {True: "hit", False: "miss", None: ""}[r.get("from_cache")]
        if case.phase == "miss" and case.backend and r.get("stored") is not None:
            cached += ", stored" if r["stored"] else ", not stored"
        print(f"{case.name:<52} {r['growth'] / 2**20:7.1f}MB {ratio:6.2f}x {vs:>8}  {cached}")


async def run_all(mb: float, only: list[str] | None = None) -> list[tuple[Case, dict[str, Any]]]:
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        async with big_origin() as base_url:
            for case in cases():
                if only and case.client not in only and case.client not in ("aiohttp", "requests"):
                    continue
                try:
                    results.append((case, await run_case(case, base_url, mb, Path(tmp))))
                except (ImportError, RuntimeError) as e:
                    print(f"{case.name}: skipped: {str(e).strip().splitlines()[-1]}", file=sys.stderr)
    return results


def register() -> None:
    """The "rss" group of benchmarks/bench.py."""
    from benchmarks.bench import Context, Row, scenario

    @scenario("rss")
    async def rss_rows(ctx: Context) -> list[Row]:
        print_table(await run_all(50), 50)
        return []


# -- the child: one request, measured -------------------------------------------------------
def _status(field: str) -> int:
    found = re.search(rf"{field}:\s+(\d+) kB", Path("/proc/self/status").read_text())
    return int(found.group(1)) * 1024 if found else 0


def _reset_peak() -> None:
    # VmHWM := VmRSS (Linux >= 4.0); if refused, the peak may include the warm-up
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _measured(request: Callable[[], Any]) -> tuple[Any, int]:
    gc.collect()
    _reset_peak()
    before = _status("VmRSS")
    result = request()
    return result, _status("VmHWM") - before


async def _async_child(case: Case, url: str, tmp: Path, populate: bool, limit: int | None) -> dict[str, Any]:
    import aiohttp

    session: Any
    if case.client == "aiohttp":
        session = aiohttp.ClientSession()
    elif case.client == "ours":
        from aiocache_http import CacheBackend, CachedClientSession
        from aiocache_http.backends.filesystem import FileBackend
        from aiocache_http.backends.sqlite import SQLiteBackend
        from aiocache_http.sync.serializers import backend_format

        backend = {"sqlite": lambda: SQLiteBackend(tmp / "ours.sqlite"),
                   "filesystem": lambda: FileBackend(tmp / "ours-files"),
                   "filesystem-json": lambda: FileBackend(tmp / "ours-files-json",
                                                          serializer=backend_format("json")),
                   "memory": CacheBackend}[case.backend]()
        session = CachedClientSession(cache=backend, max_body_size=limit)
    else:
        from aiohttp_client_cache import CachedSession, FileBackend, SQLiteBackend  # type: ignore[import-untyped]

        cache = (SQLiteBackend(str(tmp / "peer.sqlite")) if case.backend == "sqlite"
                 else FileBackend(str(tmp / "peer-files")))
        session = CachedSession(cache=cache)
    async with session:
        async def get(target: str, chunks: bool) -> tuple[int, Any, str]:
            async with session.get(target) as r:
                if chunks:
                    n = sum([len(c) async for c in r.content.iter_chunked(CHUNK)])
                else:
                    n = len(await r.read())
                return n, getattr(r, "from_cache", None), getattr(r, "cache_key", "")

        await get(url.split("?")[0] + "-warm?size=1000", False)
        if populate:
            await get(url, False)
            return {}
        gc.collect()
        _reset_peak()
        before = _status("VmRSS")
        n, from_cache, key = await get(url, case.reading == "chunks")
        growth = _status("VmHWM") - before
        stored = None
        if case.client == "ours" and case.phase == "miss":
            stored = await session.cache.raw_responses.contains(key)
    return {"growth": growth, "bytes": n, "from_cache": from_cache, "stored": stored}


def _sync_child(case: Case, url: str, tmp: Path, populate: bool, limit: int | None) -> dict[str, Any]:
    import requests

    session: Any
    if case.client == "requests":
        session = requests.Session()
    elif case.client == "ours-sync":
        from aiocache_http.sync import CachedSession

        name = str(tmp / ("ours-sync.sqlite" if case.backend == "sqlite" else f"ours-sync-{case.backend}"))
        if case.backend == "filesystem-envelope":  # the binary envelope: streams, unlike JSON
            session = CachedSession(name, backend="filesystem", serializer="envelope")
        else:
            session = CachedSession(name, backend=case.backend)
    elif case.client == "requests-cache":
        import requests_cache

        name = str(tmp / ("rc.sqlite" if case.backend == "sqlite" else "rc-files"))
        session = requests_cache.CachedSession(name, backend=case.backend)
    else:
        from hishel import SqliteStorage
        from hishel.requests import CacheAdapter

        session = requests.Session()
        adapter = CacheAdapter(storage=SqliteStorage(database_path=str(tmp / "hishel.sqlite")))
        session.mount("http://", adapter)

    def get(target: str, chunks: bool) -> tuple[int, Any]:
        with session.get(target, stream=chunks) as r:
            n = sum(len(c) for c in r.iter_content(CHUNK)) if chunks else len(r.content)
            from_cache = getattr(r, "from_cache", None)
            if from_cache is None and "X-Hishel-From-Cache" in r.headers:
                from_cache = r.headers["X-Hishel-From-Cache"] == "true"
            return n, from_cache

    with session:
        get(url.split("?")[0] + "-warm?size=1000", False)
        if populate:
            get(url, False)
            return {}
        (n, from_cache), growth = _measured(lambda: get(url, case.reading == "chunks"))
    return {"growth": growth, "bytes": n, "from_cache": from_cache}


def child(args: argparse.Namespace) -> None:
    case = Case(**json.loads(args.case))
    tmp = Path(args.dir)
    limit = None if case.limit_factor is None else int(args.mb * 1024 * 1024 * case.limit_factor)
    if case.client in ("aiohttp", "ours", "aiohttp-client-cache"):
        result = asyncio.run(_async_child(case, args.url, tmp, args.populate, limit))
    else:
        result = _sync_child(case, args.url, tmp, args.populate, limit)
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=float, default=50, help="body size in MB")
    parser.add_argument("--only", action="append", help="only these clients (and the bare ones)")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    parser.add_argument("--populate", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        child(args)
        return
    print_table(asyncio.run(run_all(args.mb, args.only)), args.mb)


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parent))
    main()
elif __name__ == "benchmarks.bench_rss":
    register()
