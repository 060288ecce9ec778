"""Cache-Control / Pragma / Expires parsing (RFC 9111 §5.2, §5.3, §5.4).

Parsing is forgiving, as §4.2.1 asks of caches: an unparsable value is dropped, never
raised. Directive names are case-insensitive; quoted values may contain commas
(``no-cache="Set-Cookie, X-Foo"``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

MAX_DELTA_SECONDS = 2**31
"""§1.2.2: a delta-seconds too large to represent "MUST" be taken as 2^31; every number
read from a header is capped to it, so no later arithmetic can overflow."""

_TOKEN_DIRECTIVES_WITH_SECONDS = frozenset(
    {"max-age", "s-maxage", "max-stale", "min-fresh", "stale-while-revalidate", "stale-if-error"}
)


def split_list(value: str) -> list[str]:
    """Split an HTTP list header on commas that are not inside a quoted string."""
    parts: list[str] = []
    start, quoted, i = 0, False, 0
    while i < len(value):
        c = value[i]
        if c == '"':
            quoted = not quoted
        elif c == "\\" and quoted:
            i += 1
        elif c == "," and not quoted:
            parts.append(value[start:i].strip())
            start = i + 1
        i += 1
    parts.append(value[start:].strip())
    return [p for p in parts if p]


def parse_cache_control(values: Iterable[str]) -> dict[str, str | None]:
    """Parse every Cache-Control header line into ``{directive: value or None}``.

    Values are unquoted. When a directive repeats, the first occurrence wins.
    """
    directives: dict[str, str | None] = {}
    for line in values:
        for part in split_list(line):
            name, sep, raw = part.partition("=")
            name = name.strip().lower()
            if not name or name in directives:
                continue
            val: str | None = raw.strip() if sep else None
            if val is not None and len(val) >= 2 and val[0] == val[-1] == '"':
                val = val[1:-1].replace('\\"', '"')
            directives[name] = val
    return directives


def delta_seconds(raw: str | None) -> int | None:
    """A delta-seconds value (ASCII digits only) capped to 2^31; None when invalid (§1.2.2)."""
    if raw is None or not raw.isascii() or not raw.isdigit():
        return None
    if len(raw) > 10:  # more than 2^31 whatever its value: no need to parse it
        return MAX_DELTA_SECONDS
    return min(int(raw), MAX_DELTA_SECONDS)


def seconds(directives: dict[str, str | None], name: str) -> int | None:
    """A delta-seconds directive as an int; None when absent or invalid (§1.2.2)."""
    if name not in directives:
        return None
    return delta_seconds(directives[name])


def field_names(value: str | None) -> list[str]:
    """The field names of a qualified ``no-cache="A, B"`` / ``private="A"`` directive."""
    return [f.lower() for f in split_list(value or "")]


def parse_http_date(value: str | None) -> datetime | None:
    """An HTTP-date as an aware UTC datetime; None when missing or invalid (§5.3: an
    invalid Expires, such as ``0``, means already expired, which callers decide)."""
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed is None:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def has_pragma_no_cache(cache_control: Iterable[str], pragma: Iterable[str]) -> bool:
    """``Pragma: no-cache`` counts only when there is no Cache-Control (§5.4)."""
    if any(cache_control):
        return False
    return any("no-cache" in p.lower() for p in pragma)
