"""Commands that change a cache: ``purge`` and ``vacuum``."""

from __future__ import annotations

from collections.abc import Callable

from ..backends.base import CacheBackend
from ..models import utcnow
from .entries import Selection, entries, redirect_target
from .errors import CLIError
from .output import Output, size
from .report import sqlite_file

Confirm = Callable[[str], bool]
BATCH = 1000


async def purge(backend: CacheBackend, out: Output, selection: Selection, everything: bool,
                confirm: Confirm) -> int:
    """Count what matches, ask, then delete it (and the redirects that led to it)."""
    responses, redirects = backend.raw_responses, backend.raw_redirects
    if everything:
        count, aliases = await responses.size(), await redirects.size()
        if not count and not aliases:
            return done(out, 0, 0, 0)
        if not confirm(f"delete all {count:,} entries and {aliases:,} redirects?"):
            return aborted(out)
        await responses.clear()
        await redirects.clear()
        return done(out, count, None, aliases)
    now, keys, total = utcnow(), [], 0
    with out.progress(None, "entries") as bar:
        async for entry in entries(backend):
            bar.update()
            if selection.matches(entry, now):
                keys.append(entry.key)
                total += entry.size
    if not keys:
        return done(out, 0, 0, 0)
    if not confirm(f"{len(keys):,} entries ({size(total)}) match; delete them?"):
        return aborted(out)
    for i in range(0, len(keys), BATCH):
        await responses.bulk_delete(keys[i:i + BATCH])
    gone = set(keys)
    dangling = [alias async for alias, value in redirects.iter_items()
                if redirect_target(backend.serializer, alias, value) in gone]
    for i in range(0, len(dangling), BATCH):
        await redirects.bulk_delete(dangling[i:i + BATCH])
    return done(out, len(keys), total, len(dangling))


def done(out: Output, deleted: int, total: int | None, aliases: int) -> int:
    if out.json:
        out.emit({"deleted": deleted, "bytes": total, "redirects_deleted": aliases})
    elif deleted or aliases:
        freed = f" ({size(total)})" if total else ""
        out.line(f"deleted {deleted:,} entries{freed} and {aliases:,} redirects")
    else:
        out.line("nothing matches: nothing deleted")
    return 0


def aborted(out: Output) -> int:
    out.note("aborted: nothing deleted (pass --yes to skip the question)")
    return 1


async def vacuum(backend: CacheBackend, out: Output, kind: str) -> int:
    run = getattr(backend, "vacuum", None)
    if run is None:
        raise CLIError(f"vacuum: a {kind} cache has nothing to vacuum; only SQLite files do "
                       "(the others return space as entries are deleted)")
    before = await sqlite_file(backend)
    await run()
    after = await sqlite_file(backend)
    if out.json:
        out.emit({"before": before, "after": after})
    elif before is not None and after is not None:
        out.line(f"{after['path']}: {size(before['file_bytes'])} -> {size(after['file_bytes'])}, "
                 f"{before['free_pages']:,} free pages returned")
    return 0
