"""The loop bridge: sync code runs backend coroutines on one private event loop.

The loop runs in a daemon thread, started on first use and stopped at interpreter
exit. A sync caller blocks on a result computed on *that* loop, never on its own
thread's loop, so a sync call made inside ``async def`` code cannot deadlock.

While a caller waits in :func:`serve`, its thread is lent back to the coroutine for
blocking work (the origin request): the bridge loop never blocks, origin IO runs in the
thread that asked for it (with its context variables), and no worker pool is needed.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import contextvars
import os
import queue
import threading
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import CancelledError
from typing import Any, Protocol, TypeVar, cast

T = TypeVar("T")
R = TypeVar("R")


class Offload(Protocol):
    """Runs a blocking function off the bridge loop and awaits its result."""

    def __call__(self, fn: Callable[[], R]) -> Awaitable[R]: ...


Job = tuple[Callable[[], Any], "asyncio.Future[Any]"]


class LoopBridge:
    """One event loop in one daemon thread, shared by every sync session."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._atexit = False
        if hasattr(os, "register_at_fork"):  # a forked child has the loop but not the thread
            os.register_at_fork(after_in_child=self._forget)

    @property
    def thread(self) -> threading.Thread | None:
        return self._thread

    def loop(self) -> asyncio.AbstractEventLoop:
        """The bridge loop, started on first use. Refuses its own thread (a deadlock)."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            with self._lock:
                if self._loop is None:
                    self._start()
                loop, thread = self._loop, self._thread
            assert loop is not None
        if thread is threading.current_thread():
            raise RuntimeError(
                "a synchronous cache call was made on the aiocache-http bridge loop itself "
                "(from a filter_fn, key_fn or hook?); it would wait for itself forever"
            )
        return loop

    def running(self) -> asyncio.AbstractEventLoop | None:
        """The bridge loop if it runs and this is not its thread, else None (not started)."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or thread is threading.current_thread():
            return None
        return loop

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the bridge loop and return its result (or raise its error)."""
        try:
            loop = self.loop()
        except BaseException:
            coro.close()  # never to be awaited
            raise
        return self._lend(loop, _Lender(loop), coro)

    def serve(self, work: Callable[[Offload], Coroutine[Any, Any, T]]) -> T:
        """Run ``work(offload)`` on the bridge loop; while waiting, run here whatever
        blocking functions it passes to ``offload``."""
        loop = self.loop()
        lender = _Lender(loop)
        return self._lend(loop, lender, lender.main(work))

    @staticmethod
    def _lend(loop: asyncio.AbstractEventLoop, lender: _Lender, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on ``loop``, this thread serving ``lender`` until it ends. Two
        thread switches, no more: one callback starts the task (in a copy of the caller's
        context variables: a tracing span, for one, as in the caller's own thread) and
        its end wakes the caller through the inbox it already waits on."""
        try:
            loop.call_soon_threadsafe(lender.start, coro, contextvars.copy_context())
        except BaseException:  # a closed loop
            coro.close()
            raise
        try:
            lender.serve_until_done()
        except BaseException:
            loop.call_soon_threadsafe(lender.cancel)  # e.g. KeyboardInterrupt in the caller
            raise
        return cast("T", lender.outcome())

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the loop (cancelling what still runs on it) and join its thread. The
        next call starts a new one."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        if thread is threading.current_thread():
            raise RuntimeError("the bridge loop cannot stop itself")
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)

    def settle(self, timeout: float = 5.0) -> None:
        """Let the work still running on the loop (stale-while-revalidate refreshes,
        background writes) finish, for at most ``timeout`` seconds: at interpreter exit a
        script that did not close its session still gets its refreshes stored, as with
        requests-cache's thread pool. What is left after that is cancelled by :meth:`stop`."""
        loop = self.running()
        if loop is None:
            return

        async def others() -> None:
            tasks = asyncio.all_tasks() - {asyncio.current_task()}
            if tasks:
                await asyncio.wait(tasks, timeout=timeout)

        with contextlib.suppress(Exception):  # a loop stopping meanwhile
            asyncio.run_coroutine_threadsafe(others(), loop).result(timeout + 1)

    def _start(self) -> None:
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        thread = threading.Thread(target=_run_loop, args=(loop, ready), daemon=True,
                                  name="aiocache-http-bridge")
        thread.start()
        ready.wait()
        self._loop, self._thread = loop, thread
        if not self._atexit:
            atexit.register(self.stop)
            # Before the interpreter's thread pools refuse new work (a refresh reads its
            # body through one): threading's exit hooks run last-registered first, so
            # import the pool module, then register.
            import concurrent.futures.thread  # noqa: F401
            with contextlib.suppress(AttributeError, RuntimeError):  # not CPython; exiting
                threading._register_atexit(self.settle)  # type: ignore[attr-defined]
            self._atexit = True

    def _forget(self) -> None:
        self._lock = threading.Lock()
        self._loop = self._thread = None


