"""Read-only commands: ``stats``, ``list``, ``show``."""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..backends.base import CacheBackend
from ..models import CachedRequest, CachedResponse, utcnow
from ..policy import core, freshness
from .entries import Entry, Selection, decode, entries, redirect_target
from .errors import CLIError
from .output import Output, iso, moment, relative, size

# -- stats ------------------------------------------------------------------------------


@dataclass
class Totals:
    entries: int = 0
    bytes: int = 0
    states: Counter[str] = field(default_factory=Counter)
    hosts: Counter[str] = field(default_factory=Counter)
    host_bytes: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)

    def add(self, entry: Entry, state: str) -> None:
        self.entries += 1
        self.bytes += entry.size
        self.states[state] += 1
        if entry.response is not None:
            self.hosts[entry.host] += 1
            self.host_bytes[entry.host] += entry.size
            self.statuses[entry.response.status] += 1


def _file_size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


async def sqlite_file(backend: CacheBackend) -> dict[str, Any] | None:
    """File size (with its WAL) and free pages of a SQLite cache; None for other backends."""
    database = getattr(backend, "database", None)
    path = getattr(database, "path", None)
    if database is None or not isinstance(path, Path):
        return None
    conn = await database.connection()
    info = {}
    for pragma in ("page_size", "page_count", "freelist_count"):
        rows = list(await conn.execute_fetchall(f"PRAGMA {pragma}"))
        info[pragma] = int(rows[0][0])
    return {"path": str(path), "file_bytes": _file_size(path), "wal_bytes": _file_size(Path(f"{path}-wal")),
            "page_size": info["page_size"], "pages": info["page_count"],
            "free_pages": info["freelist_count"],
            "free_bytes": info["freelist_count"] * info["page_size"]}


async def stats(backend: CacheBackend, out: Output) -> int:
    now, totals = utcnow(), Totals()
    with out.progress(None, "entries") as bar:
        async for entry in entries(backend):
            totals.add(entry, entry.state(now))
            bar.update()
    redirects = await backend.raw_redirects.size()
    sqlite = await sqlite_file(backend)
    s = totals.states
    expired = s["stale"] + s["expired"]
    if out.json:
        out.emit({"entries": totals.entries, "bytes": totals.bytes, "fresh": s["fresh"],
                  "expired": expired, "stale_revalidatable": s["stale"], "unreadable": s["unreadable"],
                  "redirects": redirects,
                  "by_host": {h: {"entries": n, "bytes": totals.host_bytes[h]}
                              for h, n in totals.hosts.most_common()},
                  "by_status": {str(code): n for code, n in sorted(totals.statuses.items())},
                  "sqlite": sqlite})
        return 0
    rows = [
        ("entries", f"{totals.entries:,}"),
        ("bytes", f"{size(totals.bytes)} ({totals.bytes:,})"),
        ("fresh", f"{s['fresh']:,}"),
        ("expired", f"{expired:,} ({s['stale']:,} stale but revalidatable: they have a validator)"),
        ("unreadable", f"{s['unreadable']:,}"),
        ("redirects", f"{redirects:,}"),
    ]
    if sqlite is not None:
        rows.append(("sqlite file", f"{size(sqlite['file_bytes'])} + {size(sqlite['wal_bytes'])} WAL, "
                                    f"{sqlite['free_pages']:,} free pages ({size(sqlite['free_bytes'])}; "
                                    "`vacuum` returns them)"))
    out.pairs(rows)
    if totals.hosts:
        out.line()
        out.table(["host", "entries", "bytes"],
                  [(h, f"{n:,}", size(totals.host_bytes[h])) for h, n in totals.hosts.most_common()],
                  numeric=(1, 2))
    if totals.statuses:
        out.line()
        out.table(["status", "entries"], [(code, f"{n:,}") for code, n in sorted(totals.statuses.items())],
                  numeric=(1,))
    return 0


# -- list -----------------------------------------------------------------------------


def summary(entry: Entry, now: Any) -> dict[str, Any]:
    r = entry.response
    return {"key": entry.key, "state": entry.state(now), "bytes": entry.size,
            "method": r.request.method if r else None, "url": r.url if r else None,
            "status": r.status if r else None, "created": iso(r.created_at) if r else None,
            "expires": iso(r.expires) if r else None, "verified": entry.verified,
            "problem": entry.problem or None}


async def list_entries(backend: CacheBackend, out: Output, selection: Selection, limit: int | None) -> int:
    now, shown = utcnow(), 0
    if out.json:
        out.stream.write("[")
    else:
        header = f"{'key':<12}  {'state':<10}  {'status':>6}  {'size':>9}  {'stored':>8}  {'expires':>9}  url"
        out.line(header)
    async for entry in entries(backend):
        if not selection.matches(entry, now):
            continue
        if out.json:
            out.stream.write(("," if shown else "") + "\n  " + json.dumps(summary(entry, now)))
        else:
            r, state = entry.response, entry.state(now)
            url = f"{r.request.method} {r.url}" if r else entry.problem
            line = (f"{entry.key[:12]:<12}  {out.paint(state, f'{state:<10}')}  "
                    f"{r.status if r else '-':>6}  {size(entry.size):>9}  "
                    f"{relative(r.created_at, now) if r else '-':>8}  "
                    f"{relative(r.expires, now) if r else '-':>9}  ")
            visible = len(line) - (len(out.paint(state, "")) if out.colour else 0)
            room = max(20, out.width() - visible)
            out.line(line + (url if len(url) <= room else url[:room - 1] + "…"))
        shown += 1
        if limit is not None and shown >= limit:
            break
    if out.json:
        out.stream.write("\n]\n" if shown else "]\n")
    return 0


# -- show -----------------------------------------------------------------------------


