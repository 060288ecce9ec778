"""The ``aiocache-http`` command (also ``python -m aiocache_http``): inspect, purge and
migrate a cache from the shell. Never imported by the library itself.

One module per concern: ``urls`` (backends named by URL), ``entries`` (stored items
decoded for display), ``output`` (tables, JSON, colour, progress), and the commands:
``report`` (stats, list, show), ``maintain`` (purge, vacuum), ``migrate``, ``fetch`` (get).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from .errors import CLIError
from .migrate import Counts
from .output import Output
from .urls import one_line

ENV_CACHE, ENV_SECRET = "AIOCACHE_HTTP_CACHE", "AIOCACHE_HTTP_SECRET_KEY"

DESCRIPTION = """\
Inspect, purge and migrate an aiocache-http cache.

A cache is named by URL:
  sqlite:///path/cache.sqlite   redis://host:6379/0?namespace=NAME   rediss://...
  redis+cluster://host:7000     mongodb://host/DB   dynamodb://TABLE?region=R
  file:///path/dir              memory://
"""

EPILOG = f"""\
examples:
  aiocache-http -c sqlite:///var/cache/http.sqlite stats
  aiocache-http -c redis://127.0.0.1:6379/0 list --host api.example.com --expired
  aiocache-http migrate sqlite:///http.sqlite redis://10.0.0.5:6379/0?namespace=svc

environment: {ENV_CACHE} (the cache), {ENV_SECRET} (verifies signed items),
NO_COLOR. `aiocache-http COMMAND --help` tells a command's options."""

COMMANDS = {
    "stats": "entries, bytes, freshness, by host and status",
    "list": "list entries by URL, host, freshness or age",
    "show": "one entry: headers, times, freshness and why, body",
    "get": "fetch a URL through the cache: hit or miss, and why",
    "purge": "delete entries by expiry, URL, host or age (asks)",
    "migrate": "copy every entry to another cache (resumable)",
    "vacuum": "return a SQLite file's free pages to the OS",
}


def _common() -> argparse.ArgumentParser:
    """Options accepted before or after the command (SUPPRESS: absent unless given)."""
    common = argparse.ArgumentParser(add_help=False)
    g = common.add_argument_group("common options")
    g.add_argument("-c", "--cache", metavar="URL", default=argparse.SUPPRESS,
                   help=f"the cache to open (default: ${ENV_CACHE})")
    g.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                   help="print JSON (for scripts) instead of tables")
    g.add_argument("--no-color", action="store_true", default=argparse.SUPPRESS, help="no colours")
    g.add_argument("--secret-key", metavar="KEY", default=argparse.SUPPRESS,
                   help=f"the cache's secret_key, to verify signed items (default: ${ENV_SECRET})")
    g.add_argument("--serializer", choices=("envelope", "zlib", "pickle"), default=argparse.SUPPRESS,
                   help="the cache's serializer setting, if not the default")
    g.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                   help="log the cache's decisions (DEBUG)")
    return common