def _run_loop(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
    asyncio.set_event_loop(loop)
    loop.call_soon(ready.set)
    try:
        loop.run_forever()
    finally:
        _shutdown(loop)


def _shutdown(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what is left (background refreshes), then close the loop cleanly."""
    try:
        tasks = asyncio.all_tasks(loop)
        for task in tasks:
            task.cancel()
        if tasks:
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        asyncio.set_event_loop(None)
        loop.close()


class _Lender:
    """The calling thread, lent to one bridge coroutine while it waits for it."""

    __slots__ = ("done", "inbox", "loop", "task")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.inbox: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self.task: asyncio.Task[Any] | None = None
        self.done: tuple[Any, BaseException | None] | None = None  # (result, error)

    def start(self, coro: Coroutine[Any, Any, Any], context: contextvars.Context) -> None:
        """On the loop: run ``coro`` as a task in ``context``."""
        try:
            task = context.run(self.loop.create_task, coro)
        except BaseException as e:  # the caller must not wait for a task that never was
            coro.close()
            self.done = (None, e)
            self.inbox.put(None)
            raise
        self.task = task
        task.add_done_callback(self.finished)

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()

    def outcome(self) -> Any:
        """In the caller, once served: the coroutine's result, or its error raised."""
        done, self.done = self.done, None
        assert done is not None
        result, error = done
        if error is not None:
            raise error
        return result

    async def main(self, work: Callable[[Offload], Coroutine[Any, Any, T]]) -> T:
        self.task = asyncio.current_task()
        return await work(self.offload)

    async def offload(self, fn: Callable[[], R]) -> R:
        if asyncio.current_task() is not self.task:
            # A task spawned by this call (a background refresh) may outlive it.
            return await asyncio.to_thread(fn)
        future: asyncio.Future[R] = self.loop.create_future()
        self.inbox.put((fn, future))
        return await future

    def finished(self, task: asyncio.Task[Any]) -> None:
        # Forget the task: it holds the call's result (a live response) and ``offload``
        # outlives the call (a body's tee reads through it), so the response could never
        # be dropped unread. The caller takes the result from ``done`` once.
        self.task = None
        if task.cancelled():
            self.done = (None, CancelledError())
        else:
            error = task.exception()
            self.done = (None if error is not None else task.result(), error)
        self.inbox.put(None)

    def serve_until_done(self) -> None:
        while (job := self.inbox.get()) is not None:
            fn, future = job
            try:
                result = fn()
            except Exception as e:
                self.loop.call_soon_threadsafe(_settle, future, None, e)
            else:
                self.loop.call_soon_threadsafe(_settle, future, result, None)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # cancelled meanwhile
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


BRIDGE = LoopBridge()
"""The process-wide bridge every sync session and storage view uses."""


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on the bridge loop from sync code."""
    return BRIDGE.run(coro)


def serve(work: Callable[[Offload], Coroutine[Any, Any, T]]) -> T:
    """Run ``work`` on the bridge loop, lending it this thread for blocking calls."""
    return BRIDGE.serve(work)


__all__ = ["BRIDGE", "LoopBridge", "Offload", "run", "serve"]
