"""Deadlines and a circuit breaker for the one gate to storage (``CacheBackend._guard``).

A sick backend must cost a request milliseconds, not seconds. Every storage call runs
under a deadline; consecutive failures or timeouts open a circuit, and while it is open
storage is not called at all (requests go straight to the origin). After a cool-down one
call probes it (half-open); its success closes the circuit.

- One breaker per backend and event loop: an async service's loop and the sync layer's
  bridge loop have their own connections, so each finds out for itself. ``backend.health``
  adds their counters up. Each breaker has a reads circuit and a writes circuit: a file
  that became read-only, a full disk or a held lock stop writes while hits go on.
- A deadline measures progress, not waiting: a backend is hung when it completes nothing,
  not when a call waits its turn (aiosqlite's one thread, a Redis connection pool, a
  file thread pool). A call times out once its backend has completed no call on its loop
  for ``backend_timeout`` while it waited, and in any case after ``write_timeout``. A burst
  queues behind a busy, healthy backend; a hung one costs one deadline. Calls on the
  writes side count only writes as progress: hits that go on while a lock holds every
  write up do not keep a write waiting.
- At most :data:`MAX_READS_IN_FLIGHT` reads and :data:`MAX_WRITES_IN_FLIGHT` writes per
  backend and loop are handed to storage at once (a write may hold a file thread for an
  fsync: reads must still find one); the others wait their turn at the gate (first come, first
  served, under the same deadline). A backend's own queues are round robin (a file
  thread pool, a connection per call): 500 calls of a few steps each would all finish
  together at the end of the burst, and nothing would look like progress until then.
- A request spends at most one deadline: once one of its storage calls failed or timed
  out, its later calls are skipped (:class:`request_budget`, opened by the driver).
- A request waits for its write while writes make progress (as for a read); then the
  write goes on in the background and the caller moves on.
- Deadlines cost one ticking timer per loop (:class:`_Watchdog`), not one per call. Time
  the process spent computing while the loop was too busy to keep its timers is not
  counted against the backend: the loop had not handed the backend's completions over
  yet (a busy process is not a hung backend).
- Logs are rate-limited: one WARNING for the first failure (then at most one per
  ``LOG_INTERVAL`` while no circuit opens), one when a circuit opens, one when it closes
  with the counts in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import math
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TypeVar

from ..events import note_fault

if TYPE_CHECKING:
    from ..policy.settings import CacheSettings

logger = logging.getLogger("aiocache_http")

T = TypeVar("T")
LOG_INTERVAL = 60.0  # seconds between two WARNINGs about failures that leave the circuit closed
MAX_READS_IN_FLIGHT = 16  # per backend and loop, handed to storage at once; the rest wait their turn
MAX_WRITES_IN_FLIGHT = 4  # fewer: a write may hold a thread for an fsync; reads need threads too
TICK = 0.02  # seconds between two looks of a loop's watchdog at the calls in flight
IDLE = 0.15  # a process computing less than this share of the time is idle


class Kind(enum.Enum):
    """What a storage call is: it decides the deadline and which circuit counts it."""

    READ = "read"  # on the request path: backend_timeout
    DELETE = "delete"  # on the request path (invalidation): backend_timeout; a write
    WRITE = "write"  # awaited up to backend_timeout, then finished in the background
    MAINTENANCE = "maintenance"  # clear, purge, listing (per step): write_timeout
    CLOSE = "close"  # never skipped, even with a circuit open: write_timeout

    @property
    def writes(self) -> bool:
        return self in (Kind.WRITE, Kind.DELETE)


_WRITES = frozenset({Kind.WRITE, Kind.DELETE})  # Kind.writes, without a property call


class CircuitState(str, enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class BackendTimeoutError(TimeoutError):
    """A storage call ran past its deadline (raised with ``strict=True``; otherwise the
    request goes to the origin)."""


class BackendUnavailableError(ConnectionError):
    """The backend's circuit is open: storage is not called until a probe succeeds (raised
    with ``strict=True``; otherwise the request goes to the origin)."""


# -- per request --------------------------------------------------------------------------
@dataclass(slots=True)
class _Budget:
    spent: bool = False  # a storage call of this request failed or timed out


_budget: ContextVar[_Budget | None] = ContextVar("aiocache_http_budget", default=None)
_lock_limit: ContextVar[tuple[_InFlight, float] | None] = ContextVar("aiocache_http_lock_limit",
                                                                    default=None)


class request_budget:
    """Within this block (one request), storage calls after a failed or timed-out one are
    skipped, so a hung backend adds at most one deadline to the request. Nested blocks
    share the outer one's budget. (A class, not a generator: it is on the hot path.)"""

    __slots__ = ("token",)

    def __enter__(self) -> None:
        self.token = _budget.set(_Budget()) if _budget.get() is None else None

    def __exit__(self, *exc: object) -> None:
        if self.token is not None:
            _budget.reset(self.token)


