"""Backends named by URL: how every command is told which cache to open.

    sqlite:///abs/path.sqlite  sqlite:relative.sqlite   ?busy_timeout=5
    redis://host:6379/0  rediss://...  redis+cluster://host:7000   ?namespace=&layout=
    mongodb://host:27017/dbname   (?gridfs=true for a GridFS cache)
    dynamodb://table?region=eu-west-1&endpoint_url=http://127.0.0.1:8000&namespace=
    file:///abs/dir   file:relative/dir
    memory://   (this process only: for tests)

Options in the query string are the backend's own constructor arguments; anything else
is refused with the list of what is accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from ..backends import init_backend
from ..backends.base import CacheBackend, ConfigurationError
from .errors import CLIError

SCHEMES = ("sqlite", "redis", "rediss", "redis+cluster", "rediss+cluster", "mongodb", "mongodb+srv",
           "dynamodb", "file", "memory")
EXAMPLES = ("sqlite:///path/cache.sqlite, redis://host:6379/0?namespace=NAME, file:///path/dir, "
            "dynamodb://TABLE?region=R, mongodb://host/DB, memory://")


@dataclass(frozen=True)
class CacheURL:
    """A parsed backend URL. ``kind`` is the backend alias; ``location`` the file or
    directory for file-based backends."""

    text: str
    kind: str
    location: Path | None
    build: Callable[[], CacheBackend]

    @property
    def display(self) -> str:
        return redact(self.text)


def redact(url: str) -> str:
    """The URL with any password replaced, for messages."""
    return re.sub(r"(://[^/@:]*:)[^/@]*@", r"\1***@", url)


def _options(query: str, allowed: dict[str, Callable[[str], Any]], scheme: str) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name not in allowed:
            accepted = ", ".join(sorted(allowed)) or "none"
            raise CLIError(f"{scheme}: unknown option {name!r} (accepted: {accepted})")
        try:
            options[name] = allowed[name](value)
        except ValueError as e:
            raise CLIError(f"{scheme}: option {name}={value!r} is not valid: {e}") from e
    return options


def _flag(value: str) -> bool:
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError("use true or false")


def _choice(*choices: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if value not in choices:
            raise ValueError(f"choose one of {', '.join(choices)}")
        return value

    return check


def _path(scheme: str, netloc: str, path: str) -> Path:
    """``scheme:///abs`` and ``scheme:rel`` (also ``scheme://rel``) name a path;
    SQLAlchemy's ``sqlite:////abs`` too (one leading slash kept, not POSIX's ``//``)."""
    text = re.sub(r"^/{2,}", "/", unquote(netloc + path))
    if not text:
        raise CLIError(f"{scheme}: no path given: write {scheme}:///absolute/path or {scheme}:relative/path")
    return Path(text).expanduser()


def parse(url: str, settings: dict[str, Any] | None = None) -> CacheURL:
    """Parse a backend URL; nothing is opened yet. ``settings`` are cache settings
    (``secret_key``...) given to the backend."""
    settings = dict(settings or {})
    scheme, sep, _rest = url.partition(":")
    scheme = scheme.lower()
    if not sep or scheme not in SCHEMES:
        hint = ""
        if not sep and url and Path(url).expanduser().exists():
            kind = "file" if Path(url).expanduser().is_dir() else "sqlite"
            hint = f"; for this path write {kind}://{Path(url).expanduser().absolute()}"
        raise CLIError(f"not a cache URL: {url!r}{hint}. Examples: {EXAMPLES}")
    parts = urlsplit(url)
    if scheme == "sqlite":
        return _sqlite(url, parts.netloc, parts.path, parts.query, settings)
    if scheme == "file":
        return _file(url, parts.netloc, parts.path, parts.query, settings)
    if scheme == "memory":
        _options(parts.query, {}, scheme)

        def memory() -> CacheBackend:
            return CacheBackend(**settings)

        return CacheURL(url, "memory", None, memory)
    if scheme.startswith("redis"):
        return _redis(url, scheme, settings)
    if scheme.startswith("mongodb"):
        return _mongodb(url, settings)
    return _dynamodb(url, parts.netloc, parts.path, parts.query, settings)


def _sqlite(url: str, netloc: str, path: str, query: str, settings: dict[str, Any]) -> CacheURL:
    from ..backends.sqlite import get_cache_path

    options = _options(query, {"busy_timeout": float, "wal": _flag, "fast_save": _flag}, "sqlite")
    location = get_cache_path(_path("sqlite", netloc, path))

    def build() -> CacheBackend:
        return init_backend(str(location), "sqlite", **options, **settings)

    return CacheURL(url, "sqlite", location, build)


