"""CacheSettings: every cache option in one validated, run-time-mutable object, and
SETTINGS: the one table of options (name, default, validator, aliases, doc) from which
validation, the aliases, ``CacheSettings.split``, the sync ``CachedSession`` defaults
and the README settings table come.

Both peers' spellings are accepted (``allowable_codes`` / ``allowed_codes``,
``ignored_parameters`` / ``ignored_params``, ``include_headers`` / ``match_headers``), and
every assignment is validated, so a typo fails where it is made, naming the option.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from .expiration import (
    NEVER_EXPIRE,
    ExpirationPattern,
    ExpirationTime,
    normalize_expire_after,
    normalize_patterns,
)

ALL_METHODS = ("GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE")
DEFAULT_MAX_BODY_SIZE = 64 * 1024 * 1024
DEFAULT_HEURISTIC_MAX = 7 * 24 * 3600  # RFC 9111 §4.2.2 leaves it to the cache; a week

SecretKey = str | bytes | Iterable[str | bytes] | None
FilterFn = Callable[[Any], Any]


def _seconds_or_flag(name: str, value: object) -> float | bool:
    """stale_if_error / stale_while_revalidate: bool, seconds or timedelta."""
    if isinstance(value, bool):
        return value
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, (int, float)) and value >= 0:
        return float(value)
    raise ValueError(f"{name} must be True/False, seconds >= 0 or a timedelta, not {value!r}")


def _seconds(name: str, value: object, none: bool = True) -> float | None:
    """A duration in seconds (> 0), or None (no bound) where allowed."""
    if value is None and none:
        return None
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    allowed = "seconds > 0, a timedelta or None" if none else "seconds > 0 or a timedelta"
    raise ValueError(f"{name} must be {allowed}, not {value!r}")


def _count(name: str, value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise ValueError(f"{name} must be an int >= 0, not {value!r}")


def _codes(value: object) -> tuple[int, ...]:
    """As given (order kept, duplicates dropped): ``settings.allowed_codes == (200, 301)``."""
    try:
        codes = tuple(dict.fromkeys(int(c) for c in value))  # type: ignore[attr-defined]
    except (TypeError, ValueError) as e:
        raise TypeError(f"allowed_codes must be an iterable of ints, not {value!r}") from e
    bad = [c for c in codes if not 100 <= c <= 599]
    if bad:
        raise ValueError(f"allowed_codes: {bad} are not HTTP status codes")
    return codes


def _methods(value: object) -> tuple[str, ...]:
    if isinstance(value, str):  # ('GET') in requests-cache's own docs: one method
        value = (value,)
    if not isinstance(value, Iterable):
        raise TypeError(f"allowed_methods must be an iterable of method names, not {value!r}")
    methods = tuple(dict.fromkeys(str(m).upper() for m in value))
    bad = sorted(set(methods) - set(ALL_METHODS))
    if bad:
        raise ValueError(f"allowed_methods: unknown method(s) {bad}; known: {list(ALL_METHODS)}")
    return methods


def _names(name: str, value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise TypeError(f"{name} must be an iterable of names, not {value!r}")
    return tuple(str(v) for v in value)


def _match_headers(value: object) -> bool | tuple[str, ...]:
    if isinstance(value, bool):
        return value
    return _names("match_headers", value)


def _size_or_none(name: str, value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a number of bytes >= 0 or None (no limit), not {value!r}")
    return value


def _callable(name: str, value: object) -> Any:
    if value is not None and not callable(value):
        raise TypeError(f"{name} must be callable or None, not {type(value).__name__}")
    return value


def _secret(value: object) -> tuple[bytes, ...]:
    if value is None or value == "" or value == b"":
        return ()
    items = [value] if isinstance(value, (str, bytes)) else value
    if not isinstance(items, (list, tuple)):
        raise TypeError(f"secret_key must be a non-empty str or bytes, or a list of them, "
                        f"not {type(value).__name__}")
    out = []
    for item in items:
        if not isinstance(item, (str, bytes)) or not item:
            raise TypeError(f"secret_key must be a non-empty str or bytes, or a list of them, "
                            f"not a list holding {item!r:.20}")
        out.append(item.encode() if isinstance(item, str) else item)
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Setting:
    """One row of the settings table."""

    name: str
    default: Any
    validate: Callable[[Any], Any]
    doc: str
    aliases: tuple[str, ...] = ()
    shown: str = ""
    """The default as the README shows it (empty: ``repr(default)`` in backquotes)."""
    fixed: bool = False
    """Part of how stored items are read: set at construction, never changed after."""


SETTINGS: tuple[Setting, ...] = (
    Setting("expire_after", NEVER_EXPIRE, normalize_expire_after,
            "seconds, `timedelta`, `datetime`, `EXPIRE_IMMEDIATELY` (0: stored, revalidated on every "
            "use), `DO_NOT_CACHE`; below 0 (other than -1): stored already expired that long ago, as "
            "in requests-cache", shown="`NEVER_EXPIRE` (-1)"),
    Setting("urls_expire_after", None, normalize_patterns,
            "`{glob or regex: expire_after}`, first match wins; a glob without scheme matches any "
            "scheme", shown="`{}`"),
    Setting("allowed_codes", (200,), _codes, "status codes that may be stored",
            ("allowable_codes",)),
    Setting("allowed_methods", ("GET", "HEAD"), _methods,
            "methods whose responses may be stored (a single name, `'GET'`, is one method)",
            ("allowable_methods",)),
    Setting("match_headers", False, _match_headers,
            "`True` or header names that become part of the key",
            ("include_headers", "include_get_headers")),
    Setting("ignored_params", (), lambda v: _names("ignored_params", v),
            "query/body/header names left out of the key, redacted in storage (an opt-out: "
            "listed credentials are shared)",
            ("ignored_parameters",)),
    Setting("credential_names", (), lambda v: _names("credential_names", v),
            "more header/parameter names or globs that carry credentials (keyed by hash, "
            "redacted in storage), added to the built-in list"),
    Setting("cache_control", False, bool, "honour response `Cache-Control`/`Expires` (RFC 9111)"),
    Setting("stale_if_error", False, lambda v: _seconds_or_flag("stale_if_error", v),
            "serve a stale response when the origin fails (unreachable, a 5xx, or, as in "
            "requests-cache, a 4xx not in `allowed_codes`; also instead of an `only_if_cached` 504): "
            "`True` or a bound in seconds past expiry",
            ("old_data_on_error",)),
    Setting("stale_while_revalidate", False,
            lambda v: _seconds_or_flag("stale_while_revalidate", v),
            "serve stale at once and refresh in the background: `True` or seconds past expiry"),
    Setting("always_revalidate", False, bool, "revalidate every hit"),
    Setting("filter_fn", None, lambda v: _callable("filter_fn", v),
            "`fn(response) -> bool` (may be async); False: not stored"),
    Setting("key_fn", None, lambda v: _callable("key_fn", v), "replacement for `create_key`"),
    Setting("secret_key", None, _secret, "signs every item; a list rotates keys (sign with the "
            "first, accept all)", fixed=True),
    Setting("salt", b"aiocache-http", lambda v: v.encode() if isinstance(v, str) else bytes(v),
            "salt of the signature", fixed=True),
    Setting("serializer", None, lambda v: v, "`None` (the safe envelope), `\"zlib\"`, `\"pickle\"` "
            "(opt-ins) or an object with `dumps`/`loads`; whatever the format (pickle excepted), a "
            "body over 1 MiB is stored as an envelope item, in parts (see Large bodies)", fixed=True),
    Setting("autoclose", True, bool, "close the backend with the session"),
    Setting("strict", False, bool,
            "raise backend errors instead of failing open (timeouts and an open circuit too)"),
    Setting("max_heuristic_age", DEFAULT_HEURISTIC_MAX,
            lambda v: _seconds_or_flag("max_heuristic_age", v),
            "upper bound in seconds of heuristic freshness (RFC 9111 §4.2.2)",
            shown="604800 (a week)"),
    Setting("backend_timeout", 0.1, lambda v: _seconds("backend_timeout", v),
            "deadline (s) of a storage call on the request path, counted while its backend "
            "completes nothing: waiting its turn behind a busy, healthy backend is not a timeout; "
            "a request waits for its write the same way. `None`: none"),
    Setting("write_timeout", 2.0, lambda v: _seconds("write_timeout", v),
            "the most any storage call may take, however busy its backend; the deadline of a "
            "write (it finishes in the background once the request stopped waiting), of each "
            "maintenance step (listing, purge, and each batch of a clear: a large SQLite or "
            "filesystem cache is cleared in batches, so its clear is never cut off half "
            "done) and of close"),
    Setting("connect_timeout", 10.0, lambda v: _seconds("connect_timeout", v),
            "deadline of the first storage call on an event loop (opens connections, creates "
            "tables)"),
    Setting("breaker_threshold", 5, lambda v: _count("breaker_threshold", v),
            "consecutive failed or timed-out calls that open a circuit; `0`: never"),
    Setting("breaker_cooldown", 1.0, lambda v: _seconds("breaker_cooldown", v, none=False),
            "seconds a circuit stays open before one call probes the backend"),
    Setting("max_body_size", DEFAULT_MAX_BODY_SIZE, lambda v: _size_or_none("max_body_size", v),
            "a larger response (by `Content-Length`, or once its stream passes it) reaches the "
            "caller uncached, never buffered whole; `None`: no limit", shown="64 MiB"),
    Setting("read_only", False, bool, "serve what is stored, store nothing new (requests-cache)"),
    Setting("decode_content", True, bool,
            "with a text serializer (`json`, `yaml`), store JSON and text bodies decoded, so files "
            "are readable (requests-cache); a body over 1 MiB is stored as it is (see Large bodies)"),
    Setting("json_serialize", None, lambda v: _callable("json_serialize", v),
            "how `json=` bodies are encoded for `backend.create_key(method, url, json=...)`; a "
            "session keys a request with its own serializer (aiohttp-client-cache)"),
    Setting("cache_status_header", False, bool,
            "add RFC 9211 `Cache-Status` to every response the sessions return (see "
            "[Metrics](#metrics-events-and-cache-status))"),
)
BY_NAME: Mapping[str, Setting] = {setting.name: setting for setting in SETTINGS}
ALIASES: Mapping[str, str] = {alias: s.name for s in SETTINGS for alias in s.aliases}
CONSTRUCTION_ONLY = frozenset(s.name for s in SETTINGS if s.fixed)
_VALIDATORS: Mapping[str, Callable[[Any], Any]] = {s.name: s.validate for s in SETTINGS}


class Default:
    """The default of a keyword argument that names a setting: it means "not given", so a
    backend's own value stays, and it shows as the table's default in a signature."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        return repr(self.value)