def _selection(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", metavar="GLOB", help="stored URL matches this glob, e.g. '*/api/*'")
    p.add_argument("--host", metavar="HOST", help="stored URL's host is HOST")
    p.add_argument("--older-than", metavar="AGE",
                   help="stored (or renewed) more than AGE ago: 90s, 15m, 2h, 7d")


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = argparse.ArgumentParser(
        prog="aiocache-http", description=DESCRIPTION, epilog=EPILOG, parents=[common],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands", required=True)

    def command(name: str, usage_notes: str = "") -> argparse.ArgumentParser:
        what = COMMANDS[name]
        return sub.add_parser(name, help=what, description=what[0].upper() + what[1:] + ".",
                              epilog=usage_notes or None, parents=[common],
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    command("stats", "With --json, a document for monitoring. SQLite also shows file size and\n"
                     "free pages. 'stale' entries are expired but carry a validator (ETag or\n"
                     "Last-Modified): the next use renews them with a 304 instead of a download.")
    p = command("list", "example: aiocache-http list --url '*/users/*' --expired --limit 20")
    _selection(p)
    state = p.add_mutually_exclusive_group()
    state.add_argument("--expired", action="store_true", help="expired entries only")
    state.add_argument("--fresh", action="store_true", help="fresh entries only")
    p.add_argument("--limit", metavar="N", type=int, help="stop after N entries")

    p = command("show", "TARGET is a cache key (as `list` prints), a redirect alias, or a URL: its\n"
                        "GET entry, else every entry stored for that URL (e.g. Vary variants).\n"
                        "'now' is what the cache would do with the entry now, in the policy's words.")
    p.add_argument("target", metavar="URL|KEY")
    p.add_argument("--cache-control", action="store_true",
                   help="judge freshness as a session with cache_control=True would")

    p = command("get", "example: aiocache-http -c sqlite:///http.sqlite get https://example.com/ -v")
    p.add_argument("url", metavar="URL")
    p.add_argument("-X", "--method", default="GET", help="request method (default GET)")
    p.add_argument("-H", "--header", action="append", default=[], metavar="'NAME: VALUE'",
                   help="request header (repeatable)")
    p.add_argument("--cache-control", action="store_true", help="honour Cache-Control (RFC 9111)")
    p.add_argument("--expire-after", metavar="SECONDS", type=float, help="expiry of what is stored")
    p.add_argument("--refresh", action="store_true", help="revalidate even if fresh")

    p = command("purge", "Prints how many entries match, then asks; --yes skips the question.\n"
                         "example: aiocache-http purge --host old.example.com --yes")
    what = p.add_argument_group("what to delete (one or more filters, or --all)")
    what.add_argument("--expired", action="store_true", help="expired entries")
    what.add_argument("--url", metavar="GLOB", help="stored URL matches this glob")
    what.add_argument("--host", metavar="HOST", help="stored URL's host is HOST")
    what.add_argument("--older-than", metavar="AGE", help="stored more than AGE ago: 90s, 15m, 2h, 7d")
    what.add_argument("--all", action="store_true", help="everything, redirects included")
    p.add_argument("-y", "--yes", action="store_true", help="do not ask")

    p = command("migrate", "Copies the stored bytes under the same keys: expiry and signatures are\n"
                           "kept (use the same secret_key at DST). Run again after an interruption:\n"
                           "entries already at DST with the same bytes are skipped. Exit 1 if any\n"
                           "entry failed. example:\n"
                           "  aiocache-http migrate sqlite:///http.sqlite redis://127.0.0.1:6379/0")
    p.add_argument("src", metavar="SRC", help="cache URL to copy from")
    p.add_argument("dst", metavar="DST", help="cache URL to copy to (created if needed)")
    p.add_argument("--expired", action=argparse.BooleanOptionalAction, default=True,
                   help="also copy expired entries, which may still be revalidated (default: yes)")

    command("vacuum", "SQLite only: rebuilds the file after large deletes (`purge`).")
    return parser


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    settings: dict[str, Any] = {"strict": True}  # a tool must see storage errors, not fail open
    secret = getattr(args, "secret_key", None) or os.environ.get(ENV_SECRET)
    if secret:
        settings["secret_key"] = secret
    if getattr(args, "serializer", None):
        settings["serializer"] = args.serializer
    if getattr(args, "cache_control", False):
        settings["cache_control"] = True
    return settings


def _ask(yes: bool, out: Output) -> Any:
    def confirm(question: str) -> bool:
        if yes:
            out.note(question.rstrip("?") + ": yes (--yes)")
            return True
        sys.stderr.write(f"{question} [y/N] ")
        sys.stderr.flush()
        answer = sys.stdin.readline()
        if not answer:
            sys.stderr.write("\n")
        return answer.strip().lower() in ("y", "yes")

    return confirm


def _headers(lines: Sequence[str]) -> dict[str, str]:
    headers = {}
    for line in lines:
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise CLIError(f"-H {line!r}: write 'Name: value'")
        headers[name.strip()] = value.strip()
    return headers


async def run(args: argparse.Namespace, out: Output, counts: Counts) -> int:
    from . import fetch, maintain, migrate, report
    from .entries import Selection, parse_age
    from .urls import opened, parse

    settings = _settings(args)
    if args.command == "migrate":
        src_url, dst_url = parse(args.src, settings), parse(args.dst, settings)
        if src_url.text == dst_url.text:
            raise CLIError("migrate: SRC and DST are the same cache")
        async with opened(src_url) as src, opened(dst_url, must_exist=False) as dst:
            return await migrate.migrate(src, dst, out, args.expired, counts)

    cache = getattr(args, "cache", None) or os.environ.get(ENV_CACHE)
    if not cache:
        raise CLIError(f"which cache? pass -c URL (e.g. -c sqlite:///path/cache.sqlite) or set {ENV_CACHE}")
    url = parse(cache, settings)
    selection = Selection()
    if args.command in ("list", "purge"):
        older = parse_age(args.older_than) if args.older_than else None
        expired = True if args.expired else (False if getattr(args, "fresh", False) else None)
        selection = Selection(args.url, args.host, expired, older)
    if args.command == "purge" and not args.all and selection.everything:
        raise CLIError("purge what? give --expired, --url GLOB, --host HOST, --older-than AGE, or --all")
    if args.command == "purge" and args.all and not selection.everything:
        raise CLIError("purge: --all deletes everything; it takes no other filter")
    async with opened(url, must_exist=args.command != "get") as backend:
        if args.command == "stats":
            return await report.stats(backend, out)
        if args.command == "list":
            return await report.list_entries(backend, out, selection, args.limit)
        if args.command == "show":
            return await report.show(backend, out, args.target)
        if args.command == "purge":
            return await maintain.purge(backend, out, selection, args.all, _ask(args.yes, out))
        if args.command == "vacuum":
            return await maintain.vacuum(backend, out, url.kind)
        options: dict[str, Any] = {"refresh": args.refresh}
        if args.expire_after is not None:
            options["expire_after"] = args.expire_after
        return await fetch.get(backend, out, args.url, args.method.upper(), _headers(args.header), options)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    colour = False if getattr(args, "no_color", False) else None
    out = Output(as_json=getattr(args, "json", False), colour=colour)
    logging.basicConfig(level=logging.DEBUG if getattr(args, "verbose", False) else logging.WARNING,
                        format="aiocache-http: %(message)s", stream=sys.stderr)
    counts = Counts()
    try:
        return asyncio.run(run(args, out, counts))
    except CLIError as e:
        print(f"aiocache-http: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        if args.command == "migrate":
            print(f"interrupted: {counts.line()}\nrun the same command again to resume: entries "
                  "already copied are skipped", file=sys.stderr)
        else:
            print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `aiocache-http list | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as e:
        print(f"aiocache-http: {args.command} failed: {type(e).__name__}: {one_line(e)}", file=sys.stderr)
        return 1


__all__ = ["CLIError", "build_parser", "main"]