def current_budget() -> _Budget | None:
    """The running request's budget (None outside one): for work the request leaves behind."""
    return _budget.get()


class spending:
    """Within this block, storage calls count against ``budget``: a request's, carried to
    the work it left behind (the tee storing a body as the caller reads it, after the
    driver returned; on the sync session, in a task of the bridge loop). None: no change."""

    __slots__ = ("budget", "token")

    def __init__(self, budget: _Budget | None) -> None:
        self.budget = budget
        self.token: Token[_Budget | None] | None = None

    def __enter__(self) -> None:
        if self.budget is not None:
            self.token = _budget.set(self.budget)

    def __exit__(self, *exc: object) -> None:
        if self.token is not None:
            _budget.reset(self.token)
            self.token = None


def lock_wait() -> float | None:
    """Seconds the running storage call may still block waiting for a lock, or None
    outside the gate. For waits the gate cannot interrupt (SQLite's busy wait runs in the
    connection's thread and holds up every call queued behind it): the time left before
    the call's deadline, and never more than ``backend_timeout`` for a request-path call
    or a write. (A call waiting its turn is not counted: the wait begins at the front.)"""
    limit = _lock_limit.get()
    if limit is None:
        return None
    entry, most = limit
    return min(most, entry.left())


# -- per event loop -------------------------------------------------------------------------
@dataclass(slots=True, eq=False)
class Circuit:
    """Consecutive failures of one side (reads or writes) of one loop's storage calls."""

    side: str  # "reads" / "writes"
    state: CircuitState = CircuitState.CLOSED
    failures: int = 0  # consecutive
    opened_at: float = 0.0  # monotonic
    first_opened_at: float = 0.0  # start of this outage (kept through failed probes)
    probing: bool = False
    failed_while_open: int = 0
    skipped_while_open: int = 0

    def admit(self, cooldown: float) -> bool:
        if self.state is CircuitState.CLOSED:
            return True
        if self.state is CircuitState.OPEN and time.monotonic() - self.opened_at >= cooldown:
            self.state, self.probing = CircuitState.HALF_OPEN, True
            return True  # this call is the probe
        self.skipped_while_open += 1
        return False


@dataclass(slots=True, eq=False)
class Breaker:
    """One event loop's circuits for one backend. Writes have their own: a file that
    became read-only, a full disk or a held lock stop writes while reads still serve
    hits. With reads open (the backend is down) writes are not tried either."""

    reads: Circuit = field(default_factory=lambda: Circuit("reads"))
    writes: Circuit = field(default_factory=lambda: Circuit("writes"))
    warm: bool = False  # a call has succeeded on this loop (connections are open)
    progress_at: float = -math.inf  # the watchdog's attentive time a storage call last succeeded
    wrote_at: float = -math.inf  # ... a write or delete
    watchdog: _Watchdog | None = None  # its loop's (see _watchdog), once a call has needed it
    read_slots: _Slots = field(default_factory=lambda: _Slots(MAX_READS_IN_FLIGHT))
    write_slots: _Slots = field(default_factory=lambda: _Slots(MAX_WRITES_IN_FLIGHT))

    @property
    def state(self) -> CircuitState:
        return self.reads.state