def default(name: str) -> Any:
    """A :class:`Default` for setting ``name`` (or one of its aliases)."""
    return Default(BY_NAME[ALIASES.get(name, name)].default)


def settings_table() -> str:
    """The README's settings table, made from :data:`SETTINGS`."""
    rows = ["| setting | default | meaning |", "|---|---|---|"]
    for s in SETTINGS:
        names = " / ".join(f"`{n}`" for n in (s.name, *s.aliases))
        rows.append(f"| {names} | {s.shown or f'`{s.default!r}`'} | {s.doc} |")
    return "\n".join(rows)


class CacheSettings:
    """All cache behaviour options. Assign to any attribute to change it at run time.

    Each option, its default, its aliases and its meaning are one row of
    :data:`SETTINGS` (the README's settings table is made from it).
    """

    expire_after: ExpirationTime
    urls_expire_after: dict[ExpirationPattern, ExpirationTime]
    allowed_codes: tuple[int, ...]
    allowed_methods: tuple[str, ...]
    match_headers: bool | tuple[str, ...]
    ignored_params: tuple[str, ...]
    credential_names: tuple[str, ...]
    cache_control: bool
    stale_if_error: float | bool
    stale_while_revalidate: float | bool
    always_revalidate: bool
    filter_fn: FilterFn | None
    key_fn: Callable[..., str] | None
    secret_key: tuple[bytes, ...]
    salt: bytes
    serializer: Any
    autoclose: bool
    strict: bool
    max_heuristic_age: float | bool
    backend_timeout: float | None
    write_timeout: float | None
    connect_timeout: float | None
    breaker_threshold: int
    breaker_cooldown: float
    max_body_size: int | None
    read_only: bool
    decode_content: bool
    json_serialize: Callable[[Any], str | bytes] | None
    cache_status_header: bool
    given: set[str]
    """The options the user set; the others keep their default (see :meth:`is_given`)."""
    version: int
    """Counts assignments: anything derived from the settings alone is valid while it holds."""
    _frozen: bool

    _DEFAULTS: Mapping[str, Any] = {s.name: s.default for s in SETTINGS}
    NAMES = frozenset(_DEFAULTS) | frozenset(ALIASES)

    def __init__(self, **kwargs: Any) -> None:
        object.__setattr__(self, "_frozen", False)
        object.__setattr__(self, "given", set())
        object.__setattr__(self, "version", 0)
        values = dict(self._DEFAULTS)
        for name, value in kwargs.items():
            values[self.canonical(name)] = value
        for name, value in values.items():
            setattr(self, name, value)
        self.given.clear()
        self.given.update(self.canonical(name) for name in kwargs)
        object.__setattr__(self, "_frozen", True)

    def is_given(self, name: str) -> bool:
        """Did the user set this option (at construction or later), default value or not?"""
        return self.canonical(name) in self.given

    @classmethod
    def canonical(cls, name: str) -> str:
        """The canonical name of an option, or a TypeError suggesting the closest one."""
        name = ALIASES.get(name, name)
        if name not in cls._DEFAULTS:
            close = cls.close_to(name)
            hint = f"; did you mean {close!r}?" if close else ""
            raise TypeError(f"unknown cache setting {name!r}{hint}")
        return name

    @classmethod
    def close_to(cls, name: str) -> str | None:
        """The setting ``name`` looks like a misspelling of, if any."""
        close = difflib.get_close_matches(name, cls.NAMES, n=1)
        return close[0] if close else None

    @classmethod
    def split(cls, kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Split keyword arguments into (cache settings, everything else)."""
        ours = {k: v for k, v in kwargs.items() if k in cls.NAMES}
        return ours, {k: v for k, v in kwargs.items() if k not in cls.NAMES}

    def __setattr__(self, name: str, value: Any) -> None:
        name = self.canonical(name)
        if name in CONSTRUCTION_ONLY and self._frozen:
            raise AttributeError(
                f"{name} is fixed when the backend is created (it decides how stored items "
                f"are read); create a new backend to change it"
            )
        object.__setattr__(self, name, _VALIDATORS[name](value))
        object.__setattr__(self, "version", self.version + 1)
        self.given.add(name)

    if TYPE_CHECKING:  # the aliases are properties (below the class): no __getattr__ hook,
        # which would slow every attribute read
        def __getattr__(self, name: str) -> Any: ...

    def update(self, **kwargs: Any) -> None:
        for name, value in kwargs.items():
            setattr(self, name, value)

    def __repr__(self) -> str:
        shown = {k: getattr(self, k) for k in self._DEFAULTS if k != "secret_key"}
        return f"CacheSettings({', '.join(f'{k}={v!r}' for k, v in shown.items())})"


def _alias_property(name: str) -> property:
    def get(self: CacheSettings) -> Any:
        return getattr(self, name)

    return property(get, doc=f"``{name}`` (an alias; assigning to it sets ``{name}``)")


for _alias, _name in ALIASES.items():
    setattr(CacheSettings, _alias, _alias_property(_name))
