"""``kai-bridge events``: the webhook inbox from the shell (list, show, replay, purge).

Works on the store the settings name (the same file or database a running ``serve`` uses,
which may keep running): ``replay`` makes an event pending again and the running server's
dispatcher picks it up within a second or so (or the next ``serve``/``stdio`` does).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from datetime import UTC, datetime
from typing import Final

from kai_bridge.store.base import EVENT_STATUSES

__all__ = ["HELP", "add_arguments", "parse_before", "run"]

HELP = "list, show, replay or purge the webhook events in the inbox"

_AGE: Final = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_SECONDS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_before(text: str, *, now: float | None = None) -> float:
    """``--before``: an age (``7d``, ``12h``, ``30m``, ``90s``, ``2w``) or an ISO date/time (UTC if no zone)."""
    found = _AGE.match(text)
    if found:
        return (time.time() if now is None else now) - float(found.group(1)) * _SECONDS[found.group(2)]
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither an age (7d, 12h, 30m) nor a date/time (2026-01-31, 2026-01-31T12:00:00Z)"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="events_command", metavar="ACTION", required=True)
    listing = sub.add_parser("list", help="the newest events, newest first")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.add_argument("--status", choices=EVENT_STATUSES, help="only events with this status")
    listing.add_argument("--limit", type=int, default=50, help="how many (default 50)")
    show = sub.add_parser("show", help="one event in full: body, status, handlers' results")
    show.add_argument("id", help="the event id (from events list)")
    replay = sub.add_parser("replay", help="make an event pending again: every handler runs again")
    replay.add_argument("id", help="the event id (from events list)")
    purge = sub.add_parser("purge", help="delete done and dead events received before a time")
    purge.add_argument(
        "--before", required=True, type=parse_before, metavar="WHEN",
        help="an age (7d, 12h, 30m) or a date/time (2026-01-31, 2026-01-31T12:00:00Z)",
    )


def _table(rows: list[dict[str, object]]) -> str:
    columns = ("id", "event_type", "status", "attempts", "received_at", "dedup_key")
    cells = [[str(row.get(c, "")) for c in columns] for row in rows]
    headers = [c.upper() for c in columns]
    widths = [max(len(headers[i]), *(len(r[i]) for r in cells)) for i in range(len(columns))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


async def _run(args: argparse.Namespace) -> int:
    # Imported here: `kai-bridge --help` loads every command module and must stay light.
    from kai_bridge.cmd.common import settings_from_args
    from kai_bridge.store import open_store
    from kai_bridge.webhooks.inbox import Inbox, event_json, iso, summary_json

    settings = settings_from_args(args, check_files=False)
    out = sys.stdout
    async with open_store(settings.effective_store_url()) as store:
        inbox = Inbox(store=store)
        action = args.events_command
        if action == "list":
            if args.limit < 1:
                print("kai-bridge: --limit must be at least 1", file=sys.stderr)
                return 2
            rows = [summary_json(e) for e in await inbox.list_events(status=args.status, limit=args.limit)]
            if args.json:
                for row in rows:
                    out.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")
            elif rows:
                print(_table([dict(r) for r in rows]), file=out)
            else:
                print("no webhook events" + (f" with status {args.status}" if args.status else ""), file=out)
            return 0
        if action == "show":
            found = await inbox.get(args.id)
            if found is None:
                print(f"kai-bridge: no webhook event {args.id!r} (see: kai-bridge events list)", file=sys.stderr)
                return 1
            print(json.dumps(event_json(found), ensure_ascii=False, indent=2), file=out)
            return 0
        if action == "replay":
            outcome = await inbox.replay(args.id)
            if outcome == "missing":
                print(f"kai-bridge: no webhook event {args.id!r} (see: kai-bridge events list)", file=sys.stderr)
                return 1
            if outcome == "busy":
                print(
                    f"kai-bridge: event {args.id} is being handled right now (its lease is live); try again "
                    "once it is done, retrying or dead",
                    file=sys.stderr,
                )
                return 1
            print(f"event {args.id} is pending again: a running serve/stdio dispatches it shortly "
                  "(or the next one that starts)", file=out)
            return 0
        purged = await inbox.purge(before=args.before)
        print(f"purged {purged} done/dead event(s) received before {iso(args.before)}", file=out)
        return 0


def run(args: argparse.Namespace) -> int:
    import anyio

    return anyio.run(_run, args)
