"""CacheSettings: every cache option in one validated, run-time-mutable object.

Both peers' spellings are accepted (``allowable_codes`` / ``allowed_codes``,
``ignored_parameters`` / ``ignored_params``, ``include_headers`` / ``match_headers``), and
every assignment is validated, so a typo fails where it is made, naming the option.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from typing import Any

from .expiration import (
    NEVER_EXPIRE,
    ExpirationPattern,
    ExpirationTime,
    normalize_expire_after,
    normalize_patterns,
)

ALL_METHODS = ("GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE")
DEFAULT_HEURISTIC_MAX = 7 * 24 * 3600  # RFC 9111 §4.2.2 leaves it to the cache; a week

ALIASES = {
    "allowable_codes": "allowed_codes",
    "allowable_methods": "allowed_methods",
    "ignored_parameters": "ignored_params",
    "include_headers": "match_headers",
    "include_get_headers": "match_headers",  # requests-cache < 0.9
    "old_data_on_error": "stale_if_error",  # requests-cache < 0.9
}

# Part of the serializer: changing them would orphan every stored item.
CONSTRUCTION_ONLY = frozenset({"secret_key", "salt", "serializer"})

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
    if isinstance(value, str) or not isinstance(value, Iterable):
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


def _callable(name: str, value: object) -> Any:
    if value is not None and not callable(value):
        raise TypeError(f"{name} must be callable or None, not {type(value).__name__}")
    return value


def _secret(value: object) -> tuple[bytes, ...]:
    if value is None or value == "" or value == b"":
        return ()
    items = [value] if isinstance(value, (str, bytes)) else list(value)  # type: ignore[call-overload]
    out = []
    for item in items:
        if not isinstance(item, (str, bytes)) or not item:
            raise TypeError("secret_key must be a non-empty str or bytes, or a list of them")
        out.append(item.encode() if isinstance(item, str) else item)
    return tuple(out)


_VALIDATORS: dict[str, Callable[[Any], Any]] = {
    "expire_after": normalize_expire_after,
    "urls_expire_after": normalize_patterns,
    "allowed_codes": _codes,
    "allowed_methods": _methods,
    "match_headers": _match_headers,
    "ignored_params": lambda v: _names("ignored_params", v),
    "cache_control": bool,
    "stale_if_error": lambda v: _seconds_or_flag("stale_if_error", v),
    "stale_while_revalidate": lambda v: _seconds_or_flag("stale_while_revalidate", v),
    "always_revalidate": bool,
    "filter_fn": lambda v: _callable("filter_fn", v),
    "key_fn": lambda v: _callable("key_fn", v),
    "secret_key": _secret,
    "salt": lambda v: v.encode() if isinstance(v, str) else bytes(v),
    "serializer": lambda v: v,
    "autoclose": bool,
    "strict": bool,
    "max_heuristic_age": lambda v: _seconds_or_flag("max_heuristic_age", v),
    "json_serialize": lambda v: _callable("json_serialize", v),
    "decode_content": bool,
    "read_only": bool,
}


class CacheSettings:
    """All cache behaviour options. Assign to any attribute to change it at run time.

    Args:
        expire_after: Default freshness for stored responses: seconds, timedelta,
            datetime, ``NEVER_EXPIRE`` (-1 / None), ``EXPIRE_IMMEDIATELY`` (0: stored,
            always revalidated) or ``DO_NOT_CACHE``.
        urls_expire_after: ``{glob or regex: expire_after}``; the first match wins.
        allowed_codes: Status codes that may be stored (``allowable_codes``).
        allowed_methods: Methods whose responses may be stored (``allowable_methods``).
        match_headers: True to key on all request headers, or a list of header names
            (``include_headers``).
        ignored_params: Query/body/header names left out of the key and redacted from
            storage (``ignored_parameters``).
        cache_control: Honour the response's Cache-Control / Expires headers (RFC 9111).
        stale_if_error: Serve a stale response when the origin fails (True, or a bound
            in seconds past expiry).
        stale_while_revalidate: Serve stale at once and refresh in the background
            within this many seconds past expiry.
        always_revalidate: Revalidate every hit that has a validator.
        filter_fn: ``fn(response) -> bool`` (may be async); False means do not store.
        key_fn: Replacement for :func:`create_key`.
        secret_key: Signs every item (a list rotates keys: sign with the first, accept
            all). Fixed at construction.
        salt: itsdangerous salt for signing. Fixed at construction.
        serializer: ``None`` (safe binary envelope), ``"pickle"`` (opt-in) or an object
            with ``dumps``/``loads``. Fixed at construction.
        autoclose: Close the backend when the session closes.
        strict: Raise backend errors instead of falling back to the origin.
        max_heuristic_age: Upper bound in seconds for heuristic freshness (§4.2.2).
        json_serialize: How ``json=`` bodies are encoded for keys the backend makes
            (``backend.create_key("POST", url, json=...)``); a session keys a request
            with its own serializer, the one that encodes the body it sends.
        decode_content: requests-cache's option for text serializers (``json``, ``yaml``):
            store JSON and text bodies decoded, readable in the file. The default binary
            envelope stores bodies as they came, so it has no effect there.
        read_only: Serve what is stored, never store or delete anything.
    """

    expire_after: ExpirationTime
    urls_expire_after: dict[ExpirationPattern, ExpirationTime]
    allowed_codes: tuple[int, ...]
    allowed_methods: tuple[str, ...]
    match_headers: bool | tuple[str, ...]
    ignored_params: tuple[str, ...]
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
    json_serialize: Callable[[Any], str | bytes] | None
    decode_content: bool
    read_only: bool
    _frozen: bool

    _DEFAULTS: Mapping[str, Any] = {
        "expire_after": NEVER_EXPIRE,
        "urls_expire_after": None,
        "allowed_codes": (200,),
        "allowed_methods": ("GET", "HEAD"),
        "match_headers": False,
        "ignored_params": (),
        "cache_control": False,
        "stale_if_error": False,
        "stale_while_revalidate": False,
        "always_revalidate": False,
        "filter_fn": None,
        "key_fn": None,
        "secret_key": None,
        "salt": b"aiocache-http",
        "serializer": None,
        "autoclose": True,
        "strict": False,
        "max_heuristic_age": DEFAULT_HEURISTIC_MAX,
        "json_serialize": None,
        "decode_content": True,
        "read_only": False,
    }
    NAMES = frozenset(_DEFAULTS) | frozenset(ALIASES)

    def __init__(self, **kwargs: Any) -> None:
        object.__setattr__(self, "_frozen", False)
        values = dict(self._DEFAULTS)
        for name, value in kwargs.items():
            values[self.canonical(name)] = value
        for name, value in values.items():
            setattr(self, name, value)
        object.__setattr__(self, "_frozen", True)

    @classmethod
    def canonical(cls, name: str) -> str:
        """The canonical name of an option, or a TypeError suggesting the closest one."""
        name = ALIASES.get(name, name)
        if name not in cls._DEFAULTS:
            close = difflib.get_close_matches(name, cls.NAMES, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise TypeError(f"unknown cache setting {name!r}{hint}")
        return name

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

    def __getattr__(self, name: str) -> Any:  # only reached for aliases
        if name in ALIASES:
            return getattr(self, ALIASES[name])
        raise AttributeError(name)

    def update(self, **kwargs: Any) -> None:
        for name, value in kwargs.items():
            setattr(self, name, value)

    def __repr__(self) -> str:
        shown = {k: getattr(self, k) for k in self._DEFAULTS if k != "secret_key"}
        return f"CacheSettings({', '.join(f'{k}={v!r}' for k, v in shown.items())})"
