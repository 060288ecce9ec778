"""What a memory cache costs the garbage collector: objects it tracks per stored entry,
and the pause of one full collection with that many entries stored. aiocache-http and
aiohttp-client-cache's memory backend, bare aiohttp for the floor, measured in one run.

    .venv/bin/python benchmarks/bench.py --only gc        (part of: make bench)
    .venv/bin/python benchmarks/bench_gc.py [--entries 100000]

Each client runs in a fresh subprocess against the same local origin (in this process):
a warm-up, a full collection, then ``--entries`` misses, each to a new URL (stored), by
50 concurrent tasks; then the objects the collector tracks, counted again (growth per
entry: the entry itself plus a share of anything bounded that grows with traffic, such
as memos), and the pause of a full collection (``gc.collect()``: the median of 5 in wall
time, and the least CPU time of the 5, which the machine's other load moves less). Bare
aiohttp makes the same requests and stores nothing: its pause is the floor.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve()
CLIENTS = ("aiohttp", "ours", "aiohttp-client-cache")
TASKS = 50


# -- the parent -----------------------------------------------------------------------------
async def run_client(client: str, base_url: str, entries: int) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(SCRIPT), "--child", client, "--url", base_url,
        "--entries", str(entries), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(err.decode(errors="replace"))
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


async def run_all(entries: int) -> list[tuple[str, dict[str, Any]]]:
    sys.path.insert(0, str(SCRIPT.parent.parent))
    from benchmarks.bench import local_origin

    results = []
    async with local_origin() as base_url:
        for client in CLIENTS:
            try:
                results.append((client, await run_client(client, base_url, entries)))
            except (ImportError, RuntimeError) as e:
                print(f"{client}: skipped: {str(e).strip().splitlines()[-1]}", file=sys.stderr)
    return results


def print_table(results: list[tuple[str, dict[str, Any]]], entries: int) -> None:
    print(f"\ngc: {entries} entries stored in memory (aiohttp: the same requests, nothing stored)")
    print(f"{'client':<24} {'tracked objects / entry':>24} {'full gc pause':>15} {'(CPU)':>10}")
    print("-" * 78)
    for client, r in results:
        print(f"{client:<24} {r['per_entry']:>24.2f} {r['pause_ms']:>12.1f} ms "
              f"{r['cpu_ms']:>7.1f} ms")


def register() -> None:
    """The "gc" group of benchmarks/bench.py (100,000 entries)."""
    from benchmarks.bench import Context, Row, scenario

    @scenario("gc")
    async def gc_rows(ctx: Context) -> list[Row]:
        print_table(await run_all(100_000), 100_000)
        return []


# -- the child: fill, count, collect ------------------------------------------------------------
async def _child(client: str, base_url: str, entries: int) -> dict[str, Any]:
    import aiohttp

    session: Any
    if client == "aiohttp":
        session = aiohttp.ClientSession()
    elif client == "ours":
        from aiocache_http import CacheBackend, CachedClientSession

        session = CachedClientSession(cache=CacheBackend())
    else:
        from aiohttp_client_cache import CacheBackend as PeerMemory
        from aiohttp_client_cache import CachedSession as PeerSession

        session = PeerSession(cache=PeerMemory())

    async def get(url: str) -> None:
        async with session.get(url) as r:
            await r.read()

    async with session:
        for i in range(100):
            await get(f"{base_url}/item/warm-{i}")
        gc.collect()
        before = len(gc.get_objects())
        numbers = iter(range(entries))

        async def worker() -> None:
            for i in numbers:
                await get(f"{base_url}/item/entry-{i}")

        await asyncio.gather(*(worker() for _ in range(TASKS)))
        gc.collect()
        after = len(gc.get_objects())
        pauses, cpu = [], []
        for _ in range(5):
            start, start_cpu = time.perf_counter(), time.process_time()
            gc.collect()
            pauses.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
    return {"per_entry": (after - before) / entries, "pause_ms": statistics.median(pauses) * 1e3,
            "cpu_ms": min(cpu) * 1e3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--child", choices=CLIENTS)
    parser.add_argument("--url")
    args = parser.parse_args()
    if args.child:
        import logging
        import warnings

        logging.disable(logging.WARNING)
        warnings.simplefilter("ignore")
        print(json.dumps(asyncio.run(_child(args.child, args.url, args.entries))))
        return
    print_table(asyncio.run(run_all(args.entries)), args.entries)


if __name__ == "__main__":
    main()
elif __name__ == "benchmarks.bench_gc":
    register()
