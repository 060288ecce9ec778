"""``expire_after`` values, ``urls_expire_after`` patterns and expiry arithmetic.

The constants keep requests-cache's values so code that compares against them keeps
working after the switch.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from fnmatch import fnmatchcase

NEVER_EXPIRE = -1
"""Store, and serve as fresh forever."""
EXPIRE_IMMEDIATELY = 0
"""Store, but never serve without revalidating first."""
DO_NOT_CACHE = 0x0D0E0200020704
"""Do not store at all (the same value as requests-cache's constant)."""

ExpirationTime = None | int | float | str | datetime | timedelta
ExpirationPattern = str | re.Pattern[str]
ExpirationPatterns = Mapping[ExpirationPattern, ExpirationTime]

_NAMED = {"NEVER_EXPIRE": NEVER_EXPIRE, "EXPIRE_IMMEDIATELY": EXPIRE_IMMEDIATELY,
          "DO_NOT_CACHE": DO_NOT_CACHE}


def normalize_expire_after(value: ExpirationTime, name: str = "expire_after") -> ExpirationTime:
    """Validate an ``expire_after`` value and return it in canonical form.

    Canonical forms: ``NEVER_EXPIRE``, ``DO_NOT_CACHE``, a ``float`` of seconds (0 is
    ``EXPIRE_IMMEDIATELY``; below 0, other than -1, already expired that long ago, as in
    requests-cache), or an aware ``datetime``.
    """
    if value is None:
        return NEVER_EXPIRE
    if isinstance(value, str):
        if value.upper() not in _NAMED:
            raise ValueError(f"{name}={value!r} is not one of {sorted(_NAMED)}")
        return _NAMED[value.upper()]
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a number of seconds, timedelta or datetime, not bool")
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, (int, float)):
        if value in (NEVER_EXPIRE, DO_NOT_CACHE):
            return int(value)
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"{name}={value!r}: use -1 (NEVER_EXPIRE) or a finite number of seconds")
        return float(value)
    raise TypeError(
        f"{name} must be None, a number of seconds, timedelta, datetime or one of "
        f"{sorted(_NAMED)}, not {type(value).__name__}"
    )


def expiration_datetime(expire_after: ExpirationTime, now: datetime) -> datetime | None:
    """Absolute expiry for a response received at ``now``; None means it never expires.

    Must not be called with ``DO_NOT_CACHE`` (such a response is never stored).
    """
    value = normalize_expire_after(expire_after)
    if value == NEVER_EXPIRE:
        return None
    if value == DO_NOT_CACHE:
        raise ValueError("DO_NOT_CACHE has no expiration time")
    if isinstance(value, datetime):
        return value
    assert isinstance(value, float)
    return now + timedelta(seconds=value)


def normalize_patterns(
    patterns: ExpirationPatterns | None,
) -> dict[ExpirationPattern, ExpirationTime]:
    """Validate ``urls_expire_after``, keeping the caller's order (first match wins)."""
    if patterns is None:
        return {}
    if not isinstance(patterns, Mapping):
        raise TypeError("urls_expire_after must be a mapping of URL pattern -> expire_after")
    out: dict[ExpirationPattern, ExpirationTime] = {}
    for pattern, value in patterns.items():
        if not isinstance(pattern, (str, re.Pattern)):
            raise TypeError(f"urls_expire_after: pattern {pattern!r} must be a str or re.Pattern")
        out[pattern] = normalize_expire_after(value, f"urls_expire_after[{pattern!r}]")
    return out


def url_match(url: str, pattern: ExpirationPattern) -> bool:
    """Match a URL against a glob pattern (prefix match) or a compiled regex.

    A glob without a scheme matches any scheme: ``"example.com/api/*"`` matches both
    ``http://`` and ``https://``. A glob with a scheme matches only that scheme.
    """
    if isinstance(pattern, re.Pattern):
        return pattern.search(url) is not None
    if "://" not in pattern:
        url = url.split("://", 1)[-1]
    return fnmatchcase(url, pattern.rstrip("*") + "*")


def expire_after_for_url(
    url: str,
    patterns: Mapping[ExpirationPattern, ExpirationTime],
    default: ExpirationTime,
) -> ExpirationTime:
    """The first ``urls_expire_after`` value whose pattern matches ``url``, else ``default``."""
    for pattern, value in patterns.items():
        if url_match(url, pattern):
            return value
    return default
