"""``taskdeck audit``: who did what, to what, when, how it ended and why (newest
first), from the store's audit trail (see ``engine.audit``)."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from console.cli.common import Access, with_store
from console.cli.errors import UserError
from console.cli.options import number_flag, task_id_flag
from engine import AuditEntry, Engine, parse_duration

LIMIT = number_flag("--limit", int, 1, 100_000, "entries")


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    audit = sub.add_parser(
        "audit",
        parents=[common],
        help="the audit trail: who did what, when, how it ended, why",
        description="taskdeck audit [--json] [--since DURATION] [--task ID] [--actor USER] "
        "[--action ACTION] [--limit N]",
    )
    audit.add_argument("--since", metavar="DURATION", help="only the last DURATION (30m, 2h, 7d)")
    audit.add_argument("--task", type=task_id_flag, metavar="ID", help="only actions on this task")
    audit.add_argument("--actor", metavar="USER", help="only this OS user (alice or alice@host)")
    audit.add_argument("--action", help="only this action (cancel, pause, update_settings …)")
    audit.add_argument("--limit", type=LIMIT, default=100, help="at most N (default 100)")
    audit.add_argument("--json", action="store_true", help="print JSON")
    audit.set_defaults(func=cmd_audit)


def since_time(text: str | None, now: float) -> float | None:
    """``--since 2h`` → the Unix time two hours ago."""
    if text is None:
        return None
    try:
        seconds = parse_duration(text, "--since")
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if seconds <= 0:
        raise UserError(f"--since must be more than 0 (e.g. 30m, 2h, 7d); got {text!r}")
    return now - seconds


def cmd_audit(args: argparse.Namespace) -> int:
    since = since_time(args.since, time.time())
    if args.actor is not None and not args.actor.partition("@")[0].strip():
        raise UserError(f"--actor takes a user name or user@host; got {args.actor!r}")

    async def work(engine: Engine) -> int:
        found = await engine.audit.entries(
            since=since, task=args.task, actor=args.actor, action=args.action, limit=args.limit
        )
        if args.json:
            print(json.dumps({"entries": [e.as_dict() for e in found]}))
            return 0
        if not found:
            print("no audit entries" + (" match" if _filtered(args) else " yet"))
            return 0
        print(f"{'time':<19}  {'who':<22} {'via':<8} {'action':<16} {'target':<28} outcome")
        for entry in found:
            print(line(entry))
        return 0

    return with_store(args, Access.READ, work)


def _filtered(args: argparse.Namespace) -> bool:
    return any(v is not None for v in (args.since, args.task, args.actor, args.action))


def line(e: AuditEntry) -> str:
    """One entry as a table row; the note on the same line, after the outcome."""
    at = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.at))
    outcome = e.outcome if e.ok else f"REFUSED {e.outcome}"
    note = f"  note: {e.note}" if e.note else ""
    return (
        f"{at:<19}  {e.who[:22]:<22} {e.interface:<8} {e.action[:16]:<16} "
        f"{e.target[:28]:<28} {outcome}{note}"
    )