def looks_like_url(text: str) -> bool:
    return "://" in text


async def find(backend: CacheBackend, target: str) -> list[Entry]:
    """Entries for a key (or the start of one, as `list` shows it), a redirect alias, or a
    URL (its key, else every entry whose stored URL is that URL: Vary variants, or a cache
    keyed with other settings)."""
    storage, found = backend.raw_responses, list[Entry]()
    keys = [target]
    if looks_like_url(target):
        keys += [backend.create_key(CachedRequest(m, target, follow_redirects=f))
                 for m in ("GET", "HEAD") for f in (True, False)]
    for key in keys:
        data = await storage.read(key)
        if data is None:
            alias = await backend.raw_redirects.read(key)
            points_at = None if alias is None else redirect_target(backend.serializer, key, alias)
            if points_at is not None:
                key = points_at
                data = await storage.read(key)
        if data is not None and key not in {e.key for e in found}:
            found.append(decode(backend.serializer, key, data))
    if found:
        return found
    if not looks_like_url(target):  # the short key `list` shows: every key it begins
        return [decode(backend.serializer, key, data)
                async for key in storage.keys()  # noqa: SIM118  # (async: no `in`)
                if target and key.startswith(target) and (data := await storage.read(key)) is not None]
    return [e async for e in entries(backend) if e.response is not None
            and target in (e.response.url, e.response.request.url)]


def freshness_reason(backend: CacheBackend, response: CachedResponse) -> tuple[str, str]:
    """What the cache would do with this entry now, in the decision core's own words:
    (``serve`` / ``revalidate`` / ``fetch`` / ``504``..., the reason with its RFC section)."""
    plan = core.plan(response.request, backend.settings, None,
                     lambda request: (response.cache_key, request))
    decision = core.on_lookup(plan, response, backend.clock())
    return _DECISION_NAMES.get(decision.name, decision.name.lower()), decision.why()


_DECISION_NAMES = {"Serve": "serve", "ServeStale": "serve stale", "Revalidate": "revalidate",
                   "Fetch": "fetch", "GatewayTimeout": "504", "Lookup": "vary"}


_TEXT_TYPES = ("text/", "json", "xml", "javascript", "x-www-form-urlencoded", "yaml", "csv")


def body_preview(response: CachedResponse, limit: int = 600) -> str | None:
    """The start of a text body; None for a binary one."""
    ctype = response.headers.get("Content-Type", "").lower()
    if response.headers.get("Content-Encoding", "identity").lower() not in ("identity", ""):
        return None
    if ctype and not any(t in ctype for t in _TEXT_TYPES):
        return None
    try:
        text = response.body[:limit * 4].decode(response.encoding or "utf-8")
    except (UnicodeDecodeError, LookupError):
        return None
    if any(ord(c) < 32 and c not in "\t\r\n" for c in text):
        return None
    return text if len(text) <= limit else text[:limit] + "…"


def detail(backend: CacheBackend, entry: Entry) -> dict[str, Any]:
    r, now = entry.response, backend.clock()
    info = summary(entry, now)
    if r is None:
        return info
    decision, reason = freshness_reason(backend, r)
    info.update({
        "reason": r.reason, "age_seconds": round(freshness.current_age(r, now), 3),
        "decision": decision, "why": reason, "revalidatable": bool(freshness.validators(r)),
        "headers": [[k, v] for k, v in r.headers.items()],
        "request_headers": [[k, v] for k, v in r.request.headers.items()],
        "history": [h.url for h in r.history], "body_bytes": len(r.body),
        "body_preview": body_preview(r),
    })
    return info


async def show(backend: CacheBackend, out: Output, target: str) -> int:
    found = await find(backend, target)
    if not found:
        raise CLIError(f"nothing stored for {target!r} (try `list --url '*part-of-the-url*'`)")
    details = [detail(backend, e) for e in found]
    if out.json:
        out.emit(details if len(details) > 1 else details[0])
        return 0
    now = backend.clock()
    for n, (entry, info) in enumerate(zip(found, details, strict=True)):
        if n:
            out.line("\n" + "-" * 40)
        show_one(out, entry, info, now, "signature" if backend.serializer.integrity.signed else "checksum")
    return 0


def show_one(out: Output, entry: Entry, info: dict[str, Any], now: Any, integrity: str) -> None:
    r = entry.response
    if r is None:
        out.pairs([("key", entry.key), ("state", out.paint("unreadable")), ("problem", entry.problem),
                   ("size", f"{entry.size:,} bytes")])
        return
    state = entry.state(now)
    rows: list[tuple[str, Any]] = [
        ("key", entry.key), ("request", f"{r.request.method} {r.request.url}"),
        ("status", f"{r.status} {r.reason}"), ("url", r.url),
        ("created", moment(r.created_at, now)), ("expires", moment(r.expires, now)),
        ("age", f"{info['age_seconds']:.0f}s"),
        ("state", out.paint(state) + (" (has a validator: a 304 can renew it)" if state == "stale" else "")),
        ("now", f"{info['decision']}: {info['why']}"),
        ("integrity", f"{integrity} verified" if entry.verified else f"not verified ({entry.problem})"),
        ("stored", f"{entry.size:,} bytes (body {len(r.body):,} bytes)"),
    ]
    if r.history:
        rows.append(("redirects", " -> ".join(info["history"])))
    out.pairs(rows)
    out.line("\nheaders:")
    for name, value in r.headers.items():
        out.line(f"  {name}: {value}")
    preview = info["body_preview"]
    if preview is None:
        ctype = r.headers.get("Content-Type", "unknown type")
        out.line(f"\nbody: {len(r.body):,} bytes of {ctype} (binary, not shown)")
    elif r.body:
        out.line("\nbody:")
        out.line("  " + preview.replace("\n", "\n  "))

