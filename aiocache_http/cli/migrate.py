"""``migrate SRC DST``: copy every entry, as stored, from one backend to another.

The stored bytes are copied unchanged under the same key, so signatures (bound to the
key) stay valid and the destination serves them as the source did; each entry is
written with its own expiry, so storages that expire items themselves (Redis TTL, Mongo
and DynamoDB TTL, file mtimes) keep the same lifetime. Streaming: one batch of entries
in memory at a time. Resumable: an entry already at DST with the same bytes is skipped,
so running the same command again after an interruption finishes the job.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from dataclasses import asdict, dataclass
from datetime import datetime

from ..backends.base import BaseCache, CacheBackend
from ..models import utcnow
from .entries import decode
from .output import Output

BATCH = 500
MAX_REPORTED = 20


@dataclass
class Counts:
    copied: int = 0
    skipped: int = 0  # already at DST, same bytes
    expired: int = 0  # left out: --no-expired
    failed: int = 0
    redirects_copied: int = 0
    redirects_skipped: int = 0
    redirects_failed: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return (self.copied + self.skipped) / self.seconds if self.seconds else 0.0

    def line(self) -> str:
        return (f"copied {self.copied:,}, skipped {self.skipped:,} (already there), "
                f"left out {self.expired:,} expired, failed {self.failed:,}; redirects: copied "
                f"{self.redirects_copied:,}, skipped {self.redirects_skipped:,}, failed "
                f"{self.redirects_failed:,}; {self.seconds:.1f}s, {self.rate:,.0f} entries/s")


Item = tuple[str, bytes, datetime | None]


class Migration:
    def __init__(self, src: CacheBackend, dst: CacheBackend, out: Output, include_expired: bool,
                 counts: Counts) -> None:
        self.src, self.dst, self.out = src, dst, out
        self.include_expired = include_expired
        self.counts = counts
        self.stop = asyncio.Event()
        self.reported = 0

    def fail(self, key: str, why: str) -> None:
        if self.reported < MAX_REPORTED:
            self.out.note(f"failed: {key}: {why}")
        elif self.reported == MAX_REPORTED:
            self.out.note("failed: (more failures not shown)")
        self.reported += 1

    async def run(self) -> Counts:
        started = time.monotonic()
        try:
            total = await self.src.raw_responses.size()
            with self.out.progress(total, "entries") as bar:
                await self.copy(self.src.raw_responses, self.dst.raw_responses, bar, responses=True)
            await self.copy(self.src.raw_redirects, self.dst.raw_redirects, None, responses=False)
        finally:
            self.counts.seconds = time.monotonic() - started
        return self.counts

    async def copy(self, src: BaseCache, dst: BaseCache, bar: object, responses: bool) -> None:
        """Read the next batch from SRC while this one is written to DST."""
        batches: asyncio.Queue[list[tuple[str, bytes]] | BaseException | None] = asyncio.Queue(2)

        async def read() -> None:
            batch: list[tuple[str, bytes]] = []
            try:
                async for item in src.iter_items():
                    batch.append(item)
                    if len(batch) >= BATCH:
                        await batches.put(batch)
                        batch = []
                if batch:
                    await batches.put(batch)
                await batches.put(None)
            except Exception as e:
                await batches.put(e)

        reader = asyncio.create_task(read())
        try:
            while (batch := await batches.get()) is not None:
                if isinstance(batch, BaseException):
                    raise batch
                await self.copy_batch(dst, batch, responses)
                if self.stop.is_set():  # Ctrl-C: stop between batches, everything written whole
                    raise KeyboardInterrupt
                if bar is not None:
                    bar.update(len(batch))  # type: ignore[attr-defined]
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)

    async def copy_batch(self, dst: BaseCache, batch: list[tuple[str, bytes]], responses: bool) -> None:
        c, now = self.counts, utcnow()
        there = await dst.read_many([key for key, _data in batch])
        todo: list[Item] = []
        for (key, data), existing in zip(batch, there, strict=True):
            if existing == data:
                if responses:
                    c.skipped += 1
                else:
                    c.redirects_skipped += 1
                continue
            if not responses:
                todo.append((key, data, None))
                continue
            entry = decode(self.src.serializer, key, data)
            if entry.response is None:
                c.failed += 1
                self.fail(key, f"unreadable, not copied: {entry.problem}")
                continue
            expires = entry.response.expires
            if not self.include_expired and expires is not None and expires <= now:
                c.expired += 1
                continue
            todo.append((key, data, expires))
        written = await self.write(dst, todo)
        if responses:
            c.copied += written
            c.failed += len(todo) - written
        else:
            c.redirects_copied += written
            c.redirects_failed += len(todo) - written

    async def write(self, dst: BaseCache, items: list[Item]) -> int:
        """Write ``items``; on a batch failure, one by one, so only bad ones are lost."""
        if not items:
            return 0
        try:
            await dst.bulk_write(items)
            return len(items)
        except Exception:
            written = 0
            for key, data, expires in items:
                try:
                    await dst.write(key, data, expires)
                    written += 1
                except Exception as e:
                    self.fail(key, f"{type(e).__name__}: {e}")
            return written


async def migrate(src: CacheBackend, dst: CacheBackend, out: Output, include_expired: bool,
                  counts: Counts) -> int:
    """Ctrl-C stops after the batch in hand (a second one at once); either way the same
    command resumes."""
    migration = Migration(src, dst, out, include_expired, counts)
    loop, task = asyncio.get_running_loop(), asyncio.current_task()

    def interrupt() -> None:
        if migration.stop.is_set() and task is not None:
            task.cancel()
        migration.stop.set()

    with contextlib.suppress(NotImplementedError, RuntimeError):  # else asyncio.run's own
        loop.add_signal_handler(signal.SIGINT, interrupt)
    try:
        await migration.run()
    except asyncio.CancelledError:
        raise KeyboardInterrupt from None
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGINT)
    if out.json:
        out.emit({**asdict(counts), "entries_per_second": round(counts.rate, 1)})
    else:
        out.line(counts.line())
    return 0 if not (counts.failed or counts.redirects_failed) else 1
