"""What commands print: aligned tables and key/value blocks for people, JSON for scripts,
colour only on a terminal (and never with NO_COLOR), progress bars on stderr."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import Any, TextIO

_COLOURS = {"fresh": "32", "hit": "32", "stale": "33", "expired": "31", "unreadable": "31",
            "miss": "36", "failed": "31"}


class Output:
    def __init__(self, as_json: bool = False, colour: bool | None = None,
                 stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self.json = as_json
        if colour is None:
            colour = self.stream.isatty() and not os.environ.get("NO_COLOR")
        self.colour = colour and not as_json

    def line(self, text: str = "") -> None:
        print(text, file=self.stream)

    def note(self, text: str) -> None:
        """A message for people (stderr, so stdout stays parseable)."""
        print(text, file=sys.stderr)

    def emit(self, data: Any) -> None:
        print(json.dumps(data, indent=2, default=str, ensure_ascii=False), file=self.stream)

    def paint(self, word: str, text: str | None = None) -> str:
        text = word if text is None else text
        code = _COLOURS.get(word)
        return f"\x1b[{code}m{text}\x1b[0m" if self.colour and code else text

    def pairs(self, items: Iterable[tuple[str, Any]]) -> None:
        items = list(items)
        width = max((len(k) for k, _v in items), default=0)
        for name, value in items:
            self.line(f"{name:<{width}}  {value}")

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[Any]], paint_column: int | None = None,
              numeric: Sequence[int] = ()) -> None:
        text = [[str(c) for c in row] for row in rows]
        widths = [max([len(h), *(len(r[i]) for r in text)]) for i, h in enumerate(headers)]
        self.line("  ".join(h.ljust(w) if i not in numeric else h.rjust(w)
                            for i, (h, w) in enumerate(zip(headers, widths, strict=True))).rstrip())
        for row in text:
            cells = []
            for i, (cell, w) in enumerate(zip(row, widths, strict=True)):
                padded = cell.rjust(w) if i in numeric else cell.ljust(w)
                cells.append(self.paint(cell, padded) if i == paint_column else padded)
            self.line("  ".join(cells).rstrip())

    def progress(self, total: int | None, unit: str) -> Any:
        """A tqdm bar on stderr, only when stderr is a terminal."""
        from tqdm import tqdm

        return tqdm(total=total, unit=f" {unit}", unit_scale=True, file=sys.stderr, leave=False,
                    disable=not sys.stderr.isatty(), dynamic_ncols=True)

    def width(self) -> int:
        return shutil.get_terminal_size((100, 24)).columns if self.stream.isatty() else 10_000


def size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def moment(when: datetime | None, now: datetime) -> str:
    """``2025-01-02 03:04:05Z (5m ago)``; None is ``never``."""
    if when is None:
        return "never"
    return f"{when.astimezone(timezone.utc):%Y-%m-%d %H:%M:%S}Z ({relative(when, now)})"


def relative(when: datetime | None, now: datetime) -> str:
    if when is None:
        return "never"
    seconds = (when - now).total_seconds()
    span = abs(seconds)
    for limit, unit, div in ((90, "s", 1), (5400, "m", 60), (129600, "h", 3600), (float("inf"), "d", 86400)):
        if span < limit:
            amount = f"{span / div:.0f}{unit}"
            break
    return f"in {amount}" if seconds > 0 else f"{amount} ago"


def iso(when: datetime | None) -> str | None:
    return None if when is None else when.astimezone(timezone.utc).isoformat()