@dataclass
class Health:
    """What ``backend.health`` shows: the circuit of the running loop (or, outside any
    loop, the worst one) and counters summed over every loop."""

    owner: str
    settings: CacheSettings
    errors: int = 0
    timeouts: int = 0
    dropped_writes: int = 0
    skipped: int = 0  # calls not made: circuit open, or the request already spent its deadline
    opened: int = 0  # times a circuit opened
    last_error: str | None = None
    last_error_at: datetime | None = None
    _breakers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Breaker] = field(
        default_factory=weakref.WeakKeyDictionary, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    # the loop whose breaker was asked for last, and that breaker: a hit asks twice
    _recent: tuple[weakref.ref[asyncio.AbstractEventLoop], Breaker] | None = field(default=None,
                                                                                  repr=False)
    _reported_at: float = field(default=-LOG_INTERVAL, repr=False)
    _unreported: int = field(default=0, repr=False)

    # -- what users read -------------------------------------------------------------
    @property
    def state(self) -> CircuitState:
        """The reads circuit: OPEN means requests go to the origin without the cache."""
        return self._worst(lambda b: b.reads)

    @property
    def write_state(self) -> CircuitState:
        """The writes circuit: OPEN means responses are not stored (hits still served)."""
        return self._worst(lambda b: b.writes)

    @property
    def consecutive_failures(self) -> int:
        breakers = self._in_view()
        return max((max(b.reads.failures, b.writes.failures) for b in breakers), default=0)

    def as_dict(self) -> dict[str, Any]:
        return {"state": self.state.value, "write_state": self.write_state.value,
                "consecutive_failures": self.consecutive_failures,
                "errors": self.errors, "timeouts": self.timeouts,
                "dropped_writes": self.dropped_writes, "skipped": self.skipped,
                "opened": self.opened, "last_error": self.last_error,
                "last_error_at": self.last_error_at}

    def __repr__(self) -> str:
        return f"Health({', '.join(f'{k}={v!r}' for k, v in self.as_dict().items())})"

    def _in_view(self) -> list[Breaker]:
        """The running loop's breaker, or outside any loop every loop's."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return list(self._breakers.values())
        breaker = self._breakers.get(loop)
        return [breaker] if breaker is not None else []

    def _worst(self, side: Callable[[Breaker], Circuit]) -> CircuitState:
        states = {side(b).state for b in self._in_view()}
        for state in (CircuitState.OPEN, CircuitState.HALF_OPEN):
            if state in states:
                return state
        return CircuitState.CLOSED

    def breaker(self, loop: asyncio.AbstractEventLoop | None = None) -> Breaker:
        """The running loop's breaker (``loop``: the running loop, when the caller has it)."""
        if loop is None:
            loop = asyncio.get_running_loop()
        recent = self._recent  # (one read: another thread's loop may replace it)
        if recent is not None and recent[0]() is loop:
            return recent[1]
        breaker = self._breakers.get(loop)
        if breaker is None:
            with self._lock:
                breaker = self._breakers.setdefault(loop, Breaker())
        self._recent = (weakref.ref(loop), breaker)
        return breaker

    # -- the gate ----------------------------------------------------------------------
    async def call(self, op: str, call: Awaitable[T], default: T, kind: Kind = Kind.READ,
                   background: set[asyncio.Task[Any]] | None = None) -> T:
        """Run one storage call through the breaker, under its deadline.

        Returns ``default`` instead of failing (fail-open), or raises with ``strict``.
        ``background`` receives a write that outlives the caller's wait.
        """
        s = self.settings
        loop = asyncio.get_running_loop()
        breaker = self.breaker(loop)
        circuit = breaker.writes if kind in _WRITES else breaker.reads  # CLOSE: counted, not judged
        if kind is not Kind.CLOSE and not self._admit(breaker, circuit, kind):
            _discard(call)
            note_fault(f"{op}: not attempted, the {circuit.side} circuit is open")
            if s.strict:
                raise BackendUnavailableError(
                    f"{self.owner}: the {circuit.side} circuit is open after {circuit.failures} "
                    f"consecutive failures (last: {self.last_error}); {op} not attempted")
            return default
        if kind is Kind.WRITE and background is not None and not s.strict:
            return await self._write(op, breaker, circuit, call, default, background)
        return await self._run(op, breaker, circuit, call, default, kind, loop)

    async def call_inline(self, op: str, call: Awaitable[T], default: T, kind: Kind = Kind.READ) -> T:
        """A call to an in-process storage (it never waits on IO): no deadline and no
        circuit, only fail-open."""
        try:
            return await call
        except asyncio.CancelledError:
            raise
        except Exception as e:
            if _is_configuration_error(e):
                raise
            self._failed(op, None, kind, e)
            if self.settings.strict:
                raise
            return default

    if sys.version_info >= (3, 11):
        async def read(self, op: str, call: Awaitable[T], default: T) -> T:
            """``call(op, call, default, Kind.READ)``, its common case (a warm loop, the
            circuit closed, a free turn, a deadline set) in one frame: a hit's storage
            read. The same admission, turn, deadline and outcomes as :meth:`call`."""
            loop = asyncio.get_running_loop()
            recent = self._recent
            breaker = recent[1] if recent is not None and recent[0]() is loop else self._breakers.get(loop)
            budget = _budget.get()
            settings = self.settings
            stall = settings.backend_timeout
            task = asyncio.current_task()
            if (breaker is None or not breaker.warm or breaker.watchdog is None or stall is None
                    or breaker.reads.state is not CircuitState.CLOSED or not breaker.read_slots.free
                    or (budget is not None and budget.spent) or task is None):
                return await self.call(op, call, default, Kind.READ)
            circuit, watchdog, slots = breaker.reads, breaker.watchdog, breaker.read_slots
            written = settings.write_timeout  # (inline: every call below is a hit's cost)
            cap = stall if written is None or written < stall else written
            entry = _InFlight(watchdog, watchdog.attentive, loop.time(), stall, cap, breaker, False,
                              task)
            token = _lock_limit.set((entry, stall))  # (min(stall, cap): cap >= stall)
            cancelling = task.cancelling()
            watchdog.calls[id(entry)] = entry
            if watchdog.handle is None:
                watchdog.add(entry)  # starts the ticking
            slots.free -= 1
            try:
                try:
                    result = await call
                finally:
                    if slots.waiters:
                        slots.release()
                    else:
                        slots.free += 1
            except asyncio.CancelledError:
                if entry.expired and task.uncancel() <= cancelling:  # our cancellation
                    return self._expired(op, circuit, Kind.READ, entry, default)
                self._abandoned(circuit)
                raise
            except Exception as e:
                return self._errored(op, circuit, Kind.READ, e, default)
            finally:
                del watchdog.calls[id(entry)]
                _lock_limit.reset(token)
            if entry.expired:  # the callee swallowed our cancellation: its result came in time
                task.uncancel()
            breaker.progress_at = watchdog.attentive
            if circuit.failures or circuit.state is not CircuitState.CLOSED:
                self._succeeded(circuit)
            return result
    else:  # pragma: no cover - Python 3.10: the general way (see _within)
        async def read(self, op: str, call: Awaitable[T], default: T) -> T:
            return await self.call(op, call, default, Kind.READ)

    def _expired(self, op: str, circuit: Circuit, kind: Kind, entry: _InFlight, default: T) -> T:
        """A call past its deadline: counted, and ``default`` (raised with ``strict``)."""
        self._failed(op, None if kind is Kind.CLOSE else circuit, kind, None)
        if self.settings.strict:
            if entry.stalled(entry.watchdog.attentive) >= entry.stall:
                why = f"its backend completed no call for {entry.stall:g}s while it waited"
            else:
                why = f"it took longer than {entry.cap:g}s"
            raise BackendTimeoutError(f"{self.owner}: {op} timed out: {why}") from None
        return default

    def _errored(self, op: str, circuit: Circuit, kind: Kind, e: Exception, default: T) -> T:
        """A call that raised: counted, and ``default`` (raised with ``strict``, and always
        for a configuration error)."""
        if _is_configuration_error(e):
            self._abandoned(circuit)
            raise e
        self._failed(op, None if kind is Kind.CLOSE else circuit, kind, e)
        if self.settings.strict:
            raise e
        return default

    def _admit(self, breaker: Breaker, circuit: Circuit, kind: Kind) -> bool:
        budget = _budget.get()
        if budget is not None and budget.spent and not self.settings.strict:
            admitted = False
        elif circuit is breaker.writes and breaker.reads.state is not CircuitState.CLOSED:
            breaker.reads.skipped_while_open += 1
            admitted = False  # the backend is down: no write is tried until reads work
        else:
            admitted = circuit.admit(self.settings.breaker_cooldown)
        if not admitted:
            with self._lock:
                self.skipped += 1
                if kind.writes:
                    self.dropped_writes += 1
        return admitted

    def _limits(self, breaker: Breaker, kind: Kind) -> tuple[float, float]:
        """(seconds without progress, seconds in all) a call of ``kind`` may wait; inf: no
        limit. ``write_timeout`` caps every call, however busy its backend. The first call
        on a loop opens connections: ``connect_timeout`` in all."""
        s = self.settings
        if not breaker.warm:
            return math.inf, _or_inf(s.connect_timeout)
        cap = _or_inf(s.write_timeout)
        if kind in (Kind.READ, Kind.DELETE):
            stall = _or_inf(s.backend_timeout)
            return stall, max(cap, stall)
        return (math.inf if kind is Kind.CLOSE else cap), cap

    async def _run(self, op: str, breaker: Breaker, circuit: Circuit, call: Awaitable[T], default: T,
                   kind: Kind, loop: asyncio.AbstractEventLoop | None = None) -> T:
        if loop is None:
            loop = asyncio.get_running_loop()
        stall, cap = self._limits(breaker, kind)
        watchdog = breaker.watchdog
        if watchdog is None:  # the breaker is the loop's: so is its watchdog, kept at hand
            watchdog = breaker.watchdog = _watchdog(loop)
        writes = kind in _WRITES
        entry = _InFlight(watchdog, watchdog.attentive, loop.time(), stall, cap, breaker, writes)
        most = stall
        short = self.settings.backend_timeout
        if kind in (Kind.READ, Kind.DELETE, Kind.WRITE) and short is not None:
            most = min(most, short)
        token = _lock_limit.set((entry, min(most, cap)))
        slots = None
        if kind is Kind.READ:
            slots = breaker.read_slots
        elif writes:
            slots = breaker.write_slots
        # a call that waited its turn while the circuit opened is not made (unless it probes)
        gate = circuit if circuit.state is CircuitState.CLOSED else None
        try:
            result = await _within(call, entry, loop, slots, gate)
        except _Expired:
            return self._expired(op, circuit, kind, entry, default)
        except _Skipped:
            note_fault(f"{op}: not attempted, the {circuit.side} circuit opened while it waited its turn")
            with self._lock:
                self.skipped += 1
                if kind.writes:
                    self.dropped_writes += 1
            if self.settings.strict:
                raise BackendUnavailableError(
                    f"{self.owner}: the {circuit.side} circuit opened after {circuit.failures} "
                    f"consecutive failures (last: {self.last_error}); {op} not attempted") from None
            return default
        except asyncio.CancelledError:
            self._abandoned(circuit)
            raise
        except Exception as e:
            return self._errored(op, circuit, kind, e, default)
        finally:
            _lock_limit.reset(token)
        if kind is not Kind.CLOSE:  # closing tells nothing about the backend's health
            breaker.warm = True
            breaker.progress_at = now = watchdog.attentive
            if writes:
                breaker.wrote_at = now
            self._succeeded(circuit)
        return result

    async def _write(self, op: str, breaker: Breaker, circuit: Circuit, call: Awaitable[T], default: T,
                     background: set[asyncio.Task[Any]]) -> T:
        """Wait for the write while writes make progress (``backend_timeout`` without one, at
        most ``write_timeout``); past that it finishes (or is dropped at its own deadline)
        in the background."""
        task = asyncio.ensure_future(self._run(op, breaker, circuit, call, default, Kind.WRITE))
        loop = asyncio.get_running_loop()
        stall, cap = self._limits(breaker, Kind.DELETE)  # the request's wait: as a request-path call
        try:
            watchdog = _watchdog(loop)
            waited = _InFlight(watchdog, watchdog.attentive, loop.time(), stall, cap, breaker, True)
            return await _within(asyncio.shield(task), waited, loop, None, None)
        except _Expired:
            note_fault(f"{op}: still under way when the request's wait ended (left to finish "
                       "in the background)")
            return default
        finally:  # past the wait, or the caller cancelled: the write goes on, kept here
            if not task.done():
                background.add(task)
                task.add_done_callback(background.discard)

    # -- outcomes -------------------------------------------------------------------------
    def _succeeded(self, circuit: Circuit) -> None:
        circuit.failures = 0
        if circuit.state is not CircuitState.CLOSED:
            outage = time.monotonic() - circuit.first_opened_at
            logger.warning(
                "%s: the backend answers again: %s circuit closed after %.1fs open; meanwhile "
                "%d calls failed and %d were skipped", self.owner, circuit.side, outage,
                circuit.failed_while_open, circuit.skipped_while_open)
            circuit.state, circuit.probing = CircuitState.CLOSED, False
            circuit.failed_while_open = circuit.skipped_while_open = 0

    def _abandoned(self, circuit: Circuit) -> None:
        """The call ended without telling anything about the backend's health."""
        if circuit.probing:  # let the next call probe
            circuit.state, circuit.probing = CircuitState.OPEN, False
            circuit.opened_at = time.monotonic() - self.settings.breaker_cooldown

    def _failed(self, op: str, circuit: Circuit | None, kind: Kind, error: Exception | None) -> None:
        what = "timed out" if error is None else f"{type(error).__name__}: {error}"
        note_fault(f"{op}: {'BackendTimeoutError: ' if error is None else ''}{what}")  # the event
        now = time.monotonic()
        with self._lock:
            if error is None:
                self.timeouts += 1
            else:
                self.errors += 1
            if kind.writes:
                self.dropped_writes += 1
            self.last_error = f"{op} {what}"
            self.last_error_at = datetime.now(timezone.utc)
        budget = _budget.get()
        if budget is not None:
            budget.spent = True
        if circuit is None:
            if not self.settings.strict:
                self._report(op, what, now)
            return
        circuit.failures += 1
        threshold = self.settings.breaker_threshold
        if circuit.state is CircuitState.HALF_OPEN:  # the probe failed: stay open, quietly
            circuit.state, circuit.probing, circuit.opened_at = CircuitState.OPEN, False, now
            circuit.failed_while_open += 1
            logger.debug("%s: probe %s %s; %s circuit stays open", self.owner, op, what, circuit.side)
        elif circuit.state is CircuitState.OPEN:  # a call admitted before the circuit opened
            circuit.failed_while_open += 1
        elif threshold and circuit.failures >= threshold:
            circuit.state, circuit.opened_at, circuit.first_opened_at = CircuitState.OPEN, now, now
            with self._lock:
                self.opened += 1
            if not self.settings.strict:
                consequence = ("responses are served from the cache but not stored"
                               if circuit.side == "writes" else "requests go to the origin without the cache")
                logger.warning(
                    "%s: %s circuit open after %d consecutive failed storage calls (last: %s %s); "
                    "%s; next probe in %.1fs", self.owner, circuit.side, circuit.failures, op, what,
                    consequence, self.settings.breaker_cooldown)
        elif not self.settings.strict:
            self._report(op, what, now)

    def _report(self, op: str, what: str, now: float) -> None:
        with self._lock:
            due = now - self._reported_at >= LOG_INTERVAL
            unreported = self._unreported
            if due:
                self._reported_at, self._unreported = now, 0
            else:
                self._unreported += 1
        if due:
            more = f" ({unreported} more failures since the last report)" if unreported else ""
            logger.warning("%s: %s failed, continuing without the cache: %s%s", self.owner, op, what, more)
        else:
            logger.debug("%s: %s failed, continuing without the cache: %s", self.owner, op, what)


class _Expired(Exception):
    """The gate's own deadline passed (not a timeout raised by the storage)."""


class _Skipped(Exception):
    """The circuit opened while the call waited for its turn: it is not made."""


class _Slots:
    """Turns to call storage: at most ``free`` calls at once, the others wait in order."""

    __slots__ = ("free", "waiters")

    def __init__(self, size: int) -> None:
        self.free = size
        self.waiters: deque[asyncio.Future[None]] = deque()

    async def wait(self) -> None:
        """Wait for a turn (call when ``free`` is 0); a cancelled waiter gives it back."""
        waiter = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed a turn just as it was cancelled: pass it on
            else:
                with contextlib.suppress(ValueError):  # (a release may have dropped it already)
                    self.waiters.remove(waiter)  # no dead future (and its loop) kept
            raise

    def release(self) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the turn goes straight to the next in line
                return
        self.free += 1


class _Watchdog:
    """The deadlines of every storage call in flight on one event loop, checked by one
    ticking timer (every ``TICK`` while calls are in flight): a timer per call
    (``asyncio.timeout``) costs more than the hit it guards.

    Deadlines are counted in the loop's *attentive* time (``attentive``). A loop that ran
    its timer late was busy, and the completions its backends delivered meanwhile (read
    from sockets, handed over by threads) may not have reached the calls waiting for them
    yet: a busy process is not a hung backend. So a late tick counts for little (the
    later, the less) while the process was computing (its CPU time: the loop's callbacks,
    other threads, its in-process backends' threads), and up to ``2 * TICK`` if it was
    idle (the machine's other processes had the CPU). A little always counts, so every
    deadline ends. A hung backend leaves its process waiting (the requests wait for it):
    attentive time then runs nearly as fast as the clock."""

    __slots__ = ("attentive", "calls", "cpu_at", "handle", "loop", "ticked_at")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        # a proxy: this object is a value of ``_watchdogs``, whose weak key is the loop
        self.loop: asyncio.AbstractEventLoop = weakref.proxy(loop)
        self.calls: dict[int, _InFlight] = {}
        self.handle: asyncio.TimerHandle | None = None
        self.attentive = 0.0
        self.ticked_at = self.cpu_at = 0.0

    def add(self, call: _InFlight) -> None:
        self.calls[id(call)] = call
        if self.handle is None:
            self.ticked_at, self.cpu_at = self.loop.time(), time.process_time()
            self.handle = self.loop.call_at(self.ticked_at + TICK, self._tick)

    def _tick(self) -> None:
        now, cpu = self.loop.time(), time.process_time()
        gap, busy = now - self.ticked_at, cpu - self.cpu_at
        if gap <= TICK * 1.5:  # on time (a few ms late is scheduling noise)
            self.attentive += gap
        elif busy < gap * IDLE:  # late, the process idle: the machine's other processes
            self.attentive += min(gap, TICK * 2)  # had the CPU; the backend had the time
        else:  # late, the process computing (callbacks, threads, its own backends' work)
            self.attentive += TICK * TICK / gap
        self.ticked_at, self.cpu_at = now, cpu
        if not self.calls:
            self.handle = None
            return
        self.handle = self.loop.call_at(now + TICK, self._tick)
        attentive = self.attentive
        for call in list(self.calls.values()):
            if not call.expired and call.overdue(now, attentive):
                call.expired = True
                if call.task is not None:
                    call.task.cancel()


@dataclass(slots=True, eq=False)
class _InFlight:
    """A call waiting for storage. It is overdue ``stall`` seconds of its loop's attentive
    time after the later of its start and its backend's last progress on this loop (for
    a call on the writes side: the last write), or ``cap`` attentive seconds after its
    start. A call without a progress rule (``stall`` inf: the first call on a loop, which
    opens connections; close) has a plain deadline: ``cap`` seconds of the clock."""

    watchdog: _Watchdog
    since: float  # the watchdog's attentive time at the start
    start: float  # the loop's time at the start
    stall: float
    cap: float
    breaker: Breaker
    writes: bool
    task: asyncio.Task[Any] | None = None
    expired: bool = False

    def stalled(self, attentive: float) -> float:
        """Attentive seconds since the later of its start and its backend's last progress."""
        last = self.breaker.wrote_at if self.writes else self.breaker.progress_at
        return attentive - max(self.since, last)

    def overdue(self, now: float, attentive: float) -> bool:
        if self.stall == math.inf:
            return now - self.start >= self.cap
        return attentive - self.since >= self.cap or self.stalled(attentive) >= self.stall

    def left(self) -> float:
        """Seconds before it is overdue if the backend completes nothing meanwhile."""
        if self.stall == math.inf:
            return max(0.0, self.start + self.cap - self.watchdog.loop.time())
        attentive = self.watchdog.attentive
        return max(0.0, min(self.cap - (attentive - self.since), self.stall - self.stalled(attentive)))


_watchdogs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Watchdog] = weakref.WeakKeyDictionary()


