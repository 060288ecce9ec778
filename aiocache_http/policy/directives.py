"""Cache-Control / Pragma / Expires parsing (RFC 9111 §5.2, §5.3, §5.4).

Parsing is forgiving, as §4.2.1 asks of caches: an unparsable value is dropped, never
raised. Directive names are case-insensitive; quoted values may contain commas
(``no-cache="Set-Cookie, X-Foo"``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from functools import lru_cache

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


def seconds(directives: Mapping[str, str | None], name: str) -> int | None:
    """A delta-seconds directive as an int; None when absent or invalid (§1.2.2)."""
    if name not in directives:
        return None
    return delta_seconds(directives[name])


def field_names(value: str | None) -> list[str]:
    """The field names of a qualified ``no-cache="A, B"`` / ``private="A"`` directive."""
    return [f.lower() for f in split_list(value or "")]


_DAYS = "Mon|Tue|Wed|Thu|Fri|Sat|Sun"
_LONG_DAYS = "Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday"
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTH = {name.lower(): i + 1 for i, name in enumerate(_MONTHS)}
_DAY_NAMES = frozenset(_DAYS.lower().split("|"))
_M = "|".join(_MONTHS)
_T = r"(\d\d):(\d\d):(\d\d)"
# RFC 9110 §5.6.7: the three HTTP-date formats, exactly (case-sensitive, single spaces).
# Names in any case: RFC 9110 says case-sensitive, but reading "aug" or "gmt" is harmless
# (and what deployed caches do); the shape itself is strict.
_IMF_FIXDATE = re.compile(rf"(?:{_DAYS}), (\d\d) ({_M}) (\d{{4}}) {_T} GMT", re.IGNORECASE)
_RFC850 = re.compile(rf"(?:{_LONG_DAYS}), (\d\d)-({_M})-(\d\d) {_T} GMT", re.IGNORECASE)
_ASCTIME = re.compile(rf"(?:{_DAYS}) ({_M}) ([ \d]\d) {_T} (\d{{4}})", re.IGNORECASE)


@lru_cache(maxsize=1024)  # a Date changes once a second: most responses repeat one
def parse_http_date(value: str | None) -> datetime | None:
    """An HTTP-date (RFC 9110 §5.6.7: IMF-fixdate, or the obsolete RFC 850 and asctime
    forms) as an aware UTC datetime; None when missing or invalid. Anything else, a
    two-digit year in the IMF form, another time zone, a one-digit hour, is invalid
    (RFC 9111 §5.3: an invalid Expires means already expired, which callers decide)."""
    if not value:
        return None
    value = value.strip()
    try:
        if len(value) == 29 and value[3:5] == ", " and value[25:] == " GMT":  # the usual form
            mon = _MONTH.get(value[8:11].lower())
            if (mon is not None and value[7] == value[11] == value[16] == " "
                    and value[19] == value[22] == ":" and value[:3].lower() in _DAY_NAMES):
                fields = value[5:7], value[12:16], value[17:19], value[20:22], value[23:25]
                if all(f.isascii() and f.isdigit() for f in fields):
                    d, y, h, mi, sec = map(int, fields)
                    return _plausible(datetime(y, mon, d, h, mi, sec, tzinfo=timezone.utc))
        if m := _IMF_FIXDATE.fullmatch(value):
            day, month, year, hh, mm, ss = m.groups()
            return _plausible(datetime(int(year), _MONTH[month.lower()], int(day), int(hh), int(mm),
                                       int(ss), tzinfo=timezone.utc))
        if m := _RFC850.fullmatch(value):
            day, month, yy, hh, mm, ss = m.groups()
            year = _two_digit_year(int(yy))
            return datetime(year, _MONTH[month.lower()], int(day), int(hh), int(mm), int(ss),
                            tzinfo=timezone.utc)
        if m := _ASCTIME.fullmatch(value):
            month, day, hh, mm, ss, year = m.groups()
            return _plausible(datetime(int(year), _MONTH[month.lower()], int(day.strip()), int(hh),
                                       int(mm), int(ss), tzinfo=timezone.utc))
    except ValueError:  # 31 Feb, hour 25...
        return None
    return None


def _plausible(when: datetime) -> datetime | None:
    """HTTP did not exist before 1970: an earlier date is not one a server meant (a
    ``Date`` of year 1 would make every response look 2,000 years old)."""
    return when if when.year >= 1970 else None


def _two_digit_year(yy: int) -> int:
    """RFC 9110 §5.6.7: a two-digit year more than 50 years ahead is in the past century."""
    now = datetime.now(timezone.utc).year
    year = now - now % 100 + yy
    return year - 100 if year > now + 50 else year


def has_pragma_no_cache(cache_control: Iterable[str], pragma: Iterable[str]) -> bool:
    """``Pragma: no-cache`` counts only when there is no Cache-Control (§5.4)."""
    if any(cache_control):
        return False
    return any("no-cache" in p.lower() for p in pragma)
