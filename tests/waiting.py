"""Waiting for a condition in tests: polled until it holds, within a generous deadline.

A fixed sleep is either too short on a loaded machine (a flake) or longer than needed on
a quiet one (wasted time); a polled condition is neither. The deadline only turns a hang
into a failure: it is never what a test measures.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

DEADLINE = 30.0  # seconds: far beyond anything a loaded 2-core machine needs
POLL = 0.01


async def until(condition: Callable[[], object], what: str, timeout: float = DEADLINE) -> None:
    """Return once ``condition()`` is true; fail naming ``what`` after ``timeout`` s."""
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        await asyncio.sleep(POLL)


def until_sync(condition: Callable[[], object], what: str, timeout: float = DEADLINE) -> None:
    """:func:`until` for a thread without a loop."""
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        time.sleep(POLL)