def _watchdog(loop: asyncio.AbstractEventLoop) -> _Watchdog:
    watchdog = _watchdogs.get(loop)
    if watchdog is None:
        watchdog = _watchdogs[loop] = _Watchdog(loop)
    return watchdog


def _or_inf(seconds: float | None) -> float:
    return math.inf if seconds is None else seconds


async def _turn(slots: _Slots, circuit: Circuit | None) -> None:
    """Wait for a turn at the gate; with ``circuit``, a call whose circuit opened
    meanwhile is not made."""
    await slots.wait()
    if circuit is not None and circuit.state is not CircuitState.CLOSED:
        slots.release()
        raise _Skipped


async def _in_turn(call: Awaitable[T], slots: _Slots | None, circuit: Circuit | None) -> T:
    """Await ``call`` in its turn (``slots``: None, at once)."""
    if slots is None:
        return await call
    if slots.free:
        slots.free -= 1
    else:
        try:
            await _turn(slots, circuit)
        except BaseException:
            _discard(call)
            raise
    try:
        return await call
    finally:
        slots.release()


if sys.version_info >= (3, 11):
    async def _within(call: Awaitable[T], entry: _InFlight, loop: asyncio.AbstractEventLoop,
                      slots: _Slots | None, circuit: Circuit | None) -> T:
        """Await ``call`` in its turn (``slots``), until ``entry`` is overdue."""
        task = asyncio.current_task()
        if (entry.cap == math.inf and entry.stall == math.inf) or task is None:
            return await _in_turn(call, slots, circuit)
        watchdog = entry.watchdog
        entry.task = task
        cancelling = task.cancelling()
        watchdog.add(entry)
        try:
            if slots is None:
                result = await call
            else:  # _in_turn, inline: this is the hot path
                if slots.free:
                    slots.free -= 1
                else:
                    try:
                        await _turn(slots, circuit)
                    except BaseException:
                        _discard(call)
                        raise
                try:
                    result = await call
                finally:
                    slots.release()
        except asyncio.CancelledError:
            if entry.expired and task.uncancel() <= cancelling:
                raise _Expired from None  # our cancellation, nobody else's
            raise
        finally:
            del watchdog.calls[id(entry)]
        if entry.expired:  # the callee swallowed our cancellation: its result came in time
            task.uncancel()
        return result