def _file(url: str, netloc: str, path: str, query: str, settings: dict[str, Any]) -> CacheURL:
    _options(query, {}, "file")
    location = _path("file", netloc, path).absolute()

    def build() -> CacheBackend:
        return init_backend(str(location), "filesystem", **settings)

    return CacheURL(url, "filesystem", location, build)


def _redis(url: str, scheme: str, settings: dict[str, Any]) -> CacheURL:
    cluster = scheme.endswith("+cluster")
    parts = urlsplit(url)
    ours: dict[str, Callable[[str], Any]] = {
        "namespace": str, "layout": _choice("auto", "hash", "keys"), "ttl": _flag}
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    options = _options(urlencode([(k, v) for k, v in pairs if k in ours]), ours, scheme)
    passed = urlencode([(k, v) for k, v in pairs if k not in ours])  # redis-py's own URL options
    if not parts.hostname and not cluster:
        raise CLIError(f"{scheme}: no host given: write {scheme}://host:6379/0")
    address = urlunsplit((scheme.removesuffix("+cluster"), parts.netloc, parts.path, passed, ""))
    namespace = options.pop("namespace", "aiohttp-cache")

    def build() -> CacheBackend:
        return init_backend(namespace, "redis", address=address, cluster=cluster, **options, **settings)

    return CacheURL(url, "redis", None, build)


def _mongodb(url: str, settings: dict[str, Any]) -> CacheURL:
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    gridfs = any(k == "gridfs" and _flag(v) for k, v in pairs)
    passed = [(k, v) for k, v in pairs if k != "gridfs"]
    if not any(k.lower() == "serverselectiontimeoutms" for k, _v in passed):
        passed.append(("serverSelectionTimeoutMS", "5000"))  # pymongo waits 30 s by default
    database = unquote(parts.path.lstrip("/")) or "aiohttp-cache"
    host = urlunsplit((parts.scheme, parts.netloc, "/", urlencode(passed), ""))

    def build() -> CacheBackend:
        return init_backend(database, "gridfs" if gridfs else "mongodb", host=host, **settings)

    return CacheURL(url, "gridfs" if gridfs else "mongodb", None, build)


def _dynamodb(url: str, netloc: str, path: str, query: str, settings: dict[str, Any]) -> CacheURL:
    table = unquote(netloc + path).strip("/")
    if not table:
        raise CLIError("dynamodb: no table given: write dynamodb://TABLE?region=REGION")
    options = _options(query, {"region": str, "endpoint_url": str, "namespace": str,
                               "create_table": _flag}, "dynamodb")
    if "region" in options:
        options["region_name"] = options.pop("region")

    def build() -> CacheBackend:
        return init_backend(table, "dynamodb", **options, **settings)

    return CacheURL(url, "dynamodb", None, build)


PROBE_KEY = "aiocache-http-cli-probe"
PROBE_TIMEOUT = 15.0


def one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 300 else text[:297] + "..."


@asynccontextmanager
async def opened(url: CacheURL, *, must_exist: bool = True) -> AsyncIterator[CacheBackend]:
    """The backend ``url`` names, reachable (one cheap read proves it), closed afterwards.

    ``must_exist``: a file or directory that is not there is an error rather than a new
    empty cache (inspecting a typo'd path must not create it)."""
    if must_exist and url.location is not None and not url.location.exists():
        raise CLIError(f"no cache at {url.location}: check the path ({url.display})")
    try:
        backend = url.build()
    except ImportError as e:  # a missing extra: the message names the pip command
        raise CLIError(one_line(e)) from e
    except (ConfigurationError, OSError, ValueError, TypeError) as e:
        raise CLIError(f"cannot use {url.display}: {one_line(e)}") from e
    try:
        try:
            await asyncio.wait_for(backend.raw_responses.contains(PROBE_KEY), PROBE_TIMEOUT)
        except ConfigurationError as e:
            raise CLIError(f"cannot use {url.display}: {one_line(e)}") from e
        except Exception as e:
            raise CLIError(f"cannot reach {url.display}: {type(e).__name__}: {one_line(e)}; "
                           "is the server running and the address right?") from e
        yield backend
    finally:
        with contextlib.suppress(Exception):
            await backend.close()