else:  # pragma: no cover - Python 3.10: no Task.uncancel, so the call runs in a task we poll
    async def _within(call: Awaitable[T], entry: _InFlight, loop: asyncio.AbstractEventLoop,
                      slots: _Slots | None, circuit: Circuit | None) -> T:
        if entry.cap == math.inf and entry.stall == math.inf:
            return await _in_turn(call, slots, circuit)
        watchdog = entry.watchdog
        future = asyncio.ensure_future(_in_turn(call, slots, circuit))
        watchdog.add(entry)  # no task: the watchdog only marks it expired
        try:
            while not entry.expired:
                done, _ = await asyncio.wait((future,), timeout=TICK)
                if done:
                    return future.result()
            raise _Expired
        finally:
            del watchdog.calls[id(entry)]
            if not future.done():
                future.cancel()


def _discard(call: Awaitable[Any]) -> None:
    close: Callable[[], Any] | None = getattr(call, "close", None)
    if close is not None:
        close()  # a coroutine never to be awaited


def _is_configuration_error(e: BaseException) -> bool:
    from .base import ConfigurationError

    return isinstance(e, ConfigurationError)


__all__ = ["BackendTimeoutError", "BackendUnavailableError", "Breaker", "Circuit", "CircuitState", "Health",
           "Kind", "current_budget", "lock_wait", "request_budget", "spending"]
